//! Reconnect after give-up (seed 003): a session configured with `OnGiveUp::Hold` keeps its
//! queues and state in `Status::Holding` until `reconnect` or `close`, in simulated time.

use core::time::Duration;
use std::collections::BTreeSet;

use proptest::prelude::*;
use serde_json::{Value, json};
use tether_core::batch::{Event, EventId, Reason};
use tether_core::session::{
    Endpoint, GiveUpReason, OnGiveUp, Output, ReconnectError, Request, Response, Session,
    SessionConfig, Status, Stream, TransportError,
};
use tether_core::{DrainBound, Instant, Poll, Rng};

/// How the scripted server answers.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// 200 to everything; events are stored by uuid.
    Up,
    /// This status to everything.
    Status(u16),
    /// Connection refused.
    Refused,
    /// Requests are taken but never answered (the caller answers by hand).
    Silent,
}

struct World {
    session: Session,
    now: Instant,
    mode: Mode,
    /// Event uuids in arrival order at the server, duplicates included (only 2xx stores).
    arrivals: Vec<String>,
    /// `worker_status` values the server took, in order.
    puts: Vec<Value>,
    statuses: Vec<Status>,
    outputs: Vec<Output>,
    /// Requests sent while the session held.
    sent_while_holding: usize,
    unanswered: Vec<Request>,
    wake: Option<Instant>,
}

