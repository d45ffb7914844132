//! [`ThreadSync`]: the machines of [`thread`](super) composed over the three endpoints.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use serde_json::Value;

use super::merge::{DefaultPolicy, MergePolicy};
use super::model::{Message, Thread, ThreadError};
use super::network::{
    NetworkConfig, NetworkOutput, NetworkState, NetworkTimer, OfflineReason, ProbeId,
};
use super::poller::{AdaptivePoller, PollerConfig, PollerOutput, PollerTimer};
use super::push::{
    PushConfig, PushId, PushOrchestrator, PushOutput, PushTimer, RejectedThread, StopReason,
};
use super::status::{PerfConfig, PerfMonitor, SlowSync, StatusChange, StatusStream, SyncStatus};
use super::wire::{ThreadEndpoint, parse_pull, parse_sync_results, pull_path, sync_body};
use crate::classify::{Outcome, Reply, TransientCause, classify};
use crate::drive::{Machine, Poll, Wake};
use crate::rng::Rng;
use crate::session::{Response, TransportError};
use crate::time::{Clock, Instant};

/// Everything [`ThreadSync`] is configured with.
#[derive(Clone, Debug, PartialEq)]
pub struct ThreadSyncConfig {
    /// The string this client puts in every push (docs/PROTOCOL.md: picked once). Not empty.
    pub client_id: String,
    /// Pushes: window, batch size, retry curve, timeout.
    pub push: PushConfig,
    /// The adaptive pull schedule.
    pub poller: PollerConfig,
    /// Offline detection and the probe.
    pub network: NetworkConfig,
    /// The performance monitor.
    pub perf: PerfConfig,
    /// `limit` of each pull. Default 100; at least 1.
    pub pull_limit: usize,
    /// A pull unanswered for this long is cancelled. Default 10 s.
    pub pull_timeout: Duration,
}

impl ThreadSyncConfig {
    /// The defaults, for this client.
    pub fn new(client_id: impl Into<String>) -> Self {
        ThreadSyncConfig {
            client_id: client_id.into(),
            push: PushConfig::default(),
            poller: PollerConfig::default(),
            network: NetworkConfig::default(),
            perf: PerfConfig::default(),
            pull_limit: 100,
            pull_timeout: Duration::from_secs(10),
        }
    }
}

/// A configuration [`ThreadSync`] refuses.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ThreadConfigError {
    /// `client_id` is empty.
    EmptyClientId,
    /// `pull_limit` is 0.
    ZeroPullLimit,
}

impl fmt::Display for ThreadConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThreadConfigError::EmptyClientId => f.write_str("the client id must not be empty"),
            ThreadConfigError::ZeroPullLimit => f.write_str("the pull limit must be at least 1"),
        }
    }
}

impl core::error::Error for ThreadConfigError {}

/// Names one request of [`ThreadSync`], whatever its endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

/// A request to carry out: method and path from `endpoint`, the query in `path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadRequest {
    /// Quote it when reporting the answer.
    pub id: RequestId,
    /// Which endpoint.
    pub endpoint: ThreadEndpoint,
    /// The path relative to the session URL, with its query (`/threads?since=0&limit=100`).
    pub path: String,
    /// The JSON body; empty for the two `GET`s.
    pub body: Vec<u8>,
    /// The core fails the request at this instant (and emits [`ThreadOutput::Cancel`]).
    pub deadline: Instant,
}

/// What [`ThreadSync`] asks for, or reports.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ThreadOutput {
    /// Send this request; report with [`ThreadSync::handle_response`] or
    /// [`ThreadSync::handle_transport_error`].
    Request(ThreadRequest),
    /// The request's deadline passed: abandon it; a late answer is ignored.
    Cancel(RequestId),
    /// A thread's sync status changed.
    Status(StatusChange),
    /// A thread's view changed by a remote copy, a merge or a rollback (not by a local edit).
    Updated {
        /// The thread.
        id: String,
    },
    /// The server refused a thread; it was rolled back, and the refused copy is handed back.
    Rejected(RejectedThread),
    /// A push failed as a whole and will be retried.
    Retrying {
        /// Retries since the last success, from 1.
        attempt: u32,
        /// When.
        at: Instant,
        /// What failed.
        outcome: Outcome,
    },
    /// Offline: only the probe runs; edits queue.
    Offline(OfflineReason),
    /// Online again: pulls and pushes resume.
    Online,
    /// A push slower than the recent 95th percentile.
    SlowSync(SlowSync),
    /// Stopped for good (superseded, or the session is unknown); the unsynced threads.
    Stopped {
        /// Why.
        reason: StopReason,
        /// Local copies the server does not hold.
        unsynced: Vec<Thread>,
    },
}

