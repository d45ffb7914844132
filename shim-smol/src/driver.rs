//! The driver: one task that owns the core session, its timer and its requests in flight.
//!
//! Each wake-up (a poll of [`Driver`]) does, on a budget of [`WORK_BUDGET`] items:
//!
//! 1. polls the requests in flight in the order they were sent, feeding each answer to the core
//!    and draining its outputs (new requests go to the back of the list and are polled in the
//!    same pass);
//! 2. takes the handles' commands and applies each to the core, draining after each;
//! 3. reads the clock and, if the core's deadline has passed, calls `handle_timeout`;
//! 4. when nothing progressed, re-arms the timer — only if the core's deadline changed (or the
//!    timer already fired) — and sleeps.
//!
//! Expiry is decided by comparing the clock with the deadline, never by the timer having fired;
//! a deadline still not in the future after it was handled is waited for 1 ms instead of
//! spinning. When the budget runs out the driver wakes itself and yields.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use async_channel::{Receiver, Sender};
use async_io::Timer;
use futures_lite::Stream as _;
use serde_json::Value;
use tether_core::batch::{Event, EventId};
use tether_core::heartbeat::HeartbeatTimer;
use tether_core::session::{
    DeliveryStatus, Endpoint, Output, RequestId, Response, Session, SessionError, Status, Stream,
    Timer as CoreTimer, TransportError,
};
use tether_core::FlushId;
use tether_core::Instant;

use crate::clock::Clock;
use crate::report::{CloseReport, Counters, UndeliveredEvent};
use crate::stats::DriverStats;
use crate::token::Token;
use crate::transport::{BoxFuture, HttpRequest, Transport};
use crate::url::SessionUrl;

/// Inputs (commands and answers) handled per wake-up before the driver yields.
pub const WORK_BUDGET: usize = 128;
/// The shortest wait: a deadline that is still due after being handled waits this long.
const MIN_WAIT: Duration = Duration::from_millis(1);

/// Called with every output of the core, in order, before the driver acts on it.
pub type Observer = Box<dyn FnMut(&Output) + Send + 'static>;

/// What the handles ask of the driver.
pub(crate) enum Command {
    Enqueue {
        stream: Stream,
        item: Item,
        reply: Sender<Result<EventId, SessionError>>,
    },
    Patch {
        patch: Value,
        reply: Sender<Result<(), SessionError>>,
    },
    State {
        reply: Sender<Value>,
    },
    Counters {
        reply: Sender<Counters>,
    },
    Flush {
        deadline: std::time::Instant,
        reply: Sender<bool>,
    },
    Close {
        deadline: std::time::Instant,
        reply: Sender<CloseReport>,
    },
}

/// An event or a delivery acknowledgement.
pub(crate) enum Item {
    Event(Event),
    Ack {
        event_id: String,
        status: DeliveryStatus,
    },
}

/// What the driver and the handles share.
pub(crate) struct Shared {
    pub(crate) status: Mutex<Status>,
    pub(crate) wakeups: AtomicU64,
    pub(crate) stats: Mutex<DriverStats>,
    /// Notified whenever a queue shrank or the session ended: senders waiting for capacity.
    pub(crate) capacity: event_listener::Event,
}

impl Shared {
    pub(crate) fn new() -> Self {
        Shared {
            status: Mutex::new(Status::Connecting),
            wakeups: AtomicU64::new(0),
            stats: Mutex::new(DriverStats::default()),
            capacity: event_listener::Event::new(),
        }
    }

