//! Drives a tether session on smol and async-io.
//!
//! This crate is reserved in the workspace and has no API yet.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
