//! Thread sync end to end on smol: three sessions in one process share the threads of one
//! session of `tether-server` on 127.0.0.1, edit them concurrently, and converge. Bounded.

use std::time::Duration;

use serde_json::json;
use tether_server::{Server, ServerConfig};
use tether_smol::{Message, SyncStatus, ThreadCallError, ThreadHandle, ThreadSyncConfig};

#[test]
fn three_clients_converge_on_the_reference_server() {
    let server = Server::start(ServerConfig::default()).unwrap();
    let url = server.session_url("threads");
    let result = smol::block_on(async {
        smol::future::or(
            async {
                let mut clients = Vec::new();
                let mut threads: Vec<ThreadHandle> = Vec::new();
                for i in 0..3u64 {
                    let tether = tether_smol::builder(&url).epoch(1).seed(i).start().unwrap();
                    let config = ThreadSyncConfig::new(format!("smol-{i}"));
                    threads.push(tether.threads(config).unwrap());
                    clients.push(tether);
                }
                let mut statuses = threads[0].statuses();
                for round in 0..5u64 {
                    for (i, t) in threads.iter().enumerate() {
                        for thread in ["a", "b"] {
                            let id = format!("{thread}-{i}-{round}");
                            let text = format!("message {id}");
                            let m = Message::new(id, "user", text, round * 10 + i as u64);
                            t.add_message(thread, m).unwrap();
                        }
                    }
                    threads[round as usize % 3]
                        .set_field("a", "title", Some(json!(round)))
                        .unwrap();
                    smol::Timer::after(Duration::from_millis(30)).await;
                }
                assert!(matches!(
                    threads[0].add_message_json("a", &json!({"id": 7})),
                    Err(ThreadCallError::Invalid(_))
                ));
                for _ in 0..2 {
                    for t in &threads {
                        t.flush(Duration::from_secs(20)).await.unwrap();
                    }
                }
                let views: Vec<_> = threads.iter().map(ThreadHandle::threads).collect();
                let first = statuses.next().await.map(Result::unwrap).unwrap();
                assert_eq!(first.thread, "a");
                for t in &threads {
                    assert!(t.sync_statuses().values().all(|s| *s == SyncStatus::Synced));
                }
                for tether in &clients {
                    assert!(tether.close(Duration::from_secs(5)).await.all_delivered());
                }
                let report = threads[1].close(Duration::from_secs(1)).await;
                assert!(report.all_synced());
                views
            },
            async {
                smol::Timer::after(Duration::from_secs(60)).await;
                panic!("thread sync did not converge within 60 s");
            },
        )
        .await
    });
    let stored = server.inspector().threads("threads");
    assert_eq!(stored.len(), 2);
    for thread in &stored {
        assert_eq!(thread.messages.len(), 15, "{thread:?}");
    }
    for view in result {
        assert_eq!(view, stored);
    }
    server.shutdown().unwrap();
}
