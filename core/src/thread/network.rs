//! Online or offline: from the caller, and from repeated transport failures.
//!
//! While offline only the probe runs: `GET /ping` every `probe_every` (30 s), each with a
//! core-owned deadline. The first successful probe goes online. Any answer from the server
//! (whatever its status) proves the network works and resets the failure count; connection
//! errors and timeouts count, and `offline_after` of them in a row go offline.
//!
//! ```
//! use tether_core::thread::{NetworkConfig, NetworkOutput, NetworkState};
//! use tether_core::{Driven, Instant, Outcome, TransientCause};
//!
//! let mut net = Driven::new(NetworkState::new(NetworkConfig::default()), Instant::ZERO);
//! let failed = Outcome::Transient(TransientCause::Transport);
//! for _ in 0..3 {
//!     net.call(|n, now| n.record(now, failed))?;
//! }
//! assert!(!net.machine().is_online());
//! // Only the probe runs now, 30 s apart.
//! let outputs = net.advance()?.unwrap_or_default();
//! let Some(NetworkOutput::Send(id)) = outputs.last().copied() else { panic!("{outputs:?}") };
//! assert_eq!(net.now(), Instant::from_secs(30));
//! let (_, outputs) = net.call(|n, now| n.probe_result(now, id, Outcome::Success))?;
//! assert_eq!(outputs, [NetworkOutput::Online]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use alloc::collections::VecDeque;
use core::fmt;
use core::time::Duration;

use crate::classify::{Outcome, TransientCause};
use crate::drive::{Machine, Poll, Wake};
use crate::time::{Clock, Instant};

/// When to go offline and how to probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetworkConfig {
    /// Transport failures in a row that mean offline. Default 3; at least 1.
    pub offline_after: u32,
    /// Time between probes while offline. Default 30 s.
    pub probe_every: Duration,
    /// A probe unanswered for this long failed. Default 10 s.
    pub probe_timeout: Duration,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            offline_after: 3,
            probe_every: Duration::from_secs(30),
            probe_timeout: Duration::from_secs(10),
        }
    }
}

/// Names one probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProbeId(pub u64);

impl fmt::Display for ProbeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ping#{}", self.0)
    }
}

/// Why the machine went offline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OfflineReason {
    /// The caller said so.
    Caller,
    /// This many transport failures in a row.
    TransportFailures(u32),
}

/// What the network state asks for, or reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetworkOutput {
    /// Send `GET /ping` and report with [`probe_result`](NetworkState::probe_result).
    Send(ProbeId),
    /// The probe's deadline passed: abandon it; its late answer is ignored.
    Cancel(ProbeId),
    /// Offline: pause pushes and pulls.
    Offline(OfflineReason),
    /// Online again: resume.
    Online,
}

/// Why the network state wakes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NetworkTimer {
    /// The next probe is due.
    Probe,
    /// The probe in flight times out.
    RequestDeadline,
}

/// Online/offline and the probe. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct NetworkState {
    config: NetworkConfig,
    clock: Clock,
    online: bool,
    failures: u32,
    next_probe: Option<Instant>,
    in_flight: Option<(ProbeId, Instant)>,
    /// The caller paused syncing: no probe goes.
    paused: bool,
    next_id: u64,
    outputs: VecDeque<NetworkOutput>,
}

impl NetworkState {
    /// Online, with no failures counted.
    pub fn new(mut config: NetworkConfig) -> Self {
        config.offline_after = config.offline_after.max(1);
        NetworkState {
            config,
            clock: Clock::default(),
            online: true,
            failures: 0,
            next_probe: None,
            in_flight: None,
            paused: false,
            next_id: 0,
            outputs: VecDeque::new(),
        }
    }

    /// Whether requests other than the probe may go.
    pub fn is_online(&self) -> bool {
        self.online
    }

    /// Transport failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The probe in flight.
    pub fn probe_in_flight(&self) -> Option<ProbeId> {
        self.in_flight.map(|(id, _)| id)
    }

