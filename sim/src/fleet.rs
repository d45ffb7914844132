//! A fleet: many sessions against one server that goes down and comes back, optionally sharing
//! one [`RetryBudget`] — the retry storm the budget exists for.
//!
//! Every session has its own [`ServerModel`] (its own session on the server) and the same
//! virtual clock; during the outage every request fails with a connection error. The runner
//! always jumps to the earliest of the next response, the next application event and the
//! sessions' wake-ups, so a run is a pure function of its [`FleetConfig`].
//!
//! The shared budget is a [`RetryGate`] behind an `Arc<Mutex<_>>` (what a driver does for
//! sessions on many threads); it also records every grant and refund, so the report can check
//! the token-bucket bound independently of the budget's own arithmetic: at every grant, the
//! tokens spent since the outage began are at most the capacity, plus the refill over the time
//! since, plus the refunds since.
//!
//! ```
//! use std::time::Duration;
//! use tether_core::budget::RetryBudgetConfig;
//! use tether_sim::fleet::{run_fleet, FleetConfig};
//!
//! let mut config = FleetConfig::new(1, 20);
//! config.budget = Some(RetryBudgetConfig::aws_standard());
//! let report = run_fleet(&config);
//! assert_eq!(report.delivered, report.sent);
//! assert!(report.bound_violations.is_empty());
//! ```

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tether_core::batch::Event;
use tether_core::budget::{BudgetCounters, RetryBudget, RetryBudgetConfig, RetryCost, RetryGate};
use tether_core::session::{Endpoint, Output, RequestId, Response, Session, SessionConfig};
use tether_core::{Instant, Poll, Rng};

use tether_core::session::Stream;
use tether_model::ServerModel;
use tether_model::fault::Span;

/// What to simulate.
#[derive(Clone, Debug)]
pub struct FleetConfig {
    /// The seed every random choice derives from.
    pub seed: u64,
    /// How many sessions.
    pub sessions: usize,
    /// When the server is down (every request fails with a connection error).
    pub outage: Span,
    /// When the run ends.
    pub length: Duration,
    /// Events each session sends, at random times before the outage ends.
    pub events_per_session: usize,
    /// One budget shared by every session, or none.
    pub budget: Option<RetryBudgetConfig>,
    /// One-way latency of every exchange.
    pub latency: Duration,
}

impl FleetConfig {
    /// `sessions` sessions; the server is down from 60 s to 360 s (five minutes); the run lasts
    /// 20 minutes; three events per session; no budget.
    pub fn new(seed: u64, sessions: usize) -> Self {
        FleetConfig {
            seed,
            sessions,
            outage: Span {
                start: Instant::from_secs(60),
                end: Instant::from_secs(360),
            },
            length: Duration::from_secs(20 * 60),
            events_per_session: 3,
            budget: None,
            latency: Duration::from_millis(10),
        }
    }
}

/// What a fleet run did.
#[derive(Clone, Debug, Default)]
pub struct FleetReport {
    /// Events the sessions accepted.
    pub sent: u64,
    /// Distinct events the servers stored.
    pub delivered: u64,
    /// Events handed back to the application.
    pub handed_back: u64,
    /// Requests (heartbeats excluded) the servers saw during the outage, counting the failed.
    pub requests_in_outage: u64,
    /// Retries the shared budget granted, summed over sessions (zero without a budget).
    pub retries: u64,
    /// Retries granted by the shared budget while the server was down.
    pub retries_in_outage: u64,
    /// The most non-heartbeat requests in any one second from the outage's start on.
    pub peak_requests_per_sec: u64,
    /// When the last event was stored.
    pub last_delivery: Option<Instant>,
    /// The shared budget at the end.
    pub budget: Option<BudgetCounters>,
    /// Grants that broke the token-bucket bound (time and tokens spent), if any.
    pub bound_violations: Vec<(Instant, u64)>,
    /// Sessions that ended (gave up, were superseded), with their last status.
    pub ended: Vec<(usize, tether_core::session::Status)>,
    /// Loop iterations.
    pub steps: u64,
}

#[derive(Debug)]
struct Ledger {
    budget: RetryBudget,
    grants: Vec<(Instant, u64)>,
    refunds: Vec<(Instant, u64)>,
}

/// A budget shared by every session of the fleet, recording what it grants and refunds.
#[derive(Clone, Debug)]
struct SharedGate(Arc<Mutex<Ledger>>);

impl RetryGate for SharedGate {
    fn try_acquire(&mut self, now: Instant, cost: RetryCost) -> Result<(), Instant> {
        let mut ledger = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let result = ledger.budget.try_acquire(now, cost);
        if result.is_ok() {
            let tokens = ledger.budget.config().cost(cost);
            ledger.grants.push((now, tokens));
        }
        result
    }

    fn on_success(&mut self, now: Instant) {
        let mut ledger = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let before = ledger.budget.balance();
        ledger.budget.on_success(now);
        let refunded = ledger.budget.balance().saturating_sub(before);
        ledger.refunds.push((now, refunded));
    }

