//! The seam between the driver and HTTP: bring your own async client by implementing
//! [`Transport`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use tether_core::session::{Endpoint, Method, RequestId, Response, TransportError};

use crate::token::Token;

/// A boxed, sendable future: what [`Transport::send`] returns.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

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
            .finish()
    }
}

/// An async HTTP client the driver hands requests to.
///
/// The contract, which keeps the shim thin (DESIGN.md, conventions 7 and 8):
///
/// - **One exchange per call, no policy.** Perform the request once and return what came back:
///   any status is an `Ok(Response)`, a failure to get one (connect, reset, TLS, I/O, a malformed
///   response) is an `Err(TransportError)`. No retries, no timeouts, no classification: the
///   core owns all of them.
/// - **Never follow a redirect**: a 3xx is returned as it is.
/// - **Never read a body past [`HttpRequest::max_response_body`]**: return the first that
///   many bytes with [`Response::truncated`] set, and drop the connection.
/// - **Cancellation is drop.** When a request's deadline passes the driver drops its future;
///   the transport must then not reuse that connection (dropping it closes it).
/// - At most one request per channel is in flight, so at most six at once per session; a
///   transport may keep one small persistent connection per concurrent request.
/// - The future must not block the executor.
///
/// ```
/// use tether_core::session::{Response, TransportError};
/// use tether_smol::{BoxFuture, HttpRequest, Transport};
///
/// /// Answers `200 {}` to everything, as a scripted test server would.
/// struct AlwaysOk;
///
/// impl Transport for AlwaysOk {
///     fn send(&self, request: HttpRequest) -> BoxFuture<Result<Response, TransportError>> {
///         let body = if request.endpoint == tether_core::session::Endpoint::GetWorker {
///             r#"{"worker":{}}"#
///         } else {
///             "{}"
///         };
///         Box::pin(async move { Ok(Response::new(200, body)) })
///     }
/// }
/// ```
pub trait Transport: Send + Sync + 'static {
    /// Performs `request` once. Dropping the future cancels it.
    fn send(&self, request: HttpRequest) -> BoxFuture<Result<Response, TransportError>>;
}

impl<T: Transport + ?Sized> Transport for std::sync::Arc<T> {
    fn send(&self, request: HttpRequest) -> BoxFuture<Result<Response, TransportError>> {
        (**self).send(request)
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn send(&self, request: HttpRequest) -> BoxFuture<Result<Response, TransportError>> {
        (**self).send(request)
    }
}
