//! [`Shared`]: the driver, the shim's clock and the shim's notifier, shared by the caller's
//! [`Tether`](crate::Tether), the shim's loop and its transport. A call locks the driver, acts at
//! once, and wakes the loop only when it made work for it; the loop takes its work in one
//! [`Shared::turn`].

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tether_core::session::TransportError;
use tether_core::{Instant, Poll, RequestId};

use crate::action::Action;
use crate::driver::Driver;
use crate::http::HttpResponse;
use crate::stats::DriverStats;

/// The shim's clock: its runtime's `now`.
pub type ClockFn = Box<dyn Fn() -> Instant + Send + Sync>;
/// Wakes the shim's loop.
pub type NotifyFn = Box<dyn Fn() + Send + Sync>;

/// The driver, the shim's clock and the shim's notifier, shared by the handle, the shim's loop
/// and its transport.
pub struct Shared {
    driver: Mutex<Driver>,
    clock: ClockFn,
    notify: NotifyFn,
    /// Times the shim's loop woke up: what an idle session costs.
    wakeups: AtomicU64,
}

impl Shared {
    /// Shares `driver`; `clock` reads the shim's runtime's time, `notify` wakes its loop.
    pub fn new(driver: Driver, clock: ClockFn, notify: NotifyFn) -> Arc<Self> {
        Arc::new(Shared {
            driver: Mutex::new(driver),
            clock,
            notify,
            wakeups: AtomicU64::new(0),
        })
    }

    /// Counts one wake-up of the shim's loop (it may turn several times per wake-up).
    pub fn note_wakeup(&self) {
        self.wakeups.fetch_add(1, Ordering::Relaxed);
    }

    /// The driver's measurements, with the loop's wake-ups.
    pub fn stats(&self) -> DriverStats {
        let mut stats = self.lock().stats();
        stats.wakeups = self.wakeups.load(Ordering::Relaxed);
        stats
    }

    /// The shim's time now.
    pub fn now(&self) -> Instant {
        (self.clock)()
    }

    /// Runs `f` on the driver at the shim's time, then wakes the shim's loop if `f` made work
    /// for it. The lock is never held across a wait: `f` cannot wait.
    pub fn with<R>(&self, f: impl FnOnce(&mut Driver, Instant) -> R) -> R {
        let now = self.now();
        let (result, wake) = {
            let mut driver = self.lock();
            let result = f(&mut driver, now);
            (result, driver.take_notify())
        };
        if wake {
            (self.notify)();
        }
        result
    }

    /// The driver, locked. The lock is never held across a wait.
    pub fn lock(&self) -> MutexGuard<'_, Driver> {
        self.driver.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One turn of a shim's loop, the same for every shim: the time, then every action the
    /// driver asks for (drained with [`Driver::poll`] until it names its next wake-up), all
    /// under one lock. The shim carries out the actions, then waits until the deadline or a
    /// notification, whichever comes first, and turns again, until the turn says `finished`.
    pub fn turn(&self) -> Turn {
        let now = self.now();
        let mut driver = self.lock();
        driver.handle_timeout(now);
        let mut actions = Vec::new();
        let wake = loop {
            match driver.poll() {
                Poll::Output(action) => actions.push(action),
                Poll::Timeout(wake) => break wake,
            }
        };
        // The shim is about to look: nothing it must be woken for is pending.
        driver.take_notify();
        Turn {
            actions,
            deadline: wake.map(|w| w.at),
            finished: driver.is_finished(),
        }
    }

    /// A transport's answer to request `id`, handed to the driver at the shim's time; returns
    /// the actions it made (often the next batch), so a worker can carry them out itself.
    pub fn answer(
        &self,
        id: RequestId,
        result: Result<HttpResponse, TransportError>,
    ) -> Vec<Action> {
        self.with(|driver, now| {
            driver.handle_reply(now, id, result);
            std::iter::from_fn(|| driver.poll().output()).collect()
        })
    }
}

impl Shared {
    /// A store job's result, handed to the driver at the shim's time; returns the actions it
    /// made (held requests released by a commit, the next job).
    pub fn store_done(&self, done: crate::store_job::StoreDone) -> Vec<Action> {
        self.with(|driver, now| {
            driver.handle_store(now, done);
            std::iter::from_fn(|| driver.poll().output()).collect()
        })
    }
}

/// What one [`Shared::turn`] found.
#[derive(Debug)]
#[must_use = "the actions must be carried out"]
pub struct Turn {
    /// Carry these out, in order: each `Send`'s answer goes back through
    /// [`Shared::answer`].
    pub actions: Vec<Action>,
    /// Turn again at this time at the latest (`None`: only when notified).
    pub deadline: Option<Instant>,
    /// The session has ended and every waiter was answered: the loop may stop.
    pub finished: bool,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}
