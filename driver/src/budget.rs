//! A retry budget shared by many sessions: one [`RetryBudget`] behind a lock, handed to each
//! session as a [`RetryGate`] that converts the session's times into the budget's own frame
//! (every driver picks its own clock origin).

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant as StdInstant;

use tether_core::Instant;
use tether_core::budget::{
    BudgetCounters, RetryBudget, RetryBudgetConfig, RetryBudgetError, RetryCost, RetryGate,
};

use crate::clock::Origin;

/// One retry budget for many sessions (see [`Settings::retry_budget`](crate::Settings)).
/// Cloning shares it.
///
/// ```
/// use std::time::Instant;
/// use tether_core::budget::RetryBudgetConfig;
/// use tether_driver::SharedRetryBudget;
///
/// # #[allow(clippy::disallowed_methods)]
/// let budget = SharedRetryBudget::new(RetryBudgetConfig::aws_standard(), Instant::now())?;
/// assert_eq!(budget.counters().balance, 500_000);
/// # Ok::<(), tether_core::budget::RetryBudgetError>(())
/// ```
#[derive(Clone)]
pub struct SharedRetryBudget {
    inner: Arc<Mutex<RetryBudget>>,
    origin: Origin,
}

impl SharedRetryBudget {
    /// A full budget, shared by every session given a clone of it; `now` is the shim's clock
    /// (the driver reads none), the origin of the budget's own time.
    ///
    /// # Errors
    /// The budget's parameters (see [`RetryBudgetConfig::validate`]).
    pub fn new(config: RetryBudgetConfig, now: StdInstant) -> Result<Self, RetryBudgetError> {
        Ok(SharedRetryBudget {
            inner: Arc::new(Mutex::new(RetryBudget::new(config)?)),
            origin: Origin::new(now),
        })
    }

    /// What the budget has done and holds.
    pub fn counters(&self) -> BudgetCounters {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .counters()
    }

    /// The gate a session whose clock starts at `session` asks.
    pub(crate) fn gate(&self, session: Origin) -> Box<dyn RetryGate> {
        Box::new(Gate {
            budget: self.clone(),
            session,
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
    session: Origin,
}

impl Gate {
    /// The session's `at` in the budget's frame.
    fn to_budget(&self, at: Instant) -> Instant {
        match self.session.to_std(at) {
            Some(std) => self.budget.origin.to_core(std),
            None => Instant::MAX,
        }
    }

    /// The budget's `at` in the session's frame.
    fn to_session(&self, at: Instant) -> Instant {
        match self.budget.origin.to_std(at) {
            Some(std) => self.session.to_core(std),
            None => Instant::MAX,
        }
    }
}

impl RetryGate for Gate {
    fn try_acquire(&mut self, now: Instant, cost: RetryCost) -> Result<(), Instant> {
        let at = self.to_budget(now);
        let result = self
            .budget
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .try_acquire(at, cost);
        result.map_err(|wait| self.to_session(wait))
    }

    fn on_success(&mut self, now: Instant) {
        let at = self.to_budget(now);
        self.budget
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .on_success(at);
    }

    fn counters(&self) -> BudgetCounters {
        self.budget.counters()
    }
}
