//! The driver's half of the durable outbox: it carries out the core's
//! [`Persist`](tether_core::session::Output::Persist), `Forget`, `Dead` and `PersistState`
//! outputs into a journal, writes the journal to the [`Store`] in one group commit per loop turn (or per
//! interval), answers the senders waiting for durability, and replays a stored outbox in
//! chunks at start.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tether_core::Instant;

use serde_json::{Map, Value};
use tether_core::batch::EventId;
use tether_core::session::{Endpoint, Output, RequestId, Stream, decode_record, encode_record};

use crate::http::HttpRequest;
use crate::report::KeptInOutbox;

use crate::store::{Dropped, Store, StoreCount, StoreError, SyncPolicy, WriteBatch};
use crate::store_job::{Op, Outcome, SharedStore, StoreDone, StoreJob, StoreJobKind};

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
            request.endpoint,
            Endpoint::Events | Endpoint::InternalEvents | Endpoint::Delivery | Endpoint::PutWorker
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

    /// When the next group commit is due, if anything waits for one (`None` while a store
    /// job is in flight: its answer wakes the driver).
    pub(crate) fn due_at(&self, now: Instant) -> Option<Instant> {
        if self.busy.is_some() {
            return None;
        }
        let waiting = !self.journal.is_empty() || !self.gates.is_empty();
        if !waiting {
            return None;
        }
        if let Some(at) = self.retry_at {
            return Some(at);
        }
        match self.policy {
            _ if self.ending => Some(now),
            SyncPolicy::Interval(every) => Some(self.oldest.map_or(now, |oldest| oldest + every)),
            _ => Some(now),
        }
    }

    /// The store work due at `now`, if any and none is in flight: the group commit first,
    /// then replay's next chunk, then (once the session ended) counting what is kept.
    pub(crate) fn next_job(&mut self, now: Instant) -> Option<StoreJob> {
        if self.busy.is_some() {
            return None;
        }
        let end_settled = self.ending && self.end_write_failed;
        if !end_settled && self.due_at(now).is_some_and(|at| at <= now) {
            let mut batch = std::mem::take(&mut self.journal);
            batch.cancel_out();
            if batch.is_empty() {
                // Nothing to write (or it cancelled out): what was appended is as durable
                // as it needs to be.
                self.written(now, self.appended, &batch);
            } else {
                let batch = Arc::new(batch);
                self.busy = Some(Busy::Write {
                    position: self.appended,
                    batch: Arc::clone(&batch),
                });
                let sync = self.policy.syncs();
                return Some(StoreJob::new(
                    Arc::clone(&self.store),
                    Op::Write { batch, sync },
                ));
            }
        }
        if self.want_read && !self.replay_done && !self.ending {
            self.want_read = false;
            self.busy = Some(Busy::Read);
            let (after, limit) = (self.replay_after, REPLAY_CHUNK);
            return Some(StoreJob::new(
                Arc::clone(&self.store),
                Op::Read { after, limit },
            ));
        }
        let settled = self.journal.is_empty() || self.end_write_failed;
        if self.ending && self.kept_at_end.is_none() && settled {
            self.busy = Some(Busy::Count);
            return Some(StoreJob::new(Arc::clone(&self.store), Op::Count));
        }
        None
    }

    /// A store job's answer.
    pub(crate) fn done(&mut self, now: Instant, done: StoreDone) {
        match (self.busy.take(), done.0) {
            (Some(Busy::Write { position, batch }), Outcome::Written(Ok(()))) => {
                self.written(now, position, &batch);
            }
            (Some(Busy::Write { batch, .. }), Outcome::Written(Err(error))) => {
                self.counters.failed_commits += 1;
                self.retry_at = Some(now + RETRY_AFTER_FAILURE);
                self.failed = Some(error.clone());
                // Nobody waiting is told it is safe; the batch is written again, before
                // what was appended since.
                while let Some((_, gate)) = self.gates.pop_front() {
                    gate(Err(error.clone()));
                }
                let batch = Arc::try_unwrap(batch).unwrap_or_else(|shared| (*shared).clone());
                let newer = std::mem::replace(&mut self.journal, batch);
                self.journal.append(newer);
                if self.ending {
                    self.end_write_failed = true;
                }
            }
            (Some(Busy::Read), Outcome::Read(Ok(chunk))) => {
                if chunk.is_empty() {
                    self.replay_done = true;
                } else {
                    self.replay_after = chunk.last().map(|(k, _)| *k);
                    self.replay.extend(chunk);
                }
            }
            (Some(Busy::Read), Outcome::Read(Err(error))) => self.read_error = Some(error),
            (Some(Busy::Count), Outcome::Counted(count)) => {
                let count = count.unwrap_or_else(|_| self.known_pending());
                self.kept_at_end = Some(count);
            }
            // An answer to a job this outbox did not ask for: nothing to do.
            (busy, _) => self.busy = busy,
        }
    }

    /// The journal up to `position` is written (`batch`): the gates it covers are answered.
    fn written(&mut self, now: Instant, position: u64, batch: &WriteBatch) {
        if !batch.is_empty() {
            self.counters.commits += 1;
            self.counters.records_written += batch.puts.len() as u64;
            self.counters.records_deleted += batch.deletes.len() as u64;
            self.counters.records_dead += batch.dead.len() as u64;
        }
        self.failed = None;
        self.retry_at = None;
        self.oldest = (!self.journal.is_empty()).then_some(now);
        self.durable = position;
        while self
            .gates
            .front()
            .is_some_and(|(at, _)| *at <= self.durable)
        {
            if let Some((_, gate)) = self.gates.pop_front() {
                gate(Ok(()));
            }
        }
    }

    /// The session ended: write what the end settled, then count what the store keeps for
    /// the close report ([`next_job`](Self::next_job) asks for both).
    pub(crate) fn begin_end(&mut self) {
        self.ending = true;
        self.replay.clear();
    }

    /// Whether the end's store work is done: the close report may be given.
    pub(crate) fn end_done(&self) -> bool {
        self.kept_at_end.is_some()
    }

    /// Without a runtime to run store jobs (its task was dropped): the end's work runs here,
    /// at once. A job still in flight on the lost runtime is answered as failed.
    pub(crate) fn end_now(&mut self, now: Instant) {
        self.begin_end();
        let lost = self.busy.as_ref().map(|busy| match busy {
            Busy::Write { .. } => StoreJobKind::WRITE,
            Busy::Read => StoreJobKind::READ,
            Busy::Count => StoreJobKind::COUNT,
        });
        if let Some(kind) = lost {
            self.done(
                now,
                StoreDone::failed(kind, "the job was lost with its runtime"),
            );
        }
        for _ in 0..4 {
            let Some(job) = self.next_job(now) else { break };
            let done = job.run();
            self.done(now, done);
        }
        if self.kept_at_end.is_none() {
            self.kept_at_end = Some(self.known_pending());
        }
    }

    /// Whether replay is over: new events may follow.
    pub(crate) fn replay_done(&self) -> bool {
        self.replay_done
    }

    /// The next stored event to restore; [`Replayed::Waiting`] while the next chunk is read.
    /// Unreadable records are dropped (deleted, and reported in
    /// [`take_dropped`](Self::take_dropped)).
    pub(crate) fn next_replay(&mut self, now: Instant) -> Result<Replayed, StoreError> {
        loop {
            if self.replay_done {
                return Ok(Replayed::Done);
            }
            if let Some(error) = self.read_error.take() {
                return Err(error);
            }
            let Some((key, record)) = self.replay.pop_front() else {
                if !matches!(self.busy, Some(Busy::Read)) {
                    self.want_read = true;
                }
                return Ok(Replayed::Waiting);
            };
            match decode_record(&record) {
                Ok((stream, event)) => return Ok(Replayed::Event(key, stream, event)),
                Err(error) => {
                    self.pending_drops.push(Dropped {
                        key: Some(key),
                        reason: format!("{error}; the record was deleted"),
                    });
                    self.counters.dropped += 1;
                    self.journal.deletes.push(key);
                    self.appended(now);
                }
            }
        }
    }

    /// Whether replay is over and the driver has not been told yet (true once).
    pub(crate) fn announce_replay_done(&mut self) -> bool {
        let first = self.replay_done && !self.replay_announced;
        self.replay_announced |= first;
        first
    }

    /// Whether replay waits for a chunk to be read.
    pub(crate) fn wants_read(&self) -> bool {
        self.want_read
    }

    /// A replayed event was restored with `id`.
    pub(crate) fn restored(&mut self, key: u64, stream: Stream, id: EventId) {
        self.keys.insert((stream, id), key);
        self.counters.restored += 1;
    }

    /// A replayed event found no room: it is the next one again.
    pub(crate) fn put_back(
        &mut self,
        key: u64,
        stream: Stream,
        event: &tether_core::batch::PreparedEvent,
    ) {
        self.replay.push_front((key, encode_record(stream, event)));
    }

    /// A replayed event the session can never take: it is marked dead (kept until discarded,
    /// never replayed again) and reported.
    pub(crate) fn drop_record(&mut self, now: Instant, key: u64, reason: String) {
        self.pending_drops.push(Dropped {
            key: Some(key),
            reason: format!("{reason}; the record was kept, marked dead"),
        });
        self.counters.dropped += 1;
        self.journal.dead.push(key);
        self.appended(now);
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

    /// A replayed event the session refused for good (e.g. it has ended): it stays stored.
    pub(crate) fn stop_replay(&mut self) {
        self.replay.clear();
        self.replay_done = true;
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
