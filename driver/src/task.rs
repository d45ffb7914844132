//! The driver task every async runtime runs, written once: one task, one timer moved only when
//! the deadline changes, the requests in flight polled in place, and a work budget per wake-up
//! (STYLE habits 11, 12 and 16). A runtime gives it a timer ([`AsyncTimer`]) and a transport
//! ([`AsyncTransport`]); like quinn's runtime adapters, that is all an async shim is.
//!
//! It is a future, not a runtime: it never blocks and never spawns; whatever executor polls it
//! drives the session.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use tether_core::session::TransportError;
use tether_core::{Instant, RequestId};

use crate::action::Action;
use crate::http::{HttpRequest, HttpResponse};
use crate::shared::{Shared, Turn};
use crate::store_job::{StoreDone, StoreJob};

/// Turns of the loop per wake-up before the task yields to its executor.
pub const WORK_BUDGET: usize = 64;

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// An async HTTP client the driver task hands requests to.
///
/// The contract keeps the shim thin (docs/ARCHITECTURE.md, conventions 7 and 8): one exchange per call,
/// no retries or classification (any status is an `Ok`), never follow a redirect, never read a
/// body past [`HttpRequest::max_response_body`]. The task polls the returned future and drops
/// it when the core cancels the request at its deadline.
pub trait AsyncTransport: Send + Sync + 'static {
    /// Performs `request` once.
    fn send(&self, request: HttpRequest) -> BoxFuture<Result<HttpResponse, TransportError>>;
}

impl fmt::Debug for dyn AsyncTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AsyncTransport")
    }
}

impl<T: AsyncTransport + ?Sized> AsyncTransport for Arc<T> {
    fn send(&self, request: HttpRequest) -> BoxFuture<Result<HttpResponse, TransportError>> {
        (**self).send(request)
    }
}

impl<T: AsyncTransport + ?Sized> AsyncTransport for Box<T> {
    fn send(&self, request: HttpRequest) -> BoxFuture<Result<HttpResponse, TransportError>> {
        (**self).send(request)
    }
}

/// A runtime's timer, as the driver task needs it.
pub trait AsyncTimer: Send + Unpin + 'static {
    /// Polls the timer for `at`, in the driver's time (the shim converts it to its runtime's
    /// clock with the [`Origin`](crate::runtime::Origin) its clock counts from); `moved` says the
    /// deadline changed since the last poll (or the timer fired since), so the timer must be
    /// set to `at` first.
    fn poll_at(&mut self, at: Instant, moved: bool, cx: &mut Context<'_>) -> Poll<()>;
}

/// Wakes the driver task: a call or an answer made work for it.
#[derive(Debug, Default)]
pub struct Wakeup {
    woken: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Wakeup {
    /// Marks work and wakes the task; give it to [`Shared::new`] as the notifier.
    pub fn wake(&self) {
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

/// How a runtime runs a [`StoreJob`] where blocking is allowed (see
/// [`Runtime::run_store`](crate::runtime::Runtime::run_store)).
pub type RunStore = fn(StoreJob) -> BoxFuture<StoreDone>;

/// Runs a session: spawn it on the runtime its timer belongs to, or await it. It ends once the
/// session has. Dropping it before then (an aborted task, a runtime shutting down) ends the
/// session at once: what it held is handed back (report stream, close report) and every waiter
/// is answered.
#[must_use = "a driver task does nothing unless spawned or awaited"]
pub struct DriverTask<T> {
    shared: Arc<Shared>,
    wakeup: Arc<Wakeup>,
    transport: Arc<dyn AsyncTransport>,
    in_flight: Vec<InFlight>,
    run_store: RunStore,
    /// Store jobs running (the outbox runs one at a time).
    store_jobs: Vec<BoxFuture<StoreDone>>,
    timer: T,
    armed: Option<Instant>,
    done: bool,
}

impl<T: AsyncTimer> DriverTask<T> {
    /// The task driving `shared`, woken through `wakeup` (the notifier `shared` was made with);
    /// its requests go to `transport`, its store jobs to `run_store`.
    pub fn new(
        shared: Arc<Shared>,
        wakeup: Arc<Wakeup>,
        transport: Arc<dyn AsyncTransport>,
        run_store: RunStore,
        timer: T,
    ) -> Self {
        DriverTask {
            shared,
            wakeup,
            transport,
            in_flight: Vec::new(),
            run_store,
            store_jobs: Vec::new(),
            timer,
            armed: None,
            done: false,
        }
    }

    /// Polls the requests in flight, in the order they were sent, handing finished ones to the
    /// driver. Whether one finished.
    fn poll_requests(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progressed = false;
        let mut i = 0;
        while i < self.in_flight.len() {
            if let Poll::Ready(result) = self.in_flight[i].1.as_mut().poll(cx) {
                let (id, _) = self.in_flight.remove(i);
                // Its follow-on actions wait for this loop's next turn, a moment later.
                self.shared.with(|d, now| d.handle_reply(now, id, result));
                progressed = true;
            } else {
                i += 1;
            }
        }
        let mut i = 0;
        while i < self.store_jobs.len() {
            if let Poll::Ready(done) = self.store_jobs[i].as_mut().poll(cx) {
                drop(self.store_jobs.remove(i));
                // Its follow-on actions wait for this loop's next turn, as a reply's do.
                self.shared.with(|d, now| d.handle_store(now, done));
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
        let fired = self
            .timer
            .poll_at(at, self.armed != deadline, cx)
            .is_ready();
        // Once it fired, the same deadline named again re-arms it.
        self.armed = if fired { None } else { deadline };
        fired
    }
}

impl<T: AsyncTimer> Future for DriverTask<T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        this.shared.note_wakeup();
        this.wakeup.register(cx.waker());
        for _ in 0..WORK_BUDGET {
            this.wakeup.woken.store(false, Ordering::Release);
            let progressed = this.poll_requests(cx);
            let Turn {
                actions,
                deadline,
                finished,
            } = this.shared.turn();
            let busy = !actions.is_empty();
            for action in actions {
                match action {
                    Action::Send(request) => {
                        let id = request.id;
                        this.in_flight.push((id, this.transport.send(request)));
                    }
                    // Dropping the future abandons the exchange (its connection is not reused).
                    Action::Cancel(id) => this.in_flight.retain(|(i, _)| *i != id),
                    // Off the executor (or inline, where the loop's thread may block); polled
                    // with the requests.
                    Action::Store(job) => this.store_jobs.push((this.run_store)(job)),
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

impl<T> fmt::Debug for DriverTask<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DriverTask")
            .field("in_flight", &self.in_flight.len())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<T> Drop for DriverTask<T> {
    fn drop(&mut self) {
        if !self.done {
            self.in_flight.clear();
            self.shared.with(|d, now| d.shutdown(now));
        }
    }
}
