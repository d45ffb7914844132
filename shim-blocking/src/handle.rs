//! [`Tether`]: the caller's handle to a running session.

use std::collections::VecDeque;
use std::fmt;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;
use tether_core::batch::{Event, EventId};
use tether_core::session::{DeliveryStatus, Status, Stream};

use crate::builder::Builder;
use crate::clock::std_now;
use crate::driver::{lock, Bulk, BulkStop, Command, Msg, Offer, Shared};
use crate::error::{BulkSendError, FlushError, PatchError, SendError};
use crate::report::{CloseReport, Counters};

/// A running session: a driver thread owns the core's session, HTTP worker threads move its
/// requests. Every method may be called from any thread (`Tether` is `Send + Sync`).
///
/// [`close`](Self::close) ends it and hands back a [`CloseReport`]. Dropping it without closing
/// closes it at once (a zero timeout) and throws the report away.
pub struct Tether {
    tx: Sender<Msg>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Mutex<Shared>>,
}

impl Tether {
    /// Starts setting up a session at `url`, e.g.
    /// `http://127.0.0.1:8787/v1/code/sessions/{session_id}`.
    pub fn builder(url: impl Into<String>) -> Builder {
        Builder::new(url)
    }

    pub(crate) fn new(tx: Sender<Msg>, thread: JoinHandle<()>, shared: Arc<Mutex<Shared>>) -> Self {
        Tether {
            tx,
            thread: Some(thread),
            shared,
        }
    }

    /// Queues an event for `/worker/events`; it must be a JSON object. Blocks while the queue
    /// is full, at most `timeout`; then the event comes back in [`SendError::Timeout`]. A bad
    /// event (not an object, too large) is refused at once, inside the error.
    pub fn send_event(&self, payload: Value, timeout: Duration) -> Result<EventId, SendError> {
        self.send(Stream::Events, Event::new(payload), timeout)
    }

    /// Queues an event for `/worker/internal-events`, as [`send_event`](Self::send_event).
    pub fn send_internal_event(
        &self,
        payload: Value,
        timeout: Duration,
    ) -> Result<EventId, SendError> {
        self.send(Stream::InternalEvents, Event::new(payload), timeout)
    }

    /// Queues an [`Event`] built with options (ephemeral, replace key) on `stream`
    /// ([`Stream::Events`] or [`Stream::InternalEvents`]; acknowledgements go through
    /// [`ack_delivery`](Self::ack_delivery)).
    pub fn send(
        &self,
        stream: Stream,
        event: Event,
        timeout: Duration,
    ) -> Result<EventId, SendError> {
        let stream = match stream {
            Stream::Delivery => Stream::Events,
            other => other,
        };
        self.offer(stream, Offer::Event(event), timeout)
    }

    /// Queues many events for `stream` in order, with one round trip to the driver for as many
    /// as fit; where the queue is full it blocks as [`send`](Self::send) does, all of them
    /// sharing one `timeout`. It stops at the first event refused (or still blocked at the
    /// timeout): the error holds the ids of those queued, that event, and the rest.
    ///
    /// Cheaper per event than [`send_event`](Self::send_event) in a loop, which pays a thread
    /// hand-off for each event.
    pub fn send_events(
        &self,
        stream: Stream,
        events: impl IntoIterator<Item = Event>,
        timeout: Duration,
    ) -> Result<Vec<EventId>, Box<BulkSendError>> {
        let stream = match stream {
            Stream::Delivery => Stream::Events,
            other => other,
        };
        let until = std_now().checked_add(timeout);
        let mut pending: VecDeque<Event> = events.into_iter().collect();
        let mut sent = Vec::with_capacity(pending.len());
        while !pending.is_empty() {
            let (reply, answer) = mpsc::sync_channel(1);
            let command = Command::OfferMany {
                stream,
                events: std::mem::take(&mut pending),
                reply,
            };
            let bulk = match self.tx.send(Msg::Command(command)) {
                Ok(()) => answer.recv().ok(),
                Err(mpsc::SendError(Msg::Command(Command::OfferMany { events, .. }))) => {
                    pending = events;
                    None
                }
                Err(_) => unreachable!("the command sent is the command returned"),
            };
            let Some(Bulk { ids, stop, rest }) = bulk else {
                let first = pending
                    .pop_front()
                    .unwrap_or_else(|| Event::new(Value::Null));
                return Err(Box::new(BulkSendError {
                    sent,
                    error: self.ended(Offer::Event(first)),
                    unsent: pending.into(),
                }));
            };
            sent.extend(ids);
            pending = rest;
            match stop {
                None => {}
                Some(BulkStop::Refused(error)) => {
                    return Err(Box::new(BulkSendError {
                        sent,
                        error,
                        unsent: pending.into(),
                    }))
                }
                Some(BulkStop::Full) => {
                    let Some(first) = pending.pop_front() else {
                        break;
                    };
                    let left = until.map_or(timeout, |u| u.saturating_duration_since(std_now()));
                    match self.offer(stream, Offer::Event(first), left) {
                        Ok(id) => sent.push(id),
                        Err(error) => {
                            return Err(Box::new(BulkSendError {
                                sent,
                                error,
                                unsent: pending.into(),
                            }))
                        }
                    }
                }
            }
        }
        Ok(sent)
    }

