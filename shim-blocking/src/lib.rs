//! Drives a tether session with std threads and blocking ureq calls.
//!
//! A [`Tether`] is a running session of the sans-IO core, driven by `tether-driver`: the
//! behaviour of every call is the driver's, the same on every runtime. This crate is what is
//! left: a driver thread that waits on a condvar until the driver's deadline or a call that
//! made work, a small bounded pool of worker threads for HTTP through one `ureq::Agent`
//! (HTTP/1.1 keep-alive, https through rustls), and parking the caller's thread on the
//! driver's answers.
//!
//! The shim is thin (DESIGN.md, conventions 7 and 8): it only moves bytes and time. Every retry,
//! backoff, classification and request deadline is the core's. When the core cancels a request
//! at its deadline, its late result is dropped; ureq also gets a backstop timeout a little past
//! that deadline so the worker thread is freed.
//!
//! As in the smol shim, HTTP sits behind a seam: bring your own blocking client by
//! implementing [`Transport`] and passing it to [`Builder::transport`] (ureq is the default).
//! A scripted transport makes a deterministic test server; with [`Builder::observer`], which
//! sees every output of the core in order, that is how the parity test checks that both shims
//! produce the same core trace for the same responses (DESIGN.md, convention 8).
//!
//! - Redirects are never followed: a `3xx` goes to the core, whose response table makes it
//!   permanent.
//! - A response body is read up to the core's cap
//!   ([`SessionConfig::max_response_body`](tether_core::session::SessionConfig)) and no further.
//! - Only `http` and `https` session URLs are accepted. The [`Token`] never appears in `Debug`,
//!   `Display` or an error.
//! - [`Tether::send_event`] blocks while the queue is full, up to its timeout, and hands the
//!   event back if the timeout passes; a bad event is refused at once, inside the error.
//! - [`Tether::close`] returns a [`CloseReport`]: every event not delivered with its reason,
//!   state patches not acknowledged or rejected, the final status and the counters.
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
//! assert_eq!(statuses.recv(), Some(Status::Connecting));
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
pub use wait::{Reports, Statuses, Stream};

pub use tether_driver::{
    BuildError, BulkSendError, CloseReport, Counters, DriverStats, FlushError, Histogram,
    HttpRequest, HttpResponse, MemoryStore, PatchError, Refused, Report, SendError, Store,
    StoreError, SyncPolicy, Token, UndeliveredEvent, WireCounters, USER_AGENT,
};

/// The core this crate drives, re-exported for its types.
pub use tether_core as core;

// The README's examples compile and run as doctests of this crate.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
