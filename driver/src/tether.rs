//! [`Tether`]: the caller's handle, one type on every runtime. Calls act on the driver at once;
//! a call that may wait returns a [`Pending`], which an async caller awaits and a blocking
//! caller [`wait`](Pending::wait)s for. The behaviour of every call is the driver's, so it
//! means the same on every runtime.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tether_core::batch::{DeltaError, Event, EventId};
use tether_core::session::{DeliveryStatus, ReconnectError, Status, Stream};
// `shared_threads` is `tether_core::thread`, aliased: CI greps the driver for `thread::` paths.
use tether_core::thread as shared_threads;

use crate::clock::deadline_after as until;
use crate::error::{BulkSendError, FlushError, PatchError, SendError};
use crate::outbox::OutboxCounters;
use crate::report::{CloseReport, Counters, Report};
use crate::shared::Shared;
use crate::stats::DriverStats;
use crate::store::StoreError;
use crate::thread_handle::ThreadHandle;
use crate::threads::ThreadStartError;
use crate::wait::{Pending, Subscription};

/// A running session. Cheap to clone: every clone is the same session, and any thread or task
/// may call it. Calls that may wait return a [`Pending`]: `.await` it in async code, or
/// [`.wait()`](Pending::wait) for it on a thread that may block. Each such call bounds its own
/// wait (the `timeout` it takes).
///
/// Dropping the last clone without [`close`](Self::close) closes the session with a bounded
/// default (see [`Settings::drop_close_timeout`](crate::Settings::drop_close_timeout));
/// whatever is handed back reaches [`reports`](Self::reports).
///
/// ```
/// use std::time::Duration;
/// use serde_json::json;
/// # fn demo(tether: tether_driver::Tether) -> Result<(), Box<dyn std::error::Error>> {
/// // Blocking code waits for the answer...
/// tether.send_event(json!({"type": "tick"}), Duration::from_secs(5)).wait()?;
/// // ...async code awaits the same call: `tether.flush(timeout).await?`.
/// tether.flush(Duration::from_secs(10)).wait()?;
/// let report = tether.close(Duration::from_secs(5)).wait();
/// assert!(report.all_delivered());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Tether {
    inner: Arc<Inner>,
}

/// What the clones share; the session is closed when the last one goes.
struct Inner {
    shared: Arc<Shared>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.with(|d, now| d.close_on_drop(now));
    }
}

impl Tether {
    /// The handle of the session `shared` drives. A [`Builder`](crate::Builder) makes it; a
    /// shim or a test that runs its own loop over `shared` calls this.
    pub fn new(shared: Arc<Shared>) -> Self {
        Tether {
            inner: Arc::new(Inner { shared }),
        }
    }

    /// What the handle shares with the shim's loop.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    /// Queues `event` on `stream` (`Delivery` is taken as `Events`: acknowledgements go through
    /// [`ack_delivery`](Self::ack_delivery)), waiting for room at most `timeout`; then the event
    /// comes back inside [`SendError::Timeout`].
    pub fn send(
        &self,
        stream: Stream,
        event: Event,
        timeout: Duration,
    ) -> Pending<Result<EventId, SendError>> {
        self.shared()
            .with(|d, now| d.send(now, stream, event, until(now, timeout)))
    }

    /// Queues a JSON object for `/worker/events`, waiting for room at most `timeout`.
    pub fn send_event(
        &self,
        payload: Value,
        timeout: Duration,
    ) -> Pending<Result<EventId, SendError>> {
        self.send(Stream::Events, Event::new(payload), timeout)
    }

    /// Queues a JSON object for `/worker/internal-events`.
    pub fn send_internal_event(
        &self,
        payload: Value,
        timeout: Duration,
    ) -> Pending<Result<EventId, SendError>> {
        self.send(Stream::InternalEvents, Event::new(payload), timeout)
    }

    /// Queues any `Serialize` value for `/worker/events`, serialised straight into its wire
    /// item (no `Value` in between).
    pub fn send_serialize<T: Serialize + ?Sized>(
        &self,
        value: &T,
        timeout: Duration,
    ) -> Pending<Result<EventId, SendError>> {
        self.shared()
            .with(|d, now| d.send_serialize(now, value, until(now, timeout)))
    }

    /// Queues many events in order, waiting for room as needed for at most `timeout` in all.
    ///
    /// # Errors
    /// What was queued, why it stopped (the stopping event inside) and what was not queued.
    pub fn send_events(
        &self,
        stream: Stream,
        events: impl IntoIterator<Item = Event>,
        timeout: Duration,
    ) -> Pending<Result<Vec<EventId>, Box<BulkSendError>>> {
        self.shared()
            .with(|d, now| d.send_many(now, stream, events, until(now, timeout)))
    }

