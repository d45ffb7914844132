//! The driver's calls around the durable outbox: answering senders once their event is
//! durable, refusing events while the store fails, replaying the stored outbox, and the
//! caller's `sync`.

use serde_json::Value;
use tether_core::Instant;
use tether_core::batch::{self, EventId};
use tether_core::session::{SessionError, Stream};

use super::Driver;
use super::waiter::{BulkReply, SendReply};
use crate::error::{BulkSendError, FlushError, SendError};
use crate::outbox::{Gate, Outbox, OutboxCounters, Replayed};
use crate::report::Report;
use crate::store::StoreError;
use crate::wait::Pending;

impl Driver {
    /// Gives the driver its outbox, opened on the store: the stored state patches are given
    /// again and the stored events are restored, in order, as room allows, before any new one.
    pub(crate) fn with_outbox(
        mut self,
        outbox: Outbox,
        state: Vec<serde_json::Map<String, Value>>,
    ) -> Self {
        // Every stored patch is given before anything is drained: the outbox must never write
        // a state record holding only some of them. (Replay may ask for store work after any
        // drain; a write between two patches would hold the first ones alone, and a crash
        // before the next write would lose the rest, which an earlier run made durable.)
        let now = self.now;
        let mut outbox = outbox;
        for patch in state {
            if let Err(error) = self.session.patch_state(now, Value::Object(patch)) {
                outbox.note_dropped(crate::store::Dropped {
                    key: None,
                    reason: format!("a stored state patch was refused: {error}"),
                });
            }
        }
        self.outbox = Some(outbox);
        self.after_call();
        self
    }

    /// What the outbox dropped since start, and why: records it could not read (a torn or
    /// corrupt write), a stored state it could not read. Also published as
    /// [`Report::OutboxDropped`] as it happens; this keeps those from before anyone subscribed.
    pub fn outbox_dropped(&self) -> Vec<crate::store::Dropped> {
        self.outbox
            .as_ref()
            .map(|o| o.dropped().to_vec())
            .unwrap_or_default()
    }

    /// Waits until everything accepted so far (events and state patches) is durable under the
    /// sync policy. Without an outbox it is ready at once.
    pub fn sync(&mut self, now: Instant) -> Pending<Result<(), StoreError>> {
        self.now = now;
        let Some(outbox) = &mut self.outbox else {
            return Pending::ready(Ok(()));
        };
        let (pending, reply) = Pending::new(|| {
            Err(StoreError::Write {
                message: "the session ended before the write".into(),
            })
        });
        outbox.gate(Box::new(move |result| reply.complete(result)));
        self.notify = true;
        self.after_call();
        pending
    }

    /// The outbox's counts, if the session has one.
    pub fn outbox_counters(&self) -> Option<OutboxCounters> {
        self.outbox.as_ref().map(Outbox::counters)
    }

    /// Records the outbox holds in memory for replay now: at most one chunk.
    pub fn outbox_replay_buffered(&self) -> usize {
        self.outbox.as_ref().map_or(0, Outbox::replay_buffered)
    }

    /// The store work due now (the group commit, replay's next chunk, the end's count), as a
    /// store action; requests held for a commit go out once it is written.
    pub(super) fn commit_outbox(&mut self, now: Instant) {
        let Some(outbox) = &mut self.outbox else {
            return;
        };
        if let Some(job) = outbox.next_job(now) {
            self.actions.push_back(crate::action::Action::Store(job));
            self.notify = true;
        }
        let released = outbox.release();
        if !released.is_empty() {
            self.actions
                .extend(released.into_iter().map(crate::action::Action::Send));
            self.notify = true;
        }
    }

    /// A store job's result, from the runtime that ran it.
    pub fn handle_store(&mut self, now: Instant, done: crate::store_job::StoreDone) {
        self.now = now;
        let Some(outbox) = &mut self.outbox else {
            return;
        };
        outbox.done(now, done);
        self.after_call();
        self.commit_outbox(now);
    }

    /// Why new events are refused, if the store is failing.
    pub(super) fn store_failure(&self) -> Option<String> {
        self.outbox
            .as_ref()
            .and_then(Outbox::failure)
            .map(ToString::to_string)
    }

    /// Answers `reply` with `id` once the event is durable (at once without an outbox).
    pub(super) fn complete_durable(&mut self, _stream: Stream, reply: SendReply, id: EventId) {
        match &mut self.outbox {
            None => reply.complete(Ok(id)),
            Some(outbox) => {
                let gate: Gate = Box::new(move |result| {
                    reply.complete(result.map(|()| id).map_err(|e| SendError::NotDurable {
                        id,
                        message: e.to_string(),
                    }));
                });
                outbox.gate(gate);
            }
        }
    }

