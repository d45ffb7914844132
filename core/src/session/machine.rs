//! The session machine: composes the connect sequence, the heartbeat, three event uploaders
//! and the state uploader, and applies the response table from one place.
//!
//! One file per concern: [`connect`] (the connect sequence), [`flight`] (requests in flight),
//! [`respond`] (the response table and where each outcome goes), [`streams`] (one struct per
//! event stream), [`flush`] (flush and close), [`hold`] (giving up, holding, reconnecting). This file holds the caller's API, the drain of
//! the sub-machines and the next wake-up.

mod budget;
mod connect;
mod flight;
mod flush;
mod hold;
mod outbox;
mod respond;
mod streams;

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use serde_json::{Map, Value};

use self::budget::Budgeting;
use self::connect::Phase;
use self::flight::{Channel, Flights, Purpose};
use self::flush::Flushes;
use self::outbox::StateKept;
use self::streams::{PerStream, StreamSlot};
use super::config::{ConfigError, SessionConfig};
use super::counters::SessionCounters;
use super::io::{DeliveryStatus, Output, SessionError, Stream, Timer};
use super::status::Status;
use super::wire::{Endpoint, RequestId, Response, TransportError};
use crate::backoff::BackoffController;
use crate::batch::{self, Abandon, BatchDrainer, DeltaCoalescer, DeltaError, EventId};
use crate::budget::{BudgetCounters, RetryBudget, RetryGate};
use crate::classify::{Outcome, TransientCause};
use crate::drive::{FlushId, Machine, Poll, Wake};
use crate::heartbeat::{self, Heartbeat};
use crate::rng::Rng;
use crate::state::{self, StateUploader};
use crate::time::{Clock, Instant};

/// The session machine. See the [module docs](super).
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    clock: Clock,
    phase: Phase,
    status: Status,
    epoch: Option<u64>,
    connect: BackoffController,
    connect_retry_at: Option<Instant>,
    heartbeat: Heartbeat,
    heartbeat_wake: Option<Wake<heartbeat::Timer>>,
    streams: PerStream<StreamSlot>,
    state: StateUploader,
    state_wake: Option<Wake<state::Timer>>,
    state_closed: bool,
    flights: Flights,
    auth_failures: u32,
    failures_in_row: u32,
    flushes: Flushes,
    close_deadline: Option<Instant>,
    /// A channel whose failure should be reported as `Retrying` once its wake-up is known.
    retrying: Option<Channel>,
    outputs: VecDeque<Output>,
    counters: SessionCounters,
    budget: Budgeting,
    deltas: DeltaCoalescer,
    deltas_wake: Option<Wake<batch::DeltaTimer>>,
    /// With an outbox: what the driver was last asked to keep of the state.
    state_kept: StateKept,
}

