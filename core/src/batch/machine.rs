//! The drainer itself: intake, serial sends, outcomes, flushes, close and abandon.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use super::body;
use super::config::{BodyMode, Config, ConfigError, Overflow};
use super::counters::Counters;
use super::error::Error;
use super::event::{Event, EventId, PreparedEvent, Undelivered};
use super::io::{Abandon, BatchId, Output, Reason, Timer};
use super::queue::{Queue, Queued};
use crate::backoff::Backoff;
use crate::classify::{Outcome, TransientCause};
use crate::drive::{FlushId, Machine, Poll, Wake};
use crate::rng::Rng;
use crate::time::{Clock, Instant};

/// How much the drainer holds, so a shim can wait for capacity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Depth {
    /// Events held, queued and in flight.
    pub events: usize,
    /// Bytes of event JSON held.
    pub bytes: usize,
}

#[derive(Debug)]
struct InFlight {
    id: BatchId,
    events: Vec<Queued>,
    bytes: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Open,
    Closing { deadline: Instant },
    Closed,
}

#[derive(Clone, Copy, Debug)]
struct PendingFlush {
    id: FlushId,
    /// Done once no held event has a `seq` below this.
    mark: u64,
    deadline: Instant,
}

/// The event uploader: a bounded FIFO drained one batch at a time (docs/ARCHITECTURE.md §Batch drainer).
///
/// Every mutating method takes `now`; drain [`poll_output`](Self::poll_output) after each.
#[derive(Debug)]
pub struct BatchDrainer {
    config: Config,
    rng: Rng,
    clock: Clock,
    backoff: Backoff,
    epoch: Option<u64>,
    queue: Queue,
    in_flight: Option<InFlight>,
    /// The allocation of the last delivered batch, emptied, for the next one.
    spare: Vec<Queued>,
    /// No send before this, after a failure.
    retry_at: Option<Instant>,
    /// Most items in the next batch: the same batch again after a failure, half after a 413.
    next_cap: Option<usize>,
    failures: u32,
    flushes: VecDeque<PendingFlush>,
    state: State,
    outputs: VecDeque<Output>,
    next_event: u64,
    next_seq: u64,
    next_batch: u64,
    next_flush: u64,
    counters: Counters,
    /// With an outbox: every event admitted to the queue, for the session to persist.
    accepted: Option<Vec<(EventId, PreparedEvent)>>,
}

