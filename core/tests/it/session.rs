//! The session machine: every row of the response table and every status transition, with a
//! scripted server in simulated time.

use core::time::Duration;
use std::collections::VecDeque;

use serde_json::{Value, json};
use tether_core::batch::{Event, Reason};
use tether_core::session::{
    Endpoint, GiveUpReason, Output, Request, Response, Session, SessionConfig, Status, Stream,
    TransportError,
};
use tether_core::{DrainBound, Instant, Poll};

/// The most outputs one drain may yield before the test calls it a livelock.
const DRAIN_BOUND: usize = 100_000;
/// The most rounds of any loop that waits for the session to get somewhere.
const ROUNDS: usize = 1_000;

/// Drives a session by hand: collects outputs, hands out requests, moves time.
struct Harness {
    session: Session,
    now: Instant,
    requests: VecDeque<Request>,
    statuses: Vec<Status>,
    outputs: Vec<Output>,
    wake: Option<Instant>,
}

impl Harness {
    fn new(config: SessionConfig) -> Self {
        Self::seeded(config, 1)
    }

    fn seeded(config: SessionConfig, seed: u64) -> Self {
        let session =
            Session::new(config, tether_core::Rng::new(seed), Instant::ZERO).expect("valid config");
        let mut h = Harness {
            session,
            now: Instant::ZERO,
            requests: VecDeque::new(),
            statuses: Vec::new(),
            outputs: Vec::new(),
            wake: None,
        };
        h.drain();
        h
    }

    /// A session with epoch 5, connected against an empty document.
    fn connected() -> Self {
        Self::connected_with(SessionConfig::new("s").with_epoch(5))
    }

    /// Connected, with a linger window so that events sent together form one batch.
    fn lingering() -> Self {
        let mut config = SessionConfig::new("s").with_epoch(5);
        config.events.linger = Duration::from_millis(100);
        Self::connected_with(config)
    }

    fn connected_with(config: SessionConfig) -> Self {
        Self::connected_seeded(config, 1)
    }

    fn connected_seeded(config: SessionConfig, seed: u64) -> Self {
        let mut h = Harness::seeded(config, seed);
        let init = h.expect(Endpoint::PutWorker);
        h.respond(&init, 200, "{}");
        let get = h.expect(Endpoint::GetWorker);
        h.respond(
            &get,
            200,
            r#"{"worker":{"worker_epoch":5,"worker_status":"idle"}}"#,
        );
        assert_eq!(h.session.status(), Status::Connected);
        h
    }

    fn drain(&mut self) {
        let mut bound = DrainBound::new(self.now, DRAIN_BOUND);
        loop {
            match bound
                .poll(&mut self.session)
                .expect("the machine livelocked")
            {
                Poll::Output(Output::Send(r)) => self.requests.push_back(r),
                Poll::Output(Output::Status(s)) => {
                    assert!(
                        self.statuses.last().is_none_or(|l| !l.is_terminal()),
                        "a status after a terminal one: {s:?}"
                    );
                    self.statuses.push(s);
                }
                Poll::Output(o) => {
                    assert!(
                        self.statuses.last().is_none_or(|l| !l.is_terminal()),
                        "an output after a terminal status: {o:?}"
                    );
                    self.outputs.push(o);
                }
                Poll::Timeout(w) => {
                    self.wake = w.map(|w| w.at);
                    return;
                }
            }
        }
    }

    fn expect(&mut self, endpoint: Endpoint) -> Request {
        let r = self
            .requests
            .pop_front()
            .unwrap_or_else(|| panic!("expected {endpoint}, nothing was sent"));
        assert_eq!(r.endpoint, endpoint, "{r:?}");
        r
    }

    fn respond(&mut self, r: &Request, status: u16, body: &str) {
        self.respond_with(r, Response::new(status, body));
    }

    fn respond_with(&mut self, r: &Request, response: Response) {
        self.session.handle_response(self.now, r.id, response);
        self.drain();
    }

    fn advance(&mut self) {
        let at = self.wake.expect("something scheduled");
        self.advance_to(at);
    }

    fn advance_to(&mut self, at: Instant) {
        self.now = self.now.max(at);
        self.session.handle_timeout(self.now);
        self.drain();
    }

    fn send_events(&mut self, n: usize) {
        for i in 0..n {
            self.session
                .send_event(self.now, Event::new(json!({"seq": i})))
                .unwrap();
        }
        self.drain();
    }

    fn handed_back(&self) -> Vec<(Stream, Reason, usize)> {
        self.outputs
            .iter()
            .filter_map(|o| match o {
                Output::HandedBack {
                    stream,
                    reason,
                    events,
                } => Some((*stream, *reason, events.len())),
                _ => None,
            })
            .collect()
    }

    fn delivered(&self) -> usize {
        self.outputs
            .iter()
            .map(|o| match o {
                Output::Delivered { events, .. } => events.len(),
                _ => 0,
            })
            .sum()
    }
}

