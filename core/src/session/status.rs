//! The session's status stream (DESIGN.md §Session).

use core::fmt;

use crate::backoff;
use crate::time::Instant;

/// Where the session stands. A new value is emitted on every change.
///
/// ```text
///  Connecting ──init ok──▶ Connected ◀──success── Retrying{attempt, at}
///      │                    │    ▲  └──failure──▶ Retrying
///      │ failure             stale  live
///      ▼                    ▼    │
///  Retrying ──...        Stale ──┘
///
///  any ──▶ GivenUp(reason) | Superseded | Closed      (terminal: nothing follows)
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    /// Registering, or sending the init `PUT`/`GET`.
    Connecting,
    /// Initialised, and the last request succeeded.
    Connected,
    /// A request failed; the channel retries at `at`. `attempt` counts failures in a row
    /// across channels (or connect attempts, before the session is connected).
    Retrying {
        /// Failures in a row.
        attempt: u32,
        /// When the retry goes.
        at: Instant,
    },
    /// No heartbeat has succeeded within the server's TTL.
    Stale,
    /// The session stopped by the rules. Terminal.
    GivenUp(GiveUpReason),
    /// A newer worker took the session over (409). Terminal.
    Superseded,
    /// Closed by the caller. Terminal.
    Closed,
}

impl Status {
    /// Whether nothing can follow this status.
    pub const fn is_terminal(&self) -> bool {
        matches!(
            self,
            Status::GivenUp(_) | Status::Superseded | Status::Closed
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Connecting => f.write_str("connecting"),
            Status::Connected => f.write_str("connected"),
            Status::Retrying { attempt, at } => write!(f, "retrying attempt={attempt} at={at}"),
            Status::Stale => f.write_str("stale"),
            Status::GivenUp(reason) => write!(f, "given-up ({reason})"),
            Status::Superseded => f.write_str("superseded"),
            Status::Closed => f.write_str("closed"),
        }
    }
}

/// Why a session gave up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GiveUpReason {
    /// `max_auth_failures` 401/403 responses in a row.
    AuthFailures(u32),
    /// 404: the server does not know the session.
    SessionUnknown,
    /// The connect sequence failed by the controller's rules.
    Connect(backoff::GiveUpReason),
    /// The server refused the connect sequence with a permanent status.
    ConnectRejected(u16),
}

impl fmt::Display for GiveUpReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GiveUpReason::AuthFailures(n) => write!(f, "{n} auth failures in a row"),
            GiveUpReason::SessionUnknown => f.write_str("session unknown"),
            GiveUpReason::Connect(backoff::GiveUpReason::AttemptsExhausted { failures }) => {
                write!(f, "connect failed {failures} times")
            }
            GiveUpReason::Connect(backoff::GiveUpReason::DeadlineExceeded) => {
                f.write_str("connect deadline exceeded")
            }
            GiveUpReason::Connect(other) => write!(f, "connect: {other:?}"),
            GiveUpReason::ConnectRejected(status) => write!(f, "connect rejected with {status}"),
        }
    }
}
