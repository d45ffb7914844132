//! A pure model of the PROTOCOL.md server, for one session.
//!
//! [`ServerModel::handle`] answers one request the way the reference server must, and records
//! what it stored so invariant checks can compare the client's view with the server's. It holds
//! no connections and no clock: the runner passes the time in, and a fault plan decides whether a
//! request reaches it at all.

use alloc::collections::BTreeSet;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::time::Duration;

use serde_json::{json, Map, Value};

use super::date::imf_fixdate;
use super::workload::seq_of;
use crate::patch::DocumentSchema;
use crate::session::{Endpoint, Response};
use crate::time::Instant;

/// The default request-body limit: 10 MiB of events plus 64 KiB of envelope.
pub const DEFAULT_BODY_LIMIT: usize = 10 * 1024 * 1024 + 64 * 1024;

/// The default base of the simulated wall clock: 2023-11-14 22:13:20 UTC.
pub const DEFAULT_BASE_UNIX_TIME: u64 = 1_700_000_000;

/// The statuses a delivery update may carry.
pub const DELIVERY_STATUSES: [&str; 3] = ["received", "processing", "processed"];

/// How the model server behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// A request body longer than this gets `413`.
    pub body_limit: usize,
    /// A worker with no heartbeat for this long is considered gone. Default 60 s.
    pub heartbeat_ttl: Duration,
    /// Unix seconds at [`Instant::ZERO`]; the `Date` header is this plus the simulated time.
    pub base_unix_time: u64,
    /// If set, a heartbeat naming another session gets `404` (session unknown).
    pub session_id: Option<String>,
    /// How `PUT /worker` applies a body.
    pub schema: DocumentSchema,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            body_limit: DEFAULT_BODY_LIMIT,
            heartbeat_ttl: Duration::from_secs(60),
            base_unix_time: DEFAULT_BASE_UNIX_TIME,
            session_id: None,
            schema: DocumentSchema::default(),
        }
    }
}

/// One of the session's two event streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stream {
    /// `POST /worker/events`
    Events,
    /// `POST /worker/internal-events`
    Internal,
}

impl Stream {
    /// Both streams.
    pub const ALL: [Stream; 2] = [Stream::Events, Stream::Internal];

    /// The endpoint that uploads this stream.
    pub const fn endpoint(self) -> Endpoint {
        match self {
            Stream::Events => Endpoint::Events,
            Stream::Internal => Endpoint::InternalEvents,
        }
    }

    /// The stream an endpoint uploads, if it uploads one.
    pub const fn of(endpoint: Endpoint) -> Option<Stream> {
        match endpoint {
            Endpoint::Events => Some(Stream::Events),
            Endpoint::InternalEvents => Some(Stream::Internal),
            _ => None,
        }
    }

    /// A short name for traces and violations.
    pub const fn name(self) -> &'static str {
        match self {
            Stream::Events => "events",
            Stream::Internal => "internal-events",
        }
    }
}

/// An event the server stored: the first arrival of its `payload.uuid`.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    /// `payload.uuid`, the de-duplication key.
    pub uuid: String,
    /// The payload as sent.
    pub payload: Value,
    /// Whether the event was marked `ephemeral`.
    pub ephemeral: bool,
    /// When it first arrived.
    pub at: Instant,
    /// The epoch of the request that carried it.
    pub epoch: u64,
}

/// A delivery update the server stored, in arrival order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryUpdate {
    /// The event the update is about.
    pub event_id: String,
    /// One of [`DELIVERY_STATUSES`].
    pub status: String,
    /// When it arrived.
    pub at: Instant,
}

/// A `PUT /worker` body the server applied (acknowledged with `200`).
#[derive(Clone, Debug, PartialEq)]
pub struct AppliedPut {
    /// When it was applied.
    pub at: Instant,
    /// The epoch it carried.
    pub epoch: u64,
    /// The body without `worker_epoch`: the patch that was applied.
    pub patch: Map<String, Value>,
}

/// One stream's log: first arrivals in order, plus the de-duplication set.
#[derive(Clone, Debug, Default)]
struct EventLog {
    events: Vec<StoredEvent>,
    seen: BTreeSet<String>,
    duplicates: u64,
}

/// The server of PROTOCOL.md for one session, as a pure function of the requests it is given.
///
/// The session always exists; it starts with epoch 0 and an empty document.
#[derive(Clone, Debug)]
pub struct ServerModel {
    config: ServerConfig,
    epoch: u64,
    document: Map<String, Value>,
    events: EventLog,
    internal: EventLog,
    deliveries: Vec<DeliveryUpdate>,
    heartbeats: Vec<Instant>,
    puts: Vec<AppliedPut>,
    restarts: Vec<Instant>,
    requests: u64,
}

