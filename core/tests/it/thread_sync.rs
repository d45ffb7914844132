//! `ThreadSync` over a minimal in-test server, in simulated time.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tether_core::session::{Response, TransportError};
use tether_core::thread::{
    ItemResult, Message, OfflineReason, PullPage, SyncStatus, Thread, ThreadEndpoint, ThreadOutput,
    ThreadRequest, ThreadSync, ThreadSyncConfig, wire,
};
use tether_core::{Driven, Instant, Rng};

/// Just enough of docs/PROTOCOL.md's thread server to drive one client.
#[derive(Default)]
struct Server {
    threads: BTreeMap<String, (Thread, u64)>,
    version: u64,
    pushes: usize,
    answered: std::collections::BTreeSet<tether_core::thread::RequestId>,
}

impl Server {
    fn answer(&mut self, request: &ThreadRequest) -> Response {
        match request.endpoint {
            ThreadEndpoint::Ping => Response::new(200, "{}"),
            ThreadEndpoint::Pull => {
                let query = request.path.split('?').nth(1).unwrap();
                let mut since = 0;
                let mut limit = 100;
                for kv in query.split('&') {
                    let (k, v) = kv.split_once('=').unwrap();
                    match k {
                        "since" => since = v.parse().unwrap(),
                        "limit" => limit = v.parse().unwrap(),
                        _ => {}
                    }
                }
                let mut changed: Vec<_> =
                    self.threads.values().filter(|(_, c)| *c > since).collect();
                changed.sort_by_key(|(_, c)| *c);
                let full = changed.len() > limit;
                changed.truncate(limit);
                let version = if full {
                    changed.last().unwrap().1
                } else {
                    self.version
                };
                let page = PullPage {
                    threads: changed.into_iter().map(|(t, _)| t.clone()).collect(),
                    version,
                };
                Response::new(200, serde_json::to_vec(&page.to_value()).unwrap())
            }
            ThreadEndpoint::Sync => {
                self.pushes += 1;
                let body: Value = serde_json::from_slice(&request.body).unwrap();
                let results: Vec<Value> = body["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|item| {
                        let id = item["id"].as_str().unwrap().to_string();
                        let base = item["base"].as_u64().unwrap();
                        let thread = Thread::from_value(&item["thread"]).unwrap();
                        let current = self.threads.get(&id).map_or(0, |(t, _)| t.v);
                        let result = if base == current {
                            self.version += 1;
                            let stored = Thread {
                                v: current + 1,
                                ..thread
                            };
                            self.threads.insert(id.clone(), (stored, self.version));
                            ItemResult::Applied { id, v: current + 1 }
                        } else {
                            ItemResult::Conflict {
                                id: id.clone(),
                                thread: self.threads[&id].0.clone(),
                            }
                        };
                        result.to_value()
                    })
                    .collect();
                Response::new(
                    200,
                    serde_json::to_vec(&json!({ "results": results })).unwrap(),
                )
            }
        }
    }

    /// Another client's edit, straight into the store.
    fn remote_edit(&mut self, id: &str, message: Message) {
        let (mut t, _) = self
            .threads
            .get(id)
            .cloned()
            .unwrap_or((Thread::new(id), 0));
        t.messages.push(message);
        t.v += 1;
        self.version += 1;
        self.threads.insert(id.into(), (t, self.version));
    }
}

