//! The push queue: which threads wait to be pushed, which are in flight, and each thread's
//! failure history (seed 002's `pendingItems` and `failureHistory`).
//!
//! Threads leave in the order they were queued, except that a held thread waits until its
//! hold ends and a suspect (a thread whose last push failed in a batch of several) goes in a
//! push of its own, so a thread that keeps failing is found without holding the others back.
//! A thread the caller asked to sync now (seed 002's `syncImmediately`) goes ahead of the
//! others, and its hold is lifted.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use super::model::Thread;
use crate::classify::{Outcome, TransientCause};
use crate::time::Instant;

/// A thread's place in the push schedule.
#[derive(Clone, Debug, Default)]
struct Slot {
    /// Queued to push, with its place in the queue.
    dirty: Option<u64>,
    in_flight: bool,
    /// The newest remote copy pulled while in flight, applied once the push settles.
    stash: Option<Thread>,
    /// Failures in a row pinned on this thread; while non-zero it goes in pushes of its own.
    failures: u32,
    /// Held after its last failure until then.
    held_until: Option<Instant>,
    /// The caller asked for it to go now: first in the next push, without waiting for the
    /// window. Cleared when it leaves the queue.
    urgent: bool,
}

/// The queue. See the [module docs](self).
#[derive(Clone, Debug, Default)]
pub(crate) struct PushQueue {
    slots: BTreeMap<String, Slot>,
    order: BTreeMap<u64, String>,
    next_seq: u64,
}

impl PushQueue {
    /// Queues a thread (at the back) unless it is queued already.
    pub(crate) fn mark_dirty(&mut self, id: &str) {
        let slot = self.slots.entry(id.into()).or_default();
        if slot.dirty.is_none() {
            let seq = self.next_seq;
            self.next_seq += 1;
            slot.dirty = Some(seq);
            self.order.insert(seq, id.into());
        }
    }

    /// Takes a thread out of the queue.
    pub(crate) fn unqueue(&mut self, id: &str) {
        if let Some(slot) = self.slots.get_mut(id) {
            slot.urgent = false;
            if let Some(seq) = slot.dirty.take() {
                self.order.remove(&seq);
            }
        }
    }

    /// The caller asked for a queued thread to go now: it goes first in the next push, its
    /// hold lifted. Returns whether it was queued (a thread with nothing queued, or whose
    /// changes are all in the push in flight, has nothing to hurry).
    pub(crate) fn urge(&mut self, id: &str) -> bool {
        match self.slots.get_mut(id) {
            Some(slot) if slot.dirty.is_some() => {
                slot.urgent = true;
                slot.held_until = None;
                true
            }
            _ => false,
        }
    }

    /// Whether a queued thread was asked to go now.
    pub(crate) fn any_urgent(&self) -> bool {
        self.order
            .values()
            .any(|id| self.slots.get(id).is_some_and(|s| s.urgent))
    }

    pub(crate) fn is_dirty(&self, id: &str) -> bool {
        self.slots.get(id).is_some_and(|s| s.dirty.is_some())
    }

    pub(crate) fn is_in_flight(&self, id: &str) -> bool {
        self.slots.get(id).is_some_and(|s| s.in_flight)
    }

    /// Marks a thread as no longer in flight.
    pub(crate) fn landed(&mut self, id: &str) {
        if let Some(slot) = self.slots.get_mut(id) {
            slot.in_flight = false;
        }
    }

    /// Keeps the newest remote copy pulled while the thread is in flight.
    pub(crate) fn stash(&mut self, remote: Thread) {
        let slot = self.slots.entry(remote.id.clone()).or_default();
        if slot.stash.as_ref().is_none_or(|s| s.v < remote.v) {
            slot.stash = Some(remote);
        }
    }

    pub(crate) fn take_stash(&mut self, id: &str) -> Option<Thread> {
        self.slots.get_mut(id).and_then(|s| s.stash.take())
    }

    /// The server took the thread's push: its failure history is cleared.
    pub(crate) fn succeeded(&mut self, id: &str) {
        if let Some(slot) = self.slots.get_mut(id) {
            slot.failures = 0;
            slot.held_until = None;
        }
    }

