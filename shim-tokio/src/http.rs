//! The built-in transport: hyper 1's client (hyper-util's pooling client) on tokio, with TLS
//! through hyper-rustls for `https`.
//!
//! hyper is the HTTP implementation the tokio ecosystem is built on (reqwest sits on it), and
//! it is already in the workspace through `tether-server`; its low-level client does exactly
//! one exchange per call, never follows a redirect and never retries, which is the
//! [`AsyncTransport`] contract, where reqwest would have to be configured out of its redirects,
//! timeouts and decompression.
//!
//! # One transport, many sessions
//!
//! An [`HttpTransport`] is cheap to clone, and clones share one connection pool. Give one to
//! every session of a fleet (`builder(url).transport(transport.clone())`) and they share its
//! connections:
//!
//! - **HTTP/2** carries every session's requests over **one multiplexed connection per host**:
//!   `https` negotiates it through ALPN (`h2`, falling back to HTTP/1.1 when the server does not
//!   offer it), and plain `http` speaks it with prior knowledge (h2c) when built with
//!   [`HttpTransport::h2c`] or [`HttpTransportBuilder::h2c`]. With prior knowledge only one
//!   connection to a host is being opened at a time, and requests that arrive meanwhile wait
//!   for it. Through ALPN the protocol is known only after the handshake, so requests that all
//!   arrive before the first connection is up may each open one (every later request shares
//!   an HTTP/2 connection); a fleet that starts at once against a server known to speak
//!   HTTP/2 over TLS can set [`HttpTransportBuilder::h2c`] (HTTP/2 only) for one connection
//!   from the start. The windows are sized for
//!   a fleet ([`H2_STREAM_WINDOW`], [`H2_CONNECTION_WINDOW`]); how many streams run at once is the
//!   server's `SETTINGS_MAX_CONCURRENT_STREAMS`, and requests beyond it queue on the connection.
//!   A ping every [`H2_KEEP_ALIVE`] finds a connection that went silent. A connection that dies
//!   fails the requests it carried (each ends in a transport error, which the core classifies and
//!   retries by its own rules) and the next request opens a new one: nothing is retried here.
//! - **HTTP/1.1** (the default for plain `http`) keeps one connection per request in flight, and
//!   the pool keeps every connection it opened idle for reuse (up to
//!   [`HttpTransportBuilder::max_idle_per_host`], unbounded by default, for [`IDLE_TIMEOUT`]), so
//!   a shared pool grows to what its sessions use at once and stays there instead of opening and
//!   closing a connection per request. Connects are bounded: at most
//!   [`MAX_CONNECTING`] at once per transport (the rest wait their turn), so a fleet starting
//!   together cannot overflow a server's listen backlog.
//!
//! A cancelled request (its future dropped) or a truncated body does not return its HTTP/1.1
//! connection to the pool (an HTTP/2 stream is reset instead). The response body is read up to
//! the cap and no further.
//!
//! The token goes only into the `Authorization` header, marked sensitive (hyper then keeps it
//! out of its HPACK tables and its own logs).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
#[cfg(feature = "tls")]
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Uri;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tether_core::session::{Method, TransportError};
use tether_driver::runtime::{HttpRequest, HttpResponse};
use tether_driver::{BuildError, SessionUrl};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use tether_driver::runtime::{AsyncTransport, BoxFuture};

/// How long an idle connection is kept.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Connects in progress at once, per transport, by default.
pub const MAX_CONNECTING: usize = 64;
/// The HTTP/2 receive window of one stream: a whole response of the default
/// [`max_response_body`](tether_core::session::SessionConfig::max_response_body) (64 KiB), four
/// times over, arrives without waiting for a window update.
pub const H2_STREAM_WINDOW: u32 = 256 * 1024;
/// The HTTP/2 receive window of the connection, shared by every session's responses.
pub const H2_CONNECTION_WINDOW: u32 = 8 * 1024 * 1024;
/// How often an HTTP/2 connection is pinged (also while idle); a ping unanswered for
/// [`H2_KEEP_ALIVE_TIMEOUT`] closes the connection, and the next request opens a new one.
pub const H2_KEEP_ALIVE: Duration = Duration::from_secs(20);
/// See [`H2_KEEP_ALIVE`].
pub const H2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

type Tcp = BoundedConnector<HttpConnector>;
#[cfg(feature = "tls")]
type Connector = hyper_rustls::HttpsConnector<Tcp>;
#[cfg(not(feature = "tls"))]
type Connector = Tcp;

