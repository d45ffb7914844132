//! The crash scenario: one worker process keeps a durable outbox (docs/ARCHITECTURE.md §Durable
//! outbox) on a [`MemoryStore`], and is killed several times at seeded instants and started
//! again on the same store, against one server through a lossy network.
//!
//! Each process is a real driver around a real session with the outbox on
//! ([`Settings::outbox`]); its store jobs take a seeded time
//! ([`World::with_store_latency`]) and its group commits go as a seeded [`SyncPolicy`] says,
//! so a crash can fall while accepted events are not yet written, or while a write is under
//! way. A crash ([`World::crash`]) kills the process without a close: its answers in flight and
//! its unfinished store jobs are lost, and nothing it does while dying reaches the store. The
//! next process starts on the store, replays what it holds (in order, as room allows, before
//! any new event) and its caller carries on with the workload.
//!
//! The caller sends each event with the handle's `send`, waiting for room as long as it takes;
//! with the outbox on, the send is answered only once the event is durable: that answer is
//! the caller's acknowledgement. After each state patch it asks
//! [`Tether::sync`](tether_driver::Tether::sync); once that answers, every patch it gave before
//! is durable. A crash kills the caller too: what it was still waiting for is not
//! acknowledged, and may land or not. Once it has heard every answer after the workload, the
//! caller closes.
//!
//! What is checked, per stream where it applies:
//!
//! - every acknowledged event is on the server, and no event is there twice (the server
//!   de-duplicates by uuid, so a second copy means a re-send under a new uuid);
//! - acknowledged events landed in the order they were given;
//! - the server holds no event the caller never gave;
//! - no send, patch or sync was refused while the process lived, and the outbox dropped no
//!   record (unreadable or refused on replay);
//! - the outbox is empty at the end (every record delivered and deleted), and the close says it
//!   kept nothing;
//! - every state key holds the value of its last acknowledged patch or of a later one, and
//!   every key the last process holds in its view (what it patched, and restored) holds the
//!   same value on the server: the document converged;
//! - the session ended closed, within the step bound.
//!
//! ```
//! use tether_sim::scenario::crash::{CrashConfig, run_crashes};
//!
//! let report = run_crashes(&CrashConfig::new(7, 60))?;
//! assert!(report.passed(), "{:?}", report.violations);
//! assert_eq!(report.crashes, 5);
//! assert!(report.acknowledged > 0);
//! # Ok::<(), tether_sim::RunError>(())
//! ```

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::{Value, json};
use tether_core::batch::{Event, EventId};
use tether_core::session::{Endpoint, Output, SessionConfig, Status, Stream};
use tether_core::{Instant, Rng};
use tether_driver::{
    CloseReport, MemoryStore, Pending, SendError, Settings, StoreError, SyncPolicy,
};
use tether_model::fault::FaultMix;
use tether_model::{SEQ_FIELD, ServerConfig, ServerModel};

mod check;
mod plan;

use check::{check_state, check_stream};
use plan::plan;

use crate::network::Network;
use crate::report::RunError;
use crate::trace::Trace;
use crate::world::{ClientSpec, Scenario, World};

/// How long a sender waits for room: as long as it takes.
const SEND_WAIT: Duration = Duration::MAX;

/// How long the final close may drain.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(600);

/// The streams the caller sends on, in the order of the per-stream records.
const STREAMS: [Stream; 2] = [Stream::Events, Stream::InternalEvents];

