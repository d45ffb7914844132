//! Thread sync on the driver without any runtime: several drivers on one simulated clock, the
//! session routes answered by a script, the thread routes by the server model, and every
//! request carried through the driver's actions like the session's own.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tether_core::Instant;
use tether_driver::runtime::Origin;

use serde_json::json;
use tether_core::session::Endpoint;
use tether_core::thread::{self, Message, SyncStatus};
use tether_driver::runtime::{Action, HttpRequest, HttpResponse, Shared};
use tether_driver::{
    Settings, Tether, ThreadCallError, ThreadFlushError, ThreadHandle, ThreadReport,
};
use tether_sim::{ServerConfig, ServerModel};

type Script = Box<dyn FnMut(&HttpRequest) -> Option<HttpResponse>>;

struct Client {
    shared: Arc<Shared>,
    handle: Tether,
    threads: ThreadHandle,
}

/// Clients on one clock; `script` answers thread requests first (`None`: the model does).
struct Rig {
    now: Arc<Mutex<Instant>>,
    model: ServerModel,
    clients: Vec<Client>,
    script: Script,
    seen: Vec<thread::Endpoint>,
    /// Every request id each client sent, worker and thread routes alike.
    ids: Vec<Vec<tether_core::session::RequestId>>,
}

impl Rig {
    fn new(clients: usize, script: Script) -> Rig {
        Rig::with_budget(clients, script, None)
    }

    /// Clients whose sessions share `budget`.
    fn with_budget(
        clients: usize,
        script: Script,
        budget: Option<tether_driver::SharedRetryBudget>,
    ) -> Rig {
        let start = Instant::ZERO;
        let now = Arc::new(Mutex::new(start));
        let mut rig = Rig {
            now,
            model: ServerModel::new(ServerConfig::default()),
            clients: Vec::new(),
            script,
            seen: Vec::new(),
            ids: vec![Vec::new(); clients],
        };
        for i in 0..clients {
            let mut settings = Settings::new("http://127.0.0.1:1/v1/code/sessions/rig");
            settings.epoch(1).seed(i as u64);
            if let Some(budget) = &budget {
                settings.retry_budget(budget.clone());
            }
            let driver = settings.start(origin(), 0).unwrap();
            let clock = Arc::clone(&rig.now);
            let shared = Shared::new(
                driver,
                Box::new(move || *clock.lock().unwrap()),
                Box::new(|| {}),
            );
            let handle = Tether::new(Arc::clone(&shared));
            let threads = handle
                .threads(thread::Config::new(format!("client-{i}")))
                .unwrap();
            rig.clients.push(Client {
                shared,
                handle,
                threads,
            });
        }
        rig
    }

    fn answer(&mut self, request: &HttpRequest) -> HttpResponse {
        let Some(endpoint) = request.route.thread() else {
            return match request.route.worker().unwrap() {
                Endpoint::GetWorker => HttpResponse::new(200, r#"{"worker":{}}"#),
                _ => HttpResponse::new(200, "{}"),
            };
        };
        self.seen.push(endpoint);
        assert!(request.url.contains(endpoint.path()), "{}", request.url);
        if let Some(answer) = (self.script)(request) {
            return answer;
        }
        let query = request.url.split_once('?').map_or("", |(_, q)| q);
        let at = *self.now.lock().unwrap();
        self.model
            .handle_thread(at, endpoint, query, &request.body)
            .into()
    }

    /// One turn of every client's loop; whether anything was sent.
    fn turn(&mut self) -> bool {
        let mut busy = false;
        for i in 0..self.clients.len() {
            let shared = Arc::clone(&self.clients[i].shared);
            let actions: Vec<Action> = shared.turn().actions;
            for action in actions {
                if let Action::Send(request) = action {
                    busy = true;
                    self.ids[i].push(request.id);
                    let answer = self.answer(&request);
                    shared.with(|d, now| d.handle_reply(now, request.id, Ok(answer)));
                }
            }
        }
        busy
    }

    /// Turns and jumps to the next deadline until `done`, within `steps`.
    fn run_until(&mut self, steps: usize, mut done: impl FnMut(&Rig) -> bool) {
        for _ in 0..steps {
            if done(self) {
                return;
            }
            if self.turn() {
                continue;
            }
            let next = self
                .clients
                .iter()
                .filter_map(|c| c.shared.lock().deadline())
                .min();
            let Some(at) = next else { return };
            let mut now = self.now.lock().unwrap();
            *now = (*now).max(at);
        }
        panic!("not done within {steps} steps");
    }
}

fn message(id: &str, at: u64) -> Message {
    Message::new(id, "user", format!("text of {id}"), at)
}

#[test]
fn three_clients_converge_through_the_drivers_actions() {
    let mut rig = Rig::new(3, Box::new(|_| None));
    for round in 0..4u64 {
        for (i, client) in rig.clients.iter().enumerate() {
            for t in ["t1", "t2"] {
                let id = format!("{t}-c{i}-m{round}");
                client
                    .threads
                    .add_message(t, message(&id, round * 10 + i as u64))
                    .unwrap();
            }
        }
        rig.clients[round as usize % 3]
            .threads
            .set_field("t1", "title", Some(json!(format!("title {round}"))))
            .unwrap();
        rig.turn();
    }
    // Two rounds of flushes: everything pushed, then everything pulled.
    for _ in 0..2 {
        let mut flushes: Vec<_> = rig
            .clients
            .iter()
            .map(|c| c.threads.flush(Duration::from_secs(60)))
            .collect();
        rig.run_until(10_000, |_| flushes.iter().all(|f| f.is_ready()));
        for flush in &mut flushes {
            assert_eq!(flush.try_take(), Some(Ok(())));
        }
    }
    let server: Vec<_> = rig.model.threads().threads().cloned().collect();
    assert_eq!(server.len(), 2);
    for thread in &server {
        assert_eq!(thread.messages.len(), 12, "{thread:?}");
    }
    for client in &rig.clients {
        assert_eq!(client.threads.threads(), server);
        assert!(
            client
                .threads
                .sync_statuses()
                .values()
                .all(|s| *s == SyncStatus::Synced)
        );
    }
    assert!(rig.seen.contains(&thread::Endpoint::Pull));
    assert!(rig.seen.contains(&thread::Endpoint::Sync));
    // Thread sync is a channel of the session: its requests take ids from the session's one
    // space, so no two requests of a client, of any route, share an id.
    for ids in &rig.ids {
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "{ids:?}");
        assert!(
            ids.iter().all(|id| id.0 < 1 << 32),
            "no tagged ids: {ids:?}"
        );
    }

