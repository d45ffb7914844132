//! The state uploader machine.

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write as _};
use core::ops::Range;

use serde_json::{Map, Value};

use super::{Config, Counters, EPOCH_KEY, Error, Output, PutId, Rejection, Timer, Unacknowledged};
use crate::backoff::Backoff;
use crate::classify::Outcome;
use crate::drive::{FlushId, Machine, Poll, Wake};
use crate::patch::WorkerUpdate;
use crate::rng::Rng;
use crate::time::{Clock, Instant};

/// Keeps the worker document in sync through `PUT /worker`: one PUT in flight, one pending
/// update, lawful coalescing, retries, rollback, and an optimistic view.
///
/// See the [module docs](super) for the state diagram and a driver loop. Every `&mut self`
/// method that takes `now` may queue outputs: drain [`poll_output`](Self::poll_output) after it.
///
/// The optimistic [`view`](Self::view) is the acknowledged document (from
/// [`rebase`](Self::rebase), or `{}`) with everything in flight and pending applied on top. It
/// never contains `worker_epoch`, which belongs to the envelope.
#[derive(Clone, Debug)]
pub struct StateUploader {
    config: Config,
    rng: Rng,
    clock: Clock,
    backoff: Backoff,
    epoch: Option<u64>,
    /// The document as the server holds it, as far as acknowledgements tell.
    acknowledged: Value,
    /// `acknowledged` with `current` and `pending` applied.
    view: Value,
    /// The update being sent: its first stage is in flight, or waits for a retry or an epoch.
    current: Option<Batch>,
    /// Patches given while `current` is in flight. Invariant: `None` unless a PUT is in flight.
    pending: Option<Batch>,
    in_flight: Option<InFlight>,
    retry_at: Option<Instant>,
    /// The next PUT re-sends after a failure.
    retrying: bool,
    /// Whether the server is known to hold `acknowledged`. A failed PUT may still have been
    /// applied (its response was lost), so until the next full success the uploader cannot
    /// skip work as a no-op against `acknowledged`.
    server_known: bool,
    /// Flushes waiting for idleness, with their deadlines.
    flushes: Vec<(FlushId, Instant)>,
    next_flush: u64,
    closed: bool,
    next_put: u64,
    counters: Counters,
    outputs: VecDeque<Output>,
}

/// Consecutive patches coalesced into one update.
#[derive(Clone, Debug)]
struct Batch {
    update: WorkerUpdate,
    patches: Range<u64>,
    /// The update's resets, once acknowledged (its patch is still to go).
    applied_resets: Option<Map<String, Value>>,
}

#[derive(Clone, Copy, Debug)]
struct InFlight {
    id: PutId,
    /// Whether the resets (first of two PUTs) or the patch is in flight.
    resets: bool,
    deadline: Option<Instant>,
}

impl StateUploader {
    /// An idle uploader drawing jitter from `rng` (seeded by the caller, or forked from a parent
    /// machine's). It sends nothing until [`set_epoch`](Self::set_epoch) gives it an epoch;
    /// patches given before then wait.
    pub fn new(config: Config, rng: Rng) -> Self {
        StateUploader {
            backoff: Backoff::new(config.backoff),
            config,
            rng,
            clock: Clock::default(),
            epoch: None,
            acknowledged: Value::Object(Map::new()),
            view: Value::Object(Map::new()),
            current: None,
            pending: None,
            in_flight: None,
            retry_at: None,
            retrying: false,
            // The base is a placeholder until `rebase` gives the server's document.
            server_known: false,
            flushes: Vec::new(),
            next_flush: 0,
            closed: false,
            next_put: 0,
            counters: Counters::default(),
            outputs: VecDeque::new(),
        }
    }

    /// Gives a patch to upload and returns its sequence number (as used in [`Rejection`] and
    /// [`Unacknowledged`]). Never blocks: it coalesces into the pending update.
    ///
    /// A patch that changes nothing, judged when nothing else is unacknowledged, is counted and
    /// not sent.
    ///
    /// # Errors
    /// [`Error::NotAnObject`], [`Error::ReservedKey`] (`worker_epoch`),
    /// [`Error::TooLarge`], or [`Error::Closed`]; nothing is queued then.
    pub fn enqueue(&mut self, now: Instant, patch: Value) -> Result<u64, Error> {
        match patch {
            Value::Object(patch) => self.enqueue_map(now, patch),
            other => {
                if self.closed {
                    return Err(Error::Closed);
                }
                Err(Error::NotAnObject {
                    found: json_type(&other),
                })
            }
        }
    }

