#![no_main]
//! Arbitrary operation sequences against the batch drainer. After every step: bounds hold, at
//! most one batch is in flight, every body is the envelope its limits allow. At the end (after a
//! close driven to completion): every event was delivered or handed back exactly once, and
//! delivered events came in enqueue order.

use std::collections::BTreeMap;
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use tether_core::batch::{Abandon, BatchDrainer, BatchId, Config, Envelope, Event, EventId, Output, Overflow, Reason};
use tether_core::{Instant, Outcome, Poll, Rng, TransientCause};

#[derive(Arbitrary, Debug)]
struct Setup {
    seed: u64,
    items: u8,
    bytes: u16,
    queue_mul: u8,
    queue_items: u8,
    overflow: u8,
    linger_ms: u16,
    max_failures: Option<u8>,
    updates: bool,
}

#[derive(Arbitrary, Debug)]
enum Outcome {
    Delivered,
    Transient,
    Throttled(u16),
    TooLarge,
    Permanent(u16),
}

#[derive(Arbitrary, Debug)]
enum Op {
    Enqueue {
        pad: u8,
        key: Option<u8>,
        ephemeral: bool,
        own_uuid: bool,
        not_object: bool,
    },
    Outcome(Outcome),
    Stale(Outcome),
    Advance(u16),
    Fire,
    Flush(u16),
    Close(u16),
    Abandon,
}

fn outcome(o: &Outcome) -> Outcome {
    match o {
        Outcome::Delivered => Outcome::Success,
        Outcome::Transient => Outcome::Transient(TransientCause::Transport),
        Outcome::Throttled(ms) => Outcome::Throttled(Duration::from_millis(u64::from(*ms)),),
        Outcome::TooLarge => Outcome::TooLarge,
        Outcome::Permanent(s) => Outcome::Permanent(*s),
    }
}

struct World {
    d: BatchDrainer,
    config: Config,
    now: Instant,
    wake: Option<Instant>,
    order: BTreeMap<EventId, u64>,
    next_order: u64,
    ended: BTreeMap<EventId, Option<Reason>>,
    delivered: Vec<EventId>,
    in_flight: Option<(BatchId, usize)>,
    closed: bool,
}

impl World {
    fn drain(&mut self) {
        for _ in 0..100_000 {
            match self.d.poll_output() {
                Poll::Output(o) => self.check(o),
                Poll::Timeout(w) => {
                    self.wake = w.map(|w| w.at);
                    let c = self.d.counters();
                    assert!(c.queue_events <= self.config.max_queue_items);
                    assert!(c.queue_bytes <= self.config.max_queue_bytes);
                    self.in_flight = self.in_flight.filter(|f| Some(f.0) == self.d.in_flight());
                    assert_eq!(self.d.in_flight(), self.in_flight.map(|f| f.0));
                    return;
                }
            }
        }
        panic!("no timeout after 100 000 outputs");
    }

    fn end(&mut self, id: EventId, reason: Option<Reason>) {
        assert!(self.order.contains_key(&id), "{id} never enqueued");
        assert!(self.ended.insert(id, reason).is_none(), "{id} ended twice");
    }

    fn check(&mut self, o: Output) {
        let flush = matches!(o, Output::FlushDone(_) | Output::FlushTimedOut(_));
        assert!(!self.closed || flush, "output after Closed: {o:?}");
        match o {
            Output::SendBatch {
                id,
                body,
                items,
                bytes,
            } => {
                assert!(self.in_flight.is_none(), "two in flight");
                self.in_flight = Some((id, items));
                assert!(items >= 1 && items <= self.config.max_batch_items);
                assert!(items == 1 || bytes <= self.config.max_batch_bytes);
                let v: Value = serde_json::from_slice(&body).expect("body is JSON");
                let key = if self.config.envelope == Envelope::Events {
                    "events"
                } else {
                    "updates"
                };
                let arr = v[key].as_array().expect("items");
                assert_eq!(arr.len(), items);
                let sum: usize = arr
                    .iter()
                    .map(|i| serde_json::to_vec(i).unwrap().len())
                    .sum();
                assert_eq!(sum, bytes);
            }
            Output::Delivered { events, .. } => {
                for e in events {
                    self.end(e, None);
                    self.delivered.push(e);
                }
            }
            Output::HandedBack { reason, events } => {
                assert!(!events.is_empty());
                for u in events {
                    if let Reason::Replaced { by } = reason {
                        let pos = self.order[&u.id];
                        self.order.insert(by, pos);
                    }
                    self.end(u.id, Some(reason));
                }
            }
            Output::Closed => self.closed = true,
            Output::FlushDone(_) | Output::FlushTimedOut(_) => {}
        }
    }

