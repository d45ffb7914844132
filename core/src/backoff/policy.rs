//! The backoff curve: `min(base · 2^attempt, cap)`, jitter, a floor after N attempts, and hints.

use core::time::Duration;

use crate::rng::Rng;
use crate::time::duration_micros;

/// How a delay is randomised, so that many clients do not retry in lock-step.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Jitter {
    /// The curve as it is.
    None,
    /// Adds a uniform `[0, range)`. With `above_cap` the sum may exceed the cap by up to
    /// `range` (the seeds' uploaders); without it the sum is clamped to the cap (the tunnel).
    Additive {
        /// The width of the added interval.
        range: Duration,
        /// Whether the jitter is added after the cap rather than under it.
        above_cap: bool,
    },
    /// Uniform `[0, delay]` ("full jitter").
    Full,
    /// `delay / 2` plus uniform `[0, delay / 2]` ("equal jitter").
    Equal,
    /// Uniform `[base, 3 · previous]`, capped ("decorrelated jitter"); stateful, so drive it
    /// through [`Backoff`](super::Backoff).
    Decorrelated,
    /// `delay · (1 ± fraction)`, capped. `fraction` is clamped to `[0, 1]`.
    Proportional {
        /// The relative half-width, e.g. `0.1` for ±10 %.
        fraction: f64,
    },
}

/// A fixed delay that replaces the curve from some attempt on (the tunnel's 5-minute floor).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Floor {
    /// The first attempt the floor applies to (0-based).
    pub from_attempt: u32,
    /// The least delay from then on.
    pub delay: Duration,
}

/// A backoff curve with its jitter, floor and server-hint clamp.
///
/// Attempts count from 0: attempt 0 is the delay before the first retry.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BackoffPolicy {
    /// The delay at attempt 0.
    pub base: Duration,
    /// The largest delay the curve reaches.
    pub cap: Duration,
    /// How the delay is randomised.
    pub jitter: Jitter,
    /// A floor from some attempt on, if any.
    pub floor: Option<Floor>,
    /// The largest server hint (`Retry-After`) honoured.
    pub max_hint: Duration,
}

