//! The drive contract shared by every machine.
//!
//! One mutation (an input or a timeout), then drain [`Machine::poll_output`] until it answers
//! [`Poll::Timeout`]. Outputs always come before the timeout, so while output is queued a driver
//! never sees a deadline to sleep on (docs/ARCHITECTURE.md, convention 3).

use alloc::vec::Vec;
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

/// Names one flush, on every machine that has them: the report that ends it
/// (`FlushDone` or `FlushTimedOut`) quotes the id the call returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlushId(pub u64);

impl fmt::Display for FlushId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "flush#{}", self.0)
    }
}

/// Names one request that goes on the wire, on every machine that sends them (the
/// [`Session`](crate::session::Session) and [`ThreadSync`](crate::thread::ThreadSync)): the
/// answer, a transport error or a cancel quotes the id the request came out with. One type, so a
/// driver that carries both machines' requests keeps them in one table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}

/// The shape every tether machine has, so one driver loop or test harness fits them all.
///
/// The trait holds only what every machine shares: being told the time, and being drained.
/// What the caller *tells* a machine goes through its typed methods (`enqueue`, `flush`,
/// `handle_outcome`, ...), which return what the caller needs back (an event's id, a flush's
/// id, a typed error); after each of them, drain [`poll_output`](Machine::poll_output) as after
/// [`handle_timeout`](Machine::handle_timeout).
///
/// Implementations clamp `now` so that time never runs backwards, and treat an early or
/// spurious [`handle_timeout`](Machine::handle_timeout) as a no-op.
pub trait Machine {
    /// What the machine asks the caller to do, or reports.
    type Output;
    /// Why the machine wants to wake up.
    type Timer: Copy + fmt::Debug;

    /// Tells the machine the time is `now`. Drain [`poll_output`](Machine::poll_output) afterwards.
    fn handle_timeout(&mut self, now: Instant);

    /// The next action, or the next wake-up once no action is left.
    #[must_use = "a machine's outputs are the only way its work gets done; drain them"]
    fn poll_output(&mut self) -> Poll<Self::Output, Self::Timer>;
}

/// A machine driven by the contract with every loop bounded: for tests, simulators and fuzz
/// targets, where a machine that never stops emitting must fail rather than hang.
///
/// It keeps the simulated time, drains after every call, remembers the next wake-up, jumps to
/// it on [`advance`](Driven::advance), and can log every call, output and wake with its time.
///
/// ```
/// use tether_core::heartbeat::{self, Heartbeat};
/// use tether_core::{Driven, Instant, Outcome, Rng};
///
/// let heartbeat = Heartbeat::new(heartbeat::Config::default(), Rng::new(7))?;
/// let mut driven = Driven::new(heartbeat, Instant::ZERO);
/// driven.call(|hb, now| hb.start(now))?;
/// let mut beats = 0;
/// while driven.now() < Instant::from_secs(60) {
///     let Some(outputs) = driven.advance()? else { break };
///     for output in outputs {
///         if let heartbeat::Output::Send(id) = output {
///             beats += 1;
///             driven.call(|hb, now| hb.handle_outcome(now, id, Outcome::Success))?.0?;
///         }
///     }
/// }
/// assert_eq!(beats, 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Driven<M: Machine> {
    machine: M,
    now: Instant,
    wake: Option<Wake<M::Timer>>,
    bound: usize,
    log: Option<Log<M::Output>>,
}

/// The log lines so far and how outputs are described in them.
type Log<O> = (Vec<alloc::string::String>, fn(&O) -> alloc::string::String);

/// A drain that did not reach [`Poll::Timeout`] within its bound: the machine livelocked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Livelock {
    /// The simulated time of the drain.
    pub at: Instant,
    /// The outputs drained before giving up.
    pub outputs: usize,
}

impl fmt::Display for Livelock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} outputs at {} without reaching a timeout",
            self.outputs, self.at
        )
    }
}

impl core::error::Error for Livelock {}

/// One drain's budget of outputs, for a harness that owns its machine and handles each output
/// with the rest of its state: poll through it, and a machine that never reaches its timeout
/// fails with [`Livelock`] instead of hanging the harness.
///
/// ```
/// use tether_core::heartbeat::{self, Heartbeat};
/// use tether_core::{DrainBound, Instant, Poll, Rng};
///
/// let mut heartbeat = Heartbeat::new(heartbeat::Config::default(), Rng::new(1))?;
/// heartbeat.start(Instant::ZERO);
/// let mut bound = DrainBound::new(Instant::ZERO, 1_000);
/// let wake = loop {
///     match bound.poll(&mut heartbeat)? {
///         Poll::Output(output) => println!("{output:?}"),
///         Poll::Timeout(wake) => break wake,
///     }
/// };
/// assert_eq!(wake.map(|w| w.at), Some(Instant::from_secs(20)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrainBound {
    at: Instant,
    left: usize,
    bound: usize,
}

impl DrainBound {
    /// A budget of `bound` outputs for a drain at `at`.
    pub const fn new(at: Instant, bound: usize) -> Self {
        DrainBound {
            at,
            left: bound,
            bound,
        }
    }

