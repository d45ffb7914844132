//! [`Tether`]: the handle the application holds. Every call is a message to the driver task,
//! which alone owns the core session.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_channel::{Receiver, Sender};
use futures_lite::future;
use serde_json::Value;
use tether_core::batch::{EnqueueError, Event, EventId, PreparedEvent};
use tether_core::session::{DeliveryStatus, SessionError, Status, Stream};

use crate::clock::wall_now;
use crate::driver::{Command, Item, Shared};
use crate::error::{Error, SendError};
use crate::report::{CloseReport, Counters};
use crate::stats::DriverStats;
use crate::url::SessionUrl;

/// A running session. Cheap to clone; every clone talks to the same driver task.
///
/// When the last clone is dropped the driver closes the session at once, handing back to
/// nobody: call [`close`](Tether::close) to get the undelivered events.
#[derive(Clone)]
pub struct Tether {
    pub(crate) commands: Sender<Command>,
    pub(crate) statuses: Receiver<Status>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) url: SessionUrl,
}

impl std::fmt::Debug for Tether {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tether")
            .field("url", &self.url)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

/// Rebuilds the caller's event from the form the core handed back (its `uuid` now fixed, so
/// sending it again is de-duplicated by the server).
fn event_from_prepared(prepared: &PreparedEvent) -> Event {
    let event =
        Event::new(prepared.payload().unwrap_or(Value::Null)).ephemeral(prepared.is_ephemeral());
    match prepared.replace_key() {
        Some(key) => event.replace_key(key),
        None => event,
    }
}

impl Tether {
    /// Queues an event for `/worker/events`, waiting up to `timeout` for room in the queue.
    /// Returns the id the core gave it; on a timeout the event comes back in the error.
    pub async fn send_event(
        &self,
        payload: Value,
        timeout: Duration,
    ) -> Result<EventId, SendError> {
        self.send(Event::new(payload), timeout).await
    }

    /// [`send_event`](Tether::send_event) with the core's event options (ephemeral, replace
    /// key).
    pub async fn send(&self, event: Event, timeout: Duration) -> Result<EventId, SendError> {
        self.enqueue(Stream::Events, Item::Event(event), timeout)
            .await
    }

    /// Queues an event for `/worker/internal-events`, waiting up to `timeout` for room.
    pub async fn send_internal_event(
        &self,
        payload: Value,
        timeout: Duration,
    ) -> Result<EventId, SendError> {
        self.enqueue(
            Stream::InternalEvents,
            Item::Event(Event::new(payload)),
            timeout,
        )
        .await
    }

    /// Queues a delivery acknowledgement for `/worker/events/delivery`, waiting up to `timeout`
    /// for room.
    pub async fn ack_delivery(
        &self,
        event_id: &str,
        status: DeliveryStatus,
        timeout: Duration,
    ) -> Result<EventId, SendError> {
        let item = Item::Ack {
            event_id: event_id.to_string(),
            status,
        };
        self.enqueue(Stream::Delivery, item, timeout).await
    }

    async fn enqueue(
        &self,
        stream: Stream,
        mut item: Item,
        timeout: Duration,
    ) -> Result<EventId, SendError> {
        let deadline = wall_now() + timeout;
        loop {
            // Listen before asking, so capacity freed in between is not missed.
            let listener = self.shared.capacity.listen();
            let (reply, answer) = async_channel::bounded(1);
            if let Err(e) = self
                .commands
                .send(Command::Enqueue {
                    stream,
                    item,
                    reply,
                })
                .await
            {
                let event = match e.into_inner() {
                    Command::Enqueue { item, .. } => item_event(item),
                    _ => None,
                };
                return Err(SendError::DriverGone { event });
            }
            let error = match answer.recv().await {
                Ok(Ok(id)) => return Ok(id),
                Ok(Err(SessionError::Enqueue { error, .. })) => error,
                Ok(Err(SessionError::Ended(status))) => {
                    return Err(SendError::Ended {
                        status,
                        event: None,
                    })
                }
                Ok(Err(other)) => {
                    return Err(SendError::Refused(EnqueueError::Unserializable {
                        message: other.to_string(),
                    }))
                }
                Err(_) => return Err(SendError::DriverGone { event: None }),
            };
            let prepared = match error {
                EnqueueError::QueueFull { event } => event,
                EnqueueError::Closed { event } if self.status().is_terminal() => {
                    return Err(SendError::Ended {
                        status: self.status(),
                        event: Some(event_from_prepared(&event)),
                    });
                }
                other => return Err(SendError::Refused(other)),
            };
            item = match stream {
                Stream::Delivery => match prepared.payload() {
                    Ok(Value::Object(map)) => Item::Ack {
                        event_id: map
                            .get("event_id")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                        status: match map.get("status").and_then(Value::as_str) {
                            Some("processing") => DeliveryStatus::Processing,
                            Some("processed") => DeliveryStatus::Processed,
                            _ => DeliveryStatus::Received,
                        },
                    },
                    _ => Item::Event(event_from_prepared(&prepared)),
                },
                _ => Item::Event(event_from_prepared(&prepared)),
            };
            // Wait for room, or give the event back at the deadline.
            let room = future::or(
                async {
                    listener.await;
                    true
                },
                async {
                    async_io::Timer::at(deadline).await;
                    false
                },
            )
            .await;
            if !room {
                return Err(SendError::Timeout {
                    event: item_event(item).unwrap_or_else(|| Event::new(Value::Null)),
                });
            }
        }
    }