    /// Stops probing while the caller paused syncing, or starts again: a probe that fell due
    /// meanwhile goes at the next [`handle_timeout`](Self::handle_timeout). A probe in flight
    /// still settles.
    pub fn set_paused(&mut self, now: Instant, paused: bool) {
        self.clock.observe(now);
        self.paused = paused;
    }

    /// The caller's word: the device went online or offline. Going online resumes at once.
    pub fn set_online(&mut self, now: Instant, online: bool) {
        let now = self.clock.observe(now);
        if online {
            self.go_online();
        } else {
            self.go_offline(now, OfflineReason::Caller);
        }
    }

    /// How a request (not the probe) ended, as classified.
    pub fn record(&mut self, now: Instant, outcome: Outcome) {
        let now = self.clock.observe(now);
        if is_network_failure(outcome) {
            self.failures = self.failures.saturating_add(1);
            if self.online && self.failures >= self.config.offline_after {
                self.go_offline(now, OfflineReason::TransportFailures(self.failures));
            }
        } else {
            self.failures = 0;
        }
    }

    /// How probe `id` ended. A success goes online; anything else waits for the next probe.
    /// An unknown or abandoned probe is ignored.
    pub fn probe_result(&mut self, now: Instant, id: ProbeId, outcome: Outcome) {
        self.clock.observe(now);
        if self.probe_in_flight() != Some(id) {
            return;
        }
        self.in_flight = None;
        if outcome == Outcome::Success {
            self.go_online();
        }
    }

    fn go_online(&mut self) {
        self.failures = 0;
        self.next_probe = None;
        if let Some((id, _)) = self.in_flight.take() {
            self.outputs.push_back(NetworkOutput::Cancel(id));
        }
        if !self.online {
            self.online = true;
            self.outputs.push_back(NetworkOutput::Online);
        }
    }

    fn go_offline(&mut self, now: Instant, reason: OfflineReason) {
        if !self.online {
            return;
        }
        self.online = false;
        self.next_probe = Some(now + self.config.probe_every);
        self.outputs.push_back(NetworkOutput::Offline(reason));
    }

    /// Fails a probe past its deadline, sends one when due. Early or spurious calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clock.observe(now);
        if let Some((id, deadline)) = self.in_flight {
            if deadline <= now {
                self.in_flight = None;
                self.outputs.push_back(NetworkOutput::Cancel(id));
            }
        }
        if self.online || self.paused || self.in_flight.is_some() {
            return;
        }
        if self.next_probe.is_some_and(|at| at <= now) {
            let id = ProbeId(self.next_id);
            self.next_id += 1;
            self.in_flight = Some((id, now + self.config.probe_timeout));
            self.next_probe = Some(now + self.config.probe_every);
            self.outputs.push_back(NetworkOutput::Send(id));
        }
    }

    /// The next output, or the next wake-up.
    #[must_use = "the network state's outputs are its only way to get work done; drain them"]
    pub fn poll_output(&mut self) -> Poll<NetworkOutput, NetworkTimer> {
        if let Some(out) = self.outputs.pop_front() {
            return Poll::Output(out);
        }
        let deadline = self
            .in_flight
            .map(|(_, at)| Wake::new(at, NetworkTimer::RequestDeadline));
        let probe = self
            .next_probe
            .filter(|_| !self.online && !self.paused && self.in_flight.is_none())
            .map(|at| Wake::new(at, NetworkTimer::Probe));
        Poll::Timeout(deadline.or(probe))
    }
}

/// Whether an outcome says the network (not the server) failed.
pub fn is_network_failure(outcome: Outcome) -> bool {
    matches!(
        outcome,
        Outcome::Transient(TransientCause::Transport | TransientCause::TimedOut)
    )
}

impl Machine for NetworkState {
    type Output = NetworkOutput;
    type Timer = NetworkTimer;

    fn handle_timeout(&mut self, now: Instant) {
        NetworkState::handle_timeout(self, now);
    }

    fn poll_output(&mut self) -> Poll<NetworkOutput, NetworkTimer> {
        NetworkState::poll_output(self)
    }
}
