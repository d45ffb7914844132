//! The session's configuration, its defaults (docs/ARCHITECTURE.md) and its validation.

use alloc::string::String;
use core::fmt;
use core::time::Duration;

use crate::backoff::{BackoffPolicy, ControllerConfig};
use crate::batch::{self, DeltaConfig, DeltaConfigError, Envelope};
use crate::budget::{RetryBudgetConfig, RetryBudgetError};
use crate::heartbeat;
use crate::state;

/// Everything a session needs to know before it starts.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// The session id, sent in heartbeat bodies.
    pub session_id: String,
    /// The worker epoch, if the caller was given one; `None` registers for a new one.
    pub epoch: Option<u64>,
    /// Heartbeat cadence and liveness TTL.
    pub heartbeat: heartbeat::Config,
    /// The `/worker/events` uploader.
    pub events: batch::Config,
    /// The `/worker/internal-events` uploader.
    pub internal_events: batch::Config,
    /// The `/worker/events/delivery` uploader: 64 per batch and 64 queued by default.
    pub delivery: batch::Config,
    /// The `PUT /worker` uploader.
    pub state: state::Config,
    /// Retries of the connect sequence (register, init `PUT`, `GET`): the reconnect curve
    /// (1 s doubling to 30 s) and six retries by default.
    pub connect: ControllerConfig,
    /// Deadline of every request but heartbeats. Default 10 s.
    pub request_timeout: Duration,
    /// Deadline of a heartbeat. Default 5 s.
    pub heartbeat_timeout: Duration,
    /// Auth failures (401/403) in a row, across channels, that give up. Default 10.
    pub max_auth_failures: u32,
    /// Treat 404 as transient instead of giving up at once. Default `false`.
    pub session_unknown_is_transient: bool,
    /// What giving up does: end the session, handing everything back (the default), or hold
    /// everything until the caller reconnects or closes (see [`OnGiveUp`]).
    pub on_give_up: OnGiveUp,
    /// The most response body the driver may read and the core will parse. Default 64 KiB.
    pub max_response_body: usize,
    /// A retry budget of the session's own, shared by its channels: a request that follows a
    /// failed one on the same channel waits until the budget pays for it. Default `None` (no
    /// budget). A budget shared with other sessions is given with
    /// [`Session::set_retry_gate`](super::Session::set_retry_gate) instead.
    pub retry_budget: Option<RetryBudgetConfig>,
    /// How [`Session::send_delta`](super::Session::send_delta) merges stream deltas before
    /// they are queued for `/worker/events`: a 100 ms window by default.
    pub deltas: DeltaConfig,
    /// Ask the driver to keep a durable outbox: [`Output::Persist`](super::Output::Persist)
    /// for every accepted event, [`Output::Forget`](super::Output::Forget) once it is
    /// delivered (or let go by the caller's own policy), [`Output::Dead`](super::Output::Dead)
    /// once the server refused it for good, and
    /// [`Output::PersistState`](super::Output::PersistState) for the unacknowledged state.
    /// What a close, a give-up or a supersede hands back stays kept for the next run (see
    /// [`RecordFate`](super::RecordFate)). Default `false`: none of these outputs.
    pub outbox: bool,
}

impl SessionConfig {
    /// The defaults, for a session that registers for its epoch.
    pub fn new(session_id: impl Into<String>) -> Self {
        SessionConfig {
            session_id: session_id.into(),
            epoch: None,
            heartbeat: heartbeat::Config::default(),
            events: batch::Config::default(),
            internal_events: batch::Config::default(),
            delivery: batch::Config {
                envelope: Envelope::DeliveryUpdates,
                max_batch_items: 64,
                max_queue_items: 64,
                ..batch::Config::default()
            },
            state: state::Config::default().with_request_timeout(None),
            connect: ControllerConfig {
                policy: BackoffPolicy::reconnect(),
                max_attempts: Some(6),
                total_deadline: None,
            },
            request_timeout: Duration::from_secs(10),
            heartbeat_timeout: Duration::from_secs(5),
            max_auth_failures: 10,
            session_unknown_is_transient: false,
            on_give_up: OnGiveUp::End,
            max_response_body: 64 * 1024,
            retry_budget: None,
            deltas: DeltaConfig::default(),
            outbox: false,
        }
    }

    /// The same configuration with a given epoch instead of registration.
    pub fn with_epoch(mut self, epoch: u64) -> Self {
        self.epoch = Some(epoch);
        self
    }

    /// The same configuration with the durable outbox on or off (see [`outbox`](Self::outbox)).
    pub fn with_outbox(mut self, outbox: bool) -> Self {
        self.outbox = outbox;
        self
    }

