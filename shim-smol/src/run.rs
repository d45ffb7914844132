//! The driver future: one task, one timer moved only when the deadline changes, the requests
//! in flight polled in place, and a work budget per wake-up (STYLE habits 11 and 12).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use async_io::Timer;
use tether_core::session::{RequestId, TransportError};
use tether_driver::{Action, HttpResponse, Shared};

use crate::transport::{BoxFuture, Transport};

/// Turns of the loop per wake-up before the task yields to the executor.
pub const WORK_BUDGET: usize = 64;

/// The shim's clock.
#[allow(clippy::disallowed_methods, reason = "the shim is the clock's edge")]
pub(crate) fn now() -> Instant {
    Instant::now()
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

/// Runs a session: spawn it on an executor that runs async-io's reactor (smol's does), or
/// await it. It ends once the session has ended. Dropping it before then ends the session at
/// once: everything it held is handed back (to the report stream and the close report).
#[must_use = "a driver does nothing unless spawned or awaited"]
pub struct DriverFuture {
    shared: Arc<Shared>,
    wakeup: Arc<Wakeup>,
    transport: Arc<dyn Transport>,
    in_flight: Vec<InFlight>,
    timer: Timer,
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
            timer: Timer::never(),
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
                let (id, _) = self.in_flight.remove(i);
                self.shared.with(|d, now| d.handle_reply(now, id, result));
                progressed = true;
            } else {
                i += 1;
            }
        }
        progressed
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
            if this.armed != deadline {
                this.armed = deadline;
                match deadline {
                    Some(at) => this.timer.set_at(at),
                    None => this.timer = Timer::never(),
                }
            }
            let fired = deadline.is_some() && Pin::new(&mut this.timer).poll(cx).is_ready();
            if fired {
                this.armed = None;
            }
            let woken = this.wakeup.woken.load(Ordering::Acquire);
            if !(busy || progressed || fired || woken) {
                return Poll::Pending;
            }
        }
        // Out of budget: let others run, and come back.
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
            self.shared.with(|d, now| d.shutdown(now));
        }
    }
}
