//! The built-in transport: HTTP/1.1 through ureq-proto's sans-IO client over
//! `async_io::Async<TcpStream>`, with TLS through futures-rustls for `https`.
//!
//! A small pool keeps idle keep-alive connections (at most one per channel, six per session);
//! a request takes one (checking first that the peer has not closed it) or opens a new one.
//!
//! A fleet of sessions to one origin can share one transport: clone it into each session's
//! builder (`builder(url).transport(transport.clone())`). The pool is then sized to the sessions
//! that share it (six idle connections per live clone), so each keeps its connections instead of
//! opening and closing one per request, and at most [`MAX_CONNECTING`] connects run at once (the
//! rest wait their turn), so a fleet that starts together does not overflow the server's listen
//! backlog. The transport connects to the origin it was made for: every session that shares it
//! must have that origin.
//! Give each session its own clone: the pool keeps six idle connections per clone alive, or
//! as many as the most exchanges it has had under way at once, whichever is more (so one `Arc`
//! shared by a fleet still keeps what the fleet uses at once instead of opening a connection
//! per request).
//! A connection is pooled again only after a complete exchange the server did not ask to end;
//! a cancelled request (its future dropped), an error, a truncated body or a redirect with
//! `Connection: close` drops it. Redirects are never followed. The response body is read up to
//! the cap and no further.
//!
//! The token never passes through ureq-proto: it writes (and logs, at trace level) the request
//! head without it, and the `Authorization` line is spliced into the bytes afterwards.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use tether_core::session::{Method, TransportError};
use tether_driver::runtime::{HttpRequest, HttpResponse};
use tether_driver::{BuildError, SessionUrl};
use ureq_proto::BodyMode;
use ureq_proto::client::state::{RecvBody, RecvResponse};
use ureq_proto::client::{Call, RecvBodyResult, RecvResponseResult, SendRequestResult};
use ureq_proto::http::{self, header};

use crate::http_conn::Conn;
use tether_driver::runtime::{AsyncTransport, BoxFuture};

/// Idle connections kept per clone of a transport (a session holds one clone): one per channel
/// of a session.
const MAX_IDLE: usize = 6;
/// Connects in progress at once, per transport (shared by its clones).
pub const MAX_CONNECTING: usize = 64;
/// The most response head (status line and headers) read before giving up.
const MAX_HEAD: usize = 64 * 1024;
/// Socket reads go through a buffer of this size.
const READ_CHUNK: usize = 8 * 1024;

/// The built-in [`AsyncTransport`]: HTTP/1.1 with ureq-proto on async-io, one persistent connection
/// per channel. See the [module docs](self).
#[derive(Clone)]
pub struct HttpTransport {
    inner: Arc<Inner>,
    /// One count per clone alive: the sessions sharing the pool, which sizes it.
    sharers: Arc<()>,
}

struct Inner {
    url: SessionUrl,
    idle: Mutex<Vec<Conn>>,
    /// Exchanges under way: each holds a connection it will want to pool again.
    in_flight: AtomicUsize,
    /// The most exchanges ever under way at once: what the sessions sharing it use.
    peak: AtomicUsize,
    connecting: smol::lock::Semaphore,
    #[cfg(feature = "tls")]
    tls: Option<(
        futures_rustls::TlsConnector,
        futures_rustls::pki_types::ServerName<'static>,
    )>,
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport")
            .field("url", &self.inner.url)
            .finish_non_exhaustive()
    }
}

impl HttpTransport {
    /// A transport for the origin of `session_url` (`http`, or `https` with the `tls` feature,
    /// verified against the webpki roots).
    pub fn new(session_url: &str) -> Result<Self, BuildError> {
        let url = SessionUrl::parse(session_url)?;
        HttpTransport::for_url(url)
    }

    /// A transport for `session_url` whose TLS uses `config` (custom roots, client
    /// certificates, ...).
    #[cfg(feature = "tls")]
    pub fn with_tls_config(
        session_url: &str,
        config: Arc<futures_rustls::rustls::ClientConfig>,
    ) -> Result<Self, BuildError> {
        let url = SessionUrl::parse(session_url)?;
        let name = server_name(&url)?;
        Ok(HttpTransport::with_inner(Inner {
            url,
            idle: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            connecting: smol::lock::Semaphore::new(MAX_CONNECTING),
            tls: Some((futures_rustls::TlsConnector::from(config), name)),
        }))
    }

    pub(crate) fn for_url(url: SessionUrl) -> Result<Self, BuildError> {
        #[cfg(feature = "tls")]
        let tls = if url.is_https() {
            Some((
                futures_rustls::TlsConnector::from(default_tls_config()),
                server_name(&url)?,
            ))
        } else {
            None
        };
        #[cfg(not(feature = "tls"))]
        if url.is_https() {
            return Err(BuildError::InvalidUrl {
                reason: "https needs the `tls` feature of tether-smol".into(),
            });
        }
        Ok(HttpTransport::with_inner(Inner {
            url,
            idle: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            connecting: smol::lock::Semaphore::new(MAX_CONNECTING),
            #[cfg(feature = "tls")]
            tls,
        }))
    }

