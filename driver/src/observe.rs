//! What the driver tells about a session besides its reports: `tracing` spans and events (with
//! the `tracing` feature, on by default), request latencies per endpoint, and the requests
//! slower than their endpoint's recent p95 (seed 002's performance monitor).
//!
//! Spans: `tether_session` (field `session`) for each session, and a `tether_request` span
//! (fields `id`, `endpoint`) inside it from a request's send until its answer or cancel.
//! Events: status changes (info; `given-up` and `superseded` at warn), retries scheduled
//! (info), hand-backs (warn, with the reason and the count), request answers (debug), slow
//! requests (info). Never the token (headers are not logged at all); payloads only at trace.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tether_core::{Instant, RequestId};

use tether_core::batch::Reason;
use tether_core::session::{Endpoint, Status, Stream};

use crate::report::{EndpointLatency, Report, UndeliveredEvent};
use crate::stats::Histogram;

/// Latencies kept per endpoint to judge "slow": the most recent ones.
pub const RECENT: usize = 100;
/// A request is judged slow only once its endpoint has this many recent latencies.
pub const MIN_SAMPLES: usize = 20;

#[derive(Default)]
struct Latencies {
    all: Histogram,
    /// The recent latencies in arrival order (to evict the oldest) ...
    recent: VecDeque<Duration>,
    /// ... and the same, sorted (to read the p95 by rank on every answer without sorting).
    ranked: Vec<Duration>,
}

impl Latencies {
    /// The p95 of the recent latencies, once there are enough of them.
    fn recent_p95(&self) -> Option<Duration> {
        if self.ranked.len() < MIN_SAMPLES {
            return None;
        }
        let rank = (self.ranked.len() * 95).div_ceil(100).max(1);
        self.ranked.get(rank - 1).copied()
    }

    fn record(&mut self, latency: Duration) {
        self.all.record(latency);
        if self.recent.len() == RECENT {
            if let Some(oldest) = self.recent.pop_front() {
                if let Ok(at) = self.ranked.binary_search(&oldest) {
                    self.ranked.remove(at);
                }
            }
        }
        self.recent.push_back(latency);
        let at = self.ranked.partition_point(|l| *l <= latency);
        self.ranked.insert(at, latency);
    }
}

struct InFlight {
    endpoint: Endpoint,
    sent: Instant,
    #[cfg(feature = "tracing")]
    span: tracing::Span,
}

/// The session's telemetry.
pub(crate) struct Telemetry {
    #[cfg(feature = "tracing")]
    span: tracing::Span,
    in_flight: HashMap<RequestId, InFlight>,
    latencies: Vec<(Endpoint, Latencies)>,
}

impl Telemetry {
    pub(crate) fn new(session: &str) -> Self {
        #[cfg(not(feature = "tracing"))]
        let _ = session;
        Telemetry {
            #[cfg(feature = "tracing")]
            span: tracing::info_span!("tether_session", session = %session),
            in_flight: HashMap::new(),
            latencies: Vec::new(),
        }
    }

    /// Request `id` left at `now`.
    pub(crate) fn sent(&mut self, id: RequestId, endpoint: Endpoint, now: Instant, body: &[u8]) {
        #[cfg(not(feature = "tracing"))]
        let _ = body;
        #[cfg(feature = "tracing")]
        let span = tracing::debug_span!(parent: &self.span, "tether_request", id = id.0, endpoint = %endpoint);
        #[cfg(feature = "tracing")]
        span.in_scope(|| {
            tracing::debug!(bytes = body.len(), "sent");
            tracing::trace!(body = %String::from_utf8_lossy(body), "sent body");
        });
        let request = InFlight {
            endpoint,
            sent: now,
            #[cfg(feature = "tracing")]
            span,
        };
        self.in_flight.insert(id, request);
    }

    /// The core cancelled request `id` at its deadline.
    pub(crate) fn cancelled(&mut self, id: RequestId) {
        if let Some(_request) = self.in_flight.remove(&id) {
            #[cfg(feature = "tracing")]
            _request
                .span
                .in_scope(|| tracing::debug!("cancelled at its deadline"));
        }
    }

    /// Request `id` was answered at `now` (`status`: the HTTP status, `None` for a transport
    /// error). Returns a slow-request report when it took longer than the recent p95.
    pub(crate) fn answered(
        &mut self,
        id: RequestId,
        now: Instant,
        status: Option<u16>,
    ) -> Option<Report> {
        let request = self.in_flight.remove(&id)?;
        let latency = now.saturating_duration_since(request.sent);
        #[cfg(feature = "tracing")]
        request.span.in_scope(|| match status {
            Some(status) => {
                tracing::debug!(status, latency_ms = latency.as_millis() as u64, "answered")
            }
            None => tracing::debug!(latency_ms = latency.as_millis() as u64, "transport error"),
        });
        #[cfg(not(feature = "tracing"))]
        let _ = status;
        let latencies = self.latencies_mut(request.endpoint);
        let slow = latencies
            .recent_p95()
            .filter(|p95| latency > *p95)
            .map(|recent_p95| Report::SlowRequest {
                endpoint: request.endpoint,
                latency,
                recent_p95,
            });
        latencies.record(latency);
        #[cfg(feature = "tracing")]
        if let Some(Report::SlowRequest { recent_p95, .. }) = &slow {
            request.span.in_scope(|| {
                tracing::info!(
                    latency_ms = latency.as_millis() as u64,
                    recent_p95_ms = recent_p95.as_millis() as u64,
                    "slow request"
                );
            });
        }
        slow
    }

