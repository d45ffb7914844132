//! One simulated run: a session against the server model, through the faulty network, on a virtual
//! clock, with every invariant checked at the end.
//!
//! The runner owns everything and moves time itself: it always jumps to the earliest of the
//! next workload action, the next planned event (restart, takeover), the next response due, and
//! the session's own wake-up. Ties go in that order, so a run is a pure function of its
//! [`RunConfig`].

use std::collections::BTreeMap;

use super::Violation;
use super::check::{
    self, GiveUpRules, OutcomeRecord, OutputRecord, PatchFate, PatchRecord, StateRecord,
    StreamRecord, Terminal,
};
use super::network::Network;
use super::report::{RunConfig, RunError, RunReport, RunStats};
use super::trace::Trace;
use super::workload::{Action, PlannedEvent, Step, steps};
use tether_core::batch::EventId;
use tether_core::classify::{Outcome, Reply, TransientCause, classify};
use tether_core::drive::{DrainBound, Poll};
use tether_core::patch::DocumentSchema;
use tether_core::session::{
    DeliveryStatus, Endpoint, GiveUpReason, Output, RequestId, Session, SessionError, Status,
    Stream,
};
use tether_core::time::Instant;
use tether_model::fault::{Delivery, Span, TimeEvent};
use tether_model::timeline::Recorder;
use tether_model::{ServerConfig, ServerModel};

/// What the runner does next, in tie-break order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Next {
    Delivery,
    Timeline,
    Action,
    Wake,
}

/// A request the session is waiting on.
#[derive(Clone, Copy, Debug)]
struct Outstanding {
    deadline: Instant,
    connect: bool,
    /// Whether it is a `PUT /worker`.
    put: bool,
    /// For a PUT the server applied: its index in the server's list of applied PUTs.
    applied_put: Option<usize>,
}

/// The most outputs one drain may give before the run counts as a livelock.
const DRAIN_BOUND: usize = 1_000_000;

struct Runner<'a> {
    config: &'a RunConfig,
    now: Instant,
    session: Session,
    server: ServerModel,
    network: Network,
    trace: Option<Trace>,
    recorder: Option<Recorder>,
    deliveries: BTreeMap<(Instant, u64), (RequestId, Delivery)>,
    delivery_seq: u64,
    outstanding: BTreeMap<RequestId, Outstanding>,
    wake: Option<Instant>,
    connected: bool,
    terminal: Option<(Instant, Status)>,
    // Records for the checks.
    events: [StreamRecord; 2],
    /// Per stream (as `events`), the `seq` of each accepted event by its id. The session numbers
    /// each stream's events in increasing order, so each list is sorted by id.
    ids: [Vec<(EventId, u64)>; 2],
    patches: Vec<PatchRecord>,
    applied_resets: Option<serde_json::Map<String, serde_json::Value>>,
    /// Acknowledged PUTs: the server's index of each, whether its body was all resets, and
    /// the document the client believed acknowledged right after.
    acknowledged_puts: Vec<(usize, bool, serde_json::Value)>,
    /// The init `PUT`'s fate: unknown once sent, acknowledged once a 2xx for it arrives.
    init_put: Option<PatchFate>,
    outcomes: Vec<OutcomeRecord>,
    connect_failures: u32,
    outputs: Vec<OutputRecord>,
    beats: Vec<Instant>,
    connected_spans: Vec<Span>,
    connected_since: Option<Instant>,
    step_limit_hit: bool,
    stats: RunStats,
}

