//! The reference server of tether's wire protocol (docs/PROTOCOL.md), with seeded fault injection.
//!
//! It serves every session at `http://HOST:PORT/v1/code/sessions/{session_id}` over real
//! HTTP/1.1 and HTTP/2 with prior knowledge (h2c) on the same port, keeps their state in memory,
//! and lets tests and the `tether demo` read it back in-process through an [`Inspector`]. A
//! [`FaultPlan`] makes it misbehave the way networks and servers do (latency, requests and
//! responses lost, 5xx, 429 with `Retry-After`, 413, hangs, garbage bodies), reproducibly from
//! a seed. The plan and what a fault is are [`tether_model::fault`]'s, the same vocabulary the
//! simulator draws from; this crate applies them to real HTTP responses.
//!
//! ```
//! use tether_server::{FaultPlan, Server, ServerConfig};
//!
//! let server = Server::start(ServerConfig::default().with_faults(FaultPlan::none()))?;
//! assert!(server.addr().ip().is_loopback());
//! let url = server.session_url("s1");
//! assert!(url.ends_with("/v1/code/sessions/s1"));
//! // ... point a client at `url`, then look at what arrived:
//! let inspector = server.inspector();
//! assert_eq!(inspector.events("s1"), Vec::<serde_json::Value>::new());
//! assert_eq!(inspector.force_takeover("s1"), 1);
//! server.shutdown()?;
//! # Ok::<(), tether_server::ServerError>(())
//! ```
//!
//! # Why hyper
//!
//! The server is built on hyper 1.x (`server`, `http1`, `http2`) with hyper-util's tokio adapter
//! and its auto builder, which tells HTTP/1.1 from an h2c preface on each connection: hyper is
//! the most used and best maintained HTTP implementation in Rust, it does HTTP/1.1 keep-alive
//! and HTTP/2 right, and it gives precise control over each request — which fault injection
//! needs (a reset is an error returned from the service, after which hyper drops an HTTP/1.1
//! connection without a response, or resets the request's HTTP/2 stream and keeps the
//! connection the other sessions share). Seven routes need no framework on top.
//! [`Inspector::connections`] counts the connections, so a test can check that a fleet shared
//! one.
//!
//! # Shape
//!
//! ```text
//!  blocking caller ──Server (handle)──control channel──▶ runtime thread (tokio, 2 workers)
//!        │                                                 accept loop ─▶ connection tasks
//!        └──Inspector──┐                                   │  route ─▶ fault ─▶ body ─▶ store
//!                      └────────── Shared { Store, FaultDecider } ◀┘
//!                                  Store: session id ─▶ ServerModel (tether-model) + counts
//! ```
//!
//! - The protocol's semantics are not here: each session is a [`tether_model::ServerModel`], the
//!   model of docs/PROTOCOL.md's server that the simulator runs too (epoch fencing, document patches through
//!   [`tether_core::patch::DocumentSchema`], event de-duplication by `payload.uuid`, heartbeats,
//!   delivery updates, the body limit), so the simulator and this server can never disagree.
//!   `store.rs` keeps one model per session id and counts requests and faults.
//! - `http.rs` asks the plan's [`FaultDecider`] for one fault per request to a protocol route, in
//!   arrival order (404s and 405s are never faulted), and carries it out on the connection: a
//!   delay, a close without a response (before or after applying; after `hang_for` for a hang),
//!   an injected status, a garbage body. Faults never touch the inspection API, which reads the
//!   models' accessors directly.
//! - `server.rs` owns the runtime thread; `stop_listener`/`restart_listener` simulate a server
//!   going down and coming back with its data; `shutdown` (or drop) is graceful and bounded.
//!
//! # The inspector page
//!
//! The server shows every session on a live page at `/` ([`Server::inspector_url`]): plain
//! HTML, CSS and a little JavaScript compiled in, polling a JSON API once a second. Its routes:
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the page |
//! | `GET /inspect/api/state?session=ID&events=N` | every session (at most 100), or one, with its last `N` (0–200, default 10) events |
//! | `GET /inspect/timeline.svg?session=ID` | the session's timeline from the server's request log, drawn by [`tether_model::render::render`] |
//! | `POST /inspect/api/faults?plan=PLAN` | puts a [`FaultPlan`] in force (a preset keeps the seed and sizes in force); see [`Inspector::set_faults`] |
//! | `POST /inspect/api/partition?session=ID&seconds=N` | drops every request of the session without an answer for `N` s (0–3600; 0 ends it); see [`Inspector::partition`] |
//! | `GET /inspect/protocol`, `/inspect/app.js`, `/inspect/style.css` | the wire protocol as HTML, the page's assets |
//!
//! Safe by default: without [`ServerConfig::inspect_token`], the page and its API answer only
//! when the server is bound to a loopback address, and only to a loopback `Host` header (so a
//! web page elsewhere cannot reach them through DNS rebinding). With a token (`?token=` or an
//! `X-Tether-Token` header) they answer on any address. A change also needs an
//! `X-Tether-Inspector` header (which a cross-site form cannot send) and, if the browser sends an
//! `Origin`, the page's own. An unknown, repeated or malformed query parameter is a `400` with
//! the reason; an unknown session a `404`. No request header is ever kept, so no worker's bearer
//! token can be shown; the page's own requests are not in the request log. Each change is
//! logged ([`ServerConfig::with_change_log`], [`Inspector::changes`]). Memory stays bounded: the
//! request log keeps the last 100 000 requests over all sessions.
//!
//! # Responses
//!
//! Successful writes answer `200 {}`; `POST /worker/register` answers `{"worker_epoch": N}` and
//! `GET /worker` answers `{"worker": {...}}`. Every response is `application/json` with a
//! `Date`. Errors carry `{"error": "..."}`: 400 for malformed JSON or a missing/invalid
//! `worker_epoch` (or a malformed event batch, refused whole), 404 for unknown routes and for a
//! heartbeat whose `session_id` names another session than its URL, 405 for a wrong method, 409
//! for a superseded epoch (checked before the rest of the body), 413 for a body over the limit.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod config;
pub mod date;
mod error;
mod http;
mod inspect;
mod journal;
mod page;
mod resources;
mod routes;
mod server;
mod shared;
mod store;
mod threads;

pub use config::{ChangeLogFn, DEFAULT_BODY_LIMIT, RequestLog, RequestLogFn, ServerConfig};
pub use error::ServerError;
pub use inspect::{Connections, Inspector, SessionView};
pub use resources::Resources;
pub use routes::SESSIONS_PREFIX;
pub use server::Server;
pub use store::{Duplicates, Stats};
pub use tether_core::session::DeliveryStatus;
pub use tether_model::DeliveryUpdate;
pub use tether_model::fault::{
    Fault, FaultDecider, FaultKind, FaultMix, FaultPlan, ParseFaultPlanError, RetryAfter,
};

#[cfg(test)]
mod tests {
    #[test]
    fn handles_can_move_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<crate::Server>();
        assert_send_sync::<crate::Inspector>();
        assert_send_sync::<crate::ServerConfig>();
    }
}
