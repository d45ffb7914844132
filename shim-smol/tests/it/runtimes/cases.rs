//! What a user relies on, against the reference server, on every runtime: each accepted event
//! ends in one `Delivered` (ids in order, per stream) or one `HandedBack` (with whether the
//! server may hold it after all), a patch the server refuses for good is reported and rolled
//! back, a full queue makes a sender wait and then hands its event back, the overflow
//! policies report what they drop, and a bulk send stops at a bad event with the rest.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tether_core::batch::{Event, EventId, Overflow, Reason};
use tether_core::patch::DocumentSchema;
use tether_core::session::{Status, Stream};
use tether_driver::{Report, SendError, UndeliveredEvent};
use tether_server::{FaultPlan, Server, ServerConfig};

use super::{Opts, Runtime, on_every_runtime};
use crate::common::fast_config;

on_every_runtime! {
    heavy_faults_deliver_each_event_once_in_order_and_report_it within 150;
    a_takeover_after_a_lost_answer_hands_back_what_may_have_landed within 30;
    close_with_the_server_down_hands_back_every_event_within_its_timeout within 30;
    a_patch_the_server_refuses_for_good_is_reported_and_rolled_back within 30;
    a_full_queue_makes_a_sender_wait_then_hands_its_event_back within 30;
    drop_oldest_and_drop_newest_report_what_they_drop within 30;
    send_events_queues_in_order_waits_for_room_and_stops_at_a_bad_event within 30;
}

const T: Duration = Duration::from_secs(10);

fn server(faults: &str) -> Server {
    let plan: FaultPlan = faults.parse().expect("a fault plan");
    Server::start(ServerConfig::default().with_faults(plan)).expect("the server starts")
}