    fn counters(&self) -> BudgetCounters {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .budget
            .counters()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Happening {
    /// A response (or connection error) arrives.
    Reply,
    /// The application sends an event.
    Event,
    /// The session's wake-up (valid while its generation matches).
    Wake(u64),
}

struct Member {
    session: Session,
    server: ServerModel,
    generation: u64,
    in_flight: Vec<(RequestId, Response, bool)>,
}

/// Runs a fleet. See the [module docs](self).
pub fn run_fleet(config: &FleetConfig) -> FleetReport {
    let mut rng = Rng::new(config.seed);
    let gate = config.budget.and_then(|b| {
        RetryBudget::new(b).ok().map(|budget| {
            SharedGate(Arc::new(Mutex::new(Ledger {
                budget,
                grants: Vec::new(),
                refunds: Vec::new(),
            })))
        })
    });
    let end = Instant::ZERO.saturating_add(config.length);
    let mut report = FleetReport::default();
    // (time, session, kind, sequence) — the sequence keeps ties in insertion order.
    let mut queue: BinaryHeap<Reverse<(Instant, u64, usize, Happening)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut push = |queue: &mut BinaryHeap<_>, at: Instant, who: usize, what: Happening| {
        seq += 1;
        queue.push(Reverse((at, seq, who, what)));
    };
    let mut members: Vec<Member> = Vec::with_capacity(config.sessions);
    for i in 0..config.sessions {
        let session_config = SessionConfig::new(format!("s{i}"));
        let Ok(mut session) = Session::new(session_config, rng.fork(), Instant::ZERO) else {
            continue;
        };
        if let Some(gate) = &gate {
            session.set_retry_gate(Box::new(gate.clone()));
        }
        members.push(Member {
            session,
            server: ServerModel::default(),
            generation: 0,
            in_flight: Vec::new(),
        });
        // A first wake-up at zero, so that every session's first requests go out.
        push(&mut queue, Instant::ZERO, i, Happening::Wake(0));
        for _ in 0..config.events_per_session {
            let at = Instant::ZERO.saturating_add(
                rng.duration_between(Duration::from_secs(1), config.outage.end.since_origin()),
            );
            push(&mut queue, at, i, Happening::Event);
        }
    }
    let mut per_second: std::collections::BTreeMap<u64, u64> = Default::default();
    let mut now = Instant::ZERO;
    let mut i = 0;
    loop {
        // Drain member `i` after whatever was fed to it.
        if i < members.len() {
            let member = &mut members[i];
            let wake = loop {
                match member.session.poll_output() {
                    Poll::Output(Output::Send(request)) => {
                        let down = config.outage.contains(now);
                        if request.endpoint != Endpoint::Heartbeat && now >= config.outage.start {
                            *per_second.entry(now.as_micros() / 1_000_000).or_default() += 1;
                            report.requests_in_outage += u64::from(down);
                        }
                        let response = if down {
                            Response::default()
                        } else {
                            member.server.handle(now, request.endpoint, &request.body)
                        };
                        member.in_flight.push((request.id, response, down));
                        push(
                            &mut queue,
                            now.saturating_add(config.latency * 2),
                            i,
                            Happening::Reply,
                        );
                    }
                    Poll::Output(Output::HandedBack { events, .. }) => {
                        report.handed_back += events.len() as u64;
                    }
                    Poll::Output(_) => {}
                    Poll::Timeout(wake) => break wake,
                }
            };
            member.generation += 1;
            if let Some(wake) = wake {
                push(&mut queue, wake.at, i, Happening::Wake(member.generation));
            }
        }
        let Some(Reverse((at, _, who, what))) = queue.pop() else {
            break;
        };
        if at > end {
            break;
        }
        report.steps += 1;
        now = at;
        i = who;
        let member = &mut members[who];
        match what {
            Happening::Reply => {
                let (id, response, failed) = member.in_flight.remove(0);
                if failed {
                    let error = tether_core::session::TransportError {
                        message: "server down".into(),
                    };
                    member.session.handle_transport_error(now, id, &error);
                } else {
                    member.session.handle_response(now, id, response);
                }
            }
            Happening::Event => {
                let payload = serde_json::json!({"type": "work", "n": report.sent});
                if member.session.send_event(now, Event::new(payload)).is_ok() {
                    report.sent += 1;
                }
            }
            Happening::Wake(generation) if generation == member.generation => {
                member.session.handle_timeout(now);
            }
            // A stale wake-up: the session was drained since and named a newer one.
            Happening::Wake(_) => i = usize::MAX,
        }
    }
    for (n, member) in members.iter().enumerate() {
        if member.session.status().is_terminal() {
            report.ended.push((n, member.session.status()));
        }
        report.delivered += member.server.events(Stream::Events).len() as u64;
        report.retries += member.session.counters().budget_granted;
        if let Some(last) = member.server.events(Stream::Events).last() {
            report.last_delivery = report.last_delivery.max(Some(last.at));
        }
    }
    report.peak_requests_per_sec = per_second.values().copied().max().unwrap_or(0);
    if let Some(gate) = &gate {
        let ledger = gate.0.lock().unwrap_or_else(PoisonError::into_inner);
        let config_budget = *ledger.budget.config();
        report.budget = Some(ledger.budget.counters());
        let start = config.outage.start;
        let mut spent = 0u64;
        let mut refunds = ledger.refunds.iter().peekable();
        let mut refunded = 0u64;
        for &(at, tokens) in &ledger.grants {
            if at < start {
                continue;
            }
            while let Some(&&(r_at, r)) = refunds.peek() {
                if r_at > at {
                    break;
                }
                if r_at >= start {
                    refunded += r;
                }
                refunds.next();
            }
            spent += tokens;
            if config.outage.contains(at) {
                report.retries_in_outage += 1;
            }
            let elapsed = u128::from(at.as_micros() - start.as_micros());
            let refill = elapsed * u128::from(config_budget.refill_per_sec) / 1_000_000;
            let bound = u128::from(config_budget.capacity) + refill + u128::from(refunded);
            if u128::from(spent) > bound {
                report.bound_violations.push((at, spent));
            }
        }
    }
    report
}
