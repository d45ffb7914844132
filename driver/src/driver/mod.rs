//! The driver: everything around a [`Session`] that is not waiting on I/O.
//!
//! It turns the caller's calls into core inputs, holds the callers who wait (for room in a
//! queue, for a flush, for the close), fans out statuses and reports, builds HTTP requests from
//! the core's outputs and reads answers back, and says when it wants to be woken. It never
//! reads a clock, sleeps, spawns or touches a socket: every call takes `now` in the core's
//! time, which the shim converts from its clock at its edge.
//!
//! The drive contract is the core's: a mutator (a caller's call, [`Driver::handle_reply`],
//! [`Driver::handle_timeout`]), then [`Driver::poll`] until it answers `Timeout`. Every shim
//! runs the same loop through [`Shared::turn`](crate::runtime::Shared::turn):
//!
//! ```text
//!   loop {
//!       turn = shared.turn()          // lock; handle_timeout(now); poll() until Timeout; unlock
//!       if turn.finished { break }
//!       for each action: Send(request) → the transport, whose answer comes back through
//!                        shared.answer(id, result); Cancel(id) → drop it
//!       wait until a notification (a call or an answer made work) or turn.deadline
//!   }
//! ```
//!
//! One concern per file: the send paths and waiting for room (`offers`), the callers held for
//! an answer (`waiter`, a leaf), refusals in the caller's words (`refusals`), flush and close
//! (`waits`), the core's outputs carried out and the end of the session (`dispatch`), the tap
//! and observer (`hooks`), thread sync hosted (`hosting`) and the durable outbox (`durable`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use serde_json::Value;
use tether_core::batch::DeltaError;
use tether_core::heartbeat;
use tether_core::session::{Session, SessionError, Status, Stream, Timer, TransportError};
use tether_core::state;
use tether_core::{FlushId, Instant, Poll, RequestId, Wake};

use crate::action::Action;
use crate::error::{FlushError, PatchError};
use crate::hook::{Observer, Tap};
use crate::http::{HttpResponse, Target};
use crate::observe::Telemetry;
use crate::outbox::Outbox;
use crate::report::{CloseReport, Counters, Report, UndeliveredEvent, WireCounters};
use crate::stats::DriverStats;
use crate::threads::ThreadPart;
use crate::wait::{Completer, Fanout, Subscription};

mod dispatch;
mod durable;
mod hooks;
mod hosting;
mod offers;
mod refusals;
mod waiter;
mod waits;

use waiter::{Blocked, FlushReply, answer_timeout};

/// The shortest wait when the core asks again for a deadline that was already handled:
/// guards against a busy loop (STYLE habit 11).
const MIN_REPEAT_WAIT: Duration = Duration::from_millis(1);

/// Why the driver wants to be called back: each of its timers has a reason, so a trace says
/// why it woke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DriverTimer {
    /// One of the session's own timers (a heartbeat, a backoff, a request's deadline, ...).
    Session(Timer),
    /// A caller waiting for room in a queue reaches its timeout.
    Offer,
    /// Thread sync's next timer.
    Threads,
    /// The durable outbox's group commit is due.
    Commit,
    /// A flush waiting for the outbox's replay reaches its timeout.
    DeferredFlush,
}

/// The driver of one session: see the [crate docs](crate) for the shim's loop around it.
pub struct Driver {
    session: Session,
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
    now: Instant,
    /// Something the shim must see happened since it last looked: new actions or an earlier
    /// deadline.
    notify: bool,
    finished: bool,
    /// The session ended; the outbox's end work (last write, count) is under way.
    finishing: bool,
    wire: WireCounters,
    /// Thread sync, once started (see `threads.rs`).
    pub(crate) threads: Option<Box<ThreadPart>>,
    /// The seed of thread sync's random choices.
    pub(crate) thread_seed: u64,
    /// The shared retry budget's gate for thread sync, until it starts.
    pub(crate) thread_gate: Option<Box<dyn tether_core::budget::RetryGate>>,
    telemetry: Telemetry,
    /// The durable outbox, when the session has one.
    outbox: Option<Outbox>,
    /// Flushes waiting for the outbox's replay to end, with their deadlines.
    deferred_flushes: Vec<(Option<Instant>, FlushReply)>,
}

impl Driver {
    pub(crate) fn new(
        now: Instant,
        session: Session,
        target: Target,
        observer: Option<Observer>,
        tap: Option<Box<dyn Tap>>,
        drop_close_timeout: Duration,
    ) -> Self {
        let telemetry = Telemetry::new(target.url.last_segment());
        let mut driver = Driver {
            now,
            session,
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
            finishing: false,
            wire: WireCounters::default(),
            threads: None,
            thread_seed: 0,
            thread_gate: None,
            telemetry,
            outbox: None,
            deferred_flushes: Vec::new(),
        };
        driver.drain();
        driver
    }

    // ----- the caller's calls -----

