//! The fleet scenario: many sessions, each a real driver against a server of its own (its own
//! session on the server), on one virtual clock; the servers go down together for an outage,
//! and come back. The sessions may share one [`SharedRetryBudget`] through their
//! [`Settings`]: the retry storm the budget exists for.
//!
//! During the outage the network refuses every request with a connection error after one round
//! trip ([`Network::with_outage`]); nothing reaches a server. Each session's caller sends a few
//! events at seeded times before the outage ends. The run lasts [`FleetConfig::length`].
//!
//! The token-bucket bound is checked from a ledger the scenario keeps: after every step of the
//! world it reads the shared budget's counters (tokens spent on grants, tokens refunded by
//! successes), and the world's time does not move within a step, so every grant is timed
//! exactly. At every step with a grant, the tokens spent since the outage began must be at most
//! what the bucket can have paid: its capacity less its reserve, plus the refill over the time
//! since, plus the refunds since ([`token_bucket_violations`], a pure function of the ledger
//! that does not use the budget's own balance). A step's refunds count as if they came before
//! its grants.
//!
//! ```
//! use tether_core::budget::RetryBudgetConfig;
//! use tether_sim::scenario::fleet::{FleetConfig, run_fleet};
//!
//! let mut config = FleetConfig::new(1, 20);
//! config.budget = Some(RetryBudgetConfig::aws_standard());
//! let report = run_fleet(&config)?;
//! assert!(report.passed(), "{:?}", report.violations);
//! assert_eq!(report.delivered, report.sent);
//! assert!(report.bound_violations.is_empty());
//! # Ok::<(), tether_sim::RunError>(())
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use serde_json::json;
use tether_core::batch::Event;
use tether_core::budget::{BudgetCounters, RetryBudgetConfig};
use tether_core::session::{Endpoint, Output, RequestId, SessionConfig, Status, Stream};
use tether_core::{Instant, Rng};
use tether_driver::runtime::{HttpRequest, Route};
use tether_driver::{Settings, SharedRetryBudget};
use tether_model::fault::{Delivery, Fault, FaultMix, Span};
use tether_model::{SEQ_FIELD, ServerModel};

use crate::network::Network;
use crate::report::RunError;
use crate::trace::Trace;
use crate::world::{ClientSpec, Scenario, World};

/// What to simulate.
#[derive(Clone, Debug)]
pub struct FleetConfig {
    /// The seed every random choice derives from.
    pub seed: u64,
    /// How many sessions.
    pub sessions: usize,
    /// When the servers are down (every request fails with a connection error).
    pub outage: Span,
    /// When the run ends.
    pub length: Duration,
    /// Events each session sends, at seeded times before the outage ends.
    pub events_per_session: usize,
    /// One budget shared by every session, or none.
    pub budget: Option<RetryBudgetConfig>,
    /// One-way latency of every exchange.
    pub latency: Duration,
    /// Whether to record the trace (every request and answer of every session).
    pub trace: bool,
    /// A bound on the world's steps.
    pub max_steps: u64,
}

impl FleetConfig {
    /// `sessions` sessions; the servers are down from 60 s to 360 s (five minutes); the run
    /// lasts 20 minutes; three events per session; no budget.
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
            trace: false,
            max_steps: 100_000 + 50_000 * sessions as u64,
        }
    }

    /// The same run with its trace recorded.
    pub fn traced(mut self) -> Self {
        self.trace = true;
        self
    }
}

/// What the shared budget did in one step of the world.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LedgerEntry {
    /// The step's time.
    pub at: Instant,
    /// Retries granted.
    pub granted: u64,
    /// Thousandths of a token spent on them.
    pub spent: u64,
    /// Thousandths of a token refunded by successes.
    pub refunded: u64,
}

