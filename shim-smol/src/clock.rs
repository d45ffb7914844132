//! The one place the shim reads the clock: `std::time::Instant` → the core's `Instant`, as
//! time since an origin taken when the session starts.

use std::time::{Duration, Instant as StdInstant};

use tether_core::Instant;

/// Converts between the wall clock and the core's time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    origin: StdInstant,
}

/// The wall clock, now.
#[allow(clippy::disallowed_methods)] // the shim's job: the core never reads a clock
pub(crate) fn wall_now() -> StdInstant {
    StdInstant::now()
}

impl Clock {
    /// A clock whose origin is now.
    pub(crate) fn start() -> Self {
        Clock { origin: wall_now() }
    }

    /// The core's time now.
    pub(crate) fn now(&self) -> Instant {
        self.core(wall_now())
    }

    /// A wall instant in the core's time (clamped at the origin).
    pub(crate) fn core(&self, at: StdInstant) -> Instant {
        Instant::from_duration(at.saturating_duration_since(self.origin))
    }

    /// A core instant on the wall clock.
    pub(crate) fn wall(&self, at: Instant) -> StdInstant {
        self.origin
            .checked_add(at.since_origin())
            .unwrap_or_else(|| self.origin + Duration::from_secs(100 * 365 * 24 * 3600))
    }
}
