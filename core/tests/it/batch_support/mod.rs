//! A bounded test driver and an invariant checker for the batch drainer.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use tether_core::batch::{
    BatchDrainer, BatchId, Config, Envelope, Event, EventId, Output, Reason, Timer,
};
use tether_core::{DrainBound, FlushId, Instant, Outcome, Poll, Rng, Wake};

/// The most outputs one drain may yield before the test calls it a livelock.
const DRAIN_BOUND: usize = 100_000;

/// A drainer on a simulated clock, with every output logged.
pub struct Harness {
    pub d: BatchDrainer,
    pub now: Instant,
    pub wake: Option<Wake<Timer>>,
    pub log: Vec<Output>,
    pub check: Checker,
}

impl Harness {
    pub fn new(config: Config, seed: u64) -> Self {
        Harness::without_epoch(config, seed).with_epoch(1)
    }

    pub fn without_epoch(config: Config, seed: u64) -> Self {
        Harness {
            d: BatchDrainer::new(config, Rng::new(seed)).expect("valid config"),
            now: Instant::ZERO,
            wake: None,
            log: Vec::new(),
            check: Checker::new(config),
        }
    }

    /// Events `{"n": i}` for `i` in `ns`, queued before the epoch is known, so the first
    /// batch takes as many as it can.
    pub fn loaded(config: Config, seed: u64, ns: impl IntoIterator<Item = u64>) -> Self {
        let mut h = Harness::without_epoch(config, seed);
        for n in ns {
            h.enqueue_json(serde_json::json!({ "n": n }));
        }
        h.with_epoch(1)
    }

    pub fn with_epoch(mut self, epoch: u64) -> Self {
        self.d.set_epoch(self.now, epoch);
        self.check.epoch = Some(epoch);
        self.drain();
        self
    }

    /// Polls until the timeout, checking each output; returns the outputs of this drain.
    pub fn drain(&mut self) -> Vec<Output> {
        self.check.now = self.now;
        let mut out = Vec::new();
        let mut bound = DrainBound::new(self.now, DRAIN_BOUND);
        loop {
            match bound.poll(&mut self.d).expect("the machine livelocked") {
                Poll::Output(o) => {
                    self.check.output(&o);
                    self.log.push(o.clone());
                    out.push(o);
                }
                Poll::Timeout(w) => {
                    self.wake = w;
                    self.check.depth(&self.d);
                    return out;
                }
            }
        }
    }

    pub fn enqueue(&mut self, event: Event) -> Result<EventId, tether_core::batch::Error> {
        let r = self.d.enqueue(self.now, event);
        if let Ok(id) = r {
            self.check.enqueued(id);
        }
        r
    }

    /// Asks for a flush with `deadline` (without draining), and has the checker hold the
    /// drainer to its report: done only once everything enqueued before it has ended, timed out
    /// only at the deadline with the right count left.
    pub fn flush(&mut self, deadline: Instant) -> FlushId {
        let id = self.d.flush(self.now, deadline);
        self.check.flushed(id, deadline);
        id
    }

    pub fn enqueue_json(&mut self, payload: Value) -> EventId {
        self.enqueue(Event::new(payload)).expect("enqueue")
    }

    /// Answers the batch in flight (draining first, so a send just made is seen).
    pub fn outcome(&mut self, outcome: Outcome) -> Vec<Output> {
        self.drain();
        let flight = self.check.in_flight.take().expect("a batch in flight");
        self.check.settling = Some(flight);
        self.d.handle_outcome(self.now, flight.0, outcome);
        self.drain()
    }

    pub fn advance(&mut self, by: core::time::Duration) -> Vec<Output> {
        self.now += by;
        self.d.handle_timeout(self.now);
        self.drain()
    }

    /// Jumps to the next wake-up (if any) and fires it.
    pub fn fire(&mut self) -> Option<Vec<Output>> {
        let w = self.wake?;
        if w.at > self.now {
            self.now = w.at;
        }
        self.d.handle_timeout(self.now);
        Some(self.drain())
    }

    /// Closes with `grace` and drives to the end, answering every send with `respond`.
    pub fn close_and_finish(
        &mut self,
        grace: core::time::Duration,
        mut respond: impl FnMut(usize) -> Outcome,
    ) {
        self.d.close(self.now, self.now + grace);
        self.drain();
        for round in 0..10_000 {
            if self.check.closed {
                return;
            }
            if self.check.in_flight.is_some() {
                self.outcome(respond(round));
            } else {
                self.fire().expect("a closing drainer always has a wake-up");
            }
        }
        panic!("close did not finish within the bound");
    }

