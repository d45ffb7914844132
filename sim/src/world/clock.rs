//! The world's virtual clock: one time for every client, server and network, moved only by the
//! world. The drivers read it through the clock closure a shim would give them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tether_core::Instant;
use tether_driver::runtime::ClockFn;

/// A clock that stands still until the world moves it, shared by everything in one world.
#[derive(Clone, Debug, Default)]
pub struct VirtualClock(Arc<AtomicU64>);

impl VirtualClock {
    /// A clock at [`Instant::ZERO`].
    pub fn new() -> Self {
        VirtualClock::default()
    }

    /// The time now.
    pub fn now(&self) -> Instant {
        Instant::from_micros(self.0.load(Ordering::Relaxed))
    }

    /// Moves the clock to `at`; never backwards (convention 1: an earlier time is ignored).
    pub fn advance_to(&self, at: Instant) {
        self.0.fetch_max(at.as_micros(), Ordering::Relaxed);
    }

    /// The clock as a driver's [`ClockFn`].
    pub fn reader(&self) -> ClockFn {
        let clock = self.clone();
        Box::new(move || clock.now())
    }

    /// The clock as the [`ClockFn`] of a driver started at `start`: its time counts from
    /// there, as a shim's does from the origin it read when it started the driver.
    pub fn reader_since(&self, start: Instant) -> ClockFn {
        let clock = self.clone();
        Box::new(move || Instant::ZERO + clock.now().saturating_duration_since(start))
    }
}
