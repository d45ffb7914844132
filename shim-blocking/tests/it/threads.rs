//! Thread sync end to end with threads: three sessions in one process share the threads of one
//! session of `tether-server` on 127.0.0.1, edit them concurrently (one of them offline for a
//! while), and converge. Bounded.

use crate::common;

use std::thread;
use std::time::Duration;

use common::within;
use serde_json::json;
use tether_blocking::{Message, SyncStatus, Tether, ThreadReport, ThreadSyncConfig};
use tether_server::{Server, ServerConfig};

#[test]
fn three_clients_converge_on_the_reference_server_through_an_offline_spell() {
    let server = Server::start(ServerConfig::default()).unwrap();
    let url = server.session_url("threads");
    let views = within(Duration::from_secs(60), move || {
        let clients: Vec<Tether> = (0..3)
            .map(|i| {
                tether_blocking::builder(&url)
                    .epoch(1)
                    .seed(i)
                    .start()
                    .unwrap()
            })
            .collect();
        let threads: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(i, c)| c.threads(ThreadSyncConfig::new(format!("blocking-{i}"))))
            .collect::<Result<_, _>>()
            .unwrap();
        let reports = threads[2].reports();
        threads[2].set_online(false);
        for round in 0..5u64 {
            for (i, t) in threads.iter().enumerate() {
                for thread in ["a", "b", "c"] {
                    let id = format!("{thread}-{i}-{round}");
                    let m = Message::new(id.clone(), "user", id, round * 10 + i as u64);
                    t.add_message(thread, m).unwrap();
                }
            }
            threads[round as usize % 3]
                .set_field("b", "title", Some(json!(format!("round {round}"))))
                .unwrap();
            thread::sleep(Duration::from_millis(30));
        }
        // Offline, edits queue and a flush cannot complete.
        assert!(threads[2].flush(Duration::from_millis(200)).wait().is_err());
        assert_eq!(threads[2].pending(), 3);
        threads[2].set_online(true);
        for _ in 0..2 {
            for t in &threads {
                t.flush(Duration::from_secs(20)).wait().unwrap();
            }
        }
        let seen: Vec<ThreadReport> = reports.try_iter().map(Result::unwrap).collect();
        assert!(seen.iter().any(|r| matches!(r, ThreadReport::Offline(_))));
        assert!(seen.iter().any(|r| matches!(r, ThreadReport::Online)));
        for t in &threads {
            assert!(t.sync_statuses().values().all(|s| *s == SyncStatus::Synced));
        }
        let views: Vec<_> = threads.iter().map(|t| t.threads()).collect();
        // Closing a session closes its thread sync too.
        for client in &clients {
            assert!(client.close(Duration::from_secs(5)).wait().all_delivered());
        }
        assert!(threads[0].close(Duration::ZERO).wait().all_synced());
        views
    });
    let stored = server.inspector().threads("threads");
    assert_eq!(stored.len(), 3);
    for thread in &stored {
        assert_eq!(thread.messages.len(), 15, "{thread:?}");
    }
    for view in views {
        assert_eq!(view, stored);
    }
    server.shutdown().unwrap();
}
