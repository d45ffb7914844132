//! Several thread-sync clients against one [`ServerModel`], through faults and partitions.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::json;
use tether_core::session::{Response, TransportError};
use tether_core::thread::{
    Message, SyncStatus, Thread, ThreadOutput, ThreadRequest, ThreadSync, ThreadSyncConfig,
};
use tether_core::{Instant, Poll, Rng};

use crate::ServerModel;

/// What can go wrong on the way, per request, while faults are on (before the heal).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ThreadFaults {
    /// The request never reaches the server: a connection error.
    pub lost_request: f64,
    /// The server applies it, the response is lost: a connection error.
    pub lost_response: f64,
    /// `503` without applying.
    pub server_error: f64,
    /// `429` with `Retry-After: 1..=5`.
    pub throttled: f64,
    /// No answer at all: the client's deadline must fire.
    pub hang: f64,
    /// The server applies it and answers `200` with a body that is not the protocol's.
    pub garbage: f64,
    /// One-way latency, uniform in this range.
    pub latency: (Duration, Duration),
}

impl ThreadFaults {
    /// No faults; 5–40 ms each way.
    pub const fn none() -> Self {
        ThreadFaults {
            lost_request: 0.0,
            lost_response: 0.0,
            server_error: 0.0,
            throttled: 0.0,
            hang: 0.0,
            garbage: 0.0,
            latency: (Duration::from_millis(5), Duration::from_millis(40)),
        }
    }

    /// A bad day: a few percent of each fault.
    pub const fn flaky() -> Self {
        ThreadFaults {
            lost_request: 0.03,
            lost_response: 0.03,
            server_error: 0.03,
            throttled: 0.02,
            hang: 0.01,
            garbage: 0.0,
            latency: (Duration::from_millis(5), Duration::from_millis(300)),
        }
    }

    /// The reference server's heavy day on the thread routes: every fault it injects there,
    /// garbage bodies included, several times as often as [`flaky`](Self::flaky).
    pub const fn heavy() -> Self {
        ThreadFaults {
            lost_request: 0.06,
            lost_response: 0.06,
            server_error: 0.08,
            throttled: 0.05,
            hang: 0.02,
            garbage: 0.04,
            latency: (Duration::from_millis(5), Duration::from_millis(400)),
        }
    }
}

/// A named scenario (seed 002's harness tests), or a seeded random run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Clients edit random threads at random times; some are partitioned for minutes.
    Random,
    /// Two clients add a message to the same thread at once.
    ConcurrentEdits,
    /// One message online, the client is cut off, two messages offline, then it reconnects.
    Partition,
    /// One client adds 1 000 messages to one thread, one a millisecond.
    Throughput,
}

/// One run's shape.
#[derive(Clone, Debug, PartialEq)]
pub struct ThreadRunConfig {
    /// Seeds everything: workload, partitions, faults, the clients' PRNGs.
    pub seed: u64,
    /// The scenario.
    pub scenario: Scenario,
    /// How many clients (random runs: 2 to 5).
    pub clients: usize,
    /// How many threads they share.
    pub threads: usize,
    /// Edits per client (random runs).
    pub edits_per_client: usize,
    /// Edits and partitions happen before this; then the network heals and faults stop.
    pub active: Duration,
    /// Faults while active.
    pub faults: ThreadFaults,
    /// Keep a trace of every request and answer.
    pub trace: bool,
}

impl ThreadRunConfig {
    /// A random run: the seed picks 2 to 5 clients, 1 to 4 threads and 5 to 30 edits each.
    pub fn random(seed: u64, faults: ThreadFaults) -> Self {
        let mut rng = Rng::new(seed ^ 0x7468_7265_6164);
        ThreadRunConfig {
            seed,
            scenario: Scenario::Random,
            clients: 2 + rng.below(4) as usize,
            threads: 1 + rng.below(4) as usize,
            edits_per_client: 5 + rng.below(26) as usize,
            active: Duration::from_secs(300),
            faults,
            trace: false,
        }
    }

    /// A named scenario, without faults.
    pub fn scenario(seed: u64, scenario: Scenario) -> Self {
        ThreadRunConfig {
            seed,
            scenario,
            clients: if scenario == Scenario::ConcurrentEdits {
                2
            } else {
                1
            },
            threads: 1,
            edits_per_client: 0,
            active: Duration::from_secs(match scenario {
                Scenario::Partition => 120,
                _ => 2,
            }),
            faults: ThreadFaults::none(),
            trace: true,
        }
    }
}

