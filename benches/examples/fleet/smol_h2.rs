//! A prototype HTTP/2 transport for smol, to measure against `tether_smol::HttpTransport`'s
//! shared HTTP/1.1 pool (issue 23, item 3): hyper's HTTP/2 client on `async_io::Async`
//! sockets, one prior-knowledge (h2c) connection shared by every session that clones it, with
//! the windows `tether-tokio` uses. Plain `http` only, no TLS, no connect bound: enough to
//! measure, not a shim.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_lite::{AsyncRead, AsyncWrite};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::{self, SendRequest};
use tether_core::session::{Method, TransportError};
use tether_driver::runtime::{AsyncTransport, BoxFuture, HttpRequest, HttpResponse};

/// The windows `tether-tokio` sizes for a fleet.
const STREAM_WINDOW: u32 = 256 * 1024;
const CONNECTION_WINDOW: u32 = 8 * 1024 * 1024;

/// One h2c connection to `addr`, opened on first use and again after it died.
#[derive(Clone)]
pub struct SmolH2 {
    inner: Arc<Inner>,
}

struct Inner {
    executor: Arc<smol::Executor<'static>>,
    addr: String,
    sender: smol::lock::Mutex<Option<SendRequest<Full<Bytes>>>>,
}

impl SmolH2 {
    /// A transport to `base` (`http://host:port`), whose connection task runs on `executor`.
    pub fn new(base: &str, executor: Arc<smol::Executor<'static>>) -> Self {
        let addr = base.trim_start_matches("http://").to_owned();
        SmolH2 {
            inner: Arc::new(Inner {
                executor,
                addr,
                sender: smol::lock::Mutex::new(None),
            }),
        }
    }

    async fn sender(&self) -> Result<SendRequest<Full<Bytes>>, TransportError> {
        let mut sender = self.inner.sender.lock().await;
        if let Some(s) = sender.as_ref().filter(|s| !s.is_closed()) {
            return Ok(s.clone());
        }
        let stream = smol::net::TcpStream::connect(self.inner.addr.as_str())
            .await
            .map_err(|e| error("connect", e))?;
        stream.set_nodelay(true).map_err(|e| error("connect", e))?;
        let (s, connection) = http2::Builder::new(Exec(Arc::clone(&self.inner.executor)))
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .handshake(Io(stream))
            .await
            .map_err(|e| error("h2 handshake", e))?;
        self.inner
            .executor
            .spawn(async move {
                let _ = connection.await;
            })
            .detach();
        *sender = Some(s.clone());
        Ok(s)
    }
}

fn error(context: &str, e: impl std::fmt::Display) -> TransportError {
    TransportError {
        message: format!("{context}: {e}"),
    }
}

impl AsyncTransport for SmolH2 {
    fn send(&self, request: HttpRequest) -> BoxFuture<Result<HttpResponse, TransportError>> {
        let this = self.clone();
        Box::pin(async move {
            let cap = request.max_response_body;
            let method = match request.method() {
                Method::Get => hyper::Method::GET,
                Method::Put => hyper::Method::PUT,
                Method::Post => hyper::Method::POST,
            };
            let mut builder = hyper::Request::builder()
                .method(method)
                .uri(request.url.as_str());
            for (name, value) in request.headers() {
                builder = builder.header(name, value);
            }
            let request = builder
                .body(Full::new(Bytes::from(request.body)))
                .map_err(|e| error("request", e))?;
            let mut sender = this.sender().await?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| error("http", e))?;
            let header = |name: hyper::header::HeaderName| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let (retry_after, date) = (
                header(hyper::header::RETRY_AFTER),
                header(hyper::header::DATE),
            );
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| error("body", e))?
                .to_bytes();
            Ok(HttpResponse {
                status,
                retry_after,
                date,
                body: body.to_vec(),
                truncated: false,
            }
            .capped(cap))
        })
    }
}

/// hyper's executor: the smol executor the sessions run on.
#[derive(Clone)]
struct Exec(Arc<smol::Executor<'static>>);

impl<F: Future<Output = ()> + Send + 'static> hyper::rt::Executor<F> for Exec {
    fn execute(&self, future: F) {
        self.0.spawn(future).detach();
    }
}

/// hyper's I/O traits over smol's socket. Reads go through a small buffer (hyper's cursor
/// takes initialised bytes only without `unsafe`): one copy per read.
struct Io(smol::net::TcpStream);

impl hyper::rt::Read for Io {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let mut chunk = [0u8; 16 * 1024];
        let len = buf.remaining().min(chunk.len());
        let n = ready!(Pin::new(&mut self.0).poll_read(cx, &mut chunk[..len]))?;
        buf.put_slice(&chunk[..n]);
        Poll::Ready(Ok(()))
    }
}

impl hyper::rt::Write for Io {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}
