//! The drive contract shared by every machine.
//!
//! One mutation (an input or a timeout), then drain [`Machine::poll_output`] until it answers
//! [`Poll::Timeout`]. Outputs always come before the timeout, so while output is queued a driver
//! never sees a deadline to sleep on (DESIGN.md, convention 3).

use core::fmt;

use crate::time::Instant;

/// What a machine has for its driver next.
#[must_use = "a machine's outputs are the only way its work gets done; drain them"]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Poll<O, R> {
    /// An action to carry out now. Poll again afterwards.
    Output(O),
    /// Nothing more to do until this wake-up; `None` when nothing is scheduled.
    Timeout(Option<Wake<R>>),
}

impl<O, R> Poll<O, R> {
    /// The output, if this is one.
    pub fn output(self) -> Option<O> {
        match self {
            Poll::Output(o) => Some(o),
            Poll::Timeout(_) => None,
        }
    }
}

/// When a machine wants [`Machine::handle_timeout`] called, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wake<R> {
    /// The instant to call back at. It may already have passed: call back at once then.
    pub at: Instant,
    /// The timer that is due, so a trace says why the machine woke.
    pub reason: R,
}

impl<R> Wake<R> {
    /// A wake-up at `at` for `reason`.
    pub const fn new(at: Instant, reason: R) -> Self {
        Wake { at, reason }
    }
}

impl<R: fmt::Debug> fmt::Display for Wake<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:?})", self.at, self.reason)
    }
}

/// The shape every tether machine has, so one driver loop or test harness fits them all.
///
/// Implementations clamp `now` so that time never runs backwards, and treat an early or
/// spurious [`handle_timeout`](Machine::handle_timeout) as a no-op.
pub trait Machine {
    /// What the caller tells the machine.
    type Input;
    /// What the machine asks the caller to do.
    type Output;
    /// Why the machine wants to wake up.
    type Timer: Copy + fmt::Debug;
    /// Misuse or bad input, returned at once.
    type Error;

    /// Feeds one input. Drain [`poll_output`](Machine::poll_output) afterwards.
    fn handle_input(&mut self, now: Instant, input: Self::Input) -> Result<(), Self::Error>;

    /// Tells the machine the time is `now`. Drain [`poll_output`](Machine::poll_output) afterwards.
    fn handle_timeout(&mut self, now: Instant);

    /// The next action, or the next wake-up once no action is left.
    fn poll_output(&mut self) -> Poll<Self::Output, Self::Timer>;
}
