//! The driver's half of the durable outbox: it carries out the core's
//! [`Persist`](tether_core::session::Output::Persist), `Forget`, `Dead` and `PersistState`
//! outputs into a journal, writes the journal to the [`Store`] in one group commit per loop turn (or per
//! interval), answers the senders waiting for durability, and replays a stored outbox in
//! chunks at start.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tether_core::{Instant, RequestId};

use serde_json::{Map, Value};
use tether_core::batch::EventId;
use tether_core::session::{Endpoint, Output, Stream, encode_record};

use crate::http::{HttpRequest, Route};
use crate::report::KeptInOutbox;

use crate::store::{Dropped, Store, StoreCount, StoreError, SyncPolicy, WriteBatch};
use crate::store_job::SharedStore;

mod commit;
mod replay;

/// How many stored records are read at a time during replay: replay memory is bounded by
/// this plus the session's queues, not by the outbox's size.
pub const REPLAY_CHUNK: usize = 1024;

/// How many drop reasons are kept for [`Driver::outbox_dropped`](crate::Driver::outbox_dropped).
pub const DROPPED_KEPT: usize = 1000;

/// After a failed write, the wait before the next attempt.
const RETRY_AFTER_FAILURE: Duration = Duration::from_millis(200);

/// Called once the journal up to a position is durable, or the write failed.
pub(crate) type Gate = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// Counts of the outbox so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutboxCounters {
    /// Group commits that succeeded.
    pub commits: u64,
    /// Group commits that failed.
    pub failed_commits: u64,
    /// Event records written.
    pub records_written: u64,
    /// Records deleted.
    pub records_deleted: u64,
    /// Records marked dead: the server refused them for good; they stay until discarded.
    pub records_dead: u64,
    /// Stored events restored into the session at start.
    pub restored: u64,
    /// Stored records dropped at start as unreadable (see [`Report::OutboxDropped`](crate::Report)).
    pub dropped: u64,
}

/// The store job in flight: one at a time, so writes, reads and the final count are ordered.
enum Busy {
    /// Writing the journal up to `position`; the batch stays here until it is written.
    Write {
        position: u64,
        batch: Arc<WriteBatch>,
    },
    Read,
    Count,
}

pub(crate) struct Outbox {
    store: SharedStore,
    busy: Option<Busy>,
    /// Replay needs the next chunk read.
    want_read: bool,
    read_error: Option<StoreError>,
    /// The session ended: write what the end settled, then count what is kept.
    ending: bool,
    /// A write failed while ending: what is kept is counted without it.
    end_write_failed: bool,
    policy: SyncPolicy,
    journal: WriteBatch,
    /// Journal entries appended, ever, and how many of them are durable.
    appended: u64,
    durable: u64,
    /// When the oldest entry not yet written was appended.
    oldest: Option<Instant>,
    keys: HashMap<(Stream, EventId), u64>,
    next_key: u64,
    /// Gates bound to a journal position, in order.
    gates: VecDeque<(u64, Gate)>,
    /// Gates waiting for the end of the current drain to be bound.
    unbound: Vec<Gate>,
    failed: Option<StoreError>,
    retry_at: Option<Instant>,
    /// Replay: the last key read, records read but not restored yet, and whether all were.
    replay_after: Option<u64>,
    replay: VecDeque<(u64, Vec<u8>)>,
    replay_done: bool,
    /// Whether the driver was told replay is over.
    replay_announced: bool,
    /// The thread record found at start, until thread sync takes it.
    stored_threads: Option<Vec<u8>>,
    pending_drops: Vec<Dropped>,
    counters: OutboxCounters,
    /// Requests carrying events or state, held until what they carry is written: nothing
    /// leaves before it is in the outbox (write-ahead), so a uuid the server saw is always
    /// in a record, and a later run never draws it again.
    held: Vec<HttpRequest>,
    dropped_kept: Vec<Dropped>,
    /// Whether the last state record asked for holds patches.
    state_kept: bool,
    /// What the store held once the session ended.
    kept_at_end: Option<StoreCount>,
}

