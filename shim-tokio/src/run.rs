//! The runtime part: tokio's clock and a `tokio::time::Sleep` for the driver's task.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use std::sync::Arc;

use tether_driver::runtime::{
    AsyncTimer, AsyncTransport, BoxFuture, BuildError, DriverTask, Origin, Runtime, SessionUrl,
    StoreDone, StoreJob,
};
use tokio::time::Sleep;

use crate::http::HttpTransport;

/// One `tokio::time::Sleep`, created at the first deadline and reset only when it changes; the
/// driver's time is converted to tokio's with the session's origin.
#[derive(Debug)]
pub struct TokioTimer(Option<Pin<Box<Sleep>>>, Origin<Instant>);

impl TokioTimer {
    pub(crate) fn new(origin: Origin<Instant>) -> Self {
        TokioTimer(None, origin)
    }
}

impl AsyncTimer for TokioTimer {
    fn poll_at(&mut self, at: tether_core::Instant, moved: bool, cx: &mut Context<'_>) -> Poll<()> {
        // "Never" is a century away: a sleep that does not fire.
        let century = std::time::Duration::from_secs(100 * 365 * 24 * 3600);
        let at = self.1.to_clock(at).unwrap_or_else(|| tokio_now() + century);
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

/// tokio: the driver's task on a tokio runtime, a [`tokio::time::Sleep`] on its clock (paused
/// time works), and [`HttpTransport`] (hyper) for HTTP.
#[derive(Clone, Debug, Default)]
pub struct Tokio {
    handle: Option<tokio::runtime::Handle>,
}

impl Tokio {
    /// The runtime current when a session starts.
    pub fn current() -> Self {
        Tokio { handle: None }
    }

    /// The runtime of `handle`: start sessions from any thread, in or outside it.
    pub fn on(handle: tokio::runtime::Handle) -> Self {
        Tokio {
            handle: Some(handle),
        }
    }
}

/// tokio's clock (its paused time under `test-util`): this shim is the driver's clock edge.
fn tokio_now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl Runtime for Tokio {
    type Timer = TokioTimer;
    type Instant = Instant;

    /// tokio's clock, so a runtime with paused time runs the session virtually.
    fn origin() -> Origin<Instant> {
        Origin::new(tokio_now())
    }

    fn now(origin: &Origin<Instant>) -> tether_core::Instant {
        origin.to_core(tokio_now())
    }

    fn timer(&self, origin: Origin<Instant>) -> TokioTimer {
        TokioTimer::new(origin)
    }

    fn spawn(&self, task: DriverTask<TokioTimer>) -> std::io::Result<()> {
        let handle = match &self.handle {
            Some(handle) => handle.clone(),
            None => tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?,
        };
        handle.spawn(task);
        Ok(())
    }

    /// On tokio's blocking pool (`spawn_blocking`), never on a runtime worker.
    fn run_store(job: StoreJob) -> BoxFuture<StoreDone> {
        let kind = job.kind();
        let running = tokio::task::spawn_blocking(move || job.run());
        Box::pin(async move {
            running
                .await
                .unwrap_or_else(|e| StoreDone::failed(kind, e.to_string()))
        })
    }

    fn transport(&self, url: &SessionUrl) -> Result<Arc<dyn AsyncTransport>, BuildError> {
        Ok(Arc::new(HttpTransport::for_url(url)?))
    }
}
