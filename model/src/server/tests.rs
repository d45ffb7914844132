//! The model server's behaviour, route by route (the fast paths are tested in `scan.rs`).

use super::*;
use tether_core::backoff::retry_after::{format_http_date, parse_http_date};

fn call(server: &mut ServerModel, endpoint: Endpoint, body: Value) -> (u16, Value) {
    let bytes = serde_json::to_vec(&body).unwrap();
    let response = server.handle(Instant::from_secs(1), endpoint, &bytes);
    (
        response.status,
        serde_json::from_slice(&response.body).unwrap(),
    )
}

fn register(server: &mut ServerModel) -> u64 {
    let (status, body) = call(server, Endpoint::Register, json!({}));
    assert_eq!(status, 200);
    body["worker_epoch"].as_u64().unwrap()
}

fn events(epoch: u64, uuids: &[&str]) -> Value {
    let events: Vec<Value> = uuids
        .iter()
        .map(|u| json!({"payload": {"uuid": u, "n": u, "seq": u.len()}}))
        .collect();
    json!({"worker_epoch": epoch, "events": events})
}

#[test]
fn register_hands_out_increasing_epochs() {
    let mut server = ServerModel::default();
    assert_eq!(register(&mut server), 1);
    assert_eq!(register(&mut server), 2);
    assert_eq!(server.force_takeover(), 3);
    assert_eq!(register(&mut server), 4);
    let empty = server.handle(Instant::ZERO, Endpoint::Register, b"");
    assert_eq!(empty.status, 200);
    assert_eq!(server.epoch(), 5);
}

#[test]
fn a_lower_epoch_is_fenced_and_a_higher_one_adopted() {
    let mut server = ServerModel::default();
    let old = register(&mut server);
    let new = register(&mut server);
    let put = |e: u64| json!({"worker_epoch": e, "worker_status": "idle"});
    assert_eq!(call(&mut server, Endpoint::PutWorker, put(old)).0, 409);
    assert_eq!(
        call(
            &mut server,
            Endpoint::Heartbeat,
            json!({"worker_epoch": old, "session_id": "s"})
        )
        .0,
        409
    );
    assert_eq!(
        call(&mut server, Endpoint::Events, events(old, &["u"])).0,
        409
    );
    assert!(server.events(Stream::Events).is_empty());
    // docs/PROTOCOL.md: a lower epoch gets 409, whatever else the body holds.
    for (endpoint, body) in [
        (Endpoint::Events, json!({"worker_epoch": old, "events": 1})),
        (
            Endpoint::Delivery,
            json!({"worker_epoch": old, "updates": 1}),
        ),
        (Endpoint::Heartbeat, json!({"worker_epoch": old})),
    ] {
        assert_eq!(call(&mut server, endpoint, body).0, 409, "{endpoint}");
    }
    assert_eq!(call(&mut server, Endpoint::PutWorker, put(new)).0, 200);
    assert_eq!(call(&mut server, Endpoint::PutWorker, put(new + 5)).0, 200);
    assert_eq!(server.epoch(), new + 5);
    assert_eq!(call(&mut server, Endpoint::PutWorker, put(new)).0, 409);
}

#[test]
fn takeover_fences_the_current_worker() {
    let mut server = ServerModel::default();
    let epoch = register(&mut server);
    let beat = json!({"worker_epoch": epoch, "session_id": "s"});
    assert_eq!(call(&mut server, Endpoint::Heartbeat, beat.clone()).0, 200);
    assert_eq!(server.force_takeover(), epoch + 1);
    assert_eq!(call(&mut server, Endpoint::Heartbeat, beat).0, 409);
    assert_eq!(server.heartbeats().len(), 1);
}

#[test]
fn put_merges_metadata_and_replaces_other_keys() {
    let mut server = ServerModel::default();
    let e = register(&mut server);
    let first = json!({"worker_epoch": e, "worker_status": "idle", "tags": {"a": 1},
                       "external_metadata": {"a": 1, "n": {"x": 1}}});
    let second = json!({"worker_epoch": e, "worker_status": "running", "tags": {"b": 2},
                        "external_metadata": {"n": {"y": 2}, "a": null}, "internal_metadata": {"k": [1]}});
    assert_eq!(call(&mut server, Endpoint::PutWorker, first).0, 200);
    assert_eq!(call(&mut server, Endpoint::PutWorker, second).0, 200);
    assert_eq!(
        server.document(),
        json!({"worker_status": "running", "tags": {"b": 2},
               "external_metadata": {"n": {"x": 1, "y": 2}}, "internal_metadata": {"k": [1]}})
    );
    let puts = server.applied_puts();
    assert_eq!(puts.len(), 2);
    assert!(!puts[0].patch.contains_key("worker_epoch"));
    assert_eq!(puts[1].patch["worker_status"], json!("running"));
}

