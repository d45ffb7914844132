//! The push orchestrator: the local replica of the threads, and the pushes that sync it
//! (seed 002's `BatchSyncOrchestrator` and `OptimisticSyncManager`).
//!
//! Edits apply to the local view at once and mark the thread dirty. The first dirty thread
//! opens a window (100 ms); when it ends, up to 50 dirty threads go in one
//! `POST /threads/sync`, each as its whole local copy with the version it descends from, so
//! every edit made to a thread within the window is one item. One push is in flight at a time.
//!
//! Each item's result settles that thread: **applied** makes the pushed copy the synced one;
//! **conflict** merges three ways (base = last synced copy, local, remote = the server's) and
//! queues the merge; **rejected** rolls the thread back to its last synced copy and hands the
//! refused copy back in [`PushOutput::Rejected`]. A failed push as a whole retries on the
//! backoff curve (413 halves the batch first); a permanent failure rejects its items;
//! superseded or unknown session stops and hands every unsynced thread back.
//!
//! ```text
//!   edit ──▶ dirty ──window──▶ in flight ──applied──▶ synced
//!              ▲                  │ conflict: merge, dirty again
//!              └──────────────────┤ failure: backoff, dirty again
//!                                 └ rejected: rolled back (Rejected output)
//! ```

use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use serde_json::Value;

use super::merge::{DefaultPolicy, MergePolicy, ThreadMerge};
use super::model::{Message, Thread, ThreadError};
use super::status::{StatusChange, SyncStatus};
use super::wire::{ItemResult, SyncItem, WireError};
use crate::backoff::{Backoff, BackoffPolicy};
use crate::classify::{Outcome, TransientCause};
use crate::drive::{Machine, Poll, Wake};
use crate::rng::Rng;
use crate::time::{Clock, Instant};

/// The orchestrator's settings; the defaults are docs/PROTOCOL.md's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PushConfig {
    /// Edits within this window go in one batch. Default 100 ms.
    pub window: Duration,
    /// The most threads in one push. Default 50 (the server's limit); 1..=50.
    pub max_batch: usize,
    /// The retry curve for failed pushes: the uploaders' (500 ms doubling to 30 s + jitter).
    pub backoff: BackoffPolicy,
    /// A push unanswered for this long is cancelled and retried. Default 10 s.
    pub request_timeout: Duration,
}

impl PushConfig {
    /// The server's limit on items per push.
    pub const MAX_ITEMS: usize = 50;
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            window: Duration::from_millis(100),
            max_batch: Self::MAX_ITEMS,
            backoff: BackoffPolicy::uploader(),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// Names one push.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PushId(pub u64);

impl fmt::Display for PushId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "push#{}", self.0)
    }
}

/// A thread the server refused, rolled back and handed back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedThread {
    /// The thread.
    pub id: String,
    /// Why: the server's reason, or the status of a permanent failure.
    pub reason: String,
    /// The refused local copy, with every edit it held.
    pub refused: Thread,
    /// What the view holds now: the last synced copy, or `None` (the thread was new).
    pub restored: Option<Thread>,
}

/// Why the orchestrator stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// 409: a newer worker owns the session.
    Superseded,
    /// 404: the session is unknown.
    SessionUnknown,
}

/// What the orchestrator asks for, or reports.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum PushOutput {
    /// Send `POST /threads/sync` with these items (see
    /// [`sync_body`](super::wire::sync_body)) and report with
    /// [`handle_results`](PushOrchestrator::handle_results) or
    /// [`handle_failure`](PushOrchestrator::handle_failure).
    Send {
        /// The push.
        id: PushId,
        /// Its items, at most [`PushConfig::max_batch`].
        items: Vec<SyncItem>,
    },
    /// The push's deadline passed: abandon it; its late answer is ignored.
    Cancel(PushId),
    /// The push failed as a whole; its threads go again at `at`.
    Retrying {
        /// Retries since the last success, from 1.
        attempt: u32,
        /// The wait.
        delay: Duration,
        /// When the retry goes.
        at: Instant,
        /// What failed.
        outcome: Outcome,
    },
    /// A thread's status changed.
    Status(StatusChange),
    /// A thread's view changed other than by a local edit: a remote copy, a merge, a rollback.
    Updated {
        /// The thread.
        id: String,
    },
    /// A push was answered item by item.
    Settled {
        /// The push.
        id: PushId,
        /// How many threads it carried.
        items: usize,
        /// From send to answer.
        elapsed: Duration,
    },
    /// The server refused a thread; it was rolled back.
    Rejected(RejectedThread),
    /// Stopped for good; every thread not synced is handed back.
    Stopped {
        /// Why.
        reason: StopReason,
        /// The local copies that the server does not hold.
        unsynced: Vec<Thread>,
    },
}

