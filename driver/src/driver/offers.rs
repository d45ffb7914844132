//! The send paths: an event offered to a stream's queue is queued, refused with a typed
//! error, or waits for room (in order, behind earlier waiters) until its timeout. Waiting offers
//! are resumed through `Session::resend`, so an event keeps its uuid and bytes.
use std::collections::VecDeque;

use serde::Serialize;
use serde_json::Value;
use tether_core::Instant;
use tether_core::batch::{self, Event, EventId};
use tether_core::session::{DeliveryStatus, Session, SessionError, Stream};

use super::Driver;
use super::waiter::{Blocked, Offered, Waiting};
use crate::error::{BulkSendError, Refused, SendError};
use crate::wait::Pending;

impl Driver {
    /// Offers `event` to `stream`, waiting for room until `until` (`None`: as long as it takes).
    pub fn send(
        &mut self,
        now: Instant,
        stream: Stream,
        event: Event,
        until: Option<Instant>,
    ) -> Pending<Result<EventId, SendError>> {
        self.now = now;
        let stream = uploadable(stream);
        if let Some(message) = self.store_failure() {
            return Pending::ready(Err(SendError::StoreFailed {
                event: Refused::Given(event),
                message,
            }));
        }
        let offered = if self.is_blocked(stream) {
            self.prepare(stream, event)
        } else {
            let core_now = now;
            let result = match stream {
                Stream::InternalEvents => self.session.send_internal_event(core_now, event),
                _ => self.session.send_event(core_now, event),
            };
            self.offered(result)
        };
        self.settle_offer(now, stream, offered, until)
    }

    /// Offers a value serialised straight into its wire item (the typed fast path) to
    /// `/worker/events`.
    pub fn send_serialize<T: Serialize + ?Sized>(
        &mut self,
        now: Instant,
        value: &T,
        until: Option<Instant>,
    ) -> Pending<Result<EventId, SendError>> {
        self.now = now;
        if let Some(message) = self.store_failure() {
            return Pending::ready(Err(match self.session.prepare_serialize(value) {
                Ok(event) => SendError::StoreFailed {
                    event: Refused::Prepared(event),
                    message,
                },
                Err(error) => match self.refused(error) {
                    Offered::Refused(error) => error,
                    _ => SendError::StoreFailed {
                        event: Refused::Given(Event::new(Value::Null)),
                        message,
                    },
                },
            }));
        }
        let offered = if self.is_blocked(Stream::Events) {
            match self.session.prepare_serialize(value) {
                Ok(prepared) => Offered::Full(prepared),
                Err(error) => self.refused(error),
            }
        } else {
            let core_now = now;
            let result = self.session.send_event_serialize(core_now, value);
            self.offered(result)
        };
        self.settle_offer(now, Stream::Events, offered, until)
    }

    /// Queues a delivery acknowledgement, waiting for room until `until`.
    pub fn ack_delivery(
        &mut self,
        now: Instant,
        event_id: &str,
        status: DeliveryStatus,
        until: Option<Instant>,
    ) -> Pending<Result<EventId, SendError>> {
        self.now = now;
        if let Some(message) = self.store_failure() {
            return Pending::ready(Err(SendError::StoreFailed {
                event: Refused::Given(Session::delivery_update(event_id, status)),
                message,
            }));
        }
        let offered = if self.is_blocked(Stream::Delivery) {
            self.prepare(Stream::Delivery, Session::delivery_update(event_id, status))
        } else {
            let core_now = now;
            let result = self.session.ack_delivery(core_now, event_id, status);
            self.offered(result)
        };
        self.settle_offer(now, Stream::Delivery, offered, until)
    }

