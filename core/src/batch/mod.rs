//! The batch drainer: a sans-IO event uploader (docs/ARCHITECTURE.md §Batch drainer).
//!
//! Events go into a bounded FIFO and come out as batch bodies, one batch in flight at a time.
//! The drainer knows nothing of HTTP: it asks for a body to be sent
//! ([`Output::Send`]) and is told the outcome ([`BatchDrainer::handle_outcome`]). Every
//! event enqueued ends up either reported delivered ([`Output::Delivered`]) or handed back
//! with a [`Reason`] ([`Output::HandedBack`]); nothing is dropped silently.
//!
//! ```text
//!  enqueue ──► [ queue (FIFO, bounded) ] ──take──► in flight ──Success────► Delivered
//!                 ▲          │ linger / full          │
//!                 │          ▼                        ├─Transient/Throttled─► back to the front,
//!                 │     replace by key                │                       wait for backoff
//!                 └───────────────────────────────────┤─TooLarge─► split in half (1 event: dead)
//!                                                     └─Permanent─► dead letters
//!  close(deadline): no intake, drain, then hand back the rest    abandon: hand back all now
//! ```
//!
//! - [`Event`]: a JSON object, serialised once at enqueue into its wire item; it gets a `uuid`
//!   from the drainer's seeded [`Rng`](crate::Rng) unless it has a string one (a non-string
//!   `uuid` is overwritten), so the server can de-duplicate retries.
//! - Batches hold at most `max_batch_items` events and `max_batch_bytes` of event JSON (the
//!   first event always goes); bodies are the items concatenated into the [`Envelope`].
//! - Failures put the batch back at the front and wait for the [`Backoff`](crate::backoff::Backoff);
//!   413 splits; permanent failures and `max_consecutive_failures` make dead letters.
//! - [`flush`](BatchDrainer::flush) reports when everything before it is settled;
//!   [`close`](BatchDrainer::close) drains until a deadline then hands back the rest.
//!
//! # Driving it
//!
//! After every call that takes `now`, drain [`poll_output`](BatchDrainer::poll_output) until it
//! answers [`Poll::Timeout`](crate::Poll::Timeout), then call
//! [`handle_timeout`](BatchDrainer::handle_timeout) at that instant.
//!
//! ```
//! use serde_json::json;
//! use tether_core::batch::{BatchDrainer, Config, Event, Output};
//! use tether_core::{Instant, Outcome, Poll, Rng};
//!
//! let mut drainer = BatchDrainer::new(Config::default(), Rng::new(7)).unwrap();
//! let now = Instant::ZERO;
//! drainer.set_epoch(now, 3);
//! let id = drainer.enqueue(now, Event::new(json!({"type": "hello", "uuid": "u-1"}))).unwrap();
//!
//! let mut delivered = Vec::new();
//! loop {
//!     match drainer.poll_output() {
//!         Poll::Output(Output::Send { id: batch, body, .. }) => {
//!             assert_eq!(
//!                 body,
//!                 br#"{"worker_epoch":3,"events":[{"payload":{"type":"hello","uuid":"u-1"}}]}"#
//!             );
//!             // ... POST the body, classify the response, then:
//!             drainer.handle_outcome(now, batch, Outcome::Success);
//!         }
//!         Poll::Output(Output::Delivered { events, .. }) => delivered.extend(events),
//!         Poll::Output(other) => panic!("unexpected {other:?}"),
//!         Poll::Timeout(_) => break,
//!     }
//! }
//! assert_eq!(delivered, [id]);
//! ```

mod body;
mod config;
mod counters;
mod delta;
mod error;
mod event;
mod io;
mod machine;
mod queue;
mod typed;

pub use config::{BodyMode, Config, ConfigError, Envelope, Overflow};
pub use counters::Counters;
pub use delta::{
    DeltaCoalescer, DeltaConfig, DeltaConfigError, DeltaCounters, DeltaError, DeltaTimer, Merged,
};
pub use error::Error;
pub use event::{Event, EventId, PreparedEvent, Undelivered};
pub use io::{Abandon, BatchId, Output, Reason, Timer};
pub use machine::{BatchDrainer, Depth};
