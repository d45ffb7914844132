//! One session, whichever runtime drives it: [`Worker`] wraps `tether_blocking::Tether` or
//! `tether_smol::Tether` behind the same blocking methods, so `demo` and `pipe` have one code
//! path and the runtime is a choice made at [`Builder::start`].
//!
//! The smol session's driver task runs on smol's global executor; every call here waits for
//! its future with `smol::block_on`. Each shim's answers (errors, statuses, counters, the close
//! report) are mapped to the CLI's own types, so the output and the exit codes do not depend on
//! the runtime.

use std::fmt;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use tether_core::batch::EnqueueError;
use tether_core::session::{SessionConfig, Status};
use tether_core::state::StateError;

use crate::args::Runtime;
use crate::report::{CloseReport, Counters};

/// Sets up a [`Worker`]: the same choices for either runtime.
#[derive(Debug)]
pub struct Builder {
    runtime: Runtime,
    url: String,
    epoch: Option<u64>,
    token: Option<String>,
    seed: Option<u64>,
    config: Option<SessionConfig>,
}

impl Builder {
    /// A session at `url` on `runtime`, which registers for its epoch unless given one.
    pub fn new(runtime: Runtime, url: &str) -> Self {
        Builder {
            runtime,
            url: url.to_owned(),
            epoch: None,
            token: None,
            seed: None,
            config: None,
        }
    }

    /// Use this worker epoch; `None` registers for a new one.
    #[must_use]
    pub fn epoch(mut self, epoch: Option<u64>) -> Self {
        self.epoch = epoch;
        self
    }

    /// Send this bearer token.
    #[must_use]
    pub fn token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    /// The seed of the session's random choices.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The core's configuration.
    #[must_use]
    pub fn config(mut self, config: SessionConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// Starts the session: a driver thread (blocking) or a task on smol's global executor.
    pub fn start(self) -> Result<Worker, StartError> {
        match self.runtime {
            Runtime::Blocking => {
                let mut b = tether_blocking::Tether::builder(self.url);
                if let Some(config) = self.config {
                    b = b.config(config);
                }
                b = match self.epoch {
                    Some(epoch) => b.epoch(epoch),
                    None => b.register(),
                };
                if let Some(token) = self.token {
                    b = b.token(token);
                }
                if let Some(seed) = self.seed {
                    b = b.seed(seed);
                }
                b.start().map(Worker::Blocking).map_err(|e| match e {
                    tether_blocking::StartError::UnsupportedScheme { scheme } => {
                        StartError::unsupported_scheme(&scheme)
                    }
                    other => StartError(other.to_string()),
                })
            }
            Runtime::Smol => {
                let mut b = tether_smol::Tether::builder(self.url);
                if let Some(config) = self.config {
                    b = b.config(config);
                }
                b = match self.epoch {
                    Some(epoch) => b.epoch(epoch),
                    None => b.register(),
                };
                if let Some(token) = self.token {
                    b = b.token(token);
                }
                if let Some(seed) = self.seed {
                    b = b.seed(seed);
                }
                b.start().map(Worker::Smol).map_err(|e| match e {
                    tether_smol::BuildError::UnsupportedScheme { scheme } => {
                        StartError::unsupported_scheme(&scheme)
                    }
                    other => StartError(other.to_string()),
                })
            }
        }
    }
}

/// Why a session did not start (the URL, the token or the configuration).
#[derive(Debug)]
pub struct StartError(String);

impl StartError {
    fn unsupported_scheme(scheme: &str) -> Self {
        StartError(format!(
            "unsupported URL scheme `{scheme}`: only http and https are accepted"
        ))
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// Why an event was not queued.
#[derive(Debug)]
pub enum SendError {
    /// The queue stayed full until the timeout: the payload, `uuid` stamped.
    Timeout {
        /// The event's payload.
        payload: Value,
    },
    /// The session had ended.
    Ended {
        /// The event's payload (`uuid` stamped if it had been given one).
        payload: Value,
        /// The terminal status.
        status: Status,
    },
    /// The event can never be sent (not an object, too large, ...): why.
    Refused(String),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Timeout { .. } => {
                f.write_str("the event queue stayed full until the timeout")
            }
            SendError::Ended { status, .. } => write!(f, "the session has ended: {status}"),
            SendError::Refused(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for SendError {}

/// Why a state patch was not taken.
#[derive(Debug)]
pub enum PatchError {
    /// The patch is not acceptable.
    Invalid(StateError),
    /// The session had ended.
    Ended(Status),
}

impl fmt::Display for PatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatchError::Invalid(e) => write!(f, "state patch refused: {e}"),
            PatchError::Ended(status) => write!(f, "the session has ended: {status}"),
        }
    }
}

impl std::error::Error for PatchError {}

/// Why a flush did not complete.
#[derive(Debug)]
pub enum FlushError {
    /// The timeout passed first; the work goes on.
    TimedOut,
    /// The session ended; what was not delivered is in the close report.
    Ended(Status),
}

impl fmt::Display for FlushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlushError::TimedOut => f.write_str("flush timed out"),
            FlushError::Ended(status) => write!(f, "the session has ended: {status}"),
        }
    }
}

