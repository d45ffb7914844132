//! A retry budget: a token bucket that bounds how fast retries may go, shared by a session's
//! channels and, above the core, by many sessions.
//!
//! Retry storms happen when many clients retry at once (a thousand workers when a server comes
//! back). The AWS SDKs' standard retry mode keeps a quota (500 tokens; a retry costs 5, a retry
//! after a timeout 10; a success refunds 1); gRPC throttles retries with a token bucket (10
//! tokens, each failure costs 1, each success refunds 0.1, retries stop at half). Both are
//! expressible here: amounts are in thousandths of a token, and a `reserve` says how much a
//! retry may not spend (gRPC's half).
//!
//! Unlike both, an empty budget never drops a retry: it says *when* the retry may go, and the
//! session waits until then (a timer of its own reason). For that to end, the bucket also refills
//! with time (`refill_per_sec`), so that a fleet whose every request fails still retries, at the
//! budget's rate. Over any window of `T` seconds the retries a budget grants cost at most
//! `capacity - reserve + refill_per_sec·T + refunds`.
//!
//! The budget reads no clock: every call takes `now`, and time never runs backwards in it.
//!
//! ```
//! use tether_core::budget::{RetryBudget, RetryBudgetConfig, RetryCost};
//! use tether_core::Instant;
//!
//! let mut budget = RetryBudget::new(RetryBudgetConfig::aws_standard())?;
//! let now = Instant::ZERO;
//! // 500 tokens: 100 retries at 5 tokens each go at once...
//! for _ in 0..100 {
//!     assert!(budget.try_acquire(now, RetryCost::Retry).is_ok());
//! }
//! // ...then a retry waits until the refill (5 tokens a second) pays for it.
//! assert_eq!(budget.try_acquire(now, RetryCost::Retry), Err(Instant::from_secs(1)));
//! assert!(budget.try_acquire(Instant::from_secs(1), RetryCost::Retry).is_ok());
//! # Ok::<(), tether_core::budget::RetryBudgetError>(())
//! ```

use core::fmt;

use crate::time::Instant;

/// Thousandths of a token per token: every amount in [`RetryBudgetConfig`] is in thousandths.
pub const MILLI: u64 = 1000;

const MICROS_PER_SEC: u128 = 1_000_000;

/// What a retry costs, by why the request it repeats failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RetryCost {
    /// A retry after an error reply or a transport failure.
    Retry,
    /// A retry after the core failed the request at its deadline.
    Timeout,
}

/// The parameters of a [`RetryBudget`]. Every amount is in thousandths of a token
/// ([`MILLI`] = one token).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RetryBudgetConfig {
    /// The most the bucket holds, and what it starts with.
    pub capacity: u64,
    /// What a retry after an error costs.
    pub retry_cost: u64,
    /// What a retry after a timeout costs.
    pub timeout_cost: u64,
    /// What a success gives back.
    pub success_refund: u64,
    /// What a retry may not spend: a retry goes only while `balance ≥ cost + reserve`.
    pub reserve: u64,
    /// What the bucket regains every second. Must be above zero: it is what lets retries go on
    /// (at a bounded rate) while every request fails.
    pub refill_per_sec: u64,
}

impl RetryBudgetConfig {
    /// The AWS SDKs' standard retry quota: 500 tokens, a retry costs 5, a retry after a
    /// timeout 10, a success refunds 1; plus a refill of 5 tokens a second (one retry a
    /// second once the quota is spent).
    pub const fn aws_standard() -> Self {
        RetryBudgetConfig {
            capacity: 500 * MILLI,
            retry_cost: 5 * MILLI,
            timeout_cost: 10 * MILLI,
            success_refund: MILLI,
            reserve: 0,
            refill_per_sec: 5 * MILLI,
        }
    }

    /// gRPC's retry throttling: `max_tokens` tokens, every retry costs 1, a success refunds
    /// `token_ratio` (in thousandths: gRPC's 0.1 is 100), and retries stop while the bucket holds
    /// half or less; plus a refill of `token_ratio` a second.
    pub const fn grpc(max_tokens: u64, token_ratio: u64) -> Self {
        let capacity = max_tokens.saturating_mul(MILLI);
        RetryBudgetConfig {
            capacity,
            retry_cost: MILLI,
            timeout_cost: MILLI,
            success_refund: token_ratio,
            // "More than half" after paying: balance - cost > capacity / 2.
            reserve: capacity / 2 + 1,
            refill_per_sec: token_ratio,
        }
    }

    /// The same budget with another refill rate (thousandths of a token a second).
    pub const fn with_refill_per_sec(mut self, refill: u64) -> Self {
        self.refill_per_sec = refill;
        self
    }

    /// What a retry of this kind costs.
    pub const fn cost(&self, cost: RetryCost) -> u64 {
        match cost {
            RetryCost::Retry => self.retry_cost,
            RetryCost::Timeout => self.timeout_cost,
        }
    }

