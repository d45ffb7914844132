//! The crash scenario's workload: what the caller does, and when the process is killed.

use std::time::Duration;

use tether_core::{Instant, Rng};

use super::{CrashConfig, STREAMS, Step};

/// The caller's steps in time order: events and patches in bursts over the workload, the
/// crashes, and the close at the end.
pub(super) fn plan(config: &CrashConfig) -> Vec<(Instant, Step)> {
    let mut rng = Rng::new(config.seed ^ 1);
    let end = Instant::ZERO + config.duration;
    let total = config.events + config.patches;
    // Bursts of 1 to 20 one time in five, each at a time of its own over the workload; every
    // burst gives at least one item, so this ends. Items are numbered once in time order.
    let mut items: Vec<(Instant, Option<usize>)> = Vec::new();
    let mut patches = 0u64;
    while (items.len() as u64) < total {
        let at = Instant::ZERO + rng.duration_between(Duration::ZERO, config.duration);
        let burst = if rng.below(5) == 0 {
            1 + rng.below(20)
        } else {
            1
        };
        for _ in 0..burst.min(total - items.len() as u64) {
            let left = total - items.len() as u64;
            if rng.below(left) < config.patches - patches {
                items.push((at, None));
                patches += 1;
            } else {
                items.push((at, Some(usize::from(rng.below(5) == 0))));
            }
        }
    }
    // Stable: a burst keeps its order.
    items.sort_by_key(|(at, _)| *at);
    let mut seqs = [0u64; 2];
    let mut patches = 0u64;
    let mut steps: Vec<(Instant, Step)> = items
        .into_iter()
        .map(|(at, item)| match item {
            Some(i) => {
                seqs[i] += 1;
                (at, Step::Event(STREAMS[i], seqs[i] - 1))
            }
            None => {
                patches += 1;
                (at, Step::Patch(patches - 1))
            }
        })
        .collect();
    // A crash falls anywhere; or, one time in three, just after the caller gave something,
    // while its write may be under way; or, one time in four after the first, within a second
    // of the crash before, while the outbox replays.
    let mut crashes: Vec<Instant> = Vec::new();
    for i in 0..config.crashes {
        let at = match rng.below(12) {
            0..=3 if !steps.is_empty() => {
                let (given, _) = steps[rng.below(steps.len() as u64) as usize];
                given + rng.duration_below(config.store_latency * 2)
            }
            4..=6 if i > 0 => {
                let before = crashes.iter().max().copied().unwrap_or(Instant::ZERO);
                before + rng.duration_below(Duration::from_secs(1))
            }
            _ => Instant::ZERO + rng.duration_between(Duration::from_secs(1), config.duration),
        };
        crashes.push(at.min(end));
    }
    steps.extend(crashes.into_iter().map(|at| (at, Step::Crash)));
    // Stable: at one instant, the caller's items before a crash.
    steps.sort_by_key(|(at, _)| *at);
    steps.push((end, Step::Close));
    steps
}
