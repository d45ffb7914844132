//! The outbox's store work: when the group commit is due, the store jobs it asks for (a write,
//! replay's next chunk, the end's count), and what their answers change.

use std::sync::Arc;

use tether_core::Instant;

use super::{Busy, Outbox, REPLAY_CHUNK, RETRY_AFTER_FAILURE};
use crate::store::{SyncPolicy, WriteBatch};
use crate::store_job::{Op, Outcome, StoreDone, StoreJob, StoreJobKind};

impl Outbox {
    /// When the next group commit is due, if anything waits for one (`None` while a store
    /// job is in flight: its answer wakes the driver).
    pub(crate) fn due_at(&self, now: Instant) -> Option<Instant> {
        if self.busy.is_some() {
            return None;
        }
        let waiting = !self.journal.is_empty() || !self.gates.is_empty();
        if !waiting {
            return None;
        }
        if let Some(at) = self.retry_at {
            return Some(at);
        }
        match self.policy {
            _ if self.ending => Some(now),
            SyncPolicy::Interval(every) => Some(self.oldest.map_or(now, |oldest| oldest + every)),
            _ => Some(now),
        }
    }

    /// The store work due at `now`, if any and none is in flight: the group commit first,
    /// then replay's next chunk, then (once the session ended) counting what is kept.
    pub(crate) fn next_job(&mut self, now: Instant) -> Option<StoreJob> {
        if self.busy.is_some() {
            return None;
        }
        let end_settled = self.ending && self.end_write_failed;
        if !end_settled && self.due_at(now).is_some_and(|at| at <= now) {
            let mut batch = std::mem::take(&mut self.journal);
            batch.cancel_out();
            if batch.is_empty() {
                // Nothing to write (or it cancelled out): what was appended is as durable
                // as it needs to be.
                self.written(now, self.appended, &batch);
            } else {
                let batch = Arc::new(batch);
                self.busy = Some(Busy::Write {
                    position: self.appended,
                    batch: Arc::clone(&batch),
                });
                let sync = self.policy.syncs();
                return Some(StoreJob::new(
                    Arc::clone(&self.store),
                    Op::Write { batch, sync },
                ));
            }
        }
        if self.want_read && !self.replay_done && !self.ending {
            self.want_read = false;
            self.busy = Some(Busy::Read);
            let (after, limit) = (self.replay_after, REPLAY_CHUNK);
            return Some(StoreJob::new(
                Arc::clone(&self.store),
                Op::Read { after, limit },
            ));
        }
        let settled = self.journal.is_empty() || self.end_write_failed;
        if self.ending && self.kept_at_end.is_none() && settled {
            self.busy = Some(Busy::Count);
            return Some(StoreJob::new(Arc::clone(&self.store), Op::Count));
        }
        None
    }

    /// A store job's answer.
    pub(crate) fn done(&mut self, now: Instant, done: StoreDone) {
        match (self.busy.take(), done.0) {
            (Some(Busy::Write { position, batch }), Outcome::Written(Ok(()))) => {
                self.written(now, position, &batch);
            }
            (Some(Busy::Write { batch, .. }), Outcome::Written(Err(error))) => {
                self.counters.failed_commits += 1;
                self.retry_at = Some(now + RETRY_AFTER_FAILURE);
                self.failed = Some(error.clone());
                // Nobody waiting is told it is safe; the batch is written again, before
                // what was appended since.
                while let Some((_, gate)) = self.gates.pop_front() {
                    gate(Err(error.clone()));
                }
                let batch = Arc::try_unwrap(batch).unwrap_or_else(|shared| (*shared).clone());
                let newer = std::mem::replace(&mut self.journal, batch);
                self.journal.append(newer);
                if self.ending {
                    self.end_write_failed = true;
                }
            }
            (Some(Busy::Read), Outcome::Read(Ok(chunk))) => {
                if chunk.is_empty() {
                    self.replay_done = true;
                } else {
                    self.replay_after = chunk.last().map(|(k, _)| *k);
                    self.replay.extend(chunk);
                }
            }
            (Some(Busy::Read), Outcome::Read(Err(error))) => self.read_error = Some(error),
            (Some(Busy::Count), Outcome::Counted(count)) => {
                let count = count.unwrap_or_else(|_| self.known_pending());
                self.kept_at_end = Some(count);
            }
            // An answer to a job this outbox did not ask for: nothing to do.
            (busy, _) => self.busy = busy,
        }
    }

    /// The journal up to `position` is written (`batch`): the gates it covers are answered.
    fn written(&mut self, now: Instant, position: u64, batch: &WriteBatch) {
        if !batch.is_empty() {
            self.counters.commits += 1;
            self.counters.records_written += batch.puts.len() as u64;
            self.counters.records_deleted += batch.deletes.len() as u64;
            self.counters.records_dead += batch.dead.len() as u64;
        }
        self.failed = None;
        self.retry_at = None;
        self.oldest = (!self.journal.is_empty()).then_some(now);
        self.durable = position;
        while self
            .gates
            .front()
            .is_some_and(|(at, _)| *at <= self.durable)
        {
            if let Some((_, gate)) = self.gates.pop_front() {
                gate(Ok(()));
            }
        }
    }

    /// The session ended: write what the end settled, then count what the store keeps for
    /// the close report ([`next_job`](Self::next_job) asks for both).
    pub(crate) fn begin_end(&mut self) {
        self.ending = true;
        self.replay.clear();
    }

    /// Whether the end's store work is done: the close report may be given.
    pub(crate) fn end_done(&self) -> bool {
        self.kept_at_end.is_some()
    }

    /// Without a runtime to run store jobs (its task was dropped): the end's work runs here,
    /// at once. A job still in flight on the lost runtime is answered as failed.
    pub(crate) fn end_now(&mut self, now: Instant) {
        self.begin_end();
        let lost = self.busy.as_ref().map(|busy| match busy {
            Busy::Write { .. } => StoreJobKind::WRITE,
            Busy::Read => StoreJobKind::READ,
            Busy::Count => StoreJobKind::COUNT,
        });
        if let Some(kind) = lost {
            self.done(
                now,
                StoreDone::failed(kind, "the job was lost with its runtime"),
            );
        }
        for _ in 0..4 {
            let Some(job) = self.next_job(now) else { break };
            let done = job.run();
            self.done(now, done);
        }
        if self.kept_at_end.is_none() {
            self.kept_at_end = Some(self.known_pending());
        }
    }
}
