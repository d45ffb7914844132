//! Starting a session: the session URL, the epoch or registration, the token, the seed and the
//! core's configuration.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

use tether_core::session::{Output, Session, SessionConfig, Status};

use crate::clock::Clock;
use crate::driver::{Driver, Observer, Shared};
use crate::error::StartError;
use crate::handle::Tether;
use crate::http::{Pool, Target, Ureq};
use crate::token::Token;
use crate::transport::Transport;

/// How the session gets its epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EpochChoice {
    /// Whatever the configuration says (registration unless it has an epoch).
    FromConfig,
    Given(u64),
    Register,
}

/// Sets up a [`Tether`]. Made by [`Tether::builder`].
///
/// Its `Debug` never shows the token. A clone shares the [`transport`](Self::transport) and the
/// [`observer`](Self::observer), if set.
#[derive(Clone)]
pub struct Builder {
    url: String,
    epoch: EpochChoice,
    token: Option<Token>,
    seed: Option<u64>,
    config: Option<SessionConfig>,
    transport: Option<Arc<dyn Transport>>,
    observer: Option<Arc<Mutex<Observer>>>,
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
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

impl Builder {
    pub(crate) fn new(url: impl Into<String>) -> Self {
        Builder {
            url: url.into(),
            epoch: EpochChoice::FromConfig,
            token: None,
            seed: None,
            config: None,
            transport: None,
            observer: None,
        }
    }

    /// Use this worker epoch (the caller was given one) instead of registering.
    #[must_use]
    pub fn epoch(mut self, epoch: u64) -> Self {
        self.epoch = EpochChoice::Given(epoch);
        self
    }

    /// Register for a new epoch with `POST /worker/register` (the default unless the
    /// configuration carries an epoch).
    #[must_use]
    pub fn register(mut self) -> Self {
        self.epoch = EpochChoice::Register;
        self
    }

