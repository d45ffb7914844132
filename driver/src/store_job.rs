//! Store work as actions: the driver never calls its [`Store`] under its lock or on an
//! executor thread. It hands the runtime a [`StoreJob`] ([`Action::Store`](crate::runtime::Action));
//! the runtime runs it where blocking is allowed (the blocking runtime's own driver thread,
//! smol's `unblock` pool, tokio's `spawn_blocking`) and hands the [`StoreDone`] back through
//! [`Shared::store_done`](crate::runtime::Shared::store_done).

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError};

use crate::store::{Store, StoreCount, StoreError, WriteBatch};

/// The outbox's store, shared by the driver and the job running on it; only a job locks it.
pub(crate) type SharedStore = Arc<Mutex<Box<dyn Store>>>;

/// One piece of store work, to be run off the executor with [`run`](Self::run).
#[must_use = "a store job must be run and its result handed back"]
pub struct StoreJob {
    store: SharedStore,
    op: Op,
}

pub(crate) enum Op {
    Write {
        batch: Arc<WriteBatch>,
        sync: bool,
    },
    Read {
        after: Option<u64>,
        limit: usize,
    },
    /// The end: count what is kept, then [`finish`](Store::finish) the store.
    Count,
}

/// What a [`StoreJob`] did, for [`Shared::store_done`](crate::runtime::Shared::store_done).
pub struct StoreDone(pub(crate) Outcome);

pub(crate) enum Outcome {
    /// The outbox keeps the batch until this says it is written.
    Written(Result<(), StoreError>),
    Read(Result<Vec<(u64, Vec<u8>)>, StoreError>),
    Counted(Result<StoreCount, StoreError>),
}

/// Which kind of work a job is, so a runtime that loses one can still answer it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreJobKind(Kind);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Write,
    Read,
    /// The end: count what is kept, then [`finish`](Store::finish) the store.
    Count,
}

impl StoreJobKind {
    pub(crate) const WRITE: StoreJobKind = StoreJobKind(Kind::Write);
    pub(crate) const READ: StoreJobKind = StoreJobKind(Kind::Read);
    pub(crate) const COUNT: StoreJobKind = StoreJobKind(Kind::Count);
}

impl StoreJob {
    pub(crate) fn new(store: SharedStore, op: Op) -> Self {
        StoreJob { store, op }
    }

    /// Runs the job: blocks on the store's I/O. A store that panics is answered as a failed
    /// operation, never a lost one.
    pub fn run(self) -> StoreDone {
        let kind = self.kind();
        let StoreJob { store, op } = self;
        let ran = catch_unwind(AssertUnwindSafe(|| {
            let mut store = store.lock().unwrap_or_else(PoisonError::into_inner);
            match op {
                Op::Write { batch, sync } => Outcome::Written(store.write(&batch, sync)),
                Op::Read { after, limit } => Outcome::Read(store.read(after, limit)),
                // The end's count is the store's last use: it finishes.
                Op::Count => {
                    let counted = store.count();
                    store.finish();
                    Outcome::Counted(counted)
                }
            }
        }));
        match ran {
            Ok(outcome) => StoreDone(outcome),
            Err(_) => StoreDone::failed(kind, "the store panicked"),
        }
    }

    /// What kind of work this is.
    pub fn kind(&self) -> StoreJobKind {
        StoreJobKind(match self.op {
            Op::Write { .. } => Kind::Write,
            Op::Read { .. } => Kind::Read,
            Op::Count => Kind::Count,
        })
    }
}

impl StoreDone {
    /// A job of `kind` that could not run (its runtime lost it): answered as a failure, so
    /// nothing it carried is taken for written (the outbox still holds a write's batch).
    pub fn failed(kind: StoreJobKind, message: impl Into<String>) -> Self {
        let error = StoreError::Write {
            message: message.into(),
        };
        StoreDone(match kind.0 {
            Kind::Write => Outcome::Written(Err(error)),
            Kind::Read => Outcome::Read(Err(error)),
            Kind::Count => Outcome::Counted(Err(error)),
        })
    }
}

impl fmt::Debug for StoreJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.op {
            Op::Write { batch, sync } => f
                .debug_struct("StoreJob::Write")
                .field("puts", &batch.puts.len())
                .field("deletes", &batch.deletes.len())
                .field("dead", &batch.dead.len())
                .field("state", &batch.state.is_some())
                .field("sync", sync)
                .finish(),
            Op::Read { after, limit } => f
                .debug_struct("StoreJob::Read")
                .field("after", after)
                .field("limit", limit)
                .finish(),
            Op::Count => f.write_str("StoreJob::Count"),
        }
    }
}

impl fmt::Debug for StoreDone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Outcome::Written(r) => write!(f, "StoreDone::Written({r:?})"),
            Outcome::Read(r) => write!(f, "StoreDone::Read({:?})", r.as_ref().map(Vec::len)),
            Outcome::Counted(r) => write!(f, "StoreDone::Counted({r:?})"),
        }
    }
}
