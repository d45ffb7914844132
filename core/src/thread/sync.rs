//! [`ThreadSync`]: the machines of [`thread`](super) composed over the three endpoints.
//!
//! The caller's controls beyond edits ([`pause`](ThreadSync::pause),
//! [`resume`](ThreadSync::resume), [`sync_now`](ThreadSync::sync_now)) and the pending-threads
//! stream are in `sync/control.rs`; the accessors in `sync/view.rs`.

mod control;
mod view;

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;

use serde_json::Value;

use super::merge::{DefaultPolicy, MergePolicy};
use super::model::{Error, Message, Thread};
use super::network::{NetworkOutput, NetworkState, ProbeId};
use super::poller::{AdaptivePoller, PollerOutput};
use super::push::{PushId, PushOrchestrator, PushOutput};
use super::replica::Edit;
use super::status::{PerfMonitor, StatusStream, SyncStatus};
use super::wire::{Endpoint, parse_pull, parse_sync_results, pull_path, sync_body};
use crate::classify::{Outcome, Reply, TransientCause, classify};
use crate::drive::{Machine, Poll, Wake};
use crate::rng::Rng;
use crate::session::{Response, TransportError};
use crate::time::{Clock, Instant};

pub use super::output::{Config, ConfigError, Output, Request, RequestId, Timer};

#[derive(Clone, Copy, Debug)]
enum Flight {
    Pull { deadline: Instant },
    Push(PushId),
    Probe(ProbeId),
}

/// Two-way sync of shared threads. See the [module docs](super) for the driver loop.
#[derive(Clone, Debug)]
pub struct ThreadSync<P: MergePolicy = DefaultPolicy> {
    config: Config,
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
    /// The caller paused syncing: no request goes until [`resume`](ThreadSync::resume).
    paused: bool,
    /// The pending threads last reported in [`Output::Pending`].
    pending: Vec<String>,
    next_id: u64,
    counts: Counts,
    outputs: VecDeque<Output>,
}

/// What thread sync has seen go wrong or be decided, in all (see [`ThreadSync::counts`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counts {
    /// Merge decisions that dropped a change ([`Output::Overridden`]).
    pub overridden: u64,
    /// Of those, the ones that dropped a local change.
    pub local_overridden: u64,
    /// Invalid threads the server sent ([`Output::InvalidThread`]).
    pub invalid: u64,
    /// Times a thread was held after a failure pinned on it ([`Output::Held`]).
    pub held: u64,
}

impl ThreadSync<DefaultPolicy> {
    /// A stopped machine with the default merge policy; [`start`](Self::start) it.
    ///
    /// # Errors
    /// [`ConfigError`].
    pub fn new(config: Config, rng: Rng) -> Result<Self, ConfigError> {
        Self::with_policy(config, rng, DefaultPolicy)
    }
}

