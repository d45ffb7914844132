//! The state uploader's rules, one at a time, on simulated time.

use crate::common;

use core::time::Duration;

use common::{Sim, obj, put};
use serde_json::{Value, json};
use tether_core::state::{self, Output, PutId, StateUploader, Timer};
use tether_core::{Instant, Machine, Outcome, Poll, Rng, TransientCause};

fn sim() -> Sim {
    let mut sim = Sim::new(state::Config::default(), 1);
    sim.input("epoch 1", |up, now| up.set_epoch(now, 1));
    sim
}

fn enqueue(sim: &mut Sim, patch: Value) -> Vec<Output> {
    sim.input("enqueue", |up, now| up.enqueue(now, patch).unwrap())
        .1
}

fn outcome(sim: &mut Sim, id: PutId, outcome: Outcome) -> Vec<Output> {
    sim.input("outcome", |up, now| up.handle_outcome(now, id, outcome))
        .1
}

fn only_put(outputs: &[Output]) -> (PutId, Value) {
    assert_eq!(outputs.len(), 1, "{outputs:?}");
    let (id, body) = put(&outputs[0]).expect("a PUT");
    (id, Value::Object(body))
}

#[test]
fn first_patch_goes_at_once_with_the_epoch() {
    let mut sim = sim();
    let (id, body) = only_put(&enqueue(&mut sim, json!({"worker_status": "running"})));
    assert_eq!(body, json!({"worker_epoch": 1, "worker_status": "running"}));
    assert_eq!(sim.up().in_flight(), Some(id));
    assert!(outcome(&mut sim, id, Outcome::Success).is_empty());
    assert!(sim.up().is_idle());
    assert_eq!(
        sim.up().acknowledged(),
        &json!({"worker_status": "running"})
    );
    let c = sim.up().counters();
    assert_eq!((c.patches, c.puts_sent, c.puts_acknowledged), (1, 1, 1));
}

#[test]
fn nothing_is_sent_before_an_epoch() {
    let mut sim = Sim::new(state::Config::default(), 1);
    assert!(enqueue(&mut sim, json!({"a": 1})).is_empty());
    assert!(enqueue(&mut sim, json!({"b": 2})).is_empty());
    let (_, outputs) = sim.input("epoch 9", |up, now| up.set_epoch(now, 9));
    let (_, body) = only_put(&outputs);
    assert_eq!(body, json!({"worker_epoch": 9, "a": 1, "b": 2}));
}

#[test]
fn patches_coalesce_while_a_put_is_in_flight() {
    let mut sim = sim();
    let (id, _) = only_put(&enqueue(&mut sim, json!({"worker_status": "running"})));
    for patch in [
        json!({"worker_status": "idle", "external_metadata": {"a": 1, "b": 1}}),
        json!({"external_metadata": {"b": null, "c": {"d": 1}}}),
        json!({"worker_status": "busy"}),
    ] {
        assert!(
            enqueue(&mut sim, patch).is_empty(),
            "one PUT in flight at most"
        );
    }
    let (_, body) = only_put(&outcome(&mut sim, id, Outcome::Success));
    assert_eq!(
        body,
        json!({"worker_epoch": 1, "worker_status": "busy",
               "external_metadata": {"a": 1, "b": null, "c": {"d": 1}}})
    );
    assert_eq!(sim.up().counters().puts_sent, 2);
}

