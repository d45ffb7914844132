//! The driver future: one task, one `tokio::time::Sleep` reset only when the deadline changes,
//! the requests in flight polled in place, and a work budget per wake-up (STYLE habits 11, 12).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use tether_core::session::{RequestId, TransportError};
use tether_driver::{Action, HttpResponse, Shared};
use tokio::time::Sleep;

use crate::transport::{BoxFuture, Transport};

/// Turns of the loop per wake-up before the task yields to the runtime.
pub const WORK_BUDGET: usize = 64;

/// The shim's clock: tokio's, so that a runtime with paused time runs the session virtually.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Wakes the driver future: a call or an answer made work for it.
#[derive(Default)]
pub(crate) struct Wakeup {
    woken: AtomicBool,
    waker: Mutex<Option<Waker>>,
    /// Times the task was polled, for diagnostics.
    pub(crate) polls: AtomicU64,
}

impl Wakeup {
    pub(crate) fn wake(&self) {
        self.woken.store(true, Ordering::Release);
        let waker = self
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn register(&self, waker: &Waker) {
        *self.waker.lock().unwrap_or_else(PoisonError::into_inner) = Some(waker.clone());
    }
}

type InFlight = (RequestId, BoxFuture<Result<HttpResponse, TransportError>>);

/// Runs a session: spawn it on a tokio runtime, or await it; it ends once the session has.
/// Dropping it before then (an aborted task, a runtime shutting down) ends the session at once:
/// what it held is handed back (report stream, close report) and every waiter is answered.
#[must_use = "a driver does nothing unless spawned or awaited"]
pub struct DriverFuture {
    shared: Arc<Shared>,
    wakeup: Arc<Wakeup>,
    transport: Arc<dyn Transport>,
    in_flight: Vec<InFlight>,
    /// Created at the first deadline; reset only when the deadline changes.
    timer: Option<Pin<Box<Sleep>>>,
    armed: Option<Instant>,
    done: bool,
}

impl DriverFuture {
    pub(crate) fn new(
        shared: Arc<Shared>,
        wakeup: Arc<Wakeup>,
        transport: Arc<dyn Transport>,
    ) -> Self {
        DriverFuture {
            shared,
            wakeup,
            transport,
            in_flight: Vec::new(),
            timer: None,
            armed: None,
            done: false,
        }
    }

    /// Polls the requests in flight, handing finished ones to the driver. Whether one finished.
    fn poll_requests(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progressed = false;
        let mut i = 0;
        while i < self.in_flight.len() {
            if let Poll::Ready(result) = self.in_flight[i].1.as_mut().poll(cx) {
                let (id, _) = self.in_flight.swap_remove(i);
                self.shared.with(|d, now| d.handle_reply(now, id, result));
                progressed = true;
            } else {
                i += 1;
            }
        }
        progressed
    }

    /// Moves the timer to `deadline` if it changed; whether it has fired.
    fn poll_timer(&mut self, deadline: Option<Instant>, cx: &mut Context<'_>) -> bool {
        let Some(at) = deadline else { return false };
        if self.armed != deadline {
            let at = tokio::time::Instant::from_std(at);
            match &mut self.timer {
                Some(timer) => timer.as_mut().reset(at),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(at))),
            }
        }
        // Once it fired, the same deadline named again re-arms it.
        let fired = self
            .timer
            .as_mut()
            .is_some_and(|t| t.as_mut().poll(cx).is_ready());
        self.armed = if fired { None } else { deadline };
        fired
    }
}

impl Future for DriverFuture {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        this.wakeup.polls.fetch_add(1, Ordering::Relaxed);
        this.wakeup.register(cx.waker());
        for _ in 0..WORK_BUDGET {
            this.wakeup.woken.store(false, Ordering::Release);
            let progressed = this.poll_requests(cx);
            let (actions, deadline, finished) = {
                let mut driver = this.shared.lock();
                driver.handle_timeout(now());
                let actions: Vec<Action> = std::iter::from_fn(|| driver.poll_action()).collect();
                driver.take_notify();
                (actions, driver.poll_timeout(), driver.is_finished())
            };
            let busy = !actions.is_empty();
            for action in actions {
                match action {
                    Action::Send(request) => {
                        let id = request.id;
                        this.in_flight.push((id, this.transport.send(request)));
                    }
                    // Dropping the future abandons the exchange (its connection is not reused).
                    Action::Cancel(id) => this.in_flight.retain(|(i, _)| *i != id),
                    _ => {}
                }
            }
            if finished {
                this.done = true;
                return Poll::Ready(());
            }
            let fired = this.poll_timer(deadline, cx);
            let woken = this.wakeup.woken.load(Ordering::Acquire);
            if !(busy || progressed || fired || woken) {
                return Poll::Pending;
            }
        }
        // Out of budget: let other tasks run, and come back.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl std::fmt::Debug for DriverFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriverFuture")
            .field("in_flight", &self.in_flight.len())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Drop for DriverFuture {
    fn drop(&mut self) {
        if !self.done {
            self.in_flight.clear();
            self.shared.with(|d, now| d.shutdown(now));
        }
    }
}
