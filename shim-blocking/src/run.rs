//! The runtime: std's clock, a thread per session that keeps the driver task's timer and polls
//! the task when a call wakes it, and [`Pooled`] HTTP workers that poll it themselves when their
//! answer wakes it: a batch's answer becomes the next request on the worker's own thread, with
//! no detour through the session thread.

use std::cell::Cell;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::AtomicU8;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Release};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Instant;

use tether_driver::runtime::{
    AsyncTimer, AsyncTransport, BuildError, DriverTask, Origin, Runtime, SessionUrl,
};

use crate::transport::{HTTP_WORKER, Pooled, Ureq};

/// Threads: each session's driver task runs on a thread of its own, HTTP on a small pool.
#[derive(Clone, Copy, Debug, Default)]
pub struct Blocking;

impl Runtime for Blocking {
    type Timer = ParkTimer;
    type Instant = Instant;

    fn origin() -> Origin<Instant> {
        Origin::new(std_now())
    }

    fn now(origin: &Origin<Instant>) -> tether_core::Instant {
        origin.to_core(std_now())
    }

    fn timer(&self, origin: Origin<Instant>) -> ParkTimer {
        ParkTimer(origin)
    }

    fn spawn(&self, task: DriverTask<ParkTimer>) -> std::io::Result<()> {
        thread::Builder::new()
            .name("tether-driver".into())
            .spawn(move || run(task))
            .map(drop)
    }

    // Store jobs run inline (the default), unlocked, on the session thread or a polling worker.

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
    /// The timer's deadline, named by the poll that just ran on this thread.
    static DUE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The driver task's timer: it names its deadline to the session thread's park, which wakes
/// for it. It works only under [`run`] (where [`Blocking::spawn`] puts the task).
#[derive(Debug)]
pub struct ParkTimer(Origin<Instant>);

impl AsyncTimer for ParkTimer {
    fn poll_at(
        &mut self,
        at: tether_core::Instant,
        _moved: bool,
        _cx: &mut Context<'_>,
    ) -> Poll<()> {
        let Some(at) = self.0.to_clock(at) else {
            return Poll::Pending; // never
        };
        if std_now() >= at {
            return Poll::Ready(());
        }
        DUE.set(Some(at));
        Poll::Pending
    }
}

const IDLE: u8 = 0;
const POLLING: u8 = 1;
const NOTIFIED: u8 = 2; // polling, and woken meanwhile: the poller polls once more
const DONE: u8 = 3;

/// The driver task, its session thread, and who polls it now (see the module docs).
struct Task {
    task: Mutex<Option<Pin<Box<DriverTask<ParkTimer>>>>>,
    state: AtomicU8,
    /// When the session thread must poll, whoever polled last: the timer's deadline.
    due: Mutex<Option<Instant>>,
    session_thread: Thread,
}

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        if HTTP_WORKER.get() {
            self.poll_here();
        } else {
            self.session_thread.unpark();
        }
    }
}

impl Task {
    /// Polls the task on this thread unless another is polling it (that one polls again).
    fn poll_here(self: &Arc<Self>) {
        let claimed = self
            .state
            .fetch_update(AcqRel, Acquire, |state| match state {
                IDLE => Some(POLLING),
                POLLING => Some(NOTIFIED),
                _ => None,
            });
        if claimed != Ok(IDLE) {
            return;
        }
        let waker = Waker::from(Arc::clone(self));
        let mut cx = Context::from_waker(&waker);
        let mut slot = lock(&self.task);
        loop {
            let Some(task) = slot.as_mut() else { return };
            // Ready, or a panic (a driver bug): either way dropping the task answers every waiter.
            let polled = panic::catch_unwind(AssertUnwindSafe(|| task.as_mut().poll(&mut cx)));
            if !matches!(polled, Ok(Poll::Pending)) {
                *slot = None;
                self.state.store(DONE, Release);
                self.session_thread.unpark();
                return;
            }
            // A deadline earlier than the one the session thread sleeps until wakes it.
            let due = DUE.take();
            let armed = std::mem::replace(&mut *lock(&self.due), due);
            if HTTP_WORKER.get() && due.is_some_and(|d| armed.is_none_or(|a| d < a)) {
                self.session_thread.unpark();
            }
            // Woken meanwhile: poll again; else done for now.
            let polled = self.state.compare_exchange(POLLING, IDLE, AcqRel, Acquire);
            if polled.is_ok() {
                return;
            }
            self.state.store(POLLING, Release);
        }
    }
}

/// Drives `task` until the session has ended: this thread keeps its timer and polls it when
/// woken (a call) or due; an HTTP worker whose answer wakes it polls it itself.
pub fn run(task: DriverTask<ParkTimer>) {
    let task = Arc::new(Task {
        task: Mutex::new(Some(Box::pin(task))),
        state: AtomicU8::new(IDLE),
        due: Mutex::new(None),
        session_thread: thread::current(),
    });
    loop {
        task.poll_here();
        if task.state.load(Acquire) == DONE {
            return;
        }
        let due = *lock(&task.due); // not held while parked
        match due {
            None => thread::park(),
            Some(at) => thread::park_timeout(at.saturating_duration_since(std_now())),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
