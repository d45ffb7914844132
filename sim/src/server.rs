//! A pure model of the docs/PROTOCOL.md server, for one session.
//!
//! [`ServerModel::handle`] answers one request the way the reference server must, and records
//! what it stored so invariant checks can compare the client's view with the server's. It holds
//! no connections and no clock: the runner passes the time in, and a fault plan decides whether a
//! request reaches it at all.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value, json};

use super::workload::seq_of;
use tether_core::backoff::retry_after::format_http_date;
use tether_core::patch::DocumentSchema;
use tether_core::session::{DeliveryStatus, Endpoint, Response};
use tether_core::time::Instant;

/// The default request-body limit: 10 MiB of events plus 64 KiB of envelope.
pub const DEFAULT_BODY_LIMIT: usize = 10 * 1024 * 1024 + 64 * 1024;

/// The default base of the simulated wall clock: 2023-11-14 22:13:20 UTC.
pub const DEFAULT_BASE_UNIX_TIME: u64 = 1_700_000_000;

/// The statuses a delivery update may carry.
const STATUSES: [DeliveryStatus; 3] = [
    DeliveryStatus::Received,
    DeliveryStatus::Processing,
    DeliveryStatus::Processed,
];

/// The statuses a delivery update may carry, as they are written on the wire.
pub const DELIVERY_STATUSES: [&str; 3] = [
    STATUSES[0].as_str(),
    STATUSES[1].as_str(),
    STATUSES[2].as_str(),
];

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
///
/// The payload is kept as the JSON text that was sent and parsed into a [`Value`] only when
/// [`payload`](Self::payload) is first called; its `seq` was read on arrival.
#[derive(Clone, Debug)]
pub struct StoredEvent {
    /// `payload.uuid`, the de-duplication key.
    pub uuid: String,
    /// Whether the event was marked `ephemeral`.
    pub ephemeral: bool,
    /// When it first arrived.
    pub at: Instant,
    /// The epoch of the request that carried it.
    pub epoch: u64,
    payload: StoredPayload,
    seq: Option<u64>,
}

/// A stored payload: its JSON text, parsed on first use, or a value parsed on arrival.
#[derive(Clone, Debug)]
enum StoredPayload {
    Json {
        text: Box<str>,
        value: OnceCell<Value>,
    },
    Value(Value),
}

impl StoredEvent {
    /// The payload as sent.
    pub fn payload(&self) -> &Value {
        match &self.payload {
            // The text was validated as a JSON object when it arrived.
            StoredPayload::Json { text, value } => {
                value.get_or_init(|| serde_json::from_str(text).unwrap_or(Value::Null))
            }
            StoredPayload::Value(value) => value,
        }
    }

    /// The payload's [`SEQ_FIELD`](super::SEQ_FIELD), as [`seq_of`] reads it, without parsing
    /// the payload.
    pub fn seq(&self) -> Option<u64> {
        self.seq
    }
}

impl PartialEq for StoredEvent {
    fn eq(&self, other: &Self) -> bool {
        self.uuid == other.uuid
            && self.ephemeral == other.ephemeral
            && self.at == other.at
            && self.epoch == other.epoch
            && self.seq == other.seq
            && self.payload() == other.payload()
    }
}

/// A delivery update the server stored, in arrival order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryUpdate {
    /// The event the update is about.
    pub event_id: String,
    /// Its status (one of [`DELIVERY_STATUSES`] on the wire).
    pub status: DeliveryStatus,
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
    /// The uuid of each event dropped as a duplicate, in the order they were dropped.
    duplicates: Vec<String>,
}

