//! What a state uploader is configured with.

use core::time::Duration;

use crate::backoff::BackoffPolicy;
use crate::patch::DocumentSchema;

/// The state uploader's settings. Every field has a default matching docs/PROTOCOL.md and seed 001.
///
/// ```
/// use core::time::Duration;
/// use tether_core::state::Config;
///
/// let config = Config::default()
///     .with_max_patch_bytes(64 * 1024)
///     .with_request_timeout(Some(Duration::from_secs(5)));
/// assert_eq!(config.max_patch_bytes, 64 * 1024);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Which top-level keys are merge-patched; the rest are replaced.
    pub schema: DocumentSchema,
    /// The retry curve: [`BackoffPolicy::uploader`] (500 ms doubling to 30 s, plus `[0, 500 ms)`).
    pub backoff: BackoffPolicy,
    /// The largest patch accepted by [`enqueue`](super::StateUploader::enqueue), in bytes of
    /// compact JSON. Default 1 MiB.
    pub max_patch_bytes: usize,
    /// How long a PUT may stay unanswered before the core cancels it and retries; `None` leaves
    /// it to the driver. Default 10 s (docs/PROTOCOL.md).
    pub request_timeout: Option<Duration>,
}

impl Config {
    /// The default patch size limit: 1 MiB.
    pub const DEFAULT_MAX_PATCH_BYTES: usize = 1 << 20;
    /// The default request timeout: 10 s.
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

    /// The same settings with another schema.
    pub fn with_schema(mut self, schema: DocumentSchema) -> Self {
        self.schema = schema;
        self
    }

    /// The same settings with another retry curve.
    pub fn with_backoff(mut self, backoff: BackoffPolicy) -> Self {
        self.backoff = backoff;
        self
    }

    /// The same settings with another patch size limit.
    pub fn with_max_patch_bytes(mut self, limit: usize) -> Self {
        self.max_patch_bytes = limit;
        self
    }

    /// The same settings with another request timeout.
    pub fn with_request_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.request_timeout = timeout;
        self
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            schema: DocumentSchema::default(),
            backoff: BackoffPolicy::uploader(),
            max_patch_bytes: Self::DEFAULT_MAX_PATCH_BYTES,
            request_timeout: Some(Self::DEFAULT_REQUEST_TIMEOUT),
        }
    }
}
