//! The core's refusals in the caller's words: each `SessionError` or `batch::Error` becomes a
//! typed `SendError` that hands the event back, and waiters that time out or outlive the
//! session are answered with theirs.

use serde_json::Value;
use tether_core::batch::{self, Event};
use tether_core::session::SessionError;

use super::Driver;
use super::waiter::Offered;
use crate::error::{Refused, SendError};

impl Driver {
    pub(super) fn refused(&self, error: SessionError) -> Offered {
        match error {
            SessionError::Enqueue {
                error: batch::Error::QueueFull { event },
                ..
            } => Offered::Full(event),
            SessionError::Enqueue { error, .. } => Offered::Refused(self.send_error(error)),
            other => Offered::Refused(SendError::Refused {
                event: Refused::Given(Event::new(Value::Null)),
                message: other.to_string(),
            }),
        }
    }

    pub(super) fn send_error(&self, error: batch::Error) -> SendError {
        let status = self.session.status();
        match error {
            batch::Error::NotAnObject { event } => SendError::NotAnObject {
                event: Refused::Given(event),
            },
            batch::Error::Unserializable { message } => SendError::Unserializable { message },
            batch::Error::TooLarge {
                event,
                bytes,
                limit,
            } => SendError::TooLarge {
                event: Refused::Prepared(event),
                bytes,
                limit,
            },
            batch::Error::Closed { event } | batch::Error::QueueFull { event } => {
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