    pub(crate) fn stats(&self) -> std::sync::MutexGuard<'_, DriverStats> {
        self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn status(&self) -> Status {
        *self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct Flight {
    id: RequestId,
    future: BoxFuture<Result<Response, TransportError>>,
}

/// Everything handed back so far, for the [`CloseReport`].
#[derive(Default)]
struct Ledger {
    undelivered: Vec<UndeliveredEvent>,
    rejected: Vec<tether_core::state::Rejection>,
    unacknowledged: Option<tether_core::state::Unacknowledged>,
}

/// The future that drives one session. Spawn it on any executor (that runs async-io's
/// reactor, as smol's do); [`Builder::start`](crate::Builder::start) does it for you.
///
/// It completes once every [`Tether`](crate::Tether) handle is dropped and the session has
/// ended (dropping the handles closes it at once).
#[must_use = "a driver does nothing unless spawned or awaited"]
pub struct Driver {
    state: Box<DriverState>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("url", &self.state.url)
            .field("status", &self.state.session.status())
            .field("in_flight", &self.state.flights.len())
            .finish_non_exhaustive()
    }
}

pub(crate) struct DriverParts {
    pub(crate) session: Session,
    pub(crate) clock: Clock,
    pub(crate) url: SessionUrl,
    pub(crate) token: Option<Token>,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) commands: Receiver<Command>,
    pub(crate) statuses: Sender<Status>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) observer: Option<Observer>,
}

struct DriverState {
    session: Session,
    clock: Clock,
    url: SessionUrl,
    token: Option<Token>,
    transport: Arc<dyn Transport>,
    commands: Pin<Box<Receiver<Command>>>,
    commands_closed: bool,
    statuses: Sender<Status>,
    shared: Arc<Shared>,
    observer: Option<Observer>,
    flights: Vec<Flight>,
    /// The core's next deadline, from the last drain.
    deadline: Option<Instant>,
    /// When the heartbeat's next beat is due, if the last drain said so.
    beat_due: Option<Instant>,
    timer: Timer,
    /// The deadline the timer is armed for; `None` when it is not armed (or has fired).
    armed_for: Option<Instant>,
    /// After a deadline the core reported as due but did nothing at: not before this.
    hold_until: Option<Instant>,
    flush_waiters: Vec<(FlushId, Sender<bool>)>,
    close_waiters: Vec<Sender<CloseReport>>,
    ledger: Ledger,
    report: Option<CloseReport>,
}

impl Driver {
    pub(crate) fn new(parts: DriverParts) -> Self {
        let mut state = DriverState {
            session: parts.session,
            clock: parts.clock,
            url: parts.url,
            token: parts.token,
            transport: parts.transport,
            commands: Box::pin(parts.commands),
            commands_closed: false,
            statuses: parts.statuses,
            shared: parts.shared,
            observer: parts.observer,
            flights: Vec::new(),
            deadline: None,
            beat_due: None,
            timer: Timer::never(),
            armed_for: None,
            hold_until: None,
            flush_waiters: Vec::new(),
            close_waiters: Vec::new(),
            ledger: Ledger::default(),
            report: None,
        };
        // Session::new queued the first outputs (the status, the first request).
        let now = state.clock.now();
        state.drain(now);
        Driver {
            state: Box::new(state),
        }
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.get_mut().state.poll_drive(cx)
    }
}

