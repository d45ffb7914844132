//! The runtime part: smol's clock and an async-io timer for the driver's task.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use async_io::Timer;
use tether_driver::{AsyncTimer, DriverTask};

/// The shim's clock.
#[allow(clippy::disallowed_methods, reason = "the shim is the clock's edge")]
pub(crate) fn now() -> Instant {
    Instant::now()
}

/// One `async_io::Timer`, moved (`set_at`) only when the deadline changes.
#[derive(Debug)]
pub struct SmolTimer(Timer);

impl SmolTimer {
    pub(crate) fn new() -> Self {
        SmolTimer(Timer::never())
    }
}

impl AsyncTimer for SmolTimer {
    fn poll_at(&mut self, at: Instant, moved: bool, cx: &mut Context<'_>) -> Poll<()> {
        if moved {
            self.0.set_at(at);
        }
        Pin::new(&mut self.0).poll(cx).map(drop)
    }
}

/// Runs a session on an executor that runs async-io's reactor (smol's does): spawn it or await
/// it. Dropping it before the session ended ends the session at once and hands back what it
/// held.
pub type DriverFuture = DriverTask<SmolTimer>;