fn body(r: &Request) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

#[test]
fn registers_then_puts_idle_then_gets_the_document() {
    let mut h = Harness::new(SessionConfig::new("s"));
    let reg = h.expect(Endpoint::Register);
    assert_eq!(body(&reg), json!({}));
    h.respond(&reg, 200, r#"{"worker_epoch": 9}"#);
    let init = h.expect(Endpoint::PutWorker);
    assert_eq!(
        body(&init),
        json!({"worker_epoch": 9, "worker_status": "idle"})
    );
    h.respond(&init, 200, "{}");
    let get = h.expect(Endpoint::GetWorker);
    assert!(get.body.is_empty());
    h.respond(
        &get,
        200,
        r#"{"worker":{"worker_epoch":9,"worker_status":"idle","external_metadata":{"a":1}}}"#,
    );
    assert_eq!(h.statuses, [Status::Connecting, Status::Connected]);
    assert_eq!(h.session.epoch(), Some(9));
    assert_eq!(
        h.session.state_view(),
        &json!({"worker_status": "idle", "external_metadata": {"a": 1}})
    );
}

#[test]
fn every_body_carries_the_epoch() {
    let mut h = Harness::connected();
    h.send_events(1);
    h.session
        .patch_state(h.now, json!({"worker_status": "running"}))
        .unwrap();
    h.session
        .ack_delivery(h.now, "e1", tether_core::session::DeliveryStatus::Received)
        .unwrap();
    h.drain();
    h.advance_to(Instant::from_secs(20)); // the first heartbeat
    let mut seen = Vec::new();
    for _ in 0..ROUNDS {
        let Some(r) = h.requests.pop_front() else {
            break;
        };
        assert_eq!(body(&r)["worker_epoch"], json!(5), "{r:?}");
        seen.push(r.endpoint);
        h.respond(&r, 200, "{}");
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            Endpoint::PutWorker,
            Endpoint::Heartbeat,
            Endpoint::Events,
            Endpoint::Delivery
        ]
    );
}

#[test]
fn the_heartbeat_body_names_the_session() {
    let mut h = Harness::connected();
    h.advance_to(Instant::from_secs(20));
    let beat = h.expect(Endpoint::Heartbeat);
    assert_eq!(body(&beat), json!({"session_id": "s", "worker_epoch": 5}));
    assert_eq!(
        beat.deadline,
        Instant::from_secs(25),
        "heartbeats have a 5 s deadline"
    );
}

#[test]
fn success_delivers_and_resets() {
    let mut h = Harness::lingering();
    h.send_events(3);
    h.advance(); // the linger window
    let batch = h.expect(Endpoint::Events);
    assert_eq!(body(&batch)["events"].as_array().unwrap().len(), 3);
    assert_eq!(batch.deadline, h.now + Duration::from_secs(10));
    h.respond(&batch, 204, "");
    assert_eq!(h.delivered(), 3);
}

#[test]
fn conflict_supersedes_and_hands_back_every_stream() {
    let mut h = Harness::connected();
    h.send_events(3);
    h.session
        .send_internal_event(h.now, Event::new(json!({"k": 1})))
        .unwrap();
    h.drain();
    let batch = h.expect(Endpoint::Events);
    h.respond(&batch, 409, "");
    assert_eq!(h.statuses.last(), Some(&Status::Superseded));
    let mut back = h.handed_back();
    back.sort_by_key(|b| b.0);
    assert_eq!(
        back,
        [
            (Stream::Events, Reason::Superseded, 3),
            (Stream::InternalEvents, Reason::Superseded, 1)
        ]
    );
    // The internal-events request in flight was cancelled, and nothing more is sent.
    assert!(h.outputs.iter().any(|o| matches!(o, Output::Cancel(_))));
    h.requests.clear();
    h.advance_to(Instant::from_secs(1_000));
    assert!(h.requests.is_empty());
    assert_eq!(h.wake, None);
    assert!(h.session.send_event(h.now, Event::new(json!({}))).is_err());
    assert!(
        h.session
            .flush(h.now, h.now + Duration::from_secs(1))
            .is_err()
    );
    h.drain(); // asserts that nothing follows the terminal status
}

#[test]
fn ten_auth_failures_in_a_row_across_channels_give_up() {
    let mut h = Harness::connected();
    h.send_events(1);
    h.session
        .patch_state(h.now, json!({"worker_status": "busy"}))
        .unwrap();
    h.drain();
    let mut failures = 0;
    for _ in 0..ROUNDS {
        if failures == 10 {
            break;
        }
        if let Some(r) = h.requests.pop_front() {
            failures += 1;
            h.respond(&r, if failures % 2 == 0 { 401 } else { 403 }, "");
        } else {
            h.advance();
        }
        if failures < 10 {
            assert!(
                !h.session.status().is_terminal(),
                "gave up after {failures}"
            );
        }
    }
    assert_eq!(
        h.statuses.last(),
        Some(&Status::GivenUp(GiveUpReason::AuthFailures(10)))
    );
    assert_eq!(h.handed_back(), [(Stream::Events, Reason::GivenUp, 1)]);
    assert!(
        h.outputs
            .iter()
            .any(|o| matches!(o, Output::StateUnacknowledged(_)))
    );
}

