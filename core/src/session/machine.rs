//! The session machine: composes the connect sequence, the heartbeat, three event uploaders
//! and the state uploader, and applies the response table from one place.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use serde_json::{Map, Value};

use super::config::{ConfigError, SessionConfig};
use super::counters::SessionCounters;
use super::io::{DeliveryStatus, FlushId, Input, Output, SessionError, Stream, Timer};
use super::status::{GiveUpReason, Status};
use super::wire::{Endpoint, Request, RequestId, Response, TransportError};
use crate::backoff::{BackoffController, Decision, Failure};
use crate::batch::{self, Abandon, BatchDrainer, BatchId, BatchOutcome, EventId};
use crate::classify::{classify, Outcome, Reply, TransientCause};
use crate::drive::{Machine, Poll, Wake};
use crate::heartbeat::{BeatId, Heartbeat, HeartbeatInput, HeartbeatOutput, HeartbeatTimer};
use crate::rng::Rng;
use crate::state::{self, PutId, PutOutcome, StateUploader};
use crate::time::{Clock, Instant};

/// Where the connect sequence is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// `POST /worker/register`, for a session without an epoch.
    Register,
    /// `PUT /worker` with `worker_status: idle`.
    Init,
    /// `GET /worker` for the base document.
    Fetch,
    /// Everything runs.
    Connected,
    /// A terminal status was emitted; nothing more happens.
    Ended,
}

/// A channel carries at most one request at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Channel {
    Connect,
    Heartbeat,
    Stream(Stream),
    State,
}

impl Channel {
    const COUNT: usize = 6;

    fn index(self) -> usize {
        match self {
            Channel::Connect => 0,
            Channel::Heartbeat => 1,
            Channel::Stream(Stream::Events) => 2,
            Channel::Stream(Stream::InternalEvents) => 3,
            Channel::Stream(Stream::Delivery) => 4,
            Channel::State => 5,
        }
    }
}

/// What a request in flight is for, so its outcome goes back to the right machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    Connect(Phase),
    Beat(BeatId),
    Batch(Stream, BatchId),
    Put(PutId),
}