/// Counts of what happened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ThreadStats {
    /// Requests sent, by endpoint: pulls, pushes, pings.
    pub pulls: u64,
    /// `POST /threads/sync` requests.
    pub pushes: u64,
    /// `GET /ping` requests.
    pub pings: u64,
    /// Faults injected (partitions included).
    pub faults: u64,
    /// Messages added by all clients.
    pub messages: u64,
    /// Items the server applied, answered as conflicts, rejected.
    pub applied: u64,
    /// Conflicts answered.
    pub conflicts: u64,
    /// Items rejected.
    pub rejected: u64,
    /// Times a client went offline.
    pub offline: u64,
    /// When the run quiesced (every replica equal, synced and idle).
    pub quiesced_at: Option<Instant>,
    /// When every message added was on the server and every client synced, first.
    pub all_synced_at: Option<Instant>,
}

/// What a run found.
#[derive(Clone, Debug, PartialEq)]
pub struct ThreadReport {
    /// The configuration.
    pub config: ThreadRunConfig,
    /// Broken invariants; empty when the run passed.
    pub violations: Vec<String>,
    /// Counts.
    pub stats: ThreadStats,
    /// Each client's pending count just before its partition ended (partitioned clients only).
    pub pending_before_heal: BTreeMap<usize, usize>,
    /// The server's threads at the end.
    pub threads: Vec<Thread>,
    /// Every request and answer, if asked for.
    pub trace: Vec<String>,
}

impl ThreadReport {
    /// Whether every invariant held.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// A stable, human-readable summary (for snapshots).
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let c = &self.config;
        let _ = writeln!(
            s,
            "scenario {:?}, seed {}, {} client(s), {} thread(s)",
            c.scenario, c.seed, c.clients, c.threads
        );
        let st = &self.stats;
        let _ = writeln!(
            s,
            "messages {}, pulls {}, pushes {}, pings {}, applied {}, conflicts {}, rejected {}, offline {}, faults {}",
            st.messages,
            st.pulls,
            st.pushes,
            st.pings,
            st.applied,
            st.conflicts,
            st.rejected,
            st.offline,
            st.faults
        );
        let _ = writeln!(
            s,
            "all synced at {:?}, quiesced at {:?}",
            st.all_synced_at, st.quiesced_at
        );
        for (client, pending) in &self.pending_before_heal {
            let _ = writeln!(s, "client {client} pending before heal: {pending}");
        }
        for t in &self.threads {
            let ids: Vec<&str> = t.messages.iter().map(|m| m.id.as_str()).collect();
            let shown = if ids.len() > 12 {
                format!(
                    "{} .. {} ({} messages)",
                    ids[..3].join(" "),
                    ids[ids.len() - 3..].join(" "),
                    ids.len()
                )
            } else {
                ids.join(" ")
            };
            let _ = writeln!(
                s,
                "thread {} v{} {:?}: {}",
                t.id,
                t.v,
                t.fields.get("title"),
                shown
            );
        }
        let _ = writeln!(s, "violations: {:?}", self.violations);
        s
    }
}

#[derive(Clone, Debug)]
enum Edit {
    Add { thread: String, id: String },
    Title { thread: String, title: String },
    Update { thread: String, id: String },
}

#[derive(Debug)]
enum Event {
    Edit(usize, Edit),
    /// A request reaches the server (or not).
    Arrive(usize, ThreadRequest),
    /// An answer reaches the client.
    Answer(usize, tether_core::thread::RequestId, Option<Response>),
    PartitionStart(usize),
    PartitionEnd(usize),
}

struct Client {
    sync: ThreadSync,
    wake: Option<Instant>,
    partitioned: bool,
    /// Whether the caller said offline for this partition.
    says_offline: bool,
    versions: BTreeMap<String, u64>,
    added: Vec<(String, String)>,
}

