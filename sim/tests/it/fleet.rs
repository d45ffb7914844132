//! 1 000 sessions against a server that is down for five minutes and comes back: with a shared
//! retry budget the retries stay under the budget's bound, and every event still lands.

use tether_core::budget::{MILLI, RetryBudgetConfig};
use tether_sim::fleet::{FleetConfig, run_fleet};

#[test]
fn a_shared_budget_bounds_the_retry_storm_and_every_event_lands() {
    let mut config = FleetConfig::new(7, 1_000);
    config.budget = Some(RetryBudgetConfig::aws_standard());
    let budgeted = run_fleet(&config);
    eprintln!("budgeted: {budgeted:#?}");
    assert_eq!(budgeted.sent, 3_000);
    assert_eq!(budgeted.delivered, budgeted.sent, "every event lands");
    assert_eq!(budgeted.handed_back, 0);
    assert!(
        budgeted.bound_violations.is_empty(),
        "{:?}",
        budgeted.bound_violations
    );
    // Five minutes down: at most 500 tokens + 5 a second for 300 s, at 5 tokens a retry.
    let bound = (500 * MILLI + 5 * MILLI * 300) / (5 * MILLI);
    assert!(
        budgeted.retries_in_outage <= bound,
        "{}",
        budgeted.retries_in_outage
    );
    assert!(budgeted.budget.is_some_and(|b| b.waits > 0));

    config.budget = None;
    let free = run_fleet(&config);
    eprintln!("unbudgeted: {free:#?}");
    assert_eq!(free.delivered, free.sent);
    assert!(free.requests_in_outage > budgeted.requests_in_outage);
}

#[test]
fn a_grpc_style_budget_also_bounds_it() {
    let mut config = FleetConfig::new(3, 200);
    config.budget = Some(RetryBudgetConfig::grpc(100, 100).with_refill_per_sec(2 * MILLI));
    let report = run_fleet(&config);
    assert_eq!(report.delivered, report.sent);
    assert!(report.bound_violations.is_empty());
    // 50 tokens above the reserve, 2 a second for 300 s, 1 a retry.
    assert!(
        report.retries_in_outage <= 50 + 600,
        "{}",
        report.retries_in_outage
    );
}
