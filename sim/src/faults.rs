//! A seeded plan of network and server faults.
//!
//! A [`FaultMix`] says how often each fault happens; a [`FaultPlan`] built from it and a seed
//! decides, per request, one [`Fault`] ([`FaultPlan::decide`]), and plans the time-based events of
//! a run up front: partitions, server restarts and at most one takeover
//! ([`FaultPlan::timeline`]). [`FaultPlan::apply`] carries a fault out against the
//! [`ServerModel`] and says what the client observes, as a [`Delivery`].
//!
//! The planned timeline is drawn from its own stream of the seed, so it does not depend on how
//! many requests are made; per-request decisions depend only on the seed and the sequence of
//! calls.

use std::fmt;
use std::time::Duration;

use tether_core::rng::Rng;
use tether_core::session::{Endpoint, Response, TransportError};
use tether_core::time::Instant;
use tether_model::ServerModel;
pub use tether_model::fault::{Delivery, Span, TimeEvent};

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
    /// fires.
    Hang,
}

impl Fault {
    /// Whether the server sees (and applies) the request.
    pub const fn reaches_server(&self) -> bool {
        match self {
            Fault::None | Fault::Latency(_) | Fault::LostResponse { .. } | Fault::Hang => true,
            Fault::ServerError { applied, .. } => *applied,
            Fault::LostRequest { .. } | Fault::Throttled(_) | Fault::TooLarge => false,
        }
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
        }
    }
}

/// How often each fault happens. Per-request probabilities must sum to at most 1.
///
/// Build a custom mix from a preset: `FaultMix { hang: 0.2, ..FaultMix::calm() }`.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultMix {
    /// The round trip of every delivered request.
    pub base_rtt: Duration,
    /// Probability of [`Fault::Latency`].
    pub latency: f64,
    /// Extra latency is uniform in `(0, latency_max]`.
    pub latency_max: Duration,
    /// Probability of [`Fault::LostRequest`].
    pub lost_request: f64,
    /// Fraction of lost requests that end in silence rather than a transport error.
    pub lost_request_silent: f64,
    /// Probability of [`Fault::LostResponse`].
    pub lost_response: f64,
    /// Transport errors come uniformly within `[0, error_after_max]`.
    pub error_after_max: Duration,
    /// Probability of [`Fault::ServerError`].
    pub server_error: f64,
    /// Fraction of server errors whose request was applied anyway.
    pub server_error_applied: f64,
    /// Probability of [`Fault::Throttled`] with delta-seconds.
    pub throttle_seconds: f64,
    /// Probability of [`Fault::Throttled`] with an HTTP-date.
    pub throttle_date: f64,
    /// `Retry-After` hints are uniform in `[1, retry_after_max_secs]` seconds.
    pub retry_after_max_secs: u64,
    /// Probability of [`Fault::TooLarge`] for an event batch (other requests: none).
    pub too_large: f64,
    /// Probability of [`Fault::Hang`].
    pub hang: f64,
    /// Mean number of partitions per hour of run.
    pub partitions_per_hour: f64,
    /// The shortest partition.
    pub partition_min: Duration,
    /// The longest partition.
    pub partition_max: Duration,
    /// Mean number of server restarts per hour of run.
    pub restarts_per_hour: f64,
    /// Probability that a newer worker takes the session over once during the run.
    pub takeover: f64,
}

impl FaultMix {
    /// No faults at all: every request is delivered after 20 ms.
    pub fn calm() -> Self {
        FaultMix {
            base_rtt: Duration::from_millis(20),
            latency: 0.0,
            latency_max: Duration::ZERO,
            lost_request: 0.0,
            lost_request_silent: 0.0,
            lost_response: 0.0,
            error_after_max: Duration::ZERO,
            server_error: 0.0,
            server_error_applied: 0.0,
            throttle_seconds: 0.0,
            throttle_date: 0.0,
            retry_after_max_secs: 1,
            too_large: 0.0,
            hang: 0.0,
            partitions_per_hour: 0.0,
            partition_min: Duration::ZERO,
            partition_max: Duration::ZERO,
            restarts_per_hour: 0.0,
            takeover: 0.0,
        }
    }

