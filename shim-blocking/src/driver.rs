//! The driver thread: owns the core [`Session`], feeds it commands, responses and time, and
//! carries out its outputs (DESIGN.md, conventions 3, 7 and 8).
//!
//! ```text
//!   Tether (any thread) ──Command──┐
//!                                  ├──▶ one channel ──▶ driver: handle one message, drain the
//!   HTTP workers ───────Reply──────┘       ▲              core, then recv_timeout until the
//!        ▲                                 │              core's next deadline; at the deadline
//!        └──────────── Job (Send) ─────────┘              (clock ≥ deadline) handle_timeout
//! ```
//!
//! The only decisions taken here are about the caller's own waits (how long `send_event` may
//! block on a full queue); every request deadline, retry and classification is the core's.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant as StdInstant};

use serde_json::Value;
use tether_core::batch::{EnqueueError, Event, EventId, PreparedEvent};
use tether_core::session::{
    DeliveryStatus, Output, RequestId, Response, Session, SessionError, Status, Stream,
    TransportError,
};
use tether_core::state::{Rejection, StateError, Unacknowledged};
use tether_core::{FlushId, Instant, Poll};

use crate::clock::{std_now, Clock};
use crate::error::{FlushError, PatchError, SendError};
use crate::http::{Pool, BACKSTOP_GRACE};
use crate::report::{CloseReport, Counters, UndeliveredEvent, WireCounters};

/// Messages handled per wake-up before the driver looks at the clock again (STYLE habit 12).
const BUDGET: usize = 64;
/// The shortest wait when the core asks to be woken again at a deadline it was already told
/// about: guards against a busy loop (STYLE habit 11).
const MIN_REPEAT_WAIT: Duration = Duration::from_millis(1);

/// What the driver receives: the caller's commands and the workers' results.
pub(crate) enum Msg {
    Command(Command),
    Reply {
        id: RequestId,
        result: Result<Response, TransportError>,
    },
}

/// Something to queue on an event stream.
pub(crate) enum Offer {
    Event(Event),
    Ack {
        event_id: String,
        status: DeliveryStatus,
    },
}

impl Offer {
    fn into_event(self) -> Event {
        match self {
            Offer::Event(event) => event,
            Offer::Ack { event_id, status } => Event::new(serde_json::json!({
                "event_id": event_id,
                "status": status.as_str(),
            })),
        }
    }
}

pub(crate) type Reply<T> = SyncSender<T>;

/// What the handle asks of the driver.
pub(crate) enum Command {
    Offer {
        stream: Stream,
        offer: Offer,
        /// When to stop waiting for room.
        until: StdInstant,
        reply: Reply<Result<EventId, SendError>>,
    },
    /// Many events, queued in order until one is refused or finds the queue full.
    OfferMany {
        stream: Stream,
        events: VecDeque<Event>,
        reply: Reply<Bulk>,
    },
    Patch {
        patch: Value,
        reply: Reply<Result<(), PatchError>>,
    },
    Flush {
        timeout: Duration,
        reply: Reply<Result<(), FlushError>>,
    },
    Close {
        timeout: Duration,
        reply: Option<Reply<CloseReport>>,
    },
    State(Reply<Value>),
    Counters(Reply<Counters>),
    Subscribe(Sender<Status>),
}

/// The answer to [`Command::OfferMany`]: the ids of the events queued, why it stopped (if it
/// stopped early), and the events not queued, the stopping one first.
pub(crate) struct Bulk {
    pub(crate) ids: Vec<EventId>,
    pub(crate) stop: Option<BulkStop>,
    pub(crate) rest: VecDeque<Event>,
}

/// Why a [`Command::OfferMany`] stopped early.
pub(crate) enum BulkStop {
    /// The queue is full (or others wait for room): the first of `rest` must wait.
    Full,
    /// The core refused an event; it is in the error, not in `rest`.
    Refused(SendError),
}

/// Events queued between two drains of a bulk offer, so the first batch goes out early.
const BULK_DRAIN_EVERY: usize = 64;

/// What the handle reads without a round trip.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) status: Status,
    pub(crate) epoch: Option<u64>,
}

pub(crate) fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An offer waiting for room in its stream's queue.
struct Blocked {
    stream: Stream,
    offer: Offer,
    until: StdInstant,
    reply: Reply<Result<EventId, SendError>>,
}

/// A hook that sees every output of the core, in order, before the driver acts on it; set with
/// [`Builder::observer`](crate::Builder::observer).
pub type Observer = Box<dyn FnMut(&Output) + Send + 'static>;

