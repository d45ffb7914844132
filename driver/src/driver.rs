//! The driver: everything around a [`Session`] that is not waiting on I/O.
//!
//! It turns the caller's calls into core inputs, holds the callers who wait (for room in a
//! queue, for a flush, for the close), fans out statuses and reports, builds HTTP requests from
//! the core's outputs and reads answers back, and says when it wants to be woken. It never
//! reads a clock, sleeps, spawns or touches a socket: every call takes the shim's `now`.
//!
//! The shim's loop:
//!
//! ```text
//!   loop {
//!       lock; driver.handle_timeout(now); take actions; deadline = driver.poll_timeout(); unlock
//!       for each action: Send(request) → the transport, whose answer comes back through
//!                        driver.handle_reply(now, id, result); Cancel(id) → drop it
//!       if driver.is_finished() { break }
//!       wait until a notification (a call or an answer made work) or the deadline
//!   }
//! ```

use std::collections::{HashMap, HashSet, VecDeque};
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant as StdInstant};

use serde::Serialize;
use serde_json::Value;
use tether_core::batch::{DeltaError, EnqueueError, Event, EventId, PreparedEvent};
use tether_core::heartbeat::HeartbeatTimer;
use tether_core::session::{
    DeliveryStatus, Output, RequestId, Session, SessionError, Status, Stream, Timer, TransportError,
};
use tether_core::state::StateError;
use tether_core::{FlushId, Instant, Poll, Wake};

use crate::clock::Origin;
use crate::error::{BulkSendError, FlushError, PatchError, Refused, SendError};
use crate::http::{HttpRequest, HttpResponse, Target};
use crate::observe::Telemetry;
use crate::outbox::Outbox;
use crate::report::{CloseReport, Counters, Report, UndeliveredEvent, WireCounters};
use crate::settings::{Observer, Tap};
use crate::stats::DriverStats;
use crate::threads::{Io, ThreadPart, ThreadStartError, is_thread_request};
use crate::wait::{Completer, Fanout, Pending, Subscription};

mod durable;

/// The shortest wait when the core asks again for a deadline that was already handled:
/// guards against a busy loop (STYLE habit 11).
const MIN_REPEAT_WAIT: Duration = Duration::from_millis(1);

/// What the shim must do.
#[derive(Debug)]
#[non_exhaustive]
pub enum Action {
    /// Perform this request once and answer with [`Driver::handle_reply`].
    Send(HttpRequest),
    /// The core failed this request at its deadline: stop it if you can; its answer is dropped.
    Cancel(RequestId),
}

type SendReply = Completer<Result<EventId, SendError>>;
type FlushReply = Completer<Result<(), FlushError>>;
type BulkReply = Completer<Result<Vec<EventId>, Box<BulkSendError>>>;

/// A caller waiting for room in a stream's queue.
enum Waiting {
    One {
        event: PreparedEvent,
        reply: SendReply,
    },
    Bulk {
        /// The event that found the queue full, prepared.
        next: PreparedEvent,
        rest: VecDeque<Event>,
        ids: Vec<EventId>,
        reply: BulkReply,
    },
}

struct Blocked {
    stream: Stream,
    waiting: Waiting,
    /// When to give up; `None`: never.
    until: Option<StdInstant>,
}

/// What became of one offer.
enum Offered {
    Queued(EventId),
    Full(PreparedEvent),
    Refused(SendError),
}

/// The driver of one session: see the [crate docs](crate) for the shim's loop around it.
pub struct Driver {
    session: Session,
    origin: Origin,
    target: Target,
    observer: Option<Observer>,
    tap: Option<Box<dyn Tap>>,
    drop_close_timeout: Duration,
    in_flight: HashSet<RequestId>,
    actions: VecDeque<Action>,
    blocked: VecDeque<Blocked>,
    /// Room may have freed since the blocked offers were last tried.
    room: bool,
    flushes: HashMap<FlushId, Completer<Result<(), FlushError>>>,
    closers: Vec<Completer<CloseReport>>,
    closing: bool,
    statuses: Fanout<Status>,
    reports: Fanout<Report>,
    undelivered: Vec<UndeliveredEvent>,
    rejected: Vec<tether_core::state::Rejection>,
    unacknowledged: Option<tether_core::state::Unacknowledged>,
    puts_acknowledged: u64,
    /// The core's next deadline and its reason, from the last drain.
    wake: Option<Wake<Timer>>,
    stats: DriverStats,
    /// The deadline `handle_timeout` was last called for.
    fired: Option<Instant>,
    /// The time of the last call.
    now: StdInstant,
    /// Something the shim must see happened since it last looked: new actions or an earlier
    /// deadline.
    notify: bool,
    finished: bool,
    wire: WireCounters,
    /// Thread sync, once started (see `threads.rs`).
    pub(crate) threads: Option<Box<ThreadPart>>,
    /// The seed of thread sync's random choices.
    pub(crate) thread_seed: u64,
    telemetry: Telemetry,
    /// The durable outbox, when the session has one.
    outbox: Option<Outbox>,
    /// Flushes waiting for the outbox's replay to end, with their deadlines.
    deferred_flushes: Vec<(Option<StdInstant>, FlushReply)>,
}