    pub fn sent_bodies(&self) -> Vec<Value> {
        self.log
            .iter()
            .filter_map(|o| match o {
                Output::Send { body, .. } => Some(serde_json::from_slice(body).unwrap()),
                _ => None,
            })
            .collect()
    }
}

/// A flush the checker holds the drainer to.
#[derive(Debug)]
pub struct FlushCheck {
    pub deadline: Instant,
    /// The events that had not ended when the flush was asked for, and the replacements of
    /// any of them (a replacement counts as the event it replaced).
    pub waits_for: BTreeSet<EventId>,
    /// How it was reported, once it was.
    pub report: Option<Output>,
}

/// Tracks every event from enqueue to its one end, and checks the invariants on the way.
#[derive(Debug)]
pub struct Checker {
    /// The time of the drain under way.
    pub now: Instant,
    pub flushes: BTreeMap<FlushId, FlushCheck>,
    pub config: Config,
    pub epoch: Option<u64>,
    /// Event → its position in enqueue order (a replacement takes the replaced one's).
    pub order: BTreeMap<EventId, u64>,
    next_order: u64,
    pub delivered: Vec<EventId>,
    pub handed_back: BTreeMap<EventId, Reason>,
    pub in_flight: Option<(BatchId, usize)>,
    /// The flight an outcome was just given for.
    pub settling: Option<(BatchId, usize)>,
    pub closed: bool,
    pub batches: usize,
}

impl Checker {
    pub fn new(config: Config) -> Self {
        Checker {
            now: Instant::ZERO,
            flushes: BTreeMap::new(),
            config,
            epoch: None,
            order: BTreeMap::new(),
            next_order: 0,
            delivered: Vec::new(),
            handed_back: BTreeMap::new(),
            in_flight: None,
            settling: None,
            closed: false,
            batches: 0,
        }
    }

    pub fn enqueued(&mut self, id: EventId) {
        assert!(!self.order.contains_key(&id), "{id} issued twice");
        self.order.insert(id, self.next_order);
        self.next_order += 1;
    }

    /// Whether `id` was delivered or handed back.
    pub fn ended(&self, id: EventId) -> bool {
        self.handed_back.contains_key(&id) || self.delivered.contains(&id)
    }

    /// Events the flush waits for that have not ended.
    fn unsettled(&self, flush: &FlushCheck) -> usize {
        flush
            .waits_for
            .iter()
            .filter(|id| !self.ended(**id))
            .count()
    }

    /// A flush was asked for: it waits for every event enqueued so far that has not ended.
    pub fn flushed(&mut self, id: FlushId, deadline: Instant) {
        let waits_for = self
            .order
            .keys()
            .copied()
            .filter(|e| !self.ended(*e))
            .collect();
        let check = FlushCheck {
            deadline,
            waits_for,
            report: None,
        };
        assert!(
            self.flushes.insert(id, check).is_none(),
            "{id} issued twice"
        );
    }

    fn flush_report(&mut self, o: &Output) {
        let (Output::FlushDone(flush) | Output::FlushTimedOut(flush)) = o else {
            return;
        };
        let check = self
            .flushes
            .get(flush)
            .unwrap_or_else(|| panic!("{o:?} for a flush never asked for (use Harness::flush)"));
        assert!(check.report.is_none(), "{flush} reported twice: {o:?}");
        let left = self.unsettled(check);
        match o {
            Output::FlushDone(_) => assert_eq!(
                left, 0,
                "{flush} reported done with {left} of the events before it still held"
            ),
            Output::FlushTimedOut(_) => {
                assert!(
                    self.now >= check.deadline,
                    "{flush} timed out at {} before its deadline {}",
                    self.now,
                    check.deadline
                );
                assert!(
                    left > 0,
                    "{flush} timed out although everything before it ended"
                );
            }
            _ => unreachable!(),
        }
        self.flushes.get_mut(flush).unwrap().report = Some(o.clone());
    }

    /// At the end of a drain: no flush is left unreported that is complete or past its deadline.
    fn flushes_settled(&self) {
        for (id, check) in &self.flushes {
            if check.report.is_some() {
                continue;
            }
            assert!(
                self.unsettled(check) > 0,
                "{id} is complete but was not reported done"
            );
            assert!(
                self.now < check.deadline,
                "{id} is past its deadline {} at {} but was not reported",
                check.deadline,
                self.now
            );
        }
    }

    fn settle(&mut self, id: EventId) {
        assert!(
            self.order.contains_key(&id),
            "{id} settled but never enqueued"
        );
        assert!(
            !self.delivered.contains(&id),
            "{id} settled after being delivered"
        );
        assert!(!self.handed_back.contains_key(&id), "{id} settled twice");
    }

