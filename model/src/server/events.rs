//! What the server stores of the event routes, and how it reads their bodies: events
//! de-duplicated by `payload.uuid` (with each payload's `seq` read on arrival), delivery updates,
//! applied `PUT /worker` bodies.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::BTreeSet;

use serde_json::{Map, Value};

use tether_core::session::DeliveryStatus;
use tether_core::time::Instant;

use super::Reject;

/// The payload field that numbers events: an application's own sequence number, which a
/// workload puts in every payload so the checks can tell loss, reordering and duplication apart.
/// The server reads it on arrival ([`StoredEvent::seq`]); it changes nothing the server does.
pub const SEQ_FIELD: &str = "seq";

/// A payload's [`SEQ_FIELD`], if it is a non-negative integer.
pub fn seq_of(payload: &Value) -> Option<u64> {
    payload.get(SEQ_FIELD)?.as_u64()
}

/// The statuses a delivery update may carry.
pub(super) const STATUSES: [DeliveryStatus; 3] = [
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
    pub(super) payload: StoredPayload,
    pub(super) seq: Option<u64>,
}

/// A stored payload: its JSON text, parsed on first use, or a value parsed on arrival.
#[derive(Clone, Debug)]
pub(super) enum StoredPayload {
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

    /// The payload's [`SEQ_FIELD`], as [`seq_of`] reads it, without parsing
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
pub(super) struct EventLog {
    pub(super) events: Vec<StoredEvent>,
    pub(super) seen: BTreeSet<String>,
    /// The uuid of each event dropped as a duplicate, in the order they were dropped.
    pub(super) duplicates: Vec<String>,
}

pub(super) fn parse_object(body: &[u8]) -> Result<Map<String, Value>, Reject> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err((400, "body must be a JSON object")),
        Err(_) => Err((400, "malformed JSON")),
    }
}

/// An event of a batch, validated and ready to store.
pub(super) struct Incoming<'a> {
    pub(super) uuid: Cow<'a, str>,
    pub(super) payload: StoredPayload,
    pub(super) seq: Option<u64>,
    pub(super) ephemeral: bool,
}

/// `events: [{"payload": {.., "uuid": str}, "ephemeral"?: bool}]`, validated whole before use.
pub(super) fn parse_events(body: &Map<String, Value>) -> Result<Vec<Incoming<'_>>, Reject> {
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
pub(super) fn parse_updates(
    body: &Map<String, Value>,
) -> Result<Vec<(String, DeliveryStatus)>, Reject> {
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
