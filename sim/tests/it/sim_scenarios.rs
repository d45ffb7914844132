//! Named simulator scenarios, pinned as traces, and replay determinism.

use std::time::Duration;

use tether_core::session::Status;
use tether_sim::{FaultMix, RunConfig, RunReport, WorkloadConfig, run};

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

fn scenario(seed: u64, mix: FaultMix, duration: Duration) -> RunReport {
    let mut config = RunConfig::new(seed, mix).traced();
    config.workload = readable_workload(duration);
    let report = run(&config).unwrap();
    assert!(report.passed(), "seed {seed}: {:?}", report.violations);
    report
}

fn trace(report: &RunReport) -> String {
    report.trace.as_ref().unwrap().as_str().to_string()
}

#[test]
fn calm() {
    let report = scenario(1, FaultMix::calm(), Duration::from_secs(120));
    assert_eq!(report.status, Status::Closed);
    assert_eq!(report.stats.handed_back, 0);
    insta::assert_snapshot!("calm", trace(&report));
}

#[test]
fn flaky() {
    let report = scenario(3, FaultMix::flaky(), Duration::from_secs(120));
    assert!(
        report.stats.faults > 0,
        "a flaky run with no fault proves nothing"
    );
    insta::assert_snapshot!("flaky", trace(&report));
}

#[test]
fn long_partition() {
    let mix = FaultMix {
        partitions_per_hour: 30.0,
        partition_min: Duration::from_secs(150),
        partition_max: Duration::from_secs(180),
        ..FaultMix::calm()
    };
    let report = scenario(2, mix, Duration::from_secs(300));
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
    insta::assert_snapshot!("long_partition", text);
}

#[test]
fn epoch_takeover() {
    let mix = FaultMix {
        takeover: 1.0,
        ..FaultMix::calm()
    };
    let report = scenario(4, mix, Duration::from_secs(120));
    assert_eq!(report.status, Status::Superseded);
    insta::assert_snapshot!("epoch_takeover", trace(&report));
}

#[test]
fn a_seed_replays_to_a_byte_identical_trace() {
    for seed in [7, 8, 9] {
        let mut config = RunConfig::new(seed, FaultMix::hostile()).traced();
        config.workload = readable_workload(Duration::from_secs(300));
        let first = run(&config).unwrap();
        let second = run(&config).unwrap();
        assert_eq!(trace(&first), trace(&second), "seed {seed}");
        let mut other = config.clone();
        other.seed += 100;
        assert_ne!(trace(&first), trace(&run(&other).unwrap()));
    }
}