    pub fn output(&mut self, o: &Output) {
        let flush = matches!(o, Output::FlushDone(_) | Output::FlushTimedOut(_));
        assert!(
            !self.closed || flush,
            "only flush reports after Closed: {o:?}"
        );
        match o {
            Output::Send {
                id,
                body,
                items,
                bytes,
            } => {
                assert!(self.in_flight.is_none(), "two batches in flight");
                self.in_flight = Some((*id, *items));
                self.batches += 1;
                self.check_body(body, *items, *bytes);
            }
            Output::Delivered { batch, events } => {
                let (id, items) = self.settling.take().expect("delivered without a send");
                assert_eq!(id, *batch);
                assert_eq!(events.len(), items);
                for e in events {
                    self.settle(*e);
                    self.delivered.push(*e);
                }
            }
            Output::HandedBack { reason, events } => {
                assert!(!events.is_empty(), "empty hand-back");
                if matches!(
                    reason,
                    Reason::TooLarge | Reason::Rejected { .. } | Reason::TooManyFailures { .. }
                ) {
                    let (_, items) = self.settling.take().expect("dead letters without a send");
                    assert_eq!(events.len(), items, "the whole batch is dead");
                }
                if matches!(
                    reason,
                    Reason::Closed | Reason::Superseded | Reason::GivenUp
                ) {
                    self.in_flight = None;
                }
                for u in events {
                    self.settle(u.id);
                    if let Reason::Replaced { by } = reason {
                        let pos = self.order[&u.id];
                        self.order.insert(*by, pos);
                        for flush in self.flushes.values_mut() {
                            if flush.waits_for.contains(&u.id) {
                                flush.waits_for.insert(*by);
                            }
                        }
                    }
                    self.handed_back.insert(u.id, *reason);
                }
            }
            Output::Closed => {
                self.closed = true;
                self.in_flight = None;
            }
            Output::FlushDone(_) | Output::FlushTimedOut(_) => self.flush_report(o),
        }
    }

    fn check_body(&self, body: &[u8], items: usize, bytes: usize) {
        let c = &self.config;
        assert!(items >= 1 && items <= c.max_batch_items, "{items} items");
        assert!(
            items == 1 || bytes <= c.max_batch_bytes,
            "{bytes} bytes in {items}"
        );
        let v: Value = serde_json::from_slice(body).expect("body is JSON");
        let obj = v.as_object().expect("body is an object");
        assert_eq!(obj["worker_epoch"].as_u64(), self.epoch, "epoch");
        let key = match c.envelope {
            Envelope::Events => "events",
            _ => "updates",
        };
        assert_eq!(obj.len(), 2, "only worker_epoch and {key}");
        let arr = obj[key].as_array().expect("items array");
        assert_eq!(arr.len(), items);
        let mut sum = 0;
        for item in arr {
            sum += serde_json::to_vec(item).unwrap().len();
            if c.envelope == Envelope::Events {
                let item = item.as_object().unwrap();
                assert!(item["payload"]["uuid"].is_string(), "uuid stamped");
                match item.get("ephemeral") {
                    None => assert_eq!(item.len(), 1),
                    Some(e) => assert_eq!(e, &Value::Bool(true), "ephemeral only when true"),
                }
            }
        }
        assert_eq!(sum, bytes, "bytes is the items' JSON");
        let prefix = format!("{{\"worker_epoch\":{},\"{key}\":[", self.epoch.unwrap());
        assert_eq!(
            body.len(),
            prefix.len() + bytes + items - 1 + 2,
            "body is concatenation"
        );
    }

    pub fn depth(&mut self, d: &BatchDrainer) {
        let c = d.counters();
        assert!(c.queue_events <= self.config.max_queue_items, "{c:?}");
        assert!(c.queue_bytes <= self.config.max_queue_bytes, "{c:?}");
        // A retried or split batch ends without an output.
        self.settling = None;
        assert_eq!(d.in_flight(), self.in_flight.map(|f| f.0));
        self.flushes_settled();
    }

    /// Every event delivered or handed back exactly once, delivered in enqueue order; every
    /// flush reported.
    pub fn finish(&self) {
        assert!(self.closed, "drainer not closed");
        for (id, check) in &self.flushes {
            assert!(check.report.is_some(), "{id} never reported");
        }
        let delivered: BTreeSet<_> = self.delivered.iter().copied().collect();
        assert_eq!(delivered.len(), self.delivered.len(), "delivered twice");
        for id in self.order.keys() {
            let d = delivered.contains(id);
            let h = self.handed_back.contains_key(id);
            assert!(d ^ h, "{id}: delivered {d}, handed back {h}");
        }
        let positions: Vec<u64> = self.delivered.iter().map(|id| self.order[id]).collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "delivery order differs from enqueue order: {positions:?}"
        );
    }
}
