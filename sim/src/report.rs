//! What a run of the worker-session scenario of the [world](crate::world) is given
//! ([`RunConfig`]) and what it reports ([`RunReport`]).

use tether_core::session::{ConfigError, SessionConfig, Status};
use tether_core::time::Instant;
use tether_model::fault::{FaultMix, FaultMixError};
use tether_model::timeline::Timeline;

use crate::Violation;
use crate::trace::Trace;
use crate::workload::WorkloadConfig;

/// What the callers do besides the workload: how they misbehave.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Callers {
    /// At the workload's close, drop the handle instead of closing: the session closes itself
    /// (in the workload's close timeout) and hands back what is left.
    pub drop_handle: bool,
    /// The observer given to the driver panics after this many outputs; the session must go
    /// on as if it had none.
    pub panicking_observer: Option<u64>,
}

impl Callers {
    /// The callers a sweep gives `seed`: one seed in seven drops its handle instead of
    /// closing, one in eleven has an observer that panics somewhere in its first few hundred
    /// outputs; the rest behave.
    pub fn for_seed(seed: u64) -> Callers {
        Callers {
            drop_handle: seed % 7 == 3,
            panicking_observer: (seed % 11 == 5).then(|| 10 + (seed / 11) % 300),
        }
    }
}

/// What to simulate.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The one seed every random choice of the run derives from.
    pub seed: u64,
    /// How hostile the network and server are.
    pub mix: FaultMix,
    /// What the application does.
    pub workload: WorkloadConfig,
    /// The session under test. Its id is also the server's session id.
    pub session: SessionConfig,
    /// Whether to record the trace (sweeps leave it off for speed).
    pub trace: bool,
    /// Whether to record a [`Timeline`] to draw (see [`render`](crate::render::render)).
    pub timeline: bool,
    /// A bound on loop iterations, so a livelock fails the run instead of hanging it.
    pub max_steps: u64,
    /// How the callers misbehave.
    pub callers: Callers,
}

impl RunConfig {
    /// A ten-minute run of the default workload with a registering session.
    pub fn new(seed: u64, mix: FaultMix) -> Self {
        RunConfig {
            seed,
            mix,
            workload: WorkloadConfig::default(),
            session: SessionConfig::new("sim"),
            trace: false,
            timeline: false,
            max_steps: 10_000_000,
            callers: Callers::default(),
        }
    }

    /// The same run with its trace recorded.
    pub fn traced(mut self) -> Self {
        self.trace = true;
        self
    }

    /// The same run with its [`Timeline`] recorded.
    pub fn with_timeline(mut self) -> Self {
        self.timeline = true;
        self
    }
}

/// A configuration the scenario cannot use.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum RunError {
    /// The fault mix is out of bounds.
    Mix(FaultMixError),
    /// The session refused its configuration.
    Session(ConfigError),
    /// The driver refused its settings.
    Driver(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Mix(e) => write!(f, "fault mix: {e}"),
            RunError::Session(e) => write!(f, "session: {e}"),
            RunError::Driver(e) => write!(f, "driver: {e}"),
        }
    }
}

impl std::error::Error for RunError {}

/// Counts of one run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Events the workload enqueued, all streams.
    pub events: u64,
    /// Events the server holds, all streams.
    pub delivered: u64,
    /// Events handed back to the caller.
    pub handed_back: u64,
    /// Duplicates the server filtered.
    pub duplicates: u64,
    /// Requests the session sent.
    pub requests: u64,
    /// Requests that met a fault (partitions included).
    pub faults: u64,
    /// Patches the workload gave.
    pub patches: u64,
    /// Simulated time at the end.
    pub end: Instant,
    /// Loop iterations.
    pub steps: u64,
}

/// How a run went.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// The run's seed: replaying it reproduces the run exactly.
    pub seed: u64,
    /// The session's last status.
    pub status: Status,
    /// Every invariant the run broke; empty for a good run.
    pub violations: Vec<Violation>,
    /// The trace, if it was recorded.
    pub trace: Option<Trace>,
    /// The timeline, if it was recorded.
    pub timeline: Option<Timeline>,
    /// Counts.
    pub stats: RunStats,
}

impl RunReport {
    /// Whether every invariant held.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}