    // Closing the session closes thread sync; the loop ends only once both have.
    let statuses = rig.clients[0].threads.statuses();
    let mut closes: Vec<_> = rig
        .clients
        .iter()
        .map(|c| c.handle.close(Duration::from_secs(5)))
        .collect();
    rig.run_until(10_000, |r| {
        r.clients.iter().all(|c| c.shared.lock().is_finished())
    });
    for close in &mut closes {
        assert!(close.try_take().unwrap().all_delivered());
    }
    let changes: Vec<_> = std::iter::from_fn(|| statuses.try_next().map(Result::unwrap)).collect();
    assert!(changes.iter().all(|c| c.status == SyncStatus::Synced));
    assert!(statuses.is_finished());
    assert_eq!(
        rig.clients[0]
            .threads
            .add_message("t1", message("late", 99)),
        Err(ThreadCallError::Closed)
    );
    let mut report = rig.clients[0].threads.close(Duration::ZERO);
    let report = report.try_take().unwrap();
    assert!(report.all_synced());
    assert_eq!(report.threads, server);
}

#[test]
fn malformed_input_is_a_typed_error_and_a_rejection_is_handed_back_with_its_reason() {
    let mut rig = Rig::new(
        1,
        Box::new(|r| {
            (r.route.thread() == Some(thread::Endpoint::Sync)).then(|| {
                HttpResponse::new(
                    200,
                    r#"{"results":[{"id":"t1","status":"rejected","error":"too spicy"}]}"#,
                )
            })
        }),
    );
    let threads = rig.clients[0].threads.clone();
    let reports = threads.reports();
    assert!(matches!(
        threads.add_message_json("t1", &json!({"role": "user"})),
        Err(ThreadCallError::Invalid(thread::Error::MessageWithoutId))
    ));
    assert!(matches!(
        threads.add_message_json(
            "t1",
            &json!({"id": "m", "role": 1, "content": "", "timestamp": 0})
        ),
        Err(ThreadCallError::Invalid(
            thread::Error::BadMessageField { .. }
        ))
    ));
    assert!(matches!(
        threads.put_thread(&json!({"id": "t9", "messages": {}})),
        Err(ThreadCallError::Invalid(thread::Error::MessagesNotAnArray))
    ));
    assert!(matches!(
        threads.set_field("t1", "messages", Some(json!("x"))),
        Err(ThreadCallError::Invalid(
            thread::Error::ReservedField { .. }
        ))
    ));
    threads.add_message("t1", message("m1", 1)).unwrap();
    assert_eq!(
        threads.add_message("t1", message("m1", 2)),
        Err(ThreadCallError::Invalid(thread::Error::DuplicateMessage {
            id: "m1".into()
        }))
    );
    assert_eq!(threads.status("t1"), SyncStatus::Pending);
    let mut flush = threads.flush(Duration::from_secs(2));
    rig.run_until(1_000, |_| flush.is_ready());
    // Rolled back: the thread was new, so nothing is left to push.
    assert_eq!(flush.try_take(), Some(Ok(())));
    assert!(threads.thread("t1").is_none());
    let rejected = std::iter::from_fn(|| reports.try_next().map(Result::unwrap))
        .find_map(|r| match r {
            ThreadReport::Rejected(rejected) => Some(rejected),
            _ => None,
        })
        .expect("a rejection report");
    assert_eq!(rejected.id, "t1");
    assert!(rejected.reason.contains("too spicy"));
    assert_eq!(rejected.refused.messages.len(), 1);
    let mut report = threads.close(Duration::from_secs(1));
    rig.run_until(1_000, |_| report.is_ready());
    // The close report counts it; the refused copy went to the caller live, above.
    assert_eq!(report.try_take().unwrap().rejected, 1);
}

