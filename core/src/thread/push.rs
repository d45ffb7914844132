//! The push orchestrator (seed 002's `BatchSyncOrchestrator`): when and how the
//! [`Replica`]'s local changes go to the server, and what each answer does to them.
//!
//! Edits mark a thread dirty. The first dirty thread opens a window (100 ms); when it ends, up
//! to 50 dirty threads go in one `POST /threads/sync`, each as its whole local copy with the
//! version it descends from, so every edit made to a thread within the window is one item. One
//! push is in flight at a time.
//!
//! Each item's result settles that thread: **applied** makes the pushed copy the synced one;
//! **conflict** merges three ways (base = last synced copy, local, remote = the server's) and
//! queues the merge, reporting every change the merge policy overrode; **rejected** rolls the
//! thread back to its last synced copy and hands the refused copy back in
//! [`PushOutput::Rejected`]. A failed push as a whole retries on the backoff curve (413 halves
//! the batch first; a permanent status sends each thread alone, then rejects the one it
//! repeats for); superseded or unknown session stops and hands every unsynced thread back.
//!
//! Failures are remembered per thread (seed 002's failure history). A failure the server's
//! answer pins on a thread (a rejection, an unreadable result, or a 5xx, bad body or permanent
//! status for a push of that thread alone) holds that thread for
//! [`PushConfig::thread_hold`] (60 s); the others go on. A push of several threads that fails
//! that way marks them suspect, and suspects go alone, so one bad thread is found without
//! holding the others back. Transport failures, timeouts and throttling are the network's, not
//! a thread's: they only back the whole orchestrator off.
//!
//! ```text
//!   edit ──▶ dirty ──window──▶ in flight ──applied──▶ synced
//!              ▲                  │ conflict: merge, dirty again
//!              └──────────────────┤ failure: backoff (or hold that thread), dirty again
//!                                 └ rejected: rolled back (Rejected output), held
//! ```

mod io;

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

pub use self::io::{PushConfig, PushId, PushOutput, PushTimer, StopReason};
use super::merge::{DefaultPolicy, MergePolicy};
use super::model::{Error, Message, Thread};
use super::queue::{PushQueue, pinned_on_the_push};
pub use super::replica::RejectedThread;
use super::replica::{Edit, Rebased, Replica};
use super::status::{StatusChange, SyncStatus};
use super::wire::{InvalidThread, ItemResult, SyncItem, WireError};
use crate::backoff::Backoff;
use crate::classify::{Outcome, TransientCause};
use crate::drive::{Machine, Poll, Wake};
use crate::rng::Rng;
use crate::time::{Clock, Instant};

#[derive(Clone, Debug)]
struct Flight {
    id: PushId,
    items: Vec<SyncItem>,
    sent_at: Instant,
    deadline: Instant,
}

/// The replica and its pushes. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct PushOrchestrator<P: MergePolicy = DefaultPolicy> {
    config: PushConfig,
    rng: Rng,
    clock: Clock,
    backoff: Backoff,
    replica: Replica<P>,
    queue: PushQueue,
    window_at: Option<Instant>,
    retry_at: Option<Instant>,
    in_flight: Option<Flight>,
    /// The most threads in a push when all goes well: `max_batch`, or what
    /// [`set_batch_size`](PushOrchestrator::set_batch_size) chose.
    batch_size: usize,
    /// The most threads in the next push: `batch_size`, or less while a 413 or a permanent
    /// failure narrows it down.
    batch_limit: usize,
    paused: bool,
    stopped: bool,
    next_id: u64,
    outputs: VecDeque<PushOutput>,
}

impl PushOrchestrator<DefaultPolicy> {
    /// An empty replica with the default merge policy.
    pub fn new(config: PushConfig, rng: Rng) -> Self {
        Self::with_policy(config, rng, DefaultPolicy)
    }
}

