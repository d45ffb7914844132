//! [`Builder`]: one way to start a session on every runtime.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tether_core::session::{Output, SessionConfig};

use crate::budget::SharedRetryBudget;
use crate::error::BuildError;
use crate::hook::Tap;
use crate::runtime::{AsyncTransport, DriverTask, Runtime};
use crate::settings::{Settings, random_seed};
use crate::shared::Shared;
use crate::store::{Store, SyncPolicy};
use crate::task::Wakeup;
use crate::tether::Tether;
use crate::url::{SessionUrl, Token};

/// Starts a session on runtime `R`. Each shim names its runtime (`tether_blocking::builder`,
/// `tether_smol::builder`, `tether_tokio::builder`); every option means the same on each (see
/// [`Settings`] for the details of each).
///
/// ```
/// use tether_driver::{Builder, BuildError};
/// # fn demo<R: tether_driver::runtime::Runtime>(runtime: R) -> Result<(), BuildError> {
/// let tether = Builder::new("http://127.0.0.1:8080/v1/code/sessions/s1", runtime)
///     .register()
///     .token("secret")
///     .start()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Builder<R> {
    url: String,
    settings: Settings,
    runtime: R,
    transport: Option<Arc<dyn AsyncTransport>>,
}

impl<R> fmt::Debug for Builder<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("settings", &self.settings)
            .field("transport", &self.transport.is_some())
            .finish_non_exhaustive()
    }
}

macro_rules! setting {
    ($($(#[$doc:meta])* $name:ident($($arg:ident: $ty:ty),*);)*) => {$(
        $(#[$doc])*
        #[must_use]
        pub fn $name(mut self $(, $arg: $ty)*) -> Self {
            self.settings.$name($($arg),*);
            self
        }
    )*};
}

impl<R: Runtime> Builder<R> {
    /// A session at `url`, driven by `runtime`.
    pub fn new(url: impl Into<String>, runtime: R) -> Self {
        let url = url.into();
        Builder {
            settings: Settings::new(url.clone()),
            url,
            runtime,
            transport: None,
        }
    }

    setting! {
        /// Use this worker epoch ([`Settings::epoch`]).
        epoch(epoch: u64);
        /// Register for a new epoch ([`Settings::register`]).
        register();
        /// Seed every random choice ([`Settings::seed`]).
        seed(seed: u64);
        /// The core's configuration ([`Settings::config`]).
        config(config: SessionConfig);
        /// Send this bearer token, never shown ([`Settings::token`]).
        token(token: impl Into<Token>);
        /// A retry budget shared with every session given a clone ([`Settings::retry_budget`]).
        retry_budget(budget: SharedRetryBudget);
        /// A hook that sees every core output in order ([`Settings::observer`]).
        observer(observer: impl FnMut(&Output) + Send + 'static);
        /// A tap on outputs and answers, for tracing ([`Settings::tap`]).
        tap(tap: impl Tap);
        /// The `User-Agent` header ([`Settings::user_agent`]).
        user_agent(user_agent: impl Into<String>);
        /// How long a dropped handle drains before the session ends
        /// ([`Settings::drop_close_timeout`]).
        drop_close_timeout(timeout: Duration);
        /// A durable outbox in `store` under `policy` ([`Settings::outbox`]).
        outbox(store: impl Store + 'static, policy: SyncPolicy);
    }

    /// Any setting, on the [`Settings`] themselves.
    #[must_use]
    pub fn settings(mut self, f: impl FnOnce(&mut Settings)) -> Self {
        f(&mut self.settings);
        self
    }

    /// Use this HTTP client instead of the runtime's own. Sessions given clones of one
    /// transport share its connections.
    #[must_use]
    pub fn transport(mut self, transport: impl AsyncTransport) -> Self {
        self.transport = Some(Arc::new(transport));
        self
    }

    /// Checks everything and starts the session's driver on the runtime.
    ///
    /// # Errors
    /// See [`BuildError`].
    pub fn start(self) -> Result<Tether, BuildError> {
        let (tether, task, runtime) = self.parts()?;
        runtime.spawn(task).map_err(BuildError::Spawn)?;
        Ok(tether)
    }

    /// Checks everything and returns the handle and the driver's task without spawning it:
    /// spawn it on an executor of your choice, or await it. The session runs while the task
    /// is polled; dropping the task ends the session at once (see [`DriverTask`]).
    ///
    /// # Errors
    /// See [`BuildError`].
    pub fn into_parts(self) -> Result<(Tether, DriverTask<R::Timer>), BuildError> {
        self.parts().map(|(tether, task, _)| (tether, task))
    }

    fn parts(self) -> Result<(Tether, DriverTask<R::Timer>, R), BuildError> {
        let origin = R::origin();
        let driver = self.settings.start(origin, random_seed())?;
        let transport = match self.transport {
            Some(transport) => transport,
            None => self.runtime.transport(&SessionUrl::parse(&self.url)?)?,
        };
        let wakeup = Arc::new(Wakeup::default());
        let notify = Arc::clone(&wakeup);
        let clock = Box::new(move || R::now(&origin));
        let shared = Shared::new(driver, clock, Box::new(move || notify.wake()));
        let timer = self.runtime.timer(origin);
        let task = DriverTask::new(Arc::clone(&shared), wakeup, transport, R::run_store, timer);
        Ok((Tether::new(shared), task, self.runtime))
    }
}