/// The ids of `stream`'s `Delivered` reports, in the order they came.
fn delivered(reports: &[Report], stream: Stream) -> Vec<EventId> {
    reports
        .iter()
        .filter_map(|r| match r {
            Report::Delivered { stream: s, events } if *s == stream => Some(events.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Every event of the `HandedBack` reports, in the order they came.
fn handed_back(reports: &[Report]) -> Vec<UndeliveredEvent> {
    reports
        .iter()
        .filter_map(|r| match r {
            Report::HandedBack { events, .. } => Some(events.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn seq(event: &UndeliveredEvent) -> u64 {
    event.payload().unwrap()["seq"].as_u64().expect("a seq")
}

fn seqs(stored: &[Value]) -> Vec<u64> {
    stored
        .iter()
        .map(|e| e["seq"].as_u64().expect("a seq"))
        .collect()
}

/// The `i`th patch of a series that replaces, merges and deletes keys.
fn patch(i: usize) -> Value {
    let mut p = json!({
        "worker_status": format!("step-{i}"),
        "external_metadata": {
            format!("k{}", i % 7): i,
            "nested": { format!("a{}", i % 3): i, "last": i },
        },
    });
    if i % 10 == 9 {
        p["external_metadata"][format!("k{}", (i + 3) % 7)] = Value::Null;
        p["internal_metadata"] =
            json!({"reset": if i % 20 == 19 { Value::Null } else { json!({"x": i}) }});
    }
    p
}

/// Polls `what` until it holds, failing after `within`.
fn until(within: Duration, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

pub fn heavy_faults_deliver_each_event_once_in_order_and_report_it(rt: &dyn Runtime) {
    const EVENTS: usize = 10_000;
    const PATCHES: usize = 200;
    let server = server("heavy,hang-ms=1500,seed=11");
    let mut config = fast_config("heavy");
    // Small batches: more requests, so more of them meet a fault.
    config.events.max_batch_items = 20;
    config.internal_events.max_batch_items = 20;
    let session = rt.start(Opts::new(server.session_url("heavy"), config).seed(3));
    let mut feed = session.reports();
    let mut reports = Vec::new();
    let (mut events, mut internal) = (Vec::new(), Vec::new());
    for i in 0..EVENTS {
        let id = session.send_event(json!({"seq": i}), T).expect("queued");
        events.push(id);
        if i % 10 == 0 {
            let event = Event::new(json!({"seq": i / 10}));
            internal.push(
                session
                    .send(Stream::InternalEvents, event, T)
                    .expect("queued"),
            );
        }
        if i % (EVENTS / PATCHES) == 0 {
            session.patch_state(patch(i / (EVENTS / PATCHES))).unwrap();
            reports.extend(feed.drain());
        }
    }
    session.flush(Duration::from_secs(90)).expect("flushed");
    let report = session.close(T);
    reports.extend(feed.drain());

    assert_eq!(report.status, Status::Closed);
    assert!(report.all_delivered(), "{:?}", report.undelivered.first());
    // Each event's id was reported delivered once, in the order sent, per stream.
    assert_eq!(delivered(&reports, Stream::Events), events);
    assert_eq!(delivered(&reports, Stream::InternalEvents), internal);
    assert!(handed_back(&reports).is_empty());
    assert!(
        reports
            .iter()
            .any(|r| matches!(r, Report::StateAcknowledged { .. }))
    );

    // The server's record agrees: each event once, in order, and the document converged.
    let inspector = server.inspector();
    let expected: Vec<u64> = (0..EVENTS as u64).collect();
    assert_eq!(seqs(&inspector.events("heavy")), expected);
    let expected: Vec<u64> = (0..EVENTS as u64 / 10).collect();
    assert_eq!(seqs(&inspector.internal_events("heavy")), expected);
    let mut document = json!({"worker_status": "idle"});
    for i in 0..PATCHES {
        DocumentSchema::default().apply(&mut document, patch(i).as_object().unwrap());
    }
    let mut stored = inspector.document("heavy").expect("a document");
    stored.as_object_mut().unwrap().remove("worker_epoch");
    assert_eq!(stored, document);
    let stats = inspector.stats("heavy");
    assert!(stats.total_faults() > 50, "{} faults", stats.total_faults());
    assert!(report.counters.events.retries > 0);
    server.shutdown().unwrap();
}

pub fn a_takeover_after_a_lost_answer_hands_back_what_may_have_landed(rt: &dyn Runtime) {
    let server = server("none");
    let inspector = server.inspector();
    let id = "lost-answer";
    let session = rt.start(Opts::new(server.session_url(id), fast_config(id)));
    let mut feed = session.reports();
    let sent: Vec<EventId> = (0..5)
        .map(|i| session.send_event(json!({"seq": i}), T).unwrap())
        .collect();
    session.flush(T).expect("flushed");

    // The next event lands, but its answer is lost; before the retry gets through, a newer
    // worker takes the session over, so the retry meets 409.
    inspector.set_faults("reset-after=1.0".parse().unwrap());
    let lost = session.send_event(json!({"seq": 5}), T).unwrap();
    until(T, "the server holds the event", || {
        inspector.events(id).len() == 6
    });
    inspector.force_takeover(id);
    inspector.set_faults(FaultPlan::none());

    let mut reports = feed.read_until(T, &|r| matches!(r, Report::HandedBack { .. }));
    let Some(Report::HandedBack { reason, events }) = reports.last().cloned() else {
        unreachable!()
    };
    assert_eq!(reason, Reason::Superseded);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!((events[0].id, seq(&events[0])), (lost, 5));
    assert!(events[0].maybe_delivered, "its answer was lost");
    // Before the takeover, every event was reported delivered, in order.
    assert_eq!(delivered(&reports, Stream::Events), sent);
    until(T, "superseded", || session.status() == Status::Superseded);

    // Later sends are refused with the event; the close report holds the same facts.
    let err = session.send_event(json!({"seq": 6}), T).unwrap_err();
    let SendError::Ended { status, event } = err else {
        panic!("{err:?}")
    };
    assert_eq!(status, Status::Superseded);
    assert_eq!(event.payload().unwrap()["seq"], 6);
    let report = session.close(T);
    assert_eq!(report.status, Status::Superseded);
    assert_eq!(report.undelivered, events);
    reports.extend(feed.drain());
    assert_eq!(handed_back(&reports), events, "reported once");
    // "Maybe" was right: the server holds the event, once.
    assert_eq!(seqs(&inspector.events(id)), [0, 1, 2, 3, 4, 5]);
    server.shutdown().unwrap();
}

pub fn close_with_the_server_down_hands_back_every_event_within_its_timeout(rt: &dyn Runtime) {
    let server = server("none");
    let session = rt.start(Opts::new(server.session_url("down"), fast_config("down")));
    let mut feed = session.reports();
    let delivered_ids: Vec<EventId> = (0..100)
        .map(|i| session.send_event(json!({"seq": i}), T).unwrap())
        .collect();
    session
        .patch_state(json!({"worker_status": "busy"}))
        .unwrap();
    session.flush(T).expect("flushed");

    server.stop_listener().unwrap();
    for i in 100..300 {
        session.send_event(json!({"seq": i}), T).unwrap();
    }
    session
        .patch_state(json!({"worker_status": "stuck"}))
        .unwrap();
    let timeout = Duration::from_secs(2);
    let started = Instant::now();
    let report = session.close(timeout);
    let took = started.elapsed();
    assert!(
        took < timeout + Duration::from_millis(500),
        "close took {took:?}"
    );
    assert_eq!(report.status, Status::Closed);

    let back: Vec<u64> = report.undelivered.iter().map(seq).collect();
    assert_eq!(back, (100..300).collect::<Vec<_>>());
    assert!(
        report
            .undelivered
            .iter()
            .all(|e| e.reason == Reason::Closed)
    );
    // The batch that was tried may have landed (no answer came); the rest were never sent.
    let maybe: Vec<bool> = report
        .undelivered
        .iter()
        .map(|e| e.maybe_delivered)
        .collect();
    let tried = maybe.iter().take_while(|m| **m).count();
    assert!(tried > 0, "no batch was tried");
    assert!(maybe[tried..].iter().all(|m| !m), "{maybe:?}");
    let unacked = report
        .state_unacknowledged
        .expect("the last patch never landed");
    assert!(
        unacked.update.iter().any(|p| p["worker_status"] == "stuck") || unacked.in_flight.is_some(),
        "{unacked:?}"
    );

    // The report stream said the same, as it happened.
    let reports = feed.drain();
    assert_eq!(delivered(&reports, Stream::Events), delivered_ids);
    assert_eq!(handed_back(&reports), report.undelivered);
    assert!(
        reports
            .iter()
            .any(|r| matches!(r, Report::StateUnacknowledged(_)))
    );
    assert_eq!(server.inspector().events("down").len(), 100);
    server.shutdown().unwrap();
}

pub fn a_patch_the_server_refuses_for_good_is_reported_and_rolled_back(rt: &dyn Runtime) {
    // Requests over 4 KiB are refused with 413: a document cannot be split, so a PUT that
    // large is refused for good.
    let server = Server::start(ServerConfig::default().with_body_limit(4096)).unwrap();
    let id = "rejected";
    let session = rt.start(Opts::new(server.session_url(id), fast_config(id)));
    let mut feed = session.reports();
    session
        .patch_state(json!({"worker_status": "busy"}))
        .unwrap();
    session.flush(T).expect("flushed");

    let big = json!({"external_metadata": {"blob": "x".repeat(8000)}});
    // Taken (the view shows it until the server refuses it: how long that is, is a race).
    session.patch_state(big.clone()).unwrap();
    let reports = feed.read_until(T, &|r| matches!(r, Report::StateRejected(_)));
    let Some(Report::StateRejected(rejection)) = reports.last().cloned() else {
        unreachable!()
    };
    assert_eq!(rejection.status, 413);
    assert_eq!(rejection.update, [big.as_object().unwrap().clone()]);
    // The view was rolled back: what the server holds, not what it refused.
    assert_eq!(session.state()["worker_status"], "busy");
    assert!(
        session
            .state()
            .get("external_metadata")
            .is_none_or(|m| m.get("blob").is_none())
    );

    // The session goes on: a later patch lands.
    session
        .patch_state(json!({"worker_status": "done"}))
        .unwrap();
    session.flush(T).expect("flushed");
    let report = session.close(T);
    assert_eq!(report.status, Status::Closed);
    assert_eq!(report.state_rejected, [rejection]);
    let mut stored = server.inspector().document(id).expect("a document");
    stored.as_object_mut().unwrap().remove("worker_epoch");
    assert_eq!(stored, json!({"worker_status": "done"}));
    server.shutdown().unwrap();
}

pub fn a_full_queue_makes_a_sender_wait_then_hands_its_event_back(rt: &dyn Runtime) {
    let server = server("none");
    server.stop_listener().unwrap();
    let mut config = fast_config("full");
    config.events.max_queue_items = 10;
    config.events.max_batch_items = 10;
    let session = rt.start(Opts::new(server.session_url("full"), config).epoch(1));
    let mut feed = session.reports();
    let mut ids: Vec<EventId> = (0..10)
        .map(|i| {
            session
                .send_event(json!({"seq": i}), Duration::ZERO)
                .expect("room")
        })
        .collect();

    // Full, and nothing drains while the server is down: the sender waits its timeout, then
    // has its event back.
    let started = Instant::now();
    let err = session
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

    // Room frees once the server is back: a waiting sender goes through.
    let started = Instant::now();
    thread::scope(|scope| {
        scope.spawn(|| {
            thread::sleep(Duration::from_millis(300));
            server.restart_listener().unwrap();
        });
        ids.push(
            session
                .send_event(json!({"seq": 10}), T)
                .expect("room freed"),
        );
    });
    assert!(started.elapsed() >= Duration::from_millis(300));
    session.flush(T).expect("flushed");
    let report = session.close(T);
    assert!(report.all_delivered(), "{report:?}");
    assert_eq!(delivered(&feed.drain(), Stream::Events), ids);
    assert_eq!(
        seqs(&server.inspector().events("full")),
        (0..=10).collect::<Vec<_>>()
    );
    server.shutdown().unwrap();
}

pub fn drop_oldest_and_drop_newest_report_what_they_drop(rt: &dyn Runtime) {
    let server = server("none");
    for (policy, id, dropped, kept) in [
        (Overflow::DropOldest, "oldest", Reason::DroppedOldest, 3..7),
        (Overflow::DropNewest, "newest", Reason::DroppedNewest, 0..4),
    ] {
        // The server is down, so nothing is sent and the queue of four fills.
        server.stop_listener().unwrap();
        let mut config = fast_config(id);
        config.events.overflow = policy;
        config.events.max_queue_items = 4;
        config.events.max_batch_items = 4;
        let session = rt.start(Opts::new(server.session_url(id), config).epoch(1));
        let mut feed = session.reports();
        // Every send is taken at once: the policy makes room, or drops the new event.
        let ids: Vec<EventId> = (0..7)
            .map(|i| {
                session
                    .send_event(json!({"seq": i}), Duration::ZERO)
                    .expect("taken")
            })
            .collect();

        // The first drop is reported while the server is still down.
        let mut reports = feed.read_until(T, &|r| matches!(r, Report::HandedBack { .. }));
        server.restart_listener().unwrap();
        session.flush(T).expect("flushed");
        let report = session.close(T);
        reports.extend(feed.drain());

        let dropped_events = handed_back(&reports);
        let expected: Vec<u64> = (0..7).filter(|i| !kept.contains(i)).collect();
        assert_eq!(
            dropped_events.iter().map(seq).collect::<Vec<_>>(),
            expected,
            "{policy:?}"
        );
        assert!(
            dropped_events
                .iter()
                .all(|e| e.reason == dropped && !e.maybe_delivered && e.stream == Stream::Events),
            "{dropped_events:?}"
        );
        let dropped_ids: Vec<EventId> = dropped_events.iter().map(|e| e.id).collect();
        let kept_ids: Vec<EventId> = ids
            .iter()
            .copied()
            .filter(|i| !dropped_ids.contains(i))
            .collect();
        assert_eq!(delivered(&reports, Stream::Events), kept_ids, "{policy:?}");
        // The close report holds every drop too.
        assert_eq!(report.undelivered, dropped_events);
        assert_eq!(
            seqs(&server.inspector().events(id)),
            kept.collect::<Vec<_>>()
        );
    }
    server.shutdown().unwrap();
}

pub fn send_events_queues_in_order_waits_for_room_and_stops_at_a_bad_event(rt: &dyn Runtime) {
    let server = server("none");
    let mut config = fast_config("bulk");
    config.events.max_queue_items = 50;
    config.events.max_batch_items = 20;
    let session = rt.start(Opts::new(server.session_url("bulk"), config).epoch(1));
    // More events than the queue holds: the call waits for room as batches land.
    let events = (0..500).map(|i| Event::new(json!({"seq": i}))).collect();
    let ids = session
        .send_events(Stream::Events, events, T)
        .expect("all queued");
    assert_eq!(ids.len(), 500);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));

    let mut events: Vec<Event> = (500..510).map(|i| Event::new(json!({"seq": i}))).collect();
    events.insert(3, Event::new(json!("not an object")));
    let err = session
        .send_events(Stream::Events, events, T)
        .expect_err("stops at the bad event");
    assert_eq!(err.sent.len(), 3);
    assert!(matches!(err.error, SendError::NotAnObject { .. }), "{err}");
    let unsent: Vec<Value> = err.unsent.into_iter().map(Event::into_payload).collect();
    let expected: Vec<Value> = (503..510).map(|i| json!({"seq": i})).collect();
    assert_eq!(unsent, expected);

    session.flush(T).expect("flushed");
    let report = session.close(T);
    assert!(report.all_delivered(), "{report:?}");
    assert_eq!(
        seqs(&server.inspector().events("bulk")),
        (0..503).collect::<Vec<_>>()
    );
    server.shutdown().unwrap();
}
