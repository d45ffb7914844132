//! The durable outbox's store, as a trait the driver calls (docs/ARCHITECTURE.md §Durable outbox).
//!
//! The driver stays sans-IO: it never opens a file. A store is handed to it ready
//! ([`Settings::outbox`](crate::Settings::outbox)); `tether-store` has the default, on an
//! embedded database, and [`MemoryStore`] is one for tests. The driver collects what the core
//! asks to persist and forget into a [`WriteBatch`] and writes it in one call: one durable write
//! per batch of accepted events (group commit), as often as the [`SyncPolicy`] says.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// When the outbox makes its writes durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncPolicy {
    /// Every group commit is synced before its senders are answered. The default.
    #[default]
    EveryWrite,
    /// Group commits happen at most this often, each synced: fewer, larger writes, and senders
    /// wait up to this long for their answer.
    Interval(Duration),
    /// Writes are never synced: senders are answered once the write returns, and a power loss
    /// (not a process crash) may lose what the OS had not written yet.
    Never,
}

impl SyncPolicy {
    /// Whether a write under this policy must be synced.
    pub fn syncs(self) -> bool {
        !matches!(self, SyncPolicy::Never)
    }
}

/// One group commit: records to put, keys to mark dead, keys to delete, and the state record
/// if it changed, applied in that order. A store applies it whole or not at all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    /// Event records by key (keys only grow).
    pub puts: Vec<(u64, Vec<u8>)>,
    /// Keys of records the server refused for good: kept, but no longer pending, so
    /// [`Store::read`] skips them; they stay until discarded ([`Store::read_dead`]).
    pub dead: Vec<u64>,
    /// Keys of records to drop (delivered, or let go on purpose).
    pub deletes: Vec<u64>,
    /// The new state record, if it changed.
    pub state: Option<Vec<u8>>,
    /// The new thread record (thread edits not yet synced), if it changed.
    pub threads: Option<Vec<u8>>,
}

impl WriteBatch {
    /// Appends `later` after this batch (keys only grow, so the order stays the order of
    /// keys): a failed write is tried again together with what came after it.
    pub fn append(&mut self, later: WriteBatch) {
        self.puts.extend(later.puts);
        self.dead.extend(later.dead);
        self.deletes.extend(later.deletes);
        if later.state.is_some() {
            self.state = later.state;
        }
        if later.threads.is_some() {
            self.threads = later.threads;
        }
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.puts.is_empty()
            && self.dead.is_empty()
            && self.deletes.is_empty()
            && self.state.is_none()
            && self.threads.is_none()
    }

    /// Drops the puts that a delete in the same batch cancels (an event delivered before it
    /// was written): they need no write at all.
    pub fn cancel_out(&mut self) {
        if self.deletes.is_empty() || self.puts.is_empty() {
            return;
        }
        let first_put = self.puts[0].0;
        let mut deleted: Vec<u64> = self
            .deletes
            .iter()
            .copied()
            .filter(|k| *k >= first_put)
            .collect();
        if deleted.is_empty() {
            return;
        }
        deleted.sort_unstable();
        self.puts.retain(|(k, _)| deleted.binary_search(k).is_err());
        self.deletes.retain(|k| *k < first_put);
    }
}

/// What a store dropped when it opened, and why: a recovery that says so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dropped {
    /// The record's key, if it could be read.
    pub key: Option<u64>,
    /// Why it was dropped.
    pub reason: String,
}

