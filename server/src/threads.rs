//! Thread sync's three routes (docs/PROTOCOL.md §Thread sync): `GET /threads?since&limit`,
//! `POST /threads/sync`, `GET /ping`, served by the session's server model
//! ([`tether_model::ServerModel::handle_thread`]), so the server and the simulator agree.
//!
//! The fault plan applies to them per request, as to the worker routes (`http.rs`).

use hyper::Method;
use tether_core::thread;

use crate::routes::SESSIONS_PREFIX;

/// What a request line resolves to among the thread routes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// A thread route of this session.
    Route {
        session: String,
        endpoint: thread::Endpoint,
    },
    /// A thread path asked with the wrong method; the `Allow` value.
    WrongMethod(&'static str),
}

/// Resolves `method` and `path` (without the query) to a thread route, if it names one.
pub(crate) fn match_request(method: &Method, path: &str) -> Option<Found> {
    let rest = path.strip_prefix(SESSIONS_PREFIX)?;
    let (session, tail) = rest.split_at(rest.find('/')?);
    if session.is_empty() {
        return None;
    }
    let endpoint = thread::Endpoint::ALL
        .into_iter()
        .find(|e| e.path() == tail)?;
    if method.as_str() != endpoint.method().as_str() {
        return Some(Found::WrongMethod(endpoint.method().as_str()));
    }
    Some(Found::Route {
        session: session.to_owned(),
        endpoint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_paths_match_their_methods() {
        let p = |tail: &str| format!("{SESSIONS_PREFIX}s1{tail}");
        assert_eq!(
            match_request(&Method::GET, &p("/threads")),
            Some(Found::Route {
                session: "s1".into(),
                endpoint: thread::Endpoint::Pull
            })
        );
        assert_eq!(
            match_request(&Method::POST, &p("/threads/sync")),
            Some(Found::Route {
                session: "s1".into(),
                endpoint: thread::Endpoint::Sync
            })
        );
        assert_eq!(
            match_request(&Method::POST, &p("/ping")),
            Some(Found::WrongMethod("GET"))
        );
        assert_eq!(match_request(&Method::GET, &p("/threads/x")), None);
        assert_eq!(match_request(&Method::GET, "/v1/code/sessions//ping"), None);
    }
}
