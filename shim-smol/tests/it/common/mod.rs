//! Helpers shared by the integration tests: a raw HTTP listener and bounded waits.
#![allow(dead_code, clippy::disallowed_methods)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use tether_smol::{Status, Tether};

/// A listener on 127.0.0.1 that answers every request with what `respond` writes, on a
/// thread per connection, for at most `max_connections` connections.
pub struct RawServer {
    pub addr: SocketAddr,
    pub requests: Arc<AtomicU64>,
    pub written: Arc<AtomicU64>,
    handle: Option<thread::JoinHandle<()>>,
}

impl RawServer {
    pub fn start(
        max_connections: usize,
        respond: impl Fn(&mut TcpStream, &[u8], &AtomicU64) + Send + Sync + 'static,
    ) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicU64::new(0));
        let written = Arc::new(AtomicU64::new(0));
        let respond = Arc::new(respond);
        let (req, wr) = (Arc::clone(&requests), Arc::clone(&written));
        let handle = thread::spawn(move || {
            let mut workers = Vec::new();
            for stream in listener.incoming().take(max_connections) {
                let Ok(mut stream) = stream else { break };
                let (respond, req, wr) = (Arc::clone(&respond), Arc::clone(&req), Arc::clone(&wr));
                workers.push(thread::spawn(move || {
                    stream
                        .set_read_timeout(Some(Duration::from_secs(10)))
                        .unwrap();
                    while let Some(head) = read_request(&mut stream) {
                        req.fetch_add(1, Ordering::SeqCst);
                        respond(&mut stream, &head, &wr);
                    }
                }));
            }
            for w in workers {
                let _ = w.join();
            }
        });
        RawServer {
            addr,
            requests,
            written,
            handle: Some(handle),
        }
    }

    pub fn url(&self, session: &str) -> String {
        format!("http://{}/v1/code/sessions/{session}", self.addr)
    }

    /// Stops accepting (by connecting once more if needed) and joins the threads.
    pub fn join(mut self, remaining_connections: usize) {
        for _ in 0..remaining_connections {
            let _ = TcpStream::connect(self.addr);
        }
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
    }
}

/// Reads one request head and its `Content-Length` body; `None` at EOF or error.
pub fn read_request(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    let mut byte = [0u8; 1];
    while !data.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => data.push(byte[0]),
            _ => return None,
        }
        if data.len() > 64 * 1024 {
            return None;
        }
    }
    let head = String::from_utf8_lossy(&data).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    data.extend_from_slice(&body);
    Some(data)
}

/// Writes `bytes`, counting them.
pub fn write_counted(stream: &mut TcpStream, bytes: &[u8], written: &AtomicU64) -> bool {
    match stream.write_all(bytes) {
        Ok(()) => {
            written.fetch_add(bytes.len() as u64, Ordering::SeqCst);
            true
        }
        Err(_) => false,
    }
}

/// Waits (bounded) for a status matching `pred` on the status stream.
pub async fn wait_status(
    tether: &Tether,
    within: Duration,
    pred: impl Fn(&Status) -> bool,
) -> Status {
    let mut statuses = tether.statuses();
    let deadline = Instant::now() + within;
    loop {
        if pred(&tether.status()) {
            return tether.status();
        }
        let next =
            futures_lite::future::or(async { statuses.next().await.map(Result::unwrap) }, async {
                async_io::Timer::at(deadline).await;
                None
            })
            .await;
        match next {
            Some(s) if pred(&s) => return s,
            Some(_) => {}
            None => panic!(
                "no matching status within {within:?}; last {}",
                tether.status()
            ),
        }
    }
}

/// Runs `f` and panics if it takes longer than `limit`.
pub fn bounded<T>(limit: Duration, f: impl std::future::Future<Output = T>) -> T {
    smol::block_on(futures_lite::future::or(async { Some(f.await) }, async {
        async_io::Timer::after(limit).await;
        None
    }))
    .unwrap_or_else(|| panic!("test exceeded its bound of {limit:?}"))
}

/// A session configuration that keeps end-to-end tests fast: short request deadlines and a
/// quick retry curve (the rules are the core's; only the numbers change).
pub fn fast_config(session_id: &str) -> tether_smol::SessionConfig {
    use tether_core::backoff::{BackoffPolicy, Jitter};
    let quick = BackoffPolicy {
        base: Duration::from_millis(20),
        cap: Duration::from_millis(200),
        jitter: Jitter::Additive {
            range: Duration::from_millis(20),
            above_cap: true,
        },
        floor: None,
        max_hint: Duration::from_millis(100),
    };
    let mut config = tether_smol::SessionConfig::new(session_id);
    config.request_timeout = Duration::from_millis(800);
    config.heartbeat_timeout = Duration::from_millis(800);
    config.events.backoff = quick;
    config.internal_events.backoff = quick;
    config.delivery.backoff = quick;
    config.state.backoff = quick;
    config.connect.policy = quick;
    config.connect.max_attempts = Some(30);
    config
}
