//! The token stays secret, only http/https is accepted, redirects are not followed, and a
//! response body is never read past the cap.

use crate::common;

use std::net::TcpListener;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{RawServer, bounded, wait_status, write_counted};
use serde_json::json;
use tether_core::session::{Endpoint, GiveUpReason, RequestId, SessionConfig, Status};
use tether_smol::runtime::{AsyncTransport, HttpRequest};
use tether_smol::{BuildError, HttpTransport, SendError, Token};

const SECRET: &str = "tok-9f8e7d6c5b4a-SECRET";

#[test]
fn token_is_never_in_debug_or_display() {
    let builder = tether_smol::builder("http://127.0.0.1:9/v1/code/sessions/s")
        .token(SECRET)
        .epoch(1);
    assert!(!format!("{builder:?}").contains(SECRET));
    let token = Token::new(SECRET);
    assert!(!format!("{token:?} {token}").contains(SECRET));
    let request = HttpRequest {
        id: RequestId(1),
        route: tether_driver::runtime::Route::Worker(Endpoint::Heartbeat),
        url: "http://127.0.0.1:9/x".into(),
        body: b"{}".to_vec(),
        token: Some(token),
        user_agent: tether_smol::runtime::USER_AGENT.into(),
        max_response_body: 1024,
        deadline: tether_core::Instant::ZERO,
        backstop: None,
    };
    assert!(!format!("{request:?}").contains(SECRET));

    // A running session against nothing (connection refused): the handle, its statuses and
    // its errors.
    bounded(Duration::from_secs(10), async {
        let tether = builder.start().unwrap();
        let printed = format!("{tether:?} {}", tether.status());
        assert!(!printed.contains(SECRET), "{printed}");
        let report = tether.close(Duration::from_millis(100)).await;
        assert!(!format!("{report:?}").contains(SECRET));
        let err = tether
            .send_event(json!({"a": 1}), Duration::from_millis(10))
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::Ended { .. }), "{err:?}");
        assert!(!format!("{err:?} {err}").contains(SECRET));
    });
}

#[test]
fn only_http_and_https_urls_are_accepted() {
    for url in [
        "ftp://127.0.0.1/v1/code/sessions/s",
        "file:///tmp/s",
        "ws://127.0.0.1/s",
        "unix:/tmp/sock",
        "127.0.0.1:8787/s",
        "http://user:pass@127.0.0.1/s",
    ] {
        let err = tether_smol::builder(url).epoch(1).into_parts().unwrap_err();
        assert!(
            matches!(
                err,
                BuildError::UnsupportedScheme { .. } | BuildError::InvalidUrl { .. }
            ),
            "{url}: {err:?}"
        );
        assert!(HttpTransport::new(url).is_err(), "{url}");
    }
    assert!(matches!(
        tether_smol::builder("ftp://127.0.0.1/s").into_parts().unwrap_err(),
        BuildError::UnsupportedScheme { scheme } if scheme == "ftp"
    ));
    assert!(
        tether_smol::builder("http://127.0.0.1:9/s")
            .epoch(1)
            .into_parts()
            .is_ok()
    );
    assert!(
        tether_smol::builder("https://127.0.0.1:9/s")
            .epoch(1)
            .into_parts()
            .is_ok()
    );
    // A token that could smuggle a header is refused.
    assert!(matches!(
        tether_smol::builder("http://127.0.0.1:9/s")
            .token("a\r\nx-evil: 1")
            .into_parts()
            .unwrap_err(),
        BuildError::InvalidToken
    ));
}

#[test]
fn redirects_are_not_followed() {
    // The redirect target counts every connection it gets.
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    target.set_nonblocking(true).unwrap();
    let location = format!("http://{}/v1/code/sessions/s", target.local_addr().unwrap());
    let server = RawServer::start(4, move |stream, _head, written| {
        let answer =
            format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n");
        write_counted(stream, answer.as_bytes(), written);
    });
    let url = server.url("s");
    bounded(Duration::from_secs(10), async {
        let tether = tether_smol::builder(&url).epoch(1).start().unwrap();
        // 302 is a permanent refusal of the init PUT by the response table.
        let status = wait_status(&tether, Duration::from_secs(5), Status::is_terminal).await;
        assert_eq!(status, Status::GivenUp(GiveUpReason::Rejected(302)));
        let report = tether.close(Duration::from_millis(10)).await;
        assert_eq!(report.counters.session.requests, 1);
    });
    assert_eq!(
        server.requests.load(Ordering::SeqCst),
        1,
        "the 302 was followed"
    );
    assert!(
        target.accept().is_err(),
        "the client connected to the redirect target"
    );
    server.join(4);
}

