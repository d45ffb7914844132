//! The simulator: a sweep of seeds across fault mixes through the world (the real driver, its
//! callers misbehaving by seed), and replay.

use tether_sim::{Callers, FaultMix, RunConfig, RunReport, WorkloadConfig, run_session};

fn mixes() -> [(&'static str, FaultMix); 3] {
    [
        ("calm", FaultMix::calm()),
        ("flaky", FaultMix::flaky()),
        ("hostile", FaultMix::hostile()),
    ]
}

fn config(seed: u64, mix: &FaultMix) -> RunConfig {
    let mut config = RunConfig::new(seed, mix.clone());
    config.workload = WorkloadConfig::sweep();
    config.callers = Callers::for_seed(seed);
    config
}

fn run_seed(seed: u64, mix: &FaultMix) -> RunReport {
    run_session(&config(seed, mix)).expect("valid configuration")
}

#[test]
fn sweep_seeds_across_fault_mixes() {
    let seeds: u64 = std::env::var("TETHER_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_100);
    let threads = 2u64;
    let failures: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut failures = Vec::new();
                    for seed in (t..seeds).step_by(threads as usize) {
                        let (name, mix) = &mixes()[(seed % 3) as usize];
                        let report = run_seed(seed, mix);
                        if !report.passed() {
                            failures.push(format!(
                                "seed {seed} ({name}): {}",
                                report
                                    .violations
                                    .iter()
                                    .map(ToString::to_string)
                                    .collect::<Vec<_>>()
                                    .join("; ")
                            ));
                        }
                    }
                    failures
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {seeds} seeds failed (replay one with `tether sim --trace SEED`):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// `TETHER_SIM_TRACE=SEED cargo test -p tether-sim --test it sim_sweep::print_trace -- --nocapture`
#[test]
fn print_trace() {
    let Some(seed) = std::env::var("TETHER_SIM_TRACE")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    else {
        return;
    };
    let (_, mix) = &mixes()[(seed % 3) as usize];
    let report = run_session(&config(seed, mix).traced()).unwrap();
    println!("{}", report.trace.unwrap().as_str());
    println!("{:?}", report.violations);
}
