//! Drives a tether session with std threads and blocking ureq calls.
//!
//! This crate is reserved in the workspace and has no API yet.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