/// A rejection: a status and a reason for the error body.
type Reject = (u16, &'static str);

impl ServerModel {
    /// A server with `config` and no data.
    pub fn new(config: ServerConfig) -> Self {
        ServerModel {
            config,
            epoch: 0,
            document: Map::new(),
            events: EventLog::default(),
            internal: EventLog::default(),
            deliveries: Vec::new(),
            heartbeats: Vec::new(),
            puts: Vec::new(),
            restarts: Vec::new(),
            requests: 0,
        }
    }

    /// Answers one request at `now`. Every response carries a `Date`; errors carry
    /// `{"error": reason}`.
    ///
    /// Order of checks: body limit (`413`), body shape and `worker_epoch` (`400`), fencing
    /// (`409`), endpoint-specific fields (`400`). Only a request that passes them all changes
    /// anything, the current epoch included.
    pub fn handle(&mut self, now: Instant, endpoint: Endpoint, body: &[u8]) -> Response {
        self.requests += 1;
        let (status, body) = match self.dispatch(now, endpoint, body) {
            Ok(value) => (200, value),
            Err((status, reason)) => (status, json!({ "error": reason })),
        };
        Response {
            status,
            retry_after: None,
            date: Some(self.date(now)),
            body: serde_json::to_vec(&body).unwrap_or_default(),
            truncated: false,
        }
    }

    fn dispatch(&mut self, now: Instant, endpoint: Endpoint, body: &[u8]) -> Result<Value, Reject> {
        if body.len() > self.config.body_limit {
            return Err((413, "request body too large"));
        }
        match endpoint {
            Endpoint::Register => {
                if !body.is_empty() {
                    parse_object(body)?;
                }
                self.epoch += 1;
                Ok(json!({ "worker_epoch": self.epoch }))
            }
            Endpoint::GetWorker => {
                let mut worker = self.document.clone();
                worker.insert("worker_epoch".to_string(), json!(self.epoch));
                Ok(json!({ "worker": worker }))
            }
            Endpoint::PutWorker => {
                let (mut patch, epoch) = self.fenced(body)?;
                patch.remove("worker_epoch");
                self.epoch = epoch;
                let mut document = Value::Object(core::mem::take(&mut self.document));
                self.config.schema.apply(&mut document, &patch);
                if let Value::Object(map) = document {
                    self.document = map;
                }
                self.puts.push(AppliedPut {
                    at: now,
                    epoch,
                    patch,
                });
                Ok(json!({}))
            }
            Endpoint::Heartbeat => {
                let (body, epoch) = self.fenced(body)?;
                let Some(Value::String(session_id)) = body.get("session_id") else {
                    return Err((400, "session_id must be a string"));
                };
                if self
                    .config
                    .session_id
                    .as_ref()
                    .is_some_and(|s| s != session_id)
                {
                    return Err((404, "unknown session"));
                }
                self.epoch = epoch;
                self.heartbeats.push(now);
                Ok(json!({}))
            }
            Endpoint::Events | Endpoint::InternalEvents => {
                let (body, epoch) = self.fenced(body)?;
                let events = parse_events(&body)?;
                self.epoch = epoch;
                let log = match endpoint {
                    Endpoint::Events => &mut self.events,
                    _ => &mut self.internal,
                };
                for (uuid, payload, ephemeral) in events {
                    if log.seen.insert(uuid.clone()) {
                        log.events.push(StoredEvent {
                            uuid,
                            payload,
                            ephemeral,
                            at: now,
                            epoch,
                        });
                    } else {
                        log.duplicates += 1;
                    }
                }
                Ok(json!({}))
            }
            Endpoint::Delivery => {
                let (body, epoch) = self.fenced(body)?;
                let updates = parse_updates(&body)?;
                self.epoch = epoch;
                self.deliveries
                    .extend(
                        updates
                            .into_iter()
                            .map(|(event_id, status)| DeliveryUpdate {
                                event_id,
                                status,
                                at: now,
                            }),
                    );
                Ok(json!({}))
            }
        }
    }

    /// Parses a body that must carry `worker_epoch`, and fences it: lower than current ⇒ `409`.
    fn fenced(&self, body: &[u8]) -> Result<(Map<String, Value>, u64), Reject> {
        let body = parse_object(body)?;
        let epoch = body
            .get("worker_epoch")
            .and_then(Value::as_u64)
            .ok_or((400, "worker_epoch must be a non-negative integer"))?;
        if epoch < self.epoch {
            return Err((409, "superseded by a newer worker epoch"));
        }
        Ok((body, epoch))
    }

    /// Bumps the epoch as if a newer worker had registered; returns the new epoch.
    pub fn force_takeover(&mut self) -> u64 {
        self.epoch += 1;
        self.epoch
    }

    /// Restarts the server process at `now`.
    ///
    /// The model's server stores everything durably and holds no per-connection state, so a
    /// restart changes no data: document, epoch, events, de-duplication sets and heartbeats all
    /// survive. What a restart does to requests in flight (their responses are lost) is the
    /// network's part; see [`FaultPlan::apply`](super::FaultPlan::apply). Only the time is recorded.
    pub fn restart(&mut self, now: Instant) {
        self.restarts.push(now);
    }

    /// The simulated wall clock at `now`, in Unix seconds.
    pub fn unix_time(&self, now: Instant) -> u64 {
        self.config
            .base_unix_time
            .saturating_add(now.as_micros() / 1_000_000)
    }

    /// The `Date` header the server sends at `now`.
    pub fn date(&self, now: Instant) -> String {
        imf_fixdate(self.unix_time(now))
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The current epoch (0 before any worker registered).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The worker document, without `worker_epoch`.
    pub fn document(&self) -> Value {
        Value::Object(self.document.clone())
    }

    /// The events of a stream in delivery order (first arrival of each uuid).
    pub fn events(&self, stream: Stream) -> &[StoredEvent] {
        &self.log(stream).events
    }

    /// The payloads of a stream in delivery order.
    pub fn payloads(&self, stream: Stream) -> impl Iterator<Item = &Value> {
        self.events(stream).iter().map(|e| &e.payload)
    }

    /// The `seq` of each stored payload of a stream, in delivery order, for
    /// [`StreamRecord::delivered`](super::check::StreamRecord::delivered). Payloads without one
    /// are skipped.
    pub fn seqs(&self, stream: Stream) -> Vec<u64> {
        self.payloads(stream).filter_map(seq_of).collect()
    }

    /// How many events of a stream were dropped as duplicates of an earlier uuid.
    pub fn duplicates(&self, stream: Stream) -> u64 {
        self.log(stream).duplicates
    }

    /// Every delivery update, in arrival order.
    pub fn delivery_updates(&self) -> &[DeliveryUpdate] {
        &self.deliveries
    }

    /// When each accepted heartbeat arrived.
    pub fn heartbeats(&self) -> &[Instant] {
        &self.heartbeats
    }

    /// Whether a heartbeat arrived within the TTL before `now`.
    pub fn is_alive(&self, now: Instant) -> bool {
        self.heartbeats
            .last()
            .is_some_and(|&last| now.saturating_duration_since(last) <= self.config.heartbeat_ttl)
    }

    /// Every `PUT /worker` the server applied, in order.
    pub fn applied_puts(&self) -> &[AppliedPut] {
        &self.puts
    }

    /// When the server was restarted.
    pub fn restarts(&self) -> &[Instant] {
        &self.restarts
    }

    /// How many requests reached the server.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    fn log(&self, stream: Stream) -> &EventLog {
        match stream {
            Stream::Events => &self.events,
            Stream::Internal => &self.internal,
        }
    }
}

impl Default for ServerModel {
    fn default() -> Self {
        ServerModel::new(ServerConfig::default())
    }
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, Reject> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err((400, "body must be a JSON object")),
        Err(_) => Err((400, "malformed JSON")),
    }
}

