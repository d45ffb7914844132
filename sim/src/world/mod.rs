//! The world: one virtual clock, one faulty network, one or more servers, and N clients, each
//! a real [`tether_driver`] driver around a real session, driven the way every shim drives it
//! ([`Shared::turn`](tether_driver::runtime::Shared::turn), then the actions carried out).
//!
//! The world owns the mechanics and nothing of any one workload: a [`Scenario`] says what the
//! callers do and when, watches what happens (every core output each driver's tap saw, every
//! request the network carried, every answer), and checks its invariants at the end. The world
//! moves time itself: it always jumps to the earliest of the next answer due on the network,
//! the next planned event (a restart, a takeover), the scenario's next step, and the drivers'
//! own deadlines. Ties go in that order, clients by index, so a run is a pure function of its
//! inputs, and every loop is bounded: a livelock ends the run as a violation, not a hang.
//!
//! ```text
//!   loop {
//!       at = min(answer due, planned event, scenario step, each driver's deadline)
//!       clock = at
//!       answer due     → the scenario hears it, then shared.answer(id, result) → actions
//!       planned event  → the server restarts or is taken over
//!       scenario step  → the callers' calls on their Tether handles
//!       deadline       → shared.turn() → actions
//!       actions: Send → the network, worker and thread routes alike (the server applies it
//!                now; the answer is due later, or never: a hang), Cancel → dropped from the
//!                network, Store → run on the client's store, its result handed back
//!                (shared.store_done)
//!       every client a call or an answer woke turns again
//!   }
//! ```
//!
//! Store jobs run inside the action by default. With a
//! [store latency](World::with_store_latency) each takes that long instead: it is due like an
//! answer (after the answers due at the same time), and a [crash](World::crash) in between
//! loses it. A crash kills a client's process and starts another in its place, on its store.
//!
//! Each driver's time counts from its own start, as a shim's does from the origin it read when
//! it started it; the world converts at the edge (deadlines and the tap's times are the
//! world's), so a client started mid-run, after a crash, begins at its zero like any other.
//! The clients a notification woke and the drivers' deadlines are kept in order, so finding
//! the next thing to do does not scan every client (a scenario's step still hands over every
//! client's tap, and a cancel looks through the answers in flight).

mod client;
mod clock;
mod crash;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tether_core::Instant;
use tether_core::session::{Output, RequestId, TransportError};
use tether_driver::BuildError;
use tether_driver::runtime::{Action, HttpRequest, HttpResponse, Route, StoreJob};
use tether_model::ServerModel;
use tether_model::fault::{Delivery, Fault, TimeEvent};
use tether_model::timeline::{Recorder, Timeline};

pub use client::{Client, ClientSpec, Isolation, SharedRecorder, TapEntry};
pub use clock::VirtualClock;
pub use crash::Crashed;

use super::network::{Exchange, Network};
use super::trace::Trace;

/// What a scenario does in a world and what it watches. Every hook has the world at hand; the
/// world calls them in the order things happen.
pub trait Scenario {
    /// When the scenario's callers next act (`None`: never again).
    fn due(&self) -> Option<Instant>;

    /// The callers act, at [`due`](Self::due): calls on the clients' handles.
    fn act(&mut self, world: &mut World);

    /// A core output of client `client`, as its driver's tap saw it, at `at`. Outputs come to
    /// the scenario after the driver call that made them returns, before its actions are
    /// carried out.
    fn output(&mut self, world: &mut World, client: usize, at: Instant, output: Output) {
        let _ = (world, client, at, output);
    }

    /// The acknowledged document of client `client` after a drain that sampled it.
    fn acknowledged(&mut self, world: &mut World, client: usize, value: serde_json::Value) {
        let _ = (world, client, value);
    }

    /// Client `client` is about to put `request` on the network.
    fn sending(&mut self, world: &mut World, client: usize, request: &HttpRequest) {
        let _ = (world, client, request);
    }

    /// The network carried `request` of client `client`: `fault` happened to it (a partition
    /// is [`Fault::Hang`], a cut-off client's request [`Fault::LostRequest`]), and the server
    /// has applied it if it reached it.
    fn sent(&mut self, world: &mut World, client: usize, request: &HttpRequest, fault: &Fault) {
        let _ = (world, client, request, fault);
    }

    /// The answer to `id` of client `client` arrives; its driver hears it right after.
    fn answered(&mut self, world: &mut World, client: usize, id: RequestId, delivery: &Delivery) {
        let _ = (world, client, id, delivery);
    }