/// Why [`ThreadSync`] wants to wake, by sub-machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ThreadTimer {
    /// The push orchestrator's window, backoff or request deadline.
    Push(PushTimer),
    /// The pull schedule.
    Poll(PollerTimer),
    /// The probe or its deadline.
    Network(NetworkTimer),
    /// The pull in flight times out.
    PullDeadline,
}

#[derive(Clone, Copy, Debug)]
enum Flight {
    Pull { deadline: Instant },
    Push(PushId),
    Probe(ProbeId),
}

/// Two-way sync of shared threads. See the [module docs](super) for the driver loop.
#[derive(Clone, Debug)]
pub struct ThreadSync<P: MergePolicy = DefaultPolicy> {
    config: ThreadSyncConfig,
    clock: Clock,
    push: PushOrchestrator<P>,
    poller: AdaptivePoller,
    network: NetworkState,
    statuses: StatusStream,
    perf: PerfMonitor,
    epoch: Option<u64>,
    since: u64,
    flights: BTreeMap<RequestId, Flight>,
    pull_again: bool,
    stopped: bool,
    next_id: u64,
    outputs: VecDeque<ThreadOutput>,
}

impl ThreadSync<DefaultPolicy> {
    /// A stopped machine with the default merge policy; [`start`](Self::start) it.
    ///
    /// # Errors
    /// [`ThreadConfigError`].
    pub fn new(config: ThreadSyncConfig, rng: Rng) -> Result<Self, ThreadConfigError> {
        Self::with_policy(config, rng, DefaultPolicy)
    }
}

impl<P: MergePolicy> ThreadSync<P> {
    /// A stopped machine merging with `policy`.
    ///
    /// # Errors
    /// [`ThreadConfigError`].
    pub fn with_policy(
        config: ThreadSyncConfig,
        mut rng: Rng,
        policy: P,
    ) -> Result<Self, ThreadConfigError> {
        if config.client_id.is_empty() {
            return Err(ThreadConfigError::EmptyClientId);
        }
        if config.pull_limit == 0 {
            return Err(ThreadConfigError::ZeroPullLimit);
        }
        let mut push = PushOrchestrator::with_policy(config.push, rng.fork(), policy);
        // Nothing is pushed before `start` gives the epoch.
        push.set_paused(Instant::ZERO, true);
        Ok(ThreadSync {
            poller: AdaptivePoller::new(config.poller, rng.fork()),
            network: NetworkState::new(config.network),
            perf: PerfMonitor::new(config.perf),
            statuses: StatusStream::default(),
            push,
            config,
            clock: Clock::default(),
            epoch: None,
            since: 0,
            flights: BTreeMap::new(),
            pull_again: false,
            stopped: false,
            next_id: 0,
            outputs: VecDeque::new(),
        })
    }

    /// Starts syncing with `epoch` on every push: pulls at once, then on the adaptive
    /// schedule, and pushes whatever was edited before. Starting again only sets the epoch.
    pub fn start(&mut self, now: Instant, epoch: u64) {
        let now = self.clock.observe(now);
        let first = self.epoch.is_none();
        self.epoch = Some(epoch);
        if first && !self.stopped {
            self.poller.start(now);
            self.resume(now);
        }
        self.pump(now);
    }

    /// Appends a message to a thread (created if new). Applied to the view at once.
    ///
    /// # Errors
    /// [`ThreadError`]: an invalid message, a repeated id, or stopped. Nothing changes then.
    pub fn add_message(
        &mut self,
        now: Instant,
        thread: &str,
        message: Message,
    ) -> Result<(), ThreadError> {
        let now = self.clock.observe(now);
        let result = self.push.add_message(now, thread, message);
        self.edited(now, result)
    }

    /// Replaces a message of a thread, by id.
    ///
    /// # Errors
    /// [`ThreadError`].
    pub fn update_message(
        &mut self,
        now: Instant,
        thread: &str,
        message: Message,
    ) -> Result<(), ThreadError> {
        let now = self.clock.observe(now);
        let result = self.push.update_message(now, thread, message);
        self.edited(now, result)
    }

