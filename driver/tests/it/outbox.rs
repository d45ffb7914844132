//! The durable outbox through the driver, on a simulated clock with an in-memory store: sends
//! answered once durable, one write per loop turn, replay with the original uuids before new
//! events, a failing store refusing events, and replay in bounded memory.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tether_core::Instant;
use tether_driver::runtime::Origin;

use serde_json::{Value, json};
use tether_core::batch::Reason;
use tether_core::session::RecordFate;
use tether_core::session::{Endpoint, SessionConfig};
use tether_driver::runtime::{Action, HttpRequest, HttpResponse, Shared};
use tether_driver::{
    MemoryStore, REPLAY_CHUNK, Report, SendError, Settings, Store, SyncPolicy, Tether,
};

/// What the toy server stored: event payloads in arrival order, by uuid once.
#[derive(Default)]
struct Server {
    events: Vec<Value>,
    duplicates: usize,
    /// Whether it answers at all.
    down: bool,
    /// Whether it refuses for good (400) a batch holding an event with `"bad": true`.
    refuses_bad: bool,
    /// The bodies of the state PUTs it took.
    puts: Vec<Value>,
    /// Whether a newer worker owns the session (409 on events).
    superseded: bool,
}

impl Server {
    fn answer(&mut self, request: &HttpRequest) -> Option<HttpResponse> {
        if self.down {
            return None;
        }
        Some(match request.route.worker().unwrap() {
            Endpoint::GetWorker => HttpResponse::new(200, r#"{"worker":{}}"#),
            Endpoint::PutWorker => {
                self.puts
                    .push(serde_json::from_slice(&request.body).unwrap_or(Value::Null));
                HttpResponse::new(200, "{}")
            }
            Endpoint::Events if self.superseded => HttpResponse::new(409, "{}"),
            Endpoint::Events => {
                let body: Value = serde_json::from_slice(&request.body).unwrap();
                let items = body["events"].as_array().unwrap();
                if self.refuses_bad && items.iter().any(|i| i["payload"]["bad"] == true) {
                    return Some(HttpResponse::new(400, r#"{"error":"bad event"}"#));
                }
                for item in items {
                    let payload = &item["payload"];
                    if self.events.iter().any(|e| e["uuid"] == payload["uuid"]) {
                        self.duplicates += 1;
                    } else {
                        self.events.push(payload.clone());
                    }
                }
                HttpResponse::new(200, "{}")
            }
            _ => HttpResponse::new(200, "{}"),
        })
    }

    fn seqs(&self) -> Vec<u64> {
        self.events.iter().filter_map(|e| e["n"].as_u64()).collect()
    }

    fn uuids(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| e["uuid"].as_str().map(str::to_owned))
            .collect()
    }
}

struct Rig {
    shared: Arc<Shared>,
    now: Arc<Mutex<Instant>>,
    server: Arc<Mutex<Server>>,
}

fn config(queue: usize) -> SessionConfig {
    let mut config = SessionConfig::new("rig");
    config.events.max_queue_items = queue;
    config.events.max_batch_items = queue.min(50);
    config
}

impl Rig {
    fn start(
        store: &MemoryStore,
        policy: SyncPolicy,
        queue: usize,
        server: Arc<Mutex<Server>>,
    ) -> (Rig, Tether) {
        let start = Instant::ZERO;
        let now = Arc::new(Mutex::new(start));
        let mut settings = Settings::new("http://127.0.0.1:1/v1/code/sessions/rig");
        settings
            .config(config(queue))
            .epoch(1)
            .seed(5)
            .outbox(store.clone(), policy);
        let driver = settings.start(origin(), 0).unwrap();
        let clock = Arc::clone(&now);
        let shared = Shared::new(
            driver,
            Box::new(move || *clock.lock().unwrap()),
            Box::new(|| {}),
        );
        let handle = Tether::new(Arc::clone(&shared));
        (
            Rig {
                shared,
                now,
                server,
            },
            handle,
        )
    }

    /// One loop turn: time (and the group commit), then the actions, answered at once.
    fn turn(&mut self) -> bool {
        let mut todo: std::collections::VecDeque<Action> = self.shared.turn().actions.into();
        let busy = !todo.is_empty();
        while let Some(action) = todo.pop_front() {
            match action {
                Action::Send(request) => {
                    let answer = self.server.lock().unwrap().answer(&request);
                    if let Some(answer) = answer {
                        self.shared
                            .with(|d, now| d.handle_reply(now, request.id, Ok(answer)));
                    }
                }
                // Store work runs here, outside the driver's lock, as a runtime runs it.
                Action::Store(job) => todo.extend(self.shared.store_done(job.run())),
                _ => {}
            }
        }
        busy
    }

    fn run(&mut self, steps: usize, mut done: impl FnMut(&mut Rig) -> bool) {
        for _ in 0..steps {
            if done(self) {
                return;
            }
            if self.turn() {
                continue;
            }
            let next = self.shared.lock().deadline();
            let mut now = self.now.lock().unwrap();
            *now = match next {
                Some(at) => (*now).max(at),
                None => *now + Duration::from_millis(10),
            };
        }
        panic!("not done within {steps} steps");
    }
}

#[test]
fn a_send_is_answered_once_durable_and_a_batch_of_sends_is_one_write() {
    let store = MemoryStore::new();
    let server = Arc::new(Mutex::new(Server::default()));
    let (mut rig, handle) = Rig::start(&store, SyncPolicy::EveryWrite, 1000, server.clone());
    let mut sends: Vec<_> = (0..100)
        .map(|n| handle.send_event(json!({ "n": n }), Duration::from_secs(1)))
        .collect();
    assert!(
        sends.iter().all(|s| !s.is_ready()),
        "answered before durable"
    );
    assert_eq!(store.writes(), 0);
    // One loop turn: one write for all of them.
    rig.turn();
    assert_eq!(store.writes(), 1);
    for s in &mut sends {
        assert!(s.try_take().unwrap().is_ok());
    }
    rig.run(1000, |_| {
        store.is_empty() && server.lock().unwrap().events.len() == 100
    });
    assert_eq!(server.lock().unwrap().seqs(), (0..100).collect::<Vec<_>>());
}

#[test]
fn a_restart_replays_the_outbox_with_its_uuids_before_new_events() {
    let store = MemoryStore::new();
    let server = Arc::new(Mutex::new(Server::default()));
    server.lock().unwrap().down = true;
    {
        let (mut rig, handle) = Rig::start(&store, SyncPolicy::EveryWrite, 1000, server.clone());
        let mut sends: Vec<_> = (0..30)
            .map(|n| handle.send_event(json!({ "n": n }), Duration::from_secs(1)))
            .collect();
        rig.turn();
        for s in &mut sends {
            assert!(s.try_take().unwrap().is_ok());
        }
        assert_eq!(store.len(), 30);
        // A crash: the handle and driver are forgotten without a close.
        std::mem::forget(handle);
        std::mem::forget(rig);
    }
    assert_eq!(store.len(), 30, "a crash keeps the outbox");
    server.lock().unwrap().down = false;
    let (mut rig, handle) = Rig::start(&store, SyncPolicy::EveryWrite, 1000, server.clone());
    let mut later = handle.send_event(json!({ "n": 30 }), Duration::from_secs(1));
    rig.run(1000, |_| later.is_ready());
    assert!(later.try_take().unwrap().is_ok());
    rig.run(1000, |_| {
        store.is_empty() && server.lock().unwrap().events.len() == 31
    });
    assert_eq!(server.lock().unwrap().seqs(), (0..31).collect::<Vec<_>>());
    assert_eq!(handle.outbox().unwrap().restored, 30);
}

#[test]
fn replayed_events_keep_their_uuids_so_the_server_drops_the_duplicates() {
    let store = MemoryStore::new();
    let server = Arc::new(Mutex::new(Server::default()));
    {
        let (mut rig, handle) = Rig::start(&store, SyncPolicy::EveryWrite, 1000, server.clone());
        let mut sends: Vec<_> = (0..20)
            .map(|n| handle.send_event(json!({ "n": n }), Duration::from_secs(1)))
            .collect();
        rig.turn();
        assert!(sends.iter_mut().all(|s| s.try_take().unwrap().is_ok()));
        // The server takes the batch but the answer is lost with the process.
        let actions: Vec<Action> = {
            let mut driver = rig.shared.lock();
            std::iter::from_fn(|| driver.poll().output()).collect()
        };
        let mut guard = server.lock().unwrap();
        for action in &actions {
            if let Action::Send(request) = action {
                guard.answer(request);
            }
        }
        drop(guard);
        std::mem::forget(handle);
        std::mem::forget(rig);
    }
    let landed = server.lock().unwrap().events.len();
    assert_eq!(store.len(), 20);
    let (mut rig, _handle) = Rig::start(&store, SyncPolicy::EveryWrite, 1000, server.clone());
    rig.run(1000, |_| store.is_empty());
    let server = server.lock().unwrap();
    assert_eq!(server.seqs(), (0..20).collect::<Vec<_>>());
    assert_eq!(server.duplicates, landed, "every resend was a duplicate");
}

#[test]
fn a_failing_store_answers_not_durable_and_refuses_new_events_until_it_recovers() {
    let store = MemoryStore::new();
    let server = Arc::new(Mutex::new(Server::default()));
    let (mut rig, handle) = Rig::start(&store, SyncPolicy::EveryWrite, 1000, server.clone());
    store.fail(Some("no space left on device"));
    let mut first = handle.send_event(json!({ "n": 0 }), Duration::from_secs(1));
    rig.turn();
    match first.try_take().unwrap() {
        Err(SendError::NotDurable { message, .. }) => assert!(message.contains("no space")),
        other => panic!("{other:?}"),
    }
    let mut refused = handle.send_event(json!({ "n": 1 }), Duration::from_secs(1));
    match refused.try_take().unwrap() {
        Err(SendError::StoreFailed { event, .. }) => {
            assert!(event.payload().unwrap()["n"] == 1);
        }
        other => panic!("{other:?}"),
    }
    store.fail(None);
    let mut sync = handle.sync();
    rig.run(100, |_| sync.is_ready());
    assert!(sync.try_take().unwrap().is_ok());
    let mut again = handle.send_event(json!({ "n": 2 }), Duration::from_secs(1));
    rig.run(100, |_| again.is_ready());
    assert!(again.try_take().unwrap().is_ok());
    assert!(handle.outbox().unwrap().failed_commits >= 1);
}

#[test]
fn a_large_outbox_replays_in_chunks_with_bounded_memory() {
    let store = MemoryStore::new();
    let server = Arc::new(Mutex::new(Server::default()));
    server.lock().unwrap().down = true;
    let total = 5 * REPLAY_CHUNK + 17;
    {
        let (mut rig, handle) = Rig::start(&store, SyncPolicy::Never, total, server.clone());
        let pending = handle.send_events(
            tether_core::session::Stream::Events,
            (0..total).map(|n| tether_core::batch::Event::new(json!({ "n": n }))),
            Duration::from_secs(1),
        );
        rig.turn();
        assert!(pending.is_ready());
        std::mem::forget(handle);
        std::mem::forget(rig);
    }
    assert_eq!(store.len(), total);
    server.lock().unwrap().down = false;
    let (mut rig, handle) = Rig::start(&store, SyncPolicy::Never, 100, server.clone());
    let mut most = 0;
    rig.run(100_000, |rig| {
        let driver = rig.shared.lock();
        most = most.max(driver.outbox_replay_buffered());
        drop(driver);
        store.is_empty()
    });
    assert!(most <= REPLAY_CHUNK, "{most}");
    assert_eq!(
        server.lock().unwrap().seqs(),
        (0..total as u64).collect::<Vec<_>>()
    );
    assert_eq!(handle.outbox().unwrap().restored, total as u64);
    drop(handle);
}

#[test]
fn unreadable_records_are_dropped_and_reported_and_the_rest_replays() {
    use tether_driver::WriteBatch;
    let store = MemoryStore::new();
    let server = Arc::new(Mutex::new(Server::default()));
    server.lock().unwrap().down = true;
    {
        let (mut rig, handle) = Rig::start(&store, SyncPolicy::EveryWrite, 100, server.clone());
        let _sends: Vec<_> = (0..3)
            .map(|n| handle.send_event(json!({ "n": n }), Duration::from_secs(1)))
            .collect();
        rig.turn();
        std::mem::forget(handle);
        std::mem::forget(rig);
    }
    // A torn record, a record of garbage, and a state record that is not JSON.
    let mut raw = store.clone();
    let torn = WriteBatch {
        puts: vec![
            (100, vec![1, 0]),
            (101, b"\x01\x00\x00{\"payload\":{".to_vec()),
        ],
        state: Some(b"{not json".to_vec()),
        ..WriteBatch::default()
    };
    raw.write(&torn, true).unwrap();
    server.lock().unwrap().down = false;
    let mut settings = Settings::new("http://127.0.0.1:1/v1/code/sessions/rig");
    settings
        .config(config(100))
        .epoch(1)
        .seed(5)
        .outbox(store.clone(), SyncPolicy::EveryWrite);
    let mut driver = settings.start(origin(), 0).unwrap();
    let reports = driver.reports();
    let counters = driver.outbox_counters().unwrap();
    assert_eq!(counters.restored, 3);
    assert_eq!(counters.dropped, 3, "{counters:?}");
    let reasons: Vec<_> = driver
        .outbox_dropped()
        .into_iter()
        .map(|d| (d.key, d.reason))
        .collect();
    assert!(
        reasons
            .iter()
            .any(|(k, r)| k.is_none() && r.contains("state")),
        "{reasons:?}"
    );
    drop(driver);
    // Reports published at start came before anyone could subscribe: none is seen twice.
    while let Some(report) = reports.try_next().map(Result::unwrap) {
        assert!(
            !matches!(report, Report::OutboxDropped { .. }),
            "{report:?}"
        );
    }
    assert!(
        reasons
            .iter()
            .any(|(k, r)| *k == Some(100) && r.contains("torn")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|(k, _)| *k == Some(101)), "{reasons:?}");
}

#[test]
fn a_flush_during_replay_covers_the_stored_outbox() {
    let store = MemoryStore::new();
    let server = Arc::new(Mutex::new(Server::default()));
    server.lock().unwrap().down = true;
    let total = 2 * REPLAY_CHUNK + 5;
    {
        let (mut rig, handle) = Rig::start(&store, SyncPolicy::Never, total, server.clone());
        let _pending = handle.send_events(
            tether_core::session::Stream::Events,
            (0..total).map(|n| tether_core::batch::Event::new(json!({ "n": n }))),
            Duration::from_secs(1),
        );
        rig.turn();
        std::mem::forget(handle);
        std::mem::forget(rig);
    }
    server.lock().unwrap().down = false;
    let (mut rig, handle) = Rig::start(&store, SyncPolicy::Never, 50, server.clone());
    let mut flushed = handle.flush(Duration::from_secs(3600));
    rig.run(100_000, |_| flushed.is_ready());
    assert_eq!(flushed.try_take().unwrap(), Ok(()));
    assert_eq!(server.lock().unwrap().events.len(), total);
    drop(handle);
}

#[test]
fn a_stored_event_this_run_can_never_queue_is_kept_dead_and_said_so_and_the_rest_replays() {
    let store = MemoryStore::new();
    let server = Arc::new(Mutex::new(Server::default()));
    server.lock().unwrap().down = true;
    {
        let (mut rig, handle) = Rig::start(&store, SyncPolicy::EveryWrite, 100, server.clone());
        let big = "x".repeat(5_000);
        let _sends: Vec<_> = [
            json!({"n": 0}),
            json!({"n": 1, "big": big}),
            json!({"n": 2}),
        ]
        .into_iter()
        .map(|e| handle.send_event(e, Duration::from_secs(1)))
        .collect();
        rig.turn();
        std::mem::forget(handle);
        std::mem::forget(rig);
    }
    assert_eq!(store.len(), 3);
    server.lock().unwrap().down = false;
    // This run's batches are smaller than the stored event.
    let mut small = config(100);
    small.events.max_batch_bytes = 4_096;
    let mut settings = Settings::new("http://127.0.0.1:1/v1/code/sessions/rig");
    settings
        .config(small)
        .epoch(1)
        .seed(5)
        .outbox(store.clone(), SyncPolicy::EveryWrite);
    let mut driver = settings.start(origin(), 0).unwrap();
    let counters = driver.outbox_counters().unwrap();
    assert_eq!(
        (counters.restored, counters.dropped),
        (2, 1),
        "{counters:?}"
    );
    let dropped = driver.outbox_dropped();
    assert!(dropped[0].reason.contains("refused"), "{dropped:?}");
    assert!(dropped[0].reason.contains("marked dead"), "{dropped:?}");
    // The loop turn's commit, a store job: the record is kept, marked dead, not deleted.
    driver.handle_timeout(Instant::ZERO);
    while let Some(action) = driver.poll().output() {
        if let Action::Store(job) = action {
            driver.handle_store(Instant::ZERO, job.run());
        }
    }
    assert_eq!(store.dead_keys(), [1]);
}

#[test]
fn a_close_that_times_out_with_the_server_down_keeps_every_record_for_the_next_run() {
    let store = MemoryStore::new();
    let server = Arc::new(Mutex::new(Server::default()));
    server.lock().unwrap().down = true;
    let uuids: Vec<String> = {
        let (mut rig, handle) = Rig::start(&store, SyncPolicy::EveryWrite, 1000, server.clone());
        let mut sends: Vec<_> = (0..40)
            .map(|n| handle.send_event(json!({ "n": n }), Duration::from_secs(1)))
            .collect();
        rig.turn();
        assert!(sends.iter_mut().all(|s| s.try_take().unwrap().is_ok()));
        let mut closed = handle.close(Duration::from_secs(2));
        rig.run(10_000, |_| closed.is_ready());
        let report = closed.try_take().unwrap();
        assert_eq!(report.undelivered.len(), 40, "{report:?}");
        assert!(
            report
                .undelivered
                .iter()
                .all(|e| e.reason == Reason::Closed && e.kept_for_next_run()),
            "{:?}",
            report.undelivered
        );
        let kept = report.kept.expect("an outbox");
        assert_eq!((kept.pending, kept.dead), (40, 0), "{kept:?}");
        assert_eq!(report.kept_for_next_run(), 40);
        assert_eq!(report.handed_back().count(), 0, "kept is not handed back");
        report
            .undelivered
            .iter()
            .map(|e| e.uuid().unwrap())
            .collect()
    };
    assert_eq!(
        store.len(),
        40,
        "a close that timed out forgot what it kept"
    );
    // The next run on the same outbox, with the server up: each lands once, first, in order,
    // with the uuid it had.
    server.lock().unwrap().down = false;
    let (mut rig, handle) = Rig::start(&store, SyncPolicy::EveryWrite, 1000, server.clone());
    let mut later = handle.send_event(json!({ "n": 40 }), Duration::from_secs(1));
    rig.run(10_000, |_| {
        later.is_ready() && store.is_empty() && server.lock().unwrap().events.len() == 41
    });
    assert!(later.try_take().unwrap().is_ok());
    let mut closed = handle.close(Duration::from_secs(2));
    rig.run(10_000, |_| closed.is_ready());
    let report = closed.try_take().unwrap();
    assert!(report.all_delivered(), "{report:?}");
    assert_eq!(report.kept_for_next_run(), 0);
    let server = server.lock().unwrap();
    assert_eq!(server.seqs(), (0..41).collect::<Vec<_>>());
    assert_eq!(server.uuids()[..40], uuids[..]);
    assert_eq!(server.duplicates, 0);
}

#[test]
fn a_supersede_keeps_what_it_handed_back_for_the_next_run() {
    let store = MemoryStore::new();
    let server = Arc::new(Mutex::new(Server {
        superseded: true,
        ..Server::default()
    }));
    {
        let (mut rig, handle) = Rig::start(&store, SyncPolicy::EveryWrite, 100, server.clone());
        let _sends: Vec<_> = (0..10)
            .map(|n| handle.send_event(json!({ "n": n }), Duration::from_secs(1)))
            .collect();
        rig.run(1000, |_| handle.status().is_terminal());
        let mut closed = handle.close(Duration::from_secs(1));
        rig.run(1000, |_| closed.is_ready());
        let report = closed.try_take().unwrap();
        assert_eq!(report.status, tether_core::session::Status::Superseded);
        assert!(
            report
                .undelivered
                .iter()
                .all(|e| e.reason == Reason::Superseded && e.kept_for_next_run()),
            "{report:?}"
        );
        assert_eq!(report.kept_for_next_run(), 10);
    }
    assert_eq!(store.len(), 10);
    server.lock().unwrap().superseded = false;
    let (mut rig, _handle) = Rig::start(&store, SyncPolicy::EveryWrite, 100, server.clone());
    rig.run(1000, |_| store.is_empty());
    assert_eq!(server.lock().unwrap().seqs(), (0..10).collect::<Vec<_>>());
}

#[test]
fn a_dead_letter_is_handed_back_and_kept_marked_dead_and_never_replayed() {
    let store = MemoryStore::new();
    let server = Arc::new(Mutex::new(Server {
        refuses_bad: true,
        ..Server::default()
    }));
    {
        let (mut rig, handle) = Rig::start(&store, SyncPolicy::EveryWrite, 1000, server.clone());
        let reports = handle.reports();
        let mut bad = handle.send_event(json!({ "n": 0, "bad": true }), Duration::from_secs(1));
        rig.run(1000, |_| bad.is_ready() && !store.dead_keys().is_empty());
        assert!(bad.try_take().unwrap().is_ok(), "accepted, then refused");
        assert_eq!(store.len(), 0, "a dead letter is not pending");
        assert_eq!(store.dead_keys().len(), 1, "a dead letter is kept");
        let mut handed_back = Vec::new();
        while let Some(report) = reports.try_next().map(Result::unwrap) {
            if let Report::HandedBack { events, .. } = report {
                handed_back.extend(events);
            }
        }
        assert_eq!(handed_back.len(), 1, "{handed_back:?}");
        assert_eq!(handed_back[0].reason, Reason::Rejected { status: 400 });
        assert_eq!(handed_back[0].outbox, Some(RecordFate::Dead));
        let good = handle.send_event(json!({ "n": 1 }), Duration::from_secs(1));
        rig.run(1000, |_| good.is_ready() && store.is_empty());
        let mut closed = handle.close(Duration::from_secs(2));
        rig.run(10_000, |_| closed.is_ready());
        let report = closed.try_take().unwrap();
        let kept = report.kept.expect("an outbox");
        assert_eq!((kept.pending, kept.dead), (0, 1), "{kept:?}");
        assert_eq!(
            report.handed_back().count(),
            1,
            "a dead letter is the caller's"
        );
        assert_eq!(handle.outbox().unwrap().records_dead, 1);
    }
    // The next run does not send it again; it stays until the caller discards it.
    server.lock().unwrap().refuses_bad = false;
    let (mut rig, handle) = Rig::start(&store, SyncPolicy::EveryWrite, 1000, server.clone());
    let later = handle.send_event(json!({ "n": 2 }), Duration::from_secs(1));
    rig.run(1000, |_| later.is_ready() && store.is_empty());
    let flushed = handle.flush(Duration::from_secs(10));
    rig.run(1000, |_| flushed.is_ready());
    assert_eq!(server.lock().unwrap().seqs(), [1, 2]);
    assert_eq!(handle.outbox().unwrap().restored, 0);
    assert_eq!(store.dead_keys().len(), 1);
    assert_eq!(store.clone().count().unwrap().dead, 1);
    assert_eq!(store.discard_dead(), 1);
    assert!(store.dead_keys().is_empty());
}

#[test]
fn unacknowledged_state_is_kept_by_a_close_that_times_out_and_given_again_next_run() {
    let store = MemoryStore::new();
    let server = Arc::new(Mutex::new(Server::default()));
    server.lock().unwrap().down = true;
    {
        let (mut rig, handle) = Rig::start(&store, SyncPolicy::EveryWrite, 100, server.clone());
        handle.patch_state(json!({ "k": 1 })).unwrap();
        let sync = handle.sync();
        rig.run(100, |_| sync.is_ready());
        let mut closed = handle.close(Duration::from_secs(2));
        rig.run(10_000, |_| closed.is_ready());
        let report = closed.try_take().unwrap();
        assert!(report.state_unacknowledged.is_some(), "{report:?}");
        assert!(report.kept.expect("an outbox").state, "{report:?}");
    }
    let stored = store.clone().read_state().unwrap().unwrap_or_default();
    let stored: Value = serde_json::from_slice(&stored).unwrap_or(Value::Null);
    assert_eq!(stored, json!([{ "k": 1 }]), "a close kept no state");
    server.lock().unwrap().down = false;
    let (mut rig, handle) = Rig::start(&store, SyncPolicy::EveryWrite, 100, server.clone());
    rig.run(1000, |_| {
        server.lock().unwrap().puts.iter().any(|p| p["k"] == 1)
    });
    let mut closed = handle.close(Duration::from_secs(2));
    rig.run(10_000, |_| closed.is_ready());
    let report = closed.try_take().unwrap();
    assert!(report.all_delivered(), "{report:?}");
    assert!(!report.kept.expect("an outbox").state);
}

#[test]
fn a_restart_writes_every_stored_state_patch_in_its_first_state_record() {
    // Found by the simulator's crash scenario (`tether sim --crash --trace 8047`): a restart
    // gave the stored patches again one at a time, and replay, done with its first chunk,
    // asked for store work in between: the run's first write held the first patch alone, so a
    // crash before the next write lost the others, which an earlier run had made durable.
    let store = MemoryStore::new();
    let server = Arc::new(Mutex::new(Server::default()));
    server.lock().unwrap().down = true;
    {
        // One event kept in the outbox, so that the next run replays it.
        let (mut rig, handle) = Rig::start(&store, SyncPolicy::EveryWrite, 100, server.clone());
        let sent = handle.send_event(json!({ "n": 0 }), Duration::from_secs(1));
        rig.run(100, |_| sent.is_ready());
    }
    assert_eq!(store.len(), 1);
    let patches = json!([{ "k": 1 }, { "j": 2 }]);
    let state = serde_json::to_vec(&patches).unwrap();
    let batch = tether_driver::WriteBatch {
        state: Some(state),
        ..Default::default()
    };
    store.clone().write(&batch, true).unwrap();
    let (rig, _handle) = Rig::start(&store, SyncPolicy::EveryWrite, 100, server.clone());
    // The new run's first store work, alone: a crash right after it must find every patch.
    let job = rig
        .shared
        .turn()
        .actions
        .into_iter()
        .find_map(|a| match a {
            Action::Store(job) => Some(job),
            _ => None,
        })
        .expect("a store job");
    // The store already holds both patches: only a write of the state proves anything.
    let described = format!("{job:?}");
    assert!(
        described.starts_with("StoreJob::Write") && described.contains("state: true"),
        "the first store job writes the state: {described}"
    );
    drop(rig.shared.store_done(job.run()));
    let stored = store.clone().read_state().unwrap().unwrap_or_default();
    let stored: Value = serde_json::from_slice(&stored).unwrap_or(Value::Null);
    let merged: serde_json::Map<String, Value> = stored
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|p| p.clone())
        .collect();
    assert_eq!(
        Value::Object(merged),
        json!({ "k": 1, "j": 2 }),
        "stored {stored}"
    );
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

/// A store on a disk with room for `room` bytes of records: a commit whose records do not fit
/// fails whole, as SQLite rolls back a commit that meets a full disk, until `grow` makes room.
#[derive(Clone)]
struct SmallDisk {
    inner: MemoryStore,
    room: Arc<Mutex<(usize, usize)>>,
}

impl SmallDisk {
    fn new(room: usize) -> Self {
        SmallDisk {
            inner: MemoryStore::new(),
            room: Arc::new(Mutex::new((0, room))),
        }
    }

    fn grow(&self, room: usize) {
        self.room.lock().unwrap().1 = room;
    }
}

impl Store for SmallDisk {
    fn write(
        &mut self,
        batch: &tether_driver::WriteBatch,
        sync: bool,
    ) -> Result<(), tether_driver::StoreError> {
        let need: usize = batch.puts.iter().map(|(_, r)| r.len()).sum();
        let mut room = self.room.lock().unwrap();
        if room.0 + need > room.1 {
            return Err(tether_driver::StoreError::Write {
                message: "database or disk is full".into(),
            });
        }
        self.inner.write(batch, sync)?;
        room.0 += need;
        Ok(())
    }

    fn read(
        &mut self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, tether_driver::StoreError> {
        self.inner.read(after, limit)
    }

    fn read_dead(
        &mut self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, tether_driver::StoreError> {
        self.inner.read_dead(after, limit)
    }

    fn read_state(&mut self) -> Result<Option<Vec<u8>>, tether_driver::StoreError> {
        self.inner.read_state()
    }

    fn last_key(&mut self) -> Result<Option<u64>, tether_driver::StoreError> {
        self.inner.last_key()
    }
}

#[test]
fn a_disk_that_fills_mid_run_answers_not_durable_refuses_the_rest_and_loses_nothing_acknowledged() {
    let disk = SmallDisk::new(3_000);
    let server = Arc::new(Mutex::new(Server::default()));
    server.lock().unwrap().down = true;
    let mut acknowledged = Vec::new();
    let (mut not_durable, mut refused) = (0, 0);
    {
        let start = Instant::ZERO;
        let now = Arc::new(Mutex::new(start));
        let mut settings = Settings::new("http://127.0.0.1:1/v1/code/sessions/rig");
        settings
            .config(config(1000))
            .epoch(1)
            .seed(5)
            .outbox(disk.clone(), SyncPolicy::EveryWrite);
        let driver = settings.start(origin(), 0).unwrap();
        let clock = Arc::clone(&now);
        let shared = Shared::new(
            driver,
            Box::new(move || *clock.lock().unwrap()),
            Box::new(|| {}),
        );
        let handle = Tether::new(Arc::clone(&shared));
        let mut rig = Rig {
            shared,
            now,
            server: server.clone(),
        };
        // Groups of 8 events, one commit each, until the disk is full and past it.
        for group in 0..12u64 {
            let mut sends: Vec<_> = (0..8)
                .map(|i| {
                    let n = group * 8 + i;
                    (
                        n,
                        handle.send_event(json!({ "n": n }), Duration::from_secs(1)),
                    )
                })
                .collect();
            rig.turn();
            for (n, send) in &mut sends {
                match send.try_take() {
                    Some(Ok(_)) => acknowledged.push(*n),
                    Some(Err(SendError::NotDurable { .. })) => not_durable += 1,
                    Some(Err(SendError::StoreFailed { .. })) => refused += 1,
                    other => panic!("event {n}: {other:?}"),
                }
            }
            *rig.now.lock().unwrap() += Duration::from_millis(50);
        }
        assert!(!acknowledged.is_empty() && acknowledged.len() < 96);
        assert_eq!(not_durable, 8, "the group that met the full disk");
        assert!(refused > 0, "new events refused while the disk is full");
        assert!(handle.outbox().unwrap().failed_commits >= 1);
        assert_eq!(
            acknowledged,
            (0..acknowledged.len() as u64).collect::<Vec<_>>(),
            "acknowledged in order, nothing after the first failure"
        );
        assert_eq!(
            disk.inner.len(),
            acknowledged.len(),
            "all acknowledged kept"
        );
        // A crash while the disk is full.
        std::mem::forget(handle);
        std::mem::forget(rig);
    }
    // Room again, the server up: the next run delivers what was acknowledged, once, in order,
    // and nothing that was not.
    disk.grow(1 << 20);
    server.lock().unwrap().down = false;
    let mut settings = Settings::new("http://127.0.0.1:1/v1/code/sessions/rig");
    settings
        .config(config(1000))
        .epoch(1)
        .seed(5)
        .outbox(disk.clone(), SyncPolicy::EveryWrite);
    let driver = settings.start(origin(), 0).unwrap();
    let now = Arc::new(Mutex::new(Instant::ZERO));
    let clock = Arc::clone(&now);
    let shared = Shared::new(
        driver,
        Box::new(move || *clock.lock().unwrap()),
        Box::new(|| {}),
    );
    let _handle = Tether::new(Arc::clone(&shared));
    let mut rig = Rig {
        shared,
        now,
        server: server.clone(),
    };
    rig.run(10_000, |_| disk.inner.is_empty());
    let server = server.lock().unwrap();
    assert_eq!(server.seqs(), acknowledged);
    assert_eq!(server.duplicates, 0);
}