    /// Checks that retries can ever go.
    pub fn validate(&self) -> Result<(), RetryBudgetError> {
        if self.refill_per_sec == 0 {
            return Err(RetryBudgetError::NoRefill);
        }
        let most = self.retry_cost.max(self.timeout_cost);
        if most.saturating_add(self.reserve) > self.capacity {
            return Err(RetryBudgetError::CostAboveCapacity {
                cost: most,
                reserve: self.reserve,
                capacity: self.capacity,
            });
        }
        Ok(())
    }
}

impl Default for RetryBudgetConfig {
    /// [`RetryBudgetConfig::aws_standard`].
    fn default() -> Self {
        RetryBudgetConfig::aws_standard()
    }
}

/// A budget the constructor refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryBudgetError {
    /// `refill_per_sec` is zero: once spent, a budget that every request fails would never
    /// let a retry go again.
    NoRefill,
    /// A retry would cost more than the bucket can ever hold above its reserve.
    CostAboveCapacity {
        /// The larger of the two costs.
        cost: u64,
        /// The reserve.
        reserve: u64,
        /// The capacity.
        capacity: u64,
    },
}

impl fmt::Display for RetryBudgetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryBudgetError::NoRefill => f.write_str("a retry budget needs a refill above zero"),
            RetryBudgetError::CostAboveCapacity {
                cost,
                reserve,
                capacity,
            } => write!(
                f,
                "a retry costs {cost} with a reserve of {reserve}, above the capacity {capacity} (thousandths of a token)"
            ),
        }
    }
}

impl core::error::Error for RetryBudgetError {}

/// What a budget has done, and holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BudgetCounters {
    /// Tokens held now, in thousandths.
    pub balance: u64,
    /// Retries allowed to go.
    pub granted: u64,
    /// Times a retry was told to wait.
    pub waits: u64,
    /// Thousandths of a token spent on retries.
    pub spent: u64,
    /// Thousandths of a token given back by successes (what the cap let in).
    pub refunded: u64,
}

/// The token bucket. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct RetryBudget {
    config: RetryBudgetConfig,
    /// Thousandths of a token.
    balance: u64,
    /// The refill's remainder, in thousandths of a token times microseconds per second.
    carry: u128,
    last: Instant,
    counters: BudgetCounters,
}

impl RetryBudget {
    /// A full budget.
    pub fn new(config: RetryBudgetConfig) -> Result<Self, RetryBudgetError> {
        config.validate()?;
        Ok(RetryBudget {
            config,
            balance: config.capacity,
            carry: 0,
            last: Instant::ZERO,
            counters: BudgetCounters::default(),
        })
    }

    /// The parameters.
    pub fn config(&self) -> &RetryBudgetConfig {
        &self.config
    }

    /// Spends the cost of a retry, or says when the bucket will hold enough for it (assuming
    /// nobody else spends meanwhile; asking again then is always safe).
    pub fn try_acquire(&mut self, now: Instant, cost: RetryCost) -> Result<(), Instant> {
        self.refill(now);
        let cost = self.config.cost(cost);
        let need = cost.saturating_add(self.config.reserve);
        if self.balance >= need {
            self.balance -= cost;
            self.counters.granted += 1;
            self.counters.spent += cost;
            return Ok(());
        }
        self.counters.waits += 1;
        let missing = u128::from(need - self.balance) * MICROS_PER_SEC;
        let rate = u128::from(self.config.refill_per_sec);
        let micros = missing.saturating_sub(self.carry).div_ceil(rate);
        let micros = u64::try_from(micros).unwrap_or(u64::MAX).max(1);
        Err(Instant::from_micros(
            self.last.as_micros().saturating_add(micros),
        ))
    }

    /// A request succeeded: give back `success_refund`, up to the capacity.
    pub fn on_success(&mut self, now: Instant) {
        self.refill(now);
        let before = self.balance;
        self.balance = self
            .balance
            .saturating_add(self.config.success_refund)
            .min(self.config.capacity);
        self.counters.refunded += self.balance - before;
    }

    /// Tokens held as of the last call, in thousandths.
    pub fn balance(&self) -> u64 {
        self.balance
    }

    /// What the budget has done and holds.
    pub fn counters(&self) -> BudgetCounters {
        BudgetCounters {
            balance: self.balance,
            ..self.counters
        }
    }

    fn refill(&mut self, now: Instant) {
        if now <= self.last {
            return; // time never runs backwards here
        }
        let elapsed = u128::from(now.as_micros() - self.last.as_micros());
        self.last = now;
        if self.balance >= self.config.capacity {
            self.carry = 0;
            return;
        }
        let total = elapsed * u128::from(self.config.refill_per_sec) + self.carry;
        let add = total / MICROS_PER_SEC;
        self.carry = total % MICROS_PER_SEC;
        let add = u64::try_from(add).unwrap_or(u64::MAX);
        self.balance = self.balance.saturating_add(add);
        if self.balance >= self.config.capacity {
            self.balance = self.config.capacity;
            self.carry = 0;
        }
    }
}

