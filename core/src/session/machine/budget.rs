//! The retry budget in the session: a request that follows a failed one on the same channel is
//! a retry, and goes only once the budget pays for it; until then it waits, parked, with a timer
//! of its own reason ([`Timer::RetryBudget`](crate::session::Timer::RetryBudget)). Without a
//! budget nothing here changes what the session does.
//!
//! A budget names the instant it will pay for a retry, and a budget shared by many sessions
//! names the same instant to all of them: a fleet parked through an outage would wake at once.
//! So each session asks again at that instant plus a jitter of its own, drawn from its seeded
//! PRNG: uniform over as long again as the wait it was told (the wait is what the budget needs
//! to pay for one retry, so the fleet spreads over about one retry's refill). The jitter only
//! ever delays a retry, so the budget's bound on the retry rate holds as before.

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::Session;
use super::flight::{Channel, Purpose};
use crate::budget::{BudgetCounters, RetryCost, RetryGate};
use crate::classify::{Outcome, TransientCause};
use crate::rng::Rng;
use crate::session::status::Status;
use crate::time::Instant;

/// A retry that waits for the budget. The machine it belongs to believes it is in flight; no
/// request was described to the driver yet, so there is nothing to cancel.
#[derive(Debug)]
struct Parked {
    purpose: Purpose,
    body: Vec<u8>,
    cost: RetryCost,
    at: Instant,
}

/// The budget, what each channel's next request would cost, and the retries that wait.
#[derive(Debug)]
pub(super) struct Budgeting {
    gate: Option<Box<dyn RetryGate>>,
    /// Per channel slot: the next request is a retry of this kind.
    debt: [Option<RetryCost>; 6],
    parked: [Option<Parked>; 6],
    /// The session's own jitter for the instants the budget names (see the module docs).
    rng: Rng,
}

impl Budgeting {
    pub(super) fn new(gate: Option<Box<dyn RetryGate>>, rng: Rng) -> Self {
        Budgeting {
            gate,
            debt: Default::default(),
            parked: Default::default(),
            rng,
        }
    }

    /// When a retry the budget refused at `now` asks again: the budget's `at` (never at or
    /// before `now`, so that a wrong answer cannot spin the driver) plus up to as long again.
    fn retry_at(&mut self, now: Instant, at: Instant) -> Instant {
        let at = if at > now {
            at
        } else {
            now.saturating_add(core::time::Duration::from_millis(1))
        };
        let wait = at.saturating_duration_since(now);
        at.saturating_add(self.rng.duration_between(core::time::Duration::ZERO, wait))
    }

    /// When the earliest waiting retry asks again.
    pub(super) fn earliest(&self) -> Option<Instant> {
        self.parked.iter().flatten().map(|p| p.at).min()
    }

    pub(super) fn counters(&self) -> Option<BudgetCounters> {
        self.gate.as_ref().map(|g| g.counters())
    }

    pub(super) fn set_gate(&mut self, gate: Box<dyn RetryGate>) {
        self.gate = Some(gate);
    }

    /// Forgets every waiting retry (the session ended).
    pub(super) fn clear(&mut self) {
        self.parked = Default::default();
        self.debt = Default::default();
    }

    /// Forgets the waiting retry of `channel`, if any (its machine handed it back).
    pub(super) fn drop_channel(&mut self, channel: Channel) {
        self.parked[channel.slot()] = None;
        self.debt[channel.slot()] = None;
    }

    /// Forgets the waiting retry for `purpose`, if that is what waits.
    pub(super) fn drop_purpose(&mut self, purpose: Purpose) {
        let slot = &mut self.parked[purpose.channel().slot()];
        if slot.as_ref().is_some_and(|p| p.purpose == purpose) {
            *slot = None;
        }
    }
}

impl Session {
    /// Notes what an outcome on `channel` means for the budget: a success refunds, a failure
    /// that will be retried makes the channel's next request a retry.
    pub(super) fn note_budget(&mut self, now: Instant, channel: Channel, outcome: Outcome) {
        let Some(gate) = self.budget.gate.as_mut() else {
            return;
        };
        let debt = match outcome {
            Outcome::Success => {
                gate.on_success(now);
                None
            }
            Outcome::Transient(TransientCause::TimedOut) => Some(RetryCost::Timeout),
            Outcome::Transient(_)
            | Outcome::Throttled(_)
            | Outcome::AuthFailure
            | Outcome::SessionUnknown => Some(RetryCost::Retry),
            // A split, a refusal or the end: what follows is not a retry.
            Outcome::TooLarge | Outcome::Permanent(_) | Outcome::Superseded => None,
        };
        // Heartbeats are never retried.
        if channel != Channel::Heartbeat {
            self.budget.debt[channel.slot()] = debt;
        }
    }

    /// Lets a request go, or parks it if it is a retry the budget cannot pay for yet.
    pub(super) fn admit(
        &mut self,
        now: Instant,
        purpose: Purpose,
        body: Vec<u8>,
    ) -> Option<Vec<u8>> {
        let slot = purpose.channel().slot();
        let Some(gate) = self.budget.gate.as_mut() else {
            return Some(body);
        };
        let Some(cost) = self.budget.debt[slot].take() else {
            return Some(body);
        };
        match gate.try_acquire(now, cost) {
            Ok(()) => {
                self.counters.budget_granted += 1;
                Some(body)
            }
            Err(at) => {
                let at = self.budget.retry_at(now, at);
                self.counters.budget_waits += 1;
                self.budget.parked[slot] = Some(Parked {
                    purpose,
                    body,
                    cost,
                    at,
                });
                self.emit_status(Status::BudgetExhausted { at });
                None
            }
        }
    }

    /// Asks the budget again for every waiting retry that is due, sending those it pays for.
    pub(super) fn release_parked(&mut self, now: Instant) {
        for slot in 0..self.budget.parked.len() {
            let Some(gate) = self.budget.gate.as_mut() else {
                return;
            };
            let Some(cost) = self.budget.parked[slot]
                .as_ref()
                .filter(|p| p.at <= now)
                .map(|p| p.cost)
            else {
                continue;
            };
            match gate.try_acquire(now, cost) {
                Ok(()) => {
                    if let Some(p) = self.budget.parked[slot].take() {
                        self.counters.budget_granted += 1;
                        self.open_request(now, p.purpose, p.body);
                    }
                }
                Err(at) => {
                    let at = self.budget.retry_at(now, at);
                    if let Some(p) = self.budget.parked[slot].as_mut() {
                        p.at = at;
                    }
                }
            }
        }
    }
}