/// What to do with one stored record during replay.
pub(crate) enum Replayed {
    /// Restore this event; tell [`Outbox::restored`] its id, or put it back.
    Event(u64, Stream, tether_core::batch::PreparedEvent),
    /// The next chunk is being read: come back once it is ([`Outbox::done`]).
    Waiting,
    /// Nothing left.
    Done,
}

impl Outbox {
    /// Opens the outbox on `store`: the stored state patches to give again, and replay ready
    /// to start. These first reads run on the caller's thread, when the session is built;
    /// every later store call is a [`StoreJob`].
    pub(crate) fn open(
        mut store: Box<dyn Store>,
        policy: SyncPolicy,
    ) -> Result<(Outbox, Vec<Map<String, Value>>), StoreError> {
        let next_key = store.last_key()?.map_or(0, |k| k.saturating_add(1));
        let mut dropped = store.take_dropped();
        let state = match store.read_state()? {
            None => Vec::new(),
            Some(bytes) => match serde_json::from_slice::<Vec<Map<String, Value>>>(&bytes) {
                Ok(patches) => patches,
                Err(e) => {
                    dropped.push(Dropped {
                        key: None,
                        reason: format!("the stored state is unreadable ({e}); it was dropped"),
                    });
                    Vec::new()
                }
            },
        };
        let counters = OutboxCounters {
            dropped: dropped.len() as u64,
            ..OutboxCounters::default()
        };
        let threads = store.read_threads()?;
        // The first chunk too, so an empty outbox (the common case) is replayed at once.
        let first = store.read(None, REPLAY_CHUNK)?;
        let replay_after = first.last().map(|(k, _)| *k);
        let replay_done = first.is_empty();
        Ok((
            Outbox {
                store: Arc::new(Mutex::new(store)),
                busy: None,
                want_read: false,
                read_error: None,
                ending: false,
                end_write_failed: false,
                policy,
                journal: WriteBatch::default(),
                appended: 0,
                durable: 0,
                oldest: None,
                keys: HashMap::new(),
                next_key,
                gates: VecDeque::new(),
                unbound: Vec::new(),
                failed: None,
                retry_at: None,
                replay_after,
                replay: first.into(),
                replay_done,
                replay_announced: false,
                stored_threads: threads,
                pending_drops: dropped,
                counters,
                held: Vec::new(),
                dropped_kept: Vec::new(),
                state_kept: !state.is_empty(),
                kept_at_end: None,
            },
            state,
        ))
    }

    /// Carries out an outbox output of the core; other outputs are not its business.
    pub(crate) fn output(&mut self, now: Instant, output: &Output) {
        match output {
            Output::Persist { stream, id, event } => {
                let key = self.next_key;
                self.next_key += 1;
                self.keys.insert((*stream, *id), key);
                self.journal.puts.push((key, encode_record(*stream, event)));
                self.appended(now);
            }
            Output::Forget { stream, events } => {
                for id in events {
                    if let Some(key) = self.keys.remove(&(*stream, *id)) {
                        self.journal.deletes.push(key);
                        self.appended(now);
                    }
                }
            }
            Output::Dead { stream, events } => {
                for id in events {
                    if let Some(key) = self.keys.remove(&(*stream, *id)) {
                        self.journal.dead.push(key);
                        self.appended(now);
                    }
                }
            }
            Output::PersistState(patches) => {
                self.state_kept = !patches.is_empty();
                self.journal.state = Some(serde_json::to_vec(patches).unwrap_or_default());
                self.appended(now);
            }
            _ => {}
        }
    }

    fn appended(&mut self, now: Instant) {
        self.appended += 1;
        self.oldest.get_or_insert(now);
    }

    /// The highest key stored so far, plus one: it grows with every run that accepted events,
    /// so a run's seed mixed with it never repeats an earlier run's uuids.
    pub(crate) fn next_key(&self) -> u64 {
        self.next_key
    }