    fn with_inner(inner: Inner) -> Self {
        HttpTransport {
            inner: Arc::new(inner),
            sharers: Arc::new(()),
        }
    }

    /// Idle connections held now (for tests and diagnostics).
    pub fn idle_connections(&self) -> usize {
        self.inner.idle().len()
    }
}

#[cfg(feature = "tls")]
fn default_tls_config() -> Arc<futures_rustls::rustls::ClientConfig> {
    use futures_rustls::rustls;
    let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth());
    match config {
        Ok(config) => Arc::new(config),
        // ring supports the default versions; this cannot fail.
        Err(e) => unreachable!("ring lacks the default TLS versions: {e}"),
    }
}

#[cfg(feature = "tls")]
fn server_name(
    url: &SessionUrl,
) -> Result<futures_rustls::pki_types::ServerName<'static>, BuildError> {
    futures_rustls::pki_types::ServerName::try_from(url.host().to_string()).map_err(|_| {
        BuildError::InvalidUrl {
            reason: "the host is not a valid TLS server name".into(),
        }
    })
}

impl AsyncTransport for HttpTransport {
    fn send(&self, request: HttpRequest) -> BoxFuture<Result<HttpResponse, TransportError>> {
        let inner = Arc::clone(&self.inner);
        let max_idle = MAX_IDLE.saturating_mul(Arc::strong_count(&self.sharers));
        Box::pin(async move { inner.exchange(request, max_idle).await })
    }
}

fn transport_error(context: &str, e: impl std::fmt::Display) -> TransportError {
    TransportError {
        message: format!("{context}: {e}"),
    }
}

impl Inner {
    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Conn>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn take_idle(&self) -> Option<Conn> {
        let mut idle = self.idle();
        while let Some(conn) = idle.pop() {
            if conn.is_reusable() {
                return Some(conn);
            }
        }
        None
    }

    /// Pools `conn` again while the pool holds fewer than `max_idle` (six per clone) or fewer
    /// than the most exchanges ever under way at once: a fleet sharing one `Arc` of a transport
    /// (one clone) still keeps as many connections as it uses at once, not one per request.
    fn put_idle(&self, conn: Conn, max_idle: usize) {
        let mut idle = self.idle();
        if idle.len() < max_idle.max(self.peak.load(Ordering::Acquire)) {
            idle.push(conn);
        }
    }

    async fn connect(&self) -> io::Result<Conn> {
        let _turn = self.connecting.acquire().await;
        let addrs = match self.url.host().parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, self.url.port())],
            Err(_) => smol::net::resolve((self.url.host(), self.url.port())).await?,
        };
        let tcp = Conn::tcp(&addrs).await?;
        #[cfg(feature = "tls")]
        if let Some((connector, name)) = &self.tls {
            let tls = connector.connect(name.clone(), tcp).await?;
            return Ok(Conn::Tls(Box::new(tls)));
        }
        Ok(Conn::Plain(tcp))
    }

    async fn exchange(
        &self,
        request: HttpRequest,
        max_idle: usize,
    ) -> Result<HttpResponse, TransportError> {
        let _counted = InFlight::count(&self.in_flight, &self.peak);
        let mut conn = match self.take_idle() {
            Some(conn) => conn,
            None => self
                .connect()
                .await
                .map_err(|e| transport_error("connect", e))?,
        };
        let (response, reusable) = roundtrip(&mut conn, &request).await?;
        if reusable {
            self.put_idle(conn, max_idle);
        }
        Ok(response)
    }
}