    /// Sets or removes a top-level field (e.g. `title`).
    ///
    /// # Errors
    /// [`ThreadError`].
    pub fn set_field(
        &mut self,
        now: Instant,
        thread: &str,
        key: &str,
        value: Option<Value>,
    ) -> Result<(), ThreadError> {
        let now = self.clock.observe(now);
        let result = self.push.set_field(now, thread, key, value);
        self.edited(now, result)
    }

    /// Replaces a thread's content from JSON (validated first).
    ///
    /// # Errors
    /// [`ThreadError`] naming what is malformed.
    pub fn put_value(&mut self, now: Instant, thread: &Value) -> Result<(), ThreadError> {
        let now = self.clock.observe(now);
        let result = self.push.put_value(now, thread);
        self.edited(now, result)
    }

    fn edited(&mut self, now: Instant, result: Result<(), ThreadError>) -> Result<(), ThreadError> {
        if result.is_ok() {
            self.poller.record_activity(now);
            self.poller.set_queue_depth(now, self.push.queue_depth());
        }
        self.pump(now);
        result
    }

    /// The caller's word on connectivity (e.g. the OS's online/offline events).
    pub fn set_online(&mut self, now: Instant, online: bool) {
        let now = self.clock.observe(now);
        self.network.set_online(now, online);
        self.pump(now);
    }

    /// Pull as soon as possible (after the one in flight, if any).
    pub fn pull_now(&mut self, now: Instant) {
        let now = self.clock.observe(now);
        self.start_pull(now);
        self.pump(now);
    }

    /// The answer to request `id`. One no longer in flight (cancelled, or from before a
    /// stop) is ignored.
    pub fn handle_response(&mut self, now: Instant, id: RequestId, response: Response) {
        let now = self.clock.observe(now);
        let Some(flight) = self.flights.remove(&id) else {
            return;
        };
        let mut outcome = classify(Reply::Status {
            status: response.status,
            retry_after: response.retry_after.as_deref(),
            date: response.date.as_deref(),
        });
        if outcome == Outcome::Success && response.truncated {
            outcome = Outcome::Transient(TransientCause::BadBody);
        }
        self.settle(now, flight, outcome, &response.body);
        self.pump(now);
    }

    /// Request `id` failed at the transport level.
    pub fn handle_transport_error(&mut self, now: Instant, id: RequestId, _error: &TransportError) {
        let now = self.clock.observe(now);
        let Some(flight) = self.flights.remove(&id) else {
            return;
        };
        self.settle(
            now,
            flight,
            Outcome::Transient(TransientCause::Transport),
            &[],
        );
        self.pump(now);
    }

    fn settle(&mut self, now: Instant, flight: Flight, outcome: Outcome, body: &[u8]) {
        match flight {
            Flight::Probe(probe) => self.network.probe_result(now, probe, outcome),
            Flight::Pull { .. } => {
                self.network.record(now, outcome);
                if outcome != Outcome::Success {
                    return;
                }
                match parse_pull(body) {
                    Ok(page) => {
                        let full = page.threads.len() >= self.config.pull_limit;
                        for thread in page.threads {
                            self.push.apply_remote(now, thread);
                        }
                        self.since = self.since.max(page.version);
                        if full {
                            self.pull_again = true;
                        }
                    }
                    Err(_) => self
                        .network
                        .record(now, Outcome::Transient(TransientCause::BadBody)),
                }
            }
            Flight::Push(push) => {
                self.network.record(now, outcome);
                if outcome != Outcome::Success {
                    self.push.handle_failure(now, push, outcome);
                    return;
                }
                match parse_sync_results(body) {
                    // A mismatch is failed as a bad body inside.
                    Ok(results) => {
                        let _ = self.push.handle_results(now, push, results);
                    }
                    Err(_) => self.push.handle_failure(
                        now,
                        push,
                        Outcome::Transient(TransientCause::BadBody),
                    ),
                }
            }
        }
    }

    fn start_pull(&mut self, now: Instant) {
        if self.stopped || self.epoch.is_none() || !self.network.is_online() {
            return;
        }
        if self
            .flights
            .values()
            .any(|f| matches!(f, Flight::Pull { .. }))
        {
            self.pull_again = true;
            return;
        }
        self.pull_again = false;
        let id = self.next_request();
        let deadline = now + self.config.pull_timeout;
        self.flights.insert(id, Flight::Pull { deadline });
        self.poller.pulled(now);
        self.outputs.push_back(ThreadOutput::Request(ThreadRequest {
            id,
            endpoint: ThreadEndpoint::Pull,
            path: pull_path(self.since, self.config.pull_limit),
            body: Vec::new(),
            deadline,
        }));
    }

