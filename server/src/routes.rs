//! The matching of a request line against the seven protocol routes, which are the core's
//! [`Endpoint`]s: the server names a route by the endpoint a client sends to, so the two cannot
//! drift apart.

use hyper::Method;
use tether_core::session::Endpoint;

/// Where every session lives: `{base}/v1/code/sessions/{session_id}`.
pub const SESSIONS_PREFIX: &str = "/v1/code/sessions/";

/// What a request line resolves to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Matched<'a> {
    /// A protocol route of session `session`.
    Route { session: &'a str, route: Endpoint },
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
    let candidates: &[Endpoint] = match tail {
        "/worker" => &[Endpoint::PutWorker, Endpoint::GetWorker],
        "/worker/register" => &[Endpoint::Register],
        "/worker/heartbeat" => &[Endpoint::Heartbeat],
        "/worker/events" => &[Endpoint::Events],
        "/worker/internal-events" => &[Endpoint::InternalEvents],
        "/worker/events/delivery" => &[Endpoint::Delivery],
        _ => return Matched::NotFound,
    };
    match candidates
        .iter()
        .find(|r| r.method().as_str() == method.as_str())
    {
        Some(&route) => Matched::Route { session, route },
        None if candidates.len() == 2 => Matched::WrongMethod { allow: "GET, PUT" },
        None => Matched::WrongMethod { allow: "POST" },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_matches_its_own_method_and_path() {
        for route in Endpoint::ALL {
            let path = format!("{SESSIONS_PREFIX}abc{}", route.path());
            let method = Method::from_bytes(route.method().as_str().as_bytes()).unwrap();
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
