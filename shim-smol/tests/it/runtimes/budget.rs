//! The retry budget users share, on every runtime: sessions given clones of one
//! `SharedRetryBudget` spend one balance while the server fails, wait (status
//! `BudgetExhausted`) once it is spent, and are paid back by their successes. (Tokio's paused
//! time has its own test in tether-tokio; the budget's jitter is proven in the core.)

use std::time::{Duration, Instant};

use serde_json::json;
use tether_core::budget::{MILLI, RetryBudgetConfig};
use tether_core::session::Status;
use tether_driver::SharedRetryBudget;
use tether_server::{FaultPlan, Server, ServerConfig};

use super::{Feed, Opts, Runtime, Session, on_every_runtime};
use crate::common::fast_config;

on_every_runtime! {
    sessions_sharing_a_budget_spend_one_balance_wait_when_it_is_spent_and_are_paid_back within 40;
}

const T: Duration = Duration::from_secs(10);
const SESSIONS: usize = 4;

/// 5 tokens, a retry costs 1, a success refunds half of one, and the bucket regains 2 a
/// second: over an outage of `t` seconds the fleet may retry about `5 + 2t` times in all.
fn budget_config() -> RetryBudgetConfig {
    RetryBudgetConfig {
        capacity: 5 * MILLI,
        retry_cost: MILLI,
        timeout_cost: MILLI,
        success_refund: MILLI / 2,
        reserve: 0,
        refill_per_sec: 2 * MILLI,
    }
}

pub fn sessions_sharing_a_budget_spend_one_balance_wait_when_it_is_spent_and_are_paid_back(
    rt: &dyn Runtime,
) {
    let server = Server::start(ServerConfig::default()).unwrap();
    let inspector = server.inspector();
    let budget = SharedRetryBudget::new(budget_config()).unwrap();
    let ids: Vec<String> = (0..SESSIONS).map(|n| format!("budget-{n}")).collect();
    let sessions: Vec<Box<dyn Session>> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| {
            let opts = Opts::new(server.session_url(id), fast_config(id))
                .seed(n as u64 + 1)
                .budget(budget.clone());
            rt.start(opts)
        })
        .collect();
    let mut statuses: Vec<Box<dyn Feed<Status>>> = sessions.iter().map(|s| s.statuses()).collect();
    for feed in &mut statuses {
        feed.read_until(T, &|s| *s == Status::Connected);
    }
    assert_eq!(budget.counters().granted, 0, "no retry before the outage");

    // Every request fails: each session's event is retried, from the one balance.
    inspector.set_faults("5xx=1.0,seed=4".parse().unwrap());
    let outage = Instant::now();
    for (n, session) in sessions.iter().enumerate() {
        session.send_event(json!({"seq": n}), T).unwrap();
    }
    std::thread::sleep(Duration::from_millis(1500));
    let during = budget.counters();
    let elapsed = outage.elapsed().as_secs_f64();
    inspector.set_faults(FaultPlan::none());

    // One balance: what the budget granted is what the sessions were granted, and each
    // session's counters show the whole budget.
    let granted: u64 = sessions
        .iter()
        .map(|s| s.counters().session.budget_granted)
        .sum();
    let waits: Vec<u64> = sessions
        .iter()
        .map(|s| s.counters().session.budget_waits)
        .collect();
    let whole = budget.counters();
    assert_eq!(granted, whole.granted);
    for session in &sessions {
        assert_eq!(
            session.counters().retry_budget.map(|b| b.granted),
            Some(whole.granted)
        );
    }
    // Spent, then refused: the fleet retried at the budget's rate, not each session at its
    // backoff's (some 20 retries a second each), and several sessions waited.
    assert!(during.waits > 0, "{during:?}");
    let bound = 5.0 + 2.0 * elapsed + 1.0;
    assert!(
        (during.granted as f64) <= bound,
        "{} retries granted in {elapsed:.2} s, above {bound:.1}",
        during.granted
    );
    assert!(during.granted >= 5, "the balance was spent: {during:?}");
    assert!(
        waits.iter().filter(|w| **w > 0).count() >= 2,
        "waits per session {waits:?}"
    );
    let exhausted = statuses
        .iter_mut()
        .map(|feed| feed.drain())
        .filter(|seen| {
            seen.iter()
                .any(|s| matches!(s, Status::BudgetExhausted { .. }))
        })
        .count();
    assert!(exhausted >= 1, "no session said it waits for the budget");

    // The server is back: the parked retries go as the budget pays, and the successes refund.
    for session in &sessions {
        session.flush(T).expect("flushed");
    }
    let after = budget.counters();
    assert!(
        after.refunded > during.refunded,
        "{during:?} then {after:?}"
    );
    for (n, session) in sessions.iter().enumerate() {
        let report = session.close(T);
        assert!(report.all_delivered(), "{report:?}");
        let stored = inspector.events(&ids[n]);
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0]["seq"], n);
    }
    server.shutdown().unwrap();
}
