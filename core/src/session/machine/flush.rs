//! Flush and close: a flush waits for every stream's sub-flush and for the state uploader to be
//! idle; a close stops intake, drains until its deadline, and ends the session once every
//! sub-machine handed back what it held.

use alloc::vec::Vec;

use super::Session;
use super::streams::PerStream;
use crate::drive::FlushId;
use crate::session::io::{Output, SessionError, Stream};
use crate::session::status::Status;
use crate::time::Instant;

/// A session flush and what it still waits for.
#[derive(Clone, Debug)]
pub(super) struct PendingFlush {
    id: FlushId,
    /// Each open stream's own flush, until it is done.
    streams: PerStream<Option<FlushId>>,
    /// Whether the state uploader has yet to be idle.
    state: bool,
    deadline: Instant,
}

impl PendingFlush {
    fn is_done(&self) -> bool {
        !self.state && self.streams.iter().all(|(_, sub)| sub.is_none())
    }
}

/// Every flush in progress, and the id counter.
#[derive(Clone, Debug, Default)]
pub(super) struct Flushes {
    pending: Vec<PendingFlush>,
    next_id: u64,
}

impl Flushes {
    pub(super) fn earliest_deadline(&self) -> Option<Instant> {
        self.pending.iter().map(|f| f.deadline).min()
    }
}

impl Session {
    /// Starts a session flush: see [`Session::flush`].
    pub(super) fn start_flush(
        &mut self,
        now: Instant,
        deadline: Instant,
    ) -> Result<FlushId, SessionError> {
        if let Some(ended) = self.ended() {
            return Err(SessionError::Ended(ended));
        }
        self.release_deltas(now);
        let id = FlushId(self.flushes.next_id);
        self.flushes.next_id += 1;
        // The session owns the deadline: the uploaders' flushes never time out on their own,
        // and the state part is done once the state uploader is idle.
        let streams = PerStream::from_fn(|stream| {
            let slot = &mut self.streams[stream];
            (!slot.closed).then(|| slot.uploader.flush(now, Instant::MAX))
        });
        let state = !self.state_closed && !self.state.is_idle();
        self.flushes.pending.push(PendingFlush {
            id,
            streams,
            state,
            deadline,
        });
        Ok(id)
    }

    /// `stream` finished its flush `sub`, or (with `None`) closed, which settles all of them.
    pub(super) fn stream_flushed(&mut self, stream: Stream, sub: Option<FlushId>) {
        for pending in &mut self.flushes.pending {
            if sub.is_none() || pending.streams[stream] == sub {
                pending.streams[stream] = None;
            }
        }
        self.complete_flushes();
    }

    /// The state uploader is idle or closed: every patch given so far landed or was handed back.
    pub(super) fn state_settled(&mut self) {
        let mut settled = false;
        for pending in &mut self.flushes.pending {
            settled |= core::mem::take(&mut pending.state);
        }
        if settled {
            self.complete_flushes();
        }
    }

    /// Reports every flush that waits for nothing more, in the order they were asked for.
    pub(super) fn complete_flushes(&mut self) {
        let outputs = &mut self.outputs;
        self.flushes.pending.retain(|flush| {
            let done = flush.is_done();
            if done {
                outputs.push_back(Output::FlushDone(flush.id));
            }
            !done
        });
    }

    /// Reports every flush whose deadline passed.
    pub(super) fn expire_flushes(&mut self, now: Instant) {
        let outputs = &mut self.outputs;
        self.flushes.pending.retain(|flush| {
            let due = flush.deadline <= now;
            if due {
                outputs.push_back(Output::FlushTimedOut(flush.id));
            }
            !due
        });
    }

    /// At the end every event was delivered or handed back, so every flush is done.
    pub(super) fn finish_flushes(&mut self) {
        for flush in core::mem::take(&mut self.flushes.pending) {
            self.outputs.push_back(Output::FlushDone(flush.id));
        }
    }

    /// Starts a close: see [`Session::close`].
    pub(super) fn start_close(&mut self, now: Instant, deadline: Instant) {
        if self.is_ended() {
            return;
        }
        if let Status::Holding(reason) = self.status {
            // Nothing can be delivered while holding: everything goes back at once, as giving
            // up without holding would have done.
            return self.end(now, Status::GivenUp(reason));
        }
        self.release_deltas(now);
        let deadline = self.close_deadline.map_or(deadline, |d| d.min(deadline));
        self.close_deadline = Some(deadline);
        for slot in self.streams.values_mut() {
            slot.uploader.close(now, deadline);
        }
        // The state uploader closes (handing back what is left) once idle or at the deadline;
        // see `pump` and `handle_timeout`.
    }

    /// Ends the session as closed once every sub-machine has closed.
    pub(super) fn finish_close_if_done(&mut self, now: Instant) {
        if self.close_deadline.is_some() && self.state_closed && self.streams_all_closed() {
            self.end(now, Status::Closed);
        }
    }

    fn streams_all_closed(&self) -> bool {
        self.streams.iter().all(|(_, slot)| slot.closed)
    }
}
