//! The server side of tether's wire protocol (docs/PROTOCOL.md) as a pure model, and one fault
//! vocabulary.
//!
//! Two programs must agree on what the server does: the deterministic simulator (`tether-sim`),
//! which runs real sessions against it on a virtual clock, and the reference HTTP server
//! (`tether-server`), which serves one model per session over real sockets. Both take the model
//! from here, so they cannot disagree about the protocol; and neither depends on the other. Faults
//! are one vocabulary for the same reason: what a fault is, and how a seeded plan picks one per
//! request, is written once; each side only *applies* them (the simulator's network in virtual
//! time, the server to real HTTP responses).
//!
//! The crate uses std, reads no clock and does no I/O: every call that changes something takes
//! the time.
//!
//! - [`server`]: [`ServerModel`], docs/PROTOCOL.md's server for one session (epochs and fencing,
//!   the worker document, de-duplicated event streams, delivery updates, heartbeats, limits, and
//!   the thread-sync routes), with accessors for what it stored.
//! - [`threads`]: [`ThreadStore`], the thread-sync routes' store (versions, conflicts, paging,
//!   tombstones, poisoned threads).
//! - [`fault`]: the fault vocabulary: what can go wrong around a request or a run.
//! - [`timeline`] and [`render`]: a view of a request log, what happened on each channel over
//!   time, drawn as an SVG; the simulator fills one from a run, the server from its request log.
//!
//! ```
//! use tether_core::session::{Endpoint, Stream};
//! use tether_core::Instant;
//! use tether_model::ServerModel;
//!
//! let mut server = ServerModel::default();
//! let now = Instant::from_secs(1);
//! assert_eq!(server.handle(now, Endpoint::Register, b"{}").status, 200);
//! let batch = br#"{"worker_epoch":1,"events":[{"payload":{"uuid":"a","seq":0}}]}"#;
//! assert_eq!(server.handle(now, Endpoint::Events, batch).status, 200);
//! assert_eq!(server.handle(now, Endpoint::Events, batch).status, 200); // de-duplicated
//! assert_eq!(server.seqs(Stream::Events), [0]);
//! assert_eq!(server.duplicates(Stream::Events), 1);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod fault;
pub mod render;
pub mod server;
pub mod threads;
pub mod timeline;

pub use server::{
    AppliedPut, DEFAULT_BODY_LIMIT, DeliveryUpdate, SEQ_FIELD, ServerConfig, ServerModel,
    StoredEvent, seq_of,
};
pub use threads::ThreadStore;
pub use timeline::{Recorder, Timeline};