/// The server of docs/PROTOCOL.md for one session, as a pure function of the requests it is given.
///
/// The session always exists; it starts with epoch 0 and an empty document. Stored payloads are
/// parsed lazily (see [`StoredEvent`]), so the model is `Send` but not `Sync`.
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
    /// Thread sync's store (docs/PROTOCOL.md §Thread sync), served by `handle_thread`.
    threads: crate::threads::ThreadStore,
    /// The `Date` header's day part (`Tue, 14 Nov 2023 `) for a day number, reused all day.
    date_day: Option<(u64, String)>,
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
            threads: crate::threads::ThreadStore::default(),
            date_day: None,
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
            Ok(None) => (200, b"{}".to_vec()),
            Ok(Some(value)) => (200, serde_json::to_vec(&value).unwrap_or_default()),
            Err((status, reason)) => (
                status,
                serde_json::to_vec(&json!({ "error": reason })).unwrap_or_default(),
            ),
        };
        Response {
            status,
            retry_after: None,
            date: Some(self.cached_date(now)),
            body,
            truncated: false,
        }
    }

    /// [`date`](Self::date), first caching the day part of `now`'s date.
    fn cached_date(&mut self, now: Instant) -> String {
        let day = self.unix_time(now) / 86_400;
        if self.date_day.as_ref().is_none_or(|(d, _)| *d != day) {
            // `Tue, 14 Nov 2023 00:00:00 GMT` without its time of day.
            let mut prefix = format_http_date(day * 86_400);
            prefix.truncate(prefix.len() - "00:00:00 GMT".len());
            self.date_day = Some((day, prefix));
        }
        self.date(now)
    }

    /// [`format_http_date`], reusing the cached day part when `unix_secs` falls on its day.
    pub(super) fn http_date(&self, unix_secs: u64) -> String {
        let Some((_, prefix)) = self
            .date_day
            .as_ref()
            .filter(|(day, _)| *day == unix_secs / 86_400)
        else {
            return format_http_date(unix_secs);
        };
        let mut date = String::with_capacity(prefix.len() + "00:00:00 GMT".len());
        date.push_str(prefix);
        let secs = unix_secs % 86_400;
        for (i, field) in [secs / 3600, secs / 60 % 60, secs % 60]
            .into_iter()
            .enumerate()
        {
            if i > 0 {
                date.push(':');
            }
            date.push(char::from(b'0' + (field / 10) as u8));
            date.push(char::from(b'0' + (field % 10) as u8));
        }
        date.push_str(" GMT");
        date
    }

    /// The response body on success: `None` for `{}`.
    fn dispatch(
        &mut self,
        now: Instant,
        endpoint: Endpoint,
        body: &[u8],
    ) -> Result<Option<Value>, Reject> {
        if body.len() > self.config.body_limit {
            return Err((413, "request body too large"));
        }
        match endpoint {
            Endpoint::Register => {
                if !body.is_empty() {
                    parse_object(body)?;
                }
                self.epoch += 1;
                Ok(Some(json!({ "worker_epoch": self.epoch })))
            }
            Endpoint::GetWorker => Ok(Some(json!({ "worker": self.worker() }))),
            Endpoint::PutWorker => {
                let (mut patch, epoch) = self.fenced(body)?;
                patch.remove("worker_epoch");
                self.epoch = epoch;
                let mut document = Value::Object(std::mem::take(&mut self.document));
                self.config.schema.apply(&mut document, &patch);
                if let Value::Object(map) = document {
                    self.document = map;
                }
                self.puts.push(AppliedPut {
                    at: now,
                    epoch,
                    patch,
                });
                Ok(None)
            }
            Endpoint::Heartbeat => {
                let slow;
                let (epoch, session_id) = match serde_json::from_slice::<Beat<'_>>(body) {
                    Ok(beat) => (beat.epoch, beat.session_id),
                    Err(_) => {
                        slow = parse_object(body)?;
                        let session_id = match slow.get("session_id") {
                            Some(Value::String(s)) => Some(Cow::Borrowed(s.as_str())),
                            _ => None,
                        };
                        (slow.get("worker_epoch").and_then(Value::as_u64), session_id)
                    }
                };
                let epoch = self.fence(epoch)?;
                let Some(session_id) = session_id else {
                    return Err((400, "session_id must be a string"));
                };
                if self
                    .config
                    .session_id
                    .as_ref()
                    .is_some_and(|s| *s != session_id)
                {
                    return Err((404, "unknown session"));
                }
                self.epoch = epoch;
                self.heartbeats.push(now);
                Ok(None)
            }
            Endpoint::Events | Endpoint::InternalEvents => {
                let slow;
                let (epoch, events) = match scan_events(body) {
                    Some((epoch, events)) => (self.fence(Some(epoch))?, events),
                    None => {
                        let epoch;
                        (slow, epoch) = self.fenced(body)?;
                        (epoch, parse_events(&slow)?)
                    }
                };
                self.epoch = epoch;
                let log = match endpoint {
                    Endpoint::Events => &mut self.events,
                    _ => &mut self.internal,
                };
                for event in events {
                    if log.seen.contains(event.uuid.as_ref()) {
                        log.duplicates.push(event.uuid.into_owned());
                        continue;
                    }
                    let uuid = event.uuid.into_owned();
                    log.seen.insert(uuid.clone());
                    log.events.push(StoredEvent {
                        uuid,
                        ephemeral: event.ephemeral,
                        at: now,
                        epoch,
                        payload: event.payload,
                        seq: event.seq,
                    });
                }
                Ok(None)
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
                Ok(None)
            }
        }
    }

    /// Parses a body that must carry `worker_epoch`, and fences it: lower than current ⇒ `409`.
    fn fenced(&self, body: &[u8]) -> Result<(Map<String, Value>, u64), Reject> {
        let body = parse_object(body)?;
        let epoch = self.fence(body.get("worker_epoch").and_then(Value::as_u64))?;
        Ok((body, epoch))
    }

    /// Answers one thread-sync request (docs/PROTOCOL.md §Thread sync) at `now`; `query` is the
    /// URL's query without `?`. Pushes are fenced by the session's epoch like every body.
    pub fn handle_thread(
        &mut self,
        now: Instant,
        endpoint: tether_core::thread::ThreadEndpoint,
        query: &str,
        body: &[u8],
    ) -> Response {
        self.requests += 1;
        let limit = self.config.body_limit;
        let result = crate::threads::store::dispatch(
            &mut self.threads,
            &mut self.epoch,
            endpoint,
            query,
            body,
            limit,
        );
        let (status, value) = match result {
            Ok(value) => (200, value),
            Err((status, reason)) => (status, json!({ "error": reason })),
        };
        Response {
            status,
            retry_after: None,
            date: Some(self.cached_date(now)),
            body: serde_json::to_vec(&value).unwrap_or_default(),
            truncated: false,
        }
    }

    /// The threads stored (docs/PROTOCOL.md §Thread sync).
    pub fn threads(&self) -> &crate::threads::ThreadStore {
        &self.threads
    }

    /// The threads stored, to steer (e.g. [`poison`](crate::threads::ThreadStore::poison)).
    pub fn threads_mut(&mut self) -> &mut crate::threads::ThreadStore {
        &mut self.threads
    }

    /// Fences a body's `worker_epoch` (`None` if absent or not a `u64`).
    fn fence(&self, epoch: Option<u64>) -> Result<u64, Reject> {
        let epoch = epoch.ok_or((400, "worker_epoch must be a non-negative integer"))?;
        if epoch < self.epoch {
            return Err((409, "superseded by a newer worker epoch"));
        }
        Ok(epoch)
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
        self.http_date(self.unix_time(now))
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

    /// The worker document as `GET /worker` reports it: with `worker_epoch`.
    pub fn worker(&self) -> Value {
        let mut worker = self.document.clone();
        worker.insert("worker_epoch".to_string(), json!(self.epoch));
        Value::Object(worker)
    }

    /// The events of a stream in delivery order (first arrival of each uuid).
    pub fn events(&self, stream: Stream) -> &[StoredEvent] {
        &self.log(stream).events
    }

    /// The payloads of a stream in delivery order. Each is parsed on first use; for the `seq`s
    /// alone, [`seqs`](Self::seqs) parses nothing.
    pub fn payloads(&self, stream: Stream) -> impl Iterator<Item = &Value> {
        self.events(stream).iter().map(StoredEvent::payload)
    }

    /// The `seq` of each stored payload of a stream, in delivery order, for
    /// [`StreamRecord::delivered`](super::check::StreamRecord::delivered). Payloads without one
    /// are skipped. The same as `payloads(stream).filter_map(seq_of)`, without parsing payloads.
    pub fn seqs(&self, stream: Stream) -> Vec<u64> {
        self.events(stream)
            .iter()
            .filter_map(StoredEvent::seq)
            .collect()
    }

    /// How many events of a stream were dropped as duplicates of an earlier uuid.
    pub fn duplicates(&self, stream: Stream) -> u64 {
        self.log(stream).duplicates.len() as u64
    }

    /// The uuid of each event of a stream dropped as a duplicate, in the order they were dropped
    /// (a uuid sent again and again repeats).
    pub fn duplicate_uuids(&self, stream: Stream) -> &[String] {
        &self.log(stream).duplicates
    }

    /// Every delivery update, in arrival order.
    pub fn delivery_updates(&self) -> &[DeliveryUpdate] {
        &self.deliveries
    }

    /// When each accepted heartbeat arrived.
    pub fn heartbeats(&self) -> &[Instant] {
        &self.heartbeats
    }

    /// Whether a heartbeat arrived within the TTL before `now`: a worker with no heartbeat for
    /// the whole TTL is gone (docs/PROTOCOL.md).
    pub fn is_alive(&self, now: Instant) -> bool {
        self.heartbeats
            .last()
            .is_some_and(|&last| now.saturating_duration_since(last) < self.config.heartbeat_ttl)
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

/// An event of a batch, validated and ready to store.
struct Incoming<'a> {
    uuid: Cow<'a, str>,
    payload: StoredPayload,
    seq: Option<u64>,
    ephemeral: bool,
}

/// `events: [{"payload": {.., "uuid": str}, "ephemeral"?: bool}]`, validated whole before use.
fn parse_events(body: &Map<String, Value>) -> Result<Vec<Incoming<'_>>, Reject> {
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
            Ok(Incoming {
                uuid: Cow::Borrowed(uuid),
                payload: StoredPayload::Value(payload.clone()),
                seq: seq_of(payload),
                ephemeral,
            })
        })
        .collect()
}