    /// The same configuration with this give-up behaviour (see [`on_give_up`](Self::on_give_up)).
    pub fn with_on_give_up(mut self, on_give_up: OnGiveUp) -> Self {
        self.on_give_up = on_give_up;
        self
    }

    /// Checks every bound; [`Session::new`](super::Session::new) calls it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.heartbeat.validate().map_err(ConfigError::Heartbeat)?;
        for (stream, config) in [
            ("events", &self.events),
            ("internal_events", &self.internal_events),
            ("delivery", &self.delivery),
        ] {
            config
                .validate()
                .map_err(|error| ConfigError::Uploader { stream, error })?;
        }
        if self.events.envelope != Envelope::Events
            || self.internal_events.envelope != Envelope::Events
            || self.delivery.envelope != Envelope::DeliveryUpdates
        {
            return Err(ConfigError::WrongEnvelope);
        }
        for config in [&self.events, &self.internal_events, &self.delivery] {
            if config.body != batch::BodyMode::Assembled {
                return Err(ConfigError::DeferredBody);
            }
        }
        if self.state.request_timeout.is_some() {
            return Err(ConfigError::StateOwnsDeadline);
        }
        if self.request_timeout.is_zero() || self.heartbeat_timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout);
        }
        if self.max_auth_failures == 0 {
            return Err(ConfigError::ZeroAuthFailures);
        }
        if self.max_response_body < 64 {
            return Err(ConfigError::ResponseBodyCap(self.max_response_body));
        }
        self.deltas.validate().map_err(ConfigError::Deltas)?;
        if let Some(budget) = &self.retry_budget {
            budget.validate().map_err(ConfigError::RetryBudget)?;
        }
        Ok(())
    }
}

/// What a session does when it gives up by the rules (the connect sequence's retries
/// exhausted or refused, [`max_auth_failures`](SessionConfig::max_auth_failures) in a row, an
/// unknown session). A supersede (409) always ends the session, whatever this says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OnGiveUp {
    /// End at once: every undelivered event and the unacknowledged state are handed back,
    /// then [`Status::GivenUp`](super::Status::GivenUp), terminal.
    #[default]
    End,
    /// Hold: stop sending but keep every queue, the pending state patches and the event
    /// uuids, in [`Status::Holding`](super::Status::Holding), until the caller calls
    /// [`Session::reconnect`](super::Session::reconnect) (the give-up counters reset and the
    /// session connects again, re-sending what it holds) or
    /// [`Session::close`](super::Session::close) (which hands everything back as
    /// [`End`](Self::End) would have, and ends with `GivenUp`). A session already closing when
    /// it gives up ends as with `End`.
    Hold,
}

/// A configuration the session refuses.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The heartbeat's bounds.
    Heartbeat(heartbeat::ConfigError),
    /// An uploader's bounds.
    Uploader {
        /// Which uploader.
        stream: &'static str,
        /// What is wrong with it.
        error: batch::ConfigError,
    },
    /// An uploader's envelope does not match its endpoint.
    WrongEnvelope,
    /// A request timeout of zero would fail every request.
    ZeroTimeout,
    /// An uploader set to defer its bodies: the session sends the bodies it is given.
    DeferredBody,
    /// The state uploader has a request timeout of its own; the session owns every deadline.
    StateOwnsDeadline,
    /// `max_auth_failures` of zero would give up before the first request.
    ZeroAuthFailures,
    /// The response body cap is too small for any response of the protocol.
    ResponseBodyCap(usize),
    /// The retry budget's parameters.
    RetryBudget(RetryBudgetError),
    /// The delta coalescer's parameters.
    Deltas(DeltaConfigError),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Heartbeat(e) => write!(f, "heartbeat: {e}"),
            ConfigError::Uploader { stream, error } => write!(f, "{stream} uploader: {error}"),
            ConfigError::WrongEnvelope => f.write_str(
                "the delivery uploader needs the delivery envelope, the others the events envelope",
            ),
            ConfigError::ZeroTimeout => f.write_str("request timeouts must be longer than zero"),
            ConfigError::DeferredBody => {
                f.write_str("the session needs assembled batch bodies (BodyMode::Assembled)")
            }
            ConfigError::StateOwnsDeadline => f.write_str(
                "the state uploader's request_timeout must be None: the session owns deadlines",
            ),
            ConfigError::ZeroAuthFailures => f.write_str("max_auth_failures must be at least 1"),
            ConfigError::RetryBudget(e) => write!(f, "retry budget: {e}"),
            ConfigError::Deltas(e) => write!(f, "deltas: {e}"),
            ConfigError::ResponseBodyCap(n) => {
                write!(
                    f,
                    "a response body cap of {n} bytes is too small (at least 64)"
                )
            }
        }
    }
}

impl core::error::Error for ConfigError {}
