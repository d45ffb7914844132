//! One error set for every shim. A refused event always comes back inside the error, as the
//! bytes it was accepted as when it got that far (so nothing serde_json cannot read back is
//! lost), or as the event given when it was refused before being serialised.

use std::fmt;
use std::io;

use tether_core::batch::{Event, EventId, PreparedEvent};
use tether_core::session::{ConfigError, Status};
use tether_core::state;

/// Why a session could not be started.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// The session URL is not a usable URL.
    InvalidUrl {
        /// What is wrong with it (never the URL's credentials: they are refused).
        reason: String,
    },
    /// The scheme is neither `http` nor `https`.
    UnsupportedScheme {
        /// The scheme given.
        scheme: String,
    },
    /// The token is empty or has characters a header cannot carry (only visible ASCII).
    InvalidToken,
    /// The session configuration is out of bounds.
    Config(ConfigError),
    /// The runtime could not start the driver (e.g. no thread could be spawned).
    Spawn(io::Error),
    /// The durable outbox could not be opened or read.
    Outbox(crate::store::StoreError),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::InvalidUrl { reason } => write!(f, "invalid session URL: {reason}"),
            BuildError::UnsupportedScheme { scheme } => write!(
                f,
                "unsupported URL scheme `{scheme}`: only http and https are accepted"
            ),
            BuildError::InvalidToken => {
                f.write_str("invalid token: it must be non-empty visible ASCII")
            }
            BuildError::Config(e) => write!(f, "invalid session configuration: {e}"),
            BuildError::Spawn(e) => write!(f, "cannot start the driver: {e}"),
            BuildError::Outbox(e) => write!(f, "cannot start with the outbox: {e}"),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Config(e) => Some(e),
            BuildError::Spawn(e) => Some(e),
            BuildError::Outbox(e) => Some(e),
            _ => None,
        }
    }
}

/// An event handed back by a refused send: as given, or as the bytes it was serialised into.
#[derive(Clone, Debug, PartialEq)]
pub enum Refused {
    /// Refused before it was serialised (not an object, not serialisable).
    Given(Event),
    /// Serialised, uuid stamped: resend it as it is, or read its bytes.
    Prepared(PreparedEvent),
}

impl Refused {
    /// The payload's JSON bytes as they were (or would have been) sent.
    pub fn payload_bytes(&self) -> Vec<u8> {
        match self {
            Refused::Given(event) => serde_json::to_vec(event.payload()).unwrap_or_default(),
            Refused::Prepared(event) => event.payload_bytes().to_vec(),
        }
    }

    /// The payload parsed, `uuid` included once stamped.
    ///
    /// # Errors
    /// When serde_json cannot read the bytes back (e.g. nested deeper than it reads); the
    /// bytes are still in [`payload_bytes`](Self::payload_bytes).
    pub fn payload(&self) -> Result<serde_json::Value, serde_json::Error> {
        match self {
            Refused::Given(event) => Ok(event.payload().clone()),
            Refused::Prepared(event) => event.payload(),
        }
    }
}

/// Why a send was refused. The event is inside.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum SendError {
    /// The queue stayed full until the timeout.
    Timeout {
        /// The event.
        event: Refused,
    },
    /// The payload is not a JSON object.
    NotAnObject {
        /// The event.
        event: Refused,
    },
    /// The value cannot be expressed as JSON (e.g. a map with non-string keys).
    Unserializable {
        /// serde_json's message.
        message: String,
    },
    /// The event alone is larger than a batch may be.
    TooLarge {
        /// The event.
        event: Refused,
        /// Its size.
        bytes: usize,
        /// The batch limit.
        limit: usize,
    },
    /// The session is closing or has ended.
    Ended {
        /// The event.
        event: Refused,
        /// The session's status when it was refused.
        status: Status,
    },
    /// Refused for another reason the core gave.
    Refused {
        /// The event.
        event: Refused,
        /// Why.
        message: String,
    },
    /// The durable outbox's store is failing: new events are refused until a write succeeds
    /// again, rather than taken in with no way to keep them.
    StoreFailed {
        /// The event.
        event: Refused,
        /// The store's error.
        message: String,
    },
    /// The event was accepted and queued (it may still be delivered) but the write that was
    /// to make it durable failed: it is not safe across a crash.
    NotDurable {
        /// The id it was queued with.
        id: EventId,
        /// The store's error.
        message: String,
    },
}

