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
