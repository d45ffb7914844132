//! Drives a tether session with std threads and blocking ureq calls.
//!
//! A [`Tether`] is a running session of the sans-IO core, driven by `tether-driver`: the
//! behaviour of every call is the driver's, the same on every runtime. This crate is what is
//! left: a driver thread that waits on a condvar until the driver's deadline or a call that
//! made work, a small bounded pool of worker threads for HTTP through one `ureq::Agent`
//! (HTTP/1.1 keep-alive, https through rustls), and parking the caller's thread on the
//! driver's answers.
//!
//! Every retry, backoff, classification and deadline is the core's; a late result of a
//! cancelled request is dropped, and ureq gets a backstop a little past the deadline to free
//! its worker. Bring your own blocking client through [`Transport`]; redirects are never
//! followed, bodies are read up to the core's cap, and the [`Token`] is never shown.
//!
//! ```
//! use std::time::Duration;
//! use serde_json::json;
//! use tether_blocking::Tether;
//! use tether_core::session::Status;
//! use tether_server::{Server, ServerConfig};
//!
//! // A reference server on 127.0.0.1, on a port the OS picks.
//! let server = Server::start(ServerConfig::default())?;
//! let url = server.session_url("doc-example");
//!
//! let tether = Tether::builder(&url).register().token("not-a-real-token").start()?;
//! let statuses = tether.statuses();
//! for seq in 0..100 {
//!     tether.send_event(json!({"type": "tick", "seq": seq}), Duration::from_secs(5))?;
//! }
//! tether.patch_state(json!({"worker_status": "running"}))?;
//! tether.flush(Duration::from_secs(10))?;
//! assert_eq!(tether.state()["worker_status"], "running");
//!
//! let report = tether.close(Duration::from_secs(5));
//! assert_eq!(report.status, Status::Closed);
//! assert!(report.all_delivered());
//! assert_eq!(report.counters.events.delivered, 100);
//! assert_eq!(statuses.recv(), Some(Ok(Status::Connecting)));
//!
//! // The server's own record agrees.
//! assert_eq!(server.inspector().events("doc-example").len(), 100);
//! server.shutdown()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod builder;
mod handle;
mod run;
mod transport;
mod wait;

pub use builder::Builder;
pub use handle::Tether;
pub use transport::Transport;
pub use wait::{Reports, Statuses, Stream, Threads};

pub use tether_driver::{
    BuildError, BulkSendError, CloseReport, Counters, DriverStats, FlushError, Histogram,
    HttpRequest, HttpResponse, Lagged, MemoryStore, PatchError, Refused, Report, SendError,
    Settings, SharedRetryBudget, Store, StoreError, SyncPolicy, Tap, ThreadCallError,
    ThreadCloseReport, ThreadFlushError, ThreadHandle, ThreadReport, ThreadStartError, Token,
    USER_AGENT, UndeliveredEvent, WireCounters,
};

/// The core this crate drives, re-exported for its types.
pub use tether_core as core;

// The README's examples compile and run as doctests of this crate.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