    /// The machine's next output or timeout; [`Livelock`] once more than the bound came out.
    pub fn poll<M: Machine>(
        &mut self,
        machine: &mut M,
    ) -> Result<Poll<M::Output, M::Timer>, Livelock> {
        let next = machine.poll_output();
        if let Poll::Output(_) = next {
            if self.left == 0 {
                return Err(Livelock {
                    at: self.at,
                    outputs: self.bound.saturating_add(1),
                });
            }
            self.left -= 1;
        }
        Ok(next)
    }
}

impl<M: Machine> Driven<M> {
    /// The default bound on outputs per drain.
    pub const DEFAULT_BOUND: usize = 100_000;

    /// Drives `machine` from `now`.
    pub fn new(machine: M, now: Instant) -> Self {
        Driven {
            machine,
            now,
            wake: None,
            bound: Self::DEFAULT_BOUND,
            log: None,
        }
    }

    /// At most `bound` outputs per drain before it reports a [`Livelock`].
    pub fn with_bound(mut self, bound: usize) -> Self {
        self.bound = bound;
        self
    }

    /// Logs every call, output and wake-up with its time, describing outputs with `describe`.
    pub fn with_log(mut self, describe: fn(&M::Output) -> alloc::string::String) -> Self {
        self.log = Some((Vec::new(), describe));
        self
    }

    /// The simulated time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Moves the clock to `at` without waking the machine (time never runs backwards).
    pub fn set_time(&mut self, at: Instant) {
        self.now = self.now.max(at);
    }

    /// The machine.
    pub fn machine(&self) -> &M {
        &self.machine
    }

    /// The machine, to call a typed mutator; [`drain`](Self::drain) afterwards (or use
    /// [`call`](Self::call), which does both).
    pub fn machine_mut(&mut self) -> &mut M {
        &mut self.machine
    }

    /// The machine, no longer driven.
    pub fn into_inner(self) -> M {
        self.machine
    }

    /// The next wake-up, as of the last drain.
    pub fn next_wake(&self) -> Option<Wake<M::Timer>> {
        self.wake
    }

    /// The log lines so far (empty unless [`with_log`](Self::with_log)).
    pub fn log(&self) -> &[alloc::string::String] {
        self.log.as_ref().map_or(&[], |(lines, _)| lines.as_slice())
    }

    /// Adds a line to the log at the current time.
    pub fn note(&mut self, what: fmt::Arguments<'_>) {
        if let Some((lines, _)) = &mut self.log {
            lines.push(alloc::format!("{:>8} > {what}", stamp(self.now)));
        }
    }

    /// One call at the current time, then a drain: what the call returned and the outputs.
    pub fn call<R>(
        &mut self,
        f: impl FnOnce(&mut M, Instant) -> R,
    ) -> Result<(R, Vec<M::Output>), Livelock> {
        let r = f(&mut self.machine, self.now);
        Ok((r, self.drain()?))
    }

    /// Drains every output until the machine names its next wake-up.
    pub fn drain(&mut self) -> Result<Vec<M::Output>, Livelock> {
        let mut outputs = Vec::new();
        loop {
            match self.machine.poll_output() {
                Poll::Output(output) => {
                    if let Some((lines, describe)) = &mut self.log {
                        lines.push(alloc::format!(
                            "{:>8} < {}",
                            stamp(self.now),
                            describe(&output)
                        ));
                    }
                    outputs.push(output);
                    if outputs.len() > self.bound {
                        return Err(Livelock {
                            at: self.now,
                            outputs: outputs.len(),
                        });
                    }
                }
                Poll::Timeout(wake) => {
                    self.wake = wake;
                    return Ok(outputs);
                }
            }
        }
    }

    /// Jumps to the next wake-up (never backwards) and handles it. `None` when nothing is
    /// scheduled.
    pub fn advance(&mut self) -> Result<Option<Vec<M::Output>>, Livelock> {
        let Some(wake) = self.wake else {
            return Ok(None);
        };
        self.now = self.now.max(wake.at);
        if let Some((lines, _)) = &mut self.log {
            lines.push(alloc::format!(
                "{:>8} ~ wake ({:?})",
                stamp(self.now),
                wake.reason
            ));
        }
        self.machine.handle_timeout(self.now);
        self.drain().map(Some)
    }

    /// Tells the machine the time is `at` (a timeout, spurious or not) and drains.
    pub fn advance_to(&mut self, at: Instant) -> Result<Vec<M::Output>, Livelock> {
        self.set_time(at);
        self.machine.handle_timeout(self.now);
        self.drain()
    }
}

/// The time as the log shows it, so that it can be padded.
fn stamp(now: Instant) -> alloc::string::String {
    alloc::format!("{now}")
}

impl<M: Machine + fmt::Debug> fmt::Debug for Driven<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Driven")
            .field("machine", &self.machine)
            .field("now", &self.now)
            .field("wake", &self.wake)
            .field("bound", &self.bound)
            .finish_non_exhaustive()
    }
}