/// Answers every request at once (or fails it when `down`), until the machine is idle.
fn run_until(
    sync: &mut Driven<ThreadSync>,
    server: &mut Server,
    down: bool,
    until: Instant,
    outputs: &mut Vec<ThreadOutput>,
) {
    // Requests already in `outputs` that were never answered go first.
    let mut queue: Vec<ThreadOutput> = outputs
        .iter()
        .filter(|o| matches!(o, ThreadOutput::Request(r) if !server.answered.contains(&r.id)))
        .cloned()
        .collect();
    loop {
        while let Some(out) = (!queue.is_empty()).then(|| queue.remove(0)) {
            if let ThreadOutput::Request(request) = &out {
                let id = request.id;
                server.answered.insert(id);
                let got = if down {
                    sync.call(|s, now| {
                        s.handle_transport_error(
                            now,
                            id,
                            &TransportError {
                                message: "refused".into(),
                            },
                        )
                    })
                } else {
                    let response = server.answer(request);
                    sync.call(|s, now| s.handle_response(now, id, response))
                };
                let got = got.unwrap().1;
                outputs.extend(got.clone());
                queue.extend(got);
            }
        }
        match sync.next_wake() {
            Some(wake) if wake.at <= until => {
                let got = sync.advance().unwrap().unwrap();
                outputs.extend(got.clone());
                queue.extend(got);
            }
            _ => break,
        }
    }
    sync.set_time(until);
}

fn client() -> Driven<ThreadSync> {
    let sync = ThreadSync::new(ThreadSyncConfig::new("c1"), Rng::new(9)).unwrap();
    Driven::new(sync, Instant::ZERO)
}

fn msg(id: &str, ts: u64) -> Message {
    Message::new(id, "user", id, ts)
}

#[test]
fn edits_push_and_remote_changes_pull() {
    let mut server = Server::default();
    server.remote_edit("shared", msg("r0", 1));
    let mut sync = client();
    let mut outs = Vec::new();
    let (_, first) = sync.call(|s, now| s.start(now, 1)).unwrap();
    let ThreadOutput::Request(pull) = &first[0] else {
        panic!("{first:?}")
    };
    assert_eq!(pull.path, "/threads?since=0&limit=100");
    assert_eq!(pull.deadline, Instant::from_secs(10));
    server.answered.insert(pull.id);
    let response = server.answer(pull);
    outs.extend(
        sync.call(|s, now| s.handle_response(now, pull.id, response))
            .unwrap()
            .1,
    );
    assert_eq!(sync.machine().status("shared"), SyncStatus::Synced);
    let (r, o) = sync
        .call(|s, now| s.add_message(now, "shared", msg("l0", 2)))
        .unwrap();
    r.unwrap();
    outs.extend(o);
    assert_eq!(sync.machine().status("shared"), SyncStatus::Pending);
    server.remote_edit("shared", msg("r1", 3));
    run_until(
        &mut sync,
        &mut server,
        false,
        Instant::from_secs(5),
        &mut outs,
    );
    // The push conflicted, merged, and went again.
    assert!(
        outs.iter()
            .any(|o| matches!(o, ThreadOutput::Status(c) if c.status == SyncStatus::Conflict))
    );
    let view = sync.machine().thread("shared").unwrap();
    let ids: Vec<&str> = view.messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["r0", "l0", "r1"]);
    assert_eq!(view, &server.threads["shared"].0);
    assert_eq!(sync.machine().status("shared"), SyncStatus::Synced);
    assert!(sync.machine().is_idle());
    // Remote edits arrive with the next pull, within the idle interval (60 s).
    server.remote_edit("other", msg("x", 1));
    run_until(
        &mut sync,
        &mut server,
        false,
        Instant::from_secs(70),
        &mut outs,
    );
    assert_eq!(
        sync.machine().thread("other"),
        Some(&server.threads["other"].0)
    );
}