impl Session {
    /// A session that starts connecting at `now`. Every random choice (jitter, event uuids)
    /// derives from `rng`. Drain [`poll_output`](Self::poll_output) next: the first request
    /// is already waiting.
    pub fn new(config: SessionConfig, mut rng: Rng, now: Instant) -> Result<Self, ConfigError> {
        config.validate()?;
        let heartbeat =
            Heartbeat::new(config.heartbeat, rng.fork()).map_err(ConfigError::Heartbeat)?;
        let drainer = |config: &batch::Config, stream: Stream, rng: Rng| {
            BatchDrainer::new(*config, rng)
                .map(StreamSlot::new)
                .map_err(|error| ConfigError::Uploader {
                    stream: stream.name(),
                    error,
                })
        };
        // The forks happen in stream order, so the same seed gives the same uuids as before.
        let events = drainer(&config.events, Stream::Events, rng.fork())?;
        let internal = drainer(&config.internal_events, Stream::InternalEvents, rng.fork())?;
        let delivery = drainer(&config.delivery, Stream::Delivery, rng.fork())?;
        let mut streams = PerStream::new([events, internal, delivery]);
        if config.outbox {
            for slot in streams.values_mut() {
                slot.uploader.record_accepted(true);
            }
        }
        let state = StateUploader::new(config.state.clone(), rng.fork());
        let connect = BackoffController::new(config.connect, rng.fork());
        // Forked last, so that every earlier fork (and so every uuid) is what it was before.
        let budget_rng = rng.fork();
        let gate = match config.retry_budget {
            Some(budget) => Some(Box::new(
                RetryBudget::new(budget).map_err(ConfigError::RetryBudget)?,
            ) as Box<dyn RetryGate>),
            None => None,
        };
        let deltas = DeltaCoalescer::new(config.deltas.clone()).map_err(ConfigError::Deltas)?;
        let phase = if config.epoch.is_some() {
            Phase::Init
        } else {
            Phase::Register
        };
        let mut session = Session {
            epoch: config.epoch,
            config,
            clock: Clock::new(now),
            phase,
            status: Status::Connecting,
            connect,
            connect_retry_at: None,
            heartbeat,
            heartbeat_wake: None,
            streams,
            state,
            state_wake: None,
            state_closed: false,
            flights: Flights::default(),
            auth_failures: 0,
            failures_in_row: 0,
            flushes: Flushes::default(),
            close_deadline: None,
            retrying: None,
            outputs: VecDeque::new(),
            counters: SessionCounters::default(),
            budget: Budgeting::new(gate, budget_rng),
            deltas,
            deltas_wake: None,
            state_kept: StateKept::default(),
        };
        session.emit_status(Status::Connecting);
        session.connect.start(now);
        session.send_connect_step(now);
        session.pump(now);
        Ok(session)
    }

    // ----- the caller's API -----

    /// Queues an event for `/worker/events`. Fails, handing the event back inside the error,
    /// if it is bad or the queue is full (see [`batch::Error`]).
    pub fn send_event(
        &mut self,
        now: Instant,
        event: batch::Event,
    ) -> Result<EventId, SessionError> {
        self.enqueue(now, Stream::Events, event)
    }

    /// Takes a stream delta of `key` for `/worker/events` (e.g. one token of a content block):
    /// deltas of the same key within [`SessionConfig::deltas`]'s window are merged into one
    /// event (their texts concatenated, other fields from the last) before they are queued.
    /// Any other event on `/worker/events`, a flush and a close first queue what is buffered.
    /// A merged event the uploader refuses comes back in [`Output::DeltaHandedBack`]; a delta
    /// refused at once comes back inside the error ([`DeltaError::Closed`] once the session is
    /// closing or has ended).
    pub fn send_delta(
        &mut self,
        now: Instant,
        key: impl Into<String>,
        payload: Value,
    ) -> Result<(), DeltaError> {
        let now = self.clock.observe(now);
        if self.is_ended() || self.close_deadline.is_some() {
            let key = key.into();
            return Err(DeltaError::Closed { key, payload });
        }
        self.deltas.push(now, key, payload)?;
        self.pump(now);
        Ok(())
    }

    /// Serialises `value` straight into its wire item and queues it for `/worker/events`: the
    /// typed fast path, with no [`Value`] in between (see
    /// [`BatchDrainer::enqueue_serialize`]).
    pub fn send_event_serialize<T: serde::Serialize + ?Sized>(
        &mut self,
        now: Instant,
        value: &T,
    ) -> Result<EventId, SessionError> {
        self.enqueue_serialize(now, Stream::Events, value)
    }

    /// Queues an event for `/worker/internal-events`.
    pub fn send_internal_event(
        &mut self,
        now: Instant,
        event: batch::Event,
    ) -> Result<EventId, SessionError> {
        self.enqueue(now, Stream::InternalEvents, event)
    }

    /// Serialises `value` straight into its wire item and queues it for
    /// `/worker/internal-events`: [`send_event_serialize`](Self::send_event_serialize) for the
    /// internal stream.
    pub fn send_internal_event_serialize<T: serde::Serialize + ?Sized>(
        &mut self,
        now: Instant,
        value: &T,
    ) -> Result<EventId, SessionError> {
        self.enqueue_serialize(now, Stream::InternalEvents, value)
    }

