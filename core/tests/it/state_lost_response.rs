//! A PUT whose response is lost may have landed: the uploader must not assume the server still
//! holds the acknowledged document. Found by the simulator (seed sweeps, hostile mix).

use serde_json::json;
use tether_core::state::{self, Output, StateUploader};
use tether_core::{Instant, Outcome, Poll, Rng, TransientCause};

fn next_put(up: &mut StateUploader) -> Option<(tether_core::state::PutId, Vec<u8>)> {
    loop {
        match up.poll_output() {
            Poll::Output(Output::Send { id, body }) => return Some((id, body)),
            Poll::Output(_) => {}
            Poll::Timeout(_) => return None,
        }
    }
}

#[test]
fn a_revert_after_a_lost_response_is_still_sent() {
    let mut up = StateUploader::new(
        state::Config::default().with_request_timeout(None),
        Rng::new(1),
    );
    let mut now = Instant::ZERO;
    up.set_epoch(now, 1);
    up.enqueue(now, json!({"worker_status": "running"}))
        .unwrap();
    let (id, _) = next_put(&mut up).expect("the first PUT");
    // The server applied it, but the response was lost.
    up.handle_outcome(now, id, Outcome::Transient(TransientCause::Transport));
    // The caller reverts while the uploader waits: the view equals the acknowledged document,
    // yet the server holds "running".
    up.enqueue(now, json!({"worker_status": null})).unwrap();
    now += core::time::Duration::from_secs(2);
    up.handle_timeout(now);
    let (_, body) = next_put(&mut up).expect("the revert must be sent");
    assert_eq!(body, br#"{"worker_epoch":1,"worker_status":null}"#);
}
