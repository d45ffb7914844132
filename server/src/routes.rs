//! The seven protocol routes and the matching of a request line against them.

use std::fmt;

use hyper::Method;
use tether_core::session::Endpoint;

/// Where every session lives: `{base}/v1/code/sessions/{session_id}`.
pub const SESSIONS_PREFIX: &str = "/v1/code/sessions/";

/// One endpoint of docs/PROTOCOL.md, relative to a session URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Route {
    /// `POST /worker/register`
    Register,
    /// `PUT /worker`
    PutWorker,
    /// `GET /worker`
    GetWorker,
    /// `POST /worker/heartbeat`
    Heartbeat,
    /// `POST /worker/events`
    Events,
    /// `POST /worker/internal-events`
    InternalEvents,
    /// `POST /worker/events/delivery`
    Delivery,
}

impl Route {
    /// Every route, in declaration order.
    pub const ALL: [Route; 7] = [
        Route::Register,
        Route::PutWorker,
        Route::GetWorker,
        Route::Heartbeat,
        Route::Events,
        Route::InternalEvents,
        Route::Delivery,
    ];

    /// The HTTP method of this route.
    pub fn method(self) -> &'static str {
        match self {
            Route::PutWorker => "PUT",
            Route::GetWorker => "GET",
            _ => "POST",
        }
    }

    /// The path of this route relative to the session URL.
    pub fn path(self) -> &'static str {
        match self {
            Route::Register => "/worker/register",
            Route::PutWorker | Route::GetWorker => "/worker",
            Route::Heartbeat => "/worker/heartbeat",
            Route::Events => "/worker/events",
            Route::InternalEvents => "/worker/internal-events",
            Route::Delivery => "/worker/events/delivery",
        }
    }

    /// Whether the client parses this route's response body (so a garbage body is a fault it
    /// can notice rather than one it ignores).
    pub fn has_response_body(self) -> bool {
        matches!(self, Route::Register | Route::GetWorker)
    }

    /// The endpoint of the core (and of the server model) this route serves.
    pub(crate) fn endpoint(self) -> Endpoint {
        match self {
            Route::Register => Endpoint::Register,
            Route::PutWorker => Endpoint::PutWorker,
            Route::GetWorker => Endpoint::GetWorker,
            Route::Heartbeat => Endpoint::Heartbeat,
            Route::Events => Endpoint::Events,
            Route::InternalEvents => Endpoint::InternalEvents,
            Route::Delivery => Endpoint::Delivery,
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method(), self.path())
    }
}

/// What a request line resolves to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Matched<'a> {
    /// A protocol route of session `session`.
    Route { session: &'a str, route: Route },
    /// A known path asked with the wrong method; `allow` is the `Allow` header value.
    WrongMethod { allow: &'static str },
    /// Anything else.
    NotFound,
}

/// The session a path under [`SESSIONS_PREFIX`] names (`/v1/code/sessions/{id}/...`), if any.
pub(crate) fn session_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix(SESSIONS_PREFIX)?;
    let session = &rest[..rest.find('/')?];
    (!session.is_empty()).then_some(session)
}

/// Resolves `method` and `path` (without the query) to a route.
pub(crate) fn match_request<'a>(method: &Method, path: &'a str) -> Matched<'a> {
    let Some(rest) = path.strip_prefix(SESSIONS_PREFIX) else {
        return Matched::NotFound;
    };
    let Some(slash) = rest.find('/') else {
        return Matched::NotFound;
    };
    let (session, tail) = rest.split_at(slash);
    if session.is_empty() {
        return Matched::NotFound;
    }
    let candidates: &[Route] = match tail {
        "/worker" => &[Route::PutWorker, Route::GetWorker],
        "/worker/register" => &[Route::Register],
        "/worker/heartbeat" => &[Route::Heartbeat],
        "/worker/events" => &[Route::Events],
        "/worker/internal-events" => &[Route::InternalEvents],
        "/worker/events/delivery" => &[Route::Delivery],
        _ => return Matched::NotFound,
    };
    match candidates.iter().find(|r| r.method() == method.as_str()) {
        Some(&route) => Matched::Route { session, route },
        None if candidates.len() == 2 => Matched::WrongMethod { allow: "GET, PUT" },
        None => Matched::WrongMethod { allow: "POST" },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_matches_its_own_method_and_path() {
        for route in Route::ALL {
            let path = format!("{SESSIONS_PREFIX}abc{}", route.path());
            let method = Method::from_bytes(route.method().as_bytes()).unwrap();
            assert_eq!(
                match_request(&method, &path),
                Matched::Route {
                    session: "abc",
                    route
                }
            );
        }
    }

    #[test]
    fn every_route_serves_the_endpoint_of_its_method_and_path() {
        for route in Route::ALL {
            assert_eq!(
                route.endpoint().to_string(),
                format!("{} {}", route.method(), route.path())
            );
        }
    }

    #[test]
    fn wrong_method_and_unknown_paths() {
        let p = "/v1/code/sessions/s/worker";
        assert_eq!(
            match_request(&Method::POST, p),
            Matched::WrongMethod { allow: "GET, PUT" }
        );
        let p = "/v1/code/sessions/s/worker/events";
        assert_eq!(
            match_request(&Method::GET, p),
            Matched::WrongMethod { allow: "POST" }
        );
        for p in [
            "/",
            "/v1/code/sessions/",
            "/v1/code/sessions/s",
            "/v1/code/sessions//worker",
            "/v1/code/sessions/s/worker/",
            "/v1/code/sessions/s/worker/nope",
            "/v2/code/sessions/s/worker",
        ] {
            assert_eq!(match_request(&Method::GET, p), Matched::NotFound, "{p}");
        }
    }
}
