//! Delta coalescing: stream deltas of the same key (e.g. the text deltas of one content block,
//! an assistant streaming one token at a time) that arrive within a window are merged into one
//! event before batching — seed 000's client buffers `stream_event` messages for 100 ms and
//! merges text deltas before queueing.
//!
//! A delta is a JSON object with a string at [`DeltaConfig::text_pointer`] (`/text` by
//! default). A merged event is the **last** delta's object with that string replaced by the
//! concatenation, in order, of every merged delta's string.
//!
//! Rules:
//! - A run of one key is released when its first delta is `window` old, when the next delta
//!   would take its text over `max_bytes`, or when [`release_all`](DeltaCoalescer::release_all)
//!   is called (the session does so before any other event of the stream, before a flush and
//!   before a close: no delta crosses a non-delta event, and flush and close include what is
//!   buffered).
//! - Runs are released in the order their first deltas arrived; releasing a run releases every
//!   run opened before it, so the merged events keep that order.
//! - At most `max_keys` runs are open; opening another releases the oldest.
//!
//! ```
//! use serde_json::json;
//! use tether_core::batch::{DeltaCoalescer, DeltaConfig};
//! use tether_core::{Instant, Machine, Poll};
//!
//! let mut deltas = DeltaCoalescer::new(DeltaConfig::default())?;
//! for token in ["Con", "so", "le"] {
//!     deltas.push(Instant::ZERO, "block-0", json!({"type": "text_delta", "text": token}))?;
//! }
//! assert!(matches!(deltas.poll_output(), Poll::Timeout(Some(_)))); // the 100 ms window
//! deltas.handle_timeout(Instant::from_millis(100));
//! let Poll::Output(merged) = deltas.poll_output() else { panic!() };
//! assert_eq!(merged.payload, json!({"type": "text_delta", "text": "Console"}));
//! assert_eq!(merged.deltas, 3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use serde_json::Value;

use crate::drive::{Machine, Poll, Wake};
use crate::time::{Clock, Instant};

/// How deltas are merged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeltaConfig {
    /// How long a run gathers deltas after its first one. Default 100 ms; zero releases every
    /// delta at once (no coalescing).
    pub window: Duration,
    /// The most text bytes one merged event carries (a single larger delta goes alone).
    /// Default 64 KiB.
    pub max_bytes: usize,
    /// Runs open at once. Default 64.
    pub max_keys: usize,
    /// Where the text is in a delta: a JSON pointer (RFC 6901). Default `/text`.
    pub text_pointer: String,
}

impl Default for DeltaConfig {
    fn default() -> Self {
        DeltaConfig {
            window: Duration::from_millis(100),
            max_bytes: 64 * 1024,
            max_keys: 64,
            text_pointer: String::from("/text"),
        }
    }
}

impl DeltaConfig {
    /// Checks the bounds.
    pub fn validate(&self) -> Result<(), DeltaConfigError> {
        if self.max_bytes == 0 || self.max_keys == 0 {
            return Err(DeltaConfigError::ZeroBound);
        }
        if !(self.text_pointer.starts_with('/') && self.text_pointer.len() > 1) {
            return Err(DeltaConfigError::BadPointer);
        }
        Ok(())
    }
}

/// A configuration the coalescer refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeltaConfigError {
    /// `max_bytes` or `max_keys` is zero.
    ZeroBound,
    /// `text_pointer` is not a JSON pointer to a field (it must start with `/`).
    BadPointer,
}

impl fmt::Display for DeltaConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeltaConfigError::ZeroBound => f.write_str("max_bytes and max_keys must be above 0"),
            DeltaConfigError::BadPointer => {
                f.write_str("text_pointer must be a JSON pointer to a field, such as /text")
            }
        }
    }
}

impl core::error::Error for DeltaConfigError {}

/// A delta refused at once; the payload comes back inside.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum DeltaError {
    /// The payload is not a JSON object with a string at the text pointer.
    NoText {
        /// The key, as given.
        key: String,
        /// The payload, as given.
        payload: Value,
    },
    /// The coalescer's owner takes no more deltas (the session is closing or has ended).
    Closed {
        /// The key, as given.
        key: String,
        /// The payload, as given.
        payload: Value,
    },
}

impl fmt::Display for DeltaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeltaError::NoText { key, .. } => write!(
                f,
                "delta for {key:?} is not a JSON object with a string at the text pointer"
            ),
            DeltaError::Closed { key, .. } => {
                write!(
                    f,
                    "delta for {key:?} refused: the session is closing or has ended"
                )
            }
        }
    }
}

impl core::error::Error for DeltaError {}

/// Deltas merged into one event.
#[derive(Clone, Debug, PartialEq)]
pub struct Merged {
    /// Their key.
    pub key: String,
    /// The last delta, its text the concatenation of all of theirs.
    pub payload: Value,
    /// How many deltas it merges.
    pub deltas: u32,
}