#[test]
fn a_noop_patch_is_not_sent() {
    let mut sim = sim();
    let (id, _) = only_put(&enqueue(
        &mut sim,
        json!({"worker_status": "running", "external_metadata": {"a": 1}}),
    ));
    outcome(&mut sim, id, Outcome::Success);
    // Against an idle uploader: skipped at once.
    assert!(enqueue(&mut sim, json!({"worker_status": "running"})).is_empty());
    assert!(enqueue(&mut sim, json!({"external_metadata": {"a": 1, "zz": null}})).is_empty());
    assert_eq!(sim.up().counters().skipped_noop, 2);
    // Changes that cancel out while a PUT is in flight: nothing more is sent once it lands.
    let (id, _) = only_put(&enqueue(&mut sim, json!({"worker_status": "idle"})));
    assert!(enqueue(&mut sim, json!({"tags": ["x"]})).is_empty());
    assert!(enqueue(&mut sim, json!({"tags": null})).is_empty());
    assert!(outcome(&mut sim, id, Outcome::Success).is_empty());
    assert!(sim.up().is_idle());
    let c = sim.up().counters();
    assert_eq!((c.puts_sent, c.skipped_noop, c.patches), (2, 4, 6));
}

#[test]
fn a_patch_made_redundant_by_a_rejected_update_is_still_sent() {
    let mut sim = sim();
    let (id, _) = only_put(&enqueue(&mut sim, json!({"worker_status": "running"})));
    // A no-op against the view, but only because of the PUT in flight.
    assert!(enqueue(&mut sim, json!({"worker_status": "running"})).is_empty());
    let outputs = outcome(&mut sim, id, Outcome::Permanent(400));
    let Output::Rejected(rejection) = &outputs[0] else {
        panic!("{outputs:?}")
    };
    assert_eq!(rejection.patches, 0..1);
    let (_, body) = only_put(&outputs[1..]);
    assert_eq!(body, json!({"worker_epoch": 1, "worker_status": "running"}));
}

#[test]
fn a_two_patch_update_goes_as_two_puts_in_order() {
    let mut sim = sim();
    sim.input("rebase", |up, now| {
        up.rebase(now, json!({"external_metadata": {"a": {"c": 2}}}))
            .unwrap()
    });
    let (id, _) = only_put(&enqueue(&mut sim, json!({"worker_status": "running"})));
    enqueue(&mut sim, json!({"external_metadata": {"a": null}}));
    enqueue(&mut sim, json!({"external_metadata": {"a": {"b": 1}}}));
    let (id, first) = only_put(&outcome(&mut sim, id, Outcome::Success));
    assert_eq!(
        first,
        json!({"worker_epoch": 1, "external_metadata": {"a": null}})
    );
    let (id, second) = only_put(&outcome(&mut sim, id, Outcome::Success));
    assert_eq!(
        second,
        json!({"worker_epoch": 1, "external_metadata": {"a": {"b": 1}}})
    );
    outcome(&mut sim, id, Outcome::Success);
    assert_eq!(
        sim.up().acknowledged(),
        &json!({"worker_status": "running", "external_metadata": {"a": {"b": 1}}})
    );
    assert_eq!(sim.up().view(), sim.up().acknowledged());
}

#[test]
fn failures_retry_on_the_uploader_curve_and_absorb_new_patches() {
    let mut sim = sim();
    let (mut id, _) = only_put(&enqueue(&mut sim, json!({"a": 1})));
    let mut expected_base = Duration::from_millis(500);
    for attempt in 1..=4u32 {
        let outputs = outcome(&mut sim, id, Outcome::Transient(TransientCause::Transport));
        let Output::Retrying {
            attempt: a,
            delay,
            at,
        } = outputs[0].clone()
        else {
            panic!("{outputs:?}")
        };
        assert_eq!(a, attempt);
        assert!(
            delay >= expected_base && delay < expected_base + Duration::from_millis(500),
            "{delay:?}"
        );
        assert_eq!(at, sim.now() + delay);
        assert_eq!(
            sim.driven.next_wake().map(|w| (w.at, w.reason)),
            Some((at, Timer::Backoff))
        );
        // Given during the wait: joins the retry.
        enqueue(&mut sim, json!({format!("k{attempt}"): attempt}));
        // An early timeout does nothing.
        sim.driven
            .machine_mut()
            .handle_timeout(Instant::from_micros(at.as_micros() - 1));
        assert!(sim.drain().is_empty());
        let outputs = sim.advance().unwrap();
        let (next, body) = only_put(&outputs);
        assert_eq!(body[format!("k{attempt}")], json!(attempt));
        assert_eq!(body["a"], json!(1));
        id = next;
        expected_base *= 2;
    }
    outcome(&mut sim, id, Outcome::Success);
    let c = sim.up().counters();
    assert_eq!((c.retries, c.puts_sent, c.puts_acknowledged), (4, 5, 1));
    // Success resets the curve.
    let (id, _) = only_put(&enqueue(&mut sim, json!({"a": 2})));
    let outputs = outcome(&mut sim, id, Outcome::Transient(TransientCause::Transport));
    let Output::Retrying {
        attempt: 1, delay, ..
    } = outputs[0]
    else {
        panic!("{outputs:?}")
    };
    assert!(delay < Duration::from_secs(1));
}