    /// A planned event happened to the servers.
    fn planned(&mut self, world: &mut World, event: TimeEvent) {
        let _ = (world, event);
    }

    /// After every step of the world: callers look at what they wait for.
    fn settle(&mut self, world: &mut World) {
        let _ = world;
    }

    /// Whether the run is over (by default: every client's driver finished).
    fn done(&self, world: &World) -> bool {
        world.clients.iter().all(Client::is_finished)
    }
}

/// What the world does next, in tie-break order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Next {
    Answer,
    Store,
    Planned,
    Step,
    Deadline(usize),
}

/// An answer on its way back.
#[derive(Debug)]
struct InFlight {
    client: usize,
    id: RequestId,
    delivery: Delivery,
}

/// The most times the clients woken by one step may turn before the world calls it a
/// livelock.
const WAKE_BOUND: usize = 10_000;

/// The world. See the [module docs](self).
pub struct World {
    clock: VirtualClock,
    /// The faulty network between every client and every server.
    pub network: Network,
    /// The servers (a client talks to the one its [`ClientSpec::server`] names).
    pub servers: Vec<ServerModel>,
    /// The clients, in the order they were added.
    pub clients: Vec<Client>,
    answers: BTreeMap<(Instant, u64), InFlight>,
    /// Numbers answers and store jobs as they are queued, so that ties keep their order.
    answer_seq: u64,
    /// How long a store job takes (`None`: it runs inside its action).
    store_latency: Option<Duration>,
    /// Store jobs under way, by when they are done, with their client.
    stores: BTreeMap<(Instant, u64), (usize, StoreJob)>,
    /// The clients whose drivers asked to be turned (their notifications), by index.
    woken: Arc<Mutex<BTreeSet<usize>>>,
    /// Every client's next deadline, while it is not finished, earliest first.
    deadlines: BTreeSet<(Instant, usize)>,
    plan: Vec<(Instant, TimeEvent)>,
    next_planned: usize,
    trace: Option<Trace>,
    recorder: Option<SharedRecorder>,
    entries: Vec<TapEntry>,
    steps: u64,
    max_steps: u64,
    step_limit_hit: bool,
    /// Requests carried.
    pub requests: u64,
    /// Requests that met a fault (partitions included).
    pub faults: u64,
    /// Name the client in the world's per-request trace lines (worlds of several clients).
    tag_clients: bool,
}

impl World {
    /// A world with `network` (its planned restarts and takeover happen to every server),
    /// `servers`, no clients yet, and at most `max_steps` steps.
    pub fn new(network: Network, servers: Vec<ServerModel>, max_steps: u64) -> World {
        let plan = network.timeline();
        World {
            clock: VirtualClock::new(),
            network,
            servers,
            clients: Vec::new(),
            answers: BTreeMap::new(),
            answer_seq: 0,
            store_latency: None,
            stores: BTreeMap::new(),
            woken: Arc::default(),
            deadlines: BTreeSet::new(),
            plan,
            next_planned: 0,
            trace: None,
            recorder: None,
            entries: Vec::new(),
            steps: 0,
            max_steps,
            step_limit_hit: false,
            requests: 0,
            faults: 0,
            tag_clients: false,
        }
    }

    /// Names the client (`c0 `) in the trace lines the world writes per request: its faults
    /// and its answers. For worlds of several clients, whose request ids repeat.
    pub fn tag_clients(mut self) -> Self {
        self.tag_clients = true;
        self
    }

    /// `c0 ` if the world tags clients and traces, else nothing.
    fn tag(&self, c: usize) -> String {
        if self.tag_clients && self.trace.is_some() {
            format!("c{c} ")
        } else {
            String::new()
        }
    }

    /// Records a trace.
    pub fn traced(mut self) -> Self {
        self.trace = Some(Trace::new());
        self
    }

    /// Every store job takes `latency` of virtual time: it is run when it is done, and a
    /// [crash](Self::crash) before then loses it (by default a job runs inside its action, so
    /// no crash can fall in between).
    pub fn with_store_latency(mut self, latency: Duration) -> Self {
        self.store_latency = Some(latency);
        self
    }

    /// Records a timeline titled `title`.
    pub fn with_timeline(mut self, title: impl Into<String>) -> Self {
        self.recorder = Some(std::sync::Arc::new(std::sync::Mutex::new(Recorder::new(
            title,
        ))));
        self
    }