impl std::error::Error for FlushError {}

/// The smol session's driver task stopped before it answered a close (it panicked).
#[derive(Debug)]
pub struct DriverGone;

impl fmt::Display for DriverGone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the session's driver task is gone")
    }
}

impl std::error::Error for DriverGone {}

/// A running session on either runtime. Every method blocks the calling thread; `Worker` is
/// `Sync`, so a progress thread may read it while another sends.
pub enum Worker {
    /// Driven by `tether-blocking`: a driver thread and HTTP worker threads.
    Blocking(tether_blocking::Tether),
    /// Driven by `tether-smol`: a task on smol's global executor.
    Smol(tether_smol::Tether),
}

impl Worker {
    /// Queues an event for `/worker/events`, waiting up to `timeout` for room.
    pub fn send_event(&self, payload: Value, timeout: Duration) -> Result<(), SendError> {
        self.send(false, payload, timeout)
    }

    /// Queues an event for `/worker/internal-events`, waiting up to `timeout` for room.
    pub fn send_internal_event(&self, payload: Value, timeout: Duration) -> Result<(), SendError> {
        self.send(true, payload, timeout)
    }

    fn send(&self, internal: bool, payload: Value, timeout: Duration) -> Result<(), SendError> {
        match self {
            Worker::Blocking(t) => {
                let sent = if internal {
                    t.send_internal_event(payload, timeout)
                } else {
                    t.send_event(payload, timeout)
                };
                sent.map(drop).map_err(|e| match e {
                    tether_blocking::SendError::Timeout { event } => SendError::Timeout {
                        payload: event.into_payload(),
                    },
                    tether_blocking::SendError::Ended { event, status } => SendError::Ended {
                        payload: event.into_payload(),
                        status,
                    },
                    other => SendError::Refused(other.to_string()),
                })
            }
            Worker::Smol(t) => {
                // Kept in case the shim answers that the session ended without the event.
                let given = payload.clone();
                let sent = smol::block_on(async {
                    if internal {
                        t.send_internal_event(payload, timeout).await
                    } else {
                        t.send_event(payload, timeout).await
                    }
                });
                sent.map(drop).map_err(|e| match e {
                    tether_smol::SendError::Timeout { event } => SendError::Timeout {
                        payload: event.into_payload(),
                    },
                    tether_smol::SendError::Ended { event, status } => SendError::Ended {
                        payload: event.map_or(given, tether_core::batch::Event::into_payload),
                        status,
                    },
                    tether_smol::SendError::DriverGone { event } => SendError::Ended {
                        payload: event.map_or(given, tether_core::batch::Event::into_payload),
                        status: t.status(),
                    },
                    tether_smol::SendError::Refused(refusal) => SendError::Refused(match refusal {
                        // Worded as the blocking shim words them.
                        EnqueueError::NotAnObject { .. } => {
                            "an event payload must be a JSON object".to_owned()
                        }
                        EnqueueError::TooLarge { bytes, limit, .. } => format!(
                            "an event of {bytes} bytes exceeds the batch limit of {limit} bytes"
                        ),
                        other => format!("event refused: {other}"),
                    }),
                    other => SendError::Refused(other.to_string()),
                })
            }
        }
    }

