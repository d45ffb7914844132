//! A mix and a seed: [`FaultPlan`], the per-request [`FaultDecider`] and the run's [`Schedule`].

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use tether_core::rng::Rng;
use tether_core::session::Endpoint;
use tether_core::thread;
use tether_core::time::Instant;

use super::{Fault, FaultMix, RetryAfter, Span, TimeEvent};

/// A reproducible fault plan: a [`FaultMix`], a seed, and how long a hang lasts on a real
/// connection.
///
/// Presets: [`FaultPlan::none`], [`FaultPlan::light`] ([`FaultMix::light`]) and
/// [`FaultPlan::heavy`] ([`FaultMix::heavy`]). It parses from text (the reference server's and
/// the CLI's `--faults`): a preset name, optionally followed by comma-separated overrides, e.g.
/// `heavy`, `light,seed=7` or `none,5xx=0.1,429=0.05,hang=0.01,hang-ms=500`.
/// Rates, by [`FaultKind::name`](super::FaultKind::name): `latency`, `lost-request`,
/// `lost-response`, `5xx`, `429` (half with delta-seconds, half with a date), `413`, `hang`,
/// `garbage`; older names `delay`, `reset-before` and `reset-after` are the same as `latency`,
/// `lost-request` and `lost-response`. Sizes: `seed`, `latency-max-ms` (or `delay-max-ms`),
/// `hang-ms`, `retry-after-s` (the largest `Retry-After`).
#[derive(Clone, Debug, PartialEq)]
pub struct FaultPlan {
    /// How often each fault happens, and their sizes.
    pub mix: FaultMix,
    /// The seed of every draw.
    pub seed: u64,
    /// How long a real server holds a [`Fault::Hang`] (or a silent [`Fault::LostRequest`])
    /// before it closes the connection. Default 12 s, past a client's 10 s deadline. (In the
    /// simulator nothing ever arrives.)
    pub hang_for: Duration,
}

impl FaultPlan {
    /// A plan with `mix`, seed 0 and hangs of 12 s.
    pub fn new(mix: FaultMix) -> Self {
        FaultPlan {
            mix,
            seed: 0,
            hang_for: Duration::from_secs(12),
        }
    }

    /// Never faults ([`FaultMix::none`]).
    pub fn none() -> Self {
        FaultPlan::new(FaultMix::none())
    }

    /// [`FaultMix::light`].
    pub fn light() -> Self {
        FaultPlan::new(FaultMix::light())
    }

    /// [`FaultMix::heavy`].
    pub fn heavy() -> Self {
        FaultPlan::new(FaultMix::heavy())
    }

    /// This plan with another seed.
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// This plan with another hang length.
    #[must_use]
    pub fn with_hang_for(mut self, hang_for: Duration) -> Self {
        self.hang_for = hang_for;
        self
    }

    /// This plan with another largest extra latency.
    #[must_use]
    pub fn with_latency_max(mut self, latency_max: Duration) -> Self {
        self.mix.latency_max = latency_max;
        self
    }

    /// Whether no request can ever draw a fault.
    pub fn is_none(&self) -> bool {
        self.mix.total() <= 0.0
    }

    /// A fresh decider at the start of this plan's per-request stream.
    pub fn decider(&self) -> FaultDecider {
        let mut root = Rng::new(self.seed);
        FaultDecider {
            mix: self.mix.clone(),
            rng: root.fork(),
        }
    }

    /// The partitions, restarts and takeover of a run of `run_length`, drawn from the seed's own
    /// stream: they do not depend on how many requests are decided.
    pub fn schedule(&self, run_length: Duration) -> Schedule {
        let mix = &self.mix;
        let mut root = Rng::new(self.seed);
        let _decisions = root.fork();
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
        Schedule {
            partitions,
            restarts,
            takeover,
        }
    }
}

impl Default for FaultPlan {
    fn default() -> Self {
        FaultPlan::none()
    }
}

/// Picks the fault of each request, in the order requests are made, from a seeded stream.
#[derive(Clone, Debug)]
pub struct FaultDecider {
    mix: FaultMix,
    rng: Rng,
}

impl FaultDecider {
    /// The fault of the next request, which is for `endpoint`. One uniform draw picks a fault
    /// by the mix's probabilities ([`FaultMix::per_request`]); any parameter the fault needs is
    /// drawn after it. A 413 is only decided for event batches and a garbage body only where
    /// the client reads the body; drawn elsewhere, they are no fault.
    pub fn decide(&mut self, endpoint: Endpoint) -> Fault {
        self.decide_where(
            matches!(endpoint, Endpoint::Events | Endpoint::InternalEvents),
            matches!(endpoint, Endpoint::Register | Endpoint::GetWorker),
        )
    }

