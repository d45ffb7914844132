//! The session's status stream (docs/ARCHITECTURE.md §Session).

use core::fmt;

pub use crate::backoff::GiveUpReason;
use crate::time::Instant;

/// Where the session stands. A new value is emitted on every change.
///
/// ```text
///  Connecting ──init ok──▶ Connected ◀──success── Retrying{attempt, at}
///      │                    │    ▲  └──failure──▶ Retrying ──budget empty──▶ BudgetExhausted{at}
///      │ failure             stale  live
///      ▼                    ▼    │
///  Retrying ──...        Stale ──┘
///
///  any ──▶ GivenUp(reason) | Superseded | Closed      (terminal: nothing follows)
///
///  with OnGiveUp::Hold, giving up holds instead of ending:
///  any ──give up──▶ Holding(reason) ──reconnect──▶ Connecting ──▶ ...
///                          └──────────close──────▶ GivenUp(reason)  (everything handed back)
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
    /// A retry is due but the retry budget is empty: it waits, and asks the budget again at
    /// `at`. Only with a retry budget.
    BudgetExhausted {
        /// When the retry asks the budget again.
        at: Instant,
    },
    /// The session stopped by the rules. Terminal.
    GivenUp(GiveUpReason),
    /// The session gave up by the rules but holds everything (configured with
    /// [`OnGiveUp::Hold`](super::OnGiveUp::Hold)): nothing is sent, events and patches are
    /// still taken and kept, until [`Session::reconnect`](super::Session::reconnect) or
    /// [`Session::close`](super::Session::close). Not terminal.
    Holding(GiveUpReason),
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
            Status::BudgetExhausted { at } => write!(f, "budget-exhausted until={at}"),
            Status::GivenUp(reason) => write!(f, "given-up ({reason})"),
            Status::Holding(reason) => write!(f, "given-up ({reason}), holding"),
            Status::Superseded => f.write_str("superseded"),
            Status::Closed => f.write_str("closed"),
        }
    }
}
