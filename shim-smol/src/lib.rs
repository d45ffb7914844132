//! Drives a tether session on smol and async-io.
//!
//! The handle is `tether-driver`'s [`Tether`], the same type on every runtime: `.await` what a
//! call returns. Every call's behaviour is the driver's (and every protocol rule the core's);
//! this crate is the rest, the runtime [`Smol`]: a clock, a timer, spawning, and a transport.
//!
//! ```text
//!   Tether (handle, Clone) ──call──▶ Shared (tether-driver, locked) ◀──answers──┐
//!                                         │ notify                              │
//!                                         ▼                                     │
//!   DriverTask (one task): turn(), its actions ──▶ requests in flight ──────────┘
//!                            one async_io::Timer at the driver's deadline
//! ```
//!
//! - **One task drives the session.** The [`DriverTask`](runtime::DriverTask) takes the driver's actions, polls
//!   the requests in flight in place, on a work budget per wake-up. Its one
//!   [`async_io::Timer`] is moved (`set_at`) only when the deadline changes. Dropping it ends
//!   the session at once and hands back what it held.
//! - **HTTP never blocks the executor** and uses no thread per request: the built-in
//!   [`HttpTransport`] drives ureq-proto's sans-IO HTTP/1.1 client over
//!   `async_io::Async<TcpStream>`, keeping one persistent connection per channel. It never
//!   follows a redirect and never reads a response body past
//!   [`SessionConfig::max_response_body`](tether_core::session::SessionConfig::max_response_body).
//!   Bring your own client by implementing [`AsyncTransport`](runtime::AsyncTransport).
//! - **TLS** (`https`): futures-rustls with ring and the webpki roots, behind the default
//!   feature `tls`. The token is never in `Debug`, `Display` or logs.
//!
//! # Embedding
//!
//! ```
//! use std::time::Duration;
//!
//! use serde_json::json;
//! use tether_core::session::{SessionConfig, Status};
//! use tether_server::{Server, ServerConfig};
//!
//! let server = Server::start(ServerConfig::default())?; // 127.0.0.1, a free port
//! let url = server.session_url("doc-1");
//!
//! smol::block_on(async {
//!     let tether = tether_smol::builder(&url)
//!         .epoch(1)
//!         .token("secret-token")
//!         .seed(7)
//!         .config(SessionConfig::new("doc-1"))
//!         .start()?;
//!
//!     tether.send_event(json!({"type": "hello"}), Duration::from_secs(1)).await?;
//!     tether.patch_state(json!({"worker_status": "running"}))?;
//!     assert_eq!(tether.state()["worker_status"], "running");
//!     tether.flush(Duration::from_secs(5)).await?;
//!
//!     let report = tether.close(Duration::from_secs(5)).await;
//!     assert_eq!(report.status, Status::Closed);
//!     assert!(report.undelivered.is_empty());
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//!
//! assert_eq!(server.inspector().events("doc-1").len(), 1);
//! assert_eq!(server.inspector().document("doc-1").unwrap()["worker_status"], "running");
//! server.shutdown()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod http1;
mod http_conn;
mod run;

pub use http1::HttpTransport;
pub use run::{Smol, SmolTimer};

pub use tether_driver::*;

/// Starts building a session at `url`, driven by a task on smol's global executor (see
/// [`Smol::on`] for another, or [`Builder::into_parts`] to run the task yourself).
pub fn builder(url: impl Into<String>) -> Builder<Smol> {
    Builder::new(url, Smol::global())
}

/// What a caller needs, in one import.
pub mod prelude {
    pub use crate::builder;
    pub use tether_driver::prelude::*;
}
