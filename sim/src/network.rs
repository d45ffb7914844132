//! The simulator's network: a seeded [`FaultPlan`] carried out in virtual time.
//!
//! What a fault is, how often each happens and how one is drawn per request is
//! [`tether_model::fault`]'s, shared with the reference server. A [`Network`] built from a seed
//! and a [`FaultMix`] decides, per request, one [`Fault`] ([`Network::decide`]), and plans the
//! time-based events of a run up front: partitions, server restarts and at most one takeover
//! ([`Network::timeline`]). [`Network::apply`] carries a fault out against the [`ServerModel`] and
//! says what the client observes, as a [`Delivery`], at a virtual time; thread-sync requests
//! go the same way ([`Network::thread_exchange`], decided by
//! [`FaultDecider::decide_thread`]).
//!
//! The planned timeline is drawn from its own stream of the seed, so it does not depend on how
//! many requests are made; per-request decisions depend only on the seed and the sequence of
//! calls.

use std::time::Duration;

use tether_core::session::{Endpoint, Response, TransportError};
use tether_core::thread;
use tether_core::time::Instant;
use tether_model::ServerModel;
use tether_model::fault::{
    Delivery, Fault, FaultDecider, FaultMix, FaultMixError, FaultPlan, RetryAfter, Schedule, Span,
    TimeEvent, garbage_body,
};

/// A fault decided and carried out: what [`Network::exchange`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchange {
    /// The fault that was decided.
    pub fault: Fault,
    /// Whether the server applied the request.
    pub applied: bool,
    /// What the client observes.
    pub delivery: Delivery,
}

/// Seeded per-request fault decisions, and a timeline planned up front, carried out in virtual
/// time.
#[derive(Clone, Debug)]
pub struct Network {
    mix: FaultMix,
    decider: FaultDecider,
    schedule: Schedule,
    outage: Option<Span>,
    quiet_from: Option<Instant>,
}

impl Network {
    /// A network for a run of `run_length` from `seed` and `mix`.
    pub fn new(seed: u64, mix: FaultMix, run_length: Duration) -> Result<Self, FaultMixError> {
        mix.validate()?;
        let plan = FaultPlan::new(mix).with_seed(seed);
        Ok(Network {
            decider: plan.decider(),
            schedule: plan.schedule(run_length),
            mix: plan.mix,
            outage: None,
            quiet_from: None,
        })
    }

    /// The same network with the server down during `span`: every request sent then fails
    /// with a connection error after one round trip (a [`Fault::LostRequest`] with an error),
    /// as when nothing listens on the server's port. Nothing reaches the server.
    pub fn with_outage(mut self, span: Span) -> Self {
        self.outage = Some(span);
        self
    }

    /// When the server is down, if it is ever.
    pub fn outage(&self) -> Option<Span> {
        self.outage
    }

    /// This network with no per-request fault decided at or after `at` (the planned timeline
    /// is the run length's, as before): a heal after which every request goes through.
    #[must_use]
    pub fn quiet_from(mut self, at: Instant) -> Self {
        self.quiet_from = Some(at);
        self
    }

    /// Whether requests sent at `now` draw no fault (see [`quiet_from`](Self::quiet_from)).
    fn quiet(&self, now: Instant) -> bool {
        self.quiet_from.is_some_and(|at| now >= at)
    }

    /// The mix the network draws from.
    pub fn mix(&self) -> &FaultMix {
        &self.mix
    }

    /// The planned partitions, in order and disjoint.
    pub fn partitions(&self) -> &[Span] {
        &self.schedule.partitions
    }

    /// Whether the network is partitioned at `now`.
    pub fn partitioned(&self, now: Instant) -> bool {
        self.schedule.partitioned(now)
    }

    /// The planned server restarts, in order.
    pub fn restarts(&self) -> &[Instant] {
        &self.schedule.restarts
    }

    /// When a newer worker takes over, if one does.
    pub fn takeover(&self) -> Option<Instant> {
        self.schedule.takeover
    }

