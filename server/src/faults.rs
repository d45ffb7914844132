//! The seeded fault plan: which requests fail, and how.
//!
//! One fault at most per request, decided when the request arrives from a PRNG seeded by the
//! plan, so the same seed and the same order of requests give the same faults. Each decision
//! draws exactly two random numbers whatever it decides, so one request's outcome never shifts
//! the stream of the next.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use tether_core::Rng;

use tether_core::session::Endpoint;

/// The probability of each fault kind per request; their sum is the faulted share (≤ 1).
///
/// The kinds are exclusive: a request gets at most one fault.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaultRates {
    /// A 500, 502, 503 or 504 before the request is applied.
    pub server_error: f64,
    /// A 429 with `Retry-After` (delta-seconds or HTTP-date, half each) before applying.
    pub throttle: f64,
    /// The connection is closed without a response before the request is applied.
    pub reset_before: f64,
    /// The request is applied, then the connection is closed without a response.
    pub reset_after: f64,
    /// No response until [`FaultPlan::hang_for`] has passed, then the connection is closed.
    pub hang: f64,
    /// A `200` whose body is not JSON (register and `GET /worker` only; the request is applied).
    /// Drawn on other routes, it is no fault.
    pub garbage: f64,
    /// The response is delayed by up to [`FaultPlan::delay_max`], then served normally.
    pub delay: f64,
}

impl FaultRates {
    /// No faults at all.
    pub const NONE: FaultRates = FaultRates {
        server_error: 0.0,
        throttle: 0.0,
        reset_before: 0.0,
        reset_after: 0.0,
        hang: 0.0,
        garbage: 0.0,
        delay: 0.0,
    };

    /// 5 % of requests faulted, no hangs: a network that is mostly fine.
    pub const LIGHT: FaultRates = FaultRates {
        server_error: 0.02,
        throttle: 0.01,
        reset_before: 0.005,
        reset_after: 0.005,
        hang: 0.0,
        garbage: 0.005,
        delay: 0.005,
    };

    /// 25 % of requests faulted, hangs at 0.5 % because each costs the client a full deadline.
    pub const HEAVY: FaultRates = FaultRates {
        server_error: 0.08,
        throttle: 0.04,
        reset_before: 0.03,
        reset_after: 0.03,
        hang: 0.005,
        garbage: 0.02,
        delay: 0.045,
    };

    /// The share of requests that draw a fault.
    pub fn total(&self) -> f64 {
        self.ordered().iter().map(|(_, r)| r).sum()
    }

    /// The rates in the order the decider tests them.
    fn ordered(&self) -> [(FaultKind, f64); 7] {
        [
            (FaultKind::ServerError, self.server_error),
            (FaultKind::Throttle, self.throttle),
            (FaultKind::ResetBeforeApply, self.reset_before),
            (FaultKind::ResetAfterApply, self.reset_after),
            (FaultKind::Hang, self.hang),
            (FaultKind::Garbage, self.garbage),
            (FaultKind::Delay, self.delay),
        ]
    }

    fn validate(&self) -> Result<(), ParseFaultPlanError> {
        for (kind, rate) in self.ordered() {
            if !(0.0..=1.0).contains(&rate) {
                return Err(ParseFaultPlanError(format!(
                    "rate of {kind} must be in [0, 1]"
                )));
            }
        }
        if self.total() > 1.0 + 1e-9 {
            return Err(ParseFaultPlanError(
                "the rates add up to more than 1".into(),
            ));
        }
        Ok(())
    }
}

/// A kind of fault, for counting and logging.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum FaultKind {
    /// See [`Fault::ServerError`].
    ServerError,
    /// See [`Fault::Throttle`].
    Throttle,
    /// See [`Fault::ResetBeforeApply`].
    ResetBeforeApply,
    /// See [`Fault::ResetAfterApply`].
    ResetAfterApply,
    /// See [`Fault::Hang`].
    Hang,
    /// See [`Fault::Garbage`].
    Garbage,
    /// See [`Fault::Delay`].
    Delay,
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FaultKind::ServerError => "5xx",
            FaultKind::Throttle => "429",
            FaultKind::ResetBeforeApply => "reset-before",
            FaultKind::ResetAfterApply => "reset-after",
            FaultKind::Hang => "hang",
            FaultKind::Garbage => "garbage",
            FaultKind::Delay => "delay",
        })
    }
}

/// How `Retry-After` is written on a 429.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryAfter {
    /// Delta-seconds, e.g. `Retry-After: 1`.
    Seconds(u64),
    /// An HTTP-date this many seconds after the response's own `Date` header.
    HttpDate(u64),
}