/// What to simulate.
#[derive(Clone, Debug)]
pub struct CrashConfig {
    /// Every random choice derives from it.
    pub seed: u64,
    /// Events the caller gives, over both streams (each carries its [`SEQ_FIELD`], numbered
    /// per stream in the order given); about one in five goes to the internal stream.
    pub events: u64,
    /// State patches the caller gives, interleaved with the events.
    pub patches: u64,
    /// Crashes, at seeded instants of the workload (some soon after the one before, while the
    /// outbox replays).
    pub crashes: u32,
    /// The network: lossy, without takeovers (a newer worker would end the session) and
    /// without 413s (a dead letter is handed back, not delivered).
    pub mix: FaultMix,
    /// The workload's length; the caller closes at its end.
    pub duration: Duration,
    /// The session's queue bound: replay and the caller's sends wait for room beyond it.
    pub max_queue_items: usize,
    /// How long every store job takes.
    pub store_latency: Duration,
    /// When the outbox's group commits happen.
    pub policy: SyncPolicy,
    /// Each process registers for a new epoch (else every process is given epoch 1).
    pub register: bool,
    /// Whether to record the trace.
    pub trace: bool,
    /// A bound on the world's steps.
    pub max_steps: u64,
    /// For testing the checks: the store forgets everything at a crash, as a store that lied
    /// about durability would. The checks must then find acknowledged events missing.
    pub forgetful_store: bool,
}

impl CrashConfig {
    /// A run of `events` events and a quarter as many patches over two minutes, five crashes,
    /// a flaky network with one request in ten or so lost; the store latency (1–30 ms), the
    /// sync policy (every write, or every 50–500 ms) and whether processes register are drawn
    /// from the seed.
    pub fn new(seed: u64, events: u64) -> Self {
        let mut rng = Rng::new(seed ^ 3);
        let store_latency = Duration::from_millis(1 + rng.below(30));
        let policy = if rng.below(2) == 0 {
            SyncPolicy::EveryWrite
        } else {
            SyncPolicy::Interval(Duration::from_millis(50 + rng.below(451)))
        };
        CrashConfig {
            seed,
            events,
            patches: events / 4,
            crashes: 5,
            mix: FaultMix {
                lost_request: 0.05,
                lost_response: 0.05,
                too_large: 0.0,
                takeover: 0.0,
                ..FaultMix::flaky()
            },
            duration: Duration::from_secs(120),
            max_queue_items: 16,
            store_latency,
            policy,
            register: rng.below(2) == 0,
            trace: false,
            max_steps: 2_000_000,
            forgetful_store: false,
        }
    }

    /// The same run with its trace recorded.
    pub fn traced(mut self) -> Self {
        self.trace = true;
        self
    }
}

/// What a crash run did.
#[derive(Clone, Debug, Default)]
pub struct CrashReport {
    /// The run's seed.
    pub seed: u64,
    /// Crashes that happened.
    pub crashes: u32,
    /// Events the caller gave.
    pub events: u64,
    /// Events whose send was answered: durable, acknowledged.
    pub acknowledged: u64,
    /// Sends a crash cut off before their answer (neither acknowledged nor refused).
    pub cut_off: u64,
    /// Distinct events the server holds.
    pub delivered: u64,
    /// Events restored from the outbox after a crash, over every process.
    pub restored: u64,
    /// Duplicates the server dropped (re-sends of events it had).
    pub duplicates: u64,
    /// Patches given, and those acknowledged durable.
    pub patches: (u64, u64),
    /// Answers in flight that crashes lost.
    pub lost_answers: u64,
    /// Store jobs under way that crashes lost.
    pub lost_store_jobs: u64,
    /// Requests carried, and those that met a fault.
    pub requests: (u64, u64),
    /// The world's steps.
    pub steps: u64,
    /// Simulated time at the end.
    pub end: Instant,
    /// The last process's last status.
    pub status: Option<Status>,
    /// Every broken invariant, described.
    pub violations: Vec<String>,
    /// The trace, if recorded.
    pub trace: Option<Trace>,
}

