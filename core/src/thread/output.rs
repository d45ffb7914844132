//! What [`ThreadSync`](super::ThreadSync) is configured with, and what it asks for and
//! reports: its requests, outputs and timers.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use super::merge::Override;
use super::model::Thread;
use super::network::{NetworkConfig, NetworkTimer, OfflineReason};
use super::poller::{PollerConfig, PollerTimer};
use super::push::{PushConfig, PushTimer, RejectedThread, StopReason};
use super::status::{PerfConfig, SlowSync, StatusChange};
use super::wire::{Endpoint, InvalidThread};
use crate::classify::Outcome;
use crate::time::Instant;

/// Everything [`ThreadSync`](super::ThreadSync) is configured with.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
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

impl Config {
    /// The defaults, for this client.
    pub fn new(client_id: impl Into<String>) -> Self {
        Config {
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

/// A configuration [`ThreadSync`](super::ThreadSync) refuses.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `client_id` is empty.
    EmptyClientId,
    /// `pull_limit` is 0.
    ZeroPullLimit,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::EmptyClientId => f.write_str("the client id must not be empty"),
            ConfigError::ZeroPullLimit => f.write_str("the pull limit must be at least 1"),
        }
    }
}

impl core::error::Error for ConfigError {}

pub use crate::drive::RequestId;

/// A request to carry out: method and path from `endpoint`, the query in `path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Quote it when reporting the answer.
    pub id: RequestId,
    /// Which endpoint.
    pub endpoint: Endpoint,
    /// The path relative to the session URL, with its query (`/threads?since=0&limit=100`).
    pub path: String,
    /// The JSON body; empty for the two `GET`s.
    pub body: Vec<u8>,
    /// The core fails the request at this instant (and emits [`Output::Cancel`]).
    pub deadline: Instant,
}

/// What [`ThreadSync`](super::ThreadSync) asks for, or reports.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Output {
    /// Send this request; report with [`ThreadSync::handle_response`](super::ThreadSync::handle_response) or
    /// [`ThreadSync::handle_transport_error`](super::ThreadSync::handle_transport_error).
    Send(Request),
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
    /// A merge decided a change both sides made: one side's change was dropped. Every local
    /// change a merge drops is reported so ([`Override::local_lost`]).
    Overridden(Override),
    /// The server sent a thread that is not valid (in a pull page, or in a conflict): it was
    /// skipped; the rest went on, and the pull's `since` advanced past it.
    InvalidThread(InvalidThread),
    /// A failure was pinned on a thread: its pushes wait until `until`; the others go on.
    Held {
        /// The thread.
        id: String,
        /// Failures in a row pinned on it.
        failures: u32,
        /// When it may go again.
        until: Instant,
    },
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
    /// The threads with changes the server does not hold yet (queued or in flight), by id,
    /// whenever that set changed (seed 002's `observePendingItems`): a stream a driver can fan
    /// out as it is. Empty once everything is synced. Never repeated without a change.
    Pending(Vec<String>),
    /// The caller paused syncing ([`ThreadSync::pause`](super::ThreadSync::pause)): no
    /// request goes; edits queue.
    Paused,
    /// The caller resumed syncing ([`ThreadSync::resume`](super::ThreadSync::resume)).
    Resumed,
    /// Stopped for good (superseded, or the session is unknown); the unsynced threads.
    Stopped {
        /// Why.
        reason: StopReason,
        /// Local copies the server does not hold.
        unsynced: Vec<Thread>,
    },
}

/// Why [`ThreadSync`](super::ThreadSync) wants to wake, by sub-machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    /// The push orchestrator's window, backoff or request deadline.
    Push(PushTimer),
    /// The pull schedule.
    Poll(PollerTimer),
    /// The probe or its deadline.
    Network(NetworkTimer),
    /// The pull in flight times out.
    PullDeadline,
}
