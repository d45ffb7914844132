//! Answers that come later, and streams of facts, without any runtime: a [`Pending`] is a
//! future the driver completes, a [`Subscription`] a queue it feeds. Neither waits: a shim
//! awaits them on its executor, or parks a thread on them (see `tether-blocking`).

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
    /// The completer is gone without an answer.
    dropped: bool,
}

/// The driver's side of a [`Pending`].
pub(crate) struct Completer<T> {
    slot: Option<Arc<Mutex<Slot<T>>>>,
}

impl<T> Completer<T> {
    /// Answers the waiter; a waiter that went away is no error.
    pub(crate) fn complete(mut self, value: T) {
        if let Some(slot) = self.slot.take() {
            let waker = {
                let mut slot = lock(&slot);
                slot.value = Some(value);
                slot.waker.take()
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            let waker = {
                let mut slot = lock(&slot);
                slot.dropped = true;
                slot.waker.take()
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

/// An answer the driver gives later: a future, or something to poll with
/// [`try_take`](Pending::try_take).
///
/// If the driver is gone without answering (the runtime that ran it shut down), the pending
/// resolves with the fallback it was made with, e.g. "the session has ended".
#[must_use = "a pending answer says whether the call succeeded"]
pub struct Pending<T> {
    inner: PendingInner<T>,
}

enum PendingInner<T> {
    Ready(Option<T>),
    Waiting {
        slot: Arc<Mutex<Slot<T>>>,
        fallback: Option<Box<dyn FnOnce() -> T + Send>>,
    },
}

impl<T> Pending<T> {
    /// An answer that is already known.
    pub fn ready(value: T) -> Self {
        Pending {
            inner: PendingInner::Ready(Some(value)),
        }
    }

    /// A pending answer, its completer, and what it resolves to if the completer is dropped.
    pub(crate) fn new(fallback: impl FnOnce() -> T + Send + 'static) -> (Self, Completer<T>) {
        let slot = Arc::new(Mutex::new(Slot {
            value: None,
            waker: None,
            dropped: false,
        }));
        let pending = Pending {
            inner: PendingInner::Waiting {
                slot: Arc::clone(&slot),
                fallback: Some(Box::new(fallback)),
            },
        };
        (pending, Completer { slot: Some(slot) })
    }

    /// The answer, if it has come; `None` means "not yet" (it never comes twice).
    pub fn try_take(&mut self) -> Option<T> {
        match &mut self.inner {
            PendingInner::Ready(value) => value.take(),
            PendingInner::Waiting { slot, fallback } => {
                let mut slot = lock(slot);
                if let Some(value) = slot.value.take() {
                    return Some(value);
                }
                if slot.dropped {
                    return fallback.take().map(|f| f());
                }
                None
            }
        }
    }

    /// Whether the answer has come (or the completer is gone).
    pub fn is_ready(&self) -> bool {
        match &self.inner {
            PendingInner::Ready(value) => value.is_some(),
            PendingInner::Waiting { slot, .. } => {
                let slot = lock(slot);
                slot.value.is_some() || slot.dropped
            }
        }
    }
}

impl<T> Future for Pending<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let this = self.get_mut();
        if let Some(value) = this.try_take() {
            return Poll::Ready(value);
        }
        if let PendingInner::Waiting { slot, .. } = &this.inner {
            let mut guard = lock(slot);
            if guard.value.is_none() && !guard.dropped {
                guard.waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
        }
        // Answered between the two looks.
        match this.try_take() {
            Some(value) => Poll::Ready(value),
            None => Poll::Pending,
        }
    }
}

impl<T> Unpin for Pending<T> {}

impl<T> fmt::Debug for Pending<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending")
            .field("ready", &self.is_ready())
            .finish()
    }
}

/// Items a subscriber may have waiting before the oldest are skipped for it (tokio
/// broadcast's rule): a reader that never reads costs at most this many items, and learns
/// what it missed from a [`Lagged`] in their place.
pub const SUBSCRIPTION_CAPACITY: usize = 4096;

/// In a [`Subscription`], in place of items the reader fell too far behind to get: how many
/// were skipped. Every fact a skipped report carried is still in the
/// [`CloseReport`](crate::CloseReport).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lagged(pub u64);

impl fmt::Display for Lagged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the reader fell behind: {} items skipped", self.0)
    }
}

