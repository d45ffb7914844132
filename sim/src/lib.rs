//! tether's deterministic simulator (docs/ARCHITECTURE.md §Simulation).
//!
//! The [`world`]: a virtual clock, a faulty network, the server model, and clients that are
//! each a real [`tether_driver`] driver around a real [`tether_core`] session, driven the way
//! every shim drives one, with their callers on the `Tether` handle. A [`scenario`] is a
//! workload plus its invariant checks in that world. Everything here is seeded and reads no
//! clock for its time (the one `Instant::now` in `world/client.rs` only anchors the drivers'
//! shared retry budget; nothing depends on its value), so a failing seed replays to the same
//! trace. The crate uses std but no async runtime
//! and no threads.
//!
//! ```
//! use tether_sim::{run_session, FaultMix, RunConfig};
//!
//! // Ten simulated minutes of a worker session on a bad day, through the real driver, every
//! // invariant checked at the end.
//! let report = run_session(&RunConfig::new(7, FaultMix::flaky()))?;
//! assert!(report.passed(), "{:?}", report.violations);
//! assert!(report.stats.faults > 0 && report.stats.delivered > 0);
//! # Ok::<(), tether_sim::RunError>(())
//! ```
//!
//! The pieces:
//!
//! - The server is [`tether_model`]'s [`ServerModel`], docs/PROTOCOL.md's server for one session
//!   (epochs and fencing, the worker document, de-duplicated event streams, heartbeats, limits,
//!   thread sync), the same model the reference HTTP server (`tether-server`) runs per session.
//!   It is re-exported here, with [`timeline`] and [`render`], for the simulator's users.
//! - Faults are [`tether_model::fault`]'s vocabulary, shared with the reference server: a
//!   [`FaultMix`] says how often each [`Fault`] happens.
//! - [`network`]: [`Network`], built from a seed and a [`FaultMix`]. Per request it decides a
//!   [`Fault`] and carries it out against the server in virtual time as a [`Delivery`]; up
//!   front it plans partitions, restarts and at most one takeover as a timeline; an outage
//!   ([`Network::with_outage`]) refuses every request for a span.
//! - [`workload`]: [`generate`] turns a seed into the application's actions: events with a `seq`,
//!   internal events, acks, patches (including the reset-then-object pairs that break naive
//!   coalescing), flushes, and a final close.
//! - [`check`]: the invariants, as pure functions of plain records.
//! - [`trace`]: [`Trace`], one fixed-format line per input and output.
//! - [`world`]: [`World`](world::World), the one world every scenario runs in, and its
//!   [`Scenario`](world::Scenario) trait.
//! - [`scenario`]: the scenarios; [`run_session`] runs the worker session through the world,
//!   [`run_crashes`] a process with a durable outbox killed and restarted on its store,
//!   [`run_fleet`] many sessions through an outage, sharing one retry budget, and
//!   [`run_threads`] thread sync (several clients on shared threads, the thread routes faulted
//!   from the same [`FaultMix`] through [`Network::thread_exchange`]).
//! - [`timeline`]: [`Timeline`], what a run did on each channel over time, filled by a
//!   [`Recorder`]; [`render`](render::render) draws it as an SVG.
//!
//! # How the pieces compose
//!
//! The [`World`](world::World) owns a [`ServerModel`] per server, the [`Network`] and a
//! [`Trace`], and takes the earliest of its timed happenings in turn: the scenario's steps, the
//! network's [`timeline`](Network::timeline) (restart → [`ServerModel::restart`], takeover →
//! [`ServerModel::force_takeover`]; partitions need nothing), answers due, and the drivers'
//! deadlines. Each request a driver sends goes through [`Network::exchange`] (a thread route
//! through [`Network::thread_exchange`]), which applies it to the server now and says when and
//! what the client hears back ([`Delivery::Hang`]: nothing, the session's deadline must fire). At the end a scenario fills the [`check`] records from
//! what it watched and the server's accessors.
//!
//! Every seed derives from one: the network from `seed`, the workload from `seed ^ 1`, the
//! session's [`Rng`](tether_core::Rng) from `seed ^ 2`. One exchange, by hand:
//!
//! ```
//! use std::time::Duration;
//! use tether_core::session::{Endpoint, RequestId};
//! use tether_core::Instant;
//! use tether_sim::{Delivery, FaultMix, Network, ServerModel, Trace};
//!
//! let mut server = ServerModel::default();
//! let mut network = Network::new(7, FaultMix::flaky(), Duration::from_secs(600))?;
//! let mut trace = Trace::new();
//!
//! let now = Instant::from_secs(1);
//! let exchange = network.exchange(now, &mut server, Endpoint::Register, b"{}");
//! trace.line(now, format_args!("-> r1 {} ({})", Endpoint::Register, exchange.fault));
//! // The answer's line at the time it arrives; a hang writes nothing (the deadline fires).
//! trace.delivery(RequestId(1), &exchange.delivery);
//! if let Delivery::Respond { at, .. } | Delivery::TransportError { at, .. } = exchange.delivery {
//!     assert!(at >= now && trace.lines() == 2);
//! }
//! # Ok::<(), tether_sim::FaultMixError>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod check;
pub mod network;
mod report;
pub mod scenario;
pub mod trace;
pub mod workload;
pub mod world;

pub use check::Violation;
pub use network::{Exchange, Network};
pub use report::{Callers, RunConfig, RunError, RunReport, RunStats};
pub use scenario::crash::{CrashConfig, CrashReport, run_crashes};
pub use scenario::fleet::{FleetConfig, FleetReport, run_fleet};
pub use scenario::session::run_session;
pub use scenario::threads::{
    ThreadFaults, ThreadReport, ThreadRunConfig, ThreadScenario, ThreadStats, run_threads,
};
pub use tether_model::fault::{
    Delivery, Fault, FaultKind, FaultMix, FaultMixError, RetryAfter, Span, TimeEvent,
};
pub use tether_model::{AppliedPut, DeliveryUpdate, ServerConfig, ServerModel, StoredEvent};
pub use tether_model::{Recorder, Timeline, render, timeline};
pub use trace::Trace;
pub use workload::{Action, SEQ_FIELD, WorkloadConfig, generate, seq_of};
