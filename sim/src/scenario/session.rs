//! The worker-session scenario: one client, a real driver around a real session, its caller
//! working through the seeded [workload](crate::workload) on the [`Tether`] handle, against one
//! server through the faulty network, with every invariant checked at the end.
//!
//! The caller's calls are the handle's: an event is `send_serialize` (internal events `send`),
//! and a send that finds its queue full returns a [`Pending`] that is not ready yet; the caller
//! keeps it and looks again after every step of the world, as a waiting sender would. Acks,
//! patches, flushes and the close are the handle's calls too; with
//! [`Callers::drop_handle`](crate::Callers::drop_handle) the caller drops its handle instead of closing, and the session
//! closes itself.
//!
//! What the checks see comes from the driver's tap (every core output, in order, with its time),
//! from the network (what each request did to the server) and from the caller's answers (an
//! event a send refused or that timed out waiting is handed back, in the caller's hands).

use tether_core::Instant;
use tether_core::batch::Event;
use tether_core::classify::{Outcome, Reply, TransientCause, classify};
use tether_core::patch::DocumentSchema;
use tether_core::session::{
    DeliveryStatus, Endpoint, GiveUpReason, Output, RequestId, Status, Stream,
};
use tether_driver::runtime::HttpRequest;
use tether_driver::{
    CloseReport, FlushError, Pending, Report, SendError, Settings, Subscription, Tether,
};
use tether_model::fault::{Delivery, Fault, Span};
use tether_model::{ServerConfig, ServerModel, seq_of};

use crate::Violation;
use crate::check::{
    self, GiveUpRules, OutcomeRecord, OutputRecord, PatchFate, PatchRecord, StateRecord,
    StreamRecord, Terminal,
};
use crate::network::Network;
use crate::report::{RunConfig, RunError, RunReport, RunStats};
use crate::workload::{Action, PlannedEvent, Step, steps};
use crate::world::{ClientSpec, Scenario, World};

/// How long a sender waits for room in a full queue before its event comes back.
pub const SEND_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// A send the caller is waiting on.
struct Waiting {
    stream: Stream,
    seq: u64,
    pending: Pending<Result<tether_core::batch::EventId, SendError>>,
}

/// A request the session is waiting on.
#[derive(Clone, Copy, Debug)]
struct Outstanding {
    deadline: Instant,
    connect: bool,
    put: bool,
    applied_put: Option<usize>,
}

/// The scenario's state: the workload still to come, the caller's waits, and the records the
/// checks read.
struct WorkerSession<'a> {
    config: &'a RunConfig,
    actions: std::collections::VecDeque<(Instant, Step)>,
    waiting: Vec<Waiting>,
    flushes: Vec<(Instant, Pending<Result<(), FlushError>>)>,
    close: Option<Pending<CloseReport>>,
    close_report: Option<CloseReport>,
    outstanding: std::collections::HashMap<RequestId, Outstanding>,
    puts_before: usize,
    connected: bool,
    terminal: Option<(Instant, Status)>,
    events: [StreamRecord; 2],
    patches: Vec<PatchRecord>,
    applied_resets: Option<serde_json::Map<String, serde_json::Value>>,
    acknowledged_puts: Vec<(usize, bool, serde_json::Value)>,
    /// Anchors waiting for the acknowledged document the next sample brings.
    pending_anchors: Vec<(usize, bool)>,
    init_put: Option<PatchFate>,
    outcomes: Vec<OutcomeRecord>,
    connect_failures: u32,
    outputs: Vec<OutputRecord>,
    beats: Vec<Instant>,
    connected_spans: Vec<Span>,
    connected_since: Option<Instant>,
    unanswered: Vec<String>,
    /// The driver's live reports, read when the scenario looks for one.
    reports: Option<Subscription<Report>>,
    panics_reported: u64,
    stats: RunStats,
}