/// Runs one seeded simulation and checks every invariant.
///
/// ```
/// use tether_sim::{run, FaultMix, RunConfig, WorkloadConfig};
///
/// let mut config = RunConfig::new(7, FaultMix::flaky()).traced();
/// config.workload = WorkloadConfig { events_per_second: 0.5, ..WorkloadConfig::default() };
/// let report = run(&config)?;
/// assert!(report.passed(), "{:?}", report.violations);
/// assert_eq!(report.stats.events, report.stats.delivered + report.stats.handed_back);
/// # Ok::<(), tether_sim::RunError>(())
/// ```
pub fn run(config: &RunConfig) -> Result<RunReport, RunError> {
    let length = config.workload.duration + config.workload.close_timeout;
    let network = Network::new(config.seed, config.mix.clone(), length).map_err(RunError::Mix)?;
    let session = Session::new(
        config.session.clone(),
        tether_core::Rng::new(config.seed ^ 2),
        Instant::ZERO,
    )
    .map_err(RunError::Session)?;
    let server = ServerModel::new(ServerConfig {
        session_id: Some(config.session.session_id.clone()),
        ..ServerConfig::default()
    });
    let mut runner = Runner {
        config,
        now: Instant::ZERO,
        session,
        server,
        network,
        trace: config.trace.then(Trace::new),
        recorder: config
            .timeline
            .then(|| Recorder::new(format!("tether sim seed {}", config.seed))),
        deliveries: BTreeMap::new(),
        delivery_seq: 0,
        outstanding: BTreeMap::new(),
        wake: None,
        connected: false,
        terminal: None,
        events: [
            StreamRecord {
                stream: "events".into(),
                ..StreamRecord::default()
            },
            StreamRecord {
                stream: "internal-events".into(),
                ..StreamRecord::default()
            },
        ],
        ids: [Vec::new(), Vec::new()],
        patches: Vec::new(),
        applied_resets: None,
        acknowledged_puts: Vec::new(),
        init_put: None,
        outcomes: Vec::new(),
        connect_failures: 0,
        outputs: Vec::new(),
        beats: Vec::new(),
        connected_spans: Vec::new(),
        connected_since: None,
        step_limit_hit: false,
        stats: RunStats::default(),
    };
    let actions = steps(config.seed ^ 1, &config.workload);
    let timeline = runner.network.timeline();
    runner.drive(actions, &timeline);
    Ok(runner.finish())
}