impl CrashReport {
    /// Whether every invariant held.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// One thing the caller does, at its time.
#[derive(Clone, Copy, Debug)]
enum Step {
    Event(Stream, u64),
    Patch(u64),
    Crash,
    Close,
}

/// A patch the caller gave: its key and value, the process that gave it, and whether a sync
/// acknowledged it.
struct GivenPatch {
    key: String,
    value: u64,
    life: u32,
    acknowledged: bool,
}

/// A send's answer, once its event is durable.
type SendAnswer = Pending<Result<EventId, SendError>>;

/// The scenario's state.
struct Crashing<'a> {
    config: &'a CrashConfig,
    steps: VecDeque<(Instant, Step)>,
    store: MemoryStore,
    /// Which process runs (0 for the first).
    life: u32,
    sends: Vec<(Stream, u64, SendAnswer)>,
    /// Syncs waiting: the patches given before each.
    syncs: Vec<(usize, Pending<Result<(), StoreError>>)>,
    close: Option<Pending<CloseReport>>,
    close_report: Option<CloseReport>,
    /// Per stream: every seq given, and the acknowledged ones.
    given: [Vec<u64>; 2],
    acknowledged: [Vec<u64>; 2],
    patches: Vec<GivenPatch>,
    /// The store's state record as last traced.
    stored_state: Option<Vec<u8>>,
    report: CrashReport,
}

/// Runs one seeded crash simulation in the world and checks its invariants (see the
/// [module docs](self)).
///
/// # Errors
/// The fault mix or the driver's settings are invalid.
pub fn run_crashes(config: &CrashConfig) -> Result<CrashReport, RunError> {
    let length = config.duration + CLOSE_TIMEOUT;
    let network = Network::new(config.seed, config.mix.clone(), length).map_err(RunError::Mix)?;
    let server = ServerModel::new(ServerConfig {
        session_id: Some("crash".into()),
        ..ServerConfig::default()
    });
    let mut world = World::new(network, vec![server], config.max_steps)
        .with_store_latency(config.store_latency);
    if config.trace {
        world = world.traced();
    }
    let store = MemoryStore::new();
    world
        .add_client(spec(config, &store))
        .map_err(driver_error)?;
    let mut scenario = Crashing {
        config,
        steps: plan(config).into(),
        store,
        life: 0,
        sends: Vec::new(),
        syncs: Vec::new(),
        close: None,
        close_report: None,
        given: [Vec::new(), Vec::new()],
        acknowledged: [Vec::new(), Vec::new()],
        patches: Vec::new(),
        stored_state: None,
        report: CrashReport {
            seed: config.seed,
            ..CrashReport::default()
        },
    };
    world.run(&mut scenario);
    Ok(scenario.finish(&mut world))
}

fn driver_error(error: tether_driver::BuildError) -> RunError {
    match error {
        tether_driver::BuildError::Config(e) => RunError::Session(e),
        other => RunError::Driver(other.to_string()),
    }
}

/// A process on `store`: the same settings and seed every time (the driver mixes the outbox's
/// next key into the seed, so a restart never draws the uuids of an earlier run's events).
fn spec(config: &CrashConfig, store: &MemoryStore) -> ClientSpec {
    let mut session = SessionConfig::new("crash");
    if !config.register {
        session = session.with_epoch(1);
    }
    for stream in STREAMS {
        let events = match stream {
            Stream::InternalEvents => &mut session.internal_events,
            _ => &mut session.events,
        };
        events.max_queue_items = config.max_queue_items;
        events.max_batch_items = config.max_queue_items.min(8);
    }
    session.connect.max_attempts = None;
    let mut settings = Settings::new("http://sim.invalid/v1/code/sessions/crash");
    settings
        .config(session)
        .seed(config.seed ^ 2)
        .outbox(store.clone(), config.policy);
    ClientSpec {
        settings,
        seed: config.seed ^ 2,
        server: 0,
        store: Some(store.clone()),
    }
}

fn index(stream: Stream) -> usize {
    usize::from(stream == Stream::InternalEvents)
}