pub(crate) struct Driver {
    session: Session,
    observer: Option<Observer>,
    clock: Clock,
    rx: Receiver<Msg>,
    pool: Pool,
    shared: Arc<Mutex<Shared>>,
    /// Requests handed to the pool and not yet answered nor cancelled.
    in_flight: HashMap<RequestId, Arc<AtomicBool>>,
    subscribers: Vec<Sender<Status>>,
    blocked: VecDeque<Blocked>,
    /// Whether room may have freed since the blocked offers were last tried.
    room: bool,
    flushes: HashMap<FlushId, Reply<Result<(), FlushError>>>,
    closers: Vec<Reply<CloseReport>>,
    closing: bool,
    undelivered: Vec<UndeliveredEvent>,
    rejected: Vec<Rejection>,
    unacknowledged: Option<Unacknowledged>,
    /// The core's next deadline, from the last drain.
    wake: Option<Instant>,
    /// The deadline `handle_timeout` was last called for.
    fired: Option<Instant>,
    wire: WireCounters,
}

impl Driver {
    pub(crate) fn new(
        session: Session,
        clock: Clock,
        rx: Receiver<Msg>,
        pool: Pool,
        shared: Arc<Mutex<Shared>>,
        observer: Option<Observer>,
    ) -> Self {
        Driver {
            session,
            observer,
            clock,
            rx,
            pool,
            shared,
            in_flight: HashMap::new(),
            subscribers: Vec::new(),
            blocked: VecDeque::new(),
            room: false,
            flushes: HashMap::new(),
            closers: Vec::new(),
            closing: false,
            undelivered: Vec::new(),
            rejected: Vec::new(),
            unacknowledged: None,
            wake: None,
            fired: None,
            wire: WireCounters::default(),
        }
    }

    /// Runs until the session has ended and a close was asked for (or every handle is gone).
    pub(crate) fn run(mut self) {
        loop {
            self.drain();
            self.retry_blocked();
            if self.session.status().is_terminal() && self.closing {
                self.finish();
                return;
            }
            let first = match self.wait() {
                Ok(msg) => Some(msg),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            if let Some(msg) = first {
                self.handle(msg);
                self.drain();
                for _ in 1..BUDGET {
                    let Ok(msg) = self.rx.try_recv() else { break };
                    self.handle(msg);
                    self.drain();
                }
            }
            self.fire_timers();
        }
    }

    /// Waits for a message until the earliest of the core's deadline and the blocked offers'.
    fn wait(&mut self) -> Result<Msg, RecvTimeoutError> {
        let core = self.wake.map(|at| {
            let std = self.clock.to_std(at);
            (at, std)
        });
        let offers = self.blocked.iter().map(|b| b.until).min();
        let until = match (core.and_then(|(_, s)| s), offers) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let Some(until) = until else {
            return self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected);
        };
        let mut wait = until.saturating_duration_since(std_now());
        if wait.is_zero() {
            // Due now. Fire at once unless the core already had this exact deadline fired and
            // asks again: then wait a little instead of spinning.
            match core {
                Some((at, _)) if self.fired == Some(at) => wait = MIN_REPEAT_WAIT,
                _ => return self.rx.try_recv().map_err(|_| RecvTimeoutError::Timeout),
            }
        }
        self.rx.recv_timeout(wait)
    }

    /// Calls `handle_timeout` when the clock has reached the core's deadline, and fails blocked
    /// offers whose own wait is over.
    fn fire_timers(&mut self) {
        let now_std = std_now();
        if let Some(at) = self.wake {
            let now = self.clock.to_core(now_std);
            if now >= at {
                self.fired = Some(at);
                self.session.handle_timeout(now);
                self.drain();
            }
        }
        let mut i = 0;
        while i < self.blocked.len() {
            if self.blocked[i].until <= now_std {
                if let Some(b) = self.blocked.remove(i) {
                    let event = b.offer.into_event();
                    let _ = b.reply.send(Err(SendError::Timeout { event }));
                }
            } else {
                i += 1;
            }
        }
    }

    fn handle(&mut self, msg: Msg) {
        let now = self.clock.now();
        match msg {
            Msg::Reply { id, result } => {
                if self.in_flight.remove(&id).is_none() {
                    // Cancelled by the core: its late result is dropped.
                    self.wire.late_dropped += 1;
                    return;
                }
                match result {
                    Ok(response) => {
                        self.wire.responses += 1;
                        self.session.handle_response(now, id, response);
                    }
                    Err(error) => {
                        self.wire.transport_errors += 1;
                        self.session.handle_transport_error(now, id, &error);
                    }
                }
            }
            Msg::Command(command) => self.command(now, command),
        }
    }

