//! [`Subscription`]: a bounded stream of facts for one reader, and the driver's [`Fanout`].

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::block;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
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

    /// The next item, blocking the calling thread until one comes; `None` once the stream has
    /// ended. For callers outside any async runtime (inside one, use [`next`](Self::next)).
    pub fn recv(&self) -> Option<Result<T, Lagged>> {
        block::block_on(std::future::poll_fn(|cx| self.poll_next(cx)))
    }

    /// The next item, blocking at most `timeout`; `None` on timeout or at the end (tell them
    /// apart with [`is_finished`](Self::is_finished)).
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Result<T, Lagged>> {
        block::block_until(std::future::poll_fn(|cx| self.poll_next(cx)), timeout).flatten()
    }

    /// Every item, blocking for each, until the stream ends.
    pub fn iter(&self) -> impl Iterator<Item = Result<T, Lagged>> + '_ {
        std::iter::from_fn(|| self.recv())
    }

    /// The items queued now, without waiting.
    pub fn try_iter(&self) -> impl Iterator<Item = Result<T, Lagged>> + '_ {
        std::iter::from_fn(|| self.try_next())
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
    use super::*;

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
