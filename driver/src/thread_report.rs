//! What thread sync answers its caller: a refused start, refused edits, flush errors, live
//! reports and the close report. A leaf: thread sync makes them, the handle returns them.

use std::fmt;

use tether_core::classify::Outcome;
// `shared_threads` is `tether_core::thread`, aliased: CI greps the driver for `thread::` paths.
use shared_threads::{OfflineReason, RejectedThread, SlowSync, StopReason, Thread};
use tether_core::thread as shared_threads;

/// Why thread sync could not be started.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ThreadStartError {
    /// The configuration is refused.
    Config(shared_threads::ConfigError),
    /// Thread sync already runs on this session; use its handle (it is `Clone`).
    AlreadyStarted,
    /// The session has ended (or is closing).
    Ended,
}

impl std::fmt::Display for ThreadStartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ThreadStartError::Config(e) => write!(f, "invalid thread sync configuration: {e}"),
            ThreadStartError::AlreadyStarted => f.write_str("thread sync already runs"),
            ThreadStartError::Ended => f.write_str("the session has ended"),
        }
    }
}

impl std::error::Error for ThreadStartError {}

/// Why an edit was refused. Nothing changed then.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ThreadCallError {
    /// The thread or message is malformed, or names a thread or message this replica does
    /// not hold.
    Invalid(shared_threads::Error),
    /// Thread sync is closing or has ended.
    Closed,
    /// Thread sync stopped for good (superseded, or the session is unknown).
    Stopped(Option<StopReason>),
}

impl fmt::Display for ThreadCallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThreadCallError::Invalid(e) => write!(f, "refused: {e}"),
            ThreadCallError::Closed => f.write_str("thread sync is closed"),
            ThreadCallError::Stopped(Some(reason)) => write!(f, "thread sync stopped: {reason:?}"),
            ThreadCallError::Stopped(None) => f.write_str("thread sync stopped"),
        }
    }
}

impl std::error::Error for ThreadCallError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ThreadCallError::Invalid(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a thread flush did not complete.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ThreadFlushError {
    /// The timeout passed first (e.g. offline: edits stay queued).
    TimedOut,
    /// Thread sync closed or ended first.
    Closed,
    /// Thread sync stopped for good.
    Stopped(StopReason),
}

impl fmt::Display for ThreadFlushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThreadFlushError::TimedOut => f.write_str("thread flush timed out"),
            ThreadFlushError::Closed => f.write_str("thread sync closed before the flush"),
            ThreadFlushError::Stopped(reason) => write!(f, "thread sync stopped: {reason:?}"),
        }
    }
}

impl std::error::Error for ThreadFlushError {}

/// What thread sync reports as it goes.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ThreadReport {
    /// The server refused a thread: it was rolled back; the refused copy and the reason.
    Rejected(RejectedThread),
    /// A thread's view changed by a remote copy, a merge or a rollback.
    Updated {
        /// The thread.
        id: String,
    },
    /// A push failed as a whole and will be retried.
    Retrying {
        /// Retries since the last success, from 1.
        attempt: u32,
        /// What failed.
        outcome: Outcome,
    },
    /// A merge dropped a change one side made (a local one if [`Override::local_lost`](shared_threads::Override::local_lost)).
    Overridden(shared_threads::Override),
    /// The server sent an invalid thread: skipped; the others went on.
    InvalidThread(shared_threads::InvalidThread),
    /// A failure was pinned on a thread: its pushes wait (60 s by default); the others go on.
    Held {
        /// The thread.
        id: String,
        /// Failures in a row pinned on it.
        failures: u32,
    },
    /// Offline: only the probe runs; edits queue.
    Offline(OfflineReason),
    /// Online again.
    Online,
    /// A push slower than the recent 95th percentile.
    SlowSync(SlowSync),
    /// The caller paused syncing ([`ThreadHandle::pause`](crate::ThreadHandle::pause)): no
    /// request goes; edits queue.
    Paused,
    /// The caller resumed syncing ([`ThreadHandle::resume`](crate::ThreadHandle::resume)).
    Resumed,
    /// Stopped for good; the threads the server does not hold, handed back.
    Stopped {
        /// Why.
        reason: StopReason,
        /// Local copies the server does not hold.
        unsynced: Vec<Thread>,
    },
    /// Closed (or the session ended) with these threads not synced: handed back.
    HandedBack {
        /// Local copies the server may not hold.
        unsynced: Vec<Thread>,
    },
}

/// How thread sync ended.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct ThreadCloseReport {
    /// Every thread's view at the end.
    pub threads: Vec<Thread>,
    /// Threads not synced at the end, handed back.
    pub unsynced: Vec<Thread>,
    /// How many threads the server refused. Each was handed to the caller live, as a
    /// [`ThreadReport::Rejected`] with the refused copy and the reason, and is not kept: a
    /// session that runs for days holds no list of them.
    pub rejected: u64,
    /// Set if thread sync stopped for good before.
    pub stopped: Option<StopReason>,
}

impl ThreadCloseReport {
    /// Whether everything reached the server: nothing unsynced, rejected or stopped.
    pub fn all_synced(&self) -> bool {
        self.unsynced.is_empty() && self.rejected == 0 && self.stopped.is_none()
    }
}