/// Why the orchestrator wakes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PushTimer {
    /// The batch window ends.
    Window,
    /// The backoff wait ends.
    Backoff,
    /// The push in flight times out.
    RequestDeadline,
}

#[derive(Clone, Debug)]
struct Entry {
    /// The last synced copy: what the server held when we last knew.
    base: Option<Thread>,
    /// The optimistic view; its `v` is the base's.
    local: Thread,
    /// Queued to push, with its place in the queue.
    dirty: Option<u64>,
    in_flight: bool,
    /// The newest remote copy pulled while in flight, applied once the push settles.
    stash: Option<Thread>,
}

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
    merge: ThreadMerge<P>,
    entries: BTreeMap<String, Entry>,
    queue: BTreeMap<u64, String>,
    next_seq: u64,
    window_at: Option<Instant>,
    retry_at: Option<Instant>,
    in_flight: Option<Flight>,
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
            batch_limit: config.max_batch,
            config,
            rng,
            clock: Clock::default(),
            merge: ThreadMerge::new(policy),
            entries: BTreeMap::new(),
            queue: BTreeMap::new(),
            next_seq: 0,
            window_at: None,
            retry_at: None,
            in_flight: None,
            paused: false,
            stopped: false,
            next_id: 0,
            outputs: VecDeque::new(),
        }
    }

    /// Appends a message to a thread, creating the thread if this replica does not hold it.
    ///
    /// # Errors
    /// [`ThreadError`] for an invalid message or one whose id the thread already holds, or
    /// [`ThreadError::Stopped`]; nothing changes then.
    pub fn add_message(
        &mut self,
        now: Instant,
        thread: &str,
        message: Message,
    ) -> Result<(), ThreadError> {
        self.edit(now, thread, true, |t| {
            if t.message(&message.id).is_some() {
                return Err(ThreadError::DuplicateMessage { id: message.id });
            }
            t.messages.push(message);
            Ok(())
        })
    }

    /// Replaces the message with the same id.
    ///
    /// # Errors
    /// [`ThreadError::UnknownThread`], [`ThreadError::UnknownMessage`], an invalid message, or
    /// [`ThreadError::Stopped`].
    pub fn update_message(
        &mut self,
        now: Instant,
        thread: &str,
        message: Message,
    ) -> Result<(), ThreadError> {
        self.edit(now, thread, false, |t| {
            let slot = t
                .messages
                .iter_mut()
                .find(|m| m.id == message.id)
                .ok_or_else(|| ThreadError::UnknownMessage {
                    id: message.id.clone(),
                })?;
            *slot = message;
            Ok(())
        })
    }

    /// Sets (or with `None` removes) a top-level field such as `title`, creating the thread if
    /// needed.
    ///
    /// # Errors
    /// [`ThreadError::ReservedField`] for `id`, `v` or `messages`, or [`ThreadError::Stopped`].
    pub fn set_field(
        &mut self,
        now: Instant,
        thread: &str,
        key: &str,
        value: Option<Value>,
    ) -> Result<(), ThreadError> {
        self.edit(now, thread, true, |t| {
            match value {
                Some(value) => {
                    t.fields.insert(key.into(), value);
                }
                None => {
                    t.fields.remove(key);
                }
            }
            Ok(())
        })
    }

    /// Replaces a thread's content with `thread` (its `v` is ignored), creating it if needed.
    ///
    /// # Errors
    /// [`ThreadError`] if `thread` is not valid, or [`ThreadError::Stopped`].
    pub fn put_thread(&mut self, now: Instant, thread: Thread) -> Result<(), ThreadError> {
        let id = thread.id.clone();
        self.edit(now, &id, true, |t| {
            t.messages = thread.messages;
            t.fields = thread.fields;
            Ok(())
        })
    }

    /// [`put_thread`](Self::put_thread) from JSON.
    ///
    /// # Errors
    /// [`ThreadError`] if `value` is not a valid thread, or [`ThreadError::Stopped`].
    pub fn put_value(&mut self, now: Instant, value: &Value) -> Result<(), ThreadError> {
        self.put_thread(now, Thread::from_value(value)?)
    }

    fn edit(
        &mut self,
        now: Instant,
        id: &str,
        create: bool,
        f: impl FnOnce(&mut Thread) -> Result<(), ThreadError>,
    ) -> Result<(), ThreadError> {
        let now = self.clock.observe(now);
        if self.stopped {
            return Err(ThreadError::Stopped);
        }
        let mut thread = match self.entries.get(id) {
            Some(entry) => entry.local.clone(),
            None if create && !id.is_empty() => Thread::new(id),
            None if create => return Err(ThreadError::MissingId),
            None => return Err(ThreadError::UnknownThread { id: id.into() }),
        };
        f(&mut thread)?;
        thread.validate()?;
        let entry = self.entries.entry(id.into()).or_insert_with(|| Entry {
            base: None,
            local: Thread::new(id),
            dirty: None,
            in_flight: false,
            stash: None,
        });
        if entry.local == thread {
            return Ok(());
        }
        entry.local = thread;
        self.mark_dirty(id);
        self.set_status(id, SyncStatus::Pending);
        self.try_send(now);
        Ok(())
    }

    /// A copy of a thread pulled from the server. Newer than the synced copy, it becomes the
    /// synced copy, and the view becomes it (no local changes) or the three-way merge (local
    /// changes, which stay queued). An older or equal version is ignored.
    pub fn apply_remote(&mut self, now: Instant, remote: Thread) {
        let now = self.clock.observe(now);
        if self.stopped {
            return;
        }
        let id = remote.id.clone();
        let Some(entry) = self.entries.get_mut(&id) else {
            self.entries.insert(
                id.clone(),
                Entry {
                    base: Some(remote.clone()),
                    local: remote,
                    dirty: None,
                    in_flight: false,
                    stash: None,
                },
            );
            self.set_status(&id, SyncStatus::Synced);
            self.outputs.push_back(PushOutput::Updated { id });
            return;
        };
        if entry.base.as_ref().is_some_and(|b| b.v >= remote.v) {
            return;
        }
        if entry.in_flight {
            if entry.stash.as_ref().is_none_or(|s| s.v < remote.v) {
                entry.stash = Some(remote);
            }
            return;
        }
        self.rebase(now, &id, remote);
    }

    /// Makes `remote` the synced copy of a thread that is not in flight, merging local changes.
    fn rebase(&mut self, now: Instant, id: &str, remote: Thread) {
        let Some(entry) = self.entries.get_mut(id) else {
            return;
        };
        let changed = if entry.dirty.is_none() {
            entry.local = remote.clone();
            true
        } else {
            let base = entry.base.clone().unwrap_or_else(|| Thread::new(id));
            let merged = self.merge.merge(&base, &entry.local, &remote);
            let changed = merged != entry.local;
            entry.local = Thread {
                v: remote.v,
                ..merged
            };
            changed
        };
        let synced = entry.local.same_content(&remote);
        entry.local.v = remote.v;
        entry.base = Some(remote);
        if synced {
            if let Some(seq) = entry.dirty.take() {
                self.queue.remove(&seq);
            }
            self.set_status(id, SyncStatus::Synced);
        }
        if changed {
            self.outputs
                .push_back(PushOutput::Updated { id: id.into() });
        }
        self.try_send(now);
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
        self.batch_limit = self.config.max_batch;
        self.outputs.push_back(PushOutput::Settled {
            id,
            items: flight.items.len(),
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
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        entry.in_flight = false;
        let stash = entry.stash.take();
        match result {
            ItemResult::Applied { v, .. } => {
                entry.base = Some(Thread { v, ..item.thread });
                entry.local.v = v;
                let status = if entry.dirty.is_some() {
                    SyncStatus::Pending
                } else {
                    SyncStatus::Synced
                };
                self.set_status(&id, status);
            }
            ItemResult::Conflict { thread, .. } => {
                let base = entry.base.clone().unwrap_or_else(|| Thread::new(&id));
                let merged = self.merge.merge(&base, &entry.local, &thread);
                let synced = merged.same_content(&thread);
                let changed = !merged.same_content(&entry.local);
                entry.local = Thread {
                    v: thread.v,
                    ..merged
                };
                entry.base = Some(thread);
                if synced {
                    if let Some(seq) = entry.dirty.take() {
                        self.queue.remove(&seq);
                    }
                    self.set_status(&id, SyncStatus::Synced);
                } else {
                    self.mark_dirty(&id);
                    self.set_status(&id, SyncStatus::Conflict);
                }
                if changed {
                    self.outputs
                        .push_back(PushOutput::Updated { id: id.clone() });
                }
            }
            ItemResult::Rejected { error, .. } => self.reject(&id, error),
        }
        if let Some(remote) = stash {
            self.apply_remote(now, remote);
        }
    }

    /// Rolls a thread back to its last synced copy and hands the refused copy back.
    fn reject(&mut self, id: &str, reason: String) {
        let Some(entry) = self.entries.get_mut(id) else {
            return;
        };
        if let Some(seq) = entry.dirty.take() {
            self.queue.remove(&seq);
        }
        entry.in_flight = false;
        let refused = entry.local.clone();
        let restored = entry.base.clone();
        match &restored {
            Some(base) => entry.local = base.clone(),
            None => {
                self.entries.remove(id);
            }
        }
        self.set_status(id, SyncStatus::Error);
        self.outputs
            .push_back(PushOutput::Updated { id: id.into() });
        self.outputs.push_back(PushOutput::Rejected(RejectedThread {
            id: id.into(),
            reason,
            refused,
            restored,
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
        match outcome {
            Outcome::Permanent(status) => {
                for id in &ids {
                    self.reject(id, format!("the push failed with status {status}"));
                }
                self.release(now, &ids);
                return;
            }
            Outcome::TooLarge if ids.len() == 1 => {
                self.reject(&ids[0], "too large for the server (413)".into());
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
        if outcome == Outcome::TooLarge {
            // Halve and go again at once: the size, not the server, was the trouble.
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
            if let Some(entry) = self.entries.get_mut(id) {
                entry.in_flight = false;
            }
            self.mark_dirty(id);
        }
    }

    /// Applies what was pulled while these threads were in flight.
    fn release(&mut self, now: Instant, ids: &[String]) {
        for id in ids {
            let stash = self.entries.get_mut(id).and_then(|e| e.stash.take());
            if let Some(remote) = stash {
                self.apply_remote(now, remote);
            }
        }
    }

    fn stop(&mut self, reason: StopReason) {
        self.stopped = true;
        self.window_at = None;
        self.retry_at = None;
        self.queue.clear();
        let mut unsynced = Vec::new();
        let ids: Vec<String> = self.entries.keys().cloned().collect();
        for id in ids {
            let Some(entry) = self.entries.get_mut(&id) else {
                continue;
            };
            if entry.dirty.take().is_some() || entry.in_flight {
                entry.in_flight = false;
                unsynced.push(entry.local.clone());
                self.set_status(&id, SyncStatus::Error);
            }
        }
        self.outputs
            .push_back(PushOutput::Stopped { reason, unsynced });
    }

    fn mark_dirty(&mut self, id: &str) {
        let Some(entry) = self.entries.get_mut(id) else {
            return;
        };
        if entry.dirty.is_none() {
            let seq = self.next_seq;
            self.next_seq += 1;
            entry.dirty = Some(seq);
            self.queue.insert(seq, id.into());
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
        if self.stopped || self.paused || self.queue.is_empty() {
            return;
        }
        let window_at = *self.window_at.get_or_insert(now + self.config.window);
        if self.in_flight.is_some() || self.retry_at.is_some() || window_at > now {
            return;
        }
        self.window_at = None;
        let mut items = Vec::new();
        while items.len() < self.batch_limit {
            let Some((_, id)) = self.queue.pop_first() else {
                break;
            };
            let Some(entry) = self.entries.get_mut(&id) else {
                continue;
            };
            entry.dirty = None;
            entry.in_flight = true;
            let base = entry.base.as_ref().map_or(0, |b| b.v);
            items.push(SyncItem {
                id: id.clone(),
                base,
                thread: Thread {
                    v: base,
                    ..entry.local.clone()
                },
            });
            self.set_status(&id, SyncStatus::Syncing);
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

    /// Fails a push past its deadline, ends the window or the backoff wait. Early or spurious
    /// calls do nothing.
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
        let idle = self.stopped || self.paused;
        let deadline = self.in_flight.as_ref().map(|f| f.deadline);
        let (retry, window) = if idle || self.in_flight.is_some() {
            (None, None)
        } else if self.retry_at.is_some() {
            (self.retry_at, None)
        } else {
            (None, self.window_at.filter(|_| !self.queue.is_empty()))
        };
        let wake = [
            (deadline, PushTimer::RequestDeadline),
            (retry, PushTimer::Backoff),
            (window, PushTimer::Window),
        ]
        .into_iter()
        .filter_map(|(at, reason)| at.map(|at| Wake::new(at, reason)))
        .min_by_key(|w| w.at);
        Poll::Timeout(wake)
    }

    /// The view of a thread.
    pub fn thread(&self, id: &str) -> Option<&Thread> {
        self.entries.get(id).map(|e| &e.local)
    }

    /// The last synced copy of a thread.
    pub fn synced(&self, id: &str) -> Option<&Thread> {
        self.entries.get(id).and_then(|e| e.base.as_ref())
    }

    /// Every thread's view, by id.
    pub fn threads(&self) -> impl Iterator<Item = &Thread> {
        self.entries.values().map(|e| &e.local)
    }

    /// Threads with changes the server does not hold yet (queued or in flight).
    pub fn pending(&self) -> usize {
        self.entries
            .values()
            .filter(|e| e.dirty.is_some() || e.in_flight)
            .count()
    }

    /// Threads queued to push (not in flight).
    pub fn queue_depth(&self) -> usize {
        self.queue.len()
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