/// `updates: [{"event_id": str, "status": "received" | "processing" | "processed"}]`.
fn parse_updates(body: &Map<String, Value>) -> Result<Vec<(String, DeliveryStatus)>, Reject> {
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
                .and_then(|s| STATUSES.into_iter().find(|status| status.as_str() == s));
            match (id, status) {
                (Some(id), Some(status)) => Ok((id.to_string(), status)),
                _ => Err((400, "each update needs an event_id and a known status")),
            }
        })
        .collect()
}

// The fast path for event batches and heartbeats.
//
// The session assembles a batch as `{"worker_epoch":N,"events":[item,..]}`, each item
// `{"payload":P}` or `{"payload":P,"ephemeral":true}`, byte for byte (`batch::body`).
// [`scan_events`] reads exactly that shape. serde_json reads each payload as strictly as parsing
// it into a `Value` would, keeping only the last `uuid` and `seq` (what `Value::get` would
// return) and where the payload ends. Any other shape, a payload without a string uuid or deep
// nesting returns `None` and the body takes the `Value` path, so every answer is the same either
// way; only the work differs.

/// The deepest nesting the fast paths take, counting the object read as level 1 (the `Value`
/// path allows 125 levels for a payload, 128 for a heartbeat body).
const FAST_MAX_DEPTH: usize = 64;

