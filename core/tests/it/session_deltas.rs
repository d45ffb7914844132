//! Deltas through the session: merged within the window, released before any other event of
//! the stream, by a flush and by a close.

use serde_json::{Value, json};
use tether_core::batch::Event;
use tether_core::session::{Endpoint, Output, Response, Session, SessionConfig, Status};
use tether_core::{Instant, Poll, Rng};

/// Drains, answering every request with 200; returns the events bodies sent.
fn pump(session: &mut Session, now: Instant, bodies: &mut Vec<Value>) -> Option<Instant> {
    loop {
        match session.poll_output() {
            Poll::Output(Output::Send(r)) => {
                if r.endpoint == Endpoint::Events {
                    bodies.push(serde_json::from_slice(&r.body).unwrap());
                }
                session.handle_response(now, r.id, Response::new(200, r#"{"worker":{}}"#));
            }
            Poll::Output(_) => {}
            Poll::Timeout(w) => return w.map(|w| w.at),
        }
    }
}

fn texts(bodies: &[Value]) -> Vec<String> {
    bodies
        .iter()
        .flat_map(|b| b["events"].as_array().unwrap().clone())
        .map(|e| {
            let p = &e["payload"];
            p["text"]
                .as_str()
                .map_or_else(|| p["type"].to_string(), str::to_owned)
        })
        .collect()
}

#[test]
fn deltas_merge_in_their_window_and_never_cross_another_event() {
    let mut s = Session::new(
        SessionConfig::new("s").with_epoch(1),
        Rng::new(1),
        Instant::ZERO,
    )
    .unwrap();
    let mut bodies = Vec::new();
    pump(&mut s, Instant::ZERO, &mut bodies);
    let mut now = Instant::ZERO;
    for token in ["He", "ll", "o"] {
        s.send_delta(now, "b0", json!({"type": "delta", "text": token}))
            .unwrap();
        now = now.saturating_add(core::time::Duration::from_millis(10));
        assert!(pump(&mut s, now, &mut bodies).is_some());
    }
    assert!(bodies.is_empty(), "buffered within the window");
    // Another event releases the buffered deltas first.
    s.send_event(now, Event::new(json!({"type": "stop"})))
        .unwrap();
    pump(&mut s, now, &mut bodies);
    assert_eq!(texts(&bodies), ["Hello", "\"stop\""]);

    // The window ends on its own.
    bodies.clear();
    s.send_delta(now, "b1", json!({"text": "a"})).unwrap();
    let at = pump(&mut s, now, &mut bodies).unwrap();
    assert_eq!(
        at,
        now.saturating_add(core::time::Duration::from_millis(100))
    );
    s.handle_timeout(at);
    pump(&mut s, at, &mut bodies);
    assert_eq!(texts(&bodies), ["a"]);

    // A flush and a close include what is buffered.
    bodies.clear();
    s.send_delta(at, "b2", json!({"text": "x"})).unwrap();
    s.flush(at, Instant::MAX).unwrap();
    pump(&mut s, at, &mut bodies);
    s.send_delta(at, "b2", json!({"text": "y"})).unwrap();
    s.close(at, Instant::MAX);
    pump(&mut s, at, &mut bodies);
    assert_eq!(texts(&bodies), ["x", "y"]);
    assert_eq!(s.status(), Status::Closed);
    assert_eq!(s.delta_counters().deltas, 6);
    assert!(s.send_delta(at, "b2", json!({"text": "z"})).is_err());
}