impl std::error::Error for Lagged {}

struct Queue<T> {
    items: VecDeque<T>,
    /// Items dropped (oldest first) since the reader last saw a [`Lagged`].
    skipped: u64,
    capacity: usize,
    waker: Option<Waker>,
    closed: bool,
}

impl<T> Queue<T> {
    fn pop(&mut self) -> Option<Result<T, Lagged>> {
        if self.skipped > 0 {
            return Some(Err(Lagged(std::mem::take(&mut self.skipped))));
        }
        self.items.pop_front().map(Ok)
    }

    /// Queues `item`, skipping the oldest when the reader is a full capacity behind.
    fn push(&mut self, item: T) {
        if self.items.len() >= self.capacity {
            self.items.pop_front();
            self.skipped += 1;
        }
        self.items.push_back(item);
    }

    fn is_drained(&self) -> bool {
        self.items.is_empty() && self.skipped == 0
    }
}

/// A stream of facts in order, for one subscriber, bounded: a reader more than
/// [`SUBSCRIPTION_CAPACITY`] items behind loses the oldest and gets `Err(Lagged(n))` in their
/// place, as with tokio's broadcast channel. It ends once the session has ended and
/// everything was read.
pub struct Subscription<T> {
    queue: Arc<Mutex<Queue<T>>>,
}

impl<T> Subscription<T> {
    /// The next item (or lag marker) if one is queued; `None` when none is (see
    /// [`is_finished`](Self::is_finished)).
    pub fn try_next(&self) -> Option<Result<T, Lagged>> {
        lock(&self.queue).pop()
    }

    /// Whether the stream has ended and everything was read.
    pub fn is_finished(&self) -> bool {
        let queue = lock(&self.queue);
        queue.closed && queue.is_drained()
    }

    /// The next item, on any executor; `None` once the stream has ended.
    #[allow(
        clippy::should_implement_trait,
        reason = "an async `next`, as `StreamExt::next`; not an iterator"
    )]
    pub fn next(&mut self) -> impl Future<Output = Option<Result<T, Lagged>>> + '_ {
        std::future::poll_fn(|cx| self.poll_next(cx))
    }

    /// Polls for the next item: `Ready(None)` once the stream has ended.
    pub fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Option<Result<T, Lagged>>> {
        let mut queue = lock(&self.queue);
        if let Some(item) = queue.pop() {
            return Poll::Ready(Some(item));
        }
        if queue.closed {
            return Poll::Ready(None);
        }
        queue.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Every item in order (or a [`Lagged`] where some were skipped), then the end: usable with
/// any `Stream` combinators.
impl<T> futures_core::Stream for Subscription<T> {
    type Item = Result<T, Lagged>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Subscription::poll_next(&self, cx)
    }
}

impl<T> fmt::Debug for Subscription<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let queue = lock(&self.queue);
        f.debug_struct("Subscription")
            .field("queued", &queue.items.len())
            .field("skipped", &queue.skipped)
            .field("closed", &queue.closed)
            .finish()
    }
}

/// The driver's side: every subscriber gets every item, in order, up to its capacity.
pub(crate) struct Fanout<T> {
    queues: Vec<Arc<Mutex<Queue<T>>>>,
    capacity: usize,
    closed: bool,
}