#[test]
fn get_returns_the_document_with_its_epoch() {
    let mut server = ServerModel::default();
    let e = register(&mut server);
    call(
        &mut server,
        Endpoint::PutWorker,
        json!({"worker_epoch": e, "worker_status": "idle"}),
    );
    let response = server.handle(Instant::ZERO, Endpoint::GetWorker, b"");
    assert_eq!(response.status, 200);
    let body: Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(
        body,
        json!({"worker": {"worker_status": "idle", "worker_epoch": e}})
    );
    assert_eq!(body["worker"], server.worker());
    assert_eq!(server.document(), json!({"worker_status": "idle"}));
}

#[test]
fn events_are_deduplicated_per_stream_in_first_arrival_order() {
    let mut server = ServerModel::default();
    let e = register(&mut server);
    assert_eq!(
        call(&mut server, Endpoint::Events, events(e, &["a", "b"])).0,
        200
    );
    assert_eq!(
        call(
            &mut server,
            Endpoint::Events,
            events(e, &["b", "c", "a", "c"])
        )
        .0,
        200
    );
    assert_eq!(
        call(&mut server, Endpoint::InternalEvents, events(e, &["a"])).0,
        200
    );
    let uuids: Vec<&str> = server
        .events(Stream::Events)
        .iter()
        .map(|e| e.uuid.as_str())
        .collect();
    assert_eq!(uuids, ["a", "b", "c"]);
    assert_eq!(server.duplicates(Stream::Events), 3);
    assert_eq!(server.duplicate_uuids(Stream::Events), ["b", "a", "c"]);
    assert_eq!(server.events(Stream::InternalEvents).len(), 1);
    assert_eq!(server.duplicates(Stream::InternalEvents), 0);
    assert!(server.duplicate_uuids(Stream::InternalEvents).is_empty());
    assert_eq!(
        server.payloads(Stream::Events).next(),
        Some(&json!({"uuid": "a", "n": "a", "seq": 1}))
    );
    assert_eq!(server.seqs(Stream::Events), [1, 1, 1]);
}

#[test]
fn ephemeral_flag_is_kept() {
    let mut server = ServerModel::default();
    let body =
        json!({"worker_epoch": 0, "events": [{"payload": {"uuid": "x"}, "ephemeral": true}]});
    assert_eq!(call(&mut server, Endpoint::Events, body).0, 200);
    assert!(server.events(Stream::Events)[0].ephemeral);
}

#[test]
fn delivery_updates_are_stored_in_order() {
    let mut server = ServerModel::default();
    let body = json!({"worker_epoch": 0, "updates": [
        {"event_id": "e1", "status": "received"}, {"event_id": "e1", "status": "processed"}]});
    assert_eq!(call(&mut server, Endpoint::Delivery, body).0, 200);
    let statuses: Vec<&str> = server
        .delivery_updates()
        .iter()
        .map(|u| u.status.as_str())
        .collect();
    assert_eq!(statuses, ["received", "processed"]);
    let bad = json!({"worker_epoch": 0, "updates": [{"event_id": "e1", "status": "lost"}]});
    assert_eq!(call(&mut server, Endpoint::Delivery, bad).0, 400);
    assert_eq!(server.delivery_updates().len(), 2);
}

#[test]
fn oversized_bodies_get_413_and_change_nothing() {
    let mut server = ServerModel::new(ServerConfig {
        body_limit: 100,
        ..ServerConfig::default()
    });
    let big = events(0, &[&"x".repeat(200)]);
    assert_eq!(call(&mut server, Endpoint::Events, big).0, 413);
    assert!(server.events(Stream::Events).is_empty());
    assert_eq!(
        call(&mut server, Endpoint::Events, events(0, &["x"])).0,
        200
    );
    assert_eq!(
        ServerConfig::default().body_limit,
        10 * 1024 * 1024 + 64 * 1024
    );
}