    /// A failure pinned on the thread: held until `until`. Returns the failures in a row.
    pub(crate) fn hold(&mut self, id: &str, until: Instant) -> u32 {
        let slot = self.slots.entry(id.into()).or_default();
        slot.failures = slot.failures.saturating_add(1);
        slot.held_until = Some(until);
        slot.failures
    }

    /// A push of several failed in a way one of them may have caused: each goes alone next.
    pub(crate) fn suspect(&mut self, id: &str) {
        let slot = self.slots.entry(id.into()).or_default();
        slot.failures = slot.failures.saturating_add(1);
    }

    /// Failures pinned on a thread in a row, and until when it is held.
    pub(crate) fn failures(&self, id: &str) -> (u32, Option<Instant>) {
        self.slots
            .get(id)
            .map_or((0, None), |s| (s.failures, s.held_until))
    }

    fn ready(&self, id: &str, now: Instant) -> bool {
        self.slots
            .get(id)
            .and_then(|s| s.held_until)
            .is_none_or(|until| until <= now)
    }

    /// Whether a queued thread may go at `now`.
    pub(crate) fn any_ready(&self, now: Instant) -> bool {
        self.order.values().any(|id| self.ready(id, now))
    }

    /// When the first held queued thread may go.
    pub(crate) fn next_release(&self, now: Instant) -> Option<Instant> {
        self.order
            .values()
            .filter_map(|id| self.slots.get(id).and_then(|s| s.held_until))
            .filter(|until| *until > now)
            .min()
    }

    /// Takes the next push's threads, marked in flight: ready ones in queue order, urgent
    /// ones first, at most `limit`; a suspect only alone.
    pub(crate) fn take_batch(&mut self, now: Instant, limit: usize) -> Vec<String> {
        let urgent = |id: &String| self.slots.get(id).is_some_and(|s| s.urgent);
        let candidates = self
            .order
            .iter()
            .filter(|(_, id)| urgent(id))
            .chain(self.order.iter().filter(|(_, id)| !urgent(id)));
        let mut picked = Vec::new();
        for (seq, id) in candidates {
            if picked.len() >= limit || !self.ready(id, now) {
                continue;
            }
            let suspect = self.slots.get(id).is_some_and(|s| s.failures > 0);
            if suspect && picked.is_empty() {
                picked.push(*seq);
                break;
            }
            if !suspect {
                picked.push(*seq);
            }
        }
        let mut ids = Vec::new();
        for seq in picked {
            if let Some(id) = self.order.remove(&seq) {
                let slot = self.slots.entry(id.clone()).or_default();
                slot.dirty = None;
                slot.urgent = false;
                slot.in_flight = true;
                ids.push(id);
            }
        }
        ids
    }

    /// Empties the queue; returns every thread that was queued or in flight.
    pub(crate) fn clear(&mut self) -> Vec<String> {
        self.order.clear();
        let mut unsynced = Vec::new();
        for (id, slot) in &mut self.slots {
            slot.urgent = false;
            let dirty = slot.dirty.take().is_some();
            if core::mem::take(&mut slot.in_flight) || dirty {
                unsynced.push(id.clone());
            }
        }
        unsynced
    }

    /// Threads queued or in flight.
    pub(crate) fn pending(&self) -> usize {
        self.slots
            .values()
            .filter(|s| s.dirty.is_some() || s.in_flight)
            .count()
    }

    /// The threads queued or in flight, by id.
    pub(crate) fn pending_ids(&self) -> impl Iterator<Item = &String> + '_ {
        self.slots
            .iter()
            .filter(|(_, s)| s.dirty.is_some() || s.in_flight)
            .map(|(id, _)| id)
    }

    /// Threads queued (not in flight).
    pub(crate) fn depth(&self) -> usize {
        self.order.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// Whether a whole-push failure is the server's answer to what was pushed (5xx other than
/// 503, a bad body, a permanent status), so a thread in it may be the cause. Transport
/// failures, timeouts, 503 and 429 are the network's or the server's load.
pub(crate) fn pinned_on_the_push(outcome: Outcome) -> bool {
    match outcome {
        Outcome::Permanent(_) | Outcome::Transient(TransientCause::BadBody) => true,
        Outcome::Transient(TransientCause::Status(s)) => s >= 500 && s != 503,
        _ => false,
    }
}
