//! The fault vocabulary shared by the simulator and the reference server.
//!
//! What can go wrong around one request, and around a run: [`Span`]s of time (a partition),
//! [`TimeEvent`]s planned up front (partitions, server restarts, a takeover), and what a client
//! observes of one request in the end ([`Delivery`]).

use std::fmt;
use std::time::Duration;

use tether_core::session::{Response, TransportError};
use tether_core::time::Instant;

/// A time interval `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span {
    /// The first instant inside.
    pub start: Instant,
    /// The first instant after.
    pub end: Instant,
}

impl Span {
    /// Whether `t` lies inside.
    pub fn contains(&self, t: Instant) -> bool {
        self.start <= t && t < self.end
    }

    /// How long it lasts.
    pub fn len(&self) -> Duration {
        self.end.saturating_duration_since(self.start)
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// A planned event of the run, for the runner to act on at its time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TimeEvent {
    /// Every request is lost until `until` (the network does this by itself).
    PartitionStart {
        /// When the partition heals.
        until: Instant,
    },
    /// The partition heals.
    PartitionEnd,
    /// Call [`ServerModel::restart`](crate::ServerModel::restart). Responses in flight across it
    /// are lost (the network does this by itself).
    Restart,
    /// Call [`ServerModel::force_takeover`](crate::ServerModel::force_takeover): a newer worker
    /// registered.
    Takeover,
}

impl fmt::Display for TimeEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeEvent::PartitionStart { until } => write!(f, "partition until {until}"),
            TimeEvent::PartitionEnd => f.write_str("partition healed"),
            TimeEvent::Restart => f.write_str("server restart"),
            TimeEvent::Takeover => f.write_str("takeover by a newer epoch"),
        }
    }
}

/// What the client observes of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// A response arrives at `at`.
    Respond {
        /// When the response arrives.
        at: Instant,
        /// The response.
        response: Response,
    },
    /// The request fails with a transport error at `at`.
    TransportError {
        /// When the client sees the error.
        at: Instant,
        /// The error.
        error: TransportError,
    },
    /// Nothing ever arrives; the client's deadline must fire.
    Hang,
}

impl Delivery {
    /// When something arrives, unless nothing ever does.
    pub fn at(&self) -> Option<Instant> {
        match self {
            Delivery::Respond { at, .. } | Delivery::TransportError { at, .. } => Some(*at),
            Delivery::Hang => None,
        }
    }
}