impl BatchDrainer {
    /// A drainer with no epoch yet, drawing uuids and jitter from `rng`.
    pub fn new(config: Config, rng: Rng) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(BatchDrainer {
            backoff: Backoff::new(config.backoff),
            config,
            rng,
            clock: Clock::default(),
            epoch: None,
            queue: Queue::default(),
            in_flight: None,
            spare: Vec::new(),
            retry_at: None,
            next_cap: None,
            failures: 0,
            flushes: VecDeque::new(),
            state: State::Open,
            outputs: VecDeque::new(),
            next_event: 0,
            next_seq: 0,
            next_batch: 0,
            next_flush: 0,
            counters: Counters::default(),
            accepted: None,
        })
    }

    /// Sets the `worker_epoch` of every body from now on. Nothing is sent before an epoch is
    /// set: a session learns its epoch only once registered, and holds its events until then.
    pub fn set_epoch(&mut self, now: Instant, epoch: u64) {
        self.epoch = Some(epoch);
        self.step(now);
    }

    /// Stops sending until [`set_epoch`](Self::set_epoch) is called again, keeping everything:
    /// for a session that gave up and holds its queues until the caller reconnects. A batch
    /// in flight goes back to the front of the queue, in order and with its uuids, marked
    /// maybe delivered (its answer will never be known); no failure is counted and the
    /// backoff starts afresh. Intake, flushes and close go on as before.
    pub fn suspend(&mut self, now: Instant) {
        let now = self.clock.observe(now);
        self.epoch = None;
        self.retry_at = None;
        self.failures = 0;
        self.backoff.reset();
        if let Some(flight) = self.in_flight.take() {
            let mut events = flight.events;
            for q in &mut events {
                q.maybe_delivered = true;
            }
            self.next_cap = Some(events.len());
            self.queue.put_back(events);
        }
        self.step(now);
    }

    /// Serialises, stamps and queues `event`; returns its id.
    ///
    /// Fails, handing the event back, if it is not an object, is larger than a batch, the
    /// queue is full under [`Overflow::Reject`], or the drainer is closed.
    pub fn enqueue(&mut self, now: Instant, event: Event) -> Result<EventId, Error> {
        let prepared = self.prepare(event)?;
        self.enqueue_prepared(now, prepared)
    }

    /// Validates, stamps and serialises `event` without queueing it, e.g. to do the work before
    /// waiting for capacity. Draws the uuid now; the machine's state is otherwise unchanged.
    pub fn prepare(&mut self, event: Event) -> Result<PreparedEvent, Error> {
        let inherit = match event.key() {
            Some(key) => self
                .queue
                .keyed(key)
                .and_then(|q| q.event.keyed())
                .and_then(|k| k.uuid.clone()),
            None => None,
        };
        PreparedEvent::prepare(
            event,
            self.config.envelope,
            self.config.max_batch_bytes,
            inherit.as_deref(),
            &mut self.rng,
        )
    }

    /// [`prepare`](Self::prepare) for a `Serialize` value, through the typed fast path.
    pub fn prepare_serialize<T: serde::Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<PreparedEvent, Error> {
        PreparedEvent::prepare_serialize(
            value,
            self.config.envelope,
            self.config.max_batch_bytes,
            &mut self.rng,
        )
    }

    /// Serialises `value` straight into its wire item (stamping a `uuid` when it has no string
    /// one) and enqueues it as a plain event: the typed fast path, with no
    /// [`Value`](serde_json::Value) in between. The result is the same as
    /// `enqueue(now, Event::from_serialize(value)?)`.
    pub fn enqueue_serialize<T: serde::Serialize + ?Sized>(
        &mut self,
        now: Instant,
        value: &T,
    ) -> Result<EventId, Error> {
        let now = self.clock.observe(now);
        let event = self.prepare_serialize(value)?;
        let result = self.admit(now, event);
        self.step(now);
        result
    }

    /// Queues an already prepared event, e.g. one handed back by
    /// [`Error::QueueFull`]; its uuid is kept.
    pub fn enqueue_prepared(
        &mut self,
        now: Instant,
        event: PreparedEvent,
    ) -> Result<EventId, Error> {
        let now = self.clock.observe(now);
        let result = self.admit(now, event);
        self.step(now);
        result
    }

    /// Reports how the send `batch` went, as the response table classified it. An outcome for
    /// a batch not in flight (stale, or after close) is ignored and counted.
    ///
    /// The session-wide outcomes ([`Outcome::Superseded`], [`Outcome::AuthFailure`],
    /// [`Outcome::SessionUnknown`]) are the session's to act on; the drainer alone retries
    /// them like any transient failure.
    pub fn handle_outcome(&mut self, now: Instant, batch: BatchId, outcome: Outcome) {
        let now = self.clock.observe(now);
        match self.in_flight.take() {
            Some(f) if f.id == batch => self.settle_batch(now, f, outcome),
            other => {
                self.in_flight = other;
                self.counters.stale_outcomes += 1;
            }
        }
        self.step(now);
    }

    /// Asks to be told when everything enqueued so far is delivered or handed back
    /// ([`Output::FlushDone`]), or that `deadline` passed first ([`Output::FlushTimedOut`]).
    /// Lingering events are sent at once while a flush waits.
    ///
    /// A replacement counts as the event it replaced, so a flush also waits for a replacement
    /// enqueued after it.
    pub fn flush(&mut self, now: Instant, deadline: Instant) -> FlushId {
        let now = self.clock.observe(now);
        let id = FlushId(self.next_flush);
        self.next_flush += 1;
        self.flushes.push_back(PendingFlush {
            id,
            mark: self.next_seq,
            deadline,
        });
        self.step(now);
        id
    }

    /// Stops intake and drains until `deadline`; then hands back whatever is left in one
    /// [`Output::HandedBack`] with [`Reason::Closed`]. Ends with [`Output::Closed`]. A second
    /// call can only bring the deadline forward.
    pub fn close(&mut self, now: Instant, deadline: Instant) {
        let now = self.clock.observe(now);
        self.state = match self.state {
            State::Open => State::Closing { deadline },
            State::Closing { deadline: d } => State::Closing {
                deadline: d.min(deadline),
            },
            State::Closed => State::Closed,
        };
        self.step(now);
    }

    /// Stops at once, for a session that ended: everything undelivered, in flight included,
    /// is handed back in one output with `reason`, then [`Output::Closed`]. A late outcome is
    /// ignored.
    pub fn abandon(&mut self, now: Instant, reason: Abandon) {
        let now = self.clock.observe(now);
        if self.state != State::Closed {
            self.hand_back_all(reason.into());
        }
        self.step(now);
    }

    /// Writes the body of the in-flight batch `batch` into `out` (appending); `false` if that
    /// batch is not in flight. For [`BodyMode::Deferred`], or to rebuild a body.
    pub fn write_body(&self, batch: BatchId, out: &mut Vec<u8>) -> bool {
        match (&self.in_flight, self.epoch) {
            (Some(f), Some(epoch)) if f.id == batch => {
                out.reserve(body::body_len(
                    self.config.envelope,
                    epoch,
                    f.events.len(),
                    f.bytes,
                ));
                body::write(
                    out,
                    self.config.envelope,
                    epoch,
                    f.events.iter().map(|q| q.event.item_bytes()),
                );
                true
            }
            _ => false,
        }
    }

    /// The next action, or the next wake-up once none is left.
    #[must_use = "outputs are the drainer's only way to get work done"]
    pub fn poll_output(&mut self) -> Poll<Output, Timer> {
        match self.outputs.pop_front() {
            Some(o) => Poll::Output(o),
            None => Poll::Timeout(self.next_wake()),
        }
    }

    /// Time passed: runs expired timers. Early or spurious calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clock.observe(now);
        self.step(now);
    }

    /// What the drainer holds now.
    pub fn depth(&self) -> Depth {
        let (events, bytes) = self
            .in_flight
            .as_ref()
            .map_or((0, 0), |f| (f.events.len(), f.bytes));
        Depth {
            events: self.queue.len() + events,
            bytes: self.queue.bytes() + bytes,
        }
    }

    /// Whether an event of `bytes` would be accepted now without dropping anything.
    pub fn has_room_for(&self, bytes: usize) -> bool {
        let d = self.depth();
        self.state == State::Open
            && bytes <= self.config.max_batch_bytes
            && d.events < self.config.max_queue_items
            && d.bytes.saturating_add(bytes) <= self.config.max_queue_bytes
    }

    /// The counters, with the current depth filled in.
    pub fn counters(&self) -> Counters {
        let d = self.depth();
        Counters {
            queue_events: d.events,
            queue_bytes: d.bytes,
            in_flight_events: self.in_flight.as_ref().map_or(0, |f| f.events.len()),
            ..self.counters
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The epoch bodies carry, once set.
    pub fn epoch(&self) -> Option<u64> {
        self.epoch
    }

    /// The send awaiting an outcome, if any.
    pub fn in_flight(&self) -> Option<BatchId> {
        self.in_flight.as_ref().map(|f| f.id)
    }

    /// Whether intake has stopped (closing, closed or abandoned).
    pub fn is_closing(&self) -> bool {
        self.state != State::Open
    }

    /// Whether the drainer is finished: closed or abandoned, nothing held.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    // ---- intake ----

    /// Starts (or stops) keeping a copy of every event admitted to the queue, for
    /// [`take_accepted`](Self::take_accepted): what a session with an outbox persists.
    pub(crate) fn record_accepted(&mut self, on: bool) {
        self.accepted = on.then(Vec::new);
    }

    /// The events admitted since the last call, in order, with their ids.
    pub(crate) fn take_accepted(&mut self) -> Vec<(EventId, PreparedEvent)> {
        match &mut self.accepted {
            Some(accepted) if !accepted.is_empty() => core::mem::take(accepted),
            _ => Vec::new(),
        }
    }

    /// Forgets the copy of event `id` kept for [`take_accepted`](Self::take_accepted): it is
    /// already persisted (a restored event).
    pub(crate) fn unrecord(&mut self, id: EventId) {
        if let Some(accepted) = &mut self.accepted {
            accepted.retain(|(a, _)| *a != id);
        }
    }

    fn admit(&mut self, now: Instant, event: PreparedEvent) -> Result<EventId, Error> {
        if self.state != State::Open {
            return Err(Error::Closed { event });
        }
        if event.envelope() != self.config.envelope {
            return Err(Error::WrongEnvelope { event });
        }
        if event.bytes() > self.config.max_batch_bytes {
            return Err(event.too_large(self.config.max_batch_bytes));
        }
        if event.replace_key().is_none() && self.fits(1, 0, event.bytes()) {
            // The common case, kept free of the replacement and overflow paths: a new event
            // at the back.
            let id = self.new_event_id();
            self.push_new(now, id, event);
            return Ok(id);
        }
        self.admit_slow(now, event)
    }

    /// [`admit`](Self::admit) for a keyed event, or one that does not fit as it is.
    #[inline(never)]
    fn admit_slow(&mut self, now: Instant, event: PreparedEvent) -> Result<EventId, Error> {
        let mut event = event;
        let target = event.replace_key().and_then(|k| self.queue.keyed(k));
        let (target_seq, target_bytes) = match target {
            Some(t) => {
                let (seq, bytes, uuid) = (
                    t.seq,
                    t.event.bytes(),
                    t.event.keyed().and_then(|k| k.uuid.clone()),
                );
                if let Some(uuid) = uuid {
                    event = event.inherit_uuid(&uuid, &mut self.rng)?;
                }
                (Some(seq), bytes)
            }
            None => (None, 0),
        };
        let extra = usize::from(target_seq.is_none());
        if !self.fits(extra, target_bytes, event.bytes()) {
            match self.config.overflow {
                Overflow::Reject => {
                    self.counters.rejected_full += 1;
                    return Err(Error::QueueFull { event });
                }
                Overflow::DropNewest => return Ok(self.drop_new(event)),
                Overflow::DropOldest => {
                    if !self.make_room(extra, target_bytes, event.bytes(), target_seq) {
                        return Ok(self.drop_new(event));
                    }
                }
            }
        }
        let id = self.new_event_id();
        let Some(seq) = target_seq else {
            self.push_new(now, id, event);
            return Ok(id);
        };
        if let Some(accepted) = &mut self.accepted {
            accepted.push((id, event.clone()));
        }
        let queued = Queued {
            id,
            seq: self.next_seq,
            at: now,
            sent: false,
            maybe_delivered: false,
            event,
        };
        match self.queue.replace(seq, queued) {
            Ok(old) => {
                self.counters.replaced += 1;
                let by = Reason::Replaced { by: id };
                self.emit_hand_back(by, alloc::vec![undelivered(old)]);
            }
            Err(queued) => {
                self.next_seq += 1;
                self.queue.push_back(queued);
            }
        }
        Ok(id)
    }

    /// Queues `event` at the back, at the next position.
    #[inline(always)]
    fn push_new(&mut self, now: Instant, id: EventId, event: PreparedEvent) {
        if let Some(accepted) = &mut self.accepted {
            accepted.push((id, event.clone()));
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.push_back(Queued {
            id,
            seq,
            at: now,
            sent: false,
            maybe_delivered: false,
            event,
        });
    }

    fn new_event_id(&mut self) -> EventId {
        let id = EventId(self.next_event);
        self.next_event += 1;
        self.counters.enqueued += 1;
        id
    }

    /// Whether holding `extra` more events, with `minus` bytes leaving and `plus` arriving,
    /// stays within the bounds.
    fn fits(&self, extra: usize, minus: usize, plus: usize) -> bool {
        let d = self.depth();
        d.events + extra <= self.config.max_queue_items
            && d.bytes - minus + plus <= self.config.max_queue_bytes
    }

    /// Drops the oldest unsent events (never `keep`) until the new one fits. Drops nothing and
    /// answers `false` if even an empty queue would not make room.
    fn make_room(&mut self, extra: usize, minus: usize, plus: usize, keep: Option<u64>) -> bool {
        let (fl_events, fl_bytes) = self
            .in_flight
            .as_ref()
            .map_or((0, 0), |f| (f.events.len(), f.bytes));
        if fl_events + 1 > self.config.max_queue_items
            || fl_bytes + plus > self.config.max_queue_bytes
        {
            return false;
        }
        let mut dropped = Vec::new();
        while !self.fits(extra, minus, plus) {
            match self.queue.evict_oldest(keep) {
                Some(q) => dropped.push(undelivered(q)),
                None => break,
            }
        }
        if !dropped.is_empty() {
            self.counters.dropped_oldest += dropped.len() as u64;
            self.emit_hand_back(Reason::DroppedOldest, dropped);
        }
        self.fits(extra, minus, plus)
    }

    fn drop_new(&mut self, event: PreparedEvent) -> EventId {
        let id = self.new_event_id();
        self.counters.dropped_newest += 1;
        self.emit_hand_back(
            Reason::DroppedNewest,
            alloc::vec![Undelivered {
                id,
                event,
                maybe_delivered: false,
            }],
        );
        id
    }

    // ---- sending ----

    /// Runs everything due at `now`: the close deadline, a send, flush completions and
    /// deadlines, the end of a close. Idempotent, so early timeouts are harmless.
    fn step(&mut self, now: Instant) {
        if let State::Closing { deadline } = self.state {
            if now >= deadline {
                self.hand_back_all(Reason::Closed);
            }
        }
        if self.retry_at.is_some_and(|t| now >= t) {
            self.retry_at = None;
        }
        self.try_send(now);
        self.settle_flushes();
        if matches!(self.state, State::Closing { .. }) && self.depth().events == 0 {
            self.hand_back_all(Reason::Closed);
            self.settle_flushes();
        }
        self.expire_flushes(now);
    }

    fn try_send(&mut self, now: Instant) {
        if self.in_flight.is_some() || self.retry_at.is_some() || self.state == State::Closed {
            return;
        }
        let Some(epoch) = self.epoch else { return };
        if !self.ready(now) {
            return;
        }
        let cap = self
            .next_cap
            .take()
            .map_or(self.config.max_batch_items, |c| {
                c.min(self.config.max_batch_items)
            });
        let spare = core::mem::take(&mut self.spare);
        let (events, bytes) = self.queue.take(cap, self.config.max_batch_bytes, spare);
        if events.is_empty() {
            self.spare = events;
            return;
        }
        let id = BatchId(self.next_batch);
        self.next_batch += 1;
        let mut out = Vec::new();
        if self.config.body == BodyMode::Assembled {
            out.reserve_exact(body::body_len(
                self.config.envelope,
                epoch,
                events.len(),
                bytes,
            ));
            body::write(
                &mut out,
                self.config.envelope,
                epoch,
                events.iter().map(|q| q.event.item_bytes()),
            );
        }
        self.counters.batches_sent += 1;
        self.outputs.push_back(Output::Send {
            id,
            body: out,
            items: events.len(),
            bytes,
        });
        self.in_flight = Some(InFlight { id, events, bytes });
    }

    /// Whether the front of the queue should go now rather than linger.
    fn ready(&self, now: Instant) -> bool {
        let Some(front) = self.queue.front() else {
            return false;
        };
        self.config.linger.is_zero()
            || front.sent
            || self.state != State::Open
            || !self.flushes.is_empty()
            || self.queue.len() >= self.config.max_batch_items
            || self.queue.bytes() >= self.config.max_batch_bytes
            || now >= front.at + self.config.linger
    }

    fn settle_batch(&mut self, now: Instant, flight: InFlight, outcome: Outcome) {
        let InFlight { id, mut events, .. } = flight;
        let hint = match outcome {
            Outcome::Success => {
                self.failures = 0;
                self.backoff.reset();
                self.counters.delivered += events.len() as u64;
                let ids = events.iter().map(|q| q.id).collect();
                self.outputs.push_back(Output::Delivered {
                    batch: id,
                    events: ids,
                });
                let mut events = events;
                events.clear();
                self.spare = events;
                return;
            }
            Outcome::TooLarge if events.len() == 1 => {
                return self.dead_letters(Reason::TooLarge, events);
            }
            Outcome::TooLarge => {
                self.counters.splits += 1;
                self.next_cap = Some(events.len().div_ceil(2));
                self.queue.put_back(events);
                return;
            }
            Outcome::Permanent(status) => {
                return self.dead_letters(Reason::Rejected { status }, events);
            }
            Outcome::Throttled(retry_after) => Some(retry_after),
            Outcome::Transient(TransientCause::Transport | TransientCause::TimedOut) => {
                // No answer: the server may have stored the batch.
                for q in &mut events {
                    q.maybe_delivered = true;
                }
                None
            }
            Outcome::Transient(_)
            | Outcome::AuthFailure
            | Outcome::Superseded
            | Outcome::SessionUnknown => None,
        };
        self.failures = self.failures.saturating_add(1);
        if let Some(max) = self.config.max_consecutive_failures {
            if self.failures >= max {
                // Give this batch up and let the next one start afresh: no stall.
                let failures = self.failures;
                self.failures = 0;
                self.backoff.reset();
                return self.dead_letters(Reason::TooManyFailures { failures }, events);
            }
        }
        let delay = self.backoff.next_delay(hint, &mut self.rng);
        self.retry_at = Some(now + delay);
        self.counters.retries += 1;
        self.next_cap = Some(events.len());
        self.queue.put_back(events);
    }

    fn dead_letters(&mut self, reason: Reason, events: Vec<Queued>) {
        let n = events.len() as u64;
        match reason {
            Reason::TooLarge => self.counters.dead_too_large += n,
            Reason::Rejected { .. } => self.counters.dead_rejected += n,
            _ => self.counters.dead_too_many_failures += n,
        }
        self.emit_hand_back(reason, events.into_iter().map(undelivered).collect());
    }

    /// Ends the drainer: hands back everything held with `reason`, then reports closed.
    fn hand_back_all(&mut self, reason: Reason) {
        let mut events: Vec<Undelivered> = Vec::new();
        if let Some(f) = self.in_flight.take() {
            // Abandoned on the wire: its outcome will never be known.
            events.extend(f.events.into_iter().map(|mut q| {
                q.maybe_delivered = true;
                undelivered(q)
            }));
        }
        events.extend(self.queue.drain().map(undelivered));
        let n = events.len() as u64;
        match reason {
            Reason::Superseded => self.counters.handed_back_superseded += n,
            Reason::GivenUp => self.counters.handed_back_given_up += n,
            _ => self.counters.handed_back_closed += n,
        }
        if !events.is_empty() {
            self.emit_hand_back(reason, events);
        }
        self.retry_at = None;
        self.next_cap = None;
        self.state = State::Closed;
        self.settle_flushes();
        self.outputs.push_back(Output::Closed);
    }

    fn emit_hand_back(&mut self, reason: Reason, events: Vec<Undelivered>) {
        self.outputs
            .push_back(Output::HandedBack { reason, events });
    }

    // ---- flushes and timers ----

    /// The lowest `seq` still held; every flush marked at or below it is done.
    fn oldest_held(&self) -> u64 {
        self.in_flight
            .as_ref()
            .and_then(|f| f.events.first())
            .or(self.queue.front())
            .map_or(self.next_seq, |q| q.seq)
    }

    fn settle_flushes(&mut self) {
        if self.flushes.is_empty() {
            return;
        }
        let oldest = self.oldest_held();
        while let Some(f) = self.flushes.front() {
            if f.mark > oldest {
                break;
            }
            let flush = f.id;
            self.flushes.pop_front();
            self.outputs.push_back(Output::FlushDone(flush));
        }
    }

    fn expire_flushes(&mut self, now: Instant) {
        if !self.flushes.iter().any(|f| now >= f.deadline) {
            return;
        }
        let mut kept = VecDeque::with_capacity(self.flushes.len());
        for f in core::mem::take(&mut self.flushes) {
            if now >= f.deadline {
                self.outputs.push_back(Output::FlushTimedOut(f.id));
            } else {
                kept.push_back(f);
            }
        }
        self.flushes = kept;
    }

    fn next_wake(&self) -> Option<Wake<Timer>> {
        let mut best: Option<Wake<Timer>> = None;
        let mut consider = |at: Instant, reason: Timer| {
            if best.is_none_or(|b| at < b.at) {
                best = Some(Wake::new(at, reason));
            }
        };
        if let State::Closing { deadline } = self.state {
            consider(deadline, Timer::CloseDeadline);
        }
        if let Some(at) = self.flushes.iter().map(|f| f.deadline).min() {
            consider(at, Timer::FlushDeadline);
        }
        if self.in_flight.is_none() && self.epoch.is_some() && self.state != State::Closed {
            if let Some(front) = self.queue.front() {
                match self.retry_at {
                    Some(at) => consider(at, Timer::Backoff),
                    None => consider(front.at + self.config.linger, Timer::Linger),
                }
            }
        }
        best
    }
}

fn undelivered(q: Queued) -> Undelivered {
    Undelivered {
        id: q.id,
        maybe_delivered: q.maybe_delivered,
        event: q.event,
    }
}

impl Machine for BatchDrainer {
    type Output = Output;
    type Timer = Timer;

    fn handle_timeout(&mut self, now: Instant) {
        BatchDrainer::handle_timeout(self, now);
    }

    fn poll_output(&mut self) -> Poll<Output, Timer> {
        BatchDrainer::poll_output(self)
    }
}