impl Driver {
    pub(crate) fn new(
        session: Session,
        origin: Origin,
        target: Target,
        observer: Option<Observer>,
        tap: Option<Box<dyn Tap>>,
        drop_close_timeout: Duration,
    ) -> Self {
        let now = origin.at();
        let telemetry = Telemetry::new(target.url.last_segment());
        let mut driver = Driver {
            now,
            session,
            origin,
            target,
            observer,
            tap,
            drop_close_timeout,
            in_flight: HashSet::new(),
            actions: VecDeque::new(),
            blocked: VecDeque::new(),
            room: false,
            flushes: HashMap::new(),
            closers: Vec::new(),
            closing: false,
            statuses: Fanout::new(),
            reports: Fanout::new(),
            undelivered: Vec::new(),
            rejected: Vec::new(),
            unacknowledged: None,
            puts_acknowledged: 0,
            wake: None,
            stats: DriverStats::default(),
            fired: None,
            notify: false,
            finished: false,
            wire: WireCounters::default(),
            threads: None,
            thread_seed: 0,
            telemetry,
            outbox: None,
            deferred_flushes: Vec::new(),
        };
        driver.drain();
        driver
    }

    // ----- the caller's calls -----

    /// Offers `event` to `stream`, waiting for room until `until` (`None`: as long as it takes).
    pub fn send(
        &mut self,
        now: StdInstant,
        stream: Stream,
        event: Event,
        until: Option<StdInstant>,
    ) -> Pending<Result<EventId, SendError>> {
        self.now = now;
        let stream = uploadable(stream);
        if let Some(message) = self.store_failure() {
            return Pending::ready(Err(SendError::StoreFailed {
                event: Refused::Given(event),
                message,
            }));
        }
        let offered = if self.is_blocked(stream) {
            self.prepare(stream, event)
        } else {
            let core_now = self.origin.to_core(now);
            let result = match stream {
                Stream::InternalEvents => self.session.send_internal_event(core_now, event),
                _ => self.session.send_event(core_now, event),
            };
            self.offered(result)
        };
        self.settle_offer(now, stream, offered, until)
    }

    /// Offers a value serialised straight into its wire item (the typed fast path) to
    /// `/worker/events`.
    pub fn send_serialize<T: Serialize + ?Sized>(
        &mut self,
        now: StdInstant,
        value: &T,
        until: Option<StdInstant>,
    ) -> Pending<Result<EventId, SendError>> {
        self.now = now;
        if let Some(message) = self.store_failure() {
            return Pending::ready(Err(match self.session.prepare_serialize(value) {
                Ok(event) => SendError::StoreFailed {
                    event: Refused::Prepared(event),
                    message,
                },
                Err(error) => match self.refused(error) {
                    Offered::Refused(error) => error,
                    _ => SendError::StoreFailed {
                        event: Refused::Given(Event::new(Value::Null)),
                        message,
                    },
                },
            }));
        }
        let offered = if self.is_blocked(Stream::Events) {
            match self.session.prepare_serialize(value) {
                Ok(prepared) => Offered::Full(prepared),
                Err(error) => self.refused(error),
            }
        } else {
            let core_now = self.origin.to_core(now);
            let result = self.session.send_event_serialize(core_now, value);
            self.offered(result)
        };
        self.settle_offer(now, Stream::Events, offered, until)
    }

    /// Queues a delivery acknowledgement, waiting for room until `until`.
    pub fn ack_delivery(
        &mut self,
        now: StdInstant,
        event_id: &str,
        status: DeliveryStatus,
        until: Option<StdInstant>,
    ) -> Pending<Result<EventId, SendError>> {
        self.now = now;
        if let Some(message) = self.store_failure() {
            return Pending::ready(Err(SendError::StoreFailed {
                event: Refused::Given(Session::delivery_update(event_id, status)),
                message,
            }));
        }
        let offered = if self.is_blocked(Stream::Delivery) {
            self.prepare(Stream::Delivery, Session::delivery_update(event_id, status))
        } else {
            let core_now = self.origin.to_core(now);
            let result = self.session.ack_delivery(core_now, event_id, status);
            self.offered(result)
        };
        self.settle_offer(now, Stream::Delivery, offered, until)
    }

