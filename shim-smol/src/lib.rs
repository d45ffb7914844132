//! Drives a tether session on smol and async-io.
//!
//! Every call's behaviour is `tether-driver`'s (and every protocol rule `tether-core`'s), the
//! same on every runtime; this crate is the rest: a timer, a way to wait, and a transport.
//!
//! ```text
//!   Tether (handle, Clone) ──call──▶ Shared (tether-driver, locked) ◀──answers──┐
//!                                         │ notify                              │
//!                                         ▼                                     │
//!   DriverFuture (one task): turn(), its actions ──▶ requests in flight ──────────┘
//!                            one async_io::Timer at the driver's deadline
//! ```
//!
//! - **One task drives the session.** The [`DriverFuture`] takes the driver's actions, polls
//!   the requests in flight in place, on a work budget per wake-up. Its one
//!   [`async_io::Timer`] is moved (`set_at`) only when the deadline changes. Dropping it ends
//!   the session at once and hands back what it held.
//! - **HTTP never blocks the executor** and uses no thread per request: the built-in
//!   [`HttpTransport`] drives ureq-proto's sans-IO HTTP/1.1 client over
//!   `async_io::Async<TcpStream>`, keeping one persistent connection per channel. It never
//!   follows a redirect and never reads a response body past
//!   [`SessionConfig::max_response_body`](tether_core::session::SessionConfig::max_response_body).
//!   Bring your own client by implementing [`Transport`].
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
//!     let tether = tether_smol::Builder::new(&url)
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

mod builder;
pub mod http1;
mod http_conn;
mod run;

pub use builder::Builder;
pub use http1::HttpTransport;
pub use run::{DriverFuture, SmolTimer};
/// The caller's handle: the driver's, the same on every async runtime.
pub use tether_driver::AsyncTether as Tether;
/// The HTTP seam: the driver's, the same on every async runtime.
pub use tether_driver::AsyncTransport as Transport;
pub use tether_driver::{BoxFuture, Reports, Statuses, WORK_BUDGET};

pub use tether_driver::{
    BuildError, BulkSendError, CloseReport, Counters, DriverStats, FlushError, Histogram,
    HttpRequest, HttpResponse, Lagged, PatchError, Refused, Report, SendError, SessionUrl,
    Settings, SharedRetryBudget, Tap, ThreadCallError, ThreadCloseReport, ThreadFlushError,
    ThreadHandle, ThreadReport, ThreadStartError, Token, USER_AGENT, UndeliveredEvent,
    WireCounters,
};

/// Re-exported so callers need not depend on the core directly for the common types.
pub use tether_core::batch::{Event, EventId};
pub use tether_core::session::{DeliveryStatus, SessionConfig, Status};
pub use tether_core::thread::{Message, SyncStatus, Thread, ThreadSyncConfig};
