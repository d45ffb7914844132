//! The server of docs/PROTOCOL.md for one session, as a pure model: [`ServerModel`].
//!
//! [`ServerModel::handle`] answers one request the way the reference server must, and records
//! what it stored so invariant checks can compare the client's view with the server's. It holds
//! no connections and no clock: the caller passes the time in, and decides (from a
//! [`fault`](crate::fault) plan) whether a request reaches it at all.
//!
//! By concern: [`config`](ServerConfig) (limits, the wall clock's base), `events` (what the event
//! routes store and how their bodies are read), `scan` (the fast path that reads the session's
//! own batch layout without building a `Value`), `date` (the `Date` header), and the thread
//! routes, whose store is [`ThreadStore`].

mod config;
mod date;
mod events;
mod scan;
#[cfg(test)]
mod tests;

use std::borrow::Cow;

use serde_json::{Map, Value, json};

use tether_core::session::{Endpoint, Response, Stream};
use tether_core::time::Instant;

use crate::threads::{self, ThreadStore};
pub use config::{DEFAULT_BASE_UNIX_TIME, DEFAULT_BODY_LIMIT, ServerConfig};
pub use events::{AppliedPut, DELIVERY_STATUSES, DeliveryUpdate, SEQ_FIELD, StoredEvent, seq_of};
use events::{EventLog, parse_events, parse_object, parse_updates};
use scan::{Beat, scan_events};

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
    threads: ThreadStore,
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
            threads: ThreadStore::default(),
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
        endpoint: tether_core::thread::Endpoint,
        query: &str,
        body: &[u8],
    ) -> Response {
        self.requests += 1;
        let limit = self.config.body_limit;
        let result = threads::dispatch(
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
    pub fn threads(&self) -> &ThreadStore {
        &self.threads
    }

    /// The threads stored, to steer (e.g. [`poison`](ThreadStore::poison)).
    pub fn threads_mut(&mut self) -> &mut ThreadStore {
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
    /// network's part (the simulator's virtual network, or the reference server's listener). Only
    /// the time is recorded.
    pub fn restart(&mut self, now: Instant) {
        self.restarts.push(now);
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

    /// The events of a stream in delivery order (first arrival of each uuid). The
    /// [`Delivery`](Stream::Delivery) stream stores updates, not events
    /// ([`delivery_updates`](Self::delivery_updates)), so it has none.
    pub fn events(&self, stream: Stream) -> &[StoredEvent] {
        self.log(stream).map_or(&[], |log| &log.events)
    }

    /// The payloads of a stream in delivery order. Each is parsed on first use; for the `seq`s
    /// alone, [`seqs`](Self::seqs) parses nothing.
    pub fn payloads(&self, stream: Stream) -> impl Iterator<Item = &Value> {
        self.events(stream).iter().map(StoredEvent::payload)
    }

    /// The `seq` of each stored payload of a stream, in delivery order (what the simulator's
    /// checks compare with what was sent). Payloads without one are skipped. The same as
    /// `payloads(stream).filter_map(seq_of)`, without parsing payloads.
    pub fn seqs(&self, stream: Stream) -> Vec<u64> {
        self.events(stream)
            .iter()
            .filter_map(StoredEvent::seq)
            .collect()
    }

    /// How many events of a stream were dropped as duplicates of an earlier uuid.
    pub fn duplicates(&self, stream: Stream) -> u64 {
        self.duplicate_uuids(stream).len() as u64
    }

    /// The uuid of each event of a stream dropped as a duplicate, in the order they were dropped
    /// (a uuid sent again and again repeats).
    pub fn duplicate_uuids(&self, stream: Stream) -> &[String] {
        self.log(stream).map_or(&[], |log| &log.duplicates)
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

    /// The log of an event stream; `None` for [`Stream::Delivery`], which stores updates, not
    /// events.
    fn log(&self, stream: Stream) -> Option<&EventLog> {
        match stream {
            Stream::Events => Some(&self.events),
            Stream::InternalEvents => Some(&self.internal),
            Stream::Delivery => None,
        }
    }
}

impl Default for ServerModel {
    fn default() -> Self {
        ServerModel::new(ServerConfig::default())
    }
}
