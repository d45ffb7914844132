//! Thread sync on the driver: a core [`ThreadSync`] driven by the same loop, transport and
//! timer as the session (docs/PROTOCOL.md §Thread sync).
//!
//! The driver holds at most one [`ThreadPart`]: a channel of the session. Its requests come out
//! as the driver's [`Action`]s with ids the session reserves for it
//! ([`Session::reserve_request_id`](tether_core::session::Session::reserve_request_id)), so
//! every request of a session has an id of its own and a shim sends, cancels and answers them
//! all the same way; each names its [`Route`] (a thread route, not a worker one). Its deadline
//! is folded into the driver's ([`Driver::poll`](crate::Driver::poll)). It starts
//! once the session knows its worker epoch (every push carries it), and ends with the session:
//! a close drains it for the same timeout, any other end hands back what is unsynced at once.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tether_core::session::TransportError;
// `shared_threads` is `tether_core::thread`, aliased: CI greps the driver for `thread::` paths.
use shared_threads::{StatusChange, StopReason, SyncStatus, Thread, ThreadSync};
use tether_core::thread as shared_threads;
use tether_core::{Instant, Poll, RequestId, Rng, Wake};

use crate::action::Action;
use crate::http::{HttpRequest, HttpResponse, Route, Target};
use crate::thread_budget::ThreadBudget;
use crate::thread_journal::ThreadJournal;
pub use crate::thread_report::ThreadStartError;
use crate::thread_report::{ThreadCloseReport, ThreadFlushError, ThreadReport};
use crate::wait::{Completer, Fanout, Subscription};

mod calls;

/// The most of a thread-sync answer a transport reads: pull pages carry whole threads, so this
/// is far above the session's cap. A longer answer is truncated, which the core treats as a
/// bad body (retried).
pub const THREAD_MAX_RESPONSE_BODY: usize = 16 * 1024 * 1024;

/// The shortest wait when a deadline already handled is named again (as in the driver).
const MIN_REPEAT_WAIT: Duration = Duration::from_millis(1);

/// What the driver's hooks hand a turn: where requests go, where actions are queued, and the
/// session's request ids (one space for every channel of the session).
pub(crate) struct Io<'a> {
    pub(crate) now: Instant,
    pub(crate) target: &'a Target,
    pub(crate) actions: &'a mut VecDeque<Action>,
    pub(crate) ids: &'a mut dyn FnMut() -> RequestId,
}

struct FlushWait {
    /// Done once a pull with at least this number has succeeded and nothing is pending.
    pull: u64,
    until: Option<Instant>,
    reply: Completer<Result<(), ThreadFlushError>>,
}

/// Thread sync inside the driver. See the [module docs](self).
pub(crate) struct ThreadPart {
    sync: ThreadSync,
    started: bool,
    wake: Option<Wake<shared_threads::Timer>>,
    fired: Option<Instant>,
    /// The shared retry budget its retries spend from, if the session has one.
    budget: Option<ThreadBudget>,
    /// With a durable outbox: the edits not yet synced, to store.
    journal: Option<ThreadJournal>,
    /// Requests in flight, by the session's id: thread sync's own id, and the pull number for
    /// pulls.
    in_flight: HashMap<RequestId, (RequestId, Option<u64>)>,
    statuses: Fanout<StatusChange>,
    reports: Fanout<ThreadReport>,
    /// The set of threads the server does not hold yet, whenever it changes.
    pending: Fanout<Vec<String>>,
    /// Threads refused so far (each went to the caller live).
    rejected: u64,
    stopped: Option<StopReason>,
    pulls_issued: u64,
    pulls_done: u64,
    flushes: Vec<FlushWait>,
    /// Closing: the deadline.
    closing: Option<Instant>,
    closers: Vec<Completer<ThreadCloseReport>>,
    /// Set once ended.
    report: Option<ThreadCloseReport>,
}

impl ThreadPart {
    /// Thread sync's retries spend from `gate` (the session's shared retry budget).
    pub(crate) fn spend_from(&mut self, gate: Box<dyn tether_core::budget::RetryGate>) {
        self.budget = Some(ThreadBudget::new(gate));
    }

    pub(crate) fn new(config: shared_threads::Config, seed: u64) -> Result<Self, ThreadStartError> {
        let sync = ThreadSync::new(config, Rng::new(seed)).map_err(ThreadStartError::Config)?;
        Ok(ThreadPart {
            sync,
            started: false,
            wake: None,
            fired: None,
            in_flight: HashMap::new(),
            statuses: Fanout::new(),
            reports: Fanout::new(),
            pending: Fanout::new(),
            rejected: 0,
            stopped: None,
            pulls_issued: 0,
            pulls_done: 0,
            flushes: Vec::new(),
            closing: None,
            closers: Vec::new(),
            report: None,
            budget: None,
            journal: None,
        })
    }

