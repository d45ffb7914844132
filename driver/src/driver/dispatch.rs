//! The core's outputs carried out: requests become actions, statuses and reports go to their
//! subscribers, flush answers to their waiters; and the end of the session, which answers
//! everyone and closes the streams.
use std::panic::{self, AssertUnwindSafe};

use tether_core::Poll;
use tether_core::session::Output;

use super::Driver;
use super::waiter::answer_ended;
use crate::action::Action;
use crate::error::FlushError;
use crate::report::{CloseReport, Report, UndeliveredEvent};

impl Driver {
    /// Drains the core's outputs until it names its next deadline.
    pub(super) fn drain(&mut self) {
        let before = self.deadline();
        loop {
            match self.session.poll_output() {
                Poll::Output(output) => {
                    self.observe(&output);
                    self.output(output);
                }
                Poll::Timeout(wake) => {
                    self.wake = wake;
                    break;
                }
            }
        }
        if self.tap.is_some() {
            let at = self.now;
            let session = &self.session;
            if let Some(tap) = &mut self.tap {
                if panic::catch_unwind(AssertUnwindSafe(|| tap.drained(at, session))).is_err() {
                    self.tap = None;
                }
            }
        }
        let acknowledged = self.session.state_counters().puts_acknowledged;
        if acknowledged > self.puts_acknowledged {
            self.puts_acknowledged = acknowledged;
            self.reports
                .publish(Report::StateAcknowledged { puts: acknowledged });
        }
        if let Some(outbox) = &mut self.outbox {
            outbox.bind();
        }
        let after = self.deadline();
        if after.is_some_and(|a| before.is_none_or(|b| a < b)) {
            self.notify = true;
        }
    }

    pub(super) fn output(&mut self, output: Output) {
        if let Some(outbox) = &mut self.outbox {
            outbox.output(self.now, &output);
        }
        match output {
            Output::Send(request) => {
                self.in_flight.insert(request.id);
                self.telemetry
                    .sent(request.id, request.endpoint, self.now, &request.body);
                self.wire.requests += 1;
                self.wire.body_bytes += request.body.len() as u64;
                let http = self.target.build(request, self.now);
                let http = match &mut self.outbox {
                    Some(outbox) => outbox.hold(http),
                    None => Some(http),
                };
                if let Some(http) = http {
                    self.actions.push_back(Action::Send(http));
                }
                self.notify = true;
            }
            Output::Cancel(id) if self.in_flight.remove(&id) => {
                self.telemetry.cancelled(id);
                if !self.outbox.as_mut().is_some_and(|o| o.unhold(id)) {
                    self.actions.push_back(Action::Cancel(id));
                }
                self.notify = true;
            }
            Output::Cancel(_) => {}
            Output::Status(status) => {
                self.telemetry.status(&status);
                self.statuses.publish(status);
                if status.is_terminal() {
                    self.room = true; // waiting offers now fail with `Ended`
                }
            }
            Output::Delivered { stream, events } => {
                self.room = true;
                if !self.reports.is_empty() {
                    self.reports.publish(Report::Delivered { stream, events });
                }
            }
            Output::HandedBack {
                stream,
                reason,
                events,
            } => {
                self.room = true;
                let outbox = self.outbox.is_some();
                let events: Vec<UndeliveredEvent> = events
                    .into_iter()
                    .map(|e| UndeliveredEvent::new(stream, reason, e, outbox))
                    .collect();
                self.undelivered.extend(events.iter().cloned());
                self.telemetry.handed_back(stream, &reason, &events);
                self.reports.publish(Report::HandedBack { reason, events });
            }
            Output::StateRejected(rejection) => {
                self.rejected.push(rejection.clone());
                self.reports.publish(Report::StateRejected(rejection));
            }
            Output::StateUnacknowledged(unacknowledged) => {
                self.unacknowledged = Some(unacknowledged.clone());
                self.reports
                    .publish(Report::StateUnacknowledged(unacknowledged));
            }
            Output::FlushDone(id) => {
                if let Some(reply) = self.flushes.remove(&id) {
                    let status = self.session.status();
                    reply.complete(if status.is_terminal() {
                        Err(FlushError::Ended(status))
                    } else {
                        Ok(())
                    });
                }
            }
            Output::FlushTimedOut(id) => {
                if let Some(reply) = self.flushes.remove(&id) {
                    reply.complete(Err(FlushError::TimedOut));
                }
            }
            Output::DeltaHandedBack { key, error } => {
                self.room = true;
                self.reports.publish(Report::DeltaHandedBack { key, error });
            }
            // A future output of the core: nothing for the driver to carry out.
            _ => {}
        }
    }

    pub(super) fn close_report(&self) -> CloseReport {
        CloseReport {
            status: self.session.status(),
            epoch: self.session.epoch(),
            undelivered: self.undelivered.clone(),
            state_rejected: self.rejected.clone(),
            state_unacknowledged: self.unacknowledged.clone(),
            counters: self.counters(),
            kept: self.outbox.as_ref().map(crate::outbox::Outbox::kept),
        }
    }

    /// The session has ended: answer every waiter and end the streams.
    pub(super) fn finish(&mut self) {
        if let Some(outbox) = &mut self.outbox {
            // What the end settled (forgets, the state) is written before anyone is answered;
            // what is left is kept for the next run, and the close report counts it. Both are
            // store jobs: the end waits for them (`handle_store` comes back here).
            if !outbox.end_done() {
                if !self.finishing {
                    self.finishing = true;
                    outbox.begin_end();
                    self.commit_outbox(self.now);
                }
                return;
            }
        }
        self.finished = true;
        let status = self.session.status();
        for b in std::mem::take(&mut self.blocked) {
            answer_ended(b.waiting, status);
        }
        for (_, reply) in std::mem::take(&mut self.flushes) {
            reply.complete(Err(FlushError::Ended(status)));
        }
        for (_, reply) in std::mem::take(&mut self.deferred_flushes) {
            reply.complete(Err(FlushError::Ended(status)));
        }
        let report = self.close_report();
        for closer in std::mem::take(&mut self.closers) {
            closer.complete(report.clone());
        }
        self.statuses.close();
        self.reports
            .publish(Report::LatencySummary(self.telemetry.summary()));
        self.reports.close();
        self.notify = true;
    }
}
