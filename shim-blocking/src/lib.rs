//! Drives a tether session with std threads and blocking ureq calls.
//!
//! The handle is `tether-driver`'s [`Tether`], the same type on every runtime: a call that may
//! wait returns a [`Pending`], and blocking code [`wait`](Pending::wait)s for it. This crate is
//! only the runtime ([`Blocking`]): a thread per session for its timer, and a small bounded pool
//! of HTTP workers ([`Pooled`], one `ureq::Agent`: keep-alive, https through rustls) that poll
//! the driver task themselves when their answer wakes it.
//!
//! Every retry, backoff, classification and deadline is the core's; a late result of a
//! cancelled request is dropped, and ureq gets a backstop a little past the deadline to free
//! its worker. Bring your own blocking client through [`Transport`]; redirects are never
//! followed, bodies are read up to the core's cap, and the token is never shown.
//!
//! ```
//! use std::time::Duration;
//! use serde_json::json;
//! use tether_blocking::prelude::*;
//! use tether_server::{Server, ServerConfig};
//!
//! // A reference server on 127.0.0.1, on a port the OS picks.
//! let server = Server::start(ServerConfig::default())?;
//! let url = server.session_url("doc-example");
//!
//! let tether = tether_blocking::builder(&url).register().token("not-a-real-token").start()?;
//! let statuses = tether.statuses();
//! for seq in 0..100 {
//!     tether.send_event(json!({"type": "tick", "seq": seq}), Duration::from_secs(5)).wait()?;
//! }
//! tether.patch_state(json!({"worker_status": "running"}))?;
//! tether.flush(Duration::from_secs(10)).wait()?;
//! assert_eq!(tether.state()["worker_status"], "running");
//!
//! let report = tether.close(Duration::from_secs(5)).wait();
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

mod run;
mod transport;

pub use run::{Blocking, ParkTimer, run};
pub use transport::{Pooled, Transport, Ureq};

pub use tether_driver::*;

/// Starts building a session at `url`, driven by threads.
pub fn builder(url: impl Into<String>) -> Builder<Blocking> {
    Builder::new(url, Blocking)
}

/// What a caller needs, in one import.
pub mod prelude {
    pub use crate::builder;
    pub use tether_driver::prelude::*;
}

// The README's examples compile and run as doctests of this crate.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