fn uuids(body: &[u8]) -> Vec<String> {
    let body: Value = serde_json::from_slice(body).unwrap();
    body["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .map(|e| e["payload"]["uuid"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

impl World {
    fn new(config: SessionConfig) -> Self {
        let session = Session::new(config, Rng::new(3), Instant::ZERO).unwrap();
        let mut w = World {
            session,
            now: Instant::ZERO,
            mode: Mode::Up,
            arrivals: Vec::new(),
            puts: Vec::new(),
            statuses: Vec::new(),
            outputs: Vec::new(),
            sent_while_holding: 0,
            unanswered: Vec::new(),
            wake: None,
        };
        w.settle();
        w
    }

    fn holding() -> SessionConfig {
        SessionConfig::new("s")
            .with_epoch(5)
            .with_on_give_up(OnGiveUp::Hold)
    }

    /// Drains, answering every request as the mode says, until the session is quiet now.
    fn settle(&mut self) {
        for _ in 0..1_000 {
            let mut requests = Vec::new();
            let mut bound = DrainBound::new(self.now, 100_000);
            loop {
                match bound.poll(&mut self.session).expect("livelock") {
                    Poll::Output(Output::Send(r)) => {
                        if self.session.is_holding() {
                            self.sent_while_holding += 1;
                        }
                        requests.push(r);
                    }
                    Poll::Output(Output::Status(s)) => {
                        assert!(
                            self.statuses.last().is_none_or(|l| !l.is_terminal()),
                            "{s:?} after a terminal status"
                        );
                        self.statuses.push(s);
                    }
                    Poll::Output(o) => self.outputs.push(o),
                    Poll::Timeout(w) => {
                        self.wake = w.map(|w| w.at);
                        break;
                    }
                }
            }
            if requests.is_empty() {
                return;
            }
            for r in requests {
                self.answer(r);
            }
        }
        panic!("the session never settled");
    }

    fn answer(&mut self, r: Request) {
        let now = self.now;
        match self.mode {
            Mode::Silent => self.unanswered.push(r),
            Mode::Refused => {
                let error = TransportError {
                    message: "refused".into(),
                };
                self.session.handle_transport_error(now, r.id, &error);
            }
            Mode::Status(status) => {
                self.session
                    .handle_response(now, r.id, Response::new(status, "{}"))
            }
            Mode::Up => {
                let body = match r.endpoint {
                    Endpoint::GetWorker => r#"{"worker":{"worker_epoch":5}}"#,
                    Endpoint::Register => r#"{"worker_epoch":5}"#,
                    _ => "{}",
                };
                if r.endpoint == Endpoint::Events {
                    self.arrivals.extend(uuids(&r.body));
                }
                if r.endpoint == Endpoint::PutWorker {
                    let body: Value = serde_json::from_slice(&r.body).unwrap();
                    self.puts.push(body["worker_status"].clone());
                }
                self.session
                    .handle_response(now, r.id, Response::new(200, body));
            }
        }
    }

    /// Runs timers (answering as the mode says) until `until`.
    fn run_until(&mut self, until: Instant) {
        self.settle();
        for _ in 0..10_000 {
            match self.wake {
                Some(at) if at <= until => {
                    self.now = self.now.max(at);
                    self.session.handle_timeout(self.now);
                    self.settle();
                }
                _ => {
                    self.now = until;
                    return;
                }
            }
        }
        panic!("too many wake-ups before {until}");
    }

    fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    fn send(&mut self, n: u32) -> EventId {
        let id = self
            .session
            .send_event(self.now, Event::new(json!({ "n": n })))
            .unwrap();
        self.settle();
        id
    }

    fn delivered(&self) -> Vec<EventId> {
        self.outputs
            .iter()
            .filter_map(|o| match o {
                Output::Delivered { events, .. } => Some(events.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    fn handed_back(&self) -> Vec<(Reason, Vec<EventId>)> {
        self.outputs
            .iter()
            .filter_map(|o| match o {
                Output::HandedBack { reason, events, .. } => {
                    Some((*reason, events.iter().map(|u| u.id).collect()))
                }
                _ => None,
            })
            .collect()
    }
}

#[test]
fn hold_keeps_everything_and_reconnect_delivers_each_event_once_with_its_uuid() {
    let mut w = World::new(World::holding());
    assert_eq!(w.session.status(), Status::Connected);
    // The server forgets the session: the first batch gets a 404, which gives up at once.
    w.mode = Mode::Status(404);
    let mut sent: Vec<EventId> = (0..5).map(|n| w.send(n)).collect();
    assert_eq!(
        w.session.status(),
        Status::Holding(GiveUpReason::SessionUnknown)
    );
    assert!(!w.session.status().is_terminal());
    assert!(w.handed_back().is_empty());
    // Still taking events and patches; an hour passes and nothing is sent.
    sent.extend((5..8).map(|n| w.send(n)));
    w.session
        .patch_state(w.now, json!({"worker_status": "busy"}))
        .unwrap();
    w.run_for(Duration::from_secs(3_600));
    assert_eq!(w.sent_while_holding, 0);
    assert_eq!(w.session.uploader_depth(Stream::Events).events, 8);
    assert_eq!(w.session.state_unacknowledged(), 1);
    assert!(w.handed_back().is_empty() && w.delivered().is_empty());

    // Reconnect: the same session connects again and everything lands once, in order.
    w.mode = Mode::Up;
    w.session.reconnect(w.now).unwrap();
    assert_eq!(w.session.status(), Status::Connecting);
    w.run_for(Duration::from_secs(10));
    assert_eq!(w.session.status(), Status::Connected);
    assert_eq!(w.delivered(), sent);
    assert_eq!(w.arrivals.len(), 8);
    assert_eq!(w.arrivals.iter().collect::<BTreeSet<_>>().len(), 8);
    assert!(w.puts.contains(&json!("busy")));
    assert_eq!(w.session.counters().holds, 1);
    assert_eq!(w.session.counters().reconnects, 1);
}

#[test]
fn a_batch_on_the_wire_at_give_up_goes_again_with_the_same_uuids() {
    let mut w = World::new(World::holding());
    w.mode = Mode::Silent;
    let sent: Vec<EventId> = (0..3).map(|n| w.send(n)).collect();
    let batch = w.unanswered.pop().expect("a batch in flight");
    assert_eq!(batch.endpoint, Endpoint::Events);
    // The server stored it, but its answer is lost; meanwhile a patch gets a 404.
    let first = uuids(&batch.body);
    w.arrivals.extend(first.clone());
    w.session.patch_state(w.now, json!({"a": 1})).unwrap();
    w.settle();
    let put = w.unanswered.pop().expect("a PUT in flight");
    w.session
        .handle_response(w.now, put.id, Response::new(404, "{}"));
    w.settle();
    assert!(w.session.is_holding());
    assert!(w.outputs.contains(&Output::Cancel(batch.id)));
    // A late answer to the cancelled batch is ignored.
    w.session
        .handle_response(w.now, batch.id, Response::new(200, "{}"));
    w.settle();
    assert!(w.delivered().is_empty());

    w.mode = Mode::Up;
    w.session.reconnect(w.now).unwrap();
    w.run_for(Duration::from_secs(10));
    assert_eq!(w.delivered(), sent);
    // Sent twice on the wire, the same uuids: the server de-duplicates to exactly once.
    assert_eq!(w.arrivals[first.len()..2 * first.len()], first[..]);
    assert_eq!(w.arrivals.len(), 3 + first.len());
    assert_eq!(w.arrivals.iter().collect::<BTreeSet<_>>().len(), 3);
    assert_eq!(w.session.state_unacknowledged(), 0);
}

#[test]
fn close_from_holding_hands_everything_back_at_once() {
    let mut w = World::new(World::holding());
    w.mode = Mode::Status(404);
    let sent: Vec<EventId> = (0..4).map(|n| w.send(n)).collect();
    w.session
        .patch_state(w.now, json!({"worker_status": "busy"}))
        .unwrap();
    w.settle();
    assert!(w.session.is_holding());
    w.session.close(w.now, w.now + Duration::from_secs(30));
    w.settle();
    assert_eq!(
        w.session.status(),
        Status::GivenUp(GiveUpReason::SessionUnknown)
    );
    assert_eq!(w.handed_back(), [(Reason::GivenUp, sent)]);
    assert!(
        w.outputs
            .iter()
            .any(|o| matches!(o, Output::StateUnacknowledged(u) if !u.update.is_empty()))
    );
    assert_eq!(w.sent_while_holding, 0);
    assert_eq!(
        w.session.reconnect(w.now),
        Err(ReconnectError::Ended(Status::GivenUp(
            GiveUpReason::SessionUnknown
        )))
    );
}

#[test]
fn superseded_stays_terminal_and_reconnect_says_why() {
    let mut w = World::new(World::holding());
    assert_eq!(
        w.session.reconnect(w.now),
        Err(ReconnectError::NotHolding(Status::Connected))
    );
    w.mode = Mode::Status(409);
    let id = w.send(0);
    assert_eq!(w.session.status(), Status::Superseded);
    assert_eq!(w.handed_back(), [(Reason::Superseded, vec![id])]);
    assert_eq!(
        w.session.reconnect(w.now),
        Err(ReconnectError::Ended(Status::Superseded))
    );
}

#[test]
fn a_connect_that_gives_up_holds_and_reconnect_resets_the_counters() {
    let config = World::holding();
    let mut w = World {
        mode: Mode::Refused,
        ..World::new_silent(config)
    };
    let sent: Vec<EventId> = (0..2).map(|n| w.send(n)).collect();
    w.run_for(Duration::from_secs(120));
    // Six retries after 1, 2, 4, 8, 16, 30 s; the seventh failure gives up (at 61 s).
    let reason = GiveUpReason::AttemptsExhausted { failures: 7 };
    assert_eq!(w.session.status(), Status::Holding(reason));
    // Reconnect with the server still down: a fresh episode, the same six retries.
    let at = w.now;
    w.session.reconnect(at).unwrap();
    w.run_for(Duration::from_secs(60));
    assert!(matches!(
        w.session.status(),
        Status::Retrying { attempt: 6, .. }
    ));
    w.run_for(Duration::from_secs(2));
    assert_eq!(w.session.status(), Status::Holding(reason));
    // Then the server comes back.
    w.mode = Mode::Up;
    w.session.reconnect(w.now).unwrap();
    w.run_for(Duration::from_secs(5));
    assert_eq!(w.delivered(), sent);
    assert!(w.handed_back().is_empty());
    assert_eq!(w.session.counters().reconnects, 2);
}

#[test]
fn without_hold_giving_up_ends_and_hands_back_as_before() {
    let mut w = World::new(SessionConfig::new("s").with_epoch(5));
    w.mode = Mode::Status(404);
    let id = w.send(0);
    assert_eq!(
        w.session.status(),
        Status::GivenUp(GiveUpReason::SessionUnknown)
    );
    assert_eq!(w.handed_back(), [(Reason::GivenUp, vec![id])]);
    assert!(matches!(
        w.session.reconnect(w.now),
        Err(ReconnectError::Ended(_))
    ));
}

impl World {
    /// A session whose first requests are answered by the mode set afterwards.
    fn new_silent(config: SessionConfig) -> Self {
        let session = Session::new(config, Rng::new(3), Instant::ZERO).unwrap();
        World {
            session,
            now: Instant::ZERO,
            mode: Mode::Refused,
            arrivals: Vec::new(),
            puts: Vec::new(),
            statuses: Vec::new(),
            outputs: Vec::new(),
            sent_while_holding: 0,
            unanswered: Vec::new(),
            wake: None,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Send,
    Patch,
    Mode(Mode),
    Advance(u16),
    Reconnect,
}

fn op() -> impl Strategy<Value = Op> {
    let mode = prop_oneof![
        Just(Mode::Up),
        Just(Mode::Status(404)),
        Just(Mode::Status(401)),
        Just(Mode::Status(503)),
        Just(Mode::Refused),
    ];
    prop_oneof![
        4 => Just(Op::Send),
        1 => Just(Op::Patch),
        2 => mode.prop_map(Op::Mode),
        3 => (0u16..60_000).prop_map(Op::Advance),
        2 => Just(Op::Reconnect),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// With `Hold`, whatever the server does (short of a supersede or a refusal for good), no
    /// event is ever handed back and the session never ends before the caller closes it;
    /// nothing is sent while holding; once the server is up and the caller reconnected,
    /// every event is delivered exactly once.
    #[test]
    fn with_hold_nothing_is_handed_back_before_close(ops in prop::collection::vec(op(), 1..40)) {
        let mut w = World::new_silent(World::holding());
        w.mode = Mode::Up;
        w.settle();
        let mut sent = Vec::new();
        for (n, op) in ops.into_iter().enumerate() {
            match op {
                Op::Send => sent.push(w.send(n as u32)),
                Op::Patch => {
                    w.session.patch_state(w.now, json!({ "n": n })).unwrap();
                    w.settle();
                }
                Op::Mode(mode) => w.mode = mode,
                Op::Advance(ms) => w.run_for(Duration::from_millis(u64::from(ms))),
                Op::Reconnect => {
                    let holding = w.session.is_holding();
                    prop_assert_eq!(w.session.reconnect(w.now).is_ok(), holding);
                    w.settle();
                }
            }
            prop_assert!(w.handed_back().is_empty(), "{:?}", w.handed_back());
            prop_assert!(!w.session.status().is_terminal());
            prop_assert_eq!(w.sent_while_holding, 0);
        }
        w.mode = Mode::Up;
        if w.session.is_holding() {
            w.session.reconnect(w.now).unwrap();
        }
        w.run_for(Duration::from_secs(120));
        prop_assert_eq!(w.session.status(), Status::Connected);
        let delivered = w.delivered();
        prop_assert_eq!(delivered.len(), sent.len());
        prop_assert_eq!(delivered.iter().collect::<BTreeSet<_>>(), sent.iter().collect::<BTreeSet<_>>());
        let unique: BTreeSet<_> = w.arrivals.iter().collect();
        prop_assert_eq!(unique.len(), sent.len());
        w.session.close(w.now, w.now + Duration::from_secs(10));
        w.run_for(Duration::from_secs(11));
        prop_assert_eq!(w.session.status(), Status::Closed);
        prop_assert!(w.handed_back().is_empty());
    }
}
