//! How often each fault happens: [`FaultMix`].

use std::fmt;
use std::time::Duration;

#[cfg(doc)]
use super::Fault;

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
    /// Probability of [`Fault::Garbage`] where the client reads the body (other requests:
    /// none).
    pub garbage: f64,
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
            garbage: 0.0,
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

    /// A mostly fine network for a real client (the reference server's `light`): 5 % of
    /// requests faulted, no hangs, connections closed at once, `Retry-After: 1`.
    pub fn light() -> Self {
        FaultMix {
            latency: 0.005,
            lost_request: 0.005,
            lost_response: 0.005,
            server_error: 0.02,
            throttle_seconds: 0.005,
            throttle_date: 0.005,
            garbage: 0.005,
            ..FaultMix::none()
        }
    }

    /// A bad network for a real client (the reference server's `heavy`): 25 % of requests
    /// faulted, hangs at 0.5 % because each costs the client a full deadline.
    pub fn heavy() -> Self {
        FaultMix {
            latency: 0.045,
            lost_request: 0.03,
            lost_response: 0.03,
            server_error: 0.08,
            throttle_seconds: 0.02,
            throttle_date: 0.02,
            hang: 0.005,
            garbage: 0.02,
            ..FaultMix::none()
        }
    }

    /// No faults, with the sizes a real server uses: latency up to 200 ms, transport errors at
    /// once, `Retry-After: 1`.
    pub fn none() -> Self {
        FaultMix {
            base_rtt: Duration::ZERO,
            latency_max: Duration::from_millis(200),
            ..FaultMix::calm()
        }
    }

    /// The share of requests that draw a fault: the sum of the per-request probabilities.
    pub fn total(&self) -> f64 {
        self.per_request().iter().map(|(_, p)| p).sum()
    }

    /// The per-request probabilities in decision order, with their names (as the fields are
    /// named). One uniform draw picks among them in this order.
    pub fn per_request(&self) -> [(&'static str, f64); 9] {
        [
            ("latency", self.latency),
            ("lost_request", self.lost_request),
            ("lost_response", self.lost_response),
            ("server_error", self.server_error),
            ("throttle_seconds", self.throttle_seconds),
            ("throttle_date", self.throttle_date),
            ("too_large", self.too_large),
            ("hang", self.hang),
            ("garbage", self.garbage),
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
        if self.total() > 1.0 + 1e-9 {
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
