//! One request through hyper: route, fault, body, the session's server model, response.
//!
//! A "reset" is an error returned to hyper, which then drops an HTTP/1.1 connection without
//! writing a response: exactly what a client sees when a server or proxy dies mid-request. On
//! HTTP/2 hyper resets the request's stream instead (`INTERNAL_ERROR`), and the connection, shared
//! by other sessions, goes on: the fault applies to the one request on both.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{
    ALLOW, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, DATE, HeaderValue, RETRY_AFTER,
};
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::config::RequestLog;
use crate::date::{format_http_date, unix_seconds, wall_clock};
use crate::journal::{Asked, Entry};
use crate::routes::{Matched, match_request, session_of};
use crate::shared::{Mode, Shared, monotonic};
use crate::threads::Found;
use tether_core::thread;
use tether_model::fault::{Fault, FaultKind, RetryAfter, garbage_body};

/// The response type of the service.
pub(crate) type Reply = Response<Full<Bytes>>;

/// The request gets no response: its HTTP/1.1 connection is dropped or its HTTP/2 stream reset
/// (an injected reset, a hang's end, or a client that went away mid-body).
#[derive(Debug)]
pub(crate) struct Dropped(&'static str);

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "connection dropped: {}", self.0)
    }
}

impl std::error::Error for Dropped {}

/// Serves one request and logs it: the inspector page's own routes apart, every request to a
/// session goes to the request log callback and to the journal (for the page's timelines).
pub(crate) async fn handle(
    shared: Arc<Shared>,
    mode: watch::Receiver<Mode>,
    req: Request<Incoming>,
) -> Result<Reply, Dropped> {
    if crate::page::is_page(req.uri().path()) {
        return Ok(crate::page::serve(&shared, req).await);
    }
    let arrived = monotonic();
    let at = shared.elapsed();
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let asked = asked(req.method(), &path);
    let bytes = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut fault = None;
    let mut partitioned = false;
    let result = dispatch(&shared, mode, req, &mut fault, &mut partitioned).await;
    let status = result.as_ref().ok().map(|r| r.status().as_u16());
    let elapsed = monotonic().saturating_duration_since(arrived);
    if let Some(session) = session_of(&path) {
        let entry = Entry {
            session: 0,
            asked,
            at,
            took: elapsed,
            status,
            fault,
            partitioned,
            bytes,
        };
        shared.journal().record(session, entry);
    }
    if let Some(log) = &shared.config.on_request {
        log(&RequestLog {
            method,
            path,
            status,
            fault,
            elapsed,
        });
    }
    result
}

/// What a request to a session asked for, for the journal.
fn asked(method: &hyper::Method, path: &str) -> Asked {
    match match_request(method, path) {
        Matched::Route { route, .. } => Asked::Route(route),
        _ if crate::threads::match_request(method, path).is_some() => Asked::Thread,
        _ => Asked::Other,
    }
}

async fn dispatch(
    shared: &Shared,
    mut mode: watch::Receiver<Mode>,
    req: Request<Incoming>,
    fault_kind: &mut Option<FaultKind>,
    partitioned: &mut bool,
) -> Result<Reply, Dropped> {
    let now = wall_clock();
    // A session partitioned from the inspector page hears nothing: every request is dropped.
    if let Some(session) = session_of(req.uri().path()) {
        if shared
            .journal()
            .drop_if_partitioned(session, shared.elapsed())
        {
            *partitioned = true;
            return Err(Dropped("partitioned from the inspector"));
        }
    }
    let (session, target) = match match_request(req.method(), req.uri().path()) {
        Matched::Route { session, route } => (session.to_owned(), Target::Worker(route)),
        Matched::WrongMethod { allow } => return Ok(method_not_allowed(allow, now)),
        Matched::NotFound => match crate::threads::match_request(req.method(), req.uri().path()) {
            Some(Found::Route { session, endpoint }) => {
                let query = req.uri().query().unwrap_or_default().to_owned();
                (session, Target::Thread(endpoint, query))
            }
            Some(Found::WrongMethod(allow)) => return Ok(method_not_allowed(allow, now)),
            None => return Ok(error(StatusCode::NOT_FOUND, "no such route", now)),
        },
    };

    // Decide and count under the locks, in arrival order, so a seed replays. The plan covers
    // the thread routes as it covers the worker routes.
    let fault = match &target {
        Target::Worker(route) => {
            let fault = shared.decider().decide(*route);
            shared
                .store()
                .record_request(&session, *route, fault.kind());
            fault
        }
        Target::Thread(endpoint, _) => shared.decider().decide_thread(*endpoint),
    };
    *fault_kind = fault.kind();

    // Faults that answer before the request is read, and so are never applied.
    match fault {
        // A delay cut short by shutdown is served at once: the request is in flight.
        Fault::Latency(delay) => {
            sleep_unless_stopped(&mut mode, delay).await;
        }
        Fault::LostRequest { error_after } => {
            let wait = error_after.unwrap_or(shared.journal().plan().hang_for);
            sleep_unless_stopped(&mut mode, wait).await;
            return Err(Dropped("injected lost request"));
        }
        Fault::ServerError {
            status,
            applied: false,
        } => return Ok(injected(status, now)),
        Fault::Throttled(retry_after) => return Ok(throttled(retry_after, now)),
        Fault::TooLarge => return Ok(injected(413, now)),
        _ => {}
    }

    let body = match read_body(req, shared.config.body_limit, shared.config.oversize_drain).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => {
            let mut reply = error(StatusCode::PAYLOAD_TOO_LARGE, "body over the limit", now);
            reply
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            return Ok(reply);
        }
        Err(BodyError::Transport) => return Err(Dropped("request body not received")),
    };

    let elapsed = shared.elapsed();
    let response = match &target {
        Target::Worker(route) => shared.store().handle(&session, *route, &body, elapsed),
        Target::Thread(endpoint, query) => shared
            .store()
            .handle_thread(&session, *endpoint, query, &body, elapsed),
    };
    // The model answers every request with a JSON body: `{"error": ..}` unless it succeeded.
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::BAD_REQUEST);
    // Faults that come after the request was applied.
    match fault {
        Fault::ServerError { status, .. } => Ok(injected(status, now)),
        Fault::LostResponse { error_after } => {
            sleep_unless_stopped(&mut mode, error_after).await;
            Err(Dropped("injected lost response"))
        }
        Fault::Hang => {
            let hang_for = shared.journal().plan().hang_for;
            sleep_unless_stopped(&mut mode, hang_for).await;
            Err(Dropped("injected hang"))
        }
        Fault::Garbage { truncated_json } if status.is_success() => Ok(reply(
            StatusCode::OK,
            Bytes::from_static(garbage_body(truncated_json)),
            now,
        )),
        _ => Ok(reply(status, Bytes::from(response.body), now)),
    }
}

