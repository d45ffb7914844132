//! Two-way sync of shared threads (docs/ARCHITECTURE.md §Thread sync, docs/PROTOCOL.md §Thread sync, seed 002).
//!
//! Several clients share the threads of a session. Local edits apply to the local view at once
//! and are pushed in per-thread merged batches; remote changes are pulled by version on an
//! adaptive schedule; a push against a stale version is a conflict, resolved by a three-way
//! merge and pushed again. Deletes are tombstones, so they stick; a change the merge drops is
//! reported, never lost in silence; an invalid thread from the server is skipped and reported;
//! a thread that keeps failing waits on its own. Offline, only a probe runs, and edits queue.
//!
//! Every piece is a machine of its own, usable alone and tested in simulated time:
//!
//! | piece | what it does |
//! |---|---|
//! | [`Thread`], [`Message`] | the data model, validated: bad input is an [`Error`] |
//! | [`ThreadMerge`] | the three-way merge with tombstones, a pluggable [`MergePolicy`], and every [`Override`] reported |
//! | [`Replica`] | the local copies: optimistic edits ([`Edit`]), rebases onto remote copies, rollbacks |
//! | [`AdaptivePoller`] | the pull interval, 5 s to 60 s, from local and remote activity that decays each second |
//! | [`NetworkState`] | online/offline from the caller and transport failures; the 30 s probe |
//! | [`PushOrchestrator`] | pushes of the replica: 100 ms windows, batches of 50, per-item results, retries, rollback, per-thread failure history and 60 s holds |
//! | [`StatusStream`], [`PerfMonitor`] | per-thread status changes; p95 latency, slow syncs, best batch size, conflict rate |
//! | [`ThreadSync`] | all of them over `GET /threads`, `POST /threads/sync`, `GET /ping` |
//!
//! Beyond edits the caller can [`sync_now`](ThreadSync::sync_now) one thread (no window),
//! [`pause`](ThreadSync::pause) and [`resume`](ThreadSync::resume) syncing, and follow the
//! set of pending threads in [`Output::Pending`]; the performance monitor's best batch
//! size is the push batch size ([`ThreadSync::batch_size`]).
//!
//! # Driving [`ThreadSync`]
//!
//! The same contract as every machine of the core: one call, then drain
//! [`poll_output`](ThreadSync::poll_output) until it names the next wake-up. Requests come out
//! with an id and a deadline the core owns; answers go back in with that id.
//!
//! ```
//! use tether_core::session::Response;
//! use tether_core::thread::{self, Message, SyncStatus, ThreadSync};
//! use tether_core::{Instant, Poll, Rng};
//!
//! let mut sync = ThreadSync::new(thread::Config::new("laptop"), Rng::new(7))?;
//! let mut now = Instant::ZERO;
//! sync.start(now, 1);
//! sync.add_message(now, "t1", Message::new("m1", "user", "hello", 1_000))?;
//!
//! let mut version = 0;
//! for _ in 0..20 {
//!     let wake = loop {
//!         match sync.poll_output() {
//!             Poll::Output(thread::Output::Send(request)) => {
//!                 // A real driver sends the request; this "server" answers at once.
//!                 let body = match request.endpoint {
//!                     thread::Endpoint::Pull => {
//!                         format!(r#"{{"threads":[],"version":{version}}}"#)
//!                     }
//!                     thread::Endpoint::Sync => {
//!                         version += 1;
//!                         r#"{"results":[{"id":"t1","status":"applied","v":1}]}"#.into()
//!                     }
//!                     thread::Endpoint::Ping => "{}".into(),
//!                 };
//!                 sync.handle_response(now, request.id, Response::new(200, body));
//!             }
//!             Poll::Output(other) => println!("{now}: {other:?}"),
//!             Poll::Timeout(wake) => break wake,
//!         }
//!     };
//!     let Some(wake) = wake else { break };
//!     if sync.status("t1") == SyncStatus::Synced {
//!         break;
//!     }
//!     now = wake.at; // a real driver sleeps until then, or until an answer arrives
//!     sync.handle_timeout(now);
//! }
//! assert_eq!(sync.status("t1"), SyncStatus::Synced);
//! assert_eq!(sync.thread("t1").map(|t| t.v), Some(1));
//! assert_eq!(now, Instant::from_millis(100)); // the push window
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod merge;
pub mod model;
pub mod network;
pub mod output;
pub mod poller;
pub mod push;
mod queue;
pub mod replica;
pub mod status;
pub mod sync;
pub mod wire;

pub use merge::{Contested, DefaultPolicy, MergePolicy, Merged, Override, Side, ThreadMerge};
pub use model::{Error, Message, Thread};
pub use network::{
    NetworkConfig, NetworkOutput, NetworkState, NetworkTimer, OfflineReason, ProbeId,
    is_network_failure,
};
pub use output::{Config, ConfigError, Output, Request, RequestId, Timer};
pub use poller::{AdaptivePoller, MAX_ACTIVITY, PollerConfig, PollerOutput, PollerTimer};
pub use push::{
    PushConfig, PushId, PushOrchestrator, PushOutput, PushTimer, RejectedThread, StopReason,
};
pub use replica::{Edit, Rebased, Replica, RolledBack};
pub use status::{
    NoTimer, PerfConfig, PerfMonitor, SlowSync, StatusChange, StatusStream, SyncStatus,
};
pub use sync::{Counts, ThreadSync};
pub use wire::{Endpoint, InvalidThread, ItemResult, PullPage, SyncItem, WireError};
