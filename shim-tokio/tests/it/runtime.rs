//! The shim on every kind of tokio runtime: `current_thread`, `multi_thread`, one worker thread,
//! paused time, and a runtime that shuts down under a session. `flush` and `close` are always
//! awaited from inside the runtime (STYLE habit 17). Every test is bounded in time.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{bounded, fast_config, wait_status};
use serde_json::json;
use tether_core::batch::Reason;
use tether_core::session::{Endpoint, TransportError};
use tether_server::{Server, ServerConfig};
use tether_tokio::runtime::{AsyncTransport, BoxFuture, HttpRequest, HttpResponse};
use tether_tokio::{Builder, FlushError, Status, Tether};

const LIMIT: Duration = Duration::from_secs(20);
const T: Duration = Duration::from_secs(5);

/// Sends, patches, flushes and closes one session against `server`, all awaited in the task
/// that calls it.
async fn round_trip(server: &Server, id: &str, events: usize) {
    let tether = tether_tokio::builder(server.session_url(id))
        .config(fast_config(id))
        .epoch(1)
        .seed(1)
        .start()
        .unwrap();
    for i in 0..events {
        tether.send_event(json!({"seq": i}), T).await.unwrap();
    }
    tether
        .patch_state(json!({"worker_status": "busy"}))
        .unwrap();
    tether.flush(T).await.unwrap();
    let report = tether.close(T).await;
    assert_eq!(report.status, Status::Closed);
    assert!(report.all_delivered(), "{report:?}");
    assert_eq!(report.counters.events.delivered, events as u64);
    // After the end: the same report again, and a flush that says the session ended.
    assert_eq!(tether.close(T).await, report);
    assert!(matches!(tether.flush(T).await, Err(FlushError::Ended(_))));
    assert_eq!(server.inspector().events(id).len(), events);
}