    /// A patch to the worker document: top-level keys replace, `external_metadata` and
    /// `internal_metadata` merge (RFC 7396). Coalesced with what is pending; never waits for
    /// the network. Once it returns, [`state`](Tether::state) includes it.
    pub async fn patch_state(&self, patch: Value) -> Result<(), Error> {
        let (reply, answer) = async_channel::bounded(1);
        self.command(Command::Patch { patch, reply }).await?;
        match answer.recv().await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(SessionError::State(e))) => Err(Error::State(e)),
            Ok(Err(SessionError::Ended(status))) => Err(Error::Ended(status)),
            Ok(Err(_)) | Err(_) => Err(Error::DriverGone),
        }
    }

    /// The worker document as the server will hold it once every pending patch has landed
    /// (the optimistic view).
    pub async fn state(&self) -> Result<Value, Error> {
        let (reply, answer) = async_channel::bounded(1);
        self.command(Command::State { reply }).await?;
        answer.recv().await.map_err(|_| Error::DriverGone)
    }

    /// What the session has done so far.
    pub async fn counters(&self) -> Result<Counters, Error> {
        let (reply, answer) = async_channel::bounded(1);
        self.command(Command::Counters { reply }).await?;
        answer.recv().await.map_err(|_| Error::DriverGone)
    }

    /// The current status.
    pub fn status(&self) -> Status {
        self.shared.status()
    }

    /// The status stream: every change, in order. The channel keeps the last 64; a reader that
    /// falls further behind loses the oldest (never the latest). Clones of the receiver share
    /// one stream: each status goes to one of them.
    pub fn statuses(&self) -> Receiver<Status> {
        self.statuses.clone()
    }

    /// Waits until everything given before this call is delivered or handed back and every
    /// patch has landed, or fails with [`Error::Timeout`] after `timeout`.
    pub async fn flush(&self, timeout: Duration) -> Result<(), Error> {
        let (reply, answer) = async_channel::bounded(1);
        let deadline = wall_now() + timeout;
        self.command(Command::Flush { deadline, reply }).await?;
        match answer.recv().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::Timeout),
            Err(_) => Err(Error::DriverGone),
        }
    }

    /// Stops intake, keeps delivering until everything is out or `timeout` passes, then hands
    /// back what is left. Returns once the session has ended (also at once if it already had:
    /// superseded or given up), with everything it handed back over its life.
    pub async fn close(&self, timeout: Duration) -> Result<CloseReport, Error> {
        let (reply, answer) = async_channel::bounded(1);
        let deadline = wall_now() + timeout;
        self.command(Command::Close { deadline, reply }).await?;
        answer.recv().await.map_err(|_| Error::DriverGone)
    }

    /// Times the driver task was polled: an idle session wakes only for its heartbeats.
    pub fn driver_wakeups(&self) -> u64 {
        self.shared.wakeups.load(Ordering::Relaxed)
    }

    /// The driver's measurements: wake-ups, timer re-arms, heartbeat lateness.
    pub fn driver_stats(&self) -> DriverStats {
        let mut stats = self.shared.stats().clone();
        stats.wakeups = self.driver_wakeups();
        stats
    }

    async fn command(&self, command: Command) -> Result<(), Error> {
        self.commands
            .send(command)
            .await
            .map_err(|_| Error::DriverGone)
    }
}

fn item_event(item: Item) -> Option<Event> {
    match item {
        Item::Event(event) => Some(event),
        Item::Ack { event_id, status } => Some(Event::new(serde_json::json!({
            "event_id": event_id,
            "status": status.as_str(),
        }))),
    }
}
