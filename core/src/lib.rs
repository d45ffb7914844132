//! Sans-IO state machines that keep a worker session in sync with a server.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

pub mod backoff;
pub mod drive;
pub mod patch;
pub mod rng;
pub mod state;
pub mod time;

pub use drive::{Machine, Poll, Wake};
pub use rng::Rng;
pub use time::{Clock, Instant};
