//! [`Builder`]: from a session URL to a running [`Tether`].

use std::sync::Arc;

use tether_core::session::{Output, Session, SessionConfig};
use tether_core::Instant;

use crate::clock::Clock;
use crate::driver::{Driver, DriverParts, Shared};
use crate::error::BuildError;
use crate::handle::Tether;
use crate::http1::{HttpTransport, USER_AGENT};
use crate::token::Token;
use crate::transport::Transport;
use crate::url::SessionUrl;

/// Commands waiting for the driver; senders wait (asynchronously) beyond this.
const COMMAND_QUEUE: usize = 256;
/// Statuses kept for a slow reader of [`Tether::statuses`].
const STATUS_QUEUE: usize = 64;

/// Configures and starts a session.
///
/// ```no_run
/// # smol::block_on(async {
/// let tether = tether_smol::Builder::new("http://127.0.0.1:8787/v1/code/sessions/s1")
///     .epoch(7)
///     .token("secret")
///     .start()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # });
/// ```
pub struct Builder {
    url: String,
    epoch: Option<u64>,
    token: Option<Token>,
    seed: Option<u64>,
    config: Option<SessionConfig>,
    transport: Option<Arc<dyn Transport>>,
    user_agent: Option<String>,
    observer: Option<crate::driver::Observer>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("url", &self.url)
            .field("epoch", &self.epoch)
            .field("token", &self.token)
            .field("seed", &self.seed)
            .field("config", &self.config)
            .field("custom_transport", &self.transport.is_some())
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// A session at `session_url` (`http` or `https`), which registers for its epoch unless
    /// [`epoch`](Builder::epoch) gives one. The session id is the URL's last path segment
    /// unless [`config`](Builder::config) names another.
    pub fn new(session_url: impl Into<String>) -> Self {
        Builder {
            url: session_url.into(),
            epoch: None,
            token: None,
            seed: None,
            config: None,
            transport: None,
            user_agent: None,
            observer: None,
        }
    }

    /// Use this worker epoch instead of registering for a new one.
    #[must_use]
    pub fn epoch(mut self, epoch: u64) -> Self {
        self.epoch = Some(epoch);
        self
    }

    /// Register for a new epoch (`POST /worker/register`); the default.
    #[must_use]
    pub fn register(mut self) -> Self {
        self.epoch = None;
        if let Some(config) = &mut self.config {
            config.epoch = None;
        }
        self
    }

    /// Send `Authorization: Bearer <token>`. The token is never printed or logged.
    #[must_use]
    pub fn token(mut self, token: impl Into<Token>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The seed of every random choice (jitter, event uuids); the same seed and the same
    /// responses give the same requests. Default: a fresh random seed.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The core's configuration (timeouts, batch sizes, heartbeat, ...). An
    /// [`epoch`](Builder::epoch) given to the builder overrides the configuration's.
    #[must_use]
    pub fn config(mut self, config: SessionConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// Use this HTTP client instead of the built-in one.
    #[must_use]
    pub fn transport(mut self, transport: impl Transport) -> Self {
        self.transport = Some(Arc::new(transport));
        self
    }

    /// The `User-Agent` of the built-in transport. Default `tether-smol/<version>`.
    #[must_use]
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// Calls `observer` with every output of the core, in order, before the driver acts on it
    /// (a trace hook: requests, statuses, deliveries, hand-backs). It runs on the driver task:
    /// keep it short.
    #[must_use]
    pub fn observer(mut self, observer: impl FnMut(&Output) + Send + 'static) -> Self {
        self.observer = Some(Box::new(observer));
        self
    }

    /// Starts the session on smol's global executor.
    pub fn start(self) -> Result<Tether, BuildError> {
        let (tether, driver) = self.into_parts()?;
        smol::spawn(driver).detach();
        Ok(tether)
    }

    /// Starts the session on `executor`.
    pub fn start_on(self, executor: &smol::Executor<'_>) -> Result<Tether, BuildError> {
        let (tether, driver) = self.into_parts()?;
        executor.spawn(driver).detach();
        Ok(tether)
    }

    /// The handle and the driver future, for any executor that runs async-io's reactor. The
    /// session's clock starts now.
    pub fn into_parts(self) -> Result<(Tether, Driver), BuildError> {
        let url = SessionUrl::parse(&self.url)?;
        if let Some(token) = &self.token {
            let printable = token.expose().bytes().all(|b| (0x21..=0x7e).contains(&b));
            if token.expose().is_empty() || !printable {
                return Err(BuildError::InvalidToken);
            }
        }
        let mut config = self
            .config
            .unwrap_or_else(|| SessionConfig::new(url.last_segment()));
        if self.epoch.is_some() {
            config.epoch = self.epoch;
        }
        let transport: Arc<dyn Transport> = match self.transport {
            Some(transport) => transport,
            None => Arc::new(HttpTransport::for_url(
                url.clone(),
                self.user_agent.unwrap_or_else(|| USER_AGENT.to_string()),
            )?),
        };
        let seed = self.seed.unwrap_or_else(random_seed);
        let clock = Clock::start();
        let session = Session::new(config, tether_core::Rng::new(seed), Instant::ZERO)
            .map_err(BuildError::Config)?;
        let (command_tx, command_rx) = async_channel::bounded(COMMAND_QUEUE);
        let (status_tx, status_rx) = async_channel::bounded(STATUS_QUEUE);
        let shared = Arc::new(Shared::new());
        let driver = Driver::new(DriverParts {
            session,
            clock,
            url: url.clone(),
            token: self.token,
            transport,
            commands: command_rx,
            statuses: status_tx,
            shared: Arc::clone(&shared),
            observer: self.observer,
        });
        let tether = Tether {
            commands: command_tx,
            statuses: status_rx,
            shared,
            url,
        };
        Ok((tether, driver))
    }
}

/// A seed from the standard library's randomly keyed hasher and a process-wide counter.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}
