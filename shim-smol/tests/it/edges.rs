//! Nothing is lost at the edges (docs/ARCHITECTURE.md, convention 9): a handle dropped without `close`, a
//! driver future dropped by its executor, a panicking observer. Every accepted event still
//! reaches the report stream.

use crate::common;

use std::time::Duration;

use common::{bounded, fast_config};
use serde_json::json;
use tether_core::batch::Reason;
use tether_smol::{Report, Status};

/// Nothing listens here: every request fails, so events stay queued.
const NOWHERE: &str = "http://127.0.0.1:9/v1/code/sessions/edges";

/// Every event handed back by the reports, until the stream ends.
async fn handed_back(
    mut reports: tether_driver::Subscription<tether_driver::Report>,
) -> Vec<(Reason, u64)> {
    let mut handed = Vec::new();
    while let Some(report) = reports.next().await.map(Result::unwrap) {
        if let Report::HandedBack { reason, events } = report {
            for event in events {
                handed.push((reason, event.payload().unwrap()["n"].as_u64().unwrap()));
            }
        }
    }
    handed
}

#[test]
fn a_dropped_handle_closes_with_a_bounded_default_and_reports_what_it_held() {
    let handed = bounded(Duration::from_secs(20), async {
        let tether = tether_smol::builder(NOWHERE)
            .epoch(1)
            .config(fast_config("edges"))
            .settings(|s| {
                s.drop_close_timeout(Duration::from_millis(300));
            })
            .start()
            .unwrap();
        let reports = tether.reports();
        for n in 0..5 {
            tether
                .send_event(json!({"n": n}), Duration::ZERO)
                .await
                .unwrap();
        }
        drop(tether);
        handed_back(reports).await
    });
    assert_eq!(
        handed,
        (0..5).map(|n| (Reason::Closed, n)).collect::<Vec<_>>()
    );
}

#[test]
fn a_dropped_driver_future_hands_back_what_it_held_and_answers_its_waiters() {
    let (handed, flushed) = bounded(Duration::from_secs(20), async {
        let (tether, driver) = tether_smol::builder(NOWHERE)
            .epoch(1)
            .config(fast_config("edges"))
            .into_parts()
            .unwrap();
        let reports = tether.reports();
        let executor = smol::Executor::new();
        let task = executor.spawn(driver);
        for n in 0..3 {
            tether
                .send_event(json!({"n": n}), Duration::ZERO)
                .await
                .unwrap();
        }
        let mut flush = Box::pin(tether.flush(Duration::MAX));
        assert!(futures_lite::future::poll_once(&mut flush).await.is_none());
        // Let the driver run a little, then its executor goes away with it.
        executor
            .run(async_io::Timer::after(Duration::from_millis(200)))
            .await;
        drop(task);
        drop(executor);
        let flushed = flush.await;
        (handed_back(reports).await, flushed)
    });
    assert_eq!(handed.len(), 3, "{handed:?}");
    // Answered by the driver as it ended; the pending's own fallback (for a driver that vanished
    // without answering) would carry the status at the call, still connecting.
    assert_eq!(
        flushed,
        Err(tether_smol::FlushError::Ended(Status::Closed)),
        "the flush is answered"
    );
}

#[test]
fn a_panicking_observer_is_dropped_and_reported_and_the_session_goes_on() {
    let server = tether_server::Server::start(tether_server::ServerConfig::default()).unwrap();
    let url = server.session_url("observer");
    let (report, panicked) = bounded(Duration::from_secs(20), async {
        let tether = tether_smol::builder(&url)
            .epoch(1)
            .config(fast_config("observer"))
            .observer(|output| {
                if matches!(output, tether_core::session::Output::Delivered { .. }) {
                    panic!("observer bug");
                }
            })
            .start()
            .unwrap();
        let mut reports = tether.reports();
        for n in 0..3 {
            tether
                .send_event(json!({"n": n}), Duration::ZERO)
                .await
                .unwrap();
            tether.flush(Duration::from_secs(5)).await.unwrap();
        }
        let report = tether.close(Duration::from_secs(5)).await;
        let mut panicked = false;
        while let Some(r) = reports.next().await.map(Result::unwrap) {
            panicked |= matches!(r, Report::CallbackPanicked { .. });
        }
        (report, panicked)
    });
    assert!(report.all_delivered(), "{report:?}");
    assert!(panicked, "the panic was reported");
    assert_eq!(server.inspector().events("observer").len(), 3);
    server.shutdown().unwrap();
}
