//! The one place in this crate where a thread waits: the caller's own, when it asked to
//! ([`Pending::wait`](super::Pending::wait), [`Subscription::recv`](super::Subscription::recv)).
//! The driver never calls these; its loop belongs to the shim.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

/// A waiting thread's wake-up: a waker locks it and notifies. The waiter polls under the lock,
/// so a wake-up between its poll and its wait cannot be lost.
#[derive(Default)]
struct Signal {
    lock: Mutex<()>,
    woken: Condvar,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        drop(self.lock.lock().unwrap_or_else(PoisonError::into_inner));
        self.woken.notify_one();
    }
}

/// Parks this thread until `future` is ready.
pub(crate) fn block_on<F: Future + Unpin>(future: F) -> F::Output {
    park(future, None).unwrap_or_else(|| unreachable!("no deadline"))
}

/// Parks this thread until `future` is ready or `timeout` has passed.
pub(crate) fn block_until<F: Future + Unpin>(future: F, timeout: Duration) -> Option<F::Output> {
    park(future, Some(timeout))
}

/// The futures waited for here never wake themselves while polled (a waker called during the
/// poll would wait for the lock the poll holds). The caller's timeout is kept by std's condition
/// variable: this crate reads no clock.
fn park<F: Future + Unpin>(mut future: F, timeout: Option<Duration>) -> Option<F::Output> {
    // Most answers are ready at once (an event queued with room): no waker to build then.
    if let Poll::Ready(value) = Pin::new(&mut future).poll(&mut Context::from_waker(Waker::noop()))
    {
        return Some(value);
    }
    let signal = Arc::new(Signal::default());
    let waker = Waker::from(Arc::clone(&signal));
    let mut cx = Context::from_waker(&waker);
    let mut output = None;
    // Polled on every wake-up (spurious ones too): wait while it is pending.
    let pending = |(): &mut ()| match Pin::new(&mut future).poll(&mut cx) {
        Poll::Ready(value) => {
            output = Some(value);
            false
        }
        Poll::Pending => true,
    };
    let guard = signal.lock.lock().unwrap_or_else(PoisonError::into_inner);
    drop(match timeout {
        None => signal
            .woken
            .wait_while(guard, pending)
            .unwrap_or_else(PoisonError::into_inner),
        Some(timeout) => {
            signal
                .woken
                .wait_timeout_while(guard, timeout, pending)
                .unwrap_or_else(PoisonError::into_inner)
                .0
        }
    });
    output
}

#[cfg(test)]
mod tests {
    use super::super::subscription::Fanout;
    use super::*;
    use crate::wait::Pending;

    #[test]
    fn a_waiting_thread_gets_the_answer_another_thread_gives() {
        let (pending, completer) = Pending::new(|| 0);
        assert!(!completer.is_abandoned());
        let answer = std::thread::spawn(move || completer.complete(42));
        assert_eq!(pending.wait(), 42);
        answer.join().unwrap();

        let (pending, completer) = Pending::<i32>::new(|| -1);
        drop(pending);
        assert!(
            completer.is_abandoned(),
            "no one waits: a transport may skip the work"
        );
    }

    #[test]
    fn a_blocking_reader_gets_items_in_order_then_the_end_and_times_out_when_idle() {
        let mut fanout = Fanout::new();
        let reader = fanout.subscribe([0]);
        assert_eq!(reader.recv_timeout(Duration::from_millis(1)), Some(Ok(0)));
        assert_eq!(
            reader.recv_timeout(Duration::from_millis(1)),
            None,
            "nothing yet"
        );
        assert!(!reader.is_finished());
        let writer = std::thread::spawn(move || {
            for i in 1..=3 {
                fanout.publish(i);
            }
            fanout.close();
        });
        let items: Vec<_> = reader.iter().map(Result::unwrap).collect();
        assert_eq!(items, [1, 2, 3]);
        assert!(reader.is_finished());
        writer.join().unwrap();
    }
}
