//! Every session's state: one [`ServerModel`] per session id, and what the server counts.
//!
//! What a request does to a session is decided by the protocol's server model
//! ([`tether_model::ServerModel`], which the simulator runs too): epoch fencing, the worker
//! document, de-duplication of events by `payload.uuid`, heartbeats, delivery updates and the body
//! limit. The reference server and the simulator therefore cannot disagree about
//! docs/PROTOCOL.md. This module only keeps one model per session id, gives it the time, and
//! counts requests and injected faults, which the model never sees. The HTTP layer decides faults
//! and moves bytes.

use std::collections::BTreeMap;
use std::time::Duration;

use tether_core::Instant;
use tether_core::session::Response;
use tether_model::{ServerConfig as ModelConfig, ServerModel};

use tether_core::session::Endpoint;
use tether_model::fault::FaultKind;

/// The duplicates a stream filtered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Duplicates {
    /// How many events were dropped as duplicates.
    pub count: u64,
    /// Their uuids, in the order they were dropped (a uuid repeats if sent again and again).
    pub uuids: Vec<String>,
}

impl Duplicates {
    pub(crate) fn new(uuids: &[String]) -> Self {
        Duplicates {
            count: uuids.len() as u64,
            uuids: uuids.to_vec(),
        }
    }
}

/// Requests and faults, counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Requests that reached each route (faulted or not).
    pub requests: BTreeMap<Endpoint, u64>,
    /// Faults injected, by kind.
    pub faults: BTreeMap<FaultKind, u64>,
}

impl Stats {
    fn record(&mut self, route: Endpoint, fault: Option<FaultKind>) {
        *self.requests.entry(route).or_default() += 1;
        if let Some(kind) = fault {
            *self.faults.entry(kind).or_default() += 1;
        }
    }

    /// All requests, over every route.
    pub fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }

    /// All faults, of every kind.
    pub fn total_faults(&self) -> u64 {
        self.faults.values().sum()
    }
}

/// One session: the protocol's state in its model, and the server's counts.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    pub model: ServerModel,
    pub stats: Stats,
}

/// The server's clock, time since it started, as the model's [`Instant`].
pub(crate) fn instant(since_start: Duration) -> Instant {
    Instant::from_duration(since_start)
}

/// Every session, keyed by id, and the server-wide counters.
#[derive(Debug)]
pub(crate) struct Store {
    /// The configuration every new session's model gets (with its own `session_id`).
    config: ModelConfig,
    sessions: BTreeMap<String, Session>,
    totals: Stats,
}

impl Store {
    /// A store whose sessions refuse bodies over `body_limit` and count a worker as gone after
    /// `heartbeat_ttl` without a heartbeat.
    pub fn new(body_limit: usize, heartbeat_ttl: Duration) -> Self {
        Store {
            config: ModelConfig {
                body_limit,
                heartbeat_ttl,
                ..ModelConfig::default()
            },
            sessions: BTreeMap::new(),
            totals: Stats::default(),
        }
    }

    pub fn session(&self, id: &str) -> Option<&Session> {
        self.sessions.get(id)
    }

    pub fn session_ids(&self) -> Vec<String> {
        self.sessions.keys().cloned().collect()
    }

    pub fn totals(&self) -> &Stats {
        &self.totals
    }

    fn session_mut(&mut self, id: &str) -> &mut Session {
        if !self.sessions.contains_key(id) {
            let config = ModelConfig {
                // A heartbeat naming another session than the URL's is for an unknown session.
                session_id: Some(id.to_owned()),
                ..self.config.clone()
            };
            let session = Session {
                model: ServerModel::new(config),
                stats: Stats::default(),
            };
            self.sessions.insert(id.to_owned(), session);
        }
        self.sessions.get_mut(id).expect("inserted above")
    }