    /// An ordinary bad day: about one request in seven has a fault, short partitions, restarts.
    pub fn flaky() -> Self {
        FaultMix {
            latency: 0.05,
            latency_max: Duration::from_secs(2),
            lost_request: 0.02,
            lost_request_silent: 0.25,
            lost_response: 0.02,
            error_after_max: Duration::from_secs(3),
            server_error: 0.03,
            server_error_applied: 0.25,
            throttle_seconds: 0.01,
            throttle_date: 0.01,
            retry_after_max_secs: 10,
            too_large: 0.005,
            hang: 0.005,
            partitions_per_hour: 2.0,
            partition_min: Duration::from_secs(5),
            partition_max: Duration::from_secs(60),
            restarts_per_hour: 2.0,
            ..FaultMix::calm()
        }
    }

    /// Everything goes wrong: about half the requests fail, partitions last minutes, and a
    /// newer worker takes over in half the runs.
    pub fn hostile() -> Self {
        FaultMix {
            latency: 0.1,
            latency_max: Duration::from_secs(15),
            lost_request: 0.08,
            lost_request_silent: 0.5,
            lost_response: 0.08,
            error_after_max: Duration::from_secs(10),
            server_error: 0.1,
            server_error_applied: 0.3,
            throttle_seconds: 0.04,
            throttle_date: 0.04,
            retry_after_max_secs: 30,
            too_large: 0.03,
            hang: 0.05,
            partitions_per_hour: 6.0,
            partition_min: Duration::from_secs(10),
            partition_max: Duration::from_secs(300),
            restarts_per_hour: 6.0,
            takeover: 0.5,
            ..FaultMix::calm()
        }
    }

    /// The per-request probabilities in decision order, with their names.
    fn per_request(&self) -> [(&'static str, f64); 8] {
        [
            ("latency", self.latency),
            ("lost_request", self.lost_request),
            ("lost_response", self.lost_response),
            ("server_error", self.server_error),
            ("throttle_seconds", self.throttle_seconds),
            ("throttle_date", self.throttle_date),
            ("too_large", self.too_large),
            ("hang", self.hang),
        ]
    }

    /// Checks every probability is in `[0, 1]`, the per-request ones sum to at most 1, rates
    /// are finite and non-negative, and `partition_min <= partition_max`.
    pub fn validate(&self) -> Result<(), FaultMixError> {
        let fractions = [
            ("lost_request_silent", self.lost_request_silent),
            ("server_error_applied", self.server_error_applied),
            ("takeover", self.takeover),
        ];
        for (name, p) in self.per_request().into_iter().chain(fractions) {
            if !(0.0..=1.0).contains(&p) {
                return Err(FaultMixError::Probability(name));
            }
        }
        if self.per_request().iter().map(|(_, p)| p).sum::<f64>() > 1.0 + 1e-9 {
            return Err(FaultMixError::SumAboveOne);
        }
        for (name, rate) in [
            ("partitions_per_hour", self.partitions_per_hour),
            ("restarts_per_hour", self.restarts_per_hour),
        ] {
            if !(rate.is_finite() && rate >= 0.0) {
                return Err(FaultMixError::Rate(name));
            }
        }
        if self.partition_min > self.partition_max {
            return Err(FaultMixError::PartitionBounds);
        }
        Ok(())
    }
}

impl Default for FaultMix {
    fn default() -> Self {
        FaultMix::calm()
    }
}

/// A fault mix that cannot be planned from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultMixError {
    /// This probability is outside `[0, 1]` or not a number.
    Probability(&'static str),
    /// The per-request probabilities add up to more than 1.
    SumAboveOne,
    /// This rate is negative or not finite.
    Rate(&'static str),
    /// `partition_min` exceeds `partition_max`.
    PartitionBounds,
}

impl fmt::Display for FaultMixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultMixError::Probability(name) => write!(f, "{name} is not a probability"),
            FaultMixError::SumAboveOne => {
                f.write_str("per-request fault probabilities sum above 1")
            }
            FaultMixError::Rate(name) => write!(f, "{name} is not a finite non-negative rate"),
            FaultMixError::PartitionBounds => f.write_str("partition_min exceeds partition_max"),
        }
    }
}

impl std::error::Error for FaultMixError {}

/// A fault decided and carried out: what [`FaultPlan::exchange`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchange {
    /// The fault that was decided.
    pub fault: Fault,
    /// Whether the server applied the request.
    pub applied: bool,
    /// What the client observes.
    pub delivery: Delivery,
}