/// Runs one seeded worker session in the world, on the real driver, and checks every
/// invariant.
///
/// ```
/// use tether_sim::{FaultMix, RunConfig, WorkloadConfig, run_session};
///
/// let mut config = RunConfig::new(7, FaultMix::flaky()).traced();
/// config.workload = WorkloadConfig { events_per_second: 0.5, ..WorkloadConfig::default() };
/// let report = run_session(&config)?;
/// assert!(report.passed(), "{:?}", report.violations);
/// assert_eq!(report.stats.events, report.stats.delivered + report.stats.handed_back);
/// # Ok::<(), tether_sim::RunError>(())
/// ```
///
/// # Errors
/// The fault mix or the session's configuration is invalid.
pub fn run_session(config: &RunConfig) -> Result<RunReport, RunError> {
    let length = config.workload.duration + config.workload.close_timeout;
    let network = Network::new(config.seed, config.mix.clone(), length).map_err(RunError::Mix)?;
    let server = ServerModel::new(ServerConfig {
        session_id: Some(config.session.session_id.clone()),
        ..ServerConfig::default()
    });
    let mut world = World::new(network, vec![server], config.max_steps);
    if config.trace {
        world = world.traced();
    }
    if config.timeline {
        world = world.with_timeline(format!("tether sim seed {}", config.seed));
    }
    let mut settings = Settings::new(format!(
        "http://sim.invalid/v1/code/sessions/{}",
        config.session.session_id
    ));
    settings
        .config(config.session.clone())
        .seed(config.seed ^ 2)
        .drop_close_timeout(config.workload.close_timeout);
    if let Some(after) = config.callers.panicking_observer {
        let mut seen = 0u64;
        settings.observer(move |_| {
            seen += 1;
            if seen == after {
                // `resume_unwind` skips the panic hook: a sweep prints nothing for it.
                std::panic::resume_unwind(Box::new("the simulated observer panics"));
            }
        });
    }
    world
        .add_client(ClientSpec {
            settings,
            seed: config.seed ^ 2,
            server: 0,
            store: None,
        })
        .map_err(|e| match e {
            tether_driver::BuildError::Config(e) => RunError::Session(e),
            other => RunError::Driver(other.to_string()),
        })?;
    let mut scenario = WorkerSession::new(config);
    if config.callers.panicking_observer.is_some() {
        scenario.reports = world.client(0).tether().map(Tether::reports);
    }
    world.run(&mut scenario);
    Ok(scenario.finish(&mut world))
}

fn stream_record(name: &str) -> StreamRecord {
    StreamRecord {
        stream: name.into(),
        ..StreamRecord::default()
    }
}

impl<'a> WorkerSession<'a> {
    fn new(config: &'a RunConfig) -> Self {
        WorkerSession {
            config,
            actions: steps(config.seed ^ 1, &config.workload).into(),
            waiting: Vec::new(),
            flushes: Vec::new(),
            close: None,
            close_report: None,
            outstanding: std::collections::HashMap::new(),
            puts_before: 0,
            connected: false,
            terminal: None,
            events: [stream_record("events"), stream_record("internal-events")],
            patches: Vec::new(),
            applied_resets: None,
            acknowledged_puts: Vec::new(),
            pending_anchors: Vec::new(),
            init_put: None,
            outcomes: Vec::new(),
            connect_failures: 0,
            outputs: Vec::new(),
            beats: Vec::new(),
            connected_spans: Vec::new(),
            connected_since: None,
            unanswered: Vec::new(),
            reports: None,
            panics_reported: 0,
            stats: RunStats::default(),
        }
    }

    fn enqueue(&mut self, world: &mut World, stream: Stream, event: PlannedEvent) {
        let seq = event.seq;
        self.stats.events += 1;
        self.events[record_index(stream)].enqueued.push(seq);
        let Some(tether) = world.client(0).tether() else {
            return self.handed_back_by_caller(world, stream, seq, "no handle");
        };
        let pending = match stream {
            Stream::InternalEvents => {
                tether.send(stream, Event::new(event.into_value()), SEND_WAIT)
            }
            _ => tether.send_serialize(&event, SEND_WAIT),
        };
        self.settle_send(
            world,
            Waiting {
                stream,
                seq,
                pending,
            },
            false,
        );
    }

