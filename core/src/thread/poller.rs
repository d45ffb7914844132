//! The adaptive pull schedule (seed 002's `AdaptivePoller`).
//!
//! An activity level in `0..=100` rises by `edit_boost` on each local edit, by `remote_boost`
//! on each remote change a pull brings (the seed watches the thread's version change,
//! whoever changed it), and by `queue_boost` whenever the push queue is deeper than
//! `deep_queue`; it falls by one each second. The pull interval follows it linearly:
//! `max_interval` at 0, `min_interval` at 100. So an idle client (nothing edited, nothing
//! changing remotely) slows down to `max_interval`, and speeds up again as soon as something
//! changes on either side; a boost of [`MAX_ACTIVITY`] snaps straight back to `min_interval`.
//! (The seed scales by 0.8, so its busiest interval is 16 s, never its own 5 s baseline;
//! here full activity reaches the 5 s that docs/PROTOCOL.md asks for.)
//!
//! The poller asks for a pull ([`PollerOutput::Pull`]) every interval once started. A pull
//! that becomes due sooner because activity rose is asked for sooner: the deadline is always
//! `last pull + current interval`.
//!
//! ```
//! use tether_core::thread::{AdaptivePoller, PollerConfig, PollerOutput};
//! use tether_core::{Driven, Instant, Rng};
//! use core::time::Duration;
//!
//! let mut poller = Driven::new(AdaptivePoller::new(PollerConfig::default(), Rng::new(1)), Instant::ZERO);
//! poller.call(|p, now| p.start(now))?;
//! assert_eq!(poller.machine().interval(), Duration::from_secs(60));
//! for _ in 0..10 {
//!     poller.call(|p, now| p.record_activity(now))?;
//! }
//! assert_eq!(poller.machine().interval(), Duration::from_secs(5));
//! // Activity decays one a second while the interval stretches; the pull comes when they meet.
//! while !poller.advance()?.unwrap_or_default().contains(&PollerOutput::Pull) {}
//! assert_eq!(poller.now(), Instant::from_millis(9_950));
//! assert_eq!(poller.machine().activity(), 91);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use alloc::collections::VecDeque;
use core::time::Duration;

use crate::drive::{Machine, Poll, Wake};
use crate::rng::Rng;
use crate::time::{Clock, Instant, duration_micros};

/// The poller's settings; the defaults are seed 002's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PollerConfig {
    /// The interval at full activity. Default 5 s.
    pub min_interval: Duration,
    /// The interval when idle. Default 60 s.
    pub max_interval: Duration,
    /// Activity added by a local edit. Default 10.
    pub edit_boost: u8,
    /// Activity added by a remote change a pull brought. Default 10 (the seed counts every
    /// version change of a thread as activity); [`MAX_ACTIVITY`] snaps the interval back to
    /// `min_interval`.
    pub remote_boost: u8,
    /// A push queue deeper than this raises activity. Default 10.
    pub deep_queue: usize,
    /// Activity added when the queue is deep. Default 10.
    pub queue_boost: u8,
    /// How often activity falls by one. Default 1 s.
    pub decay_every: Duration,
    /// Each gap is `interval · (1 ± jitter)`, drawn once per pull, so that many clients do
    /// not pull in lock-step; clamped to `[0, 0.5]`. Default 0.
    pub jitter: f64,
}

impl Default for PollerConfig {
    fn default() -> Self {
        PollerConfig {
            min_interval: Duration::from_secs(5),
            max_interval: Duration::from_secs(60),
            edit_boost: 10,
            remote_boost: 10,
            deep_queue: 10,
            queue_boost: 10,
            decay_every: Duration::from_secs(1),
            jitter: 0.0,
        }
    }
}

/// The most activity there is.
pub const MAX_ACTIVITY: u8 = 100;

/// What the poller asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollerOutput {
    /// A pull is due.
    Pull,
}

/// Why the poller wakes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PollerTimer {
    /// The next pull is due.
    Pull,
    /// Activity falls by one.
    Decay,
}

/// The adaptive pull schedule. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct AdaptivePoller {
    config: PollerConfig,
    rng: Rng,
    /// This gap's jitter factor, in `[1 - jitter, 1 + jitter]`.
    factor: f64,
    clock: Clock,
    activity: u8,
    /// When activity last fell (or was last raised from zero).
    decayed_at: Instant,
    /// When the last pull was asked for; `None`: stopped.
    last_pull: Option<Instant>,
    outputs: VecDeque<PollerOutput>,
}

impl AdaptivePoller {
    /// A stopped poller at zero activity. Intervals are clamped so that
    /// `min_interval <= max_interval` and decay is at least 1 ms apart.
    pub fn new(mut config: PollerConfig, rng: Rng) -> Self {
        config.max_interval = config.max_interval.max(config.min_interval);
        config.decay_every = config.decay_every.max(Duration::from_millis(1));
        config.jitter = if config.jitter.is_nan() {
            0.0
        } else {
            config.jitter.clamp(0.0, 0.5)
        };
        AdaptivePoller {
            config,
            rng,
            factor: 1.0,
            clock: Clock::default(),
            activity: 0,
            decayed_at: Instant::ZERO,
            last_pull: None,
            outputs: VecDeque::new(),
        }
    }

