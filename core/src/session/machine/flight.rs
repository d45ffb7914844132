//! Requests in flight: at most one per channel, each with the deadline the core owns.

use alloc::vec::Vec;

use super::connect::Phase;
use crate::batch::BatchId;
use crate::heartbeat::BeatId;
use crate::session::io::Stream;
use crate::session::wire::{Endpoint, Request, RequestId};
use crate::state::PutId;
use crate::time::Instant;

/// A channel carries at most one request at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Channel {
    Connect,
    Heartbeat,
    Stream(Stream),
    State,
}

impl Channel {
    /// Every channel, in slot order.
    pub(super) const ALL: [Channel; 6] = [
        Channel::Connect,
        Channel::Heartbeat,
        Channel::Stream(Stream::Events),
        Channel::Stream(Stream::InternalEvents),
        Channel::Stream(Stream::Delivery),
        Channel::State,
    ];

    pub(super) fn slot(self) -> usize {
        match self {
            Channel::Connect => 0,
            Channel::Heartbeat => 1,
            Channel::Stream(Stream::Events) => 2,
            Channel::Stream(Stream::InternalEvents) => 3,
            Channel::Stream(Stream::Delivery) => 4,
            Channel::State => 5,
        }
    }
}

/// What a request in flight is for, so its outcome goes back to the right machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Purpose {
    Connect(Phase),
    Beat(BeatId),
    Batch(Stream, BatchId),
    Put(PutId),
}

impl Purpose {
    pub(super) fn channel(self) -> Channel {
        match self {
            Purpose::Connect(_) => Channel::Connect,
            Purpose::Beat(_) => Channel::Heartbeat,
            Purpose::Batch(stream, _) => Channel::Stream(stream),
            Purpose::Put(_) => Channel::State,
        }
    }

    /// The endpoint a request for this purpose goes to.
    pub(super) fn endpoint(self) -> Endpoint {
        match self {
            Purpose::Connect(Phase::Register) => Endpoint::Register,
            Purpose::Connect(Phase::Fetch) => Endpoint::GetWorker,
            Purpose::Connect(_) | Purpose::Put(_) => Endpoint::PutWorker,
            Purpose::Beat(_) => Endpoint::Heartbeat,
            Purpose::Batch(stream, _) => stream.endpoint(),
        }
    }
}

/// One request in flight.
#[derive(Clone, Copy, Debug)]
pub(super) struct InFlight {
    pub(super) id: RequestId,
    pub(super) purpose: Purpose,
    pub(super) deadline: Instant,
}

/// The table of requests in flight, one slot per channel, and the request-id counter.
#[derive(Clone, Debug, Default)]
pub(super) struct Flights {
    slots: [Option<InFlight>; 6],
    next_id: u64,
}

impl Flights {
    /// A request id no request of this session has or will have: for a channel the session
    /// hosts beside its own (thread sync), so the session's requests share one id space.
    pub(super) fn reserve(&mut self) -> RequestId {
        let id = RequestId(self.next_id);
        self.next_id += 1;
        id
    }

    /// Records a new request for `purpose` and describes it. The channel must be free: every
    /// sub-machine keeps at most one request of its own in flight.
    pub(super) fn open(&mut self, purpose: Purpose, body: Vec<u8>, deadline: Instant) -> Request {
        let id = RequestId(self.next_id);
        self.next_id += 1;
        let slot = &mut self.slots[purpose.channel().slot()];
        debug_assert!(
            slot.is_none(),
            "two requests in flight on {:?}",
            purpose.channel()
        );
        *slot = Some(InFlight {
            id,
            purpose,
            deadline,
        });
        Request {
            id,
            endpoint: purpose.endpoint(),
            body,
            deadline,
        }
    }

    /// Takes the request `id` out of the table, if it is still in flight.
    pub(super) fn take(&mut self, id: RequestId) -> Option<InFlight> {
        self.slots
            .iter_mut()
            .find(|slot| matches!(slot, Some(f) if f.id == id))
            .and_then(Option::take)
    }

    /// Takes the request on `channel` out if it is for `purpose`.
    pub(super) fn take_purpose(&mut self, purpose: Purpose) -> Option<InFlight> {
        let slot = &mut self.slots[purpose.channel().slot()];
        match slot {
            Some(f) if f.purpose == purpose => slot.take(),
            _ => None,
        }
    }

    /// Takes the request on `channel` out if its deadline has passed at `now`.
    pub(super) fn take_expired(&mut self, channel: Channel, now: Instant) -> Option<InFlight> {
        let slot = &mut self.slots[channel.slot()];
        match slot {
            Some(f) if f.deadline <= now => slot.take(),
            _ => None,
        }
    }

    /// Empties the table, returning what was in flight.
    pub(super) fn take_all(&mut self) -> impl Iterator<Item = InFlight> + '_ {
        self.slots.iter_mut().filter_map(Option::take)
    }

    /// The earliest request deadline.
    pub(super) fn earliest_deadline(&self) -> Option<Instant> {
        self.iter().map(|f| f.deadline).min()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &InFlight> + '_ {
        self.slots.iter().flatten()
    }
}
