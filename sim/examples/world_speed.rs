//! Runs per second of CPU time of the world's scenarios, on one thread, in interleaved rounds:
//! - the worker session, the seed sweep's workload, calm, flaky and hostile in turn, the
//!   callers misbehaving by seed as in the sweep;
//! - the crash scenario and two fleets of 1 000, the workloads of their tests
//!   (`sim/tests/it/outbox_crash.rs`, `sim/tests/it/fleet.rs`).
//!
//! `cargo run --release -p tether-sim --example world_speed -- 600 3 2000` (worker seeds per
//! round, rounds, crash seeds per round); prints each round and the best of each. (Until
//! 2026-12-03 the worker rows were measured against the core-only runner, and the crash and
//! fleet rows by a `scenario_speed` example against the old runners; both baselines are retired.)

use std::time::Duration;

use tether_core::budget::RetryBudgetConfig;
use tether_sim::{
    Callers, CrashConfig, FaultMix, FleetConfig, RunConfig, WorkloadConfig, run_crashes, run_fleet,
    run_session,
};

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

fn workers(n: u64) {
    for seed in 0..n {
        let mix =
            [FaultMix::calm(), FaultMix::flaky(), FaultMix::hostile()][(seed % 3) as usize].clone();
        let mut config = RunConfig::new(seed, mix);
        config.workload = WorkloadConfig::sweep();
        config.callers = Callers::for_seed(seed);
        let report = run_session(&config);
        assert!(report.is_ok_and(|r| r.passed()), "seed {seed}");
    }
}

fn crashes(n: u64) {
    for seed in 0..n {
        let report = run_crashes(&CrashConfig::new(seed, 120)).expect("valid");
        assert!(report.passed(), "seed {seed}: {:?}", report.violations);
    }
}

fn fleets(runs: u64, budget: Option<RetryBudgetConfig>) {
    for _ in 0..runs {
        let mut config = FleetConfig::new(7, 1_000);
        config.budget = budget;
        let report = run_fleet(&config).expect("valid");
        assert!(report.passed(), "{:?}", report.violations);
    }
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<u64>().unwrap_or(0));
    let n = args.next().filter(|&n| n > 0).unwrap_or(600);
    let rounds = args.next().filter(|&n| n > 0).unwrap_or(3);
    let crash_n = args.next().filter(|&n| n > 0).unwrap_or(2000);
    let aws = Some(RetryBudgetConfig::aws_standard());
    let runs: [(&str, u64, &dyn Fn()); 4] = [
        ("worker session, sweep workload", n, &|| workers(n)),
        ("crash, 120 events, 5 crashes", crash_n, &|| {
            crashes(crash_n)
        }),
        ("fleet of 1 000, shared budget", 4, &|| fleets(4, aws)),
        ("fleet of 1 000, no budget", 4, &|| fleets(4, None)),
    ];
    let mut best = [0f64; 4];
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
