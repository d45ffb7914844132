//! Reconnect after give-up (seed 003), end to end: a session configured to hold keeps what it
//! was given while the server is unreachable, and `reconnect()` on the same handle delivers it
//! all once the server is back, nothing re-sent by the caller.

use std::time::Duration;

use serde_json::json;
use tether_blocking::{OnGiveUp, ReconnectError, SessionConfig, Status};
use tether_server::{Server, ServerConfig};

use crate::common::{fast_config, within};

fn holding(status: &Status) -> bool {
    matches!(status, Status::Holding(_))
}

fn config(session: &str, retries: u32) -> SessionConfig {
    let mut config = fast_config().with_on_give_up(OnGiveUp::Hold);
    config.session_id = session.into();
    config.connect.max_attempts = Some(retries);
    config
}

#[test]
fn a_held_session_delivers_everything_once_after_reconnect() {
    within(Duration::from_secs(60), || {
        let server = Server::start(ServerConfig::default()).unwrap();
        server.stop_listener().unwrap();
        let url = server.session_url("held");
        let tether = tether_blocking::builder(&url)
            .epoch(1)
            .config(config("held", 2))
            .start()
            .unwrap();
        let statuses = tether.statuses();
        // Sent while the server is unreachable: accepted and queued.
        for seq in 0..20 {
            tether
                .send_event(json!({"seq": seq}), Duration::from_secs(5))
                .wait()
                .unwrap();
        }
        tether
            .patch_state(json!({"worker_status": "held"}))
            .unwrap();
        let seen: Vec<Status> = statuses
            .iter()
            .map(Result::unwrap)
            .take_while(|s| !holding(s))
            .collect();
        assert!(!seen.iter().any(Status::is_terminal), "{seen:?}");
        assert!(
            holding(&tether.status()),
            "gave up and holds: {}",
            tether.status()
        );
        // Holding is not the end: nothing was handed back.
        assert!(tether.reports().try_iter().next().is_none());
        // It stays held, however long: nothing is sent until the caller says so.
        std::thread::sleep(Duration::from_millis(300));
        assert!(holding(&tether.status()));

        server.restart_listener().unwrap();
        tether.reconnect().unwrap();
        tether.flush(Duration::from_secs(10)).wait().unwrap();
        let events = server.inspector().events("held");
        let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert_eq!(
            seqs,
            (0..20).collect::<Vec<_>>(),
            "every event once, in order"
        );
        assert_eq!(
            server.inspector().document("held").unwrap()["worker_status"],
            "held"
        );
        assert_eq!(tether.counters().session.reconnects, 1);
        let report = tether.close(Duration::from_secs(5)).wait();
        assert!(report.all_delivered(), "{report:?}");
        assert_eq!(
            tether.reconnect(),
            Err(ReconnectError::Ended(Status::Closed)),
            "closed is terminal"
        );
        server.shutdown().unwrap();
    });
}

#[test]
fn closing_a_held_session_hands_everything_back() {
    within(Duration::from_secs(60), || {
        let server = Server::start(ServerConfig::default()).unwrap();
        server.stop_listener().unwrap();
        let tether = tether_blocking::builder(server.session_url("dropped"))
            .epoch(1)
            .config(config("dropped", 1))
            .start()
            .unwrap();
        let statuses = tether.statuses();
        tether
            .send_event(json!({"n": 1}), Duration::from_secs(5))
            .wait()
            .unwrap();
        assert!(statuses.iter().map(Result::unwrap).any(|s| holding(&s)));
        let report = tether.close(Duration::from_secs(5)).wait();
        assert!(matches!(report.status, Status::GivenUp(_)), "{report:?}");
        assert_eq!(
            report.undelivered.len(),
            1,
            "handed back at close: {report:?}"
        );
        assert!(matches!(tether.reconnect(), Err(ReconnectError::Ended(_))));
        server.shutdown().unwrap();
    });
}