    /// Every planned event in time order, for the world to schedule.
    pub fn timeline(&self) -> Vec<(Instant, TimeEvent)> {
        self.schedule.timeline()
    }

    /// Decides the fault for a request sent at `now`. During a partition every request is lost
    /// in silence, during the [outage](Self::with_outage) refused; otherwise the plan's
    /// [`FaultDecider`] picks one.
    pub fn decide(&mut self, now: Instant, endpoint: Endpoint) -> Fault {
        if self.partitioned(now) {
            return Fault::LostRequest { error_after: None };
        }
        if self.outage.is_some_and(|o| o.contains(now)) {
            return Fault::LostRequest {
                error_after: Some(self.mix.base_rtt),
            };
        }
        if self.quiet(now) {
            return Fault::None;
        }
        self.decider.decide(endpoint)
    }

    /// Decides the fault for a thread-sync request sent at `now`, as [`decide`](Self::decide)
    /// does for a worker route, from the same stream ([`FaultDecider::decide_thread`]).
    pub fn decide_thread(&mut self, now: Instant, endpoint: thread::Endpoint) -> Fault {
        if self.partitioned(now) {
            return Fault::LostRequest { error_after: None };
        }
        if self.outage.is_some_and(|o| o.contains(now)) {
            return Fault::LostRequest {
                error_after: Some(self.mix.base_rtt),
            };
        }
        if self.quiet(now) {
            return Fault::None;
        }
        self.decider.decide_thread(endpoint)
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
        self.carry(fault, now, server, |server| {
            server.handle(now, endpoint, body)
        })
    }

    /// [`apply`](Self::apply) for a thread-sync request: `query` is the URL's query without
    /// `?`.
    pub fn apply_thread(
        &self,
        fault: &Fault,
        now: Instant,
        server: &mut ServerModel,
        endpoint: thread::Endpoint,
        query: &str,
        body: &[u8],
    ) -> Delivery {
        self.carry(fault, now, server, |server| {
            server.handle_thread(now, endpoint, query, body)
        })
    }

