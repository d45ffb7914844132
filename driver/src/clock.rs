//! The clock origin: the shim's `std::time::Instant`s to the core's [`Instant`] and back.
//!
//! The driver never reads a clock. Every call takes the time from the shim, which reads it
//! from its runtime (`std::time::Instant::now`, or `tokio::time::Instant::now` so that a paused
//! test clock works).

use std::time::Instant as StdInstant;

use tether_core::Instant;

/// The instant the core calls zero, and conversions both ways.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin(StdInstant);

impl Origin {
    /// The core's zero is `at`.
    pub fn new(at: StdInstant) -> Self {
        Origin(at)
    }

    /// The instant the core calls zero.
    pub fn at(self) -> StdInstant {
        self.0
    }

    /// `at` as the core's time; an instant before the origin is the origin.
    pub fn to_core(self, at: StdInstant) -> Instant {
        Instant::from_duration(at.saturating_duration_since(self.0))
    }

    /// The core's `at` as a `std` instant; `None` when it is too far to represent (e.g.
    /// [`Instant::MAX`], "never").
    pub fn to_std(self, at: Instant) -> Option<StdInstant> {
        if at == Instant::MAX {
            return None;
        }
        self.0.checked_add(at.since_origin())
    }
}

/// `timeout` after `now` in the core's time; `None` ("no limit") when it is past what the
/// core can represent (e.g. `Duration::MAX`).
pub(crate) fn deadline_after(now: Instant, timeout: std::time::Duration) -> Option<Instant> {
    let at = now.saturating_add(timeout);
    (at != Instant::MAX).then_some(at)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn conversion_round_trips_and_never_goes_before_the_origin() {
        let base = StdInstant::now() + Duration::from_secs(10);
        let origin = Origin::new(base);
        let later = base + Duration::from_millis(1500);
        assert_eq!(origin.to_core(later), Instant::from_millis(1500));
        assert_eq!(origin.to_std(Instant::from_millis(1500)), Some(later));
        assert_eq!(origin.to_core(base - Duration::from_secs(5)), Instant::ZERO);
        assert_eq!(origin.to_std(Instant::MAX), None);
    }
}
