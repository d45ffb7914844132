//! The runtime part: tokio's clock and a `tokio::time::Sleep` for the driver's task.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tether_driver::{AsyncTimer, DriverTask, Origin};
use tokio::time::Sleep;

/// The shim's clock: tokio's, so that a runtime with paused time runs the session virtually.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// One `tokio::time::Sleep`, created at the first deadline and reset only when it changes; the
/// driver's time is converted to tokio's with the session's origin.
#[derive(Debug)]
pub struct TokioTimer(Option<Pin<Box<Sleep>>>, Origin);

impl TokioTimer {
    pub(crate) fn new(origin: Origin) -> Self {
        TokioTimer(None, origin)
    }
}

impl AsyncTimer for TokioTimer {
    fn poll_at(&mut self, at: tether_core::Instant, moved: bool, cx: &mut Context<'_>) -> Poll<()> {
        // "Never" is a century away: a sleep that does not fire.
        let century = std::time::Duration::from_secs(100 * 365 * 24 * 3600);
        let at = self.1.to_std(at).unwrap_or_else(|| now() + century);
        let at = tokio::time::Instant::from_std(at);
        let sleep = match &mut self.0 {
            Some(sleep) => {
                if moved {
                    sleep.as_mut().reset(at);
                }
                sleep
            }
            None => self.0.insert(Box::pin(tokio::time::sleep_until(at))),
        };
        sleep.as_mut().poll(cx)
    }
}

/// Runs a session: spawn it on a tokio runtime, or await it. Dropping it before the session
/// ended (an aborted task, a runtime shutting down) ends the session at once: what it held is
/// handed back and every waiter is answered.
pub type DriverFuture = DriverTask<TokioTimer>;