    /// A send's answer, if it has one; otherwise the caller keeps waiting.
    fn settle_send(&mut self, world: &mut World, mut waiting: Waiting, waited: bool) {
        let (stream, seq) = (waiting.stream, waiting.seq);
        match waiting.pending.try_take() {
            None => {
                if !waited {
                    world.line(format_args!("app {stream} seq={seq} waits for room"));
                }
                self.waiting.push(waiting);
            }
            Some(Ok(id)) | Some(Err(SendError::NotDurable { id, .. })) => {
                let after = if waited { " after waiting" } else { "" };
                world.line(format_args!("app {stream} seq={seq} -> {id}{after}"));
            }
            Some(Err(error)) => {
                let reason = error.to_string();
                self.handed_back_by_caller(world, stream, seq, &reason);
            }
        }
    }

    fn handed_back_by_caller(&mut self, world: &mut World, stream: Stream, seq: u64, why: &str) {
        self.events[record_index(stream)].handed_back.push(seq);
        self.stats.handed_back += 1;
        world.line(format_args!("app {stream} seq={seq} refused: {why}"));
    }

    fn other(&mut self, world: &mut World, action: Action) {
        match action {
            Action::Event(_) | Action::InternalEvent(_) => {}
            Action::Ack { event_id, status } => {
                let status = match status.as_str() {
                    "received" => DeliveryStatus::Received,
                    "processing" => DeliveryStatus::Processing,
                    _ => DeliveryStatus::Processed,
                };
                world.line(format_args!("app ack {event_id} {}", status.as_str()));
                if let Some(tether) = world.client(0).tether() {
                    // The acknowledgement's fate is the delivery stream's; nobody waits on it.
                    drop(tether.ack_delivery(&event_id, status, SEND_WAIT));
                }
            }
            Action::Patch(patch) => {
                self.stats.patches += 1;
                world.line(format_args!("app patch {patch}"));
                let fate = match world.client(0).tether() {
                    Some(tether) => match tether.patch_state(patch.clone()) {
                        Ok(_) => PatchFate::Acknowledged, // until told otherwise
                        Err(_) => PatchFate::Abandoned,
                    },
                    None => PatchFate::Abandoned,
                };
                self.patches.push(PatchRecord { patch, fate });
            }
            Action::Flush { timeout } => {
                world.line(format_args!("app flush {}ms", timeout.as_millis()));
                if let Some(tether) = world.client(0).tether() {
                    let pending = tether.flush(timeout);
                    self.flushes.push((world.now() + timeout, pending));
                }
            }
            Action::Close { timeout } => {
                if self.config.callers.drop_handle {
                    world.line(format_args!("app drops its handle"));
                    world.client_mut(0).drop_handle();
                } else {
                    world.line(format_args!("app close {}ms", timeout.as_millis()));
                    if let Some(tether) = world.client(0).tether() {
                        self.close = Some(tether.close(timeout));
                    }
                }
            }
        }
    }

    /// Marks the patches with state sequence numbers in `range`; the state uploader numbers
    /// the patches it accepted from 0.
    fn set_fates(&mut self, range: std::ops::Range<u64>, fate: PatchFate) {
        let mut accepted = 0u64;
        for record in &mut self.patches {
            if record.fate == PatchFate::Abandoned {
                continue;
            }
            if range.contains(&accepted) {
                record.fate = fate;
            }
            accepted += 1;
        }
    }

    fn record_outcome(&mut self, at: Instant, outcome: Outcome, connect: bool) {
        self.outcomes.push(OutcomeRecord { at, outcome });
        if connect && outcome != Outcome::Success {
            self.connect_failures += 1;
        }
    }