    /// Offers many events in order; those that find the queue full wait for room (until
    /// `until`), and the rest follow them.
    pub fn send_many(
        &mut self,
        now: Instant,
        stream: Stream,
        events: impl IntoIterator<Item = Event>,
        until: Option<Instant>,
    ) -> Pending<Result<Vec<EventId>, Box<BulkSendError>>> {
        self.now = now;
        let stream = uploadable(stream);
        let mut rest: VecDeque<Event> = events.into_iter().collect();
        if let Some(message) = self.store_failure() {
            let first = rest.pop_front().unwrap_or_else(|| Event::new(Value::Null));
            return Pending::ready(Err(Box::new(BulkSendError {
                sent: Vec::new(),
                error: SendError::StoreFailed {
                    event: Refused::Given(first),
                    message,
                },
                unsent: rest.into(),
            })));
        }
        let mut ids = Vec::with_capacity(rest.len());
        let blocked_already = self.is_blocked(stream);
        while let Some(event) = rest.pop_front() {
            let offered = if blocked_already {
                self.prepare(stream, event)
            } else {
                let core_now = now;
                let result = match stream {
                    Stream::InternalEvents => self.session.send_internal_event(core_now, event),
                    _ => self.session.send_event(core_now, event),
                };
                self.offered(result)
            };
            match offered {
                Offered::Queued(id) => ids.push(id),
                Offered::Refused(error) => {
                    self.after_call();
                    return Pending::ready(Err(Box::new(BulkSendError {
                        sent: ids,
                        error,
                        unsent: rest.into(),
                    })));
                }
                Offered::Full(next) => {
                    if until.is_some_and(|u| u <= now) {
                        self.after_call();
                        return Pending::ready(Err(Box::new(BulkSendError {
                            sent: ids,
                            error: SendError::Timeout {
                                event: Refused::Prepared(next),
                            },
                            unsent: rest.into(),
                        })));
                    }
                    let status = self.session.status();
                    let (pending, reply) = Pending::new(move || {
                        Err(Box::new(BulkSendError {
                            sent: Vec::new(),
                            error: SendError::Ended {
                                event: Refused::Given(Event::new(Value::Null)),
                                status,
                            },
                            unsent: Vec::new(),
                        }))
                    });
                    self.blocked.push_back(Blocked {
                        stream,
                        waiting: Waiting::Bulk {
                            next,
                            rest,
                            ids,
                            reply,
                        },
                        until,
                    });
                    self.notify = true;
                    self.after_call();
                    return pending;
                }
            }
        }
        self.after_call();
        self.durable_bulk(ids)
    }

    pub(super) fn is_blocked(&self, stream: Stream) -> bool {
        self.blocked.iter().any(|b| b.stream == stream)
            || self.outbox.as_ref().is_some_and(|o| !o.replay_done())
    }

    /// Serialises `event` for `stream` without queueing it: others wait for room before it, and
    /// it waits behind them, in order.
    pub(super) fn prepare(&mut self, stream: Stream, event: Event) -> Offered {
        match self.session.prepare(stream, event) {
            Ok(prepared) => Offered::Full(prepared),
            Err(error) => self.refused(error),
        }
    }

    pub(super) fn offered(&mut self, result: Result<EventId, SessionError>) -> Offered {
        match result {
            Ok(id) => Offered::Queued(id),
            Err(error) => self.refused(error),
        }
    }

    pub(super) fn settle_offer(
        &mut self,
        now: Instant,
        stream: Stream,
        offered: Offered,
        until: Option<Instant>,
    ) -> Pending<Result<EventId, SendError>> {
        let pending = match offered {
            // Without an outbox the answer is known now: no shared slot to allocate.
            Offered::Queued(id) if self.outbox.is_none() => Pending::ready(Ok(id)),
            Offered::Queued(id) => {
                let (pending, reply) = Pending::new(move || Ok(id));
                self.complete_durable(stream, reply, id);
                pending
            }
            Offered::Refused(error) => Pending::ready(Err(error)),
            Offered::Full(event) if until.is_some_and(|u| u <= now) => {
                Pending::ready(Err(SendError::Timeout {
                    event: Refused::Prepared(event),
                }))
            }
            Offered::Full(event) => {
                let status = self.session.status();
                let (pending, reply) = Pending::new(move || {
                    Err(SendError::Ended {
                        event: Refused::Given(Event::new(Value::Null)),
                        status,
                    })
                });
                self.blocked.push_back(Blocked {
                    stream,
                    waiting: Waiting::One { event, reply },
                    until,
                });
                self.notify = true;
                pending
            }
        };
        self.after_call();
        pending
    }

