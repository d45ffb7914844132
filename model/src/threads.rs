//! The server side of thread sync (docs/PROTOCOL.md §Thread sync): versions, conflicts, per-item
//! results, `since` paging, tombstones (stored like any field).
//! [`ServerModel::handle_thread`](crate::ServerModel::handle_thread) serves the three endpoints
//! with it, fencing by the session's epoch. A thread can be poisoned (served as an invalid one) to test that clients
//! skip it and go on.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use tether_core::thread::{self, ItemResult, PullPage, Thread};

/// The most items one push may carry.
pub const MAX_ITEMS: usize = 50;
/// The default `limit` of a pull.
pub const DEFAULT_LIMIT: usize = 100;
/// The largest `limit` honoured; larger asks get this many.
pub const MAX_LIMIT: usize = 1_000;

/// A rejection of the whole request: a status and a reason.
pub(crate) type Reject = (u16, &'static str);

#[derive(Clone, Debug, PartialEq, Eq)]
struct Stored {
    thread: Thread,
    /// The session-wide version of its last change.
    changed: u64,
    /// Served instead of `thread` while set: an invalid thread, as a misbehaving server or a
    /// corrupted store would serve it. A push based on its version replaces it.
    poison: Option<Value>,
}

/// Every thread of one session, with the session-wide change counter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ThreadStore {
    threads: BTreeMap<String, Stored>,
    version: u64,
    applied: u64,
    conflicts: u64,
    rejected: u64,
}

impl ThreadStore {
    /// The thread as stored.
    pub fn thread(&self, id: &str) -> Option<&Thread> {
        self.threads.get(id).map(|s| &s.thread)
    }

    /// Every thread, by id.
    pub fn threads(&self) -> impl Iterator<Item = &Thread> {
        self.threads.values().map(|s| &s.thread)
    }

    /// The session-wide version: how many changes were stored.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Items applied, answered as conflicts, and rejected, so far.
    pub fn counts(&self) -> (u64, u64, u64) {
        (self.applied, self.conflicts, self.rejected)
    }

    /// Stores `value` as thread `id`'s next version as it is, valid or not (its `v`, if it is
    /// an object, is set to that version), and serves it until a push replaces it. Returns the
    /// version.
    pub fn poison(&mut self, id: &str, mut value: Value) -> u64 {
        let thread = self
            .threads
            .get(id)
            .map_or_else(|| Thread::new(id), |s| s.thread.clone());
        let v = thread.v + 1;
        if let Value::Object(map) = &mut value {
            map.insert("v".into(), json!(v));
        }
        self.version += 1;
        self.threads.insert(
            id.into(),
            Stored {
                thread: Thread { v, ..thread },
                changed: self.version,
                poison: Some(value),
            },
        );
        v
    }

    /// `GET /threads?since&limit`'s body: threads changed after `since`, oldest change first,
    /// at most `limit`, poisoned ones as they were stored; the version to ask next.
    pub fn pull(&self, since: u64, limit: usize) -> Value {
        let mut page = self.pull_page(since, limit);
        if let Some(Value::Array(threads)) = page.get_mut("threads") {
            for t in threads.iter_mut() {
                let id = t.get("id").and_then(Value::as_str).unwrap_or_default();
                if let Some(poison) = self.threads.get(id).and_then(|s| s.poison.clone()) {
                    *t = poison;
                }
            }
        }
        page
    }

    fn pull_page(&self, since: u64, limit: usize) -> Value {
        let mut changed: Vec<&Stored> = self
            .threads
            .values()
            .filter(|s| s.changed > since)
            .collect();
        changed.sort_by_key(|s| s.changed);
        let more = changed.len() > limit;
        changed.truncate(limit);
        let version = match changed.last() {
            Some(last) if more => last.changed,
            _ => self.version.max(since),
        };
        PullPage {
            threads: changed.into_iter().map(|s| s.thread.clone()).collect(),
            version,
        }
        .to_value()
    }

    /// `POST /threads/sync`'s items, one result each, in order.
    pub fn sync(&mut self, items: &[Value]) -> Vec<ItemResult> {
        items.iter().map(|item| self.sync_item(item)).collect()
    }