    /// [`enqueue`](Self::enqueue) for a patch that is already a JSON object.
    ///
    /// # Errors
    /// As [`enqueue`](Self::enqueue).
    pub fn enqueue_map(&mut self, now: Instant, patch: Map<String, Value>) -> Result<u64, Error> {
        let now = self.clock.observe(now);
        if self.closed {
            return Err(Error::Closed);
        }
        if patch.contains_key(EPOCH_KEY) {
            return Err(Error::ReservedKey { key: EPOCH_KEY });
        }
        if !fits(&patch, self.config.max_patch_bytes) {
            return Err(Error::TooLarge {
                limit: self.config.max_patch_bytes,
            });
        }
        let seq = self.counters.patches;
        self.counters.patches += 1;
        let schema = &self.config.schema;
        if self.server_known && self.is_idle() && schema.is_noop(&self.view, &patch) {
            // Nothing unacknowledged could be rolled back under it, so skipping is safe.
            self.counters.skipped_noop += 1;
            return Ok(seq);
        }
        schema.apply(&mut self.view, &patch);
        let slot = if self.in_flight.is_some() {
            &mut self.pending
        } else {
            // Waiting (backoff or epoch): absorbed into the update that will be retried.
            &mut self.current
        };
        match slot {
            Some(batch) => {
                batch.update.push(schema, patch);
                batch.patches.end = seq + 1;
            }
            None => {
                *slot = Some(Batch {
                    update: WorkerUpdate::from_patch(patch),
                    patches: seq..seq + 1,
                    applied_resets: None,
                });
            }
        }
        self.try_send(now);
        Ok(seq)
    }

    /// Reports how the PUT `id` ended, as the response table classified it. An unknown or
    /// stale `id` (a late answer to a cancelled PUT, a duplicate) is ignored.
    ///
    /// [`Outcome::TooLarge`] is permanent for a PUT (a document cannot be split); the
    /// session-wide outcomes ([`Outcome::Superseded`], [`Outcome::AuthFailure`],
    /// [`Outcome::SessionUnknown`]) are the session's to act on, and retried here.
    pub fn handle_outcome(&mut self, now: Instant, id: PutId, outcome: Outcome) {
        let now = self.clock.observe(now);
        if self.closed {
            return;
        }
        let Some(flight) = self.in_flight.filter(|f| f.id == id) else {
            return;
        };
        self.in_flight = None;
        match outcome {
            Outcome::Success => self.on_success(flight),
            Outcome::Throttled(retry_after) => self.on_failure(now, Some(retry_after)),
            Outcome::Permanent(status) => self.on_rejected(flight.id, status),
            Outcome::TooLarge => self.on_rejected(flight.id, 413),
            Outcome::Transient(_)
            | Outcome::AuthFailure
            | Outcome::Superseded
            | Outcome::SessionUnknown => self.on_failure(now, None),
        }
        self.try_send(now);
    }

    /// Sets the epoch stamped on every body from now on, and starts sending if patches wait.
    pub fn set_epoch(&mut self, now: Instant, epoch: u64) {
        let now = self.clock.observe(now);
        self.epoch = Some(epoch);
        self.try_send(now);
    }

    /// Stops sending until [`set_epoch`](Self::set_epoch) is called again, keeping every
    /// unacknowledged patch: for a session that gave up and holds its state until the caller
    /// reconnects. A PUT in flight is abandoned (its answer will never be known, so the server
    /// may hold it: the next PUT re-sends it, with what came meanwhile); the backoff starts
    /// afresh. Patches and flushes are taken as before.
    pub fn suspend(&mut self, now: Instant) {
        self.clock.observe(now);
        if self.closed {
            return;
        }
        self.epoch = None;
        self.retry_at = None;
        self.backoff.reset();
        if self.in_flight.take().is_some() {
            self.server_known = false;
            self.retrying = true;
            self.absorb_pending();
        }
    }

    /// Takes `document` (e.g. `GET /worker`'s `worker`) as the server's state and re-applies
    /// everything unacknowledged on top of it for the view. Its `worker_epoch` is dropped.
    ///
    /// # Errors
    /// [`Error::NotAnObject`] or [`Error::Closed`].
    pub fn rebase(&mut self, now: Instant, document: Value) -> Result<(), Error> {
        self.clock.observe(now);
        if self.closed {
            return Err(Error::Closed);
        }
        let Value::Object(mut document) = document else {
            return Err(Error::NotAnObject {
                found: json_type(&document),
            });
        };
        document.remove(EPOCH_KEY);
        self.acknowledged = Value::Object(document);
        self.server_known = self.in_flight.is_none();
        self.rebuild_view();
        Ok(())
    }

