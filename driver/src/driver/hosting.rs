//! Thread sync hosted by the driver: installed once the caller asks, turned after every call,
//! its requests carried out as the driver's actions.

use tether_core::Instant;

use super::Driver;
use crate::threads::{Io, ThreadPart, ThreadStartError};

impl Driver {
    /// Thread sync's turn: started once the epoch is known, drained into actions, ended with
    /// the session.
    pub(super) fn threads_turn(&mut self) {
        let Some(threads) = self.threads.as_deref_mut() else {
            return;
        };
        let before = threads.deadline();
        let ended = self.session.status().is_terminal();
        let epoch = self.session.epoch();
        let session = &mut self.session;
        let io = Io {
            now: self.now,
            target: &self.target,
            actions: &mut self.actions,
            ids: &mut || session.reserve_request_id(),
        };
        let queued = threads.turn(self.now, epoch, ended, io);
        if let (Some(record), Some(outbox)) = (threads.take_journal_record(), &mut self.outbox) {
            outbox.record_threads(self.now, record);
            self.notify = true;
        }
        let after = threads.deadline();
        if queued || after.is_some_and(|a| before.is_none_or(|b| a < b)) || threads.is_done() {
            self.notify = true;
        }
    }

    pub(crate) fn thread_seed(&self) -> u64 {
        self.thread_seed
    }

    /// Installs thread sync, unless it runs already or the session is ending.
    pub(crate) fn install_threads(
        &mut self,
        now: Instant,
        part: ThreadPart,
    ) -> Result<(), ThreadStartError> {
        if self.threads.is_some() {
            return Err(ThreadStartError::AlreadyStarted);
        }
        if self.closing || self.finished {
            return Err(ThreadStartError::Ended);
        }
        self.now = now;
        let mut part = part;
        if let Some(gate) = self.thread_gate.take() {
            part.spend_from(gate);
        }
        if let Some(outbox) = &mut self.outbox {
            // Edits kept by an earlier run go first, and every edit from now on is kept.
            let stored = outbox.take_stored_threads();
            for reason in part.keep_journal(now, stored.as_deref()) {
                outbox.note_reported(crate::store::Dropped {
                    key: None,
                    reason: reason.clone(),
                });
                self.reports
                    .publish(crate::report::Report::OutboxDropped { key: None, reason });
            }
        }
        self.threads = Some(Box::new(part));
        self.after_call();
        Ok(())
    }

    /// Runs a thread-sync call at `now`, then the driver's turn.
    pub(crate) fn with_threads<R>(
        &mut self,
        now: Instant,
        f: impl FnOnce(Option<&mut ThreadPart>, Instant) -> R,
    ) -> R {
        self.now = now;
        let result = f(self.threads.as_deref_mut(), now);
        self.after_call();
        result
    }
}
