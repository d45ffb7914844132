//! The clock origin: a shim's instants to the core's [`Instant`] and back.
//!
//! The driver never reads a clock and names no clock's type: a runtime says which instant type
//! its clock has ([`Runtime::Instant`](crate::runtime::Runtime::Instant): std's, tokio's, or
//! the core's own for a virtual clock), reads it itself, and converts at its edge through the
//! session's [`Origin`].

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

use tether_core::Instant;

/// An instant of a runtime's clock, as the driver needs it: ordered, copied, and moved by
/// durations (`std::time::Instant`, `tokio::time::Instant` and [`Instant`] all are).
pub trait ClockInstant:
    Copy
    + Ord
    + Send
    + Sync
    + fmt::Debug
    + 'static
    + Sub<Output = Duration>
    + Add<Duration, Output = Self>
{
}

impl<T> ClockInstant for T where
    T: Copy
        + Ord
        + Send
        + Sync
        + fmt::Debug
        + 'static
        + Sub<Output = Duration>
        + Add<Duration, Output = T>
{
}

/// Core instants this far past the origin or more are "never" on the shim's clock: adding
/// them to a clock's instant could overflow it. A century.
const NEVER_AFTER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The instant of a runtime's clock that the core calls zero, and conversions both ways.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin<I>(I);

impl<I: ClockInstant> Origin<I> {
    /// The core's zero is `at`.
    pub fn new(at: I) -> Self {
        Origin(at)
    }

    /// The instant the core calls zero.
    pub fn at(self) -> I {
        self.0
    }

    /// `at` as the core's time; an instant before the origin is the origin.
    pub fn to_core(self, at: I) -> Instant {
        Instant::from_duration(at.max(self.0) - self.0)
    }

    /// The core's `at` as the clock's instant; `None` when it is too far to represent (e.g.
    /// [`Instant::MAX`], "never").
    pub fn to_clock(self, at: Instant) -> Option<I> {
        let after = at.since_origin();
        (at != Instant::MAX && after < NEVER_AFTER).then(|| self.0 + after)
    }

    /// How far this origin is from `earlier`: `Ok` after it (or at it), `Err` before it.
    pub(crate) fn offset_from(self, earlier: Self) -> Result<Duration, Duration> {
        if self.0 >= earlier.0 {
            Ok(self.0 - earlier.0)
        } else {
            Err(earlier.0 - self.0)
        }
    }
}

/// `timeout` after `now` in the core's time; `None` ("no limit") when it is past what the
/// core can represent (e.g. `Duration::MAX`).
pub(crate) fn deadline_after(now: Instant, timeout: Duration) -> Option<Instant> {
    let at = now.saturating_add(timeout);
    (at != Instant::MAX).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_round_trips_and_never_goes_before_the_origin() {
        // The core's own instants stand in for a clock's: any ordered instant type works.
        let base = Instant::from_secs(10);
        let origin = Origin::new(base);
        let later = base + Duration::from_millis(1500);
        assert_eq!(origin.to_core(later), Instant::from_millis(1500));
        assert_eq!(origin.to_clock(Instant::from_millis(1500)), Some(later));
        assert_eq!(origin.to_core(Instant::from_secs(5)), Instant::ZERO);
        assert_eq!(origin.to_clock(Instant::MAX), None);
        assert_eq!(origin.to_clock(Instant::ZERO + NEVER_AFTER), None);
    }
}