impl Runner<'_> {
    fn line(&mut self, args: std::fmt::Arguments<'_>) {
        if let Some(trace) = &mut self.trace {
            trace.line(self.now, args);
        }
    }

    fn drive(&mut self, actions: Vec<(Instant, Step)>, timeline: &[(Instant, TimeEvent)]) {
        let mut actions = actions.into_iter().peekable();
        let mut next_event = 0;
        self.drain();
        loop {
            self.stats.steps += 1;
            if self.stats.steps > self.config.max_steps {
                self.line(format_args!("!! step limit reached: livelock?"));
                self.step_limit_hit = true;
                break;
            }
            if self.terminal.is_some() || self.step_limit_hit {
                break;
            }
            let candidates = [
                (self.deliveries.keys().next().map(|k| k.0), Next::Delivery),
                (timeline.get(next_event).map(|e| e.0), Next::Timeline),
                (actions.peek().map(|a| a.0), Next::Action),
                (self.wake, Next::Wake),
            ];
            let Some((at, next)) = candidates
                .into_iter()
                .filter_map(|(at, next)| at.map(|at| (at, next)))
                .min()
            else {
                break;
            };
            self.now = self.now.max(at);
            match next {
                Next::Delivery => {
                    let Some((_, (id, delivery))) = self.deliveries.pop_first() else {
                        continue;
                    };
                    self.deliver(id, delivery);
                }
                Next::Timeline => {
                    let event = timeline[next_event].1;
                    next_event += 1;
                    self.line(format_args!("** {event}"));
                    if let Some(r) = &mut self.recorder {
                        r.plan_event(self.now, event);
                    }
                    match event {
                        TimeEvent::Restart => self.server.restart(self.now),
                        TimeEvent::Takeover => {
                            self.server.force_takeover();
                        }
                        _ => {}
                    }
                }
                Next::Action => match actions.next() {
                    Some((_, Step::Event(event))) => self.enqueue(Stream::Events, event),
                    Some((_, Step::InternalEvent(event))) => {
                        self.enqueue(Stream::InternalEvents, event);
                    }
                    Some((_, Step::Other(action))) => self.act(action),
                    None => {}
                },
                Next::Wake => self.session.handle_timeout(self.now),
            }
            self.drain();
        }
        self.stats.end = self.now;
    }

    fn act(&mut self, action: Action) {
        let now = self.now;
        match action {
            // Events come typed, as steps of their own (see `drive`).
            Action::Event(_) | Action::InternalEvent(_) => {}
            Action::Ack { event_id, status } => {
                let status = match status.as_str() {
                    "received" => DeliveryStatus::Received,
                    "processing" => DeliveryStatus::Processing,
                    _ => DeliveryStatus::Processed,
                };
                self.line(format_args!("app ack {event_id} {}", status.as_str()));
                let _ = self.session.ack_delivery(now, &event_id, status);
            }
            Action::Patch(patch) => {
                self.stats.patches += 1;
                self.line(format_args!("app patch {patch}"));
                let fate = match self.session.patch_state(now, patch.clone()) {
                    Ok(_) => PatchFate::Acknowledged, // until told otherwise
                    Err(_) => PatchFate::Abandoned,
                };
                self.patches.push(PatchRecord { patch, fate });
            }
            Action::Flush { timeout } => {
                self.line(format_args!("app flush {}ms", timeout.as_millis()));
                let _ = self.session.flush(now, now + timeout);
            }
            Action::Close { timeout } => {
                self.line(format_args!("app close {}ms", timeout.as_millis()));
                self.session.close(now, now + timeout);
            }
        }
    }

    /// Hands a workload event to the session through the typed path, which serialises it
    /// straight into its wire item: the same bytes and the same uuid draw as
    /// `send_event(Event::new(value))` with the `Value` [`generate`](super::generate) gives.
    fn enqueue(&mut self, stream: Stream, event: PlannedEvent) {
        let seq = event.seq;
        self.stats.events += 1;
        let record = &mut self.events[record_index(stream)];
        record.enqueued.push(seq);
        let result = match stream {
            Stream::InternalEvents => self.session.send_internal_event_serialize(self.now, &event),
            _ => self.session.send_event_serialize(self.now, &event),
        };
        match result {
            Ok(id) => {
                self.ids[record_index(stream)].push((id, seq));
                self.line(format_args!("app {stream} seq={seq} -> {id}"));
            }
            Err(error) => {
                // The error hands the event back: it counts as handed back.
                record.handed_back.push(seq);
                self.stats.handed_back += 1;
                let reason = match &error {
                    SessionError::Enqueue { error, .. } => error.to_string(),
                    other => other.to_string(),
                };
                self.line(format_args!("app {stream} seq={seq} refused: {reason}"));
            }
        }
    }

    fn deliver(&mut self, id: RequestId, delivery: Delivery) {
        let now = self.now;
        if let Some(trace) = &mut self.trace {
            trace.delivery(id, &delivery);
        }
        if let Some(r) = &mut self.recorder {
            r.delivery(now, id, &delivery);
        }
        let outcome = match &delivery {
            Delivery::Respond { response, .. } => classify(Reply::Status {
                status: response.status,
                retry_after: response.retry_after.as_deref(),
                date: response.date.as_deref(),
            }),
            _ => Outcome::Transient(TransientCause::Transport),
        };
        let mut acknowledged_put = None;
        if let Some(outstanding) = self.outstanding.remove(&id) {
            self.record_outcome(outcome, outstanding.connect);
            if outcome == Outcome::Success && outstanding.put {
                if outstanding.connect {
                    // The connect sequence's own PUT: the state uploader learns the document
                    // from the GET that follows (see the Connected status).
                    self.init_put = Some(PatchFate::Acknowledged);
                } else {
                    acknowledged_put = outstanding.applied_put;
                }
            }
        }
        match delivery {
            Delivery::Respond { response, .. } => self.session.handle_response(now, id, response),
            Delivery::TransportError { error, .. } => {
                self.session.handle_transport_error(now, id, &error);
            }
            Delivery::Hang => {}
        }
        if let Some(index) = acknowledged_put {
            let resets_only = self.server.applied_puts()[index]
                .patch
                .values()
                .all(all_nulls);
            let belief = self.session.state_acknowledged().clone();
            self.acknowledged_puts.push((index, resets_only, belief));
        }
    }

    fn record_outcome(&mut self, outcome: Outcome, connect: bool) {
        self.outcomes.push(OutcomeRecord {
            at: self.now,
            outcome,
        });
        if connect {
            match outcome {
                Outcome::Success => {}
                _ => self.connect_failures += 1,
            }
        }
    }

    fn drain(&mut self) {
        let mut bound = DrainBound::new(self.now, DRAIN_BOUND);
        loop {
            let next = match bound.poll(&mut self.session) {
                Ok(next) => next,
                Err(livelock) => {
                    // A session that never stops emitting: the run ends as a step-limit
                    // violation instead of hanging.
                    self.line(format_args!("!! {livelock}"));
                    self.step_limit_hit = true;
                    return;
                }
            };
            match next {
                Poll::Output(output) => self.on_output(output),
                Poll::Timeout(wake) => {
                    self.wake = wake.map(|w| w.at);
                    if let Some(r) = &mut self.recorder {
                        r.sample_session(self.now, &self.session);
                    }
                    return;
                }
            }
        }
    }

    fn on_output(&mut self, output: Output) {
        let now = self.now;
        let (kind, terminal): (&'static str, bool) = match &output {
            Output::Send(_) => ("request", false),
            Output::Cancel(_) => ("cancel", false),
            Output::Status(s) => ("status", s.is_terminal()),
            Output::Delivered { .. } => ("delivered", false),
            Output::HandedBack { .. } => ("handed-back", false),
            Output::StateRejected(_) => ("state-rejected", false),
            Output::StateUnacknowledged(_) => ("state-unacknowledged", false),
            Output::FlushDone(_) => ("flush-done", false),
            Output::FlushTimedOut(_) => ("flush-timed-out", false),
            // `Output` is non-exhaustive: a kind the simulator does not know yet is recorded
            // (and traced below) rather than dropped.
            _ => ("other", false),
        };
        self.outputs.push(OutputRecord {
            at: now,
            kind: kind.into(),
            terminal,
        });
        match output {
            Output::Send(request) => {
                self.stats.requests += 1;
                if let Some(trace) = &mut self.trace {
                    trace.request(now, &request);
                    if request.endpoint == Endpoint::PutWorker {
                        let body = std::str::from_utf8(&request.body).unwrap_or("<binary>");
                        trace.line(now, format_args!("   {} body {body}", request.id));
                    }
                }
                if let Some(r) = &mut self.recorder {
                    r.sent(now, &request);
                }
                if request.endpoint == Endpoint::Heartbeat {
                    self.beats.push(now);
                }
                let puts_before = self.server.applied_puts().len();
                if request.endpoint == Endpoint::PutWorker && !self.connected {
                    self.init_put.get_or_insert(PatchFate::Unknown);
                }
                let delivery = if self.network.partitioned(now) {
                    self.stats.faults += 1;
                    self.line(format_args!("   {} lost in a partition", request.id));
                    if let Some(r) = &mut self.recorder {
                        r.fault(request.id, "lost in a partition");
                    }
                    Delivery::Hang
                } else {
                    let exchange = self.network.exchange(
                        now,
                        &mut self.server,
                        request.endpoint,
                        &request.body,
                    );
                    if exchange.fault != super::Fault::None {
                        self.stats.faults += 1;
                        self.line(format_args!("   {} fault: {}", request.id, exchange.fault));
                        if let Some(r) = &mut self.recorder {
                            r.fault(request.id, exchange.fault);
                        }
                    }
                    exchange.delivery
                };
                let applied = self.server.applied_puts().len() > puts_before;
                self.outstanding.insert(
                    request.id,
                    Outstanding {
                        deadline: request.deadline,
                        connect: !self.connected,
                        put: request.endpoint == Endpoint::PutWorker,
                        applied_put: applied.then_some(puts_before),
                    },
                );
                if let Some(at) = delivery.at() {
                    self.delivery_seq += 1;
                    self.deliveries
                        .insert((at, self.delivery_seq), (request.id, delivery));
                }
            }
            Output::Cancel(id) => {
                self.line(format_args!("-- {id} cancelled"));
                if let Some(r) = &mut self.recorder {
                    r.cancelled(now, id);
                }
                if let Some(o) = self.outstanding.remove(&id) {
                    // A cancel at the deadline is a timeout; one at the end is not an outcome.
                    if o.deadline <= now {
                        self.record_outcome(
                            Outcome::Transient(TransientCause::TimedOut),
                            o.connect,
                        );
                    }
                }
            }
            Output::Status(status) => {
                self.line(format_args!("status {status}"));
                if let Some(r) = &mut self.recorder {
                    r.status(now, status);
                }
                match status {
                    Status::Connected => {
                        if !self.connected {
                            // The uploader was just rebased on the server's document.
                            if let Some(index) = self.server.applied_puts().len().checked_sub(1) {
                                let belief = self.session.state_acknowledged().clone();
                                self.acknowledged_puts.push((index, false, belief));
                            }
                        }
                        self.connected = true;
                        self.connected_since.get_or_insert(now);
                    }
                    s if s.is_terminal() => {
                        if let Some(start) = self.connected_since.take() {
                            self.connected_spans.push(Span { start, end: now });
                        }
                        self.terminal = Some((now, s));
                    }
                    _ => {}
                }
            }
            Output::Delivered { stream, events } => {
                self.line(format_args!("delivered {stream} {}", events.len()));
            }
            Output::HandedBack {
                stream,
                reason,
                events,
            } => {
                self.line(format_args!(
                    "handed back {stream} {} ({reason:?})",
                    events.len()
                ));
                if stream == Stream::Delivery {
                    return;
                }
                let ids = &self.ids[record_index(stream)];
                for event in events {
                    if let Ok(i) = ids.binary_search_by_key(&event.id, |(id, _)| *id) {
                        self.events[record_index(stream)].handed_back.push(ids[i].1);
                        self.stats.handed_back += 1;
                    }
                }
            }
            Output::StateRejected(rejection) => {
                self.line(format_args!(
                    "state rejected {}: patches {:?}",
                    rejection.status, rejection.patches
                ));
                self.set_fates(rejection.patches.clone(), PatchFate::Rejected);
            }
            Output::StateUnacknowledged(unacknowledged) => {
                self.line(format_args!(
                    "state unacknowledged: patches {:?}, in flight {:?}",
                    unacknowledged.patches, unacknowledged.in_flight
                ));
                self.applied_resets = unacknowledged.applied_resets.clone();
                self.set_fates(unacknowledged.patches.clone(), PatchFate::Unknown);
            }
            Output::FlushDone(id) => self.line(format_args!("flush {} done", id.0)),
            Output::FlushTimedOut(id) => self.line(format_args!("flush {} timed out", id.0)),
            other => self.line(format_args!("output {other:?}")),
        }
    }

    /// Marks the patches with state sequence numbers in `range`; the state uploader numbers
    /// the patches it accepted from 0.
    fn set_fates(&mut self, range: std::ops::Range<u64>, fate: PatchFate) {
        let mut accepted = 0u64;
        for record in &mut self.patches {
            // A patch refused at enqueue never got a sequence number.
            if record.fate == PatchFate::Abandoned {
                continue;
            }
            if range.contains(&accepted) {
                record.fate = fate;
            }
            accepted += 1;
        }
    }

    fn finish(mut self) -> RunReport {
        if let Some(start) = self.connected_since.take() {
            self.connected_spans.push(Span {
                start,
                end: self.now,
            });
        }
        let mut violations = Vec::new();
        let mut keep = |r: Result<(), Violation>| {
            if let Err(v) = r {
                violations.push(v);
            }
        };
        for (i, stream) in [Stream::Events, Stream::InternalEvents]
            .into_iter()
            .enumerate()
        {
            self.events[i].delivered = self.server.seqs(stream);
            self.stats.delivered += self.events[i].delivered.len() as u64;
            self.stats.duplicates += self.server.duplicates(stream);
            keep(check::no_event_lost(&self.events[i]));
            keep(check::in_order_and_unique(&self.events[i]));
        }
        let mut document = self.server.document();
        if let Some(doc) = document.as_object_mut() {
            doc.remove("worker_epoch");
        }
        self.line(format_args!("server document {document}"));
        let view = self.session.state_view().clone();
        self.line(format_args!("session view    {view}"));
        let acknowledged = self.session.state_acknowledged().clone();
        self.line(format_args!("acknowledged    {acknowledged}"));
        let mut patches = Vec::with_capacity(self.patches.len() + 1);
        if let Some(fate) = self.init_put {
            patches.push(PatchRecord {
                patch: serde_json::json!({"worker_status": "idle"}),
                fate,
            });
        }
        patches.append(&mut self.patches);
        let unknown = patches.iter().any(|p| p.fate == PatchFate::Unknown);
        // From the last acknowledgement of a whole update on (later ones are resets stages).
        let first_anchor = self
            .acknowledged_puts
            .iter()
            .rposition(|(_, resets_only, _)| !resets_only)
            .unwrap_or(0);
        let anchors = if unknown {
            self.acknowledged_puts[first_anchor..]
                .iter()
                .map(|(index, _, belief)| {
                    let bodies = self.server.applied_puts()[index + 1..]
                        .iter()
                        .map(|put| serde_json::Value::Object(put.patch.clone()))
                        .collect();
                    (belief.clone(), bodies)
                })
                .collect()
        } else {
            Vec::new()
        };
        keep(check::state_converged(
            &DocumentSchema::default(),
            &StateRecord {
                initial: serde_json::Value::Object(serde_json::Map::new()),
                patches,
                applied_resets: self.applied_resets.take().map(serde_json::Value::Object),
                anchors,
                server_document: document,
            },
        ));
        let hb = &self.config.session.heartbeat;
        let bound = hb.max_gap() + self.config.session.heartbeat_timeout;
        keep(check::heartbeat_gaps(
            &self.connected_spans,
            &self.beats,
            bound,
        ));
        let rules = GiveUpRules {
            max_auth_failures: self.config.session.max_auth_failures,
            session_unknown_terminal: !self.config.session.session_unknown_is_transient,
        };
        let actual = match self.terminal {
            Some((at, Status::Superseded)) => Some((at, Terminal::Superseded)),
            Some((at, Status::GivenUp(GiveUpReason::AuthFailures(_)))) => {
                Some((at, Terminal::GaveUpAuth))
            }
            Some((at, Status::GivenUp(GiveUpReason::SessionUnknown))) => {
                Some((at, Terminal::GaveUpSessionUnknown))
            }
            _ => None,
        };
        keep(check::give_up_as_ruled(&rules, &self.outcomes, actual));
        if let Some((
            _,
            Status::GivenUp(
                GiveUpReason::AttemptsExhausted { .. }
                | GiveUpReason::DeadlineExceeded
                | GiveUpReason::Rejected(_),
            ),
        )) = self.terminal
        {
            let allowed = self.config.session.connect.max_attempts.unwrap_or(u32::MAX);
            if self.connect_failures != allowed.saturating_add(1) {
                keep(Err(Violation::ConnectGiveUp {
                    failures: self.connect_failures,
                    max_attempts: allowed,
                }));
            }
        }
        keep(check::quiet_after_terminal(&self.outputs));
        if self.step_limit_hit {
            keep(Err(Violation::StepLimit {
                steps: self.config.max_steps,
            }));
        } else if self.terminal.is_none() {
            // The workload always ends with a close, so every run must end.
            keep(Err(Violation::NoTerminalStatus { at: self.now }));
        }
        let status = self.terminal.map_or(self.session.status(), |t| t.1);
        RunReport {
            seed: self.config.seed,
            status,
            violations,
            trace: self.trace,
            timeline: self.recorder.map(|r| r.finish(self.now)),
            stats: self.stats,
        }
    }
}

/// Whether a JSON value is `null` or an object of nothing but such values: a resets stage.
fn all_nulls(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => true,
        serde_json::Value::Object(map) => map.values().all(all_nulls),
        _ => false,
    }
}

fn record_index(stream: Stream) -> usize {
    match stream {
        Stream::InternalEvents => 1,
        _ => 0,
    }
}