    /// Asks for [`Output::FlushDone`] once nothing is pending or in flight (everything given
    /// before has landed, was rejected, or was handed back by [`close`](Self::close)), or for
    /// [`Output::FlushTimedOut`] at `deadline`.
    ///
    /// # Errors
    /// [`Error::Closed`].
    pub fn flush(&mut self, now: Instant, deadline: Instant) -> Result<FlushId, Error> {
        let now = self.clock.observe(now);
        if self.closed {
            return Err(Error::Closed);
        }
        let id = FlushId(self.next_flush);
        self.next_flush += 1;
        if self.is_idle() {
            self.outputs.push_back(Output::FlushDone(id));
        } else if deadline <= now {
            self.outputs.push_back(Output::FlushTimedOut(id));
        } else {
            self.flushes.push((id, deadline));
        }
        Ok(id)
    }

    /// Stops at once: no more PUTs or retries (a backoff wait is cut short), and everything
    /// unacknowledged comes back in [`Output::Closed`]. Closing twice does nothing.
    pub fn close(&mut self, now: Instant) {
        self.clock.observe(now);
        if self.closed {
            return;
        }
        self.closed = true;
        self.retry_at = None;
        let in_flight = self.in_flight.take().map(|f| f.id);
        let mut patches: Option<Range<u64>> = None;
        let mut update = Vec::new();
        let applied_resets = self.current.as_mut().and_then(|b| b.applied_resets.take());
        for batch in [self.current.take(), self.pending.take()]
            .into_iter()
            .flatten()
        {
            patches = Some(match patches {
                Some(range) => range.start..batch.patches.end,
                None => batch.patches.clone(),
            });
            update.extend(batch.update.into_patches());
        }
        // Everything unacknowledged is handed back below: every flush is settled.
        for (id, _) in core::mem::take(&mut self.flushes) {
            self.outputs.push_back(Output::FlushDone(id));
        }
        let end = self.counters.patches;
        self.outputs.push_back(Output::Closed(Unacknowledged {
            patches: patches.unwrap_or(end..end),
            update,
            in_flight,
            applied_resets,
        }));
    }