#[tokio::test(flavor = "current_thread")]
async fn flush_and_close_are_awaited_on_a_current_thread_runtime() {
    let server = Server::start(ServerConfig::default()).unwrap();
    bounded(LIMIT, round_trip(&server, "current", 300)).await;
    server.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flush_and_close_are_awaited_on_a_multi_thread_runtime() {
    let server = Server::start(ServerConfig::default()).unwrap();
    bounded(LIMIT, async {
        // Several sessions at once, each driven wherever the scheduler puts it.
        let server = Arc::new(server);
        let tasks: Vec<_> = (0..8)
            .map(|n| {
                let server = Arc::clone(&server);
                tokio::spawn(async move { round_trip(&server, &format!("multi-{n}"), 100).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_runtime_with_one_worker_thread_is_enough() {
    let server = Arc::new(Server::start(ServerConfig::default()).unwrap());
    let s = Arc::clone(&server);
    // The caller is a task on the one worker, as is the driver: neither may block the other.
    let task = tokio::spawn(async move { round_trip(&s, "one-worker", 200).await });
    bounded(LIMIT, task).await.unwrap();
}

/// A black hole: every request hangs until the core's deadline cancels it.
struct Hang(Arc<AtomicU64>);

impl AsyncTransport for Hang {
    fn send(&self, _: HttpRequest) -> BoxFuture<Result<HttpResponse, TransportError>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(std::future::pending())
    }
}

fn hanging(id: &str) -> (Builder<tether_tokio::Tokio>, Arc<AtomicU64>) {
    let sent = Arc::new(AtomicU64::new(0));
    let builder = tether_tokio::builder(format!("http://127.0.0.1:9/v1/code/sessions/{id}"))
        .config(fast_config(id))
        .epoch(1)
        .transport(Hang(Arc::clone(&sent)));
    (builder, sent)
}

#[test]
fn close_while_the_runtime_shuts_down_answers_every_waiter() {
    // Runtime A drives the session; the caller waits for `close` on runtime B.
    let a = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let b = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (builder, sent) = hanging("shutdown");
    let tether: Tether = a.block_on(async { builder.start().unwrap() });
    let reports = tether.reports();
    b.block_on(async {
        for i in 0..10 {
            tether.send_event(json!({"seq": i}), T).await.unwrap();
        }
    });
    let flush = b.spawn({
        let tether = tether.clone();
        async move { tether.flush(Duration::from_secs(60)).await }
    });
    let close = b.spawn({
        let tether = tether.clone();
        async move { tether.close(Duration::from_secs(60)).await }
    });
    // The runtime goes away under the session: the driver task is dropped, not run to its end.
    b.block_on(async { tokio::time::sleep(Duration::from_millis(100)).await });
    drop(a);
    let (flushed, report) = b.block_on(bounded(LIMIT, async {
        (flush.await.unwrap(), close.await.unwrap())
    }));
    assert!(sent.load(Ordering::SeqCst) >= 1);
    assert!(matches!(flushed, Err(FlushError::Ended(_))), "{flushed:?}");
    assert_eq!(report.status, Status::Closed);
    let seqs: Vec<_> = report
        .undelivered
        .iter()
        .map(|e| e.payload().unwrap()["seq"].clone())
        .collect();
    assert_eq!(
        seqs,
        (0..10).map(serde_json::Value::from).collect::<Vec<_>>()
    );
    assert!(
        report
            .undelivered
            .iter()
            .all(|e| e.reason == Reason::Closed)
    );
    // The same facts reached the report stream, live.
    let mut handed_back = 0;
    while let Some(r) = reports.try_next().map(Result::unwrap) {
        if let tether_tokio::Report::HandedBack { events, .. } = r {
            handed_back += events.len();
        }
    }
    assert_eq!(handed_back, 10);
    // Calls after the end answer at once.
    let after = b.block_on(bounded(LIMIT, tether.close(T)));
    assert_eq!(after, report);
}

#[tokio::test(flavor = "current_thread")]
async fn an_aborted_driver_task_hands_back_what_it_held() {
    let (builder, _) = hanging("abort");
    let (tether, driver) = builder.into_parts().unwrap();
    let task = tokio::spawn(driver);
    tether.send_event(json!({"n": 1}), T).await.unwrap();
    tokio::task::yield_now().await;
    task.abort();
    let report = bounded(LIMIT, tether.close(T)).await;
    assert_eq!(report.undelivered.len(), 1);
    let _ = task.await;
}

/// Answers every request at once with `200`, counting heartbeats.
struct Instant200(Arc<AtomicU64>);

impl AsyncTransport for Instant200 {
    fn send(&self, request: HttpRequest) -> BoxFuture<Result<HttpResponse, TransportError>> {
        if request.route.worker().unwrap() == Endpoint::Heartbeat {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        let body = match request.route.worker().unwrap() {
            Endpoint::GetWorker => r#"{"worker":{}}"#,
            _ => "{}",
        };
        Box::pin(std::future::ready(Ok(HttpResponse::new(200, body))))
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn paused_time_runs_the_session_in_virtual_time() {
    let beats = Arc::new(AtomicU64::new(0));
    let mut config = fast_config("paused");
    config.heartbeat.interval = Duration::from_secs(5);
    let tether = tether_tokio::builder("http://127.0.0.1:9/v1/code/sessions/paused")
        .config(config)
        .epoch(1)
        .transport(Instant200(Arc::clone(&beats)))
        .start()
        .unwrap();
    wait_status(&tether, LIMIT, |s| *s == Status::Connected).await;
    let started = std::time::Instant::now();
    // Ten virtual minutes, in a blink of real time.
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let n = beats.load(Ordering::SeqCst);
    assert!(
        (115..=121).contains(&n),
        "{n} heartbeats in 600 virtual seconds"
    );
    let lateness = tether.stats().heartbeat_lateness;
    assert_eq!(lateness.count(), n);
    assert!(lateness.max() <= Duration::from_millis(2), "{lateness:?}");
    let report = tether.close(T).await;
    assert_eq!(report.status, Status::Closed);
}
