//! Drives a tether session on tokio.
//!
//! [`tether_core`] holds every rule of the protocol as a deterministic, sans-IO machine and
//! `tether-driver` everything around it that is not waiting on I/O, including the one handle,
//! [`Tether`], so every call means the same here as on every other runtime
//! (docs/ARCHITECTURE.md, convention 8). This crate is the rest, the runtime [`Tokio`]: a
//! clock, a timer, spawning, and a transport.
//!
//! ```text
//!   Tether (handle, Clone) ──call──▶ Shared (tether-driver, locked) ◀──answers──┐
//!                                         │ notify                              │
//!                                         ▼                                     │
//!   DriverTask (one task): turn(), its actions ──▶ requests in flight ──────────┘
//!                            one tokio::time::Sleep at the driver's deadline
//! ```
//!
//! - **One task drives the session.** The [`DriverTask`](runtime::DriverTask) polls the requests in flight in
//!   place, on a work budget per wake-up; its one [`tokio::time::Sleep`] is reset only when the
//!   deadline changes. Dropping it (an aborted task, a runtime shutting down) ends the session at
//!   once and hands back what it held. The clock is `tokio::time::Instant`: paused time works.
//! - **Any flavour**, `current_thread` or `multi_thread`: nothing here blocks a runtime thread;
//!   [`flush`](Tether::flush) and [`close`](Tether::close) are awaited, never `block_on`'d.
//! - **HTTP** goes through hyper 1's client ([`HttpTransport`]): one exchange per call, no
//!   redirect followed, no body read past
//!   [`SessionConfig::max_response_body`](tether_core::session::SessionConfig::max_response_body).
//!   Bring your own client by implementing [`AsyncTransport`](runtime::AsyncTransport).
//! - **A fleet** of sessions shares one transport: clone one [`HttpTransport`] into each
//!   session's builder. Over HTTP/2 (ALPN `h2` on `https`, or [`HttpTransport::h2c`] on plain
//!   `http`) they share one connection per host; over HTTP/1.1 one pool (see [`http`]).
//! - **TLS** (`https`): hyper-rustls with ring and the webpki roots, default feature `tls`.
//! - **The token** is never in `Debug`, `Display` or logs; only `http`/`https` URLs are taken.
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
//! let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! runtime.block_on(async {
//!     let tether = tether_tokio::builder(&url)
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
//!
//! # A fleet
//!
//! Sessions given clones of one [`HttpTransport`] share its connections: over HTTP/2 (ALPN `h2`
//! on `https`, or [`HttpTransport::h2c`] on plain `http`, as here) one connection per host
//! carries every session's requests.
//!
//! ```
//! use std::time::Duration;
//!
//! use serde_json::json;
//! use tether_server::{Server, ServerConfig};
//! use tether_tokio::HttpTransport;
//!
//! let server = Server::start(ServerConfig::default())?; // HTTP/1.1 and h2c on one port
//! let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
//! runtime.block_on(async {
//!     let transport = HttpTransport::h2c();
//!     let sessions = (0..100)
//!         .map(|i| {
//!             tether_tokio::builder(server.session_url(&format!("fleet-{i}")))
//!                 .epoch(1)
//!                 .transport(transport.clone()) // the one shared transport
//!                 .start()
//!         })
//!         .collect::<Result<Vec<_>, _>>()?;
//!     for tether in &sessions {
//!         tether.send_event(json!({"kind": "hello"}), Duration::from_secs(1)).await?;
//!     }
//!     for tether in &sessions {
//!         assert!(tether.close(Duration::from_secs(5)).await.all_delivered());
//!     }
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//! assert_eq!(server.inspector().connections().accepted, 1);
//! server.shutdown()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod http;
mod run;

pub use http::HttpTransport;
pub use run::{Tokio, TokioTimer};

pub use tether_driver::*;

/// Starts building a session at `url`, its driver task spawned on the tokio runtime current
/// when [`start`](Builder::start) is called (see [`Tokio::on`] for another one).
pub fn builder(url: impl Into<String>) -> Builder<Tokio> {
    Builder::new(url, Tokio::current())
}

/// What a caller needs, in one import.
pub mod prelude {
    pub use crate::builder;
    pub use tether_driver::prelude::*;
}