/// The epoch and events of a batch in the session's own layout, or `None` for the slow path.
fn scan_events(body: &[u8]) -> Option<(u64, Vec<Incoming<'_>>)> {
    let body = std::str::from_utf8(body).ok()?;
    let rest = body.strip_prefix("{\"worker_epoch\":")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || (digits > 1 && rest.starts_with('0')) {
        return None;
    }
    let mut epoch = 0u64;
    for d in rest[..digits].bytes() {
        epoch = epoch.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    let mut rest = rest[digits..].strip_prefix(",\"events\":[")?;
    let mut events = Vec::new();
    if rest == "]}" {
        return Some((epoch, events));
    }
    loop {
        rest = rest.strip_prefix("{\"payload\":")?;
        if !rest.starts_with('{') {
            return None;
        }
        let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<PayloadProbe<'_>>();
        let probe = stream.next()?.ok()?;
        let (json, after) = rest.split_at_checked(stream.byte_offset())?;
        let (ephemeral, after) = match after.strip_prefix('}') {
            Some(after) => (false, after),
            None => (true, after.strip_prefix(",\"ephemeral\":true}")?),
        };
        events.push(Incoming {
            uuid: probe.uuid?,
            payload: StoredPayload::Json {
                text: json.into(),
                value: OnceCell::new(),
            },
            seq: probe.seq,
            ephemeral,
        });
        match after.strip_prefix(',') {
            Some(after) => rest = after,
            None => return (after == "]}").then_some((epoch, events)),
        }
    }
}

/// What the fast path reads of a payload object: its `uuid` if a string, its `seq` if a `u64`.
struct PayloadProbe<'a> {
    uuid: Option<Cow<'a, str>>,
    seq: Option<u64>,
}