    /// Applies a patch to the worker document; never waits for the network.
    pub fn patch_state(&self, patch: Value) -> Result<(), PatchError> {
        match self {
            Worker::Blocking(t) => t.patch_state(patch).map_err(|e| match e {
                tether_blocking::PatchError::Invalid(e) => PatchError::Invalid(e),
                tether_blocking::PatchError::Ended(status) => PatchError::Ended(status),
                _ => PatchError::Ended(t.status()),
            }),
            Worker::Smol(t) => smol::block_on(t.patch_state(patch)).map_err(|e| match e {
                tether_smol::Error::State(e) => PatchError::Invalid(e),
                tether_smol::Error::Ended(status) => PatchError::Ended(status),
                _ => PatchError::Ended(t.status()),
            }),
        }
    }

    /// The worker document as the server will hold it once every pending patch has landed
    /// (`null` once the session's driver is gone).
    pub fn state(&self) -> Value {
        match self {
            Worker::Blocking(t) => t.state(),
            Worker::Smol(t) => smol::block_on(t.state()).unwrap_or(Value::Null),
        }
    }

    /// The current status.
    pub fn status(&self) -> Status {
        match self {
            Worker::Blocking(t) => t.status(),
            Worker::Smol(t) => t.status(),
        }
    }

    /// The counters now (zero once the session's driver is gone).
    pub fn counters(&self) -> Counters {
        match self {
            Worker::Blocking(t) => t.counters().into(),
            Worker::Smol(t) => smol::block_on(t.counters())
                .map(Counters::from)
                .unwrap_or_default(),
        }
    }

    /// The status changes, from the first status to the terminal one. Call it once.
    pub fn statuses(&self) -> Statuses {
        match self {
            Worker::Blocking(t) => Statuses::Blocking(t.statuses()),
            Worker::Smol(t) => Statuses::Smol(t.statuses()),
        }
    }

    /// Waits until everything queued before is delivered or handed back and every patch has
    /// landed, at most `timeout`.
    pub fn flush(&self, timeout: Duration) -> Result<(), FlushError> {
        match self {
            Worker::Blocking(t) => t.flush(timeout).map_err(|e| match e {
                tether_blocking::FlushError::TimedOut => FlushError::TimedOut,
                tether_blocking::FlushError::Ended(status) => FlushError::Ended(status),
                _ => FlushError::Ended(t.status()),
            }),
            Worker::Smol(t) => match smol::block_on(t.flush(timeout)) {
                // As the blocking shim: a flush the end of the session completed says so.
                Ok(()) if t.status().is_terminal() => Err(FlushError::Ended(t.status())),
                Ok(()) => Ok(()),
                Err(tether_smol::Error::Timeout) => Err(FlushError::TimedOut),
                Err(tether_smol::Error::Ended(status)) => Err(FlushError::Ended(status)),
                Err(_) => Err(FlushError::Ended(t.status())),
            },
        }
    }

    /// Stops intake, drains for at most `timeout`, then hands back what is left. Returns once
    /// the session has ended; the statuses then end too.
    pub fn close(self, timeout: Duration) -> Result<CloseReport, DriverGone> {
        match self {
            Worker::Blocking(t) => Ok(t.close(timeout).into()),
            // Dropping the handle after the report lets the driver task finish.
            Worker::Smol(t) => smol::block_on(t.close(timeout))
                .map(CloseReport::from)
                .map_err(|_| DriverGone),
        }
    }
}

/// A session's status changes, read by blocking.
pub enum Statuses {
    /// From `tether-blocking`.
    Blocking(mpsc::Receiver<Status>),
    /// From `tether-smol`.
    Smol(smol::channel::Receiver<Status>),
}

impl Statuses {
    /// The changes ready now, without waiting.
    pub fn ready(&self) -> Vec<Status> {
        match self {
            Statuses::Blocking(r) => r.try_iter().collect(),
            Statuses::Smol(r) => std::iter::from_fn(|| r.try_recv().ok()).collect(),
        }
    }
}

impl Iterator for Statuses {
    type Item = Status;

    /// The next change, waiting for it; `None` once the session has ended and its driver
    /// stopped.
    fn next(&mut self) -> Option<Status> {
        match self {
            Statuses::Blocking(r) => r.recv().ok(),
            Statuses::Smol(r) => smol::block_on(r.recv()).ok(),
        }
    }
}
