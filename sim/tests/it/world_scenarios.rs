//! Named scenarios through the world: the real driver around the session, its caller on the
//! `Tether` handle. Pinned as traces, and replayed.

use std::time::Duration;

use tether_core::session::Status;
use tether_sim::{Callers, FaultMix, RunConfig, RunReport, WorkloadConfig, run_session};

/// A short, sparse workload, so that a whole trace can be read.
fn readable_workload(duration: Duration) -> WorkloadConfig {
    WorkloadConfig {
        duration,
        events_per_second: 0.1,
        burst_probability: 0.1,
        burst_max: 8,
        event_size_min: 50,
        event_size_max: 300,
        internal_events_per_second: 0.02,
        uuid_share: 0.1,
        acks_per_second: 0.02,
        patches_per_second: 0.05,
        flushes_per_second: 1.0 / 60.0,
        flush_timeout: Duration::from_secs(20),
        close_timeout: Duration::from_secs(20),
    }
}

fn config(seed: u64, mix: FaultMix, duration: Duration) -> RunConfig {
    let mut config = RunConfig::new(seed, mix).traced();
    config.workload = readable_workload(duration);
    config
}

fn scenario(config: &RunConfig) -> RunReport {
    let report = run_session(config).unwrap();
    assert!(
        report.passed(),
        "seed {}: {:?}",
        config.seed,
        report.violations
    );
    report
}

fn trace(report: &RunReport) -> String {
    report.trace.as_ref().unwrap().as_str().to_string()
}

#[test]
fn world_calm() {
    let report = scenario(&config(1, FaultMix::calm(), Duration::from_secs(120)));
    assert_eq!(report.status, Status::Closed);
    assert_eq!(report.stats.handed_back, 0);
    insta::assert_snapshot!("world_calm", trace(&report));
}

#[test]
fn world_flaky() {
    let report = scenario(&config(3, FaultMix::flaky(), Duration::from_secs(120)));
    assert!(
        report.stats.faults > 0,
        "a flaky run with no fault proves nothing"
    );
    insta::assert_snapshot!("world_flaky", trace(&report));
}

#[test]
fn world_long_partition() {
    let mix = FaultMix {
        partitions_per_hour: 30.0,
        partition_min: Duration::from_secs(150),
        partition_max: Duration::from_secs(180),
        ..FaultMix::calm()
    };
    let report = scenario(&config(2, mix, Duration::from_secs(300)));
    let text = trace(&report);
    assert!(text.contains("partition until"), "no partition planned");
    assert!(
        text.contains("status stale"),
        "a long partition must make the worker stale"
    );
    assert_eq!(
        report.stats.events,
        report.stats.delivered + report.stats.handed_back
    );
    insta::assert_snapshot!("world_long_partition", text);
}

#[test]
fn world_epoch_takeover() {
    let mix = FaultMix {
        takeover: 1.0,
        ..FaultMix::calm()
    };
    let report = scenario(&config(4, mix, Duration::from_secs(120)));
    assert_eq!(report.status, Status::Superseded);
    insta::assert_snapshot!("world_epoch_takeover", trace(&report));
}

/// The caller drops its handle where the workload closes, in the middle of a partition: the
/// session closes itself, and what it could not deliver is handed back.
#[test]
fn world_dropped_handle() {
    let mix = FaultMix {
        partitions_per_hour: 30.0,
        partition_min: Duration::from_secs(100),
        partition_max: Duration::from_secs(120),
        ..FaultMix::calm()
    };
    let mut config = config(2, mix, Duration::from_secs(120));
    config.callers = Callers {
        drop_handle: true,
        ..Callers::default()
    };
    let report = scenario(&config);
    let text = trace(&report);
    assert!(text.contains("app drops its handle"));
    assert_eq!(report.status, Status::Closed);
    insta::assert_snapshot!("world_dropped_handle", text);
}

/// An observer that panics is dropped and reported once; the session goes on and every
/// invariant holds.
#[test]
fn world_panicking_observer() {
    let mut config = config(3, FaultMix::flaky(), Duration::from_secs(120));
    config.callers = Callers {
        panicking_observer: Some(40),
        ..Callers::default()
    };
    let report = scenario(&config);
    assert!(trace(&report).contains("app sees its observer panicked"));
}

#[test]
fn a_world_seed_replays_to_a_byte_identical_trace() {
    for seed in [7, 8, 9] {
        let mut config = config(seed, FaultMix::hostile(), Duration::from_secs(300));
        config.callers = Callers::for_seed(seed);
        let first = run_session(&config).unwrap();
        let second = run_session(&config).unwrap();
        assert_eq!(trace(&first), trace(&second), "seed {seed}");
        let mut other = config.clone();
        other.seed += 100;
        assert_ne!(trace(&first), trace(&run_session(&other).unwrap()));
    }
}
