//! The blocking shim against the reference server over real HTTP on 127.0.0.1.
//!
//! Every test is bounded by `within`; the configuration is `common::fast_config` (1 s request
//! deadlines, 20–250 ms backoff) and fault-plan hangs last 1.5 s.

use crate::common;

use std::collections::HashSet;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tether_blocking::{FlushError, SendError, Tether};
use tether_core::batch::{Event, Reason};
use tether_core::patch::DocumentSchema;
use tether_core::session::{Status, Stream};
use tether_server::{FaultPlan, Server, ServerConfig};

use common::{fast_config, within};

fn server(faults: &str) -> Server {
    let plan: FaultPlan = faults.parse().expect("fault plan");
    Server::start(ServerConfig::default().with_faults(plan)).expect("server starts")
}

fn event(seq: usize) -> Value {
    json!({"type": "tick", "seq": seq, "text": "x".repeat(120)})
}

/// The `i`th patch of a series that replaces top-level keys, merges and deletes metadata keys,
/// and sometimes sets the status.
fn patch(i: usize) -> Value {
    let mut p = Map::new();
    p.insert("step".into(), json!(i));
    let mut meta = Map::new();
    meta.insert(
        format!("k{}", i % 7),
        json!({"i": i, "nested": {"a": i % 3}}),
    );
    meta.insert(
        format!("k{}", (i + 3) % 7),
        if i % 4 == 0 { Value::Null } else { json!(i) },
    );
    p.insert("external_metadata".into(), Value::Object(meta));
    if i % 5 == 0 {
        p.insert(
            "internal_metadata".into(),
            json!({"phase": i / 5, "gone": null}),
        );
    }
    if i % 9 == 0 {
        p.insert(
            "worker_status".into(),
            json!(if i % 2 == 0 { "busy" } else { "running" }),
        );
    }
    if i % 11 == 0 {
        p.insert(
            "tags".into(),
            if i % 22 == 0 {
                Value::Null
            } else {
                json!(["t", i])
            },
        );
    }
    Value::Object(p)
}

fn seqs(events: &[Value]) -> Vec<usize> {
    events
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq") as usize)
        .collect()
}

#[test]
fn heavy_faults_deliver_every_event_once_in_order_and_converge_the_state() {
    within(Duration::from_secs(120), || {
        let server = server("heavy,seed=11,hang-ms=1500");
        let url = server.session_url("heavy");
        let tether = Tether::builder(&url)
            .register()
            .seed(5)
            .config(fast_config())
            .start()
            .expect("starts");
        let statuses = tether.statuses();
        let (events, patches) = (10_000, 200);
        let mut applied = Vec::new();
        for seq in 0..events {
            tether
                .send_event(event(seq), Duration::from_secs(30))
                .expect("queued");
            if seq % (events / patches) == 0 {
                let p = patch(applied.len());
                tether.patch_state(p.clone()).expect("patch accepted");
                applied.push(p);
            }
        }
        assert_eq!(applied.len(), patches);
        tether.flush(Duration::from_secs(60)).expect("flushed");
        let report = tether.close(Duration::from_secs(10));

        assert_eq!(report.status, Status::Closed);
        assert!(
            report.undelivered.is_empty(),
            "{:?}",
            &report.undelivered[..1]
        );
        assert!(report.all_delivered(), "{report:?}");
        assert_eq!(report.counters.events.delivered, events as u64);
        let inspector = server.inspector();
        let stored = inspector.events("heavy");
        assert_eq!(seqs(&stored), (0..events).collect::<Vec<_>>());
        let uuids: HashSet<_> = stored.iter().map(|e| e["uuid"].clone()).collect();
        assert_eq!(uuids.len(), events);

        let schema = DocumentSchema::default();
        let mut expected = json!({});
        for p in &applied {
            schema.apply(&mut expected, p.as_object().expect("object"));
        }
        if expected.get("worker_status").is_none() {
            expected["worker_status"] = json!("idle");
        }
        let mut document = inspector.document("heavy").expect("document");
        document
            .as_object_mut()
            .expect("object")
            .remove("worker_epoch");
        assert_eq!(document, expected);

        // The faults really happened, and the shim carried them to the core.
        let faults = inspector.stats("heavy").total_faults();
        assert!(faults > 5, "only {faults} faults");
        assert!(report.counters.session.failures.total() > 10);
        let seen: Vec<Status> = statuses.try_iter().map(Result::unwrap).collect();
        assert!(
            seen.iter().any(|s| matches!(s, Status::Retrying { .. })),
            "{seen:?}"
        );
        eprintln!(
            "heavy: {} faults, {} duplicates filtered, {} batches, {} PUTs, failures {:?}",
            faults,
            inspector.duplicates("heavy").count,
            report.counters.events.batches_sent,
            report.counters.state.puts_sent,
            report.counters.session.failures
        );
        server.shutdown().expect("shutdown");
    });
}

