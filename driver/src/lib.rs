//! Everything a tether runtime shim does that is not waiting on I/O.
//!
//! `tether-core` is the protocol: pure machines. A shim (`tether-blocking`, `tether-smol`,
//! `tether-tokio`) is a timer, a way to wait for several things at once, and a transport. This
//! crate is everything in between, written once, so a call means the same on every runtime:
//!
//! - one handle on every runtime, [`Tether`], whose calls that may wait return a [`Pending`]
//!   (`.await` it, or [`wait`](Pending::wait) for it), started by one [`Builder`] generic over
//!   a small [`Runtime`](runtime::Runtime) trait; the caller's calls as core inputs
//!   ([`Driver`]), with one error set ([`SendError`], [`PatchError`], [`FlushError`],
//!   [`BuildError`]);
//! - callers who wait for room in a queue (through `Session::resend`, so the event's uuid and
//!   bytes are kept), for a flush, or for the close: [`Pending`] answers;
//! - status fan-out where every subscriber sees every status in order, and the live
//!   [`Report`] stream of deliveries and hand-backs ([`Subscription`]); the [`CloseReport`];
//! - the session URL, token and scheme rules ([`SessionUrl`], [`Token`], [`Settings`]), the
//!   clock origin ([`Origin`](runtime::Origin));
//! - HTTP requests from the core's outputs and responses back
//!   ([`HttpRequest`](runtime::HttpRequest), [`HttpResponse`](runtime::HttpResponse));
//! - the durable outbox ([`Settings::outbox`]): the core's persist and forget outputs carried
//!   into a [`Store`] in one group commit per loop turn, requests held until what they carry is
//!   written, sends answered once durable, the stored outbox replayed in chunks at start.
//!
//! It is sans-IO like the core: std, but it never reads a clock, sleeps, spawns or waits, and it
//! runs on the core's time. Every call takes `now` as a core [`Instant`](tether_core::Instant);
//! a shim reads its runtime's clock and converts it at its edge, once, with the
//! [`Origin`](runtime::Origin) it started the driver with. Users import the [`prelude`]; shim
//! authors find their parts in [`runtime`].
//!
//! # The shim's loop
//!
//! ```
//! use std::time::Duration;
//! use serde_json::json;
//! use tether_core::Instant;
//! use tether_core::session::Endpoint;
//! use tether_driver::runtime::{Action, HttpResponse, Origin, Route, Shared};
//! use tether_driver::{Settings, Tether};
//!
//! let mut settings = Settings::new("http://127.0.0.1:1/v1/code/sessions/doc");
//! settings.epoch(1).seed(7);
//! // A real shim's origin is its clock read at the start (`std::time::Instant::now()`); this
//! // one's clock is the core's own time, and stands still at the origin.
//! let origin = Origin::new(Instant::ZERO);
//! let driver = settings.start(origin, 0)?;
//! // A real shim reads its runtime's clock (`origin.to_core(now)`) and wakes its loop in
//! // `notify`.
//! let shared = Shared::new(driver, Box::new(|| Instant::ZERO), Box::new(|| {}));
//! let tether = Tether::new(shared.clone());
//!
//! let mut sent = tether.send_event(json!({"n": 1}), Duration::from_secs(1));
//! let mut closed = None;
//! for _ in 0..100 {
//!     // One turn of the loop, the same on every shim: the time, then the actions, each
//!     // answered here at once by a server that accepts everything. A real shim would then
//!     // wait until `turn.deadline` or a notification.
//!     let turn = shared.turn();
//!     if turn.finished {
//!         break;
//!     }
//!     let mut todo = std::collections::VecDeque::from(turn.actions);
//!     while let Some(action) = todo.pop_front() {
//!         if let Action::Send(request) = action {
//!             let body = match request.route {
//!                 Route::Worker(Endpoint::GetWorker) => r#"{"worker":{}}"#,
//!                 _ => "{}",
//!             };
//!             // An answer may make more to do (the next batch): do that too.
//!             todo.extend(shared.answer(request.id, Ok(HttpResponse::new(200, body))));
//!         }
//!     }
//!     if sent.is_ready() && closed.is_none() {
//!         closed = Some(tether.close(Duration::from_secs(1)));
//!     }
//! }
//! assert!(sent.try_take().unwrap().is_ok());
//! let report = closed.unwrap().try_take().unwrap();
//! assert!(report.all_delivered());
//! # Ok::<(), tether_driver::BuildError>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::disallowed_methods))]

mod action;
mod budget;
mod builder;
mod clock;
mod driver;
mod error;
mod hook;
mod http;
pub mod observe;
mod outbox;
mod report;
pub mod runtime;
mod settings;
mod shared;
mod stats;
mod store;
mod store_job;
mod task;
mod tether;
mod thread_budget;
mod thread_handle;
mod thread_journal;
mod thread_report;
mod threads;
mod url;
mod wait;

pub use budget::SharedRetryBudget;
pub use builder::Builder;
pub use driver::{Driver, DriverTimer};
pub use error::{BuildError, BulkSendError, FlushError, PatchError, Refused, SendError};
pub use hook::{Observer, Tap};
pub use outbox::{DROPPED_KEPT, OutboxCounters, REPLAY_CHUNK};
pub use report::{
    CloseReport, Counters, EndpointLatency, KeptInOutbox, Report, UndeliveredEvent, WireCounters,
};
pub use settings::{DEFAULT_DROP_CLOSE_TIMEOUT, Settings, random_seed};
pub use stats::{DriverStats, Histogram};
pub use store::{Dropped, MemoryStore, Store, StoreCount, StoreError, SyncPolicy, WriteBatch};
pub use store_job::{StoreDone, StoreJob, StoreJobKind};
pub use tether::Tether;
pub use thread_handle::ThreadHandle;
pub use thread_report::{ThreadCallError, ThreadCloseReport, ThreadFlushError, ThreadReport};
pub use threads::{THREAD_MAX_RESPONSE_BODY, ThreadStartError};
pub use url::{SessionUrl, Token};
pub use wait::{Lagged, Pending, SUBSCRIPTION_CAPACITY, Subscription};

/// The core this crate drives, for the rest of its types.
pub use tether_core as core;
pub use tether_core::batch::{Event, EventId};
pub use tether_core::session::{
    DeliveryStatus, OnGiveUp, ReconnectError, SessionConfig, Status, Stream,
};
/// [`tether_core::thread::Config`] under the name it has beside [`SessionConfig`] at this
/// crate's root: the configuration of [`Tether::threads`].
pub use tether_core::thread::Config as ThreadSyncConfig;
pub use tether_core::thread::{Message, SyncStatus, Thread};

/// What a caller needs, in one import: `use tether_blocking::prelude::*;` (each shim's prelude
/// adds its `builder`) or `use tether_driver::prelude::*;`.
pub mod prelude {
    pub use crate::{
        BuildError, Builder, CloseReport, FlushError, Lagged, PatchError, Pending, Report,
        SendError, Settings, Subscription, Tether, ThreadHandle,
    };
    pub use tether_core::batch::{Event, EventId};
    pub use tether_core::session::{DeliveryStatus, SessionConfig, Status, Stream};
    pub use tether_core::thread::Config as ThreadSyncConfig;
    pub use tether_core::thread::Message;
}
