//! The runtime part: smol's clock and an async-io timer for the driver's task.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use async_io::Timer;
use std::sync::Arc;

use tether_driver::runtime::{
    AsyncTimer, AsyncTransport, BoxFuture, BuildError, DriverTask, Origin, Runtime, SessionUrl,
    StoreDone, StoreJob,
};

use crate::http1::HttpTransport;

/// One `async_io::Timer`, moved (`set_at`) only when the deadline changes; the driver's time
/// is converted to the clock's with the session's origin.
#[derive(Debug)]
pub struct SmolTimer(Timer, Origin<Instant>);

impl SmolTimer {
    pub(crate) fn new(origin: Origin<Instant>) -> Self {
        SmolTimer(Timer::never(), origin)
    }
}

impl AsyncTimer for SmolTimer {
    fn poll_at(&mut self, at: tether_core::Instant, moved: bool, cx: &mut Context<'_>) -> Poll<()> {
        if moved {
            match self.1.to_clock(at) {
                Some(at) => self.0.set_at(at),
                None => self.0 = Timer::never(),
            }
        }
        Pin::new(&mut self.0).poll(cx).map(drop)
    }
}

/// smol: the driver's task on smol's global executor (or one given), an [`async_io::Timer`],
/// and [`HttpTransport`] (ureq-proto over async-io) for HTTP.
#[derive(Clone, Debug, Default)]
pub struct Smol {
    executor: Option<Arc<smol::Executor<'static>>>,
}

impl Smol {
    /// smol's global executor.
    pub fn global() -> Self {
        Smol { executor: None }
    }

    /// This executor: whoever runs it drives the sessions started on it.
    pub fn on(executor: Arc<smol::Executor<'static>>) -> Self {
        Smol {
            executor: Some(executor),
        }
    }
}

impl Runtime for Smol {
    type Timer = SmolTimer;
    type Instant = Instant;

    #[allow(clippy::disallowed_methods, reason = "the shim is the clock's edge")]
    fn origin() -> Origin<Instant> {
        Origin::new(Instant::now())
    }

    #[allow(clippy::disallowed_methods, reason = "the shim is the clock's edge")]
    fn now(origin: &Origin<Instant>) -> tether_core::Instant {
        origin.to_core(Instant::now())
    }

    fn timer(&self, origin: Origin<Instant>) -> SmolTimer {
        SmolTimer::new(origin)
    }

    fn spawn(&self, task: DriverTask<SmolTimer>) -> std::io::Result<()> {
        match &self.executor {
            Some(executor) => executor.spawn(task).detach(),
            None => smol::spawn(task).detach(),
        }
        Ok(())
    }

    /// On smol's blocking pool (`unblock`), never on the executor.
    fn run_store(job: StoreJob) -> BoxFuture<StoreDone> {
        Box::pin(smol::unblock(move || job.run()))
    }

    fn transport(&self, url: &SessionUrl) -> Result<Arc<dyn AsyncTransport>, BuildError> {
        Ok(Arc::new(HttpTransport::for_url(url.clone())?))
    }
}
