//! How the model server behaves: [`ServerConfig`] and its defaults.

use std::time::Duration;

use tether_core::patch::DocumentSchema;
#[cfg(doc)]
use tether_core::time::Instant;

/// The default request-body limit: 10 MiB of events plus 64 KiB of envelope.
pub const DEFAULT_BODY_LIMIT: usize = 10 * 1024 * 1024 + 64 * 1024;

/// The default base of the simulated wall clock: 2023-11-14 22:13:20 UTC.
pub const DEFAULT_BASE_UNIX_TIME: u64 = 1_700_000_000;

/// How the model server behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// A request body longer than this gets `413`.
    pub body_limit: usize,
    /// A worker with no heartbeat for this long is considered gone. Default 60 s.
    pub heartbeat_ttl: Duration,
    /// Unix seconds at [`Instant::ZERO`]; the `Date` header is this plus the simulated time.
    pub base_unix_time: u64,
    /// If set, a heartbeat naming another session gets `404` (session unknown).
    pub session_id: Option<String>,
    /// How `PUT /worker` applies a body.
    pub schema: DocumentSchema,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            body_limit: DEFAULT_BODY_LIMIT,
            heartbeat_ttl: Duration::from_secs(60),
            base_unix_time: DEFAULT_BASE_UNIX_TIME,
            session_id: None,
            schema: DocumentSchema::default(),
        }
    }
}
