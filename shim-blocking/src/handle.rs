//! [`Tether`]: the caller's handle, blocking. Every call means what it means on every runtime:
//! the behaviour is `tether-driver`'s; this only waits.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tether_core::batch::{Event, EventId};
use tether_core::session::{DeliveryStatus, Status, Stream};
use tether_core::thread::ThreadSyncConfig;
use tether_driver::{
    BulkSendError, CloseReport, Counters, FlushError, Handle, PatchError, SendError,
    ThreadStartError,
};

use crate::builder::Builder;
use crate::wait::{Reports, Statuses, Threads, block_on};

/// A running session. Every call may come from any thread and blocks at most its timeout.
///
/// Dropping it without [`close`](Self::close) closes the session with a bounded default (see
/// [`Settings::drop_close_timeout`](tether_driver::Settings::drop_close_timeout)); whatever is handed back reaches [`reports`](Self::reports).
pub struct Tether {
    handle: Handle,
}

impl Tether {
    /// Starts building a session at `url`.
    pub fn builder(url: impl Into<String>) -> Builder {
        Builder::new(url)
    }

    pub(crate) fn new(handle: Handle) -> Self {
        Tether { handle }
    }

    /// Queues a JSON object for `/worker/events`, blocking while the queue is full for at most
    /// `timeout`; then the event comes back inside [`SendError::Timeout`].
    pub fn send_event(&self, payload: Value, timeout: Duration) -> Result<EventId, SendError> {
        block_on(self.handle.send_event(payload, timeout))
    }

    /// Queues any `Serialize` value for `/worker/events`, serialised straight into its wire item.
    pub fn send_serialize<T: Serialize + ?Sized>(
        &self,
        value: &T,
        timeout: Duration,
    ) -> Result<EventId, SendError> {
        block_on(self.handle.send_serialize(value, timeout))
    }

    /// Queues a JSON object for `/worker/internal-events`.
    pub fn send_internal_event(
        &self,
        payload: Value,
        timeout: Duration,
    ) -> Result<EventId, SendError> {
        self.send(Stream::InternalEvents, Event::new(payload), timeout)
    }

    /// Queues `event` (with its options) on `stream`.
    pub fn send(
        &self,
        stream: Stream,
        event: Event,
        timeout: Duration,
    ) -> Result<EventId, SendError> {
        block_on(self.handle.send(stream, event, timeout))
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
    ) -> Result<Vec<EventId>, Box<BulkSendError>> {
        block_on(self.handle.send_many(stream, events, timeout))
    }

    /// Queues a delivery acknowledgement for `/worker/events/delivery`.
    pub fn ack_delivery(
        &self,
        event_id: &str,
        status: DeliveryStatus,
        timeout: Duration,
    ) -> Result<EventId, SendError> {
        block_on(self.handle.ack_delivery(event_id, status, timeout))
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

    /// A patch to the worker document; coalesced, never blocks. Returns its sequence number.
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
        Statuses::new(self.handle.statuses())
    }

    /// Every report from now on: deliveries, hand-backs (with their reason and payload),
    /// state acknowledged or rejected.
    pub fn reports(&self) -> Reports {
        Reports::new(self.handle.reports())
    }

    /// The counters so far.
    pub fn counters(&self) -> Counters {
        self.handle.counters()
    }

    /// The driver's own measurements (how late its timers fired).
    pub fn driver_stats(&self) -> tether_driver::DriverStats {
        self.handle.stats()
    }

    /// Starts thread sync on this session (docs/PROTOCOL.md §Thread sync).
    pub fn start_threads(&self, config: ThreadSyncConfig) -> Result<Threads, ThreadStartError> {
        self.handle.start_threads(config).map(Threads)
    }

    /// Blocks until everything given before is delivered or handed back and every patch has
    /// landed, for at most `timeout`.
    ///
    /// # Errors
    /// [`FlushError::TimedOut`], or [`FlushError::Ended`] if the session ended first (or had
    /// ended before the call).
    pub fn flush(&self, timeout: Duration) -> Result<(), FlushError> {
        block_on(self.handle.flush(timeout))
    }

    /// Waits until everything accepted so far is durable in the outbox (at once without one).
    ///
    /// # Errors
    /// The store's error: what was accepted is not safe across a crash.
    pub fn sync(&self) -> Result<(), tether_driver::StoreError> {
        block_on(self.handle.sync())
    }

    /// Stops intake, drains for at most `timeout`, hands back what is left and ends the
    /// session. Closing again answers with the same report.
    pub fn close(&self, timeout: Duration) -> CloseReport {
        block_on(self.handle.close(timeout))
    }
}

impl fmt::Debug for Tether {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tether")
            .field("status", &self.status())
            .field("epoch", &self.epoch())
            .finish_non_exhaustive()
    }
}
