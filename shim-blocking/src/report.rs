//! What a session did and what it could not do: counters and the close report.

use serde_json::Value;
use tether_core::batch::{self, EventId, Reason, Undelivered};
use tether_core::session::{SessionCounters, Status, Stream};
use tether_core::state::{self, Rejection, Unacknowledged};

/// An event that will never be delivered, handed back with why.
#[derive(Clone, Debug, PartialEq)]
pub struct UndeliveredEvent {
    /// The stream it was queued on.
    pub stream: Stream,
    /// Why it was handed back.
    pub reason: Reason,
    /// The id its enqueue returned.
    pub id: EventId,
    /// The payload as it was (or would have been) sent, `uuid` included. For the delivery
    /// stream: the update, `{"event_id": .., "status": ..}`.
    pub payload: Value,
    /// Whether it was marked ephemeral.
    pub ephemeral: bool,
}

impl UndeliveredEvent {
    pub(crate) fn new(stream: Stream, reason: Reason, undelivered: Undelivered) -> Self {
        let event = undelivered.event;
        let payload = event.payload().unwrap_or_else(|_| {
            // The core serialised it from a JSON object, so this cannot fail; keep the bytes.
            Value::String(String::from_utf8_lossy(event.payload_bytes()).into_owned())
        });
        UndeliveredEvent {
            stream,
            reason,
            id: undelivered.id,
            payload,
            ephemeral: event.is_ephemeral(),
        }
    }

    /// The payload's `uuid`, if it has one (events and internal events always do).
    pub fn uuid(&self) -> Option<&str> {
        self.payload.get("uuid").and_then(Value::as_str)
    }
}

/// Everything the session counted: the session's own counters, each uploader's and the state
/// uploader's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
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
    /// What the shim itself put on the wire and got back.
    pub wire: WireCounters,
}

/// What the shim moved: requests handed to ureq, their body bytes, and what came back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WireCounters {
    /// Requests handed to the HTTP workers.
    pub requests: u64,
    /// Bytes of request bodies handed to the HTTP workers.
    pub body_bytes: u64,
    /// Responses passed to the core.
    pub responses: u64,
    /// Transport errors passed to the core.
    pub transport_errors: u64,
    /// Results dropped because the core had already cancelled their request.
    pub late_dropped: u64,
}

impl Counters {
    /// One uploader's counters.
    pub fn uploader(&self, stream: Stream) -> &batch::Counters {
        match stream {
            Stream::Events => &self.events,
            Stream::InternalEvents => &self.internal_events,
            Stream::Delivery => &self.delivery,
        }
    }
}

/// What [`Tether::close`](crate::Tether::close) hands back: the final status, everything that
/// was not delivered, and the counters.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct CloseReport {
    /// The terminal status: `Closed`, or `Superseded` / `GivenUp` if the session ended first.
    pub status: Status,
    /// The worker epoch, if one was known.
    pub epoch: Option<u64>,
    /// Every event handed back during the session's life, in the order they were handed back:
    /// dead letters, drops, and what was left at close, takeover or give-up.
    pub undelivered: Vec<UndeliveredEvent>,
    /// State updates the server refused for good (the view was rolled back for each).
    pub state_rejected: Vec<Rejection>,
    /// State patches not acknowledged when the session ended.
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

    /// The undelivered events of one stream.
    pub fn undelivered_in(&self, stream: Stream) -> impl Iterator<Item = &UndeliveredEvent> {
        self.undelivered.iter().filter(move |e| e.stream == stream)
    }
}
