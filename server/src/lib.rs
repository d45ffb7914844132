//! The reference server of tether's wire protocol, with fault injection.
//!
//! This crate is reserved in the workspace and has no API yet.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