    /// Offers many events in order; those that find the queue full wait for room (until
    /// `until`), and the rest follow them.
    pub fn send_many(
        &mut self,
        now: StdInstant,
        stream: Stream,
        events: impl IntoIterator<Item = Event>,
        until: Option<StdInstant>,
    ) -> Pending<Result<Vec<EventId>, Box<BulkSendError>>> {
        self.now = now;
        let stream = uploadable(stream);
        let mut rest: VecDeque<Event> = events.into_iter().collect();
        if let Some(message) = self.store_failure() {
            let first = rest.pop_front().unwrap_or_else(|| Event::new(Value::Null));
            return Pending::ready(Err(Box::new(BulkSendError {
                sent: Vec::new(),
                error: SendError::StoreFailed {
                    event: Refused::Given(first),
                    message,
                },
                unsent: rest.into(),
            })));
        }
        let mut ids = Vec::with_capacity(rest.len());
        let blocked_already = self.is_blocked(stream);
        while let Some(event) = rest.pop_front() {
            let offered = if blocked_already {
                self.prepare(stream, event)
            } else {
                let core_now = self.origin.to_core(now);
                let result = match stream {
                    Stream::InternalEvents => self.session.send_internal_event(core_now, event),
                    _ => self.session.send_event(core_now, event),
                };
                self.offered(result)
            };
            match offered {
                Offered::Queued(id) => ids.push(id),
                Offered::Refused(error) => {
                    self.after_call();
                    return Pending::ready(Err(Box::new(BulkSendError {
                        sent: ids,
                        error,
                        unsent: rest.into(),
                    })));
                }
                Offered::Full(next) => {
                    if until.is_some_and(|u| u <= now) {
                        self.after_call();
                        return Pending::ready(Err(Box::new(BulkSendError {
                            sent: ids,
                            error: SendError::Timeout {
                                event: Refused::Prepared(next),
                            },
                            unsent: rest.into(),
                        })));
                    }
                    let status = self.session.status();
                    let (pending, reply) = Pending::new(move || {
                        Err(Box::new(BulkSendError {
                            sent: Vec::new(),
                            error: SendError::Ended {
                                event: Refused::Given(Event::new(Value::Null)),
                                status,
                            },
                            unsent: Vec::new(),
                        }))
                    });
                    self.blocked.push_back(Blocked {
                        stream,
                        waiting: Waiting::Bulk {
                            next,
                            rest,
                            ids,
                            reply,
                        },
                        until,
                    });
                    self.notify = true;
                    self.after_call();
                    return pending;
                }
            }
        }
        self.after_call();
        self.durable_bulk(ids)
    }

    /// A stream delta of `key` for `/worker/events`: merged with the deltas of the same key
    /// within the configured window (see [`Session::send_delta`]). Never waits; a merged event
    /// the queue refuses later comes back as [`Report::DeltaHandedBack`].
    ///
    /// # Errors
    /// The delta, handed back: not an object with text, or the session is closing or ended.
    pub fn send_delta(
        &mut self,
        now: StdInstant,
        key: String,
        payload: Value,
    ) -> Result<(), DeltaError> {
        self.now = now;
        let result = self
            .session
            .send_delta(self.origin.to_core(now), key, payload);
        self.after_call();
        result
    }

    /// A patch to the worker document; returns its sequence number.
    ///
    /// # Errors
    /// [`PatchError::Invalid`] for a bad patch, [`PatchError::Ended`] once the session is
    /// closing or has ended.
    pub fn patch_state(&mut self, now: StdInstant, patch: Value) -> Result<u64, PatchError> {
        self.now = now;
        let result = self.session.patch_state(self.origin.to_core(now), patch);
        let status = self.session.status();
        let result = result.map_err(|e| match e {
            SessionError::State(StateError::Closed) | SessionError::Ended(_) => {
                PatchError::Ended(status)
            }
            SessionError::State(e) => PatchError::Invalid(e),
            _ => PatchError::Ended(status),
        });
        self.after_call();
        result
    }

    /// Waits until everything given before is delivered or handed back and every patch has
    /// landed, or `timeout` passes ([`Duration::MAX`]: no limit).
    pub fn flush(&mut self, now: StdInstant, timeout: Duration) -> Pending<Result<(), FlushError>> {
        self.now = now;
        if self.outbox.as_ref().is_some_and(|o| !o.replay_done()) {
            // The stored outbox was given before: the flush starts once it is all back in.
            return self.defer_flush(now, timeout);
        }
        let status = self.session.status();
        let (pending, reply) = Pending::new(move || Err(FlushError::Ended(status)));
        self.start_flush(now, timeout, reply);
        self.after_call();
        pending
    }

    /// Asks the core for a flush answered through `reply`.
    fn start_flush(&mut self, now: StdInstant, timeout: Duration, reply: FlushReply) {
        let core_now = self.origin.to_core(now);
        match self
            .session
            .flush(core_now, core_now.saturating_add(timeout))
        {
            Ok(id) => {
                self.flushes.insert(id, reply);
            }
            Err(_) => reply.complete(Err(FlushError::Ended(self.session.status()))),
        }
    }

