//! The reconnect controller (seed 003's `BackoffController`): attempts, status, give-up.

use core::fmt;
use core::time::Duration;

use super::{Backoff, BackoffPolicy};
use crate::rng::Rng;
use crate::time::{Clock, Instant};

/// Where a controlled connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ControllerStatus {
    /// Not started.
    Idle,
    /// Trying to connect, or retrying after a failure.
    Connecting,
    /// The last attempt succeeded.
    Connected,
    /// The rules said stop. Terminal until [`BackoffController::reset`].
    GivingUp,
}

/// A failed attempt, as the response table classified it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Worth retrying after the curve's delay.
    Transient,
    /// Worth retrying after the server's hint (clamped by the policy).
    Throttled(Duration),
    /// Retrying cannot help; carries the HTTP status.
    Permanent(u16),
}

/// Why a controller, or a whole session, gave up. One type for both: a session gives up by
/// its connect controller's rules or by its own (auth failures, an unknown session).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GiveUpReason {
    /// `max_attempts` retries failed.
    AttemptsExhausted {
        /// How many failures were recorded in the episode.
        failures: u32,
    },
    /// The next retry would land after the total deadline.
    DeadlineExceeded,
    /// The server refused with a permanent status (for a session: its connect sequence).
    Rejected(u16),
    /// `max_auth_failures` 401/403 responses in a row.
    AuthFailures(u32),
    /// 404: the server does not know the session.
    SessionUnknown,
}

impl fmt::Display for GiveUpReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GiveUpReason::AttemptsExhausted { failures } => write!(f, "failed {failures} times"),
            GiveUpReason::DeadlineExceeded => f.write_str("retry deadline exceeded"),
            GiveUpReason::Rejected(status) => write!(f, "rejected with {status}"),
            GiveUpReason::AuthFailures(n) => write!(f, "{n} auth failures in a row"),
            GiveUpReason::SessionUnknown => f.write_str("session unknown"),
        }
    }
}

/// What to do after a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Retry at `at`, `delay` from now.
    Retry {
        /// 1 for the first retry of an episode.
        attempt: u32,
        /// How long to wait.
        delay: Duration,
        /// When to retry.
        at: Instant,
    },
    /// Stop.
    GiveUp(GiveUpReason),
}

/// The give-up rules and the curve they use.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ControllerConfig {
    /// The delay curve.
    pub policy: BackoffPolicy,
    /// Retries allowed per episode; `None` retries without limit. Default 6.
    pub max_attempts: Option<u32>,
    /// Longest an episode of failures may last, from its first failure; `None` for no limit.
    pub total_deadline: Option<Duration>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            policy: BackoffPolicy::reconnect(),
            max_attempts: Some(6),
            total_deadline: None,
        }
    }
}

/// Counts failed attempts, says when to retry, and gives up by clear rules.
///
/// An *episode* is the run of failures since the last success. Within it, failure `k` (1-based)
/// is retried after `policy.delay(k - 1)` while `k <= max_attempts`; failure `max_attempts + 1`
/// gives up. With the defaults that is six retries after 1, 2, 4, 8, 16 and 30 s, then the
/// seventh failure gives up.
///
/// ```
/// use core::time::Duration;
/// use tether_core::backoff::{BackoffController, ControllerConfig, Decision, Failure};
/// use tether_core::{Instant, Rng};
///
/// let mut ctl = BackoffController::new(ControllerConfig::default(), Rng::new(7));
/// ctl.start(Instant::ZERO);
/// match ctl.record_failure(Instant::ZERO, Failure::Transient) {
///     Decision::Retry { delay, .. } => assert_eq!(delay, Duration::from_secs(1)),
///     Decision::GiveUp(reason) => panic!("gave up: {reason:?}"),
/// }
/// ```
#[derive(Clone, Debug)]
pub struct BackoffController {
    config: ControllerConfig,
    backoff: Backoff,
    rng: Rng,
    clock: Clock,
    status: ControllerStatus,
    failures: u32,
    episode_start: Option<Instant>,
    gave_up: Option<GiveUpReason>,
}

impl BackoffController {
    /// A controller in [`ControllerStatus::Idle`], drawing jitter from `rng`.
    pub fn new(config: ControllerConfig, rng: Rng) -> Self {
        BackoffController {
            backoff: Backoff::new(config.policy),
            config,
            rng,
            clock: Clock::default(),
            status: ControllerStatus::Idle,
            failures: 0,
            episode_start: None,
            gave_up: None,
        }
    }

    /// Marks the first connection attempt.
    pub fn start(&mut self, now: Instant) {
        self.clock.observe(now);
        if self.status == ControllerStatus::Idle {
            self.status = ControllerStatus::Connecting;
        }
    }

    /// An attempt succeeded: the episode ends and the counter resets.
    pub fn record_success(&mut self, now: Instant) {
        self.clock.observe(now);
        if self.status == ControllerStatus::GivingUp {
            return;
        }
        self.status = ControllerStatus::Connected;
        self.failures = 0;
        self.episode_start = None;
        self.backoff.reset();
    }

    /// An attempt failed: retry when the answer says, or give up.
    ///
    /// Once given up, every later call gives up again with the same reason.
    pub fn record_failure(&mut self, now: Instant, failure: Failure) -> Decision {
        let now = self.clock.observe(now);
        if let Some(reason) = self.gave_up {
            return Decision::GiveUp(reason);
        }
        let episode_start = *self.episode_start.get_or_insert(now);
        self.failures = self.failures.saturating_add(1);

        if let Failure::Permanent(status) = failure {
            return self.give_up(GiveUpReason::Rejected(status));
        }
        if let Some(max) = self.config.max_attempts {
            if self.failures > max {
                return self.give_up(GiveUpReason::AttemptsExhausted {
                    failures: self.failures,
                });
            }
        }
        let hint = match failure {
            Failure::Throttled(hint) => Some(hint),
            _ => None,
        };
        let delay = self.backoff.next_delay(hint, &mut self.rng);
        let at = now + delay;
        if let Some(limit) = self.config.total_deadline {
            if at > episode_start + limit {
                return self.give_up(GiveUpReason::DeadlineExceeded);
            }
        }
        self.status = ControllerStatus::Connecting;
        Decision::Retry {
            attempt: self.failures,
            delay,
            at,
        }
    }

    /// Back to [`ControllerStatus::Idle`] with a fresh episode, e.g. after the user asks to reconnect.
    pub fn reset(&mut self) {
        self.status = ControllerStatus::Idle;
        self.failures = 0;
        self.episode_start = None;
        self.gave_up = None;
        self.backoff.reset();
    }

    /// Where the connection stands.
    pub const fn status(&self) -> ControllerStatus {
        self.status
    }

    /// Failures recorded since the last success.
    pub const fn failures(&self) -> u32 {
        self.failures
    }

    /// The rules in force.
    pub const fn config(&self) -> &ControllerConfig {
        &self.config
    }

    /// Why the controller gave up, once it has.
    pub const fn gave_up(&self) -> Option<GiveUpReason> {
        self.gave_up
    }

    fn give_up(&mut self, reason: GiveUpReason) -> Decision {
        self.status = ControllerStatus::GivingUp;
        self.gave_up = Some(reason);
        Decision::GiveUp(reason)
    }
}