    fn sync_item(&mut self, item: &Value) -> ItemResult {
        let id = item
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let result = self.check_item(&id, item).map(|(base, thread)| {
            let current = self.threads.get(&id);
            match current {
                Some(Stored {
                    thread: current,
                    poison: Some(poison),
                    ..
                }) if current.v != base => ItemResult::Invalid {
                    id: id.clone(),
                    thread: poison.clone(),
                    error: Thread::from_value(poison)
                        .err()
                        .unwrap_or(thread::Error::NotAnObject),
                },
                Some(Stored {
                    thread: current, ..
                }) if current.v != base => ItemResult::Conflict {
                    id: id.clone(),
                    thread: current.clone(),
                },
                None if base != 0 => ItemResult::Rejected {
                    id: id.clone(),
                    error: format!("no thread `{id}` at version {base}"),
                },
                _ => {
                    let v = base + 1;
                    self.version += 1;
                    self.threads.insert(
                        id.clone(),
                        Stored {
                            thread: Thread { v, ..thread },
                            changed: self.version,
                            poison: None,
                        },
                    );
                    ItemResult::Applied { id: id.clone(), v }
                }
            }
        });
        let result = result.unwrap_or_else(|error| ItemResult::Rejected { id, error });
        match result {
            ItemResult::Applied { .. } => self.applied += 1,
            ItemResult::Rejected { .. } => self.rejected += 1,
            _ => self.conflicts += 1,
        }
        result
    }

    fn check_item(&self, id: &str, item: &Value) -> Result<(u64, Thread), String> {
        if !item.is_object() {
            return Err("an item must be an object".into());
        }
        if id.is_empty() {
            return Err("an item needs a non-empty string `id`".into());
        }
        let base = item
            .get("base")
            .and_then(Value::as_u64)
            .ok_or("`base` must be a non-negative integer")?;
        let thread = Thread::from_value(item.get("thread").unwrap_or(&Value::Null))
            .map_err(|e| e.reason())?;
        if thread.id != id {
            return Err("the thread's id is not the item's".into());
        }
        Ok((base, thread))
    }
}

/// Serves one thread-sync request against `store`, fencing a push by `epoch` (lower ⇒ `409`;
/// higher becomes current). `query` is the URL's query without `?`. `Ok(value)` is a `200`
/// with that body.
pub(crate) fn dispatch(
    store: &mut ThreadStore,
    epoch: &mut u64,
    endpoint: thread::Endpoint,
    query: &str,
    body: &[u8],
    body_limit: usize,
) -> Result<Value, Reject> {
    if body.len() > body_limit {
        return Err((413, "request body too large"));
    }
    match endpoint {
        thread::Endpoint::Ping => Ok(json!({})),
        thread::Endpoint::Pull => {
            let (since, limit) = parse_query(query)?;
            Ok(store.pull(since, limit))
        }
        thread::Endpoint::Sync => {
            let body: Map<String, Value> = match serde_json::from_slice(body) {
                Ok(Value::Object(map)) => map,
                _ => return Err((400, "the body must be a JSON object")),
            };
            let claimed = body
                .get("worker_epoch")
                .and_then(Value::as_u64)
                .ok_or((400, "worker_epoch must be a non-negative integer"))?;
            if claimed < *epoch {
                return Err((409, "superseded by a newer worker epoch"));
            }
            if !body.get("client_id").is_some_and(Value::is_string) {
                return Err((400, "client_id must be a string"));
            }
            let Some(Value::Array(items)) = body.get("items") else {
                return Err((400, "items must be an array"));
            };
            if items.len() > MAX_ITEMS {
                return Err((400, "at most 50 items per push"));
            }
            *epoch = claimed;
            let results: Vec<Value> = store.sync(items).iter().map(ItemResult::to_value).collect();
            Ok(json!({ "results": results }))
        }
    }
}

