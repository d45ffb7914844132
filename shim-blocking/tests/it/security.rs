//! The shim's edges against tiny raw HTTP servers on 127.0.0.1: redirects are not followed,
//! response bodies are read no further than the cap, only http(s) URLs start a session, the
//! headers are the protocol's, and the token never shows.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tether_blocking::BuildError;
use tether_blocking::runtime::USER_AGENT;
use tether_core::session::{GiveUpReason, Status};

use common::{fast_config, within};

type Respond = dyn Fn(&str) -> (String, u64) + Send + Sync;

/// A raw HTTP/1.1 server: answers every request with `respond(request line)` — a status line
/// plus headers, and a body length (the body is that many `x`). Records request heads and the
/// most body bytes written on one connection. Stops when dropped (or after 60 s).
struct Raw {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    max_written: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Raw {
    fn start(respond: impl Fn(&str) -> (String, u64) + Send + Sync + 'static) -> Raw {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let raw = Raw {
            addr: listener.local_addr().expect("addr"),
            heads: Arc::default(),
            max_written: Arc::default(),
            stop: Arc::default(),
        };
        let respond: Arc<Respond> = Arc::new(respond);
        let (heads, max_written, stop) = (
            Arc::clone(&raw.heads),
            Arc::clone(&raw.max_written),
            Arc::clone(&raw.stop),
        );
        thread::spawn(move || {
            let started = Instant::now();
            while !stop.load(Ordering::Acquire) && started.elapsed() < Duration::from_secs(60) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (respond, heads, max_written) = (
                            Arc::clone(&respond),
                            Arc::clone(&heads),
                            Arc::clone(&max_written),
                        );
                        thread::spawn(move || serve(stream, &*respond, &heads, &max_written));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        raw
    }

    fn url(&self, session: &str) -> String {
        format!("http://{}/v1/code/sessions/{session}", self.addr)
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().expect("heads").clone()
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

fn serve(stream: TcpStream, respond: &Respond, heads: &Mutex<Vec<String>>, max: &AtomicU64) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut head = String::new();
        let mut content_length = 0u64;
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                content_length = v.trim().parse().unwrap_or(0);
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let mut body = vec![0; usize::try_from(content_length).unwrap_or(0)];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let request_line = head.lines().next().unwrap_or_default().to_owned();
        heads.lock().expect("heads").push(head);
        let (status_and_headers, body_len) = respond(&request_line);
        let out = format!("{status_and_headers}Content-Length: {body_len}\r\n\r\n");
        if writer.write_all(out.as_bytes()).is_err() {
            return;
        }
        let chunk = vec![b'x'; 64 * 1024];
        let mut written = 0u64;
        while written < body_len {
            let n = chunk
                .len()
                .min(usize::try_from(body_len - written).unwrap_or(usize::MAX));
            if writer.write_all(&chunk[..n]).is_err() {
                max.fetch_max(written, Ordering::AcqRel);
                return;
            }
            written += n as u64;
        }
        max.fetch_max(written, Ordering::AcqRel);
    }
}

#[test]
fn redirects_are_not_followed_and_the_core_treats_them_as_permanent() {
    within(Duration::from_secs(20), || {
        let raw = Raw::start(|_| {
            (
                "HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\n".to_owned(),
                0,
            )
        });
        let tether = tether_blocking::builder(raw.url("r"))
            .epoch(1)
            .config(fast_config())
            .start()
            .expect("starts");
        let terminal = tether
            .statuses()
            .iter()
            .map(Result::unwrap)
            .find(Status::is_terminal);
        assert_eq!(terminal, Some(Status::GivenUp(GiveUpReason::Rejected(302))));
        let report = tether.close(Duration::from_secs(1)).wait();
        assert_eq!(report.counters.session.failures.permanent, 1);
        let heads = raw.heads();
        assert_eq!(heads.len(), 1, "{heads:?}");
        assert!(heads[0].starts_with("PUT /v1/code/sessions/r/worker HTTP/1.1"));
        assert!(heads.iter().all(|h| !h.contains("/elsewhere")), "{heads:?}");
    });
}

#[test]
fn a_response_body_is_never_read_past_the_cap() {
    within(Duration::from_secs(30), || {
        const HUGE: u64 = 256 * 1024 * 1024;
        let raw = Raw::start(|_| ("HTTP/1.1 200 OK\r\n".to_owned(), HUGE));
        let mut config = fast_config();
        config.max_response_body = 1024;
        let tether = tether_blocking::builder(raw.url("cap"))
            .epoch(1)
            .config(config)
            .start()
            .expect("starts");
        // The init PUT's body is over the cap: a bad body, which the core retries.
        let retrying = tether
            .statuses()
            .iter()
            .map(Result::unwrap)
            .find(|s| !matches!(s, Status::Connecting));
        assert!(
            matches!(retrying, Some(Status::Retrying { .. })),
            "{retrying:?}"
        );
        let report = tether.close(Duration::ZERO).wait();
        assert!(report.counters.session.failures.bad_body >= 1, "{report:?}");
        assert_eq!(report.counters.session.failures.transport, 0, "{report:?}");
        // The server could push only what the socket buffers held before the client hung up.
        thread::sleep(Duration::from_millis(200));
        let written = raw.max_written.load(Ordering::Acquire);
        eprintln!("the server wrote at most {written} bytes of a {HUGE}-byte body");
        assert!(written < HUGE / 4, "{written} bytes of the body were taken");
    });
}

#[test]
fn the_protocol_headers_are_sent_and_the_token_only_on_the_wire() {
    within(Duration::from_secs(20), || {
        // Every request is refused for good, so the connect sequence gives up at once.
        let raw = Raw::start(|_| ("HTTP/1.1 418 I'm a teapot\r\n".to_owned(), 0));
        let builder = tether_blocking::builder(raw.url("h"))
            .epoch(1)
            .token("hunter2-secret");
        assert!(!format!("{builder:?}").contains("hunter2"));
        let tether = builder.config(fast_config()).start().expect("starts");
        assert!(!format!("{tether:?}").contains("hunter2"));
        let terminal = tether
            .statuses()
            .iter()
            .map(Result::unwrap)
            .find(Status::is_terminal);
        assert_eq!(terminal, Some(Status::GivenUp(GiveUpReason::Rejected(418))));
        let report = tether.close(Duration::ZERO).wait();
        assert!(!format!("{report:?}").contains("hunter2"));
        let heads = raw.heads();
        let head = heads[0].to_ascii_lowercase();
        assert!(
            head.contains("authorization: bearer hunter2-secret\r\n"),
            "{head}"
        );
        assert!(
            head.contains("content-type: application/json\r\n"),
            "{head}"
        );
        assert!(
            head.contains(&format!(
                "user-agent: {}\r\n",
                USER_AGENT.to_ascii_lowercase()
            )),
            "{head}"
        );
        assert!(USER_AGENT.starts_with("tether/"));
    });
}

#[test]
fn only_http_and_https_urls_start_a_session() {
    for url in [
        "ftp://127.0.0.1/v1/code/sessions/s",
        "file:///v1/code/sessions/s",
    ] {
        match tether_blocking::builder(url).start() {
            Err(BuildError::UnsupportedScheme { .. }) => {}
            other => panic!("{url}: {other:?}"),
        }
    }
    match tether_blocking::builder("127.0.0.1:1/v1/code/sessions/s").start() {
        Err(BuildError::InvalidUrl { .. }) => {}
        other => panic!("{other:?}"),
    }
    // An https URL is accepted (nothing listens there; the session just starts connecting).
    let tether = tether_blocking::builder("https://127.0.0.1:9/v1/code/sessions/s")
        .epoch(1)
        .config(fast_config())
        .start()
        .expect("https is accepted");
    let report = tether.close(Duration::ZERO).wait();
    assert_eq!(report.status, Status::Closed);
}

/// The backstop frees a worker from a server that accepts and then says nothing, whether it is
/// silent before the head or in the middle of the body. (It bounds each phase of the exchange:
/// see `Ureq`.)
#[test]
fn the_backstop_frees_a_worker_from_a_silent_server() {
    use tether_blocking::{Transport, Ureq};
    use tether_core::session::{Endpoint, RequestId};
    use tether_driver::runtime::{HttpRequest, Route};

    for partial in ["", "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"wor"] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/worker", listener.local_addr().unwrap());
        let (done, held) = std::sync::mpsc::channel::<()>();
        let server = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut head = [0u8; 1024];
            let _ = stream.read(&mut head);
            stream.write_all(partial.as_bytes()).unwrap();
            // Silent until the client has given up (bounded: the test's own wait below).
            let _ = held.recv_timeout(Duration::from_secs(30));
        });
        let (answer, answered) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let result = Ureq::new().send(HttpRequest {
                id: RequestId(0),
                route: Route::Worker(Endpoint::GetWorker),
                url,
                body: Vec::new(),
                token: None,
                user_agent: USER_AGENT.into(),
                max_response_body: 1024,
                deadline: tether_core::Instant::from_secs(1),
                backstop: Some(Duration::from_millis(300)),
            });
            let _ = answer.send(result);
        });
        let result = answered
            .recv_timeout(Duration::from_secs(20))
            .expect("the backstop ends the exchange");
        assert!(result.is_err(), "{partial:?}: {result:?}");
        drop(done);
        server.join().unwrap();
    }
}