    /// Holds `request` until the journal is written if it carries what the journal holds;
    /// gives it back if it may go now.
    pub(crate) fn hold(&mut self, request: HttpRequest) -> Option<HttpRequest> {
        let carries = matches!(
            request.route,
            Route::Worker(
                Endpoint::Events
                    | Endpoint::InternalEvents
                    | Endpoint::Delivery
                    | Endpoint::PutWorker
            )
        );
        if carries && (self.appended > self.durable || !self.held.is_empty()) {
            self.held.push(request);
            None
        } else {
            Some(request)
        }
    }

    /// Drops a held request the core cancelled; whether it was held.
    pub(crate) fn unhold(&mut self, id: RequestId) -> bool {
        let before = self.held.len();
        self.held.retain(|r| r.id != id);
        self.held.len() != before
    }

    /// The held requests that may go now: everything before them is written.
    pub(crate) fn release(&mut self) -> Vec<HttpRequest> {
        if self.appended > self.durable {
            return Vec::new();
        }
        std::mem::take(&mut self.held)
    }

    /// The thread record found at start (thread edits not yet synced), once.
    pub(crate) fn take_stored_threads(&mut self) -> Option<Vec<u8>> {
        self.stored_threads.take()
    }

    /// Thread sync's journal changed: the new thread record goes with the next commit.
    pub(crate) fn record_threads(&mut self, now: Instant, record: Vec<u8>) {
        self.journal.threads = Some(record);
        self.appended(now);
    }

    /// Answers `gate` once everything appended by the end of the current drain is durable.
    pub(crate) fn gate(&mut self, gate: Gate) {
        self.unbound.push(gate);
    }

    /// The end of a drain: binds the waiting gates to the journal's end.
    pub(crate) fn bind(&mut self) {
        for gate in self.unbound.drain(..) {
            self.gates.push_back((self.appended, gate));
        }
    }

    /// Whether new events must be refused: the store is failing.
    pub(crate) fn failure(&self) -> Option<&StoreError> {
        self.failed.as_ref()
    }

    fn known_pending(&self) -> StoreCount {
        let unread = if self.replay_done {
            0
        } else {
            self.replay.len()
        };
        StoreCount::new((self.keys.len() + unread) as u64, 0)
    }

    /// What the outbox keeps for the next run: as counted at the end, or as this run knows.
    pub(crate) fn kept(&self) -> KeptInOutbox {
        let count = self.kept_at_end.unwrap_or_else(|| self.known_pending());
        KeptInOutbox {
            pending: count.pending,
            dead: count.dead,
            state: self.state_kept,
        }
    }

    /// What was dropped since the last call; it is also kept (the first
    /// [`DROPPED_KEPT`]) for [`dropped`](Self::dropped).
    pub(crate) fn take_dropped(&mut self) -> Vec<Dropped> {
        let new = std::mem::take(&mut self.pending_drops);
        let room = DROPPED_KEPT.saturating_sub(self.dropped_kept.len());
        self.dropped_kept.extend(new.iter().take(room).cloned());
        new
    }

    /// Everything dropped since start (the first [`DROPPED_KEPT`]; the count is in the
    /// counters).
    pub(crate) fn dropped(&self) -> &[Dropped] {
        &self.dropped_kept
    }

    /// Records a drop the driver has reported itself (a stored thread edit refused).
    pub(crate) fn note_reported(&mut self, dropped: Dropped) {
        self.counters.dropped += 1;
        if self.dropped_kept.len() < DROPPED_KEPT {
            self.dropped_kept.push(dropped);
        }
    }

    /// Records a drop the driver made (a stored state patch the session refused).
    pub(crate) fn note_dropped(&mut self, dropped: Dropped) {
        self.counters.dropped += 1;
        self.pending_drops.push(dropped);
    }

    pub(crate) fn counters(&self) -> OutboxCounters {
        self.counters
    }

    /// Records held in memory for replay (bounded by [`REPLAY_CHUNK`]).
    pub(crate) fn replay_buffered(&self) -> usize {
        self.replay.len()
    }
}