    /// The fault of the next request, which is for a thread route: as
    /// [`decide`](Self::decide), with a 413 only for a push (`POST /threads/sync`) and a
    /// garbage body only where the client reads one (a pull, a push's results).
    pub fn decide_thread(&mut self, endpoint: thread::Endpoint) -> Fault {
        self.decide_where(
            endpoint == thread::Endpoint::Sync,
            matches!(endpoint, thread::Endpoint::Pull | thread::Endpoint::Sync),
        )
    }

    /// One draw, where a 413 (`too_large`) and a garbage body (`garbage`) may be decided.
    fn decide_where(&mut self, too_large: bool, garbage: bool) -> Fault {
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
            Some(6) if too_large => Fault::TooLarge,
            Some(7) => Fault::Hang,
            Some(8) if garbage => Fault::Garbage {
                truncated_json: rng.below(2) == 0,
            },
            _ => Fault::None,
        }
    }
}

/// A run's planned events: partitions, server restarts and at most one takeover.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// The partitions, in order and disjoint.
    pub partitions: Vec<Span>,
    /// The server restarts, in order.
    pub restarts: Vec<Instant>,
    /// When a newer worker takes over, if one does.
    pub takeover: Option<Instant>,
}

impl Schedule {
    /// Whether the network is partitioned at `now`.
    pub fn partitioned(&self, now: Instant) -> bool {
        self.partitions.iter().any(|p| p.contains(now))
    }

    /// Every planned event in time order.
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

/// A fault-plan text that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseFaultPlanError(String);

impl fmt::Display for ParseFaultPlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid fault plan: {}", self.0)
    }
}

impl std::error::Error for ParseFaultPlanError {}