    /// Carries `fault` out; `serve` is the server answering the request, called if the fault
    /// lets it through.
    fn carry(
        &self,
        fault: &Fault,
        now: Instant,
        server: &mut ServerModel,
        serve: impl FnOnce(&mut ServerModel) -> Response,
    ) -> Delivery {
        let served = fault.reaches_server().then(|| serve(server));
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
            // Only an answer that succeeded is garbled, as on a real server.
            Fault::Garbage { truncated_json } => (
                now + rtt,
                served.map(|response| match response.status {
                    200..=299 => Response {
                        body: garbage_body(truncated_json).to_vec(),
                        ..response
                    },
                    _ => response,
                }),
            ),
            // Every fault is one of the above; a new kind is delivered as if it were none.
            _ => (now + rtt, served),
        };
        let Some(response) = response else {
            return Delivery::Hang; // unreachable: every responding fault reaches or makes one
        };
        if let Some(&restart) = self.schedule.restarts.iter().find(|&&r| now < r && r <= at) {
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

    /// [`decide_thread`](Self::decide_thread) then [`apply_thread`](Self::apply_thread): one
    /// thread-sync request, start to end. `query` is the URL's query without `?`.
    pub fn thread_exchange(
        &mut self,
        now: Instant,
        server: &mut ServerModel,
        endpoint: thread::Endpoint,
        query: &str,
        body: &[u8],
    ) -> Exchange {
        let fault = self.decide_thread(now, endpoint);
        let delivery = self.apply_thread(&fault, now, server, endpoint, query, body);
        Exchange {
            fault,
            applied: fault.reaches_server(),
            delivery,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};
    use tether_core::backoff::retry_after;
    use tether_core::session::Stream;

    const RUN: Duration = Duration::from_secs(600);

    fn decisions(seed: u64, mix: FaultMix, n: u64) -> Vec<Fault> {
        let mut plan = Network::new(seed, mix, RUN).unwrap();
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
            Fault::Garbage { .. } => "garbage",
            _ => "other",
        }
    }

    #[test]
    fn same_seed_same_decisions_and_timeline() {
        let timeline =
            |seed, mix: &FaultMix| Network::new(seed, mix.clone(), RUN).unwrap().timeline();
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
        let mut plan = Network::new(5, FaultMix::hostile(), RUN).unwrap();
        let before = plan.timeline();
        for i in 0..100 {
            let _ = plan.decide(Instant::from_secs(i), Endpoint::Events);
        }
        assert_eq!(plan.timeline(), before);
    }

    #[test]
    fn calm_has_no_faults() {
        for seed in 0..20 {
            let plan = Network::new(seed, FaultMix::calm(), Duration::from_secs(36_000)).unwrap();
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
            let mut plan = Network::new(3, quiet, RUN).unwrap();
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
        let mut plan = Network::new(1, mix, RUN).unwrap();
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
            let mut plan = Network::new(seed, mix.clone(), Duration::from_secs(3600)).unwrap();
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
            let plan = Network::new(seed, FaultMix::hostile(), RUN).unwrap();
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
            Network::new(1, FaultMix::flaky(), RUN)
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
            assert_eq!(Network::new(0, mix, RUN).unwrap_err(), error);
        }
        for mix in [FaultMix::calm(), FaultMix::flaky(), FaultMix::hostile()] {
            assert_eq!(mix.validate(), Ok(()));
        }
    }

    fn one_event(uuid: &str) -> Vec<u8> {
        format!(r#"{{"worker_epoch":0,"events":[{{"payload":{{"uuid":"{uuid}"}}}}]}}"#).into_bytes()
    }

    fn apply(fault: Fault, now: Instant) -> (Delivery, ServerModel) {
        let plan = Network::new(0, FaultMix::calm(), RUN).unwrap();
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
        let plan = Network::new(2, mix, RUN).unwrap();
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
        let mut plan = Network::new(4, mix, RUN).unwrap();
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

    #[test]
    fn thread_requests_draw_from_the_same_vocabulary_until_quiet() {
        let quiet = Instant::from_secs(100);
        let failing = FaultMix {
            server_error: 1.0,
            ..FaultMix::calm()
        };
        let mut plan = Network::new(1, failing, RUN).unwrap().quiet_from(quiet);
        let mut server = ServerModel::default();
        let pull = |plan: &mut Network, server: &mut ServerModel, at| {
            plan.thread_exchange(at, server, thread::Endpoint::Pull, "since=0&limit=10", b"")
        };
        let status = |x: &Exchange| match &x.delivery {
            Delivery::Respond { response, .. } => response.status,
            other => panic!("{other:?}"),
        };
        let x = pull(&mut plan, &mut server, Instant::from_secs(1));
        assert!(matches!(x.fault, Fault::ServerError { .. }) && status(&x) >= 500);
        let x = pull(&mut plan, &mut server, quiet);
        assert_eq!((x.fault, status(&x)), (Fault::None, 200));

        // Garbage only where a thread client reads the body: a pull, not a ping.
        let garbled = FaultMix {
            garbage: 1.0,
            ..FaultMix::calm()
        };
        let mut plan = Network::new(1, garbled, RUN).unwrap();
        let x = pull(&mut plan, &mut server, Instant::from_secs(1));
        let Delivery::Respond { response, .. } = x.delivery else {
            panic!("{:?}", x.delivery);
        };
        assert!(matches!(x.fault, Fault::Garbage { .. }));
        assert!(serde_json::from_slice::<serde_json::Value>(&response.body).is_err());
        let ping =
            plan.thread_exchange(Instant::ZERO, &mut server, thread::Endpoint::Ping, "", b"");
        assert_eq!(ping.fault, Fault::None);
    }
}
