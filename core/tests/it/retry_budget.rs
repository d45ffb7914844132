//! The retry budget inside a session, in simulated time: retries wait for it (never dropped),
//! its rate bounds them, its state shows in statuses and counters, without failures a budget
//! changes nothing, and a fleet sharing one budget does not ask it again at one instant.

use core::time::Duration;
use std::sync::{Arc, Mutex};

use serde_json::json;
use tether_core::batch::Event;
use tether_core::budget::{
    BudgetCounters, MILLI, RetryBudget, RetryBudgetConfig, RetryCost, RetryGate,
};
use tether_core::session::{Endpoint, Output, Response, Session, SessionConfig, Status, Timer};
use tether_core::{Instant, Poll, Rng};

/// What a run saw.
#[derive(Debug, Default)]
struct Record {
    /// Every request sent: when, and where.
    sends: Vec<(Instant, Endpoint)>,
    statuses: Vec<Status>,
    delivered: usize,
    handed_back: usize,
    budget_wakes: usize,
    trace: Vec<String>,
}

/// Runs `session` until `until` against a server that answers `server(now, endpoint)` after 10 ms.
fn run(
    mut session: Session,
    events: &[Instant],
    server: impl Fn(Instant, Endpoint) -> u16,
    until: Instant,
) -> Record {
    let mut record = Record::default();
    let mut now = Instant::ZERO;
    let mut replies: Vec<(Instant, tether_core::session::RequestId, u16)> = Vec::new();
    let mut pending_events: Vec<Instant> = events.to_vec();
    for _round in 0..1_000_000 {
        let wake = loop {
            match session.poll_output() {
                Poll::Output(Output::Send(request)) => {
                    record.sends.push((now, request.endpoint));
                    record.trace.push(format!("{now} -> {}", request.endpoint));
                    let status = server(now, request.endpoint);
                    replies.push((
                        now.saturating_add(Duration::from_millis(10)),
                        request.id,
                        status,
                    ));
                }
                Poll::Output(Output::Status(s)) => {
                    record.trace.push(format!("{now} status {s}"));
                    record.statuses.push(s);
                }
                Poll::Output(Output::Delivered { events, .. }) => record.delivered += events.len(),
                Poll::Output(Output::HandedBack { events, .. }) => {
                    record.handed_back += events.len();
                }
                Poll::Output(other) => record.trace.push(format!("{now} {other:?}")),
                Poll::Timeout(wake) => break wake,
            }
        };
        let next_reply = replies.iter().map(|r| r.0).min();
        let next_event = pending_events.iter().copied().min();
        let next_wake = wake.map(|w| w.at);
        let Some(next) = [next_reply, next_event, next_wake]
            .into_iter()
            .flatten()
            .min()
        else {
            break;
        };
        if next > until {
            break;
        }
        now = next;
        if let Some(i) = replies.iter().position(|r| r.0 == now) {
            let (_, id, status) = replies.remove(i);
            let body = if status == 200 {
                r#"{"worker":{}}"#
            } else {
                ""
            };
            session.handle_response(now, id, Response::new(status, body));
        } else if let Some(i) = pending_events.iter().position(|&t| t == now) {
            pending_events.remove(i);
            session
                .send_event(now, Event::new(json!({"type": "e"})))
                .expect("room");
        } else {
            if wake.is_some_and(|w| w.reason == Timer::RetryBudget) {
                record.budget_wakes += 1;
            }
            session.handle_timeout(now);
        }
    }
    record
}

fn config(budget: Option<RetryBudgetConfig>) -> SessionConfig {
    let mut config = SessionConfig::new("s").with_epoch(3);
    config.retry_budget = budget;
    config
}

const DOWN_UNTIL: Instant = Instant::from_secs(300);

/// Events and state fail for five minutes; heartbeats too.
fn down_for_five_minutes(now: Instant, endpoint: Endpoint) -> u16 {
    match endpoint {
        Endpoint::PutWorker | Endpoint::GetWorker if now < Instant::from_secs(1) => 200,
        _ if now < DOWN_UNTIL => 503,
        _ => 200,
    }
}

