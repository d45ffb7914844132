//! What a session is started with: the session URL, the epoch or registration, the token, the
//! seed, the core's configuration, and the shim-independent options. Every shim's builder
//! holds one of these, so that the rules are the same everywhere.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tether_core::Instant;
use tether_core::Rng;
use tether_core::session::{Output, Session, SessionConfig};

use crate::budget::SharedRetryBudget;
use crate::clock::{ClockInstant, Origin};
use crate::driver::Driver;
use crate::error::BuildError;
use crate::hook::{Observer, Tap};
use crate::http::{Target, USER_AGENT};
use crate::outbox::Outbox;
use crate::store::{Store, StoreError, SyncPolicy};
use crate::url::{SessionUrl, Token};

/// How long a session whose handle was dropped without `close` keeps draining before it hands
/// back what is left. The default of [`Settings::drop_close_timeout`].
pub const DEFAULT_DROP_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// A tap held by settings that may be cloned: the first session started takes it.
type SharedTap = Arc<Mutex<Option<Box<dyn Tap>>>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EpochChoice {
    FromConfig,
    Given(u64),
    Register,
}

/// The settings of a session, shared by every shim's builder.
#[derive(Clone)]
pub struct Settings {
    url: String,
    epoch: EpochChoice,
    token: Option<Token>,
    seed: Option<u64>,
    config: Option<SessionConfig>,
    user_agent: String,
    drop_close_timeout: Duration,
    observer: Option<Arc<Mutex<Observer>>>,
    tap: Option<SharedTap>,
    retry_budget: Option<SharedRetryBudget>,
    outbox: Option<OutboxSetting>,
}

/// The outbox's store, taken by the first `start` (settings are cloned by builders).
#[derive(Clone)]
struct OutboxSetting {
    store: Arc<Mutex<Option<Box<dyn Store>>>>,
    policy: SyncPolicy,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("url", &self.url)
            .field("epoch", &self.epoch)
            .field("token", &self.token)
            .field("seed", &self.seed)
            .field("config", &self.config)
            .field("user_agent", &self.user_agent)
            .field("drop_close_timeout", &self.drop_close_timeout)
            .field("observer", &self.observer.is_some())
            .field("tap", &self.tap.is_some())
            .field("retry_budget", &self.retry_budget)
            .field("outbox", &self.outbox.as_ref().map(|o| o.policy))
            .finish()
    }
}

impl Settings {
    /// Settings for the session at `url`; nothing is checked until [`start`](Self::start).
    pub fn new(url: impl Into<String>) -> Self {
        Settings {
            url: url.into(),
            epoch: EpochChoice::FromConfig,
            token: None,
            seed: None,
            config: None,
            user_agent: USER_AGENT.to_string(),
            drop_close_timeout: DEFAULT_DROP_CLOSE_TIMEOUT,
            observer: None,
            tap: None,
            retry_budget: None,
            outbox: None,
        }
    }

    /// Use this worker epoch (you were given one).
    pub fn epoch(&mut self, epoch: u64) -> &mut Self {
        self.epoch = EpochChoice::Given(epoch);
        self
    }

    /// Register for a new epoch (`POST /worker/register`).
    pub fn register(&mut self) -> &mut Self {
        self.epoch = EpochChoice::Register;
        self
    }

    /// Send this bearer token (never printed).
    pub fn token(&mut self, token: impl Into<Token>) -> &mut Self {
        self.token = Some(token.into());
        self
    }

    /// Seed every random choice (jitter, event uuids): the same seed and the same responses give
    /// the same requests. Default: a seed the shim draws.
    pub fn seed(&mut self, seed: u64) -> &mut Self {
        self.seed = Some(seed);
        self
    }

    /// The core's configuration. Its `session_id` defaults to the URL's last segment.
    pub fn config(&mut self, config: SessionConfig) -> &mut Self {
        self.config = Some(config);
        self
    }

    /// The `User-Agent` header. Default `tether/<version>`.
    pub fn user_agent(&mut self, user_agent: impl Into<String>) -> &mut Self {
        self.user_agent = user_agent.into();
        self
    }

