//! Waiting on the driver's answers by parking the calling thread.

use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use tether_core::thread::StatusChange;
use tether_driver::{
    Lagged, Subscription, ThreadCloseReport, ThreadFlushError, ThreadHandle, ThreadReport,
};

use crate::run::now;

struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Parks this thread until `future` is ready.
pub(crate) fn block_on<F: Future + Unpin>(future: F) -> F::Output {
    block_until(future, None).unwrap_or_else(|| unreachable!("no deadline"))
}

/// Parks this thread until `future` is ready or `until` passes (`None`: never).
fn block_until<F: Future + Unpin>(mut future: F, until: Option<Instant>) -> Option<F::Output> {
    // Most answers are ready at once (an event queued with room): no waker to build then.
    if let Poll::Ready(value) = Pin::new(&mut future).poll(&mut Context::from_waker(Waker::noop()))
    {
        return Some(value);
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(value) = Pin::new(&mut future).poll(&mut cx) {
            return Some(value);
        }
        match until.map(|at| at.saturating_duration_since(now())) {
            None => thread::park(),
            Some(left) if left.is_zero() => return None,
            Some(left) => thread::park_timeout(left),
        }
    }
}

/// Items of a driver stream, read by blocking. Every item, in order, or `Err(Lagged(n))` where
/// the reader fell more than [`SUBSCRIPTION_CAPACITY`](tether_driver::SUBSCRIPTION_CAPACITY)
/// items behind; the stream ends once the session has ended and everything was read.
#[derive(Debug)]
pub struct Stream<T> {
    subscription: Subscription<T>,
}

/// The status stream of [`Tether::statuses`](crate::Tether::statuses).
pub type Statuses = Stream<tether_core::session::Status>;
/// The report stream of [`Tether::reports`](crate::Tether::reports).
pub type Reports = Stream<tether_driver::Report>;

impl<T> Stream<T> {
    pub(crate) fn new(subscription: Subscription<T>) -> Self {
        Stream { subscription }
    }

    /// The next item, waiting for it; `None` once the stream has ended.
    pub fn recv(&self) -> Option<Result<T, Lagged>> {
        block_on(std::future::poll_fn(|cx| self.subscription.poll_next(cx)))
    }

    /// The next item, waiting at most `timeout`; `None` on timeout or at the end.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Result<T, Lagged>> {
        let next = std::future::poll_fn(|cx| self.subscription.poll_next(cx));
        block_until(next, now().checked_add(timeout)).flatten()
    }

    /// The items queued now, without waiting.
    pub fn try_iter(&self) -> impl Iterator<Item = Result<T, Lagged>> + '_ {
        std::iter::from_fn(|| self.subscription.try_next())
    }

    /// Every item, waiting for each, until the stream ends.
    pub fn iter(&self) -> impl Iterator<Item = Result<T, Lagged>> + '_ {
        std::iter::from_fn(|| self.recv())
    }
}

/// Thread sync of a session (docs/PROTOCOL.md §Thread sync), from
/// [`Tether::start_threads`](crate::Tether::start_threads). Cheap to clone. Edits and reads
/// are [`ThreadHandle`]'s, through `Deref`; the waits below block the calling thread.
#[derive(Clone, Debug)]
pub struct Threads(pub(crate) ThreadHandle);

impl Deref for Threads {
    type Target = ThreadHandle;

    fn deref(&self) -> &ThreadHandle {
        &self.0
    }
}

impl Threads {
    /// Blocks until every edit given before is on the server and a pull made after the call
    /// has answered, for at most `timeout`; else a [`ThreadFlushError`].
    pub fn flush(&self, timeout: Duration) -> Result<(), ThreadFlushError> {
        block_on(self.0.flush(timeout))
    }

    /// Stops intake, pushes what is queued for at most `timeout`, and hands back the rest.
    pub fn close(&self, timeout: Duration) -> ThreadCloseReport {
        block_on(self.0.close(timeout))
    }

    /// Every status change from now on, per thread, starting with the current ones.
    pub fn statuses(&self) -> Stream<StatusChange> {
        Stream::new(self.0.statuses())
    }

    /// Every report from now on: rejections with their reason, remote updates, hand-backs.
    pub fn reports(&self) -> Stream<ThreadReport> {
        Stream::new(self.0.reports())
    }
}
