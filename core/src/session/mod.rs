//! The session machine: the client of PROTOCOL.md.

pub mod wire;

pub use wire::{Endpoint, Method, Request, RequestId, Response, TransportError};