/// What a fleet run did.
#[derive(Clone, Debug, Default)]
pub struct FleetReport {
    /// The run's seed.
    pub seed: u64,
    /// Events the sessions accepted.
    pub sent: u64,
    /// Distinct events the servers stored.
    pub delivered: u64,
    /// Events handed back to the callers.
    pub handed_back: u64,
    /// Requests (heartbeats excluded) sent during the outage, all of them failed.
    pub requests_in_outage: u64,
    /// Retries the shared budget granted, summed over sessions (zero without a budget).
    pub retries: u64,
    /// Retries granted while the servers were down.
    pub retries_in_outage: u64,
    /// The most non-heartbeat requests in any one second from the outage's start on.
    pub peak_requests_per_sec: u64,
    /// When the last event was stored.
    pub last_delivery: Option<Instant>,
    /// The shared budget at the end.
    pub budget: Option<BudgetCounters>,
    /// The shared budget's activity, step by step (empty without a budget).
    pub ledger: Vec<LedgerEntry>,
    /// Steps whose grants broke the token-bucket bound (time and tokens spent), if any.
    pub bound_violations: Vec<(Instant, u64)>,
    /// Sessions that ended (gave up, were superseded), with their last status.
    pub ended: Vec<(usize, Status)>,
    /// Requests carried, and those that met a fault (the outage's included).
    pub requests: (u64, u64),
    /// The world's steps.
    pub steps: u64,
    /// Every broken invariant, described.
    pub violations: Vec<String>,
    /// The trace, if recorded.
    pub trace: Option<Trace>,
}

impl FleetReport {
    /// Whether every invariant held.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// The steps of `ledger` (from `start` on) whose grants spent more than a bucket of `config`
/// can have paid since `start`: its capacity less its reserve, plus the refill over the time
/// since `start`, plus the refunds since (those of a step counted before its grants). Each is
/// the step's time and the tokens spent by then, in thousandths.
pub fn token_bucket_violations(
    config: &RetryBudgetConfig,
    start: Instant,
    ledger: &[LedgerEntry],
) -> Vec<(Instant, u64)> {
    let (mut spent, mut refunded) = (0u128, 0u128);
    let mut violations = Vec::new();
    for entry in ledger.iter().filter(|e| e.at >= start) {
        refunded += u128::from(entry.refunded);
        if entry.spent == 0 {
            continue;
        }
        spent += u128::from(entry.spent);
        let elapsed = u128::from(entry.at.as_micros() - start.as_micros());
        let refill = elapsed * u128::from(config.refill_per_sec) / 1_000_000;
        let bound = u128::from(config.capacity.saturating_sub(config.reserve)) + refill + refunded;
        if spent > bound {
            violations.push((entry.at, u64::try_from(spent).unwrap_or(u64::MAX)));
        }
    }
    violations
}

/// The scenario's state.
struct Fleet<'a> {
    config: &'a FleetConfig,
    /// Per step: the session, and the event's seq (`None`: the run is over).
    steps: VecDeque<(Instant, Option<(usize, u64)>)>,
    over: bool,
    budget: Option<SharedRetryBudget>,
    last: BudgetCounters,
    /// Per session: the seqs it gave.
    given: Vec<Vec<u64>>,
    per_second: BTreeMap<u64, u64>,
    trace: Option<Trace>,
    report: FleetReport,
}