struct Runner {
    config: ThreadRunConfig,
    rng: Rng,
    server: ServerModel,
    clients: Vec<Client>,
    queue: BTreeMap<(Instant, u64), Event>,
    seq: u64,
    now: Instant,
    stats: ThreadStats,
    violations: Vec<String>,
    trace: Vec<String>,
    pending_before_heal: BTreeMap<usize, usize>,
    server_versions: BTreeMap<String, u64>,
    /// Edits and partition ends still queued, so the end checks cost nothing before then.
    scheduled: usize,
}

/// Runs `config` to quiescence and checks the invariants: every client and the server hold
/// identical threads; every message any client added is present exactly once; versions only
/// grow; every client's every thread is synced; nothing was rejected.
pub fn run_threads(config: &ThreadRunConfig) -> ThreadReport {
    let mut rng = Rng::new(config.seed);
    let clients = (0..config.clients.max(1))
        .map(|i| {
            let sync = ThreadSync::new(ThreadSyncConfig::new(format!("client-{i}")), rng.fork())
                .expect("a valid configuration");
            Client {
                sync,
                wake: None,
                partitioned: false,
                says_offline: false,
                versions: BTreeMap::new(),
                added: Vec::new(),
            }
        })
        .collect();
    let mut runner = Runner {
        config: config.clone(),
        rng,
        server: ServerModel::default(),
        clients,
        queue: BTreeMap::new(),
        seq: 0,
        now: Instant::ZERO,
        stats: ThreadStats::default(),
        violations: Vec::new(),
        trace: Vec::new(),
        pending_before_heal: BTreeMap::new(),
        server_versions: BTreeMap::new(),
        scheduled: 0,
    };
    runner.plan();
    for i in 0..runner.clients.len() {
        let out = runner.drive(i, |s, now| s.start(now, 0));
        runner.handle_outputs(i, out);
    }
    runner.run();
    runner.check();
    ThreadReport {
        config: config.clone(),
        violations: runner.violations,
        stats: runner.stats,
        pending_before_heal: runner.pending_before_heal,
        threads: runner.server.threads().threads().cloned().collect(),
        trace: runner.trace,
    }
}

impl Runner {
    fn at(&mut self, at: Instant, event: Event) {
        if matches!(event, Event::Edit(..) | Event::PartitionEnd(_)) {
            self.scheduled += 1;
        }
        self.queue.insert((at, self.seq), event);
        self.seq += 1;
    }

    /// The workload and the partitions.
    fn plan(&mut self) {
        let c = self.config.clone();
        match c.scenario {
            Scenario::ConcurrentEdits => {
                for i in 0..2 {
                    let id = format!("hello-from-user-{}", i + 1);
                    self.at(
                        Instant::ZERO,
                        Event::Edit(
                            i,
                            Edit::Add {
                                thread: "test-thread".into(),
                                id,
                            },
                        ),
                    );
                }
            }
            Scenario::Partition => {
                let add = |id: &str| Edit::Add {
                    thread: "thread1".into(),
                    id: id.into(),
                };
                self.at(Instant::from_secs(1), Event::Edit(0, add("online-message")));
                self.at(Instant::from_secs(10), Event::PartitionStart(0));
                self.at(
                    Instant::from_secs(20),
                    Event::Edit(0, add("offline-message-1")),
                );
                self.at(
                    Instant::from_secs(25),
                    Event::Edit(0, add("offline-message-2")),
                );
                self.at(Instant::from_secs(120), Event::PartitionEnd(0));
            }
            Scenario::Throughput => {
                for n in 0..1_000 {
                    let edit = Edit::Add {
                        thread: "perf-thread".into(),
                        id: format!("message-{n:04}"),
                    };
                    self.at(Instant::from_millis(n), Event::Edit(0, edit));
                }
            }
            Scenario::Random => {
                let active = c.active.as_micros() as u64;
                for client in 0..c.clients {
                    let mut own: Vec<(String, String)> = Vec::new();
                    for n in 0..c.edits_per_client {
                        let at = Instant::from_micros(self.rng.below(active));
                        let thread = format!("t{}", self.rng.below(c.threads as u64));
                        let roll = self.rng.below(100);
                        let edit = if roll < 8 {
                            Edit::Title {
                                thread,
                                title: format!("title-{client}-{n}"),
                            }
                        } else if roll < 14 && !own.is_empty() {
                            let (thread, id) =
                                own[self.rng.below(own.len() as u64) as usize].clone();
                            Edit::Update { thread, id }
                        } else {
                            let id = format!("c{client}-m{n}");
                            own.push((thread.clone(), id.clone()));
                            Edit::Add { thread, id }
                        };
                        self.at(at, Event::Edit(client, edit));
                    }
                }
                // Partitions of minutes: each client with probability 1/2, at most all but one.
                for client in 0..c.clients.saturating_sub(1) {
                    if self.rng.below(2) == 0 {
                        let len = 60 + self.rng.below(180);
                        let start = self
                            .rng
                            .below((active / 1_000_000).saturating_sub(len).max(1));
                        self.at(Instant::from_secs(start), Event::PartitionStart(client));
                        self.at(Instant::from_secs(start + len), Event::PartitionEnd(client));
                    }
                }
            }
        }
    }