    fn command(&mut self, now: Instant, command: Command) {
        match command {
            Command::Offer {
                stream,
                offer,
                until,
                reply,
            } => {
                if self.blocked.iter().any(|b| b.stream == stream) {
                    // Others wait for room on this stream already: queue behind them.
                    self.blocked.push_back(Blocked {
                        stream,
                        offer,
                        until,
                        reply,
                    });
                    return;
                }
                match self.offer(now, stream, offer) {
                    Ok(result) => {
                        let _ = reply.send(result);
                    }
                    Err(offer) => self.blocked.push_back(Blocked {
                        stream,
                        offer,
                        until,
                        reply,
                    }),
                }
            }
            Command::OfferMany {
                stream,
                mut events,
                reply,
            } => {
                let mut bulk = Bulk {
                    ids: Vec::with_capacity(events.len()),
                    stop: None,
                    rest: VecDeque::new(),
                };
                if self.blocked.iter().any(|b| b.stream == stream) {
                    bulk.stop = Some(BulkStop::Full);
                }
                while bulk.stop.is_none() {
                    let Some(event) = events.pop_front() else {
                        break;
                    };
                    match self.offer(now, stream, Offer::Event(event)) {
                        Ok(Ok(id)) => bulk.ids.push(id),
                        Ok(Err(error)) => bulk.stop = Some(BulkStop::Refused(error)),
                        Err(offer) => {
                            events.push_front(offer.into_event());
                            bulk.stop = Some(BulkStop::Full);
                        }
                    }
                    if bulk.ids.len() % BULK_DRAIN_EVERY == 0 {
                        self.drain();
                    }
                }
                bulk.rest = events;
                let _ = reply.send(bulk);
            }
            Command::Patch { patch, reply } => {
                let result =
                    self.session
                        .patch_state(now, patch)
                        .map(|_| ())
                        .map_err(|e| match e {
                            SessionError::State(StateError::Closed) | SessionError::Ended(_) => {
                                PatchError::Ended(self.session.status())
                            }
                            SessionError::State(e) => PatchError::Invalid(e),
                            _ => PatchError::Ended(self.session.status()),
                        });
                let _ = reply.send(result);
            }
            Command::Flush { timeout, reply } => {
                match self.session.flush(now, now.saturating_add(timeout)) {
                    Ok(id) => {
                        self.flushes.insert(id, reply);
                    }
                    Err(_) => {
                        let _ = reply.send(Err(FlushError::Ended(self.session.status())));
                    }
                }
            }
            Command::Close { timeout, reply } => {
                self.closing = true;
                self.closers.extend(reply);
                self.session.close(now, now.saturating_add(timeout));
            }
            Command::State(reply) => {
                let _ = reply.send(self.session.state_view().clone());
            }
            Command::Counters(reply) => {
                let _ = reply.send(self.counters());
            }
            Command::Subscribe(sender) => {
                if sender.send(self.session.status()).is_ok() {
                    self.subscribers.push(sender);
                }
            }
        }
    }

    /// Queues an offer. `Err` gives it back when the queue is full; `Ok` is the caller's answer.
    fn offer(
        &mut self,
        now: Instant,
        stream: Stream,
        offer: Offer,
    ) -> Result<Result<EventId, SendError>, Offer> {
        let result = match offer {
            Offer::Event(event) => match stream {
                Stream::InternalEvents => self.session.send_internal_event(now, event),
                _ => self.session.send_event(now, event),
            },
            Offer::Ack { event_id, status } => {
                match self.session.ack_delivery(now, &event_id, status) {
                    Err(SessionError::Enqueue {
                        error: EnqueueError::QueueFull { .. },
                        ..
                    }) => return Err(Offer::Ack { event_id, status }),
                    other => other,
                }
            }
        };
        let error = match result {
            Ok(id) => return Ok(Ok(id)),
            Err(SessionError::Enqueue { error, .. }) => error,
            Err(SessionError::Ended(status)) => {
                // Not reached for events (the core answers Closed), kept for completeness.
                return Ok(Err(SendError::Refused {
                    event: Event::new(Value::Null),
                    message: format!("the session has ended: {status}"),
                }));
            }
            Err(other) => {
                return Ok(Err(SendError::Refused {
                    event: Event::new(Value::Null),
                    message: other.to_string(),
                }))
            }
        };
        let status = self.session.status();
        Ok(Err(match error {
            EnqueueError::QueueFull { event } => return Err(Offer::Event(unprepare(event))),
            EnqueueError::NotAnObject { event } => SendError::NotAnObject { event },
            EnqueueError::TooLarge {
                event,
                bytes,
                limit,
            } => SendError::TooLarge {
                event: unprepare(event),
                bytes,
                limit,
            },
            EnqueueError::Closed { event } => SendError::Ended {
                event: unprepare(event),
                status,
            },
            other => {
                let message = other.to_string();
                let event = other
                    .into_prepared()
                    .map_or_else(|| Event::new(Value::Null), unprepare);
                SendError::Refused { event, message }
            }
        }))
    }