impl<'de> Deserialize<'de> for PayloadProbe<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let [uuid, seq] = deserializer.deserialize_map(Pick {
            keys: ["uuid", super::workload::SEQ_FIELD],
        })?;
        Ok(PayloadProbe {
            uuid: uuid.and_then(Any::into_str),
            seq: seq.and_then(Any::into_u64),
        })
    }
}

/// A heartbeat body's `worker_epoch` (if a `u64`) and `session_id` (if a string), read without
/// building a `Value`; `Err` if it is not a JSON object.
struct Beat<'a> {
    epoch: Option<u64>,
    session_id: Option<Cow<'a, str>>,
}

impl<'de> Deserialize<'de> for Beat<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let [epoch, session_id] = deserializer.deserialize_map(Pick {
            keys: ["worker_epoch", "session_id"],
        })?;
        Ok(Beat {
            epoch: epoch.and_then(Any::into_u64),
            session_id: session_id.and_then(Any::into_str),
        })
    }
}

/// A visitor of a JSON object keeping the last value of each of two keys (as `Value`, which
/// keeps the last of duplicate keys, does) and validating and skipping the rest.
struct Pick<'k> {
    keys: [&'k str; 2],
}

impl<'de> Visitor<'de> for Pick<'_> {
    type Value = [Option<Any<'de>>; 2];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut picked = [None, None];
        while let Some(key) = map.next_key_seed(AnySeed { level: 2 })? {
            let value = map.next_value_seed(AnySeed { level: 2 })?;
            if let Any::Str(key) = key {
                if let Some(i) = self.keys.iter().position(|k| *k == key) {
                    picked[i] = Some(value);
                }
            }
        }
        Ok(picked)
    }
}

/// Any JSON value, validated as strictly as `Value` parses it; only a `u64` or a string is kept,
/// so `into_u64` and `into_str` answer as `Value::as_u64` and `Value::as_str` would.
enum Any<'a> {
    U64(u64),
    Str(Cow<'a, str>),
    Other,
}

impl<'a> Any<'a> {
    fn into_u64(self) -> Option<u64> {
        match self {
            Any::U64(n) => Some(n),
            _ => None,
        }
    }

