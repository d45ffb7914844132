//! The shim's one clock: `std::time::Instant` to and from the core's [`tether_core::Instant`].

use std::time::Instant as StdInstant;

use tether_core::Instant;

/// Converts wall time to the core's time: microseconds since an origin taken at start.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    origin: StdInstant,
}

impl Clock {
    /// A clock whose origin is now.
    pub(crate) fn start() -> Self {
        Clock { origin: std_now() }
    }

    /// Now, in the core's time.
    pub(crate) fn now(self) -> Instant {
        self.to_core(std_now())
    }

    /// A `std` instant in the core's time (the origin or later).
    pub(crate) fn to_core(self, at: StdInstant) -> Instant {
        Instant::from_duration(at.saturating_duration_since(self.origin))
    }

    /// A core instant as a `std` instant; `None` if it is too far away to represent.
    pub(crate) fn to_std(self, at: Instant) -> Option<StdInstant> {
        self.origin.checked_add(at.since_origin())
    }
}

/// The one place the shim reads the wall clock (clippy bans it elsewhere in the workspace).
#[allow(clippy::disallowed_methods, reason = "the shim is the clock's edge")]
pub(crate) fn std_now() -> StdInstant {
    StdInstant::now()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn conversion_round_trips_and_never_goes_before_the_origin() {
        let clock = Clock::start();
        let later = clock.origin + Duration::from_millis(1500);
        let core = clock.to_core(later);
        assert_eq!(core, Instant::from_millis(1500));
        assert_eq!(clock.to_std(core), Some(later));
        let before = clock.origin.checked_sub(Duration::from_millis(5));
        if let Some(before) = before {
            assert_eq!(clock.to_core(before), Instant::ZERO);
        }
    }
}
