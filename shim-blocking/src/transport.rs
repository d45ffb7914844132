//! The seam between the worker threads and HTTP: bring your own blocking client by
//! implementing [`Transport`]. The built-in one is ureq.

use std::fmt;
use std::time::Duration;

use tether_core::session::{Endpoint, Method, RequestId, Response, TransportError};

use crate::token::Token;

/// One HTTP exchange the session asks for.
///
/// Its `Debug` shows the endpoint, URL and body length, never the token.
#[derive(Clone)]
pub struct HttpRequest {
    /// The core's name for the request (for tracing; transports need not use it).
    pub id: RequestId,
    /// Which protocol endpoint.
    pub endpoint: Endpoint,
    /// The full URL: the session URL plus the endpoint's path.
    pub url: String,
    /// The JSON body; empty for `GET`.
    pub body: Vec<u8>,
    /// Send as `Authorization: Bearer <token>` when present.
    pub token: Option<Token>,
    /// Read at most this much of the response body; set [`Response::truncated`] if there is
    /// more (and do not read on).
    pub max_response_body: usize,
    /// A backstop for the whole exchange: the time to the core's deadline plus a grace. The
    /// core fails the request at its deadline on its own and drops a late answer; give up by
    /// this long so that the worker thread is freed.
    pub timeout: Duration,
}

impl HttpRequest {
    /// The HTTP method.
    pub fn method(&self) -> Method {
        self.endpoint.method()
    }
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRequest")
            .field("id", &self.id)
            .field("endpoint", &self.endpoint)
            .field("url", &self.url)
            .field("body_len", &self.body.len())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("max_response_body", &self.max_response_body)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A blocking HTTP client the worker threads hand requests to; set one with
/// [`Builder::transport`](crate::Builder::transport). The default is ureq.
///
/// The contract, which keeps the shim thin (DESIGN.md, conventions 7 and 8), is the smol
/// shim's `Transport` made blocking:
///
/// - **One exchange per call, no policy.** Perform the request once and return what came back:
///   any status is an `Ok(Response)`, a failure to get one (connect, reset, TLS, I/O, a malformed
///   response) is an `Err(TransportError)`. No retries and no classification: the core owns
///   them, and every request deadline.
/// - **Never follow a redirect**: a 3xx is returned as it is.
/// - **Never read a body past [`HttpRequest::max_response_body`]**: return the first that
///   many bytes with [`Response::truncated`] set.
/// - **Return by [`HttpRequest::timeout`].** The core fails the request at its deadline
///   without waiting for the call; whatever the call returns after that is dropped. The
///   backstop only frees the worker thread.
/// - `send` runs on the shim's worker threads, several at once (at most one request per
///   channel of the core is in flight, plus cancelled ones not yet returned).
///
/// ```
/// use tether_blocking::{HttpRequest, Transport};
/// use tether_core::session::{Endpoint, Response, TransportError};
///
/// /// Answers `200` to everything, as a scripted test server would.
/// struct AlwaysOk;
///
/// impl Transport for AlwaysOk {
///     fn send(&self, request: HttpRequest) -> Result<Response, TransportError> {
///         Ok(match request.endpoint {
///             Endpoint::GetWorker => Response::new(200, r#"{"worker":{}}"#),
///             Endpoint::Register => Response::new(200, r#"{"worker_epoch":1}"#),
///             _ => Response::new(200, "{}"),
///         })
///     }
/// }
/// ```
pub trait Transport: Send + Sync + 'static {
    /// Performs `request` once, blocking the calling worker thread until it has an answer.
    fn send(&self, request: HttpRequest) -> Result<Response, TransportError>;
}

impl<T: Transport + ?Sized> Transport for std::sync::Arc<T> {
    fn send(&self, request: HttpRequest) -> Result<Response, TransportError> {
        (**self).send(request)
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn send(&self, request: HttpRequest) -> Result<Response, TransportError> {
        (**self).send(request)
    }
}
