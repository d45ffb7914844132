//! A handed-back event says whether the server may hold it after all: when a send of it ended
//! without an answer, or it was on the wire when the drainer was abandoned.

use serde_json::json;
use tether_core::batch::{Abandon, BatchDrainer, BatchId, Config, Event, Output, Reason};
use tether_core::{Driven, Instant, Outcome, Rng, TransientCause};

fn drainer() -> Driven<BatchDrainer> {
    let mut d = BatchDrainer::new(Config::default(), Rng::new(3)).unwrap();
    d.set_epoch(Instant::ZERO, 1);
    Driven::new(d, Instant::ZERO)
}

fn sent(outputs: &[Output]) -> BatchId {
    outputs
        .iter()
        .find_map(|o| match o {
            Output::Send { id, .. } => Some(*id),
            _ => None,
        })
        .expect("a batch was sent")
}

fn handed_back(outputs: &[Output]) -> Vec<(Reason, bool)> {
    outputs
        .iter()
        .flat_map(|o| match o {
            Output::HandedBack { reason, events } => events
                .iter()
                .map(|e| (*reason, e.maybe_delivered))
                .collect(),
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn a_lost_answer_then_a_refusal_is_maybe_delivered() {
    let mut d = drainer();
    let (_, out) = d
        .call(|d, now| d.enqueue(now, Event::new(json!({"a": 1}))))
        .unwrap();
    let first = sent(&out);
    let lost = Outcome::Transient(TransientCause::Transport);
    d.call(|d, now| d.handle_outcome(now, first, lost)).unwrap();
    let retry = sent(&d.advance().unwrap().unwrap());
    let (_, out) = d
        .call(|d, now| d.handle_outcome(now, retry, Outcome::Permanent(400)))
        .unwrap();
    assert_eq!(
        handed_back(&out),
        [(Reason::Rejected { status: 400 }, true)]
    );
}

#[test]
fn a_refusal_with_an_answer_is_not_maybe_delivered() {
    let mut d = drainer();
    let (_, out) = d
        .call(|d, now| d.enqueue(now, Event::new(json!({"a": 1}))))
        .unwrap();
    let id = sent(&out);
    let (_, out) = d
        .call(|d, now| d.handle_outcome(now, id, Outcome::Permanent(400)))
        .unwrap();
    assert_eq!(
        handed_back(&out),
        [(Reason::Rejected { status: 400 }, false)]
    );
}

#[test]
fn abandoned_on_the_wire_is_maybe_delivered_and_queued_is_not() {
    let mut d = drainer();
    d.call(|d, now| d.enqueue(now, Event::new(json!({"a": 1}))))
        .unwrap()
        .0
        .unwrap();
    // The first batch is on the wire; the second event waits behind it.
    d.call(|d, now| d.enqueue(now, Event::new(json!({"a": 2}))))
        .unwrap()
        .0
        .unwrap();
    let (_, out) = d
        .call(|d, now| d.abandon(now, Abandon::Superseded))
        .unwrap();
    assert_eq!(
        handed_back(&out),
        [(Reason::Superseded, true), (Reason::Superseded, false)]
    );
}