    fn heal_at(&self) -> Instant {
        Instant::from_duration(self.config.active)
    }

    fn drive<R>(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut ThreadSync, Instant) -> R,
    ) -> Vec<ThreadOutput> {
        let now = self.now;
        let client = &mut self.clients[i];
        let _ = f(&mut client.sync, now);
        let mut outputs = Vec::new();
        let mut bound = 0;
        loop {
            match client.sync.poll_output() {
                Poll::Output(out) => {
                    outputs.push(out);
                    bound += 1;
                    if bound > 100_000 {
                        self.violations
                            .push(format!("client {i} livelocked at {now}"));
                        client.wake = None;
                        return outputs;
                    }
                }
                Poll::Timeout(wake) => {
                    client.wake = wake.map(|w| w.at);
                    return outputs;
                }
            }
        }
    }

    fn handle_outputs(&mut self, i: usize, outputs: Vec<ThreadOutput>) {
        for out in outputs {
            match out {
                ThreadOutput::Request(request) => self.send(i, request),
                ThreadOutput::Rejected(r) => {
                    self.violations.push(format!(
                        "client {i}: thread {} rejected: {}",
                        r.id, r.reason
                    ));
                }
                ThreadOutput::Stopped { reason, .. } => {
                    self.violations
                        .push(format!("client {i} stopped: {reason:?}"));
                }
                ThreadOutput::Offline(_) => self.stats.offline += 1,
                ThreadOutput::Cancel(id) => {
                    self.trace_line(format!("{} c{i} cancels {id}", self.now))
                }
                _ => {}
            }
        }
        self.check_versions(i);
    }

    fn send(&mut self, i: usize, request: ThreadRequest) {
        use tether_core::thread::ThreadEndpoint as E;
        match request.endpoint {
            E::Pull => self.stats.pulls += 1,
            E::Sync => self.stats.pushes += 1,
            E::Ping => self.stats.pings += 1,
        }
        if self.config.trace {
            let line = format!("{} c{i} -> {} {}", self.now, request.id, request.path);
            self.trace.push(line);
        }
        let latency = self.latency();
        let at = self.now + latency;
        self.at(at, Event::Arrive(i, request));
    }

    fn latency(&mut self) -> Duration {
        let (lo, hi) = self.config.faults.latency;
        self.rng.duration_between(lo, hi)
    }

    fn faulty(&self) -> bool {
        self.now < self.heal_at()
    }

    fn roll(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.unit() < p
    }

    fn arrive(&mut self, i: usize, request: ThreadRequest) {
        let back = self.latency();
        let answer_at = self.now + back;
        let id = request.id;
        if self.clients[i].partitioned {
            self.stats.faults += 1;
            // Cut off: connection refused, or a hang half of the time.
            if self.rng.below(2) == 0 {
                self.at(answer_at, Event::Answer(i, id, None));
            }
            return;
        }
        let f = self.config.faults;
        if self.faulty() {
            if self.roll(f.lost_request) {
                self.stats.faults += 1;
                self.at(answer_at, Event::Answer(i, id, None));
                return;
            }
            if self.roll(f.hang) {
                self.stats.faults += 1;
                return;
            }
            if self.roll(f.server_error) {
                self.stats.faults += 1;
                self.at(
                    answer_at,
                    Event::Answer(i, id, Some(Response::new(503, "{}"))),
                );
                return;
            }
            if self.roll(f.throttled) {
                self.stats.faults += 1;
                let mut response = Response::new(429, "{}");
                response.retry_after = Some(format!("{}", 1 + self.rng.below(5)));
                self.at(answer_at, Event::Answer(i, id, Some(response)));
                return;
            }
        }
        let query = request.path.split_once('?').map_or("", |(_, q)| q);
        let response = self
            .server
            .handle_thread(self.now, request.endpoint, query, &request.body);
        self.check_server_versions();
        if self.faulty() && self.roll(f.lost_response) {
            self.stats.faults += 1;
            self.at(answer_at, Event::Answer(i, id, None));
            return;
        }
        if self.faulty() && self.roll(f.garbage) {
            self.stats.faults += 1;
            let garbage = Response::new(200, "<html>Bad Gateway</html>");
            self.at(answer_at, Event::Answer(i, id, Some(garbage)));
            return;
        }
        self.at(answer_at, Event::Answer(i, id, Some(response)));
    }

    fn edit(&mut self, i: usize, edit: Edit) {
        let ts = self.now.as_micros() / 1_000;
        let result = match edit {
            Edit::Add { thread, id } => {
                self.stats.messages += 1;
                self.clients[i].added.push((thread.clone(), id.clone()));
                let content = format!("hello from client {i}");
                let out = self.drive(i, |s, now| {
                    s.add_message(now, &thread, Message::new(id, "user", content, ts))
                });
                Ok(out)
            }
            Edit::Title { thread, title } => Ok(self.drive(i, |s, now| {
                s.set_field(now, &thread, "title", Some(json!(title)))
            })),
            Edit::Update { thread, id } => {
                let Some(mut message) = self.clients[i]
                    .sync
                    .thread(&thread)
                    .and_then(|t| t.message(&id))
                    .cloned()
                else {
                    return;
                };
                message.content.push_str(" (edited)");
                Ok::<_, ()>(self.drive(i, |s, now| s.update_message(now, &thread, message)))
            }
        };
        if let Ok(out) = result {
            self.handle_outputs(i, out);
        }
    }

    fn run(&mut self) {
        let limit = self.heal_at() + Duration::from_secs(3_600);
        let mut steps = 0u64;
        loop {
            steps += 1;
            if steps > 5_000_000 {
                self.violations
                    .push("the run did not end within 5 000 000 steps".into());
                return;
            }
            let next_event = self.queue.first_key_value().map(|((at, _), _)| *at);
            let next_wake = self
                .clients
                .iter()
                .enumerate()
                .filter_map(|(i, c)| c.wake.map(|w| (w, i)))
                .min();
            let take_event = match (next_event, next_wake) {
                (Some(e), Some((w, _))) => e <= w,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let at = if take_event {
                next_event
            } else {
                next_wake.map(|(w, _)| w)
            }
            .unwrap_or(self.now);
            if at > limit {
                break;
            }
            self.now = self.now.max(at);
            if take_event {
                let Some((_, event)) = self.queue.pop_first() else {
                    break;
                };
                self.handle_event(event);
            } else if let Some((_, i)) = next_wake {
                let out = self.drive(i, |s, now| s.handle_timeout(now));
                self.handle_outputs(i, out);
            }
            if self.stats.all_synced_at.is_none() && self.all_synced() {
                self.stats.all_synced_at = Some(self.now);
            }
            if self.now >= self.heal_at() && self.quiescent() {
                self.stats.quiesced_at = Some(self.now);
                return;
            }
        }
        self.violations
            .push(format!("no quiescence by {}", self.now));
    }

    fn handle_event(&mut self, event: Event) {
        if matches!(event, Event::Edit(..) | Event::PartitionEnd(_)) {
            self.scheduled -= 1;
        }
        match event {
            Event::Edit(i, edit) => self.edit(i, edit),
            Event::Arrive(i, request) => self.arrive(i, request),
            Event::Answer(i, id, response) => {
                if self.clients[i].partitioned && response.is_some() {
                    // The partition began while the answer travelled.
                    let out = self.drive(i, |s, now| {
                        s.handle_transport_error(
                            now,
                            id,
                            &TransportError {
                                message: "partitioned".into(),
                            },
                        )
                    });
                    return self.handle_outputs(i, out);
                }
                if self.config.trace {
                    let what = response
                        .as_ref()
                        .map_or("transport error".into(), |r| r.status.to_string());
                    self.trace.push(format!("{} c{i} <- {id} {what}", self.now));
                }
                let out = match response {
                    Some(response) => self.drive(i, |s, now| s.handle_response(now, id, response)),
                    None => self.drive(i, |s, now| {
                        s.handle_transport_error(
                            now,
                            id,
                            &TransportError {
                                message: "connection refused".into(),
                            },
                        )
                    }),
                };
                self.handle_outputs(i, out);
            }
            Event::PartitionStart(i) => {
                self.clients[i].partitioned = true;
                self.trace_line(format!("{} c{i} partitioned", self.now));
                // Half of the time the device also knows it is offline.
                if self.config.scenario == Scenario::Random && self.rng.below(2) == 0 {
                    self.clients[i].says_offline = true;
                    let out = self.drive(i, |s, now| s.set_online(now, false));
                    self.handle_outputs(i, out);
                }
            }
            Event::PartitionEnd(i) => {
                let pending = self.clients[i].sync.pending();
                self.pending_before_heal.insert(i, pending);
                self.clients[i].partitioned = false;
                self.trace_line(format!("{} c{i} healed", self.now));
                if std::mem::take(&mut self.clients[i].says_offline) {
                    let out = self.drive(i, |s, now| s.set_online(now, true));
                    self.handle_outputs(i, out);
                }
            }
        }
    }

    fn trace_line(&mut self, line: String) {
        if self.config.trace {
            self.trace.push(line);
        }
    }

    /// Every message added is on the server and every client is synced (throughput's end).
    fn all_synced(&self) -> bool {
        self.scheduled == 0
            && self.clients.iter().all(|c| {
                c.added.iter().all(|(t, id)| {
                    self.server
                        .threads()
                        .thread(t)
                        .is_some_and(|t| t.message(id).is_some())
                }) && c.sync.pending() == 0
            })
            && self.stats.messages > 0
    }

    fn quiescent(&self) -> bool {
        let version = self.server.threads().version();
        self.scheduled == 0
            && self.clients.iter().all(|c| {
                c.sync.is_online()
                    && c.sync.is_idle()
                    && c.sync.since() == version
                    && c.sync.statuses().values().all(|s| *s == SyncStatus::Synced)
            })
    }

    fn check_versions(&mut self, i: usize) {
        let client = &mut self.clients[i];
        for t in client.sync.threads() {
            let seen = client.versions.entry(t.id.clone()).or_default();
            if t.v < *seen {
                self.violations.push(format!(
                    "client {i}: thread {} went from v{} to v{}",
                    t.id, seen, t.v
                ));
            }
            *seen = t.v;
        }
    }

    fn check_server_versions(&mut self) {
        for t in self.server.threads().threads() {
            let seen = self.server_versions.entry(t.id.clone()).or_default();
            if t.v < *seen {
                self.violations.push(format!(
                    "server: thread {} went from v{} to v{}",
                    t.id, seen, t.v
                ));
            }
            *seen = t.v;
        }
    }

    /// The invariants after quiescence.
    fn check(&mut self) {
        let (applied, conflicts, rejected) = self.server.threads().counts();
        self.stats.applied = applied;
        self.stats.conflicts = conflicts;
        self.stats.rejected = rejected;
        let server: BTreeMap<&str, &Thread> = self
            .server
            .threads()
            .threads()
            .map(|t| (t.id.as_str(), t))
            .collect();
        for (i, c) in self.clients.iter().enumerate() {
            let local: BTreeMap<&str, &Thread> =
                c.sync.threads().map(|t| (t.id.as_str(), t)).collect();
            if local != server {
                let differ: BTreeSet<&str> = local
                    .keys()
                    .chain(server.keys())
                    .filter(|k| local.get(*k) != server.get(*k))
                    .copied()
                    .collect();
                self.violations
                    .push(format!("client {i} differs from the server on {differ:?}"));
            }
            for (thread, status) in c.sync.statuses() {
                if *status != SyncStatus::Synced {
                    self.violations
                        .push(format!("client {i}: thread {thread} is {status}"));
                }
            }
            for (thread, id) in &c.added {
                let count = server
                    .get(thread.as_str())
                    .map_or(0, |t| t.messages.iter().filter(|m| &m.id == id).count());
                if count != 1 {
                    self.violations.push(format!(
                        "message {id} of client {i} is on the server {count} times"
                    ));
                }
            }
        }
    }
}
