//! Flow control as small timer machines: [`Debounce`] and [`Throttle`] (seed 002's
//! `debounceTime` and `throttleTime`), for any value.
//!
//! ```
//! use core::time::Duration;
//! use tether_core::thread::{Throttle, ThrottleConfig};
//! use tether_core::{Driven, Instant};
//!
//! // Leading and trailing edges: the first value goes at once, the last of a burst at the
//! // window's end.
//! let throttle = Throttle::new(ThrottleConfig::new(Duration::from_millis(100)));
//! let mut t = Driven::new(throttle, Instant::ZERO);
//! assert_eq!(t.call(|t, now| t.push(now, 1))?.1, [1]);
//! t.set_time(Instant::from_millis(10));
//! assert!(t.call(|t, now| t.push(now, 2))?.1.is_empty());
//! t.set_time(Instant::from_millis(20));
//! assert!(t.call(|t, now| t.push(now, 3))?.1.is_empty());
//! assert_eq!(t.advance()?, Some(vec![3]));
//! assert_eq!(t.now(), Instant::from_millis(100));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use alloc::collections::VecDeque;
use core::fmt;
use core::time::Duration;

use crate::drive::{Machine, Poll, Wake};
use crate::time::{Clock, Instant};

/// Why a debounce wakes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DebounceTimer {
    /// The quiet period after the last value ends.
    Settle,
}

/// Emits the last value of a burst once no value has come for `quiet`.
#[derive(Clone, Debug)]
pub struct Debounce<T> {
    quiet: Duration,
    clock: Clock,
    pending: Option<(T, Instant)>,
    outputs: VecDeque<T>,
}

impl<T: Clone + fmt::Debug> Debounce<T> {
    /// A debounce with this quiet period.
    pub fn new(quiet: Duration) -> Self {
        Debounce {
            quiet,
            clock: Clock::default(),
            pending: None,
            outputs: VecDeque::new(),
        }
    }

    /// A value: it replaces any pending one and restarts the quiet period.
    pub fn push(&mut self, now: Instant, value: T) {
        let now = self.clock.observe(now);
        self.pending = Some((value, now + self.quiet));
    }

    /// Emits the pending value at once (the source completed).
    pub fn finish(&mut self, now: Instant) {
        self.clock.observe(now);
        if let Some((value, _)) = self.pending.take() {
            self.outputs.push_back(value);
        }
    }

    /// Drops the pending value and returns it (unsubscribed): nothing is lost silently.
    pub fn cancel(&mut self, now: Instant) -> Option<T> {
        self.clock.observe(now);
        self.pending.take().map(|(value, _)| value)
    }

    /// Whether a value waits.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Emits the pending value if the quiet period is over.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clock.observe(now);
        if self.pending.as_ref().is_some_and(|(_, at)| *at <= now) {
            self.finish(now);
        }
    }

    /// The next value to emit, or the next wake-up.
    #[must_use = "the debounce's outputs are the values it lets through; drain them"]
    pub fn poll_output(&mut self) -> Poll<T, DebounceTimer> {
        match self.outputs.pop_front() {
            Some(value) => Poll::Output(value),
            None => Poll::Timeout(
                self.pending
                    .as_ref()
                    .map(|(_, at)| Wake::new(*at, DebounceTimer::Settle)),
            ),
        }
    }
}

impl<T: Clone + fmt::Debug> Machine for Debounce<T> {
    type Output = T;
    type Timer = DebounceTimer;

    fn handle_timeout(&mut self, now: Instant) {
        Debounce::handle_timeout(self, now);
    }

    fn poll_output(&mut self) -> Poll<T, DebounceTimer> {
        Debounce::poll_output(self)
    }
}

/// A throttle's window and edges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// At most one value per window (two with both edges: the leading and the trailing one).
    pub window: Duration,
    /// Emit the first value of a window at once. Default true.
    pub leading: bool,
    /// Emit the last value of a window at its end. Default true.
    pub trailing: bool,
}

impl ThrottleConfig {
    /// Both edges, with this window.
    pub const fn new(window: Duration) -> Self {
        ThrottleConfig {
            window,
            leading: true,
            trailing: true,
        }
    }
}

/// Why a throttle wakes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ThrottleTimer {
    /// The window ends: the trailing value goes.
    Trailing,
}

/// Lets at most one value through per window, on the leading edge, the trailing edge, or both.
#[derive(Clone, Debug)]
pub struct Throttle<T> {
    config: ThrottleConfig,
    clock: Clock,
    last_emit: Option<Instant>,
    trailing: Option<(T, Instant)>,
    outputs: VecDeque<T>,
}

impl<T: Clone + fmt::Debug> Throttle<T> {
    /// A throttle with these edges. Neither edge would let nothing through and lose every
    /// value, so it means the trailing edge.
    pub fn new(mut config: ThrottleConfig) -> Self {
        if !config.leading {
            config.trailing = true;
        }
        Throttle {
            config,
            clock: Clock::default(),
            last_emit: None,
            trailing: None,
            outputs: VecDeque::new(),
        }
    }

    /// A value.
    pub fn push(&mut self, now: Instant, value: T) {
        let now = self.clock.observe(now);
        let window = self.config.window;
        let open = self
            .last_emit
            .is_none_or(|at| now.saturating_duration_since(at) >= window);
        if open && self.trailing.is_none() {
            if self.config.leading {
                self.emit(now, value);
            } else if self.config.trailing {
                self.trailing = Some((value, now + window));
            }
        } else if self.config.trailing {
            let at = match &self.trailing {
                Some((_, at)) => *at,
                None => self.last_emit.map_or(now, |last| last + window),
            };
            self.trailing = Some((value, at));
        }
    }

    /// Drops the trailing value and returns it.
    pub fn cancel(&mut self, now: Instant) -> Option<T> {
        self.clock.observe(now);
        self.trailing.take().map(|(value, _)| value)
    }

    fn emit(&mut self, now: Instant, value: T) {
        self.last_emit = Some(now);
        self.outputs.push_back(value);
    }

    /// Emits the trailing value if its window ended.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clock.observe(now);
        if self.trailing.as_ref().is_some_and(|(_, at)| *at <= now) {
            if let Some((value, _)) = self.trailing.take() {
                self.emit(now, value);
            }
        }
    }

    /// The next value to emit, or the next wake-up.
    #[must_use = "the throttle's outputs are the values it lets through; drain them"]
    pub fn poll_output(&mut self) -> Poll<T, ThrottleTimer> {
        match self.outputs.pop_front() {
            Some(value) => Poll::Output(value),
            None => Poll::Timeout(
                self.trailing
                    .as_ref()
                    .map(|(_, at)| Wake::new(*at, ThrottleTimer::Trailing)),
            ),
        }
    }
}

impl<T: Clone + fmt::Debug> Machine for Throttle<T> {
    type Output = T;
    type Timer = ThrottleTimer;

    fn handle_timeout(&mut self, now: Instant) {
        Throttle::handle_timeout(self, now);
    }

    fn poll_output(&mut self) -> Poll<T, ThrottleTimer> {
        Throttle::poll_output(self)
    }
}