impl<P: MergePolicy> PushOrchestrator<P> {
    /// An empty replica merging with `policy`. `max_batch` is clamped to 1..=50.
    pub fn with_policy(mut config: PushConfig, rng: Rng, policy: P) -> Self {
        config.max_batch = config.max_batch.clamp(1, PushConfig::MAX_ITEMS);
        PushOrchestrator {
            backoff: Backoff::new(config.backoff),
            batch_size: config.max_batch,
            batch_limit: config.max_batch,
            config,
            rng,
            clock: Clock::default(),
            replica: Replica::new(policy),
            queue: PushQueue::default(),
            window_at: None,
            retry_at: None,
            in_flight: None,
            paused: false,
            stopped: false,
            next_id: 0,
            outputs: VecDeque::new(),
        }
    }

    /// Applies a local edit to a thread's view at once (creating the thread for
    /// [`Edit::Add`], [`Edit::Set`] and [`Edit::Put`]) and queues the thread to push.
    ///
    /// # Errors
    /// The edit's [`Error`], or [`Error::Stopped`]; nothing changes then.
    pub fn edit(&mut self, now: Instant, thread: &str, edit: Edit) -> Result<(), Error> {
        let now = self.clock.observe(now);
        if self.stopped {
            return Err(Error::Stopped);
        }
        if self.replica.apply(thread, edit)? {
            self.mark_dirty(thread);
            self.set_status(thread, SyncStatus::Pending);
            self.try_send(now);
        }
        Ok(())
    }

    /// [`edit`](Self::edit) with [`Edit::Add`]: appends a message.
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

    /// A copy of a thread pulled from the server. Newer than the synced copy, it becomes the
    /// synced copy, and the view becomes the three-way merge of it and the local changes
    /// (which stay queued). An older or equal version is ignored.
    pub fn apply_remote(&mut self, now: Instant, remote: Thread) {
        let now = self.clock.observe(now);
        if self.stopped || !self.replica.is_newer(&remote) {
            return;
        }
        let id = remote.id.clone();
        if self.queue.is_in_flight(&id) {
            self.queue.stash(remote);
            return;
        }
        let rebased = self.replica.take_remote(remote);
        self.rebased(&id, rebased, SyncStatus::Pending);
        self.try_send(now);
    }

    /// Reports what a rebase did; `unsynced` is the status if local changes are left.
    fn rebased(&mut self, id: &str, rebased: Rebased, unsynced: SyncStatus) {
        for o in rebased.overrides {
            self.outputs.push_back(PushOutput::Overridden(o));
        }
        if rebased.synced {
            self.queue.unqueue(id);
            self.set_status(id, SyncStatus::Synced);
        } else if unsynced == SyncStatus::Conflict || !self.queue.is_dirty(id) {
            // Local changes the server does not hold: queued again.
            self.mark_dirty(id);
            self.set_status(id, unsynced);
        }
        if rebased.changed {
            self.outputs
                .push_back(PushOutput::Updated { id: id.into() });
        }
    }

    /// Pushes a thread's queued changes now: it goes first in the next push, without waiting
    /// for the window, and a hold after a failure pinned on it is lifted (seed 002's
    /// `syncImmediately`). The orchestrator's own backoff after a failed push, a push in
    /// flight, a pause and being offline still come first: the thread goes as soon as they
    /// allow, ahead of the others. Returns whether the thread had changes waiting (`false`:
    /// it is synced, or everything it has is in the push in flight).
    ///
    /// # Errors
    /// [`Error::UnknownThread`], or [`Error::Stopped`].
    pub fn sync_now(&mut self, now: Instant, thread: &str) -> Result<bool, Error> {
        let now = self.clock.observe(now);
        if self.stopped {
            return Err(Error::Stopped);
        }
        if self.replica.thread(thread).is_none() {
            return Err(Error::UnknownThread { id: thread.into() });
        }
        let urged = self.queue.urge(thread);
        self.try_send(now);
        Ok(urged)
    }

    /// Sets the most threads in a push when all goes well, e.g. to the performance monitor's
    /// [`best_batch_size`](super::PerfMonitor::best_batch_size); clamped to
    /// `1..=max_batch`. A push narrowed down after a 413 or a permanent failure stays narrow
    /// until the next success.
    pub fn set_batch_size(&mut self, size: usize) {
        let size = size.clamp(1, self.config.max_batch);
        if self.batch_limit == self.batch_size {
            self.batch_limit = size;
        }
        self.batch_size = size;
    }