impl BackoffPolicy {
    /// The reconnect defaults (seed 003): 1 s doubling to 30 s, no jitter.
    pub const fn reconnect() -> Self {
        BackoffPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(30),
            jitter: Jitter::None,
            floor: None,
            max_hint: Duration::from_secs(60),
        }
    }

    /// The uploaders' curve (seed 001): 500 ms doubling to 30 s, plus `[0, 500 ms)` on top.
    pub const fn uploader() -> Self {
        BackoffPolicy {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
            jitter: Jitter::Additive {
                range: Duration::from_millis(500),
                above_cap: true,
            },
            floor: None,
            max_hint: Duration::from_secs(60),
        }
    }

    /// The tunnel policy (seed 003): 1 s doubling to 60 s with `[0, 1 s)` under the cap, and a
    /// 300 s floor from attempt 10.
    pub const fn tunnel() -> Self {
        BackoffPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
            jitter: Jitter::Additive {
                range: Duration::from_secs(1),
                above_cap: false,
            },
            floor: Some(Floor {
                from_attempt: 10,
                delay: Duration::from_secs(300),
            }),
            max_hint: Duration::from_secs(300),
        }
    }

    /// The same policy with another jitter.
    pub const fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// `min(base · 2^attempt, cap)`, without jitter or floor. Never overflows.
    pub fn curve(&self, attempt: u32) -> Duration {
        let base = duration_micros(self.base);
        let cap = duration_micros(self.cap);
        let scaled = if attempt >= 64 {
            if base == 0 { 0 } else { u64::MAX }
        } else {
            base.saturating_mul(1u64 << attempt)
        };
        Duration::from_micros(scaled.min(cap))
    }

    /// The most [`delay`](Self::delay) can return at `attempt`, whatever the draw.
    pub fn max_delay(&self, attempt: u32) -> Duration {
        let jittered = match self.jitter {
            Jitter::Additive {
                range,
                above_cap: true,
            } => self.cap_of(attempt).saturating_add(range),
            _ => self.cap_of(attempt),
        };
        self.apply_floor(attempt, jittered)
    }

    /// The most a hinted delay ([`delay_for_hint`](Self::delay_for_hint)) can be.
    pub fn max_hinted_delay(&self) -> Duration {
        let hinted = self.max_hint.max(self.base);
        match self.jitter {
            Jitter::Additive { range, .. } => hinted.saturating_add(range),
            Jitter::Proportional { fraction } => scale(hinted, 1.0 + clamp_fraction(fraction)),
            _ => hinted,
        }
    }

    /// The delay before retry number `attempt`, drawing jitter from `rng`.
    ///
    /// `previous` is the delay returned last time (zero at first); only
    /// [`Jitter::Decorrelated`] reads it.
    pub fn delay(&self, attempt: u32, previous: Duration, rng: &mut Rng) -> Duration {
        let draw = match self.jitter {
            Jitter::None => 0.0,
            _ => rng.unit(),
        };
        self.delay_with_draw(attempt, previous, draw)
    }

    /// [`delay`](Self::delay) with the random draw given, a value in `[0, 1)`. Pure, for tests
    /// that pin a sequence and for callers with their own randomness.
    pub fn delay_with_draw(&self, attempt: u32, previous: Duration, draw: f64) -> Duration {
        let draw = clamp_draw(draw);
        let curve = self.curve(attempt);
        let jittered = match self.jitter {
            Jitter::None => curve,
            Jitter::Additive { range, above_cap } => {
                let sum = curve.saturating_add(scale(range, draw));
                if above_cap { sum } else { sum.min(self.cap) }
            }
            Jitter::Full => scale(curve, draw),
            Jitter::Equal => {
                let half = curve / 2;
                half.saturating_add(scale(curve - half, draw))
            }
            Jitter::Decorrelated => {
                let low = self.base.min(self.cap);
                let high = previous.saturating_mul(3).max(low).min(self.cap);
                low.saturating_add(scale(high - low, draw))
            }
            Jitter::Proportional { fraction } => {
                let f = clamp_fraction(fraction);
                scale(curve, 1.0 - f + 2.0 * f * draw).min(self.cap)
            }
        };
        self.apply_floor(attempt, jittered)
    }

    /// The delay a server asked for with `Retry-After`: `max(base, min(hint, max_hint))`, plus
    /// jitter. Only additive and proportional jitter apply; the others would undercut the hint.
    pub fn delay_for_hint(&self, hint: Duration, rng: &mut Rng) -> Duration {
        let draw = match self.jitter {
            Jitter::Additive { .. } | Jitter::Proportional { .. } => rng.unit(),
            _ => 0.0,
        };
        self.delay_for_hint_with_draw(hint, draw)
    }

    /// [`delay_for_hint`](Self::delay_for_hint) with the random draw given.
    pub fn delay_for_hint_with_draw(&self, hint: Duration, draw: f64) -> Duration {
        let draw = clamp_draw(draw);
        let hinted = hint.min(self.max_hint).max(self.base);
        match self.jitter {
            Jitter::Additive { range, .. } => hinted.saturating_add(scale(range, draw)),
            Jitter::Proportional { fraction } => {
                let f = clamp_fraction(fraction);
                scale(hinted, 1.0 - f + 2.0 * f * draw)
            }
            _ => hinted,
        }
    }

    fn cap_of(&self, attempt: u32) -> Duration {
        match self.jitter {
            Jitter::None | Jitter::Full | Jitter::Equal => self.curve(attempt),
            Jitter::Additive {
                above_cap: false, ..
            }
            | Jitter::Decorrelated
            | Jitter::Proportional { .. } => self.cap,
            Jitter::Additive {
                above_cap: true, ..
            } => self.curve(attempt),
        }
    }

    fn apply_floor(&self, attempt: u32, delay: Duration) -> Duration {
        match self.floor {
            Some(floor) if attempt >= floor.from_attempt => delay.max(floor.delay),
            _ => delay,
        }
    }
}

impl Default for BackoffPolicy {
    /// The reconnect defaults.
    fn default() -> Self {
        BackoffPolicy::reconnect()
    }
}

fn clamp_draw(draw: f64) -> f64 {
    if draw.is_nan() {
        0.0
    } else {
        draw.clamp(0.0, 1.0)
    }
}

fn clamp_fraction(fraction: f64) -> f64 {
    if fraction.is_nan() {
        0.0
    } else {
        fraction.clamp(0.0, 1.0)
    }
}

/// `d · factor` for `factor` in `[0, 2]`, at microsecond resolution, saturating.
fn scale(d: Duration, factor: f64) -> Duration {
    let micros = duration_micros(d) as f64 * factor;
    if micros >= u64::MAX as f64 {
        Duration::from_micros(u64::MAX)
    } else if micros <= 0.0 {
        Duration::ZERO
    } else {
        Duration::from_micros(micros as u64)
    }
}
