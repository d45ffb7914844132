//! docs/PROTOCOL.md §Thread sync on the wire: the three endpoints, the push body, and the two
//! response bodies.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde_json::{Map, Value};

use super::model::{Error, Thread};
use crate::session::Method;

/// The thread-sync endpoints, relative to the session URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// `GET /threads?since=V&limit=N`
    Pull,
    /// `POST /threads/sync`
    Sync,
    /// `GET /ping`
    Ping,
}

impl Endpoint {
    /// Every endpoint.
    pub const ALL: [Endpoint; 3] = [Endpoint::Pull, Endpoint::Sync, Endpoint::Ping];

    /// The method.
    pub const fn method(self) -> Method {
        match self {
            Endpoint::Sync => Method::Post,
            _ => Method::Get,
        }
    }

    /// The path without a query.
    pub const fn path(self) -> &'static str {
        match self {
            Endpoint::Pull => "/threads",
            Endpoint::Sync => "/threads/sync",
            Endpoint::Ping => "/ping",
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method(), self.path())
    }
}

/// The pull's path and query: `/threads?since=V&limit=N`.
pub fn pull_path(since: u64, limit: usize) -> String {
    format!("/threads?since={since}&limit={limit}")
}

/// One item of a push: the thread as the client holds it and the version it is based on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncItem {
    /// The thread's id.
    pub id: String,
    /// The server version the local copy descends from; `0` for a thread new to the server.
    pub base: u64,
    /// The local copy.
    pub thread: Thread,
}

/// `POST /threads/sync`'s body.
pub fn sync_body(epoch: u64, client_id: &str, items: &[SyncItem]) -> Vec<u8> {
    let items: Vec<Value> = items
        .iter()
        .map(|item| {
            let mut map = Map::new();
            map.insert("id".into(), Value::String(item.id.clone()));
            map.insert("base".into(), Value::from(item.base));
            map.insert("thread".into(), item.thread.to_value());
            Value::Object(map)
        })
        .collect();
    let mut body = Map::new();
    body.insert("worker_epoch".into(), Value::from(epoch));
    body.insert("client_id".into(), Value::String(client_id.into()));
    body.insert("items".into(), Value::Array(items));
    serde_json::to_vec(&Value::Object(body)).unwrap_or_default()
}

/// A thread from the server that is not valid: skipped and reported, never a reason to stop
/// syncing the others (docs/PROTOCOL.md §Thread sync).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidThread {
    /// Its id, if it has a readable one.
    pub id: Option<String>,
    /// What is wrong with it.
    pub error: Error,
}

impl InvalidThread {
    /// Reads what can be read of a thread that failed validation.
    fn new(value: &Value, error: Error) -> Self {
        let id = value.get("id").and_then(Value::as_str).map(String::from);
        InvalidThread { id, error }
    }
}

/// What the server did with one pushed item.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ItemResult {
    /// Stored with version `v`.
    Applied {
        /// The thread.
        id: String,
        /// Its new version.
        v: u64,
    },
    /// The base was stale; this is the server's copy.
    Conflict {
        /// The thread.
        id: String,
        /// The server's copy.
        thread: Thread,
    },
    /// The item is invalid; retrying cannot help.
    Rejected {
        /// The thread.
        id: String,
        /// The server's reason.
        error: String,
    },
    /// A conflict whose thread is not valid: nothing to merge with. That thread's push is
    /// failed (and the thread held); the other items settle as usual.
    Invalid {
        /// The thread.
        id: String,
        /// The server's copy as it came.
        thread: Value,
        /// What is wrong with it.
        error: Error,
    },
}

impl ItemResult {
    /// The thread the result is about.
    pub fn id(&self) -> &str {
        match self {
            ItemResult::Applied { id, .. }
            | ItemResult::Conflict { id, .. }
            | ItemResult::Rejected { id, .. }
            | ItemResult::Invalid { id, .. } => id,
        }
    }