#[test]
fn a_success_resets_the_auth_failure_count() {
    let mut h = Harness::connected();
    for round in 0..3 {
        for _ in 0..9 {
            h.send_events(1);
            let r = h.expect(Endpoint::Events);
            h.respond(&r, 401, "");
            h.advance();
            let retry = h.expect(Endpoint::Events);
            h.respond(&retry, 200, "");
        }
        assert!(!h.session.status().is_terminal(), "round {round}");
    }
}

#[test]
fn not_found_gives_up_at_once() {
    let mut h = Harness::connected();
    h.send_events(2);
    let r = h.expect(Endpoint::Events);
    h.respond(&r, 404, "");
    assert_eq!(
        h.statuses.last(),
        Some(&Status::GivenUp(GiveUpReason::SessionUnknown))
    );
    assert_eq!(h.handed_back(), [(Stream::Events, Reason::GivenUp, 2)]);
}

#[test]
fn not_found_can_be_configured_transient() {
    let mut config = SessionConfig::new("s").with_epoch(5);
    config.session_unknown_is_transient = true;
    let mut h = Harness::connected_with(config);
    h.send_events(1);
    let r = h.expect(Endpoint::Events);
    h.respond(&r, 404, "");
    assert!(matches!(
        h.session.status(),
        Status::Retrying { attempt: 1, .. }
    ));
    h.advance();
    let retry = h.expect(Endpoint::Events);
    h.respond(&retry, 200, "");
    assert_eq!(h.session.status(), Status::Connected);
    assert_eq!(h.delivered(), 1);
}

#[test]
fn throttled_waits_for_the_hint_in_both_forms() {
    for (retry_after, date, expected) in [
        ("7", None, 7.0),
        (
            "Sun, 06 Nov 1994 08:49:49 GMT",
            Some("Sun, 06 Nov 1994 08:49:37 GMT"),
            12.0,
        ),
    ] {
        let mut h = Harness::connected();
        h.send_events(1);
        let r = h.expect(Endpoint::Events);
        h.respond_with(
            &r,
            Response {
                status: 429,
                retry_after: Some(retry_after.into()),
                date: date.map(Into::into),
                ..Response::default()
            },
        );
        let Status::Retrying { at, .. } = h.session.status() else {
            panic!("{:?}", h.session.status())
        };
        let wait = at.saturating_duration_since(h.now).as_secs_f64();
        // The hint plus the uploaders' jitter of [0, 500 ms).
        assert!(
            wait >= expected && wait < expected + 0.5,
            "{retry_after}: {wait}"
        );
        h.advance_to(at);
        let retry = h.expect(Endpoint::Events);
        h.respond(&retry, 200, "");
        assert_eq!(h.delivered(), 1);
    }
}

#[test]
fn transient_statuses_retry_with_the_uploaders_backoff() {
    for status in [408, 429, 500, 502, 503, 504] {
        let mut h = Harness::connected();
        h.send_events(1);
        let mut waits = Vec::new();
        for _ in 0..3 {
            let r = h.expect(Endpoint::Events);
            h.respond(&r, status, "");
            let Status::Retrying { at, .. } = h.session.status() else {
                panic!("{status}: {:?}", h.session.status())
            };
            waits.push(at.saturating_duration_since(h.now).as_millis());
            h.advance_to(at);
        }
        // 500 ms, 1 s, 2 s, each plus [0, 500 ms) of jitter.
        for (wait, base) in waits.iter().zip([500, 1000, 2000]) {
            assert!(*wait >= base && *wait < base + 500, "{status}: {waits:?}");
        }
        let r = h.expect(Endpoint::Events);
        h.respond(&r, 200, "");
        assert_eq!(h.delivered(), 1, "{status}");
        assert_eq!(h.session.status(), Status::Connected);
    }
}

#[test]
fn too_large_splits_the_batch_and_a_single_event_becomes_a_dead_letter() {
    let mut h = Harness::lingering();
    h.send_events(4);
    h.advance();
    let r = h.expect(Endpoint::Events);
    h.respond(&r, 413, "");
    let half = h.expect(Endpoint::Events);
    assert_eq!(body(&half)["events"].as_array().unwrap().len(), 2);
    h.respond(&half, 413, "");
    let one = h.expect(Endpoint::Events);
    assert_eq!(body(&one)["events"].as_array().unwrap().len(), 1);
    h.respond(&one, 413, "");
    assert_eq!(h.handed_back(), [(Stream::Events, Reason::TooLarge, 1)]);
    assert!(!h.session.status().is_terminal());
}

