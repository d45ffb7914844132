//! Runs per second of CPU time of the world's worker-session scenario, on one thread: the seed
//! sweep's workload, calm, flaky and hostile in turn, the callers misbehaving by seed as in the
//! sweep. (Until 2026-12-03 it ran the core-only runner too, interleaved, as the baseline; that
//! runner is retired.)
//!
//! `cargo run --release -p tether-sim --example world_speed -- 600 3` (seeds per round,
//! rounds); prints each round and the best.

use std::time::Duration;

use tether_sim::{Callers, FaultMix, RunConfig, WorkloadConfig, run_session};

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

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<u64>().unwrap_or(0));
    let n = args.next().filter(|&n| n > 0).unwrap_or(600);
    let rounds = args.next().filter(|&n| n > 0).unwrap_or(3);
    let mut best = 0f64;
    for round in 0..rounds {
        let start = cpu_time();
        for seed in 0..n {
            let mix = [FaultMix::calm(), FaultMix::flaky(), FaultMix::hostile()]
                [(seed % 3) as usize]
                .clone();
            let mut config = RunConfig::new(seed, mix);
            config.workload = WorkloadConfig::sweep();
            config.callers = Callers::for_seed(seed);
            let report = run_session(&config);
            assert!(report.is_ok_and(|r| r.passed()), "seed {seed}");
        }
        let s = (cpu_time() - start).as_secs_f64().max(1e-3);
        let rate = n as f64 / s;
        best = best.max(rate);
        println!("round {round}: {n} runs in {s:.2} s of CPU = {rate:.0} runs/s");
    }
    println!("best: {best:.0} runs/s");
}
