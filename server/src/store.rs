//! Session state and the protocol's semantics, without HTTP.
//!
//! Everything a request does to a session happens here, given the route, the raw body and the
//! time, so the rules of PROTOCOL.md are tested without a socket. The HTTP layer only decides
//! faults and moves bytes.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde_json::{json, Map, Value};
use tether_core::patch::DocumentSchema;

use crate::faults::FaultKind;
use crate::routes::Route;

/// The duplicates a stream filtered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Duplicates {
    /// How many events were dropped as duplicates.
    pub count: u64,
    /// Their uuids, in the order they were dropped (a uuid repeats if sent again and again).
    pub uuids: Vec<String>,
}

/// The status of a delivery update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// `received`
    Received,
    /// `processing`
    Processing,
    /// `processed`
    Processed,
}

/// One update of `POST /worker/events/delivery`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryUpdate {
    /// The event it is about.
    pub event_id: String,
    /// Its new status.
    pub status: DeliveryStatus,
}

/// Requests and faults, counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Requests that reached each route (faulted or not).
    pub requests: BTreeMap<Route, u64>,
    /// Faults injected, by kind.
    pub faults: BTreeMap<FaultKind, u64>,
}

impl Stats {
    fn record(&mut self, route: Route, fault: Option<FaultKind>) {
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

/// One event stream (`events` or `internal-events`) of a session.
#[derive(Clone, Debug, Default)]
pub(crate) struct Stream {
    seen: HashSet<String>,
    /// Payloads in order of first arrival: the delivery order.
    pub payloads: Vec<Value>,
    pub duplicates: Duplicates,
}

impl Stream {
    fn append(&mut self, events: Vec<(String, Value)>) {
        for (uuid, payload) in events {
            if self.seen.contains(&uuid) {
                self.duplicates.count += 1;
                self.duplicates.uuids.push(uuid);
            } else {
                self.seen.insert(uuid);
                self.payloads.push(payload);
            }
        }
    }
}

/// One session's state.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    pub epoch: u64,
    /// The worker document without `worker_epoch` (added when read).
    pub document: Value,
    pub events: Stream,
    pub internal: Stream,
    pub deliveries: Vec<DeliveryUpdate>,
    /// Times of accepted heartbeats, since the server started.
    pub heartbeats: Vec<Duration>,
    pub stats: Stats,
}

impl Default for Session {
    fn default() -> Self {
        Session {
            epoch: 0,
            document: Value::Object(Map::new()),
            events: Stream::default(),
            internal: Stream::default(),
            deliveries: Vec::new(),
            heartbeats: Vec::new(),
            stats: Stats::default(),
        }
    }
}

impl Session {
    /// The document as `GET /worker` reports it.
    pub fn document_with_epoch(&self) -> Value {
        let mut doc = self.document.clone();
        if let Value::Object(map) = &mut doc {
            map.insert("worker_epoch".into(), json!(self.epoch));
        }
        doc
    }

    /// Whether a heartbeat arrived within `ttl` before `now`.
    pub fn is_alive(&self, now: Duration, ttl: Duration) -> bool {
        self.heartbeats
            .last()
            .is_some_and(|&t| now.saturating_sub(t) < ttl)
    }

    /// Epoch fencing: lower is superseded, higher takes over.
    fn fence(&mut self, epoch: u64) -> Result<(), Rejection> {
        if epoch < self.epoch {
            return Err(Rejection::Superseded {
                current: self.epoch,
                got: epoch,
            });
        }
        self.epoch = epoch;
        Ok(())
    }
}

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// 400: malformed JSON or a body that breaks the protocol.
    BadRequest(String),
    /// 409: the body's epoch is older than the session's.
    Superseded { current: u64, got: u64 },
}

impl Rejection {
    pub fn status(&self) -> u16 {
        match self {
            Rejection::BadRequest(_) => 400,
            Rejection::Superseded { .. } => 409,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Rejection::BadRequest(m) => m.clone(),
            Rejection::Superseded { current, got } => {
                format!("worker_epoch {got} is superseded by {current}")
            }
        }
    }
}

fn bad(message: impl Into<String>) -> Rejection {
    Rejection::BadRequest(message.into())
}

/// Every session, keyed by id, and the server-wide counters.
#[derive(Debug, Default)]
pub(crate) struct Store {
    schema: DocumentSchema,
    sessions: BTreeMap<String, Session>,
    totals: Stats,
}