    /// Tries blocked offers again, in order per stream, once room may have freed.
    fn retry_blocked(&mut self) {
        while self.room && !self.blocked.is_empty() {
            self.room = false;
            let now = self.clock.now();
            let mut full: Vec<Stream> = Vec::new();
            let mut i = 0;
            while i < self.blocked.len() {
                let stream = self.blocked[i].stream;
                if full.contains(&stream) {
                    i += 1;
                    continue;
                }
                let Some(b) = self.blocked.remove(i) else {
                    break;
                };
                match self.offer(now, stream, b.offer) {
                    Ok(result) => {
                        let _ = b.reply.send(result);
                    }
                    Err(offer) => {
                        full.push(stream);
                        self.blocked.insert(
                            i,
                            Blocked {
                                stream,
                                offer,
                                until: b.until,
                                reply: b.reply,
                            },
                        );
                        i += 1;
                    }
                }
            }
            self.drain();
        }
    }

    /// Drains the core's outputs until it names its next deadline.
    fn drain(&mut self) {
        loop {
            match self.session.poll_output() {
                Poll::Output(output) => {
                    if let Some(observer) = &mut self.observer {
                        observer(&output);
                    }
                    self.output(output);
                }
                Poll::Timeout(wake) => {
                    self.wake = wake.map(|w| w.at);
                    return;
                }
            }
        }
    }

    fn output(&mut self, output: Output) {
        match output {
            Output::Send(request) => {
                let now = self.clock.now();
                let cancelled = Arc::new(AtomicBool::new(false));
                self.in_flight.insert(request.id, Arc::clone(&cancelled));
                self.wire.requests += 1;
                self.wire.body_bytes += request.body.len() as u64;
                let timeout = request.deadline.saturating_duration_since(now) + BACKSTOP_GRACE;
                self.pool.submit(request, timeout, cancelled);
            }
            Output::Cancel(id) => {
                if let Some(flag) = self.in_flight.remove(&id) {
                    flag.store(true, Ordering::Release);
                }
            }
            Output::Status(status) => {
                {
                    let mut shared = lock(&self.shared);
                    shared.status = status;
                    shared.epoch = self.session.epoch();
                }
                self.subscribers.retain(|s| s.send(status).is_ok());
                if status.is_terminal() {
                    self.room = true; // blocked offers now fail with `Ended`
                }
            }
            Output::Delivered { .. } => self.room = true,
            Output::HandedBack {
                stream,
                reason,
                events,
            } => {
                self.room = true;
                self.undelivered.extend(
                    events
                        .into_iter()
                        .map(|e| UndeliveredEvent::new(stream, reason, e)),
                );
            }
            Output::StateRejected(rejection) => self.rejected.push(rejection),
            Output::StateUnacknowledged(unacknowledged) => {
                self.unacknowledged = Some(unacknowledged);
            }
            Output::FlushDone(id) => {
                if let Some(reply) = self.flushes.remove(&id) {
                    let status = self.session.status();
                    let result = if status.is_terminal() {
                        Err(FlushError::Ended(status))
                    } else {
                        Ok(())
                    };
                    let _ = reply.send(result);
                }
            }
            Output::FlushTimedOut(id) => {
                if let Some(reply) = self.flushes.remove(&id) {
                    let _ = reply.send(Err(FlushError::TimedOut));
                }
            }
            // A future output of the core: nothing for the shim to carry out.
            _ => {}
        }
    }

    fn counters(&self) -> Counters {
        let mut counters = Counters::default();
        counters.session = self.session.counters();
        counters.events = self.session.uploader_counters(Stream::Events);
        counters.internal_events = self.session.uploader_counters(Stream::InternalEvents);
        counters.delivery = self.session.uploader_counters(Stream::Delivery);
        counters.state = self.session.state_counters();
        counters.wire = self.wire;
        counters
    }

    /// The session ended after a close was asked for: answer every waiter and stop.
    fn finish(mut self) {
        for b in std::mem::take(&mut self.blocked) {
            let event = b.offer.into_event();
            let status = self.session.status();
            let _ = b.reply.send(Err(SendError::Ended { event, status }));
        }
        let report = CloseReport {
            status: self.session.status(),
            epoch: self.session.epoch(),
            undelivered: std::mem::take(&mut self.undelivered),
            state_rejected: std::mem::take(&mut self.rejected),
            state_unacknowledged: self.unacknowledged.take(),
            counters: self.counters(),
        };
        for closer in self.closers.drain(..) {
            let _ = closer.send(report.clone());
        }
    }
}

/// An event the core handed back serialised, as an [`Event`] again (its `uuid` kept, so a
/// retry of it is de-duplicated by the server).
fn unprepare(prepared: PreparedEvent) -> Event {
    let payload = prepared.payload().unwrap_or(Value::Null);
    let mut event = Event::new(payload).ephemeral(prepared.is_ephemeral());
    if let Some(key) = prepared.replace_key() {
        event = event.replace_key(key);
    }
    event
}