    /// Answers a bulk send with `ids` once they are all durable.
    pub(super) fn complete_bulk_durable(&mut self, reply: BulkReply, ids: Vec<EventId>) {
        match &mut self.outbox {
            None => reply.complete(Ok(ids)),
            Some(outbox) => {
                let gate: Gate = Box::new(move |result| match result {
                    Ok(()) => reply.complete(Ok(ids)),
                    Err(e) => {
                        let id = ids.last().copied().unwrap_or(EventId(0));
                        reply.complete(Err(Box::new(BulkSendError {
                            sent: ids,
                            error: SendError::NotDurable {
                                id,
                                message: e.to_string(),
                            },
                            unsent: Vec::new(),
                        })));
                    }
                });
                outbox.gate(gate);
            }
        }
    }

    /// [`complete_bulk_durable`](Self::complete_bulk_durable) for a bulk send that queued
    /// everything at once.
    pub(super) fn durable_bulk(
        &mut self,
        ids: Vec<EventId>,
    ) -> Pending<Result<Vec<EventId>, Box<BulkSendError>>> {
        if self.outbox.is_none() {
            return Pending::ready(Ok(ids));
        }
        let (pending, reply) = Pending::new(|| Ok(Vec::new()));
        self.complete_bulk_durable(reply, ids);
        // Bind the gate to the journal's end now: the events' persists were drained already.
        if let Some(outbox) = &mut self.outbox {
            outbox.bind();
        }
        self.notify = true;
        pending
    }

    /// A flush asked for during replay: it starts once replay is over, with what is left of
    /// its timeout.
    pub(super) fn defer_flush(
        &mut self,
        now: Instant,
        timeout: std::time::Duration,
    ) -> Pending<Result<(), FlushError>> {
        let status = self.session.status();
        let (pending, reply) = Pending::new(move || Err(FlushError::Ended(status)));
        self.deferred_flushes
            .push((crate::clock::deadline_after(now, timeout), reply));
        self.after_call();
        pending
    }

    /// Fails the deferred flushes whose deadline passed during replay.
    pub(super) fn expire_deferred_flushes(&mut self, now: Instant) {
        let (expired, kept) = std::mem::take(&mut self.deferred_flushes)
            .into_iter()
            .partition(|(until, _)| until.is_some_and(|u| u <= now));
        self.deferred_flushes = kept;
        for (_, reply) in expired {
            reply.complete(Err(FlushError::TimedOut));
        }
    }

    /// Replay is over: the deferred flushes start, each with what is left of its timeout.
    fn start_deferred_flushes(&mut self) {
        let now = self.now;
        for (until, reply) in std::mem::take(&mut self.deferred_flushes) {
            let left = until.map_or(std::time::Duration::MAX, |u| {
                u.saturating_duration_since(now)
            });
            self.start_flush(now, left, reply);
        }
    }

    /// Restores stored events while there is room; returns whether replay is over.
    pub(super) fn replay_outbox(&mut self) -> bool {
        let now = self.now;
        let core_now = self.now;
        let Some(outbox) = &mut self.outbox else {
            return true;
        };
        if outbox.replay_done() {
            // Its last (empty) chunk may have come from a store job: say so once.
            if outbox.announce_replay_done() {
                self.replay_over();
            }
            return true;
        }
        let mut restored_any = false;
        loop {
            let next = match outbox.next_replay(now) {
                Ok(next) => next,
                Err(error) => {
                    // The rest stays stored for the next start; new events may go on.
                    outbox.stop_replay();
                    let reason = format!("replay stopped: {error}; the rest stays stored");
                    self.reports
                        .publish(Report::OutboxDropped { key: None, reason });
                    break;
                }
            };
            let Replayed::Event(key, stream, event) = next else {
                break; // done, or waiting for the next chunk
            };
            match self.session.restore(core_now, stream, event) {
                Ok(id) => {
                    outbox.restored(key, stream, id);
                    restored_any = true;
                }
                Err(SessionError::Enqueue {
                    error: batch::Error::QueueFull { event },
                    ..
                }) => {
                    outbox.put_back(key, stream, &event);
                    break;
                }
                Err(SessionError::Enqueue { error, .. })
                    if !matches!(error, batch::Error::Closed { .. }) =>
                {
                    // This event can never be queued (e.g. larger than this run's batch limit):
                    // it is dropped, and said so, rather than stop every later one.
                    outbox.drop_record(now, key, format!("the session refused it: {error}"));
                }
                Err(error) => {
                    // The session has ended (or is closing): it stays stored for the next start.
                    outbox.stop_replay();
                    let reason = format!("replay stopped at key {key}: {error}");
                    self.reports.publish(Report::OutboxDropped {
                        key: Some(key),
                        reason,
                    });
                    break;
                }
            }
        }
        for dropped in outbox.take_dropped() {
            self.reports.publish(Report::OutboxDropped {
                key: dropped.key,
                reason: dropped.reason,
            });
        }
        let done = outbox.replay_done();
        let announce = outbox.announce_replay_done();
        if outbox.wants_read() {
            self.commit_outbox(now);
        }
        if restored_any || done {
            self.drain();
        }
        if announce {
            self.replay_over();
        }
        done
    }

    /// Replay is over: new events may come in, and the deferred flushes start.
    fn replay_over(&mut self) {
        self.room = true;
        self.start_deferred_flushes();
        self.drain();
    }
}