/// Seeded per-request fault decisions, and a timeline planned up front.
#[derive(Clone, Debug)]
pub struct FaultPlan {
    mix: FaultMix,
    rng: Rng,
    partitions: Vec<Span>,
    restarts: Vec<Instant>,
    takeover: Option<Instant>,
}

impl FaultPlan {
    /// A plan for a run of `run_length` from `seed` and `mix`.
    pub fn new(seed: u64, mix: FaultMix, run_length: Duration) -> Result<Self, FaultMixError> {
        mix.validate()?;
        let mut root = Rng::new(seed);
        let rng = root.fork();
        let mut timeline = root.fork();
        let end = Instant::from_duration(run_length);

        let mut partitions = Vec::new();
        let mut t = Instant::ZERO;
        while let Some(start) = next_arrival(&mut timeline, t, mix.partitions_per_hour, end) {
            let len = timeline.duration_between(mix.partition_min, mix.partition_max);
            let span = Span {
                start,
                end: start + len,
            };
            partitions.push(span);
            t = span.end;
        }
        let mut restarts = Vec::new();
        let mut t = Instant::ZERO;
        while let Some(at) = next_arrival(&mut timeline, t, mix.restarts_per_hour, end) {
            restarts.push(at);
            t = at;
        }
        let takeover = (timeline.unit() < mix.takeover).then(|| {
            Instant::from_duration(
                timeline
                    .duration_between(run_length / 10, run_length.saturating_sub(run_length / 10)),
            )
        });
        Ok(FaultPlan {
            mix,
            rng,
            partitions,
            restarts,
            takeover,
        })
    }

    /// The mix the plan draws from.
    pub fn mix(&self) -> &FaultMix {
        &self.mix
    }

    /// The planned partitions, in order and disjoint.
    pub fn partitions(&self) -> &[Span] {
        &self.partitions
    }

    /// Whether the network is partitioned at `now`.
    pub fn partitioned(&self, now: Instant) -> bool {
        self.partitions.iter().any(|p| p.contains(now))
    }

    /// The planned server restarts, in order.
    pub fn restarts(&self) -> &[Instant] {
        &self.restarts
    }

    /// When a newer worker takes over, if one does.
    pub fn takeover(&self) -> Option<Instant> {
        self.takeover
    }

    /// Every planned event in time order, for the runner to schedule.
    pub fn timeline(&self) -> Vec<(Instant, TimeEvent)> {
        let mut events: Vec<(Instant, TimeEvent)> = self
            .partitions
            .iter()
            .flat_map(|p| {
                [
                    (p.start, TimeEvent::PartitionStart { until: p.end }),
                    (p.end, TimeEvent::PartitionEnd),
                ]
            })
            .chain(self.restarts.iter().map(|&t| (t, TimeEvent::Restart)))
            .chain(self.takeover.map(|t| (t, TimeEvent::Takeover)))
            .collect();
        events.sort();
        events
    }

    /// Decides the fault for a request sent at `now`. During a partition every request is lost
    /// in silence. Otherwise one uniform draw picks a fault by the mix's probabilities, and any
    /// parameter the fault needs is drawn after it.
    pub fn decide(&mut self, now: Instant, endpoint: Endpoint) -> Fault {
        if self.partitioned(now) {
            return Fault::LostRequest { error_after: None };
        }
        let mut u = self.rng.unit();
        let mut pick = None;
        for (i, (_, p)) in self.mix.per_request().into_iter().enumerate() {
            if u < p {
                pick = Some(i);
                break;
            }
            u -= p;
        }
        let mix = &self.mix;
        let rng = &mut self.rng;
        let retry_after = |rng: &mut Rng| 1 + rng.below(mix.retry_after_max_secs.max(1));
        match pick {
            Some(0) => Fault::Latency(rng.duration_between(
                Duration::from_micros(1),
                mix.latency_max.max(Duration::from_micros(1)),
            )),
            Some(1) => {
                let silent = rng.unit() < mix.lost_request_silent;
                let after = rng.duration_between(Duration::ZERO, mix.error_after_max);
                Fault::LostRequest {
                    error_after: (!silent).then_some(after),
                }
            }
            Some(2) => Fault::LostResponse {
                error_after: rng.duration_between(Duration::ZERO, mix.error_after_max),
            },
            Some(3) => Fault::ServerError {
                status: [500, 502, 503, 504][rng.below(4) as usize],
                applied: rng.unit() < mix.server_error_applied,
            },
            Some(4) => Fault::Throttled(RetryAfter::Seconds(retry_after(rng))),
            Some(5) => Fault::Throttled(RetryAfter::Date {
                delay_secs: retry_after(rng),
            }),
            Some(6) if matches!(endpoint, Endpoint::Events | Endpoint::InternalEvents) => {
                Fault::TooLarge
            }
            Some(7) => Fault::Hang,
            _ => Fault::None,
        }
    }