#[test]
fn permanent_statuses_make_dead_letters_and_roll_back_state() {
    for status in [400, 410, 422, 501, 505] {
        let mut h = Harness::lingering();
        h.send_events(2);
        h.advance();
        let r = h.expect(Endpoint::Events);
        h.respond(&r, status, "");
        assert_eq!(
            h.handed_back(),
            [(Stream::Events, Reason::Rejected { status }, 2)],
            "{status}"
        );
        h.session
            .patch_state(h.now, json!({"worker_status": "bad"}))
            .unwrap();
        h.drain();
        assert_eq!(h.session.state_view()["worker_status"], json!("bad"));
        let put = h.expect(Endpoint::PutWorker);
        h.respond(&put, status, "");
        assert!(
            h.outputs
                .iter()
                .any(|o| matches!(o, Output::StateRejected(r) if r.status == status))
        );
        assert_eq!(
            h.session.state_view()["worker_status"],
            json!("idle"),
            "rolled back"
        );
        assert_eq!(h.session.status(), Status::Connected);
    }
}

#[test]
fn transport_errors_and_timeouts_retry_and_late_responses_are_ignored() {
    let mut h = Harness::connected();
    h.send_events(1);
    let r = h.expect(Endpoint::Events);
    h.session.handle_transport_error(
        h.now,
        r.id,
        &TransportError {
            message: "reset".into(),
        },
    );
    h.drain();
    assert!(matches!(h.session.status(), Status::Retrying { .. }));
    h.advance();
    let retry = h.expect(Endpoint::Events);
    // No answer: the core fails the request at its deadline and cancels it.
    h.advance_to(retry.deadline);
    assert!(h.outputs.contains(&Output::Cancel(retry.id)));
    assert_eq!(h.session.counters().failures.timeouts, 1);
    // The answer arrives late: ignored.
    h.respond(&retry, 200, "");
    assert_eq!(h.delivered(), 0);
    assert_eq!(h.session.counters().late_replies, 1);
    h.advance();
    let again = h.expect(Endpoint::Events);
    h.respond(&again, 200, "");
    assert_eq!(h.delivered(), 1);
}