    /// A stream delta of `key` for `/worker/events`: merged with the deltas of the same key
    /// within the configured window (see [`Session::send_delta`]). Never waits; a merged event
    /// the queue refuses later comes back as [`Report::DeltaHandedBack`].
    ///
    /// # Errors
    /// The delta, handed back: not an object with text, or the session is closing or ended.
    pub fn send_delta(
        &mut self,
        now: Instant,
        key: String,
        payload: Value,
    ) -> Result<(), DeltaError> {
        self.now = now;
        let result = self.session.send_delta(now, key, payload);
        self.after_call();
        result
    }

    /// A patch to the worker document; returns its sequence number.
    ///
    /// # Errors
    /// [`PatchError::Invalid`] for a bad patch, [`PatchError::Ended`] once the session is
    /// closing or has ended.
    pub fn patch_state(&mut self, now: Instant, patch: Value) -> Result<u64, PatchError> {
        self.now = now;
        let result = self.session.patch_state(now, patch);
        let status = self.session.status();
        let result = result.map_err(|e| match e {
            SessionError::State(state::Error::Closed) | SessionError::Ended(_) => {
                PatchError::Ended(status)
            }
            SessionError::State(e) => PatchError::Invalid(e),
            _ => PatchError::Ended(status),
        });
        self.after_call();
        result
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
        now: Instant,
        id: RequestId,
        result: Result<HttpResponse, TransportError>,
    ) {
        self.now = now;
        if let Some(threads) = self.threads.as_deref_mut().filter(|t| t.owns(id)) {
            threads.handle_reply(now, id, result);
            self.after_call();
            return;
        }
        if !self.in_flight.remove(&id) {
            self.wire.late_dropped += 1;
            return;
        }
        let core_now = now;
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
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if let Some(wake) = self.wake {
            let core_now = now;
            let at = wake.at;
            if core_now >= at {
                if self.fired == Some(at) {
                    self.stats.clamped_waits += 1;
                }
                if wake.reason == Timer::Heartbeat(heartbeat::Timer::Beat) {
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
            threads.handle_timeout(now);
        }
        self.expire_deferred_flushes(now);
        self.after_call();
        self.commit_outbox(now);
    }

    /// What the shim must do next: an action to carry out now (poll again afterwards), or,
    /// once none is left, when to call [`handle_timeout`](Self::handle_timeout) and why
    /// (`None`: only when a call or an answer comes). A deadline already handled that the core
    /// names again is put off a little, so a shim cannot spin. While an action is queued the
    /// answer is that action: no shim can sleep on pending work.
    ///
    /// Call it after every call that changes the driver, until it answers `Timeout`; most
    /// shims do that through [`Shared::turn`](crate::runtime::Shared::turn).
    #[must_use = "an action the driver asks for must be carried out"]
    pub fn poll(&mut self) -> Poll<Action, DriverTimer> {
        match self.actions.pop_front() {
            Some(action) => Poll::Output(action),
            None => Poll::Timeout(self.next_wake()),
        }
    }

    /// The earliest of the driver's timers, with its reason.
    fn next_wake(&self) -> Option<Wake<DriverTimer>> {
        let session = self.wake.map(|w| {
            let at = if self.fired == Some(w.at) {
                w.at.saturating_add(MIN_REPEAT_WAIT)
            } else {
                w.at
            };
            Wake::new(at, DriverTimer::Session(w.reason))
        });
        // Folded one by one: gathering the five into an array and taking its minimum cost
        // about 7 % of a simulated run (the temporaries stalled on store forwarding), and this
        // runs for every poll and twice per drain.
        let mut next = session;
        let mut consider = |at: Option<Instant>, reason: DriverTimer| {
            if let Some(at) = at {
                if next.is_none_or(|w| at < w.at) {
                    next = Some(Wake::new(at, reason));
                }
            }
        };
        consider(
            self.blocked.iter().filter_map(|b| b.until).min(),
            DriverTimer::Offer,
        );
        consider(
            self.threads.as_deref().and_then(ThreadPart::deadline),
            DriverTimer::Threads,
        );
        consider(
            self.outbox.as_ref().and_then(|o| o.due_at(self.now)),
            DriverTimer::Commit,
        );
        consider(
            self.deferred_flushes.iter().filter_map(|f| f.0).min(),
            DriverTimer::DeferredFlush,
        );
        next
    }

    /// When the driver next wants [`handle_timeout`](Self::handle_timeout), as
    /// [`poll`](Self::poll) names it once no action is left; a query, with no effect.
    pub fn deadline(&self) -> Option<Instant> {
        self.next_wake().map(|w| w.at)
    }

    /// Whether something happened that the shim's loop must look at (new actions, an earlier
    /// deadline) since the last call; clears the flag. A handle calls its shim's notifier when
    /// this is true.
    pub(crate) fn take_notify(&mut self) -> bool {
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

    /// After every call: drain the core, retry waiting offers if room freed, finish if ended.
    fn after_call(&mut self) {
        self.drain();
        self.retry_blocked();
        if self.session.status().is_terminal() && !self.finished {
            self.finish();
        }
        self.threads_turn();
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