impl<T: Clone> Fanout<T> {
    pub(crate) fn new() -> Self {
        Self::with_capacity(SUBSCRIPTION_CAPACITY)
    }

    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Fanout {
            queues: Vec::new(),
            capacity: capacity.max(1),
            closed: false,
        }
    }

    /// A new subscriber, whose stream starts with `first`.
    pub(crate) fn subscribe(&mut self, first: impl IntoIterator<Item = T>) -> Subscription<T> {
        let mut queue = Queue {
            items: VecDeque::new(),
            skipped: 0,
            capacity: self.capacity,
            waker: None,
            closed: self.closed,
        };
        for item in first {
            queue.push(item);
        }
        let queue = Arc::new(Mutex::new(queue));
        if !self.closed {
            self.queues.push(Arc::clone(&queue));
        }
        Subscription { queue }
    }

    /// Whether anyone is listening.
    pub(crate) fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// Gives `item` to every subscriber still there.
    pub(crate) fn publish(&mut self, item: T) {
        // A subscriber that dropped its stream is forgotten.
        self.queues.retain(|q| Arc::strong_count(q) > 1);
        for queue in &self.queues {
            let waker = {
                let mut queue = lock(queue);
                queue.push(item.clone());
                queue.waker.take()
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }

    /// Ends every stream.
    pub(crate) fn close(&mut self) {
        self.closed = true;
        for queue in self.queues.drain(..) {
            let waker = {
                let mut queue = lock(&queue);
                queue.closed = true;
                queue.waker.take()
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::task::Wake;

    use super::*;

    struct Flag(Mutex<bool>);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            *lock(&self.0) = true;
        }
    }

    #[test]
    fn a_pending_answer_wakes_its_waiter_and_falls_back_when_abandoned() {
        let flag = Arc::new(Flag(Mutex::new(false)));
        let waker = Waker::from(Arc::clone(&flag));
        let mut cx = Context::from_waker(&waker);
        let (mut pending, completer) = Pending::new(|| 0);
        assert_eq!(Pin::new(&mut pending).poll(&mut cx), Poll::Pending);
        completer.complete(7);
        assert!(*lock(&flag.0));
        assert_eq!(Pin::new(&mut pending).poll(&mut cx), Poll::Ready(7));

        let (mut abandoned, completer) = Pending::new(|| -1);
        drop(completer);
        assert_eq!(abandoned.try_take(), Some(-1));
    }

    #[test]
    fn every_subscriber_sees_every_item_in_order_then_the_end() {
        let mut fanout = Fanout::new();
        let early = fanout.subscribe([0]);
        fanout.publish(1);
        let late = fanout.subscribe([10]);
        fanout.publish(2);
        let gone = fanout.subscribe([]);
        drop(gone);
        fanout.publish(3);
        fanout.close();
        let drain = |s: &Subscription<i32>| {
            std::iter::from_fn(|| s.try_next().map(Result::unwrap)).collect::<Vec<_>>()
        };
        assert_eq!(drain(&early), [0, 1, 2, 3]);
        assert_eq!(drain(&late), [10, 2, 3]);
        assert!(early.is_finished() && late.is_finished());
        assert_eq!(fanout.queues.len(), 0);
        let after = fanout.subscribe([9]);
        assert_eq!(after.try_next(), Some(Ok(9)));
        assert!(after.is_finished());
    }

    #[test]
    fn a_reader_that_never_reads_costs_at_most_the_capacity_and_learns_what_it_missed() {
        let mut fanout = Fanout::with_capacity(3);
        let idle = fanout.subscribe([]);
        let keen = fanout.subscribe([]);
        let mut seen = Vec::new();
        for i in 0..1000 {
            fanout.publish(i);
            seen.extend(std::iter::from_fn(|| keen.try_next()));
            assert!(lock(&idle.queue).items.len() <= 3, "bounded at every step");
        }
        // A reader that keeps up sees everything.
        assert_eq!(seen, (0..1000).map(Ok).collect::<Vec<_>>());
        // One that never read sees how many it missed, then the newest three.
        fanout.close();
        let rest: Vec<_> = std::iter::from_fn(|| idle.try_next()).collect();
        assert_eq!(rest, [Err(Lagged(997)), Ok(997), Ok(998), Ok(999)]);
        assert!(idle.is_finished());
    }
}
