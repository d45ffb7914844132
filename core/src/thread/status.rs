//! The per-thread sync status stream, and the performance monitor (seed 002).

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use crate::drive::{Machine, Poll};
use crate::time::{Instant, duration_micros};

/// Where one thread stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SyncStatus {
    /// Never heard of here.
    #[default]
    Unknown,
    /// Has local changes waiting to be pushed.
    Pending,
    /// In a push that is in flight.
    Syncing,
    /// The local copy is the server's.
    Synced,
    /// The server had a newer version; the merge is queued to be pushed.
    Conflict,
    /// The last push failed (it is retried) or was rejected (it was rolled back).
    Error,
}

impl SyncStatus {
    /// The status's name: `unknown`, `pending`, `syncing`, `synced`, `conflict`, `error`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SyncStatus::Unknown => "unknown",
            SyncStatus::Pending => "pending",
            SyncStatus::Syncing => "syncing",
            SyncStatus::Synced => "synced",
            SyncStatus::Conflict => "conflict",
            SyncStatus::Error => "error",
        }
    }
}

impl fmt::Display for SyncStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status change of one thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusChange {
    /// The thread.
    pub thread: String,
    /// Its new status.
    pub status: SyncStatus,
}

/// The status stream has no timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NoTimer {}

/// Every thread's status, emitting a [`StatusChange`] on each change (never a repeat), like
/// seed 002's per-thread `BehaviorSubject`s.
///
/// ```
/// use tether_core::thread::{StatusStream, SyncStatus};
/// use tether_core::Poll;
///
/// let mut stream = StatusStream::default();
/// stream.set("t", SyncStatus::Pending);
/// stream.set("t", SyncStatus::Pending); // no change, no output
/// let Poll::Output(change) = stream.poll_output() else { panic!() };
/// assert_eq!((change.thread.as_str(), change.status), ("t", SyncStatus::Pending));
/// assert!(matches!(stream.poll_output(), Poll::Timeout(None)));
/// assert_eq!(stream.get("other"), SyncStatus::Unknown);
/// ```
#[derive(Clone, Debug, Default)]
pub struct StatusStream {
    statuses: BTreeMap<String, SyncStatus>,
    outputs: VecDeque<StatusChange>,
}

impl StatusStream {
    /// Sets a thread's status; a change is queued as output.
    pub fn set(&mut self, thread: &str, status: SyncStatus) {
        let old = self.statuses.insert(thread.into(), status);
        if old != Some(status) {
            self.outputs.push_back(StatusChange {
                thread: thread.into(),
                status,
            });
        }
    }

    /// A thread's status ([`SyncStatus::Unknown`] if never set).
    pub fn get(&self, thread: &str) -> SyncStatus {
        self.statuses.get(thread).copied().unwrap_or_default()
    }

    /// Every thread's status, by id.
    pub fn all(&self) -> &BTreeMap<String, SyncStatus> {
        &self.statuses
    }

    /// The next change; the stream never schedules a wake-up.
    #[must_use = "status changes are reported only through the stream; drain it"]
    pub fn poll_output(&mut self) -> Poll<StatusChange, NoTimer> {
        match self.outputs.pop_front() {
            Some(change) => Poll::Output(change),
            None => Poll::Timeout(None),
        }
    }
}

impl Machine for StatusStream {
    type Output = StatusChange;
    type Timer = NoTimer;

    fn handle_timeout(&mut self, _now: Instant) {}

    fn poll_output(&mut self) -> Poll<StatusChange, NoTimer> {
        StatusStream::poll_output(self)
    }
}

/// The performance monitor's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PerfConfig {
    /// How many recent syncs the statistics look at. Default 100 (seed 002).
    pub window: usize,
    /// No sync is called slow before this many samples exist. Default 20.
    pub min_samples: usize,
    /// The batch sizes the best-size answer is clamped to. Default 10..=50.
    pub batch_bounds: (usize, usize),
}

impl Default for PerfConfig {
    fn default() -> Self {
        PerfConfig {
            window: 100,
            min_samples: 20,
            batch_bounds: (10, 50),
        }
    }
}

/// A sync slower than the recent 95th percentile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlowSync {
    /// How long it took.
    pub duration: Duration,
    /// The 95th percentile before it.
    pub p95: Duration,
    /// How many threads it carried.
    pub batch_size: usize,
}

