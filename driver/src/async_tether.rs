//! [`AsyncTether`]: the caller's handle on every async runtime (`tether-smol` and `tether-tokio`
//! re-export it as their `Tether`). Every call means what it means on every runtime: the
//! behaviour is the [`Driver`](crate::Driver)'s; this only awaits.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{BulkSendError, FlushError, PatchError, SendError};
use crate::handle::Handle;
use crate::report::{CloseReport, Counters, Report};
use crate::task::Wakeup;
use crate::wait::Subscription;
use crate::{ThreadHandle, ThreadStartError};
use serde::Serialize;
use serde_json::Value;
use tether_core::batch::{Event, EventId};
use tether_core::session::{DeliveryStatus, Status, Stream};
use tether_core::thread::ThreadSyncConfig;

/// A running session. Cheap to clone; every clone is the same session. Dropping the last clone
/// without [`close`](Self::close) closes the session with a bounded default; whatever is
/// handed back reaches [`reports`](Self::reports).
#[derive(Clone)]
pub struct AsyncTether {
    handle: Arc<Handle>,
    wakeup: Arc<Wakeup>,
}

impl AsyncTether {
    /// The handle of a session driven by a [`DriverTask`](crate::DriverTask) woken by
    /// `wakeup`.
    pub fn new(handle: Handle, wakeup: Arc<Wakeup>) -> Self {
        AsyncTether {
            handle: Arc::new(handle),
            wakeup,
        }
    }

    /// Queues a JSON object for `/worker/events`, waiting while the queue is full for at most
    /// `timeout`; then the event comes back inside [`SendError::Timeout`].
    pub async fn send_event(
        &self,
        payload: Value,
        timeout: Duration,
    ) -> Result<EventId, SendError> {
        self.handle.send_event(payload, timeout).await
    }

    /// Queues any `Serialize` value for `/worker/events`, serialised straight into its wire item.
    pub async fn send_serialize<T: Serialize + ?Sized>(
        &self,
        value: &T,
        timeout: Duration,
    ) -> Result<EventId, SendError> {
        self.handle.send_serialize(value, timeout).await
    }

    /// Queues a JSON object for `/worker/internal-events`.
    pub async fn send_internal_event(
        &self,
        payload: Value,
        timeout: Duration,
    ) -> Result<EventId, SendError> {
        self.send(Stream::InternalEvents, Event::new(payload), timeout)
            .await
    }

    /// Queues `event` (with its options) on `stream`.
    pub async fn send(
        &self,
        stream: Stream,
        event: Event,
        timeout: Duration,
    ) -> Result<EventId, SendError> {
        self.handle.send(stream, event, timeout).await
    }

    /// Queues many events in order, waiting for room as needed for at most `timeout` in all.
    pub async fn send_events(
        &self,
        stream: Stream,
        events: impl IntoIterator<Item = Event>,
        timeout: Duration,
    ) -> Result<Vec<EventId>, Box<BulkSendError>> {
        self.handle.send_many(stream, events, timeout).await
    }

    /// Queues a delivery acknowledgement for `/worker/events/delivery`.
    pub async fn ack_delivery(
        &self,
        event_id: &str,
        status: DeliveryStatus,
        timeout: Duration,
    ) -> Result<EventId, SendError> {
        self.handle.ack_delivery(event_id, status, timeout).await
    }

    /// A stream delta of `key` for `/worker/events` (e.g. one token of a content block):
    /// deltas of a key within the window are merged into one event. Never waits.
    ///
    /// # Errors
    /// The delta, handed back: not an object with text, or the session is closing or ended.
    pub fn send_delta(
        &self,
        key: impl Into<String>,
        payload: Value,
    ) -> Result<(), tether_core::batch::DeltaError> {
        self.handle.send_delta(key, payload)
    }

    /// A patch to the worker document; coalesced, never waits. Returns its sequence number.
    pub fn patch_state(&self, patch: Value) -> Result<u64, PatchError> {
        self.handle.patch_state(patch)
    }

    /// The worker document as the server will hold it once every pending patch has landed.
    pub fn state(&self) -> Value {
        self.handle.state()
    }

    /// The current status.
    pub fn status(&self) -> Status {
        self.handle.status()
    }

    /// The worker epoch, once known.
    pub fn epoch(&self) -> Option<u64> {
        self.handle.epoch()
    }

    /// Every status from now on, starting with the current one, complete and in order.
    pub fn statuses(&self) -> Statuses {
        self.handle.statuses()
    }

    /// Every report from now on: deliveries, hand-backs, state acknowledged or rejected.
    pub fn reports(&self) -> Reports {
        self.handle.reports()
    }

    /// The counters so far.
    pub fn counters(&self) -> Counters {
        self.handle.counters()
    }

    /// The driver's own measurements (how late its timers fired).
    pub fn driver_stats(&self) -> crate::DriverStats {
        self.handle.stats()
    }

    /// How many times the driver future was polled: its idle cost.
    pub fn driver_polls(&self) -> u64 {
        self.wakeup.polls()
    }

    /// Starts thread sync on this session (docs/PROTOCOL.md §Thread sync). The handle's answers
    /// are futures and its streams have `next()`: await them here.
    pub fn start_threads(
        &self,
        config: ThreadSyncConfig,
    ) -> Result<ThreadHandle, ThreadStartError> {
        self.handle.start_threads(config)
    }

    /// Waits until everything given before is delivered or handed back and every patch has
    /// landed, for at most `timeout`.
    ///
    /// # Errors
    /// [`FlushError::TimedOut`], or [`FlushError::Ended`] if the session ended first (or had
    /// ended before the call).
    pub async fn flush(&self, timeout: Duration) -> Result<(), FlushError> {
        self.handle.flush(timeout).await
    }

    /// Stops intake, drains for at most `timeout`, hands back what is left and ends the
    /// session. Closing again answers with the same report.
    pub async fn close(&self, timeout: Duration) -> CloseReport {
        self.handle.close(timeout).await
    }
}

impl fmt::Debug for AsyncTether {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tether")
            .field("status", &self.status())
            .field("epoch", &self.epoch())
            .finish_non_exhaustive()
    }
}

/// The status stream of a session, async: `next().await` or any `Stream` combinator. Every
/// item, in order; it ends once the session has ended and everything was read.
pub type Statuses = Subscription<Status>;
/// The report stream of a session, async, like [`Statuses`].
pub type Reports = Subscription<Report>;