#[test]
fn a_takeover_supersedes_the_first_worker_and_hands_back_its_events() {
    within(Duration::from_secs(30), || {
        let server = server("none");
        let url = server.session_url("takeover");
        let first = Tether::builder(&url)
            .register()
            .config(fast_config())
            .start()
            .expect("starts");
        let statuses = first.statuses();
        for seq in 0..300 {
            first
                .send_event(event(seq), Duration::from_secs(5))
                .expect("queued");
        }
        first.flush(Duration::from_secs(10)).expect("flushed");
        let inspector = server.inspector();
        assert_eq!(inspector.events("takeover").len(), 300);

        // A second worker registers: its epoch is higher.
        let second = Tether::builder(&url)
            .register()
            .config(fast_config())
            .start()
            .expect("starts");
        let connected = second
            .statuses()
            .iter()
            .map(Result::unwrap)
            .find(|s| *s != Status::Connecting);
        assert_eq!(connected, Some(Status::Connected));
        assert!(second.epoch() > first.epoch(), "{second:?} vs {first:?}");
        let at_takeover = inspector.events("takeover").len();

        for seq in 300..500 {
            // Queued until the first 409 ends the session, refused after.
            if let Err(e) = first.send_event(event(seq), Duration::from_secs(5)) {
                assert!(
                    matches!(
                        e,
                        SendError::Ended {
                            status: Status::Superseded,
                            ..
                        }
                    ),
                    "{e}"
                );
            }
        }
        let superseded = statuses
            .iter()
            .map(Result::unwrap)
            .find(|s| s.is_terminal())
            .expect("a terminal status");
        assert_eq!(superseded, Status::Superseded);
        assert_eq!(
            first.flush(Duration::from_secs(1)),
            Err(FlushError::Ended(Status::Superseded))
        );
        let report = first.close(Duration::from_secs(5));
        assert_eq!(report.status, Status::Superseded);
        assert!(!report.undelivered.is_empty());
        assert!(
            report
                .undelivered
                .iter()
                .all(|e| e.reason == Reason::Superseded && e.stream == Stream::Events)
        );
        let handed_back: Vec<usize> = report
            .undelivered
            .iter()
            .map(|e| e.payload().unwrap()["seq"].as_u64().expect("seq") as usize)
            .collect();
        let first_back = handed_back[0];
        assert_eq!(
            handed_back,
            (first_back..first_back + handed_back.len()).collect::<Vec<_>>()
        );
        assert!(report.undelivered.iter().all(|e| e.uuid().is_some()));

        // The server holds nothing of the first worker's after the takeover.
        let stored = inspector.events("takeover");
        assert_eq!(stored.len(), at_takeover);
        assert_eq!(seqs(&stored), (0..300).collect::<Vec<_>>());

        let second_report = second.close(Duration::from_secs(5));
        assert_eq!(second_report.status, Status::Closed);
        server.shutdown().expect("shutdown");
    });
}

#[test]
fn close_with_the_server_down_hands_back_every_event_within_its_timeout() {
    within(Duration::from_secs(30), || {
        let server = server("none");
        let url = server.session_url("down");
        let tether = Tether::builder(&url)
            .epoch(1)
            .config(fast_config())
            .start()
            .expect("starts");
        for seq in 0..200 {
            tether
                .send_event(event(seq), Duration::from_secs(5))
                .expect("queued");
        }
        tether.flush(Duration::from_secs(10)).expect("flushed");
        server.stop_listener().expect("stopped");
        for seq in 200..500 {
            tether
                .send_event(event(seq), Duration::from_secs(5))
                .expect("queued");
        }
        tether
            .patch_state(json!({"worker_status": "stopping"}))
            .expect("patch");
        let started = Instant::now();
        let timeout = Duration::from_secs(2);
        let report = tether.close(timeout);
        let took = started.elapsed();
        assert!(took >= timeout - Duration::from_millis(50), "{took:?}");
        assert!(took < timeout + Duration::from_millis(500), "{took:?}");
        assert_eq!(report.status, Status::Closed);
        let back: Vec<usize> = report
            .undelivered
            .iter()
            .map(|e| {
                assert_eq!(e.reason, Reason::Closed);
                e.payload().unwrap()["seq"].as_u64().expect("seq") as usize
            })
            .collect();
        assert_eq!(back, (200..500).collect::<Vec<_>>());
        let unacked = report
            .state_unacknowledged
            .as_ref()
            .expect("the patch is handed back");
        assert_eq!(unacked.update[0]["worker_status"], "stopping");
        assert_eq!(server.inspector().events("down").len(), 200);
        server.shutdown().expect("shutdown");
    });
}

