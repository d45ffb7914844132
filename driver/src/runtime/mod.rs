//! For shim authors: what a runtime gives the driver, and the parts a shim is made of. A user
//! needs none of this; they import the [`prelude`](crate::prelude).
//!
//! A runtime is a clock, a timer, a way to spawn the driver's task, and a default transport
//! ([`Runtime`]); like quinn's runtime adapters, that is all a shim is. The one
//! [`Builder`](crate::Builder) starts a session on any of them and hands back the one
//! [`Tether`](crate::Tether). The task ([`DriverTask`]) is the one drive loop, written once:
//! it calls [`Shared::turn`] and carries out the [`Action`]s.

use std::sync::Arc;

pub use crate::action::Action;
pub use crate::clock::{ClockInstant, Origin};
pub use crate::error::BuildError;
pub use crate::http::{BACKSTOP_GRACE, HttpRequest, HttpResponse, Route, USER_AGENT};
pub use crate::shared::{ClockFn, NotifyFn, Shared, Turn};
pub use crate::store_job::{StoreDone, StoreJob, StoreJobKind};
pub use crate::task::{
    AsyncTimer, AsyncTransport, BoxFuture, DriverTask, RunStore, WORK_BUDGET, Wakeup,
};
pub use crate::url::SessionUrl;
pub use crate::wait::Completer;

/// What a runtime gives the driver. Implement it for a new runtime; the
/// [`Builder`](crate::Builder) does the rest, the same way on every runtime.
pub trait Runtime: Send + Sync + 'static {
    /// The runtime's timer for one driver task.
    type Timer: AsyncTimer;

    /// Its clock's instant type (`std::time::Instant` for a real clock).
    type Instant: ClockInstant;

    /// The runtime's clock read now (tokio's reads its paused time, for instance): the origin
    /// a new session's core time counts from. The driver never reads a clock: the shim reads
    /// its own, here and in [`now`](Self::now), and converts at its edge.
    fn origin() -> Origin<Self::Instant>;

    /// The runtime's time now, in core time counted from `origin`.
    fn now(origin: &Origin<Self::Instant>) -> tether_core::Instant;

    /// A timer for one driver task, converting the driver's deadlines through `origin`.
    fn timer(&self, origin: Origin<Self::Instant>) -> Self::Timer;

    /// Runs `task` to its end in the background (a task on an executor, or a thread).
    ///
    /// # Errors
    /// The runtime could not start it.
    fn spawn(&self, task: DriverTask<Self::Timer>) -> std::io::Result<()>;

    /// Runs a store job of the durable outbox where blocking is allowed, never on an executor
    /// thread: a blocking pool (`spawn_blocking`, `unblock`). The default runs it inline,
    /// which suits a runtime whose driver loop has a thread of its own.
    fn run_store(job: StoreJob) -> BoxFuture<StoreDone> {
        Box::pin(std::future::ready(job.run()))
    }

    /// The transport a session uses unless the builder is given one.
    ///
    /// # Errors
    /// The URL cannot be served by this transport (e.g. `https` without TLS support).
    fn transport(&self, url: &SessionUrl) -> Result<Arc<dyn AsyncTransport>, BuildError>;
}