#[test]
fn offline_edits_queue_a_flush_times_out_and_a_close_hands_them_back() {
    let mut rig = Rig::new(1, Box::new(|_| None));
    let threads = rig.clients[0].threads.clone();
    rig.run_until(100, |r| r.seen.contains(&thread::Endpoint::Pull));
    threads.set_online(false);
    threads.add_message("t1", message("m1", 1)).unwrap();
    let mut flush = threads.flush(Duration::from_secs(3));
    rig.run_until(1_000, |_| flush.is_ready());
    assert_eq!(flush.try_take(), Some(Err(ThreadFlushError::TimedOut)));
    assert!(!rig.seen.contains(&thread::Endpoint::Sync));
    let mut report = threads.close(Duration::from_secs(1));
    rig.run_until(1_000, |_| report.is_ready());
    let report = report.try_take().unwrap();
    assert_eq!(report.unsynced.len(), 1);
    assert_eq!(report.unsynced[0].messages[0].id, "m1");
    assert!(!report.all_synced());
    // The session goes on after thread sync has closed.
    assert!(!rig.clients[0].shared.lock().is_finished());
}

#[test]
fn thread_sync_starts_once_and_not_on_a_closing_session() {
    let rig = Rig::new(1, Box::new(|_| None));
    let client = &rig.clients[0];
    assert!(matches!(
        client.handle.threads(thread::Config::new("again")),
        Err(tether_driver::ThreadStartError::AlreadyStarted)
    ));
    let mut settings = Settings::new("http://127.0.0.1:1/v1/code/sessions/other");
    settings.epoch(1);
    let driver = settings.start(origin(), 0).unwrap();
    let shared = Shared::new(driver, Box::new(|| Instant::ZERO), Box::new(|| {}));
    let handle = Tether::new(shared);
    assert!(matches!(
        handle.threads(thread::Config::new("")),
        Err(tether_driver::ThreadStartError::Config(_))
    ));
    drop(handle.close(Duration::ZERO));
    assert!(matches!(
        handle.threads(thread::Config::new("late")),
        Err(tether_driver::ThreadStartError::Ended)
    ));
}

#[test]
fn a_delete_sticks_through_sync_and_reaches_every_client() {
    let mut rig = Rig::new(2, Box::new(|_| None));
    let (a, b) = (
        rig.clients[0].threads.clone(),
        rig.clients[1].threads.clone(),
    );
    a.add_message("t1", message("m1", 1)).unwrap();
    a.add_message("t1", message("m2", 2)).unwrap();
    let flush_both = |rig: &mut Rig| {
        for _ in 0..2 {
            let mut flushes = [
                a.flush(Duration::from_secs(60)),
                b.flush(Duration::from_secs(60)),
            ];
            rig.run_until(10_000, |_| flushes.iter().all(|f| f.is_ready()));
            for flush in &mut flushes {
                assert_eq!(flush.try_take(), Some(Ok(())));
            }
        }
    };
    flush_both(&mut rig);
    assert_eq!(b.thread("t1").unwrap().messages.len(), 2);
    assert!(matches!(
        b.delete_message("t1", "nope"),
        Err(ThreadCallError::Invalid(_))
    ));
    b.delete_message("t1", "m1").unwrap();
    // A concurrent append on the other side does not bring the deleted message back.
    a.add_message("t1", message("m3", 3)).unwrap();
    flush_both(&mut rig);
    let server: Vec<_> = rig.model.threads().threads().cloned().collect();
    let ids: Vec<_> = server[0].messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["m2", "m3"]);
    assert_eq!(a.threads(), server);
    assert_eq!(b.threads(), server);
    assert_eq!(server[0].to_value()["deleted"], json!(["m1"]));
}