/// `events: [{"payload": {.., "uuid": str}, "ephemeral"?: bool}]`, validated whole before use.
fn parse_events(body: &Map<String, Value>) -> Result<Vec<(String, Value, bool)>, Reject> {
    let Some(Value::Array(events)) = body.get("events") else {
        return Err((400, "events must be an array"));
    };
    events
        .iter()
        .map(|event| {
            let payload = event.get("payload").filter(|p| p.is_object());
            let uuid = payload.and_then(|p| p.get("uuid")).and_then(Value::as_str);
            let (Some(payload), Some(uuid)) = (payload, uuid) else {
                return Err((400, "each event needs a payload object with a string uuid"));
            };
            let ephemeral = match event.get("ephemeral") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err((400, "ephemeral must be a boolean")),
            };
            Ok((uuid.to_string(), payload.clone(), ephemeral))
        })
        .collect()
}

/// `updates: [{"event_id": str, "status": "received" | "processing" | "processed"}]`.
fn parse_updates(body: &Map<String, Value>) -> Result<Vec<(String, String)>, Reject> {
    let Some(Value::Array(updates)) = body.get("updates") else {
        return Err((400, "updates must be an array"));
    };
    updates
        .iter()
        .map(|update| {
            let id = update.get("event_id").and_then(Value::as_str);
            let status = update
                .get("status")
                .and_then(Value::as_str)
                .filter(|s| DELIVERY_STATUSES.contains(s));
            match (id, status) {
                (Some(id), Some(status)) => Ok((id.to_string(), status.to_string())),
                _ => Err((400, "each update needs an event_id and a known status")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backoff::retry_after::parse_http_date;
    use alloc::vec;

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
        assert_eq!(server.events(Stream::Internal).len(), 1);
        assert_eq!(server.duplicates(Stream::Internal), 0);
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
                br#"{"worker_epoch":1,"events":[{"payload":{"uuid":"a"}},{"payload":{}}]}"#
                    .to_vec(),
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
                core::str::from_utf8(&body).unwrap()
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
        assert!(server.is_alive(Instant::from_secs(70)));
        assert!(!server.is_alive(Instant::from_secs(71)));
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
}
