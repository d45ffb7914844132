//! Thread sync on every runtime (docs/PROTOCOL.md §Thread sync), against the reference server:
//! two sessions' handles converge on a shared thread (appends, a title, an edit, a delete), an
//! edit made offline syncs once the caller says it is online, and pause holds every edit until
//! resume while a close still drains. The handle is the same type everywhere; only the runtime
//! that drives the session differs.

use std::thread;
use std::time::Duration;

use serde_json::json;
use tether_core::thread::{Message, OfflineReason, SyncStatus};
use tether_driver::{ThreadFlushError, ThreadHandle, ThreadReport};
use tether_server::{Server, ServerConfig};

use super::{Feed, Opts, Runtime, Session, on_every_runtime};
use crate::common::fast_config;

on_every_runtime! {
    two_sessions_converge_on_a_shared_thread within 30;
    an_edit_made_offline_syncs_after_set_online within 30;
    pause_holds_edits_until_resume_and_a_close_drains_them within 30;
}

const T: Duration = Duration::from_secs(10);

/// A session of `id` on the shared epoch 1 (clients of one session's threads share its
/// epoch: a registration would supersede the others).
fn session(rt: &dyn Runtime, server: &Server, id: &str, seed: u64) -> Box<dyn Session> {
    rt.start(
        Opts::new(server.session_url(id), fast_config(id))
            .epoch(1)
            .seed(seed),
    )
}

fn message(id: &str, content: &str, timestamp: u64) -> Message {
    Message::new(id, "user", content, timestamp)
}

/// Every handle's edits on the server, then a pull after all of them answered.
fn flush_all(handles: &[&ThreadHandle]) {
    for _ in 0..2 {
        for handle in handles {
            assert_eq!(handle.flush(T).wait(), Ok(()));
        }
    }
}

pub fn two_sessions_converge_on_a_shared_thread(rt: &dyn Runtime) {
    let server = Server::start(ServerConfig::default()).unwrap();
    let id = "threads-converge";
    let (a, b) = (session(rt, &server, id, 1), session(rt, &server, id, 2));
    let (ta, tb) = (a.threads("a"), b.threads("b"));
    for k in 0..10u64 {
        ta.add_message("t", message(&format!("a{k}"), "from a", 2 * k))
            .unwrap();
        tb.add_message("t", message(&format!("b{k}"), "from b", 2 * k + 1))
            .unwrap();
    }
    ta.set_field("t", "title", Some(json!("shared"))).unwrap();
    flush_all(&[&ta, &tb]);
    assert_eq!(tb.thread("t").unwrap().messages.len(), 20);
    // Each edits the other's messages: a delete and a rewrite.
    tb.delete_message("t", "a3").unwrap();
    ta.update_message("t", message("b5", "rewritten by a", 11))
        .unwrap();
    flush_all(&[&ta, &tb]);

    let stored = server.inspector().threads(id);
    assert_eq!(stored.len(), 1);
    let thread = &stored[0];
    assert_eq!(thread.messages.len(), 19);
    assert!(thread.message("a3").is_none());
    assert!(thread.deleted.contains("a3"));
    assert_eq!(thread.message("b5").unwrap().content, "rewritten by a");
    assert_eq!(thread.fields["title"], "shared");
    for handle in [&ta, &tb] {
        assert_eq!(handle.threads(), stored);
        assert_eq!(handle.status("t"), SyncStatus::Synced);
        assert_eq!(handle.pending(), 0);
    }

    // Closing the session closes its thread sync: nothing is left.
    assert!(a.close(T).all_delivered());
    let report = ta.close(T).wait();
    assert!(report.all_synced(), "{report:?}");
    assert_eq!(report.threads, stored);
    assert!(b.close(T).all_delivered());
    assert!(tb.close(T).wait().all_synced());
}

pub fn an_edit_made_offline_syncs_after_set_online(rt: &dyn Runtime) {
    let server = Server::start(ServerConfig::default()).unwrap();
    let id = "threads-offline";
    let s = session(rt, &server, id, 1);
    let threads = s.threads("offline");
    let mut reports = threads.reports();
    threads.set_online(false);
    reports.read_until(T, &|r| {
        matches!(r, ThreadReport::Offline(OfflineReason::Caller))
    });
    assert!(!threads.is_online());
    threads
        .add_message("t", message("m1", "written offline", 1))
        .unwrap();
    assert_eq!(
        threads.flush(Duration::from_millis(500)).wait(),
        Err(ThreadFlushError::TimedOut)
    );
    assert!(server.inspector().threads(id).is_empty());
    assert_eq!(threads.status("t"), SyncStatus::Pending);

    threads.set_online(true);
    assert_eq!(threads.flush(T).wait(), Ok(()));
    reports.read_until(T, &|r| matches!(r, ThreadReport::Online));
    let stored = server.inspector().threads(id);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].messages[0].content, "written offline");
    assert_eq!(threads.status("t"), SyncStatus::Synced);
    assert!(s.close(T).all_delivered());
    assert!(threads.close(T).wait().all_synced());
}

pub fn pause_holds_edits_until_resume_and_a_close_drains_them(rt: &dyn Runtime) {
    let server = Server::start(ServerConfig::default()).unwrap();
    let id = "threads-pause";
    let s = session(rt, &server, id, 1);
    let threads = s.threads("pauser");
    let mut pending = threads.pending_threads();
    assert_eq!(pending.next_within(T), Some(Ok(Vec::new())));
    threads.pause();
    assert!(threads.is_paused());
    threads.add_message("t", message("m1", "held", 1)).unwrap();
    assert_eq!(threads.sync_now("t"), Ok(true));
    pending.read_until(T, &|p| p == &["t".to_owned()]);
    // Well past the push window: nothing goes while paused.
    thread::sleep(Duration::from_millis(400));
    assert!(server.inspector().threads(id).is_empty());

    threads.resume();
    pending.read_until(T, &|p| p.is_empty());
    assert_eq!(server.inspector().threads(id)[0].messages.len(), 1);

    // A close drains even a paused machine.
    threads.pause();
    threads.add_message("t", message("m2", "held", 2)).unwrap();
    assert!(s.close(T).all_delivered());
    let report = threads.close(T).wait();
    assert!(report.all_synced(), "{report:?}");
    assert_eq!(server.inspector().threads(id)[0].messages.len(), 2);
    assert!(threads.add_message("t", message("m3", "late", 3)).is_err());
    // The streams end with thread sync.
    while let Some(item) = pending.next_within(T) {
        item.expect("the reader kept up");
    }
}