    /// Handles the timers that are due at `now`; an early or spurious call does nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clock.observe(now);
        if self.closed {
            return;
        }
        if let Some(flight) = self.in_flight {
            if flight.deadline.is_some_and(|d| d <= now) {
                self.in_flight = None;
                self.counters.timeouts += 1;
                self.outputs.push_back(Output::Cancel { id: flight.id });
                self.on_failure(now, None);
            }
        }
        if self.retry_at.is_some_and(|at| at <= now) {
            self.retry_at = None;
        }
        self.try_send(now);
        let outputs = &mut self.outputs;
        self.flushes.retain(|&(id, deadline)| {
            let due = deadline <= now;
            if due {
                outputs.push_back(Output::FlushTimedOut(id));
            }
            !due
        });
    }

    /// The next output, or once none is left, the next wake-up (`None`: nothing scheduled).
    #[must_use = "outputs are the uploader's only way to get work done; drain them"]
    pub fn poll_output(&mut self) -> Poll<Output, Timer> {
        match self.outputs.pop_front() {
            Some(output) => Poll::Output(output),
            None => Poll::Timeout(self.next_wake()),
        }
    }

    /// The earliest timer, whatever is queued.
    fn next_wake(&self) -> Option<Wake<Timer>> {
        let flush = self.flushes.iter().map(|&(_, deadline)| deadline).min();
        let timers = [
            (
                self.in_flight.and_then(|f| f.deadline),
                Timer::RequestDeadline,
            ),
            (self.retry_at, Timer::Backoff),
            (flush, Timer::FlushDeadline),
        ];
        timers
            .into_iter()
            .filter_map(|(at, reason)| at.map(|at| Wake::new(at, reason)))
            .min_by_key(|wake| wake.at)
    }

    /// The document as the server will hold it once everything unacknowledged has landed.
    pub fn view(&self) -> &Value {
        &self.view
    }

    /// The document as acknowledged by the server (the rebase plus every acknowledged PUT).
    pub fn acknowledged(&self) -> &Value {
        &self.acknowledged
    }

    /// Whether nothing is pending or in flight.
    pub fn is_idle(&self) -> bool {
        self.current.is_none() && self.pending.is_none() && self.in_flight.is_none()
    }

    /// How many patches are not acknowledged yet: those of the update being sent (in flight
    /// or waiting for a retry) and those coalesced into the pending one.
    pub fn unacknowledged_patches(&self) -> u64 {
        [&self.current, &self.pending]
            .into_iter()
            .flatten()
            .map(|batch| batch.patches.end - batch.patches.start)
            .sum()
    }

    /// The patches not acknowledged yet (the update being sent, then the pending one), in the
    /// order they must be applied: what a session with an outbox persists, and gives again
    /// after a restart. Applying a patch twice is harmless (top-level keys replace).
    pub fn unacknowledged_update(&self) -> Vec<Map<String, Value>> {
        [&self.current, &self.pending]
            .into_iter()
            .flatten()
            .flat_map(|batch| batch.update.patches().cloned())
            .collect()
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The PUT in flight, if any.
    pub fn in_flight(&self) -> Option<PutId> {
        self.in_flight.map(|f| f.id)
    }

    /// The epoch stamped on bodies.
    pub fn epoch(&self) -> Option<u64> {
        self.epoch
    }

    /// What the uploader has done so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The settings in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Sends the next stage if nothing is in flight or waiting, dropping unsent work that
    /// changes nothing.
    fn try_send(&mut self, now: Instant) {
        if self.closed || self.in_flight.is_some() || self.retry_at.is_some() {
            return;
        }
        if self.current.is_none() {
            self.current = self.pending.take();
        }
        let Some(epoch) = self.epoch else {
            return;
        };
        let Some(batch) = &self.current else {
            self.flush_if_drained();
            return;
        };
        if self.server_known && self.view == self.acknowledged {
            // Nothing is in flight and no failed PUT may have landed, so the server holds
            // `acknowledged`: whatever is unsent changes nothing and no rollback can make it
            // matter.
            let skipped = [self.current.take(), self.pending.take()]
                .into_iter()
                .flatten()
                .map(|b| b.patches.end - b.patches.start)
                .sum::<u64>();
            self.counters.skipped_noop += skipped;
            self.retrying = false;
            self.flush_if_drained();
            return;
        }
        let (resets, stage) = match batch.update.resets() {
            Some(resets) => (true, resets),
            None => (false, batch.update.patch()),
        };
        let body = encode(stage, epoch);
        let id = PutId(self.next_put);
        self.next_put += 1;
        self.counters.puts_sent += 1;
        if core::mem::take(&mut self.retrying) {
            self.counters.retries += 1;
        }
        self.in_flight = Some(InFlight {
            id,
            resets,
            deadline: self.config.request_timeout.map(|t| now + t),
        });
        self.outputs.push_back(Output::Send { id, body });
    }

    fn on_success(&mut self, flight: InFlight) {
        self.counters.puts_acknowledged += 1;
        self.backoff.reset();
        let schema = &self.config.schema;
        if flight.resets {
            if let Some(batch) = &mut self.current {
                if let Some(resets) = batch.update.take_resets() {
                    schema.apply(&mut self.acknowledged, &resets);
                    // A retry that absorbed later patches may need resets of its own: the
                    // server then holds both sets, so both are reported.
                    match &mut batch.applied_resets {
                        Some(earlier) => compose_resets(earlier, resets),
                        None => batch.applied_resets = Some(resets),
                    }
                }
            }
        } else if let Some(batch) = self.current.take() {
            for patch in batch.update.into_patches() {
                schema.apply_owned(&mut self.acknowledged, patch);
            }
            // This update carried every patch of the failed attempts before it.
            self.server_known = true;
        }
    }

    /// Patches given during a flight that will not land join the update to re-send.
    fn absorb_pending(&mut self) {
        if let Some(later) = self.pending.take() {
            match &mut self.current {
                Some(batch) => {
                    batch.update.append(&self.config.schema, later.update);
                    batch.patches.end = later.patches.end;
                }
                None => self.current = Some(later),
            }
        }
    }

    fn on_failure(&mut self, now: Instant, hint: Option<core::time::Duration>) {
        self.server_known = false;
        self.absorb_pending();
        let delay = self.backoff.next_delay(hint, &mut self.rng);
        let at = now + delay;
        self.retry_at = Some(at);
        self.retrying = true;
        self.outputs.push_back(Output::Retrying {
            attempt: self.backoff.attempt(),
            delay,
            at,
        });
    }

    fn on_rejected(&mut self, id: PutId, status: u16) {
        self.counters.rejections += 1;
        self.backoff.reset();
        self.retrying = false;
        if let Some(batch) = self.current.take() {
            self.outputs.push_back(Output::Rejected(Rejection {
                id,
                status,
                patches: batch.patches,
                update: batch.update.into_patches(),
                applied_resets: batch.applied_resets,
            }));
        }
        self.current = self.pending.take();
        self.rebuild_view();
    }

    fn rebuild_view(&mut self) {
        let mut view = self.acknowledged.clone();
        for batch in self.current.iter().chain(self.pending.iter()) {
            batch.update.apply_to(&self.config.schema, &mut view);
        }
        self.view = view;
    }

    fn flush_if_drained(&mut self) {
        if !self.flushes.is_empty() && self.is_idle() {
            for (id, _) in core::mem::take(&mut self.flushes) {
                self.outputs.push_back(Output::FlushDone(id));
            }
        }
    }
}

