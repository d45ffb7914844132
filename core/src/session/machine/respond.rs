//! Response handling: the response table applied once for every channel, and each outcome
//! handed to the machine whose request it was.

use serde_json::Value;

use super::Session;
use super::connect::Phase;
use super::flight::{Channel, Purpose};
use crate::classify::{Outcome, Reply, classify};
use crate::session::status::{GiveUpReason, Status};
use crate::session::wire::Response;
use crate::time::Instant;

impl Session {
    /// Classifies a response by the table, parsing the bodies the connect sequence needs. A
    /// 2xx whose body is needed but unreadable is a bad body, which the table makes transient.
    pub(super) fn read_response(
        &self,
        purpose: Purpose,
        response: &Response,
    ) -> (Outcome, Option<Value>) {
        if !(200..300).contains(&response.status) {
            let reply = Reply::Status {
                status: response.status,
                retry_after: response.retry_after.as_deref(),
                date: response.date.as_deref(),
            };
            return (classify(reply), None);
        }
        if response.truncated || response.body.len() > self.config.max_response_body {
            return (classify(Reply::BadBody), None);
        }
        let parsed = match purpose {
            Purpose::Connect(Phase::Register) => serde_json::from_slice::<Value>(&response.body)
                .ok()
                .filter(|v| v.get("worker_epoch").and_then(Value::as_u64).is_some()),
            Purpose::Connect(Phase::Fetch) => serde_json::from_slice::<Value>(&response.body)
                .ok()
                .and_then(|mut v| v.get_mut("worker").map(Value::take))
                .filter(Value::is_object),
            _ => return (classify(Reply::status(response.status)), None),
        };
        match parsed {
            Some(value) => (classify(Reply::status(response.status)), Some(value)),
            None => (classify(Reply::BadBody), None),
        }
    }

    /// The response table's session-wide rules, then the outcome goes to its channel.
    pub(super) fn settle(
        &mut self,
        now: Instant,
        purpose: Purpose,
        outcome: Outcome,
        body: Option<Value>,
    ) {
        self.counters.failures.record(outcome);
        match outcome {
            Outcome::Success => {
                self.auth_failures = 0;
                self.failures_in_row = 0;
            }
            Outcome::Superseded => return self.end(now, Status::Superseded),
            Outcome::AuthFailure => {
                self.auth_failures += 1;
                if self.auth_failures >= self.config.max_auth_failures {
                    let n = self.auth_failures;
                    return self.give_up(now, GiveUpReason::AuthFailures(n));
                }
            }
            Outcome::SessionUnknown if !self.config.session_unknown_is_transient => {
                return self.give_up(now, GiveUpReason::SessionUnknown);
            }
            _ => {}
        }
        if outcome != Outcome::Success {
            self.failures_in_row = self.failures_in_row.saturating_add(1);
        }
        self.note_budget(now, purpose.channel(), outcome);
        match purpose {
            Purpose::Connect(phase) => self.settle_connect(now, phase, outcome, body),
            Purpose::Beat(id) => {
                if outcome == Outcome::Success {
                    self.counters.heartbeats_ok += 1;
                }
                if let Err(error) = self.heartbeat.handle_outcome(now, id, outcome) {
                    // Beats are in flight here exactly while the heartbeat has them in flight.
                    debug_assert!(false, "heartbeat refused an outcome: {error}");
                }
                if outcome == Outcome::Success {
                    self.recover_status();
                }
            }
            Purpose::Batch(stream, id) => {
                self.streams[stream]
                    .uploader
                    .handle_outcome(now, id, outcome);
                self.note_channel_result(Channel::Stream(stream), outcome);
            }
            Purpose::Put(id) => {
                self.state.handle_outcome(now, id, outcome);
                self.note_channel_result(Channel::State, outcome);
            }
        }
    }

    fn note_channel_result(&mut self, channel: Channel, outcome: Outcome) {
        match outcome {
            Outcome::Success => self.recover_status(),
            // A refused batch or update is reported on its own; the link itself is fine.
            Outcome::TooLarge | Outcome::Permanent(_) => {}
            // The state channel reports its own retry time.
            _ if channel == Channel::State => {}
            _ => self.retrying = Some(channel),
        }
    }

    /// Back to connected (or stale) after a success, if the session was retrying.
    pub(super) fn recover_status(&mut self) {
        if self.phase == Phase::Connected
            && matches!(
                self.status,
                Status::Retrying { .. } | Status::BudgetExhausted { .. }
            )
        {
            let next = if self.heartbeat.is_stale() {
                Status::Stale
            } else {
                Status::Connected
            };
            self.emit_status(next);
        }
    }
}
