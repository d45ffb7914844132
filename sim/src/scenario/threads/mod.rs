//! The thread-sync scenario: 2 to 5 clients, each a real driver with thread sync started on
//! its handle ([`Tether::threads`](tether_driver::Tether::threads)), editing 1 to 4 shared
//! threads through the handle's thread view, against one server through the faulty network;
//! then a heal, and the invariants checked once every replica has quiesced.
//!
//! Every client is a worker of the same session at epoch 1 (as the `tether demo --sync`
//! clients are), so its worker requests (the init `PUT`, heartbeats) cross the same network
//! as its thread requests, and every request draws its fault from the one
//! [`FaultMix`] ([`Network::thread_exchange`] for the thread routes). Besides the network's
//! own partitions, the plan cuts single clients off for minutes ([`Isolation`]), half of the
//! time with the caller also saying offline; callers pause and resume, ask to sync now,
//! append, edit, delete, retitle and put whole threads back; and the server may serve an
//! invalid ("poisoned") thread that no client holds. At [`ThreadRunConfig::active`] the
//! network heals: no per-request fault is drawn after it (a planned partition that began
//! before may still run on past it, for at most its own length).
//!
//! The checks: every client's view equals the server's threads (but the poisoned), and every
//! thread of every client is synced; every message added and not deleted is on the server
//! exactly once, and every deleted one is nowhere unless a client reported a merge that kept
//! it against the delete (the merge policy's edit-beats-delete); versions only grow, on every client and on
//! the server; no thread was rejected, handed back or stopped, and no session ended; every
//! client reported every poisoned thread (and synced the rest: nothing stalled on it); every
//! client answered a conflict on a thread said next what became of it (in conflict: a merge to
//! push; or synced: the server's copy held everything); and the run quiesced within an hour of
//! the heal.
//!
//! [`Network::thread_exchange`]: crate::Network::thread_exchange
//! [`Isolation`]: crate::world::Isolation

mod callers;
mod plan;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use tether_core::session::SessionConfig;
use tether_core::thread::{self, Thread};
use tether_core::{Instant, Rng};
use tether_driver::Settings;
use tether_model::fault::FaultMix;
use tether_model::{ServerConfig, ServerModel};

use crate::network::Network;
use crate::trace::Trace;
use crate::world::{ClientSpec, World};

/// The session every client works for.
const SESSION: &str = "sim-threads";

/// The thread routes' fault presets, as mixes of the one vocabulary ([`FaultMix`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadFaults {
    /// No faults; a 20 ms round trip.
    None,
    /// A bad day: a few percent of each fault, short partitions, restarts.
    Flaky,
    /// The reference server's heavy day on the thread routes: every fault it injects there,
    /// garbage bodies and 5xx after applying included, several times as often as
    /// [`Flaky`](Self::Flaky).
    Heavy,
}

impl ThreadFaults {
    /// Every preset, in the order a sweep rotates them.
    pub const ALL: [ThreadFaults; 3] =
        [ThreadFaults::None, ThreadFaults::Flaky, ThreadFaults::Heavy];

    /// The preset's mix. No takeover: a newer worker would stop every client's thread sync
    /// for good, which the worker-session scenario covers.
    pub fn mix(self) -> FaultMix {
        let calm = FaultMix::calm();
        match self {
            ThreadFaults::None => calm,
            ThreadFaults::Flaky => FaultMix {
                latency: 0.2,
                latency_max: Duration::from_millis(300),
                lost_request: 0.03,
                lost_response: 0.03,
                error_after_max: Duration::from_millis(300),
                server_error: 0.03,
                throttle_seconds: 0.02,
                retry_after_max_secs: 5,
                hang: 0.01,
                partitions_per_hour: 2.0,
                partition_min: Duration::from_secs(5),
                partition_max: Duration::from_secs(60),
                restarts_per_hour: 2.0,
                ..calm
            },
            ThreadFaults::Heavy => FaultMix {
                latency: 0.2,
                latency_max: Duration::from_millis(400),
                lost_request: 0.06,
                lost_request_silent: 0.25,
                lost_response: 0.06,
                error_after_max: Duration::from_millis(400),
                server_error: 0.08,
                server_error_applied: 0.25,
                throttle_seconds: 0.025,
                throttle_date: 0.025,
                retry_after_max_secs: 5,
                hang: 0.02,
                garbage: 0.04,
                partitions_per_hour: 4.0,
                partition_min: Duration::from_secs(5),
                partition_max: Duration::from_secs(90),
                restarts_per_hour: 6.0,
                ..calm
            },
        }
    }
}

/// A named run (seed 002's harness tests), or a seeded random one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadScenario {
    /// Callers edit random threads at random times; clients are cut off for minutes, pause,
    /// and the server may poison a thread.
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
    /// Seeds everything: the plan, the network, the clients' drivers.
    pub seed: u64,
    /// The scenario.
    pub scenario: ThreadScenario,
    /// How many clients (random runs: 2 to 5).
    pub clients: usize,
    /// How many threads they share.
    pub threads: usize,
    /// Edits per client (random runs).
    pub edits_per_client: usize,
    /// Edits, cut-offs and partitions start before this; then the network heals (a partition
    /// under way ends on its own schedule).
    pub active: Duration,
    /// The faults while active.
    pub mix: FaultMix,
    /// Keep a trace of every request, answer and call.
    pub trace: bool,
    /// The world's step bound: past it the run is a livelock.
    pub max_steps: u64,
}