#[test]
fn an_unreadable_body_is_transient() {
    let mut h = Harness::new(SessionConfig::new("s").with_epoch(5));
    let init = h.expect(Endpoint::PutWorker);
    h.respond(&init, 200, "{}");
    let get = h.expect(Endpoint::GetWorker);
    h.respond(&get, 200, "<html>not json</html>");
    assert!(matches!(
        h.session.status(),
        Status::Retrying { attempt: 1, .. }
    ));
    assert_eq!(h.session.counters().failures.bad_body, 1);
    h.advance();
    // The connect sequence resumes where it failed.
    let get = h.expect(Endpoint::GetWorker);
    h.respond_with(
        &get,
        Response {
            status: 200,
            body: br#"{"worker":{}}"#.to_vec(),
            truncated: true,
            ..Response::default()
        },
    );
    assert_eq!(
        h.session.counters().failures.bad_body,
        2,
        "a truncated body is bad"
    );
    h.advance();
    let get = h.expect(Endpoint::GetWorker);
    h.respond(&get, 200, r#"{"worker":{}}"#);
    assert_eq!(h.session.status(), Status::Connected);
}

#[test]
fn connect_failures_follow_the_reconnect_curve_then_give_up() {
    let mut h = Harness::new(SessionConfig::new("s"));
    let mut waits = Vec::new();
    for _ in 0..ROUNDS {
        let r = h.expect(Endpoint::Register);
        h.respond(&r, 503, "");
        match h.session.status() {
            Status::Retrying { at, attempt } => {
                assert_eq!(attempt as usize, waits.len() + 1);
                waits.push(at.saturating_duration_since(h.now).as_secs());
                h.advance_to(at);
            }
            Status::GivenUp(reason) => {
                assert!(matches!(
                    reason,
                    GiveUpReason::AttemptsExhausted { .. }
                        | GiveUpReason::DeadlineExceeded
                        | GiveUpReason::Rejected(_)
                ));
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(waits, [1, 2, 4, 8, 16, 30]);
}

#[test]
fn status_goes_stale_when_heartbeats_fail_and_live_again() {
    let mut h = Harness::connected();
    let mut last_status_len = h.statuses.len();
    // Heartbeats at 20, 40, 60 s fail; at 60 s no beat succeeded within the 60 s TTL.
    for _ in 0..3 {
        h.advance();
        if let Some(r) = h.requests.pop_front() {
            assert_eq!(r.endpoint, Endpoint::Heartbeat);
            h.respond(&r, 500, "");
        }
    }
    for _ in 0..ROUNDS {
        if h.session.status() == Status::Stale {
            break;
        }
        h.advance();
        if let Some(r) = h.requests.pop_front() {
            h.respond(&r, 500, "");
        }
        assert!(h.now < Instant::from_secs(200), "never went stale");
    }
    assert!(h.statuses[last_status_len..].contains(&Status::Stale));
    last_status_len = h.statuses.len();
    for _ in 0..ROUNDS {
        h.advance();
        if let Some(r) = h.requests.pop_front() {
            h.respond(&r, 200, "");
            break;
        }
    }
    assert_eq!(&h.statuses[last_status_len..], [Status::Connected]);
}

#[test]
fn close_drains_then_ends_closed() {
    let mut h = Harness::connected();
    h.send_events(3);
    h.session
        .patch_state(h.now, json!({"worker_status": "done"}))
        .unwrap();
    h.drain();
    h.session.close(h.now, h.now + Duration::from_secs(5));
    h.drain();
    for _ in 0..ROUNDS {
        let Some(r) = h.requests.pop_front() else {
            break;
        };
        h.respond(&r, 200, "{}");
    }
    assert_eq!(h.statuses.last(), Some(&Status::Closed));
    assert_eq!(h.delivered(), 3);
    assert!(h.handed_back().is_empty());
    assert_eq!(h.wake, None);
}

#[test]
fn close_with_the_server_down_hands_everything_back_at_the_deadline() {
    let mut h = Harness::connected();
    h.send_events(5);
    h.session
        .patch_state(h.now, json!({"worker_status": "done"}))
        .unwrap();
    h.drain();
    let deadline = h.now + Duration::from_secs(3);
    h.session.close(h.now, deadline);
    h.drain();
    // Every request fails; time runs to the close deadline.
    for _ in 0..ROUNDS {
        for _ in 0..ROUNDS {
            let Some(r) = h.requests.pop_front() else {
                break;
            };
            h.session.handle_transport_error(
                h.now,
                r.id,
                &TransportError {
                    message: "refused".into(),
                },
            );
            h.drain();
        }
        if h.session.status().is_terminal() {
            break;
        }
        h.advance();
    }
    assert_eq!(h.statuses.last(), Some(&Status::Closed));
    assert!(h.now <= deadline, "closed at {} after the deadline", h.now);
    assert_eq!(h.handed_back(), [(Stream::Events, Reason::Closed, 5)]);
    assert!(
        h.outputs
            .iter()
            .any(|o| matches!(o, Output::StateUnacknowledged(u) if !u.update.is_empty()))
    );
}

/// The session's request channels (docs/ARCHITECTURE.md §Session: at most one request in flight on each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Channel {
    /// Register, the init `PUT` and the `GET`.
    Connect,
    Heartbeat,
    Events,
    InternalEvents,
    Delivery,
    /// State `PUT`s once connected.
    State,
}

impl Channel {
    const ALL: [Channel; 6] = [
        Channel::Connect,
        Channel::Heartbeat,
        Channel::Events,
        Channel::InternalEvents,
        Channel::Delivery,
        Channel::State,
    ];

    /// The channel of a request to `endpoint`; a `PUT /worker` is the connect sequence's until
    /// the connect sequence is done.
    fn of(endpoint: Endpoint, connected: bool) -> Channel {
        match endpoint {
            Endpoint::Register | Endpoint::GetWorker => Channel::Connect,
            Endpoint::PutWorker if !connected => Channel::Connect,
            Endpoint::PutWorker => Channel::State,
            Endpoint::Heartbeat => Channel::Heartbeat,
            Endpoint::Events => Channel::Events,
            Endpoint::InternalEvents => Channel::InternalEvents,
            Endpoint::Delivery => Channel::Delivery,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[test]
fn at_most_one_request_in_flight_per_channel() {
    // A workload over every channel at once: a session that registers, then events, internal
    // events, delivery acks and state patches arriving while earlier requests are unanswered,
    // heartbeats on their timer, answers in any order (successes, 5xx, 429, transport errors,
    // none at all until the deadline), and late answers to cancelled requests.
    let mut h = Harness::new(SessionConfig::new("s"));
    let mut rng = tether_core::Rng::new(2024);
    let mut connected = false;
    // What the test itself saw sent and not yet settled, by channel.
    let mut outstanding: [Option<Request>; 6] = Default::default();
    let mut cancelled: Vec<Request> = Vec::new();
    let mut seen_in_flight = [false; 6];
    let mut sends = [0usize; 6];
    // Work given to a channel while its request was in flight: the case the rule is about.
    let mut contended = [0usize; 6];
    let mut seen_outputs = 0;

    let mut track = |h: &mut Harness,
                     connected: bool,
                     outstanding: &mut [Option<Request>; 6],
                     cancelled: &mut Vec<Request>| {
        for o in &h.outputs[seen_outputs..] {
            if let Output::Cancel(id) = o {
                let slot = outstanding
                    .iter_mut()
                    .find(|r| r.as_ref().is_some_and(|r| r.id == *id))
                    .expect("a cancel for a request in flight");
                cancelled.push(slot.take().unwrap());
            }
        }
        seen_outputs = h.outputs.len();
        while let Some(r) = h.requests.pop_front() {
            let channel = Channel::of(r.endpoint, connected);
            let slot = &mut outstanding[channel.index()];
            assert!(
                slot.is_none(),
                "{channel:?}: {:?} sent while {:?} is in flight",
                r.endpoint,
                slot.as_ref().map(|r| r.id)
            );
            sends[channel.index()] += 1;
            seen_in_flight[channel.index()] = true;
            *slot = Some(r);
        }
        // The session's own view agrees: one request per channel, the ones the test holds.
        let mut ours: Vec<_> = outstanding.iter().flatten().map(|r| r.id).collect();
        let mut theirs: Vec<_> = h.session.in_flight().map(|(id, _)| id).collect();
        ours.sort();
        theirs.sort();
        assert_eq!(ours, theirs, "the session's requests in flight");
    };

    let mut n = 0u64;
    for _ in 0..4_000 {
        if h.session.status().is_terminal() {
            break;
        }
        let busy = |c: Channel, o: &[Option<Request>; 6]| o[c.index()].is_some();
        match rng.below(12) {
            0 | 1 => {
                contended[Channel::Events.index()] +=
                    usize::from(busy(Channel::Events, &outstanding));
                for _ in 0..=rng.below(3) {
                    n += 1;
                    let _ = h.session.send_event(h.now, Event::new(json!({"n": n})));
                }
                h.drain();
            }
            2 => {
                contended[Channel::InternalEvents.index()] +=
                    usize::from(busy(Channel::InternalEvents, &outstanding));
                n += 1;
                let _ = h
                    .session
                    .send_internal_event(h.now, Event::new(json!({"n": n})));
                h.drain();
            }
            3 => {
                contended[Channel::Delivery.index()] +=
                    usize::from(busy(Channel::Delivery, &outstanding));
                n += 1;
                let _ = h.session.ack_delivery(
                    h.now,
                    &format!("e{n}"),
                    tether_core::session::DeliveryStatus::Processed,
                );
                h.drain();
            }
            4 => {
                contended[Channel::State.index()] +=
                    usize::from(busy(Channel::State, &outstanding));
                n += 1;
                let _ = h
                    .session
                    .patch_state(h.now, json!({"external_metadata": {"n": n}}));
                h.drain();
            }
            5..=8 => {
                // Answer one request in flight, picked at random.
                let held: Vec<usize> = (0..6).filter(|&i| outstanding[i].is_some()).collect();
                if held.is_empty() {
                    continue;
                }
                let slot = held[rng.below(held.len() as u64) as usize];
                let r = outstanding[slot].take().unwrap();
                match rng.below(6) {
                    0 => h.respond(&r, 503, ""),
                    1 => h.respond_with(
                        &r,
                        Response {
                            status: 429,
                            retry_after: Some("1".into()),
                            ..Response::default()
                        },
                    ),
                    2 => {
                        h.session.handle_transport_error(
                            h.now,
                            r.id,
                            &TransportError {
                                message: "reset".into(),
                            },
                        );
                        h.drain();
                    }
                    _ => {
                        let body = match r.endpoint {
                            Endpoint::Register => r#"{"worker_epoch": 7}"#,
                            Endpoint::GetWorker => r#"{"worker":{"worker_status":"idle"}}"#,
                            Endpoint::PutWorker => "{}",
                            _ => "",
                        };
                        let done = r.endpoint == Endpoint::GetWorker;
                        h.respond(&r, 200, body);
                        connected |= done;
                    }
                }
            }
            9 => {
                // A late answer to a request the core already cancelled: ignored.
                if let Some(r) = cancelled.pop() {
                    h.respond(&r, 200, "{}");
                }
            }
            10 => {
                let by = Duration::from_millis(rng.below(3_000));
                h.advance_to(h.now + by);
            }
            _ => {
                if h.wake.is_some() {
                    h.advance();
                }
            }
        }
        track(&mut h, connected, &mut outstanding, &mut cancelled);
    }
    assert!(
        !h.session.status().is_terminal(),
        "the workload ended the session: {:?}",
        h.session.status()
    );
    for c in Channel::ALL {
        assert!(seen_in_flight[c.index()], "{c:?} was never in flight");
        assert!(
            sends[c.index()] >= 2,
            "{c:?}: {} requests",
            sends[c.index()]
        );
    }
    for c in [
        Channel::Events,
        Channel::InternalEvents,
        Channel::Delivery,
        Channel::State,
    ] {
        assert!(
            contended[c.index()] > 0,
            "{c:?} was never given work while a request of its was in flight"
        );
    }
}

#[test]
fn flush_reports_once_everything_before_it_settled() {
    let mut h = Harness::connected();
    h.send_events(2);
    let flush = h
        .session
        .flush(h.now, h.now + Duration::from_secs(30))
        .unwrap();
    h.drain();
    // Linger is zero: the first event went alone, the second waits for it.
    let first = h.expect(Endpoint::Events);
    h.respond(&first, 200, "");
    assert!(!h.outputs.iter().any(|o| matches!(o, Output::FlushDone(_))));
    let second = h.expect(Endpoint::Events);
    h.respond(&second, 200, "");
    assert!(h.outputs.contains(&Output::FlushDone(flush)));

    h.send_events(1);
    let late = h
        .session
        .flush(h.now, h.now + Duration::from_secs(2))
        .unwrap();
    h.drain();
    let _unanswered = h.expect(Endpoint::Events);
    h.advance_to(h.now + Duration::from_secs(2));
    assert!(h.outputs.contains(&Output::FlushTimedOut(late)));
}

#[test]
fn bad_configuration_is_a_typed_error() {
    use tether_core::batch::{self, BodyMode, Envelope};
    use tether_core::heartbeat;
    use tether_core::session::ConfigError;

    let refused = |change: &dyn Fn(&mut SessionConfig)| {
        let mut config = SessionConfig::new("s");
        change(&mut config);
        let Err(error) = Session::new(config.clone(), tether_core::Rng::new(0), Instant::ZERO)
        else {
            panic!("accepted: {config:?}");
        };
        assert_eq!(config.validate(), Err(error.clone()), "validate agrees");
        error
    };
    assert_eq!(
        refused(&|c| c.heartbeat.interval = Duration::from_secs(2)),
        ConfigError::Heartbeat(heartbeat::ConfigError::Interval(Duration::from_secs(2)))
    );
    assert_eq!(
        refused(&|c| c.heartbeat.jitter = f64::NAN),
        ConfigError::Heartbeat(heartbeat::ConfigError::Jitter)
    );
    assert_eq!(
        refused(&|c| c.heartbeat.ttl = Duration::from_secs(19)),
        ConfigError::Heartbeat(heartbeat::ConfigError::TtlShorterThanInterval)
    );
    assert_eq!(
        refused(&|c| c.request_timeout = Duration::ZERO),
        ConfigError::ZeroTimeout
    );
    assert_eq!(
        refused(&|c| c.heartbeat_timeout = Duration::ZERO),
        ConfigError::ZeroTimeout
    );
    assert_eq!(
        refused(&|c| c.events.max_batch_items = 0),
        ConfigError::Uploader {
            stream: "events",
            error: batch::ConfigError::Zero {
                field: "max_batch_items"
            }
        }
    );
    assert_eq!(
        refused(&|c| c.delivery.max_queue_items = 10),
        ConfigError::Uploader {
            stream: "delivery",
            error: batch::ConfigError::BatchOverQueue {
                batch: 64,
                queue: 10,
                unit: "items"
            }
        }
    );
    assert_eq!(
        refused(&|c| c.internal_events.max_consecutive_failures = Some(0)),
        ConfigError::Uploader {
            stream: "internal_events",
            error: batch::ConfigError::Zero {
                field: "max_consecutive_failures"
            }
        }
    );
    assert_eq!(
        refused(&|c| c.delivery.envelope = Envelope::Events),
        ConfigError::WrongEnvelope
    );
    assert_eq!(
        refused(&|c| c.events.envelope = Envelope::DeliveryUpdates),
        ConfigError::WrongEnvelope
    );
    assert_eq!(
        refused(&|c| c.events.body = BodyMode::Deferred),
        ConfigError::DeferredBody
    );
    assert_eq!(
        refused(&|c| c.state.request_timeout = Some(Duration::from_secs(1))),
        ConfigError::StateOwnsDeadline
    );
    assert_eq!(
        refused(&|c| c.max_auth_failures = 0),
        ConfigError::ZeroAuthFailures
    );
    assert_eq!(
        refused(&|c| c.max_response_body = 63),
        ConfigError::ResponseBodyCap(63)
    );
    // The defaults, and each bound at its edge, are accepted.
    for change in [
        &(|_: &mut SessionConfig| {}) as &dyn Fn(&mut SessionConfig),
        &|c| c.max_response_body = 64,
        &|c| c.max_auth_failures = 1,
        &|c| c.heartbeat.ttl = c.heartbeat.interval,
        &|c| c.request_timeout = Duration::from_micros(1),
    ] {
        let mut config = SessionConfig::new("s");
        change(&mut config);
        assert_eq!(config.validate(), Ok(()));
        assert!(Session::new(config, tether_core::Rng::new(0), Instant::ZERO).is_ok());
    }
}

#[test]
fn the_same_seed_gives_the_same_requests() {
    // The seed draws the events' uuids and the uploaders' retry jitter (500 ms by default).
    let run = |seed| {
        let mut h = Harness::connected_seeded(SessionConfig::new("s").with_epoch(5), seed);
        h.send_events(3);
        let r = h.expect(Endpoint::Events);
        h.respond(&r, 503, "");
        h.advance();
        let r = h.expect(Endpoint::Events);
        (r.body, h.now)
    };
    let (body, retried_at) = run(1);
    assert_eq!(run(1), (body.clone(), retried_at));
    let (other_body, other_retried_at) = run(2);
    assert_ne!(body, other_body, "another seed, other uuids");
    assert_ne!(retried_at, other_retried_at, "another seed, another jitter");
}

#[test]
fn a_full_queue_hands_the_event_back_and_resend_keeps_its_uuid() {
    let mut config = SessionConfig::new("s").with_epoch(5);
    config.events.max_queue_items = 2;
    config.events.max_batch_items = 1;
    let mut h = Harness::connected_with(config);
    h.send_events(2);
    let refused = h
        .session
        .send_event(h.now, Event::new(json!({"seq": 2})))
        .unwrap_err();
    let tether_core::session::SessionError::Enqueue {
        error: tether_core::batch::Error::QueueFull { event },
        ..
    } = refused
    else {
        panic!("{refused:?}")
    };
    let uuid = event.payload().unwrap()["uuid"].clone();
    assert!(uuid.is_string());
    let first = h.expect(Endpoint::Events);
    h.respond(&first, 200, "");
    h.session.resend(h.now, Stream::Events, event).unwrap();
    h.drain();
    let second = h.expect(Endpoint::Events);
    h.respond(&second, 200, "");
    let third = h.expect(Endpoint::Events);
    assert_eq!(body(&third)["events"][0]["payload"]["uuid"], uuid);
}

#[test]
fn overlapping_flushes_each_get_their_own_answer() {
    let mut h = Harness::connected();
    h.session
        .patch_state(h.now, json!({"worker_status": "busy"}))
        .unwrap();
    h.drain();
    let put = h.expect(Endpoint::PutWorker); // unanswered for now
    let long = h
        .session
        .flush(h.now, h.now + Duration::from_secs(8))
        .unwrap();
    let short = h
        .session
        .flush(h.now, h.now + Duration::from_secs(3))
        .unwrap();
    h.drain();
    h.advance_to(Instant::from_secs(3));
    assert!(h.outputs.contains(&Output::FlushTimedOut(short)));
    assert!(
        !h.outputs.contains(&Output::FlushDone(long)),
        "the patch is still unacknowledged"
    );
    h.respond(&put, 200, "{}");
    assert!(h.outputs.contains(&Output::FlushDone(long)));
}

#[test]
fn a_flush_past_its_deadline_is_never_reported_done() {
    let mut h = Harness::new(SessionConfig::new("s").with_epoch(5));
    h.send_events(1); // held: not connected yet
    let flush = h.session.flush(h.now, h.now).unwrap();
    h.drain();
    assert!(!h.outputs.contains(&Output::FlushDone(flush)));
    h.advance_to(h.now);
    assert!(h.outputs.contains(&Output::FlushTimedOut(flush)));
}

#[test]
fn close_after_a_flush_finishes_as_soon_as_everything_landed() {
    let mut h = Harness::connected();
    h.session
        .patch_state(h.now, json!({"worker_status": "busy"}))
        .unwrap();
    h.drain();
    let put = h.expect(Endpoint::PutWorker);
    let _ = h
        .session
        .flush(h.now, h.now + Duration::from_secs(100))
        .unwrap();
    h.session.close(h.now, h.now + Duration::from_secs(200));
    h.drain();
    assert_eq!(
        h.session
            .patch_state(h.now, json!({"worker_status": "late"})),
        Err(tether_core::session::SessionError::Closing),
        "intake stops at close"
    );
    h.now += Duration::from_secs(1);
    h.respond(&put, 200, "{}");
    assert_eq!(h.statuses.last(), Some(&Status::Closed));
    assert!(h.now < Instant::from_secs(10));
}

#[test]
fn a_delete_given_before_connect_is_sent_not_skipped() {
    let mut h = Harness::new(SessionConfig::new("s").with_epoch(5));
    h.session
        .patch_state(h.now, json!({"current_task": null}))
        .unwrap();
    h.drain();
    let init = h.expect(Endpoint::PutWorker);
    h.respond(&init, 200, "{}");
    let get = h.expect(Endpoint::GetWorker);
    h.respond(
        &get,
        200,
        r#"{"worker":{"current_task":"old","worker_status":"idle"}}"#,
    );
    let put = h.expect(Endpoint::PutWorker);
    assert_eq!(body(&put), json!({"worker_epoch": 5, "current_task": null}));
    assert_eq!(h.session.state_view(), &json!({"worker_status": "idle"}));
}
