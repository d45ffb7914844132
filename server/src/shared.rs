//! What the runtime's tasks and the blocking handles share.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::config::ServerConfig;
use crate::journal::Journal;
use crate::store::Store;
use tether_model::fault::{FaultDecider, FaultPlan};

/// The life of one listener and its connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Accepting and serving.
    Running,
    /// Shutting down: stop accepting, finish in-flight requests, end hangs.
    Draining,
    /// Server down: close everything now.
    Kill,
}

/// The sessions, the fault decider and the configuration, behind short-lived locks that are
/// never held across an `.await`.
pub(crate) struct Shared {
    pub config: ServerConfig,
    store: Mutex<Store>,
    decider: Mutex<FaultDecider>,
    journal: Mutex<Journal>,
    started: Instant,
    /// Connections accepted and open (server.rs), for the inspector.
    pub connections: crate::server::ConnectionCounters,
}

impl Shared {
    pub fn new(config: ServerConfig) -> Self {
        Shared {
            decider: Mutex::new(config.faults.decider()),
            journal: Mutex::new(Journal::new(config.faults.clone())),
            store: Mutex::new(Store::new(config.body_limit, config.heartbeat_ttl)),
            config,
            started: monotonic(),
            connections: Default::default(),
        }
    }

    /// Locks the store. A panic while it was held cannot leave it half-written (every change
    /// is one call), so a poisoned lock is taken as is.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn decider(&self) -> MutexGuard<'_, FaultDecider> {
        self.decider.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Locks the journal (request log, partitions, changes); poisoning is ignored as for the
    /// store.
    pub fn journal(&self) -> MutexGuard<'_, Journal> {
        self.journal.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts `plan` in force from the next request on (its random stream starts afresh), logs
    /// the change and tells the change log callback.
    pub fn set_plan(&self, plan: FaultPlan) {
        let now = self.elapsed();
        *self.decider() = plan.decider();
        let mut journal = self.journal();
        journal.set_plan(now, plan);
        self.announce(&journal);
    }

    /// Hands the journal's last change to the configured change log, if any.
    pub fn announce(&self, journal: &Journal) {
        if let (Some(log), Some(change)) = (&self.config.on_change, journal.last_change()) {
            log(&change.text);
        }
    }

    /// Time since the server started: the clock of heartbeat times.
    pub fn elapsed(&self) -> Duration {
        monotonic().saturating_duration_since(self.started)
    }
}

#[allow(
    clippy::disallowed_methods,
    reason = "the server is the I/O edge: it reads the clock"
)]
pub(crate) fn monotonic() -> Instant {
    Instant::now()
}
