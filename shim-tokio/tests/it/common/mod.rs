//! Helpers shared by the integration tests: bounded waits and a fast configuration.
#![allow(dead_code, clippy::disallowed_methods)]

use std::future::Future;
use std::time::Duration;

use tether_tokio::{SessionConfig, Status, Tether};

/// Awaits `f`, failing the test if it takes longer than `limit`.
pub async fn bounded<T>(limit: Duration, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, f)
        .await
        .unwrap_or_else(|_| panic!("test exceeded its bound of {limit:?}"))
}

/// Waits (bounded) for a status matching `pred` on the status stream.
pub async fn wait_status(
    tether: &Tether,
    within: Duration,
    pred: impl Fn(&Status) -> bool,
) -> Status {
    let mut statuses = tether.statuses();
    bounded(within, async {
        loop {
            match statuses.next().await.map(Result::unwrap) {
                Some(s) if pred(&s) => return s,
                Some(_) => {}
                None => panic!("the status stream ended; last {}", tether.status()),
            }
        }
    })
    .await
}

/// A session configuration that keeps end-to-end tests fast: short request deadlines and a
/// quick retry curve (the rules are the core's; only the numbers change).
pub fn fast_config(session_id: &str) -> SessionConfig {
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
    let mut config = SessionConfig::new(session_id);
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