/// What happens to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Served normally.
    None,
    /// Served normally after this delay.
    Delay(Duration),
    /// Answered with this 5xx status, not applied.
    ServerError(u16),
    /// Answered `429` with this `Retry-After`, not applied.
    Throttle(RetryAfter),
    /// Not answered for this long, then the connection is closed; not applied.
    Hang(Duration),
    /// The connection is closed without a response; not applied.
    ResetBeforeApply,
    /// Applied, then the connection is closed without a response.
    ResetAfterApply,
    /// Applied, then answered `200` with a body that is not JSON (truncated JSON or HTML).
    Garbage {
        /// A truncated JSON object rather than an HTML page.
        truncated_json: bool,
    },
}

impl Fault {
    /// The kind of this fault; `None` for [`Fault::None`].
    pub fn kind(&self) -> Option<FaultKind> {
        Some(match self {
            Fault::None => return None,
            Fault::Delay(_) => FaultKind::Delay,
            Fault::ServerError(_) => FaultKind::ServerError,
            Fault::Throttle(_) => FaultKind::Throttle,
            Fault::Hang(_) => FaultKind::Hang,
            Fault::ResetBeforeApply => FaultKind::ResetBeforeApply,
            Fault::ResetAfterApply => FaultKind::ResetAfterApply,
            Fault::Garbage { .. } => FaultKind::Garbage,
        })
    }
}

/// A reproducible fault plan: rates, a seed and the sizes of delays and hangs.
///
/// Presets: [`FaultPlan::none`], [`FaultPlan::light`] ([`FaultRates::LIGHT`]) and
/// [`FaultPlan::heavy`] ([`FaultRates::HEAVY`]). For the CLI, it parses from a string:
/// a preset name, optionally followed by comma-separated overrides, e.g.
/// `heavy`, `light,seed=7` or `none,5xx=0.1,429=0.05,hang=0.01,hang-ms=500`.
/// Keys: `5xx`, `429`, `reset-before`, `reset-after`, `hang`, `garbage`, `delay` (rates),
/// `seed`, `delay-max-ms`, `hang-ms`, `retry-after-s`.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultPlan {
    /// The probability of each fault.
    pub rates: FaultRates,
    /// The seed of the decider's PRNG.
    pub seed: u64,
    /// Delays are uniform in `[0, delay_max]`. Default 200 ms.
    pub delay_max: Duration,
    /// How long a hang lasts before the connection is closed. Default 12 s, past the client's
    /// 10 s deadline; tests set it short. A hang also ends when the server shuts down.
    pub hang_for: Duration,
    /// The `Retry-After` of a 429, in whole seconds. Default 1.
    pub retry_after_secs: u64,
}

impl FaultPlan {
    /// A plan with `rates` and the default seed (0), delay, hang and retry-after sizes.
    pub fn new(rates: FaultRates) -> Self {
        FaultPlan {
            rates,
            seed: 0,
            delay_max: Duration::from_millis(200),
            hang_for: Duration::from_secs(12),
            retry_after_secs: 1,
        }
    }

    /// Never faults.
    pub fn none() -> Self {
        FaultPlan::new(FaultRates::NONE)
    }

    /// [`FaultRates::LIGHT`].
    pub fn light() -> Self {
        FaultPlan::new(FaultRates::LIGHT)
    }

    /// [`FaultRates::HEAVY`].
    pub fn heavy() -> Self {
        FaultPlan::new(FaultRates::HEAVY)
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

    /// This plan with another maximal delay.
    #[must_use]
    pub fn with_delay_max(mut self, delay_max: Duration) -> Self {
        self.delay_max = delay_max;
        self
    }

    /// Whether this plan can never fault.
    pub fn is_none(&self) -> bool {
        self.rates.total() <= 0.0
    }

    /// A fresh decider at the start of this plan's random stream.
    pub fn decider(&self) -> FaultDecider {
        FaultDecider {
            plan: self.clone(),
            rng: Rng::new(self.seed),
        }
    }
}

impl Default for FaultPlan {
    fn default() -> Self {
        FaultPlan::none()
    }
}

/// A fault-plan string that could not be parsed.
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
                value
                    .parse()
                    .map_err(|_| err(format!("`{value}` is not a rate")))
            };
            let int = || -> Result<u64, ParseFaultPlanError> {
                value
                    .parse()
                    .map_err(|_| err(format!("`{value}` is not an integer")))
            };
            let r = &mut plan.rates;
            match key {
                "5xx" => r.server_error = rate()?,
                "429" => r.throttle = rate()?,
                "reset-before" => r.reset_before = rate()?,
                "reset-after" => r.reset_after = rate()?,
                "hang" => r.hang = rate()?,
                "garbage" => r.garbage = rate()?,
                "delay" => r.delay = rate()?,
                "seed" => plan.seed = int()?,
                "delay-max-ms" => plan.delay_max = Duration::from_millis(int()?),
                "hang-ms" => plan.hang_for = Duration::from_millis(int()?),
                "retry-after-s" => plan.retry_after_secs = int()?,
                _ => return Err(err(format!("unknown key `{key}`"))),
            }
        }
        plan.rates.validate()?;
        Ok(plan)
    }
}