/// The built-in [`AsyncTransport`]: hyper's pooling client, HTTP/1.1 or HTTP/2. Cheap to clone;
/// clones share the pool, so sessions given clones share connections. See the
/// [module docs](self).
#[derive(Clone)]
pub struct HttpTransport {
    client: Client<Connector, Full<Bytes>>,
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport").finish_non_exhaustive()
    }
}

impl Default for HttpTransport {
    fn default() -> Self {
        HttpTransport::new()
    }
}

impl HttpTransport {
    /// A transport for `http` (HTTP/1.1) and, with the `tls` feature, `https` URLs (HTTP/2
    /// when the server offers `h2` through ALPN, else HTTP/1.1), verified against the webpki
    /// roots.
    pub fn new() -> Self {
        HttpTransport::builder().build()
    }

    /// A transport that speaks HTTP/2 with prior knowledge: h2c on plain `http` (the server
    /// must accept it, as `tether-server` does), and HTTP/2 without fall-back on `https`.
    /// Share it between the sessions of a fleet: they then share one connection per host.
    pub fn h2c() -> Self {
        HttpTransport::builder().h2c(true).build()
    }

    /// A transport whose TLS uses `config` (custom roots, client certificates, ...); its ALPN
    /// protocols are set to `h2` and `http/1.1`.
    #[cfg(feature = "tls")]
    pub fn with_tls_config(config: Arc<rustls::ClientConfig>) -> Self {
        HttpTransport::builder().tls_config(config).build()
    }

    /// Chooses the HTTP version, TLS configuration and limits.
    pub fn builder() -> HttpTransportBuilder {
        HttpTransportBuilder::default()
    }

    /// The default transport for `url`: refuses `https` without the `tls` feature.
    pub(crate) fn for_url(url: &SessionUrl) -> Result<Self, BuildError> {
        if url.is_https() && !cfg!(feature = "tls") {
            return Err(BuildError::InvalidUrl {
                reason: "https needs the `tls` feature of tether-tokio".into(),
            });
        }
        Ok(HttpTransport::new())
    }
}

/// Builds an [`HttpTransport`]: [`HttpTransport::builder`].
#[derive(Clone)]
pub struct HttpTransportBuilder {
    h2c: bool,
    max_connecting: usize,
    max_idle_per_host: usize,
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Default for HttpTransportBuilder {
    fn default() -> Self {
        HttpTransportBuilder {
            h2c: false,
            max_connecting: MAX_CONNECTING,
            max_idle_per_host: usize::MAX,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl std::fmt::Debug for HttpTransportBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransportBuilder")
            .field("h2c", &self.h2c)
            .field("max_connecting", &self.max_connecting)
            .field("max_idle_per_host", &self.max_idle_per_host)
            .finish_non_exhaustive()
    }
}

impl HttpTransportBuilder {
    /// HTTP/2 with prior knowledge on every URL (h2c on plain `http`). Default `false`:
    /// HTTP/1.1 on `http`, ALPN on `https`.
    pub fn h2c(mut self, on: bool) -> Self {
        self.h2c = on;
        self
    }

    /// Connects in progress at once (at least 1). Default [`MAX_CONNECTING`].
    pub fn max_connecting(mut self, n: usize) -> Self {
        self.max_connecting = n.max(1);
        self
    }

    /// Idle HTTP/1.1 connections kept per host. Default unbounded: every connection the
    /// sessions needed at once is kept for reuse until idle for [`IDLE_TIMEOUT`]. A bound
    /// below what the sessions use at once closes the extra connections after each request.
    pub fn max_idle_per_host(mut self, n: usize) -> Self {
        self.max_idle_per_host = n;
        self
    }

    /// The TLS configuration for `https` (default: the webpki roots, no client certificate).
    #[cfg(feature = "tls")]
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// The transport.
    pub fn build(self) -> HttpTransport {
        let tcp = BoundedConnector {
            inner: http_connector(),
            permits: Arc::new(Semaphore::new(self.max_connecting)),
        };
        #[cfg(feature = "tls")]
        let connector = {
            let config = self.tls.unwrap_or_else(default_tls_config);
            https_connector(config, tcp, self.h2c)
        };
        #[cfg(not(feature = "tls"))]
        let connector = tcp;
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_max_idle_per_host(self.max_idle_per_host)
            .retry_canceled_requests(false)
            .http2_only(self.h2c)
            .timer(TokioTimer::new())
            .http2_initial_stream_window_size(H2_STREAM_WINDOW)
            .http2_initial_connection_window_size(H2_CONNECTION_WINDOW)
            .http2_keep_alive_interval(H2_KEEP_ALIVE)
            .http2_keep_alive_timeout(H2_KEEP_ALIVE_TIMEOUT)
            .http2_keep_alive_while_idle(true)
            .build(connector);
        HttpTransport { client }
    }
}

fn http_connector() -> HttpConnector {
    let mut http = HttpConnector::new();
    // Small JSON requests: send them at once.
    http.set_nodelay(true);
    http.enforce_http(false);
    http
}

/// A connector that lets at most as many connects run at once as its semaphore has permits.
#[derive(Clone)]
struct BoundedConnector<C> {
    inner: C,
    permits: Arc<Semaphore>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Uri> for BoundedConnector<HttpConnector> {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        tower_service::Service::<Uri>::poll_ready(&mut self.inner, cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let mut inner = self.inner.clone();
        let permits = Arc::clone(&self.permits);
        Box::pin(async move {
            // The semaphore is never closed.
            let _permit = permits.acquire_owned().await?;
            Ok(tower_service::Service::call(&mut inner, uri).await?)
        })
    }
}

#[cfg(feature = "tls")]
fn https_connector(config: Arc<rustls::ClientConfig>, tcp: Tcp, h2_only: bool) -> Connector {
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(Arc::unwrap_or_clone(config))
        .https_or_http();
    if h2_only {
        builder.enable_http2().wrap_connector(tcp)
    } else {
        builder.enable_http1().enable_http2().wrap_connector(tcp)
    }
}

/// One TLS configuration for the process: the root store is large, sessions are many.
#[cfg(feature = "tls")]
fn default_tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        use hyper_rustls::ConfigBuilderExt;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|b| b.with_webpki_roots().with_no_client_auth());
        match config {
            Ok(config) => Arc::new(config),
            // ring supports the default versions; this cannot fail.
            Err(e) => unreachable!("ring lacks the default TLS versions: {e}"),
        }
    });
    Arc::clone(config)
}

