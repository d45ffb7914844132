//! The state uploader: keeps the worker document in sync through `PUT /worker` (docs/ARCHITECTURE.md
//! §State uploader, seed 001).
//!
//! At most one PUT is in flight. Patches given meanwhile coalesce lawfully (see
//! [`WorkerUpdate`](crate::patch::WorkerUpdate)) into one pending update, so
//! [`enqueue`](StateUploader::enqueue) never blocks and memory stays bounded by the document's
//! size, not by the number of patches. A coalesced update that needs two patches goes as two
//! PUTs, in order. Failures retry on the uploaders' backoff curve until success or
//! [`close`](StateUploader::close), absorbing patches that arrive during the wait.
//!
//! ```text
//!             enqueue                        Success (last stage)
//!   idle ───────────────▶ in flight ─────────────────────────────▶ idle (or next update)
//!                           │   ▲  │ Permanent: roll back, Output::Rejected
//!        Transient/Throttled│   │  └──────────────────────────────▶ idle (or next update)
//!        or request timeout ▼   │ Backoff timer (pending absorbed)
//!                          waiting
//!   any state ── close ──▶ closed (Output::Closed hands back everything unacknowledged)
//! ```
//!
//! The driver loop, with simulated time:
//!
//! ```
//! use serde_json::json;
//! use tether_core::state::{Output, Config, StateUploader};
//! use tether_core::{Instant, Outcome, Poll, Rng};
//!
//! let mut up = StateUploader::new(Config::default(), Rng::new(7));
//! let now = Instant::ZERO;
//! up.set_epoch(now, 3);
//! up.enqueue(now, json!({"worker_status": "running"})).unwrap();
//! loop {
//!     match up.poll_output() {
//!         Poll::Output(Output::Send { id, body }) => {
//!             assert_eq!(body, br#"{"worker_epoch":3,"worker_status":"running"}"#);
//!             // ... send it, then report what happened:
//!             up.handle_outcome(now, id, Outcome::Success);
//!         }
//!         Poll::Output(other) => panic!("unexpected {other:?}"),
//!         Poll::Timeout(wake) => {
//!             assert_eq!(wake, None); // idle: nothing scheduled
//!             break;
//!         }
//!     }
//! }
//! assert_eq!(up.view(), &json!({"worker_status": "running"}));
//! ```

mod config;
mod error;
mod machine;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;
use core::time::Duration;

use serde_json::{Map, Value};

pub use config::Config;
pub use error::Error;
pub use machine::StateUploader;

use crate::drive::FlushId;
use crate::time::Instant;

/// The key every body carries and no patch may set.
pub const EPOCH_KEY: &str = "worker_epoch";

/// Identifies one PUT, so a late or duplicate outcome can be recognised and ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PutId(pub u64);

impl fmt::Display for PutId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "put#{}", self.0)
    }
}

/// What the uploader asks its driver to do, or reports.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Output {
    /// Send `PUT /worker` with this body, then call
    /// [`handle_outcome`](StateUploader::handle_outcome) with `id`.
    Send {
        /// The request's identity.
        id: PutId,
        /// Compact JSON: the patch plus `"worker_epoch"`.
        body: Vec<u8>,
    },
    /// The request deadline passed: abandon this PUT. Its late outcome will be ignored, and the
    /// update is retried.
    Cancel {
        /// The abandoned PUT.
        id: PutId,
    },
    /// A PUT failed; the update (with anything given meanwhile) is retried at `at`.
    Retrying {
        /// Retries since the last success, from 1.
        attempt: u32,
        /// How long the wait is.
        delay: Duration,
        /// When the retry goes.
        at: Instant,
    },
    /// The server refused an update for good; the view was rolled back.
    Rejected(Rejection),
    /// Everything given before the [`flush`](StateUploader::flush) landed, was rejected, or
    /// was handed back at close.
    FlushDone(FlushId),
    /// The flush's deadline came first; the work goes on.
    FlushTimedOut(FlushId),
    /// The uploader closed; this is the last output.
    Closed(Unacknowledged),
}

/// An update the server refused with a permanent status.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    /// The refused PUT.
    pub id: PutId,
    /// The HTTP status.
    pub status: u16,
    /// The sequence numbers (from [`StateUploader::enqueue`]) of the patches coalesced into it.
    pub patches: Range<u64>,
    /// The patches of the update that were not applied, in order.
    pub update: Vec<Map<String, Value>>,
    /// When the update was two PUTs and the first (the resets) had already been acknowledged,
    /// those resets: the server holds them although the rest was refused.
    pub applied_resets: Option<Map<String, Value>>,
}

/// Everything not acknowledged when the uploader closed, handed back so nothing is lost.
#[derive(Clone, Debug, PartialEq)]
pub struct Unacknowledged {
    /// The sequence numbers of the patches these cover.
    pub patches: Range<u64>,
    /// Patches that, applied in order to the acknowledged document, give the optimistic view.
    /// Empty when everything had landed.
    pub update: Vec<Map<String, Value>>,
    /// A PUT that was in flight: it may or may not have been applied by the server.
    pub in_flight: Option<PutId>,
    /// When the unacknowledged update was two PUTs and the first (the resets) had been
    /// acknowledged: the server holds those resets, and `update` does not repeat them.
    pub applied_resets: Option<Map<String, Value>>,
}

/// Why the uploader wants to wake up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    /// The backoff wait before a retry ends.
    Backoff,
    /// The in-flight PUT's request deadline.
    RequestDeadline,
    /// A flush's deadline.
    FlushDeadline,
}

/// What the uploader has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Patches accepted by `enqueue`.
    pub patches: u64,
    /// PUTs emitted, retries included.
    pub puts_sent: u64,
    /// PUTs the server acknowledged.
    pub puts_acknowledged: u64,
    /// PUTs emitted to retry after a failure.
    pub retries: u64,
    /// Updates rejected with a permanent status.
    pub rejections: u64,
    /// Patches never sent because they changed nothing.
    pub skipped_noop: u64,
    /// PUTs abandoned at their request deadline.
    pub timeouts: u64,
}
