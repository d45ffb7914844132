//! Idle cost: an idle session wakes only for its heartbeats and their answers. Counted, not
//! timed: over ~10.5 s with a 5 s heartbeat the driver may wake a few times per beat, and
//! not otherwise.

use crate::common;

use std::time::{Duration, Instant};

use common::{bounded, wait_status};
use tether_core::heartbeat;
use tether_server::{Server, ServerConfig};
use tether_smol::{SessionConfig, Status};

/// Wake-ups one heartbeat may cost: the timer, then the answer becoming readable (and one
/// spare for a write or read the kernel splits).
const WAKEUPS_PER_BEAT: u64 = 3;

#[test]
fn an_idle_session_wakes_only_for_its_heartbeats() {
    let server = Server::start(ServerConfig::default()).unwrap();
    let url = server.session_url("idle");
    let mut config = SessionConfig::new("idle");
    config.heartbeat = heartbeat::Config {
        interval: Duration::from_secs(5),
        ..heartbeat::Config::default()
    };
    bounded(Duration::from_secs(30), async {
        let tether = tether_smol::builder(&url)
            .config(config)
            .epoch(1)
            .start()
            .unwrap();
        wait_status(&tether, Duration::from_secs(5), |s| *s == Status::Connected).await;
        async_io::Timer::after(Duration::from_millis(500)).await;

        let inspector = server.inspector();
        let beats_before = inspector.heartbeats("idle").len();
        let wakeups_before = tether.stats().wakeups;
        let window = Instant::now();
        // Three short real intervals, reading the counter after each.
        let mut per_interval = Vec::new();
        for _ in 0..3 {
            let before = tether.stats().wakeups;
            async_io::Timer::after(Duration::from_millis(3_500)).await;
            per_interval.push(tether.stats().wakeups - before);
        }
        let elapsed = window.elapsed();
        let beats = (inspector.heartbeats("idle").len() - beats_before) as u64;
        let wakeups = tether.stats().wakeups - wakeups_before;
        eprintln!("idle: {beats} beats, {wakeups} wake-ups in {elapsed:?} {per_interval:?}");
        assert!(
            (2..=3).contains(&beats),
            "{beats} heartbeats in {elapsed:?}"
        );
        assert!(wakeups >= beats, "the driver cannot beat without waking");
        assert!(
            wakeups <= WAKEUPS_PER_BEAT * beats,
            "{wakeups} wake-ups for {beats} heartbeats: the idle driver wakes for other things"
        );
        // No interval without a beat had a wake-up to spare.
        assert!(per_interval.iter().all(|w| *w <= 2 * WAKEUPS_PER_BEAT));
        let report = tether.close(Duration::from_secs(2)).await;
        assert_eq!(report.status, Status::Closed);
    });
    server.shutdown().unwrap();
}
