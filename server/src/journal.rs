//! What the inspector page shows besides the sessions' models: the server's own request log
//! (for the timeline pictures), partitions set from the page, the fault plan in force and the
//! log of every change made from the page.
//!
//! Memory is bounded whatever the load: the request log keeps the last [`LOG_CAPACITY`]
//! requests over every session (a session's id is stored once), and the change log the last
//! [`CHANGES_CAPACITY`] changes. Nothing from a request's headers or body is kept, so no token
//! can leak through here.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use tether_core::session::Endpoint;
use tether_model::fault::{FaultKind, FaultPlan};

/// Requests kept in the log, over every session.
pub(crate) const LOG_CAPACITY: usize = 100_000;
/// Changes kept in the change log.
pub(crate) const CHANGES_CAPACITY: usize = 200;
/// Partitions kept per session for the timeline.
const PARTITIONS_KEPT: usize = 64;

/// What a logged request asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Asked {
    /// One of the seven worker routes.
    Route(Endpoint),
    /// A thread-sync route.
    Thread,
    /// A path under the session that is no route (404, 405).
    Other,
}

/// One request of the log, compact: at most 64 bytes (so the full log is about 6 MiB).
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    /// The session's index in [`Journal::names`].
    pub session: u32,
    pub asked: Asked,
    /// Arrival, since the server started.
    pub at: Duration,
    /// Time to the response (or to the close).
    pub took: Duration,
    /// The status; `None` when the connection was closed without one.
    pub status: Option<u16>,
    pub fault: Option<FaultKind>,
    /// Dropped because the session was partitioned from the page.
    pub partitioned: bool,
    /// The declared `Content-Length`, if any.
    pub bytes: Option<u64>,
}

/// A change made from the page (or through the [`Inspector`](crate::Inspector)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Change {
    /// When, since the server started.
    pub at: Duration,
    /// What changed, in words.
    pub text: String,
}

/// A partition of one session, from `start` to `end` (since the server started).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Partition {
    pub start: Duration,
    pub end: Duration,
}

/// Per-session facts the models do not keep.
#[derive(Clone, Debug, Default)]
pub(crate) struct SessionNotes {
    /// Partitions set from the page, the last one possibly still on.
    pub partitions: VecDeque<Partition>,
    /// Requests dropped by a partition.
    pub partitioned: u64,
    /// Takeovers forced through the inspector.
    pub takeovers: Vec<Duration>,
}

impl SessionNotes {
    /// The end of the partition in force at `now`, if any.
    pub fn partitioned_until(&self, now: Duration) -> Option<Duration> {
        self.partitions
            .back()
            .filter(|p| p.start <= now && now < p.end)
            .map(|p| p.end)
    }
}

/// The request log, the partitions, the fault plan in force and the change log.
#[derive(Debug)]
pub(crate) struct Journal {
    names: Vec<String>,
    index: BTreeMap<String, u32>,
    log: VecDeque<Entry>,
    notes: BTreeMap<u32, SessionNotes>,
    changes: VecDeque<Change>,
    plan: FaultPlan,
}

impl Journal {
    /// An empty journal; `plan` is the fault plan the server started with.
    pub fn new(plan: FaultPlan) -> Self {
        Journal {
            names: Vec::new(),
            index: BTreeMap::new(),
            log: VecDeque::new(),
            notes: BTreeMap::new(),
            changes: VecDeque::new(),
            plan,
        }
    }

    fn intern(&mut self, session: &str) -> u32 {
        if let Some(&i) = self.index.get(session) {
            return i;
        }
        let i = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(session.to_owned());
        self.index.insert(session.to_owned(), i);
        i
    }

    /// Logs one request of `session`; the oldest goes once the log is full.
    pub fn record(&mut self, session: &str, mut entry: Entry) {
        entry.session = self.intern(session);
        if self.log.len() == LOG_CAPACITY {
            self.log.pop_front();
        }
        self.log.push_back(entry);
    }

    /// The logged requests of `session`, oldest first, and whether older ones were dropped.
    pub fn requests_of(&self, session: &str) -> (Vec<&Entry>, bool) {
        let Some(&i) = self.index.get(session) else {
            return (Vec::new(), false);
        };
        let entries: Vec<&Entry> = self.log.iter().filter(|e| e.session == i).collect();
        (entries, self.log.len() == LOG_CAPACITY)
    }

    /// The notes of `session` (empty if none).
    pub fn notes(&self, session: &str) -> SessionNotes {
        self.index
            .get(session)
            .and_then(|i| self.notes.get(i))
            .cloned()
            .unwrap_or_default()
    }

    fn notes_mut(&mut self, session: &str) -> &mut SessionNotes {
        let i = self.intern(session);
        self.notes.entry(i).or_default()
    }

    /// Whether `session` is partitioned at `now`; counts the request it is asked for if so.
    pub fn drop_if_partitioned(&mut self, session: &str, now: Duration) -> bool {
        let Some(&i) = self.index.get(session) else {
            return false;
        };
        match self.notes.get_mut(&i) {
            Some(notes) if notes.partitioned_until(now).is_some() => {
                notes.partitioned += 1;
                true
            }
            _ => false,
        }
    }

