//! [`Pending`]: an answer the driver gives later, and its [`Completer`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use super::block;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
    /// The completer is gone without an answer.
    dropped: bool,
}

/// The side of a [`Pending`] that answers it: the driver's, or a transport's (see
/// [`Pending::new`]). Dropping it unanswered resolves the pending with its fallback.
pub struct Completer<T> {
    slot: Option<Arc<Mutex<Slot<T>>>>,
}

impl<T> Completer<T> {
    /// Whether the waiter went away (its [`Pending`] was dropped): the answer would go
    /// nowhere, so work for it can be skipped.
    pub fn is_abandoned(&self) -> bool {
        self.slot
            .as_ref()
            .is_none_or(|slot| Arc::strong_count(slot) < 2)
    }

    /// Answers the waiter; a waiter that went away is no error.
    pub fn complete(mut self, value: T) {
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

/// An answer the driver gives later, on any runtime or none: `.await` it, [`wait`](Self::wait)
/// for it on a thread that may block, or poll it with [`try_take`](Self::try_take).
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

    /// A pending answer, its completer, and what it resolves to if the completer is dropped
    /// unanswered. Shims use it to hand a transport's answer across threads.
    pub fn new(fallback: impl FnOnce() -> T + Send + 'static) -> (Self, Completer<T>) {
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

    /// Blocks the calling thread until the answer comes; for callers outside any async runtime.
    /// Every call that returns a `Pending` bounds its own wait (a send's timeout, a flush's,
    /// a close's), so this returns within it. Inside an async task, `.await` instead: this
    /// would block the executor's thread.
    pub fn wait(self) -> T {
        block::block_on(self)
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
}
