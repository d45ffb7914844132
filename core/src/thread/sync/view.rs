//! What [`ThreadSync`] lets the caller read.

use alloc::collections::BTreeMap;
use alloc::string::String;
use core::time::Duration;

use super::{Config, Counts, ThreadSync};
use crate::thread::merge::MergePolicy;
use crate::thread::model::Thread;
use crate::thread::replica::Replica;
use crate::thread::status::{PerfMonitor, SyncStatus};
use crate::time::Instant;

impl<P: MergePolicy> ThreadSync<P> {
    /// A thread's view: the local copy with every local edit applied.
    pub fn thread(&self, id: &str) -> Option<&Thread> {
        self.push.replica().thread(id)
    }

    /// Every thread's view.
    pub fn threads(&self) -> impl Iterator<Item = &Thread> {
        self.push.replica().threads()
    }

    /// The replica: every thread's view and last synced copy.
    pub fn replica(&self) -> &Replica<P> {
        self.push.replica()
    }

    /// Failures pinned on a thread in a row, and until when its pushes are held.
    pub fn failures(&self, id: &str) -> (u32, Option<Instant>) {
        self.push.failures(id)
    }

    /// What was overridden, invalid or held, in all.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// A thread's sync status.
    pub fn status(&self, id: &str) -> SyncStatus {
        self.statuses.get(id)
    }

    /// Every thread's sync status, by id.
    pub fn statuses(&self) -> &BTreeMap<String, SyncStatus> {
        self.statuses.all()
    }

    /// Threads with changes the server does not hold yet.
    pub fn pending(&self) -> usize {
        self.push.pending()
    }

    /// Whether requests other than the probe may go.
    pub fn is_online(&self) -> bool {
        self.network.is_online()
    }

    /// Whether nothing is queued and no request is in flight.
    pub fn is_idle(&self) -> bool {
        self.push.is_idle() && self.flights.is_empty()
    }

    /// Whether it stopped for good.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// The session-wide version the next pull asks `since`.
    pub fn since(&self) -> u64 {
        self.since
    }

    /// The most threads in a push when all goes well: the performance monitor's best batch
    /// size once pushes settled, within [`PerfConfig::batch_bounds`](crate::thread::PerfConfig::batch_bounds)
    /// and [`PushConfig::max_batch`](crate::thread::PushConfig::max_batch).
    pub fn batch_size(&self) -> usize {
        self.push.batch_size()
    }

    /// The current pull interval.
    pub fn poll_interval(&self) -> Duration {
        self.poller.interval()
    }

    /// The performance monitor.
    pub fn perf(&self) -> &PerfMonitor {
        &self.perf
    }

    /// The settings in force.
    pub fn config(&self) -> &Config {
        &self.config
    }
}