impl<P: MergePolicy> ThreadSync<P> {
    /// A stopped machine merging with `policy`.
    ///
    /// # Errors
    /// [`ConfigError`].
    pub fn with_policy(config: Config, mut rng: Rng, policy: P) -> Result<Self, ConfigError> {
        if config.client_id.is_empty() {
            return Err(ConfigError::EmptyClientId);
        }
        if config.pull_limit == 0 {
            return Err(ConfigError::ZeroPullLimit);
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
            paused: false,
            pending: Vec::new(),
            next_id: 0,
            counts: Counts::default(),
            outputs: VecDeque::new(),
        })
    }

    /// Starts syncing with `epoch` on every push: pulls at once, then on the adaptive
    /// schedule, and pushes whatever was edited before. Starting again only sets the epoch.
    pub fn start(&mut self, now: Instant, epoch: u64) {
        let now = self.clock.observe(now);
        let first = self.epoch.is_none();
        self.epoch = Some(epoch);
        if first && !self.stopped && !self.paused {
            self.poller.start(now);
            self.run(now);
        }
        self.pump(now);
    }

    /// Applies a local edit to the view at once and queues the thread to push.
    ///
    /// # Errors
    /// [`Error`]: an invalid message, a repeated or deleted id, an unknown thread or
    /// message, a reserved field, or stopped. Nothing changes then.
    pub fn edit(&mut self, now: Instant, thread: &str, edit: Edit) -> Result<(), Error> {
        let now = self.clock.observe(now);
        let result = self.push.edit(now, thread, edit);
        self.edited(now, result)
    }

    /// Appends a message to a thread (created if new).
    ///
    /// # Errors
    /// As [`edit`](Self::edit).
    pub fn add_message(
        &mut self,
        now: Instant,
        thread: &str,
        message: Message,
    ) -> Result<(), Error> {
        self.edit(now, thread, Edit::Add(message))
    }

    /// Replaces a message of a thread, by id.
    ///
    /// # Errors
    /// As [`edit`](Self::edit).
    pub fn update_message(
        &mut self,
        now: Instant,
        thread: &str,
        message: Message,
    ) -> Result<(), Error> {
        self.edit(now, thread, Edit::Update(message))
    }

    /// Deletes a message of a thread; the delete sticks through merges (a tombstone).
    ///
    /// # Errors
    /// As [`edit`](Self::edit).
    pub fn delete_message(&mut self, now: Instant, thread: &str, id: &str) -> Result<(), Error> {
        self.edit(now, thread, Edit::Delete(id.into()))
    }

    /// Sets or removes a top-level field (e.g. `title`).
    ///
    /// # Errors
    /// As [`edit`](Self::edit).
    pub fn set_field(
        &mut self,
        now: Instant,
        thread: &str,
        key: &str,
        value: Option<Value>,
    ) -> Result<(), Error> {
        self.edit(now, thread, Edit::Set(key.into(), value))
    }

    /// Replaces a thread's content from JSON (validated first); messages it leaves out are
    /// deleted.
    ///
    /// # Errors
    /// [`Error`] naming what is malformed, or as [`edit`](Self::edit).
    pub fn put_value(&mut self, now: Instant, thread: &Value) -> Result<(), Error> {
        let parsed = Thread::from_value(thread);
        let now = self.clock.observe(now);
        let result = parsed.and_then(|t| self.push.edit(now, &t.id.clone(), Edit::Put(t)));
        self.edited(now, result)
    }

    fn edited(&mut self, now: Instant, result: Result<(), Error>) -> Result<(), Error> {
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
                    Ok((page, invalid)) => {
                        let full = page.threads.len() + invalid.len() >= self.config.pull_limit;
                        for bad in invalid {
                            self.counts.invalid += 1;
                            self.outputs.push_back(Output::InvalidThread(bad));
                        }
                        for thread in page.threads {
                            if self.push.replica().is_newer(&thread) {
                                self.poller.record_remote_change(now);
                            }
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
        if self.stopped || self.paused || self.epoch.is_none() || !self.network.is_online() {
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
        self.outputs.push_back(Output::Send(Request {
            id,
            endpoint: Endpoint::Pull,
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

    /// Pushes what waits and pulls at once: on start, back online, or resumed.
    fn run(&mut self, now: Instant) {
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
            self.outputs.push_back(Output::Cancel(id));
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
                self.outputs.push_back(Output::Status(change));
            }
            if self.pull_again
                && !self
                    .flights
                    .values()
                    .any(|f| matches!(f, Flight::Pull { .. }))
                && self.network.is_online()
                && !self.stopped
                && !self.paused
            {
                busy = true;
                self.start_pull(now);
            }
            if !busy {
                break;
            }
        }
        self.report_pending();
    }

    fn on_network(&mut self, now: Instant, out: NetworkOutput) {
        match out {
            NetworkOutput::Send(probe) => {
                let id = self.next_request();
                self.flights.insert(id, Flight::Probe(probe));
                self.outputs.push_back(Output::Send(Request {
                    id,
                    endpoint: Endpoint::Ping,
                    path: Endpoint::Ping.path().into(),
                    body: Vec::new(),
                    deadline: now + self.config.network.probe_timeout,
                }));
            }
            NetworkOutput::Cancel(probe) => {
                self.cancel(|f| matches!(f, Flight::Probe(p) if *p == probe));
            }
            NetworkOutput::Offline(reason) => {
                self.push.set_paused(now, true);
                self.poller.stop(now);
                self.outputs.push_back(Output::Offline(reason));
            }
            NetworkOutput::Online => {
                self.outputs.push_back(Output::Online);
                if self.epoch.is_some() && !self.stopped && !self.paused {
                    self.poller.start(now);
                    self.run(now);
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
            self.outputs.push_back(Output::Cancel(id));
        }
    }

    fn on_push(&mut self, now: Instant, out: PushOutput) {
        match out {
            PushOutput::Send { id: push, items } => {
                let id = self.next_request();
                self.flights.insert(id, Flight::Push(push));
                let epoch = self.epoch.unwrap_or(0);
                self.outputs.push_back(Output::Send(Request {
                    id,
                    endpoint: Endpoint::Sync,
                    path: Endpoint::Sync.path().into(),
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
            } => self.outputs.push_back(Output::Retrying {
                attempt,
                at,
                outcome,
            }),
            PushOutput::Status(change) => {
                if change.status == SyncStatus::Conflict {
                    // Another client changed the thread meanwhile: pull sooner.
                    self.poller.record_remote_change(now);
                }
                self.statuses.set(&change.thread, change.status);
            }
            PushOutput::Updated { id } => self.outputs.push_back(Output::Updated { id }),
            PushOutput::Overridden(o) => {
                self.counts.overridden += 1;
                self.counts.local_overridden += u64::from(o.local_lost());
                self.outputs.push_back(Output::Overridden(o));
            }
            PushOutput::Invalid(bad) => {
                self.counts.invalid += 1;
                self.outputs.push_back(Output::InvalidThread(bad));
            }
            PushOutput::Held {
                id,
                failures,
                until,
            } => {
                self.counts.held += 1;
                self.outputs.push_back(Output::Held {
                    id,
                    failures,
                    until,
                });
            }
            PushOutput::Settled {
                items,
                conflicts,
                elapsed,
                ..
            } => {
                if let Some(slow) = self.perf.record_sync(elapsed, items, conflicts) {
                    self.outputs.push_back(Output::SlowSync(slow));
                }
                // The size that synced fastest lately is the next pushes' size.
                self.push.set_batch_size(self.perf.best_batch_size());
            }
            PushOutput::Rejected(rejected) => {
                self.outputs.push_back(Output::Rejected(rejected));
            }
            PushOutput::Stopped { reason, unsynced } => {
                self.stopped = true;
                // The queue is empty now: said before the stop, which is the last word.
                self.report_pending();
                self.poller.stop(now);
                self.outputs.push_back(Output::Stopped { reason, unsynced });
            }
        }
    }

    /// The next output, or the next wake-up.
    #[must_use = "thread sync's outputs are its only way to get work done; drain them"]
    pub fn poll_output(&mut self) -> Poll<Output, Timer> {
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
                Poll::Timeout(wake) => wake.map(|w| Wake::new(w.at, Timer::Push(w.reason))),
            };
            let poll = match self.poller.poll_output() {
                Poll::Output(PollerOutput::Pull) => {
                    self.start_pull(now);
                    self.pump(now);
                    continue;
                }
                Poll::Timeout(wake) => wake.map(|w| Wake::new(w.at, Timer::Poll(w.reason))),
            };
            let net = match self.network.poll_output() {
                Poll::Output(out) => {
                    self.on_network(now, out);
                    self.pump(now);
                    continue;
                }
                Poll::Timeout(wake) => wake.map(|w| Wake::new(w.at, Timer::Network(w.reason))),
            };
            if let Poll::Output(change) = self.statuses.poll_output() {
                self.outputs.push_back(Output::Status(change));
                continue;
            }
            let pull = self
                .flights
                .values()
                .filter_map(|f| match f {
                    Flight::Pull { deadline } => Some(Wake::new(*deadline, Timer::PullDeadline)),
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
}

impl<P: MergePolicy> Machine for ThreadSync<P> {
    type Output = Output;
    type Timer = Timer;

    fn handle_timeout(&mut self, now: Instant) {
        ThreadSync::handle_timeout(self, now);
    }

    fn poll_output(&mut self) -> Poll<Output, Timer> {
        ThreadSync::poll_output(self)
    }
}
