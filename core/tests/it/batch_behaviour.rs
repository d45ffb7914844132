//! Pinned behaviour of the batch drainer, on simulated time.

use crate::batch_support;

use core::time::Duration;
use std::collections::BTreeMap;

use batch_support::Harness;
use serde_json::{Value, json};
use tether_core::backoff::{BackoffPolicy, Jitter};
use tether_core::batch::{
    self, Abandon, BatchDrainer, Config, ConfigError, Envelope, Event, Output, Overflow, Reason,
    Timer,
};
use tether_core::{Instant, Outcome, Rng, TransientCause};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn config() -> Config {
    Config::default()
}

fn sends(out: &[Output]) -> Vec<Vec<u8>> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { body, .. } => Some(body.clone()),
            _ => None,
        })
        .collect()
}

/// The `n` values of each event in a body, in order.
fn ns(body: &[u8]) -> Vec<u64> {
    let v: Value = serde_json::from_slice(body).unwrap();
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["payload"]["n"].as_u64().unwrap())
        .collect()
}

fn hand_backs(out: &[Output]) -> Vec<(Reason, Vec<u64>)> {
    out.iter()
        .filter_map(|o| match o {
            Output::HandedBack { reason, events } => {
                Some((*reason, events.iter().map(|u| u.id.0).collect::<Vec<_>>()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn envelope_bytes_are_exact() {
    let mut h = Harness::without_epoch(config(), 1);
    h.enqueue(Event::new(json!({"b": 1, "uuid": "u1"})))
        .unwrap();
    h.enqueue(Event::new(json!({"a": "x", "uuid": "u2"})).ephemeral(true))
        .unwrap();
    let mut h = h.with_epoch(42);
    let out = sends(&h.log);
    assert_eq!(
        String::from_utf8(out[0].clone()).unwrap(),
        r#"{"worker_epoch":42,"events":[{"payload":{"b":1,"uuid":"u1"}},{"payload":{"a":"x","uuid":"u2"},"ephemeral":true}]}"#
    );
    h.outcome(Outcome::Success);

    let c = Config {
        envelope: Envelope::DeliveryUpdates,
        ..config()
    };
    let mut h = Harness::new(c, 1);
    h.enqueue_json(json!({"event_id": "e1", "status": "received"}));
    h.drain();
    assert_eq!(
        sends(&h.log)[0],
        br#"{"worker_epoch":1,"updates":[{"event_id":"e1","status":"received"}]}"#,
        "delivery updates go as-is, with no uuid"
    );
}

#[test]
fn uuid_is_stamped_kept_or_overwritten() {
    let mut h = Harness::without_epoch(config(), 9);
    h.enqueue_json(json!({"n": 0}));
    h.enqueue_json(json!({"n": 1, "uuid": "mine"}));
    h.enqueue_json(json!({"n": 2, "uuid": 17}));
    let h = h.with_epoch(1);
    let body: Value = serde_json::from_slice(&sends(&h.log)[0]).unwrap();
    let uuid = |i: usize| {
        body["events"][i]["payload"]["uuid"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let mut rng = Rng::new(9);
    assert_eq!(
        uuid(0),
        rng.uuid_v4(),
        "drawn from the seeded PRNG, in order"
    );
    assert_eq!(uuid(1), "mine", "an existing string uuid is kept");
    assert_eq!(uuid(2), rng.uuid_v4(), "a non-string uuid is replaced");
    let b = uuid(0).into_bytes();
    assert_eq!((b.len(), b[14], b[8]), (36, b'4', b'-'));
}

#[test]
fn nothing_is_sent_before_the_epoch_is_known() {
    let mut h = Harness::without_epoch(config(), 1);
    h.enqueue_json(json!({"n": 0}));
    h.drain();
    assert!(sends(&h.log).is_empty());
    assert_eq!(
        h.wake, None,
        "no timer to spin on while waiting for the epoch"
    );
    let h = h.with_epoch(5);
    assert_eq!(sends(&h.log).len(), 1);
}

#[test]
fn transient_failure_puts_the_batch_back_in_order() {
    let c = Config {
        max_batch_items: 2,
        ..config()
    };
    let mut h = Harness::loaded(c, 1, 0..5);
    assert_eq!(ns(&sends(&h.log)[0]), [0, 1]);
    let first = sends(&h.log)[0].clone();
    h.outcome(Outcome::Transient(TransientCause::Transport));
    assert_eq!(h.wake.unwrap().reason, Timer::Backoff);
    h.fire();
    let all = sends(&h.log);
    assert_eq!(
        all[1], first,
        "the same batch, byte for byte, uuids included"
    );
    h.outcome(Outcome::Success);
    h.outcome(Outcome::Success);
    h.outcome(Outcome::Success);
    let order: Vec<u64> = sends(&h.log).iter().flat_map(|b| ns(b)).collect();
    assert_eq!(order, [0, 1, 0, 1, 2, 3, 4]);
    assert_eq!(
        h.check.delivered.iter().map(|e| e.0).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    assert_eq!(h.d.counters().retries, 1);
}

#[test]
fn backoff_grows_and_resets_after_success() {
    let c = Config {
        backoff: BackoffPolicy::uploader().with_jitter(Jitter::None),
        ..config()
    };
    let mut h = Harness::new(c, 1);
    h.enqueue_json(json!({"n": 0}));
    let mut delays = Vec::new();
    for _ in 0..4 {
        let at = h.now;
        h.outcome(Outcome::Transient(TransientCause::Transport));
        let wake = h.wake.unwrap();
        assert_eq!(wake.reason, Timer::Backoff);
        delays.push(wake.at.saturating_duration_since(at));
        // An early timeout does nothing.
        h.advance(ms(1));
        assert!(h.check.in_flight.is_none());
        h.fire();
    }
    assert_eq!(delays, [ms(500), ms(1000), ms(2000), ms(4000)]);
    h.outcome(Outcome::Success);
    h.enqueue_json(json!({"n": 1}));
    h.drain();
    let at = h.now;
    h.outcome(Outcome::Transient(TransientCause::Transport));
    assert_eq!(
        h.wake.unwrap().at.saturating_duration_since(at),
        ms(500),
        "reset"
    );
}

#[test]
fn default_backoff_adds_jitter_and_honours_a_throttle_hint() {
    let mut h = Harness::new(config(), 3);
    h.enqueue_json(json!({"n": 0}));
    let at = h.now;
    h.outcome(Outcome::Transient(TransientCause::Transport));
    let d = h.wake.unwrap().at.saturating_duration_since(at);
    assert!(d >= ms(500) && d < ms(1000), "{d:?}");
    h.fire();
    let at = h.now;
    h.outcome(Outcome::Throttled(Duration::from_secs(7)));
    let d = h.wake.unwrap().at.saturating_duration_since(at);
    assert!(d >= ms(7000) && d < ms(7500), "{d:?}");
}

#[test]
fn too_many_failures_drops_the_batch_without_stalling() {
    let c = Config {
        max_batch_items: 2,
        max_consecutive_failures: Some(3),
        ..config()
    };
    let mut h = Harness::loaded(c, 1, 0..4);
    h.outcome(Outcome::Transient(TransientCause::Transport));
    h.fire();
    h.outcome(Outcome::Transient(TransientCause::Transport));
    h.fire();
    let out = h.outcome(Outcome::Transient(TransientCause::Transport));
    assert_eq!(
        hand_backs(&out),
        [(Reason::TooManyFailures { failures: 3 }, vec![0, 1])]
    );
    // The next batch goes at once, with a fresh failure budget.
    assert_eq!(ns(&sends(&out)[0]), [2, 3]);
    h.outcome(Outcome::Transient(TransientCause::Transport));
    h.fire();
    h.outcome(Outcome::Success);
    assert_eq!(h.d.counters().dead_too_many_failures, 2);
    assert_eq!(h.d.counters().delivered, 2);
}

#[test]
fn too_large_splits_down_to_a_single_dead_letter() {
    let c = Config {
        max_batch_items: 4,
        ..config()
    };
    let mut h = Harness::loaded(c, 1, 1..6);
    let out = h.outcome(Outcome::TooLarge);
    assert_eq!(ns(&sends(&out)[0]), [1, 2], "first half, at once");
    let out = h.outcome(Outcome::TooLarge);
    assert_eq!(ns(&sends(&out)[0]), [1]);
    let out = h.outcome(Outcome::TooLarge);
    assert_eq!(hand_backs(&out), [(Reason::TooLarge, vec![0])]);
    assert_eq!(ns(&sends(&out)[0]), [2, 3, 4, 5]);
    h.outcome(Outcome::Success);
    assert_eq!(h.d.counters().splits, 2);
    assert_eq!(h.d.counters().dead_too_large, 1);
}

#[test]
fn permanent_failure_makes_dead_letters_and_moves_on() {
    let c = Config {
        max_batch_items: 2,
        ..config()
    };
    let mut h = Harness::loaded(c, 1, 0..3);
    let out = h.outcome(Outcome::Permanent(400));
    assert_eq!(
        hand_backs(&out),
        [(Reason::Rejected { status: 400 }, vec![0, 1])]
    );
    let Output::HandedBack { events, .. } = &out[0] else {
        panic!()
    };
    assert_eq!(
        events[1].event.payload().unwrap()["n"],
        1,
        "payload handed back"
    );
    assert_eq!(ns(&sends(&out)[0]), [2]);
}

#[test]
fn replace_key_takes_the_older_place_and_uuid() {
    let mut h = Harness::without_epoch(config(), 1);
    let a = h
        .enqueue(Event::new(json!({"n": 0})).replace_key("snap"))
        .unwrap();
    h.enqueue_json(json!({"n": 1}));
    let c = h
        .enqueue(Event::new(json!({"n": 2, "uuid": "own"})).replace_key("snap"))
        .unwrap();
    let out = h.drain();
    assert_eq!(hand_backs(&out), [(Reason::Replaced { by: c }, vec![a.0])]);
    let Output::HandedBack { events, .. } = &out[0] else {
        panic!()
    };
    let old_uuid = events[0].event.payload().unwrap()["uuid"].clone();
    let mut h = h.with_epoch(1);
    let body: Value = serde_json::from_slice(&sends(&h.log)[0]).unwrap();
    assert_eq!(ns(&sends(&h.log)[0]), [2, 1], "in the older one's place");
    assert_eq!(
        body["events"][0]["payload"]["uuid"], old_uuid,
        "and with its uuid"
    );
    // A sent event is never replaced: the server may already have it.
    let d = h
        .enqueue(Event::new(json!({"n": 3})).replace_key("snap"))
        .unwrap();
    let e = h
        .enqueue(Event::new(json!({"n": 4})).replace_key("snap"))
        .unwrap();
    let out = h.drain();
    assert_eq!(hand_backs(&out), [(Reason::Replaced { by: e }, vec![d.0])]);
    h.outcome(Outcome::Success);
    assert_eq!(ns(sends(&h.log).last().unwrap()), [4]);
    assert_eq!(h.d.counters().replaced, 2);
}

#[test]
fn linger_waits_for_a_full_batch_or_the_window() {
    let c = Config {
        linger: ms(100),
        max_batch_items: 3,
        ..config()
    };
    let mut h = Harness::new(c, 1);
    h.enqueue_json(json!({"n": 0}));
    h.drain();
    assert_eq!(
        h.wake.map(|w| (w.at, w.reason)),
        Some((Instant::from_millis(100), Timer::Linger))
    );
    h.advance(ms(60));
    h.enqueue_json(json!({"n": 1}));
    h.drain();
    assert!(sends(&h.log).is_empty());
    assert_eq!(
        h.wake.unwrap().at,
        Instant::from_millis(100),
        "window from the oldest"
    );
    h.fire();
    assert_eq!(ns(&sends(&h.log)[0]), [0, 1]);
    h.outcome(Outcome::Success);
    for n in 2..5 {
        h.enqueue_json(json!({"n": n}));
    }
    h.drain();
    assert_eq!(
        ns(&sends(&h.log)[1]),
        [2, 3, 4],
        "a full batch goes at once"
    );
    h.outcome(Outcome::Success);
    h.enqueue_json(json!({"n": 5}));
    let f = h.flush(h.now + Duration::from_secs(1));
    let out = h.drain();
    assert_eq!(ns(&sends(&out)[0]), [5], "a flush cuts the window short");
    let out = h.outcome(Outcome::Success);
    assert!(out.contains(&Output::FlushDone(f)));
}

#[test]
fn flush_reports_done_or_timed_out() {
    let mut h = Harness::new(config(), 1);
    let idle = h.flush(h.now);
    assert_eq!(h.drain(), [Output::FlushDone(idle)]);
    h.enqueue_json(json!({"n": 0}));
    let f = h.flush(h.now + Duration::from_secs(2));
    h.drain();
    h.enqueue_json(json!({"n": 1}));
    h.outcome(Outcome::Transient(TransientCause::Transport));
    assert_eq!(h.wake.unwrap().reason, Timer::Backoff);
    h.outcome_after_fire(Outcome::Transient(TransientCause::Transport));
    h.outcome_after_fire(Outcome::Transient(TransientCause::Transport));
    let w = h.wake.unwrap();
    assert_eq!(
        (w.reason, w.at),
        (Timer::FlushDeadline, Instant::from_secs(2))
    );
    let out = h.fire().unwrap();
    assert_eq!(out, [Output::FlushTimedOut(f)]);
}

trait FireThen {
    fn outcome_after_fire(&mut self, o: Outcome);
}
impl FireThen for Harness {
    fn outcome_after_fire(&mut self, o: Outcome) {
        self.fire();
        self.outcome(o);
    }
}

#[test]
fn close_drains_then_hands_back_the_rest_in_one_output() {
    let c = Config {
        max_batch_items: 1,
        ..config()
    };
    let mut h = Harness::new(c, 1);
    for n in 0..3 {
        h.enqueue_json(json!({"n": n}));
    }
    h.d.close(h.now, h.now + Duration::from_secs(5));
    h.drain();
    let err = h.enqueue(Event::new(json!({"late": true}))).unwrap_err();
    let batch::Error::Closed { event } = err else {
        panic!("{err:?}")
    };
    assert_eq!(
        event.payload().unwrap()["late"],
        true,
        "the event comes back"
    );
    h.outcome(Outcome::Success);
    h.outcome(Outcome::Transient(TransientCause::Transport));
    assert_eq!(h.wake.unwrap().reason, Timer::Backoff);
    h.fire();
    h.outcome(Outcome::Transient(TransientCause::Transport));
    h.fire();
    h.outcome(Outcome::Transient(TransientCause::Transport));
    h.fire();
    h.outcome(Outcome::Transient(TransientCause::Transport));
    assert_eq!(h.wake.unwrap().reason, Timer::CloseDeadline);
    let out = h.fire().unwrap();
    assert_eq!(hand_backs(&out), [(Reason::Closed, vec![1, 2])]);
    assert_eq!(out.last(), Some(&Output::Closed));
    assert_eq!(h.wake, None);
    h.check.finish();
}

#[test]
fn close_with_nothing_left_reports_closed_at_once() {
    let mut h = Harness::new(config(), 1);
    h.enqueue_json(json!({"n": 0}));
    h.d.close(h.now, h.now + Duration::from_secs(5));
    h.drain();
    let out = h.outcome(Outcome::Success);
    assert_eq!(out.last(), Some(&Output::Closed));
    assert!(h.d.is_closed());
}

#[test]
fn abandon_hands_back_in_flight_and_queued_and_ignores_late_outcomes() {
    let c = Config {
        max_batch_items: 1,
        ..config()
    };
    let mut h = Harness::new(c, 1);
    for n in 0..3 {
        h.enqueue_json(json!({"n": n}));
    }
    h.drain();
    let batch = h.d.in_flight().unwrap();
    h.d.abandon(h.now, Abandon::Superseded);
    let out = h.drain();
    assert_eq!(hand_backs(&out), [(Reason::Superseded, vec![0, 1, 2])]);
    assert_eq!(out.last(), Some(&Output::Closed));
    h.d.handle_outcome(h.now, batch, Outcome::Success);
    assert!(h.drain().is_empty(), "a late outcome is ignored");
    let f = h.flush(h.now);
    assert_eq!(
        h.drain(),
        [Output::FlushDone(f)],
        "a flush after the end is done"
    );
    assert_eq!(h.d.counters().stale_outcomes, 1);
    assert_eq!(h.d.counters().handed_back_superseded, 3);
    h.check.finish();
}

#[test]
fn a_stale_outcome_is_ignored() {
    let mut h = Harness::new(config(), 1);
    h.enqueue_json(json!({"n": 0}));
    h.drain();
    let first = h.d.in_flight().unwrap();
    h.outcome(Outcome::Transient(TransientCause::Transport));
    h.fire();
    h.d.handle_outcome(h.now, first, Outcome::Success);
    assert!(h.drain().is_empty());
    assert!(
        h.d.in_flight().is_some_and(|b| b != first),
        "the retry is still in flight"
    );
}

#[test]
fn time_running_backwards_is_clamped() {
    let c = Config {
        linger: ms(100),
        ..config()
    };
    let mut h = Harness::new(c, 1);
    h.now = Instant::from_secs(10);
    h.enqueue_json(json!({"n": 0}));
    h.d.handle_timeout(Instant::from_secs(1));
    assert!(h.drain().is_empty());
    assert_eq!(h.wake.unwrap().at, Instant::from_millis(10_100));
}

#[test]
fn bad_input_is_a_typed_error_that_returns_the_event() {
    let c = Config {
        max_batch_bytes: 80,
        max_queue_bytes: 160,
        max_queue_items: 2,
        max_batch_items: 1,
        ..config()
    };
    let mut h = Harness::new(c, 1);
    let err = h.enqueue(Event::new(json!([1, 2]))).unwrap_err();
    assert_eq!(
        err,
        batch::Error::NotAnObject {
            event: Event::new(json!([1, 2]))
        }
    );
    assert!(err.to_string().contains("not a JSON object"));

    let big = json!({"s": "x".repeat(200)});
    let batch::Error::TooLarge {
        event,
        bytes,
        limit,
    } = h.enqueue(Event::new(big)).unwrap_err()
    else {
        panic!()
    };
    assert_eq!((bytes, limit), (event.bytes(), 80));
    assert_eq!(event.payload().unwrap()["s"].as_str().unwrap().len(), 200);

    let mut bad = BTreeMap::new();
    bad.insert((1, 2), 3);
    assert!(matches!(
        h.d.enqueue_serialize(h.now, &bad),
        Err(batch::Error::Unserializable { .. })
    ));

    h.enqueue_json(json!({"n": 0}));
    h.enqueue_json(json!({"n": 1}));
    let err = h.enqueue(Event::new(json!({"n": 2}))).unwrap_err();
    let batch::Error::QueueFull { event } = err else {
        panic!("{err:?}")
    };
    assert_eq!(event.payload().unwrap()["n"], 2);
    assert_eq!(h.d.counters().rejected_full, 1);
    // Once there is room, the same event goes in with its uuid.
    h.outcome(Outcome::Success);
    assert!(h.d.has_room_for(event.bytes()));
    let uuid = event.payload().unwrap()["uuid"].clone();
    let id = h.d.enqueue_prepared(h.now, event).unwrap();
    h.check.enqueued(id);
    h.drain();
    h.outcome(Outcome::Success);
    let last: Value = serde_json::from_slice(sends(&h.log).last().unwrap()).unwrap();
    assert_eq!(last["events"][0]["payload"]["uuid"], uuid);

    let mut other = BatchDrainer::new(
        Config {
            envelope: Envelope::DeliveryUpdates,
            ..config()
        },
        Rng::new(1),
    )
    .unwrap();
    let prepared = match h.enqueue(Event::new(json!({"x": 1}))) {
        Ok(_) => {
            h.d.close(h.now, h.now);
            let out = h.drain();
            let Output::HandedBack { events, .. } = &out[0] else {
                panic!("{out:?}")
            };
            events[0].event.clone()
        }
        Err(e) => panic!("{e}"),
    };
    assert!(matches!(
        other.enqueue_prepared(Instant::ZERO, prepared),
        Err(batch::Error::WrongEnvelope { .. })
    ));
}

#[test]
fn an_event_that_can_never_fit_is_an_error_not_a_deadlock() {
    let c = Config {
        max_batch_bytes: 100,
        max_queue_bytes: 100,
        ..config()
    };
    let mut h = Harness::new(c, 1);
    let err = h
        .enqueue(Event::new(json!({"s": "y".repeat(150)})))
        .unwrap_err();
    assert!(matches!(err, batch::Error::TooLarge { .. }));
    // The largest event that fits a batch fits an empty queue.
    let fits = json!({"s": "y".repeat(100 - 66)});
    let id = h.enqueue_json(fits);
    h.outcome(Outcome::Success);
    assert_eq!(h.check.delivered, [id]);
}

#[test]
fn drop_policies_report_every_drop() {
    let base = Config {
        max_batch_items: 1,
        max_queue_items: 3,
        ..config()
    };
    let mut h = Harness::new(
        Config {
            overflow: Overflow::DropOldest,
            ..base
        },
        1,
    );
    for n in 0..5 {
        h.enqueue_json(json!({"n": n}));
    }
    let out = h.drain();
    // 0 is in flight and never dropped; 1 and 2 make room for 3 and 4.
    assert_eq!(
        hand_backs(&out),
        [
            (Reason::DroppedOldest, vec![1]),
            (Reason::DroppedOldest, vec![2])
        ]
    );
    h.close_and_finish(Duration::from_secs(60), |_| Outcome::Success);
    h.check.finish();
    assert_eq!(
        h.check.delivered.iter().map(|e| e.0).collect::<Vec<_>>(),
        [0, 3, 4]
    );

    let mut h = Harness::new(
        Config {
            overflow: Overflow::DropNewest,
            ..base
        },
        1,
    );
    for n in 0..5 {
        h.enqueue_json(json!({"n": n}));
    }
    let out = h.drain();
    assert_eq!(
        hand_backs(&out),
        [
            (Reason::DroppedNewest, vec![3]),
            (Reason::DroppedNewest, vec![4])
        ]
    );
    assert_eq!(h.d.counters().dropped_newest, 2);
}

#[test]
fn bad_config_is_a_typed_error() {
    let bad = |c: Config| BatchDrainer::new(c, Rng::new(1)).unwrap_err();
    for field in [
        "max_batch_items",
        "max_batch_bytes",
        "max_queue_items",
        "max_queue_bytes",
    ] {
        let mut c = config();
        match field {
            "max_batch_items" => c.max_batch_items = 0,
            "max_batch_bytes" => c.max_batch_bytes = 0,
            "max_queue_items" => c.max_queue_items = 0,
            _ => c.max_queue_bytes = 0,
        }
        assert_eq!(bad(c), ConfigError::Zero { field });
    }
    assert_eq!(
        bad(Config {
            max_consecutive_failures: Some(0),
            ..config()
        }),
        ConfigError::Zero {
            field: "max_consecutive_failures"
        }
    );
    let e = bad(Config {
        max_batch_bytes: 11,
        max_queue_bytes: 10,
        ..config()
    });
    assert_eq!(
        e,
        ConfigError::BatchOverQueue {
            batch: 11,
            queue: 10,
            unit: "bytes"
        }
    );
    assert!(e.to_string().contains("exceeds"));
    assert!(matches!(
        bad(Config {
            max_batch_items: 11,
            max_queue_items: 10,
            ..config()
        }),
        ConfigError::BatchOverQueue { unit: "items", .. }
    ));
    assert!(BatchDrainer::new(config(), Rng::new(1)).is_ok());
}

#[test]
fn counters_add_up() {
    let c = Config {
        max_batch_items: 2,
        ..config()
    };
    let mut h = Harness::new(c, 1);
    for n in 0..3 {
        h.enqueue_json(json!({"n": n}));
    }
    let bytes = h.d.depth().bytes;
    let c0 = h.d.counters();
    // The first event went at once, alone; the others wait for it.
    assert_eq!(
        (
            c0.enqueued,
            c0.queue_events,
            c0.queue_bytes,
            c0.in_flight_events
        ),
        (3, 3, bytes, 1)
    );
    h.outcome(Outcome::Success);
    h.outcome(Outcome::Permanent(422));
    let c1 = h.d.counters();
    assert_eq!(
        (
            c1.delivered,
            c1.dead_rejected,
            c1.batches_sent,
            c1.queue_events,
            c1.queue_bytes
        ),
        (1, 2, 2, 0, 0)
    );
}