impl SendError {
    /// The event, if the error carries one.
    pub fn event(&self) -> Option<&Refused> {
        match self {
            SendError::Timeout { event }
            | SendError::NotAnObject { event }
            | SendError::TooLarge { event, .. }
            | SendError::Ended { event, .. }
            | SendError::Refused { event, .. }
            | SendError::StoreFailed { event, .. } => Some(event),
            SendError::Unserializable { .. } | SendError::NotDurable { .. } => None,
        }
    }

    /// The event, consuming the error.
    pub fn into_event(self) -> Option<Refused> {
        match self {
            SendError::Timeout { event }
            | SendError::NotAnObject { event }
            | SendError::TooLarge { event, .. }
            | SendError::Ended { event, .. }
            | SendError::Refused { event, .. }
            | SendError::StoreFailed { event, .. } => Some(event),
            SendError::Unserializable { .. } | SendError::NotDurable { .. } => None,
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Timeout { .. } => {
                f.write_str("the event queue stayed full until the timeout")
            }
            SendError::NotAnObject { .. } => f.write_str("an event payload must be a JSON object"),
            SendError::Unserializable { message } => {
                write!(f, "the event cannot be serialised: {message}")
            }
            SendError::TooLarge { bytes, limit, .. } => write!(
                f,
                "an event of {bytes} bytes exceeds the batch limit of {limit} bytes"
            ),
            SendError::Ended { status, .. } => write!(f, "the session has ended: {status}"),
            SendError::Refused { message, .. } => write!(f, "event refused: {message}"),
            SendError::StoreFailed { message, .. } => {
                write!(f, "event refused: the outbox store is failing: {message}")
            }
            SendError::NotDurable { message, .. } => write!(
                f,
                "the event was queued but is not durable (the outbox write failed): {message}"
            ),
        }
    }
}

impl std::error::Error for SendError {}

/// A bulk send stopped early: what was queued, why it stopped, and what was not queued.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct BulkSendError {
    /// The ids of the events queued, in order.
    pub sent: Vec<EventId>,
    /// Why it stopped; the stopping event is inside.
    pub error: SendError,
    /// The events after the stopping one, not queued, in order.
    pub unsent: Vec<Event>,
}

impl fmt::Display for BulkSendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} events queued, then: {} ({} more not queued)",
            self.sent.len(),
            self.error,
            self.unsent.len()
        )
    }
}

impl std::error::Error for BulkSendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Why a state patch was refused.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum PatchError {
    /// The patch is invalid (not an object, sets `worker_epoch`, too large, ...).
    Invalid(state::Error),
    /// The session is closing or has ended.
    Ended(Status),
}

impl fmt::Display for PatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatchError::Invalid(e) => write!(f, "state patch refused: {e}"),
            PatchError::Ended(status) => write!(f, "the session has ended: {status}"),
        }
    }
}

impl std::error::Error for PatchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PatchError::Invalid(e) => Some(e),
            PatchError::Ended(_) => None,
        }
    }
}

/// Why a flush did not complete.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlushError {
    /// The timeout came first; the work goes on.
    TimedOut,
    /// The session ended before (or, for a flush asked for after the end, at) the flush.
    Ended(Status),
}

impl fmt::Display for FlushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlushError::TimedOut => f.write_str("the flush timed out"),
            FlushError::Ended(status) => write!(f, "the session has ended: {status}"),
        }
    }
}

impl std::error::Error for FlushError {}