    /// Carries `fault` out for a request sent at `now`: hands the request to `server` if the fault
    /// lets it through, and says what the client observes.
    ///
    /// Beyond the fault itself, a response is lost if a planned restart falls between sending and
    /// arrival (a transport error at the restart), or if it would arrive inside a partition
    /// (silence).
    pub fn apply(
        &self,
        fault: &Fault,
        now: Instant,
        server: &mut ServerModel,
        endpoint: Endpoint,
        body: &[u8],
    ) -> Delivery {
        let served = fault
            .reaches_server()
            .then(|| server.handle(now, endpoint, body));
        let rtt = self.mix.base_rtt;
        let made = |status: u16, retry_after: Option<String>| Response {
            status,
            retry_after,
            date: Some(server.date(now)),
            body: format!("{{\"error\":\"injected {status}\"}}").into_bytes(),
            truncated: false,
        };
        let transport = |after: Duration, what: &str| Delivery::TransportError {
            at: now + after,
            error: TransportError {
                message: what.to_string(),
            },
        };
        let (at, response) = match *fault {
            Fault::None => (now + rtt, served),
            Fault::Latency(extra) => (now + rtt + extra, served),
            Fault::LostRequest {
                error_after: Some(after),
            } => return transport(after, "connection failed (request lost)"),
            Fault::LostResponse { error_after } => {
                return transport(error_after, "connection reset (response lost)");
            }
            Fault::LostRequest { error_after: None } | Fault::Hang => return Delivery::Hang,
            Fault::ServerError { status, .. } => (now + rtt, Some(made(status, None))),
            Fault::Throttled(hint) => {
                let value = match hint {
                    RetryAfter::Seconds(s) => s.to_string(),
                    RetryAfter::Date { delay_secs } => {
                        server.http_date(server.unix_time(now).saturating_add(delay_secs))
                    }
                };
                (now + rtt, Some(made(429, Some(value))))
            }
            Fault::TooLarge => (now + rtt, Some(made(413, None))),
        };
        let Some(response) = response else {
            return Delivery::Hang; // unreachable: every responding fault reaches or makes one
        };
        if let Some(&restart) = self.restarts.iter().find(|&&r| now < r && r <= at) {
            return Delivery::TransportError {
                at: restart,
                error: TransportError {
                    message: "connection reset (server restart)".to_string(),
                },
            };
        }
        if self.partitioned(at) {
            return Delivery::Hang;
        }
        Delivery::Respond { at, response }
    }

    /// [`decide`](Self::decide) then [`apply`](Self::apply): one request, start to end.
    pub fn exchange(
        &mut self,
        now: Instant,
        server: &mut ServerModel,
        endpoint: Endpoint,
        body: &[u8],
    ) -> Exchange {
        let fault = self.decide(now, endpoint);
        let delivery = self.apply(&fault, now, server, endpoint, body);
        Exchange {
            fault,
            applied: fault.reaches_server(),
            delivery,
        }
    }
}

