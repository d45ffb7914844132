//! Simulated ten-minute faulty sessions per second, on one core.
//!
//! Each iteration is one whole run: a session registers, streams events, patches its state,
//! flushes and closes against the server model through the `flaky` fault plan, and every
//! invariant is checked at the end. Throughput is reported in runs per second. Every run goes
//! through the simulator's world, on the real driver with its caller on the `Tether` handle
//! (the core-only runner the unprefixed names measured was retired on 2026-12-03; these carry a
//! `world_` prefix so that criterion's history of those names is not mixed with the world's).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tether_sim::{FaultMix, RunConfig, WorkloadConfig, run_session};

fn sessions(c: &mut Criterion) {
    let mut group = c.benchmark_group("sim");
    group.throughput(Throughput::Elements(1));
    for (name, mix, workload) in [
        (
            "world_ten_minutes_flaky_sweep_workload",
            FaultMix::flaky(),
            WorkloadConfig::sweep(),
        ),
        (
            "world_ten_minutes_hostile_sweep_workload",
            FaultMix::hostile(),
            WorkloadConfig::sweep(),
        ),
        (
            "world_ten_minutes_flaky_default_workload",
            FaultMix::flaky(),
            WorkloadConfig::default(),
        ),
    ] {
        let mut seed = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                seed += 1;
                let mut config = RunConfig::new(seed, mix.clone());
                config.workload = workload.clone();
                let report = run_session(&config).expect("valid configuration");
                assert!(report.passed(), "seed {seed}: {:?}", report.violations);
                black_box(report.stats)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, sessions);
criterion_main!(benches);
