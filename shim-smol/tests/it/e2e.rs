//! End to end against `tether-server` on 127.0.0.1: heavy faults, takeover, server down at
//! close. Each test is bounded in time.

use crate::common;

use std::time::{Duration, Instant};

use common::{bounded, fast_config, wait_status};
use serde_json::{Map, Value, json};
use tether_core::batch::Reason;
use tether_core::patch::DocumentSchema;
use tether_core::session::Stream;
use tether_server::{FaultPlan, Server, ServerConfig};
use tether_smol::{Builder, SendError, Status};

const SEND_TIMEOUT: Duration = Duration::from_secs(30);

fn patch(i: usize) -> Value {
    let mut p = json!({
        "worker_status": format!("step-{i}"),
        "external_metadata": {
            format!("k{}", i % 7): i,
            "nested": { format!("a{}", i % 3): i, "last": i },
        },
    });
    if i % 10 == 9 {
        // Deletes, and a reset then a rebuild across patches.
        p["external_metadata"][format!("k{}", (i + 3) % 7)] = Value::Null;
        p["internal_metadata"] =
            json!({"reset": if i % 20 == 19 { Value::Null } else { json!({"x": i}) }});
    }
    p
}

fn without_epoch(mut doc: Value) -> Value {
    if let Some(map) = doc.as_object_mut() {
        map.remove("worker_epoch");
    }
    doc
}

#[test]
fn heavy_faults_deliver_every_event_once_in_order_and_converge_state() {
    const EVENTS: usize = 10_000;
    const PATCHES: usize = 200;
    let faults: FaultPlan = "heavy,hang-ms=1500,seed=11".parse().unwrap();
    let server = Server::start(ServerConfig::default().with_faults(faults)).unwrap();
    let url = server.session_url("heavy");
    let started = Instant::now();
    let report = bounded(Duration::from_secs(150), async {
        let mut config = fast_config("heavy");
        // Small batches: more requests, so more of them meet a fault.
        config.events.max_batch_items = 20;
        let tether = Builder::new(&url)
            .config(config)
            .token("heavy-token")
            .seed(3)
            .start()
            .unwrap();
        for i in 0..EVENTS {
            tether
                .send_event(json!({"seq": i, "kind": "heavy"}), SEND_TIMEOUT)
                .await
                .unwrap();
            if i % (EVENTS / PATCHES) == 0 {
                tether.patch_state(patch(i / (EVENTS / PATCHES))).unwrap();
            }
        }
        tether.flush(Duration::from_secs(90)).await.unwrap();
        (
            tether.close(Duration::from_secs(10)).await,
            tether.driver_polls(),
        )
    });
    let (report, tether_polls) = report;
    let elapsed = started.elapsed();

    assert_eq!(report.status, Status::Closed);
    assert!(
        report.undelivered.is_empty(),
        "{:?}",
        &report.undelivered[..3.min(report.undelivered.len())]
    );
    assert!(report.all_delivered(), "{report:?}");
    assert_eq!(report.counters.events.delivered, EVENTS as u64);

    let inspector = server.inspector();
    let events = inspector.events("heavy");
    assert_eq!(
        events.len(),
        EVENTS,
        "the server holds each event exactly once"
    );
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event["seq"], i, "out of order at {i}");
    }

    let schema = DocumentSchema::default();
    let mut expected = json!({"worker_status": "idle"});
    for i in 0..PATCHES {
        let Value::Object(p) = patch(i) else {
            unreachable!()
        };
        schema.apply(&mut expected, &p);
    }
    let document = without_epoch(inspector.document("heavy").unwrap());
    assert_eq!(document, expected);

    let stats = inspector.stats("heavy");
    eprintln!(
        "heavy: {elapsed:?}, {} requests, {} faults, {} retries, {} driver polls",
        stats.total_requests(),
        stats.total_faults(),
        report.counters.events.retries,
        tether_polls
    );
    assert!(stats.total_faults() > 0, "the fault plan injected nothing");
    server.shutdown().unwrap();
}

