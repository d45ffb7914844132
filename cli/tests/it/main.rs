//! The crate's integration tests, linked as one binary (each file below was its own binary;
//! one link per crate builds much faster).
#![allow(
    clippy::disallowed_methods,
    reason = "tests are the I/O edge: they read clocks and sleep"
)]

mod cli;
mod outbox;
mod outbox_crash;
mod outbox_disk;
mod sim;
mod support;
mod sync;
mod threads;