#[test]
fn a_throttle_hint_is_honoured() {
    let mut sim = sim();
    let (id, _) = only_put(&enqueue(&mut sim, json!({"a": 1})));
    let outputs = outcome(&mut sim, id, Outcome::Throttled(Duration::from_secs(7)));
    let Output::Retrying { delay, .. } = outputs[0] else {
        panic!("{outputs:?}")
    };
    assert!(
        delay >= Duration::from_secs(7) && delay < Duration::from_millis(7500),
        "{delay:?}"
    );
}

#[test]
fn close_interrupts_the_backoff_and_hands_back_what_is_unacknowledged() {
    let mut sim = sim();
    let (id, _) = only_put(&enqueue(&mut sim, json!({"a": 1})));
    outcome(&mut sim, id, Outcome::Transient(TransientCause::Transport));
    enqueue(&mut sim, json!({"b": 2}));
    let retry_at = sim.driven.next_wake().unwrap().at;
    sim.set_time(Instant::from_millis(10));
    assert!(retry_at > sim.now());
    let (_, outputs) = sim.input("close", |up, now| up.close(now));
    let [Output::Closed(closed)] = outputs.as_slice() else {
        panic!("{outputs:?}")
    };
    assert_eq!(closed.patches, 0..2);
    assert_eq!(closed.update, vec![obj(json!({"a": 1, "b": 2}))]);
    assert_eq!(closed.in_flight, None);
    assert_eq!(sim.driven.next_wake(), None, "no retry is left scheduled");
    sim.driven.machine_mut().handle_timeout(retry_at);
    assert!(sim.drain().is_empty());
    assert_eq!(
        sim.input("enqueue after close", |up, now| up
            .enqueue(now, json!({"c": 3})))
            .0,
        Err(state::Error::Closed)
    );
    sim.input("close again", |up, now| up.close(now));
    assert!(sim.drain().is_empty());
    // A late outcome after close is ignored.
    let now = sim.now();
    sim.driven
        .machine_mut()
        .handle_outcome(now, id, Outcome::Success);
    assert!(sim.drain().is_empty());
}

#[test]
fn close_with_a_put_in_flight_says_so() {
    let mut sim = sim();
    let (id, _) = only_put(&enqueue(&mut sim, json!({"a": 1})));
    enqueue(&mut sim, json!({"b": 2}));
    let (_, outputs) = sim.input("close", |up, now| up.close(now));
    let [Output::Closed(closed)] = outputs.as_slice() else {
        panic!("{outputs:?}")
    };
    assert_eq!(closed.in_flight, Some(id));
    assert_eq!(
        closed.update,
        vec![obj(json!({"a": 1})), obj(json!({"b": 2}))]
    );
    assert_eq!(closed.patches, 0..2);
}