    // ----- the driver's hooks -----

    /// Whether request `id` is one of thread sync's, in flight.
    pub(crate) fn owns(&self, id: RequestId) -> bool {
        self.in_flight.contains_key(&id)
    }

    pub(crate) fn is_done(&self) -> bool {
        self.report.is_some()
    }

    pub(crate) fn handle_reply(
        &mut self,
        now: Instant,
        id: RequestId,
        result: Result<HttpResponse, TransportError>,
    ) {
        let Some((own, pull)) = self.in_flight.remove(&id) else {
            return;
        };
        if let Some(budget) = &mut self.budget {
            let ok = result
                .as_ref()
                .is_ok_and(|r| (200..300).contains(&r.status));
            budget.answered(now, ok, false);
        }
        match result {
            Ok(response) => {
                if let (Some(seq), 200..=299) = (pull, response.status) {
                    self.pulls_done = self.pulls_done.max(seq);
                }
                self.sync.handle_response(now, own, response.into());
            }
            Err(error) => self.sync.handle_transport_error(now, own, &error),
        }
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.report.is_some() {
            return;
        }
        if let Some(wake) = self.wake {
            if now >= wake.at {
                self.fired = Some(wake.at);
                self.sync.handle_timeout(now);
            }
        }
    }

    /// When to be called back: the core's wake-up, a flush's or the close's deadline.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        if self.report.is_some() {
            return None;
        }
        let core = self.wake.map(|w| {
            if self.fired == Some(w.at) {
                w.at + MIN_REPEAT_WAIT
            } else {
                w.at
            }
        });
        let flushes = self.flushes.iter().filter_map(|f| f.until).min();
        let budget = self.budget.as_ref().and_then(ThreadBudget::deadline);
        [core, flushes, self.closing, budget]
            .into_iter()
            .flatten()
            .min()
    }

    /// Starts once the epoch is known, drains the core into actions, answers the waiters,
    /// and ends when closed or the session has ended. Whether it queued actions.
    pub(crate) fn turn(
        &mut self,
        now: Instant,
        epoch: Option<u64>,
        session_ended: bool,
        mut io: Io<'_>,
    ) -> bool {
        if self.report.is_some() {
            return false;
        }
        let queued = io.actions.len();
        if !self.started && !session_ended {
            if let Some(epoch) = epoch {
                self.started = true;
                self.sync.start(now, epoch);
            }
        }
        if self.closing.is_some() && self.sync.is_paused() {
            // A close drains: a paused machine would only wait out its timeout.
            self.sync.resume(now);
        }
        if let Some(budget) = &mut self.budget {
            // Retries the budget now pays for.
            io.actions
                .extend(budget.release(now).into_iter().map(Action::Send));
        }
        self.drain(&mut io);
        let pending = self.sync.pending();
        let done = self.pulls_done;
        let mut i = 0;
        while i < self.flushes.len() {
            let f = &self.flushes[i];
            let answer = if pending == 0 && done >= f.pull {
                Some(Ok(()))
            } else if f.until.is_some_and(|u| u <= now) {
                Some(Err(ThreadFlushError::TimedOut))
            } else {
                None
            };
            match answer {
                Some(answer) => self.flushes.swap_remove(i).reply.complete(answer),
                None => i += 1,
            }
        }
        let drained = pending == 0 && self.sync.is_idle();
        let closed = self.closing.is_some_and(|until| drained || until <= now);
        if closed || self.stopped.is_some() || (session_ended && self.closing.is_none()) {
            self.end(&mut io);
        }
        queued != io.actions.len()
    }

    fn drain(&mut self, io: &mut Io<'_>) {
        loop {
            match self.sync.poll_output() {
                Poll::Output(output) => self.output(output, io),
                Poll::Timeout(wake) => {
                    self.wake = wake;
                    break;
                }
            }
        }
    }

    fn output(&mut self, output: shared_threads::Output, io: &mut Io<'_>) {
        use shared_threads::Output;
        match output {
            Output::Send(request) => {
                let id = (io.ids)();
                let pull = (request.endpoint == shared_threads::Endpoint::Pull).then(|| {
                    self.pulls_issued += 1;
                    self.pulls_issued
                });
                self.in_flight.insert(id, (request.id, pull));
                let http = build(
                    io.target,
                    id,
                    request.endpoint,
                    &request.path,
                    request.body,
                    (io.now, request.deadline),
                );
                let go = match &mut self.budget {
                    Some(budget) => budget.admit(io.now, http),
                    None => vec![http],
                };
                io.actions.extend(go.into_iter().map(Action::Send));
            }
            Output::Cancel(id) => {
                let id = self
                    .in_flight
                    .iter()
                    .find(|(_, (own, _))| *own == id)
                    .map(|(k, _)| *k);
                if let Some(id) = id {
                    self.in_flight.remove(&id);
                    let held = self.budget.as_mut().is_some_and(|b| b.cancel(id));
                    if !held {
                        // It was on the wire until its deadline: its retry costs a timeout's.
                        if let Some(budget) = &mut self.budget {
                            budget.answered(io.now, false, true);
                        }
                        io.actions.push_back(Action::Cancel(id));
                    }
                }
            }
            Output::Status(change) => {
                if change.status == SyncStatus::Synced {
                    if let Some(journal) = &mut self.journal {
                        journal.synced(&change.thread);
                    }
                }
                self.statuses.publish(change);
            }
            Output::Updated { id } => self.reports.publish(ThreadReport::Updated { id }),
            Output::Rejected(rejected) => {
                self.rejected += 1;
                self.reports.publish(ThreadReport::Rejected(rejected));
            }
            Output::Retrying {
                attempt, outcome, ..
            } => self
                .reports
                .publish(ThreadReport::Retrying { attempt, outcome }),
            Output::Overridden(o) => self.reports.publish(ThreadReport::Overridden(o)),
            Output::InvalidThread(t) => self.reports.publish(ThreadReport::InvalidThread(t)),
            Output::Held { id, failures, .. } => {
                self.reports.publish(ThreadReport::Held { id, failures })
            }
            Output::Offline(reason) => self.reports.publish(ThreadReport::Offline(reason)),
            Output::Online => self.reports.publish(ThreadReport::Online),
            Output::SlowSync(slow) => self.reports.publish(ThreadReport::SlowSync(slow)),
            Output::Pending(ids) => self.pending.publish(ids),
            Output::Paused => self.reports.publish(ThreadReport::Paused),
            Output::Resumed => self.reports.publish(ThreadReport::Resumed),
            Output::Stopped { reason, unsynced } => {
                self.stopped = Some(reason);
                self.reports
                    .publish(ThreadReport::Stopped { reason, unsynced });
            }
            _ => {}
        }
    }

    /// Ends thread sync: cancels what is in flight, hands back what is unsynced, answers
    /// every waiter and ends the streams.
    fn end(&mut self, io: &mut Io<'_>) {
        let mut cancelled: Vec<RequestId> = self.in_flight.drain().map(|(id, _)| id).collect();
        cancelled.sort();
        io.actions.extend(cancelled.into_iter().map(Action::Cancel));
        let unsynced: Vec<Thread> = if self.stopped.is_some() {
            Vec::new() // handed back with `Stopped` already
        } else {
            self.sync
                .statuses()
                .iter()
                .filter(|(_, s)| !matches!(s, SyncStatus::Synced | SyncStatus::Unknown))
                .filter_map(|(id, _)| self.sync.thread(id).cloned())
                .collect()
        };
        if !unsynced.is_empty() {
            self.reports.publish(ThreadReport::HandedBack {
                unsynced: unsynced.clone(),
            });
        }
        let report = ThreadCloseReport {
            threads: self.sync.threads().cloned().collect(),
            unsynced,
            rejected: self.rejected,
            stopped: self.stopped,
        };
        let error = self.ended_error();
        for flush in self.flushes.drain(..) {
            flush.reply.complete(Err(error.clone()));
        }
        for closer in self.closers.drain(..) {
            closer.complete(report.clone());
        }
        self.report = Some(report);
        self.statuses.close();
        self.reports.close();
        self.pending.close();
    }

    fn ended_error(&self) -> ThreadFlushError {
        match self.stopped {
            Some(reason) => ThreadFlushError::Stopped(reason),
            None => ThreadFlushError::Closed,
        }
    }
}

/// A stream that has already ended.
pub(crate) fn ended<T: Clone>() -> Subscription<T> {
    let mut fanout = Fanout::new();
    fanout.close();
    fanout.subscribe([])
}

/// A thread-sync request as HTTP.
fn build(
    target: &Target,
    id: RequestId,
    endpoint: shared_threads::Endpoint,
    path: &str,
    body: Vec<u8>,
    (now, deadline): (Instant, Instant),
) -> HttpRequest {
    HttpRequest {
        id,
        route: Route::Thread(endpoint),
        url: target.url.join(path),
        body,
        token: target.token.clone(),
        user_agent: target.user_agent.clone(),
        max_response_body: target.max_response_body.max(THREAD_MAX_RESPONSE_BODY),
        deadline,
        backstop: crate::http::backstop(now, deadline),
    }
}
