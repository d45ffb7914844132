//! What a session did (the driver's counters and close report, the same on every runtime),
//! and the JSON renderings shared by the subcommands: statuses, reasons, undelivered events.

use serde_json::{Value, json};
use tether_core::batch::Reason;
use tether_core::session::{RecordFate, Status};

pub use tether_blocking::{CloseReport, Counters, UndeliveredEvent};

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
        Status::Holding(reason) => json!({"status": "holding", "reason": reason.to_string()}),
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

/// An undelivered event as one JSON Lines record. A payload serde_json cannot read back is
/// written as its text under `payload_text`, never lost.
pub fn undelivered_json(event: &UndeliveredEvent) -> Value {
    let mut record = json!({
        "stream": event.stream.name(),
        "reason": reason_name(&event.reason),
        "maybe_delivered": event.maybe_delivered,
    });
    if event.outbox == Some(RecordFate::Dead) {
        // Still in the outbox, marked dead, until `tether outbox DIR discard --dead`.
        record["outbox"] = Value::from("dead");
    }
    match event.payload() {
        Ok(payload) => record["payload"] = payload,
        Err(_) => {
            record["payload_text"] =
                Value::String(String::from_utf8_lossy(event.payload_bytes()).into_owned());
        }
    }
    record
}
