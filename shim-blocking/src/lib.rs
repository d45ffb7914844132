//! Drives a tether session with std threads and blocking ureq calls.
//!
//! This crate is reserved in the workspace and has no API yet.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

// The README's examples compile and run as doctests of this crate.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
