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
        if self.session.status().is_terminal() {
            self.threads_turn();
            return Pending::ready(self.close_report());
        }
        let core_now = now;
        self.session
            .close(core_now, core_now.saturating_add(timeout));
        let pending = if self.session.status().is_terminal() {
            // Nothing was left to drain: the close ended the session at once.
            self.after_call();
            return Pending::ready(self.close_report());
        } else {
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
        };
        self.after_call();
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
        self.threads_turn();
    }
}