    /// How long a session whose handle is dropped without `close` keeps draining.
    pub fn drop_close_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.drop_close_timeout = timeout;
        self
    }

    /// A hook that sees every core output (see [`Observer`]).
    pub fn observer(&mut self, observer: impl FnMut(&Output) + Send + 'static) -> &mut Self {
        self.observer = Some(Arc::new(Mutex::new(Box::new(observer))));
        self
    }

    /// A [`Tap`]: every output and answer with its time, and the session after each drain.
    /// A clone of these settings starts without it (a tap belongs to one session).
    pub fn tap(&mut self, tap: impl Tap) -> &mut Self {
        self.tap = Some(Arc::new(Mutex::new(Some(Box::new(tap)))));
        self
    }

    /// Puts this session's retries under a budget shared with every session given a clone of
    /// it (in place of the configuration's own `retry_budget`).
    pub fn retry_budget(&mut self, budget: SharedRetryBudget) -> &mut Self {
        self.retry_budget = Some(budget);
        self
    }

    /// Keeps a durable outbox in `store` (docs/ARCHITECTURE.md §Durable outbox): every accepted event and
    /// the unacknowledged state are written there, in one group commit per loop turn, synced as
    /// `policy` says; a send is answered only once its event is durable. At start, what the
    /// store holds is given to the session again with its original uuids, before any new
    /// event, so the server de-duplicates what landed before a crash.
    pub fn outbox(&mut self, store: impl Store + 'static, policy: SyncPolicy) -> &mut Self {
        self.outbox = Some(OutboxSetting {
            store: Arc::new(Mutex::new(Some(Box::new(store)))),
            policy,
        });
        self
    }

    /// Checks everything and starts the session's machine, seeded by the configured seed or
    /// else `default_seed`. `origin` is the instant of the shim's clock that the driver's time
    /// (the core's [`Instant`]) counts from: the shim reads its clock and converts with it,
    /// once, at its edge; the driver itself only uses it to meet a shared retry budget on
    /// common ground.
    ///
    /// # Errors
    /// [`BuildError::InvalidUrl`], [`BuildError::UnsupportedScheme`] or
    /// [`BuildError::Config`].
    pub fn start<I: ClockInstant>(
        self,
        origin: Origin<I>,
        default_seed: u64,
    ) -> Result<Driver, BuildError> {
        let url = SessionUrl::parse(&self.url)?;
        if url.last_segment().is_empty() {
            return Err(BuildError::InvalidUrl {
                reason: "its path does not end with a session id".into(),
            });
        }
        if let Some(token) = &self.token {
            let visible = token.expose().bytes().all(|b| (0x21..=0x7e).contains(&b));
            if token.expose().is_empty() || !visible {
                return Err(BuildError::InvalidToken);
            }
        }
        let mut config = self
            .config
            .unwrap_or_else(|| SessionConfig::new(url.last_segment()));
        if config.session_id.is_empty() {
            config.session_id = url.last_segment().to_string();
        }
        match self.epoch {
            EpochChoice::FromConfig => {}
            EpochChoice::Given(epoch) => config.epoch = Some(epoch),
            EpochChoice::Register => config.epoch = None,
        }
        let target = Target {
            url,
            token: self.token,
            user_agent: self.user_agent.into(),
            max_response_body: config.max_response_body,
        };
        let outbox = match &self.outbox {
            None => None,
            Some(setting) => {
                let store = setting
                    .store
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take()
                    .ok_or_else(|| {
                        BuildError::Outbox(StoreError::Open {
                            path: String::new(),
                            message: "the store was already taken by another start".into(),
                        })
                    })?;
                config.outbox = true;
                Some(Outbox::open(store, setting.policy).map_err(BuildError::Outbox)?)
            }
        };
        let mut seed = self.seed.unwrap_or(default_seed);
        if let Some((outbox, _)) = &outbox {
            // A restart on the same outbox with the same seed must not draw the same uuids
            // again: the server would take new events for duplicates of old ones.
            seed ^= outbox.next_key().wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
        let mut session =
            Session::new(config, Rng::new(seed), Instant::ZERO).map_err(BuildError::Config)?;
        if let Some(budget) = &self.retry_budget {
            session.set_retry_gate(budget.gate(origin));
        }
        let observer = self.observer.map(|shared| -> Observer {
            Box::new(move |output: &Output| {
                let mut observer = shared.lock().unwrap_or_else(PoisonError::into_inner);
                (*observer)(output);
            })
        });
        let tap = self
            .tap
            .and_then(|shared| shared.lock().unwrap_or_else(PoisonError::into_inner).take());
        let mut driver = Driver::new(
            Instant::ZERO,
            session,
            target,
            observer,
            tap,
            self.drop_close_timeout,
        );
        driver.thread_seed = seed ^ 0x7468_7265_6164_7321; // "threads!"
        // Thread sync's retries spend from the same shared budget.
        driver.thread_gate = self.retry_budget.as_ref().map(|b| b.gate(origin));
        Ok(match outbox {
            Some((outbox, state)) => driver.with_outbox(outbox, state),
            None => driver,
        })
    }
}

/// A seed for a session whose builder was given none: the standard library's randomly keyed
/// hasher over a process-wide counter, so two sessions never share one. The only randomness the
/// driver takes from the OS, and only when no seed was given.
pub fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_without_a_session_id_is_refused_and_errors_never_repeat_credentials() {
        let now = Origin::new(tether_core::Instant::ZERO);
        for url in ["http://127.0.0.1:8787", "http://127.0.0.1:8787/"] {
            assert!(matches!(
                Settings::new(url).start(now, 1),
                Err(BuildError::InvalidUrl { .. })
            ));
        }
        let err = Settings::new("http://user:hunter2@127.0.0.1/v1/s")
            .start(now, 1)
            .unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let mut settings = Settings::new("http://127.0.0.1:1/v1/s");
        settings.token("hunter2");
        assert!(!format!("{settings:?}").contains("hunter2"));
    }
}