#[test]
fn a_response_body_is_never_read_past_the_cap() {
    const CAP: usize = 64 * 1024;
    const HUGE: u64 = 1 << 30;
    // Declares 1 GiB and streams it until the client goes away.
    let server = RawServer::start(1, |stream, _head, written| {
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {HUGE}\r\n\r\n");
        write_counted(stream, head.as_bytes(), written);
        let block = vec![b'x'; 64 * 1024];
        let mut sent = 0u64;
        while sent < HUGE && write_counted(stream, &block, written) {
            sent += block.len() as u64;
        }
    });
    let url = server.url("s");
    let transport = HttpTransport::new(&url).unwrap();
    let started = Instant::now();
    let response = bounded(Duration::from_secs(20), async {
        transport
            .send(HttpRequest {
                id: RequestId(0),
                route: tether_driver::runtime::Route::Worker(Endpoint::GetWorker),
                url: format!("{url}/worker"),
                body: Vec::new(),
                token: None,
                user_agent: tether_smol::runtime::USER_AGENT.into(),
                max_response_body: CAP,
                deadline: tether_core::Instant::from_secs(10),
                backstop: None,
            })
            .await
            .unwrap()
    });
    assert_eq!(response.status, 200);
    assert!(response.truncated);
    assert_eq!(response.body.len(), CAP);
    // The connection was dropped, not pooled, so the server's writes fail soon.
    assert_eq!(transport.idle_connections(), 0);
    drop(transport);
    let written = std::sync::Arc::clone(&server.written);
    server.join(0);
    let written = written.load(Ordering::SeqCst);
    assert!(
        written < 64 << 20,
        "the client read {written} bytes of a 1 GiB body"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn the_core_sees_an_oversized_body_as_a_bad_body() {
    // GET /worker answers 200 with a body over the session's cap: the connect sequence fails
    // as a bad body and retries (the core's decision), it is never parsed.
    let server = RawServer::start(8, |stream, head, written| {
        let answer = if head.starts_with(b"GET") {
            let body = format!("{{\"worker\":{{\"pad\":\"{}\"}}}}", "y".repeat(100_000));
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        } else {
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}".to_string()
        };
        write_counted(stream, answer.as_bytes(), written);
    });
    let url = server.url("s");
    bounded(Duration::from_secs(10), async {
        let tether = tether_smol::builder(&url)
            .epoch(1)
            .config(SessionConfig::new("s"))
            .start()
            .unwrap();
        wait_status(&tether, Duration::from_secs(5), |s| {
            matches!(s, Status::Retrying { .. })
        })
        .await;
        let counters = tether.counters();
        assert_eq!(counters.session.failures.bad_body, 1);
        tether.close(Duration::ZERO).await;
    });
    server.join(8);
}

#[cfg(feature = "tls")]
#[test]
fn an_https_url_speaks_tls_first() {
    use std::io::Read;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut first = [0u8; 1];
        stream.read_exact(&mut first).unwrap();
        first[0] // dropped: the handshake fails
    });
    let url = format!("https://localhost:{}/v1/code/sessions/s", addr.port());
    let transport = HttpTransport::new(&url).unwrap();
    let result = bounded(Duration::from_secs(10), async {
        transport
            .send(HttpRequest {
                id: RequestId(0),
                route: tether_driver::runtime::Route::Worker(Endpoint::Heartbeat),
                url: format!("{url}/worker/heartbeat"),
                body: b"{}".to_vec(),
                token: Some(Token::new(SECRET)),
                user_agent: tether_smol::runtime::USER_AGENT.into(),
                max_response_body: 1024,
                deadline: tether_core::Instant::from_secs(10),
                backstop: None,
            })
            .await
    });
    assert_eq!(peer.join().unwrap(), 0x16, "not a TLS handshake record");
    let error = result.unwrap_err();
    assert!(!error.message.contains(SECRET));
}