    /// Stops intake, drains for at most `timeout`, hands back what is left and ends the
    /// session; the answer is the close report. Closing again, or after the end, answers with
    /// the report too.
    pub fn close(&mut self, now: StdInstant, timeout: Duration) -> Pending<CloseReport> {
        self.now = now;
        self.closing = true;
        if let Some(threads) = self.threads.as_deref_mut() {
            threads.close(self.origin.to_core(now).saturating_add(timeout));
        }
        if self.session.status().is_terminal() {
            self.threads_turn();
            return Pending::ready(self.close_report());
        }
        let core_now = self.origin.to_core(now);
        self.session
            .close(core_now, core_now.saturating_add(timeout));
        let pending = if self.session.status().is_terminal() {
            // Nothing was left to drain: the close ended the session at once.
            self.after_call();
            return Pending::ready(self.close_report());
        } else {
            let (pending, reply) = Pending::new(|| CloseReport {
                status: Status::Closed,
                epoch: None,
                undelivered: Vec::new(),
                state_rejected: Vec::new(),
                state_unacknowledged: None,
                counters: Counters::default(),
            });
            self.closers.push(reply);
            pending
        };
        self.after_call();
        pending
    }

    /// What a handle dropped without `close` does: close with the drop timeout. Everything
    /// handed back reaches the report stream and the close report.
    pub fn close_on_drop(&mut self, now: StdInstant) {
        if !self.closing {
            let timeout = self.drop_close_timeout;
            drop(self.close(now, timeout));
        }
    }

    /// Ends the session now, handing back everything it held: what a shim does when its
    /// driver task is dropped or its runtime shuts down.
    pub fn shutdown(&mut self, now: StdInstant) {
        drop(self.close(now, Duration::ZERO));
        let core_now = self.origin.to_core(now);
        self.session.handle_timeout(core_now);
        self.drain();
        self.threads_turn();
    }

    /// Every status from now on, starting with the current one.
    pub fn statuses(&mut self) -> Subscription<Status> {
        let current = self.session.status();
        self.statuses.subscribe([current])
    }

    /// Every report from now on.
    pub fn reports(&mut self) -> Subscription<Report> {
        self.reports.subscribe([])
    }

    /// The current status.
    pub fn status(&self) -> Status {
        self.session.status()
    }

    /// The worker epoch, once known.
    pub fn epoch(&self) -> Option<u64> {
        self.session.epoch()
    }

    /// The worker document as the server will hold it once every pending patch has landed.
    pub fn state(&self) -> Value {
        self.session.state_view().clone()
    }

    /// The driver's own measurements so far.
    pub fn stats(&self) -> DriverStats {
        self.stats.clone()
    }

    /// The counters so far.
    pub fn counters(&self) -> Counters {
        let mut counters = Counters::default();
        counters.session = self.session.counters();
        counters.events = self.session.uploader_counters(Stream::Events);
        counters.internal_events = self.session.uploader_counters(Stream::InternalEvents);
        counters.delivery = self.session.uploader_counters(Stream::Delivery);
        counters.state = self.session.state_counters();
        counters.retry_budget = self.session.retry_budget();
        counters.deltas = self.session.delta_counters();
        counters.wire = self.wire;
        counters
    }

    // ----- the shim's calls -----

    /// The answer to request `id`: a response, or a transport failure. An answer to a
    /// request the core already cancelled is dropped.
    pub fn handle_reply(
        &mut self,
        now: StdInstant,
        id: RequestId,
        result: Result<HttpResponse, TransportError>,
    ) {
        self.now = now;
        if is_thread_request(id) {
            if let Some(threads) = self.threads.as_deref_mut() {
                threads.handle_reply(self.origin.to_core(now), id, result);
            }
            self.after_call();
            return;
        }
        if !self.in_flight.remove(&id) {
            self.wire.late_dropped += 1;
            return;
        }
        let core_now = self.origin.to_core(now);
        self.tapped(|tap| tap.answer(core_now, id, result.as_ref()));
        let endpoint = self.telemetry.endpoint(id);
        let status = result.as_ref().ok().map(|r| r.status);
        if let Some(slow) = self.telemetry.answered(id, now, status) {
            self.reports.publish(slow);
        }
        let retries = self.retries();
        match result {
            Ok(response) => {
                self.wire.responses += 1;
                self.session.handle_response(core_now, id, response.into());
            }
            Err(error) => {
                self.wire.transport_errors += 1;
                self.session.handle_transport_error(core_now, id, &error);
            }
        }
        if let Some(endpoint) = endpoint.filter(|_| self.retries() > retries) {
            self.telemetry.retry(endpoint);
        }
        self.after_call();
    }