/// Sync latency statistics: the p95, slow-sync events, the batch size that syncs fastest, and
/// the conflict rate (seed 002's `SyncPerformanceMonitor`).
///
/// ```
/// use core::time::Duration;
/// use tether_core::thread::{PerfConfig, PerfMonitor};
///
/// let mut perf = PerfMonitor::new(PerfConfig { min_samples: 3, ..PerfConfig::default() });
/// let slow: Vec<_> = [10, 12, 11, 50]
///     .into_iter()
///     .filter_map(|ms| perf.record(Duration::from_millis(ms), 20))
///     .collect();
/// assert_eq!(slow.len(), 1);
/// assert_eq!(slow[0].duration, Duration::from_millis(50));
/// assert_eq!(perf.p95(), Some(Duration::from_millis(50)));
/// assert_eq!(perf.conflict_rate(), Some(0.0));
/// perf.record_sync(Duration::from_millis(9), 4, 1);
/// assert_eq!(perf.conflict_rate(), Some(1.0 / 84.0));
/// ```
#[derive(Clone, Debug)]
pub struct PerfMonitor {
    config: PerfConfig,
    /// Recent syncs: how long, how many threads, how many of them conflicted.
    samples: VecDeque<(Duration, usize, usize)>,
    total: u64,
    conflicts: u64,
}

impl PerfMonitor {
    /// An empty monitor.
    pub fn new(mut config: PerfConfig) -> Self {
        config.window = config.window.max(1);
        PerfMonitor {
            config,
            samples: VecDeque::new(),
            total: 0,
            conflicts: 0,
        }
    }

    /// A sync of `batch_size` threads took `duration`, none in conflict. See
    /// [`record_sync`](Self::record_sync).
    pub fn record(&mut self, duration: Duration, batch_size: usize) -> Option<SlowSync> {
        self.record_sync(duration, batch_size, 0)
    }

    /// A sync of `batch_size` threads, `conflicts` of which came back in conflict, took
    /// `duration`. Returns the slow-sync event if it was slower than the p95 of the samples
    /// before it.
    pub fn record_sync(
        &mut self,
        duration: Duration,
        batch_size: usize,
        conflicts: usize,
    ) -> Option<SlowSync> {
        let before = (self.samples.len() >= self.config.min_samples)
            .then(|| self.p95())
            .flatten();
        if self.samples.len() == self.config.window {
            self.samples.pop_front();
        }
        self.samples.push_back((duration, batch_size, conflicts));
        self.total += 1;
        self.conflicts += conflicts as u64;
        before.filter(|p95| duration > *p95).map(|p95| SlowSync {
            duration,
            p95,
            batch_size,
        })
    }

    /// The 95th percentile of the recent sync times (seed 002's index: `floor(n · 0.95)`).
    pub fn p95(&self) -> Option<Duration> {
        if self.samples.is_empty() {
            return None;
        }
        let mut times: Vec<Duration> = self.samples.iter().map(|(d, ..)| *d).collect();
        times.sort_unstable();
        let index = (times.len() * 95 / 100).min(times.len() - 1);
        Some(times[index])
    }

    /// The batch size whose recent syncs took least on average, clamped to the bounds (ties:
    /// the smaller size); the upper bound when nothing was recorded.
    pub fn best_batch_size(&self) -> usize {
        let (lo, hi) = self.config.batch_bounds;
        let mut by_size: BTreeMap<usize, (u64, u64)> = BTreeMap::new();
        for (d, size, _) in &self.samples {
            let entry = by_size.entry(*size).or_default();
            entry.0 += duration_micros(*d);
            entry.1 += 1;
        }
        let best = by_size
            .iter()
            .map(|(size, (sum, n))| (sum / n, *size))
            .min()
            .map_or(hi, |(_, size)| size);
        best.clamp(lo.min(hi), hi)
    }

    /// Syncs recorded in all.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The share of recently pushed threads that came back in conflict (seed 002's
    /// `recordConflictRate`), from 0 to 1; `None` before any thread was pushed. A high rate
    /// means clients keep editing the same threads at once.
    pub fn conflict_rate(&self) -> Option<f64> {
        let (items, conflicts) = self
            .samples
            .iter()
            .fold((0usize, 0usize), |(i, c), (_, size, n)| (i + size, c + n));
        (items > 0).then(|| conflicts as f64 / items as f64)
    }

    /// Threads pushed back in conflict, in all.
    pub fn conflicts(&self) -> u64 {
        self.conflicts
    }
}