    fn finish(mut self, world: &mut World) -> RunReport {
        let now = world.now();
        self.stats.end = now;
        self.stats.steps = world.steps();
        self.stats.requests = world.requests;
        self.stats.faults = world.faults;
        if let Some(start) = self.connected_since.take() {
            self.connected_spans.push(Span { start, end: now });
        }
        let mut violations = Vec::new();
        let mut keep = |r: Result<(), Violation>| {
            if let Err(v) = r {
                violations.push(v);
            }
        };
        let server = &world.servers[0];
        for (i, stream) in [Stream::Events, Stream::InternalEvents]
            .into_iter()
            .enumerate()
        {
            self.events[i].delivered = server.seqs(stream);
            self.stats.delivered += self.events[i].delivered.len() as u64;
            self.stats.duplicates += server.duplicates(stream);
            keep(check::no_event_lost(&self.events[i]));
            keep(check::in_order_and_unique(&self.events[i]));
        }
        let mut document = server.document();
        if let Some(doc) = document.as_object_mut() {
            doc.remove("worker_epoch");
        }
        let view = world.client(0).shared().lock().state();
        let acknowledged = world.client(0).acknowledged();
        world.line(format_args!("server document {document}"));
        world.line(format_args!("session view    {view}"));
        world.line(format_args!("acknowledged    {acknowledged}"));
        let server = &world.servers[0];
        let mut patches = Vec::with_capacity(self.patches.len() + 1);
        if let Some(fate) = self.init_put {
            patches.push(PatchRecord {
                patch: serde_json::json!({"worker_status": "idle"}),
                fate,
            });
        }
        patches.append(&mut self.patches);
        let unknown = patches.iter().any(|p| p.fate == PatchFate::Unknown);
        let first_anchor = self
            .acknowledged_puts
            .iter()
            .rposition(|(_, resets_only, _)| !resets_only)
            .unwrap_or(0);
        let anchors = if unknown {
            self.acknowledged_puts[first_anchor..]
                .iter()
                .map(|(index, _, belief)| {
                    let bodies = server.applied_puts()[index + 1..]
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
        let session = &self.config.session;
        let bound = session.heartbeat.max_gap() + session.heartbeat_timeout;
        keep(check::heartbeat_gaps(
            &self.connected_spans,
            &self.beats,
            bound,
        ));
        let rules = GiveUpRules {
            max_auth_failures: session.max_auth_failures,
            session_unknown_terminal: !session.session_unknown_is_transient,
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
            let allowed = session.connect.max_attempts.unwrap_or(u32::MAX);
            if self.connect_failures != allowed.saturating_add(1) {
                keep(Err(Violation::ConnectGiveUp {
                    failures: self.connect_failures,
                    max_attempts: allowed,
                }));
            }
        }
        keep(check::quiet_after_terminal(&self.outputs));
        if world.step_limit_hit() {
            keep(Err(Violation::StepLimit {
                steps: self.config.max_steps,
            }));
        } else if self.terminal.is_none() {
            keep(Err(Violation::NoTerminalStatus { at: now }));
        } else {
            // The driver's side of the bargain: once its session ended, every caller it held
            // has its answer.
            if !self.waiting.is_empty() {
                self.unanswered
                    .push(format!("{} sends still waiting", self.waiting.len()));
            }
            for (deadline, flush) in &self.flushes {
                if !flush.is_ready() {
                    self.unanswered
                        .push(format!("a flush due by {deadline} unanswered"));
                }
            }
            if let Some(close) = &mut self.close {
                match close.try_take() {
                    Some(report) => self.close_report = Some(report),
                    None => self.unanswered.push("the close unanswered".into()),
                }
            }
            for what in self.unanswered.drain(..) {
                keep(Err(Violation::Unanswered { what, at: now }));
            }
        }
        if let Some(after) = self.config.callers.panicking_observer {
            let panicked = self.outputs.len() as u64 >= after;
            if panicked && self.panics_reported != 1 {
                keep(Err(Violation::Unanswered {
                    what: format!(
                        "the observer panicked; {} reports of it, not one",
                        self.panics_reported
                    ),
                    at: now,
                }));
            }
        }
        if let Some(report) = &self.close_report {
            if report.status != self.terminal.map_or(report.status, |t| t.1) {
                keep(Err(Violation::Unanswered {
                    what: format!("a close report with status {}", report.status),
                    at: now,
                }));
            }
        }
        let status = self
            .terminal
            .map_or_else(|| world.client(0).shared().lock().status(), |t| t.1);
        let (trace, timeline) = world.finish();
        RunReport {
            seed: self.config.seed,
            status,
            violations,
            trace,
            timeline,
            stats: self.stats,
        }
    }
}

impl Scenario for WorkerSession<'_> {
    fn due(&self) -> Option<Instant> {
        if self.terminal.is_some() {
            return None;
        }
        self.actions.front().map(|a| a.0)
    }

    fn act(&mut self, world: &mut World) {
        match self.actions.pop_front() {
            Some((_, Step::Event(event))) => self.enqueue(world, Stream::Events, event),
            Some((_, Step::InternalEvent(event))) => {
                self.enqueue(world, Stream::InternalEvents, event);
            }
            Some((_, Step::Other(action))) => self.other(world, action),
            None => {}
        }
    }

    fn settle(&mut self, world: &mut World) {
        if let Some(reports) = &self.reports {
            while let Some(report) = reports.try_next() {
                if let Ok(Report::CallbackPanicked { message }) = report {
                    self.panics_reported += 1;
                    world.line(format_args!("app sees its observer panicked: {message}"));
                }
            }
        }
        if self.waiting.iter().any(|w| w.pending.is_ready()) {
            for waiting in std::mem::take(&mut self.waiting) {
                self.settle_send(world, waiting, true);
            }
        }
    }

    fn acknowledged(&mut self, _: &mut World, _: usize, value: serde_json::Value) {
        let mut anchors = std::mem::take(&mut self.pending_anchors);
        let Some((index, resets_only)) = anchors.pop() else {
            return;
        };
        for (index, resets_only) in anchors {
            self.acknowledged_puts
                .push((index, resets_only, value.clone()));
        }
        self.acknowledged_puts.push((index, resets_only, value));
        // The state check reads only from the last whole-update anchor on: keep no more.
        if let Some(last) = self.acknowledged_puts.iter().rposition(|a| !a.1) {
            self.acknowledged_puts.drain(..last);
        }
    }

    fn sending(&mut self, world: &mut World, _: usize, _: &HttpRequest) {
        self.puts_before = world.servers[0].applied_puts().len();
    }

    fn sent(&mut self, world: &mut World, _: usize, request: &HttpRequest, _: &Fault) {
        let applied = world.servers[0].applied_puts().len() > self.puts_before;
        if let Some(o) = self.outstanding.get_mut(&request.id) {
            o.applied_put = applied.then_some(self.puts_before);
        }
    }

    fn answered(&mut self, world: &mut World, _: usize, id: RequestId, delivery: &Delivery) {
        let outcome = match delivery {
            Delivery::Respond { response, .. } => classify(Reply::Status {
                status: response.status,
                retry_after: response.retry_after.as_deref(),
                date: response.date.as_deref(),
            }),
            _ => Outcome::Transient(TransientCause::Transport),
        };
        let Some(outstanding) = self.outstanding.remove(&id) else {
            return;
        };
        self.record_outcome(world.now(), outcome, outstanding.connect);
        if outcome == Outcome::Success && outstanding.put {
            if outstanding.connect {
                self.init_put = Some(PatchFate::Acknowledged);
            } else if let Some(index) = outstanding.applied_put {
                let resets_only = world.servers[0].applied_puts()[index]
                    .patch
                    .values()
                    .all(all_nulls);
                self.pending_anchors.push((index, resets_only));
                world.client(0).sample_acknowledged();
            }
        }
    }

    fn output(&mut self, world: &mut World, _: usize, at: Instant, output: Output) {
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
            _ => ("other", false),
        };
        self.outputs.push(OutputRecord {
            at,
            kind: kind.into(),
            terminal,
        });
        match output {
            Output::Send(request) => {
                if let Some(trace) = world.trace_mut() {
                    trace.request(at, &request);
                    if request.endpoint == Endpoint::PutWorker {
                        let body = std::str::from_utf8(&request.body).unwrap_or("<binary>");
                        trace.line(at, format_args!("   {} body {body}", request.id));
                    }
                }
                world.record(|r| r.sent(at, &request));
                if request.endpoint == Endpoint::Heartbeat {
                    self.beats.push(at);
                }
                if request.endpoint == Endpoint::PutWorker && !self.connected {
                    self.init_put.get_or_insert(PatchFate::Unknown);
                }
                self.outstanding.insert(
                    request.id,
                    Outstanding {
                        deadline: request.deadline,
                        connect: !self.connected,
                        put: request.endpoint == Endpoint::PutWorker,
                        applied_put: None,
                    },
                );
            }
            Output::Cancel(id) => {
                world.line(format_args!("-- {id} cancelled"));
                world.record(|r| r.cancelled(at, id));
                if let Some(o) = self.outstanding.remove(&id) {
                    if o.deadline <= at {
                        self.record_outcome(
                            at,
                            Outcome::Transient(TransientCause::TimedOut),
                            o.connect,
                        );
                    }
                }
            }
            Output::Status(status) => {
                world.line(format_args!("status {status}"));
                world.record(|r| r.status(at, status));
                match status {
                    Status::Connected => {
                        if !self.connected {
                            if let Some(index) =
                                world.servers[0].applied_puts().len().checked_sub(1)
                            {
                                self.pending_anchors.push((index, false));
                            }
                        }
                        self.connected = true;
                        self.connected_since.get_or_insert(at);
                    }
                    s if s.is_terminal() => {
                        if let Some(start) = self.connected_since.take() {
                            self.connected_spans.push(Span { start, end: at });
                        }
                        self.terminal.get_or_insert((at, s));
                    }
                    _ => {}
                }
            }
            Output::Delivered { stream, events } => {
                world.line(format_args!("delivered {stream} {}", events.len()));
            }
            Output::HandedBack {
                stream,
                reason,
                events,
            } => {
                world.line(format_args!(
                    "handed back {stream} {} ({reason:?})",
                    events.len()
                ));
                if stream == Stream::Delivery {
                    return;
                }
                for event in events {
                    let seq = event.event.payload().ok().as_ref().and_then(seq_of);
                    if let Some(seq) = seq {
                        self.events[record_index(stream)].handed_back.push(seq);
                        self.stats.handed_back += 1;
                    }
                }
            }
            Output::StateRejected(rejection) => {
                world.line(format_args!(
                    "state rejected {}: patches {:?}",
                    rejection.status, rejection.patches
                ));
                self.set_fates(rejection.patches.clone(), PatchFate::Rejected);
            }
            Output::StateUnacknowledged(unacknowledged) => {
                world.line(format_args!(
                    "state unacknowledged: patches {:?}, in flight {:?}",
                    unacknowledged.patches, unacknowledged.in_flight
                ));
                self.applied_resets = unacknowledged.applied_resets.clone();
                self.set_fates(unacknowledged.patches.clone(), PatchFate::Unknown);
            }
            Output::FlushDone(id) => world.line(format_args!("flush {} done", id.0)),
            Output::FlushTimedOut(id) => world.line(format_args!("flush {} timed out", id.0)),
            other => world.line(format_args!("output {other:?}")),
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