/// `since` (default 0) and `limit` (default 100, at least 1, at most 1 000) from a query.
fn parse_query(query: &str) -> Result<(u64, usize), Reject> {
    let mut since = 0;
    let mut limit = DEFAULT_LIMIT;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "since" => {
                since = value
                    .parse()
                    .map_err(|_| (400, "since must be an integer"))?
            }
            "limit" => {
                limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|l| *l > 0)
                    .ok_or((400, "limit must be a positive integer"))?
                    .min(MAX_LIMIT);
            }
            _ => {}
        }
    }
    Ok((since, limit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ServerModel;
    use tether_core::Instant;

    fn push(server: &mut ServerModel, epoch: u64, items: Value) -> (u16, Value) {
        let body = json!({"worker_epoch": epoch, "client_id": "c", "items": items});
        let r = server.handle_thread(
            Instant::ZERO,
            thread::Endpoint::Sync,
            "",
            &serde_json::to_vec(&body).unwrap(),
        );
        (r.status, serde_json::from_slice(&r.body).unwrap())
    }

    fn thread(id: &str, messages: &[&str]) -> Value {
        let messages: Vec<Value> = messages
            .iter()
            .map(|m| json!({"id": m, "role": "user", "content": m, "timestamp": 1}))
            .collect();
        json!({"id": id, "v": 0, "messages": messages})
    }

    #[test]
    fn versions_conflicts_and_rejections() {
        let mut server = ServerModel::default();
        let (status, body) = push(
            &mut server,
            0,
            json!([
                {"id": "a", "base": 0, "thread": thread("a", &["m1"])},
                {"id": "a", "base": 0, "thread": thread("a", &["m2"])},
                {"id": "b", "base": 3, "thread": thread("b", &[])},
                {"id": "c", "base": 0, "thread": {"id": "c", "messages": {}}},
                {"id": "d", "base": 0, "thread": {"id": "d", "messages": [{"role": "x"}]}},
                {"id": "e", "base": 0, "thread": thread("other", &[])},
                7,
            ]),
        );
        assert_eq!(status, 200);
        let statuses: Vec<&str> = body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["status"].as_str().unwrap())
            .collect();
        assert_eq!(
            statuses,
            [
                "applied", "conflict", "rejected", "rejected", "rejected", "rejected", "rejected"
            ]
        );
        assert_eq!(body["results"][0]["v"], 1);
        assert_eq!(body["results"][1]["thread"]["messages"][0]["id"], "m1");
        assert_eq!(body["results"][3]["error"], "`messages` must be an array");
        let (status, body) = push(
            &mut server,
            0,
            json!([{"id": "a", "base": 1, "thread": thread("a", &["m1", "m2"])}]),
        );
        assert_eq!((status, body["results"][0]["v"].as_u64()), (200, Some(2)));
        assert_eq!(server.threads().thread("a").unwrap().messages.len(), 2);
        assert_eq!(server.threads().counts(), (2, 1, 5));
    }

    #[test]
    fn fencing_by_epoch_and_bad_bodies() {
        let mut server = ServerModel::default();
        server.force_takeover();
        server.force_takeover();
        assert_eq!(push(&mut server, 1, json!([])).0, 409);
        assert_eq!(push(&mut server, 3, json!([])).0, 200);
        assert_eq!(server.epoch(), 3);
        assert_eq!(push(&mut server, 2, json!([])).0, 409);
        let many: Vec<Value> = (0..51).map(|i| json!({"id": format!("t{i}"), "base": 0, "thread": thread(&format!("t{i}"), &[])})).collect();
        assert_eq!(push(&mut server, 3, Value::Array(many)).0, 400);
        for bad in [
            &b"nope"[..],
            br#"{"worker_epoch":3,"items":[]}"#,
            br#"{"worker_epoch":3,"client_id":"c"}"#,
            br#"{"client_id":"c","items":[]}"#,
        ] {
            let r = server.handle_thread(Instant::ZERO, thread::Endpoint::Sync, "", bad);
            assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(server.threads().version(), 0);
    }

    #[test]
    fn pulls_page_by_since() {
        let mut server = ServerModel::default();
        for i in 0..5 {
            push(
                &mut server,
                0,
                json!([{"id": format!("t{i}"), "base": 0, "thread": thread(&format!("t{i}"), &[])}]),
            );
        }
        push(
            &mut server,
            0,
            json!([{"id": "t0", "base": 1, "thread": thread("t0", &["x"])}]),
        );
        let pull = |server: &mut ServerModel, q: &str| {
            let r = server.handle_thread(Instant::ZERO, thread::Endpoint::Pull, q, b"");
            assert_eq!(r.status, 200);
            tether_core::thread::wire::parse_pull(&r.body).unwrap().0
        };
        let page = pull(&mut server, "since=0&limit=2");
        let ids: Vec<&str> = page.threads.iter().map(|t| t.id.as_str()).collect();
        assert_eq!((ids, page.version), (vec!["t1", "t2"], 3));
        let page = pull(&mut server, "since=3&limit=2");
        let ids: Vec<&str> = page.threads.iter().map(|t| t.id.as_str()).collect();
        assert_eq!((ids, page.version), (vec!["t3", "t4"], 5));
        let page = pull(&mut server, "since=5&limit=2");
        assert_eq!(
            (page.threads.len(), page.version, page.threads[0].v),
            (1, 6, 2)
        );
        let page = pull(&mut server, "since=6");
        assert_eq!((page.threads.len(), page.version), (0, 6));
        for bad in ["since=x", "limit=0", "limit=-1"] {
            assert_eq!(
                server
                    .handle_thread(Instant::ZERO, thread::Endpoint::Pull, bad, b"")
                    .status,
                400
            );
        }
        assert_eq!(
            server
                .handle_thread(Instant::ZERO, thread::Endpoint::Ping, "", b"")
                .status,
            200
        );
    }
}