    /// The most threads in a push when all goes well.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Pauses pushes (offline) or resumes them. A push in flight still settles.
    pub fn set_paused(&mut self, now: Instant, paused: bool) {
        let now = self.clock.observe(now);
        self.paused = paused;
        if !paused {
            // Back online: what waited for the network goes now.
            self.retry_at = None;
            self.backoff.reset();
            self.try_send(now);
        }
    }

    /// Push `id` was answered with a 2xx and these per-item results.
    ///
    /// # Errors
    /// [`WireError::Mismatch`] if the results do not match the items (count or ids); the push
    /// is then failed as a bad body and retried. An unknown or abandoned `id` is ignored.
    pub fn handle_results(
        &mut self,
        now: Instant,
        id: PushId,
        results: Vec<ItemResult>,
    ) -> Result<(), WireError> {
        let now = self.clock.observe(now);
        if self.in_flight.as_ref().is_none_or(|f| f.id != id) {
            return Ok(());
        }
        let matches = self.in_flight.as_ref().is_some_and(|f| {
            f.items.len() == results.len()
                && f.items.iter().zip(&results).all(|(i, r)| i.id == r.id())
        });
        if !matches {
            self.handle_failure(now, id, Outcome::Transient(TransientCause::BadBody));
            return Err(WireError::Mismatch);
        }
        let Some(flight) = self.in_flight.take() else {
            return Ok(());
        };
        self.backoff.reset();
        self.batch_limit = self.batch_size;
        let conflicts = results
            .iter()
            .filter(|r| matches!(r, ItemResult::Conflict { .. }))
            .count();
        self.outputs.push_back(PushOutput::Settled {
            id,
            items: flight.items.len(),
            conflicts,
            elapsed: now.saturating_duration_since(flight.sent_at),
        });
        for (item, result) in flight.items.into_iter().zip(results) {
            self.settle_item(now, item, result);
        }
        self.try_send(now);
        Ok(())
    }

    fn settle_item(&mut self, now: Instant, item: SyncItem, result: ItemResult) {
        let id = item.id.clone();
        self.queue.landed(&id);
        let stash = self.queue.take_stash(&id);
        match result {
            ItemResult::Applied { v, .. } => {
                self.queue.succeeded(&id);
                self.replica.applied(item.thread, v);
                let status = if self.queue.is_dirty(&id) {
                    SyncStatus::Pending
                } else {
                    SyncStatus::Synced
                };
                self.set_status(&id, status);
            }
            ItemResult::Conflict { thread, .. } => {
                self.queue.succeeded(&id);
                let rebased = self.replica.take_remote(thread);
                self.rebased(&id, rebased, SyncStatus::Conflict);
            }
            ItemResult::Rejected { error, .. } => {
                self.reject(&id, error);
                self.hold(now, &id);
            }
            ItemResult::Invalid { error, .. } => {
                // The server's copy cannot be merged with: the local changes wait, held.
                self.outputs.push_back(PushOutput::Invalid(InvalidThread {
                    id: Some(id.clone()),
                    error,
                }));
                self.mark_dirty(&id);
                self.set_status(&id, SyncStatus::Error);
                self.hold(now, &id);
            }
        }
        if let Some(remote) = stash {
            self.apply_remote(now, remote);
        }
    }

    /// Pins a failure on a thread: it waits [`PushConfig::thread_hold`].
    fn hold(&mut self, now: Instant, id: &str) {
        let until = now + self.config.thread_hold;
        let failures = self.queue.hold(id, until);
        self.outputs.push_back(PushOutput::Held {
            id: id.into(),
            failures,
            until,
        });
    }

    /// Rolls a thread back to its last synced copy and hands the refused copy back.
    fn reject(&mut self, id: &str, reason: String) {
        self.queue.unqueue(id);
        self.queue.landed(id);
        let Some(rolled) = self.replica.roll_back(id) else {
            return;
        };
        self.set_status(id, SyncStatus::Error);
        self.outputs
            .push_back(PushOutput::Updated { id: id.into() });
        self.outputs.push_back(PushOutput::Rejected(RejectedThread {
            id: id.into(),
            reason,
            refused: rolled.refused,
            restored: rolled.restored,
        }));
    }

