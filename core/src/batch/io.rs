//! What goes in and out of the drainer: inputs, outcomes, outputs, reasons and timers.

use alloc::vec::Vec;
use core::fmt;

use super::event::{EventId, Undelivered};
use crate::drive::FlushId;

/// Names one send of a batch. A retry is a new send with a new id, so an outcome for an
/// older send is recognised as stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BatchId(pub u64);

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "batch#{}", self.0)
    }
}

/// Why a whole session stopped, for [`abandon`](super::BatchDrainer::abandon).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Abandon {
    /// Another worker took over the session (409).
    Superseded,
    /// The session gave up (auth failures, unknown session, ...).
    GivenUp,
}

/// Why events were handed back instead of delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The server refused the event alone as too large (413 on a one-event batch).
    TooLarge,
    /// The server refused the batch permanently.
    Rejected {
        /// The HTTP status.
        status: u16,
    },
    /// `max_consecutive_failures` transient failures in a row.
    TooManyFailures {
        /// The failures counted.
        failures: u32,
    },
    /// A newer event with the same replace key took this one's place.
    Replaced {
        /// The event that took its place.
        by: EventId,
    },
    /// The queue was full under [`Overflow::DropOldest`](super::Overflow::DropOldest).
    DroppedOldest,
    /// The queue was full and the new event was dropped (under
    /// [`Overflow::DropNewest`](super::Overflow::DropNewest), or `DropOldest` with no unsent
    /// event left to drop).
    DroppedNewest,
    /// The close deadline passed first.
    Closed,
    /// The session was superseded.
    Superseded,
    /// The session gave up.
    GivenUp,
}

impl From<Abandon> for Reason {
    fn from(a: Abandon) -> Self {
        match a {
            Abandon::Superseded => Reason::Superseded,
            Abandon::GivenUp => Reason::GivenUp,
        }
    }
}

impl Reason {
    /// A dead letter: the server (or the retry limit) refused the event.
    pub fn is_dead_letter(&self) -> bool {
        matches!(
            self,
            Reason::TooLarge | Reason::Rejected { .. } | Reason::TooManyFailures { .. }
        )
    }

    /// A drop by the overflow policy.
    pub fn is_drop(&self) -> bool {
        matches!(self, Reason::DroppedOldest | Reason::DroppedNewest)
    }
}

/// What the drainer asks its caller to do or tells it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send this body and report the outcome with
    /// [`handle_outcome`](super::BatchDrainer::handle_outcome). One batch is in flight at a time.
    Send {
        /// Quote it in the outcome.
        id: BatchId,
        /// The request body; empty under [`BodyMode::Deferred`](super::BodyMode::Deferred).
        body: Vec<u8>,
        /// Events in the batch.
        items: usize,
        /// Bytes of event JSON in the batch (the body less envelope and commas).
        bytes: usize,
    },
    /// These events reached the server.
    Delivered {
        /// The send that delivered them.
        batch: BatchId,
        /// The events, in order.
        events: Vec<EventId>,
    },
    /// These events will not be delivered: dead letters, drops, replaced events, or what was
    /// left at close or abandon.
    HandedBack {
        /// Why.
        reason: Reason,
        /// The events, in queue order.
        events: Vec<Undelivered>,
    },
    /// Every event enqueued before the flush was delivered or handed back.
    FlushDone(FlushId),
    /// The flush's deadline passed first; the events go on being sent.
    FlushTimedOut(FlushId),
    /// The drainer is closed (after [`close`](super::BatchDrainer::close) or
    /// [`abandon`](super::BatchDrainer::abandon)). Only flush reports can follow: a flush asked
    /// for afterwards completes at once.
    Closed,
}

/// Why the drainer wants to wake up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Timer {
    /// The oldest unsent event's linger window ends.
    Linger,
    /// The backoff after a failed send ends.
    Backoff,
    /// A flush's deadline.
    FlushDeadline,
    /// The close deadline.
    CloseDeadline,
}