    /// Queues again an event the session handed back, e.g. from
    /// [`batch::Error::QueueFull`](batch::Error::QueueFull), keeping its uuid and its
    /// serialisation: a shim waiting for capacity re-offers the same bytes.
    pub fn resend(
        &mut self,
        now: Instant,
        stream: Stream,
        event: batch::PreparedEvent,
    ) -> Result<EventId, SessionError> {
        let now = self.clock.observe(now);
        if stream == Stream::Events {
            self.release_deltas(now);
        }
        let result = self.streams[stream]
            .uploader
            .enqueue_prepared(now, event)
            .map_err(|error| SessionError::Enqueue { stream, error });
        self.pump(now);
        result
    }

    /// Validates, stamps and serialises `event` for `stream` without queueing it (its uuid is
    /// drawn now, as a send would): a driver holding callers who wait for room prepares what
    /// comes after them, and queues it in order with [`resend`](Self::resend).
    pub fn prepare(
        &mut self,
        stream: Stream,
        event: batch::Event,
    ) -> Result<batch::PreparedEvent, SessionError> {
        self.streams[stream]
            .uploader
            .prepare(event)
            .map_err(|error| SessionError::Enqueue { stream, error })
    }

    /// [`prepare`](Self::prepare) for a `Serialize` value on `/worker/events`, through the
    /// typed fast path.
    pub fn prepare_serialize<T: serde::Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<batch::PreparedEvent, SessionError> {
        let stream = Stream::Events;
        self.streams[stream]
            .uploader
            .prepare_serialize(value)
            .map_err(|error| SessionError::Enqueue { stream, error })
    }

    /// The delivery acknowledgement `ack_delivery` would queue, as an event.
    pub fn delivery_update(event_id: &str, status: DeliveryStatus) -> batch::Event {
        let mut update = Map::new();
        update.insert("event_id".into(), Value::String(event_id.into()));
        update.insert("status".into(), Value::String(status.as_str().into()));
        batch::Event::new(Value::Object(update))
    }

    /// Queues a delivery acknowledgement for `/worker/events/delivery`.
    pub fn ack_delivery(
        &mut self,
        now: Instant,
        event_id: &str,
        status: DeliveryStatus,
    ) -> Result<EventId, SessionError> {
        let update = Session::delivery_update(event_id, status);
        self.enqueue(now, Stream::Delivery, update)
    }

    /// A patch to the worker document: top-level keys replace, the metadata keys merge
    /// (docs/PROTOCOL.md). Coalesced with whatever is pending; never blocks. Returns the patch's
    /// sequence number, which [`Output::StateRejected`] and [`Output::StateUnacknowledged`]
    /// quote.
    pub fn patch_state(&mut self, now: Instant, patch: Value) -> Result<u64, SessionError> {
        let now = self.clock.observe(now);
        if let Some(ended) = self.ended() {
            return Err(SessionError::Ended(ended));
        }
        if self.close_deadline.is_some() {
            // Intake stops at close, as for events: the close drains what it has.
            return Err(SessionError::Closing);
        }
        let result = self.state.enqueue(now, patch).map_err(SessionError::State);
        self.pump(now);
        result
    }

    /// Reports [`Output::FlushDone`] once everything given before this call is delivered or
    /// handed back and every patch has landed, or [`Output::FlushTimedOut`] at `deadline`.
    ///
    /// After the session ended there is nothing to wait for, and no output may follow the
    /// terminal status, so the call fails instead.
    pub fn flush(&mut self, now: Instant, deadline: Instant) -> Result<FlushId, SessionError> {
        let now = self.clock.observe(now);
        let id = self.start_flush(now, deadline)?;
        self.pump(now);
        Ok(id)
    }

    /// Stops intake and drains until `deadline`; then hands back whatever is left, per stream,
    /// and ends with [`Status::Closed`]. The session keeps connecting and beating meanwhile.
    pub fn close(&mut self, now: Instant, deadline: Instant) {
        let now = self.clock.observe(now);
        self.start_close(now, deadline);
        self.pump(now);
    }