    /// Queues a delivery acknowledgement for `/worker/events/delivery`, blocking at most
    /// `timeout` while that queue is full.
    pub fn ack_delivery(
        &self,
        event_id: &str,
        status: DeliveryStatus,
        timeout: Duration,
    ) -> Result<EventId, SendError> {
        let offer = Offer::Ack {
            event_id: event_id.to_owned(),
            status,
        };
        self.offer(Stream::Delivery, offer, timeout)
    }

    fn offer(&self, stream: Stream, offer: Offer, timeout: Duration) -> Result<EventId, SendError> {
        let until = std_now().checked_add(timeout).unwrap_or_else(|| {
            // A timeout too long to represent: wait as good as forever.
            std_now() + Duration::from_secs(100 * 365 * 24 * 3600)
        });
        let (reply, answer) = mpsc::sync_channel(1);
        let command = Command::Offer {
            stream,
            offer,
            until,
            reply,
        };
        match self.tx.send(Msg::Command(command)) {
            Ok(()) => answer.recv().unwrap_or_else(|_| {
                Err(SendError::Ended {
                    event: Event::new(Value::Null),
                    status: self.status(),
                })
            }),
            Err(mpsc::SendError(Msg::Command(Command::Offer { offer, .. }))) => {
                Err(self.ended(offer))
            }
            Err(_) => unreachable!("the command sent is the command returned"),
        }
    }

    fn ended(&self, offer: Offer) -> SendError {
        let event = match offer {
            Offer::Event(event) => event,
            Offer::Ack { event_id, status } => Event::new(serde_json::json!({
                "event_id": event_id,
                "status": status.as_str(),
            })),
        };
        SendError::Ended {
            event,
            status: self.status(),
        }
    }

    /// Applies a patch to the worker document: top-level keys replace, `external_metadata` and
    /// `internal_metadata` merge (RFC 7396). Coalesced with whatever is pending; never blocks
    /// on the network.
    pub fn patch_state(&self, patch: Value) -> Result<(), PatchError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.ask(Command::Patch { patch, reply }, answer)
            .unwrap_or_else(|| Err(PatchError::Ended(self.status())))
    }

    /// The worker document as the server will hold it once every pending patch has landed
    /// (`Value::Null` before the session has fetched it, or once the driver is gone).
    pub fn state(&self) -> Value {
        let (reply, answer) = mpsc::sync_channel(1);
        self.ask(Command::State(reply), answer)
            .unwrap_or(Value::Null)
    }

    /// The current status.
    pub fn status(&self) -> Status {
        lock(&self.shared).status
    }

    /// The worker epoch, once known.
    pub fn epoch(&self) -> Option<u64> {
        lock(&self.shared).epoch
    }

    /// A receiver of status changes: first the current status, then every change until the
    /// terminal one. Each call makes a new receiver.
    pub fn statuses(&self) -> Receiver<Status> {
        let (sender, receiver) = mpsc::channel();
        if let Err(mpsc::SendError(Msg::Command(Command::Subscribe(sender)))) =
            self.tx.send(Msg::Command(Command::Subscribe(sender)))
        {
            let _ = sender.send(self.status());
        }
        receiver
    }

    /// The counters now.
    pub fn counters(&self) -> Counters {
        let (reply, answer) = mpsc::sync_channel(1);
        self.ask(Command::Counters(reply), answer)
            .unwrap_or_default()
    }

    /// Waits until everything queued before this call is delivered or handed back and every
    /// patch has landed, at most `timeout` (the core decides when the timeout passed).
    pub fn flush(&self, timeout: Duration) -> Result<(), FlushError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.ask(Command::Flush { timeout, reply }, answer)
            .unwrap_or_else(|| Err(FlushError::Ended(self.status())))
    }

    /// Stops intake, drains for at most `timeout`, then hands back what is left. Returns when
    /// the session has ended: closed, or superseded / given up before.
    pub fn close(mut self, timeout: Duration) -> CloseReport {
        let (reply, answer) = mpsc::sync_channel(1);
        let command = Command::Close {
            timeout,
            reply: Some(reply),
        };
        let report = self
            .tx
            .send(Msg::Command(command))
            .ok()
            .and_then(|()| answer.recv().ok());
        let thread = self.thread.take();
        match (report, thread.map(JoinHandle::join)) {
            (Some(report), _) => report,
            (None, Some(Err(panic))) => std::panic::resume_unwind(panic),
            (None, _) => unreachable!("the driver answers a close before it stops"),
        }
    }

    fn ask<T>(&self, command: Command, answer: mpsc::Receiver<T>) -> Option<T> {
        self.tx.send(Msg::Command(command)).ok()?;
        answer.recv().ok()
    }
}

impl Drop for Tether {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            let command = Command::Close {
                timeout: Duration::ZERO,
                reply: None,
            };
            if self.tx.send(Msg::Command(command)).is_ok() {
                let _ = thread.join();
            }
        }
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
