//! What a session has done, for reports and tests.

use crate::classify::{Outcome, TransientCause};

/// Failed requests by cause, across channels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FailureCounts {
    /// 429/503 with a usable `Retry-After`.
    pub throttled: u64,
    /// Retryable statuses without a hint (408, 429, 5xx).
    pub server_errors: u64,
    /// Requests the core failed at their deadline.
    pub timeouts: u64,
    /// Connection errors and resets.
    pub transport: u64,
    /// Unparseable or oversized response bodies.
    pub bad_body: u64,
    /// 401 and 403.
    pub auth: u64,
    /// 404.
    pub session_unknown: u64,
    /// 413.
    pub too_large: u64,
    /// Other 4xx, 501, 505.
    pub permanent: u64,
}

impl FailureCounts {
    /// Every failure counted.
    pub fn total(&self) -> u64 {
        self.throttled
            + self.server_errors
            + self.timeouts
            + self.transport
            + self.bad_body
            + self.auth
            + self.session_unknown
            + self.too_large
            + self.permanent
    }

    pub(crate) fn record(&mut self, outcome: Outcome) {
        let slot = match outcome {
            Outcome::Success | Outcome::Superseded => return,
            Outcome::Throttled(_) => &mut self.throttled,
            Outcome::Transient(TransientCause::Status(_)) => &mut self.server_errors,
            Outcome::Transient(TransientCause::TimedOut) => &mut self.timeouts,
            Outcome::Transient(TransientCause::Transport) => &mut self.transport,
            Outcome::Transient(TransientCause::BadBody) => &mut self.bad_body,
            Outcome::AuthFailure => &mut self.auth,
            Outcome::SessionUnknown => &mut self.session_unknown,
            Outcome::TooLarge => &mut self.too_large,
            Outcome::Permanent(_) => &mut self.permanent,
        };
        *slot += 1;
    }
}

/// Session-wide counts. The uploaders keep their own: see
/// [`Session::uploader_counters`](super::Session::uploader_counters) and
/// [`Session::state_counters`](super::Session::state_counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionCounters {
    /// Requests emitted, retries included.
    pub requests: u64,
    /// Responses and transport errors consumed.
    pub replies: u64,
    /// Responses that came after their request was settled (deadline passed, or session over).
    pub late_replies: u64,
    /// Requests cancelled at their deadline.
    pub cancelled: u64,
    /// Connect sequences begun (the first and every retry).
    pub connect_attempts: u64,
    /// Heartbeats sent.
    pub heartbeats_sent: u64,
    /// Heartbeats the server accepted.
    pub heartbeats_ok: u64,
    /// Status events emitted.
    pub status_changes: u64,
    /// Failed requests by cause.
    pub failures: FailureCounts,
    /// Retries the retry budget let go (zero without a budget).
    pub budget_granted: u64,
    /// Times a retry found the retry budget empty and waited.
    pub budget_waits: u64,
    /// Times the session gave up and held ([`OnGiveUp::Hold`](super::OnGiveUp::Hold)).
    pub holds: u64,
    /// Times the caller reconnected a holding session.
    pub reconnects: u64,
}