    fn next_request(&mut self) -> RequestId {
        let id = RequestId(self.next_id);
        self.next_id += 1;
        id
    }

    fn resume(&mut self, now: Instant) {
        self.push.set_paused(now, false);
        self.start_pull(now);
    }

    /// Fails requests past their deadline and fires due timers. Early or spurious calls do
    /// nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clock.observe(now);
        let expired: Vec<RequestId> = self
            .flights
            .iter()
            .filter(|(_, f)| matches!(f, Flight::Pull { deadline } if *deadline <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.flights.remove(&id);
            self.outputs.push_back(ThreadOutput::Cancel(id));
            self.network
                .record(now, Outcome::Transient(TransientCause::TimedOut));
        }
        self.network.handle_timeout(now);
        self.push.handle_timeout(now);
        self.poller.handle_timeout(now);
        self.pump(now);
    }

    /// Drains the sub-machines into this machine's outputs until all are quiet.
    fn pump(&mut self, now: Instant) {
        loop {
            let mut busy = false;
            while let Poll::Output(out) = self.network.poll_output() {
                busy = true;
                self.on_network(now, out);
            }
            while let Poll::Output(out) = self.push.poll_output() {
                busy = true;
                self.on_push(now, out);
            }
            while let Poll::Output(PollerOutput::Pull) = self.poller.poll_output() {
                busy = true;
                self.start_pull(now);
            }
            while let Poll::Output(change) = self.statuses.poll_output() {
                busy = true;
                self.outputs.push_back(ThreadOutput::Status(change));
            }
            if self.pull_again
                && !self
                    .flights
                    .values()
                    .any(|f| matches!(f, Flight::Pull { .. }))
                && self.network.is_online()
                && !self.stopped
            {
                busy = true;
                self.start_pull(now);
            }
            if !busy {
                break;
            }
        }
    }

    fn on_network(&mut self, now: Instant, out: NetworkOutput) {
        match out {
            NetworkOutput::Probe(probe) => {
                let id = self.next_request();
                self.flights.insert(id, Flight::Probe(probe));
                self.outputs.push_back(ThreadOutput::Request(ThreadRequest {
                    id,
                    endpoint: ThreadEndpoint::Ping,
                    path: ThreadEndpoint::Ping.path().into(),
                    body: Vec::new(),
                    deadline: now + self.config.network.probe_timeout,
                }));
            }
            NetworkOutput::CancelProbe(probe) => {
                self.cancel(|f| matches!(f, Flight::Probe(p) if *p == probe));
            }
            NetworkOutput::Offline(reason) => {
                self.push.set_paused(now, true);
                self.poller.stop(now);
                self.outputs.push_back(ThreadOutput::Offline(reason));
            }
            NetworkOutput::Online => {
                self.outputs.push_back(ThreadOutput::Online);
                if self.epoch.is_some() && !self.stopped {
                    self.poller.start(now);
                    self.resume(now);
                }
            }
        }
    }

