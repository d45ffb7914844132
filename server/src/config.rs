//! How a server is set up: address, limits, faults, logging.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tether_model::fault::{FaultKind, FaultPlan};

/// The default body limit: 10 MiB of events plus a 64 KiB envelope (docs/PROTOCOL.md, Limits), the
/// server model's.
pub const DEFAULT_BODY_LIMIT: usize = tether_model::DEFAULT_BODY_LIMIT;

/// A callback that receives one [`RequestLog`] per request.
pub type RequestLogFn = Arc<dyn Fn(&RequestLog) + Send + Sync>;

/// A callback that receives one line per change made from the inspector page (a fault plan
/// switched, a session partitioned).
pub type ChangeLogFn = Arc<dyn Fn(&str) + Send + Sync>;

/// One line of the request log. Headers are never included, so a token cannot leak through it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestLog {
    /// The request method.
    pub method: String,
    /// The request path, without the query string.
    pub path: String,
    /// The response status; `None` when the connection was closed without one.
    pub status: Option<u16>,
    /// The injected fault, if any.
    pub fault: Option<FaultKind>,
    /// Time from the request's arrival to its response (or close).
    pub elapsed: Duration,
}

impl fmt::Display for RequestLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ", self.method, self.path)?;
        match self.status {
            Some(status) => write!(f, "{status}")?,
            None => f.write_str("closed")?,
        }
        if let Some(fault) = self.fault {
            write!(f, " fault={fault}")?;
        }
        write!(f, " {}ms", self.elapsed.as_millis())
    }
}

/// The configuration of a [`Server`](crate::Server).
#[derive(Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Where to listen. Default `127.0.0.1:0`: loopback, on a port the OS picks.
    pub bind_addr: SocketAddr,
    /// The largest request body accepted; larger ones get `413`. Default [`DEFAULT_BODY_LIMIT`].
    pub body_limit: usize,
    /// After a `413`, up to this many bytes of the body are read and thrown away (never
    /// stored) so that a client that writes its whole body before reading sees the `413` instead
    /// of a reset. A declared `Content-Length` above it is refused without reading any of the
    /// body. Default 16 MiB; `0` closes at once.
    pub oversize_drain: usize,
    /// A worker with no heartbeat for this long is gone. Default 60 s.
    pub heartbeat_ttl: Duration,
    /// The faults to inject. Default none.
    pub faults: FaultPlan,
    /// How long shutdown waits for in-flight requests before closing their connections.
    /// Default 2 s.
    pub shutdown_grace: Duration,
    /// Worker threads of the server's runtime. Default 2.
    pub worker_threads: usize,
    /// Called once per request to a session, after it is answered or its connection closed
    /// (the inspector page's own requests are not logged).
    pub on_request: Option<RequestLogFn>,
    /// Called once per change made from the inspector page or its API.
    pub on_change: Option<ChangeLogFn>,
    /// The token the inspector page and its API require (as `?token=` or an
    /// `X-Tether-Token` header). Without one they are served only when the server is bound to
    /// a loopback address, and only to a loopback `Host`. Never shown by `Debug`.
    pub inspect_token: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            body_limit: DEFAULT_BODY_LIMIT,
            oversize_drain: 16 * 1024 * 1024,
            heartbeat_ttl: tether_model::ServerConfig::default().heartbeat_ttl,
            faults: FaultPlan::none(),
            shutdown_grace: Duration::from_secs(2),
            worker_threads: 2,
            on_request: None,
            on_change: None,
            inspect_token: None,
        }
    }
}

impl ServerConfig {
    /// This configuration listening on `addr`.
    #[must_use]
    pub fn with_bind_addr(mut self, addr: SocketAddr) -> Self {
        self.bind_addr = addr;
        self
    }

    /// This configuration with fault plan `faults`.
    #[must_use]
    pub fn with_faults(mut self, faults: FaultPlan) -> Self {
        self.faults = faults;
        self
    }

    /// This configuration with body limit `limit`.
    #[must_use]
    pub fn with_body_limit(mut self, limit: usize) -> Self {
        self.body_limit = limit;
        self
    }

    /// This configuration with heartbeat TTL `ttl`.
    #[must_use]
    pub fn with_heartbeat_ttl(mut self, ttl: Duration) -> Self {
        self.heartbeat_ttl = ttl;
        self
    }

    /// This configuration calling `log` once per request.
    #[must_use]
    pub fn with_request_log(mut self, log: impl Fn(&RequestLog) + Send + Sync + 'static) -> Self {
        self.on_request = Some(Arc::new(log));
        self
    }

    /// This configuration calling `log` once per change made from the inspector page.
    #[must_use]
    pub fn with_change_log(mut self, log: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.on_change = Some(Arc::new(log));
        self
    }

    /// This configuration requiring `token` for the inspector page and its API.
    #[must_use]
    pub fn with_inspect_token(mut self, token: impl Into<String>) -> Self {
        self.inspect_token = Some(token.into());
        self
    }

    /// This configuration printing one line per request, and one per change made from the
    /// inspector page, to stderr (for `tether serve`).
    #[must_use]
    pub fn log_to_stderr(self) -> Self {
        self.with_request_log(|line| eprintln!("{line}"))
            .with_change_log(|change| eprintln!("inspector: {change}"))
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("bind_addr", &self.bind_addr)
            .field("body_limit", &self.body_limit)
            .field("oversize_drain", &self.oversize_drain)
            .field("heartbeat_ttl", &self.heartbeat_ttl)
            .field("faults", &self.faults)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("worker_threads", &self.worker_threads)
            .field("on_request", &self.on_request.as_ref().map(|_| "Fn"))
            .field("on_change", &self.on_change.as_ref().map(|_| "Fn"))
            .field(
                "inspect_token",
                &self.inspect_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_line_names_method_path_status_and_fault() {
        let mut line = RequestLog {
            method: "POST".into(),
            path: "/v1/code/sessions/s/worker/events".into(),
            status: Some(503),
            fault: Some(FaultKind::ServerError),
            elapsed: Duration::from_millis(12),
        };
        assert_eq!(
            line.to_string(),
            "POST /v1/code/sessions/s/worker/events 503 fault=5xx 12ms"
        );
        line.status = None;
        line.fault = None;
        assert_eq!(
            line.to_string(),
            "POST /v1/code/sessions/s/worker/events closed 12ms"
        );
    }

    #[test]
    fn defaults_are_loopback_and_the_protocol_limits() {
        let c = ServerConfig::default();
        assert!(c.bind_addr.ip().is_loopback());
        assert_eq!(c.bind_addr.port(), 0);
        assert_eq!(c.body_limit, 10_551_296);
        assert_eq!(c.heartbeat_ttl, Duration::from_secs(60));
        assert!(c.faults.is_none());
    }
}
