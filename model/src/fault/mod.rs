//! The fault vocabulary, one for the simulator and the reference server.
//!
//! What can go wrong around one request is a [`Fault`] (latency, a lost request or response, a
//! 5xx, a 429 with `Retry-After`, a 413, a hang, a garbage body); around a run, [`TimeEvent`]s
//! planned up front (partitions, server restarts, a takeover by a newer worker). A [`FaultMix`]
//! says how often each happens; a [`FaultPlan`] is a mix with a seed, from which a
//! [`FaultDecider`] picks one fault per request and a [`Schedule`] plans the run's events, so the
//! same seed and the same requests give the same faults.
//!
//! Only the vocabulary and the draws are here. Each side applies a fault where it belongs: the
//! simulator's virtual network in virtual time (ending in a [`Delivery`], what the client
//! observes), the reference server to real HTTP responses.
//!
//! ```
//! use tether_core::session::Endpoint;
//! use tether_model::fault::{Fault, FaultMix, FaultPlan};
//!
//! let plan: FaultPlan = "none,5xx=1,seed=7".parse()?;
//! let mut decider = plan.decider();
//! assert!(matches!(decider.decide(Endpoint::Events), Fault::ServerError { applied: false, .. }));
//! assert_eq!(plan.mix.server_error, 1.0);
//! assert!(FaultPlan::new(FaultMix::calm()).is_none());
//! # Ok::<(), tether_model::fault::ParseFaultPlanError>(())
//! ```

mod mix;
mod plan;

use std::fmt;
use std::time::Duration;

use tether_core::session::{Response, TransportError};
use tether_core::time::Instant;

pub use mix::{FaultMix, FaultMixError};
pub use plan::{FaultDecider, FaultPlan, ParseFaultPlanError, Schedule};

/// What `Retry-After` a throttling response carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryAfter {
    /// Delta-seconds, e.g. `Retry-After: 7`.
    Seconds(u64),
    /// An HTTP-date this many seconds after the response's own `Date`.
    Date {
        /// Seconds from the response's `Date` to the hinted date.
        delay_secs: u64,
    },
}

/// What happens to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Delivered normally after the base round trip.
    None,
    /// Delivered normally, this much later than the base round trip.
    Latency(Duration),
    /// Never reaches the server. `Some(d)`: the client sees a transport error after `d`;
    /// `None`: silence, so the client's own deadline fires.
    LostRequest {
        /// When the client learns of the failure, if ever.
        error_after: Option<Duration>,
    },
    /// The server applies the request, but the client sees a transport error after this long.
    LostResponse {
        /// When the client sees the transport error.
        error_after: Duration,
    },
    /// A 500, 502, 503 or 504 without `Retry-After`. If `applied`, the server had applied the
    /// request first (a gateway timing out on a slow upstream), so a retry is a duplicate.
    ServerError {
        /// The status the client sees.
        status: u16,
        /// Whether the server applied the request anyway.
        applied: bool,
    },
    /// `429` with a `Retry-After`; the request is not applied.
    Throttled(RetryAfter),
    /// `413`; not applied. Only decided for event batches, the only requests a client can make
    /// smaller by splitting; a one-event batch then becomes a dead letter, which the checks count
    /// as handed back.
    TooLarge,
    /// The server applies the request and the response never arrives: the client's deadline
    /// fires. (The reference server holds the connection for its plan's
    /// [`hang_for`](FaultPlan::hang_for), then closes it.)
    Hang,
    /// The server applies the request and answers `200` with a body that is not JSON: a
    /// truncated JSON object or an HTML page. Only decided where the client reads the body
    /// (`POST /worker/register` and `GET /worker`).
    Garbage {
        /// A truncated JSON object rather than an HTML page.
        truncated_json: bool,
    },
}

