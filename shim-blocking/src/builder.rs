//! Starting a session: the settings every shim shares, plus the transport.

use std::sync::Arc;
use std::thread;

use tether_core::session::{Output, SessionConfig};
use tether_driver::{BuildError, Handle, Origin, Settings, Shared, Token, random_seed};

use crate::handle::Tether;
use crate::run::{Wakeup, now, run};
use crate::transport::{Transport, Ureq};

/// Builds a [`Tether`]. See [`Settings`] for what each option means; they are the same on
/// every runtime.
#[derive(Clone, Debug)]
pub struct Builder {
    settings: Settings,
    transport: Option<Arc<dyn Transport>>,
}

impl Builder {
    pub(crate) fn new(url: impl Into<String>) -> Self {
        Builder {
            settings: Settings::new(url),
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

    /// Keep a durable outbox in `store` with `policy` (see
    /// [`Settings::outbox`](tether_driver::Settings::outbox)): sends are answered once durable.
    #[must_use]
    pub fn outbox(
        mut self,
        store: impl tether_driver::Store + 'static,
        policy: tether_driver::SyncPolicy,
    ) -> Self {
        self.settings.outbox(store, policy);
        self
    }

    /// A hook that sees every core output in order (it must not call the handle).
    #[must_use]
    pub fn observer(mut self, observer: impl FnMut(&Output) + Send + 'static) -> Self {
        self.settings.observer(observer);
        self
    }

    /// Use this HTTP client instead of ureq.
    #[must_use]
    pub fn transport(mut self, transport: impl Transport) -> Self {
        self.transport = Some(Arc::new(transport));
        self
    }

    /// Checks everything and starts the driver thread.
    ///
    /// # Errors
    /// See [`BuildError`].
    pub fn start(self) -> Result<Tether, BuildError> {
        let origin = Origin::new(now());
        let driver = self.settings.start(origin, random_seed())?;
        let wakeup = Arc::new(Wakeup::default());
        let notify = Arc::clone(&wakeup);
        let clock = Box::new(move || origin.to_core(now()));
        let shared = Shared::new(driver, clock, Box::new(move || notify.wake()));
        let transport = self
            .transport
            .unwrap_or_else(|| Arc::new(Ureq::new()) as Arc<dyn Transport>);
        let loop_shared = Arc::clone(&shared);
        thread::Builder::new()
            .name("tether-driver".into())
            .spawn(move || run(loop_shared, origin, wakeup, transport))
            .map_err(BuildError::Spawn)?;
        Ok(Tether::new(Handle::new(shared)))
    }
}
