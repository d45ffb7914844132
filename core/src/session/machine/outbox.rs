//! The durable outbox (docs/ARCHITECTURE.md §Durable outbox), as outputs: with
//! [`SessionConfig::outbox`](crate::session::SessionConfig::outbox) on, the session asks its
//! driver to persist every event it accepts and the state patches not yet acknowledged, and to
//! forget them once they are settled. The core stays pure: the driver carries these out.

use alloc::string::String;
use alloc::vec::Vec;

use serde_json::{Map, Value};

use super::Session;
use crate::batch::{self, EventId, Reason};
use crate::session::RecordFate;
use crate::session::io::{Output, SessionError, Stream};
use crate::time::Instant;

/// What the state uploader's unacknowledged patches depend on: when none of it changed, neither
/// did they.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct StateMark {
    patches: u64,
    acknowledged: u64,
    rejections: u64,
    closed: bool,
}

/// What the session last asked its driver to keep of the state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct StateKept {
    mark: StateMark,
    /// Whether something is kept (the last [`Output::PersistState`] was not empty).
    some: bool,
    /// What the state uploader handed back when it closed, once, to be kept.
    handed_back: Option<Vec<Map<String, Value>>>,
}

impl Session {
    /// Queues again an event kept in the outbox by an earlier run, with its uuid and bytes, so
    /// the server de-duplicates it if it landed before: [`resend`](Self::resend) without a new
    /// [`Output::Persist`] (it is kept already). Give back the outbox in its order, before any
    /// new event, as room allows.
    pub fn restore(
        &mut self,
        now: Instant,
        stream: Stream,
        event: batch::PreparedEvent,
    ) -> Result<EventId, SessionError> {
        let now = self.clock.observe(now);
        let result = self.streams[stream]
            .uploader
            .enqueue_prepared(now, event)
            .map_err(|error| SessionError::Enqueue { stream, error });
        if let Ok(id) = result {
            self.streams[stream].uploader.unrecord(id);
        }
        self.pump(now);
        result
    }

    /// Asks the driver to persist what `stream`'s uploader accepted since the last call.
    pub(super) fn persist_accepted(&mut self, stream: Stream) {
        if !self.config.outbox {
            return;
        }
        for (id, event) in self.streams[stream].uploader.take_accepted() {
            self.outputs
                .push_back(Output::Persist { stream, id, event });
        }
    }

    /// Asks the driver to forget settled events.
    pub(super) fn forget(&mut self, stream: Stream, events: impl FnOnce() -> Vec<EventId>) {
        if self.config.outbox {
            let events = events();
            if !events.is_empty() {
                self.outputs.push_back(Output::Forget { stream, events });
            }
        }
    }

    /// Tells the driver what becomes of the records of events handed back for `reason`: only
    /// what the caller's own policy let go is forgotten; a dead letter is marked dead; anything
    /// else stays kept for the next run, so a close that times out loses nothing.
    pub(super) fn settle_handed_back(
        &mut self,
        stream: Stream,
        reason: &Reason,
        ids: Vec<EventId>,
    ) {
        if !self.config.outbox || ids.is_empty() {
            return;
        }
        match RecordFate::of(reason) {
            RecordFate::Forgotten => self.outputs.push_back(Output::Forget {
                stream,
                events: ids,
            }),
            RecordFate::Dead => self.outputs.push_back(Output::Dead {
                stream,
                events: ids,
            }),
            RecordFate::Kept => {}
        }
    }

    /// The state uploader closed and handed `update` back: that, not nothing, is what stays
    /// kept of the state (an end keeps what was not acknowledged, as for events).
    pub(super) fn keep_handed_back_state(&mut self, update: &[Map<String, Value>]) {
        if self.config.outbox {
            self.state_kept.handed_back = Some(update.to_vec());
        }
    }

    /// Asks the driver to keep the unacknowledged state patches, if they may have changed.
    pub(super) fn persist_state(&mut self) {
        if !self.config.outbox {
            return;
        }
        let counters = self.state.counters();
        let mark = StateMark {
            patches: counters.patches,
            acknowledged: counters.puts_acknowledged,
            rejections: counters.rejections,
            closed: self.state.is_closed(),
        };
        if mark == self.state_kept.mark && self.state_kept.handed_back.is_none() {
            return;
        }
        // Closed, the uploader holds nothing: what it handed back is what is not acknowledged.
        let update = match self.state_kept.handed_back.take() {
            Some(handed_back) => handed_back,
            None if mark.closed => {
                self.state_kept.mark = mark;
                return;
            }
            None => self.state.unacknowledged_update(),
        };
        let some = !update.is_empty();
        if some || self.state_kept.some {
            self.outputs.push_back(Output::PersistState(update));
        }
        self.state_kept = StateKept {
            mark,
            some,
            handed_back: None,
        };
    }
}
