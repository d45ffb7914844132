//! `https`: the transport negotiates HTTP/2 through ALPN when the server offers `h2`, falls back
//! to HTTP/1.1 when it does not, and sessions that share it share the HTTP/2 connection once
//! it is up. A TLS front on 127.0.0.1 (a test certificate for `localhost` and 127.0.0.1,
//! signed by a test CA, both in `tls/`) records what each handshake agreed and relays the bytes
//! to the reference server, which speaks HTTP/1.1 and h2c on one port.

use crate::common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use common::fast_config;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;
use tether_server::{SESSIONS_PREFIX, Server, ServerConfig};
use tether_tokio::{HttpTransport, Status};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

const CA: &[u8] = include_bytes!("tls/ca.der");
const LEAF: &[u8] = include_bytes!("tls/leaf.der");
const LEAF_KEY: &[u8] = include_bytes!("tls/leaf.key.der");
const T: Duration = Duration::from_secs(10);
const LIMIT: Duration = Duration::from_secs(60);

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client's TLS: only the test CA is trusted.
fn client_tls() -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(CA)).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// What the TLS front saw: the protocol each handshake agreed on (`None`: no ALPN).
type Handshakes = Arc<Mutex<Vec<Option<Vec<u8>>>>>;

/// A TLS front offering `alpn` and relaying every connection to `backend`; its address and
/// what it saw. Its task ends with the test's runtime.
async fn tls_front(backend: SocketAddr, alpn: &[&[u8]]) -> (SocketAddr, Handshakes) {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(LEAF_KEY.to_vec()));
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(LEAF.to_vec())], key)
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Handshakes::default();
    let log = seen.clone();
    tokio::spawn(async move {
        // Bounded: a test opens a handful of connections.
        for _ in 0..64 {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let agreed = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                log.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(agreed);
                let Ok(mut plain) = TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (addr, seen)
}

/// Three sessions on one shared `https` transport through a front offering `alpn` (the first
/// connected alone first, if `first_alone`): every event lands; returns what the front's
/// handshakes agreed on.
async fn three_sessions(
    alpn: &[&[u8]],
    transport: HttpTransport,
    first_alone: bool,
    prefix: &str,
) -> Vec<Option<Vec<u8>>> {
    let server = Server::start(ServerConfig::default()).unwrap();
    let (front, seen) = tls_front(server.addr(), alpn).await;
    let mut closes = Vec::new();
    for i in 0..3 {
        let id = format!("{prefix}-{i}");
        let url = format!("https://localhost:{}{SESSIONS_PREFIX}{id}", front.port());
        let tether = tether_tokio::builder(url)
            .config(fast_config(&id))
            .epoch(1)
            .seed(i)
            .transport(transport.clone())
            .start()
            .unwrap();
        let alone = first_alone && i == 0;
        if alone {
            // The first session's connection is up before the others start: which protocol a
            // connection speaks is known only after its handshake, so sessions that all start
            // at once may each open one (see the transport's docs).
            tether.send_event(json!({ "k": 0 }), T).await.unwrap();
            tether.flush(T).await.unwrap();
        }
        closes.push(tokio::spawn(async move {
            for k in u64::from(alone)..20 {
                tether.send_event(json!({ "k": k }), T).await.unwrap();
            }
            tether.flush(T).await.unwrap();
            tether.close(T).await
        }));
    }
    for close in closes {
        let report = tokio::time::timeout(LIMIT, close).await.unwrap().unwrap();
        assert_eq!(report.status, Status::Closed);
        assert!(report.all_delivered(), "{report:?}");
    }
    for i in 0..3 {
        let id = format!("{prefix}-{i}");
        assert_eq!(server.inspector().events(&id).len(), 20, "{id}");
    }
    seen.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_negotiates_http2_and_the_sessions_share_one_connection() {
    let transport = HttpTransport::with_tls_config(client_tls());
    let seen = three_sessions(&[b"h2", b"http/1.1"], transport, true, "alpn-h2").await;
    assert_eq!(
        seen,
        [Some(b"h2".to_vec())],
        "one TLS connection, agreed on h2, carries every session"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_falls_back_to_http1_when_the_server_offers_no_h2() {
    let transport = HttpTransport::with_tls_config(client_tls());
    let seen = three_sessions(&[b"http/1.1"], transport, false, "alpn-h1").await;
    assert!(!seen.is_empty());
    assert!(
        seen.iter()
            .all(|agreed| agreed.as_deref() == Some(b"http/1.1")),
        "every connection fell back to HTTP/1.1: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_http2_only_opens_one_connection_for_sessions_that_start_at_once() {
    let transport = HttpTransport::builder()
        .tls_config(client_tls())
        .h2c(true)
        .build();
    let seen = three_sessions(&[b"h2", b"http/1.1"], transport, false, "h2-only").await;
    assert_eq!(
        seen,
        [Some(b"h2".to_vec())],
        "one connection from the start"
    );
}
