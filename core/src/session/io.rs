//! What goes in and out of the session: inputs, outputs, timers and errors.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde_json::{Map, Value};

use super::status::Status;
use super::wire::{Endpoint, Request, RequestId};
use crate::batch::{self, EventId};
use crate::drive::FlushId;
use crate::heartbeat;
use crate::state;

/// The three event streams a session uploads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stream {
    /// `/worker/events`
    Events,
    /// `/worker/internal-events`
    InternalEvents,
    /// `/worker/events/delivery`
    Delivery,
}

impl Stream {
    /// Every stream.
    pub const ALL: [Stream; 3] = [Stream::Events, Stream::InternalEvents, Stream::Delivery];

    /// The endpoint that uploads this stream.
    pub const fn endpoint(self) -> Endpoint {
        match self {
            Stream::Events => Endpoint::Events,
            Stream::InternalEvents => Endpoint::InternalEvents,
            Stream::Delivery => Endpoint::Delivery,
        }
    }

    /// A short name for traces and reports.
    pub const fn name(self) -> &'static str {
        match self {
            Stream::Events => "events",
            Stream::InternalEvents => "internal-events",
            Stream::Delivery => "delivery",
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The status of a delivery acknowledgement (docs/PROTOCOL.md, `/worker/events/delivery`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// The worker received the event.
    Received,
    /// The worker is processing it.
    Processing,
    /// The worker is done with it.
    Processed,
}

impl DeliveryStatus {
    /// The value on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Received => "received",
            DeliveryStatus::Processing => "processing",
            DeliveryStatus::Processed => "processed",
        }
    }
}

/// What the session asks its driver to do, or reports.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Output {
    /// Perform this request and report its response (or transport error) by its id.
    Send(Request),
    /// Abort this request: its deadline passed and the core already failed it. A late response
    /// to it is ignored.
    Cancel(RequestId),
    /// The status changed.
    Status(Status),
    /// These events reached the server.
    Delivered {
        /// Their stream.
        stream: Stream,
        /// The ids their enqueue returned, in order.
        events: Vec<EventId>,
    },
    /// These events will never be delivered; they are the caller's again.
    HandedBack {
        /// Their stream.
        stream: Stream,
        /// Why.
        reason: batch::Reason,
        /// The events, payloads and uuids included, in order.
        events: Vec<batch::Undelivered>,
    },
    /// The server refused a state update for good; the optimistic view was rolled back.
    StateRejected(state::Rejection),
    /// State patches not acknowledged when the session ended, handed back.
    StateUnacknowledged(state::Unacknowledged),
    /// Everything given before the flush was delivered or handed back.
    FlushDone(FlushId),
    /// The flush's deadline came first.
    FlushTimedOut(FlushId),
    /// Deltas merged by [`Session::send_delta`](super::Session::send_delta) that the events
    /// uploader refused when their window ended (e.g. its queue was full): they are the
    /// caller's again, inside the error.
    DeltaHandedBack {
        /// Their key.
        key: String,
        /// Why, with the merged event.
        error: batch::Error,
    },
    /// With an [outbox](super::SessionConfig::outbox): the session accepted this event; keep
    /// it durably until [`Output::Forget`] names it. It comes before any output that settles
    /// the event. After a restart, give it back with
    /// [`Session::restore`](super::Session::restore).
    Persist {
        /// Its stream.
        stream: Stream,
        /// The id its enqueue returned.
        id: EventId,
        /// The event, uuid stamped, as it is sent.
        event: batch::PreparedEvent,
    },
    /// With an outbox: these events were delivered, or handed back with a
    /// [`RecordFate::Forgotten`](super::RecordFate::Forgotten) reason (the output just before
    /// said which); drop them from the outbox. An id that was never persisted is ignored.
    /// Events handed back for any other reason are kept: see [`RecordFate`](super::RecordFate).
    Forget {
        /// Their stream.
        stream: Stream,
        /// Their ids.
        events: Vec<EventId>,
    },
    /// With an outbox: the server refused these events for good (the
    /// [`Output::HandedBack`] just before): keep their records but mark them dead, so that no
    /// later run sends them again and they stay until the caller discards them.
    Dead {
        /// Their stream.
        stream: Stream,
        /// Their ids.
        events: Vec<EventId>,
    },
    /// With an outbox: the state patches not acknowledged yet, in order, replacing whatever was
    /// kept before; empty once everything landed. Patches handed back when the session ended
    /// stay kept for the next run. After a restart, give
    /// them again with [`Session::patch_state`](super::Session::patch_state).
    PersistState(Vec<Map<String, Value>>),
}

/// Why the session wants to wake up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Timer {
    /// The wait before the next connect attempt.
    Connect,
    /// A request's deadline.
    RequestDeadline,
    /// The heartbeat's timer.
    Heartbeat(heartbeat::Timer),
    /// An uploader's timer.
    Uploader(Stream, batch::Timer),
    /// The state uploader's timer.
    State(state::Timer),
    /// A flush's deadline.
    FlushDeadline,
    /// The close deadline.
    CloseDeadline,
    /// A retry waits for the retry budget.
    RetryBudget,
    /// A run of deltas' window ends.
    DeltaWindow,
}

/// A call the session refused. Events and patches come back inside.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum SessionError {
    /// An event was refused; the uploader's error holds it.
    Enqueue {
        /// The stream it was for.
        stream: Stream,
        /// Why, with the event.
        error: batch::Error,
    },
    /// A state patch was refused.
    State(state::Error),
    /// The session already ended (a terminal status was emitted).
    Ended(Status),
    /// The session is closing: it takes no new state patches.
    Closing,
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::Enqueue { stream, error } => write!(f, "{stream}: {error}"),
            SessionError::State(e) => write!(f, "state: {e}"),
            SessionError::Ended(status) => write!(f, "the session has ended: {status}"),
            SessionError::Closing => f.write_str("the session is closing"),
        }
    }
}

impl core::error::Error for SessionError {}

/// Why [`Session::reconnect`](super::Session::reconnect) refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReconnectError {
    /// The session ended: superseded, closed, or given up without
    /// [`OnGiveUp::Hold`](super::OnGiveUp::Hold). Terminal; nothing can follow.
    Ended(Status),
    /// The session has not given up (it is connecting, connected or retrying): there is
    /// nothing to reconnect.
    NotHolding(Status),
}

impl fmt::Display for ReconnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReconnectError::Ended(status) => {
                write!(f, "the session has ended and cannot reconnect: {status}")
            }
            ReconnectError::NotHolding(status) => {
                write!(
                    f,
                    "the session has not given up, nothing to reconnect: {status}"
                )
            }
        }
    }
}

impl core::error::Error for ReconnectError {}