#[test]
fn an_empty_budget_makes_retries_wait_and_its_rate_bounds_them() {
    // 10 tokens, a retry costs 5, a timeout 10, and the bucket regains 0.1 token a second:
    // over 300 s at most (10 + 30) / 5 = 8 retries.
    let budget = RetryBudgetConfig {
        capacity: 10 * MILLI,
        retry_cost: 5 * MILLI,
        timeout_cost: 10 * MILLI,
        success_refund: MILLI,
        reserve: 0,
        refill_per_sec: MILLI / 10,
    };
    let events = [Instant::from_secs(2), Instant::from_secs(100)];
    let session = Session::new(config(Some(budget)), Rng::new(5), Instant::ZERO).unwrap();
    let record = run(
        session,
        &events,
        down_for_five_minutes,
        Instant::from_secs(900),
    );

    let event_sends: Vec<Instant> = record
        .sends
        .iter()
        .filter(|(_, e)| *e == Endpoint::Events)
        .map(|(t, _)| *t)
        .collect();
    let during = event_sends.iter().filter(|t| **t < DOWN_UNTIL).count();
    // The first send is not a retry; the rest are.
    assert!(
        during - 1 <= 8,
        "{during} sends while down: {event_sends:?}"
    );
    assert!(
        record
            .statuses
            .iter()
            .any(|s| matches!(s, Status::BudgetExhausted { .. }))
    );
    assert!(record.budget_wakes > 0);
    // Nothing was dropped: both events landed once the server came back.
    assert_eq!(record.delivered, 2, "{:#?}", record.trace);
    assert_eq!(record.handed_back, 0);
    assert_eq!(record.statuses.last(), Some(&Status::Connected));

    // Without the budget, the uploader's own backoff retries more often.
    let session = Session::new(config(None), Rng::new(5), Instant::ZERO).unwrap();
    let unbudgeted = run(
        session,
        &events,
        down_for_five_minutes,
        Instant::from_secs(900),
    );
    let unbudgeted_during = unbudgeted
        .sends
        .iter()
        .filter(|(t, e)| *e == Endpoint::Events && *t < DOWN_UNTIL)
        .count();
    assert!(
        unbudgeted_during > during,
        "{unbudgeted_during} vs {during}"
    );
    assert_eq!(unbudgeted.delivered, 2);
}