impl ThreadRunConfig {
    /// A random run: the seed picks 2 to 5 clients, 1 to 4 threads and 5 to 30 edits each.
    pub fn random(seed: u64, faults: ThreadFaults) -> Self {
        let mut rng = Rng::new(seed ^ 0x7468_7265_6164);
        ThreadRunConfig {
            seed,
            scenario: ThreadScenario::Random,
            clients: 2 + rng.below(4) as usize,
            threads: 1 + rng.below(4) as usize,
            edits_per_client: 5 + rng.below(26) as usize,
            active: Duration::from_secs(300),
            mix: faults.mix(),
            trace: false,
            max_steps: 2_000_000,
        }
    }

    /// A named scenario, without faults, traced.
    pub fn scenario(seed: u64, scenario: ThreadScenario) -> Self {
        ThreadRunConfig {
            seed,
            scenario,
            clients: if scenario == ThreadScenario::ConcurrentEdits {
                2
            } else {
                1
            },
            threads: 1,
            edits_per_client: 0,
            active: Duration::from_secs(match scenario {
                ThreadScenario::Partition => 120,
                _ => 2,
            }),
            mix: ThreadFaults::None.mix(),
            trace: true,
            max_steps: 2_000_000,
        }
    }
}

/// Counts of what happened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ThreadStats {
    /// `GET /threads` requests.
    pub pulls: u64,
    /// `POST /threads/sync` requests.
    pub pushes: u64,
    /// `GET /ping` requests.
    pub pings: u64,
    /// Worker-route requests (the sessions' own: init, heartbeats).
    pub worker_requests: u64,
    /// Requests that met a fault (partitions and cut-offs included).
    pub faults: u64,
    /// Messages added by all callers.
    pub messages: u64,
    /// Messages deleted by all callers.
    pub deletes: u64,
    /// Items the server applied.
    pub applied: u64,
    /// Items the server answered as conflicts.
    pub conflicts: u64,
    /// Items the server rejected.
    pub rejected: u64,
    /// Times a client went offline.
    pub offline: u64,
    /// Invalid threads the clients reported.
    pub invalid: u64,
    /// Both-sided changes a merge decided, as the clients reported them.
    pub overridden: u64,
    /// World steps.
    pub steps: u64,
    /// When the run quiesced (every replica equal to the server and synced).
    pub quiesced_at: Option<Instant>,
    /// When every message added was on the server and no client had anything pending, first.
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
    /// Each cut-off client's pending count just before it rejoined.
    pub pending_before_heal: BTreeMap<usize, usize>,
    /// The server's threads at the end.
    pub threads: Vec<Thread>,
    /// Every request, answer and call, if asked for.
    pub trace: Option<Trace>,
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
            "messages {}, deletes {}, pulls {}, pushes {}, pings {}, worker requests {}, faults {}",
            st.messages, st.deletes, st.pulls, st.pushes, st.pings, st.worker_requests, st.faults
        );
        let _ = writeln!(
            s,
            "applied {}, conflicts {}, rejected {}, offline {}, invalid {}, overridden {}",
            st.applied, st.conflicts, st.rejected, st.offline, st.invalid, st.overridden
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

/// Runs `config` in the world until every replica has quiesced (or an hour after the heal),
/// and checks the invariants (see the [module docs](self)).
///
/// ```
/// use tether_sim::{ThreadFaults, ThreadRunConfig, run_threads};
///
/// let report = run_threads(&ThreadRunConfig::random(7, ThreadFaults::Flaky));
/// assert!(report.passed(), "{}", report.summary());
/// assert!(report.stats.messages > 0 && report.stats.pushes > 0);
/// ```
pub fn run_threads(config: &ThreadRunConfig) -> ThreadReport {
    let mut root = Rng::new(config.seed);
    let network = match Network::new(config.seed, config.mix.clone(), config.active) {
        Ok(network) => network.quiet_from(Instant::from_duration(config.active)),
        Err(e) => return refused(config, format!("the fault mix is invalid: {e}")),
    };
    let server = ServerModel::new(ServerConfig {
        session_id: Some(SESSION.into()),
        ..ServerConfig::default()
    });
    let mut world = World::new(network, vec![server], config.max_steps).tag_clients();
    if config.trace {
        world = world.traced();
    }
    let mut handles = Vec::with_capacity(config.clients);
    for i in 0..config.clients.max(1) {
        let mut session = SessionConfig::new(SESSION).with_epoch(1);
        // A worker that keeps trying: what is tested is thread sync, which ends with the
        // session.
        session.connect.max_attempts = None;
        let seed = root.next_u64();
        let mut settings = Settings::new(format!("http://sim.invalid/v1/code/sessions/{SESSION}"));
        settings.config(session).epoch(1).seed(seed);
        let started = world
            .add_client(ClientSpec {
                settings,
                seed,
                server: 0,
                store: None,
            })
            .map_err(|e| e.to_string())
            .and_then(|c| {
                let tether = world.client(c).tether().ok_or("no handle")?;
                tether
                    .threads(thread::Config::new(format!("client-{i}")))
                    .map_err(|e| e.to_string())
            });
        match started {
            Ok(handle) => handles.push(handle),
            Err(e) => return refused(config, format!("client {i} did not start: {e}")),
        }
    }
    let plan = plan::plan(config, root.fork());
    let mut callers = callers::Callers::new(config, handles, plan);
    world.run(&mut callers);
    callers.finish(&mut world)
}

/// A run that could not start.
fn refused(config: &ThreadRunConfig, why: String) -> ThreadReport {
    ThreadReport {
        config: config.clone(),
        violations: vec![why],
        stats: ThreadStats::default(),
        pending_before_heal: BTreeMap::new(),
        threads: Vec::new(),
        trace: None,
    }
}