impl Store {
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
            self.sessions.insert(id.to_owned(), Session::default());
        }
        self.sessions.get_mut(id).expect("inserted above")
    }

    /// Counts a request to `route` of session `id` (creating the session) and its fault.
    pub fn record_request(&mut self, id: &str, route: Route, fault: Option<FaultKind>) {
        self.totals.record(route, fault);
        self.session_mut(id).stats.record(route, fault);
    }

    /// Bumps the epoch of session `id` as if a newer worker registered; returns the new epoch.
    pub fn force_takeover(&mut self, id: &str) -> u64 {
        let session = self.session_mut(id);
        session.epoch += 1;
        session.epoch
    }

    /// Applies one request to session `id` at `now` (since server start); returns the JSON body
    /// of the `200` response.
    pub fn handle(
        &mut self,
        id: &str,
        route: Route,
        body: &[u8],
        now: Duration,
    ) -> Result<Value, Rejection> {
        let schema = self.schema.clone();
        let session = self.session_mut(id);
        match route {
            Route::Register => {
                if !body.iter().all(u8::is_ascii_whitespace) {
                    parse_object(body)?;
                }
                session.epoch += 1;
                Ok(json!({ "worker_epoch": session.epoch }))
            }
            Route::GetWorker => Ok(json!({ "worker": session.document_with_epoch() })),
            Route::PutWorker => {
                let mut patch = parse_object(body)?;
                let epoch = epoch_of(&patch)?;
                session.fence(epoch)?;
                patch.remove("worker_epoch");
                schema.apply(&mut session.document, &patch);
                Ok(json!({}))
            }
            Route::Heartbeat => {
                let body = parse_object(body)?;
                let epoch = epoch_of(&body)?;
                match body.get("session_id") {
                    Some(Value::String(s)) if s == id => {}
                    Some(Value::String(s)) => {
                        return Err(bad(format!("session_id `{s}` does not match the URL")))
                    }
                    _ => return Err(bad("session_id must be a string")),
                }
                session.fence(epoch)?;
                session.heartbeats.push(now);
                Ok(json!({}))
            }
            Route::Events | Route::InternalEvents => {
                let body = parse_object(body)?;
                let epoch = epoch_of(&body)?;
                let events = parse_events(&body)?;
                session.fence(epoch)?;
                let stream = if route == Route::Events {
                    &mut session.events
                } else {
                    &mut session.internal
                };
                stream.append(events);
                Ok(json!({}))
            }
            Route::Delivery => {
                let body = parse_object(body)?;
                let epoch = epoch_of(&body)?;
                let updates = parse_updates(&body)?;
                session.fence(epoch)?;
                session.deliveries.extend(updates);
                Ok(json!({}))
            }
        }
    }
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, Rejection> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(bad("the body must be a JSON object")),
        Err(e) => Err(bad(format!("malformed JSON: {e}"))),
    }
}

fn epoch_of(body: &Map<String, Value>) -> Result<u64, Rejection> {
    match body.get("worker_epoch") {
        Some(v) => v
            .as_u64()
            .ok_or_else(|| bad("worker_epoch must be a non-negative integer")),
        None => Err(bad("worker_epoch is missing")),
    }
}

/// The whole batch is checked before any of it is stored: one bad event refuses them all.
fn parse_events(body: &Map<String, Value>) -> Result<Vec<(String, Value)>, Rejection> {
    let Some(Value::Array(events)) = body.get("events") else {
        return Err(bad("events must be an array"));
    };
    events
        .iter()
        .enumerate()
        .map(|(i, event)| {
            let payload = event.get("payload").filter(|p| p.is_object());
            let Some(payload) = payload else {
                return Err(bad(format!("events[{i}].payload must be an object")));
            };
            let Some(uuid) = payload.get("uuid").and_then(Value::as_str) else {
                return Err(bad(format!("events[{i}].payload.uuid must be a string")));
            };
            if event.get("ephemeral").is_some_and(|e| !e.is_boolean()) {
                return Err(bad(format!("events[{i}].ephemeral must be a boolean")));
            }
            Ok((uuid.to_owned(), payload.clone()))
        })
        .collect()
}

