//! The token never reaches a log line, even with every crate logging at trace level (ureq-proto
//! logs the request bytes it writes, as hex rows, at trace level).
//!
//! Its own test binary, not a module of `it`: it installs a process-wide logger at trace level,
//! which would capture (and slow) every other test of the binary.
#![allow(clippy::disallowed_methods)]

#[path = "it/common/mod.rs"]
mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::bounded;
use serde_json::json;
use tether_server::{Server, ServerConfig};
use tether_smol::{SessionConfig, Status};

const SECRET: &str = "tok-LOGS-0123456789abcdef";

struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{} {}", record.target(), record.args());
        self.0.lock().unwrap().push(line);
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

/// ureq-proto's hex rows (`6865 6c6c ... hello...`) turned back into bytes.
fn bytes_of_hex_rows(lines: &[String]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for line in lines {
        let Some(rest) = line.strip_prefix("ureq_proto::util ") else {
            continue;
        };
        let hex: String = rest
            .split(' ')
            .take(8)
            .collect::<String>()
            .replace("--", "");
        for pair in hex.as_bytes().chunks(2) {
            if let Ok(b) = u8::from_str_radix(std::str::from_utf8(pair).unwrap_or("zz"), 16) {
                bytes.push(b);
            }
        }
    }
    bytes
}

#[test]
fn the_token_is_never_logged() {
    log::set_logger(&CAPTURE).unwrap();
    log::set_max_level(log::LevelFilter::Trace);
    let server = Server::start(ServerConfig::default()).unwrap();
    let url = server.session_url("logs");
    bounded(Duration::from_secs(20), async {
        let tether = tether_smol::builder(&url)
            .token(SECRET)
            .config(SessionConfig::new("logs"))
            .start()
            .unwrap();
        tether
            .send_event(json!({"n": 1}), Duration::from_secs(1))
            .await
            .unwrap();
        tether.flush(Duration::from_secs(5)).await.unwrap();
        let report = tether.close(Duration::from_secs(5)).await;
        assert_eq!(report.status, Status::Closed);
    });
    server.shutdown().unwrap();

    let lines = CAPTURE.0.lock().unwrap().clone();
    // The capture works: ureq-proto logged the request bytes it wrote.
    let written = bytes_of_hex_rows(&lines);
    let written = String::from_utf8_lossy(&written);
    assert!(
        written.contains("POST /v1/code/sessions/logs/worker/events"),
        "{written}"
    );
    for line in &lines {
        assert!(!line.contains(SECRET), "token in a log line: {line}");
    }
    assert!(
        !written.contains(SECRET),
        "token in the logged request bytes"
    );
    assert!(!written.to_ascii_lowercase().contains("authorization"));
}