/// Which route a request is for: a worker route, or a thread route with its query.
enum Target {
    Worker(tether_core::session::Endpoint),
    Thread(thread::Endpoint, String),
}

/// `405` with the `Allow` header.
fn method_not_allowed(allow: &'static str, now: SystemTime) -> Reply {
    let mut reply = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed", now);
    reply
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    reply
}

/// An injected error status, not applied (a 5xx, or a 413 the body limit did not cause).
fn injected(status: u16, now: SystemTime) -> Reply {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    error(status, "injected fault", now)
}

/// Sleeps for `duration`, or less if the listener starts stopping first.
async fn sleep_unless_stopped(mode: &mut watch::Receiver<Mode>, duration: Duration) {
    tokio::select! {
        () = tokio::time::sleep(duration) => {}
        _ = mode.wait_for(|m| *m != Mode::Running) => {}
    }
}

pub(crate) enum BodyError {
    TooLarge,
    Transport,
}

/// Reads the body into memory, never more than `limit` bytes: a declared `Content-Length` over
/// it is refused before reading, and a chunked body is cut off as soon as it passes it.
pub(crate) async fn read_body(
    req: Request<Incoming>,
    limit: usize,
    drain: usize,
) -> Result<Bytes, BodyError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut body = req.into_body();
    if let Some(len) = declared.filter(|&len| len > limit as u64) {
        // Drain only a body that can be drained whole; a huge one is refused unread.
        if len <= drain as u64 {
            discard(&mut body, drain).await;
        }
        return Err(BodyError::TooLarge);
    }
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyError::Transport)?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                discard(&mut body, drain).await;
                return Err(BodyError::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Reads and throws away up to `budget` bytes within a few seconds, so that the client, which
/// may still be writing, can read the `413` rather than meet a reset.
async fn discard(body: &mut Incoming, budget: usize) {
    let mut left = budget;
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while left > 0 {
            match body.frame().await {
                Some(Ok(frame)) => {
                    let n = frame.data_ref().map_or(0, Bytes::len);
                    left = left.saturating_sub(n.max(1));
                }
                _ => break,
            }
        }
    })
    .await;
}

fn throttled(retry_after: RetryAfter, now: SystemTime) -> Reply {
    let mut reply = error(StatusCode::TOO_MANY_REQUESTS, "injected throttle", now);
    let value = match retry_after {
        RetryAfter::Seconds(secs) => secs.to_string(),
        // Whole seconds after this response's own Date header, which has the same origin.
        RetryAfter::Date { delay_secs: secs } => {
            let date = SystemTime::UNIX_EPOCH + Duration::from_secs(unix_seconds(now) + secs);
            format_http_date(date)
        }
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        reply.headers_mut().insert(RETRY_AFTER, value);
    }
    reply
}

pub(crate) fn error(status: StatusCode, message: &str, now: SystemTime) -> Reply {
    json_reply(status, &json!({ "error": message }), now)
}

fn json_reply(status: StatusCode, body: &Value, now: SystemTime) -> Reply {
    reply(status, Bytes::from(body.to_string()), now)
}

/// Every response is JSON (or claims to be, for garbage) and carries its own `Date`.
pub(crate) fn reply(status: StatusCode, body: Bytes, now: SystemTime) -> Reply {
    let mut reply = Response::new(Full::new(body));
    *reply.status_mut() = status;
    let headers = reply.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(date) = HeaderValue::from_str(&format_http_date(now)) {
        headers.insert(DATE, date);
    }
    reply
}
