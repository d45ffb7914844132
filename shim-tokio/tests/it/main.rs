//! The crate's integration tests, linked as one binary (each file below was its own binary;
//! one link per crate builds much faster).
#![allow(
    clippy::disallowed_methods,
    reason = "tests are the I/O edge: they read clocks and sleep"
)]

mod budget;
mod common;
mod fleet;
mod runtime;
#[cfg(feature = "tls")]
mod tls;
