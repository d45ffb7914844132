//! Typed errors of the shim's calls. Refused events always come back inside the error.

use std::fmt;
use std::io;

use tether_core::batch::{Event, EventId};
use tether_core::session::{ConfigError, Status};
use tether_core::state::StateError;

/// Why [`Builder::start`](crate::Builder::start) refused to start a session.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// The session URL could not be used. The URL itself is not repeated here: it could hold
    /// something secret.
    InvalidUrl {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Only `http` and `https` session URLs are accepted.
    UnsupportedScheme {
        /// The scheme that was given.
        scheme: String,
    },
    /// The core refused the configuration.
    Config(ConfigError),
    /// The driver thread could not be spawned.
    Spawn(io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::InvalidUrl { reason } => write!(f, "invalid session URL: {reason}"),
            StartError::UnsupportedScheme { scheme } => write!(
                f,
                "unsupported URL scheme `{scheme}`: only http and https are accepted"
            ),
            StartError::Config(e) => write!(f, "invalid session configuration: {e}"),
            StartError::Spawn(e) => write!(f, "cannot spawn the driver thread: {e}"),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Config(e) => Some(e),
            StartError::Spawn(e) => Some(e),
            _ => None,
        }
    }
}

/// Why an event (or a delivery acknowledgement) was not queued. The event is inside, `uuid`
/// stamped if the core had already stamped one, so it can be sent again without duplicates.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum SendError {
    /// The queue stayed full until the timeout passed.
    Timeout {
        /// The event.
        event: Event,
    },
    /// The payload is not a JSON object.
    NotAnObject {
        /// The event.
        event: Event,
    },
    /// The event alone is larger than a batch may be, so it could never be sent.
    TooLarge {
        /// The event.
        event: Event,
        /// Its size on the wire.
        bytes: usize,
        /// The batch limit.
        limit: usize,
    },
    /// The session has ended (closed, superseded or given up).
    Ended {
        /// The event.
        event: Event,
        /// The session's terminal status.
        status: Status,
    },
    /// Another refusal of the core, described.
    Refused {
        /// The event.
        event: Event,
        /// The core's description.
        message: String,
    },
}

impl SendError {
    /// The event that was not queued.
    pub fn event(&self) -> &Event {
        match self {
            SendError::Timeout { event }
            | SendError::NotAnObject { event }
            | SendError::TooLarge { event, .. }
            | SendError::Ended { event, .. }
            | SendError::Refused { event, .. } => event,
        }
    }

    /// The event that was not queued, by value.
    pub fn into_event(self) -> Event {
        match self {
            SendError::Timeout { event }
            | SendError::NotAnObject { event }
            | SendError::TooLarge { event, .. }
            | SendError::Ended { event, .. }
            | SendError::Refused { event, .. } => event,
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
            SendError::TooLarge { bytes, limit, .. } => write!(
                f,
                "an event of {bytes} bytes exceeds the batch limit of {limit} bytes"
            ),
            SendError::Ended { status, .. } => write!(f, "the session has ended: {status}"),
            SendError::Refused { message, .. } => write!(f, "event refused: {message}"),
        }
    }
}

impl std::error::Error for SendError {}

/// Why [`send_events`](crate::Tether::send_events) stopped before queuing every event.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct BulkSendError {
    /// The ids of the events queued before it stopped, in order.
    pub sent: Vec<EventId>,
    /// Why it stopped, with the event that was not queued.
    pub error: SendError,
    /// The events after that one, not queued, in order.
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

/// Why a state patch was refused. Nothing was queued.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum PatchError {
    /// The patch is not acceptable (not an object, sets `worker_epoch`, too large).
    Invalid(StateError),
    /// The session has ended.
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

impl std::error::Error for PatchError {}

/// Why a [`flush`](crate::Tether::flush) did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlushError {
    /// The timeout passed first; the work goes on.
    TimedOut,
    /// The session ended; undelivered events will be in the close report.
    Ended(Status),
}

impl fmt::Display for FlushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlushError::TimedOut => f.write_str("flush timed out"),
            FlushError::Ended(status) => write!(f, "the session has ended: {status}"),
        }
    }
}

impl std::error::Error for FlushError {}