/// A store that failed. Nothing of a failed write is durable.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// The store cannot be opened or created at `path` (an unwritable directory, a file that is
    /// not a store, a lock held by another process).
    Open {
        /// Where.
        path: String,
        /// Why.
        message: String,
    },
    /// A write failed (a full disk, an I/O error).
    Write {
        /// Why.
        message: String,
    },
    /// A read failed.
    Read {
        /// Why.
        message: String,
    },
    /// The store is corrupt beyond what recovery can drop record by record.
    Corrupt {
        /// What is wrong.
        message: String,
    },
    /// Another process has the outbox open: two writers would interleave, so the second is
    /// refused.
    Locked {
        /// Where.
        path: String,
    },
    /// The outbox belongs to another session: its records would go to the wrong one. Opening
    /// it for this session takes the caller saying so (a rebind).
    OtherSession {
        /// Where.
        path: String,
        /// The session the outbox belongs to.
        stored: String,
        /// The session it was opened for.
        requested: String,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Open { path, message } => {
                write!(f, "cannot open the outbox at {path}: {message}")
            }
            StoreError::Write { message } => write!(f, "the outbox write failed: {message}"),
            StoreError::Read { message } => write!(f, "the outbox read failed: {message}"),
            StoreError::Corrupt { message } => write!(f, "the outbox is corrupt: {message}"),
            StoreError::Locked { path } => {
                write!(f, "the outbox at {path} is open in another process")
            }
            StoreError::OtherSession {
                path,
                stored,
                requested,
            } => write!(
                f,
                "the outbox at {path} belongs to session {stored}, not {requested} (rebind to \
                 move it)"
            ),
        }
    }
}

impl std::error::Error for StoreError {}

/// How many event records a store holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreCount {
    /// Records still to be sent: the next run replays them.
    pub pending: u64,
    /// Records marked dead: refused for good, kept until discarded.
    pub dead: u64,
}

impl StoreCount {
    /// A count of `pending` and `dead` records.
    pub fn new(pending: u64, dead: u64) -> Self {
        StoreCount { pending, dead }
    }
}

/// Durable storage for the outbox: event records by increasing key (pending, or marked dead),
/// and one state record.
///
/// A write either lands whole or fails whole. Reads happen at start, in chunks, so an outbox
/// of any size replays in bounded memory. A store forgets a record only when a batch deletes
/// it: what a session did not deliver stays for the next run.
pub trait Store: Send {
    /// Applies `batch` as one write; synced before returning when `sync` is true.
    ///
    /// # Errors
    /// [`StoreError::Write`]; then nothing of `batch` may be taken as durable.
    fn write(&mut self, batch: &WriteBatch, sync: bool) -> Result<(), StoreError>;

    /// At most `limit` pending event records (not marked dead) with a key above `after` (all
    /// with `None`), by key.
    ///
    /// # Errors
    /// [`StoreError::Read`] or [`StoreError::Corrupt`].
    fn read(&mut self, after: Option<u64>, limit: usize)
    -> Result<Vec<(u64, Vec<u8>)>, StoreError>;

    /// [`read`](Self::read) for the records marked dead. The default holds none: a store that
    /// does not mark records dead keeps them pending, which loses nothing.
    ///
    /// # Errors
    /// [`StoreError::Read`] or [`StoreError::Corrupt`].
    fn read_dead(
        &mut self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let _ = (after, limit);
        Ok(Vec::new())
    }

    /// The session has ended and its last job ran (the count of what is kept): fold a
    /// write-ahead log back into the store's file, so that what is kept is whole on disk
    /// before the close is answered, not only once the store is dropped (which may come
    /// after the process has gone on to exit). Best effort: everything written is durable
    /// already. The default does nothing.
    fn finish(&mut self) {}

    /// How many records are pending and dead. The default counts through
    /// [`read`](Self::read) and [`read_dead`](Self::read_dead) a chunk at a time.
    ///
    /// # Errors
    /// [`StoreError::Read`] or [`StoreError::Corrupt`].
    fn count(&mut self) -> Result<StoreCount, StoreError> {
        const CHUNK: usize = 1024;
        let mut count = StoreCount::default();
        for dead in [false, true] {
            let mut after = None;
            loop {
                let chunk = if dead {
                    self.read_dead(after, CHUNK)?
                } else {
                    self.read(after, CHUNK)?
                };
                let Some((last, _)) = chunk.last() else { break };
                after = Some(*last);
                let n = chunk.len() as u64;
                if dead {
                    count.dead += n;
                } else {
                    count.pending += n;
                }
            }
        }
        Ok(count)
    }

    /// The state record, if one is stored.
    ///
    /// # Errors
    /// [`StoreError::Read`] or [`StoreError::Corrupt`].
    fn read_state(&mut self) -> Result<Option<Vec<u8>>, StoreError>;

