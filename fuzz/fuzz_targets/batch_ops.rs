#![no_main]
//! Arbitrary operation sequences against the batch drainer. After every step: bounds hold, at
//! most one batch is in flight, every body is the envelope its limits allow, and every flush
//! report is true: a flush is reported done only once every event enqueued before it (or a
//! replacement of one) was delivered or handed back, timed out only at its deadline with the
//! exact count still held, and never left unreported once complete or past its deadline. At the
//! end (after a close driven to completion): every event was delivered or handed back exactly
//! once, delivered events came in enqueue order, and every flush was reported once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use tether_core::batch::{
    Abandon, BatchDrainer, BatchId, Config, Envelope, Event, EventId, Output, Overflow, Reason,
};
use tether_core::{DrainBound, FlushId, Instant, Outcome, Poll, Rng, TransientCause};

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

/// How the fuzzer answers a send.
#[derive(Arbitrary, Debug)]
enum Answer {
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
    Outcome(Answer),
    Stale(Answer),
    Advance(u16),
    Fire,
    /// A wake-up one microsecond before the next one is due: an early timeout.
    Early,
    Flush(u16),
    Close(u16),
    Abandon,
}

fn outcome(a: &Answer) -> Outcome {
    match a {
        Answer::Delivered => Outcome::Success,
        Answer::Transient => Outcome::Transient(TransientCause::Transport),
        Answer::Throttled(ms) => Outcome::Throttled(Duration::from_millis(u64::from(*ms))),
        Answer::TooLarge => Outcome::TooLarge,
        Answer::Permanent(s) => Outcome::Permanent(*s),
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
    flushes: BTreeMap<FlushId, FlushCheck>,
}

/// A flush and what it waits for: the events not yet ended when it was asked for, and the
/// replacements of any of them.
struct FlushCheck {
    deadline: Instant,
    waits_for: BTreeSet<EventId>,
    reported: bool,
}

impl World {
    fn drain(&mut self) {
        let mut bound = DrainBound::new(self.now, 100_000);
        loop {
            match bound.poll(&mut self.d).expect("the machine livelocked") {
                Poll::Output(o) => self.check(o),
                Poll::Timeout(w) => {
                    self.wake = w.map(|w| w.at);
                    for (id, f) in &self.flushes {
                        if !f.reported {
                            assert!(
                                self.unsettled(f) > 0,
                                "{id} is complete but was not reported"
                            );
                            assert!(
                                self.now < f.deadline,
                                "{id} is past its deadline, unreported"
                            );
                        }
                    }
                    let c = self.d.counters();
                    assert!(c.queue_events <= self.config.max_queue_items);
                    assert!(c.queue_bytes <= self.config.max_queue_bytes);
                    self.in_flight = self.in_flight.filter(|f| Some(f.0) == self.d.in_flight());
                    assert_eq!(self.d.in_flight(), self.in_flight.map(|f| f.0));
                    return;
                }
            }
        }
    }

    fn unsettled(&self, f: &FlushCheck) -> usize {
        f.waits_for
            .iter()
            .filter(|id| !self.ended.contains_key(id))
            .count()
    }

    fn flush(&mut self, deadline: Instant) {
        let id = self.d.flush(self.now, deadline);
        let waits_for = self
            .order
            .keys()
            .copied()
            .filter(|e| !self.ended.contains_key(e))
            .collect();
        let check = FlushCheck {
            deadline,
            waits_for,
            reported: false,
        };
        assert!(
            self.flushes.insert(id, check).is_none(),
            "{id} issued twice"
        );
        self.drain();
    }

    fn flush_report(&mut self, flush: FlushId, timed_out: bool) {
        let f = self
            .flushes
            .get(&flush)
            .expect("a report for a flush never asked for");
        assert!(!f.reported, "{flush} reported twice");
        let left = self.unsettled(f);
        if timed_out {
            assert!(
                self.now >= f.deadline,
                "{flush} timed out before its deadline"
            );
            assert!(left > 0, "{flush} timed out although complete");
        } else {
            assert_eq!(left, 0, "{flush} done with events before it still held");
        }
        self.flushes.get_mut(&flush).unwrap().reported = true;
    }

    fn end(&mut self, id: EventId, reason: Option<Reason>) {
        assert!(self.order.contains_key(&id), "{id} never enqueued");
        assert!(self.ended.insert(id, reason).is_none(), "{id} ended twice");
    }

    fn check(&mut self, o: Output) {
        let flush = matches!(o, Output::FlushDone(_) | Output::FlushTimedOut(_));
        assert!(!self.closed || flush, "output after Closed: {o:?}");
        match o {
            Output::Send {
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
                        for f in self.flushes.values_mut() {
                            if f.waits_for.contains(&u.id) {
                                f.waits_for.insert(by);
                            }
                        }
                    }
                    self.end(u.id, Some(reason));
                }
            }
            Output::Closed => self.closed = true,
            Output::FlushDone(flush) => self.flush_report(flush, false),
            Output::FlushTimedOut(flush) => self.flush_report(flush, true),
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
        flushes: BTreeMap::new(),
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
            Op::Early => {
                if let Some(at) = w.wake.filter(|at| *at > w.now) {
                    w.now = at.saturating_sub(Duration::from_micros(1));
                    w.d.handle_timeout(w.now);
                    w.drain();
                }
            }
            Op::Flush(ms) => {
                let deadline = w.now + Duration::from_millis(u64::from(*ms));
                w.flush(deadline);
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
    for (id, f) in &w.flushes {
        assert!(f.reported, "{id} never reported");
    }
});
