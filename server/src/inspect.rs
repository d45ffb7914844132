//! The in-process inspection API: what tests and the demo read from the server.
//!
//! It reads each session's server model through its accessors, never over HTTP, so the fault
//! plan never touches it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;
use tether_core::session::Stream;
use tether_model::DeliveryUpdate;

use crate::shared::Shared;
use crate::store::{Duplicates, Session, Stats, instant};
use tether_model::fault::FaultPlan;

/// A snapshot of one session.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct SessionView {
    /// The session id.
    pub id: String,
    /// The current worker epoch (0 before any registration).
    pub epoch: u64,
    /// The worker document as `GET /worker` reports it, `worker_epoch` included.
    pub document: Value,
    /// Event payloads in delivery order (first arrival), duplicates removed.
    pub events: Vec<Value>,
    /// Internal-event payloads in delivery order, duplicates removed.
    pub internal_events: Vec<Value>,
    /// Duplicates filtered from `events`.
    pub duplicates: Duplicates,
    /// Duplicates filtered from `internal_events`.
    pub internal_duplicates: Duplicates,
    /// Delivery updates in arrival order (`at`: since the server started).
    pub delivery_updates: Vec<DeliveryUpdate>,
    /// Times of accepted heartbeats, since the server started.
    pub heartbeats: Vec<Duration>,
    /// Whether the last heartbeat is within the heartbeat TTL.
    pub alive: bool,
    /// Requests and faults of this session.
    pub stats: Stats,
}

impl SessionView {
    fn new(id: &str, session: &Session, now: Duration) -> Self {
        SessionView {
            id: id.to_owned(),
            epoch: session.model.epoch(),
            document: session.model.worker(),
            events: payloads(session, Stream::Events),
            internal_events: payloads(session, Stream::InternalEvents),
            duplicates: duplicates(session, Stream::Events),
            internal_duplicates: duplicates(session, Stream::InternalEvents),
            delivery_updates: session.model.delivery_updates().to_vec(),
            heartbeats: heartbeats(session),
            alive: session.model.is_alive(instant(now)),
            stats: session.stats.clone(),
        }
    }
}

fn payloads(session: &Session, stream: Stream) -> Vec<Value> {
    session.model.payloads(stream).cloned().collect()
}

fn duplicates(session: &Session, stream: Stream) -> Duplicates {
    Duplicates::new(session.model.duplicate_uuids(stream))
}

fn heartbeats(session: &Session) -> Vec<Duration> {
    let beats = session.model.heartbeats();
    beats.iter().map(|at| at.since_origin()).collect()
}

/// The server's connections so far (over every listener, across stops and restarts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Connections {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections open now.
    pub open: u64,
    /// Requests that came over HTTP/2 (h2c), page requests included.
    pub http2_requests: u64,
}

/// Reads and steers a running server's sessions from any thread. Cheap to clone.
///
/// Readers of one field return an empty value for a session that does not exist yet.
#[derive(Clone)]
pub struct Inspector {
    shared: Arc<Shared>,
}