    fn fire(&mut self) {
        if let Some(at) = self.wake {
            self.now = self.now.max(at);
            self.d.handle_timeout(self.now);
            self.drain();
        }
    }
}

fuzz_target!(|input: (Setup, Vec<Op>)| {
    let (s, ops) = input;
    let items = usize::from(s.items % 8) + 1;
    let bytes = usize::from(s.bytes % 2000) + 20;
    let config = Config {
        envelope: if s.updates {
            Envelope::DeliveryUpdates
        } else {
            Envelope::Events
        },
        max_batch_items: items,
        max_batch_bytes: bytes,
        max_queue_items: items.max(usize::from(s.queue_items)),
        max_queue_bytes: bytes * (usize::from(s.queue_mul % 4) + 1),
        overflow: match s.overflow % 3 {
            0 => Overflow::Reject,
            1 => Overflow::DropOldest,
            _ => Overflow::DropNewest,
        },
        linger: Duration::from_millis(u64::from(s.linger_ms % 1000)),
        max_consecutive_failures: s.max_failures.map(|m| u32::from(m % 6) + 1),
        ..Config::default()
    };
    let mut w = World {
        d: BatchDrainer::new(config, Rng::new(s.seed)).expect("valid"),
        config,
        now: Instant::ZERO,
        wake: None,
        order: BTreeMap::new(),
        next_order: 0,
        ended: BTreeMap::new(),
        delivered: Vec::new(),
        in_flight: None,
        closed: false,
    };
    w.d.set_epoch(w.now, s.seed % 1000);
    w.drain();
    let mut stale = None;
    for (n, op) in ops.iter().enumerate().take(500) {
        match op {
            Op::Enqueue {
                pad,
                key,
                ephemeral,
                own_uuid,
                not_object,
            } => {
                let mut payload = json!({ "n": n, "pad": "p".repeat(usize::from(*pad)) });
                if *own_uuid {
                    payload["uuid"] = json!(n);
                }
                if *not_object {
                    payload = json!([n]);
                }
                let mut event = Event::new(payload).ephemeral(*ephemeral);
                if let Some(k) = key {
                    event = event.replace_key(format!("k{}", k % 3));
                }
                if let Ok(id) = w.d.enqueue(w.now, event) {
                    w.order.insert(id, w.next_order);
                    w.next_order += 1;
                }
                w.drain();
            }
            Op::Outcome(o) => {
                if let Some((id, _)) = w.in_flight {
                    stale = Some(id);
                    w.in_flight = None;
                    w.d.handle_outcome(w.now, id, outcome(o));
                    w.drain();
                }
            }
            Op::Stale(o) => {
                if let Some(id) = stale {
                    w.d.handle_outcome(w.now, id, outcome(o));
                    w.drain();
                }
            }
            Op::Advance(ms) => {
                w.now = w.now + Duration::from_millis(u64::from(*ms));
                w.d.handle_timeout(w.now);
                w.drain();
            }
            Op::Fire => w.fire(),
            Op::Flush(ms) => {
                let _ =
                    w.d.flush(w.now, w.now + Duration::from_millis(u64::from(*ms)));
                w.drain();
            }
            Op::Close(ms) => {
                w.d.close(w.now, w.now + Duration::from_millis(u64::from(*ms)));
                w.drain();
            }
            Op::Abandon => {
                w.d.abandon(w.now, Abandon::Superseded);
                w.drain();
            }
        }
    }
    w.d.close(w.now, w.now + Duration::from_secs(30));
    w.drain();
    for round in 0..100_000u32 {
        if w.closed {
            break;
        }
        match w.in_flight {
            Some((id, _)) => {
                let o = if round % 2 == 0 {
                    Outcome::Transient(TransientCause::Transport)
                } else {
                    Outcome::Success
                };
                w.in_flight = None;
                w.d.handle_outcome(w.now, id, o);
                w.drain();
            }
            None => {
                assert!(w.wake.is_some(), "a closing drainer always has a wake-up");
                w.fire();
            }
        }
    }
    assert!(w.closed, "close did not finish");
    for id in w.order.keys() {
        assert!(
            w.ended.contains_key(id),
            "{id} neither delivered nor handed back"
        );
    }
    let positions: Vec<u64> = w.delivered.iter().map(|id| w.order[id]).collect();
    assert!(
        positions.windows(2).all(|p| p[0] < p[1]),
        "delivered out of order"
    );
});
