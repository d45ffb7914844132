//! Thread sync in the simulator: seed 002's three harness tests as pinned scenarios, and a
//! sweep of seeded random runs through faults and partitions.

use tether_sim::threads::{Scenario, ThreadFaults, ThreadRunConfig, run_threads};

#[test]
fn concurrent_edits() {
    let report = run_threads(&ThreadRunConfig::scenario(1, Scenario::ConcurrentEdits));
    assert!(report.passed(), "{}", report.summary());
    let thread = &report.threads[0];
    assert_eq!(thread.messages.len(), 2);
    insta::assert_snapshot!(format!("{}\n{}", report.summary(), report.trace.join("\n")));
}

#[test]
fn network_partition() {
    let report = run_threads(&ThreadRunConfig::scenario(1, Scenario::Partition));
    assert!(report.passed(), "{}", report.summary());
    // Offline edits queue as one pending thread, then land: three messages on the server.
    assert_eq!(report.pending_before_heal.get(&0), Some(&1));
    assert_eq!(report.threads[0].messages.len(), 3);
    assert!(report.stats.pings > 0 && report.stats.offline == 1);
    insta::assert_snapshot!(format!("{}\n{}", report.summary(), report.trace.join("\n")));
}

#[test]
fn sync_throughput() {
    let mut config = ThreadRunConfig::scenario(1, Scenario::Throughput);
    config.trace = false;
    let report = run_threads(&config);
    assert!(report.passed(), "{}", report.summary());
    assert_eq!(report.threads[0].messages.len(), 1_000);
    let took = report.stats.all_synced_at.expect("synced").as_micros() as f64 / 1e6;
    let throughput = 1_000.0 / took;
    assert!(throughput > 100.0, "{throughput:.0} messages/s");
    insta::assert_snapshot!(format!(
        "{}throughput {throughput:.0} messages/s",
        report.summary()
    ));
}

#[test]
fn a_thousand_seeds_converge_through_faults_and_partitions() {
    let mut failed = Vec::new();
    let mut totals = (0, 0, 0, 0);
    for seed in 0..1_000u64 {
        // The thread routes' faults as the reference server injects them, garbage included.
        let faults = [
            ThreadFaults::none(),
            ThreadFaults::flaky(),
            ThreadFaults::heavy(),
        ][(seed % 3) as usize];
        let report = run_threads(&ThreadRunConfig::random(seed, faults));
        totals.0 += report.stats.messages;
        totals.1 += report.stats.conflicts;
        totals.2 += report.stats.faults;
        totals.3 += report.stats.offline;
        if !report.passed() {
            failed.push((seed, report.summary()));
        }
    }
    assert!(
        failed.is_empty(),
        "{} seeds failed; first: {:?}",
        failed.len(),
        failed.first()
    );
    // The sweep exercises what it claims to.
    assert!(
        totals.1 > 100 && totals.2 > 1_000 && totals.3 > 100,
        "{totals:?}"
    );
}

#[test]
fn a_seed_replays_exactly() {
    let config = ThreadRunConfig {
        trace: true,
        ..ThreadRunConfig::random(42, ThreadFaults::flaky())
    };
    let a = run_threads(&config);
    let b = run_threads(&config);
    assert_eq!(a, b);
    assert!(a.passed(), "{}", a.summary());
}
