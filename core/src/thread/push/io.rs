//! What the [`PushOrchestrator`](super::PushOrchestrator) is configured with, asks for and
//! reports: its settings, ids, outputs and timers.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use crate::backoff::BackoffPolicy;
use crate::classify::Outcome;
use crate::thread::merge::Override;
use crate::thread::model::Thread;
use crate::thread::replica::RejectedThread;
use crate::thread::status::StatusChange;
use crate::thread::wire::{InvalidThread, SyncItem};
use crate::time::Instant;

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
    /// How long a thread waits after a failure pinned on it (seed 002: 60 s); the others go on.
    pub thread_hold: Duration,
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
            thread_hold: Duration::from_secs(60),
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
    /// [`sync_body`](crate::thread::wire::sync_body)) and report with
    /// [`handle_results`](super::PushOrchestrator::handle_results) or
    /// [`handle_failure`](super::PushOrchestrator::handle_failure).
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
    /// The merge policy decided a change both sides made: one side's change was dropped.
    Overridden(Override),
    /// The server's copy of a thread (in a conflict) is not valid: the local changes wait,
    /// held.
    Invalid(InvalidThread),
    /// A failure was pinned on this thread: it waits until `until`; the others go on.
    Held {
        /// The thread.
        id: String,
        /// Failures in a row pinned on it.
        failures: u32,
        /// When it may go again.
        until: Instant,
    },
    /// A push was answered item by item.
    Settled {
        /// The push.
        id: PushId,
        /// How many threads it carried.
        items: usize,
        /// How many of them came back as conflicts.
        conflicts: usize,
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
    /// A held thread may go again.
    Hold,
}
