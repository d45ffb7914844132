//! Plain counts of what the drainer did, for metrics and tests.

/// What a drainer has done since it was made, and what it holds now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Events accepted (including ones later dropped or replaced).
    pub enqueued: u64,
    /// Events reported delivered.
    pub delivered: u64,
    /// Sends asked for (first tries and retries).
    pub batches_sent: u64,
    /// Batches put back after a transient failure.
    pub retries: u64,
    /// Batches split after a 413.
    pub splits: u64,
    /// Events replaced in place by a newer one with the same key.
    pub replaced: u64,
    /// Dead letters: events refused alone as too large.
    pub dead_too_large: u64,
    /// Dead letters: events in permanently rejected batches.
    pub dead_rejected: u64,
    /// Dead letters: events in batches over `max_consecutive_failures`.
    pub dead_too_many_failures: u64,
    /// Drops under `DropOldest`.
    pub dropped_oldest: u64,
    /// Drops of the new event under a full queue.
    pub dropped_newest: u64,
    /// Events handed back at close, abandon (superseded, given up).
    pub handed_back_closed: u64,
    /// See [`handed_back_closed`](Self::handed_back_closed).
    pub handed_back_superseded: u64,
    /// See [`handed_back_closed`](Self::handed_back_closed).
    pub handed_back_given_up: u64,
    /// Enqueues refused because the queue was full.
    pub rejected_full: u64,
    /// Outcomes for a batch that was not in flight, ignored.
    pub stale_outcomes: u64,
    /// Events held now (queued and in flight).
    pub queue_events: usize,
    /// Bytes of event JSON held now.
    pub queue_bytes: usize,
    /// Events in flight now.
    pub in_flight_events: usize,
}
