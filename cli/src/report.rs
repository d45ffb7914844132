//! What a session did, whichever runtime drove it (counters, the close report), and the JSON
//! renderings shared by the subcommands: statuses, reasons, undelivered events.

use serde_json::{json, Value};
use tether_core::batch::{self, Reason};
use tether_core::session::{SessionCounters, Status, Stream};
use tether_core::state::{self, Rejection, Unacknowledged};

/// Everything a session counted: its own counters, each uploader's and the state uploader's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests, replies, failures by cause, heartbeats, status changes.
    pub session: SessionCounters,
    /// The `/worker/events` uploader.
    pub events: batch::Counters,
    /// The `/worker/internal-events` uploader.
    pub internal_events: batch::Counters,
    /// The `/worker/events/delivery` uploader.
    pub delivery: batch::Counters,
    /// The `PUT /worker` uploader.
    pub state: state::Counters,
}

impl From<tether_blocking::Counters> for Counters {
    fn from(c: tether_blocking::Counters) -> Self {
        Counters {
            session: c.session,
            events: c.events,
            internal_events: c.internal_events,
            delivery: c.delivery,
            state: c.state,
        }
    }
}

impl From<tether_smol::Counters> for Counters {
    fn from(c: tether_smol::Counters) -> Self {
        Counters {
            session: c.session,
            events: c.events,
            internal_events: c.internal_events,
            delivery: c.delivery,
            state: c.state,
        }
    }
}

/// An event that will never be delivered, handed back with why.
#[derive(Clone, Debug, PartialEq)]
pub struct UndeliveredEvent {
    /// The stream it was queued on.
    pub stream: Stream,
    /// Why it was handed back.
    pub reason: Reason,
    /// The payload as it was (or would have been) sent, `uuid` included.
    pub payload: Value,
}

impl From<tether_blocking::UndeliveredEvent> for UndeliveredEvent {
    fn from(e: tether_blocking::UndeliveredEvent) -> Self {
        UndeliveredEvent {
            stream: e.stream,
            reason: e.reason,
            payload: e.payload,
        }
    }
}

impl From<tether_smol::UndeliveredEvent> for UndeliveredEvent {
    fn from(e: tether_smol::UndeliveredEvent) -> Self {
        UndeliveredEvent {
            stream: e.stream,
            reason: e.reason,
            payload: e.payload,
        }
    }
}

/// What a session hands back when it ends, from either runtime.
#[derive(Clone, Debug, PartialEq)]
pub struct CloseReport {
    /// The terminal status: `closed`, `superseded` or `given-up`.
    pub status: Status,
    /// Every event handed back over the session's life, in order, each with its reason.
    pub undelivered: Vec<UndeliveredEvent>,
    /// State updates the server refused for good.
    pub state_rejected: Vec<Rejection>,
    /// State patches not acknowledged when the session ended (the core reports them only when
    /// there is something: an update or a PUT in flight).
    pub state_unacknowledged: Option<Unacknowledged>,
    /// The counters at the end.
    pub counters: Counters,
}

impl CloseReport {
    /// Whether every event and every patch reached the server.
    pub fn all_delivered(&self) -> bool {
        self.undelivered.is_empty()
            && self.state_rejected.is_empty()
            && self.state_unacknowledged.is_none()
    }
}

impl From<tether_blocking::CloseReport> for CloseReport {
    fn from(r: tether_blocking::CloseReport) -> Self {
        CloseReport {
            status: r.status,
            undelivered: r.undelivered.into_iter().map(Into::into).collect(),
            state_rejected: r.state_rejected,
            state_unacknowledged: r.state_unacknowledged,
            counters: r.counters.into(),
        }
    }
}

impl From<tether_smol::CloseReport> for CloseReport {
    fn from(r: tether_smol::CloseReport) -> Self {
        CloseReport {
            status: r.status,
            undelivered: r.undelivered.into_iter().map(Into::into).collect(),
            state_rejected: r.rejected_patches,
            state_unacknowledged: r.unacknowledged_patches,
            counters: r.counters.into(),
        }
    }
}

/// A status as one JSON object, e.g. `{"status":"retrying","attempt":2,"at_ms":1530}`.
pub fn status_json(status: &Status) -> Value {
    match status {
        Status::Connecting => json!({"status": "connecting"}),
        Status::Connected => json!({"status": "connected"}),
        Status::Retrying { attempt, at } => json!({
            "status": "retrying",
            "attempt": attempt,
            "at_ms": at.as_micros() / 1000,
        }),
        Status::Stale => json!({"status": "stale"}),
        Status::GivenUp(reason) => json!({"status": "given-up", "reason": reason.to_string()}),
        Status::Superseded => json!({"status": "superseded"}),
        Status::Closed => json!({"status": "closed"}),
        other => json!({"status": other.to_string()}),
    }
}

/// A reason's short name: `closed`, `superseded`, `given-up`, `rejected-400`, ...
pub fn reason_name(reason: &Reason) -> String {
    match reason {
        Reason::TooLarge => "too-large".into(),
        Reason::Rejected { status } => format!("rejected-{status}"),
        Reason::TooManyFailures { .. } => "too-many-failures".into(),
        Reason::Replaced { .. } => "replaced".into(),
        Reason::DroppedOldest => "dropped-oldest".into(),
        Reason::DroppedNewest => "dropped-newest".into(),
        Reason::Closed => "closed".into(),
        Reason::Superseded => "superseded".into(),
        Reason::GivenUp => "given-up".into(),
        other => format!("{other:?}"),
    }
}

/// An undelivered event as one JSON Lines record.
pub fn undelivered_json(event: &UndeliveredEvent) -> Value {
    json!({
        "stream": event.stream.name(),
        "reason": reason_name(&event.reason),
        "payload": event.payload,
    })
}