impl Fault {
    /// Whether the server sees (and applies) the request.
    pub const fn reaches_server(&self) -> bool {
        match self {
            Fault::None
            | Fault::Latency(_)
            | Fault::LostResponse { .. }
            | Fault::Hang
            | Fault::Garbage { .. } => true,
            Fault::ServerError { applied, .. } => *applied,
            Fault::LostRequest { .. } | Fault::Throttled(_) | Fault::TooLarge => false,
        }
    }

    /// The kind of this fault, for counting and logging; `None` for [`Fault::None`].
    pub const fn kind(&self) -> Option<FaultKind> {
        Some(match self {
            Fault::None => return None,
            Fault::Latency(_) => FaultKind::Latency,
            Fault::LostRequest { .. } => FaultKind::LostRequest,
            Fault::LostResponse { .. } => FaultKind::LostResponse,
            Fault::ServerError { .. } => FaultKind::ServerError,
            Fault::Throttled(_) => FaultKind::Throttled,
            Fault::TooLarge => FaultKind::TooLarge,
            Fault::Hang => FaultKind::Hang,
            Fault::Garbage { .. } => FaultKind::Garbage,
        })
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: &Duration| d.as_millis();
        match self {
            Fault::None => f.write_str("none"),
            Fault::Latency(d) => write!(f, "latency +{}ms", ms(d)),
            Fault::LostRequest {
                error_after: Some(d),
            } => write!(f, "lost request, error after {}ms", ms(d)),
            Fault::LostRequest { error_after: None } => f.write_str("lost request, silence"),
            Fault::LostResponse { error_after } => {
                write!(f, "lost response, error after {}ms", ms(error_after))
            }
            Fault::ServerError { status, applied } => {
                write!(
                    f,
                    "{status}{}",
                    if *applied { " after applying" } else { "" }
                )
            }
            Fault::Throttled(RetryAfter::Seconds(s)) => write!(f, "429 retry-after {s}s"),
            Fault::Throttled(RetryAfter::Date { delay_secs }) => {
                write!(f, "429 retry-after date +{delay_secs}s")
            }
            Fault::TooLarge => f.write_str("413"),
            Fault::Hang => f.write_str("hang"),
            Fault::Garbage {
                truncated_json: true,
            } => f.write_str("garbage (truncated JSON)"),
            Fault::Garbage {
                truncated_json: false,
            } => f.write_str("garbage (HTML)"),
        }
    }
}

/// The body of a [`Fault::Garbage`] answer: a truncated JSON object or an HTML page.
pub const fn garbage_body(truncated_json: bool) -> &'static [u8] {
    if truncated_json {
        b"{\"worker\": {\"worker_epo"
    } else {
        b"<html><body><h1>200 OK</h1>not json</body></html>"
    }
}

/// A kind of fault, for counting and logging: a [`Fault`] without its parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum FaultKind {
    /// [`Fault::Latency`]
    Latency,
    /// [`Fault::LostRequest`]
    LostRequest,
    /// [`Fault::LostResponse`]
    LostResponse,
    /// [`Fault::ServerError`]
    ServerError,
    /// [`Fault::Throttled`]
    Throttled,
    /// [`Fault::TooLarge`]
    TooLarge,
    /// [`Fault::Hang`]
    Hang,
    /// [`Fault::Garbage`]
    Garbage,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 8] = [
        FaultKind::Latency,
        FaultKind::LostRequest,
        FaultKind::LostResponse,
        FaultKind::ServerError,
        FaultKind::Throttled,
        FaultKind::TooLarge,
        FaultKind::Hang,
        FaultKind::Garbage,
    ];

    /// A short name for logs and counts, also the key of its rate in a fault plan's text
    /// ([`FaultPlan`]'s `FromStr`).
    pub const fn name(self) -> &'static str {
        match self {
            FaultKind::Latency => "latency",
            FaultKind::LostRequest => "lost-request",
            FaultKind::LostResponse => "lost-response",
            FaultKind::ServerError => "5xx",
            FaultKind::Throttled => "429",
            FaultKind::TooLarge => "413",
            FaultKind::Hang => "hang",
            FaultKind::Garbage => "garbage",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

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