    /// Partitions `session` from `now` for `length` (zero ends a partition in force).
    pub fn partition(&mut self, session: &str, now: Duration, length: Duration) {
        let notes = self.notes_mut(session);
        if let Some(last) = notes.partitions.back_mut().filter(|p| now < p.end) {
            last.end = now + length;
            if length.is_zero() && last.start == now {
                notes.partitions.pop_back();
            }
        } else if !length.is_zero() {
            if notes.partitions.len() == PARTITIONS_KEPT {
                notes.partitions.pop_front();
            }
            notes.partitions.push_back(Partition {
                start: now,
                end: now + length,
            });
        }
        let text = if length.is_zero() {
            format!("session {session}: partition ended")
        } else {
            format!(
                "session {session}: partitioned for {} s (every request dropped without an answer)",
                length.as_secs()
            )
        };
        self.log_change(now, text);
    }

    /// Notes a takeover of `session` at `now` that made `epoch` current.
    pub fn takeover(&mut self, session: &str, now: Duration, epoch: u64) {
        self.notes_mut(session).takeovers.push(now);
        self.log_change(now, format!("session {session}: taken over, epoch {epoch}"));
    }

    /// The fault plan in force.
    pub fn plan(&self) -> &FaultPlan {
        &self.plan
    }

    /// Records that `plan` is now in force.
    pub fn set_plan(&mut self, now: Duration, plan: FaultPlan) {
        let text = format!(
            "fault plan {} -> {}",
            describe_plan(&self.plan),
            describe_plan(&plan)
        );
        self.plan = plan;
        self.log_change(now, text);
    }

    fn log_change(&mut self, at: Duration, text: String) {
        if self.changes.len() == CHANGES_CAPACITY {
            self.changes.pop_front();
        }
        self.changes.push_back(Change { at, text });
    }

    /// The last change, if any.
    pub fn last_change(&self) -> Option<&Change> {
        self.changes.back()
    }

    /// Every change kept, oldest first.
    pub fn changes(&self) -> impl DoubleEndedIterator<Item = &Change> {
        self.changes.iter()
    }
}

/// The name of `plan`'s preset (`none`, `light`, `heavy`) or `custom`.
pub(crate) fn preset_name(plan: &FaultPlan) -> &'static str {
    use tether_model::fault::FaultMix;
    if plan.is_none() {
        "none"
    } else if plan.mix == FaultMix::light() {
        "light"
    } else if plan.mix == FaultMix::heavy() {
        "heavy"
    } else {
        "custom"
    }
}

/// `heavy (25 % of requests, seed 1)`.
pub(crate) fn describe_plan(plan: &FaultPlan) -> String {
    if plan.is_none() {
        return "none".into();
    }
    format!(
        "{} ({:.1} % of requests, seed {})",
        preset_name(plan),
        plan.mix.total() * 100.0,
        plan.seed
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            session: 0,
            asked: Asked::Route(Endpoint::Events),
            at: Duration::ZERO,
            took: Duration::ZERO,
            status: Some(200),
            fault: None,
            partitioned: false,
            bytes: None,
        }
    }

    #[test]
    fn the_log_is_bounded_and_per_session() {
        let mut j = Journal::new(FaultPlan::none());
        for i in 0..LOG_CAPACITY + 10 {
            j.record(if i % 2 == 0 { "a" } else { "b" }, entry());
        }
        assert!(std::mem::size_of::<Entry>() <= 64);
        let (a, trimmed) = j.requests_of("a");
        assert_eq!(a.len(), LOG_CAPACITY / 2);
        assert!(trimmed);
        assert!(j.requests_of("zz").0.is_empty());
    }

    #[test]
    fn partitions_start_end_and_count_dropped_requests() {
        let s = Duration::from_secs;
        let mut j = Journal::new(FaultPlan::none());
        assert!(!j.drop_if_partitioned("a", s(0)));
        j.partition("a", s(10), s(5));
        assert!(!j.drop_if_partitioned("a", s(9)));
        assert!(j.drop_if_partitioned("a", s(10)));
        assert!(j.drop_if_partitioned("a", s(14)));
        assert!(!j.drop_if_partitioned("a", s(15)));
        assert!(!j.drop_if_partitioned("b", s(12)));
        assert_eq!(j.notes("a").partitioned, 2);
        // Extended while on, then ended early.
        j.partition("a", s(20), s(5));
        j.partition("a", s(22), s(10));
        assert_eq!(j.notes("a").partitioned_until(s(23)), Some(s(32)));
        j.partition("a", s(24), Duration::ZERO);
        assert_eq!(j.notes("a").partitioned_until(s(24)), None);
        assert_eq!(j.notes("a").partitions.len(), 2);
        assert_eq!(j.changes().count(), 4);
        assert!(j.last_change().unwrap().text.contains("partition ended"));
    }

    #[test]
    fn plans_are_named_and_switches_logged() {
        let mut j = Journal::new(FaultPlan::none());
        j.set_plan(Duration::ZERO, FaultPlan::heavy().with_seed(3));
        assert_eq!(preset_name(j.plan()), "heavy");
        assert_eq!(
            j.last_change().unwrap().text,
            "fault plan none -> heavy (25.0 % of requests, seed 3)"
        );
        assert_eq!(preset_name(&"none,5xx=0.5".parse().unwrap()), "custom");
    }
}
