//! What a session hands back when it ends.

use serde_json::Value;
use tether_core::batch::{self, EventId, Reason};
use tether_core::session::{SessionCounters, Status, Stream};
use tether_core::state::{self, Rejection, Unacknowledged};

/// An event that will never be delivered, handed back.
#[derive(Clone, Debug, PartialEq)]
pub struct UndeliveredEvent {
    /// Its stream.
    pub stream: Stream,
    /// Why it was not delivered.
    pub reason: Reason,
    /// The id its enqueue returned.
    pub id: EventId,
    /// The payload as it would have been sent, `uuid` included.
    pub payload: Value,
    /// Whether it was marked ephemeral.
    pub ephemeral: bool,
}

impl UndeliveredEvent {
    pub(crate) fn new(stream: Stream, reason: Reason, undelivered: &batch::Undelivered) -> Self {
        UndeliveredEvent {
            stream,
            reason,
            id: undelivered.id,
            payload: undelivered.event.payload().unwrap_or(Value::Null),
            ephemeral: undelivered.event.is_ephemeral(),
        }
    }

    /// The event's `uuid`, if it has one (every event of the two event streams does).
    pub fn uuid(&self) -> Option<&str> {
        self.payload.get("uuid").and_then(Value::as_str)
    }
}

/// Counts of everything the session did.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Counters {
    /// Session-wide counts.
    pub session: SessionCounters,
    /// `/worker/events`.
    pub events: batch::Counters,
    /// `/worker/internal-events`.
    pub internal_events: batch::Counters,
    /// `/worker/events/delivery`.
    pub delivery: batch::Counters,
    /// `PUT /worker` updates.
    pub state: state::Counters,
}

/// Everything a session hands back when it ends: from [`Tether::close`](crate::Tether::close),
/// also after it was superseded or gave up.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct CloseReport {
    /// The terminal status: `closed`, `superseded` or `given-up`.
    pub status: Status,
    /// Every event the session handed back over its life, in the order it did: dead letters,
    /// drops by the overflow policy, and whatever was left at the end, each with its reason.
    pub undelivered: Vec<UndeliveredEvent>,
    /// State updates the server refused for good (the optimistic view was rolled back).
    pub rejected_patches: Vec<Rejection>,
    /// State patches not acknowledged when the session ended.
    pub unacknowledged_patches: Option<Unacknowledged>,
    /// What the session did.
    pub counters: Counters,
    /// Times the driver task was polled over the session's life.
    pub driver_wakeups: u64,
}

impl CloseReport {
    /// Whether every event was delivered and every patch landed.
    pub fn is_clean(&self) -> bool {
        self.undelivered.is_empty()
            && self.rejected_patches.is_empty()
            && self
                .unacknowledged_patches
                .as_ref()
                .is_none_or(|u| u.update.is_empty() && u.in_flight.is_none())
    }
}
