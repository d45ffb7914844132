//! Thread sync in the simulator's world: seed 002's three harness tests as pinned scenarios, and
//! a sweep of seeded random runs through faults, partitions and cut-offs, every client a real
//! driver with thread sync on its handle.

use tether_sim::{ThreadFaults, ThreadRunConfig, ThreadScenario, run_threads};

fn trace(report: &tether_sim::ThreadReport) -> &str {
    report.trace.as_ref().map_or("", |t| t.as_str())
}

#[test]
fn concurrent_edits() {
    let report = run_threads(&ThreadRunConfig::scenario(
        1,
        ThreadScenario::ConcurrentEdits,
    ));
    assert!(report.passed(), "{}", report.summary());
    let thread = &report.threads[0];
    assert_eq!(thread.messages.len(), 2);
    insta::assert_snapshot!(format!("{}\n{}", report.summary(), trace(&report)));
}

#[test]
fn network_partition() {
    let report = run_threads(&ThreadRunConfig::scenario(1, ThreadScenario::Partition));
    assert!(report.passed(), "{}", report.summary());
    // Offline edits queue as one pending thread, then land: three messages on the server.
    assert_eq!(report.pending_before_heal.get(&0), Some(&1));
    assert_eq!(report.threads[0].messages.len(), 3);
    assert!(report.stats.pings > 0 && report.stats.offline == 1);
    insta::assert_snapshot!(format!("{}\n{}", report.summary(), trace(&report)));
}

#[test]
fn sync_throughput() {
    let mut config = ThreadRunConfig::scenario(1, ThreadScenario::Throughput);
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
    let mut totals = [0u64; 6];
    for seed in 0..1_000u64 {
        // Every route's faults as the reference server injects them, garbage included.
        let faults = ThreadFaults::ALL[(seed % 3) as usize];
        let report = run_threads(&ThreadRunConfig::random(seed, faults));
        let s = &report.stats;
        for (total, n) in totals.iter_mut().zip([
            s.messages,
            s.conflicts,
            s.faults,
            s.offline,
            s.deletes,
            s.invalid,
        ]) {
            *total += n;
        }
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
    // The sweep exercises what it claims to: conflicts, faults, offline clients, deletes and
    // poisoned threads.
    let [_, conflicts, faults, offline, deletes, invalid] = totals;
    assert!(
        conflicts > 100 && faults > 1_000 && offline > 100 && deletes > 100 && invalid > 100,
        "{totals:?}"
    );
}

#[test]
fn a_seed_replays_exactly() {
    let config = ThreadRunConfig {
        trace: true,
        ..ThreadRunConfig::random(42, ThreadFaults::Heavy)
    };
    let a = run_threads(&config);
    let b = run_threads(&config);
    assert!(trace(&a).lines().count() > 100);
    assert_eq!(trace(&a), trace(&b));
    assert_eq!(a, b);
    assert!(a.passed(), "{}", a.summary());
}

/// Seeds where an edit's answer was lost and its author then deleted the message: the merge
/// took the server's copy (the author's own edit) for another client's and brought the
/// message back. Pinned since the replica remembers its unconfirmed pushes.
#[test]
fn an_own_edit_whose_answer_was_lost_does_not_undo_its_authors_delete() {
    for seed in [3912, 3984] {
        let report = run_threads(&ThreadRunConfig::random(seed, ThreadFaults::Heavy));
        assert!(report.passed(), "seed {seed}: {:?}", report.violations);
    }
}