    /// The core scheduled a retry after the answer to a request on `endpoint`.
    pub(crate) fn retry(&self, endpoint: Endpoint) {
        #[cfg(feature = "tracing")]
        self.span
            .in_scope(|| tracing::info!(endpoint = %endpoint, "retry scheduled"));
        #[cfg(not(feature = "tracing"))]
        let _ = endpoint;
    }

    /// The session's status changed.
    pub(crate) fn status(&self, status: &Status) {
        #[cfg(feature = "tracing")]
        self.span.in_scope(|| match status {
            Status::GivenUp(_) | Status::Superseded => tracing::warn!(status = %status, "status"),
            _ => tracing::info!(status = %status, "status"),
        });
        #[cfg(not(feature = "tracing"))]
        let _ = status;
    }

    /// Events were handed back to the caller.
    pub(crate) fn handed_back(&self, stream: Stream, reason: &Reason, events: &[UndeliveredEvent]) {
        #[cfg(feature = "tracing")]
        self.span.in_scope(|| {
            tracing::warn!(stream = stream.name(), reason = ?reason, events = events.len(), "handed back");
            for event in events {
                tracing::trace!(payload = %String::from_utf8_lossy(event.payload_bytes()), "handed back");
            }
        });
        #[cfg(not(feature = "tracing"))]
        let _ = (stream, reason, events);
    }

    /// The endpoint of request `id`, if it is in flight.
    pub(crate) fn endpoint(&self, id: RequestId) -> Option<Endpoint> {
        self.in_flight.get(&id).map(|r| r.endpoint)
    }

    /// Latency quantiles per endpoint so far.
    pub(crate) fn summary(&self) -> Vec<EndpointLatency> {
        self.latencies
            .iter()
            .map(|(endpoint, l)| EndpointLatency {
                endpoint: *endpoint,
                count: l.all.count(),
                p50: l.all.quantile(0.50),
                p95: l.all.quantile(0.95),
                p99: l.all.quantile(0.99),
                max: l.all.max(),
            })
            .collect()
    }

    fn latencies_mut(&mut self, endpoint: Endpoint) -> &mut Latencies {
        let at = match self.latencies.iter().position(|(e, _)| *e == endpoint) {
            Some(at) => at,
            None => {
                self.latencies.push((endpoint, Latencies::default()));
                self.latencies.len() - 1
            }
        };
        &mut self.latencies[at].1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_slower_than_the_recent_p95_is_reported_and_summarised() {
        let mut t = Telemetry::new("s");
        let start = Instant::from_secs(3);
        let mut slow = Vec::new();
        for n in 0..40u64 {
            let id = RequestId(n);
            t.sent(id, Endpoint::Events, start, b"{}");
            let latency = Duration::from_millis(if n == 35 { 500 } else { 10 + n % 5 });
            slow.extend(t.answered(id, start + latency, Some(200)));
        }
        // Too few samples at first: nothing is judged; then only the outlier is slow.
        assert_eq!(slow.len(), 1, "{slow:?}");
        assert!(matches!(
            slow[0],
            Report::SlowRequest { endpoint: Endpoint::Events, latency, .. }
                if latency == Duration::from_millis(500)
        ));
        // A cancelled request is no latency.
        t.sent(RequestId(99), Endpoint::Heartbeat, start, b"{}");
        t.cancelled(RequestId(99));
        assert!(t.answered(RequestId(99), start, Some(200)).is_none());
        let summary = t.summary();
        assert_eq!(summary.len(), 1);
        assert_eq!(summary[0].count, 40);
        assert!(
            summary[0].p50 >= Duration::from_millis(10)
                && summary[0].p50 <= Duration::from_millis(18)
        );
        assert_eq!(summary[0].max, Duration::from_millis(500));
    }

    #[test]
    fn the_recent_p95_is_the_95th_percentile_of_the_window_by_rank() {
        let mut latencies = Latencies::default();
        // A scrambled sequence with repeats, long enough that the window slides.
        for n in 0..(RECENT as u64 + 137) {
            latencies.record(Duration::from_micros(n * 7919 % 53));
            let mut sorted: Vec<Duration> = latencies.recent.iter().copied().collect();
            sorted.sort_unstable();
            assert_eq!(latencies.ranked, sorted, "after {} samples", n + 1);
            let expected = (sorted.len() >= MIN_SAMPLES)
                .then(|| sorted[(sorted.len() * 95).div_ceil(100) - 1]);
            assert_eq!(latencies.recent_p95(), expected, "after {} samples", n + 1);
        }
    }
}