    /// Starts a client; returns its index. Its driver starts at the world's time.
    ///
    /// # Errors
    /// The driver refused its settings.
    pub fn add_client(&mut self, spec: ClientSpec) -> Result<usize, BuildError> {
        let c = self.clients.len();
        let client = self.start_client(c, spec)?;
        self.clients.push(client);
        Ok(c)
    }

    /// Starts a client to be client `c`; it turns at the next wake-up.
    fn start_client(&mut self, c: usize, spec: ClientSpec) -> Result<Client, BuildError> {
        let follow = self.trace.is_some();
        let woken = Arc::clone(&self.woken);
        let notify = Box::new(move || {
            woken
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(c);
        });
        let client = Client::start(spec, &self.clock, self.recorder.clone(), follow, notify)?;
        self.woken().insert(c);
        Ok(client)
    }

    fn woken(&self) -> MutexGuard<'_, BTreeSet<usize>> {
        self.woken.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The first client from index `from` on whose driver asked to be turned; forgets the ask.
    fn next_woken(&self, from: usize) -> Option<usize> {
        let mut woken = self.woken();
        let c = woken.range(from..).next().copied()?;
        woken.remove(&c);
        Some(c)
    }

    /// Whether client `c`'s driver asked to be turned since it last was; forgets the ask.
    fn take_notified(&self, c: usize) -> bool {
        self.woken().remove(&c)
    }

    /// Sets client `c`'s deadline and whether it finished, keeping the deadlines in order.
    fn set_deadline(&mut self, c: usize, deadline: Option<Instant>, finished: bool) {
        let client = &mut self.clients[c];
        if let (Some(at), false) = (client.deadline, client.finished) {
            self.deadlines.remove(&(at, c));
        }
        let deadline = deadline.map(|at| client.world_time(at));
        client.deadline = deadline;
        client.finished = finished;
        if let (Some(at), false) = (deadline, finished) {
            self.deadlines.insert((at, c));
        }
    }

    /// The time now.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Client `i`.
    pub fn client(&self, i: usize) -> &Client {
        &self.clients[i]
    }

    /// Client `i`, to drop its handle.
    pub fn client_mut(&mut self, i: usize) -> &mut Client {
        &mut self.clients[i]
    }

    /// Writes a trace line at the world's time, if it records one.
    pub fn line(&mut self, args: std::fmt::Arguments<'_>) {
        if let Some(trace) = &mut self.trace {
            trace.line(self.clock.now(), args);
        }
    }

    /// Whether a trace is recorded.
    pub fn is_traced(&self) -> bool {
        self.trace.is_some()
    }

    /// The trace, if recorded.
    pub fn trace_mut(&mut self) -> Option<&mut Trace> {
        self.trace.as_mut()
    }