impl FromStr for FaultPlan {
    type Err = ParseFaultPlanError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |m: String| ParseFaultPlanError(m);
        let mut parts = s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .peekable();
        let mut plan = match parts.peek().copied() {
            Some("none" | "off") => FaultPlan::none(),
            Some("light") => FaultPlan::light(),
            Some("heavy") => FaultPlan::heavy(),
            Some(p) if p.contains('=') => FaultPlan::none(),
            Some(p) => return Err(err(format!("unknown preset `{p}` (none, light, heavy)"))),
            None => return Err(err("empty".into())),
        };
        if parts.peek().is_some_and(|p| !p.contains('=')) {
            parts.next();
        }
        for part in parts {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| err(format!("`{part}` is not key=value")))?;
            let rate = || -> Result<f64, ParseFaultPlanError> {
                let rate: f64 = value
                    .parse()
                    .map_err(|_| err(format!("`{value}` is not a rate")))?;
                if !(0.0..=1.0).contains(&rate) {
                    return Err(err(format!("rate of {key} must be in [0, 1]")));
                }
                Ok(rate)
            };
            let int = || -> Result<u64, ParseFaultPlanError> {
                value
                    .parse()
                    .map_err(|_| err(format!("`{value}` is not an integer")))
            };
            let mix = &mut plan.mix;
            match key {
                "latency" | "delay" => mix.latency = rate()?,
                "lost-request" | "reset-before" => mix.lost_request = rate()?,
                "lost-response" | "reset-after" => mix.lost_response = rate()?,
                "5xx" => mix.server_error = rate()?,
                "429" => {
                    let r = rate()?;
                    mix.throttle_seconds = r / 2.0;
                    mix.throttle_date = r / 2.0;
                }
                "413" => mix.too_large = rate()?,
                "hang" => mix.hang = rate()?,
                "garbage" => mix.garbage = rate()?,
                "seed" => plan.seed = int()?,
                "latency-max-ms" | "delay-max-ms" => {
                    mix.latency_max = Duration::from_millis(int()?);
                }
                "hang-ms" => plan.hang_for = Duration::from_millis(int()?),
                "retry-after-s" => mix.retry_after_max_secs = int()?.max(1),
                _ => return Err(err(format!("unknown key `{key}`"))),
            }
        }
        plan.mix.validate().map_err(|e| err(e.to_string()))?;
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::FaultKind;

    fn sequence(plan: &FaultPlan, n: usize) -> Vec<Fault> {
        let mut d = plan.decider();
        (0..n)
            .map(|i| d.decide(Endpoint::ALL[i % Endpoint::ALL.len()]))
            .collect()
    }

    #[test]
    fn same_seed_same_faults_other_seed_other_faults() {
        let plan = FaultPlan::heavy().with_seed(42);
        let a = sequence(&plan, 2000);
        assert_eq!(a, sequence(&plan, 2000));
        assert_ne!(a, sequence(&plan.with_seed(43), 2000));
        assert!(a.iter().any(|f| *f != Fault::None));
    }

    #[test]
    fn none_never_faults() {
        for seed in 0..20 {
            let plan = FaultPlan::none().with_seed(seed);
            assert!(plan.is_none());
            assert!(sequence(&plan, 1000).iter().all(|f| *f == Fault::None));
            assert_eq!(plan.schedule(Duration::from_secs(36_000)).timeline(), []);
        }
    }

    #[test]
    fn heavy_faults_about_a_quarter_and_rarely_hangs() {
        assert!((FaultMix::heavy().total() - 0.25).abs() < 1e-9);
        assert!((FaultMix::light().total() - 0.05).abs() < 1e-9);
        // Register is a route where garbage counts, so use it to see every kind but 413.
        let mut d = FaultPlan::heavy().with_seed(1).decider();
        let n = 100_000;
        let faults: Vec<Fault> = (0..n).map(|_| d.decide(Endpoint::Register)).collect();
        let share =
            |k: FaultKind| faults.iter().filter(|f| f.kind() == Some(k)).count() as f64 / n as f64;
        let total = faults.iter().filter(|f| **f != Fault::None).count() as f64 / n as f64;
        assert!((total - 0.25).abs() < 0.01, "total {total}");
        assert!((share(FaultKind::Hang) - 0.005).abs() < 0.002);
        assert!((share(FaultKind::ServerError) - 0.08).abs() < 0.005);
        for f in &faults {
            match f {
                Fault::ServerError { status, applied } => {
                    assert!([500, 502, 503, 504].contains(status) && !applied);
                }
                Fault::Latency(d) => assert!(*d <= Duration::from_millis(200)),
                Fault::LostRequest { error_after } => {
                    assert_eq!(*error_after, Some(Duration::ZERO))
                }
                _ => {}
            }
        }
        for form in [RetryAfter::Seconds(1), RetryAfter::Date { delay_secs: 1 }] {
            assert!(faults.contains(&Fault::Throttled(form)));
        }
    }

    #[test]
    fn garbage_only_where_the_client_reads_the_body() {
        let plan = FaultPlan::new(FaultMix {
            garbage: 1.0,
            ..FaultMix::none()
        });
        let mut d = plan.decider();
        assert!(matches!(
            d.decide(Endpoint::GetWorker),
            Fault::Garbage { .. }
        ));
        assert!(matches!(
            d.decide(Endpoint::Register),
            Fault::Garbage { .. }
        ));
        assert_eq!(d.decide(Endpoint::Events), Fault::None);
        assert_eq!(d.decide(Endpoint::PutWorker), Fault::None);
    }

    #[test]
    fn parses_presets_and_overrides() {
        assert_eq!("heavy".parse::<FaultPlan>().unwrap(), FaultPlan::heavy());
        assert_eq!(" light ".parse::<FaultPlan>().unwrap(), FaultPlan::light());
        assert_eq!("none".parse::<FaultPlan>().unwrap(), FaultPlan::none());
        let p: FaultPlan = "heavy,seed=9,hang=0,hang-ms=250".parse().unwrap();
        assert_eq!(p.seed, 9);
        assert_eq!(p.mix.hang, 0.0);
        assert_eq!(p.mix.server_error, FaultMix::heavy().server_error);
        assert_eq!(p.hang_for, Duration::from_millis(250));
        let p: FaultPlan = "5xx=0.5,429=0.5".parse().unwrap();
        assert_eq!(p.mix.total(), 1.0);
        let old: FaultPlan = "none,reset-before=0.1,reset-after=0.2,delay=0.3,delay-max-ms=5"
            .parse()
            .unwrap();
        let new: FaultPlan = "none,lost-request=0.1,lost-response=0.2,latency=0.3,latency-max-ms=5"
            .parse()
            .unwrap();
        assert_eq!(old, new);
        for kind in FaultKind::ALL {
            let text = format!("none,{kind}=0.5");
            assert!(
                text.parse::<FaultPlan>().unwrap().mix.total() > 0.4,
                "{text}"
            );
        }
        for bad in [
            "",
            "medium",
            "heavy,5xx",
            "5xx=2",
            "5xx=0.6,429=0.6",
            "heavy,x=1",
            "seed=-1",
        ] {
            assert!(bad.parse::<FaultPlan>().is_err(), "{bad}");
        }
    }
}