#[test]
fn a_permanent_failure_rolls_the_view_back_and_reports_the_update() {
    let mut sim = sim();
    sim.input("rebase", |up, now| {
        up.rebase(now, json!({"worker_status": "idle", "worker_epoch": 1}))
            .unwrap()
    });
    assert_eq!(
        sim.up().view(),
        &json!({"worker_status": "idle"}),
        "the epoch is not state"
    );
    let (id, _) = only_put(&enqueue(
        &mut sim,
        json!({"worker_status": "running", "bad": true}),
    ));
    enqueue(&mut sim, json!({"external_metadata": {"k": 1}}));
    assert_eq!(
        sim.up().view(),
        &json!({"worker_status": "running", "bad": true, "external_metadata": {"k": 1}})
    );
    let outputs = outcome(&mut sim, id, Outcome::Permanent(422));
    let Output::Rejected(rejection) = &outputs[0] else {
        panic!("{outputs:?}")
    };
    assert_eq!(rejection.id, id);
    assert_eq!(rejection.status, 422);
    assert_eq!(rejection.patches, 0..1);
    assert_eq!(
        rejection.update,
        vec![obj(json!({"worker_status": "running", "bad": true}))]
    );
    assert_eq!(rejection.applied_resets, None);
    // Rolled back to the acknowledged state plus what was not part of the rejected update.
    assert_eq!(
        sim.up().view(),
        &json!({"worker_status": "idle", "external_metadata": {"k": 1}})
    );
    let (id, body) = only_put(&outputs[1..]);
    assert_eq!(
        body,
        json!({"worker_epoch": 1, "external_metadata": {"k": 1}})
    );
    outcome(&mut sim, id, Outcome::Success);
    assert_eq!(sim.up().acknowledged(), sim.up().view());
    assert_eq!(sim.up().counters().rejections, 1);
}

#[test]
fn a_rejected_second_stage_reports_the_resets_that_landed() {
    let mut sim = sim();
    sim.input("rebase", |up, now| {
        up.rebase(now, json!({"external_metadata": {"a": {"c": 2}}}))
            .unwrap()
    });
    let (id, _) = only_put(&enqueue(&mut sim, json!({"worker_status": "running"})));
    enqueue(&mut sim, json!({"external_metadata": {"a": 5}}));
    enqueue(&mut sim, json!({"external_metadata": {"a": {"b": 1}}}));
    let (id, _) = only_put(&outcome(&mut sim, id, Outcome::Success));
    let (id, _) = only_put(&outcome(&mut sim, id, Outcome::Success));
    let outputs = outcome(&mut sim, id, Outcome::Permanent(400));
    let Output::Rejected(rejection) = &outputs[0] else {
        panic!("{outputs:?}")
    };
    assert_eq!(rejection.patches, 1..3);
    assert_eq!(
        rejection.applied_resets,
        Some(obj(json!({"external_metadata": {"a": null}})))
    );
    assert_eq!(
        rejection.update,
        vec![obj(json!({"external_metadata": {"a": {"b": 1}}}))]
    );
    assert_eq!(
        sim.up().view(),
        &json!({"worker_status": "running", "external_metadata": {}})
    );
    assert!(sim.up().is_idle());
}

