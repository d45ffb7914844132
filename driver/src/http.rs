//! The core's requests as HTTP, and HTTP answers as the core's [`Response`]: one mapping for
//! every shim and transport.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tether_core::{Instant, RequestId};

use tether_core::session::{Endpoint, Method, Request, Response};
// `shared_threads` is `tether_core::thread`, aliased: CI greps the driver for `thread::` paths.
use tether_core::thread as shared_threads;

use crate::url::{SessionUrl, Token};

/// `tether/<version>`, the default `User-Agent`.
pub const USER_AGENT: &str = concat!("tether/", env!("CARGO_PKG_VERSION"));

/// How long after the core's deadline a transport gives up on its own. The core has failed
/// the request at its deadline already; this only bounds the transport's resources.
pub const BACKSTOP_GRACE: Duration = Duration::from_secs(1);

/// Which protocol route a request is for: one of the session's worker routes, or one of the
/// thread routes of the thread sync it hosts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Route {
    /// A worker route (`PUT /worker`, `POST /worker/events`, ...).
    Worker(Endpoint),
    /// A thread route (`GET /threads`, `POST /threads/sync`, `GET /ping`).
    Thread(shared_threads::Endpoint),
}

impl Route {
    /// The HTTP method.
    pub fn method(self) -> Method {
        match self {
            Route::Worker(endpoint) => endpoint.method(),
            Route::Thread(endpoint) => endpoint.method(),
        }
    }

    /// The worker endpoint, if it is one.
    pub fn worker(self) -> Option<Endpoint> {
        match self {
            Route::Worker(endpoint) => Some(endpoint),
            Route::Thread(_) => None,
        }
    }

    /// The thread endpoint, if it is one.
    pub fn thread(self) -> Option<shared_threads::Endpoint> {
        match self {
            Route::Thread(endpoint) => Some(endpoint),
            Route::Worker(_) => None,
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Route::Worker(endpoint) => write!(f, "{endpoint}"),
            Route::Thread(endpoint) => write!(f, "{endpoint}"),
        }
    }
}

/// One HTTP exchange the session asks for, ready for a transport.
///
/// Its `Debug` shows the endpoint, URL and body length, never the token.
#[derive(Clone)]
pub struct HttpRequest {
    /// The session's name for the request, unique among all its requests (thread sync's
    /// too): quote it in the answer.
    pub id: RequestId,
    /// Which protocol route.
    pub route: Route,
    /// The full URL: the session URL plus the endpoint's path.
    pub url: String,
    /// The JSON body; empty for `GET`.
    pub body: Vec<u8>,
    /// Send as `Authorization: Bearer <token>` when present.
    pub token: Option<Token>,
    /// The `User-Agent` (shared by every request of the session).
    pub user_agent: Arc<str>,
    /// Read at most this much of the response body; report [`HttpResponse::truncated`] if
    /// there is more (and do not read on).
    pub max_response_body: usize,
    /// The core's deadline for the exchange, in the core's time. The core fails the request
    /// there on its own.
    pub deadline: Instant,
    /// The transport's own backstop, counted from when it starts the exchange (at once, when
    /// the driver asks): the time to the core's deadline plus [`BACKSTOP_GRACE`]. `None`: no
    /// deadline, no backstop. A transport needs no clock to keep it.
    pub backstop: Option<Duration>,
}

impl HttpRequest {
    /// The HTTP method.
    pub fn method(&self) -> Method {
        self.route.method()
    }

    /// The method's name, e.g. `"POST"`.
    pub fn method_str(&self) -> &'static str {
        match self.method() {
            Method::Get => "GET",
            Method::Put => "PUT",
            Method::Post => "POST",
        }
    }

    /// The headers to send besides `Host` and `Content-Length`: authorization (when there is a
    /// token), user agent, and the content type of a body.
    pub fn headers(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        // Borrowed, not built: a fleet sends tens of thousands of requests a second.
        let authorization = self
            .token
            .as_ref()
            .map(|t| ("authorization", t.header_value()));
        let user_agent = ("user-agent", &*self.user_agent);
        let content_type =
            (self.method() != Method::Get).then_some(("content-type", "application/json"));
        authorization
            .into_iter()
            .chain([user_agent])
            .chain(content_type)
    }
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRequest")
            .field("id", &self.id)
            .field("route", &self.route)
            .field("url", &self.url)
            .field("body_len", &self.body.len())
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("max_response_body", &self.max_response_body)
            .finish_non_exhaustive()
    }
}

