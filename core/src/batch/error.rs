//! Errors returned at once for bad input. A rejected event is always inside the error.

use alloc::string::String;
use core::fmt;

use super::event::{Event, PreparedEvent};

/// Why an enqueue was refused. Every variant that had an event carries it back.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// The value cannot be expressed as JSON (e.g. a map with non-string keys).
    Unserializable {
        /// serde_json's message.
        message: String,
    },
    /// The payload is not a JSON object.
    NotAnObject {
        /// The event, as given.
        event: Event,
    },
    /// The event alone is larger than a batch may be, so it could never be sent.
    TooLarge {
        /// The event, serialised.
        event: PreparedEvent,
        /// Its size.
        bytes: usize,
        /// `max_batch_bytes`.
        limit: usize,
    },
    /// The queue is at a bound and the policy is [`Overflow::Reject`](super::Overflow::Reject).
    /// Wait for capacity (see [`BatchDrainer::depth`](super::BatchDrainer::depth)) and enqueue
    /// the event again.
    QueueFull {
        /// The event, serialised; enqueue it again with
        /// [`enqueue_prepared`](super::BatchDrainer::enqueue_prepared).
        event: PreparedEvent,
    },
    /// The drainer was closed or abandoned.
    Closed {
        /// The event, serialised.
        event: PreparedEvent,
    },
    /// The event was prepared for another envelope.
    WrongEnvelope {
        /// The event, as prepared.
        event: PreparedEvent,
    },
    /// A keyed event had to be re-stamped with the uuid of the event it replaces, but its
    /// payload cannot be read back (e.g. it nests deeper than serde_json reads).
    Unreadable {
        /// serde_json's message.
        message: String,
        /// The event, as prepared: its bytes are intact.
        event: PreparedEvent,
    },
}

impl Error {
    /// The serialised event carried back, if the error has one.
    pub fn into_prepared(self) -> Option<PreparedEvent> {
        match self {
            Error::TooLarge { event, .. }
            | Error::QueueFull { event }
            | Error::Closed { event }
            | Error::WrongEnvelope { event }
            | Error::Unreadable { event, .. } => Some(event),
            Error::Unserializable { .. } | Error::NotAnObject { .. } => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unserializable { message } => {
                write!(f, "event cannot be serialised: {message}")
            }
            Error::NotAnObject { .. } => f.write_str("event payload is not a JSON object"),
            Error::TooLarge { bytes, limit, .. } => {
                write!(
                    f,
                    "event of {bytes} bytes exceeds the batch limit of {limit} bytes"
                )
            }
            Error::QueueFull { .. } => f.write_str("event queue is full"),
            Error::Closed { .. } => f.write_str("event drainer is closed"),
            Error::WrongEnvelope { .. } => f.write_str("event was prepared for another envelope"),
            Error::Unreadable { message, .. } => {
                write!(
                    f,
                    "event payload cannot be read back to re-stamp its uuid: {message}"
                )
            }
        }
    }
}

impl core::error::Error for Error {}