/// Why the coalescer wants to wake up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeltaTimer {
    /// The oldest run's window ends.
    Window,
}

/// Counts, for reports and benches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeltaCounters {
    /// Deltas accepted.
    pub deltas: u64,
    /// Merged events released.
    pub merged: u64,
    /// Text bytes buffered now.
    pub buffered_bytes: u64,
}

#[derive(Debug)]
struct Run {
    key: String,
    opened: Instant,
    text: String,
    last: Value,
    deltas: u32,
}

/// The coalescer: deltas of one key within the window merged into one event (text concatenated, other fields from the last).
#[derive(Debug)]
pub struct DeltaCoalescer {
    config: DeltaConfig,
    clock: Clock,
    /// Open runs, oldest first.
    runs: Vec<Run>,
    outputs: VecDeque<Merged>,
    counters: DeltaCounters,
}

impl DeltaCoalescer {
    /// An empty coalescer.
    pub fn new(config: DeltaConfig) -> Result<Self, DeltaConfigError> {
        config.validate()?;
        Ok(DeltaCoalescer {
            config,
            clock: Clock::new(Instant::ZERO),
            runs: Vec::new(),
            outputs: VecDeque::new(),
            counters: DeltaCounters::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &DeltaConfig {
        &self.config
    }

    /// Takes a delta of `key`. Fails at once, handing the payload back, if it has no string at
    /// the text pointer.
    pub fn push(
        &mut self,
        now: Instant,
        key: impl Into<String>,
        mut payload: Value,
    ) -> Result<(), DeltaError> {
        let now = self.clock.observe(now);
        let key = key.into();
        if !payload.is_object() {
            return Err(DeltaError::NoText { key, payload });
        }
        let text = match payload.pointer_mut(&self.config.text_pointer) {
            Some(Value::String(text)) => core::mem::take(text),
            _ => return Err(DeltaError::NoText { key, payload }),
        };
        self.counters.deltas += 1;
        let at = self.runs.iter().position(|r| r.key == key);
        if let Some(i) = at {
            if self.runs[i].text.len().saturating_add(text.len()) > self.config.max_bytes {
                self.release_through(i);
            }
        }
        match self.runs.iter_mut().find(|r| r.key == key) {
            Some(run) => {
                run.text.push_str(&text);
                run.last = payload;
                run.deltas += 1;
            }
            None => {
                if self.runs.len() >= self.config.max_keys {
                    self.release_through(0);
                }
                self.runs.push(Run {
                    key,
                    opened: now,
                    text,
                    last: payload,
                    deltas: 1,
                });
            }
        }
        self.handle_timeout(now);
        Ok(())
    }

    /// Releases every open run, oldest first.
    pub fn release_all(&mut self) {
        if !self.runs.is_empty() {
            self.release_through(self.runs.len() - 1);
        }
    }

    /// Releases the runs whose window ended.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clock.observe(now);
        let window = self.config.window;
        if let Some(i) = self
            .runs
            .iter()
            .rposition(|r| r.opened.saturating_add(window) <= now)
        {
            self.release_through(i);
        }
    }

    /// The next merged event, or when the oldest run's window ends.
    #[must_use = "merged events are only released through poll_output"]
    pub fn poll_output(&mut self) -> Poll<Merged, DeltaTimer> {
        if let Some(merged) = self.outputs.pop_front() {
            return Poll::Output(merged);
        }
        Poll::Timeout(self.runs.first().map(|r| {
            Wake::new(
                r.opened.saturating_add(self.config.window),
                DeltaTimer::Window,
            )
        }))
    }

    /// Whether nothing is buffered or waiting to be polled.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty() && self.outputs.is_empty()
    }

    /// Counts.
    pub fn counters(&self) -> DeltaCounters {
        DeltaCounters {
            buffered_bytes: self.runs.iter().map(|r| r.text.len() as u64).sum(),
            ..self.counters
        }
    }

    /// Releases runs `0..=i`, in order.
    fn release_through(&mut self, i: usize) {
        for run in self.runs.drain(..=i) {
            let Run {
                key,
                text,
                mut last,
                deltas,
                ..
            } = run;
            if let Some(slot) = last.pointer_mut(&self.config.text_pointer) {
                *slot = Value::String(text);
            }
            self.counters.merged += 1;
            self.outputs.push_back(Merged {
                key,
                payload: last,
                deltas,
            });
        }
    }
}

impl Machine for DeltaCoalescer {
    type Output = Merged;
    type Timer = DeltaTimer;

    fn handle_timeout(&mut self, now: Instant) {
        DeltaCoalescer::handle_timeout(self, now);
    }

    fn poll_output(&mut self) -> Poll<Merged, DeltaTimer> {
        DeltaCoalescer::poll_output(self)
    }
}
