//! The runtime part: smol's clock and an async-io timer for the driver's task.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use async_io::Timer;
use tether_driver::{AsyncTimer, DriverTask, Origin};

/// The shim's clock.
#[allow(clippy::disallowed_methods, reason = "the shim is the clock's edge")]
pub(crate) fn now() -> Instant {
    Instant::now()
}

/// One `async_io::Timer`, moved (`set_at`) only when the deadline changes; the driver's time
/// is converted to the clock's with the session's origin.
#[derive(Debug)]
pub struct SmolTimer(Timer, Origin);

impl SmolTimer {
    pub(crate) fn new(origin: Origin) -> Self {
        SmolTimer(Timer::never(), origin)
    }
}

impl AsyncTimer for SmolTimer {
    fn poll_at(&mut self, at: tether_core::Instant, moved: bool, cx: &mut Context<'_>) -> Poll<()> {
        if moved {
            match self.1.to_std(at) {
                Some(at) => self.0.set_at(at),
                None => self.0 = Timer::never(),
            }
        }
        Pin::new(&mut self.0).poll(cx).map(drop)
    }
}

/// Runs a session on an executor that runs async-io's reactor (smol's does): spawn it or await
/// it. Dropping it before the session ended ends the session at once and hands back what it
/// held.
pub type DriverFuture = DriverTask<SmolTimer>;
