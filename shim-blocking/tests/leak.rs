//! Nothing outlives its session: 500 sessions opened and closed one after another in one
//! process (most flushed and closed, every fifth dropped without a close) leave the process's
//! threads, open fds and memory where they were.
//!
//! Its own test binary, not a module of `it`: it reads process-wide figures, which tests running
//! beside it would move.

use std::time::Duration;

use serde_json::json;
use tether_core::session::{SessionConfig, Status};
use tether_server::{Resources, Server, ServerConfig};

const SESSIONS: usize = 500;
/// Sessions run before the baseline is read, so the server's own pools and the allocator's
/// arenas are warm.
const WARM_UP: usize = 20;
/// Threads or fds above the baseline that still count as flat.
const SLACK: usize = 4;
/// Memory growth that still counts as flat for all the sessions together. A leaked session
/// cost about 415 KiB before this test existed, so 500 of them would be ~200 MiB.
const RSS_SLACK_KIB: u64 = 24 * 1024;

fn one_session(url: &str, n: usize) {
    let tether = tether_blocking::builder(url)
        .config(SessionConfig::new(format!("leak-{n}")))
        .epoch(1)
        .start()
        .unwrap();
    for i in 0..3 {
        tether
            .send_event(json!({"session": n, "i": i}), Duration::from_secs(5))
            .wait()
            .unwrap();
    }
    if n % 5 == 4 {
        drop(tether); // closes on its own, in the background
        return;
    }
    tether.flush(Duration::from_secs(10)).wait().unwrap();
    let report = tether.close(Duration::from_secs(10)).wait();
    assert_eq!(report.status, Status::Closed);
    assert!(report.all_delivered(), "{report:?}");
}

#[test]
fn five_hundred_sessions_leave_threads_fds_and_memory_flat() {
    let server = Server::start(ServerConfig::default()).unwrap();
    let url = |n: usize| server.session_url(&format!("leak-{n}"));
    for n in 0..WARM_UP {
        one_session(&url(n), n);
    }
    let Some(warm) = Resources::now() else {
        eprintln!("skipped: /proc/self cannot be read on this system");
        return;
    };
    let baseline = Resources::settle(warm, 0, Duration::from_secs(10)).unwrap();
    for n in WARM_UP..WARM_UP + SESSIONS {
        one_session(&url(n), n);
    }
    // The dropped sessions close in the background; give them their close, boundedly.
    let after = Resources::settle(baseline, SLACK, Duration::from_secs(20)).unwrap();
    eprintln!("baseline {baseline:?}, after {SESSIONS} sessions {after:?}");
    if let Err(grew) = after.within(baseline, SLACK, RSS_SLACK_KIB) {
        panic!("not flat after {SESSIONS} sessions: {grew}");
    }
    server.shutdown().unwrap();
}
