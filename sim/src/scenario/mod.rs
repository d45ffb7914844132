//! Scenarios of the [world](crate::world): each a workload (what the callers do and when) plus
//! its invariant checks.
//!
//! - [`session`]: one worker session on the real driver, its caller sending events (and waiting
//!   when a queue is full), acknowledging, patching, flushing and closing or dropping its
//!   handle, against one server through the faulty network.

pub mod session;
