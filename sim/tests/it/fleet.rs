//! 1 000 sessions in the world (each a real driver) against servers that are down for five
//! minutes and come back: with a shared retry budget the retries stay under the budget's
//! bound, and every event still lands.

use tether_core::budget::{MILLI, RetryBudgetConfig};
use tether_sim::scenario::fleet::token_bucket_violations;
use tether_sim::{FleetConfig, FleetReport, run_fleet};

fn run(config: &FleetConfig) -> FleetReport {
    run_fleet(config).expect("a valid configuration")
}

fn summary(report: &FleetReport) -> String {
    format!(
        "sent {} delivered {} handed back {} requests in outage {} retries {} in outage {} \
         peak/s {} last delivery {:?} budget {:?} steps {} violations {:?}",
        report.sent,
        report.delivered,
        report.handed_back,
        report.requests_in_outage,
        report.retries,
        report.retries_in_outage,
        report.peak_requests_per_sec,
        report.last_delivery,
        report.budget,
        report.steps,
        report.violations,
    )
}

#[test]
fn a_shared_budget_bounds_the_retry_storm_and_every_event_lands() {
    let mut config = FleetConfig::new(7, 1_000);
    config.budget = Some(RetryBudgetConfig::aws_standard());
    let budgeted = run(&config);
    eprintln!("budgeted: {}", summary(&budgeted));
    assert!(budgeted.passed(), "{:?}", budgeted.violations);
    assert_eq!(budgeted.sent, 3_000);
    assert_eq!(budgeted.delivered, budgeted.sent, "every event lands");
    assert_eq!(budgeted.handed_back, 0);
    assert!(budgeted.bound_violations.is_empty());
    // Five minutes down: at most 500 tokens + 5 a second for 300 s, at 5 tokens a retry.
    let bound = (500 * MILLI + 5 * MILLI * 300) / (5 * MILLI);
    assert!(
        budgeted.retries_in_outage <= bound,
        "{}",
        budgeted.retries_in_outage
    );
    assert!(budgeted.budget.is_some_and(|b| b.waits > 0));

    // The bound check can fail: the same grants against a bucket a fifth as large, refilling
    // a fifth as fast, break it.
    let tight = RetryBudgetConfig {
        capacity: 100 * MILLI,
        refill_per_sec: MILLI,
        ..RetryBudgetConfig::aws_standard()
    };
    let broken = token_bucket_violations(&tight, config.outage.start, &budgeted.ledger);
    assert!(!broken.is_empty(), "a tighter bucket's bound held");

    config.budget = None;
    let free = run(&config);
    eprintln!("unbudgeted: {}", summary(&free));
    assert!(free.passed(), "{:?}", free.violations);
    assert_eq!(free.delivered, free.sent);
    assert!(free.requests_in_outage > budgeted.requests_in_outage);
}

#[test]
fn a_grpc_style_budget_also_bounds_it() {
    let mut config = FleetConfig::new(3, 200);
    config.budget = Some(RetryBudgetConfig::grpc(100, 100).with_refill_per_sec(2 * MILLI));
    let report = run(&config);
    assert!(report.passed(), "{:?}", report.violations);
    assert_eq!(report.delivered, report.sent);
    // 50 tokens above the reserve, 2 a second for 300 s, 1 a retry.
    assert!(
        report.retries_in_outage <= 50 + 600,
        "{}",
        report.retries_in_outage
    );
}

#[test]
fn small_fleets_pass_and_replay_to_the_same_trace() {
    for seed in 0..20 {
        let mut config = FleetConfig::new(seed, 5);
        config.budget = (seed % 2 == 0).then(RetryBudgetConfig::aws_standard);
        let report = run(&config);
        assert!(report.passed(), "seed {seed}: {:?}", report.violations);
        assert_eq!(report.sent, 15);
    }
    let mut config = FleetConfig::new(11, 4).traced();
    config.budget = Some(RetryBudgetConfig::aws_standard());
    let (a, b) = (run(&config), run(&config));
    let (a, b) = (a.trace.expect("traced"), b.trace.expect("traced"));
    assert!(a.lines() > 100, "{}", a.as_str());
    assert_eq!(a.as_str(), b.as_str());
}