/// `later` applied after `earlier`, as one patch of resets (nulls, possibly nested in the
/// metadata objects): a key deleted by either stays deleted.
fn compose_resets(earlier: &mut Map<String, Value>, later: Map<String, Value>) {
    for (key, value) in later {
        match (earlier.get_mut(&key), value) {
            // Deleted already: deleting inside it changes nothing.
            (Some(Value::Null), _) => {}
            (Some(Value::Object(inner)), Value::Object(more)) => compose_resets(inner, more),
            (_, value) => {
                earlier.insert(key, value);
            }
        }
    }
}

impl Machine for StateUploader {
    type Output = Output;
    type Timer = Timer;

    fn handle_timeout(&mut self, now: Instant) {
        StateUploader::handle_timeout(self, now);
    }

    fn poll_output(&mut self) -> Poll<Output, Timer> {
        StateUploader::poll_output(self)
    }
}

/// The PUT body: `patch` with `"worker_epoch"` first, as compact JSON.
fn encode(patch: &Map<String, Value>, epoch: u64) -> Vec<u8> {
    let json = serde_json::to_vec(patch).expect("a map with string keys always serialises");
    let mut body = Vec::with_capacity(json.len() + 40);
    body.extend_from_slice(format!("{{\"{EPOCH_KEY}\":{epoch}").as_bytes());
    match json.get(1..) {
        Some(rest) if rest != b"}" => {
            body.push(b',');
            body.extend_from_slice(rest);
        }
        _ => body.push(b'}'),
    }
    body
}

/// Whether `patch`'s compact JSON is at most `limit` bytes, stopping as soon as it is over.
fn fits(patch: &Map<String, Value>, limit: usize) -> bool {
    struct Budget(usize);
    impl fmt::Write for Budget {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0 = self.0.checked_sub(s.len()).ok_or(fmt::Error)?;
            Ok(())
        }
    }
    let mut budget = Budget(limit);
    let mut write = || -> fmt::Result {
        budget.write_str("{")?;
        for (i, (key, value)) in patch.iter().enumerate() {
            if i > 0 {
                budget.write_str(",")?;
            }
            let key_len = escaped_len(key);
            budget.0 = budget.0.checked_sub(key_len + 1).ok_or(fmt::Error)?;
            write!(budget, "{value}")?;
        }
        budget.write_str("}")
    };
    write().is_ok()
}

/// The length of `s` as a JSON string literal, quotes included, as serde_json escapes it.
fn escaped_len(s: &str) -> usize {
    2 + s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn size_check_matches_serde_json() {
        let patch = obj(json!({
            "a\"\\\n\u{1}é": [1, 2.5, "x\ty", null, true, {"k": "\u{7f}"}],
            "b": {"c": -3, "d": "☃"},
        }));
        let exact = serde_json::to_vec(&patch).unwrap().len();
        assert!(fits(&patch, exact));
        assert!(!fits(&patch, exact - 1));
        assert!(fits(&Map::new(), 2));
        assert!(!fits(&Map::new(), 1));
    }

    #[test]
    fn body_puts_the_epoch_first() {
        assert_eq!(encode(&Map::new(), 4), br#"{"worker_epoch":4}"#.to_vec());
        let body = encode(&obj(json!({"a": 1, "b": {"c": null}})), 12);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"worker_epoch":12,"a":1,"b":{"c":null}}"#.to_string()
        );
    }
}
