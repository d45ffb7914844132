//! The core's refusals in the caller's words: each `SessionError` or `EnqueueError` becomes a
//! typed `SendError` that hands the event back, and waiters that time out or outlive the
//! session are answered with theirs.

use serde_json::Value;
use tether_core::batch::{EnqueueError, Event};
use tether_core::session::SessionError;

use super::Driver;
use super::waiter::Offered;
use crate::error::{Refused, SendError};

impl Driver {
    pub(super) fn refused(&self, error: SessionError) -> Offered {
        match error {
            SessionError::Enqueue {
                error: EnqueueError::QueueFull { event },
                ..
            } => Offered::Full(event),
            SessionError::Enqueue { error, .. } => Offered::Refused(self.send_error(error)),
            other => Offered::Refused(SendError::Refused {
                event: Refused::Given(Event::new(Value::Null)),
                message: other.to_string(),
            }),
        }
    }

    pub(super) fn send_error(&self, error: EnqueueError) -> SendError {
        let status = self.session.status();
        match error {
            EnqueueError::NotAnObject { event } => SendError::NotAnObject {
                event: Refused::Given(event),
            },
            EnqueueError::Unserializable { message } => SendError::Unserializable { message },
            EnqueueError::TooLarge {
                event,
                bytes,
                limit,
            } => SendError::TooLarge {
                event: Refused::Prepared(event),
                bytes,
                limit,
            },
            EnqueueError::Closed { event } | EnqueueError::QueueFull { event } => {
                SendError::Ended {
                    event: Refused::Prepared(event),
                    status,
                }
            }
            other => {
                let message = other.to_string();
                match other.into_prepared() {
                    Some(event) => SendError::Refused {
                        event: Refused::Prepared(event),
                        message,
                    },
                    None => SendError::Refused {
                        event: Refused::Given(Event::new(Value::Null)),
                        message,
                    },
                }
            }
        }
    }
}
