//! Thread sync spends from the session's shared retry budget
//! ([`Settings::retry_budget`](crate::Settings::retry_budget)): a thread request that follows a
//! failed one is a retry, and it goes out only once the budget pays for it (a timeout costs
//! more, as for the session's own channels). Until then it is held here; the core's deadline
//! for it still runs, so a retry the budget cannot pay for in time fails as any late request
//! does. A success refunds the budget. Without a shared budget nothing is held.

use tether_core::budget::{RetryCost, RetryGate};
use tether_core::{Instant, RequestId};

use crate::http::HttpRequest;

pub(crate) struct ThreadBudget {
    gate: Box<dyn RetryGate>,
    /// What the next request costs: the last one failed.
    owed: Option<RetryCost>,
    /// Requests waiting for the budget, and when to ask again.
    held: Vec<HttpRequest>,
    retry_at: Option<Instant>,
}

impl ThreadBudget {
    pub(crate) fn new(gate: Box<dyn RetryGate>) -> Self {
        ThreadBudget {
            gate,
            owed: None,
            held: Vec::new(),
            retry_at: None,
        }
    }

    /// A request thread sync wants sent: what may go now, in order (it, or it with those held
    /// before it, or nothing while the budget says wait).
    pub(crate) fn admit(&mut self, now: Instant, request: HttpRequest) -> Vec<HttpRequest> {
        if self.owed.is_none() && self.held.is_empty() {
            return vec![request];
        }
        self.held.push(request);
        self.release(now)
    }

    /// The held requests, once the budget pays for the retry (then all go: only the first
    /// follows the failure).
    pub(crate) fn release(&mut self, now: Instant) -> Vec<HttpRequest> {
        if self.held.is_empty() || self.retry_at.is_some_and(|at| at > now) {
            return Vec::new();
        }
        if let Some(cost) = self.owed {
            if let Err(at) = self.gate.try_acquire(now, cost) {
                self.retry_at = Some(at);
                return Vec::new();
            }
            self.owed = None;
        }
        self.retry_at = None;
        std::mem::take(&mut self.held)
    }

    /// An answer to a thread request: a success refunds, a failure makes the next one a
    /// retry (`timed_out`: a retry after a timeout).
    pub(crate) fn answered(&mut self, now: Instant, ok: bool, timed_out: bool) {
        if ok {
            self.owed = None;
            self.gate.on_success(now);
        } else {
            self.owed = Some(if timed_out {
                RetryCost::Timeout
            } else {
                RetryCost::Retry
            });
        }
    }

    /// The core cancelled request `id`: if it was held, it is dropped unsent; whether it was.
    pub(crate) fn cancel(&mut self, id: RequestId) -> bool {
        let before = self.held.len();
        self.held.retain(|r| r.id != id);
        if self.held.is_empty() {
            self.retry_at = None;
        }
        self.held.len() != before
    }

    /// When to ask the budget again for the held requests.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.retry_at.filter(|_| !self.held.is_empty())
    }
}