#[test]
fn offline_only_probes_and_queued_edits_land_once_online() {
    let mut server = Server::default();
    let mut sync = client();
    let mut outs = Vec::new();
    outs.extend(sync.call(|s, now| s.start(now, 1)).unwrap().1);
    run_until(
        &mut sync,
        &mut server,
        true,
        Instant::from_secs(1),
        &mut outs,
    );
    let (r, o) = sync
        .call(|s, now| s.add_message(now, "t", msg("a", 1)))
        .unwrap();
    r.unwrap();
    outs.extend(o);
    run_until(
        &mut sync,
        &mut server,
        true,
        Instant::from_secs(20),
        &mut outs,
    );
    assert!(outs.contains(&ThreadOutput::Offline(OfflineReason::TransportFailures(3))));
    assert!(!sync.machine().is_online());
    // Offline: edits queue; only pings go, 30 s apart.
    let before = outs.len();
    for i in 0..50 {
        sync.set_time(Instant::from_secs(20 + i));
        let (r, o) = sync
            .call(|s, now| s.add_message(now, "t", msg(&format!("off{i}"), i)))
            .unwrap();
        r.unwrap();
        outs.extend(o);
    }
    run_until(
        &mut sync,
        &mut server,
        true,
        Instant::from_secs(200),
        &mut outs,
    );
    let requests: Vec<ThreadEndpoint> = outs[before..]
        .iter()
        .filter_map(|o| match o {
            ThreadOutput::Request(r) => Some(r.endpoint),
            _ => None,
        })
        .collect();
    assert!(
        !requests.is_empty() && requests.iter().all(|e| *e == ThreadEndpoint::Ping),
        "{requests:?}"
    );
    assert_eq!(sync.machine().pending(), 1);
    // The network heals: the next probe goes online, everything lands exactly once.
    run_until(
        &mut sync,
        &mut server,
        false,
        Instant::from_secs(300),
        &mut outs,
    );
    assert!(outs.contains(&ThreadOutput::Online));
    assert_eq!(server.threads["t"].0.messages.len(), 51);
    assert_eq!(sync.machine().thread("t"), Some(&server.threads["t"].0));
    assert_eq!(sync.machine().status("t"), SyncStatus::Synced);
    assert_eq!(sync.machine().pending(), 0);
}

#[test]
fn the_caller_can_go_offline_and_pulls_page_through_since() {
    let mut server = Server::default();
    for i in 0..250 {
        server.remote_edit(&format!("t{i:03}"), msg("m", 1));
    }
    let mut sync = client();
    let mut outs = Vec::new();
    outs.extend(sync.call(|s, now| s.start(now, 1)).unwrap().1);
    run_until(
        &mut sync,
        &mut server,
        false,
        Instant::from_secs(1),
        &mut outs,
    );
    assert_eq!(sync.machine().threads().count(), 250);
    assert_eq!(sync.machine().since(), 250);
    let pulls = outs
        .iter()
        .filter(|o| matches!(o, ThreadOutput::Request(r) if r.endpoint == ThreadEndpoint::Pull))
        .count();
    assert_eq!(pulls, 3);
    let (_, o) = sync.call(|s, now| s.set_online(now, false)).unwrap();
    assert_eq!(o, [ThreadOutput::Offline(OfflineReason::Caller)]);
    outs.extend(o);
    let (r, o) = sync
        .call(|s, now| s.add_message(now, "t000", msg("x", 2)))
        .unwrap();
    r.unwrap();
    outs.extend(o);
    run_until(
        &mut sync,
        &mut server,
        false,
        Instant::from_secs(10),
        &mut outs,
    );
    assert_eq!(server.pushes, 0);
    outs.extend(sync.call(|s, now| s.set_online(now, true)).unwrap().1);
    run_until(
        &mut sync,
        &mut server,
        false,
        Instant::from_secs(11),
        &mut outs,
    );
    assert_eq!(server.pushes, 1);
    assert_eq!(server.threads["t000"].0.messages.len(), 2);
}

#[test]
fn a_late_answer_after_the_deadline_is_ignored() {
    let mut server = Server::default();
    let mut sync = client();
    let (_, first) = sync.call(|s, now| s.start(now, 1)).unwrap();
    let ThreadOutput::Request(pull) = first[0].clone() else {
        panic!()
    };
    let outs = sync.advance().unwrap().unwrap();
    assert!(outs.contains(&ThreadOutput::Cancel(pull.id)));
    let response = server.answer(&pull);
    let (_, outs) = sync
        .call(|s, now| s.handle_response(now, pull.id, response))
        .unwrap();
    assert!(outs.is_empty());
    // Bad input at the call is a typed error.
    assert!(
        sync.call(|s, now| s.put_value(now, &json!({"id": "t", "messages": "no"})))
            .unwrap()
            .0
            .is_err()
    );
    assert!(wire::parse_sync_results(b"{\"results\": 3}").is_err());
}