    /// Tells the driver the time: fires the core's timers once their deadline has come, and
    /// fails callers whose wait for room is over. Early or spurious calls do nothing.
    pub fn handle_timeout(&mut self, now: StdInstant) {
        self.now = now;
        if let Some(wake) = self.wake {
            let core_now = self.origin.to_core(now);
            let at = wake.at;
            if core_now >= at {
                if self.fired == Some(at) {
                    self.stats.clamped_waits += 1;
                }
                if wake.reason == Timer::Heartbeat(HeartbeatTimer::Beat) {
                    let late = core_now.saturating_duration_since(at);
                    self.stats.heartbeat_lateness.record(late);
                }
                self.fired = Some(at);
                self.session.handle_timeout(core_now);
                self.drain();
            }
        }
        let mut i = 0;
        while i < self.blocked.len() {
            if self.blocked[i].until.is_some_and(|u| u <= now) {
                if let Some(b) = self.blocked.remove(i) {
                    answer_timeout(b.waiting);
                }
            } else {
                i += 1;
            }
        }
        if let Some(threads) = self.threads.as_deref_mut() {
            threads.handle_timeout(self.origin.to_core(now));
        }
        self.expire_deferred_flushes(now);
        self.after_call();
        self.commit_outbox(now);
    }

    /// The next thing for the shim to do, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next; `None`: only when a call or
    /// an answer comes. A deadline already handled that the core names again is put off a
    /// little, so a shim cannot spin.
    pub fn poll_timeout(&self) -> Option<StdInstant> {
        let core = self.wake.map(|w| w.at).and_then(|at| {
            let std = self.origin.to_std(at)?;
            Some(if self.fired == Some(at) {
                std + MIN_REPEAT_WAIT
            } else {
                std
            })
        });
        let offers = self.blocked.iter().filter_map(|b| b.until).min();
        let threads = self.threads.as_deref().and_then(ThreadPart::deadline);
        let threads = threads.and_then(|at| self.origin.to_std(at));
        let commit = self.outbox.as_ref().and_then(|o| o.due_at(self.now));
        let deferred = self.deferred_flushes.iter().filter_map(|f| f.0).min();
        [core, offers, threads, commit, deferred]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether something happened that the shim's loop must look at (new actions, an earlier
    /// deadline) since the last call; clears the flag. A handle calls its shim's notifier when
    /// this is true.
    pub fn take_notify(&mut self) -> bool {
        std::mem::take(&mut self.notify)
    }

    /// Whether the session has ended and every waiter was answered: the shim's loop may stop.
    pub fn is_finished(&self) -> bool {
        self.finished && self.threads.as_deref().is_none_or(ThreadPart::is_done)
    }

    // ----- internals -----

    /// Retries scheduled so far, every uploader and the connection together.
    fn retries(&self) -> u64 {
        let s = &self.session;
        [Stream::Events, Stream::InternalEvents, Stream::Delivery]
            .map(|stream| s.uploader_counters(stream).retries)
            .iter()
            .sum::<u64>()
            + s.state_counters().retries
    }

    fn is_blocked(&self, stream: Stream) -> bool {
        self.blocked.iter().any(|b| b.stream == stream)
            || self.outbox.as_ref().is_some_and(|o| !o.replay_done())
    }

    /// Serialises `event` for `stream` without queueing it: others wait for room before it, and
    /// it waits behind them, in order.
    fn prepare(&mut self, stream: Stream, event: Event) -> Offered {
        match self.session.prepare(stream, event) {
            Ok(prepared) => Offered::Full(prepared),
            Err(error) => self.refused(error),
        }
    }

    fn offered(&mut self, result: Result<EventId, SessionError>) -> Offered {
        match result {
            Ok(id) => Offered::Queued(id),
            Err(error) => self.refused(error),
        }
    }

    fn refused(&self, error: SessionError) -> Offered {
        match error {
            SessionError::Enqueue {
                error: EnqueueError::QueueFull { event },
                ..
            } => Offered::Full(event),
            SessionError::Enqueue { error, .. } => Offered::Refused(self.send_error(error)),
            other => Offered::Refused(SendError::Refused {
                event: Refused::Given(Event::new(Value::Null)),
                message: other.to_string(),
            }),
        }
    }

    fn send_error(&self, error: EnqueueError) -> SendError {
        let status = self.session.status();
        match error {
            EnqueueError::NotAnObject { event } => SendError::NotAnObject {
                event: Refused::Given(event),
            },
            EnqueueError::Unserializable { message } => SendError::Unserializable { message },
            EnqueueError::TooLarge {
                event,
                bytes,
                limit,
            } => SendError::TooLarge {
                event: Refused::Prepared(event),
                bytes,
                limit,
            },
            EnqueueError::Closed { event } | EnqueueError::QueueFull { event } => {
                SendError::Ended {
                    event: Refused::Prepared(event),
                    status,
                }
            }
            other => {
                let message = other.to_string();
                match other.into_prepared() {
                    Some(event) => SendError::Refused {
                        event: Refused::Prepared(event),
                        message,
                    },
                    None => SendError::Refused {
                        event: Refused::Given(Event::new(Value::Null)),
                        message,
                    },
                }
            }
        }
    }

    fn settle_offer(
        &mut self,
        now: StdInstant,
        stream: Stream,
        offered: Offered,
        until: Option<StdInstant>,
    ) -> Pending<Result<EventId, SendError>> {
        let pending = match offered {
            Offered::Queued(id) => {
                let (pending, reply) = Pending::new(move || Ok(id));
                self.complete_durable(stream, reply, id);
                pending
            }
            Offered::Refused(error) => Pending::ready(Err(error)),
            Offered::Full(event) if until.is_some_and(|u| u <= now) => {
                Pending::ready(Err(SendError::Timeout {
                    event: Refused::Prepared(event),
                }))
            }
            Offered::Full(event) => {
                let status = self.session.status();
                let (pending, reply) = Pending::new(move || {
                    Err(SendError::Ended {
                        event: Refused::Given(Event::new(Value::Null)),
                        status,
                    })
                });
                self.blocked.push_back(Blocked {
                    stream,
                    waiting: Waiting::One { event, reply },
                    until,
                });
                self.notify = true;
                pending
            }
        };
        self.after_call();
        pending
    }

    /// After every call: drain the core, retry waiting offers if room freed, finish if ended.
    fn after_call(&mut self) {
        self.drain();
        self.retry_blocked();
        if self.session.status().is_terminal() && !self.finished {
            self.finish();
        }
        self.threads_turn();
    }

    // ----- thread sync (threads.rs) -----

    /// Thread sync's turn: started once the epoch is known, drained into actions, ended with
    /// the session.
    fn threads_turn(&mut self) {
        let Some(threads) = self.threads.as_deref_mut() else {
            return;
        };
        let before = threads.deadline();
        let io = Io {
            origin: self.origin,
            target: &self.target,
            actions: &mut self.actions,
        };
        let ended = self.session.status().is_terminal();
        let queued = threads.turn(
            self.origin.to_core(self.now),
            self.session.epoch(),
            ended,
            io,
        );
        let after = threads.deadline();
        if queued || after.is_some_and(|a| before.is_none_or(|b| a < b)) || threads.is_done() {
            self.notify = true;
        }
    }

    pub(crate) fn thread_seed(&self) -> u64 {
        self.thread_seed
    }

    /// Installs thread sync, unless it runs already or the session is ending.
    pub(crate) fn install_threads(
        &mut self,
        now: StdInstant,
        part: ThreadPart,
    ) -> Result<(), ThreadStartError> {
        if self.threads.is_some() {
            return Err(ThreadStartError::AlreadyStarted);
        }
        if self.closing || self.finished {
            return Err(ThreadStartError::Ended);
        }
        self.now = now;
        self.threads = Some(Box::new(part));
        self.after_call();
        Ok(())
    }

    /// Runs a thread-sync call at `now`, then the driver's turn.
    pub(crate) fn with_threads<R>(
        &mut self,
        now: StdInstant,
        f: impl FnOnce(Option<&mut ThreadPart>, Instant) -> R,
    ) -> R {
        self.now = now;
        let result = f(self.threads.as_deref_mut(), self.origin.to_core(now));
        self.after_call();
        result
    }

    /// Tries waiting offers again, in order per stream, through `Session::resend` (their uuid
    /// and bytes kept).
    fn retry_blocked(&mut self) {
        if !self.replay_outbox() {
            return; // new events wait until the stored outbox is back in the session
        }
        while self.room && !self.blocked.is_empty() {
            self.room = false;
            if self.session.status().is_terminal() {
                return; // `finish` answers them
            }
            let core_now = self.session_now();
            let mut full: Vec<Stream> = Vec::new();
            let mut kept = VecDeque::with_capacity(self.blocked.len());
            while let Some(b) = self.blocked.pop_front() {
                if full.contains(&b.stream) {
                    kept.push_back(b);
                    continue;
                }
                if let Some(b) = self.resume(core_now, b) {
                    full.push(b.stream);
                    kept.push_back(b);
                }
            }
            self.blocked = kept;
            self.drain();
        }
    }

    /// Pushes one waiting offer as far as room allows; gives it back if it is still waiting.
    fn resume(&mut self, core_now: Instant, blocked: Blocked) -> Option<Blocked> {
        let Blocked {
            stream,
            waiting,
            until,
        } = blocked;
        match waiting {
            Waiting::One { event, reply } => match self.session.resend(core_now, stream, event) {
                Ok(id) => {
                    self.complete_durable(stream, reply, id);
                    None
                }
                Err(SessionError::Enqueue {
                    error: EnqueueError::QueueFull { event },
                    ..
                }) => Some(Blocked {
                    stream,
                    waiting: Waiting::One { event, reply },
                    until,
                }),
                Err(SessionError::Enqueue { error, .. }) => {
                    reply.complete(Err(self.send_error(error)));
                    None
                }
                Err(other) => {
                    reply.complete(Err(SendError::Refused {
                        event: Refused::Given(Event::new(Value::Null)),
                        message: other.to_string(),
                    }));
                    None
                }
            },
            Waiting::Bulk {
                next,
                mut rest,
                mut ids,
                reply,
            } => {
                let mut next = Some(next);
                loop {
                    let result = match next.take() {
                        Some(prepared) => self.session.resend(core_now, stream, prepared),
                        None => match rest.pop_front() {
                            Some(event) => match stream {
                                Stream::InternalEvents => {
                                    self.session.send_internal_event(core_now, event)
                                }
                                _ => self.session.send_event(core_now, event),
                            },
                            None => {
                                self.complete_bulk_durable(reply, ids);
                                return None;
                            }
                        },
                    };
                    match result {
                        Ok(id) => ids.push(id),
                        Err(SessionError::Enqueue {
                            error: EnqueueError::QueueFull { event },
                            ..
                        }) => {
                            return Some(Blocked {
                                stream,
                                waiting: Waiting::Bulk {
                                    next: event,
                                    rest,
                                    ids,
                                    reply,
                                },
                                until,
                            });
                        }
                        Err(SessionError::Enqueue { error, .. }) => {
                            let error = self.send_error(error);
                            reply.complete(Err(Box::new(BulkSendError {
                                sent: ids,
                                error,
                                unsent: rest.into(),
                            })));
                            return None;
                        }
                        Err(other) => {
                            reply.complete(Err(Box::new(BulkSendError {
                                sent: ids,
                                error: SendError::Refused {
                                    event: Refused::Given(Event::new(Value::Null)),
                                    message: other.to_string(),
                                },
                                unsent: rest.into(),
                            })));
                            return None;
                        }
                    }
                }
            }
        }
    }

    /// The core's time as of the last call (the driver holds no clock).
    fn session_now(&self) -> Instant {
        self.origin.to_core(self.now)
    }

    /// Drains the core's outputs until it names its next deadline.
    fn drain(&mut self) {
        let before = self.poll_timeout();
        loop {
            match self.session.poll_output() {
                Poll::Output(output) => {
                    self.observe(&output);
                    self.output(output);
                }
                Poll::Timeout(wake) => {
                    self.wake = wake;
                    break;
                }
            }
        }
        if self.tap.is_some() {
            let at = self.session_now();
            let session = &self.session;
            if let Some(tap) = &mut self.tap {
                if panic::catch_unwind(AssertUnwindSafe(|| tap.drained(at, session))).is_err() {
                    self.tap = None;
                }
            }
        }
        let acknowledged = self.session.state_counters().puts_acknowledged;
        if acknowledged > self.puts_acknowledged {
            self.puts_acknowledged = acknowledged;
            self.reports
                .publish(Report::StateAcknowledged { puts: acknowledged });
        }
        if let Some(outbox) = &mut self.outbox {
            outbox.bind();
        }
        let after = self.poll_timeout();
        if after.is_some_and(|a| before.is_none_or(|b| a < b)) {
            self.notify = true;
        }
    }

    /// Runs `f` on the tap, dropping the tap (and reporting it) if it panics.
    fn tapped(&mut self, f: impl FnOnce(&mut dyn Tap)) {
        let Some(tap) = &mut self.tap else {
            return;
        };
        if let Err(panic) = panic::catch_unwind(AssertUnwindSafe(|| f(tap.as_mut()))) {
            self.tap = None;
            self.reports.publish(Report::CallbackPanicked {
                message: panic_message(panic.as_ref()),
            });
        }
    }

    fn observe(&mut self, output: &Output) {
        if self.tap.is_some() {
            let at = self.session_now();
            self.tapped(|tap| tap.output(at, output));
        }
        let Some(observer) = &mut self.observer else {
            return;
        };
        if let Err(panic) = panic::catch_unwind(AssertUnwindSafe(|| observer(output))) {
            self.observer = None;
            self.reports.publish(Report::CallbackPanicked {
                message: panic_message(panic.as_ref()),
            });
        }
    }

    fn output(&mut self, output: Output) {
        if let Some(outbox) = &mut self.outbox {
            outbox.output(self.now, &output);
        }
        match output {
            Output::Send(request) => {
                self.in_flight.insert(request.id);
                self.telemetry
                    .sent(request.id, request.endpoint, self.now, &request.body);
                self.wire.requests += 1;
                self.wire.body_bytes += request.body.len() as u64;
                let deadline = self
                    .origin
                    .to_std(request.deadline)
                    .unwrap_or_else(|| far_future(self.origin));
                let http = self.target.build(request, deadline);
                let http = match &mut self.outbox {
                    Some(outbox) => outbox.hold(http),
                    None => Some(http),
                };
                if let Some(http) = http {
                    self.actions.push_back(Action::Send(http));
                }
                self.notify = true;
            }
            Output::Cancel(id) if self.in_flight.remove(&id) => {
                self.telemetry.cancelled(id);
                if !self.outbox.as_mut().is_some_and(|o| o.unhold(id)) {
                    self.actions.push_back(Action::Cancel(id));
                }
                self.notify = true;
            }
            Output::Cancel(_) => {}
            Output::Status(status) => {
                self.telemetry.status(&status);
                self.statuses.publish(status);
                if status.is_terminal() {
                    self.room = true; // waiting offers now fail with `Ended`
                }
            }
            Output::Delivered { stream, events } => {
                self.room = true;
                if !self.reports.is_empty() {
                    self.reports.publish(Report::Delivered { stream, events });
                }
            }
            Output::HandedBack {
                stream,
                reason,
                events,
            } => {
                self.room = true;
                let events: Vec<UndeliveredEvent> = events
                    .into_iter()
                    .map(|e| UndeliveredEvent::new(stream, reason, e))
                    .collect();
                self.undelivered.extend(events.iter().cloned());
                self.telemetry.handed_back(stream, &reason, &events);
                self.reports.publish(Report::HandedBack { reason, events });
            }
            Output::StateRejected(rejection) => {
                self.rejected.push(rejection.clone());
                self.reports.publish(Report::StateRejected(rejection));
            }
            Output::StateUnacknowledged(unacknowledged) => {
                self.unacknowledged = Some(unacknowledged.clone());
                self.reports
                    .publish(Report::StateUnacknowledged(unacknowledged));
            }
            Output::FlushDone(id) => {
                if let Some(reply) = self.flushes.remove(&id) {
                    let status = self.session.status();
                    reply.complete(if status.is_terminal() {
                        Err(FlushError::Ended(status))
                    } else {
                        Ok(())
                    });
                }
            }
            Output::FlushTimedOut(id) => {
                if let Some(reply) = self.flushes.remove(&id) {
                    reply.complete(Err(FlushError::TimedOut));
                }
            }
            Output::DeltaHandedBack { key, error } => {
                self.room = true;
                self.reports.publish(Report::DeltaHandedBack { key, error });
            }
            // A future output of the core: nothing for the driver to carry out.
            _ => {}
        }
    }

    fn close_report(&self) -> CloseReport {
        CloseReport {
            status: self.session.status(),
            epoch: self.session.epoch(),
            undelivered: self.undelivered.clone(),
            state_rejected: self.rejected.clone(),
            state_unacknowledged: self.unacknowledged.clone(),
            counters: self.counters(),
        }
    }

    /// The session has ended: answer every waiter and end the streams.
    fn finish(&mut self) {
        self.finished = true;
        if let Some(outbox) = &mut self.outbox {
            // What the end settled (forgets, the state) is written before anyone is answered.
            outbox.commit(self.now);
        }
        let status = self.session.status();
        for b in std::mem::take(&mut self.blocked) {
            answer_ended(b.waiting, status);
        }
        for (_, reply) in std::mem::take(&mut self.flushes) {
            reply.complete(Err(FlushError::Ended(status)));
        }
        for (_, reply) in std::mem::take(&mut self.deferred_flushes) {
            reply.complete(Err(FlushError::Ended(status)));
        }
        let report = self.close_report();
        for closer in std::mem::take(&mut self.closers) {
            closer.complete(report.clone());
        }
        self.statuses.close();
        self.reports
            .publish(Report::LatencySummary(self.telemetry.summary()));
        self.reports.close();
        self.notify = true;
    }
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("status", &self.session.status())
            .field("in_flight", &self.in_flight.len())
            .field("waiting_for_room", &self.blocked.len())
            .field("flushes", &self.flushes.len())
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.is_finished() {
            // Whatever ran the driver is gone: hand back what is held, at the last known time,
            // so that every accepted event reaches the report stream and the waiters.
            self.shutdown(self.now);
        }
    }
}

