//! Typed errors. Caller misuse is returned at once; a refused event always comes back inside.

use std::fmt;

use tether_core::batch::{EnqueueError, Event};
use tether_core::session::{ConfigError, Status};
use tether_core::state::StateError;

/// Why [`Builder::start`](crate::Builder::start) refused.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum BuildError {
    /// The session URL could not be used.
    InvalidUrl {
        /// What is wrong with it.
        reason: String,
    },
    /// Only `http` and `https` are accepted.
    UnsupportedScheme {
        /// The scheme given.
        scheme: String,
    },
    /// The token is empty or has characters a header cannot carry (only visible ASCII).
    InvalidToken,
    /// An `https` URL without the `tls` feature (and without a transport of the caller's).
    TlsUnavailable,
    /// The session configuration is invalid.
    Config(ConfigError),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::InvalidUrl { reason } => write!(f, "invalid session URL: {reason}"),
            BuildError::UnsupportedScheme { scheme } => {
                write!(f, "unsupported URL scheme `{scheme}` (http or https)")
            }
            BuildError::InvalidToken => f.write_str("the token must be non-empty visible ASCII"),
            BuildError::TlsUnavailable => {
                f.write_str("https needs the `tls` feature of tether-smol")
            }
            BuildError::Config(e) => write!(f, "invalid session configuration: {e}"),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Config(e) => Some(e),
            _ => None,
        }
    }
}

/// Why an event was not queued. The event is always inside, to be kept or sent again.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum SendError {
    /// The queue stayed full until the timeout passed.
    Timeout {
        /// The event, with the `uuid` it was given (so a resend is de-duplicated).
        event: Event,
    },
    /// The core refused the event: not an object, too large to ever be sent, closed, ...
    Refused(EnqueueError),
    /// The session has ended (superseded, given up or closed).
    Ended {
        /// The terminal status.
        status: Status,
        /// The event, with its `uuid`.
        event: Option<Event>,
    },
    /// The driver task is gone (its executor stopped, or it panicked).
    DriverGone {
        /// The event, unless the driver took it down with it.
        event: Option<Event>,
    },
}

impl SendError {
    /// The event, if this error carries one as the caller gave it ([`SendError::Refused`]
    /// carries it inside the core's error instead).
    pub fn into_event(self) -> Option<Event> {
        match self {
            SendError::Timeout { event } => Some(event),
            SendError::Ended { event, .. } | SendError::DriverGone { event } => event,
            SendError::Refused(EnqueueError::NotAnObject { event }) => Some(event),
            SendError::Refused(_) => None,
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Timeout { .. } => {
                f.write_str("the event queue stayed full until the timeout")
            }
            SendError::Refused(e) => write!(f, "event refused: {e}"),
            SendError::Ended { status, .. } => write!(f, "the session has ended: {status}"),
            SendError::DriverGone { .. } => f.write_str("the session's driver task is gone"),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SendError::Refused(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a call other than sending an event failed.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// The timeout passed first (a flush).
    Timeout,
    /// The core refused a state patch.
    State(StateError),
    /// The session has ended.
    Ended(Status),
    /// The driver task is gone (its executor stopped, or it panicked).
    DriverGone,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Timeout => f.write_str("timed out"),
            Error::State(e) => write!(f, "state patch refused: {e}"),
            Error::Ended(status) => write!(f, "the session has ended: {status}"),
            Error::DriverGone => f.write_str("the session's driver task is gone"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::State(e) => Some(e),
            _ => None,
        }
    }
}