    /// Send `Authorization: Bearer <token>` on every request.
    #[must_use]
    pub fn token(mut self, token: impl Into<Token>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Seed the core's PRNG (jitter, event uuids). Default: a random seed.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The core's configuration. An empty `session_id` is taken from the URL's last path
    /// segment; [`epoch`](Self::epoch) and [`register`](Self::register) override its `epoch`.
    #[must_use]
    pub fn config(mut self, config: SessionConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// Use this blocking HTTP client instead of the built-in ureq one (see [`Transport`] for
    /// its contract). It runs on the shim's worker threads; the driver, its deadlines and the
    /// core stay as they are, so a scripted transport gives a deterministic test server.
    #[must_use]
    pub fn transport(mut self, transport: impl Transport) -> Self {
        self.transport = Some(Arc::new(transport));
        self
    }

    /// Calls `observer` with every output of the core, in order, before the driver acts on it
    /// (a trace hook: requests, cancels, statuses, deliveries, hand-backs, flush results). It
    /// runs on the driver thread: keep it short, and do not call the [`Tether`] from it.
    #[must_use]
    pub fn observer(mut self, observer: impl FnMut(&Output) + Send + 'static) -> Self {
        self.observer = Some(Arc::new(Mutex::new(Box::new(observer))));
        self
    }

    /// Checks the URL and the configuration, then starts the driver thread. The session
    /// connects in the background; watch [`Tether::statuses`] to follow it.
    pub fn start(self) -> Result<Tether, StartError> {
        let (base, session_id) = check_url(&self.url)?;
        let mut config = self
            .config
            .unwrap_or_else(|| SessionConfig::new(session_id.clone()));
        if config.session_id.is_empty() {
            config.session_id = session_id;
        }
        match self.epoch {
            EpochChoice::FromConfig => {}
            EpochChoice::Given(epoch) => config.epoch = Some(epoch),
            EpochChoice::Register => config.epoch = None,
        }
        let seed = self.seed.unwrap_or_else(random_seed);
        let max_body = config.max_response_body;
        let clock = Clock::start();
        let session = Session::new(config, tether_core::Rng::new(seed), clock.now())
            .map_err(StartError::Config)?;
        let shared = Arc::new(Mutex::new(Shared {
            status: Status::Connecting,
            epoch: session.epoch(),
        }));
        let (tx, rx) = mpsc::channel();
        let transport = self
            .transport
            .unwrap_or_else(|| Arc::new(Ureq::new()) as Arc<dyn Transport>);
        let target = Target {
            base,
            token: self.token,
            max_body,
        };
        let pool = Pool::new(transport, target, tx.clone());
        let observer = self.observer.map(|shared| -> Observer {
            Box::new(move |output: &Output| {
                let mut observer = shared.lock().unwrap_or_else(PoisonError::into_inner);
                (*observer)(output);
            })
        });
        let driver = Driver::new(session, clock, rx, pool, Arc::clone(&shared), observer);
        let thread = thread::Builder::new()
            .name("tether-driver".into())
            .spawn(move || driver.run())
            .map_err(StartError::Spawn)?;
        Ok(Tether::new(tx, thread, shared))
    }
}

/// Checks a session URL: `http` or `https`, a host, no credentials, no query or fragment, and a
/// session id as its last path segment. Returns the URL without a trailing `/`, and the id.
fn check_url(url: &str) -> Result<(String, String), StartError> {
    let invalid = |reason| StartError::InvalidUrl { reason };
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(invalid("it has no scheme (expected http:// or https://)"));
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(StartError::UnsupportedScheme {
            scheme: scheme.chars().take(16).collect(),
        });
    }
    if url.contains(['?', '#']) {
        return Err(invalid("a session URL has no query or fragment"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("it contains whitespace"));
    }
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.contains('@') {
        return Err(invalid(
            "credentials in the URL are not accepted; give a token instead",
        ));
    }
    if authority.is_empty() {
        return Err(invalid("it has no host"));
    }
    if url.parse::<ureq::http::Uri>().is_err() {
        return Err(invalid("it does not parse as a URI"));
    }
    let path = path.trim_end_matches('/');
    let Some(session_id) = path.rsplit('/').next().filter(|s| !s.is_empty()) else {
        return Err(invalid("its path does not end with a session id"));
    };
    let base = url.trim_end_matches('/').to_owned();
    Ok((base, session_id.to_owned()))
}

/// A seed from std's per-process random hasher keys: no extra crate, different per process.
fn random_seed() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_http_and_https_session_urls() {
        let (base, id) = check_url("http://127.0.0.1:8787/v1/code/sessions/s-1/").unwrap();
        assert_eq!(base, "http://127.0.0.1:8787/v1/code/sessions/s-1");
        assert_eq!(id, "s-1");
        let (_, id) = check_url("HTTPS://example.invalid/v1/code/sessions/abc").unwrap();
        assert_eq!(id, "abc");
    }

    #[test]
    fn refuses_other_schemes_and_malformed_urls() {
        for (url, scheme) in [
            ("ftp://127.0.0.1/v1/code/sessions/s", "ftp"),
            ("file:///etc/passwd", "file"),
            ("ws://127.0.0.1/s", "ws"),
        ] {
            match check_url(url) {
                Err(StartError::UnsupportedScheme { scheme: s }) => assert_eq!(s, scheme),
                other => panic!("{url}: {other:?}"),
            }
        }
        for url in [
            "127.0.0.1:8787/v1/code/sessions/s",
            "http:///v1/code/sessions/s",
            "http://127.0.0.1:8787",
            "http://127.0.0.1:8787/",
            "http://user:pw@127.0.0.1/v1/code/sessions/s",
            "http://127.0.0.1/v1/code/sessions/s?x=1",
            "http://127.0.0.1/v1/code/ses sions/s",
        ] {
            assert!(
                matches!(check_url(url), Err(StartError::InvalidUrl { .. })),
                "{url}"
            );
        }
    }

    #[test]
    fn invalid_url_errors_do_not_repeat_the_url() {
        let err = check_url("http://user:hunter2@127.0.0.1/v1/code/sessions/s").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn builder_debug_redacts_the_token() {
        let builder = Builder::new("http://127.0.0.1:1/v1/code/sessions/s").token("hunter2");
        let shown = format!("{builder:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
    }
}