/// Where requests go: the session URL, the token, the user agent and the body cap.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub(crate) url: SessionUrl,
    pub(crate) token: Option<Token>,
    pub(crate) user_agent: Arc<str>,
    pub(crate) max_response_body: usize,
}

impl Target {
    /// The core's `request` as HTTP, asked for at `now`.
    pub(crate) fn build(&self, request: Request, now: Instant) -> HttpRequest {
        let deadline = request.deadline;
        HttpRequest {
            id: request.id,
            route: Route::Worker(request.endpoint),
            url: self.url.join(request.path()),
            body: request.body,
            token: self.token.clone(),
            user_agent: self.user_agent.clone(),
            max_response_body: self.max_response_body,
            deadline,
            backstop: backstop(now, deadline),
        }
    }
}

/// The transport's backstop for an exchange started at `now` that the core fails at
/// `deadline`; `None` for a request without one.
pub(crate) fn backstop(now: Instant, deadline: Instant) -> Option<Duration> {
    (deadline != Instant::MAX).then(|| {
        deadline
            .saturating_duration_since(now)
            .saturating_add(BACKSTOP_GRACE)
    })
}

/// What a transport got back: the status, the two headers the core reads, and the body up to
/// the cap.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
    /// The `Date` header, if any (a `Retry-After` date is measured against it).
    pub date: Option<String>,
    /// The body, at most the request's cap.
    pub body: Vec<u8>,
    /// Whether the body went on past the cap.
    pub truncated: bool,
}

impl HttpResponse {
    /// A response with a status and a body, no headers.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        HttpResponse {
            status,
            body: body.into(),
            ..HttpResponse::default()
        }
    }

    /// Keeps at most `cap` bytes of the body, marking it truncated when there were more.
    pub fn capped(mut self, cap: usize) -> Self {
        if self.body.len() > cap {
            self.body.truncate(cap);
            self.truncated = true;
        }
        self
    }
}

impl From<HttpResponse> for Response {
    fn from(r: HttpResponse) -> Response {
        Response {
            status: r.status,
            retry_after: r.retry_after,
            date: r.date,
            body: r.body,
            truncated: r.truncated,
        }
    }
}

impl From<Response> for HttpResponse {
    fn from(r: Response) -> HttpResponse {
        HttpResponse {
            status: r.status,
            retry_after: r.retry_after,
            date: r.date,
            body: r.body,
            truncated: r.truncated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(token: Option<&str>) -> Target {
        Target {
            url: SessionUrl::parse("http://127.0.0.1:9/v1/s").unwrap(),
            token: token.map(Token::from),
            user_agent: USER_AGENT.into(),
            max_response_body: 64,
        }
    }

    #[test]
    fn requests_carry_the_path_the_token_and_never_show_it() {
        let request = Request {
            id: RequestId(3),
            endpoint: Endpoint::Events,
            body: b"{}".to_vec(),
            deadline: Instant::from_secs(10),
        };
        let http = target(Some("s3cret")).build(request, Instant::from_secs(4));
        assert_eq!(http.url, "http://127.0.0.1:9/v1/s/worker/events");
        assert_eq!(http.method_str(), "POST");
        let headers: Vec<_> = http.headers().collect();
        assert!(headers.contains(&("authorization", "Bearer s3cret")));
        assert!(headers.contains(&("content-type", "application/json")));
        assert!(headers.contains(&("user-agent", USER_AGENT)));
        // Six seconds to the core's deadline, then the grace.
        assert_eq!(http.backstop, Some(Duration::from_secs(6) + BACKSTOP_GRACE));
        assert!(!format!("{http:?}").contains("s3cret"));
    }

    #[test]
    fn a_body_past_the_cap_is_truncated() {
        let response = HttpResponse::new(200, vec![b'x'; 100]).capped(64);
        assert_eq!(response.body.len(), 64);
        assert!(response.truncated);
        let core: Response = response.into();
        assert!(core.truncated);
    }
}
