//! The backoff controller: the cost of one failure decision and one full give-up episode.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tether_core::backoff::{BackoffController, BackoffPolicy, ControllerConfig, Failure};
use tether_core::{Instant, Rng};

fn controller(c: &mut Criterion) {
    let mut group = c.benchmark_group("backoff");
    group.bench_function("policy_delay_uploader", |b| {
        let policy = BackoffPolicy::uploader();
        let mut rng = Rng::new(1);
        let mut attempt = 0u32;
        b.iter(|| {
            attempt = attempt.wrapping_add(1) % 40;
            black_box(policy.delay(black_box(attempt), core::time::Duration::ZERO, &mut rng))
        })
    });
    group.bench_function("controller_episode_to_give_up", |b| {
        b.iter(|| {
            let mut ctl = BackoffController::new(ControllerConfig::default(), Rng::new(7));
            let mut now = Instant::ZERO;
            ctl.start(now);
            loop {
                match ctl.record_failure(now, black_box(Failure::Transient)) {
                    tether_core::backoff::Decision::Retry { at, .. } => now = at,
                    tether_core::backoff::Decision::GiveUp(r) => break black_box(r),
                }
            }
        })
    });
    group.finish();
}

criterion_group!(benches, controller);
criterion_main!(benches);
