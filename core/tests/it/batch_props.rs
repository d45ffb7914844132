//! Properties of the batch drainer over arbitrary interleavings of enqueues, outcomes and time.

use crate::batch_support;

use core::time::Duration;

use batch_support::Harness;
use proptest::prelude::*;
use serde_json::json;
use tether_core::batch::{Abandon, Config, Envelope, Event, Output, Overflow};
use tether_core::{Outcome, TransientCause};

#[derive(Clone, Debug)]
enum Op {
    Enqueue {
        pad: usize,
        key: Option<u8>,
        ephemeral: bool,
        own_uuid: bool,
    },
    Outcome(Outcome),
    /// An outcome for a batch that is no longer in flight.
    Stale(Outcome),
    Advance(u64),
    Fire,
    /// Wakes the drainer a microsecond before its next wake-up: an early timeout.
    Early,
    Flush(u64),
    Abandon,
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        4 => Just(Outcome::Success),
        2 => Just(Outcome::Transient(TransientCause::Transport)),
        1 => (0u64..5_000).prop_map(|ms| Outcome::Throttled(Duration::from_millis(ms))),
        1 => Just(Outcome::TooLarge),
        1 => (400u16..500).prop_map(Outcome::Permanent),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..120, prop::option::weighted(0.3, 0u8..3), any::<bool>(), any::<bool>())
            .prop_map(|(pad, key, ephemeral, own_uuid)| Op::Enqueue { pad, key, ephemeral, own_uuid }),
        5 => outcome().prop_map(Op::Outcome),
        1 => outcome().prop_map(Op::Stale),
        2 => (0u64..3_000).prop_map(Op::Advance),
        2 => Just(Op::Fire),
        1 => Just(Op::Early),
        1 => (0u64..5_000).prop_map(Op::Flush),
        // Rare: it ends intake early; later ops then meet a closed drainer.
        1 => prop::bool::weighted(0.05).prop_map(|b| if b { Op::Abandon } else { Op::Fire }),
    ]
}

fn config() -> impl Strategy<Value = Config> {
    (
        1usize..6,
        150usize..600,
        1usize..4,
        1usize..30,
        prop_oneof![
            Just(Overflow::Reject),
            Just(Overflow::DropOldest),
            Just(Overflow::DropNewest)
        ],
        prop_oneof![Just(0u64), 1u64..500],
        prop::option::of(1u32..5),
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(items, bytes, qmul, qitems, overflow, linger, maxf, updates)| Config {
                envelope: if updates {
                    Envelope::DeliveryUpdates
                } else {
                    Envelope::Events
                },
                max_batch_items: items,
                max_batch_bytes: bytes,
                max_queue_items: qitems.max(items),
                max_queue_bytes: bytes * qmul,
                overflow,
                linger: Duration::from_millis(linger),
                max_consecutive_failures: maxf,
                ..Config::default()
            },
        )
}

/// Runs `ops`, then closes and drives to the end; returns the whole output log.
fn run(config: Config, seed: u64, ops: &[Op]) -> Vec<Output> {
    let mut h = Harness::new(config, seed);
    let mut stale = None;
    let mut n = 0u64;
    for op in ops {
        match op {
            Op::Enqueue {
                pad,
                key,
                ephemeral,
                own_uuid,
            } => {
                let mut payload = json!({ "n": n, "pad": "p".repeat(*pad) });
                if *own_uuid {
                    payload["uuid"] = json!(format!("own-{n}"));
                }
                n += 1;
                let mut event = Event::new(payload).ephemeral(*ephemeral);
                if let Some(k) = key {
                    event = event.replace_key(format!("k{k}"));
                }
                let _ = h.enqueue(event);
                h.drain();
            }
            Op::Outcome(o) => {
                if let Some(id) = h.d.in_flight() {
                    stale = Some(id);
                    h.outcome(*o);
                }
            }
            Op::Stale(o) => {
                if let Some(id) = stale.filter(|id| Some(*id) != h.d.in_flight()) {
                    let before = h.d.counters().stale_outcomes;
                    h.d.handle_outcome(h.now, id, *o);
                    assert!(h.drain().is_empty(), "a stale outcome changes nothing");
                    assert_eq!(h.d.counters().stale_outcomes, before + 1);
                }
            }
            Op::Advance(ms) => {
                h.advance(Duration::from_millis(*ms));
            }
            Op::Fire => {
                h.fire();
            }
            Op::Early => {
                if let Some(w) = h.wake.filter(|w| w.at > h.now) {
                    h.advance(w.at.saturating_duration_since(h.now) - Duration::from_micros(1));
                }
            }
            Op::Flush(ms) => {
                // The checker holds each flush to its report (see `Checker::flush_report`).
                h.flush(h.now + Duration::from_millis(*ms));
                h.drain();
            }
            Op::Abandon => {
                h.d.abandon(h.now, Abandon::GivenUp);
                h.drain();
            }
        }
    }
    if !h.check.closed {
        // Answer the drain with a mix, so the close deadline is sometimes reached with work left.
        h.close_and_finish(Duration::from_secs(20), |round| match round % 3 {
            0 => Outcome::Transient(TransientCause::Transport),
            _ => Outcome::Success,
        });
    }
    h.check.finish();
    let c = h.d.counters();
    assert_eq!(c.queue_events, 0);
    assert_eq!(c.queue_bytes, 0);
    assert_eq!(c.enqueued, h.check.order.len() as u64);
    assert_eq!(c.delivered, h.check.delivered.len() as u64);
    h.log
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_event_ends_exactly_once_in_order_within_bounds(
        config in config(),
        seed in any::<u64>(),
        ops in prop::collection::vec(op(), 0..120),
    ) {
        let first = run(config, seed, &ops);
        let again = run(config, seed, &ops);
        prop_assert_eq!(first, again, "same seed, same outputs");
    }
}
