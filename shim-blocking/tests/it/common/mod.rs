//! Shared helpers of the end-to-end tests: a fast configuration and a time bound.
#![allow(dead_code, reason = "each test file uses a part")]

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use tether_core::backoff::{BackoffPolicy, ControllerConfig, Jitter};
use tether_core::session::SessionConfig;

/// Short deadlines and retry curves so faulted runs finish in seconds:
/// request timeout 1 s, heartbeat timeout 1 s, heartbeat every 5 s (the core's minimum),
/// uploader and connect backoff 20 ms doubling to 250 ms (+ up to 20 ms jitter), server hints
/// (`Retry-After`) honoured up to 250 ms, and up to 30 connect retries.
pub fn fast_config() -> SessionConfig {
    let quick = BackoffPolicy {
        base: Duration::from_millis(20),
        cap: Duration::from_millis(250),
        jitter: Jitter::Additive {
            range: Duration::from_millis(20),
            above_cap: true,
        },
        floor: None,
        max_hint: Duration::from_millis(250),
    };
    let mut config = SessionConfig::new("");
    config.events.backoff = quick;
    config.internal_events.backoff = quick;
    config.delivery.backoff = quick;
    config.state.backoff = quick;
    config.connect = ControllerConfig {
        policy: quick,
        max_attempts: Some(30),
        total_deadline: None,
    };
    config.request_timeout = Duration::from_secs(1);
    config.heartbeat_timeout = Duration::from_secs(1);
    config.heartbeat.interval = Duration::from_secs(5);
    config
}

/// Runs `f` on its own thread and fails the test if it takes longer than `limit`, so a hang
/// fails instead of blocking the suite.
pub fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let worker = thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(value) => {
            let _ = worker.join();
            value
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the worker sends before it ends"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the test took longer than {limit:?}"),
    }
}