impl Purpose {
    fn channel(self) -> Channel {
        match self {
            Purpose::Connect(_) => Channel::Connect,
            Purpose::Beat(_) => Channel::Heartbeat,
            Purpose::Batch(stream, _) => Channel::Stream(stream),
            Purpose::Put(_) => Channel::State,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct InFlight {
    id: RequestId,
    purpose: Purpose,
    deadline: Instant,
}

/// What the retry column of the response table says to a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Success,
    Retry(Option<Duration>),
    TooLarge,
    Permanent(u16),
}

#[derive(Clone, Debug)]
struct PendingFlush {
    id: FlushId,
    streams: [Option<batch::FlushId>; 3],
    state: bool,
    deadline: Instant,
}

impl PendingFlush {
    fn is_done(&self) -> bool {
        !self.state && self.streams.iter().all(Option::is_none)
    }
}

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
    uploaders: [BatchDrainer; 3],
    state: StateUploader,
    in_flight: [Option<InFlight>; Channel::COUNT],
    next_request: u64,
    auth_failures: u32,
    failures_in_row: u32,
    flushes: Vec<PendingFlush>,
    next_flush: u64,
    close_deadline: Option<Instant>,
    streams_closed: [bool; 3],
    state_closed: bool,
    /// A channel whose failure should be reported as `Retrying` once its wake-up is known.
    retrying: Option<Channel>,
    wakes: SubWakes,
    outputs: VecDeque<Output>,
    counters: SessionCounters,
}

#[derive(Clone, Copy, Debug, Default)]
struct SubWakes {
    heartbeat: Option<Wake<HeartbeatTimer>>,
    streams: [Option<Wake<batch::Timer>>; 3],
    state: Option<Wake<state::Timer>>,
}

fn stream_index(stream: Stream) -> usize {
    match stream {
        Stream::Events => 0,
        Stream::InternalEvents => 1,
        Stream::Delivery => 2,
    }
}

fn stream_endpoint(stream: Stream) -> Endpoint {
    match stream {
        Stream::Events => Endpoint::Events,
        Stream::InternalEvents => Endpoint::InternalEvents,
        Stream::Delivery => Endpoint::Delivery,
    }
}

impl Session {
    /// A session that starts connecting at `now`. Every random choice (jitter, event uuids)
    /// derives from `seed`. Drain [`poll_output`](Self::poll_output) next: the first request
    /// is already waiting.
    pub fn new(config: SessionConfig, now: Instant, seed: u64) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut rng = Rng::new(seed);
        let heartbeat =
            Heartbeat::new(config.heartbeat, rng.fork()).map_err(ConfigError::Heartbeat)?;
        let drainer = |config: &batch::Config, stream: Stream, rng: Rng| {
            BatchDrainer::new(*config, rng).map_err(|error| ConfigError::Uploader {
                stream: stream.name(),
                error,
            })
        };
        let uploaders = [
            drainer(&config.events, Stream::Events, rng.fork())?,
            drainer(&config.internal_events, Stream::InternalEvents, rng.fork())?,
            drainer(&config.delivery, Stream::Delivery, rng.fork())?,
        ];
        let state = StateUploader::with_rng(config.state.clone(), rng.fork());
        let connect = BackoffController::new(config.connect, rng.fork());
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
            uploaders,
            state,
            in_flight: [None; Channel::COUNT],
            next_request: 0,
            auth_failures: 0,
            failures_in_row: 0,
            flushes: Vec::new(),
            next_flush: 0,
            close_deadline: None,
            streams_closed: [false; 3],
            state_closed: false,
            retrying: None,
            wakes: SubWakes::default(),
            outputs: VecDeque::new(),
            counters: SessionCounters::default(),
        };
        session.emit_status(Status::Connecting);
        session.connect.start(now);
        session.send_connect_step(now);
        session.pump(now);
        Ok(session)
    }

    // ----- the caller's API -----

    /// Queues an event for `/worker/events`. Fails, handing the event back inside the error,
    /// if it is bad or the queue is full (see [`batch::EnqueueError`]).
    pub fn send_event(
        &mut self,
        now: Instant,
        event: batch::Event,
    ) -> Result<EventId, SessionError> {
        self.enqueue(now, Stream::Events, event)
    }

    /// Queues an event for `/worker/internal-events`.
    pub fn send_internal_event(
        &mut self,
        now: Instant,
        event: batch::Event,
    ) -> Result<EventId, SessionError> {
        self.enqueue(now, Stream::InternalEvents, event)
    }

    /// Queues again an event the session handed back, e.g. from
    /// [`EnqueueError::QueueFull`](batch::EnqueueError::QueueFull), keeping its uuid and its
    /// serialisation: a shim waiting for capacity re-offers the same bytes.
    pub fn resend(
        &mut self,
        now: Instant,
        stream: Stream,
        event: batch::PreparedEvent,
    ) -> Result<EventId, SessionError> {
        let now = self.clock.observe(now);
        let result = self.uploaders[stream_index(stream)]
            .enqueue_prepared(now, event)
            .map_err(|error| SessionError::Enqueue { stream, error });
        self.pump(now);
        result
    }

    /// Queues a delivery acknowledgement for `/worker/events/delivery`.
    pub fn ack_delivery(
        &mut self,
        now: Instant,
        event_id: &str,
        status: DeliveryStatus,
    ) -> Result<EventId, SessionError> {
        let mut update = Map::new();
        update.insert("event_id".into(), Value::String(event_id.into()));
        update.insert("status".into(), Value::String(status.as_str().into()));
        self.enqueue(
            now,
            Stream::Delivery,
            batch::Event::new(Value::Object(update)),
        )
    }

    /// A patch to the worker document: top-level keys replace, the metadata keys merge
    /// (PROTOCOL.md). Coalesced with whatever is pending; never blocks. Returns the patch's
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
        if let Some(ended) = self.ended() {
            return Err(SessionError::Ended(ended));
        }
        let id = FlushId(self.next_flush);
        self.next_flush += 1;
        // The session owns the deadline: the uploaders' flushes never time out on their own,
        // and the state part is done once the state uploader is idle.
        let mut streams = [None; 3];
        for stream in Stream::ALL {
            let i = stream_index(stream);
            if !self.streams_closed[i] {
                streams[i] = Some(self.uploaders[i].flush(now, Instant::MAX));
            }
        }
        let state = !self.state_closed && !self.state.is_idle();
        self.flushes.push(PendingFlush {
            id,
            streams,
            state,
            deadline,
        });
        self.pump(now);
        Ok(id)
    }

    /// Stops intake and drains until `deadline`; then hands back whatever is left, per stream,
    /// and ends with [`Status::Closed`]. The session keeps connecting and beating meanwhile.
    pub fn close(&mut self, now: Instant, deadline: Instant) {
        let now = self.clock.observe(now);
        if self.ended().is_some() {
            return;
        }
        let deadline = match self.close_deadline {
            Some(d) => d.min(deadline),
            None => deadline,
        };
        self.close_deadline = Some(deadline);
        for uploader in &mut self.uploaders {
            uploader.close(now, deadline);
        }
        // The state uploader closes (handing back what is left) once idle or at the deadline;
        // see `pump` and `handle_timeout`.
        self.pump(now);
    }

    /// Feeds the response to request `id`. A response to a request that is no longer in
    /// flight (its deadline passed, or the session ended) is ignored.
    pub fn handle_response(&mut self, now: Instant, id: RequestId, response: Response) {
        let now = self.clock.observe(now);
        let Some(flight) = self.take_in_flight(id) else {
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
        let Some(flight) = self.take_in_flight(id) else {
            self.counters.late_replies += 1;
            return;
        };
        self.counters.replies += 1;
        self.settle(
            now,
            flight.purpose,
            Outcome::Transient(TransientCause::Transport),
            None,
        );
        self.pump(now);
    }

    /// Time passed: fails requests past their deadline, fires due timers. Early or spurious
    /// calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clock.observe(now);
        if self.phase == Phase::Ended {
            return;
        }
        for slot in 0..Channel::COUNT {
            let expired = matches!(self.in_flight[slot], Some(f) if f.deadline <= now);
            if expired {
                let Some(flight) = self.in_flight[slot].take() else {
                    continue;
                };
                self.counters.cancelled += 1;
                self.outputs.push_back(Output::Cancel(flight.id));
                self.settle(
                    now,
                    flight.purpose,
                    Outcome::Transient(TransientCause::TimedOut),
                    None,
                );
                if self.phase == Phase::Ended {
                    return;
                }
            }
        }
        if matches!(self.connect_retry_at, Some(at) if at <= now) {
            self.connect_retry_at = None;
            self.send_connect_step(now);
        }
        self.heartbeat.handle_timeout(now);
        for uploader in &mut self.uploaders {
            uploader.handle_timeout(now);
        }
        self.state.handle_timeout(now);
        let mut i = 0;
        while i < self.flushes.len() {
            if self.flushes[i].deadline <= now {
                let flush = self.flushes.remove(i);
                self.outputs.push_back(Output::FlushTimedOut(flush.id));
            } else {
                i += 1;
            }
        }
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

    // ----- what the caller can read -----

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
        self.uploaders[stream_index(stream)].counters()
    }

    /// How much one uploader holds: a shim waits on this for capacity.
    pub fn uploader_depth(&self, stream: Stream) -> batch::Depth {
        self.uploaders[stream_index(stream)].depth()
    }

    /// The state uploader's counts.
    pub fn state_counters(&self) -> state::Counters {
        self.state.counters()
    }

    /// The configuration in force.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Requests in flight now, at most one per channel.
    pub fn in_flight(&self) -> impl Iterator<Item = (RequestId, Endpoint)> + '_ {
        self.in_flight.iter().flatten().map(|f| {
            let endpoint = match f.purpose {
                Purpose::Connect(Phase::Register) => Endpoint::Register,
                Purpose::Connect(Phase::Fetch) => Endpoint::GetWorker,
                Purpose::Connect(_) | Purpose::Put(_) => Endpoint::PutWorker,
                Purpose::Beat(_) => Endpoint::Heartbeat,
                Purpose::Batch(stream, _) => stream_endpoint(stream),
            };
            (f.id, endpoint)
        })
    }

    // ----- internals -----

    fn ended(&self) -> Option<Status> {
        (self.phase == Phase::Ended).then_some(self.status)
    }

    fn enqueue(
        &mut self,
        now: Instant,
        stream: Stream,
        event: batch::Event,
    ) -> Result<EventId, SessionError> {
        let now = self.clock.observe(now);
        let result = self.uploaders[stream_index(stream)]
            .enqueue(now, event)
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

    fn send(&mut self, now: Instant, purpose: Purpose, endpoint: Endpoint, body: Vec<u8>) {
        let timeout = match purpose {
            Purpose::Beat(_) => self.config.heartbeat_timeout,
            _ => self.config.request_timeout,
        };
        let id = RequestId(self.next_request);
        self.next_request += 1;
        let deadline = now + timeout;
        let slot = &mut self.in_flight[purpose.channel().index()];
        debug_assert!(
            slot.is_none(),
            "two requests in flight on {:?}",
            purpose.channel()
        );
        *slot = Some(InFlight {
            id,
            purpose,
            deadline,
        });
        self.counters.requests += 1;
        self.outputs.push_back(Output::Send(Request {
            id,
            endpoint,
            body,
            deadline,
        }));
    }

    fn take_in_flight(&mut self, id: RequestId) -> Option<InFlight> {
        self.in_flight
            .iter_mut()
            .find(|slot| matches!(slot, Some(f) if f.id == id))
            .and_then(Option::take)
    }

    fn send_connect_step(&mut self, now: Instant) {
        self.counters.connect_attempts += u64::from(self.phase != Phase::Fetch);
        match (self.phase, self.epoch) {
            (Phase::Register, _) => {
                self.send(
                    now,
                    Purpose::Connect(Phase::Register),
                    Endpoint::Register,
                    b"{}".to_vec(),
                );
            }
            (Phase::Init, Some(epoch)) => {
                let body = epoch_body(epoch, [("worker_status", Value::String("idle".into()))]);
                self.send(
                    now,
                    Purpose::Connect(Phase::Init),
                    Endpoint::PutWorker,
                    body,
                );
            }
            (Phase::Fetch, _) => {
                self.send(
                    now,
                    Purpose::Connect(Phase::Fetch),
                    Endpoint::GetWorker,
                    Vec::new(),
                );
            }
            _ => {}
        }
    }

    /// Classifies a response by the table, parsing the bodies the connect sequence needs. A
    /// 2xx whose body is needed but unreadable is a bad body, which the table makes transient.
    fn read_response(&self, purpose: Purpose, response: &Response) -> (Outcome, Option<Value>) {
        if !(200..300).contains(&response.status) {
            let reply = Reply::Status {
                status: response.status,
                retry_after: response.retry_after.as_deref(),
                date: response.date.as_deref(),
            };
            return (classify(reply), None);
        }
        if response.truncated || response.body.len() > self.config.max_response_body {
            return (classify(Reply::BadBody), None);
        }
        let parsed = match purpose {
            Purpose::Connect(Phase::Register) => serde_json::from_slice::<Value>(&response.body)
                .ok()
                .filter(|v| v.get("worker_epoch").and_then(Value::as_u64).is_some()),
            Purpose::Connect(Phase::Fetch) => serde_json::from_slice::<Value>(&response.body)
                .ok()
                .and_then(|mut v| v.get_mut("worker").map(Value::take))
                .filter(Value::is_object),
            _ => return (classify(Reply::status(response.status)), None),
        };
        match parsed {
            Some(value) => (classify(Reply::status(response.status)), Some(value)),
            None => (classify(Reply::BadBody), None),
        }
    }

    /// The response table, applied once for every channel.
    fn settle(&mut self, now: Instant, purpose: Purpose, outcome: Outcome, body: Option<Value>) {
        self.counters.failures.record(outcome);
        if let Purpose::Beat(_) = purpose {
            if outcome == Outcome::Success {
                self.counters.heartbeats_ok += 1;
            }
        }
        let verdict = match outcome {
            Outcome::Success => {
                self.auth_failures = 0;
                self.failures_in_row = 0;
                Verdict::Success
            }
            Outcome::Superseded => return self.end(now, Status::Superseded),
            Outcome::AuthFailure => {
                self.auth_failures += 1;
                if self.auth_failures >= self.config.max_auth_failures {
                    let n = self.auth_failures;
                    return self.end(now, Status::GivenUp(GiveUpReason::AuthFailures(n)));
                }
                Verdict::Retry(None)
            }
            Outcome::SessionUnknown if !self.config.session_unknown_is_transient => {
                return self.end(now, Status::GivenUp(GiveUpReason::SessionUnknown));
            }
            Outcome::SessionUnknown | Outcome::Transient(_) => Verdict::Retry(None),
            Outcome::Throttled(hint) => Verdict::Retry(Some(hint)),
            Outcome::TooLarge => Verdict::TooLarge,
            Outcome::Permanent(status) => Verdict::Permanent(status),
        };
        if verdict != Verdict::Success {
            self.failures_in_row = self.failures_in_row.saturating_add(1);
        }
        match purpose {
            Purpose::Connect(phase) => self.settle_connect(now, phase, verdict, body),
            Purpose::Beat(id) => {
                let ok = verdict == Verdict::Success;
                let _ = self
                    .heartbeat
                    .handle_input(now, HeartbeatInput::Outcome { id, ok });
                if ok {
                    self.recover_status();
                }
            }
            Purpose::Batch(stream, id) => {
                let outcome = match verdict {
                    Verdict::Success => BatchOutcome::Delivered,
                    Verdict::Retry(None) => BatchOutcome::Transient,
                    Verdict::Retry(Some(retry_after)) => BatchOutcome::Throttled { retry_after },
                    Verdict::TooLarge => BatchOutcome::TooLarge,
                    Verdict::Permanent(status) => BatchOutcome::Permanent { status },
                };
                self.uploaders[stream_index(stream)].handle_outcome(now, id, outcome);
                self.note_channel_result(Channel::Stream(stream), verdict);
            }
            Purpose::Put(id) => {
                let outcome = match verdict {
                    Verdict::Success => PutOutcome::Success,
                    Verdict::Retry(None) => PutOutcome::Transient,
                    Verdict::Retry(Some(retry_after)) => PutOutcome::Throttled { retry_after },
                    Verdict::TooLarge => PutOutcome::Permanent { status: 413 },
                    Verdict::Permanent(status) => PutOutcome::Permanent { status },
                };
                self.state.handle_outcome(now, id, outcome);
                self.note_channel_result(Channel::State, verdict);
            }
        }
    }

    fn note_channel_result(&mut self, channel: Channel, verdict: Verdict) {
        match verdict {
            Verdict::Success => self.recover_status(),
            Verdict::Retry(_) if channel != Channel::State => self.retrying = Some(channel),
            Verdict::Retry(_) => {}
            // A refused batch or update is reported on its own; the link itself is fine.
            Verdict::TooLarge | Verdict::Permanent(_) => {}
        }
    }

    fn recover_status(&mut self) {
        if self.phase == Phase::Connected && matches!(self.status, Status::Retrying { .. }) {
            let next = if self.heartbeat.is_stale() {
                Status::Stale
            } else {
                Status::Connected
            };
            self.emit_status(next);
        }
    }

    fn settle_connect(
        &mut self,
        now: Instant,
        phase: Phase,
        verdict: Verdict,
        body: Option<Value>,
    ) {
        match verdict {
            Verdict::Success => match phase {
                Phase::Register => {
                    self.epoch = body.and_then(|b| b.get("worker_epoch").and_then(Value::as_u64));
                    self.phase = Phase::Init;
                    self.send_connect_step(now);
                }
                Phase::Init => {
                    self.phase = Phase::Fetch;
                    self.send_connect_step(now);
                }
                Phase::Fetch => self.connected(now, body.unwrap_or(Value::Null)),
                Phase::Connected | Phase::Ended => {}
            },
            Verdict::Retry(hint) => {
                let failure = hint.map_or(Failure::Transient, Failure::Throttled);
                match self.connect.record_failure(now, failure) {
                    Decision::Retry { attempt, at, .. } => {
                        self.connect_retry_at = Some(at);
                        self.emit_status(Status::Retrying { attempt, at });
                    }
                    Decision::GiveUp(reason) => {
                        self.end(now, Status::GivenUp(GiveUpReason::Connect(reason)));
                    }
                }
            }
            Verdict::TooLarge => self.end(now, Status::GivenUp(GiveUpReason::ConnectRejected(413))),
            Verdict::Permanent(status) => {
                self.end(now, Status::GivenUp(GiveUpReason::ConnectRejected(status)));
            }
        }
    }

    fn connected(&mut self, now: Instant, mut document: Value) {
        let Some(epoch) = self.epoch else {
            return;
        };
        if let Some(doc) = document.as_object_mut() {
            doc.remove(state::EPOCH_KEY);
        }
        self.connect.record_success(now);
        self.phase = Phase::Connected;
        // The server's document is an object by the check in read_response.
        let _ = self.state.rebase(now, document);
        self.state.set_epoch(now, epoch);
        for uploader in &mut self.uploaders {
            uploader.set_epoch(now, epoch);
        }
        let _ = self.heartbeat.handle_input(now, HeartbeatInput::Start);
        self.emit_status(Status::Connected);
    }

    /// Ends the session: everything undelivered is handed back, every request cancelled, and
    /// the terminal status is the last output.
    fn end(&mut self, now: Instant, terminal: Status) {
        if self.phase == Phase::Ended {
            return;
        }
        let abandon = match terminal {
            Status::Superseded => Some(Abandon::Superseded),
            Status::GivenUp(_) => Some(Abandon::GivenUp),
            _ => None,
        };
        if let Some(reason) = abandon {
            for uploader in &mut self.uploaders {
                uploader.abandon(now, reason);
            }
        }
        if !self.state_closed {
            self.state.close(now);
        }
        let _ = self.heartbeat.handle_input(now, HeartbeatInput::Stop);
        for slot in &mut self.in_flight {
            if let Some(flight) = slot.take() {
                self.counters.cancelled += 1;
                self.outputs.push_back(Output::Cancel(flight.id));
            }
        }
        self.connect_retry_at = None;
        self.phase = Phase::Ended;
        self.drain_subs(now);
        // Every event was delivered or handed back, so every flush is done.
        for flush in core::mem::take(&mut self.flushes) {
            self.outputs.push_back(Output::FlushDone(flush.id));
        }
        self.emit_status(terminal);
    }

    /// Drains every sub-machine into session outputs until none has more to say.
    fn pump(&mut self, now: Instant) {
        if self.phase == Phase::Ended {
            return;
        }
        self.drain_subs(now);
        if self.phase == Phase::Ended {
            return;
        }
        if let Some(Channel::Stream(stream)) = self.retrying.take() {
            // Only a scheduled retry is reported; a batch that became dead letters is not
            // retried. (The state channel reports its own retry time.)
            let wake = self.wakes.streams[stream_index(stream)];
            if let (Phase::Connected, Some(w)) = (self.phase, wake) {
                if w.reason == batch::Timer::Backoff {
                    self.emit_status(Status::Retrying {
                        attempt: self.failures_in_row,
                        at: w.at,
                    });
                }
            }
        }
        if self.state.is_idle() && !self.state_closed {
            // Every patch given so far has landed or was handed back.
            let mut settled = false;
            for pending in &mut self.flushes {
                settled |= core::mem::take(&mut pending.state);
            }
            if settled {
                self.complete_flushes();
            }
            if self.close_deadline.is_some() {
                self.state.close(now);
                self.drain_subs(now);
            }
        }
        self.finish_close_if_done(now);
    }

    fn drain_subs(&mut self, now: Instant) {
        loop {
            let mut progressed = false;
            loop {
                match self.heartbeat.poll_output() {
                    Poll::Output(out) => {
                        progressed = true;
                        self.on_heartbeat(now, out);
                    }
                    Poll::Timeout(wake) => {
                        self.wakes.heartbeat = wake;
                        break;
                    }
                }
            }
            for stream in Stream::ALL {
                let i = stream_index(stream);
                loop {
                    match self.uploaders[i].poll_output() {
                        Poll::Output(out) => {
                            progressed = true;
                            self.on_uploader(now, stream, out);
                        }
                        Poll::Timeout(wake) => {
                            self.wakes.streams[i] = wake;
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
                        self.wakes.state = wake;
                        break;
                    }
                }
            }
            if !progressed {
                break;
            }
        }
    }

    fn on_heartbeat(&mut self, now: Instant, out: HeartbeatOutput) {
        match out {
            HeartbeatOutput::Beat(id) => {
                let (Some(epoch), Phase::Connected) = (self.epoch, self.phase) else {
                    let _ = self
                        .heartbeat
                        .handle_input(now, HeartbeatInput::Outcome { id, ok: false });
                    return;
                };
                let body = epoch_body(
                    epoch,
                    [("session_id", Value::String(self.config.session_id.clone()))],
                );
                self.counters.heartbeats_sent += 1;
                self.send(now, Purpose::Beat(id), Endpoint::Heartbeat, body);
            }
            HeartbeatOutput::Stale { .. } => {
                if self.phase == Phase::Connected {
                    self.emit_status(Status::Stale);
                }
            }
            HeartbeatOutput::Live => {
                if self.phase == Phase::Connected {
                    self.emit_status(Status::Connected);
                }
            }
        }
    }

    fn on_uploader(&mut self, now: Instant, stream: Stream, out: batch::Output) {
        let i = stream_index(stream);
        match out {
            batch::Output::SendBatch { id, body, .. } => {
                if self.phase == Phase::Ended {
                    return;
                }
                self.send(
                    now,
                    Purpose::Batch(stream, id),
                    stream_endpoint(stream),
                    body,
                );
            }
            batch::Output::Delivered { events, .. } => {
                self.outputs.push_back(Output::Delivered { stream, events });
            }
            batch::Output::HandedBack { reason, events } => {
                self.outputs.push_back(Output::HandedBack {
                    stream,
                    reason,
                    events,
                });
            }
            batch::Output::FlushDone { flush } => {
                for pending in &mut self.flushes {
                    if pending.streams[i] == Some(flush) {
                        pending.streams[i] = None;
                    }
                }
                self.complete_flushes();
            }
            // Sub-flushes are given no deadline of their own, so this cannot report a session
            // flush done; the session's own deadline decides.
            batch::Output::FlushTimedOut { .. } => {}
            batch::Output::Closed => {
                self.streams_closed[i] = true;
                for pending in &mut self.flushes {
                    pending.streams[i] = None;
                }
                self.complete_flushes();
            }
        }
    }

    fn on_state(&mut self, now: Instant, out: state::Output) {
        match out {
            state::Output::Put { id, body } => {
                if self.phase == Phase::Ended {
                    return;
                }
                self.send(now, Purpose::Put(id), Endpoint::PutWorker, body);
            }
            state::Output::Cancel { id } => {
                // The session owns deadlines (the state uploader's own is off); a cancel from it
                // still must not leave a request dangling.
                if let Some(slot) = self.in_flight[Channel::State.index()] {
                    if slot.purpose == Purpose::Put(id) {
                        self.in_flight[Channel::State.index()] = None;
                        self.outputs.push_back(Output::Cancel(slot.id));
                    }
                }
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
            state::Output::Flush(_) => {}
            state::Output::Closed(unacknowledged) => {
                self.state_closed = true;
                if !unacknowledged.update.is_empty() || unacknowledged.in_flight.is_some() {
                    self.outputs
                        .push_back(Output::StateUnacknowledged(unacknowledged));
                }
                // After the hand-back: a flush is done once everything was handed back.
                for pending in &mut self.flushes {
                    pending.state = false;
                }
                self.complete_flushes();
            }
        }
    }

    fn complete_flushes(&mut self) {
        let mut i = 0;
        while i < self.flushes.len() {
            if self.flushes[i].is_done() {
                let flush = self.flushes.remove(i);
                self.outputs.push_back(Output::FlushDone(flush.id));
            } else {
                i += 1;
            }
        }
    }

    fn finish_close_if_done(&mut self, now: Instant) {
        if self.close_deadline.is_some()
            && self.state_closed
            && self.streams_closed.iter().all(|c| *c)
        {
            self.end(now, Status::Closed);
        }
    }

    fn next_wake(&self) -> Option<Wake<Timer>> {
        if self.phase == Phase::Ended {
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
        consider(
            self.in_flight.iter().flatten().map(|f| f.deadline).min(),
            Timer::RequestDeadline,
        );
        consider(self.connect_retry_at, Timer::Connect);
        if let Some(w) = self.wakes.heartbeat {
            consider(Some(w.at), Timer::Heartbeat(w.reason));
        }
        for stream in Stream::ALL {
            if let Some(w) = self.wakes.streams[stream_index(stream)] {
                consider(Some(w.at), Timer::Uploader(stream, w.reason));
            }
        }
        if let Some(w) = self.wakes.state {
            consider(Some(w.at), Timer::State(w.reason));
        }
        consider(self.flushes.iter().map(|f| f.deadline).min(), Timer::Flush);
        if !self.state_closed {
            consider(self.close_deadline, Timer::Close);
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
    type Input = Input;
    type Output = Output;
    type Timer = Timer;
    type Error = SessionError;

    fn handle_input(&mut self, now: Instant, input: Input) -> Result<(), SessionError> {
        match input {
            Input::Event(event) => self.send_event(now, event).map(|_| ()),
            Input::InternalEvent(event) => self.send_internal_event(now, event).map(|_| ()),
            Input::Ack { event_id, status } => {
                self.ack_delivery(now, &event_id, status).map(|_| ())
            }
            Input::Patch(patch) => self.patch_state(now, patch).map(|_| ()),
            Input::Flush { deadline } => self.flush(now, deadline).map(|_| ()),
            Input::Close { deadline } => {
                self.close(now, deadline);
                Ok(())
            }
            Input::Response { id, response } => {
                self.handle_response(now, id, response);
                Ok(())
            }
            Input::TransportError { id, error } => {
                self.handle_transport_error(now, id, &error);
                Ok(())
            }
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        Session::handle_timeout(self, now);
    }

    fn poll_output(&mut self) -> Poll<Output, Timer> {
        Session::poll_output(self)
    }
}
