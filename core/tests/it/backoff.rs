//! The backoff curve, the controller and their pinned sequences (docs/ARCHITECTURE.md §Backoff).

use core::time::Duration;

use proptest::prelude::*;
use tether_core::backoff::{
    Backoff, BackoffController, BackoffPolicy, ControllerConfig, ControllerStatus, Decision,
    Failure, Floor, GiveUpReason, Jitter,
};
use tether_core::{Instant, Rng};

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[test]
fn reconnect_defaults_are_1_2_4_8_16_30_30() {
    let policy = BackoffPolicy::reconnect();
    let delays: Vec<_> = (0..=6).map(|a| policy.curve(a)).collect();
    let expected: Vec<_> = [1, 2, 4, 8, 16, 30, 30].map(Duration::from_secs).to_vec();
    assert_eq!(delays, expected);
}

#[test]
fn controller_retries_six_times_then_the_seventh_failure_gives_up() {
    let mut ctl = BackoffController::new(ControllerConfig::default(), Rng::new(1));
    let mut now = Instant::ZERO;
    ctl.start(now);
    assert_eq!(ctl.status(), ControllerStatus::Connecting);
    let mut delays = Vec::new();
    for _ in 0..6 {
        match ctl.record_failure(now, Failure::Transient) {
            Decision::Retry { delay, at, .. } => {
                delays.push(delay.as_secs());
                now = at;
            }
            Decision::GiveUp(reason) => panic!("gave up early: {reason:?}"),
        }
    }
    assert_eq!(delays, [1, 2, 4, 8, 16, 30]);
    assert_eq!(
        ctl.record_failure(now, Failure::Transient),
        Decision::GiveUp(GiveUpReason::AttemptsExhausted { failures: 7 })
    );
    assert_eq!(ctl.status(), ControllerStatus::GivingUp);
    // Giving up is sticky: a late success does not revive it.
    ctl.record_success(now);
    assert_eq!(ctl.status(), ControllerStatus::GivingUp);
}

