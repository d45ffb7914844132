//! Giving up, and holding instead of ending ([`OnGiveUp`]): a held session keeps its queues,
//! its pending state patches and its event uuids, sends nothing, and waits for the caller to
//! [`reconnect`](Session::reconnect) (seed 003's reconnect after give-up: the counters reset
//! and it connects again) or to close.

use super::Session;
use super::connect::Phase;
use crate::session::config::OnGiveUp;
use crate::session::io::{Output, ReconnectError};
use crate::session::status::{GiveUpReason, Status};
use crate::time::Instant;

impl Session {
    /// Gives up by the rules: ends the session, handing everything back, or (with
    /// [`OnGiveUp::Hold`], unless a close is under way) holds everything.
    pub(super) fn give_up(&mut self, now: Instant, reason: GiveUpReason) {
        if self.config.on_give_up == OnGiveUp::End || self.close_deadline.is_some() {
            return self.end(now, Status::GivenUp(reason));
        }
        self.hold(now, reason);
    }

    /// Stops sending and keeps everything: every request in flight is cancelled (a batch or
    /// patch in flight goes back to its queue, to be sent again with the same uuids), the
    /// heartbeat and every retry stop, and [`Status::Holding`] says so.
    fn hold(&mut self, now: Instant, reason: GiveUpReason) {
        if self.is_ended() || self.phase == Phase::Held {
            return;
        }
        for flight in self.flights.take_all() {
            self.counters.cancelled += 1;
            self.outputs.push_back(Output::Cancel(flight.id));
        }
        self.budget.clear();
        self.connect_retry_at = None;
        self.retrying = None;
        self.heartbeat.stop(now);
        for slot in self.streams.values_mut() {
            slot.uploader.suspend(now);
        }
        if !self.state_closed {
            self.state.suspend(now);
        }
        self.phase = Phase::Held;
        self.counters.holds += 1;
        self.drain_subs(now);
        self.emit_status(Status::Holding(reason));
    }

    /// Connects again after the session gave up and held ([`Status::Holding`]): the give-up
    /// counters (connect attempts, auth failures) and the backoff reset, the connect sequence
    /// starts over on this same session ([`Status::Connecting`]; `PUT /worker` and
    /// `GET /worker` with the epoch it had, or a registration if it never got one), and once
    /// connected every held event goes out in order with its original uuid and the held
    /// patches land: nothing needs sending again by hand. Should it give up again, it holds
    /// again.
    ///
    /// # Errors
    /// [`ReconnectError::Ended`] once the session ended (superseded, closed, or given up
    /// without holding): terminal. [`ReconnectError::NotHolding`] while it has not given up.
    pub fn reconnect(&mut self, now: Instant) -> Result<(), ReconnectError> {
        let now = self.clock.observe(now);
        if self.is_ended() {
            return Err(ReconnectError::Ended(self.status));
        }
        if self.phase != Phase::Held {
            return Err(ReconnectError::NotHolding(self.status));
        }
        self.auth_failures = 0;
        self.failures_in_row = 0;
        self.connect.reset();
        self.connect.start(now);
        self.phase = if self.epoch.is_some() {
            Phase::Init
        } else {
            Phase::Register
        };
        self.counters.reconnects += 1;
        self.emit_status(Status::Connecting);
        self.send_connect_step(now);
        self.pump(now);
        Ok(())
    }

    /// Whether the session gave up and holds everything ([`Status::Holding`]).
    pub fn is_holding(&self) -> bool {
        self.phase == Phase::Held
    }
}
