//! One session, whichever runtime drives it: [`Worker`] holds a `tether_blocking::Tether`, a
//! `tether_smol::Tether` or a `tether_tokio::Tether`. Every shim sits on `tether-driver`, so
//! every call means the same and returns the same types; each method here is one path, which
//! only waits the runtime's way (the blocking call itself, `smol::block_on` of the async one,
//! or `block_on` on the command's own tokio runtime, from a thread outside it).

use std::fmt;
use std::time::Duration;

use serde_json::Value;
use tether_blocking::{CloseReport, Counters, FlushError, PatchError, Refused, Tap};
use tether_core::session::{SessionConfig, Status};

use crate::args::Runtime;

/// Calls `$call` on the worker's handle and waits for it the runtime's way.
macro_rules! wait {
    ($worker:expr, |$t:ident| $call:expr) => {
        match $worker {
            Worker::Blocking($t) => $call,
            Worker::Smol($t) => smol::block_on($call),
            Worker::Tokio($t) => tokio_runtime().block_on($call),
        }
    };
}

/// Calls `$call` on the worker's handle, which answers at once on every runtime.
macro_rules! now {
    ($worker:expr, |$t:ident| $call:expr) => {
        match $worker {
            Worker::Blocking($t) => $call,
            Worker::Smol($t) => $call,
            Worker::Tokio($t) => $call,
        }
    };
}

/// Sets up a [`Worker`]: the same choices for either runtime.
pub struct Builder {
    runtime: Runtime,
    url: String,
    epoch: Option<u64>,
    token: Option<String>,
    seed: Option<u64>,
    config: Option<SessionConfig>,
    tap: Option<Box<dyn Tap>>,
    outbox: Option<(tether_store::SqliteStore, tether_blocking::SyncPolicy)>,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("runtime", &self.runtime)
            .field("url", &self.url)
            .field("epoch", &self.epoch)
            .field("seed", &self.seed)
            .field("tap", &self.tap.is_some())
            .field("outbox", &self.outbox.as_ref().map(|o| o.1))
            .finish_non_exhaustive()
    }
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
            tap: None,
            outbox: None,
        }
    }

    /// Sees every output and answer with its time (see [`Tap`]).
    #[must_use]
    pub fn tap(mut self, tap: impl Tap) -> Self {
        self.tap = Some(Box::new(tap));
        self
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

    /// Keep a durable outbox in `store` (the blocking runtime only, for now).
    #[must_use]
    pub fn outbox(
        mut self,
        store: tether_store::SqliteStore,
        policy: tether_blocking::SyncPolicy,
    ) -> Self {
        self.outbox = Some((store, policy));
        self
    }

    /// Starts the session: a driver thread (blocking), a task on smol's global executor, or a
    /// task on the command's tokio runtime.
    pub fn start(self) -> Result<Worker, tether_blocking::BuildError> {
        macro_rules! configure {
            ($b:expr) => {{
                let mut b = $b;
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
                if let Some(tap) = self.tap {
                    b = b.settings(|s| {
                        s.tap(BoxedTap(tap));
                    });
                }
                b
            }};
        }
        match self.runtime {
            Runtime::Blocking => {
                let outbox = self.outbox;
                let mut b = configure!(tether_blocking::Tether::builder(self.url));
                if let Some((store, policy)) = outbox {
                    b = b.outbox(store, policy);
                }
                b.start().map(Worker::Blocking)
            }
            Runtime::Smol | Runtime::Tokio if self.outbox.is_some() => Err(
                tether_blocking::BuildError::Outbox(tether_blocking::StoreError::Open {
                    path: String::new(),
                    message: "the outbox needs --runtime blocking (no async shim has one yet)"
                        .into(),
                }),
            ),
            Runtime::Smol => configure!(tether_smol::Builder::new(self.url))
                .start()
                .map(Worker::Smol),
            Runtime::Tokio => configure!(tether_tokio::Builder::new(self.url))
                .start_on(tokio_runtime().handle())
                .map(Worker::Tokio),
        }
    }
}

/// A boxed [`Tap`] is a tap.
struct BoxedTap(Box<dyn Tap>);

impl Tap for BoxedTap {
    fn output(&mut self, at: tether_core::Instant, output: &tether_core::session::Output) {
        self.0.output(at, output);
    }

    fn answer(
        &mut self,
        at: tether_core::Instant,
        id: tether_core::session::RequestId,
        answer: Result<&tether_blocking::HttpResponse, &tether_core::session::TransportError>,
    ) {
        self.0.answer(at, id, answer);
    }

    fn drained(&mut self, at: tether_core::Instant, session: &tether_core::session::Session) {
        self.0.drained(at, session);
    }
}

/// Why an event was not queued, as `pipe` reports it.
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

impl From<tether_blocking::SendError> for SendError {
    fn from(error: tether_blocking::SendError) -> Self {
        match error {
            tether_blocking::SendError::Timeout { event } => SendError::Timeout {
                payload: payload_of(&event),
            },
            tether_blocking::SendError::Ended { event, status } => SendError::Ended {
                payload: payload_of(&event),
                status,
            },
            other => SendError::Refused(other.to_string()),
        }
    }
}

/// A refused event's payload; one serde_json cannot read back is kept as its text.
pub fn payload_of(event: &Refused) -> Value {
    event.payload().unwrap_or_else(|_| {
        Value::String(String::from_utf8_lossy(&event.payload_bytes()).into_owned())
    })
}