#[test]
fn a_success_resets_the_episode() {
    let mut ctl = BackoffController::new(ControllerConfig::default(), Rng::new(1));
    ctl.start(Instant::ZERO);
    for _ in 0..5 {
        let _ = ctl.record_failure(Instant::ZERO, Failure::Transient);
    }
    ctl.record_success(Instant::from_secs(100));
    assert_eq!(ctl.status(), ControllerStatus::Connected);
    assert_eq!(ctl.failures(), 0);
    match ctl.record_failure(Instant::from_secs(100), Failure::Transient) {
        Decision::Retry { attempt, delay, .. } => {
            assert_eq!((attempt, delay), (1, Duration::from_secs(1)));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_permanent_outcome_gives_up_at_once() {
    let mut ctl = BackoffController::new(ControllerConfig::default(), Rng::new(1));
    ctl.start(Instant::ZERO);
    assert_eq!(
        ctl.record_failure(Instant::ZERO, Failure::Permanent(400)),
        Decision::GiveUp(GiveUpReason::Rejected(400))
    );
}

#[test]
fn the_total_deadline_gives_up_before_a_retry_would_land_past_it() {
    let config = ControllerConfig {
        max_attempts: None,
        total_deadline: Some(Duration::from_secs(20)),
        ..ControllerConfig::default()
    };
    let mut ctl = BackoffController::new(config, Rng::new(1));
    let mut now = Instant::from_secs(50);
    ctl.start(now);
    let mut retries = 0;
    let reason = 'retry: {
        for _ in 0..100 {
            match ctl.record_failure(now, Failure::Transient) {
                Decision::Retry { at, .. } => {
                    retries += 1;
                    now = at;
                }
                Decision::GiveUp(reason) => break 'retry reason,
            }
        }
        panic!("no give-up after 100 failures");
    };
    // 1 + 2 + 4 + 8 = 15 s fits in 20 s; the next 16 s would end at 31 s.
    assert_eq!(retries, 4);
    assert_eq!(reason, GiveUpReason::DeadlineExceeded);
}

#[test]
fn unlimited_attempts_never_give_up_on_transient_failures() {
    let config = ControllerConfig {
        max_attempts: None,
        ..ControllerConfig::default()
    };
    let mut ctl = BackoffController::new(config, Rng::new(1));
    ctl.start(Instant::ZERO);
    for _ in 0..10_000 {
        assert!(matches!(
            ctl.record_failure(Instant::ZERO, Failure::Transient),
            Decision::Retry { .. }
        ));
    }
}

#[test]
fn throttle_hints_are_clamped_between_base_and_max_hint() {
    let mut ctl = BackoffController::new(ControllerConfig::default(), Rng::new(1));
    ctl.start(Instant::ZERO);
    let delay = |d: Decision| match d {
        Decision::Retry { delay, .. } => delay,
        other => panic!("{other:?}"),
    };
    let hinted = ctl.record_failure(Instant::ZERO, Failure::Throttled(Duration::from_secs(5)));
    assert_eq!(delay(hinted), Duration::from_secs(5));
    let tiny = ctl.record_failure(Instant::ZERO, Failure::Throttled(Duration::ZERO));
    assert_eq!(delay(tiny), Duration::from_secs(1), "never below the base");
    let huge = ctl.record_failure(
        Instant::ZERO,
        Failure::Throttled(Duration::from_secs(9_999)),
    );
    assert_eq!(delay(huge), Duration::from_secs(60), "never above max_hint");
}

#[test]
fn uploader_curve_is_500ms_doubling_to_30s_plus_jitter_below_500ms() {
    let policy = BackoffPolicy::uploader();
    let curve: Vec<_> = (0..8).map(|a| policy.curve(a).as_millis()).collect();
    assert_eq!(
        curve,
        [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]
    );
    let mut rng = Rng::new(99);
    for attempt in 0..20 {
        for _ in 0..200 {
            let d = policy.delay(attempt, Duration::ZERO, &mut rng);
            let base = policy.curve(attempt);
            assert!(
                d >= base && d < base + Duration::from_millis(500),
                "{attempt}: {d:?}"
            );
        }
    }
    // Both ends of the draw.
    assert_eq!(policy.delay_with_draw(0, Duration::ZERO, 0.0), secs(0.5));
    assert_eq!(policy.delay_with_draw(6, Duration::ZERO, 0.5), secs(30.25));
}

#[test]
fn tunnel_policy_with_draw_half() {
    let policy = BackoffPolicy::tunnel();
    let at = |attempt| policy.delay_with_draw(attempt, Duration::ZERO, 0.5);
    assert_eq!(at(0), secs(1.5));
    assert_eq!(at(1), secs(2.5));
    assert_eq!(at(6), secs(60.0));
    assert_eq!(at(9), secs(60.0));
    assert_eq!(at(10), secs(300.0));
    assert_eq!(at(20), secs(300.0));
}

#[test]
fn jitter_kinds_at_the_ends_of_the_draw() {
    let base = BackoffPolicy::reconnect(); // attempt 3 => 8 s, cap 30 s
    let at = |jitter, draw| {
        base.with_jitter(jitter)
            .delay_with_draw(3, Duration::ZERO, draw)
    };
    assert_eq!(at(Jitter::Full, 0.0), Duration::ZERO);
    assert_eq!(at(Jitter::Full, 0.5), secs(4.0));
    assert_eq!(at(Jitter::Equal, 0.0), secs(4.0));
    assert_eq!(at(Jitter::Equal, 1.0), secs(8.0));
    assert_eq!(at(Jitter::Proportional { fraction: 0.25 }, 0.0), secs(6.0));
    assert_eq!(at(Jitter::Proportional { fraction: 0.25 }, 1.0), secs(10.0));
    // Decorrelated: uniform in [base, 3 · previous], capped.
    let dec = base.with_jitter(Jitter::Decorrelated);
    assert_eq!(dec.delay_with_draw(0, Duration::ZERO, 0.7), secs(1.0));
    assert_eq!(dec.delay_with_draw(0, secs(4.0), 1.0), secs(12.0));
    assert_eq!(dec.delay_with_draw(0, secs(40.0), 1.0), secs(30.0));
}

#[test]
fn the_stateful_backoff_resets() {
    let mut b = Backoff::new(BackoffPolicy::reconnect());
    let mut rng = Rng::new(0);
    let first: Vec<_> = (0..3)
        .map(|_| b.next_delay(None, &mut rng).as_secs())
        .collect();
    assert_eq!(first, [1, 2, 4]);
    b.reset();
    assert_eq!(b.attempt(), 0);
    assert_eq!(b.next_delay(None, &mut rng), Duration::from_secs(1));
}

fn jitter_strategy() -> impl Strategy<Value = Jitter> {
    prop_oneof![
        Just(Jitter::None),
        (0u64..5_000, any::<bool>()).prop_map(|(ms, above_cap)| Jitter::Additive {
            range: Duration::from_millis(ms),
            above_cap
        }),
        Just(Jitter::Full),
        Just(Jitter::Equal),
        Just(Jitter::Decorrelated),
        (0.0f64..=1.0).prop_map(|fraction| Jitter::Proportional { fraction }),
    ]
}

fn policy_strategy() -> impl Strategy<Value = BackoffPolicy> {
    (
        0u64..10_000_000,
        0u64..100_000_000,
        jitter_strategy(),
        proptest::option::of((0u32..40, 0u64..1_000_000_000)),
        0u64..1_000_000_000,
    )
        .prop_map(|(base, cap, jitter, floor, max_hint)| BackoffPolicy {
            base: Duration::from_micros(base),
            cap: Duration::from_micros(cap),
            jitter,
            floor: floor.map(|(from_attempt, us)| Floor {
                from_attempt,
                delay: Duration::from_micros(us),
            }),
            max_hint: Duration::from_micros(max_hint),
        })
}

/// Fifty delays of a fresh [`Backoff`] drawing from `seed`, half of them for a server hint.
fn delays(policy: BackoffPolicy, seed: u64) -> Vec<Duration> {
    let mut rng = Rng::new(seed);
    let mut b = Backoff::new(policy);
    (0..50)
        .map(|i| {
            let hint = (i % 2 == 1).then(|| Duration::from_millis(i * 100));
            b.next_delay(hint, &mut rng)
        })
        .collect()
}

/// Policies whose delays depend on the draw: some jitter with room to act (at least 1 ms of
/// spread), a cap at least twice the base, and no floor to flatten the curve.
fn jittered_policy_strategy() -> impl Strategy<Value = BackoffPolicy> {
    let jitter = prop_oneof![
        (1_000u64..5_000_000, any::<bool>()).prop_map(|(us, above_cap)| Jitter::Additive {
            range: Duration::from_micros(us),
            above_cap
        }),
        Just(Jitter::Full),
        Just(Jitter::Equal),
        Just(Jitter::Decorrelated),
        (0.01f64..=1.0).prop_map(|fraction| Jitter::Proportional { fraction }),
    ];
    (1_000u64..10_000_000, 2u64..100, jitter, 0u64..100_000_000).prop_map(
        |(base, factor, jitter, max_hint)| BackoffPolicy {
            base: Duration::from_micros(base),
            cap: Duration::from_micros(base * factor),
            jitter,
            floor: None,
            max_hint: Duration::from_micros(max_hint),
        },
    )
}

proptest! {
    #[test]
    fn a_delay_never_exceeds_what_the_policy_allows(
        policy in policy_strategy(),
        attempt in any::<u32>(),
        previous in 0u64..1_000_000_000,
        seed in any::<u64>(),
    ) {
        let mut rng = Rng::new(seed);
        let d = policy.delay(attempt, Duration::from_micros(previous), &mut rng);
        prop_assert!(d <= policy.max_delay(attempt), "{d:?} > {:?}", policy.max_delay(attempt));
        // max_delay itself never exceeds the cap, plus the jitter only where the policy adds it
        // above the cap, or the floor once it applies.
        let cap = match policy.jitter {
            Jitter::Additive { range, above_cap: true } => policy.cap + range,
            _ => policy.cap,
        };
        let bound = match policy.floor {
            Some(f) if attempt >= f.from_attempt => cap.max(f.delay),
            _ => cap,
        };
        prop_assert!(d <= bound);
    }

    #[test]
    fn hinted_delays_stay_within_the_clamp(
        policy in policy_strategy(),
        hint in any::<u64>(),
        seed in any::<u64>(),
    ) {
        let mut rng = Rng::new(seed);
        let d = policy.delay_for_hint(Duration::from_secs(hint), &mut rng);
        prop_assert!(d <= policy.max_hinted_delay());
    }

    #[test]
    fn without_jitter_delays_never_decrease(policy in policy_strategy(), attempt in 0u32..u32::MAX) {
        let policy = policy.with_jitter(Jitter::None);
        let prev = policy.delay_with_draw(attempt, Duration::ZERO, 0.0);
        let next = policy.delay_with_draw(attempt + 1, Duration::ZERO, 0.0);
        prop_assert!(next >= prev, "{attempt}: {prev:?} then {next:?}");
    }

    #[test]
    fn the_same_seed_gives_the_same_delays(policy in policy_strategy(), seed in any::<u64>()) {
        prop_assert_eq!(delays(policy, seed), delays(policy, seed));
    }

    #[test]
    fn the_same_seed_gives_the_same_jittered_delays_and_another_seed_others(
        policy in jittered_policy_strategy(),
        seed in any::<u64>(),
        other in any::<u64>(),
    ) {
        prop_assume!(seed != other);
        let first = delays(policy, seed);
        prop_assert_eq!(&first, &delays(policy, seed));
        prop_assert_ne!(first, delays(policy, other), "the seed made no difference");
    }

    #[test]
    fn no_attempt_count_overflows_or_panics(
        policy in policy_strategy(),
        attempt in prop_oneof![Just(u32::MAX), Just(u32::MAX - 1), Just(63u32), Just(64u32), any::<u32>()],
        draw in any::<f64>(),
        previous in any::<u64>(),
    ) {
        let d = policy.delay_with_draw(attempt, Duration::from_micros(previous), draw);
        prop_assert!(d <= policy.max_delay(attempt));
        let hinted = policy.delay_for_hint_with_draw(Duration::from_micros(previous), draw);
        prop_assert!(hinted <= policy.max_hinted_delay());
    }
}
