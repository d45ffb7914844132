//! Replay of a stored outbox at start: chunk by chunk (each a store job), restored into the
//! session in order, with room, before any new event.

use tether_core::Instant;
use tether_core::batch::EventId;
use tether_core::session::{Stream, decode_record, encode_record};

use super::{Busy, Outbox, Replayed};
use crate::store::{Dropped, StoreError};

impl Outbox {
    /// Whether replay is over: new events may follow.
    pub(crate) fn replay_done(&self) -> bool {
        self.replay_done
    }

    /// The next stored event to restore; [`Replayed::Waiting`] while the next chunk is read.
    /// Unreadable records are dropped (deleted, and reported in
    /// [`take_dropped`](Self::take_dropped)).
    pub(crate) fn next_replay(&mut self, now: Instant) -> Result<Replayed, StoreError> {
        loop {
            if self.replay_done {
                return Ok(Replayed::Done);
            }
            if let Some(error) = self.read_error.take() {
                return Err(error);
            }
            let Some((key, record)) = self.replay.pop_front() else {
                if !matches!(self.busy, Some(Busy::Read)) {
                    self.want_read = true;
                }
                return Ok(Replayed::Waiting);
            };
            match decode_record(&record) {
                Ok((stream, event)) => return Ok(Replayed::Event(key, stream, event)),
                Err(error) => {
                    self.pending_drops.push(Dropped {
                        key: Some(key),
                        reason: format!("{error}; the record was deleted"),
                    });
                    self.counters.dropped += 1;
                    self.journal.deletes.push(key);
                    self.appended(now);
                }
            }
        }
    }

    /// Whether replay is over and the driver has not been told yet (true once).
    pub(crate) fn announce_replay_done(&mut self) -> bool {
        let first = self.replay_done && !self.replay_announced;
        self.replay_announced |= first;
        first
    }

    /// Whether replay waits for a chunk to be read.
    pub(crate) fn wants_read(&self) -> bool {
        self.want_read
    }

    /// A replayed event was restored with `id`.
    pub(crate) fn restored(&mut self, key: u64, stream: Stream, id: EventId) {
        self.keys.insert((stream, id), key);
        self.counters.restored += 1;
    }

    /// A replayed event found no room: it is the next one again.
    pub(crate) fn put_back(
        &mut self,
        key: u64,
        stream: Stream,
        event: &tether_core::batch::PreparedEvent,
    ) {
        self.replay.push_front((key, encode_record(stream, event)));
    }

    /// A replayed event the session can never take: it is marked dead (kept until discarded,
    /// never replayed again) and reported.
    pub(crate) fn drop_record(&mut self, now: Instant, key: u64, reason: String) {
        self.pending_drops.push(Dropped {
            key: Some(key),
            reason: format!("{reason}; the record was kept, marked dead"),
        });
        self.counters.dropped += 1;
        self.journal.dead.push(key);
        self.appended(now);
    }

    /// A replayed event the session refused for good (e.g. it has ended): it stays stored.
    pub(crate) fn stop_replay(&mut self) {
        self.replay.clear();
        self.replay_done = true;
    }
}
