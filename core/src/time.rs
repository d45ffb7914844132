//! The core's own monotonic time.
//!
//! The core never reads a clock. A driver picks an origin (any `std::time::Instant`, or zero in a
//! simulation) and hands the core the time elapsed since it as an [`Instant`]. Arithmetic saturates,
//! so no subtraction can panic however the inputs are ordered.

use core::fmt;
use core::ops::{Add, AddAssign, Sub};
use core::time::Duration;

/// A point in time: microseconds since an origin the driver chose.
///
/// Microsecond resolution covers 584 000 years in a `u64`, far beyond any session.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// The driver's origin.
    pub const ZERO: Instant = Instant(0);
    /// The latest representable instant; adding to it saturates here.
    pub const MAX: Instant = Instant(u64::MAX);

    /// An instant `micros` microseconds after the origin.
    pub const fn from_micros(micros: u64) -> Self {
        Instant(micros)
    }

    /// An instant `millis` milliseconds after the origin.
    pub const fn from_millis(millis: u64) -> Self {
        Instant(millis.saturating_mul(1_000))
    }

    /// An instant `secs` seconds after the origin.
    pub const fn from_secs(secs: u64) -> Self {
        Instant(secs.saturating_mul(1_000_000))
    }

    /// The instant a given duration after the origin.
    pub fn from_duration(since_origin: Duration) -> Self {
        Instant(duration_micros(since_origin))
    }

    /// Microseconds since the origin.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Time since the origin.
    pub const fn since_origin(self) -> Duration {
        Duration::from_micros(self.0)
    }

    /// Time from `earlier` to `self`, or zero if `earlier` is later.
    pub const fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }

    /// `self + d`, saturating at [`Instant::MAX`].
    pub fn saturating_add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(duration_micros(d)))
    }

    /// `self - d`, saturating at [`Instant::ZERO`].
    pub fn saturating_sub(self, d: Duration) -> Instant {
        Instant(self.0.saturating_sub(duration_micros(d)))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        self.saturating_add(d)
    }
}

/// The time from `earlier` to `self`, zero when `earlier` is later (saturating, like
/// [`saturating_duration_since`](Instant::saturating_duration_since)).
impl Sub for Instant {
    type Output = Duration;
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = self.saturating_add(d);
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Seconds with millisecond precision, e.g. `12.345s`: the form traces use.
impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0 / 1_000;
        write!(f, "{}.{:03}s", millis / 1_000, millis % 1_000)
    }
}

/// A duration in whole microseconds, saturating at `u64::MAX`.
pub(crate) fn duration_micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Keeps time from running backwards inside a machine (docs/ARCHITECTURE.md, convention 1).
///
/// Every machine passes each `now` it is given through [`Clock::observe`]; an earlier `now` than
/// one already seen is clamped to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Clock {
    last: Instant,
}

impl Clock {
    /// A clock that has seen `now`.
    pub const fn new(now: Instant) -> Self {
        Clock { last: now }
    }

    /// Records `now` and returns it, or the latest instant seen if `now` is earlier.
    pub fn observe(&mut self, now: Instant) -> Instant {
        if now > self.last {
            self.last = now;
        }
        self.last
    }

    /// The latest instant seen.
    pub const fn now(&self) -> Instant {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_panicking() {
        assert_eq!(Instant::MAX + Duration::from_secs(1), Instant::MAX);
        assert_eq!(
            Instant::ZERO.saturating_sub(Duration::from_secs(1)),
            Instant::ZERO
        );
        assert_eq!(
            Instant::from_secs(1).saturating_duration_since(Instant::from_secs(5)),
            Duration::ZERO
        );
        assert_eq!(Instant::ZERO + Duration::MAX, Instant::MAX);
    }

    #[test]
    fn clock_never_runs_backwards() {
        let mut clock = Clock::new(Instant::from_secs(10));
        assert_eq!(clock.observe(Instant::from_secs(3)), Instant::from_secs(10));
        assert_eq!(
            clock.observe(Instant::from_secs(12)),
            Instant::from_secs(12)
        );
        assert_eq!(clock.now(), Instant::from_secs(12));
    }

    #[test]
    fn display_is_seconds_with_millis() {
        extern crate alloc;
        use alloc::format;
        assert_eq!(format!("{}", Instant::from_micros(12_345_678)), "12.345s");
        assert_eq!(format!("{}", Instant::ZERO), "0.000s");
    }
}