    /// Push `id` failed as a whole, as the response table classified it. An unknown or
    /// abandoned `id` is ignored.
    pub fn handle_failure(&mut self, now: Instant, id: PushId, outcome: Outcome) {
        let now = self.clock.observe(now);
        if self.in_flight.as_ref().is_none_or(|f| f.id != id) {
            return;
        }
        self.fail_flight(now, outcome);
        self.try_send(now);
    }

    fn fail_flight(&mut self, now: Instant, outcome: Outcome) {
        let Some(flight) = self.in_flight.take() else {
            return;
        };
        let ids: Vec<String> = flight.items.iter().map(|i| i.id.clone()).collect();
        let pinned = pinned_on_the_push(outcome);
        match outcome {
            Outcome::Permanent(status) if ids.len() == 1 => {
                self.reject(&ids[0], format!("the push failed with status {status}"));
                self.hold(now, &ids[0]);
                self.release(now, &ids);
                return;
            }
            Outcome::TooLarge if ids.len() == 1 => {
                self.reject(&ids[0], "too large for the server (413)".into());
                self.hold(now, &ids[0]);
                self.release(now, &ids);
                return;
            }
            Outcome::Superseded | Outcome::SessionUnknown => {
                self.requeue(&ids);
                let reason = if outcome == Outcome::Superseded {
                    StopReason::Superseded
                } else {
                    StopReason::SessionUnknown
                };
                self.stop(reason);
                return;
            }
            _ => {}
        }
        self.requeue(&ids);
        for id in &ids {
            self.set_status(id, SyncStatus::Error);
        }
        if pinned {
            match ids.as_slice() {
                [id] => self.hold(now, id),
                // One of them may be the cause: each goes alone next.
                _ => ids.iter().for_each(|id| self.queue.suspect(id)),
            }
        }
        if outcome == Outcome::TooLarge || matches!(outcome, Outcome::Permanent(_)) {
            // Halve (or isolate) and go again at once: the batch, not the server, was the trouble.
            self.batch_limit = (ids.len() / 2).max(1);
            self.window_at = Some(now);
        } else {
            let hint = match outcome {
                Outcome::Throttled(hint) => Some(hint),
                _ => None,
            };
            let delay = self.backoff.next_delay(hint, &mut self.rng);
            let at = now + delay;
            self.retry_at = Some(at);
            self.outputs.push_back(PushOutput::Retrying {
                attempt: self.backoff.attempt(),
                delay,
                at,
                outcome,
            });
        }
        self.release(now, &ids);
    }

    /// The threads of a failed push go back in the queue, ahead of later edits.
    fn requeue(&mut self, ids: &[String]) {
        for id in ids {
            self.queue.landed(id);
            self.mark_dirty(id);
        }
    }

    /// Applies what was pulled while these threads were in flight.
    fn release(&mut self, now: Instant, ids: &[String]) {
        for id in ids {
            let stash = self.queue.take_stash(id);
            if let Some(remote) = stash {
                self.apply_remote(now, remote);
            }
        }
    }

    fn stop(&mut self, reason: StopReason) {
        self.stopped = true;
        self.window_at = None;
        self.retry_at = None;
        let mut unsynced = Vec::new();
        for id in self.queue.clear() {
            unsynced.extend(self.replica.thread(&id).cloned());
            self.set_status(&id, SyncStatus::Error);
        }
        self.outputs
            .push_back(PushOutput::Stopped { reason, unsynced });
    }

    fn mark_dirty(&mut self, id: &str) {
        if self.replica.thread(id).is_some() {
            self.queue.mark_dirty(id);
        }
    }

    fn set_status(&mut self, id: &str, status: SyncStatus) {
        self.outputs.push_back(PushOutput::Status(StatusChange {
            thread: id.into(),
            status,
        }));
    }

