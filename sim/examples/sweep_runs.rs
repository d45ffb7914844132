//! Runs the seed sweep's workload for a number of seeds through the world (the worker-session
//! scenario, its callers misbehaving by seed as in the sweep) and prints a digest of the runs: a
//! harness for profiling the simulator (`valgrind --tool=callgrind`) and for checking that a
//! change leaves every run as it was.
//!
//! ```sh
//! cargo run --release -p tether-sim --example sweep_runs -- 100            # flaky, untraced
//! cargo run --release -p tether-sim --example sweep_runs -- 300 all trace  # every mix, traces
//! ```
//!
//! With `trace`, the digest covers every run's whole trace, so equal digests before and after a
//! change mean every run is unchanged.

use tether_sim::{Callers, FaultMix, RunConfig, WorkloadConfig, run_session};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs: u64 = args.first().and_then(|n| n.parse().ok()).unwrap_or(100);
    let all = args.iter().any(|a| a == "all");
    let traced = args.iter().any(|a| a == "trace");
    let mut digest = 0u64;
    for seed in 1..=runs {
        let mix = match (all, seed % 3) {
            (true, 0) => FaultMix::calm(),
            (true, 2) => FaultMix::hostile(),
            _ => FaultMix::flaky(),
        };
        let mut config = RunConfig::new(seed, mix);
        config.workload = WorkloadConfig::sweep();
        config.trace = traced;
        config.callers = Callers::for_seed(seed);
        let report = run_session(&config).expect("valid configuration");
        assert!(report.passed(), "seed {seed}: {:?}", report.violations);
        let s = report.stats;
        let trace = report.trace.map_or(0, |t| t.digest());
        for n in [
            s.events,
            s.delivered,
            s.handed_back,
            s.duplicates,
            s.requests,
            s.faults,
            s.patches,
            s.steps,
            s.end.as_micros(),
            trace,
        ] {
            digest = digest.rotate_left(7) ^ n;
        }
    }
    println!("{runs} runs, digest {digest:016x}");
}
