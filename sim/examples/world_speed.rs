//! Runs per second of the core-only runner and of the world's worker-session scenario.
use tether_sim::{FaultMix, RunConfig, WorkloadConfig, run, run_session};
fn main() {
    let n: u64 = std::env::args().nth(1).map_or(1000, |a| a.parse().unwrap());
    for (name, world) in [("core runner", false), ("world", true)] {
        #[allow(clippy::disallowed_methods)]
        let start = std::time::Instant::now();
        for seed in 0..n {
            let mix = [FaultMix::calm(), FaultMix::flaky(), FaultMix::hostile()]
                [(seed % 3) as usize]
                .clone();
            let mut config = RunConfig::new(seed, mix);
            config.workload = WorkloadConfig::sweep();
            let r = if world {
                run_session(&config)
            } else {
                run(&config)
            }
            .unwrap();
            assert!(r.passed());
        }
        let s = start.elapsed().as_secs_f64();
        println!("{name}: {n} runs in {s:.2}s = {:.0} runs/s", n as f64 / s);
    }
}
