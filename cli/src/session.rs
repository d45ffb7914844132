//! Starting a session on the runtime the command names. Every shim hands back the one
//! `Tether`, so past this point the commands have one path: they wait for its answers with
//! `.wait()` (the blocking shim's threads, smol's task or the command's tokio runtime drive the
//! session; the answers need no runtime of their own).

use std::fmt;

use serde_json::Value;
use tether_blocking::runtime::Runtime as Drive;
use tether_blocking::{BuildError, Refused, Tap, Tether};
use tether_core::session::{SessionConfig, Status};

use crate::args::Runtime;

/// How the command starts its session: the options it has, whichever runtime drives it.
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

    /// Keep a durable outbox in `store`.
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
    /// Starts the session on the command's runtime.
    pub fn start(self) -> Result<Tether, BuildError> {
        match self.runtime {
            Runtime::Blocking => self.on(tether_blocking::Blocking),
            Runtime::Smol => self.on(tether_smol::Smol::global()),
            Runtime::Tokio => self.on(tether_tokio::Tokio::on(tokio_runtime().handle().clone())),
        }
    }

    fn on<R: Drive>(self, runtime: R) -> Result<Tether, BuildError> {
        let mut b = tether_blocking::Builder::new(self.url, runtime);
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
            b = b.tap(BoxedTap(tap));
        }
        if let Some((store, policy)) = self.outbox {
            b = b.outbox(store, policy);
        }
        b.start()
    }
}

/// The command's tokio runtime: one worker thread runs the driver task (and hyper's connection
/// tasks); the command's threads wait for answers from outside it.
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

struct BoxedTap(Box<dyn Tap>);

impl Tap for BoxedTap {
    fn output(&mut self, at: tether_core::Instant, output: &tether_core::session::Output) {
        self.0.output(at, output);
    }

    fn answer(
        &mut self,
        at: tether_core::Instant,
        id: tether_core::session::RequestId,
        answer: Result<
            &tether_blocking::runtime::HttpResponse,
            &tether_core::session::TransportError,
        >,
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