#[test]
fn a_higher_epoch_supersedes_the_session_which_hands_back_its_events() {
    let server = Server::start(ServerConfig::default()).unwrap();
    let url = server.session_url("takeover");
    bounded(Duration::from_secs(30), async {
        let first = Builder::new(&url)
            .config(fast_config("takeover"))
            .seed(1)
            .start()
            .unwrap();
        for i in 0..50 {
            first
                .send_event(json!({"seq": i, "from": "first"}), SEND_TIMEOUT)
                .await
                .unwrap();
        }
        first.flush(Duration::from_secs(10)).await.unwrap();

        // A second worker registers: a higher epoch.
        let second = Builder::new(&url)
            .config(fast_config("takeover"))
            .seed(2)
            .start()
            .unwrap();
        wait_status(&second, Duration::from_secs(10), |s| {
            *s == Status::Connected
        })
        .await;
        assert!(server.inspector().epoch("takeover").unwrap() >= 2);

        // The first worker's next write meets 409.
        let mut refused = Vec::new();
        for i in 50..70 {
            match first
                .send_event(json!({"seq": i, "from": "first"}), SEND_TIMEOUT)
                .await
            {
                Ok(_) => {}
                Err(SendError::Ended { status, event }) => {
                    assert_eq!(status, Status::Superseded);
                    refused.push(event.payload().unwrap()["seq"].clone());
                }
                Err(other) => panic!("{other:?}"),
            }
        }
        wait_status(&first, Duration::from_secs(10), |s| {
            *s == Status::Superseded
        })
        .await;
        let report = first.close(Duration::from_secs(1)).await;
        assert_eq!(report.status, Status::Superseded);
        assert!(
            report
                .undelivered
                .iter()
                .all(|e| e.reason == Reason::Superseded
                    && e.stream == Stream::Events
                    && e.uuid().is_some())
        );
        // Every event given after the takeover came back, in order: in the report or at once.
        let mut back: Vec<Value> = report
            .undelivered
            .iter()
            .map(|e| e.payload().unwrap()["seq"].clone())
            .collect();
        back.extend(refused);
        assert_eq!(back, (50..70).map(Value::from).collect::<Vec<_>>());

        second
            .send_event(json!({"seq": 0, "from": "second"}), SEND_TIMEOUT)
            .await
            .unwrap();
        let report = second.close(Duration::from_secs(5)).await;
        assert!(report.all_delivered());
    });
    let events = server.inspector().events("takeover");
    let from_first: Vec<_> = events.iter().filter(|e| e["from"] == "first").collect();
    assert_eq!(
        from_first.len(),
        50,
        "the server holds nothing from the first worker after the takeover"
    );
    assert!(from_first.iter().enumerate().all(|(i, e)| e["seq"] == i));
    assert_eq!(events.iter().filter(|e| e["from"] == "second").count(), 1);
    server.shutdown().unwrap();
}

#[test]
fn close_with_the_server_down_hands_back_every_event_within_its_timeout() {
    let server = Server::start(ServerConfig::default()).unwrap();
    let url = server.session_url("down");
    let close_timeout = Duration::from_secs(2);
    bounded(Duration::from_secs(30), async {
        let tether = Builder::new(&url)
            .config(fast_config("down"))
            .epoch(1)
            .start()
            .unwrap();
        for i in 0..100 {
            tether
                .send_event(json!({"seq": i}), SEND_TIMEOUT)
                .await
                .unwrap();
        }
        tether.flush(Duration::from_secs(10)).await.unwrap();
        tether
            .patch_state(json!({"worker_status": "busy"}))
            .unwrap();
        tether.flush(Duration::from_secs(10)).await.unwrap();

        server.stop_listener().unwrap();
        for i in 100..300 {
            tether
                .send_event(json!({"seq": i}), SEND_TIMEOUT)
                .await
                .unwrap();
        }
        tether
            .patch_state(json!({"worker_status": "stuck"}))
            .unwrap();

        let started = Instant::now();
        let report = tether.close(close_timeout).await;
        let took = started.elapsed();
        assert!(
            took < close_timeout + Duration::from_millis(500),
            "close took {took:?}"
        );
        assert_eq!(report.status, Status::Closed);
        let seqs: Vec<Value> = report
            .undelivered
            .iter()
            .map(|e| e.payload().unwrap()["seq"].clone())
            .collect();
        assert_eq!(seqs, (100..300).map(Value::from).collect::<Vec<_>>());
        assert!(
            report
                .undelivered
                .iter()
                .all(|e| e.reason == Reason::Closed)
        );
        let unacked = report
            .state_unacknowledged
            .expect("the last patch never landed");
        let mut last = Map::new();
        last.insert("worker_status".into(), json!("stuck"));
        assert!(
            unacked.update.contains(&last) || unacked.in_flight.is_some(),
            "{unacked:?}"
        );
    });
    assert_eq!(server.inspector().events("down").len(), 100);
    server.shutdown().unwrap();
}
