//! The seam between the driver future and HTTP: bring your own async client by implementing
//! [`Transport`].

use std::future::Future;
use std::pin::Pin;

use tether_core::session::TransportError;
use tether_driver::{HttpRequest, HttpResponse};

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// An async HTTP client the driver future hands requests to; set one with
/// [`Builder::transport`](crate::Builder::transport). The default is
/// [`HttpTransport`](crate::HttpTransport).
///
/// The contract keeps the shim thin (DESIGN.md, conventions 7 and 8): one exchange per call,
/// no retries or classification (any status is an `Ok`), never follow a redirect, never read a
/// body past [`HttpRequest::max_response_body`]. The driver future polls the returned future
/// inside its own task and drops it when the core cancels the request at its deadline.
pub trait Transport: Send + Sync + 'static {
    /// Performs `request` once.
    fn send(&self, request: HttpRequest) -> BoxFuture<Result<HttpResponse, TransportError>>;
}

impl<T: Transport + ?Sized> Transport for std::sync::Arc<T> {
    fn send(&self, request: HttpRequest) -> BoxFuture<Result<HttpResponse, TransportError>> {
        (**self).send(request)
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn send(&self, request: HttpRequest) -> BoxFuture<Result<HttpResponse, TransportError>> {
        (**self).send(request)
    }
}

impl std::fmt::Debug for dyn Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Transport")
    }
}