impl DriverState {
    fn poll_drive(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.shared.wakeups.fetch_add(1, Ordering::Relaxed);
        let mut budget = WORK_BUDGET;
        loop {
            let mut progressed = false;

            // 1. Answers, in the order the requests were sent.
            let mut i = 0;
            while i < self.flights.len() && budget > 0 {
                match self.flights[i].future.as_mut().poll(cx) {
                    Poll::Ready(result) => {
                        let flight = self.flights.remove(i);
                        budget -= 1;
                        progressed = true;
                        let now = self.clock.now();
                        match result {
                            Ok(response) => self.session.handle_response(now, flight.id, response),
                            Err(error) => {
                                self.session.handle_transport_error(now, flight.id, &error);
                            }
                        }
                        self.drain(now);
                    }
                    Poll::Pending => i += 1,
                }
            }

            // 2. Commands from the handles.
            while budget > 0 && !self.commands_closed {
                match self.commands.as_mut().poll_next(cx) {
                    Poll::Ready(Some(command)) => {
                        budget -= 1;
                        progressed = true;
                        self.apply(command);
                    }
                    Poll::Ready(None) => {
                        self.commands_closed = true;
                        progressed = true;
                        self.handles_dropped();
                    }
                    Poll::Pending => break,
                }
            }

            // 3. Time: the clock decides, not the timer.
            let now = self.clock.now();
            let due = self.deadline.is_some_and(|at| at <= now)
                && self.hold_until.is_none_or(|hold| hold <= now);
            if due && budget > 0 {
                budget -= 1;
                progressed = true;
                self.hold_until = None;
                self.session.handle_timeout(now);
                self.drain(now);
                if self.deadline.is_some_and(|at| at <= now) {
                    // The core has nothing to do yet at a deadline it still reports as due:
                    // wait a little instead of spinning on it (a zero-length wait, clamped).
                    self.shared.stats().clamped_waits += 1;
                    self.hold_until = Some(now + MIN_WAIT);
                }
            }

            if self.commands_closed && self.report.is_some() {
                return Poll::Ready(());
            }
            if budget == 0 {
                self.shared.stats().budget_yields += 1;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if progressed {
                continue;
            }

            // 4. Sleep until the deadline, an answer or a command.
            self.arm();
            match Pin::new(&mut self.timer).poll(cx) {
                Poll::Ready(_) => {
                    self.armed_for = None;
                    continue;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Arms the timer for the core's deadline (or the end of a clamped wait), unless it
    /// already is.
    fn arm(&mut self) {
        let target = self.deadline.map(|at| match self.hold_until {
            Some(hold) if at < hold => hold,
            _ => at,
        });
        match target {
            Some(at) if self.armed_for != Some(at) => {
                self.timer.set_at(self.clock.wall(at));
                self.armed_for = Some(at);
                self.shared.stats().timer_rearms += 1;
            }
            Some(_) => {}
            None => {
                if self.armed_for.take().is_some() {
                    self.timer = Timer::never();
                }
            }
        }
    }

    /// Drains the core's outputs until it names its next deadline.
    fn drain(&mut self, now: Instant) {
        loop {
            match self.session.poll_output() {
                tether_core::Poll::Output(output) => {
                    if let Some(observer) = &mut self.observer {
                        observer(&output);
                    }
                    self.on_output(now, output);
                }
                tether_core::Poll::Timeout(wake) => {
                    self.deadline = wake.map(|w| w.at);
                    if let Some(w) = wake {
                        if w.reason == CoreTimer::Heartbeat(HeartbeatTimer::Beat) {
                            self.beat_due = Some(w.at);
                        }
                    }
                    break;
                }
            }
        }
    }

    fn on_output(&mut self, now: Instant, output: Output) {
        match output {
            Output::Send(request) => {
                if request.endpoint == Endpoint::Heartbeat {
                    if let Some(due) = self.beat_due.take() {
                        let sent = self.clock.now();
                        self.shared
                            .stats()
                            .heartbeat_lateness
                            .record(sent.saturating_duration_since(due));
                    }
                }
                let http = HttpRequest {
                    id: request.id,
                    endpoint: request.endpoint,
                    url: self.url.join(request.endpoint.path()),
                    body: request.body,
                    token: self.token.clone(),
                    max_response_body: self.session.config().max_response_body,
                };
                let future = self.transport.send(http);
                self.flights.push(Flight {
                    id: request.id,
                    future,
                });
            }
            Output::Cancel(id) => {
                // Dropping the future aborts the exchange and closes its connection.
                self.flights.retain(|f| f.id != id);
            }
            Output::Status(status) => {
                *self
                    .shared
                    .status
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = status;
                // Bounded: a reader that falls behind loses the oldest statuses, never the
                // latest; `Tether::status` always has the current one.
                let _ = self.statuses.force_send(status);
                if status.is_terminal() {
                    self.finish(now, status);
                }
            }
            Output::Delivered { .. } => {
                self.shared.capacity.notify(usize::MAX);
            }
            Output::HandedBack {
                stream,
                reason,
                events,
            } => {
                self.ledger.undelivered.extend(
                    events
                        .iter()
                        .map(|e| UndeliveredEvent::new(stream, reason, e)),
                );
                self.shared.capacity.notify(usize::MAX);
            }
            Output::StateRejected(rejection) => self.ledger.rejected.push(rejection),
            Output::StateUnacknowledged(unacknowledged) => {
                self.ledger.unacknowledged = Some(unacknowledged);
            }
            Output::FlushDone(id) => self.answer_flush(id, true),
            Output::FlushTimedOut(id) => self.answer_flush(id, false),
            // Outputs added to the core later carry nothing the shim must act on yet.
            _ => {}
        }
    }

    fn answer_flush(&mut self, id: FlushId, done: bool) {
        if let Some(i) = self.flush_waiters.iter().position(|(f, _)| *f == id) {
            let (_, reply) = self.flush_waiters.swap_remove(i);
            let _ = reply.try_send(done);
        }
    }

    fn counters(&self) -> Counters {
        Counters {
            session: self.session.counters(),
            events: self.session.uploader_counters(Stream::Events),
            internal_events: self.session.uploader_counters(Stream::InternalEvents),
            delivery: self.session.uploader_counters(Stream::Delivery),
            state: self.session.state_counters(),
        }
    }

    /// The session reached a terminal status: the report is complete.
    fn finish(&mut self, _now: Instant, status: Status) {
        let ledger = std::mem::take(&mut self.ledger);
        let report = CloseReport {
            status,
            undelivered: ledger.undelivered,
            rejected_patches: ledger.rejected,
            unacknowledged_patches: ledger.unacknowledged,
            counters: self.counters(),
            driver_wakeups: self.shared.wakeups.load(Ordering::Relaxed),
        };
        for reply in self.close_waiters.drain(..) {
            let _ = reply.try_send(report.clone());
        }
        self.report = Some(report);
        self.shared.capacity.notify(usize::MAX);
    }

    fn apply(&mut self, command: Command) {
        let now = self.clock.now();
        match command {
            Command::Enqueue {
                stream,
                item,
                reply,
            } => {
                let result = match item {
                    Item::Event(event) => match stream {
                        Stream::InternalEvents => self.session.send_internal_event(now, event),
                        _ => self.session.send_event(now, event),
                    },
                    Item::Ack { event_id, status } => {
                        self.session.ack_delivery(now, &event_id, status)
                    }
                };
                let _ = reply.try_send(result);
            }
            Command::Patch { patch, reply } => {
                let result = self.session.patch_state(now, patch).map(|_| ());
                let _ = reply.try_send(result);
            }
            Command::State { reply } => {
                let _ = reply.try_send(self.session.state_view().clone());
            }
            Command::Counters { reply } => {
                let _ = reply.try_send(self.counters());
            }
            Command::Flush { deadline, reply } => {
                match self.session.flush(now, self.clock.core(deadline)) {
                    Ok(id) => self.flush_waiters.push((id, reply)),
                    // The session ended: everything was delivered or handed back already.
                    Err(_) => {
                        let _ = reply.try_send(true);
                    }
                }
            }
            Command::Close { deadline, reply } => match &self.report {
                Some(report) => {
                    let _ = reply.try_send(report.clone());
                }
                None => {
                    self.close_waiters.push(reply);
                    self.session.close(now, self.clock.core(deadline));
                }
            },
        }
        self.drain(now);
    }

    /// Every handle is gone: nobody can receive what is left, so close at once.
    fn handles_dropped(&mut self) {
        if self.report.is_some() {
            return;
        }
        let now = self.clock.now();
        self.session.close(now, now);
        self.drain(now);
        self.session.handle_timeout(now);
        self.drain(now);
    }
}