#[test]
fn pause_holds_every_request_sync_now_pushes_and_the_pending_set_is_streamed() {
    let mut rig = Rig::new(1, Box::new(|_| None));
    let threads = rig.clients[0].threads.clone();
    let reports = threads.reports();
    let pending = threads.pending_threads();
    assert_eq!(
        pending.try_next(),
        Some(Ok(Vec::new())),
        "the current set first"
    );
    rig.run_until(100, |r| r.seen.contains(&thread::Endpoint::Pull));
    threads.pause();
    assert!(threads.is_paused());
    let seen = rig.seen.len();
    threads.add_message("t1", message("m1", 1)).unwrap();
    assert_eq!(pending.try_next(), Some(Ok(vec!["t1".to_owned()])));
    let until = *rig.now.lock().unwrap() + Duration::from_secs(90);
    rig.run_until(10_000, |r| *r.now.lock().unwrap() >= until);
    assert_eq!(rig.seen.len(), seen, "no request while paused");
    assert_eq!(threads.sync_now("t1"), Ok(true));
    assert!(matches!(
        threads.sync_now("nope"),
        Err(ThreadCallError::Invalid(
            thread::Error::UnknownThread { .. }
        ))
    ));
    rig.turn();
    assert_eq!(rig.seen.len(), seen, "sync_now waits for resume");
    threads.resume();
    rig.turn();
    assert!(
        rig.seen[seen..].contains(&thread::Endpoint::Sync),
        "pushed at once"
    );
    let mut flush = threads.flush(Duration::from_secs(10));
    rig.run_until(1_000, |_| flush.is_ready());
    assert_eq!(flush.try_take(), Some(Ok(())));
    assert_eq!(
        pending.try_next(),
        Some(Ok(Vec::new())),
        "empty once synced"
    );
    assert_eq!(threads.sync_now("t1"), Ok(false));
    let said: Vec<_> = std::iter::from_fn(|| reports.try_next().map(Result::unwrap)).collect();
    let paused = said.iter().position(|r| *r == ThreadReport::Paused);
    let resumed = said.iter().position(|r| *r == ThreadReport::Resumed);
    assert!(paused.is_some() && paused < resumed, "{said:?}");

    // A close drains even a paused machine.
    threads.pause();
    threads.add_message("t1", message("m2", 2)).unwrap();
    let mut report = threads.close(Duration::from_secs(5));
    rig.run_until(1_000, |_| report.is_ready());
    assert!(report.try_take().unwrap().all_synced());
    assert_eq!(
        rig.model.threads().threads().next().unwrap().messages.len(),
        2
    );
    assert_eq!(pending.iter().last(), Some(Ok(Vec::new())));
    assert!(pending.is_finished());
}

/// Where the driver's time starts on the (unread) real clock: these tests run on the core's
/// time alone.
#[allow(
    clippy::disallowed_methods,
    reason = "an origin only, never read again"
)]
fn origin() -> Origin<tether_core::Instant> {
    Origin::new(tether_core::Instant::ZERO)
}

#[test]
fn thread_retries_spend_from_the_shared_retry_budget_and_wait_when_it_is_empty() {
    use tether_core::budget::{MILLI, RetryBudgetConfig};
    // Room for two retries, refilled at a token per 1 000 s: a server that keeps failing
    // pushes for ten minutes gets two.
    let budget = tether_driver::SharedRetryBudget::new(RetryBudgetConfig {
        capacity: 2 * MILLI,
        retry_cost: MILLI,
        timeout_cost: MILLI,
        success_refund: 0,
        reserve: 0,
        refill_per_sec: 1,
    })
    .unwrap();
    let failing: Script = Box::new(|r| {
        (r.route.thread() == Some(thread::Endpoint::Sync)).then(|| HttpResponse::new(503, "{}"))
    });
    let mut rig = Rig::with_budget(1, failing, Some(budget.clone()));
    rig.clients[0]
        .threads
        .add_message("t1", message("m1", 1))
        .unwrap();
    let pushes = |rig: &Rig| {
        rig.seen
            .iter()
            .filter(|e| **e == thread::Endpoint::Sync)
            .count()
    };
    // Ten simulated minutes of a failing server, bounded in steps.
    let until = Instant::from_secs(600);
    rig.run_until(20_000, |rig| *rig.now.lock().unwrap() >= until);
    let c = budget.counters();
    assert_eq!(c.granted, 2, "{c:?}");
    assert!(c.waits >= 1, "the third retry waited: {c:?}");
    assert_eq!(
        pushes(&rig),
        3,
        "the first push and the two retries it paid for"
    );
    assert!(
        rig.clients[0].threads.pending() > 0,
        "nothing is lost: still queued"
    );
}
