//! The heartbeat machine (docs/ARCHITECTURE.md §Heartbeat).
//!
//! It beats every `interval` (± a jitter fraction) once started, never while a beat is in flight,
//! and never in a burst: beats missed during a stall are skipped. It also tracks liveness: when
//! no beat has succeeded within the server's TTL, it reports [`Output::Stale`] once, and
//! [`Output::Live`] when a beat succeeds again.
//!
//! ```text
//!   Stopped ──start──▶ Running ──stop──▶ Stopped
//!                        │  ▲
//!        timer: Beat ────┘  └──── handle_outcome
//! ```

use alloc::collections::VecDeque;
use core::fmt;
use core::time::Duration;

use crate::classify::Outcome;
use crate::drive::{Machine, Poll, Wake};
use crate::rng::Rng;
use crate::time::{Clock, Instant};

/// How often to beat and when to call the worker stale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Config {
    /// Time between beats; 5–30 s. Default 20 s.
    pub interval: Duration,
    /// Each gap is `interval · (1 ± jitter)`, drawn uniformly; `[0, 0.5]`. Default 0.
    pub jitter: f64,
    /// No successful beat for this long means stale. Default 60 s, the server's TTL.
    pub ttl: Duration,
}

impl Config {
    /// The shortest interval allowed.
    pub const MIN_INTERVAL: Duration = Duration::from_secs(5);
    /// The longest interval allowed.
    pub const MAX_INTERVAL: Duration = Duration::from_secs(30);
    /// The largest jitter fraction allowed.
    pub const MAX_JITTER: f64 = 0.5;

    /// Checks the bounds: interval in 5–30 s, jitter in `[0, 0.5]`, TTL at least one interval.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.interval < Self::MIN_INTERVAL || self.interval > Self::MAX_INTERVAL {
            return Err(ConfigError::Interval(self.interval));
        }
        if !(0.0..=Self::MAX_JITTER).contains(&self.jitter) {
            return Err(ConfigError::Jitter);
        }
        if self.ttl < self.interval {
            return Err(ConfigError::TtlShorterThanInterval);
        }
        Ok(())
    }

    /// The longest gap between two scheduled beats: `interval · (1 + jitter)`.
    ///
    /// Total for any configuration, even one [`validate`](Self::validate) refuses: the product
    /// saturates at [`Duration::MAX`], a negative jitter counts as zero and a NaN one as
    /// unbounded, so the answer is never below a true bound and never a panic.
    pub fn max_gap(&self) -> Duration {
        let jitter = if self.jitter.is_nan() {
            f64::INFINITY
        } else {
            self.jitter.max(0.0)
        };
        // `Duration::mul_f64` is this product, but panics where it does not fit.
        Duration::try_from_secs_f64((1.0 + jitter) * self.interval.as_secs_f64())
            .unwrap_or(Duration::MAX)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            interval: Duration::from_secs(20),
            jitter: 0.0,
            ttl: Duration::from_secs(60),
        }
    }
}

/// A heartbeat configuration the machine refuses.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The interval is outside 5–30 s.
    Interval(Duration),
    /// The jitter fraction is outside `[0, 0.5]` or not a number.
    Jitter,
    /// The TTL would call the worker stale between two healthy beats.
    TtlShorterThanInterval,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Interval(d) => {
                write!(f, "heartbeat interval {d:?} is outside 5 s to 30 s")
            }
            ConfigError::Jitter => f.write_str("heartbeat jitter must be a fraction in [0, 0.5]"),
            ConfigError::TtlShorterThanInterval => {
                f.write_str("heartbeat TTL is shorter than the interval")
            }
        }
    }
}

impl core::error::Error for ConfigError {}

/// Identifies one beat, so a late outcome for an old beat is recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BeatId(pub u64);

/// What the heartbeat asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send `POST /worker/heartbeat` now and report its outcome.
    Send(BeatId),
    /// No beat has succeeded for a whole TTL since `last_ok`.
    Stale {
        /// The last proof of life.
        last_ok: Instant,
    },
    /// A beat succeeded after the worker was stale.
    Live,
}

/// Why the heartbeat wants to wake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    /// The next beat is due.
    Beat,
    /// The TTL since the last success runs out.
    Stale,
}

/// Misuse of the heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// An outcome for a beat that is not in flight (already reported, or from before a stop).
    UnknownBeat(BeatId),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::UnknownBeat(id) => write!(f, "beat {} is not in flight", id.0),
        }
    }
}

impl core::error::Error for Error {}