impl Inspector {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Inspector { shared }
    }

    fn read<T>(&self, id: &str, f: impl FnOnce(&Session) -> T) -> Option<T> {
        self.shared.store().session(id).map(f)
    }

    /// Every session seen so far, sorted by id.
    pub fn session_ids(&self) -> Vec<String> {
        self.shared.store().session_ids()
    }

    /// A snapshot of session `id`, if any request has reached it.
    pub fn session(&self, id: &str) -> Option<SessionView> {
        let now = self.shared.elapsed();
        self.read(id, |s| SessionView::new(id, s, now))
    }

    /// The worker document as `GET /worker` reports it.
    pub fn document(&self, id: &str) -> Option<Value> {
        self.read(id, |s| s.model.worker())
    }

    /// The current epoch.
    pub fn epoch(&self, id: &str) -> Option<u64> {
        self.read(id, |s| s.model.epoch())
    }

    /// The threads of session `id` (docs/PROTOCOL.md §Thread sync), by thread id.
    pub fn threads(&self, id: &str) -> Vec<tether_core::thread::Thread> {
        self.read(id, |s| s.model.threads().threads().cloned().collect())
            .unwrap_or_default()
    }

    /// Event payloads in delivery order.
    pub fn events(&self, id: &str) -> Vec<Value> {
        self.read(id, |s| payloads(s, Stream::Events))
            .unwrap_or_default()
    }

    /// Internal-event payloads in delivery order.
    pub fn internal_events(&self, id: &str) -> Vec<Value> {
        self.read(id, |s| payloads(s, Stream::InternalEvents))
            .unwrap_or_default()
    }

    /// Duplicates filtered from the events.
    pub fn duplicates(&self, id: &str) -> Duplicates {
        self.read(id, |s| duplicates(s, Stream::Events))
            .unwrap_or_default()
    }

    /// Duplicates filtered from the internal events.
    pub fn internal_duplicates(&self, id: &str) -> Duplicates {
        self.read(id, |s| duplicates(s, Stream::InternalEvents))
            .unwrap_or_default()
    }

    /// Delivery updates in arrival order (`at`: since the server started).
    pub fn delivery_updates(&self, id: &str) -> Vec<DeliveryUpdate> {
        self.read(id, |s| s.model.delivery_updates().to_vec())
            .unwrap_or_default()
    }

    /// Times of accepted heartbeats, since the server started.
    pub fn heartbeats(&self, id: &str) -> Vec<Duration> {
        self.read(id, heartbeats).unwrap_or_default()
    }

    /// Whether session `id` had a heartbeat within the heartbeat TTL.
    pub fn is_alive(&self, id: &str) -> bool {
        let now = instant(self.shared.elapsed());
        self.read(id, |s| s.model.is_alive(now)).unwrap_or(false)
    }

    /// Requests by route and faults by kind of session `id`.
    pub fn stats(&self, id: &str) -> Stats {
        self.read(id, |s| s.stats.clone()).unwrap_or_default()
    }

    /// Requests by route and faults by kind over every session.
    pub fn totals(&self) -> Stats {
        self.shared.store().totals().clone()
    }

    /// Connections accepted and open, and requests over HTTP/2: a fleet sharing one HTTP/2
    /// connection shows `accepted == 1`.
    pub fn connections(&self) -> Connections {
        let counters = &self.shared.connections;
        Connections {
            accepted: counters.accepted.load(Ordering::Relaxed),
            open: counters.open.load(Ordering::Relaxed),
            http2_requests: counters.http2_requests.load(Ordering::Relaxed),
        }
    }

    /// Time since the server started: the clock of [`Inspector::heartbeats`].
    pub fn uptime(&self) -> Duration {
        self.shared.elapsed()
    }

    /// Bumps the epoch of session `id` as if a newer worker had registered (creating the
    /// session if needed); returns the new epoch. The current worker's next write gets `409`.
    pub fn force_takeover(&self, id: &str) -> u64 {
        let epoch = self.shared.store().force_takeover(id);
        let mut journal = self.shared.journal();
        journal.takeover(id, self.shared.elapsed(), epoch);
        self.shared.announce(&journal);
        epoch
    }

    /// The fault plan in force: the configured one, or the last one put in force by
    /// [`Inspector::set_faults`] or the inspector page.
    pub fn faults(&self) -> FaultPlan {
        self.shared.journal().plan().clone()
    }

    /// Puts `plan` in force from the next request on (its random stream starts at its seed), as
    /// the inspector page's fault switch does; the change is logged.
    pub fn set_faults(&self, plan: FaultPlan) {
        self.shared.set_plan(plan);
    }

    /// Drops every request of session `id` without an answer for `length` from now, as the
    /// inspector page's partition does (`Duration::ZERO` ends a partition in force); the change
    /// is logged.
    pub fn partition(&self, id: &str, length: Duration) {
        let mut journal = self.shared.journal();
        journal.partition(id, self.shared.elapsed(), length);
        self.shared.announce(&journal);
    }

    /// Requests of session `id` dropped by a partition so far.
    pub fn partitioned_requests(&self, id: &str) -> u64 {
        self.shared.journal().notes(id).partitioned
    }

    /// The changes made from the inspector page (or by the calls above), oldest first: the
    /// last 200 of them, each in words.
    pub fn changes(&self) -> Vec<String> {
        let journal = self.shared.journal();
        journal.changes().map(|c| c.text.clone()).collect()
    }

    /// Stores `value` as thread `thread`'s next version in session `id`, invalid as it may be,
    /// and serves it until a push replaces it (to test that clients skip it); returns its `v`.
    pub fn poison_thread(&self, id: &str, thread: &str, value: Value) -> u64 {
        self.shared.store().poison_thread(id, thread, value)
    }
}

impl std::fmt::Debug for Inspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inspector").finish_non_exhaustive()
    }
}