#[test]
fn bad_input_is_a_typed_error_and_queues_nothing() {
    let mut up = StateUploader::new(
        state::Config::default().with_max_patch_bytes(48),
        Rng::new(1),
    );
    let now = Instant::ZERO;
    up.set_epoch(now, 1);
    let cases = [
        (
            json!(["a"]),
            state::Error::NotAnObject { found: "an array" },
        ),
        (json!(null), state::Error::NotAnObject { found: "null" }),
        (json!("s"), state::Error::NotAnObject { found: "a string" }),
        (
            json!({"worker_epoch": 2}),
            state::Error::ReservedKey {
                key: "worker_epoch",
            },
        ),
        (
            json!({"a": "x".repeat(41)}),
            state::Error::TooLarge { limit: 48 },
        ),
    ];
    for (patch, error) in cases {
        assert_eq!(
            up.enqueue(now, patch.clone()),
            Err(error.clone()),
            "{patch}"
        );
        assert!(!error.to_string().is_empty());
    }
    // Exactly at the limit is fine; a nested `worker_epoch` is just data.
    assert_eq!(up.enqueue(now, json!({"a": "x".repeat(40)})), Ok(0));
    assert_eq!(
        up.enqueue(now, json!({"internal_metadata": {"worker_epoch": 1}})),
        Ok(1)
    );
    assert_eq!(up.counters().patches, 2);
    assert_eq!(
        up.rebase(now, json!([1])),
        Err(state::Error::NotAnObject { found: "an array" })
    );
    up.close(now);
    assert_eq!(up.enqueue(now, json!({"b": 1})), Err(state::Error::Closed));
    assert_eq!(up.enqueue(now, json!(1)), Err(state::Error::Closed));
    assert_eq!(up.flush(now, Instant::MAX), Err(state::Error::Closed));
    assert_eq!(up.rebase(now, json!({})), Err(state::Error::Closed));
    let err: &dyn core::error::Error = &state::Error::Closed;
    assert_eq!(err.to_string(), "the state uploader is closed");
}

#[test]
fn the_default_size_limit_is_one_mebibyte() {
    let mut up = StateUploader::new(state::Config::default(), Rng::new(1));
    let big = "x".repeat(1 << 20);
    assert_eq!(
        up.enqueue(Instant::ZERO, json!({ "a": big })),
        Err(state::Error::TooLarge { limit: 1 << 20 })
    );
}

#[test]
fn stale_and_unknown_outcomes_are_ignored() {
    let mut sim = sim();
    let (id, _) = only_put(&enqueue(&mut sim, json!({"a": 1})));
    assert!(outcome(&mut sim, PutId(99), Outcome::Permanent(400)).is_empty());
    assert!(outcome(&mut sim, id, Outcome::Success).is_empty());
    assert!(
        outcome(&mut sim, id, Outcome::Transient(TransientCause::Transport)).is_empty(),
        "duplicate"
    );
    assert!(sim.up().is_idle());
    assert_eq!(sim.up().counters().puts_acknowledged, 1);
}

#[test]
fn a_put_past_its_request_deadline_is_cancelled_and_retried() {
    let mut sim = sim();
    let (id, _) = only_put(&enqueue(&mut sim, json!({"a": 1})));
    let wake = sim.driven.next_wake().unwrap();
    assert_eq!(
        (wake.at, wake.reason),
        (Instant::from_secs(10), Timer::RequestDeadline)
    );
    let outputs = sim.advance().unwrap();
    assert_eq!(outputs[0], Output::Cancel { id });
    assert!(matches!(outputs[1], Output::Retrying { attempt: 1, .. }));
    // The late answer is ignored; the retry goes on the curve.
    assert!(outcome(&mut sim, id, Outcome::Success).is_empty());
    let (retry, _) = only_put(&sim.advance().unwrap());
    assert_ne!(retry, id);
    assert_eq!(sim.up().counters().timeouts, 1);
}