    /// Opens the window, or sends a batch once it ended and nothing blocks.
    fn try_send(&mut self, now: Instant) {
        if self.stopped || self.paused || !self.queue.any_ready(now) {
            return;
        }
        if self.queue.any_urgent() {
            // Asked to sync now: the window ends at once.
            self.window_at = Some(self.window_at.map_or(now, |at| at.min(now)));
        }
        let window_at = *self.window_at.get_or_insert(now + self.config.window);
        if self.in_flight.is_some() || self.retry_at.is_some() || window_at > now {
            return;
        }
        self.window_at = None;
        let mut items = Vec::new();
        for id in self.queue.take_batch(now, self.batch_limit) {
            if let Some(item) = self.replica.sending(&id) {
                items.push(item);
                self.set_status(&id, SyncStatus::Syncing);
            }
        }
        let id = PushId(self.next_id);
        self.next_id += 1;
        self.in_flight = Some(Flight {
            id,
            items: items.clone(),
            sent_at: now,
            deadline: now + self.config.request_timeout,
        });
        self.outputs.push_back(PushOutput::Send { id, items });
    }

    /// Fails a push past its deadline, ends the window, the backoff wait or a thread's hold.
    /// Early or spurious calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clock.observe(now);
        if let Some(flight) = &self.in_flight {
            if flight.deadline <= now {
                let id = flight.id;
                self.outputs.push_back(PushOutput::Cancel(id));
                self.fail_flight(now, Outcome::Transient(TransientCause::TimedOut));
            }
        }
        if self.retry_at.is_some_and(|at| at <= now) {
            self.retry_at = None;
        }
        self.try_send(now);
    }

    /// The next output, or the next wake-up.
    #[must_use = "the orchestrator's outputs are its only way to get work done; drain them"]
    pub fn poll_output(&mut self) -> Poll<PushOutput, PushTimer> {
        if let Some(out) = self.outputs.pop_front() {
            return Poll::Output(out);
        }
        let now = self.clock.now();
        let idle = self.stopped || self.paused;
        let deadline = self.in_flight.as_ref().map(|f| f.deadline);
        let ready = self.queue.any_ready(now);
        let (retry, window, hold) = if idle || self.in_flight.is_some() {
            (None, None, None)
        } else if self.retry_at.is_some() {
            (self.retry_at, None, None)
        } else if ready {
            (None, self.window_at, None)
        } else {
            (None, None, self.queue.next_release(now))
        };
        let wake = [
            (deadline, PushTimer::RequestDeadline),
            (retry, PushTimer::Backoff),
            (window, PushTimer::Window),
            (hold, PushTimer::Hold),
        ]
        .into_iter()
        .filter_map(|(at, reason)| at.map(|at| Wake::new(at, reason)))
        .min_by_key(|w| w.at);
        Poll::Timeout(wake)
    }

    /// The replica: every thread's view and synced copy.
    pub fn replica(&self) -> &Replica<P> {
        &self.replica
    }

    /// Threads with changes the server does not hold yet (queued or in flight).
    pub fn pending(&self) -> usize {
        self.queue.pending()
    }

    /// The threads with changes the server does not hold yet (queued or in flight), by id.
    pub fn pending_ids(&self) -> impl Iterator<Item = &str> + '_ {
        self.queue.pending_ids().map(String::as_str)
    }

    /// Threads queued to push (not in flight).
    pub fn queue_depth(&self) -> usize {
        self.queue.depth()
    }

    /// Failures pinned on a thread in a row (0: none since its last success), and until when
    /// it is held.
    pub fn failures(&self, id: &str) -> (u32, Option<Instant>) {
        self.queue.failures(id)
    }

    /// Whether nothing is queued or in flight.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.in_flight.is_none()
    }

    /// The push in flight.
    pub fn in_flight(&self) -> Option<PushId> {
        self.in_flight.as_ref().map(|f| f.id)
    }

    /// Whether the orchestrator stopped for good.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// The settings in force.
    pub fn config(&self) -> &PushConfig {
        &self.config
    }
}

impl<P: MergePolicy> Machine for PushOrchestrator<P> {
    type Output = PushOutput;
    type Timer = PushTimer;

    fn handle_timeout(&mut self, now: Instant) {
        PushOrchestrator::handle_timeout(self, now);
    }

    fn poll_output(&mut self) -> Poll<PushOutput, PushTimer> {
        PushOrchestrator::poll_output(self)
    }
}