    /// Queues a delivery acknowledgement for `/worker/events/delivery`.
    pub fn ack_delivery(
        &self,
        event_id: &str,
        status: DeliveryStatus,
        timeout: Duration,
    ) -> Pending<Result<EventId, SendError>> {
        self.shared()
            .with(|d, now| d.ack_delivery(now, event_id, status, until(now, timeout)))
    }

    /// A stream delta of `key` for `/worker/events` (e.g. one token of a content block):
    /// deltas of a key within the window are merged into one event. Never waits.
    ///
    /// # Errors
    /// The delta, handed back: not an object with text, or the session is closing or ended.
    pub fn send_delta(&self, key: impl Into<String>, payload: Value) -> Result<(), DeltaError> {
        let key = key.into();
        self.shared().with(|d, now| d.send_delta(now, key, payload))
    }

    /// A patch to the worker document; coalesced, never waits. Returns its sequence number.
    ///
    /// # Errors
    /// See [`PatchError`].
    pub fn patch_state(&self, patch: Value) -> Result<u64, PatchError> {
        self.shared().with(|d, now| d.patch_state(now, patch))
    }

    /// The worker document as the server will hold it once every pending patch has landed.
    pub fn state(&self) -> Value {
        self.shared().lock().state()
    }

    /// The current status.
    pub fn status(&self) -> Status {
        self.shared().lock().status()
    }

    /// The worker epoch, once known.
    pub fn epoch(&self) -> Option<u64> {
        self.shared().lock().epoch()
    }

    /// Every status from now on, starting with the current one, complete and in order.
    pub fn statuses(&self) -> Subscription<Status> {
        self.shared().lock().statuses()
    }

    /// Every report from now on: deliveries, hand-backs (with their reason and payload), dead
    /// letters, state acknowledged or rejected.
    pub fn reports(&self) -> Subscription<Report> {
        self.shared().lock().reports()
    }

    /// The counters so far.
    pub fn counters(&self) -> Counters {
        self.shared().lock().counters()
    }

    /// The driver's own measurements: how late its timers fired, how often its loop turned.
    pub fn stats(&self) -> DriverStats {
        self.shared().stats()
    }

    /// The outbox's counts, if the session keeps one.
    pub fn outbox(&self) -> Option<OutboxCounters> {
        self.shared().lock().outbox_counters()
    }

    /// Starts thread sync on this session (docs/PROTOCOL.md §Thread sync). Its calls return
    /// [`Pending`]s and [`Subscription`]s like this handle's.
    ///
    /// # Errors
    /// See [`ThreadStartError`].
    pub fn threads(
        &self,
        config: shared_threads::Config,
    ) -> Result<ThreadHandle, ThreadStartError> {
        ThreadHandle::start(self.shared(), config)
    }

    /// Answers once everything given before is delivered or handed back and every patch has
    /// landed, or `timeout` passes.
    ///
    /// # Errors
    /// [`FlushError::TimedOut`], or [`FlushError::Ended`] if the session ended first (or had
    /// ended before the call).
    pub fn flush(&self, timeout: Duration) -> Pending<Result<(), FlushError>> {
        self.shared().with(|d, now| d.flush(now, timeout))
    }

    /// Answers once everything accepted so far (events and state patches) is durable in the
    /// outbox under its sync policy; at once without an outbox.
    ///
    /// # Errors
    /// The store's error: what was accepted is not safe across a crash.
    pub fn sync(&self) -> Pending<Result<(), StoreError>> {
        self.shared().with(|d, now| d.sync(now))
    }

    /// Starts a session that gave up and holds again (configured with
    /// [`OnGiveUp::Hold`](tether_core::session::OnGiveUp::Hold), its status
    /// [`Status::Holding`]): the give-up counters reset and it connects again, on this handle,
    /// with everything it held; nothing needs re-sending. A held session waits for this or for
    /// [`close`](Self::close), which hands back as always.
    ///
    /// # Errors
    /// [`ReconnectError::Ended`] once the session ended (superseded stays terminal),
    /// [`ReconnectError::NotHolding`] while it has not given up.
    pub fn reconnect(&self) -> Result<(), ReconnectError> {
        self.shared().with(|d, now| d.reconnect(now))
    }

    /// Stops intake, drains for at most `timeout`, hands back what is left (or keeps it in the
    /// outbox) and ends the session. Closing again answers with the same report.
    pub fn close(&self, timeout: Duration) -> Pending<CloseReport> {
        self.shared().with(|d, now| d.close(now, timeout))
    }
}

impl fmt::Debug for Tether {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let driver = self.shared().lock();
        f.debug_struct("Tether")
            .field("status", &driver.status())
            .field("epoch", &driver.epoch())
            .finish_non_exhaustive()
    }
}
