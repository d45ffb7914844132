//! The callers the driver holds an answer for, and how a waiter for room is answered when its
//! time is up or the session has ended. A leaf: it knows nothing of the driver.

use std::collections::VecDeque;
use tether_core::Instant;

use tether_core::batch::{Event, EventId, PreparedEvent};
use tether_core::session::{Status, Stream};

use crate::error::{BulkSendError, FlushError, Refused, SendError};
use crate::wait::Completer;

pub(super) type SendReply = Completer<Result<EventId, SendError>>;
pub(super) type FlushReply = Completer<Result<(), FlushError>>;
pub(super) type BulkReply = Completer<Result<Vec<EventId>, Box<BulkSendError>>>;

/// A caller waiting for room in a stream's queue.
pub(super) enum Waiting {
    One {
        event: PreparedEvent,
        reply: SendReply,
    },
    Bulk {
        /// The event that found the queue full, prepared.
        next: PreparedEvent,
        rest: VecDeque<Event>,
        ids: Vec<EventId>,
        reply: BulkReply,
    },
}

pub(super) struct Blocked {
    pub(super) stream: Stream,
    pub(super) waiting: Waiting,
    /// When to give up; `None`: never.
    pub(super) until: Option<Instant>,
}

/// What became of one offer.
pub(super) enum Offered {
    Queued(EventId),
    Full(PreparedEvent),
    Refused(SendError),
}

pub(super) fn answer_timeout(waiting: Waiting) {
    match waiting {
        Waiting::One { event, reply } => reply.complete(Err(SendError::Timeout {
            event: Refused::Prepared(event),
        })),
        Waiting::Bulk {
            next,
            rest,
            ids,
            reply,
        } => reply.complete(Err(Box::new(BulkSendError {
            sent: ids,
            error: SendError::Timeout {
                event: Refused::Prepared(next),
            },
            unsent: rest.into(),
        }))),
    }
}
pub(super) fn answer_ended(waiting: Waiting, status: Status) {
    match waiting {
        Waiting::One { event, reply } => reply.complete(Err(SendError::Ended {
            event: Refused::Prepared(event),
            status,
        })),
        Waiting::Bulk {
            next,
            rest,
            ids,
            reply,
        } => reply.complete(Err(Box::new(BulkSendError {
            sent: ids,
            error: SendError::Ended {
                event: Refused::Prepared(next),
                status,
            },
            unsent: rest.into(),
        }))),
    }
}
