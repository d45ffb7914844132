//! The built-in transport: hyper 1's client (hyper-util's pooling client) on tokio, with TLS
//! through hyper-rustls for `https`.
//!
//! hyper is the HTTP implementation the tokio ecosystem is built on (reqwest sits on it), and
//! it is already in the workspace through `tether-server`; its low-level client does exactly
//! one exchange per call, never follows a redirect and never retries, which is the
//! [`AsyncTransport`] contract, where reqwest would have to be configured out of its redirects,
//! timeouts and decompression.
//!
//! The pool keeps idle keep-alive connections (at most [`MAX_IDLE`] per origin): one
//! [`HttpTransport`] per session gives each channel its own persistent connection; a transport
//! shared by many sessions (cloned into each [`Builder`](crate::Builder)) lets them share
//! connections. A cancelled request (its future dropped) or a truncated body does not return its
//! connection to the pool. The response body is read up to the cap and no further.
//!
//! The token goes only into the `Authorization` header, marked sensitive (hyper then keeps it
//! out of its HPACK tables and its own logs).

#[cfg(feature = "tls")]
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tether_core::session::{Method, TransportError};
use tether_driver::runtime::{HttpRequest, HttpResponse};
use tether_driver::{BuildError, SessionUrl};

use tether_driver::runtime::{AsyncTransport, BoxFuture};

/// Idle connections kept per origin: one per channel of a session.
pub const MAX_IDLE: usize = 6;
/// How long an idle connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

#[cfg(feature = "tls")]
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
#[cfg(not(feature = "tls"))]
type Connector = HttpConnector;

/// The built-in [`AsyncTransport`]: HTTP/1.1 with hyper's pooling client. Cheap to clone; clones
/// share the pool. See the [module docs](self).
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

fn http_connector() -> HttpConnector {
    let mut http = HttpConnector::new();
    // Small JSON requests: send them at once.
    http.set_nodelay(true);
    http.enforce_http(false);
    http
}

impl HttpTransport {
    /// A transport for `http` and (with the `tls` feature) `https` URLs, verified against the
    /// webpki roots.
    pub fn new() -> Self {
        #[cfg(feature = "tls")]
        let connector = https_connector(default_tls_config());
        #[cfg(not(feature = "tls"))]
        let connector = http_connector();
        HttpTransport::with_connector(connector)
    }

    /// A transport whose TLS uses `config` (custom roots, client certificates, ...).
    #[cfg(feature = "tls")]
    pub fn with_tls_config(config: Arc<rustls::ClientConfig>) -> Self {
        HttpTransport::with_connector(https_connector(config))
    }

    fn with_connector(connector: Connector) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_max_idle_per_host(MAX_IDLE)
            .retry_canceled_requests(false)
            .build(connector);
        HttpTransport { client }
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

#[cfg(feature = "tls")]
fn https_connector(config: Arc<rustls::ClientConfig>) -> Connector {
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(Arc::unwrap_or_clone(config))
        .https_or_http()
        .enable_http1()
        .wrap_connector(http_connector())
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
        .uri(request.url.as_str())
        .header(header::ACCEPT, "application/json");
    for (name, value) in request.headers() {
        let mut value =
            HeaderValue::from_str(&value).map_err(|_| transport_error("request", name))?;
        if name == "authorization" {
            value.set_sensitive(true);
        }
        builder = builder.header(name, value);
    }
    builder
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