    /// Tries waiting offers again, in order per stream, through `Session::resend` (their uuid
    /// and bytes kept).
    pub(super) fn retry_blocked(&mut self) {
        if !self.replay_outbox() {
            return; // new events wait until the stored outbox is back in the session
        }
        while self.room && !self.blocked.is_empty() {
            self.room = false;
            if self.session.status().is_terminal() {
                return; // `finish` answers them
            }
            let core_now = self.now;
            let mut full: Vec<Stream> = Vec::new();
            let mut kept = VecDeque::with_capacity(self.blocked.len());
            while let Some(b) = self.blocked.pop_front() {
                if full.contains(&b.stream) {
                    kept.push_back(b);
                    continue;
                }
                if let Some(b) = self.resume(core_now, b) {
                    full.push(b.stream);
                    kept.push_back(b);
                }
            }
            self.blocked = kept;
            self.drain();
        }
    }

    /// Pushes one waiting offer as far as room allows; gives it back if it is still waiting.
    pub(super) fn resume(&mut self, core_now: Instant, blocked: Blocked) -> Option<Blocked> {
        let Blocked {
            stream,
            waiting,
            until,
        } = blocked;
        match waiting {
            Waiting::One { event, reply } => match self.session.resend(core_now, stream, event) {
                Ok(id) => {
                    self.complete_durable(stream, reply, id);
                    None
                }
                Err(SessionError::Enqueue {
                    error: batch::Error::QueueFull { event },
                    ..
                }) => Some(Blocked {
                    stream,
                    waiting: Waiting::One { event, reply },
                    until,
                }),
                Err(SessionError::Enqueue { error, .. }) => {
                    reply.complete(Err(self.send_error(error)));
                    None
                }
                Err(other) => {
                    reply.complete(Err(SendError::Refused {
                        event: Refused::Given(Event::new(Value::Null)),
                        message: other.to_string(),
                    }));
                    None
                }
            },
            Waiting::Bulk {
                next,
                mut rest,
                mut ids,
                reply,
            } => {
                let mut next = Some(next);
                loop {
                    let result = match next.take() {
                        Some(prepared) => self.session.resend(core_now, stream, prepared),
                        None => match rest.pop_front() {
                            Some(event) => match stream {
                                Stream::InternalEvents => {
                                    self.session.send_internal_event(core_now, event)
                                }
                                _ => self.session.send_event(core_now, event),
                            },
                            None => {
                                self.complete_bulk_durable(reply, ids);
                                return None;
                            }
                        },
                    };
                    match result {
                        Ok(id) => ids.push(id),
                        Err(SessionError::Enqueue {
                            error: batch::Error::QueueFull { event },
                            ..
                        }) => {
                            return Some(Blocked {
                                stream,
                                waiting: Waiting::Bulk {
                                    next: event,
                                    rest,
                                    ids,
                                    reply,
                                },
                                until,
                            });
                        }
                        Err(SessionError::Enqueue { error, .. }) => {
                            let error = self.send_error(error);
                            reply.complete(Err(Box::new(BulkSendError {
                                sent: ids,
                                error,
                                unsent: rest.into(),
                            })));
                            return None;
                        }
                        Err(other) => {
                            reply.complete(Err(Box::new(BulkSendError {
                                sent: ids,
                                error: SendError::Refused {
                                    event: Refused::Given(Event::new(Value::Null)),
                                    message: other.to_string(),
                                },
                                unsent: rest.into(),
                            })));
                            return None;
                        }
                    }
                }
            }
        }
    }
}

/// Only events and internal events are uploaded from `send`; a delivery update goes through
/// `ack_delivery`.
fn uploadable(stream: Stream) -> Stream {
    match stream {
        Stream::Delivery => Stream::Events,
        other => other,
    }
}