#[test]
fn a_full_queue_blocks_send_event_until_room_frees_or_its_timeout() {
    within(Duration::from_secs(30), || {
        let server = server("none");
        server.stop_listener().expect("stopped");
        let url = server.session_url("full");
        let mut config = fast_config();
        config.events.max_queue_items = 10;
        config.events.max_batch_items = 10;
        config.events.max_batch_bytes = 1000;
        let tether = Tether::builder(&url)
            .epoch(1)
            .config(config)
            .start()
            .expect("starts");
        for seq in 0..10 {
            tether
                .send_event(json!({"seq": seq}), Duration::ZERO)
                .expect("room");
        }
        // Full, and nothing drains while the server is down.
        let started = Instant::now();
        let err = tether
            .send_event(json!({"seq": 10}), Duration::from_millis(300))
            .expect_err("full");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(2),
            "{took:?}"
        );
        let SendError::Timeout { event } = err else {
            panic!("{err:?}")
        };
        assert_eq!(event.payload().unwrap()["seq"], 10);

        // Bad events are refused at once, inside the error.
        let err = tether
            .send_event(json!([1, 2]), Duration::from_secs(5))
            .expect_err("array");
        assert!(matches!(&err, SendError::NotAnObject { .. }), "{err:?}");
        assert_eq!(err.into_event().unwrap().payload().unwrap(), json!([1, 2]));
        let big = json!({"text": "x".repeat(2000)});
        let err = tether
            .send_event(big, Duration::from_secs(5))
            .expect_err("too large");
        assert!(
            matches!(err, SendError::TooLarge { limit: 1000, .. }),
            "{err:?}"
        );

        // Room frees once the server is back: a blocked send goes through.
        let started = Instant::now();
        thread::scope(|scope| {
            scope.spawn(|| {
                thread::sleep(Duration::from_millis(300));
                server.restart_listener().expect("restarted");
            });
            tether
                .send_event(json!({"seq": 10}), Duration::from_secs(10))
                .expect("room freed");
        });
        assert!(started.elapsed() >= Duration::from_millis(300));
        tether.flush(Duration::from_secs(10)).expect("flushed");
        let report = tether.close(Duration::from_secs(5));
        assert!(report.all_delivered(), "{report:?}");
        assert_eq!(
            seqs(&server.inspector().events("full")),
            (0..=10).collect::<Vec<_>>()
        );
        server.shutdown().expect("shutdown");
    });
}

#[test]
fn send_events_queues_in_order_waits_for_room_and_stops_at_a_bad_event() {
    within(Duration::from_secs(30), || {
        let server = server("none");
        let url = server.session_url("bulk");
        let mut config = fast_config();
        config.events.max_queue_items = 50;
        config.events.max_batch_items = 20;
        let tether = Tether::builder(&url)
            .epoch(1)
            .config(config)
            .start()
            .expect("starts");
        // More events than the queue holds: the call waits for room as batches land.
        let events = (0..500).map(|seq| Event::new(json!({"seq": seq})));
        let ids = tether
            .send_events(Stream::Events, events, Duration::from_secs(10))
            .expect("all queued");
        assert_eq!(ids.len(), 500);
        assert!(ids.windows(2).all(|w| w[0] < w[1]));

        let mut events: Vec<Event> = (500..510)
            .map(|seq| Event::new(json!({"seq": seq})))
            .collect();
        events.insert(3, Event::new(json!("not an object")));
        let err = tether
            .send_events(Stream::Events, events, Duration::from_secs(10))
            .expect_err("stops at the bad event");
        assert_eq!(err.sent.len(), 3);
        assert!(matches!(err.error, SendError::NotAnObject { .. }), "{err}");
        let unsent: Vec<Value> = err.unsent.into_iter().map(Event::into_payload).collect();
        assert_eq!(
            unsent,
            (503..510)
                .map(|seq| json!({"seq": seq}))
                .collect::<Vec<_>>()
        );

        tether.flush(Duration::from_secs(10)).expect("flushed");
        let report = tether.close(Duration::from_secs(5));
        assert!(report.all_delivered(), "{report:?}");
        assert_eq!(
            seqs(&server.inspector().events("bulk")),
            (0..503).collect::<Vec<_>>()
        );
        server.shutdown().expect("shutdown");
    });
}