    /// Runs `f` on the timeline recorder, if one records.
    pub fn record(&self, f: impl FnOnce(&mut Recorder)) {
        if let Some(recorder) = &self.recorder {
            f(&mut recorder
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner));
        }
    }

    /// Whether the run hit its step bound.
    pub fn step_limit_hit(&self) -> bool {
        self.step_limit_hit
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Takes the trace and the timeline (ended now) out of the world.
    pub fn finish(&mut self) -> (Option<Trace>, Option<Timeline>) {
        let now = self.now();
        let timeline = self.recorder.take().map(|r| {
            let recorder = match std::sync::Arc::try_unwrap(r) {
                Ok(m) => m
                    .into_inner()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
                // A tap still holds it: take what it recorded so far.
                Err(shared) => std::mem::replace(
                    &mut *shared
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner),
                    Recorder::new(""),
                ),
            };
            recorder.finish(now)
        });
        (self.trace.take(), timeline)
    }

    /// Runs the world until the scenario is done, nothing is left to happen, or the step
    /// bound is hit.
    pub fn run(&mut self, scenario: &mut impl Scenario) {
        for c in 0..self.clients.len() {
            self.turn(c, scenario);
        }
        self.wake_notified(scenario);
        scenario.settle(self);
        loop {
            if scenario.done(self) || self.step_limit_hit {
                break;
            }
            self.steps += 1;
            if self.steps > self.max_steps {
                self.line(format_args!("!! step limit reached: livelock?"));
                self.step_limit_hit = true;
                break;
            }
            let deadline = self
                .deadlines
                .first()
                .map(|&(at, c)| (at, Next::Deadline(c)));
            let candidates = [
                self.answers.keys().next().map(|k| (k.0, Next::Answer)),
                self.stores.keys().next().map(|k| (k.0, Next::Store)),
                self.plan
                    .get(self.next_planned)
                    .map(|e| (e.0, Next::Planned)),
                scenario.due().map(|at| (at, Next::Step)),
                deadline,
            ];
            let Some((at, next)) = candidates.into_iter().flatten().min() else {
                break;
            };
            self.clock.advance_to(at);
            match next {
                Next::Answer => {
                    if let Some((_, answer)) = self.answers.pop_first() {
                        self.answer(answer, scenario);
                    }
                }
                Next::Store => {
                    if let Some((_, (c, job))) = self.stores.pop_first() {
                        self.line(format_args!("   store {job:?} done"));
                        let done = job.run();
                        let more = self.clients[c].shared().store_done(done);
                        self.answered_by(c);
                        self.hand_over(c, scenario);
                        self.carry_out(c, more, scenario);
                    }
                }
                Next::Planned => {
                    let event = self.plan[self.next_planned].1;
                    self.next_planned += 1;
                    self.line(format_args!("** {event}"));
                    let now = self.now();
                    self.record(|r| r.plan_event(now, event));
                    for server in &mut self.servers {
                        match event {
                            TimeEvent::Restart => server.restart(now),
                            TimeEvent::Takeover => {
                                server.force_takeover();
                            }
                            _ => {}
                        }
                    }
                    scenario.planned(self, event);
                }
                Next::Step => {
                    scenario.act(self);
                    for c in 0..self.clients.len() {
                        self.hand_over(c, scenario);
                    }
                }
                Next::Deadline(c) => self.turn(c, scenario),
            }
            self.wake_notified(scenario);
            scenario.settle(self);
        }
    }

    /// Turns every client a call or an answer woke, until none is left; bounded. Each pass
    /// goes in index order, as a look at every client would: a client woken by a lower one
    /// turns in the same pass, one woken by a higher one in the next.
    fn wake_notified(&mut self, scenario: &mut impl Scenario) {
        for _ in 0..WAKE_BOUND {
            let mut woke = false;
            let mut from = 0;
            // At most one turn per client per pass: `from` only grows.
            while let Some(c) = self.next_woken(from) {
                woke = true;
                self.turn(c, scenario);
                from = c + 1;
            }
            if !woke {
                return;
            }
        }
        self.line(format_args!("!! clients kept waking each other: livelock?"));
        self.step_limit_hit = true;
    }

    /// One turn of client `c`'s loop, as a shim turns it.
    fn turn(&mut self, c: usize, scenario: &mut impl Scenario) {
        if self.clients[c].finished {
            return;
        }
        let turn = self.clients[c].shared().turn();
        self.set_deadline(c, turn.deadline, turn.finished);
        self.hand_over(c, scenario);
        self.carry_out(c, turn.actions, scenario);
    }

    /// After an answer or a store result handed to client `c`'s driver: every action it made
    /// came back with the call, so what the driver's notification can mean is only a new
    /// deadline, which a query reads without a turn.
    fn answered_by(&mut self, c: usize) {
        if self.take_notified(c) {
            let driver = self.clients[c].shared().lock();
            let deadline = driver.deadline();
            let finished = driver.is_finished();
            drop(driver);
            self.set_deadline(c, deadline, finished);
        }
    }

    /// Gives the scenario what client `c`'s tap saw since it last looked.
    fn hand_over(&mut self, c: usize, scenario: &mut impl Scenario) {
        let mut entries = std::mem::take(&mut self.entries);
        self.clients[c].take_entries(&mut entries);
        for entry in entries.drain(..) {
            match entry {
                TapEntry::Output(at, output) => scenario.output(self, c, at, output),
                TapEntry::Acknowledged(value) => scenario.acknowledged(self, c, value),
            }
        }
        self.entries = entries;
    }

    /// Carries out client `c`'s actions, and those they make, in order.
    fn carry_out(&mut self, c: usize, actions: Vec<Action>, scenario: &mut impl Scenario) {
        let mut todo = VecDeque::from(actions);
        while let Some(action) = todo.pop_front() {
            match action {
                Action::Send(request) => self.send(c, request, scenario),
                Action::Cancel(id) => {
                    let key = self
                        .answers
                        .iter()
                        .find(|(_, a)| a.client == c && a.id == id)
                        .map(|(k, _)| *k);
                    if let Some(key) = key {
                        self.answers.remove(&key);
                    }
                }
                Action::Store(job) => match self.store_latency {
                    Some(latency) => {
                        self.answer_seq += 1;
                        let at = self.now() + latency;
                        self.stores.insert((at, self.answer_seq), (c, job));
                    }
                    None => {
                        let done = job.run();
                        let more = self.clients[c].shared().store_done(done);
                        self.answered_by(c);
                        self.hand_over(c, scenario);
                        todo.extend(more);
                    }
                },
                // `Action` is non-exhaustive: nothing else is asked of a shim today.
                _ => {}
            }
        }
    }

    /// Puts `request` of client `c` on the network: the server applies it now (unless it is
    /// lost on the way), and its answer is due later, or never (a hang).
    fn send(&mut self, c: usize, request: HttpRequest, scenario: &mut impl Scenario) {
        let now = self.now();
        self.requests += 1;
        scenario.sending(self, c, &request);
        let tag = self.tag(c);
        let (fault, delivery) = if let Some(isolation) = self.clients[c].isolated {
            self.line(format_args!(
                "   {tag}{} lost: the client is cut off",
                request.id
            ));
            self.record(|r| r.fault(request.id, "lost: the client is cut off"));
            match isolation {
                Isolation::Refused => (
                    Fault::LostRequest {
                        error_after: Some(self.network.mix().base_rtt),
                    },
                    Delivery::TransportError {
                        at: now + self.network.mix().base_rtt,
                        error: TransportError {
                            message: "connection refused (cut off)".into(),
                        },
                    },
                ),
                Isolation::Silent => (Fault::LostRequest { error_after: None }, Delivery::Hang),
            }
        } else if self.network.partitioned(now) {
            self.line(format_args!("   {tag}{} lost in a partition", request.id));
            self.record(|r| r.fault(request.id, "lost in a partition"));
            (Fault::Hang, Delivery::Hang)
        } else {
            let server = &mut self.servers[self.clients[c].server];
            let exchange = match request.route {
                Route::Worker(endpoint) => {
                    self.network.exchange(now, server, endpoint, &request.body)
                }
                Route::Thread(endpoint) => {
                    let query = request.url.split_once('?').map_or("", |(_, q)| q);
                    let network = &mut self.network;
                    network.thread_exchange(now, server, endpoint, query, &request.body)
                }
                // `Route` is non-exhaustive: a route no server knows is never answered.
                _ => Exchange {
                    fault: Fault::Hang,
                    applied: false,
                    delivery: Delivery::Hang,
                },
            };
            if exchange.fault != Fault::None {
                self.line(format_args!(
                    "   {tag}{} fault: {}",
                    request.id, exchange.fault
                ));
                self.record(|r| r.fault(request.id, exchange.fault));
            }
            (exchange.fault, exchange.delivery)
        };
        if fault != Fault::None {
            self.faults += 1;
        }
        scenario.sent(self, c, &request, &fault);
        if let Some(at) = delivery.at() {
            self.answer_seq += 1;
            self.answers.insert(
                (at, self.answer_seq),
                InFlight {
                    client: c,
                    id: request.id,
                    delivery,
                },
            );
        }
    }

    /// An answer arrives: the scenario hears it, then the driver.
    fn answer(&mut self, answer: InFlight, scenario: &mut impl Scenario) {
        let InFlight {
            client: c,
            id,
            delivery,
        } = answer;
        let delivery = match (self.clients[c].isolated, delivery) {
            // Cut off while the answer travelled: the connection drops.
            (Some(_), Delivery::Respond { at, .. }) => Delivery::TransportError {
                at,
                error: TransportError {
                    message: "connection reset (cut off)".into(),
                },
            },
            (_, delivery) => delivery,
        };
        let tag = self.tag(c);
        if let Some(trace) = &mut self.trace {
            trace.delivery_tagged(&tag, id, &delivery);
        }
        let now = self.now();
        self.record(|r| r.delivery(now, id, &delivery));
        scenario.answered(self, c, id, &delivery);
        let result = match delivery {
            Delivery::Respond { response, .. } => Ok(HttpResponse::from(response)),
            Delivery::TransportError { error, .. } => Err(error),
            Delivery::Hang => return,
        };
        let actions = self.clients[c].shared().answer(id, result);
        self.answered_by(c);
        self.hand_over(c, scenario);
        self.carry_out(c, actions, scenario);
    }
}