#[test]
fn malformed_bodies_get_400_and_change_nothing() {
    let mut server = ServerModel::default();
    let e = register(&mut server);
    let bad: Vec<(Endpoint, Vec<u8>)> = vec![
        (Endpoint::PutWorker, b"{not json".to_vec()),
        (Endpoint::PutWorker, b"[1]".to_vec()),
        (Endpoint::PutWorker, br#"{"worker_status":"idle"}"#.to_vec()),
        (Endpoint::PutWorker, br#"{"worker_epoch":-1}"#.to_vec()),
        (Endpoint::PutWorker, br#"{"worker_epoch":"1"}"#.to_vec()),
        (Endpoint::Heartbeat, br#"{"worker_epoch":1}"#.to_vec()),
        (Endpoint::Events, br#"{"worker_epoch":1}"#.to_vec()),
        (
            Endpoint::Events,
            br#"{"worker_epoch":1,"events":[{"payload":{"uuid":"a"}},{"payload":{}}]}"#.to_vec(),
        ),
        (
            Endpoint::Events,
            br#"{"worker_epoch":1,"events":[{"payload":{"uuid":"a"},"ephemeral":1}]}"#.to_vec(),
        ),
        (
            Endpoint::Delivery,
            br#"{"worker_epoch":1,"updates":{}}"#.to_vec(),
        ),
        (Endpoint::Register, b"nope".to_vec()),
    ];
    for (endpoint, body) in bad {
        let response = server.handle(Instant::ZERO, endpoint, &body);
        assert_eq!(
            response.status,
            400,
            "{endpoint} {}",
            std::str::from_utf8(&body).unwrap()
        );
        let body: Value = serde_json::from_slice(&response.body).unwrap();
        assert!(body["error"].is_string());
    }
    assert_eq!(server.epoch(), e);
    assert_eq!(server.document(), json!({}));
    assert!(server.events(Stream::Events).is_empty());
    assert!(server.heartbeats().is_empty());
    // A malformed body with a higher epoch does not take the session over.
    let response = server.handle(Instant::ZERO, Endpoint::Events, br#"{"worker_epoch":9}"#);
    assert_eq!(response.status, 400);
    assert_eq!(server.epoch(), e);
}

#[test]
fn heartbeats_keep_the_worker_alive_for_the_ttl() {
    let mut server = ServerModel::default();
    assert!(!server.is_alive(Instant::ZERO));
    let beat = br#"{"worker_epoch":0,"session_id":"s"}"#;
    assert_eq!(
        server
            .handle(Instant::from_secs(10), Endpoint::Heartbeat, beat)
            .status,
        200
    );
    // Gone after a whole TTL without a heartbeat, not a moment later.
    assert!(server.is_alive(Instant::from_micros(69_999_999)));
    assert!(!server.is_alive(Instant::from_secs(70)));
    assert_eq!(server.heartbeats(), [Instant::from_secs(10)]);
}

#[test]
fn a_heartbeat_for_another_session_is_unknown() {
    let mut server = ServerModel::new(ServerConfig {
        session_id: Some("mine".into()),
        ..ServerConfig::default()
    });
    let other = br#"{"worker_epoch":0,"session_id":"other"}"#;
    assert_eq!(
        server
            .handle(Instant::ZERO, Endpoint::Heartbeat, other)
            .status,
        404
    );
    let mine = br#"{"worker_epoch":0,"session_id":"mine"}"#;
    assert_eq!(
        server
            .handle(Instant::ZERO, Endpoint::Heartbeat, mine)
            .status,
        200
    );
}

#[test]
fn restart_keeps_every_piece_of_data() {
    let mut server = ServerModel::default();
    let e = register(&mut server);
    call(&mut server, Endpoint::Events, events(e, &["a"]));
    call(
        &mut server,
        Endpoint::PutWorker,
        json!({"worker_epoch": e, "worker_status": "idle"}),
    );
    let before = server.clone();
    server.restart(Instant::from_secs(5));
    assert_eq!(server.restarts(), [Instant::from_secs(5)]);
    assert_eq!(server.epoch(), before.epoch());
    assert_eq!(server.document(), before.document());
    assert_eq!(server.events(Stream::Events), before.events(Stream::Events));
    // De-duplication survives the restart.
    call(&mut server, Endpoint::Events, events(e, &["a"]));
    assert_eq!(server.events(Stream::Events).len(), 1);
}
#[test]
fn cached_dates_are_format_http_dates() {
    let mut server = ServerModel::default();
    let mut t = 0u64;
    while t < 3 * 86_400 {
        let now = Instant::from_secs(t);
        let expected = format_http_date(server.unix_time(now));
        assert_eq!(server.date(now), expected);
        assert_eq!(server.cached_date(now), expected);
        assert_eq!(server.date(now), expected);
        for later in [1, 59, 3_600, 86_400] {
            let unix = server.unix_time(now) + later;
            assert_eq!(server.http_date(unix), format_http_date(unix));
        }
        t += 977;
    }
}

#[test]
fn every_response_carries_a_date_from_the_simulated_clock() {
    let mut server = ServerModel::default();
    for (now, status) in [(Instant::ZERO, 200), (Instant::from_millis(90_999), 400)] {
        let body: &[u8] = if status == 200 { b"{}" } else { b"x" };
        let response = server.handle(now, Endpoint::Register, body);
        assert_eq!(response.status, status);
        let date = response.date.expect("a Date header");
        assert_eq!(
            parse_http_date(&date),
            Some(DEFAULT_BASE_UNIX_TIME + now.as_micros() / 1_000_000)
        );
    }
    assert_eq!(server.requests(), 2);
}