fn parse_updates(body: &Map<String, Value>) -> Result<Vec<DeliveryUpdate>, Rejection> {
    let Some(Value::Array(updates)) = body.get("updates") else {
        return Err(bad("updates must be an array"));
    };
    updates
        .iter()
        .enumerate()
        .map(|(i, update)| {
            let Some(event_id) = update.get("event_id").and_then(Value::as_str) else {
                return Err(bad(format!("updates[{i}].event_id must be a string")));
            };
            let status = match update.get("status").and_then(Value::as_str) {
                Some("received") => DeliveryStatus::Received,
                Some("processing") => DeliveryStatus::Processing,
                Some("processed") => DeliveryStatus::Processed,
                _ => return Err(bad(format!("updates[{i}].status is not a known status"))),
            };
            Ok(DeliveryUpdate {
                event_id: event_id.to_owned(),
                status,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::ZERO;

    fn send(store: &mut Store, route: Route, body: Value) -> Result<Value, Rejection> {
        store.handle("s", route, body.to_string().as_bytes(), T)
    }

    fn events(epoch: u64, uuids: &[&str]) -> Value {
        let events: Vec<Value> = uuids
            .iter()
            .map(|u| json!({"payload": {"uuid": u, "n": u}}))
            .collect();
        json!({"worker_epoch": epoch, "events": events})
    }

    #[test]
    fn register_bumps_the_epoch_every_time() {
        let mut store = Store::default();
        assert_eq!(
            store.handle("s", Route::Register, b"", T),
            Ok(json!({"worker_epoch": 1}))
        );
        assert_eq!(
            send(&mut store, Route::Register, json!({})),
            Ok(json!({"worker_epoch": 2}))
        );
        assert_eq!(
            store.handle("t", Route::Register, b"{}", T),
            Ok(json!({"worker_epoch": 1}))
        );
        assert_eq!(
            store
                .handle("s", Route::Register, b"[", T)
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(store.session("s").unwrap().epoch, 2);
    }

    #[test]
    fn put_merges_metadata_and_replaces_the_rest() {
        let mut store = Store::default();
        send(
            &mut store,
            Route::PutWorker,
            json!({"worker_epoch": 0, "worker_status": "idle",
            "external_metadata": {"a": 1, "b": {"c": 1}}, "tags": {"x": 1}}),
        )
        .unwrap();
        send(
            &mut store,
            Route::PutWorker,
            json!({"worker_epoch": 0, "worker_status": "busy",
            "external_metadata": {"a": null, "b": {"d": 2}}, "tags": {"y": 2}}),
        )
        .unwrap();
        let got = send(&mut store, Route::GetWorker, Value::Null).unwrap();
        assert_eq!(
            got,
            json!({"worker": {"worker_epoch": 0, "worker_status": "busy",
            "external_metadata": {"b": {"c": 1, "d": 2}}, "tags": {"y": 2}}})
        );
    }

    #[test]
    fn events_are_deduplicated_per_stream_in_first_arrival_order() {
        let mut store = Store::default();
        send(&mut store, Route::Events, events(0, &["a", "b"])).unwrap();
        send(&mut store, Route::Events, events(0, &["b", "c", "a"])).unwrap();
        send(&mut store, Route::InternalEvents, events(0, &["a"])).unwrap();
        let s = store.session("s").unwrap();
        let uuids: Vec<&str> = s
            .events
            .payloads
            .iter()
            .map(|p| p["uuid"].as_str().unwrap())
            .collect();
        assert_eq!(uuids, ["a", "b", "c"]);
        assert_eq!(
            s.events.duplicates,
            Duplicates {
                count: 2,
                uuids: vec!["b".into(), "a".into()]
            }
        );
        assert_eq!(s.internal.payloads.len(), 1);
        assert_eq!(s.internal.duplicates.count, 0);
    }

    #[test]
    fn one_bad_event_refuses_the_whole_batch() {
        let mut store = Store::default();
        let body = json!({"worker_epoch": 0, "events": [
            {"payload": {"uuid": "a"}}, {"payload": {"uuid": 7}}]});
        assert_eq!(
            send(&mut store, Route::Events, body).unwrap_err().status(),
            400
        );
        let body =
            json!({"worker_epoch": 0, "events": [{"payload": {"uuid": "a"}, "ephemeral": 1}]});
        assert_eq!(
            send(&mut store, Route::Events, body).unwrap_err().status(),
            400
        );
        assert!(store.session("s").unwrap().events.payloads.is_empty());
        let body =
            json!({"worker_epoch": 0, "events": [{"payload": {"uuid": "a"}, "ephemeral": true}]});
        send(&mut store, Route::Events, body).unwrap();
        assert_eq!(
            store.session("s").unwrap().events.payloads,
            [json!({"uuid": "a"})]
        );
    }

    #[test]
    fn lower_epoch_is_fenced_and_higher_takes_over() {
        let mut store = Store::default();
        send(&mut store, Route::Register, json!({})).unwrap();
        send(&mut store, Route::Register, json!({})).unwrap();
        let stale = send(&mut store, Route::Events, events(1, &["a"])).unwrap_err();
        assert_eq!(stale, Rejection::Superseded { current: 2, got: 1 });
        assert_eq!(stale.status(), 409);
        assert!(store.session("s").unwrap().events.payloads.is_empty());
        send(&mut store, Route::PutWorker, json!({"worker_epoch": 5})).unwrap();
        assert_eq!(store.session("s").unwrap().epoch, 5);
        assert_eq!(store.force_takeover("s"), 6);
        let body = json!({"worker_epoch": 5, "session_id": "s"});
        assert_eq!(
            send(&mut store, Route::Heartbeat, body)
                .unwrap_err()
                .status(),
            409
        );
        assert_eq!(
            send(&mut store, Route::Register, json!({})),
            Ok(json!({"worker_epoch": 7}))
        );
    }

    #[test]
    fn missing_or_invalid_epoch_is_a_bad_request() {
        let mut store = Store::default();
        for body in [
            json!({}),
            json!({"worker_epoch": -1}),
            json!({"worker_epoch": 1.5}),
            json!({"worker_epoch": "1"}),
            json!([1]),
        ] {
            for route in [
                Route::PutWorker,
                Route::Heartbeat,
                Route::Events,
                Route::Delivery,
            ] {
                assert_eq!(
                    send(&mut store, route, body.clone()).unwrap_err().status(),
                    400
                );
            }
        }
        assert_eq!(
            store
                .handle("s", Route::PutWorker, b"{nope", T)
                .unwrap_err()
                .status(),
            400
        );
    }

    #[test]
    fn heartbeats_are_timed_and_checked() {
        let mut store = Store::default();
        let beat = |store: &mut Store, id: &str, at: u64| {
            let body = json!({"worker_epoch": 0, "session_id": id}).to_string();
            store.handle(
                "s",
                Route::Heartbeat,
                body.as_bytes(),
                Duration::from_secs(at),
            )
        };
        assert!(!Session::default().is_alive(T, Duration::from_secs(60)));
        beat(&mut store, "s", 10).unwrap();
        beat(&mut store, "s", 30).unwrap();
        assert_eq!(beat(&mut store, "other", 40).unwrap_err().status(), 400);
        let s = store.session("s").unwrap();
        assert_eq!(
            s.heartbeats,
            [Duration::from_secs(10), Duration::from_secs(30)]
        );
        let ttl = Duration::from_secs(60);
        assert!(s.is_alive(Duration::from_secs(89), ttl));
        assert!(!s.is_alive(Duration::from_secs(90), ttl));
    }

    #[test]
    fn delivery_updates_are_kept_in_order_and_validated() {
        let mut store = Store::default();
        let body = json!({"worker_epoch": 0, "updates": [
            {"event_id": "e1", "status": "received"}, {"event_id": "e1", "status": "processed"}]});
        send(&mut store, Route::Delivery, body).unwrap();
        let body = json!({"worker_epoch": 0, "updates": [{"event_id": "e2", "status": "lost"}]});
        assert_eq!(
            send(&mut store, Route::Delivery, body)
                .unwrap_err()
                .status(),
            400
        );
        let s = store.session("s").unwrap();
        assert_eq!(
            s.deliveries,
            [
                DeliveryUpdate {
                    event_id: "e1".into(),
                    status: DeliveryStatus::Received
                },
                DeliveryUpdate {
                    event_id: "e1".into(),
                    status: DeliveryStatus::Processed
                },
            ]
        );
    }

    #[test]
    fn requests_and_faults_are_counted_per_session_and_in_total() {
        let mut store = Store::default();
        store.record_request("a", Route::Events, None);
        store.record_request("a", Route::Events, Some(FaultKind::Hang));
        store.record_request("b", Route::Register, Some(FaultKind::Hang));
        let a = &store.session("a").unwrap().stats;
        assert_eq!(a.requests[&Route::Events], 2);
        assert_eq!(a.faults[&FaultKind::Hang], 1);
        assert_eq!(store.totals().total_requests(), 3);
        assert_eq!(store.totals().faults[&FaultKind::Hang], 2);
        assert_eq!(store.session_ids(), ["a", "b"]);
    }
}
