//! A fleet on one shared transport: sessions given clones of one `HttpTransport` share a pool
//! sized to them, so they reuse their connections instead of opening one per request.
//! Delivery and connection counts are checked, not timing.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::{bounded, fast_config};
use serde_json::json;
use tether_server::{Server, ServerConfig};
use tether_smol::runtime::AsyncTransport;
use tether_smol::{HttpTransport, Status};

const SESSIONS: usize = 200;
const T: Duration = Duration::from_secs(10);

#[test]
fn a_fleet_shares_one_pool_sized_to_it() {
    let server = Server::start(ServerConfig::default()).unwrap();
    let transport = HttpTransport::new(&server.session_url("any")).unwrap();
    // A clone per session, as the docs say.
    fleet_keeps_its_connections(&server, "clones", &|| Arc::new(transport.clone()));
    server.shutdown().unwrap();
}

#[test]
fn a_fleet_sharing_one_arc_keeps_as_many_connections_as_it_uses() {
    let server = Server::start(ServerConfig::default()).unwrap();
    // One clone for all: the pool is sized by the exchanges under way, not to six.
    let shared: Arc<dyn AsyncTransport> =
        Arc::new(HttpTransport::new(&server.session_url("any")).unwrap());
    fleet_keeps_its_connections(&server, "arc", &|| Arc::clone(&shared));
    server.shutdown().unwrap();
}

fn fleet_keeps_its_connections(
    server: &Server,
    prefix: &str,
    transport: &dyn Fn() -> Arc<dyn AsyncTransport>,
) {
    let before = server.inspector().connections().accepted;
    let sessions: Vec<_> = (0..SESSIONS)
        .map(|i| {
            let id = format!("smol-fleet-{prefix}-{i}");
            tether_smol::builder(server.session_url(&id))
                .config(fast_config(&id))
                .epoch(1)
                .seed(i as u64)
                .transport(transport())
                .start()
                .unwrap()
        })
        .collect();
    let round = |k: u64| {
        bounded(Duration::from_secs(30), async {
            let tasks: Vec<_> = sessions
                .iter()
                .cloned()
                .map(|tether| {
                    smol::spawn(async move {
                        for n in 0..5 {
                            tether.send_event(json!({"k": k, "n": n}), T).await.unwrap();
                        }
                        tether.flush(T).await.unwrap();
                    })
                })
                .collect();
            for task in tasks {
                task.await;
            }
        })
    };
    round(0);
    let first = server.inspector().connections().accepted - before;
    round(1);
    round(2);
    let after = server.inspector().connections().accepted - before;
    // Each session needs a connection or two at once; the pool keeps them between rounds (a
    // later round with a higher peak opens a few more; a pool of six opened 377).
    assert!(
        first <= 3 * SESSIONS as u64,
        "{first} connections for the first round"
    );
    assert!(
        after - first <= SESSIONS as u64,
        "{} more connections for two more rounds",
        after - first
    );
    bounded(Duration::from_secs(30), async {
        for tether in &sessions {
            let report = tether.close(T).await;
            assert_eq!(report.status, Status::Closed);
            assert!(report.all_delivered());
        }
    });
    for i in 0..SESSIONS {
        assert_eq!(
            server
                .inspector()
                .events(&format!("smol-fleet-{prefix}-{i}"))
                .len(),
            15
        );
    }
}