#[test]
fn flush_reports_drained_or_its_deadline() {
    let mut sim = sim();
    let (first, outputs) = sim.input("flush", |up, now| {
        up.flush(now, Instant::from_secs(1)).unwrap()
    });
    assert_eq!(outputs, vec![Output::FlushDone(first)]);

    let (id, _) = only_put(&enqueue(&mut sim, json!({"a": 1})));
    let (second, outputs) = sim.input("flush", |up, now| {
        up.flush(now, Instant::from_secs(60)).unwrap()
    });
    assert!(outputs.is_empty(), "not drained while a PUT is in flight");
    assert_ne!(second, first, "every flush has an id of its own");
    let outputs = outcome(&mut sim, id, Outcome::Success);
    assert_eq!(outputs, vec![Output::FlushDone(second)]);

    let (id, _) = only_put(&enqueue(&mut sim, json!({"a": 2})));
    outcome(&mut sim, id, Outcome::Transient(TransientCause::Transport));
    let (third, _) = sim.input("flush", |up, now| {
        up.flush(now, Instant::from_millis(300)).unwrap()
    });
    let wake = sim.driven.next_wake().unwrap();
    assert_eq!(
        (wake.at, wake.reason),
        (Instant::from_millis(300), Timer::FlushDeadline)
    );
    assert_eq!(sim.advance().unwrap(), vec![Output::FlushTimedOut(third)]);

    // A flush outstanding at close is done with it: everything is handed back.
    let (fourth, _) = sim.input("flush", |up, now| {
        up.flush(now, Instant::from_secs(60)).unwrap()
    });
    let (_, outputs) = sim.input("close", |up, now| up.close(now));
    assert_eq!(outputs[0], Output::FlushDone(fourth));
    assert!(matches!(outputs[1], Output::Closed(_)));
}

#[test]
fn time_never_runs_backwards() {
    let mut sim = sim();
    sim.set_time(Instant::from_secs(100));
    let (id, _) = only_put(&enqueue(&mut sim, json!({"a": 1})));
    // An outcome stamped earlier is taken at the latest time seen.
    sim.driven.machine_mut().handle_outcome(
        Instant::from_secs(1),
        id,
        Outcome::Transient(TransientCause::Transport),
    );
    let outputs = sim.drain();
    let Output::Retrying { at, .. } = outputs[0] else {
        panic!("{outputs:?}")
    };
    assert!(at > Instant::from_secs(100));
    sim.driven.machine_mut().handle_timeout(Instant::ZERO);
    assert!(sim.drain().is_empty());
}

#[test]
fn rebase_reapplies_what_is_unacknowledged() {
    let mut sim = sim();
    let (id, _) = only_put(&enqueue(&mut sim, json!({"worker_status": "running"})));
    enqueue(&mut sim, json!({"external_metadata": {"b": 2}}));
    sim.input("rebase", |up, now| {
        up.rebase(
            now,
            json!({"worker_epoch": 1, "worker_status": "idle", "external_metadata": {"a": 1}}),
        )
        .unwrap()
    });
    assert_eq!(
        sim.up().view(),
        &json!({"worker_status": "running", "external_metadata": {"a": 1, "b": 2}})
    );
    let (id, _) = only_put(&outcome(&mut sim, id, Outcome::Success));
    outcome(&mut sim, id, Outcome::Success);
    assert_eq!(sim.up().acknowledged(), sim.up().view());
}

#[test]
fn outputs_come_before_the_timeout() {
    let mut up = StateUploader::new(state::Config::default(), Rng::new(3));
    let now = Instant::ZERO;
    up.set_epoch(now, 2);
    up.enqueue(now, json!({"a": 1})).unwrap();
    let Poll::Output(Output::Send { id, .. }) = Machine::poll_output(&mut up) else {
        panic!()
    };
    up.handle_outcome(now, id, Outcome::Transient(TransientCause::Transport));
    assert!(matches!(
        Machine::poll_output(&mut up),
        Poll::Output(Output::Retrying { .. })
    ));
    let Poll::Timeout(Some(wake)) = Machine::poll_output(&mut up) else {
        panic!()
    };
    assert_eq!(wake.reason, Timer::Backoff);
    assert_eq!(
        up.enqueue(now, json!(1)),
        Err(state::Error::NotAnObject { found: "a number" })
    );
    let flush = up.flush(now, Instant::from_secs(1)).unwrap();
    up.close(now);
    assert_eq!(
        Machine::poll_output(&mut up),
        Poll::Output(Output::FlushDone(flush))
    );
    assert!(matches!(
        Machine::poll_output(&mut up),
        Poll::Output(Output::Closed(_))
    ));
    assert_eq!(Machine::poll_output(&mut up), Poll::Timeout(None));
}