fn transport_error(context: &str, e: impl std::fmt::Display) -> TransportError {
    TransportError {
        message: format!("{context}: {e}"),
    }
}

impl AsyncTransport for HttpTransport {
    fn send(&self, request: HttpRequest) -> BoxFuture<Result<HttpResponse, TransportError>> {
        let client = self.client.clone();
        Box::pin(async move {
            let cap = request.max_response_body;
            let backstop = request.backstop;
            let exchange = async {
                let response = client
                    .request(to_hyper(request)?)
                    .await
                    .map_err(|e| transport_error("http", error_chain(&e)))?;
                read_response(response, cap).await
            };
            match backstop {
                Some(after) => tokio::time::timeout(after, exchange)
                    .await
                    .unwrap_or_else(|_| Err(transport_error("http", "backstop timeout"))),
                None => exchange.await,
            }
        })
    }
}

fn to_hyper(request: HttpRequest) -> Result<hyper::Request<Full<Bytes>>, TransportError> {
    let method = match request.method() {
        Method::Get => hyper::Method::GET,
        Method::Put => hyper::Method::PUT,
        Method::Post => hyper::Method::POST,
    };
    let mut builder = hyper::Request::builder()
        .method(method)
        .header(header::ACCEPT, "application/json");
    for (name, value) in request.headers() {
        let mut value =
            HeaderValue::from_str(value).map_err(|_| transport_error("request", name))?;
        if name == "authorization" {
            value.set_sensitive(true);
        }
        builder = builder.header(name, value);
    }
    // The URL's own buffer becomes the URI's, not a copy of it.
    let uri = Uri::from_maybe_shared(Bytes::from(request.url))
        .map_err(|e| transport_error("request", e))?;
    builder
        .uri(uri)
        .body(Full::new(Bytes::from(request.body)))
        .map_err(|e| transport_error("request", e))
}

/// The status, the two headers the core reads, and the body up to `cap`.
async fn read_response(
    response: hyper::Response<Incoming>,
    cap: usize,
) -> Result<HttpResponse, TransportError> {
    let header_text = |name: header::HeaderName| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let mut out = HttpResponse {
        status: response.status().as_u16(),
        retry_after: header_text(header::RETRY_AFTER),
        date: header_text(header::DATE),
        body: Vec::new(),
        truncated: false,
    };
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| transport_error("read", error_chain(&e)))?;
        if let Ok(data) = frame.into_data() {
            out.body.extend_from_slice(&data);
            if out.body.len() > cap {
                // Stop reading; dropping the body closes the connection.
                out.body.truncate(cap);
                out.truncated = true;
                break;
            }
        }
    }
    Ok(out)
}

/// An error and its sources, one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