    /// Starts the schedule: the first pull is due one interval from `now` (pull at once
    /// yourself if you need to). Starting a running poller does nothing.
    pub fn start(&mut self, now: Instant) {
        let now = self.observe(now);
        if self.last_pull.is_none() {
            self.last_pull = Some(now);
            self.draw_factor();
        }
    }

    /// Stops asking for pulls; activity keeps decaying.
    pub fn stop(&mut self, now: Instant) {
        self.observe(now);
        self.last_pull = None;
    }

    /// Whether pulls are being scheduled.
    pub fn is_running(&self) -> bool {
        self.last_pull.is_some()
    }

    /// A local edit happened.
    pub fn record_activity(&mut self, now: Instant) {
        self.observe(now);
        self.raise(self.config.edit_boost);
    }

    /// A pull brought a change another client made.
    pub fn record_remote_change(&mut self, now: Instant) {
        self.observe(now);
        self.raise(self.config.remote_boost);
    }

    /// The push queue's depth changed to `depth`.
    pub fn set_queue_depth(&mut self, now: Instant, depth: usize) {
        self.observe(now);
        if depth > self.config.deep_queue {
            self.raise(self.config.queue_boost);
        }
    }

    /// A pull was made at `now` (asked for or not): the next is one interval later.
    pub fn pulled(&mut self, now: Instant) {
        let now = self.observe(now);
        if self.last_pull.is_some() {
            self.last_pull = Some(now);
            self.draw_factor();
        }
    }

    /// The activity level, `0..=100`.
    pub fn activity(&self) -> u8 {
        self.activity
    }

    /// The pull interval at the current activity.
    pub fn interval(&self) -> Duration {
        let min = duration_micros(self.config.min_interval);
        let max = duration_micros(self.config.max_interval);
        let idle = u64::from(MAX_ACTIVITY - self.activity);
        Duration::from_micros(min + (max - min) * idle / u64::from(MAX_ACTIVITY))
    }

    /// When the next pull is due, if running.
    pub fn next_pull(&self) -> Option<Instant> {
        self.last_pull
            .map(|at| at + self.interval().mul_f64(self.factor))
    }

    fn draw_factor(&mut self) {
        let j = self.config.jitter;
        self.factor = if j == 0.0 {
            1.0
        } else {
            1.0 - j + 2.0 * j * self.rng.unit()
        };
    }

    /// The settings in force.
    pub fn config(&self) -> &PollerConfig {
        &self.config
    }

    fn raise(&mut self, by: u8) {
        if self.activity == 0 {
            self.decayed_at = self.clock.now();
        }
        self.activity = self.activity.saturating_add(by).min(MAX_ACTIVITY);
    }

    /// Clamps `now` and applies every whole decay step up to it (no burst after a stall).
    fn observe(&mut self, now: Instant) -> Instant {
        let now = self.clock.observe(now);
        if self.activity > 0 {
            let every = duration_micros(self.config.decay_every);
            let steps = duration_micros(now.saturating_duration_since(self.decayed_at)) / every;
            if steps > 0 {
                self.activity = self.activity.saturating_sub(steps.min(255) as u8);
                self.decayed_at += Duration::from_micros(steps * every);
            }
        }
        now
    }

    /// Applies decay, and asks for a pull if one is due. Early or spurious calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.observe(now);
        if self.next_pull().is_some_and(|due| due <= now) {
            self.last_pull = Some(now);
            self.draw_factor();
            self.outputs.push_back(PollerOutput::Pull);
        }
    }

    /// The next output, or the next wake-up.
    #[must_use = "the poller's outputs are its only way to get work done; drain them"]
    pub fn poll_output(&mut self) -> Poll<PollerOutput, PollerTimer> {
        if let Some(out) = self.outputs.pop_front() {
            return Poll::Output(out);
        }
        let decay = (self.activity > 0).then(|| self.decayed_at + self.config.decay_every);
        let wake = match (self.next_pull(), decay) {
            (Some(pull), Some(decay)) if decay < pull => Some(Wake::new(decay, PollerTimer::Decay)),
            (Some(pull), _) => Some(Wake::new(pull, PollerTimer::Pull)),
            (None, Some(decay)) => Some(Wake::new(decay, PollerTimer::Decay)),
            (None, None) => None,
        };
        Poll::Timeout(wake)
    }
}

impl Machine for AdaptivePoller {
    type Output = PollerOutput;
    type Timer = PollerTimer;

    fn handle_timeout(&mut self, now: Instant) {
        AdaptivePoller::handle_timeout(self, now);
    }

    fn poll_output(&mut self) -> Poll<PollerOutput, PollerTimer> {
        AdaptivePoller::poll_output(self)
    }
}
