//! Scenarios of the [world](crate::world): each a workload (what the callers do and when) plus
//! its invariant checks.
//!
//! - [`session`]: one worker session on the real driver, its caller sending events (and waiting
//!   when a queue is full), acknowledging, patching, flushing and closing or dropping its
//!   handle, against one server through the faulty network.
//! - [`crash`]: one worker process with a durable outbox, killed several times and started
//!   again on its store, through a lossy network: every acknowledged event lands once, in
//!   order, and the document converges.
//! - [`fleet`]: many sessions against servers that go down together and come back, sharing
//!   one retry budget: every event lands, and the retries stay within the budget's bound.
//! - [`threads`]: 2 to 5 clients, real drivers with thread sync on their handles, editing shared
//!   threads through faults, partitions and cut-offs, then a heal and the convergence checks.

pub mod crash;
pub mod fleet;
pub mod session;
pub mod threads;