/// Runs a fleet in the world and checks it (see the [module docs](self)).
///
/// # Errors
/// The budget's parameters, or a session's settings, are invalid.
pub fn run_fleet(config: &FleetConfig) -> Result<FleetReport, RunError> {
    let mix = FaultMix {
        base_rtt: config.latency * 2,
        ..FaultMix::calm()
    };
    let network = Network::new(config.seed, mix, config.length)
        .map_err(RunError::Mix)?
        .with_outage(config.outage);
    let servers = (0..config.sessions)
        .map(|_| ServerModel::default())
        .collect();
    let mut world = World::new(network, servers, config.max_steps);
    let budget = match config.budget {
        Some(b) => {
            Some(SharedRetryBudget::new(b).map_err(|e| RunError::Driver(format!("budget: {e}")))?)
        }
        None => None,
    };
    let mut rng = Rng::new(config.seed);
    let mut steps = Vec::new();
    for i in 0..config.sessions {
        let seed = rng.next_u64();
        let mut settings = Settings::new(format!("http://sim.invalid/v1/code/sessions/s{i}"));
        settings
            .config(SessionConfig::new(format!("s{i}")))
            .seed(seed);
        if let Some(budget) = &budget {
            settings.retry_budget(budget.clone());
        }
        world
            .add_client(ClientSpec {
                settings,
                seed,
                server: i,
                store: None,
            })
            .map_err(|e| RunError::Driver(e.to_string()))?;
        for n in 0..config.events_per_session as u64 {
            let at = Instant::ZERO
                + rng.duration_between(Duration::from_secs(1), config.outage.end.since_origin());
            steps.push((at, Some((i, n))));
        }
    }
    // Stable: at one instant, sessions in order.
    steps.sort_by_key(|(at, _)| *at);
    steps.push((Instant::ZERO + config.length, None));
    let mut scenario = Fleet {
        config,
        steps: steps.into(),
        over: false,
        budget,
        last: BudgetCounters::default(),
        given: vec![Vec::new(); config.sessions],
        per_second: BTreeMap::new(),
        trace: config.trace.then(Trace::new),
        report: FleetReport {
            seed: config.seed,
            ..FleetReport::default()
        },
    };
    world.run(&mut scenario);
    Ok(scenario.finish(&mut world))
}

impl Fleet<'_> {
    fn line(&mut self, at: Instant, args: std::fmt::Arguments<'_>) {
        if let Some(trace) = &mut self.trace {
            trace.line(at, args);
        }
    }

    fn finish(mut self, world: &mut World) -> FleetReport {
        let mut report = std::mem::take(&mut self.report);
        report.steps = world.steps();
        report.requests = (world.requests, world.faults);
        report.peak_requests_per_sec = self.per_second.values().copied().max().unwrap_or(0);
        let mut granted = 0;
        for (i, client) in world.clients.iter().enumerate() {
            let driver = client.shared().lock();
            let status = driver.status();
            if status.is_terminal() {
                report.ended.push((i, status));
            }
            granted += driver.counters().session.budget_granted;
        }
        report.retries = granted;
        let violations = &mut report.violations;
        let mut missing = 0usize;
        for (i, server) in world.servers.iter().enumerate() {
            let events = server.events(Stream::Events);
            report.delivered += events.len() as u64;
            if let Some(last) = events.last() {
                report.last_delivery = report.last_delivery.max(Some(last.at));
            }
            if server.seqs(Stream::Events) != self.given[i] {
                missing += 1;
                if missing <= 10 {
                    violations.push(format!(
                        "session s{i}: the server holds events {:?}, the caller gave {:?}",
                        server.seqs(Stream::Events),
                        self.given[i]
                    ));
                }
            }
        }
        if missing > 10 {
            violations.push(format!(
                "{} more sessions' events did not all land once, in order",
                missing - 10
            ));
        }
        if report.handed_back > 0 {
            violations.push(format!("{} events handed back", report.handed_back));
        }
        for (i, status) in &report.ended {
            violations.push(format!("session s{i} ended: {status}"));
        }
        if world.step_limit_hit() {
            violations.push(format!(
                "the run did not finish within {} steps: a livelock?",
                self.config.max_steps
            ));
        }
        if let (Some(budget), Some(config)) = (&self.budget, &self.config.budget) {
            let counters = budget.counters();
            report.budget = Some(counters);
            report.retries_in_outage = report
                .ledger
                .iter()
                .filter(|e| self.config.outage.contains(e.at))
                .map(|e| e.granted)
                .sum();
            report.bound_violations =
                token_bucket_violations(config, self.config.outage.start, &report.ledger);
            if let Some((at, spent)) = report.bound_violations.first() {
                violations.push(format!(
                    "the shared budget broke its token bound {} times, first at {at} ({spent} \
                     thousandths of a token spent since the outage began)",
                    report.bound_violations.len()
                ));
            }
            if counters.granted != granted {
                violations.push(format!(
                    "the shared budget granted {} retries, the sessions count {granted}",
                    counters.granted
                ));
            }
        }
        report.trace = self.trace.take();
        report
    }
}