    fn cancel(&mut self, which: impl Fn(&Flight) -> bool) {
        let ids: Vec<RequestId> = self
            .flights
            .iter()
            .filter(|(_, f)| which(f))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.flights.remove(&id);
            self.outputs.push_back(ThreadOutput::Cancel(id));
        }
    }

    fn on_push(&mut self, now: Instant, out: PushOutput) {
        match out {
            PushOutput::Send { id: push, items } => {
                let id = self.next_request();
                self.flights.insert(id, Flight::Push(push));
                let epoch = self.epoch.unwrap_or(0);
                self.outputs.push_back(ThreadOutput::Request(ThreadRequest {
                    id,
                    endpoint: ThreadEndpoint::Sync,
                    path: ThreadEndpoint::Sync.path().into(),
                    body: sync_body(epoch, &self.config.client_id, &items),
                    deadline: now + self.config.push.request_timeout,
                }));
            }
            PushOutput::Cancel(push) => {
                self.cancel(|f| matches!(f, Flight::Push(p) if *p == push));
                self.network
                    .record(now, Outcome::Transient(TransientCause::TimedOut));
            }
            PushOutput::Retrying {
                attempt,
                at,
                outcome,
                ..
            } => self.outputs.push_back(ThreadOutput::Retrying {
                attempt,
                at,
                outcome,
            }),
            PushOutput::Status(change) => self.statuses.set(&change.thread, change.status),
            PushOutput::Updated { id } => self.outputs.push_back(ThreadOutput::Updated { id }),
            PushOutput::Settled { items, elapsed, .. } => {
                if let Some(slow) = self.perf.record(elapsed, items) {
                    self.outputs.push_back(ThreadOutput::SlowSync(slow));
                }
            }
            PushOutput::Rejected(rejected) => {
                self.outputs.push_back(ThreadOutput::Rejected(rejected));
            }
            PushOutput::Stopped { reason, unsynced } => {
                self.stopped = true;
                self.poller.stop(now);
                self.outputs
                    .push_back(ThreadOutput::Stopped { reason, unsynced });
            }
        }
    }

    /// The next output, or the next wake-up.
    #[must_use = "thread sync's outputs are its only way to get work done; drain them"]
    pub fn poll_output(&mut self) -> Poll<ThreadOutput, ThreadTimer> {
        let now = self.clock.now();
        loop {
            if let Some(out) = self.outputs.pop_front() {
                return Poll::Output(out);
            }
            // Every mutator drains the sub-machines, so they only have wake-ups left; should
            // one still hold an output, it is handled here rather than lost.
            let push = match self.push.poll_output() {
                Poll::Output(out) => {
                    self.on_push(now, out);
                    self.pump(now);
                    continue;
                }
                Poll::Timeout(wake) => wake.map(|w| Wake::new(w.at, ThreadTimer::Push(w.reason))),
            };
            let poll = match self.poller.poll_output() {
                Poll::Output(PollerOutput::Pull) => {
                    self.start_pull(now);
                    self.pump(now);
                    continue;
                }
                Poll::Timeout(wake) => wake.map(|w| Wake::new(w.at, ThreadTimer::Poll(w.reason))),
            };
            let net = match self.network.poll_output() {
                Poll::Output(out) => {
                    self.on_network(now, out);
                    self.pump(now);
                    continue;
                }
                Poll::Timeout(wake) => {
                    wake.map(|w| Wake::new(w.at, ThreadTimer::Network(w.reason)))
                }
            };
            if let Poll::Output(change) = self.statuses.poll_output() {
                self.outputs.push_back(ThreadOutput::Status(change));
                continue;
            }
            let pull = self
                .flights
                .values()
                .filter_map(|f| match f {
                    Flight::Pull { deadline } => {
                        Some(Wake::new(*deadline, ThreadTimer::PullDeadline))
                    }
                    _ => None,
                })
                .min_by_key(|w| w.at);
            let wake = [pull, push, poll, net]
                .into_iter()
                .flatten()
                .min_by_key(|w| w.at);
            return Poll::Timeout(wake);
        }
    }

    /// A thread's view: the local copy with every local edit applied.
    pub fn thread(&self, id: &str) -> Option<&Thread> {
        self.push.thread(id)
    }

    /// Every thread's view.
    pub fn threads(&self) -> impl Iterator<Item = &Thread> {
        self.push.threads()
    }

    /// A thread's sync status.
    pub fn status(&self, id: &str) -> SyncStatus {
        self.statuses.get(id)
    }

    /// Every thread's sync status, by id.
    pub fn statuses(&self) -> &BTreeMap<String, SyncStatus> {
        self.statuses.all()
    }

    /// Threads with changes the server does not hold yet.
    pub fn pending(&self) -> usize {
        self.push.pending()
    }

    /// Whether requests other than the probe may go.
    pub fn is_online(&self) -> bool {
        self.network.is_online()
    }

    /// Whether nothing is queued and no request is in flight.
    pub fn is_idle(&self) -> bool {
        self.push.is_idle() && self.flights.is_empty()
    }

    /// Whether it stopped for good.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// The session-wide version the next pull asks `since`.
    pub fn since(&self) -> u64 {
        self.since
    }

    /// The current pull interval.
    pub fn poll_interval(&self) -> Duration {
        self.poller.interval()
    }

    /// The performance monitor.
    pub fn perf(&self) -> &PerfMonitor {
        &self.perf
    }

    /// The settings in force.
    pub fn config(&self) -> &ThreadSyncConfig {
        &self.config
    }
}

impl<P: MergePolicy> Machine for ThreadSync<P> {
    type Output = ThreadOutput;
    type Timer = ThreadTimer;

    fn handle_timeout(&mut self, now: Instant) {
        ThreadSync::handle_timeout(self, now);
    }

    fn poll_output(&mut self) -> Poll<ThreadOutput, ThreadTimer> {
        ThreadSync::poll_output(self)
    }
}
