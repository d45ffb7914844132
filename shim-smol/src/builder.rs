//! Starting a session: the settings every shim shares, plus the transport and the executor.

use std::sync::Arc;

use tether_core::session::{Output, SessionConfig};
use tether_driver::{
    BuildError, Handle, Origin, SessionUrl, Settings, Shared, Token, Wakeup, random_seed,
};

use crate::http1::HttpTransport;
use crate::run::{DriverFuture, SmolTimer, now};
use crate::{Tether, Transport};

/// Builds a [`Tether`]. See [`Settings`] for what each option means; they are the same on
/// every runtime.
#[derive(Clone, Debug)]
pub struct Builder {
    url: String,
    settings: Settings,
    transport: Option<Arc<dyn Transport>>,
}

impl Builder {
    /// A builder for the session at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        let url = url.into();
        Builder {
            settings: Settings::new(url.clone()),
            url,
            transport: None,
        }
    }

    /// Use this worker epoch.
    #[must_use]
    pub fn epoch(mut self, epoch: u64) -> Self {
        self.settings.epoch(epoch);
        self
    }

    /// Register for a new epoch.
    #[must_use]
    pub fn register(mut self) -> Self {
        self.settings.register();
        self
    }

    /// Send this bearer token (never printed).
    #[must_use]
    pub fn token(mut self, token: impl Into<Token>) -> Self {
        self.settings.token(token);
        self
    }

    /// Seed every random choice.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.settings.seed(seed);
        self
    }

    /// The core's configuration.
    #[must_use]
    pub fn config(mut self, config: SessionConfig) -> Self {
        self.settings.config(config);
        self
    }

    /// Any other setting of the driver (`user_agent`, `drop_close_timeout`, `tap`, ...): the
    /// same on every runtime.
    #[must_use]
    pub fn settings(mut self, f: impl FnOnce(&mut Settings)) -> Self {
        f(&mut self.settings);
        self
    }

    /// A retry budget shared with every session given a clone of it. It runs on the sessions'
    /// own clock, so it takes none.
    #[must_use]
    pub fn retry_budget(mut self, budget: tether_driver::SharedRetryBudget) -> Self {
        self.settings.retry_budget(budget);
        self
    }

    /// A hook that sees every core output in order (it must not call the handle).
    #[must_use]
    pub fn observer(mut self, observer: impl FnMut(&Output) + Send + 'static) -> Self {
        self.settings.observer(observer);
        self
    }

    /// Use this HTTP client instead of [`HttpTransport`].
    #[must_use]
    pub fn transport(mut self, transport: impl Transport) -> Self {
        self.transport = Some(Arc::new(transport));
        self
    }

    /// Starts the session on smol's global executor.
    ///
    /// # Errors
    /// See [`BuildError`].
    pub fn start(self) -> Result<Tether, BuildError> {
        let (tether, driver) = self.into_parts()?;
        smol::spawn(driver).detach();
        Ok(tether)
    }

    /// Starts the session on `executor`.
    ///
    /// # Errors
    /// See [`BuildError`].
    pub fn start_on(self, executor: &smol::Executor<'_>) -> Result<Tether, BuildError> {
        let (tether, driver) = self.into_parts()?;
        executor.spawn(driver).detach();
        Ok(tether)
    }

    /// The handle and the driver future, for any executor that runs async-io's reactor.
    ///
    /// # Errors
    /// See [`BuildError`].
    pub fn into_parts(self) -> Result<(Tether, DriverFuture), BuildError> {
        let origin = Origin::new(now());
        let driver = self.settings.start(origin, random_seed())?;
        let transport: Arc<dyn Transport> = match self.transport {
            Some(transport) => transport,
            None => Arc::new(HttpTransport::for_url(SessionUrl::parse(&self.url)?)?),
        };
        let wakeup = Arc::new(Wakeup::default());
        let notify = Arc::clone(&wakeup);
        let clock = Box::new(move || origin.to_core(now()));
        let shared = Shared::new(driver, clock, Box::new(move || notify.wake()));
        let timer = SmolTimer::new(origin);
        let future = DriverFuture::new(Arc::clone(&shared), Arc::clone(&wakeup), transport, timer);
        Ok((Tether::new(Handle::new(shared), wakeup), future))
    }
}