    /// Feeds the response to request `id`. A response to a request that is no longer in
    /// flight (its deadline passed, or the session ended) is ignored.
    pub fn handle_response(&mut self, now: Instant, id: RequestId, response: Response) {
        let now = self.clock.observe(now);
        let Some(flight) = self.flights.take(id) else {
            self.counters.late_replies += 1;
            return;
        };
        self.counters.replies += 1;
        let (outcome, body) = self.read_response(flight.purpose, &response);
        self.settle(now, flight.purpose, outcome, body);
        self.pump(now);
    }

    /// Feeds a transport failure of request `id` (connection refused or reset, I/O error).
    pub fn handle_transport_error(&mut self, now: Instant, id: RequestId, _error: &TransportError) {
        let now = self.clock.observe(now);
        let Some(flight) = self.flights.take(id) else {
            self.counters.late_replies += 1;
            return;
        };
        self.counters.replies += 1;
        let outcome = Outcome::Transient(TransientCause::Transport);
        self.settle(now, flight.purpose, outcome, None);
        self.pump(now);
    }

    /// Time passed: fails requests past their deadline, fires due timers. Early or spurious
    /// calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clock.observe(now);
        if self.is_ended() {
            return;
        }
        for channel in Channel::ALL {
            if let Some(flight) = self.flights.take_expired(channel, now) {
                self.counters.cancelled += 1;
                self.outputs.push_back(Output::Cancel(flight.id));
                let outcome = Outcome::Transient(TransientCause::TimedOut);
                self.settle(now, flight.purpose, outcome, None);
                if self.is_ended() {
                    return;
                }
            }
        }
        self.release_parked(now);
        if matches!(self.connect_retry_at, Some(at) if at <= now) {
            self.connect_retry_at = None;
            self.send_connect_step(now);
        }
        self.heartbeat.handle_timeout(now);
        self.deltas.handle_timeout(now);
        for slot in self.streams.values_mut() {
            slot.uploader.handle_timeout(now);
        }
        self.state.handle_timeout(now);
        self.expire_flushes(now);
        if matches!(self.close_deadline, Some(d) if d <= now) && !self.state_closed {
            self.state.close(now);
        }
        self.pump(now);
    }

    /// The next action, or the next wake-up once none is left. Call after every other method.
    #[must_use = "the session's outputs are its only way to get work done"]
    pub fn poll_output(&mut self) -> Poll<Output, Timer> {
        if let Some(output) = self.outputs.pop_front() {
            return Poll::Output(output);
        }
        Poll::Timeout(self.next_wake())
    }

    /// Puts the session's retries under `gate` (in place of
    /// [`SessionConfig::retry_budget`]): e.g. one budget shared by many sessions, which a driver
    /// keeps behind a lock. Requests already waiting for the old budget ask the new one.
    pub fn set_retry_gate(&mut self, gate: Box<dyn RetryGate>) {
        self.budget.set_gate(gate);
    }

    // ----- what the caller can read -----

    /// The delta coalescer's counts.
    pub fn delta_counters(&self) -> batch::DeltaCounters {
        self.deltas.counters()
    }

    /// The retry budget's state (for a shared budget, the whole budget's), if there is one.
    pub fn retry_budget(&self) -> Option<BudgetCounters> {
        self.budget.counters()
    }

    /// The current status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The worker epoch, once known.
    pub fn epoch(&self) -> Option<u64> {
        self.epoch
    }

    /// The worker document as the server will hold it once every pending patch has landed.
    pub fn state_view(&self) -> &Value {
        self.state.view()
    }

    /// The worker document as the server last acknowledged it.
    pub fn state_acknowledged(&self) -> &Value {
        self.state.acknowledged()
    }

    /// Session-wide counts.
    pub fn counters(&self) -> SessionCounters {
        self.counters
    }

    /// One uploader's counts.
    pub fn uploader_counters(&self, stream: Stream) -> batch::Counters {
        self.streams[stream].uploader.counters()
    }

    /// How much one uploader holds: a shim waits on this for capacity.
    pub fn uploader_depth(&self, stream: Stream) -> batch::Depth {
        self.streams[stream].uploader.depth()
    }

    /// The state uploader's counts.
    pub fn state_counters(&self) -> state::Counters {
        self.state.counters()
    }

    /// How many state patches the state uploader holds unacknowledged (see
    /// [`StateUploader::unacknowledged_patches`](crate::state::StateUploader::unacknowledged_patches)).
    pub fn state_unacknowledged(&self) -> u64 {
        self.state.unacknowledged_patches()
    }

    /// The configuration in force.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// A request id for a channel that rides on this session without being one of its own
    /// (thread sync): taken from the session's counter, so no two requests of the session, of
    /// any channel, ever share an id.
    pub fn reserve_request_id(&mut self) -> RequestId {
        self.flights.reserve()
    }

    /// The requests in flight, with their endpoints.
    pub fn in_flight(&self) -> impl Iterator<Item = (RequestId, Endpoint)> + '_ {
        self.flights.iter().map(|f| (f.id, f.purpose.endpoint()))
    }

    // ----- internals -----

    fn is_ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    fn ended(&self) -> Option<Status> {
        self.is_ended().then_some(self.status)
    }

    fn enqueue(
        &mut self,
        now: Instant,
        stream: Stream,
        event: batch::Event,
    ) -> Result<EventId, SessionError> {
        let now = self.clock.observe(now);
        if stream == Stream::Events {
            self.release_deltas(now);
        }
        let result = self.streams[stream]
            .uploader
            .enqueue(now, event)
            .map_err(|error| SessionError::Enqueue { stream, error });
        self.pump(now);
        result
    }

    /// [`enqueue`](Self::enqueue) for a `Serialize` value, through the typed fast path.
    fn enqueue_serialize<T: serde::Serialize + ?Sized>(
        &mut self,
        now: Instant,
        stream: Stream,
        value: &T,
    ) -> Result<EventId, SessionError> {
        let now = self.clock.observe(now);
        if stream == Stream::Events {
            self.release_deltas(now);
        }
        let result = self.streams[stream]
            .uploader
            .enqueue_serialize(now, value)
            .map_err(|error| SessionError::Enqueue { stream, error });
        self.pump(now);
        result
    }

    fn emit_status(&mut self, status: Status) {
        if self.status == status && self.counters.status_changes > 0 {
            return;
        }
        self.status = status;
        self.counters.status_changes += 1;
        self.outputs.push_back(Output::Status(status));
    }

    /// Describes a request for `purpose` with the deadline of its kind, once the retry budget
    /// (if any) lets it go.
    fn send(&mut self, now: Instant, purpose: Purpose, body: Vec<u8>) {
        if let Some(body) = self.admit(now, purpose, body) {
            self.open_request(now, purpose, body);
        }
    }

    /// Describes a request for `purpose` with the deadline of its kind.
    fn open_request(&mut self, now: Instant, purpose: Purpose, body: Vec<u8>) {
        let timeout = match purpose {
            Purpose::Beat(_) => self.config.heartbeat_timeout,
            _ => self.config.request_timeout,
        };
        let request = self
            .flights
            .open(purpose, body, now.saturating_add(timeout));
        self.counters.requests += 1;
        self.outputs.push_back(Output::Send(request));
    }

    /// Ends the session: everything undelivered is handed back, every request cancelled, and
    /// the terminal status is the last output.
    fn end(&mut self, now: Instant, terminal: Status) {
        if self.is_ended() {
            return;
        }
        let abandon = match terminal {
            Status::Superseded => Some(Abandon::Superseded),
            Status::GivenUp(_) => Some(Abandon::GivenUp),
            _ => None,
        };
        self.release_deltas(now);
        if let Some(reason) = abandon {
            for slot in self.streams.values_mut() {
                slot.uploader.abandon(now, reason);
            }
        }
        if !self.state_closed {
            self.state.close(now);
        }
        self.heartbeat.stop(now);
        for flight in self.flights.take_all() {
            self.counters.cancelled += 1;
            self.outputs.push_back(Output::Cancel(flight.id));
        }
        self.connect_retry_at = None;
        self.budget.clear();
        self.phase = Phase::Ended;
        self.drain_subs(now);
        self.persist_state();
        self.finish_flushes();
        self.emit_status(terminal);
    }

    /// Drains every sub-machine into session outputs, then reports what that settled.
    fn pump(&mut self, now: Instant) {
        if self.is_ended() {
            return;
        }
        self.drain_subs(now);
        if self.is_ended() {
            return;
        }
        if let Some(Channel::Stream(stream)) = self.retrying.take() {
            // Only a scheduled retry is reported; a batch that became dead letters is not
            // retried. (The state channel reports its own retry time.)
            if let (Phase::Connected, Some(w)) = (self.phase, self.streams[stream].wake) {
                if w.reason == batch::Timer::Backoff {
                    self.emit_status(Status::Retrying {
                        attempt: self.failures_in_row,
                        at: w.at,
                    });
                }
            }
        }
        if self.state.is_idle() && !self.state_closed {
            self.state_settled();
            if self.close_deadline.is_some() {
                self.state.close(now);
                self.drain_subs(now);
            }
        }
        self.persist_state();
        self.finish_close_if_done(now);
    }

    /// Drains every sub-machine until none has more to say.
    fn drain_subs(&mut self, now: Instant) {
        loop {
            let mut progressed = self.drain_deltas(now);
            loop {
                match self.heartbeat.poll_output() {
                    Poll::Output(out) => {
                        progressed = true;
                        self.on_heartbeat(now, out);
                    }
                    Poll::Timeout(wake) => {
                        self.heartbeat_wake = wake;
                        break;
                    }
                }
            }
            for stream in Stream::ALL {
                self.persist_accepted(stream);
                loop {
                    match self.streams[stream].uploader.poll_output() {
                        Poll::Output(out) => {
                            progressed = true;
                            self.on_uploader(now, stream, out);
                        }
                        Poll::Timeout(wake) => {
                            self.streams[stream].wake = wake;
                            break;
                        }
                    }
                }
            }
            loop {
                match self.state.poll_output() {
                    Poll::Output(out) => {
                        progressed = true;
                        self.on_state(now, out);
                    }
                    Poll::Timeout(wake) => {
                        self.state_wake = wake;
                        break;
                    }
                }
            }
            if !progressed {
                break;
            }
        }
    }

    /// Releases every buffered delta into the events uploader, ahead of what comes next.
    fn release_deltas(&mut self, now: Instant) {
        if !self.deltas.is_empty() {
            self.deltas.release_all();
            self.drain_deltas(now);
        }
    }

    /// Queues the merged events the coalescer released; says whether there were any.
    fn drain_deltas(&mut self, now: Instant) -> bool {
        let mut progressed = false;
        loop {
            match self.deltas.poll_output() {
                Poll::Output(merged) => {
                    progressed = true;
                    let event = batch::Event::new(merged.payload);
                    if let Err(error) = self.streams[Stream::Events].uploader.enqueue(now, event) {
                        self.outputs.push_back(Output::DeltaHandedBack {
                            key: merged.key,
                            error,
                        });
                    }
                }
                Poll::Timeout(wake) => {
                    self.deltas_wake = wake;
                    return progressed;
                }
            }
        }
    }

    fn on_heartbeat(&mut self, now: Instant, out: heartbeat::Output) {
        match out {
            heartbeat::Output::Send(id) => {
                let (Some(epoch), Phase::Connected) = (self.epoch, self.phase) else {
                    // The heartbeat runs only while connected; a beat due otherwise fails.
                    let outcome = Outcome::Transient(TransientCause::Transport);
                    if let Err(error) = self.heartbeat.handle_outcome(now, id, outcome) {
                        debug_assert!(false, "heartbeat refused its own beat: {error}");
                    }
                    return;
                };
                let body = epoch_body(
                    epoch,
                    [("session_id", Value::String(self.config.session_id.clone()))],
                );
                self.counters.heartbeats_sent += 1;
                self.send(now, Purpose::Beat(id), body);
            }
            heartbeat::Output::Stale { .. } => {
                if self.phase == Phase::Connected {
                    self.emit_status(Status::Stale);
                }
            }
            heartbeat::Output::Live => {
                if self.phase == Phase::Connected {
                    self.emit_status(Status::Connected);
                }
            }
        }
    }

    fn on_state(&mut self, now: Instant, out: state::Output) {
        match out {
            state::Output::Send { id, body } => {
                if !self.is_ended() {
                    self.send(now, Purpose::Put(id), body);
                }
            }
            state::Output::Cancel { id } => {
                // The session owns deadlines (the state uploader's own is off); a cancel from it
                // still must not leave a request dangling.
                if let Some(flight) = self.flights.take_purpose(Purpose::Put(id)) {
                    self.outputs.push_back(Output::Cancel(flight.id));
                }
                self.budget.drop_purpose(Purpose::Put(id));
            }
            state::Output::Retrying { at, .. } => {
                if self.phase == Phase::Connected {
                    self.emit_status(Status::Retrying {
                        attempt: self.failures_in_row,
                        at,
                    });
                }
            }
            state::Output::Rejected(rejection) => {
                self.outputs.push_back(Output::StateRejected(rejection));
            }
            // The session does not ask the state uploader for flushes; it watches `is_idle`.
            state::Output::FlushDone(_) | state::Output::FlushTimedOut(_) => {}
            state::Output::Closed(unacknowledged) => {
                self.state_closed = true;
                self.keep_handed_back_state(&unacknowledged.update);
                self.budget.drop_channel(Channel::State);
                if !unacknowledged.update.is_empty() || unacknowledged.in_flight.is_some() {
                    self.outputs
                        .push_back(Output::StateUnacknowledged(unacknowledged));
                }
                // After the hand-back: a flush is done once everything was handed back.
                self.state_settled();
                self.complete_flushes();
            }
        }
    }

    fn next_wake(&self) -> Option<Wake<Timer>> {
        if self.is_ended() {
            return None;
        }
        let mut best: Option<Wake<Timer>> = None;
        let mut consider = |at: Option<Instant>, reason: Timer| {
            if let Some(at) = at {
                if best.is_none_or(|b| at < b.at) {
                    best = Some(Wake::new(at, reason));
                }
            }
        };
        consider(self.flights.earliest_deadline(), Timer::RequestDeadline);
        consider(self.connect_retry_at, Timer::Connect);
        if let Some(w) = self.heartbeat_wake {
            consider(Some(w.at), Timer::Heartbeat(w.reason));
        }
        for (stream, slot) in self.streams.iter() {
            if let Some(w) = slot.wake {
                consider(Some(w.at), Timer::Uploader(stream, w.reason));
            }
        }
        if let Some(w) = self.state_wake {
            consider(Some(w.at), Timer::State(w.reason));
        }
        consider(self.budget.earliest(), Timer::RetryBudget);
        if let Some(w) = self.deltas_wake {
            consider(Some(w.at), Timer::DeltaWindow);
        }
        consider(self.flushes.earliest_deadline(), Timer::FlushDeadline);
        if !self.state_closed {
            consider(self.close_deadline, Timer::CloseDeadline);
        }
        best
    }
}

/// A compact JSON body: `worker_epoch` plus the given fields.
fn epoch_body<const N: usize>(epoch: u64, fields: [(&str, Value); N]) -> Vec<u8> {
    let mut map = Map::new();
    for (key, value) in fields {
        map.insert(String::from(key), value);
    }
    map.insert(String::from(state::EPOCH_KEY), Value::from(epoch));
    serde_json::to_vec(&Value::Object(map)).unwrap_or_default()
}

impl Machine for Session {
    type Output = Output;
    type Timer = Timer;

    fn handle_timeout(&mut self, now: Instant) {
        Session::handle_timeout(self, now);
    }

    fn poll_output(&mut self) -> Poll<Output, Timer> {
        Session::poll_output(self)
    }
}
