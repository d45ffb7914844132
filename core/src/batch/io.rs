//! What goes in and out of the drainer: inputs, outcomes, outputs, reasons and timers.

use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use super::event::{Event, EventId, PreparedEvent, Undelivered};
use crate::time::Instant;

/// Names one send of a batch. A retry is a new send with a new id, so an outcome for an
/// older send is recognised as stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BatchId(pub u64);

/// Names one [`flush`](super::BatchDrainer::flush).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlushId(pub u64);

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "batch#{}", self.0)
    }
}

impl fmt::Display for FlushId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "flush#{}", self.0)
    }
}

/// How a send went, as the caller's response table classified it (PROTOCOL.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BatchOutcome {
    /// 2xx: every event in the batch is delivered.
    Delivered,
    /// Worth retrying after the backoff (5xx, timeout, connection error, ...).
    Transient,
    /// Worth retrying after the server's hint (429/503 with `Retry-After`).
    Throttled {
        /// The hint, clamped by the backoff policy.
        retry_after: Duration,
    },
    /// 413: split the batch in half and retry; a single event becomes a dead letter.
    TooLarge,
    /// Retrying cannot help: the batch becomes dead letters.
    Permanent {
        /// The HTTP status, for the dead letters' reason.
        status: u16,
    },
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
    SendBatch {
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
    FlushDone {
        /// The flush.
        flush: FlushId,
    },
    /// The flush's deadline passed first.
    FlushTimedOut {
        /// The flush.
        flush: FlushId,
        /// Events enqueued before the flush still held.
        remaining: usize,
    },
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

/// The inputs of the [`Machine`](crate::Machine) interface; each maps to a typed method.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Input {
    /// [`enqueue`](super::BatchDrainer::enqueue).
    Enqueue(Event),
    /// [`enqueue_prepared`](super::BatchDrainer::enqueue_prepared).
    EnqueuePrepared(PreparedEvent),
    /// [`set_epoch`](super::BatchDrainer::set_epoch).
    SetEpoch(u64),
    /// [`handle_outcome`](super::BatchDrainer::handle_outcome).
    Outcome {
        /// The send.
        batch: BatchId,
        /// How it went.
        outcome: BatchOutcome,
    },
    /// [`flush`](super::BatchDrainer::flush).
    Flush {
        /// When to give up waiting.
        deadline: Instant,
    },
    /// [`close`](super::BatchDrainer::close).
    Close {
        /// When to hand back what is left.
        deadline: Instant,
    },
    /// [`abandon`](super::BatchDrainer::abandon).
    Abandon(Abandon),
}