impl Scenario for Fleet<'_> {
    fn due(&self) -> Option<Instant> {
        self.steps.front().map(|s| s.0)
    }

    fn act(&mut self, world: &mut World) {
        let Some((at, step)) = self.steps.pop_front() else {
            return;
        };
        let Some((c, seq)) = step else {
            self.line(at, format_args!("the run ends"));
            self.over = true;
            return;
        };
        let Some(tether) = world.client(c).tether() else {
            return;
        };
        let event = Event::new(json!({ SEQ_FIELD: seq, "type": "work" }));
        let accepted = tether
            .send(Stream::Events, event, Duration::ZERO)
            .try_take()
            .is_some_and(|r| r.is_ok());
        if accepted {
            self.given[c].push(seq);
            self.report.sent += 1;
        }
        self.line(
            at,
            format_args!("s{c} app event seq={seq} accepted={accepted}"),
        );
    }

    fn settle(&mut self, world: &mut World) {
        let Some(budget) = &self.budget else {
            return;
        };
        let now = world.now();
        let counters = budget.counters();
        let last = self.last;
        if (counters.granted, counters.spent, counters.refunded)
            != (last.granted, last.spent, last.refunded)
        {
            self.report.ledger.push(LedgerEntry {
                at: now,
                granted: counters.granted - last.granted,
                spent: counters.spent - last.spent,
                refunded: counters.refunded - last.refunded,
            });
            self.last = counters;
        }
    }

    fn sending(&mut self, world: &mut World, _: usize, request: &HttpRequest) {
        let now = world.now();
        let heartbeat = request.route == Route::Worker(Endpoint::Heartbeat);
        if !heartbeat && now >= self.config.outage.start {
            *self
                .per_second
                .entry(now.as_micros() / 1_000_000)
                .or_default() += 1;
            if self.config.outage.contains(now) {
                self.report.requests_in_outage += 1;
            }
        }
    }

    fn sent(&mut self, world: &mut World, c: usize, request: &HttpRequest, fault: &Fault) {
        if self.trace.is_some() {
            let now = world.now();
            let route = match request.route {
                Route::Worker(endpoint) => endpoint.to_string(),
                _ => "a thread route".into(),
            };
            let body = request.body.len();
            match fault {
                Fault::None => {
                    self.line(now, format_args!("s{c} -> {} {route} {body} B", request.id))
                }
                fault => self.line(
                    now,
                    format_args!("s{c} -> {} {route} {body} B: {fault}", request.id),
                ),
            }
        }
    }

    fn answered(&mut self, world: &mut World, c: usize, id: RequestId, delivery: &Delivery) {
        let now = world.now();
        match delivery {
            Delivery::Respond { response, .. } => {
                self.line(now, format_args!("s{c} <- {id} {}", response.status));
            }
            Delivery::TransportError { error, .. } => {
                self.line(now, format_args!("s{c} <- {id} {error}"));
            }
            Delivery::Hang => {}
        }
    }

    fn output(&mut self, _: &mut World, c: usize, at: Instant, output: Output) {
        match output {
            Output::HandedBack { stream, events, .. } if stream != Stream::Delivery => {
                self.report.handed_back += events.len() as u64;
                self.line(at, format_args!("s{c} handed back {}", events.len()));
            }
            Output::Status(status) => self.line(at, format_args!("s{c} status {status}")),
            Output::Delivered { stream, events } => {
                self.line(at, format_args!("s{c} delivered {stream} {}", events.len()));
            }
            _ => {}
        }
    }

    fn done(&self, _: &World) -> bool {
        self.over
    }
}
