//! What happened to what the caller gave: live [`Report`]s as it happens, the [`Counters`], and
//! the [`CloseReport`] that sums the same facts up at the end.

use serde_json::Value;
use std::time::Duration;
use tether_core::batch::{self, EventId, PreparedEvent, Reason, Undelivered};

use tether_core::session::{Endpoint, RecordFate, SessionCounters, Status, Stream};
use tether_core::state::{self, Rejection, Unacknowledged};

/// An event that will not be delivered, with why, handed back to the caller.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct UndeliveredEvent {
    /// The stream it was for.
    pub stream: Stream,
    /// Why it was handed back.
    pub reason: Reason,
    /// The id its send returned.
    pub id: EventId,
    /// Whether a send of it ended without an answer, so the server may hold it after all.
    pub maybe_delivered: bool,
    /// The event as it was sent: its bytes, `uuid` included.
    pub event: PreparedEvent,
    /// What the durable outbox did with its record (`None` without an outbox): kept for the
    /// next run, kept marked dead, or forgotten.
    pub outbox: Option<RecordFate>,
}

impl UndeliveredEvent {
    pub(crate) fn new(
        stream: Stream,
        reason: Reason,
        undelivered: Undelivered,
        outbox: bool,
    ) -> Self {
        UndeliveredEvent {
            stream,
            reason,
            id: undelivered.id,
            maybe_delivered: undelivered.maybe_delivered,
            event: undelivered.event,
            outbox: outbox.then(|| RecordFate::of(&reason)),
        }
    }

    /// Whether the durable outbox keeps it for the next run, which sends it again with its
    /// uuid: it is not the caller's to resend.
    pub fn kept_for_next_run(&self) -> bool {
        self.outbox == Some(RecordFate::Kept)
    }

    /// The payload parsed, `uuid` included.
    ///
    /// # Errors
    /// When serde_json cannot read it back (e.g. nested deeper than it reads): the bytes are
    /// in [`payload_bytes`](Self::payload_bytes).
    pub fn payload(&self) -> Result<Value, serde_json::Error> {
        self.event.payload()
    }

    /// The payload's JSON as it was sent.
    pub fn payload_bytes(&self) -> &[u8] {
        self.event.payload_bytes()
    }

    /// The event's `uuid`, if its payload can be read.
    pub fn uuid(&self) -> Option<String> {
        self.payload()
            .ok()?
            .get("uuid")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }
}

/// One fact, as it happens. Every accepted event ends in exactly one `Delivered` or
/// `HandedBack` (or in the close report of a session whose report stream nobody read).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Report {
    /// These events reached the server.
    Delivered {
        /// Their stream.
        stream: Stream,
        /// Their ids, in order.
        events: Vec<EventId>,
    },
    /// These events will not be delivered; they are the caller's again.
    HandedBack {
        /// Why.
        reason: Reason,
        /// The events, in order.
        events: Vec<UndeliveredEvent>,
    },
    /// The server acknowledged a state update; `puts` counts the acknowledged PUTs so far.
    StateAcknowledged {
        /// PUTs acknowledged so far.
        puts: u64,
    },
    /// The server refused a state update for good; the view was rolled back.
    StateRejected(Rejection),
    /// State patches not acknowledged when the session ended, handed back.
    StateUnacknowledged(Unacknowledged),
    /// Deltas merged by `send_delta` that the events uploader refused (e.g. its queue was
    /// full) when their window ended: the merged event is inside the error.
    DeltaHandedBack {
        /// Their key.
        key: String,
        /// Why, with the merged event.
        error: tether_core::batch::Error,
    },
    /// A caller-supplied callback panicked; it was dropped and the session went on.
    CallbackPanicked {
        /// The panic's message, if it was a string.
        message: String,
    },
    /// A request took longer than the p95 of its endpoint's recent latencies (the last
    /// [`RECENT`](crate::observe::RECENT), once there are at least
    /// [`MIN_SAMPLES`](crate::observe::MIN_SAMPLES)).
    SlowRequest {
        /// The endpoint.
        endpoint: Endpoint,
        /// From the request's send to its answer, in the shim's time.
        latency: Duration,
        /// The recent p95 it exceeded.
        recent_p95: Duration,
    },
    /// The last report of a session: request latency quantiles per endpoint, over its life.
    LatencySummary(Vec<EndpointLatency>),
    /// The durable outbox dropped a stored record it could not read at start (a torn or
    /// corrupt write), or stopped replaying: what, and why.
    OutboxDropped {
        /// The record's key, when known.
        key: Option<u64>,
        /// Why.
        reason: String,
    },
}

/// Request latencies of one endpoint (from send to answer; cancelled requests excluded).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointLatency {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// Requests answered.
    pub count: u64,
    /// Median (an upper bound within a quarter octave, as [`Histogram`](crate::Histogram) gives).
    pub p50: Duration,
    /// 95th percentile.
    pub p95: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// The slowest, exactly.
    pub max: Duration,
}

/// What the session did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
    /// The state uploader.
    pub state: state::Counters,
    /// What the shim put on the wire and got back.
    pub wire: WireCounters,
    /// The retry budget (for a shared one, the whole budget's), if there is one.
    pub retry_budget: Option<tether_core::budget::BudgetCounters>,
    /// Deltas taken by `send_delta` and the merged events they became.
    pub deltas: batch::DeltaCounters,
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

/// What moved over the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WireCounters {
    /// Requests handed to the transport.
    pub requests: u64,
    /// Bytes of request bodies handed to the transport.
    pub body_bytes: u64,
    /// Responses passed to the core.
    pub responses: u64,
    /// Transport errors passed to the core.
    pub transport_errors: u64,
    /// Answers dropped because the core had already cancelled their request.
    pub late_dropped: u64,
}

/// What a durable outbox keeps when its session ends: the next run on the same outbox starts
/// with it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeptInOutbox {
    /// Events kept for the next run, this run's and earlier runs' not yet delivered: the next
    /// session on the outbox sends them first, with their uuids.
    pub pending: u64,
    /// Dead letters (refused for good) kept, marked dead, until discarded; never sent again.
    pub dead: u64,
    /// Whether state patches not acknowledged are kept, to be given again by the next run.
    pub state: bool,
}

/// The end of a session: its terminal status, everything that was not delivered, and the
/// counters. The same facts the report stream gave live.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct CloseReport {
    /// The terminal status: `Closed`, or `Superseded` / `GivenUp` if the session ended first.
    pub status: Status,
    /// The worker epoch, if one was known.
    pub epoch: Option<u64>,
    /// Every event handed back during the session's life, in order.
    pub undelivered: Vec<UndeliveredEvent>,
    /// State updates the server refused for good.
    pub state_rejected: Vec<Rejection>,
    /// State patches not acknowledged when the session ended.
    pub state_unacknowledged: Option<Unacknowledged>,
    /// The counters at the end.
    pub counters: Counters,
    /// With a durable outbox, what it keeps for the next run: undelivered events it keeps are
    /// in [`undelivered`](Self::undelivered) too, but are not the caller's to resend.
    pub kept: Option<KeptInOutbox>,
}

impl CloseReport {
    /// Events the durable outbox keeps for the next run (0 without one).
    pub fn kept_for_next_run(&self) -> u64 {
        self.kept.map_or(0, |k| k.pending)
    }

    /// The undelivered events that are the caller's again: all of them without an outbox;
    /// with one, those it does not keep for the next run (dead letters, and what the caller's
    /// own policy let go).
    pub fn handed_back(&self) -> impl Iterator<Item = &UndeliveredEvent> {
        self.undelivered.iter().filter(|e| !e.kept_for_next_run())
    }

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