/// The heartbeat machine. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Heartbeat {
    config: Config,
    rng: Rng,
    clock: Clock,
    next_beat: Option<Instant>,
    in_flight: Option<BeatId>,
    last_ok: Instant,
    stale: bool,
    next_id: u64,
    outputs: VecDeque<Output>,
}

impl Heartbeat {
    /// A stopped heartbeat. Fails if the configuration is out of bounds.
    pub fn new(config: Config, rng: Rng) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Heartbeat {
            config,
            rng,
            clock: Clock::default(),
            next_beat: None,
            in_flight: None,
            last_ok: Instant::ZERO,
            stale: false,
            next_id: 0,
            outputs: VecDeque::new(),
        })
    }

    /// Whether the heartbeat is running.
    pub fn is_running(&self) -> bool {
        self.next_beat.is_some()
    }

    /// The beat in flight, if any.
    pub fn in_flight(&self) -> Option<BeatId> {
        self.in_flight
    }

    /// Whether the worker is currently stale.
    pub fn is_stale(&self) -> bool {
        self.stale
    }

    /// The last proof of life: the start or the last successful beat.
    pub fn last_ok(&self) -> Instant {
        self.last_ok
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Tells the heartbeat the time is `now`: beats when due, reports staleness. Early or
    /// spurious calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clock.observe(now);
        let Some(due) = self.next_beat else {
            return;
        };
        if !self.stale && now >= self.last_ok + self.config.ttl {
            self.stale = true;
            self.outputs.push_back(Output::Stale {
                last_ok: self.last_ok,
            });
        }
        if now < due {
            return;
        }
        // One beat at most, however many slots a stall skipped; none while one is in flight.
        if self.in_flight.is_none() {
            let id = BeatId(self.next_id);
            self.next_id += 1;
            self.in_flight = Some(id);
            self.outputs.push_back(Output::Send(id));
        }
        let gap = self.gap();
        self.next_beat = Some(now + gap);
    }

    /// The next output, or once none is left, the next wake-up (`None`: stopped).
    #[must_use = "the heartbeat's outputs are its only way to get work done; drain them"]
    pub fn poll_output(&mut self) -> Poll<Output, Timer> {
        if let Some(out) = self.outputs.pop_front() {
            return Poll::Output(out);
        }
        let Some(beat) = self.next_beat else {
            return Poll::Timeout(None);
        };
        let stale_at = self.last_ok + self.config.ttl;
        let wake = if !self.stale && stale_at < beat {
            Wake::new(stale_at, Timer::Stale)
        } else {
            Wake::new(beat, Timer::Beat)
        };
        Poll::Timeout(Some(wake))
    }

    /// The next gap. The configuration was validated in [`new`](Self::new) (interval at most
    /// 30 s, jitter in `[0, 0.5]`), so the product cannot overflow or be NaN.
    fn gap(&mut self) -> Duration {
        let j = self.config.jitter;
        if j == 0.0 {
            return self.config.interval;
        }
        self.config
            .interval
            .mul_f64(1.0 - j + 2.0 * j * self.rng.unit())
    }

    /// The session is established: beat from now on. The start counts as proof of life.
    /// Starting a running heartbeat does nothing.
    pub fn start(&mut self, now: Instant) {
        let now = self.clock.observe(now);
        if self.is_running() {
            return;
        }
        self.last_ok = now;
        self.stale = false;
        let gap = self.gap();
        self.next_beat = Some(now + gap);
    }

    /// Stops beating; an in-flight beat's outcome is then refused as unknown.
    pub fn stop(&mut self, now: Instant) {
        self.clock.observe(now);
        self.next_beat = None;
        self.in_flight = None;
    }

    /// A beat finished, as the response table classified its reply. Only
    /// [`Outcome::Success`] is proof of life; failures are not retried (the next beat is).
    ///
    /// # Errors
    /// [`Error::UnknownBeat`] for a beat that is not in flight.
    pub fn handle_outcome(
        &mut self,
        now: Instant,
        id: BeatId,
        outcome: Outcome,
    ) -> Result<(), Error> {
        let now = self.clock.observe(now);
        if self.in_flight != Some(id) {
            return Err(Error::UnknownBeat(id));
        }
        self.in_flight = None;
        if outcome == Outcome::Success && self.is_running() {
            self.last_ok = now;
            if self.stale {
                self.stale = false;
                self.outputs.push_back(Output::Live);
            }
        }
        Ok(())
    }
}

impl Machine for Heartbeat {
    type Output = Output;
    type Timer = Timer;

    fn handle_timeout(&mut self, now: Instant) {
        Heartbeat::handle_timeout(self, now);
    }

    fn poll_output(&mut self) -> Poll<Output, Timer> {
        Heartbeat::poll_output(self)
    }
}
