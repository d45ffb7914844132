//! `ThreadSync` over a minimal in-test server, in simulated time.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tether_core::session::{Response, TransportError};
use tether_core::thread::{
    self, Contested, InvalidThread, ItemResult, Message, OfflineReason, PullPage, SyncStatus,
    Thread, ThreadSync, wire,
};
use tether_core::{Driven, Instant, Rng};

/// Just enough of docs/PROTOCOL.md's thread server to drive one client.
#[derive(Default)]
pub(crate) struct Server {
    pub(crate) threads: BTreeMap<String, (Thread, u64)>,
    version: u64,
    pub(crate) pushes: usize,
    pub(crate) answered: std::collections::BTreeSet<tether_core::thread::RequestId>,
    /// Served in place of the stored thread: an invalid one.
    poisoned: BTreeMap<String, Value>,
    /// Any push carrying this thread gets a 500.
    fails: Option<String>,
    /// The threads of every push, in order.
    pub(crate) log: Vec<Vec<String>>,
}

impl Server {
    pub(crate) fn answer(&mut self, request: &thread::Request) -> Response {
        match request.endpoint {
            thread::Endpoint::Ping => Response::new(200, "{}"),
            thread::Endpoint::Pull => {
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
                let mut page = page.to_value();
                for t in page["threads"].as_array_mut().unwrap() {
                    if let Some(poison) = self.poisoned.get(t["id"].as_str().unwrap()) {
                        *t = poison.clone();
                    }
                }
                Response::new(200, serde_json::to_vec(&page).unwrap())
            }
            thread::Endpoint::Sync => {
                self.pushes += 1;
                let body: Value = serde_json::from_slice(&request.body).unwrap();
                let ids: Vec<String> = body["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i["id"].as_str().unwrap().to_string())
                    .collect();
                self.log.push(ids.clone());
                if self.fails.as_ref().is_some_and(|bad| ids.contains(bad)) {
                    return Response::new(500, "{}");
                }
                let results: Vec<Value> = body["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|item| {
                        let id = item["id"].as_str().unwrap().to_string();
                        let base = item["base"].as_u64().unwrap();
                        let thread = Thread::from_value(&item["thread"]).unwrap();
                        let current = self.threads.get(&id).map_or(0, |(t, _)| t.v);
                        if let Some(poison) = self.poisoned.get(&id).filter(|_| base != current) {
                            return json!({"id": id, "status": "conflict", "thread": poison});
                        }
                        self.poisoned.remove(&id);
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
    pub(crate) fn remote_edit(&mut self, id: &str, message: Message) {
        self.remote_change(id, |t| t.messages.push(message));
    }

    /// Another client's change of thread `id`, stored as its next version.
    fn remote_change(&mut self, id: &str, f: impl FnOnce(&mut Thread)) {
        let (mut t, _) = self
            .threads
            .get(id)
            .cloned()
            .unwrap_or((Thread::new(id), 0));
        f(&mut t);
        t.v += 1;
        self.version += 1;
        self.threads.insert(id.into(), (t, self.version));
    }

    /// Stores thread `id`'s next version as `value`, invalid as it is.
    fn poison(&mut self, id: &str, value: Value) {
        self.remote_change(id, |_| {});
        self.poisoned.insert(id.into(), value);
    }
}

/// Answers every request at once (or fails it when `down`), until the machine is idle.
pub(crate) fn run_until(
    sync: &mut Driven<ThreadSync>,
    server: &mut Server,
    down: bool,
    until: Instant,
    outputs: &mut Vec<thread::Output>,
) {
    // Requests already in `outputs` that were never answered go first.
    let mut queue: Vec<thread::Output> = outputs
        .iter()
        .filter(|o| matches!(o, thread::Output::Send(r) if !server.answered.contains(&r.id)))
        .cloned()
        .collect();
    loop {
        while let Some(out) = (!queue.is_empty()).then(|| queue.remove(0)) {
            if let thread::Output::Send(request) = &out {
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

pub(crate) fn client() -> Driven<ThreadSync> {
    let sync = ThreadSync::new(thread::Config::new("c1"), Rng::new(9)).unwrap();
    Driven::new(sync, Instant::ZERO)
}

pub(crate) fn msg(id: &str, ts: u64) -> Message {
    Message::new(id, "user", id, ts)
}

#[test]
fn edits_push_and_remote_changes_pull() {
    let mut server = Server::default();
    server.remote_edit("shared", msg("r0", 1));
    let mut sync = client();
    let mut outs = Vec::new();
    let (_, first) = sync.call(|s, now| s.start(now, 1)).unwrap();
    let thread::Output::Send(pull) = &first[0] else {
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
            .any(|o| matches!(o, thread::Output::Status(c) if c.status == SyncStatus::Conflict))
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
    assert!(
        outs.contains(&thread::Output::Offline(OfflineReason::TransportFailures(
            3
        )))
    );
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
    let requests: Vec<thread::Endpoint> = outs[before..]
        .iter()
        .filter_map(|o| match o {
            thread::Output::Send(r) => Some(r.endpoint),
            _ => None,
        })
        .collect();
    assert!(
        !requests.is_empty() && requests.iter().all(|e| *e == thread::Endpoint::Ping),
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
    assert!(outs.contains(&thread::Output::Online));
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
        .filter(|o| matches!(o, thread::Output::Send(r) if r.endpoint == thread::Endpoint::Pull))
        .count();
    assert_eq!(pulls, 3);
    let (_, o) = sync.call(|s, now| s.set_online(now, false)).unwrap();
    assert_eq!(o, [thread::Output::Offline(OfflineReason::Caller)]);
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
    let thread::Output::Send(pull) = first[0].clone() else {
        panic!()
    };
    let outs = sync.advance().unwrap().unwrap();
    assert!(outs.contains(&thread::Output::Cancel(pull.id)));
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

fn edit(sync: &mut Driven<ThreadSync>, outs: &mut Vec<thread::Output>, thread: &str, m: Message) {
    let (r, o) = sync.call(|s, now| s.add_message(now, thread, m)).unwrap();
    r.unwrap();
    outs.extend(o);
}

fn invalid(outs: &[thread::Output]) -> Vec<&InvalidThread> {
    outs.iter()
        .filter_map(|o| match o {
            thread::Output::InvalidThread(t) => Some(t),
            _ => None,
        })
        .collect()
}

#[test]
fn an_invalid_thread_is_skipped_and_reported_and_sync_goes_on() {
    let mut server = Server::default();
    server.remote_edit("good", msg("g1", 1));
    server.poison("bad", json!({"id": "bad", "messages": "oops"}));
    server.remote_edit("good", msg("g2", 2));
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
    // The valid thread is applied, the invalid one reported with its id and why, and `since`
    // moves past the page: it is not pulled again and again.
    assert_eq!(
        invalid(&outs),
        [&InvalidThread {
            id: Some("bad".into()),
            error: thread::Error::MessagesNotAnArray,
        }]
    );
    assert_eq!(
        sync.machine().thread("good"),
        Some(&server.threads["good"].0)
    );
    assert_eq!(sync.machine().thread("bad"), None);
    assert_eq!(sync.machine().since(), 3);
    // Pushing to the poisoned thread meets its invalid copy in the conflict: that item fails
    // (the thread is held, its edit kept), the other item of the same push lands.
    edit(&mut sync, &mut outs, "bad", msg("b1", 3));
    edit(&mut sync, &mut outs, "good", msg("g3", 3));
    run_until(
        &mut sync,
        &mut server,
        false,
        Instant::from_secs(2),
        &mut outs,
    );
    assert_eq!(server.log.last().unwrap(), &["bad", "good"]);
    assert_eq!(server.threads["good"].0.messages.len(), 3);
    assert_eq!(sync.machine().status("good"), SyncStatus::Synced);
    assert_eq!(invalid(&outs).len(), 2);
    assert_eq!(sync.machine().status("bad"), SyncStatus::Error);
    assert_eq!(sync.machine().pending(), 1);
    assert!(
        outs.iter()
            .any(|o| matches!(o, thread::Output::Held { id, .. } if id == "bad"))
    );
    // Later remote changes still arrive.
    server.remote_edit("later", msg("l1", 1));
    sync.set_time(Instant::from_secs(10));
    outs.extend(sync.call(|s, now| s.pull_now(now)).unwrap().1);
    run_until(
        &mut sync,
        &mut server,
        false,
        Instant::from_secs(50),
        &mut outs,
    );
    assert_eq!(
        sync.machine().thread("later"),
        Some(&server.threads["later"].0)
    );
    assert_eq!(sync.machine().since(), server.version);
    assert_eq!(invalid(&outs).len(), 2, "the bad page was pulled once");
    // Once the server holds a valid copy, the held edit lands after its hold.
    server.poisoned.clear();
    run_until(
        &mut sync,
        &mut server,
        false,
        Instant::from_secs(130),
        &mut outs,
    );
    assert_eq!(sync.machine().status("bad"), SyncStatus::Synced);
    assert!(server.threads["bad"].0.message("b1").is_some());
    assert_eq!(sync.machine().counts().invalid, 2);
}

#[test]
fn deletes_stick_through_concurrent_changes_and_an_overridden_delete_is_reported() {
    let mut server = Server::default();
    for (i, id) in ["m1", "m2", "m3"].into_iter().enumerate() {
        server.remote_edit("t", msg(id, i as u64 + 1));
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
    for id in ["m1", "m2"] {
        let (r, o) = sync.call(|s, now| s.delete_message(now, "t", id)).unwrap();
        r.unwrap();
        outs.extend(o);
    }
    // Meanwhile another client edits m2 and appends r1.
    server.remote_change("t", |t| t.messages[1].content = "m2, rewritten".into());
    server.remote_edit("t", msg("r1", 4));
    run_until(
        &mut sync,
        &mut server,
        false,
        Instant::from_secs(2),
        &mut outs,
    );
    let stored = &server.threads["t"].0;
    let ids: Vec<&str> = stored.messages.iter().map(|m| m.id.as_str()).collect();
    // m1 stays deleted; the delete of m2 lost to the concurrent edit, and said so.
    assert_eq!(ids, ["m2", "m3", "r1"]);
    assert_eq!(stored.message("m2").unwrap().content, "m2, rewritten");
    assert_eq!(stored.deleted.iter().collect::<Vec<_>>(), ["m1"]);
    assert_eq!(sync.machine().thread("t"), Some(stored));
    let overrides: Vec<_> = outs
        .iter()
        .filter_map(|o| match o {
            thread::Output::Overridden(o) => Some(o),
            _ => None,
        })
        .collect();
    assert_eq!(overrides.len(), 1, "{overrides:?}");
    assert_eq!(overrides[0].what, Contested::Message { id: "m2".into() });
    assert_eq!(overrides[0].local, None);
    assert_eq!(
        overrides[0].kept,
        Some(stored.message("m2").unwrap().to_value())
    );
    assert!(overrides[0].local_lost());
    let counts = sync.machine().counts();
    assert_eq!((counts.overridden, counts.local_overridden), (1, 1));
    assert!(
        sync.machine()
            .perf()
            .conflict_rate()
            .is_some_and(|r| r > 0.0)
    );
    // A deleted id never comes back: adding it again is refused, and later pulls keep it out.
    let again = sync
        .call(|s, now| s.add_message(now, "t", msg("m1", 9)))
        .unwrap()
        .0;
    assert_eq!(
        again,
        Err(thread::Error::DeletedMessage { id: "m1".into() })
    );
    server.remote_edit("t", msg("r2", 5));
    run_until(
        &mut sync,
        &mut server,
        false,
        Instant::from_secs(70),
        &mut outs,
    );
    let view = sync.machine().thread("t").unwrap();
    assert!(view.message("m1").is_none() && view.message("r2").is_some());
}

#[test]
fn a_thread_that_keeps_failing_waits_on_its_own_and_the_others_go_on() {
    let mut server = Server {
        fails: Some("bad".into()),
        ..Server::default()
    };
    let mut sync = client();
    let mut outs = Vec::new();
    outs.extend(sync.call(|s, now| s.start(now, 1)).unwrap().1);
    edit(&mut sync, &mut outs, "bad", msg("b", 1));
    edit(&mut sync, &mut outs, "good1", msg("g", 1));
    run_until(
        &mut sync,
        &mut server,
        false,
        Instant::from_secs(5),
        &mut outs,
    );
    // The push of both failed; each went alone next: good1 landed, bad was held for 60 s.
    assert_eq!(
        server.log,
        [vec!["bad", "good1"], vec!["bad"], vec!["good1"]]
    );
    assert_eq!(sync.machine().status("good1"), SyncStatus::Synced);
    assert_eq!(sync.machine().status("bad"), SyncStatus::Error);
    let (failures, until) = sync.machine().failures("bad");
    let until = until.expect("held");
    assert!(failures >= 1 && until >= Instant::from_secs(60), "{until}");
    // Another thread edited while bad is held goes at once.
    edit(&mut sync, &mut outs, "good2", msg("g", 2));
    run_until(
        &mut sync,
        &mut server,
        false,
        Instant::from_secs(6),
        &mut outs,
    );
    assert_eq!(sync.machine().status("good2"), SyncStatus::Synced);
    // Nothing tries bad again before its hold ends...
    run_until(&mut sync, &mut server, false, until, &mut outs);
    let tries = |server: &Server| {
        server
            .log
            .iter()
            .filter(|p| p.contains(&"bad".to_string()))
            .count()
    };
    assert_eq!(tries(&server), 2);
    // ...and once the server takes it, it lands after the hold.
    server.fails = None;
    run_until(
        &mut sync,
        &mut server,
        false,
        until + core::time::Duration::from_secs(1),
        &mut outs,
    );
    assert_eq!(tries(&server), 3);
    assert_eq!(sync.machine().status("bad"), SyncStatus::Synced);
    assert_eq!(sync.machine().failures("bad"), (0, None));
}

/// Answers the push requests among `outputs` on the server but loses every answer (the
/// transport fails after the server applied it); other requests are answered normally.
fn apply_but_lose_the_answers(
    sync: &mut Driven<ThreadSync>,
    server: &mut Server,
    outputs: &[thread::Output],
) -> Vec<thread::Output> {
    let mut more = Vec::new();
    for out in outputs {
        let thread::Output::Send(request) = out else {
            continue;
        };
        if server.answered.contains(&request.id) {
            continue;
        }
        server.answered.insert(request.id);
        let response = server.answer(request);
        let id = request.id;
        let got = if request.endpoint == thread::Endpoint::Sync {
            let lost = TransportError {
                message: "connection reset after the request was sent".into(),
            };
            sync.call(|s, now| s.handle_transport_error(now, id, &lost))
        } else {
            sync.call(|s, now| s.handle_response(now, id, response))
        };
        more.extend(got.unwrap().1);
    }
    more
}

#[test]
fn an_own_change_whose_answer_was_lost_is_not_merged_as_another_clients() {
    for then_delete in [true, false] {
        let mut server = Server::default();
        server.remote_edit("t", msg("m1", 1));
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
        assert!(sync.machine().thread("t").unwrap().message("m1").is_some());

        // Edit m1; the server applies the push, but its answer is lost.
        let edited = Message::new("m1", "user", "m1, edited", 1);
        let (r, o) = sync
            .call(|s, now| s.update_message(now, "t", edited.clone()))
            .unwrap();
        r.unwrap();
        outs.extend(o);
        sync.set_time(Instant::from_secs(2));
        let mut pending = outs.clone();
        for _ in 0..20 {
            let more = apply_but_lose_the_answers(&mut sync, &mut server, &pending);
            outs.extend(more.clone());
            if server.threads["t"].0.message("m1") == Some(&edited) {
                break;
            }
            pending = more;
            if sync.next_wake().is_some() {
                let got = sync.advance().unwrap().unwrap_or_default();
                outs.extend(got.clone());
                pending.extend(got);
            }
        }
        assert_eq!(server.threads["t"].0.message("m1"), Some(&edited));

        // Then this client changes m1 again: deletes it, or edits it once more.
        let again = Message::new("m1", "user", "m1, edited twice", 1);
        let (r, o) = if then_delete {
            sync.call(|s, now| s.delete_message(now, "t", "m1"))
                .unwrap()
        } else {
            sync.call(|s, now| s.update_message(now, "t", again.clone()))
                .unwrap()
        };
        r.unwrap();
        outs.extend(o);
        run_until(
            &mut sync,
            &mut server,
            false,
            Instant::from_secs(300),
            &mut outs,
        );

        // The server's copy (the edit) is this client's own: the later change wins, unreported.
        let stored = &server.threads["t"].0;
        if then_delete {
            assert_eq!(stored.message("m1"), None, "{stored:?}");
            assert!(stored.deleted.contains("m1"));
        } else {
            assert_eq!(stored.message("m1"), Some(&again), "{stored:?}");
        }
        assert_eq!(sync.machine().thread("t"), Some(stored));
        let overrides: Vec<_> = outs
            .iter()
            .filter(|o| matches!(o, thread::Output::Overridden(_)))
            .collect();
        assert!(overrides.is_empty(), "{overrides:?}");
    }
}

/// Only what a push changed counts as the replica's own: a message it carried unchanged, which
/// another client then changed and changed back, is still another client's change against this
/// replica's later edit (a real conflict, reported).
#[test]
fn a_message_an_unconfirmed_push_carried_unchanged_is_not_taken_as_its_own() {
    use tether_core::thread::Replica;
    let with = |v: u64, m: &str, n: &str| {
        let mut t = Thread::new("t");
        t.v = v;
        t.messages.push(Message::new("m", "user", m, 1));
        t.messages.push(Message::new("n", "user", n, 2));
        t
    };
    let mut replica = Replica::default();
    replica.take_remote(with(4, "M0", "N0"));
    // Edit n and push (the answer is lost): the push carries m unchanged.
    replica
        .update_message("t", Message::new("n", "user", "N1", 2))
        .unwrap();
    let pushed = replica.sending("t").unwrap();
    assert_eq!(pushed.base, 4);
    // The push was applied (v5), then another client changed m (v6).
    let rebased = replica.take_remote(with(6, "M1", "N1"));
    assert!(rebased.overrides.is_empty(), "{:?}", rebased.overrides);
    // This replica edits m; meanwhile the other client changes m back to M0 (v7).
    replica
        .update_message("t", Message::new("m", "user", "M2", 1))
        .unwrap();
    replica.sending("t").unwrap();
    let rebased = replica.take_remote(with(7, "M0", "N1"));
    assert_eq!(rebased.overrides.len(), 1, "a real conflict on m");
    assert_eq!(
        rebased.overrides[0].what,
        Contested::Message { id: "m".into() }
    );
}
