#![no_main]
//! Arbitrary inputs to a session: it never panics, never emits anything after a terminal
//! status, and never has two requests in flight on one channel.

use std::collections::BTreeMap;
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::json;
use tether_core::batch::Event;
use tether_core::session::{
    DeliveryStatus, Endpoint, Output, RequestId, Response, Session, SessionConfig, TransportError,
};
use tether_core::{DrainBound, Instant, Poll};

#[derive(Arbitrary, Debug)]
enum Op {
    Event(u16),
    InternalEvent(u8),
    Ack(u8),
    Patch(u8, bool),
    Flush(u16),
    Close(u16),
    /// Answer the n-th outstanding request.
    Respond(u8, Status, Hint),
    Fail(u8),
    /// Answer a request id that may be long settled.
    Stale(u8, Status),
    Advance(u16),
    AdvanceToWake,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Status {
    Ok,
    Code(u16),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Hint {
    None,
    Seconds(u8),
    Date(u8),
    Garbage,
}

fn response(status: Status, hint: Hint, endpoint: Endpoint) -> Response {
    let status = match status {
        Status::Ok => 200,
        Status::Code(c) => c % 600,
    };
    let body: &[u8] = match endpoint {
        Endpoint::Register => br#"{"worker_epoch": 3}"#,
        Endpoint::GetWorker => br#"{"worker": {"worker_status": "idle"}}"#,
        _ => b"{}",
    };
    let date = "Sun, 06 Nov 1994 08:49:37 GMT";
    let (retry_after, date) = match hint {
        Hint::None => (None, None),
        Hint::Seconds(s) => (Some(s.to_string()), None),
        Hint::Date(s) => (
            Some(format!(
                "Sun, 06 Nov 1994 08:{:02}:{:02} GMT",
                49 + s / 60 % 10,
                s % 60
            )),
            Some(date.to_string()),
        ),
        Hint::Garbage => (Some("soon".to_string()), Some("never".to_string())),
    };
    Response {
        status,
        retry_after,
        date,
        body: body.to_vec(),
        truncated: false,
    }
}

fuzz_target!(|input: (bool, Vec<Op>)| {
    let (register, ops) = input;
    let mut config = SessionConfig::new("fuzz");
    config.events.linger = Duration::from_millis(50);
    config.events.max_queue_items = 64;
    config.events.max_batch_items = 16;
    if !register {
        config = config.with_epoch(3);
    }
    let mut now = Instant::ZERO;
    let mut session = Session::new(config, tether_core::Rng::new(7), now).unwrap();
    let mut outstanding: BTreeMap<RequestId, Endpoint> = BTreeMap::new();
    let mut ended = false;
    let mut wake = None;
    let mut seq = 0u64;

    let drain = |session: &mut Session,
                 outstanding: &mut BTreeMap<RequestId, Endpoint>,
                 ended: &mut bool,
                 wake: &mut Option<Instant>| {
        let mut bound = DrainBound::new(Instant::ZERO, 100_000);
        loop {
            match bound.poll(session).expect("the machine livelocked") {
                Poll::Output(out) => {
                    assert!(!*ended, "output after a terminal status: {out:?}");
                    match out {
                        Output::Send(r) => {
                            assert!(
                                !outstanding.values().any(|e| *e == r.endpoint),
                                "two requests in flight on {}",
                                r.endpoint
                            );
                            outstanding.insert(r.id, r.endpoint);
                        }
                        Output::Cancel(id) => {
                            outstanding.remove(&id);
                        }
                        Output::Status(s) => *ended = s.is_terminal(),
                        _ => {}
                    }
                }
                Poll::Timeout(w) => {
                    *wake = w.map(|w| w.at);
                    return;
                }
            }
        }
    };
    drain(&mut session, &mut outstanding, &mut ended, &mut wake);

    for op in ops.into_iter().take(500) {
        match op {
            Op::Event(size) => {
                seq += 1;
                let pad = "x".repeat(usize::from(size % 2048));
                let _ = session.send_event(now, Event::new(json!({"seq": seq, "pad": pad})));
            }
            Op::InternalEvent(k) => {
                let _ = session.send_internal_event(now, Event::new(json!({"k": k})));
            }
            Op::Ack(k) => {
                let _ = session.ack_delivery(now, &format!("e{k}"), DeliveryStatus::Processed);
            }
            Op::Patch(k, reset) => {
                let value = if reset { json!(null) } else { json!({"n": k}) };
                let _ = session.patch_state(now, json!({"external_metadata": {"k": value}}));
            }
            Op::Flush(ms) => {
                let _ = session.flush(now, now + Duration::from_millis(u64::from(ms)));
            }
            Op::Close(ms) => session.close(now, now + Duration::from_millis(u64::from(ms))),
            Op::Respond(n, status, hint) => {
                if let Some((&id, &endpoint)) = outstanding.iter().nth(usize::from(n)) {
                    outstanding.remove(&id);
                    session.handle_response(now, id, response(status, hint, endpoint));
                }
            }
            Op::Fail(n) => {
                if let Some((&id, _)) = outstanding.iter().nth(usize::from(n)) {
                    outstanding.remove(&id);
                    let error = TransportError {
                        message: "reset".into(),
                    };
                    session.handle_transport_error(now, id, &error);
                }
            }
            Op::Stale(id, status) => {
                let id = RequestId(u64::from(id));
                if !outstanding.contains_key(&id) {
                    session.handle_response(
                        now,
                        id,
                        response(status, Hint::None, Endpoint::Events),
                    );
                }
            }
            Op::Advance(ms) => {
                now = now + Duration::from_millis(u64::from(ms));
                session.handle_timeout(now);
            }
            Op::AdvanceToWake => {
                if let Some(at) = wake {
                    now = now.max(at);
                    session.handle_timeout(now);
                }
            }
        }
        drain(&mut session, &mut outstanding, &mut ended, &mut wake);
    }
});