/// A running session on either runtime. Every method blocks the calling thread; `Worker` is
/// `Sync`, so a progress thread may read it while another sends.
pub enum Worker {
    /// Driven by `tether-blocking`: a driver thread and HTTP worker threads.
    Blocking(tether_blocking::Tether),
    /// Driven by `tether-smol`: a task on smol's global executor.
    Smol(tether_smol::Tether),
    /// Driven by `tether-tokio`: a task on the command's tokio runtime.
    Tokio(tether_tokio::Tether),
}

/// The command's tokio runtime: one worker thread runs the driver task (and hyper's connection
/// tasks); the command's threads wait on it with `block_on`, from outside it.
fn tokio_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("tether-tokio")
            .enable_all()
            .build()
            .expect("the tokio runtime starts")
    })
}

impl Worker {
    /// Queues an event for `/worker/events`, waiting up to `timeout` for room.
    pub fn send_event(&self, payload: Value, timeout: Duration) -> Result<(), SendError> {
        wait!(self, |t| t.send_event(payload, timeout))
            .map(drop)
            .map_err(SendError::from)
    }

    /// Queues an event for `/worker/internal-events`, waiting up to `timeout` for room.
    pub fn send_internal_event(&self, payload: Value, timeout: Duration) -> Result<(), SendError> {
        wait!(self, |t| t.send_internal_event(payload, timeout))
            .map(drop)
            .map_err(SendError::from)
    }

    /// A stream delta of `key` for `/worker/events`, merged with its key's deltas within the
    /// window; never waits.
    pub fn send_delta(
        &self,
        key: String,
        payload: Value,
    ) -> Result<(), tether_core::batch::DeltaError> {
        now!(self, |t| t.send_delta(key, payload))
    }

    /// Applies a patch to the worker document; never waits for the network.
    pub fn patch_state(&self, patch: Value) -> Result<(), PatchError> {
        now!(self, |t| t.patch_state(patch)).map(drop)
    }

    /// The worker document as the server will hold it once every pending patch has landed.
    pub fn state(&self) -> Value {
        now!(self, |t| t.state())
    }

    /// The current status.
    pub fn status(&self) -> Status {
        now!(self, |t| t.status())
    }

    /// The counters now.
    pub fn counters(&self) -> Counters {
        now!(self, |t| t.counters())
    }

    /// The status changes, from the first status to the terminal one.
    pub fn statuses(&self) -> Statuses {
        match self {
            Worker::Blocking(t) => Statuses::Blocking(t.statuses()),
            Worker::Smol(t) => Statuses::Smol(t.statuses()),
            Worker::Tokio(t) => Statuses::Tokio(t.statuses()),
        }
    }

    /// What happens to the events and patches, as it happens.
    pub fn reports(&self) -> Reports {
        match self {
            Worker::Blocking(t) => Reports::Blocking(t.reports()),
            Worker::Smol(t) => Reports::Smol(t.reports()),
            Worker::Tokio(t) => Reports::Smol(t.reports()),
        }
    }

    /// Waits until everything queued before is delivered or handed back and every patch has
    /// landed, at most `timeout`.
    pub fn flush(&self, timeout: Duration) -> Result<(), FlushError> {
        wait!(self, |t| t.flush(timeout))
    }

    /// Stops intake, drains for at most `timeout`, then hands back what is left. Returns once
    /// the session has ended; the statuses then end too.
    pub fn close(self, timeout: Duration) -> CloseReport {
        self.close_ref(timeout)
    }

    /// [`close`](Self::close) through a reference (the handle lives on).
    pub fn close_ref(&self, timeout: Duration) -> CloseReport {
        wait!(self, |t| t.close(timeout))
    }

    /// The blocking shim's handle, when the session runs on it.
    pub fn blocking(&self) -> Option<&tether_blocking::Tether> {
        match self {
            Worker::Blocking(t) => Some(t),
            _ => None,
        }
    }
}

/// A session's status changes, read by blocking.
pub enum Statuses {
    /// From `tether-blocking`.
    Blocking(tether_blocking::Statuses),
    /// From `tether-smol`.
    Smol(tether_smol::Statuses),
    /// From `tether-tokio`.
    Tokio(tether_tokio::Statuses),
}

impl Statuses {
    /// The changes ready now, without waiting. A status stream that lagged only skipped
    /// changes older than the ones it still holds, so the lag marker is passed over.
    pub fn ready(&self) -> Vec<Status> {
        match self {
            Statuses::Blocking(s) => s.try_iter().flatten().collect(),
            Statuses::Smol(s) => std::iter::from_fn(|| s.try_next()).flatten().collect(),
            Statuses::Tokio(s) => std::iter::from_fn(|| s.try_next()).flatten().collect(),
        }
    }
}

impl Iterator for Statuses {
    type Item = Status;

    /// The next change, waiting for it; `None` once the session has ended. Lag markers are
    /// passed over, as in [`ready`](Statuses::ready).
    fn next(&mut self) -> Option<Status> {
        loop {
            let next = match self {
                Statuses::Blocking(s) => s.recv(),
                Statuses::Smol(s) => smol::block_on(s.next()),
                Statuses::Tokio(s) => tokio_runtime().block_on(s.next()),
            };
            match next? {
                Ok(status) => return Some(status),
                Err(_lagged) => continue,
            }
        }
    }
}

/// A session's live reports, read by blocking.
pub enum Reports {
    /// From `tether-blocking`.
    Blocking(tether_blocking::Reports),
    /// From `tether-smol` or `tether-tokio` (the same driver stream; its future needs no
    /// reactor).
    Smol(tether_smol::Reports),
}

impl Iterator for Reports {
    type Item = Result<tether_blocking::Report, tether_blocking::Lagged>;

    /// The next report, waiting for it; `None` once the session has ended.
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Reports::Blocking(r) => r.recv(),
            Reports::Smol(r) => smol::block_on(r.next()),
        }
    }
}