/// A panic's message, if it was a string.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// Only events and internal events are uploaded from `send`; a delivery update goes through
/// `ack_delivery`.
fn uploadable(stream: Stream) -> Stream {
    match stream {
        Stream::Delivery => Stream::Events,
        other => other,
    }
}

/// About a century after the origin: "never", in a type that cannot say it.
fn far_future(origin: Origin) -> StdInstant {
    let century = Duration::from_secs(100 * 365 * 24 * 3600);
    origin.at().checked_add(century).unwrap_or(origin.at())
}

fn answer_timeout(waiting: Waiting) {
    match waiting {
        Waiting::One { event, reply } => reply.complete(Err(SendError::Timeout {
            event: Refused::Prepared(event),
        })),
        Waiting::Bulk {
            next,
            rest,
            ids,
            reply,
        } => reply.complete(Err(Box::new(BulkSendError {
            sent: ids,
            error: SendError::Timeout {
                event: Refused::Prepared(next),
            },
            unsent: rest.into(),
        }))),
    }
}

fn answer_ended(waiting: Waiting, status: Status) {
    match waiting {
        Waiting::One { event, reply } => reply.complete(Err(SendError::Ended {
            event: Refused::Prepared(event),
            status,
        })),
        Waiting::Bulk {
            next,
            rest,
            ids,
            reply,
        } => reply.complete(Err(Box::new(BulkSendError {
            sent: ids,
            error: SendError::Ended {
                event: Refused::Prepared(next),
                status,
            },
            unsent: rest.into(),
        }))),
    }
}
