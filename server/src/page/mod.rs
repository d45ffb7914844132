//! The inspector page at `/` and its API under `/inspect/`: every session as the server sees it,
//! live, with the fault plan and partitions to steer from the browser.
//!
//! The page is plain HTML, CSS and a little JavaScript compiled into the binary
//! (`assets/`); it polls `GET /inspect/api/state` once a second. Routes:
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the page |
//! | `GET /inspect/app.js`, `GET /inspect/style.css` | its assets (static, no data) |
//! | `GET /inspect/protocol` | docs/PROTOCOL.md as HTML, for the page's links |
//! | `GET /inspect/api/state?session=ID&events=N` | every session (or one) as JSON, the last `N` events each |
//! | `GET /inspect/timeline.svg?session=ID` | the session's timeline, from the server's request log |
//! | `POST /inspect/api/faults?plan=PLAN` | puts a fault plan in force (`none`, `light`, `heavy`, ...) |
//! | `POST /inspect/api/partition?session=ID&seconds=N` | drops every request of the session for `N` s (0 ends it) |
//!
//! Safe by default: without an inspect token, the page and its API answer only when the server
//! is bound to a loopback address and only to a loopback `Host` (so a web page elsewhere cannot
//! reach them through DNS rebinding); with a token (`?token=` or an `X-Tether-Token` header)
//! they answer wherever the server listens. A change (`POST`) also needs an
//! `X-Tether-Inspector` header, which a cross-site form cannot send. Nothing a worker sent in a
//! header is kept, so no bearer token can be shown. The request log callback does not see the
//! page's own requests.

mod api;
mod markdown;
mod query;
mod timeline;

use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    ALLOW, CACHE_CONTROL, CONTENT_TYPE, DATE, HOST, HeaderMap, HeaderName, HeaderValue, ORIGIN,
};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use crate::date::{format_http_date, wall_clock};
use crate::http::Reply;
use crate::shared::Shared;

pub(crate) use query::Query;

/// Where the inspector's assets and API live.
pub(crate) const PREFIX: &str = "/inspect/";

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");
/// The wire contract, shown at `/inspect/protocol`.
const PROTOCOL_MD: &str = include_str!("../../../docs/PROTOCOL.md");

/// The header that carries the inspect token.
const TOKEN_HEADER: &str = "x-tether-token";
/// The header a change must carry (the page sends it; a cross-site form cannot).
const CHANGE_HEADER: &str = "x-tether-inspector";

/// Whether `path` is one of the page's (rather than a session's).
pub(crate) fn is_page(path: &str) -> bool {
    path == "/" || path.starts_with(PREFIX) || path == "/inspect"
}

/// An answer of the page's routes.
struct Answer {
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
}

/// The page's content security policy: its own script and style only.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                        img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
                        base-uri 'none'; form-action 'none'";
/// The timeline picture's: it carries its own `<style>`, and nothing runs.
const SVG_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'";

impl Answer {
    fn json(status: StatusCode, value: &Value) -> Self {
        Answer {
            status,
            content_type: "application/json",
            body: Bytes::from(value.to_string()),
        }
    }

    fn ok(value: &Value) -> Self {
        Answer::json(StatusCode::OK, value)
    }

    fn error(status: StatusCode, reason: impl Into<String>) -> Self {
        Answer::json(status, &json!({ "error": reason.into() }))
    }

    fn bad_request(reason: impl Into<String>) -> Self {
        Answer::error(StatusCode::BAD_REQUEST, reason)
    }

    fn text(content_type: &'static str, body: impl Into<Bytes>) -> Self {
        Answer {
            status: StatusCode::OK,
            content_type,
            body: body.into(),
        }
    }
}

