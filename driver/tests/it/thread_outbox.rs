//! Thread edits are durable with an outbox: an edit accepted while offline survives a crash
//! (the driver forgotten without a close) and is pushed by the next run on the same outbox,
//! once; a synced thread leaves the stored journal.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tether_core::Instant;
use tether_core::session::Endpoint;
use tether_core::thread::{self, Message, SyncStatus};
use tether_driver::runtime::{Action, HttpResponse, Origin, Route, Shared};
use tether_driver::{MemoryStore, Settings, Store, SyncPolicy, Tether, ThreadHandle};
use tether_sim::{ServerConfig, ServerModel};

struct Run {
    shared: Arc<Shared>,
    tether: Tether,
    threads: ThreadHandle,
}

fn start(store: &MemoryStore, now: &Arc<Mutex<Instant>>) -> Run {
    let mut settings = Settings::new("http://127.0.0.1:1/v1/code/sessions/durable-threads");
    settings
        .epoch(1)
        .seed(3)
        .outbox(store.clone(), SyncPolicy::EveryWrite);
    let driver = settings
        .start(Origin::new(tether_core::Instant::ZERO), 0)
        .unwrap();
    let clock = Arc::clone(now);
    let shared = Shared::new(
        driver,
        Box::new(move || *clock.lock().unwrap()),
        Box::new(|| {}),
    );
    let tether = Tether::new(Arc::clone(&shared));
    let threads = tether.threads(thread::Config::new("durable")).unwrap();
    Run {
        shared,
        tether,
        threads,
    }
}

/// Turns the loop, answering worker routes at once and thread routes from `model` (none
/// while `down`), and jumps to each deadline, until `done` or `steps` run out.
fn run(
    run: &Run,
    now: &Arc<Mutex<Instant>>,
    model: &mut ServerModel,
    down: bool,
    steps: usize,
    done: impl Fn(&Run) -> bool,
) {
    for _ in 0..steps {
        if done(run) {
            return;
        }
        let mut todo: VecDeque<Action> = run.shared.turn().actions.into();
        let busy = !todo.is_empty();
        while let Some(action) = todo.pop_front() {
            match action {
                Action::Send(request) => {
                    let at = *now.lock().unwrap();
                    let answer = match request.route {
                        Route::Worker(Endpoint::GetWorker) => {
                            Ok(HttpResponse::new(200, r#"{"worker":{}}"#))
                        }
                        Route::Worker(_) => Ok(HttpResponse::new(200, "{}")),
                        Route::Thread(_) if down => Err(tether_core::session::TransportError {
                            message: "down".into(),
                        }),
                        Route::Thread(endpoint) => {
                            let query = request.url.split_once('?').map_or("", |(_, q)| q);
                            Ok(model
                                .handle_thread(at, endpoint, query, &request.body)
                                .into())
                        }
                        _ => continue,
                    };
                    todo.extend(run.shared.answer(request.id, answer));
                }
                Action::Store(job) => todo.extend(run.shared.store_done(job.run())),
                _ => {}
            }
        }
        if !busy {
            let next = run.shared.lock().deadline();
            let mut now = now.lock().unwrap();
            *now = next.map_or(*now + std::time::Duration::from_millis(10), |at| {
                (*now).max(at)
            });
        }
    }
    panic!("not done within {steps} steps");
}

#[test]
fn an_edit_made_offline_survives_a_crash_and_is_pushed_once_by_the_next_run() {
    let store = MemoryStore::new();
    let now = Arc::new(Mutex::new(Instant::ZERO));
    let mut model = ServerModel::new(ServerConfig::default());
    {
        let first = start(&store, &now);
        first.threads.set_online(false);
        first
            .threads
            .add_message("t1", Message::new("m1", "user", "written offline", 1))
            .unwrap();
        first
            .threads
            .set_field("t1", "title", Some(serde_json::json!("Kept")))
            .unwrap();
        // Durable once the group commit after the edit is written.
        let mut synced = first.tether.sync();
        run(&first, &now, &mut model, true, 1000, |_| synced.is_ready());
        assert_eq!(synced.try_take(), Some(Ok(())));
        let mut copy = store.clone();
        assert!(
            copy.read_threads().unwrap().is_some(),
            "the journal is stored"
        );
        // A crash: nothing is closed, nothing handed back.
        std::mem::forget(first);
    }
    assert!(
        model.threads().threads().next().is_none(),
        "nothing reached the server"
    );

    let second = start(&store, &now);
    run(&second, &now, &mut model, false, 10_000, |run| {
        run.threads.status("t1") == SyncStatus::Synced
    });
    let server: Vec<_> = model.threads().threads().cloned().collect();
    assert_eq!(server.len(), 1, "{server:?}");
    assert_eq!(server[0].messages.len(), 1, "once: {server:?}");
    assert_eq!(server[0].messages[0].content, "written offline");
    assert_eq!(server[0].fields["title"], "Kept");
    // Synced: the journal is empty once that is written too.
    let closed = second.tether.close(std::time::Duration::from_secs(5));
    run(&second, &now, &mut model, false, 10_000, |_| {
        closed.is_ready()
    });
    let mut copy = store.clone();
    let record = copy.read_threads().unwrap().unwrap_or_default();
    assert_eq!(record, b"[]", "a synced thread leaves the journal");
}