/// Counts one exchange under way until dropped (also when its future is, at a cancel).
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn count(in_flight: &'a AtomicUsize, peak: &AtomicUsize) -> Self {
        let now = in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        peak.fetch_max(now, Ordering::AcqRel);
        InFlight(in_flight)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Writes the request and reads the response. Returns whether the connection can be reused.
async fn roundtrip(
    conn: &mut Conn,
    request: &HttpRequest,
) -> Result<(HttpResponse, bool), TransportError> {
    let proto = |e: ureq_proto::Error| transport_error("http", e);
    let method = match request.method() {
        Method::Get => http::Method::GET,
        Method::Put => http::Method::PUT,
        Method::Post => http::Method::POST,
    };
    let mut builder = http::Request::builder()
        .method(method.clone())
        .uri(request.url.as_str())
        .header(header::USER_AGENT, &*request.user_agent)
        .header(header::ACCEPT, "application/json");
    if method != http::Method::GET {
        builder = builder
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, request.body.len());
    }
    let head = builder
        .body(())
        .map_err(|e| transport_error("request", e))?;
    let mut call = Call::new(head).map_err(proto)?.proceed();

    // The head, then the token spliced in before its blank line, then the body: one write.
    let mut out = vec![0u8; 1024];
    let mut used = 0;
    while !call.can_proceed() {
        if out.len() - used < 256 {
            out.resize(out.len() * 2, 0);
        }
        match call.write(&mut out[used..]) {
            Ok(n) => used += n,
            Err(ureq_proto::Error::OutputOverflow) => out.resize(out.len() * 2, 0),
            Err(e) => return Err(proto(e)),
        }
    }
    out.truncate(used);
    if let Some(token) = &request.token {
        if !out.ends_with(b"\r\n\r\n") {
            return Err(transport_error("http", "malformed request head"));
        }
        let at = out.len() - 2;
        let mut line = Vec::with_capacity(token.expose().len() + 24);
        line.extend_from_slice(b"authorization: Bearer ");
        line.extend_from_slice(token.expose().as_bytes());
        line.extend_from_slice(b"\r\n");
        out.splice(at..at, line);
    }
    let mut call: Call<RecvResponse> = match call.proceed().map_err(proto)? {
        Some(SendRequestResult::SendBody(mut body)) => {
            out.extend_from_slice(&request.body);
            body.consume_direct_write(request.body.len())
                .map_err(proto)?;
            body.proceed()
                .ok_or_else(|| transport_error("http", "request body not complete"))?
        }
        Some(SendRequestResult::RecvResponse(call)) => call,
        Some(SendRequestResult::Await100(_)) | None => {
            return Err(transport_error("http", "unexpected request state"));
        }
    };
    conn.write_all(&out)
        .await
        .map_err(|e| transport_error("write", e))?;
    conn.flush()
        .await
        .map_err(|e| transport_error("write", e))?;
    drop(out);

    // The head of the response.
    let mut input: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = vec![0u8; READ_CHUNK];
    let head = loop {
        if !input.is_empty() {
            let (consumed, head) = call.try_response(&input, false).map_err(proto)?;
            input.drain(..consumed);
            if let Some(head) = head {
                break head;
            }
            if consumed > 0 {
                continue; // an interim 1xx was skipped
            }
        }
        if input.len() >= MAX_HEAD {
            return Err(transport_error("http", "response head larger than 64 KiB"));
        }
        let n = conn
            .read(&mut chunk)
            .await
            .map_err(|e| transport_error("read", e))?;
        if n == 0 {
            return Err(transport_error(
                "read",
                "connection closed before a response",
            ));
        }
        input.extend_from_slice(&chunk[..n]);
    };
    let header_text = |name: header::HeaderName| {
        head.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let mut response = HttpResponse {
        status: head.status().as_u16(),
        retry_after: header_text(header::RETRY_AFTER),
        date: header_text(header::DATE),
        body: Vec::new(),
        truncated: false,
    };
    let must_close = match call
        .proceed()
        .ok_or_else(|| transport_error("http", "response head not complete"))?
    {
        RecvResponseResult::Cleanup(cleanup) => cleanup.must_close_connection(),
        // Never followed: the 3xx goes to the core as it is.
        RecvResponseResult::Redirect(redirect) => redirect.proceed().must_close_connection(),
        RecvResponseResult::RecvBody(body_call) => {
            let cap = request.max_response_body;
            let (body, truncated, must_close) =
                read_body(conn, body_call, &mut input, &mut chunk, cap).await?;
            response.body = body;
            response.truncated = truncated;
            must_close
        }
    };
    let reusable = !must_close && !response.truncated && input.is_empty();
    Ok((response, reusable))
}

/// Reads the body up to `cap` bytes; with more, stops and reports it truncated.
/// Returns the body, whether it was truncated, and whether the connection must close.
async fn read_body(
    conn: &mut Conn,
    mut call: Call<RecvBody>,
    input: &mut Vec<u8>,
    chunk: &mut [u8],
    cap: usize,
) -> Result<(Vec<u8>, bool, bool), TransportError> {
    let proto = |e: ureq_proto::Error| transport_error("http", e);
    let close_delimited = matches!(call.body_mode(), BodyMode::CloseDelimited);
    let mut body = Vec::new();
    let mut out = vec![0u8; READ_CHUNK];
    loop {
        if !input.is_empty() {
            let (consumed, produced) = call.read(input, &mut out).map_err(proto)?;
            input.drain(..consumed);
            body.extend_from_slice(&out[..produced]);
            if body.len() > cap {
                body.truncate(cap);
                return Ok((body, true, true));
            }
            if consumed > 0 || produced > 0 {
                if !close_delimited && call.can_proceed() {
                    break;
                }
                continue;
            }
        }
        if !close_delimited && call.can_proceed() {
            break;
        }
        // Ask the socket for no more than the cap still allows (plus chunk framing).
        let allowance = (cap + 1).saturating_sub(body.len()) + 64;
        let want = chunk.len().min(allowance);
        let n = conn
            .read(&mut chunk[..want])
            .await
            .map_err(|e| transport_error("read", e))?;
        if n == 0 {
            if close_delimited {
                return Ok((body, false, true));
            }
            return Err(transport_error("read", "connection closed inside the body"));
        }
        input.extend_from_slice(&chunk[..n]);
    }
    let must_close = match call.proceed() {
        Some(RecvBodyResult::Cleanup(cleanup)) => cleanup.must_close_connection(),
        Some(RecvBodyResult::Redirect(redirect)) => redirect.proceed().must_close_connection(),
        None => true,
    };
    Ok((body, false, must_close))
}