impl Crashing<'_> {
    fn act_on(&mut self, world: &mut World, step: Step) {
        let Some(tether) = world.client(0).tether() else {
            return;
        };
        match step {
            Step::Event(stream, seq) => {
                self.given[index(stream)].push(seq);
                self.report.events += 1;
                let event = Event::new(json!({ SEQ_FIELD: seq }));
                let pending = tether.send(stream, event, SEND_WAIT);
                self.sends.push((stream, seq, pending));
                world.line(format_args!("app {stream} seq={seq}"));
            }
            Step::Patch(n) => {
                let key = format!("k{}", n % 7);
                match tether.patch_state(json!({ key.clone(): n })) {
                    Ok(_) => {
                        self.patches.push(GivenPatch {
                            key,
                            value: n,
                            life: self.life,
                            acknowledged: false,
                        });
                        let sync = tether.sync();
                        self.syncs.push((self.patches.len(), sync));
                        world.line(format_args!("app patch k{}={n}, sync", n % 7));
                    }
                    Err(e) => self
                        .report
                        .violations
                        .push(format!("patch {n} refused: {e}")),
                }
            }
            Step::Close => {
                self.close = Some(tether.close(CLOSE_TIMEOUT));
                world.line(format_args!("app close {}ms", CLOSE_TIMEOUT.as_millis()));
            }
            Step::Crash => self.crash(world),
        }
    }

    /// Kills the process (and its caller: what it waited for is never heard) and starts the
    /// next one on the store.
    fn crash(&mut self, world: &mut World) {
        self.report.cut_off += self.sends.len() as u64;
        self.sends.clear();
        self.syncs.clear();
        self.end_of_life(world);
        if self.config.forgetful_store {
            self.store = MemoryStore::new();
        }
        self.life += 1;
        match world.crash(0, spec(self.config, &self.store)) {
            Ok(crashed) => {
                self.report.crashes += 1;
                self.report.lost_answers += crashed.answers as u64;
                self.report.lost_store_jobs += crashed.store_jobs as u64;
            }
            Err(e) => self
                .report
                .violations
                .push(format!("the process could not start again: {e}")),
        }
    }

    /// What the process did with its outbox, read before it dies or at the end.
    fn end_of_life(&mut self, world: &World) {
        let driver = world.client(0).shared().lock();
        if let Some(counters) = driver.outbox_counters() {
            self.report.restored += counters.restored;
        }
        for dropped in driver.outbox_dropped() {
            self.report.violations.push(format!(
                "process {}: the outbox dropped record {:?}: {}",
                self.life, dropped.key, dropped.reason
            ));
        }
    }

    fn finish(mut self, world: &mut World) -> CrashReport {
        self.end_of_life(world);
        let mut report = std::mem::take(&mut self.report);
        report.steps = world.steps();
        report.end = world.now();
        report.requests = (world.requests, world.faults);
        report.acknowledged = self.acknowledged.iter().map(|a| a.len() as u64).sum();
        report.patches = (
            self.patches.len() as u64,
            self.patches.iter().filter(|p| p.acknowledged).count() as u64,
        );
        let status = world.client(0).shared().lock().status();
        report.status = Some(status);
        let violations = &mut report.violations;
        if world.step_limit_hit() {
            violations.push(format!(
                "the run did not finish within {} steps: a livelock?",
                self.config.max_steps
            ));
        } else if status != Status::Closed {
            violations.push(format!("the last process ended {status}, not closed"));
        }
        match &self.close_report {
            None => violations.push("the close was never answered".into()),
            Some(close) if close.kept_for_next_run() > 0 => violations.push(format!(
                "the close kept {} events for a next run",
                close.kept_for_next_run()
            )),
            Some(_) => {}
        }
        if !self.store.is_empty() || !self.store.dead_keys().is_empty() {
            violations.push(format!(
                "{} events still in the outbox at the end ({} dead)",
                self.store.len(),
                self.store.dead_keys().len()
            ));
        }
        let server = &world.servers[0];
        for (i, stream) in STREAMS.into_iter().enumerate() {
            report.delivered += server.seqs(stream).len() as u64;
            report.duplicates += server.duplicates(stream);
            check_stream(
                stream,
                &server.seqs(stream),
                &self.given[i],
                &self.acknowledged[i],
                violations,
            );
        }
        check_state(&self.patches, &server.document(), violations);
        // The last process's view is what it patched (and restored from its outbox): each of
        // those keys must hold its value on the server. Keys it never touched are the state
        // check's above.
        let mut view = world.client(0).shared().lock().state();
        let document = server.document();
        if let Some(map) = view.as_object_mut() {
            map.retain(|k, _| k.starts_with('k'));
        }
        world.line(format_args!("server document {document}"));
        world.line(format_args!("last view       {view}"));
        let diverged = view.as_object().is_some_and(|view| {
            view.iter()
                .any(|(key, value)| document.get(key) != Some(value))
        });
        if diverged {
            report.violations.push(format!(
                "the document did not converge: the last process holds {view}, the server \
                 {document}"
            ));
        }
        report.trace = world.finish().0;
        report
    }
}

