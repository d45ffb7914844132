//! The caller's controls of [`ThreadSync`] beyond edits, and the pending-threads stream: seed
//! 002's `start`/`stop` ([`pause`](ThreadSync::pause), [`resume`](ThreadSync::resume)),
//! `syncImmediately` ([`sync_now`](ThreadSync::sync_now)) and `observePendingItems`
//! ([`Output::Pending`]).

use alloc::string::String;
use alloc::vec::Vec;

use super::{Output, ThreadSync};
use crate::thread::merge::MergePolicy;
use crate::thread::model::Error;
use crate::time::Instant;

impl<P: MergePolicy> ThreadSync<P> {
    /// Pauses syncing (seed 002's `stop`): from now on no request goes, neither push nor pull
    /// nor probe, until [`resume`](Self::resume). Edits are still applied and queued, and a
    /// request already in flight still settles. Emits [`Output::Paused`]; pausing a
    /// paused or stopped machine does nothing.
    pub fn pause(&mut self, now: Instant) {
        let now = self.clock.observe(now);
        if self.paused || self.stopped {
            return;
        }
        self.paused = true;
        self.push.set_paused(now, true);
        self.poller.stop(now);
        self.network.set_paused(now, true);
        self.outputs.push_back(Output::Paused);
        self.pump(now);
    }

    /// Resumes after [`pause`](Self::pause) (seed 002's `start`): emits
    /// [`Output::Resumed`], then, once started and online, pulls at once and pushes
    /// what was queued meanwhile (offline, the probe runs again first). Resuming a machine
    /// that is not paused does nothing.
    pub fn resume(&mut self, now: Instant) {
        let now = self.clock.observe(now);
        if !self.paused || self.stopped {
            return;
        }
        self.paused = false;
        self.network.set_paused(now, false);
        self.outputs.push_back(Output::Resumed);
        if self.epoch.is_some() && self.network.is_online() {
            self.poller.start(now);
            self.run(now);
        }
        self.pump(now);
    }

    /// Whether the caller paused syncing.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Pushes a thread's queued edits now, skipping the push window (seed 002's
    /// `syncImmediately`): the thread goes first in the next push, which goes at once unless
    /// a push is in flight (then right after it settles) or the pushes back off after a failed
    /// push (then when that wait ends). A hold after a failure pinned on the thread is
    /// lifted. While paused, not yet started or offline, the thread goes first once syncing
    /// runs again.
    ///
    /// Returns whether the thread had edits waiting (`false`: it is synced, or everything it
    /// has is already in the push in flight); its [`SyncStatus`](crate::thread::SyncStatus)
    /// turns `synced` when the server holds them.
    ///
    /// # Errors
    /// [`Error::UnknownThread`], or [`Error::Stopped`]; nothing changes then.
    pub fn sync_now(&mut self, now: Instant, thread: &str) -> Result<bool, Error> {
        let now = self.clock.observe(now);
        let result = self.push.sync_now(now, thread);
        self.pump(now);
        result
    }

    /// The threads with changes the server does not hold yet (queued or in flight), by id:
    /// what [`Output::Pending`] last reported, or is about to.
    pub fn pending_threads(&self) -> impl Iterator<Item = &str> + '_ {
        self.push.pending_ids()
    }

    /// Emits [`Output::Pending`] if the set of pending threads changed since the last
    /// one (seed 002's `observePendingItems`): once per change, never on a quiet tick.
    pub(super) fn report_pending(&mut self) {
        let changed = {
            let mut now = self.push.pending_ids();
            let mut last = self.pending.iter();
            loop {
                match (now.next(), last.next()) {
                    (None, None) => break false,
                    (Some(a), Some(b)) if a == b.as_str() => {}
                    _ => break true,
                }
            }
        };
        if changed {
            self.pending = self
                .push
                .pending_ids()
                .map(String::from)
                .collect::<Vec<_>>();
            self.outputs
                .push_back(Output::Pending(self.pending.clone()));
        }
    }
}
