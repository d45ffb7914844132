//! What a drainer is allowed to hold and send, checked once at construction.

use core::fmt;
use core::time::Duration;

use crate::backoff::BackoffPolicy;

/// The wire shape of a batch body; the drainer knows nothing else about the endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Envelope {
    /// `{"worker_epoch":N,"events":[{"payload":{..},"ephemeral":true},..]}`, for
    /// `/worker/events` and `/worker/internal-events`. Each payload gets a `uuid`.
    #[default]
    Events,
    /// `{"worker_epoch":N,"updates":[{..},..]}`, for `/worker/events/delivery`. Items are sent
    /// as given: no `uuid` is stamped and the `ephemeral` flag is ignored.
    DeliveryUpdates,
}

/// What happens to an enqueue when the queue is at one of its bounds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Overflow {
    /// The enqueue fails and hands the event back inside the error, so a shim can wait for
    /// capacity and try again.
    #[default]
    Reject,
    /// The oldest unsent events are dropped (each reported) to make room. Events on the wire
    /// are never dropped; if they alone leave no room, the new event is dropped instead.
    DropOldest,
    /// The new event is dropped (and reported).
    DropNewest,
}

/// Whether [`Output::Send`](super::Output::Send) carries the assembled body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BodyMode {
    /// The body is assembled into a fresh `Vec` in the output.
    #[default]
    Assembled,
    /// The output's body is empty; the caller writes it into a buffer of its own with
    /// [`BatchDrainer::write_body`](super::BatchDrainer::write_body) while the batch is in
    /// flight, e.g. to reuse one allocation.
    Deferred,
}

/// A drainer's limits and policies. [`Default`] gives the documented defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Config {
    /// The body shape. Default [`Envelope::Events`].
    pub envelope: Envelope,
    /// Most events in one batch. Default 100.
    pub max_batch_items: usize,
    /// Most bytes of event JSON in one batch (the envelope and commas not counted); the first
    /// event is always taken, and no event may be larger. Default 10 MiB.
    pub max_batch_bytes: usize,
    /// Most events held (queued and in flight). Default 100 000.
    pub max_queue_items: usize,
    /// Most bytes of event JSON held (queued and in flight). Default 64 MiB.
    pub max_queue_bytes: usize,
    /// What a full queue does to an enqueue. Default [`Overflow::Reject`].
    pub overflow: Overflow,
    /// How long the oldest unsent event may wait for a batch to fill. Default zero: send at once.
    pub linger: Duration,
    /// The retry curve. Default [`BackoffPolicy::uploader`].
    pub backoff: BackoffPolicy,
    /// Transient failures in a row after which a batch becomes dead letters; `None` (the
    /// default) retries without limit.
    pub max_consecutive_failures: Option<u32>,
    /// Whether send outputs carry the body. Default [`BodyMode::Assembled`].
    pub body: BodyMode,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            envelope: Envelope::Events,
            max_batch_items: 100,
            max_batch_bytes: 10 * 1024 * 1024,
            max_queue_items: 100_000,
            max_queue_bytes: 64 * 1024 * 1024,
            overflow: Overflow::Reject,
            linger: Duration::ZERO,
            backoff: BackoffPolicy::uploader(),
            max_consecutive_failures: None,
            body: BodyMode::Assembled,
        }
    }
}

impl Config {
    /// Checks the limits against each other.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let zero = [
            (self.max_batch_items, "max_batch_items"),
            (self.max_batch_bytes, "max_batch_bytes"),
            (self.max_queue_items, "max_queue_items"),
            (self.max_queue_bytes, "max_queue_bytes"),
        ];
        if let Some((_, field)) = zero.iter().find(|(v, _)| *v == 0) {
            return Err(ConfigError::Zero { field });
        }
        if self.max_consecutive_failures == Some(0) {
            return Err(ConfigError::Zero {
                field: "max_consecutive_failures",
            });
        }
        if self.max_batch_bytes > self.max_queue_bytes {
            return Err(ConfigError::BatchOverQueue {
                batch: self.max_batch_bytes,
                queue: self.max_queue_bytes,
                unit: "bytes",
            });
        }
        if self.max_batch_items > self.max_queue_items {
            return Err(ConfigError::BatchOverQueue {
                batch: self.max_batch_items,
                queue: self.max_queue_items,
                unit: "items",
            });
        }
        Ok(())
    }
}

/// A [`Config`] that cannot work.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A limit is zero, so nothing could ever be sent.
    Zero {
        /// The field's name.
        field: &'static str,
    },
    /// A batch limit is above the queue's, so a full batch could never be held.
    BatchOverQueue {
        /// The batch limit.
        batch: usize,
        /// The queue limit.
        queue: usize,
        /// `"bytes"` or `"items"`.
        unit: &'static str,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Zero { field } => write!(f, "batch drainer config: {field} must not be 0"),
            ConfigError::BatchOverQueue { batch, queue, unit } => write!(
                f,
                "batch drainer config: batch limit of {batch} {unit} exceeds the queue limit of {queue} {unit}"
            ),
        }
    }
}

impl core::error::Error for ConfigError {}
