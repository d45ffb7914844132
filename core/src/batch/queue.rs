//! The FIFO of unsent events, with its byte count and the index of replaceable keys.
//!
//! Events are ordered by `seq`, their position. A replacement takes the `seq` of the event it
//! replaces, so the queue stays sorted by `seq` and positions can be binary-searched.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;

use super::event::{EventId, PreparedEvent};
use crate::time::Instant;

/// An event in the drainer's hands.
#[derive(Debug)]
pub(crate) struct Queued {
    pub(crate) id: EventId,
    /// Position in the FIFO; never reused except by a replacement.
    pub(crate) seq: u64,
    /// When the event (or the one it replaced) was enqueued: the linger window starts here.
    pub(crate) at: Instant,
    /// Whether it has been on the wire. A sent event may have reached the server, so it is
    /// never replaced.
    pub(crate) sent: bool,
    /// Whether a send of it ended without an answer (a transport error or a timeout), so the
    /// server may hold it although no success was seen.
    pub(crate) maybe_delivered: bool,
    pub(crate) event: PreparedEvent,
}

/// Unsent and put-back events, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    items: VecDeque<Queued>,
    bytes: usize,
    /// Replace key → `seq` of the unsent event holding it.
    keys: BTreeMap<String, u64>,
}

impl Queue {
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn front(&self) -> Option<&Queued> {
        self.items.front()
    }

    /// The unsent event holding `key`, if any.
    pub(crate) fn keyed(&self, key: &str) -> Option<&Queued> {
        let seq = *self.keys.get(key)?;
        self.position(seq).map(|i| &self.items[i])
    }

    /// Appends a new event. Its `seq` must be above every queued one.
    pub(crate) fn push_back(&mut self, q: Queued) {
        debug_assert!(self.items.back().is_none_or(|b| b.seq < q.seq));
        if let Some(k) = q.event.keyed() {
            self.keys.insert(k.key.clone(), q.seq);
        }
        self.bytes += q.event.bytes();
        self.items.push_back(q);
    }

    /// Swaps the event at `seq` for `new` (which takes over `seq` and `at`); returns the old
    /// one, or `new` back if nothing is at `seq`.
    pub(crate) fn replace(&mut self, seq: u64, mut new: Queued) -> Result<Queued, Queued> {
        let Some(i) = self.position(seq) else {
            return Err(new);
        };
        let slot = &mut self.items[i];
        new.seq = slot.seq;
        new.at = slot.at;
        self.bytes = self.bytes - slot.event.bytes() + new.event.bytes();
        Ok(core::mem::replace(slot, new))
    }

    /// Removes the oldest event that is not at `keep`.
    pub(crate) fn evict_oldest(&mut self, keep: Option<u64>) -> Option<Queued> {
        let i = match (self.items.front(), keep) {
            (Some(f), Some(k)) if f.seq == k => 1,
            _ => 0,
        };
        let q = self.items.remove(i)?;
        self.forget(&q);
        Some(q)
    }

    /// Takes the next batch into `batch` (emptied, its allocation reused): up to `max_items`,
    /// and up to `max_bytes` except that the first event is always taken. Taken events are
    /// marked sent.
    pub(crate) fn take(
        &mut self,
        max_items: usize,
        max_bytes: usize,
        mut batch: Vec<Queued>,
    ) -> (Vec<Queued>, usize) {
        let mut n = 0;
        let mut bytes = 0usize;
        for q in self.items.iter().take(max_items) {
            let size = q.event.bytes();
            if n > 0 && bytes.saturating_add(size) > max_bytes {
                break;
            }
            bytes += size;
            n += 1;
        }
        if !self.keys.is_empty() {
            for q in self.items.range(..n) {
                forget_key(&mut self.keys, q);
            }
        }
        self.bytes -= bytes;
        batch.clear();
        batch.reserve(n);
        batch.extend(self.items.drain(..n).map(|mut q| {
            q.sent = true;
            q
        }));
        (batch, bytes)
    }

    /// Puts a batch back at the front, order kept.
    pub(crate) fn put_back(&mut self, batch: Vec<Queued>) {
        for q in batch.into_iter().rev() {
            debug_assert!(q.sent, "only sent events are put back");
            self.bytes += q.event.bytes();
            self.items.push_front(q);
        }
    }

    /// Everything, oldest first, leaving the queue empty.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Queued> + '_ {
        self.keys.clear();
        self.bytes = 0;
        self.items.drain(..)
    }

    fn position(&self, seq: u64) -> Option<usize> {
        self.items.binary_search_by_key(&seq, |q| q.seq).ok()
    }

    /// Drops `q`'s byte count and its key entry, as it leaves the queue.
    fn forget(&mut self, q: &Queued) {
        self.bytes -= q.event.bytes();
        forget_key(&mut self.keys, q);
    }
}

/// Drops `q`'s key entry, if it holds one, as it leaves the queue.
fn forget_key(keys: &mut BTreeMap<String, u64>, q: &Queued) {
    if let Some(k) = q.event.keyed() {
        if !q.sent && keys.get(&k.key) == Some(&q.seq) {
            keys.remove(&k.key);
        }
    }
}