    fn into_str(self) -> Option<Cow<'a, str>> {
        match self {
            Any::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Reads [`Any`] value that, if a container, sits at nesting `level`; deeper than
/// [`FAST_MAX_DEPTH`] is an error (the caller falls back to the `Value` path).
#[derive(Clone, Copy)]
struct AnySeed {
    level: usize,
}

impl AnySeed {
    fn enter<E: de::Error>(self) -> Result<AnySeed, E> {
        if self.level > FAST_MAX_DEPTH {
            return Err(E::custom("nested too deep for the fast path"));
        }
        Ok(AnySeed {
            level: self.level + 1,
        })
    }
}

impl<'de> DeserializeSeed<'de> for AnySeed {
    type Value = Any<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Any<'de>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AnySeed {
    type Value = Any<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Any<'de>, E> {
        Ok(Any::Other)
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Any<'de>, E> {
        // `Value` stores a non-negative i64 as a positive integer.
        Ok(u64::try_from(n).map_or(Any::Other, Any::U64))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Any<'de>, E> {
        Ok(Any::U64(n))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Any<'de>, E> {
        Ok(Any::Other)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Any<'de>, E> {
        Ok(Any::Str(Cow::Owned(s.to_string())))
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Any<'de>, E> {
        Ok(Any::Str(Cow::Borrowed(s)))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Any<'de>, E> {
        Ok(Any::Str(Cow::Owned(s)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Any<'de>, E> {
        Ok(Any::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Any<'de>, A::Error> {
        let inner = self.enter()?;
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(Any::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Any<'de>, A::Error> {
        let inner = self.enter()?;
        while map.next_key_seed(inner)?.is_some() {
            map.next_value_seed(inner)?;
        }
        Ok(Any::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_core::backoff::retry_after::parse_http_date;

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
        assert_eq!(server.events(Stream::Internal).len(), 1);
        assert_eq!(server.duplicates(Stream::Internal), 0);
        assert!(server.duplicate_uuids(Stream::Internal).is_empty());
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

    /// Bodies and payloads that must get the same answer from the fast paths and `Value`.
    const TRICKY_PAYLOADS: [&str; 24] = [
        r#"{"uuid":"a","seq":1,"data":"xyz"}"#,
        r#"{"seq":2,"uuid":"b"}"#,
        r#"{"uuid":"q\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"}"#,
        r#"{"u\u0075id":"escaped-key","s\u0065q":7}"#,
        r#"{"uuid":"first","uuid":"last"}"#,
        r#"{"uuid":1,"uuid":"string-wins"}"#,
        r#"{"uuid":"x","uuid":1}"#,
        r#"{"uuid":"s1","seq":-1}"#,
        r#"{"uuid":"s2","seq":-0}"#,
        r#"{"uuid":"s3","seq":1.5}"#,
        r#"{"uuid":"s4","seq":"3"}"#,
        r#"{"uuid":"s5","seq":null}"#,
        r#"{"uuid":"s6","seq":1,"seq":2}"#,
        r#"{"uuid":"s7","seq":18446744073709551615}"#,
        r#"{"uuid":"s8","seq":18446744073709551616}"#,
        r#"{"uuid":"s9","seq":1e2}"#,
        r#"{"uuid":"bad","x":"\ud800"}"#,
        r#"{"uuid":"bad","x":1e400}"#,
        r#"{"uuid":"bad","x":"\u0001"}"#,
        "{\"uuid\":\"ctl\",\"x\":\"\x01\"}",
        r#"{"uuid":"nested","x":[{"a":[1,{"b":null}]},true,false,-3.5e-2]}"#,
        r#"{"uuid":null}"#,
        r#"{}"#,
        r#"[{"uuid":"array"}]"#,
    ];

    fn nested(depth: usize) -> String {
        let mut s = String::from(r#"{"uuid":"deep","x":"#);
        s.push_str(&"[".repeat(depth));
        s.push_str(&"]".repeat(depth));
        s.push('}');
        s
    }

    #[test]
    fn the_payload_probe_reads_what_value_reads() {
        let mut payloads: Vec<String> = TRICKY_PAYLOADS.iter().map(|p| p.to_string()).collect();
        payloads.extend([nested(62), nested(63), nested(64), nested(200)]);
        for payload in &payloads {
            let value = serde_json::from_str::<Value>(payload);
            match serde_json::from_str::<PayloadProbe<'_>>(payload) {
                Ok(probe) => {
                    let value = value.unwrap_or_else(|e| panic!("{payload}: {e}"));
                    assert!(value.is_object(), "{payload}");
                    assert_eq!(probe.uuid.as_deref(), value["uuid"].as_str(), "{payload}");
                    assert_eq!(probe.seq, seq_of(&value), "{payload}");
                }
                // Not a JSON object, or only too deep for the fast path.
                Err(_) => assert!(
                    value.as_ref().map_or(true, |v| !v.is_object()) || payload.len() > 100,
                    "{payload}"
                ),
            }
        }
    }

    #[test]
    fn the_heartbeat_probe_reads_what_value_reads() {
        let bodies = [
            r#"{"worker_epoch":3,"session_id":"s"}"#,
            r#" {"session_id":"s" , "worker_epoch":3} "#,
            r#"{"worker_epoch":3,"worker_epoch":4,"session_id":"a","session_id":"b"}"#,
            r#"{"worker_epoch":-3,"session_id":"s"}"#,
            r#"{"worker_epoch":3.0,"session_id":"s"}"#,
            r#"{"worker_epoch":3,"session_id":5}"#,
            r#"{"worker_epoch":3,"session_id":"s","x":"\ud800"}"#,
            r#"{"worker_epoch":3,"session_id":"s\u00e9"}"#,
            r#"{"worker_epoch":3}"#,
            r#"[1]"#,
            r#"{"worker_epoch":3,"session_id":"s"} x"#,
            "",
        ];
        for body in bodies {
            let value = parse_object(body.as_bytes());
            match serde_json::from_slice::<Beat<'_>>(body.as_bytes()) {
                Ok(beat) => {
                    let value = value.unwrap_or_else(|e| panic!("{body}: {e:?}"));
                    assert_eq!(
                        beat.epoch,
                        value.get("worker_epoch").and_then(Value::as_u64)
                    );
                    assert_eq!(
                        beat.session_id.as_deref(),
                        value.get("session_id").and_then(Value::as_str)
                    );
                }
                Err(_) => assert!(value.is_err(), "{body}"),
            }
        }
    }

    /// A server at epoch 2 after `body`, and what it answered.
    fn after_batch(body: &[u8]) -> (Response, ServerModel) {
        let mut server = ServerModel::default();
        server.force_takeover();
        server.force_takeover();
        let response = server.handle(Instant::from_secs(3), Endpoint::Events, body);
        (response, server)
    }

    #[test]
    fn event_batches_get_the_same_answer_on_both_paths() {
        let canonical = |epoch: &str, items: &[String]| {
            format!(
                r#"{{"worker_epoch":{epoch},"events":[{}]}}"#,
                items.join(",")
            )
        };
        let item = |payload: &str| format!(r#"{{"payload":{payload}}}"#);
        let ephemeral = |payload: &str| format!(r#"{{"payload":{payload},"ephemeral":true}}"#);
        let mut bodies: Vec<(String, bool)> = vec![
            (canonical("2", &[]), true),
            (
                canonical(
                    "3",
                    &[
                        item(r#"{"uuid":"a","seq":0,"data":"x"}"#),
                        ephemeral(r#"{"seq":1,"uuid":"b"}"#),
                        item(r#"{"uuid":"a","seq":2}"#),
                    ],
                ),
                true,
            ),
            (canonical("1", &[item(r#"{"uuid":"a"}"#)]), true), // fenced
            (canonical("02", &[item(r#"{"uuid":"a"}"#)]), false),
            (
                canonical("18446744073709551616", &[item(r#"{"uuid":"a"}"#)]),
                false,
            ),
            (canonical("2", &[item(r#"{"uuid":"a"}"#)]) + " ", false),
            (canonical("2", &[item(r#"{"uuid":"a"}"#)]) + "x", false),
            (canonical("2", &[item(r#" {"uuid":"a"}"#)]), false),
            (
                canonical(
                    "2",
                    &[r#"{"payload":{"uuid":"a"},"ephemeral":false}"#.into()],
                ),
                false,
            ),
            (
                canonical("2", &[r#"{"payload":{"uuid":"a"},"ephemeral":1}"#.into()]),
                false,
            ),
            (
                canonical(
                    "2",
                    &[r#"{"ephemeral":true,"payload":{"uuid":"a"}}"#.into()],
                ),
                false,
            ),
            (r#"{"worker_epoch":2,"events":{}}"#.into(), false),
            (r#"{"worker_epoch":2}"#.into(), false),
            (
                canonical("2", &[item(&nested(30)), item(&nested(70))]),
                false,
            ),
        ];
        for payload in TRICKY_PAYLOADS {
            let fast =
                serde_json::from_str::<PayloadProbe<'_>>(payload).is_ok_and(|p| p.uuid.is_some());
            bodies.push((canonical("2", &[item(payload), ephemeral(payload)]), fast));
        }
        let mut invalid_utf8 = canonical("2", &[item(r#"{"uuid":"a","x":"??"}"#)]).into_bytes();
        let at = invalid_utf8.len() - 6;
        invalid_utf8[at..at + 2].copy_from_slice(&[0xff, 0xfe]);
        for (body, fast) in bodies
            .iter()
            .map(|(b, f)| (b.as_bytes(), *f))
            .chain([(&invalid_utf8[..], false)])
        {
            let shown = String::from_utf8_lossy(body);
            assert_eq!(scan_events(body).is_some(), fast, "{shown}");
            // A leading space keeps the body valid JSON and sends it down the `Value` path.
            let slow: Vec<u8> = [b" ", body].concat();
            assert!(scan_events(&slow).is_none());
            let (fast_response, fast_server) = after_batch(body);
            let (slow_response, slow_server) = after_batch(&slow);
            assert_eq!(fast_response, slow_response, "{shown}");
            assert_eq!(fast_server.epoch(), slow_server.epoch(), "{shown}");
            assert_eq!(
                fast_server.events(Stream::Events),
                slow_server.events(Stream::Events),
                "{shown}"
            );
            assert_eq!(
                fast_server.seqs(Stream::Events),
                fast_server
                    .payloads(Stream::Events)
                    .filter_map(seq_of)
                    .collect::<Vec<_>>(),
                "{shown}"
            );
            assert_eq!(
                fast_server.duplicates(Stream::Events),
                slow_server.duplicates(Stream::Events)
            );
        }
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
}
