//! Starting a session: the settings every shim shares, plus the transport and the runtime.

use std::sync::Arc;

use tether_core::session::{Output, SessionConfig};
use tether_driver::{
    BuildError, Handle, Origin, SessionUrl, Settings, Shared, Token, Wakeup, random_seed,
};

use crate::http::HttpTransport;
use crate::run::{DriverFuture, TokioTimer, now};
use crate::{Tether, Transport};

/// Builds a [`Tether`]. See [`Settings`] for what each option means; they are the same on
/// every runtime.
#[derive(Clone, Debug)]
pub struct Builder {
    url: String,
    settings: Settings,
    transport: Option<Arc<dyn Transport>>,
}

/// Builder methods that set one of the shared [`Settings`].
macro_rules! setting {
    ($(#[$doc:meta] $name:ident($($arg:ident: $ty:ty),*);)*) => {$(
        #[$doc]
        #[must_use]
        pub fn $name(mut self $(, $arg: $ty)*) -> Self {
            self.settings.$name($($arg),*);
            self
        }
    )*};
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

    setting! {
        /// Use this worker epoch.
        epoch(epoch: u64);
        /// Register for a new epoch.
        register();
        /// Seed every random choice.
        seed(seed: u64);
        /// The core's configuration.
        config(config: SessionConfig);
        /// Send this bearer token (never printed).
        token(token: impl Into<Token>);
        /// Share a retry budget with other sessions (it runs on their clock, paused or not).
        retry_budget(budget: tether_driver::SharedRetryBudget);
        /// A hook that sees every core output in order (it must not call the handle).
        observer(observer: impl FnMut(&Output) + Send + 'static);
    }

    /// Any other setting of the driver (`user_agent`, `drop_close_timeout`, `tap`, ...): the
    /// same on every runtime.
    #[must_use]
    pub fn settings(mut self, f: impl FnOnce(&mut Settings)) -> Self {
        f(&mut self.settings);
        self
    }

    /// Use this HTTP client instead of a new [`HttpTransport`]. Many sessions may share one
    /// (clone it): they then share its connection pool.
    #[must_use]
    pub fn transport(mut self, transport: impl Transport) -> Self {
        self.transport = Some(Arc::new(transport));
        self
    }

    /// Starts the session on the current tokio runtime (`tokio::spawn`).
    ///
    /// # Errors
    /// See [`BuildError`].
    ///
    /// # Panics
    /// Outside a tokio runtime, as `tokio::spawn` does.
    pub fn start(self) -> Result<Tether, BuildError> {
        let (tether, driver) = self.into_parts()?;
        tokio::spawn(driver);
        Ok(tether)
    }

    /// Starts the session on the runtime behind `handle`.
    ///
    /// # Errors
    /// See [`BuildError`].
    pub fn start_on(self, handle: &tokio::runtime::Handle) -> Result<Tether, BuildError> {
        let (tether, driver) = self.into_parts()?;
        handle.spawn(driver);
        Ok(tether)
    }

    /// The handle and the driver future, to spawn or await on a tokio runtime (its timer and,
    /// for the built-in transport, its I/O driver must be enabled).
    ///
    /// # Errors
    /// See [`BuildError`].
    pub fn into_parts(self) -> Result<(Tether, DriverFuture), BuildError> {
        let origin = Origin::new(now());
        let driver = self.settings.start(origin, random_seed())?;
        let transport: Arc<dyn Transport> = match self.transport {
            Some(transport) => transport,
            None => Arc::new(HttpTransport::for_url(&SessionUrl::parse(&self.url)?)?),
        };
        let wakeup = Arc::new(Wakeup::default());
        let notify = Arc::clone(&wakeup);
        let clock = Box::new(move || origin.to_core(now()));
        let shared = Shared::new(driver, clock, Box::new(move || notify.wake()));
        let timer = TokioTimer::new(origin);
        let future = DriverFuture::new(Arc::clone(&shared), Arc::clone(&wakeup), transport, timer);
        Ok((Tether::new(Handle::new(shared), wakeup), future))
    }
}