/// The next arrival after `t` of a process with `per_hour` mean rate, if before `end`. Gaps are
/// uniform in `[0, 2 · mean]`, which keeps the mean (no logarithm: the simulator was `no_std`
/// when its seeds and snapshots were pinned, and changing the draw would change every timeline).
fn next_arrival(rng: &mut Rng, t: Instant, per_hour: f64, end: Instant) -> Option<Instant> {
    if per_hour <= 0.0 {
        return None;
    }
    let mean = Duration::from_secs_f64((3600.0 / per_hour).min(1e12));
    let at = t + rng.duration_between(Duration::ZERO, mean * 2);
    (at < end).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};
    use tether_core::backoff::retry_after;
    use tether_core::session::Stream;

    const RUN: Duration = Duration::from_secs(600);

    fn decisions(seed: u64, mix: FaultMix, n: u64) -> Vec<Fault> {
        let mut plan = FaultPlan::new(seed, mix, RUN).unwrap();
        (0..n)
            .map(|i| {
                let endpoint = Endpoint::ALL[(i % 7) as usize];
                plan.decide(Instant::from_millis(i * 50), endpoint)
            })
            .collect()
    }

    fn kind(fault: &Fault) -> &'static str {
        match fault {
            Fault::None => "none",
            Fault::Latency(_) => "latency",
            Fault::LostRequest { .. } => "lost_request",
            Fault::LostResponse { .. } => "lost_response",
            Fault::ServerError { .. } => "server_error",
            Fault::Throttled(RetryAfter::Seconds(_)) => "throttle_seconds",
            Fault::Throttled(RetryAfter::Date { .. }) => "throttle_date",
            Fault::TooLarge => "too_large",
            Fault::Hang => "hang",
        }
    }

    #[test]
    fn same_seed_same_decisions_and_timeline() {
        let timeline =
            |seed, mix: &FaultMix| FaultPlan::new(seed, mix.clone(), RUN).unwrap().timeline();
        for mix in [FaultMix::flaky(), FaultMix::hostile()] {
            assert_eq!(
                decisions(11, mix.clone(), 2000),
                decisions(11, mix.clone(), 2000)
            );
            assert_eq!(timeline(11, &mix), timeline(11, &mix));
            // Another seed must differ, or the equalities above prove nothing.
            assert_ne!(
                decisions(11, mix.clone(), 2000),
                decisions(12, mix.clone(), 2000)
            );
            let timelines: BTreeSet<Vec<(Instant, TimeEvent)>> =
                (0..10).map(|seed| timeline(seed, &mix)).collect();
            assert!(timelines.len() > 1, "every seed planned the same timeline");
        }
    }

    #[test]
    fn the_timeline_does_not_depend_on_requests_made() {
        let mut plan = FaultPlan::new(5, FaultMix::hostile(), RUN).unwrap();
        let before = plan.timeline();
        for i in 0..100 {
            let _ = plan.decide(Instant::from_secs(i), Endpoint::Events);
        }
        assert_eq!(plan.timeline(), before);
    }

    #[test]
    fn calm_has_no_faults() {
        for seed in 0..20 {
            let plan = FaultPlan::new(seed, FaultMix::calm(), Duration::from_secs(36_000)).unwrap();
            assert!(plan.timeline().is_empty());
            assert!(
                decisions(seed, FaultMix::calm(), 2000)
                    .iter()
                    .all(|f| *f == Fault::None)
            );
        }
    }

    #[test]
    fn preset_rates_are_roughly_right() {
        const N: u64 = 70_000;
        for mix in [FaultMix::flaky(), FaultMix::hostile()] {
            let quiet = FaultMix {
                partitions_per_hour: 0.0,
                ..mix.clone()
            };
            let mut plan = FaultPlan::new(3, quiet, RUN).unwrap();
            let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
            for i in 0..N {
                // Event batches only, so 413 is possible.
                let fault = plan.decide(Instant::from_millis(i), Endpoint::Events);
                *counts.entry(kind(&fault)).or_default() += 1;
            }
            for (name, p) in mix.per_request() {
                let expected = p * N as f64;
                let got = *counts.get(name).unwrap_or(&0) as f64;
                assert!(
                    (got - expected).abs() <= expected * 0.25 + 10.0,
                    "{name}: {got} draws, expected about {expected}"
                );
            }
        }
    }

    #[test]
    fn too_large_is_only_decided_for_event_batches() {
        let mix = FaultMix {
            too_large: 1.0,
            ..FaultMix::calm()
        };
        let mut plan = FaultPlan::new(1, mix, RUN).unwrap();
        for endpoint in Endpoint::ALL {
            let expected = match endpoint {
                Endpoint::Events | Endpoint::InternalEvents => Fault::TooLarge,
                _ => Fault::None,
            };
            assert_eq!(plan.decide(Instant::ZERO, endpoint), expected, "{endpoint}");
        }
    }

    #[test]
    fn partitions_respect_their_bounds_and_lose_every_request() {
        let mut seen = 0;
        for seed in 0..200 {
            let mix = FaultMix::hostile();
            let mut plan = FaultPlan::new(seed, mix.clone(), Duration::from_secs(3600)).unwrap();
            let partitions = plan.partitions().to_vec();
            for pair in partitions.windows(2) {
                assert!(pair[0].end <= pair[1].start, "overlap in seed {seed}");
            }
            for p in &partitions {
                seen += 1;
                assert!(p.len() >= mix.partition_min && p.len() <= mix.partition_max);
                let mid = p.start + p.len() / 2;
                assert!(plan.partitioned(p.start) && plan.partitioned(mid));
                assert!(!plan.partitioned(p.end) || partitions.iter().any(|q| q.start == p.end));
                assert_eq!(
                    plan.decide(mid, Endpoint::Heartbeat),
                    Fault::LostRequest { error_after: None }
                );
            }
        }
        // Six an hour on average: 200 hours should see several hundred.
        assert!((600..=1800).contains(&seen), "{seen} partitions");
    }

    #[test]
    fn at_most_one_takeover_within_the_run() {
        let mut takeovers = 0;
        for seed in 0..200 {
            let plan = FaultPlan::new(seed, FaultMix::hostile(), RUN).unwrap();
            let timeline = plan.timeline();
            let n = timeline
                .iter()
                .filter(|(_, e)| *e == TimeEvent::Takeover)
                .count();
            assert!(n <= 1);
            if let Some(at) = plan.takeover() {
                takeovers += 1;
                assert!(at >= Instant::from_secs(60) && at <= Instant::from_secs(540));
            }
            assert!(timeline.windows(2).all(|w| w[0].0 <= w[1].0), "unsorted");
        }
        assert!(
            (60..=140).contains(&takeovers),
            "{takeovers} takeovers in 200 runs"
        );
        assert!(
            FaultPlan::new(1, FaultMix::flaky(), RUN)
                .unwrap()
                .takeover()
                .is_none()
        );
    }

    #[test]
    fn invalid_mixes_are_refused() {
        let bad = [
            (
                FaultMix {
                    hang: 1.5,
                    ..FaultMix::calm()
                },
                FaultMixError::Probability("hang"),
            ),
            (
                FaultMix {
                    hang: 0.6,
                    lost_request: 0.6,
                    ..FaultMix::calm()
                },
                FaultMixError::SumAboveOne,
            ),
            (
                FaultMix {
                    takeover: f64::NAN,
                    ..FaultMix::calm()
                },
                FaultMixError::Probability("takeover"),
            ),
            (
                FaultMix {
                    restarts_per_hour: -1.0,
                    ..FaultMix::calm()
                },
                FaultMixError::Rate("restarts_per_hour"),
            ),
            (
                FaultMix {
                    partition_min: Duration::from_secs(2),
                    ..FaultMix::calm()
                },
                FaultMixError::PartitionBounds,
            ),
        ];
        for (mix, error) in bad {
            assert_eq!(FaultPlan::new(0, mix, RUN).unwrap_err(), error);
        }
        for mix in [FaultMix::calm(), FaultMix::flaky(), FaultMix::hostile()] {
            assert_eq!(mix.validate(), Ok(()));
        }
    }

    fn one_event(uuid: &str) -> Vec<u8> {
        format!(r#"{{"worker_epoch":0,"events":[{{"payload":{{"uuid":"{uuid}"}}}}]}}"#).into_bytes()
    }

    fn apply(fault: Fault, now: Instant) -> (Delivery, ServerModel) {
        let plan = FaultPlan::new(0, FaultMix::calm(), RUN).unwrap();
        let mut server = ServerModel::default();
        let d = plan.apply(&fault, now, &mut server, Endpoint::Events, &one_event("a"));
        (d, server)
    }

    #[test]
    fn faults_reach_the_server_or_not_as_documented() {
        let now = Instant::from_secs(10);
        let ms = Duration::from_millis;
        let cases = [
            (Fault::None, true),
            (Fault::Latency(ms(500)), true),
            (
                Fault::LostRequest {
                    error_after: Some(ms(300)),
                },
                false,
            ),
            (Fault::LostRequest { error_after: None }, false),
            (
                Fault::LostResponse {
                    error_after: ms(300),
                },
                true,
            ),
            (
                Fault::ServerError {
                    status: 502,
                    applied: false,
                },
                false,
            ),
            (
                Fault::ServerError {
                    status: 504,
                    applied: true,
                },
                true,
            ),
            (Fault::Throttled(RetryAfter::Seconds(3)), false),
            (Fault::TooLarge, false),
            (Fault::Hang, true),
        ];
        for (fault, applied) in cases {
            let (delivery, server) = apply(fault, now);
            assert_eq!(fault.reaches_server(), applied, "{fault}");
            assert_eq!(
                server.events(Stream::Events).len(),
                usize::from(applied),
                "{fault}"
            );
            match (fault, delivery) {
                (Fault::None, Delivery::Respond { at, response }) => {
                    assert_eq!((at, response.status), (now + ms(20), 200));
                }
                (Fault::Latency(_), Delivery::Respond { at, response }) => {
                    assert_eq!((at, response.status), (now + ms(520), 200));
                }
                (
                    Fault::LostRequest {
                        error_after: Some(_),
                    },
                    Delivery::TransportError { at, .. },
                )
                | (Fault::LostResponse { .. }, Delivery::TransportError { at, .. }) => {
                    assert_eq!(at, now + ms(300));
                }
                (Fault::LostRequest { error_after: None } | Fault::Hang, Delivery::Hang) => {}
                (Fault::ServerError { status, .. }, Delivery::Respond { response, .. }) => {
                    assert_eq!(response.status, status);
                    assert!(response.retry_after.is_none());
                }
                (Fault::Throttled(_), Delivery::Respond { response, .. }) => {
                    assert_eq!(response.status, 429);
                    assert_eq!(response.retry_after.as_deref(), Some("3"));
                }
                (Fault::TooLarge, Delivery::Respond { response, .. }) => {
                    assert_eq!(response.status, 413)
                }
                (fault, delivery) => panic!("{fault}: unexpected {delivery:?}"),
            }
        }
    }

    #[test]
    fn an_http_date_retry_after_agrees_with_the_date_header() {
        let (delivery, _) = apply(
            Fault::Throttled(RetryAfter::Date { delay_secs: 17 }),
            Instant::from_millis(123_456),
        );
        let Delivery::Respond { response, .. } = delivery else {
            panic!("{delivery:?}");
        };
        let hint = response.retry_after.as_deref().unwrap();
        assert!(hint.ends_with(" GMT"), "{hint}");
        assert_eq!(
            retry_after::parse(hint, response.date.as_deref()),
            Some(Duration::from_secs(17))
        );
    }

    #[test]
    fn a_restart_in_flight_loses_the_response_after_applying() {
        let mix = FaultMix {
            restarts_per_hour: 60.0,
            ..FaultMix::calm()
        };
        let plan = FaultPlan::new(2, mix, RUN).unwrap();
        let restart = plan.restarts()[0];
        let mut server = ServerModel::default();
        let sent = restart.saturating_sub(Duration::from_millis(5));
        let d = plan.apply(
            &Fault::None,
            sent,
            &mut server,
            Endpoint::Events,
            &one_event("a"),
        );
        assert!(
            matches!(d, Delivery::TransportError { at, .. } if at == restart),
            "{d:?}"
        );
        assert_eq!(server.events(Stream::Events).len(), 1);
        let after = restart + Duration::from_micros(1);
        let d = plan.apply(
            &Fault::None,
            after,
            &mut server,
            Endpoint::Events,
            &one_event("b"),
        );
        assert!(matches!(d, Delivery::Respond { .. }), "{d:?}");
    }

    #[test]
    fn a_response_arriving_in_a_partition_is_lost() {
        let mix = FaultMix {
            partitions_per_hour: 60.0,
            partition_min: Duration::from_secs(5),
            partition_max: Duration::from_secs(5),
            ..FaultMix::calm()
        };
        let mut plan = FaultPlan::new(4, mix, RUN).unwrap();
        let start = plan.partitions()[0].start;
        let mut server = ServerModel::default();
        let sent = start.saturating_sub(Duration::from_millis(10));
        let x = plan.exchange(sent, &mut server, Endpoint::Events, &one_event("a"));
        assert_eq!(
            (x.fault, x.applied, x.delivery),
            (Fault::None, true, Delivery::Hang)
        );
        assert_eq!(server.events(Stream::Events).len(), 1);
    }
}
