//! The caller's handle, shared by every shim: calls lock the driver, act at once, and return
//! either the answer or a [`Pending`] one. The shim's loop is woken through the notifier it
//! gave, only when a call made work for it.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tether_core::batch::{Event, EventId};
use tether_core::session::{DeliveryStatus, RequestId, Status, Stream, TransportError};
use tether_core::{Instant, Poll};

use crate::action::Action;
use crate::driver::Driver;
use crate::error::{BulkSendError, FlushError, PatchError, SendError};
use crate::http::HttpResponse;
use crate::report::{CloseReport, Counters, Report};
use crate::stats::DriverStats;
use crate::wait::{Pending, Subscription};

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
}

impl Shared {
    /// Shares `driver`; `clock` reads the shim's runtime's time, `notify` wakes its loop.
    pub fn new(driver: Driver, clock: ClockFn, notify: NotifyFn) -> Arc<Self> {
        Arc::new(Shared {
            driver: Mutex::new(driver),
            clock,
            notify,
        })
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

use crate::clock::deadline_after as until;

/// The caller's handle to a running session, the same on every runtime. A shim wraps it,
/// waiting on its [`Pending`] answers by parking a thread or awaiting.
///
/// Dropping it without [`close`](Handle::close) closes the session with the drop timeout
/// (see [`Settings::drop_close_timeout`](crate::Settings::drop_close_timeout)); what is
/// handed back reaches the report stream.
pub struct Handle {
    shared: Arc<Shared>,
}

impl Handle {
    /// A handle on `shared`.
    pub fn new(shared: Arc<Shared>) -> Self {
        Handle { shared }
    }

    /// What the handle shares with the shim's loop.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Queues `event` on `stream` (`Delivery` is taken as `Events`: acknowledgements go through
    /// [`ack_delivery`](Self::ack_delivery)), waiting for room at most `timeout`.
    pub fn send(
        &self,
        stream: Stream,
        event: Event,
        timeout: Duration,
    ) -> Pending<Result<EventId, SendError>> {
        self.shared
            .with(|d, now| d.send(now, stream, event, until(now, timeout)))
    }

    /// Queues a JSON payload on `/worker/events`.
    pub fn send_event(
        &self,
        payload: Value,
        timeout: Duration,
    ) -> Pending<Result<EventId, SendError>> {
        self.send(Stream::Events, Event::new(payload), timeout)
    }

    /// Queues any `Serialize` value on `/worker/events`, serialised straight into its wire
    /// item (no `Value` in between).
    pub fn send_serialize<T: Serialize + ?Sized>(
        &self,
        value: &T,
        timeout: Duration,
    ) -> Pending<Result<EventId, SendError>> {
        self.shared
            .with(|d, now| d.send_serialize(now, value, until(now, timeout)))
    }

    /// Queues many events in order, waiting for room as needed for at most `timeout` in all.
    pub fn send_many(
        &self,
        stream: Stream,
        events: impl IntoIterator<Item = Event>,
        timeout: Duration,
    ) -> Pending<Result<Vec<EventId>, Box<BulkSendError>>> {
        self.shared
            .with(|d, now| d.send_many(now, stream, events, until(now, timeout)))
    }

    /// Queues a delivery acknowledgement for `/worker/events/delivery`.
    pub fn ack_delivery(
        &self,
        event_id: &str,
        status: DeliveryStatus,
        timeout: Duration,
    ) -> Pending<Result<EventId, SendError>> {
        self.shared
            .with(|d, now| d.ack_delivery(now, event_id, status, until(now, timeout)))
    }

    /// A stream delta of `key` for `/worker/events` (see [`Driver::send_delta`]).
    ///
    /// # Errors
    /// The delta, handed back.
    pub fn send_delta(
        &self,
        key: impl Into<String>,
        payload: Value,
    ) -> Result<(), tether_core::batch::DeltaError> {
        let key = key.into();
        self.shared.with(|d, now| d.send_delta(now, key, payload))
    }

    /// A patch to the worker document; coalesced, never blocks. Returns its sequence number.
    ///
    /// # Errors
    /// See [`PatchError`].
    pub fn patch_state(&self, patch: Value) -> Result<u64, PatchError> {
        self.shared.with(|d, now| d.patch_state(now, patch))
    }

    /// The worker document as the server will hold it once every pending patch has landed.
    pub fn state(&self) -> Value {
        self.shared.lock().state()
    }

    /// The current status.
    pub fn status(&self) -> Status {
        self.shared.lock().status()
    }

    /// The worker epoch, once known.
    pub fn epoch(&self) -> Option<u64> {
        self.shared.lock().epoch()
    }

    /// Every status from now on, starting with the current one, complete and in order.
    pub fn statuses(&self) -> Subscription<Status> {
        self.shared.lock().statuses()
    }

    /// Every report from now on: deliveries, hand-backs, state acknowledged or rejected.
    pub fn reports(&self) -> Subscription<Report> {
        self.shared.lock().reports()
    }

    /// The counters so far.
    pub fn counters(&self) -> Counters {
        self.shared.lock().counters()
    }

    /// The driver's own measurements (how late its timers fired).
    pub fn stats(&self) -> DriverStats {
        self.shared.lock().stats()
    }

    /// Waits until everything given before is delivered or handed back and every patch has
    /// landed, or `timeout` passes.
    pub fn flush(&self, timeout: Duration) -> Pending<Result<(), FlushError>> {
        self.shared.with(|d, now| d.flush(now, timeout))
    }

    /// Answers once everything accepted so far (events and state patches) is durable in the
    /// outbox under its sync policy; at once without an outbox.
    pub fn sync(&self) -> Pending<Result<(), crate::StoreError>> {
        self.shared.with(|d, now| d.sync(now))
    }

    /// The outbox's counts, if the session has one.
    pub fn outbox_counters(&self) -> Option<crate::OutboxCounters> {
        self.shared.lock().outbox_counters()
    }

    /// Stops intake, drains for at most `timeout`, and answers with the close report.
    pub fn close(&self, timeout: Duration) -> Pending<CloseReport> {
        self.shared.with(|d, now| d.close(now, timeout))
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.with(|d, now| d.close_on_drop(now));
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let driver = self.shared.lock();
        f.debug_struct("Handle")
            .field("status", &driver.status())
            .field("epoch", &driver.epoch())
            .finish_non_exhaustive()
    }
}
