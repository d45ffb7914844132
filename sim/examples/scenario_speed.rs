//! Runs per second of CPU time of the crash and fleet scenarios of the world, on one thread:
//! the workloads of their tests (`sim/tests/it/outbox_crash.rs`, `sim/tests/it/fleet.rs`).
//! Before they moved into the world (commit 54c5e14) the same command measured the old
//! core-only runners on the same workloads.
//!
//! `cargo run --release -p tether-sim --example scenario_speed -- 2000 3` (crash seeds per
//! round, rounds); prints each round and the best of each.

use std::time::Duration;

use tether_core::budget::RetryBudgetConfig;
use tether_sim::{CrashConfig, FleetConfig, run_crashes, run_fleet};

/// This process's CPU time (user + system), from `/proc/self/stat`: a measure the other
/// builds on the machine do not inflate the way they inflate wall time.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line; 12 and 13 after the `)`. 100 Hz ticks.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

fn crash(n: u64) {
    for seed in 0..n {
        let report = run_crashes(&CrashConfig::new(seed, 120)).expect("valid");
        assert!(report.passed(), "seed {seed}: {:?}", report.violations);
    }
}

fn fleet(sessions: usize, budget: Option<RetryBudgetConfig>) {
    let mut config = FleetConfig::new(7, sessions);
    config.budget = budget;
    let report = run_fleet(&config).expect("valid");
    assert!(report.passed(), "{:?}", report.violations);
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<u64>().unwrap_or(0));
    let n = args.next().filter(|&n| n > 0).unwrap_or(2000);
    let rounds = args.next().filter(|&n| n > 0).unwrap_or(3);
    let aws = Some(RetryBudgetConfig::aws_standard());
    let runs: [(&str, u64, &dyn Fn()); 3] = [
        ("crash, 120 events, 5 crashes", n, &|| crash(n)),
        ("fleet of 1 000, shared budget", 4, &|| {
            (0..4).for_each(|_| fleet(1_000, aws));
        }),
        ("fleet of 1 000, no budget", 4, &|| {
            (0..4).for_each(|_| fleet(1_000, None));
        }),
    ];
    let mut best = [0f64; 3];
    for round in 0..rounds {
        for (i, (name, count, run)) in runs.iter().enumerate() {
            let start = cpu_time();
            run();
            let s = (cpu_time() - start).as_secs_f64().max(1e-3);
            let rate = *count as f64 / s;
            best[i] = best[i].max(rate);
            println!("round {round} {name}: {count} runs in {s:.2} s of CPU = {rate:.2} runs/s");
        }
    }
    for (i, (name, _, _)) in runs.iter().enumerate() {
        println!("best: {name}: {:.2} runs/s", best[i]);
    }
}
