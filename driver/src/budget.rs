//! A retry budget shared by many sessions: one [`RetryBudget`] behind a lock, handed to each
//! session as a [`RetryGate`] that converts the session's times into the budget's own frame
//! (every driver picks its own clock origin).
//!
//! The budget takes no clock: its frame is the first session's ([`Origin`]), fixed when that
//! session starts. Every time it sees is then a time of the sessions' own runtime clock, so it
//! cannot disagree with them — tokio's paused time included, whose instants are not
//! `std::time::Instant::now()`.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tether_core::Instant;
use tether_core::budget::{
    BudgetCounters, RetryBudget, RetryBudgetConfig, RetryBudgetError, RetryCost, RetryGate,
};

use crate::clock::{ClockInstant, Origin};

/// One retry budget for many sessions (see [`Settings::retry_budget`](crate::Settings)).
/// Cloning shares it. Every session given a clone spends from and refunds to one balance, and
/// a retry it cannot pay for waits (status `BudgetExhausted`) instead of going.
///
/// It reads no clock and takes none: it runs on the clock of the sessions that use it, from
/// the first one's start (so give it only to sessions of one runtime clock).
///
/// ```
/// use tether_core::budget::RetryBudgetConfig;
/// use tether_driver::SharedRetryBudget;
///
/// let budget = SharedRetryBudget::new(RetryBudgetConfig::aws_standard())?;
/// assert_eq!(budget.counters().balance, 500_000);
/// # Ok::<(), tether_core::budget::RetryBudgetError>(())
/// ```
#[derive(Clone)]
pub struct SharedRetryBudget {
    inner: Arc<Inner>,
}

struct Inner {
    budget: Mutex<RetryBudget>,
    /// The budget's zero: the origin of the first session given it (an `Origin` of that
    /// session's clock type).
    origin: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl SharedRetryBudget {
    /// A full budget, shared by every session given a clone of it.
    ///
    /// # Errors
    /// The budget's parameters (see [`RetryBudgetConfig::validate`]).
    pub fn new(config: RetryBudgetConfig) -> Result<Self, RetryBudgetError> {
        Ok(SharedRetryBudget {
            inner: Arc::new(Inner {
                budget: Mutex::new(RetryBudget::new(config)?),
                origin: OnceLock::new(),
            }),
        })
    }

    /// What the budget has done and holds (the balance as of its last use).
    pub fn counters(&self) -> BudgetCounters {
        self.inner
            .budget
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .counters()
    }

    /// The gate a session whose clock starts at `session` asks; the first session's origin
    /// becomes the budget's. A session of another clock type than the first's cannot be
    /// placed in its frame (it should not share this budget): its frame is taken as the
    /// budget's.
    pub(crate) fn gate<I: ClockInstant>(&self, session: Origin<I>) -> Box<dyn RetryGate> {
        let first = self.inner.origin.get_or_init(|| Box::new(session));
        let offset = first
            .downcast_ref::<Origin<I>>()
            .map_or(Ok(Duration::ZERO), |first| session.offset_from(*first));
        Box::new(Gate {
            budget: self.clone(),
            offset,
        })
    }
}

impl fmt::Debug for SharedRetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedRetryBudget")
            .field("counters", &self.counters())
            .finish()
    }
}

/// One session's view of a shared budget.
#[derive(Debug)]
struct Gate {
    budget: SharedRetryBudget,
    /// Where the session's zero is in the budget's frame: `Ok` that long after the budget's
    /// zero, `Err` that long before it.
    offset: Result<Duration, Duration>,
}

impl Gate {
    /// The session's `at` in the budget's frame ("never" stays never; before the budget's
    /// zero is its zero).
    fn to_budget(&self, at: Instant) -> Instant {
        match self.offset {
            _ if at == Instant::MAX => Instant::MAX,
            Ok(after) => at.saturating_add(after),
            Err(before) => Instant::from_duration(at.since_origin().saturating_sub(before)),
        }
    }

    /// The budget's `at` in the session's frame.
    fn to_session(&self, at: Instant) -> Instant {
        match self.offset {
            _ if at == Instant::MAX => Instant::MAX,
            Ok(after) => Instant::from_duration(at.since_origin().saturating_sub(after)),
            Err(before) => at.saturating_add(before),
        }
    }
}

impl RetryGate for Gate {
    fn try_acquire(&mut self, now: Instant, cost: RetryCost) -> Result<(), Instant> {
        let at = self.to_budget(now);
        let result = self
            .budget
            .inner
            .budget
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .try_acquire(at, cost);
        result.map_err(|wait| self.to_session(wait))
    }

    fn on_success(&mut self, now: Instant) {
        let at = self.to_budget(now);
        self.budget
            .inner
            .budget
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .on_success(at);
    }

    fn counters(&self) -> BudgetCounters {
        self.budget.counters()
    }
}

#[cfg(test)]
mod tests {
    use tether_core::budget::MILLI;

    use super::*;

    fn config() -> RetryBudgetConfig {
        RetryBudgetConfig {
            capacity: 10 * MILLI,
            retry_cost: 5 * MILLI,
            timeout_cost: 5 * MILLI,
            success_refund: MILLI,
            reserve: 0,
            refill_per_sec: MILLI,
        }
    }

    #[test]
    fn sessions_with_their_own_origins_spend_one_balance_and_agree_when_it_refills() {
        let budget = SharedRetryBudget::new(config()).unwrap();
        // The sessions' clock here is the core's own; any instant type works the same.
        let base = Instant::from_secs(100);
        // The second session started 3 s after the first: its zero is the first's 3 s.
        let mut first = budget.gate(Origin::new(base));
        let mut second = budget.gate(Origin::new(base + Duration::from_secs(3)));
        // 10 tokens → 5; 3 s later (the second's zero) refilled to 8 → 3.
        assert!(first.try_acquire(Instant::ZERO, RetryCost::Retry).is_ok());
        assert!(second.try_acquire(Instant::ZERO, RetryCost::Retry).is_ok());
        // Both are told the one instant the balance pays again (2 s at a token a second),
        // each in its own frame.
        assert_eq!(
            first.try_acquire(Instant::from_secs(3), RetryCost::Retry),
            Err(Instant::from_secs(5))
        );
        assert_eq!(
            second.try_acquire(Instant::ZERO, RetryCost::Retry),
            Err(Instant::from_secs(2))
        );
        // A success of the second refunds into the one balance: 3 + 1 refilled + 1 refunded.
        second.on_success(Instant::from_secs(1));
        let c = budget.counters();
        assert_eq!(
            (c.granted, c.waits, c.balance, c.refunded),
            (2, 2, 5000, MILLI)
        );
        assert_eq!(first.counters(), c);
        assert!(
            first
                .try_acquire(Instant::from_secs(4), RetryCost::Retry)
                .is_ok()
        );
    }
}