    /// The thread record (thread edits not yet synced), if one is stored. The default holds
    /// none: a store that ignores [`WriteBatch::threads`] keeps no thread edits across runs.
    ///
    /// # Errors
    /// [`StoreError::Read`] or [`StoreError::Corrupt`].
    fn read_threads(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(None)
    }

    /// The highest key ever stored, if any: new records get higher keys.
    ///
    /// # Errors
    /// [`StoreError::Read`] or [`StoreError::Corrupt`].
    fn last_key(&mut self) -> Result<Option<u64>, StoreError>;

    /// What the store dropped while opening (a torn last write, a corrupt record), once.
    fn take_dropped(&mut self) -> Vec<Dropped> {
        Vec::new()
    }
}

/// An in-memory [`Store`] for tests: durable only as long as it lives. Clones share their
/// records, so a test can "restart" on the same outbox, and [`fail`](Self::fail) makes every
/// write fail from then on, like a full disk.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    inner: std::sync::Arc<std::sync::Mutex<MemoryInner>>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    records: BTreeMap<u64, Vec<u8>>,
    dead: BTreeMap<u64, Vec<u8>>,
    state: Option<Vec<u8>>,
    threads: Option<Vec<u8>>,
    last_key: Option<u64>,
    failing: Option<String>,
    writes: u64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes every write fail with `message` (`None`: work again).
    pub fn fail(&self, message: Option<&str>) {
        self.inner().failing = message.map(str::to_owned);
    }

    /// How many pending records are stored (not those marked dead).
    pub fn len(&self) -> usize {
        self.inner().records.len()
    }

    /// Whether no pending record is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The keys of the records marked dead.
    pub fn dead_keys(&self) -> Vec<u64> {
        self.inner().dead.keys().copied().collect()
    }

    /// Drops every record marked dead (the caller's discard); how many there were.
    pub fn discard_dead(&self) -> usize {
        std::mem::take(&mut self.inner().dead).len()
    }

    /// How many writes succeeded.
    pub fn writes(&self) -> u64 {
        self.inner().writes
    }
}

impl Store for MemoryStore {
    fn write(&mut self, batch: &WriteBatch, _sync: bool) -> Result<(), StoreError> {
        let mut inner = self.inner();
        if let Some(message) = &inner.failing {
            return Err(StoreError::Write {
                message: message.clone(),
            });
        }
        for (key, record) in &batch.puts {
            inner.records.insert(*key, record.clone());
            inner.last_key = inner.last_key.max(Some(*key));
        }
        for key in &batch.dead {
            if let Some(record) = inner.records.remove(key) {
                inner.dead.insert(*key, record);
            }
        }
        for key in &batch.deletes {
            inner.records.remove(key);
            inner.dead.remove(key);
        }
        if let Some(threads) = &batch.threads {
            inner.threads = Some(threads.clone());
        }
        if let Some(state) = &batch.state {
            inner.state = Some(state.clone());
        }
        inner.writes += 1;
        Ok(())
    }

    fn read(
        &mut self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let inner = self.inner();
        let range = match after {
            Some(after) => inner.records.range(after.saturating_add(1)..),
            None => inner.records.range(..),
        };
        Ok(range.take(limit).map(|(k, v)| (*k, v.clone())).collect())
    }

    fn read_dead(
        &mut self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let inner = self.inner();
        let range = match after {
            Some(after) => inner.dead.range(after.saturating_add(1)..),
            None => inner.dead.range(..),
        };
        Ok(range.take(limit).map(|(k, v)| (*k, v.clone())).collect())
    }

    fn count(&mut self) -> Result<StoreCount, StoreError> {
        let inner = self.inner();
        Ok(StoreCount::new(
            inner.records.len() as u64,
            inner.dead.len() as u64,
        ))
    }

    fn read_threads(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.inner().threads.clone())
    }

    fn read_state(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.inner().state.clone())
    }

    fn last_key(&mut self) -> Result<Option<u64>, StoreError> {
        Ok(self.inner().last_key)
    }
}