    /// The result as JSON, as the server writes it.
    pub fn to_value(&self) -> Value {
        let mut map = Map::new();
        map.insert("id".into(), Value::String(self.id().into()));
        match self {
            ItemResult::Applied { v, .. } => {
                map.insert("status".into(), "applied".into());
                map.insert("v".into(), Value::from(*v));
            }
            ItemResult::Conflict { thread, .. } => {
                map.insert("status".into(), "conflict".into());
                map.insert("thread".into(), thread.to_value());
            }
            ItemResult::Invalid { thread, .. } => {
                map.insert("status".into(), "conflict".into());
                map.insert("thread".into(), thread.clone());
            }
            ItemResult::Rejected { error, .. } => {
                map.insert("status".into(), "rejected".into());
                map.insert("error".into(), Value::String(error.clone()));
            }
        }
        Value::Object(map)
    }
}

/// A 2xx body that does not say what docs/PROTOCOL.md says it must: treated as a bad body
/// (transient), never a panic.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// Not JSON, or not the expected shape.
    Malformed(&'static str),
    /// The results do not match the items pushed (count or ids).
    Mismatch,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Malformed(what) => write!(f, "malformed response: {what}"),
            WireError::Mismatch => f.write_str("the results do not match the items pushed"),
        }
    }
}

impl core::error::Error for WireError {}

/// Reads `{"results": [...]}`. A conflict whose thread is not valid is an
/// [`ItemResult::Invalid`], not a malformed body, so one bad thread fails only its own item.
///
/// # Errors
/// [`WireError::Malformed`].
pub fn parse_sync_results(body: &[u8]) -> Result<Vec<ItemResult>, WireError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|_| WireError::Malformed("not JSON"))?;
    let Some(Value::Array(results)) = value.get("results") else {
        return Err(WireError::Malformed("`results` is not an array"));
    };
    results.iter().map(parse_result).collect()
}

fn parse_result(value: &Value) -> Result<ItemResult, WireError> {
    let id = value
        .get("id")
        .and_then(Value::as_str)
        .ok_or(WireError::Malformed("a result without an id"))?
        .into();
    match value.get("status").and_then(Value::as_str) {
        Some("applied") => Ok(ItemResult::Applied {
            id,
            v: value
                .get("v")
                .and_then(Value::as_u64)
                .ok_or(WireError::Malformed("an applied result without `v`"))?,
        }),
        Some("conflict") => {
            let raw = value.get("thread").unwrap_or(&Value::Null);
            Ok(match Thread::from_value(raw) {
                Ok(thread) if thread.id == id => ItemResult::Conflict { id, thread },
                Ok(_) => ItemResult::Invalid {
                    thread: raw.clone(),
                    error: Error::IdMismatch {
                        expected: id.clone(),
                    },
                    id,
                },
                Err(error) => ItemResult::Invalid {
                    id,
                    thread: raw.clone(),
                    error,
                },
            })
        }
        Some("rejected") => Ok(ItemResult::Rejected {
            id,
            error: value
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("rejected")
                .into(),
        }),
        _ => Err(WireError::Malformed("an unknown result status")),
    }
}

/// One page of a pull.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullPage {
    /// Threads changed after `since`, oldest change first.
    pub threads: Vec<Thread>,
    /// The version to ask `since` next.
    pub version: u64,
}

impl PullPage {
    /// The page as JSON, as the server writes it.
    pub fn to_value(&self) -> Value {
        let mut map = Map::new();
        map.insert(
            "threads".into(),
            Value::Array(self.threads.iter().map(Thread::to_value).collect()),
        );
        map.insert("version".into(), Value::from(self.version));
        Value::Object(map)
    }
}

/// Reads `{"threads": [...], "version": W}`: the page of valid threads, and each invalid one
/// (its id if readable, and why), so that one bad thread never stalls the pull.
///
/// # Errors
/// [`WireError::Malformed`] only when the page itself is: not JSON, no `threads` array, no
/// integer `version`.
pub fn parse_pull(body: &[u8]) -> Result<(PullPage, Vec<InvalidThread>), WireError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|_| WireError::Malformed("not JSON"))?;
    let Some(Value::Array(items)) = value.get("threads") else {
        return Err(WireError::Malformed("`threads` is not an array"));
    };
    let version = value
        .get("version")
        .and_then(Value::as_u64)
        .ok_or(WireError::Malformed("`version` is not an integer"))?;
    let mut threads = Vec::new();
    let mut invalid = Vec::new();
    for item in items {
        match Thread::from_value(item) {
            Ok(thread) => threads.push(thread),
            Err(error) => invalid.push(InvalidThread::new(item, error)),
        }
    }
    Ok((PullPage { threads, version }, invalid))
}
