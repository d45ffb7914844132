//! The driver thread and the HTTP workers: a timer, a way to wait, and a transport.
//!
//! ```text
//!   Tether (any thread) ──call──▶ Shared (the driver, locked) ◀──answer── HTTP workers
//!                                      │ notify                              ▲
//!                                      ▼                                     │
//!   driver thread: shared.turn(), its actions ──Send──▶ job queue ───────────┘
//!                  wait on the condvar until notified or the turn's deadline
//! ```

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Instant;

use tether_driver::{Action, Origin, Shared};

use crate::transport::{Pool, Transport};

/// The shim's clock.
#[allow(clippy::disallowed_methods, reason = "the shim is the clock's edge")]
pub(crate) fn now() -> Instant {
    Instant::now()
}

/// Wakes the driver thread: set by a call or an answer that made work for it.
#[derive(Default)]
pub(crate) struct Wakeup {
    woken: Mutex<bool>,
    cv: Condvar,
}

impl Wakeup {
    pub(crate) fn wake(&self) {
        *self.woken.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.cv.notify_one();
    }

    /// Waits until woken or `until` (forever with `None`).
    fn wait(&self, until: Option<Instant>) {
        let mut woken = self.woken.lock().unwrap_or_else(PoisonError::into_inner);
        while !*woken {
            match until {
                None => woken = self.cv.wait(woken).unwrap_or_else(PoisonError::into_inner),
                Some(at) => {
                    let left = at.saturating_duration_since(now());
                    if left.is_zero() {
                        break;
                    }
                    woken = self
                        .cv
                        .wait_timeout(woken, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
        *woken = false;
    }
}

/// Runs the driver until the session has ended; `origin` is where the driver's time starts on
/// this shim's clock.
pub(crate) fn run(
    shared: Arc<Shared>,
    origin: Origin,
    wakeup: Arc<Wakeup>,
    transport: Arc<dyn Transport>,
) {
    let mut pool = Pool::new(transport, Arc::clone(&shared));
    loop {
        let turn = shared.turn();
        for action in turn.actions {
            match action {
                Action::Send(request) => pool.submit(request),
                Action::Cancel(id) => pool.cancel(id),
                _ => {}
            }
        }
        if turn.finished {
            return;
        }
        wakeup.wait(turn.deadline.and_then(|at| origin.to_std(at)));
    }
}