/// Where a session asks before a retry goes: its own [`RetryBudget`], or one shared with other
/// sessions that a driver keeps behind a lock (and whose times it converts into the budget's
/// own frame). The session is deterministic for a given sequence of answers.
pub trait RetryGate: fmt::Debug + Send {
    /// Spends the cost of a retry, or says when to ask again.
    fn try_acquire(&mut self, now: Instant, cost: RetryCost) -> Result<(), Instant>;
    /// A request succeeded.
    fn on_success(&mut self, now: Instant);
    /// The budget's counters (for a shared budget, the whole budget's).
    fn counters(&self) -> BudgetCounters;
}

impl RetryGate for RetryBudget {
    fn try_acquire(&mut self, now: Instant, cost: RetryCost) -> Result<(), Instant> {
        RetryBudget::try_acquire(self, now, cost)
    }

    fn on_success(&mut self, now: Instant) {
        RetryBudget::on_success(self, now);
    }

    fn counters(&self) -> BudgetCounters {
        RetryBudget::counters(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_quota_spends_waits_refills_and_refunds() {
        let mut b = RetryBudget::new(RetryBudgetConfig::aws_standard()).unwrap();
        for _ in 0..50 {
            assert!(b.try_acquire(Instant::ZERO, RetryCost::Timeout).is_ok());
        }
        assert_eq!(b.balance(), 0);
        assert_eq!(
            b.try_acquire(Instant::ZERO, RetryCost::Timeout),
            Err(Instant::from_secs(2))
        );
        // Half a second refills 2.5 tokens; the rest comes 1.5 s later.
        assert_eq!(
            b.try_acquire(Instant::from_millis(500), RetryCost::Retry),
            Err(Instant::from_secs(1))
        );
        b.on_success(Instant::from_millis(500));
        assert_eq!(b.balance(), 3500);
        assert_eq!(
            b.try_acquire(Instant::from_millis(600), RetryCost::Retry),
            Err(Instant::from_millis(800))
        );
        assert!(
            b.try_acquire(Instant::from_millis(800), RetryCost::Retry)
                .is_ok()
        );
        let c = b.counters();
        assert_eq!((c.granted, c.waits, c.refunded), (51, 3, 1000));
    }

    #[test]
    fn grpc_stops_at_half_and_refunds_a_tenth() {
        let mut b = RetryBudget::new(RetryBudgetConfig::grpc(10, 100)).unwrap();
        let now = Instant::ZERO;
        // 10 → 9, 8, 7, 6: a retry needs more than 5 left after paying.
        for _ in 0..4 {
            assert!(b.try_acquire(now, RetryCost::Retry).is_ok());
        }
        assert!(b.try_acquire(now, RetryCost::Retry).is_err());
        for _ in 0..10 {
            b.on_success(now);
        }
        assert_eq!(b.balance(), 7000);
        assert!(b.try_acquire(now, RetryCost::Retry).is_ok());
    }

    #[test]
    fn refill_is_exact_capped_and_time_never_runs_backwards() {
        let config = RetryBudgetConfig::aws_standard().with_refill_per_sec(3);
        let mut b = RetryBudget::new(config).unwrap();
        for _ in 0..100 {
            b.try_acquire(Instant::ZERO, RetryCost::Retry).unwrap();
        }
        // 3 thousandths a second: 5000 thousandths take 1666.67 s, in many small steps.
        let mut t = 0;
        let at = b.try_acquire(Instant::ZERO, RetryCost::Retry).unwrap_err();
        while b
            .try_acquire(Instant::from_micros(t), RetryCost::Retry)
            .is_err()
        {
            t += 333_333;
            b.try_acquire(Instant::ZERO, RetryCost::Retry).ok(); // backwards: ignored
        }
        assert!(Instant::from_micros(t) >= at);
        assert!(Instant::from_micros(t) < at.saturating_add(core::time::Duration::from_secs(1)));
        b.on_success(Instant::MAX);
        assert_eq!(b.balance(), 500 * MILLI);
    }

    #[test]
    fn bad_budgets_are_refused() {
        let none = RetryBudgetConfig::aws_standard().with_refill_per_sec(0);
        assert_eq!(
            RetryBudget::new(none).unwrap_err(),
            RetryBudgetError::NoRefill
        );
        let mut big = RetryBudgetConfig::grpc(1, 100);
        big.timeout_cost = 2 * MILLI;
        assert!(matches!(
            RetryBudget::new(big),
            Err(RetryBudgetError::CostAboveCapacity { .. })
        ));
        // gRPC with one token can never retry (a retry must leave more than half).
        assert!(RetryBudget::new(RetryBudgetConfig::grpc(1, 100)).is_err());
        assert!(RetryBudget::new(RetryBudgetConfig::grpc(3, 100)).is_ok());
    }
}
