//! Backoff and give-up (docs/ARCHITECTURE.md §Backoff).
//!
//! - [`BackoffPolicy`]: the curve, its jitter, a floor, and the clamp for server hints.
//! - [`Backoff`]: a policy plus the attempt counter, for a machine that retries one thing.
//! - [`BackoffController`]: attempts, status and the give-up rules.
//! - [`retry_after`]: `Retry-After` parsing, both forms, with no wall clock.

mod controller;
mod policy;
pub mod retry_after;

pub use controller::{
    BackoffController, ControllerConfig, ControllerStatus, Decision, Failure, GiveUpReason,
};
pub use policy::{BackoffPolicy, Floor, Jitter};

use core::time::Duration;

use crate::rng::Rng;

/// A policy and its attempt counter: the state one retrying channel needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Backoff {
    policy: BackoffPolicy,
    attempt: u32,
    previous: Duration,
}

impl Backoff {
    /// A counter at attempt 0.
    pub const fn new(policy: BackoffPolicy) -> Self {
        Backoff {
            policy,
            attempt: 0,
            previous: Duration::ZERO,
        }
    }

    /// The delay before the next retry, honouring a server `hint` if there is one. Advances the
    /// attempt counter.
    pub fn next_delay(&mut self, hint: Option<Duration>, rng: &mut Rng) -> Duration {
        let delay = match hint {
            Some(hint) => self.policy.delay_for_hint(hint, rng),
            None => self.policy.delay(self.attempt, self.previous, rng),
        };
        self.attempt = self.attempt.saturating_add(1);
        self.previous = delay;
        delay
    }

    /// Back to attempt 0, after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
        self.previous = Duration::ZERO;
    }

    /// Retries scheduled since the last success.
    pub const fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The policy in use.
    pub const fn policy(&self) -> &BackoffPolicy {
        &self.policy
    }
}
