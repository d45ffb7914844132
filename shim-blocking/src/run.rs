//! The runtime: std's clock, a thread per session that parks until its driver task is woken or
//! its timer is due, and [`Pooled`] ureq for HTTP.
//!
//! ```text
//!   Tether (any thread) ──call──▶ Shared (the driver, locked) ◀──answer── HTTP workers
//!                                      │ wake (unpark)                      ▲
//!                                      ▼                                    │
//!   driver thread: polls the one DriverTask ──requests──▶ Pooled job queue ─┘
//!                  parks until woken or the timer's deadline
//! ```

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Instant;

use tether_driver::runtime::{
    AsyncTimer, AsyncTransport, BuildError, DriverTask, Origin, Runtime, SessionUrl,
};

use crate::transport::{Pooled, Ureq};

/// Threads: each session's driver task runs on a thread of its own, HTTP on a small pool.
#[derive(Clone, Copy, Debug, Default)]
pub struct Blocking;

impl Runtime for Blocking {
    type Timer = ParkTimer;

    fn origin() -> Origin {
        Origin::new(std_now())
    }

    fn now(origin: &Origin) -> tether_core::Instant {
        origin.to_core(std_now())
    }

    fn timer(&self, origin: Origin) -> ParkTimer {
        ParkTimer(origin)
    }

    fn spawn(&self, task: DriverTask<ParkTimer>) -> std::io::Result<()> {
        thread::Builder::new()
            .name("tether-driver".into())
            .spawn(move || run(task))
            .map(drop)
    }

    // Store jobs run inline (the trait's default): on this session's own driver thread, outside
    // the driver's lock.

    fn transport(&self, _url: &SessionUrl) -> Result<Arc<dyn AsyncTransport>, BuildError> {
        Ok(Arc::new(Pooled::new(Ureq::new())))
    }
}

/// std's clock: this shim is the driver's clock edge.
#[allow(clippy::disallowed_methods, reason = "the shim is the clock's edge")]
fn std_now() -> Instant {
    Instant::now()
}

thread_local! {
    /// When the driver thread must look again, whoever woke it: the timer's deadline.
    static DUE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The driver task's timer on its thread: it names its deadline to the thread's park, which
/// wakes for it. It works only on a thread [`run`] drives (where [`Blocking::spawn`] puts it).
#[derive(Debug)]
pub struct ParkTimer(Origin);

impl AsyncTimer for ParkTimer {
    fn poll_at(
        &mut self,
        at: tether_core::Instant,
        _moved: bool,
        _cx: &mut Context<'_>,
    ) -> Poll<()> {
        let Some(at) = self.0.to_std(at) else {
            return Poll::Pending; // never
        };
        if std_now() >= at {
            return Poll::Ready(());
        }
        DUE.set(Some(at));
        Poll::Pending
    }
}

struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Drives `task` on this thread until the session has ended: poll, then park until woken (a
/// call, an answer) or the timer is due.
pub fn run(task: DriverTask<ParkTimer>) {
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut task = std::pin::pin!(task);
    while task.as_mut().poll(&mut cx).is_pending() {
        match DUE.take() {
            None => thread::park(),
            Some(at) => thread::park_timeout(at.saturating_duration_since(std_now())),
        }
    }
}
