//! What the session asks of the network, and what it is told back (docs/PROTOCOL.md).
//!
//! Requests are described, not performed: a method, a path relative to the session URL, the JSON
//! body bytes and a deadline the core owns. Shims only move these bytes.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::time::Instant;

/// An HTTP method the protocol uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`
    Get,
    /// `PUT`
    Put,
    /// `POST`
    Post,
}

impl Method {
    /// The method's name on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Put => "PUT",
            Method::Post => "POST",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The protocol's endpoints, one per kind of request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// `POST /worker/register`: ask for a new epoch.
    Register,
    /// `PUT /worker`: the init `idle` status, and state updates.
    PutWorker,
    /// `GET /worker`: the base document.
    GetWorker,
    /// `POST /worker/heartbeat`
    Heartbeat,
    /// `POST /worker/events`
    Events,
    /// `POST /worker/internal-events`
    InternalEvents,
    /// `POST /worker/events/delivery`
    Delivery,
}

impl Endpoint {
    /// Every endpoint.
    pub const ALL: [Endpoint; 7] = [
        Endpoint::Register,
        Endpoint::PutWorker,
        Endpoint::GetWorker,
        Endpoint::Heartbeat,
        Endpoint::Events,
        Endpoint::InternalEvents,
        Endpoint::Delivery,
    ];

    /// The method to use.
    pub const fn method(self) -> Method {
        match self {
            Endpoint::GetWorker => Method::Get,
            Endpoint::PutWorker => Method::Put,
            _ => Method::Post,
        }
    }

    /// The path relative to the session URL.
    pub const fn path(self) -> &'static str {
        match self {
            Endpoint::Register => "/worker/register",
            Endpoint::PutWorker | Endpoint::GetWorker => "/worker",
            Endpoint::Heartbeat => "/worker/heartbeat",
            Endpoint::Events => "/worker/events",
            Endpoint::InternalEvents => "/worker/internal-events",
            Endpoint::Delivery => "/worker/events/delivery",
        }
    }

    /// The endpoint for a method and path, if the protocol has one.
    pub fn from_parts(method: &str, path: &str) -> Option<Endpoint> {
        Endpoint::ALL
            .into_iter()
            .find(|e| e.method().as_str() == method && e.path() == path)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method(), self.path())
    }
}

pub use crate::drive::RequestId;

/// A request for the driver to perform.
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    /// Echo this back with the response.
    pub id: RequestId,
    /// What to call.
    pub endpoint: Endpoint,
    /// The JSON body; empty for `GET`.
    pub body: Vec<u8>,
    /// The core fails the request at this instant and emits a cancel for it.
    pub deadline: Instant,
}

impl Request {
    /// The HTTP method.
    pub const fn method(&self) -> Method {
        self.endpoint.method()
    }

    /// The path relative to the session URL.
    pub const fn path(&self) -> &'static str {
        self.endpoint.path()
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("id", &self.id)
            .field("endpoint", &self.endpoint)
            .field("body_len", &self.body.len())
            .field("deadline", &self.deadline)
            .finish()
    }
}

/// A response as the core consumes it: the status, the two headers it reads, and the body,
/// which the driver must cap at
/// [`SessionConfig::max_response_body`](super::SessionConfig::max_response_body) bytes
/// (64 KiB by default).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
    /// The `Date` header, if any.
    pub date: Option<String>,
    /// The body, at most the cap; `truncated` says whether there was more.
    pub body: Vec<u8>,
    /// Whether the body was longer than the cap (the core treats that as a bad body).
    pub truncated: bool,
}

impl Response {
    /// A response with a status and a body, and no headers.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            body: body.into(),
            ..Response::default()
        }
    }
}

/// The request never got a response: connection refused or reset, DNS, TLS, I/O.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportError {
    /// A description for logs and traces. Never contains credentials.
    pub message: String,
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "transport error: {}", self.message)
    }
}

impl core::error::Error for TransportError {}