/// Serves one request to the page or its API.
pub(crate) async fn serve(shared: &Shared, req: Request<Incoming>) -> Reply {
    let now = wall_clock();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let raw_query = req.uri().query().unwrap_or_default().to_owned();
    let answer = route(shared, &method, &path, &raw_query, req.headers());
    let allow = match answer.status {
        StatusCode::METHOD_NOT_ALLOWED if path.starts_with("/inspect/api/") && path != STATE => {
            Some("POST")
        }
        StatusCode::METHOD_NOT_ALLOWED => Some("GET"),
        _ => None,
    };
    respond(answer, allow, now)
}

const STATE: &str = "/inspect/api/state";

/// Which route, whether the caller may see it, and its answer.
fn route(
    shared: &Shared,
    method: &Method,
    path: &str,
    raw_query: &str,
    headers: &HeaderMap,
) -> Answer {
    // Static assets hold no data: served to anyone who reaches the port.
    let asset = match path {
        "/inspect/app.js" => Some(Answer::text("text/javascript; charset=utf-8", APP_JS)),
        "/inspect/style.css" => Some(Answer::text("text/css; charset=utf-8", STYLE_CSS)),
        "/inspect/protocol" => Some(Answer::text(
            "text/html; charset=utf-8",
            markdown::page("tether wire protocol", PROTOCOL_MD),
        )),
        _ => None,
    };
    let change = matches!(path, "/inspect/api/faults" | "/inspect/api/partition");
    let known = asset.is_some() || change || matches!(path, "/" | STATE | "/inspect/timeline.svg");
    if !known {
        return Answer::error(StatusCode::NOT_FOUND, "no such route");
    }
    let expected = if change { Method::POST } else { Method::GET };
    if *method != expected && !(expected == Method::GET && *method == Method::HEAD) {
        return Answer::error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    if let Some(asset) = asset {
        return asset;
    }
    let allowed: &[&str] = match path {
        STATE => &["session", "events"],
        "/inspect/timeline.svg" => &["session"],
        "/inspect/api/faults" => &["plan"],
        "/inspect/api/partition" => &["session", "seconds"],
        _ => &[],
    };
    let query = match Query::parse(raw_query, allowed) {
        Ok(q) => q,
        Err(reason) => return Answer::bad_request(reason),
    };
    if let Err(refusal) = authorize(shared, headers, &query) {
        return refusal;
    }
    if change {
        if let Err(refusal) = same_origin(headers) {
            return refusal;
        }
    }
    match path {
        "/" => Answer::text("text/html; charset=utf-8", INDEX_HTML),
        STATE => api::state(shared, &query),
        "/inspect/timeline.svg" => api::timeline_svg(shared, &query),
        "/inspect/api/faults" => api::set_faults(shared, &query),
        _ => api::partition(shared, &query),
    }
}

/// Whether the caller may use the page: the token when one is set, else a loopback bind and a
/// loopback `Host`.
fn authorize(shared: &Shared, headers: &HeaderMap, query: &Query) -> Result<(), Answer> {
    if let Some(token) = &shared.config.inspect_token {
        let given = headers
            .get(TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .or(query.token.as_deref());
        return match given {
            Some(given) if same_secret(given, token) => Ok(()),
            Some(_) => Err(Answer::error(
                StatusCode::UNAUTHORIZED,
                "wrong inspect token",
            )),
            None => Err(Answer::error(
                StatusCode::UNAUTHORIZED,
                "the inspector needs its token: open the page as /?token=... (the value of \
                 --inspect-token or TETHER_INSPECT_TOKEN)",
            )),
        };
    }
    let bound = shared.config.bind_addr.ip();
    if !bound.is_loopback() {
        return Err(Answer::error(
            StatusCode::FORBIDDEN,
            format!(
                "the inspector is off: the server listens on {bound}, not a loopback address, \
                 and no inspect token is set (--inspect-token or TETHER_INSPECT_TOKEN)"
            ),
        ));
    }
    let host = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !loopback_host(host) {
        return Err(Answer::error(
            StatusCode::FORBIDDEN,
            "the inspector answers only to a loopback Host (127.0.0.1, localhost or [::1]) \
             unless an inspect token is set",
        ));
    }
    Ok(())
}

/// A change must come from the page: its custom header, and an `Origin` (if any) that is the
/// page's own.
fn same_origin(headers: &HeaderMap) -> Result<(), Answer> {
    if !headers.contains_key(CHANGE_HEADER) {
        return Err(Answer::error(
            StatusCode::FORBIDDEN,
            "a change needs the X-Tether-Inspector header (the page sends it)",
        ));
    }
    let host = headers.get(HOST).and_then(|v| v.to_str().ok());
    if let Some(origin) = headers.get(ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let own = host.map(|h| format!("http://{h}"));
        if own.as_deref() != Some(origin) {
            return Err(Answer::error(
                StatusCode::FORBIDDEN,
                "a change must come from the inspector page's own origin",
            ));
        }
    }
    Ok(())
}

/// `127.0.0.1:8787`, `localhost`, `[::1]:80`: a name that can only mean this machine.
fn loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    name.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// Compares secrets in time independent of where they differ.
fn same_secret(given: &str, token: &str) -> bool {
    let (a, b) = (given.as_bytes(), token.as_bytes());
    let mut diff = u8::from(a.len() != b.len());
    for (i, &x) in b.iter().enumerate() {
        diff |= x ^ a.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

fn respond(answer: Answer, allow: Option<&'static str>, now: SystemTime) -> Reply {
    let csp = if answer.content_type.starts_with("image/svg") {
        SVG_CSP
    } else {
        PAGE_CSP
    };
    let mut reply = Response::new(Full::new(answer.body));
    *reply.status_mut() = answer.status;
    let headers = reply.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(answer.content_type));
    if let Ok(date) = HeaderValue::from_str(&format_http_date(now)) {
        headers.insert(DATE, date);
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let fixed = [
        ("content-security-policy", csp),
        ("x-content-type-options", "nosniff"),
        // The page's URL may carry the token: never send it on.
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
    ];
    for (name, value) in fixed {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    if let Some(allow) = allow {
        headers.insert(ALLOW, HeaderValue::from_static(allow));
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for host in [
            "127.0.0.1:8787",
            "localhost",
            "LOCALHOST:1",
            "[::1]:80",
            "127.9.9.9",
        ] {
            assert!(loopback_host(host), "{host}");
        }
        for host in [
            "",
            "evil.example:8787",
            "10.0.0.1:80",
            "[::2]:1",
            "localhost.evil",
        ] {
            assert!(!loopback_host(host), "{host}");
        }
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abd", "abc"));
        assert!(!same_secret("ab", "abc"));
        assert!(!same_secret("abcd", "abc"));
        assert!(!same_secret("", "abc"));
    }

    #[test]
    fn bound_elsewhere_the_page_is_off_without_a_token_and_on_with_one() {
        let anywhere: std::net::SocketAddr = "0.0.0.0:8787".parse().unwrap();
        let config = crate::ServerConfig::default().with_bind_addr(anywhere);
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("127.0.0.1:8787"));
        let shared = Shared::new(config.clone());
        let refusal = authorize(&shared, &headers, &Query::default()).unwrap_err();
        assert_eq!(refusal.status, StatusCode::FORBIDDEN);
        let body = String::from_utf8_lossy(&refusal.body).into_owned();
        assert!(body.contains("--inspect-token"), "{body}");

        let shared = Shared::new(config.with_inspect_token("t0k"));
        let query = Query::parse("token=t0k", &[]).unwrap();
        assert!(authorize(&shared, &headers, &query).is_ok());
        let refusal = authorize(&shared, &headers, &Query::default()).unwrap_err();
        assert_eq!(refusal.status, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn page_paths() {
        assert!(is_page("/"));
        assert!(is_page("/inspect/api/state"));
        assert!(!is_page("/v1/code/sessions/s/worker"));
        assert!(!is_page("/inspector"));
    }
}
