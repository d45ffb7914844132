//! The session machine: the client of docs/PROTOCOL.md (docs/ARCHITECTURE.md §Session).
//!
//! A [`Session`] composes the connect sequence (`POST /worker/register` when it has no epoch,
//! then `PUT /worker` with `worker_status: "idle"` and `GET /worker` for the base document), the
//! [heartbeat](crate::heartbeat), three [event uploaders](crate::batch) (events, internal events
//! and delivery acknowledgements) and the [state uploader](crate::state). It describes requests
//! ([`Output::Send`]) and consumes their responses, applies the
//! [response table](crate::classify) from one place, owns every request deadline, and reports its
//! [`Status`] on every change.
//!
//! - At most one request is in flight per channel (connect, heartbeat, each stream, state).
//! - At a request's deadline the core fails it, emits [`Output::Cancel`], and ignores any late
//!   response.
//! - 409 ends the session as [`Status::Superseded`]; ten auth failures in a row, a 404 (unless
//!   configured transient) or a failed connect sequence end it as [`Status::GivenUp`]. Either
//!   way every undelivered event comes back in [`Output::HandedBack`] first, and nothing follows
//!   the terminal status. Configured with [`OnGiveUp::Hold`], giving up holds everything in
//!   [`Status::Holding`] instead, until [`Session::reconnect`] connects again (same queues,
//!   same uuids) or [`Session::close`] hands it all back.
//! - [`Session::close`] drains until its deadline, then hands back what is left per stream and
//!   ends with [`Status::Closed`].
//!
//! ```
//! use serde_json::json;
//! use tether_core::session::{Endpoint, Output, Response, Session, SessionConfig, Status};
//! use tether_core::{Instant, Poll, Rng};
//!
//! let config = SessionConfig::new("session-1").with_epoch(7);
//! let mut session = Session::new(config, Rng::new(42), Instant::ZERO)?;
//! let now = Instant::ZERO;
//! session.send_event(now, tether_core::batch::Event::new(json!({"type": "hello"})))?;
//!
//! // A toy server that accepts everything and knows an empty document.
//! let mut delivered = 0;
//! loop {
//!     match session.poll_output() {
//!         Poll::Output(Output::Send(request)) => {
//!             let body = match request.endpoint {
//!                 Endpoint::GetWorker => r#"{"worker":{}}"#,
//!                 _ => "{}",
//!             };
//!             session.handle_response(now, request.id, Response::new(200, body));
//!         }
//!         Poll::Output(Output::Delivered { events, .. }) => delivered += events.len(),
//!         Poll::Output(_) => {}
//!         Poll::Timeout(_) => break, // a real driver sleeps until the wake-up here
//!     }
//! }
//! assert_eq!(delivered, 1);
//! assert_eq!(session.status(), Status::Connected);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
mod counters;
mod io;
mod machine;
mod record;
mod status;
pub mod wire;

pub use config::{ConfigError, OnGiveUp, SessionConfig};
pub use counters::{FailureCounts, SessionCounters};
pub use io::{DeliveryStatus, Output, ReconnectError, SessionError, Stream, Timer};
pub use machine::Session;
pub use record::{RecordError, RecordFate, decode_record, encode_record};
pub use status::{GiveUpReason, Status};
pub use wire::{Endpoint, Method, Request, RequestId, Response, TransportError};