#[test]
fn the_budget_state_shows_in_the_counters() {
    let budget = RetryBudgetConfig::grpc(4, 100);
    let mut session = Session::new(config(Some(budget)), Rng::new(9), Instant::ZERO).unwrap();
    assert_eq!(session.retry_budget().map(|b| b.balance), Some(4 * MILLI));
    let _ = session.send_event(Instant::ZERO, Event::new(json!({"a": 1})));
    let mut now = Instant::ZERO;
    let mut sent = 0;
    for _ in 0..10_000 {
        match session.poll_output() {
            Poll::Output(Output::Send(request)) => {
                let status = if request.endpoint == Endpoint::Events {
                    500
                } else {
                    200
                };
                sent += usize::from(request.endpoint == Endpoint::Events);
                session.handle_response(now, request.id, Response::new(status, r#"{"worker":{}}"#));
            }
            Poll::Output(_) => {}
            Poll::Timeout(Some(wake)) if wake.at < Instant::from_secs(60) => {
                now = wake.at;
                session.handle_timeout(now);
            }
            Poll::Timeout(_) => break,
        }
    }
    let counters = session.counters();
    let budget = session.retry_budget().unwrap();
    // 4 tokens with a reserve above 2: one retry at once, then the refill (0.1/s) and the
    // successes (0.1 each) pay for a retry about every 10 s.
    assert!(counters.budget_waits > 0);
    assert_eq!(counters.budget_granted, budget.granted);
    assert!((2..=2 + 60 / 10).contains(&sent), "{sent}");
}

#[test]
fn without_failures_a_budget_changes_nothing() {
    let events: Vec<Instant> = (1..40).map(|i| Instant::from_millis(i * 777)).collect();
    let ok = |_: Instant, _: Endpoint| 200;
    let until = Instant::from_secs(120);
    let plain = run(
        Session::new(config(None), Rng::new(1), Instant::ZERO).unwrap(),
        &events,
        ok,
        until,
    );
    let budgeted = run(
        Session::new(
            config(Some(RetryBudgetConfig::aws_standard())),
            Rng::new(1),
            Instant::ZERO,
        )
        .unwrap(),
        &events,
        ok,
        until,
    );
    assert_eq!(plain.trace, budgeted.trace);
    assert_eq!(plain.delivered, 39);
}

/// One budget for many sessions of one simulated process, as a driver shares one behind a lock
/// (here every session runs on the same clock, so no conversion is needed).
#[derive(Clone, Debug)]
struct SharedGate(Arc<Mutex<RetryBudget>>);

impl RetryGate for SharedGate {
    fn try_acquire(&mut self, now: Instant, cost: RetryCost) -> Result<(), Instant> {
        self.0.lock().unwrap().try_acquire(now, cost)
    }

    fn on_success(&mut self, now: Instant) {
        self.0.lock().unwrap().on_success(now);
    }

    fn counters(&self) -> BudgetCounters {
        self.0.lock().unwrap().counters()
    }
}

/// What a fleet sharing one budget did.
#[derive(Debug, PartialEq)]
struct Fleet {
    /// Every time a session asked the budget again for a parked retry: when, and which session.
    asks: Vec<(Instant, usize)>,
    delivered: usize,
    handed_back: usize,
    budget: BudgetCounters,
}

/// Sessions seeded `seeds`, sharing one budget, each sending one event at 2 s, against a server
/// that answers `server(now, endpoint)` after 10 ms; run until `until`.
fn fleet(seeds: &[u64], server: impl Fn(Instant, Endpoint) -> u16, until: Instant) -> Fleet {
    let budget = Arc::new(Mutex::new(RetryBudget::new(slow_budget()).unwrap()));
    let mut sessions: Vec<Session> = seeds
        .iter()
        .map(|&seed| {
            let mut s = Session::new(config(None), Rng::new(seed), Instant::ZERO).unwrap();
            s.set_retry_gate(Box::new(SharedGate(Arc::clone(&budget))));
            s
        })
        .collect();
    let mut wakes = vec![None; sessions.len()];
    let mut unsent: Vec<usize> = (0..sessions.len()).collect();
    let mut replies: Vec<(Instant, usize, tether_core::session::RequestId, u16)> = Vec::new();
    let mut fleet = Fleet {
        asks: Vec::new(),
        delivered: 0,
        handed_back: 0,
        budget: BudgetCounters::default(),
    };
    let send_at = Instant::from_secs(2);
    let mut now = Instant::ZERO;
    for _round in 0..1_000_000 {
        for (i, session) in sessions.iter_mut().enumerate() {
            wakes[i] = loop {
                match session.poll_output() {
                    Poll::Output(Output::Send(request)) => replies.push((
                        now.saturating_add(Duration::from_millis(10)),
                        i,
                        request.id,
                        server(now, request.endpoint),
                    )),
                    Poll::Output(Output::Delivered { events, .. }) => {
                        fleet.delivered += events.len();
                    }
                    Poll::Output(Output::HandedBack { events, .. }) => {
                        fleet.handed_back += events.len();
                    }
                    Poll::Output(_) => {}
                    Poll::Timeout(wake) => break wake,
                }
            };
        }
        let next_reply = replies.iter().map(|r| r.0).min();
        let next_send = (!unsent.is_empty()).then_some(send_at);
        let next_wake = wakes.iter().flatten().map(|w| w.at).min();
        let Some(next) = [next_reply, next_send, next_wake]
            .into_iter()
            .flatten()
            .min()
        else {
            break;
        };
        if next > until {
            break;
        }
        now = next;
        // One thing at a time, in a fixed order: a reply, an event, then the first wake due.
        if let Some(at) = replies.iter().position(|r| r.0 == now) {
            let (_, i, id, status) = replies.remove(at);
            let body = if status == 200 {
                r#"{"worker":{}}"#
            } else {
                ""
            };
            sessions[i].handle_response(now, id, Response::new(status, body));
        } else if next_send == Some(now) {
            for i in unsent.drain(..) {
                sessions[i]
                    .send_event(now, Event::new(json!({"from": i})))
                    .expect("room");
            }
        } else if let Some(i) = wakes.iter().position(|w| w.is_some_and(|w| w.at == now)) {
            if wakes[i].is_some_and(|w| w.reason == Timer::RetryBudget) {
                fleet.asks.push((now, i));
            }
            sessions[i].handle_timeout(now);
        }
    }
    fleet.budget = budget.lock().unwrap().counters();
    fleet
}

/// 10 tokens, a retry costs 5, and the bucket regains 0.1 token a second: once spent, one
/// retry every 50 s for the whole fleet.
fn slow_budget() -> RetryBudgetConfig {
    RetryBudgetConfig {
        capacity: 10 * MILLI,
        retry_cost: 5 * MILLI,
        timeout_cost: 10 * MILLI,
        success_refund: MILLI,
        reserve: 0,
        refill_per_sec: MILLI / 10,
    }
}

#[test]
fn a_parked_fleet_asks_the_budget_again_at_instants_of_its_own_spread_by_seed() {
    let seeds: Vec<u64> = (1..=8).collect();
    let until = Instant::from_secs(2000);
    let run = fleet(&seeds, down_for_five_minutes, until);

    // The budget bounded the fleet, and most of it waited.
    assert!(run.asks.len() >= seeds.len(), "{:?}", run.asks);
    let parked: std::collections::BTreeSet<usize> = run.asks.iter().map(|a| a.1).collect();
    assert!(parked.len() >= seeds.len() - 2, "{parked:?}");
    // A shared budget names every waiter the same instant; with each session's own jitter no
    // two sessions ask at one instant...
    let mut at_once = std::collections::BTreeMap::<Instant, usize>::new();
    for (at, _) in &run.asks {
        *at_once.entry(*at).or_default() += 1;
    }
    let most = at_once.values().max().copied().unwrap_or(0);
    assert_eq!(most, 1, "sessions asking at one instant: {at_once:?}");
    // ...and they are spread, not a microsecond apart: the middle gap between asks is seconds.
    let instants: Vec<Instant> = at_once.keys().copied().collect();
    let mut gaps: Vec<Duration> = instants
        .windows(2)
        .map(|w| w[1].saturating_duration_since(w[0]))
        .collect();
    gaps.sort();
    let median = gaps[gaps.len() / 2];
    assert!(median >= Duration::from_secs(1), "median gap {median:?}");
    // Nothing was lost: every event landed once the server came back.
    assert_eq!((run.delivered, run.handed_back), (seeds.len(), 0));

    // Deterministic: the same seeds ask at the same instants; other seeds at others.
    assert_eq!(fleet(&seeds, down_for_five_minutes, until), run);
    let others: Vec<u64> = seeds.iter().map(|s| s + 100).collect();
    let other = fleet(&others, down_for_five_minutes, until);
    assert_ne!(other.asks, run.asks);
}
