//! The calls that wait on the session as a whole: a flush (everything given before is
//! delivered or handed back) and the close (drain until a deadline, then hand back the rest).

use std::time::Duration;
use tether_core::Instant;

use tether_core::session::Status;

use super::Driver;
use super::waiter::FlushReply;
use crate::error::FlushError;
use crate::report::{CloseReport, Counters};
use crate::wait::Pending;

impl Driver {
    /// Waits until everything given before is delivered or handed back and every patch has
    /// landed, or `timeout` passes ([`Duration::MAX`]: no limit).
    pub fn flush(&mut self, now: Instant, timeout: Duration) -> Pending<Result<(), FlushError>> {
        self.now = now;
        if self.outbox.as_ref().is_some_and(|o| !o.replay_done()) {
            // The stored outbox was given before: the flush starts once it is all back in.
            return self.defer_flush(now, timeout);
        }
        let status = self.session.status();
        let (pending, reply) = Pending::new(move || Err(FlushError::Ended(status)));
        self.start_flush(now, timeout, reply);
        self.after_call();
        pending
    }

    /// Asks the core for a flush answered through `reply`.
    pub(super) fn start_flush(&mut self, now: Instant, timeout: Duration, reply: FlushReply) {
        let core_now = now;
        match self
            .session
            .flush(core_now, core_now.saturating_add(timeout))
        {
            Ok(id) => {
                self.flushes.insert(id, reply);
            }
            Err(_) => reply.complete(Err(FlushError::Ended(self.session.status()))),
        }
    }

    /// Stops intake, drains for at most `timeout`, hands back what is left and ends the
    /// session; the answer is the close report. Closing again, or after the end, answers with
    /// the report too.
    pub fn close(&mut self, now: Instant, timeout: Duration) -> Pending<CloseReport> {
        self.now = now;
        self.closing = true;
        if let Some(threads) = self.threads.as_deref_mut() {
            threads.close(now.saturating_add(timeout));
        }
        if !self.session.status().is_terminal() {
            self.session.close(now, now.saturating_add(timeout));
        }
        // If that ended the session (nothing left to drain), this finishes it, unless the
        // outbox's end (a last write, a count) is still to run.
        self.after_call();
        if self.finished {
            return Pending::ready(self.close_report());
        }
        let (pending, reply) = Pending::new(|| CloseReport {
            status: Status::Closed,
            epoch: None,
            undelivered: Vec::new(),
            state_rejected: Vec::new(),
            state_unacknowledged: None,
            counters: Counters::default(),
            kept: None,
        });
        self.closers.push(reply);
        pending
    }

    /// Starts a held session again (configured with
    /// [`OnGiveUp::Hold`](tether_core::session::OnGiveUp::Hold)): the give-up counters reset and
    /// it connects again with the same queues and state; nothing is re-sent by hand.
    ///
    /// # Errors
    /// See [`ReconnectError`](tether_core::session::ReconnectError).
    pub fn reconnect(&mut self, now: Instant) -> Result<(), tether_core::session::ReconnectError> {
        self.now = now;
        let result = self.session.reconnect(now);
        self.after_call();
        result
    }

    /// What a handle dropped without `close` does: close with the drop timeout. Everything
    /// handed back reaches the report stream and the close report.
    pub fn close_on_drop(&mut self, now: Instant) {
        if !self.closing {
            let timeout = self.drop_close_timeout;
            drop(self.close(now, timeout));
        }
    }

    /// Ends the session now, handing back everything it held: what a shim does when its
    /// driver task is dropped or its runtime shuts down.
    pub fn shutdown(&mut self, now: Instant) {
        drop(self.close(now, Duration::ZERO));
        let core_now = now;
        self.session.handle_timeout(core_now);
        self.drain();
        // No runtime is left to run store jobs: the end's store work runs here, once.
        if let Some(outbox) = &mut self.outbox {
            outbox.end_now(now);
            self.actions
                .retain(|a| !matches!(a, crate::action::Action::Store(_)));
        }
        self.after_call();
        self.threads_turn();
    }
}