impl Scenario for Crashing<'_> {
    fn due(&self) -> Option<Instant> {
        match self.steps.front() {
            // The caller closes once it has heard every send and sync: the close would refuse
            // the sends still waiting for room.
            Some((_, Step::Close)) if !self.sends.is_empty() || !self.syncs.is_empty() => None,
            next => next.map(|s| s.0),
        }
    }

    fn act(&mut self, world: &mut World) {
        if let Some((_, step)) = self.steps.pop_front() {
            self.act_on(world, step);
        }
    }

    fn settle(&mut self, world: &mut World) {
        if world.is_traced() {
            use tether_driver::Store;
            let state = self.store.clone().read_state().ok().flatten();
            if state != self.stored_state {
                let text =
                    String::from_utf8_lossy(state.as_deref().unwrap_or(b"none")).into_owned();
                world.line(format_args!("   the store's state record is now {text}"));
                self.stored_state = state;
            }
        }
        let mut i = 0;
        while i < self.sends.len() {
            match self.sends[i].2.try_take() {
                None => i += 1,
                Some(result) => {
                    let (stream, seq, _) = self.sends.remove(i);
                    match result {
                        Ok(id) => {
                            self.acknowledged[index(stream)].push(seq);
                            world.line(format_args!("app {stream} seq={seq} durable as {id}"));
                        }
                        Err(e) => self
                            .report
                            .violations
                            .push(format!("{stream}: the send of event {seq} failed: {e}")),
                    }
                }
            }
        }
        let mut i = 0;
        while i < self.syncs.len() {
            match self.syncs[i].1.try_take() {
                None => i += 1,
                Some(result) => {
                    let (before, _) = self.syncs.remove(i);
                    match result {
                        Ok(()) => {
                            let life = self.life;
                            for patch in &mut self.patches[..before] {
                                patch.acknowledged |= patch.life == life;
                            }
                            world.line(format_args!("app sync: {before} patches durable"));
                        }
                        Err(e) => self.report.violations.push(format!("a sync failed: {e}")),
                    }
                }
            }
        }
        if let Some(close) = &mut self.close {
            if let Some(report) = close.try_take() {
                world.line(format_args!("app closed: {}", report.status));
                self.close_report = Some(report);
                self.close = None;
            }
        }
    }

    fn output(&mut self, world: &mut World, _: usize, at: Instant, output: Output) {
        let Some(trace) = world.trace_mut() else {
            return;
        };
        match output {
            Output::Send(request) => {
                trace.request(at, &request);
                if request.endpoint == Endpoint::PutWorker {
                    let body = String::from_utf8_lossy(&request.body);
                    trace.line(at, format_args!("   {} body {body}", request.id));
                }
            }
            Output::Cancel(id) => trace.line(at, format_args!("-- {id} cancelled")),
            Output::Status(status) => trace.line(at, format_args!("status {status}")),
            Output::Delivered { stream, events } => {
                trace.line(at, format_args!("delivered {stream} {}", events.len()));
            }
            Output::HandedBack {
                stream,
                reason,
                events,
            } => trace.line(
                at,
                format_args!("handed back {stream} {} ({reason:?})", events.len()),
            ),
            Output::Persist { stream, id, .. } => {
                trace.line(at, format_args!("outbox persist {stream} {id}"));
            }
            Output::Forget { stream, events } => {
                trace.line(at, format_args!("outbox forget {stream} {}", events.len()));
            }
            Output::PersistState(patches) => {
                let patches = Value::Array(patches.into_iter().map(Value::Object).collect());
                trace.line(at, format_args!("outbox state {patches}"));
            }
            _ => {}
        }
    }
}