/// Decides the fault of each request in arrival order.
#[derive(Clone, Debug)]
pub struct FaultDecider {
    plan: FaultPlan,
    rng: Rng,
}

impl FaultDecider {
    /// The fault of the next request, which is for `route`.
    pub fn decide(&mut self, route: Endpoint) -> Fault {
        let roll = self.rng.unit();
        let param = self.rng.next_u64();
        let mut edge = 0.0;
        let mut drawn = None;
        for (kind, rate) in self.plan.rates.ordered() {
            edge += rate;
            if roll < edge {
                drawn = Some(kind);
                break;
            }
        }
        let plan = &self.plan;
        match drawn {
            None => Fault::None,
            Some(FaultKind::ServerError) => {
                Fault::ServerError([500, 502, 503, 504][(param % 4) as usize])
            }
            Some(FaultKind::Throttle) if param & 1 == 0 => {
                Fault::Throttle(RetryAfter::Seconds(plan.retry_after_secs))
            }
            Some(FaultKind::Throttle) => {
                Fault::Throttle(RetryAfter::HttpDate(plan.retry_after_secs))
            }
            Some(FaultKind::ResetBeforeApply) => Fault::ResetBeforeApply,
            Some(FaultKind::ResetAfterApply) => Fault::ResetAfterApply,
            Some(FaultKind::Hang) => Fault::Hang(plan.hang_for),
            Some(FaultKind::Garbage)
                if matches!(route, Endpoint::Register | Endpoint::GetWorker) =>
            {
                Fault::Garbage {
                    truncated_json: param & 1 == 0,
                }
            }
            Some(FaultKind::Garbage) => Fault::None,
            Some(FaultKind::Delay) => {
                let micros = u64::try_from(plan.delay_max.as_micros()).unwrap_or(u64::MAX);
                Fault::Delay(Duration::from_micros(param % micros.saturating_add(1)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(a, sequence(&plan.clone(), 2000));
        assert_ne!(a, sequence(&plan.with_seed(43), 2000));
        assert!(a.iter().any(|f| *f != Fault::None));
    }

    #[test]
    fn none_never_faults() {
        for seed in 0..20 {
            let plan = FaultPlan::none().with_seed(seed);
            assert!(plan.is_none());
            assert!(sequence(&plan, 1000).iter().all(|f| *f == Fault::None));
        }
    }

    #[test]
    fn heavy_faults_about_a_quarter_and_rarely_hangs() {
        assert!((FaultRates::HEAVY.total() - 0.25).abs() < 1e-9);
        assert!((FaultRates::LIGHT.total() - 0.05).abs() < 1e-9);
        // Register and GET are the only routes where garbage counts, so use them to see it all.
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
                Fault::ServerError(code) => assert!([500, 502, 503, 504].contains(code)),
                Fault::Delay(d) => assert!(*d <= Duration::from_millis(200)),
                Fault::Hang(d) => assert_eq!(*d, Duration::from_secs(12)),
                _ => {}
            }
        }
        for form in [RetryAfter::Seconds(1), RetryAfter::HttpDate(1)] {
            assert!(faults.contains(&Fault::Throttle(form)));
        }
    }

    #[test]
    fn garbage_only_where_the_client_reads_the_body() {
        let plan = FaultPlan::new(FaultRates {
            garbage: 1.0,
            ..FaultRates::NONE
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
        assert_eq!(p.rates.hang, 0.0);
        assert_eq!(p.rates.server_error, FaultRates::HEAVY.server_error);
        assert_eq!(p.hang_for, Duration::from_millis(250));
        let p: FaultPlan = "5xx=0.5,429=0.5".parse().unwrap();
        assert_eq!(p.rates.total(), 1.0);
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