    /// Counts a request to `route` of session `id` (creating the session) and its fault.
    pub fn record_request(&mut self, id: &str, route: Endpoint, fault: Option<FaultKind>) {
        self.totals.record(route, fault);
        self.session_mut(id).stats.record(route, fault);
    }

    /// Bumps the epoch of session `id` as if a newer worker registered; returns the new epoch.
    pub fn force_takeover(&mut self, id: &str) -> u64 {
        self.session_mut(id).model.force_takeover()
    }

    /// Applies one request to session `id` at `now` (since server start) and answers it: a
    /// status and a JSON body (`{"error": ..}` unless a 2xx). The response's `Date` is the
    /// model's; the HTTP layer writes its own from the wall clock.
    pub fn handle(&mut self, id: &str, route: Endpoint, body: &[u8], now: Duration) -> Response {
        self.session_mut(id).model.handle(instant(now), route, body)
    }

    /// Stores `value` as thread `thread`'s next version in session `id` as it is, valid or not
    /// ([`tether_model::threads::ThreadStore::poison`]); returns its `v`.
    pub fn poison_thread(&mut self, id: &str, thread: &str, value: serde_json::Value) -> u64 {
        self.session_mut(id)
            .model
            .threads_mut()
            .poison(thread, value)
    }

    /// Applies one thread-sync request (docs/PROTOCOL.md §Thread sync) to session `id` at `now`;
    /// `query` is the URL's query without `?`.
    pub fn handle_thread(
        &mut self,
        id: &str,
        endpoint: tether_core::thread::Endpoint,
        query: &str,
        body: &[u8],
        now: Duration,
    ) -> Response {
        self.session_mut(id)
            .model
            .handle_thread(instant(now), endpoint, query, body)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use tether_core::session::DeliveryStatus;
    use tether_core::session::Stream;
    use tether_model::DeliveryUpdate;

    use super::*;

    const T: Duration = Duration::ZERO;

    fn store() -> Store {
        Store::new(crate::DEFAULT_BODY_LIMIT, Duration::from_secs(60))
    }

    /// The status and the JSON body of the answer.
    fn answer(response: Response) -> (u16, Value) {
        let body = serde_json::from_slice(&response.body).expect("a JSON body");
        (response.status, body)
    }

    fn send(store: &mut Store, route: Endpoint, body: Value) -> (u16, Value) {
        answer(store.handle("s", route, body.to_string().as_bytes(), T))
    }

    fn status(store: &mut Store, route: Endpoint, body: Value) -> u16 {
        send(store, route, body).0
    }

    fn events(epoch: u64, uuids: &[&str]) -> Value {
        let events: Vec<Value> = uuids
            .iter()
            .map(|u| json!({"payload": {"uuid": u, "n": u}}))
            .collect();
        json!({"worker_epoch": epoch, "events": events})
    }

    fn model<'a>(store: &'a Store, id: &str) -> &'a ServerModel {
        &store.session(id).expect("the session exists").model
    }

    #[test]
    fn register_bumps_the_epoch_every_time() {
        let mut store = store();
        assert_eq!(
            answer(store.handle("s", Endpoint::Register, b"", T)),
            (200, json!({"worker_epoch": 1}))
        );
        assert_eq!(
            send(&mut store, Endpoint::Register, json!({})),
            (200, json!({"worker_epoch": 2}))
        );
        assert_eq!(
            answer(store.handle("t", Endpoint::Register, b"{}", T)),
            (200, json!({"worker_epoch": 1}))
        );
        assert_eq!(store.handle("s", Endpoint::Register, b"[", T).status, 400);
        assert_eq!(model(&store, "s").epoch(), 2);
    }

    #[test]
    fn put_merges_metadata_and_replaces_the_rest() {
        let mut store = store();
        let first = json!({"worker_epoch": 0, "worker_status": "idle",
            "external_metadata": {"a": 1, "b": {"c": 1}}, "tags": {"x": 1}});
        assert_eq!(
            send(&mut store, Endpoint::PutWorker, first),
            (200, json!({}))
        );
        let second = json!({"worker_epoch": 0, "worker_status": "busy",
            "external_metadata": {"a": null, "b": {"d": 2}}, "tags": {"y": 2}});
        assert_eq!(status(&mut store, Endpoint::PutWorker, second), 200);
        let got = answer(store.handle("s", Endpoint::GetWorker, b"", T));
        assert_eq!(
            got,
            (
                200,
                json!({"worker": {"worker_epoch": 0, "worker_status": "busy",
                "external_metadata": {"b": {"c": 1, "d": 2}}, "tags": {"y": 2}}})
            )
        );
    }

    #[test]
    fn events_are_deduplicated_per_stream_in_first_arrival_order() {
        let mut store = store();
        status(&mut store, Endpoint::Events, events(0, &["a", "b"]));
        status(&mut store, Endpoint::Events, events(0, &["b", "c", "a"]));
        status(&mut store, Endpoint::InternalEvents, events(0, &["a"]));
        let s = model(&store, "s");
        let uuids: Vec<&str> = s
            .payloads(Stream::Events)
            .map(|p| p["uuid"].as_str().unwrap())
            .collect();
        assert_eq!(uuids, ["a", "b", "c"]);
        assert_eq!(
            Duplicates::new(s.duplicate_uuids(Stream::Events)),
            Duplicates {
                count: 2,
                uuids: vec!["b".into(), "a".into()]
            }
        );
        assert_eq!(s.events(Stream::InternalEvents).len(), 1);
        assert_eq!(s.duplicates(Stream::InternalEvents), 0);
    }

    #[test]
    fn one_bad_event_refuses_the_whole_batch() {
        let mut store = store();
        let body = json!({"worker_epoch": 0, "events": [
            {"payload": {"uuid": "a"}}, {"payload": {"uuid": 7}}]});
        assert_eq!(status(&mut store, Endpoint::Events, body), 400);
        let body =
            json!({"worker_epoch": 0, "events": [{"payload": {"uuid": "a"}, "ephemeral": 1}]});
        assert_eq!(status(&mut store, Endpoint::Events, body), 400);
        assert!(model(&store, "s").events(Stream::Events).is_empty());
        let body =
            json!({"worker_epoch": 0, "events": [{"payload": {"uuid": "a"}, "ephemeral": true}]});
        assert_eq!(status(&mut store, Endpoint::Events, body), 200);
        let stored: Vec<&Value> = model(&store, "s").payloads(Stream::Events).collect();
        assert_eq!(stored, [&json!({"uuid": "a"})]);
    }

    #[test]
    fn lower_epoch_is_fenced_and_higher_takes_over() {
        let mut store = store();
        status(&mut store, Endpoint::Register, json!({}));
        status(&mut store, Endpoint::Register, json!({}));
        let (code, body) = send(&mut store, Endpoint::Events, events(1, &["a"]));
        assert_eq!(code, 409);
        assert!(body["error"].is_string());
        assert!(model(&store, "s").events(Stream::Events).is_empty());
        status(&mut store, Endpoint::PutWorker, json!({"worker_epoch": 5}));
        assert_eq!(model(&store, "s").epoch(), 5);
        assert_eq!(store.force_takeover("s"), 6);
        let body = json!({"worker_epoch": 5, "session_id": "s"});
        assert_eq!(status(&mut store, Endpoint::Heartbeat, body), 409);
        assert_eq!(
            send(&mut store, Endpoint::Register, json!({})),
            (200, json!({"worker_epoch": 7}))
        );
        // A stale epoch is superseded even when the rest of the body is malformed.
        let body = json!({"worker_epoch": 6, "events": "not an array"});
        assert_eq!(status(&mut store, Endpoint::Events, body), 409);
    }

    #[test]
    fn missing_or_invalid_epoch_is_a_bad_request() {
        let mut store = store();
        for body in [
            json!({}),
            json!({"worker_epoch": -1}),
            json!({"worker_epoch": 1.5}),
            json!({"worker_epoch": "1"}),
            json!([1]),
        ] {
            for route in [
                Endpoint::PutWorker,
                Endpoint::Heartbeat,
                Endpoint::Events,
                Endpoint::Delivery,
            ] {
                let (code, answer) = send(&mut store, route, body.clone());
                assert_eq!(code, 400, "{route} {body}");
                assert!(answer["error"].is_string());
            }
        }
        assert_eq!(
            store.handle("s", Endpoint::PutWorker, b"{nope", T).status,
            400
        );
    }

    #[test]
    fn heartbeats_are_timed_and_checked() {
        let mut store = store();
        let beat = |store: &mut Store, id: &str, at: u64| {
            let body = json!({"worker_epoch": 0, "session_id": id}).to_string();
            let at = Duration::from_secs(at);
            store
                .handle("s", Endpoint::Heartbeat, body.as_bytes(), at)
                .status
        };
        assert_eq!(beat(&mut store, "s", 10), 200);
        assert_eq!(beat(&mut store, "s", 30), 200);
        // The body names a session other than the URL's: that session is unknown here.
        assert_eq!(beat(&mut store, "other", 40), 404);
        let s = model(&store, "s");
        assert_eq!(
            s.heartbeats(),
            [
                instant(Duration::from_secs(10)),
                instant(Duration::from_secs(30))
            ]
        );
        assert!(s.is_alive(instant(Duration::from_secs(89))));
        assert!(!s.is_alive(instant(Duration::from_secs(90))));
    }

    #[test]
    fn delivery_updates_are_kept_in_order_and_validated() {
        let mut store = store();
        let body = json!({"worker_epoch": 0, "updates": [
            {"event_id": "e1", "status": "received"}, {"event_id": "e1", "status": "processed"}]});
        assert_eq!(status(&mut store, Endpoint::Delivery, body), 200);
        let body = json!({"worker_epoch": 0, "updates": [{"event_id": "e2", "status": "lost"}]});
        assert_eq!(status(&mut store, Endpoint::Delivery, body), 400);
        let update = |status| DeliveryUpdate {
            event_id: "e1".into(),
            status,
            at: instant(T),
        };
        assert_eq!(
            model(&store, "s").delivery_updates(),
            [
                update(DeliveryStatus::Received),
                update(DeliveryStatus::Processed)
            ]
        );
    }

    #[test]
    fn each_session_has_its_own_model_with_the_server_limits() {
        let mut store = Store::new(100, Duration::from_secs(60));
        status(&mut store, Endpoint::Events, events(0, &["a"]));
        let big = events(0, &[&"x".repeat(200)]);
        assert_eq!(status(&mut store, Endpoint::Events, big), 413);
        assert_eq!(
            store.handle("t", Endpoint::Events, b"{}", T).status,
            400,
            "t is a session of its own"
        );
        assert!(model(&store, "t").events(Stream::Events).is_empty());
        assert_eq!(model(&store, "s").events(Stream::Events).len(), 1);
        assert_eq!(model(&store, "t").config().session_id.as_deref(), Some("t"));
    }

    #[test]
    fn requests_and_faults_are_counted_per_session_and_in_total() {
        let mut store = store();
        store.record_request("a", Endpoint::Events, None);
        store.record_request("a", Endpoint::Events, Some(FaultKind::Hang));
        store.record_request("b", Endpoint::Register, Some(FaultKind::Hang));
        let a = &store.session("a").unwrap().stats;
        assert_eq!(a.requests[&Endpoint::Events], 2);
        assert_eq!(a.faults[&FaultKind::Hang], 1);
        assert_eq!(store.totals().total_requests(), 3);
        assert_eq!(store.totals().faults[&FaultKind::Hang], 2);
        assert_eq!(store.session_ids(), ["a", "b"]);
    }
}
