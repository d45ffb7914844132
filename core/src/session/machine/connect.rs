//! The connect sequence: register (without an epoch), init `PUT /worker`, `GET /worker`, then
//! everything runs. Failures retry on the connect controller's curve or give up by its rules.

use serde_json::Value;

use super::flight::Purpose;
use super::{Session, epoch_body};
use crate::backoff::{Decision, Failure};
use crate::classify::Outcome;
use crate::session::status::{GiveUpReason, Status};
use crate::state;
use crate::time::Instant;

/// Where the connect sequence is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// `POST /worker/register`, for a session without an epoch.
    Register,
    /// `PUT /worker` with `worker_status: idle`.
    Init,
    /// `GET /worker` for the base document.
    Fetch,
    /// Everything runs.
    Connected,
    /// Gave up with [`OnGiveUp::Hold`](crate::session::OnGiveUp::Hold): nothing is sent, and
    /// everything is kept until the caller reconnects or closes.
    Held,
    /// A terminal status was emitted; nothing more happens.
    Ended,
}

impl Session {
    /// Sends the request of the current connect phase.
    pub(super) fn send_connect_step(&mut self, now: Instant) {
        self.counters.connect_attempts += u64::from(self.phase != Phase::Fetch);
        let body = match (self.phase, self.epoch) {
            (Phase::Register, _) => b"{}".to_vec(),
            (Phase::Init, Some(epoch)) => {
                epoch_body(epoch, [("worker_status", Value::String("idle".into()))])
            }
            (Phase::Fetch, _) => alloc::vec::Vec::new(),
            _ => return,
        };
        self.send(now, Purpose::Connect(self.phase), body);
    }

    /// Moves the connect sequence on after a reply to phase `phase`.
    pub(super) fn settle_connect(
        &mut self,
        now: Instant,
        phase: Phase,
        outcome: Outcome,
        body: Option<Value>,
    ) {
        let failure = match outcome {
            Outcome::Success => return self.advance_connect(now, phase, body),
            Outcome::Throttled(hint) => Failure::Throttled(hint),
            Outcome::TooLarge => {
                return self.give_up(now, GiveUpReason::Rejected(413));
            }
            Outcome::Permanent(status) => {
                return self.give_up(now, GiveUpReason::Rejected(status));
            }
            Outcome::Transient(_)
            | Outcome::AuthFailure
            | Outcome::SessionUnknown
            | Outcome::Superseded => Failure::Transient,
        };
        match self.connect.record_failure(now, failure) {
            Decision::Retry { attempt, at, .. } => {
                self.connect_retry_at = Some(at);
                self.emit_status(Status::Retrying { attempt, at });
            }
            Decision::GiveUp(reason) => self.give_up(now, reason),
        }
    }

    fn advance_connect(&mut self, now: Instant, phase: Phase, body: Option<Value>) {
        match phase {
            Phase::Register => {
                self.epoch = body.and_then(|b| b.get("worker_epoch").and_then(Value::as_u64));
                self.phase = Phase::Init;
                self.send_connect_step(now);
            }
            Phase::Init => {
                self.phase = Phase::Fetch;
                self.send_connect_step(now);
            }
            Phase::Fetch => self.connected(now, body.unwrap_or(Value::Null)),
            Phase::Connected | Phase::Held | Phase::Ended => {}
        }
    }

    fn connected(&mut self, now: Instant, mut document: Value) {
        let Some(epoch) = self.epoch else {
            return;
        };
        if let Some(doc) = document.as_object_mut() {
            doc.remove(state::EPOCH_KEY);
        }
        self.connect.record_success(now);
        self.phase = Phase::Connected;
        match self.state.rebase(now, document) {
            // A state uploader closed before the connect finished needs no base any more.
            Ok(()) | Err(state::Error::Closed) => {}
            // `read_response` only lets an object through.
            Err(error) => debug_assert!(false, "the server's document was refused: {error}"),
        }
        self.state.set_epoch(now, epoch);
        for slot in self.streams.values_mut() {
            slot.uploader.set_epoch(now, epoch);
        }
        self.heartbeat.start(now);
        self.emit_status(Status::Connected);
    }
}
