//! Nothing is lost at the edges (docs/ARCHITECTURE.md, convention 9): a handle dropped without `close` and
//! a panicking observer. Every accepted event still reaches the report stream.

use std::time::Duration;

use serde_json::json;
use tether_blocking::Report;
use tether_core::batch::Reason;
use tether_core::session::SessionConfig;

/// Nothing listens here: every request fails, so events stay queued.
const NOWHERE: &str = "http://127.0.0.1:9/v1/code/sessions/edges";

fn config(session: &str) -> SessionConfig {
    let mut config = SessionConfig::new(session);
    config.request_timeout = Duration::from_millis(200);
    config
}

#[test]
fn a_dropped_handle_closes_with_a_bounded_default_and_reports_what_it_held() {
    let tether = tether_blocking::builder(NOWHERE)
        .epoch(1)
        .config(config("edges"))
        .settings(|s| {
            s.drop_close_timeout(Duration::from_millis(300));
        })
        .start()
        .unwrap();
    let reports = tether.reports();
    for n in 0..5 {
        tether
            .send_event(json!({"n": n}), Duration::ZERO)
            .wait()
            .unwrap();
    }
    drop(tether);
    let mut handed = Vec::new();
    while let Some(report) = reports
        .recv_timeout(Duration::from_secs(10))
        .map(Result::unwrap)
    {
        if let Report::HandedBack { reason, events } = report {
            for event in events {
                handed.push((reason, event.payload().unwrap()["n"].as_u64().unwrap()));
            }
        }
    }
    assert_eq!(
        handed,
        (0..5).map(|n| (Reason::Closed, n)).collect::<Vec<_>>()
    );
}

#[test]
fn a_panicking_observer_is_dropped_and_reported_and_the_session_goes_on() {
    let server = tether_server::Server::start(tether_server::ServerConfig::default()).unwrap();
    let tether = tether_blocking::builder(server.session_url("observer"))
        .epoch(1)
        .config(config("observer"))
        .observer(|output| {
            if matches!(output, tether_core::session::Output::Delivered { .. }) {
                panic!("observer bug");
            }
        })
        .start()
        .unwrap();
    let reports = tether.reports();
    for n in 0..3 {
        tether
            .send_event(json!({"n": n}), Duration::ZERO)
            .wait()
            .unwrap();
        tether.flush(Duration::from_secs(5)).wait().unwrap();
    }
    let report = tether.close(Duration::from_secs(5)).wait();
    assert!(report.all_delivered(), "{report:?}");
    let panicked = std::iter::from_fn(|| {
        reports
            .recv_timeout(Duration::from_secs(5))
            .map(Result::unwrap)
    })
    .any(|r| matches!(r, Report::CallbackPanicked { .. }));
    assert!(panicked, "the panic was reported");
    assert_eq!(server.inspector().events("observer").len(), 3);
    server.shutdown().unwrap();
}
