//! The shared retry budget on tokio's paused time. The budget takes no clock: it runs on its
//! sessions' (here tokio's virtual clock, whose instants are not the process clock's), so over
//! ten virtual minutes of outage it refills by ten virtual minutes, in a blink of real time.
//! Every other runtime's budget test is in tether-smol's generic suite.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;
use tether_core::budget::{MILLI, RetryBudgetConfig};
use tether_core::session::{Endpoint, TransportError};
use tether_tokio::runtime::{AsyncTransport, BoxFuture, HttpRequest, HttpResponse};
use tether_tokio::{SharedRetryBudget, Status};
use tokio::time::Instant;

use crate::common::{fast_config, wait_status};

/// Up until `down_from`, down (503 to everything) until `up_from`, then up again; counts the
/// event uploads it saw while down.
#[derive(Clone)]
struct Outage {
    down_from: Instant,
    up_from: Instant,
    tries_while_down: Arc<AtomicU64>,
}

impl AsyncTransport for Outage {
    fn send(&self, request: HttpRequest) -> BoxFuture<Result<HttpResponse, TransportError>> {
        let now = Instant::now();
        let down = now >= self.down_from && now < self.up_from;
        if down && request.route.worker().unwrap() == Endpoint::Events {
            self.tries_while_down.fetch_add(1, Ordering::SeqCst);
        }
        let response = match (down, request.route.worker().unwrap()) {
            (true, _) => HttpResponse::new(503, ""),
            (false, Endpoint::GetWorker) => HttpResponse::new(200, r#"{"worker":{}}"#),
            (false, _) => HttpResponse::new(200, "{}"),
        };
        Box::pin(std::future::ready(Ok(response)))
    }
}

/// 10 tokens, a retry costs 5, the bucket regains 0.1 token a second: once the first two
/// retries are spent, one every 50 s for all sessions together.
const BUDGET: RetryBudgetConfig = RetryBudgetConfig {
    capacity: 10 * MILLI,
    retry_cost: 5 * MILLI,
    timeout_cost: 5 * MILLI,
    success_refund: MILLI,
    reserve: 0,
    refill_per_sec: MILLI / 10,
};

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_shared_budget_refills_on_paused_time() {
    let real = std::time::Instant::now();
    let budget = SharedRetryBudget::new(BUDGET).unwrap();
    let start = Instant::now();
    let outage = Outage {
        down_from: start + Duration::from_secs(1),
        up_from: start + Duration::from_secs(601),
        tries_while_down: Arc::new(AtomicU64::new(0)),
    };
    let sessions: Vec<_> = (0..4)
        .map(|n| {
            let id = format!("paused-budget-{n}");
            tether_tokio::builder(format!("http://127.0.0.1:9/v1/code/sessions/{id}"))
                .config(fast_config(&id))
                .epoch(1)
                .seed(n + 1)
                .retry_budget(budget.clone())
                .transport(outage.clone())
                .start()
                .unwrap()
        })
        .collect();
    for tether in &sessions {
        wait_status(tether, Duration::from_secs(5), |s| *s == Status::Connected).await;
    }
    tokio::time::sleep_until(outage.down_from).await;
    for (n, tether) in sessions.iter().enumerate() {
        tether
            .send_event(json!({"seq": n}), Duration::from_secs(1))
            .await
            .unwrap();
    }
    tokio::time::sleep_until(outage.up_from).await;

    // Ten virtual minutes refilled 60 tokens: the fleet retried about 2 + 12 times, at the
    // budget's rate. A budget refilled by the process clock (barely moved) would have let
    // only the first two through.
    let during = budget.counters();
    let tries = outage.tries_while_down.load(Ordering::SeqCst);
    eprintln!("paused budget: {tries} uploads while down; {during:?}");
    assert!(
        (8..=14).contains(&during.granted),
        "{} retries granted in 600 virtual seconds: {during:?}",
        during.granted
    );
    assert_eq!(
        tries,
        4 + during.granted,
        "a first try each, then the granted retries"
    );
    assert!(during.waits > 0);

    // Up again: every parked retry goes within a period or two, and the events land.
    for tether in &sessions {
        tether.flush(Duration::from_secs(300)).await.unwrap();
    }
    assert!(budget.counters().refunded > 0);
    for tether in &sessions {
        let report = tether.close(Duration::from_secs(5)).await;
        assert!(report.all_delivered(), "{report:?}");
    }
    assert!(
        real.elapsed() < Duration::from_secs(10),
        "{:?}",
        real.elapsed()
    );
}
