//! The driver without any runtime: a simulated clock, a scripted server answering each request
//! when the loop turns, and every call checked for what it means on every shim.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tether_core::Instant;
use tether_driver::runtime::Origin;

use serde_json::{Value, json};
use tether_core::batch::{Config, Overflow, Reason};
use tether_core::session::{Endpoint, SessionConfig, Status, Stream};
use tether_driver::runtime::{Action, HttpRequest, HttpResponse, Shared};
use tether_driver::{FlushError, Refused, Report, SendError, Settings, Tether};

type Server = Box<dyn FnMut(&HttpRequest) -> Option<HttpResponse> + Send>;

/// A driver on a simulated clock. `server` answers each request as the loop turns (`None`:
/// never answers, the core's deadline must fire).
struct Rig {
    shared: Arc<Shared>,
    now: Arc<Mutex<Instant>>,
    server: Server,
    requests: Vec<Endpoint>,
    held: VecDeque<HttpRequest>,
}

fn ok(request: &HttpRequest) -> Option<HttpResponse> {
    Some(match request.route.worker().unwrap() {
        Endpoint::GetWorker => HttpResponse::new(200, r#"{"worker":{}}"#),
        Endpoint::Register => HttpResponse::new(200, r#"{"worker_epoch":3}"#),
        _ => HttpResponse::new(200, "{}"),
    })
}

impl Rig {
    fn new(config: SessionConfig, server: Server) -> (Rig, Tether) {
        Rig::with(config, server, |_| {})
    }

    fn with(
        config: SessionConfig,
        server: Server,
        tweak: impl FnOnce(&mut Settings),
    ) -> (Rig, Tether) {
        let start = Instant::ZERO;
        let now = Arc::new(Mutex::new(start));
        let mut settings = Settings::new("http://127.0.0.1:1/v1/code/sessions/rig");
        settings.config(config).epoch(1).seed(5);
        tweak(&mut settings);
        let driver = settings.start(origin(), 0).unwrap();
        let clock = Arc::clone(&now);
        let shared = Shared::new(
            driver,
            Box::new(move || *clock.lock().unwrap()),
            Box::new(|| {}),
        );
        let handle = Tether::new(Arc::clone(&shared));
        let rig = Rig {
            shared,
            now,
            server,
            requests: Vec::new(),
            held: VecDeque::new(),
        };
        (rig, handle)
    }

    fn time(&self) -> Instant {
        *self.now.lock().unwrap()
    }

    /// One turn: time, actions, answers. Returns whether anything happened.
    fn turn(&mut self) -> bool {
        let actions: Vec<Action> = self.shared.turn().actions;
        let busy = !actions.is_empty();
        for action in actions {
            match action {
                Action::Send(request) => {
                    self.requests.push(request.route.worker().unwrap());
                    match (self.server)(&request) {
                        Some(answer) => self
                            .shared
                            .with(|d, now| d.handle_reply(now, request.id, Ok(answer))),
                        None => self.held.push_back(request),
                    }
                }
                Action::Cancel(_) => {}
                _ => {}
            }
        }
        busy
    }

    /// Turns until idle, then jumps to the next deadline; `steps` bounds the whole run.
    fn run_until(&mut self, steps: usize, mut done: impl FnMut(&mut Rig) -> bool) {
        for _ in 0..steps {
            if done(self) {
                return;
            }
            if self.turn() {
                continue;
            }
            let next = self.shared.lock().deadline();
            match next {
                Some(at) => {
                    let mut now = self.now.lock().unwrap();
                    *now = (*now).max(at);
                }
                None => return,
            }
        }
        panic!("not done within {steps} steps");
    }
}

fn small_queue() -> SessionConfig {
    let mut config = SessionConfig::new("rig");
    config.events = Config {
        max_batch_items: 1,
        max_queue_items: 2,
        overflow: Overflow::Reject,
        ..Config::default()
    };
    config
}

#[test]
fn a_send_waits_for_room_and_keeps_its_uuid_then_a_full_wait_times_out() {
    // The server never answers event batches: the queue stays full.
    let (mut rig, handle) = Rig::new(
        small_queue(),
        Box::new(|r| {
            (r.route.worker().unwrap() != Endpoint::Events)
                .then(|| ok(r))
                .flatten()
        }),
    );
    rig.run_until(50, |r| r.shared.lock().status() == Status::Connected);
    // Fill the queue: sends answer at once until one has to wait.
    let mut queued = 0;
    let mut waiting = loop {
        let mut sent = handle.send_event(json!({"n": queued}), Duration::from_secs(2));
        rig.turn();
        match sent.try_take() {
            Some(Ok(_)) => queued += 1,
            Some(other) => panic!("{other:?}"),
            None => break sent,
        }
        assert!(queued < 10, "the queue never filled");
    };
    assert!(queued >= 2, "the queue held {queued}");
    let mut late = handle.send_event(json!({"n": 99, "uuid": "mine"}), Duration::from_secs(2));
    rig.turn();
    // Nothing frees room: the waits end at their timeout, each event handed back prepared.
    rig.run_until(500, |_| waiting.is_ready() && late.is_ready());
    match late.try_take() {
        Some(Err(SendError::Timeout {
            event: Refused::Prepared(event),
        })) => assert_eq!(event.payload().unwrap()["uuid"], "mine"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        waiting.try_take(),
        Some(Err(SendError::Timeout { .. }))
    ));
}

#[test]
fn waiting_senders_get_room_in_order_when_batches_land() {
    let (mut rig, handle) = Rig::new(small_queue(), Box::new(ok));
    rig.run_until(50, |r| r.shared.lock().status() == Status::Connected);
    let mut answers: Vec<_> = (0..8)
        .map(|n| handle.send_event(json!({"n": n}), Duration::MAX))
        .collect();
    rig.run_until(500, |_| answers.iter().all(|a| a.is_ready()));
    let ids: Vec<u64> = answers
        .iter_mut()
        .map(|a| a.try_take().unwrap().unwrap().0)
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "queued in the order they were sent");
}

#[test]
fn flush_after_the_end_is_an_error_and_so_is_a_send() {
    let (mut rig, handle) = Rig::new(SessionConfig::new("rig"), Box::new(ok));
    rig.run_until(50, |r| r.shared.lock().status() == Status::Connected);
    let mut close = handle.close(Duration::from_secs(1));
    rig.run_until(50, |_| close.is_ready());
    assert_eq!(close.try_take().unwrap().status, Status::Closed);
    assert_eq!(
        handle.flush(Duration::from_secs(1)).try_take(),
        Some(Err(FlushError::Ended(Status::Closed)))
    );
    match handle
        .send_event(json!({"late": true}), Duration::ZERO)
        .try_take()
    {
        Some(Err(SendError::Ended { status, .. })) => assert_eq!(status, Status::Closed),
        other => panic!("{other:?}"),
    }
    // A second close answers at once with the same report.
    assert!(handle.close(Duration::MAX).try_take().is_some());
}

#[test]
fn every_subscriber_sees_every_status_in_order() {
    let (mut rig, handle) = Rig::new(SessionConfig::new("rig"), Box::new(ok));
    let first = handle.statuses();
    rig.run_until(50, |r| r.shared.lock().status() == Status::Connected);
    let second = handle.statuses();
    let close = handle.close(Duration::from_secs(1));
    rig.run_until(50, |_| close.is_ready());
    let all = |s: &tether_driver::Subscription<Status>| {
        std::iter::from_fn(|| s.try_next().map(Result::unwrap)).collect::<Vec<_>>()
    };
    assert_eq!(
        all(&first),
        [Status::Connecting, Status::Connected, Status::Closed]
    );
    assert_eq!(all(&second), [Status::Connected, Status::Closed]);
    assert!(first.is_finished() && second.is_finished());
}

#[test]
fn a_takeover_hands_back_live_and_says_what_may_have_landed() {
    // Event batches time out (no answer) once, then the server says 409.
    let mut hung = false;
    let server: Server = Box::new(move |r| match r.route.worker().unwrap() {
        Endpoint::Events if !hung => {
            hung = true;
            None
        }
        Endpoint::Events => Some(HttpResponse::new(409, "{}")),
        _ => ok(r),
    });
    let (mut rig, handle) = Rig::new(SessionConfig::new("rig"), server);
    let reports = handle.reports();
    rig.run_until(50, |r| r.shared.lock().status() == Status::Connected);
    let mut sent = handle.send_event(json!({"n": 1}), Duration::ZERO);
    assert!(matches!(sent.try_take(), Some(Ok(_))));
    rig.run_until(500, |r| r.shared.lock().status().is_terminal());
    let reports: Vec<Report> =
        std::iter::from_fn(|| reports.try_next().map(Result::unwrap)).collect();
    let handed: Vec<_> = reports
        .iter()
        .filter_map(|r| match r {
            Report::HandedBack { reason, events } => Some((reason, events)),
            _ => None,
        })
        .collect();
    assert_eq!(handed.len(), 1, "{reports:?}");
    assert_eq!(*handed[0].0, Reason::Superseded);
    assert!(handed[0].1[0].maybe_delivered, "its first send timed out");
    assert_eq!(handed[0].1[0].payload().unwrap()["n"], 1);
}

#[test]
fn a_dropped_handle_closes_with_a_bounded_default_and_reports_what_is_left() {
    // Events are never answered: whatever is queued must be handed back at the drop's deadline.
    let (mut rig, handle) = Rig::with(
        SessionConfig::new("rig"),
        Box::new(|r| {
            (r.route.worker().unwrap() != Endpoint::Events)
                .then(|| ok(r))
                .flatten()
        }),
        |s| {
            s.drop_close_timeout(Duration::from_secs(3));
        },
    );
    let reports = handle.reports();
    rig.run_until(50, |r| r.shared.lock().status() == Status::Connected);
    let start = rig.time();
    assert!(matches!(
        handle
            .send_event(json!({"n": 1}), Duration::ZERO)
            .try_take(),
        Some(Ok(_))
    ));
    drop(handle);
    rig.run_until(500, |r| r.shared.lock().is_finished());
    assert!(
        rig.time().saturating_duration_since(start) <= Duration::from_secs(4),
        "bounded by the drop timeout"
    );
    let handed: usize = std::iter::from_fn(|| reports.try_next().map(Result::unwrap))
        .map(|r| match r {
            Report::HandedBack { events, .. } => events.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(handed, 1);
    assert_eq!(rig.shared.lock().status(), Status::Closed);
}

#[test]
fn a_panicking_observer_is_dropped_and_the_session_goes_on() {
    let calls = Arc::new(Mutex::new(0));
    let seen = Arc::clone(&calls);
    let (mut rig, handle) = Rig::with(SessionConfig::new("rig"), Box::new(ok), move |s| {
        s.observer(move |_| {
            *seen.lock().unwrap() += 1;
            panic!("observer bug");
        });
    });
    let reports = handle.reports();
    rig.run_until(50, |r| r.shared.lock().status() == Status::Connected);
    let mut flush = handle.flush(Duration::from_secs(5));
    assert!(matches!(
        handle
            .send_event(json!({"n": 1}), Duration::ZERO)
            .try_take(),
        Some(Ok(_))
    ));
    rig.run_until(100, |_| flush.is_ready());
    assert_eq!(flush.try_take(), Some(Ok(())));
    assert_eq!(*calls.lock().unwrap(), 1, "dropped after its panic");
    // The panic happened before `reports` was subscribed, in the constructor's drain; a later
    // one would show as a report.
    drop(reports);
}

#[test]
fn a_payload_serde_json_cannot_read_back_comes_back_as_its_bytes() {
    let (mut rig, handle) = Rig::new(
        SessionConfig::new("rig"),
        Box::new(|r| match r.route.worker().unwrap() {
            Endpoint::Events => Some(HttpResponse::new(400, "{}")),
            _ => ok(r),
        }),
    );
    let reports = handle.reports();
    rig.run_until(50, |r| r.shared.lock().status() == Status::Connected);
    let deep: Value = (0..200).fold(json!(1), |inner, _| json!({"n": inner}));
    assert!(matches!(
        handle.send_event(deep, Duration::ZERO).try_take(),
        Some(Ok(_))
    ));
    let flush = handle.flush(Duration::from_secs(5));
    rig.run_until(100, |_| flush.is_ready());
    let undelivered = std::iter::from_fn(|| reports.try_next().map(Result::unwrap))
        .find_map(|r| match r {
            Report::HandedBack { mut events, .. } => events.pop(),
            _ => None,
        })
        .expect("handed back");
    assert!(undelivered.payload().is_err(), "too deep to read back");
    assert!(undelivered.payload_bytes().starts_with(b"{\"n\":{\"n\":"));
    assert!(!undelivered.maybe_delivered, "the server answered 400");
    assert_eq!(undelivered.stream, Stream::Events);
}

#[test]
fn every_timeout_accepts_duration_max() {
    let (mut rig, handle) = Rig::new(SessionConfig::new("rig"), Box::new(ok));
    rig.run_until(50, |r| r.shared.lock().status() == Status::Connected);
    let mut sent = handle.send_event(json!({"n": 1}), Duration::MAX);
    let mut flush = handle.flush(Duration::MAX);
    rig.run_until(100, |_| flush.is_ready());
    assert!(matches!(sent.try_take(), Some(Ok(_))));
    assert_eq!(flush.try_take(), Some(Ok(())));
    let mut close = handle.close(Duration::MAX);
    rig.run_until(100, |_| close.is_ready());
    assert_eq!(close.try_take().unwrap().status, Status::Closed);
}

#[test]
fn a_driver_dropped_by_its_runtime_hands_back_and_answers_its_waiters() {
    // No shim at all: the driver alone, as a runtime that shut down would leave it.
    let start = Instant::ZERO;
    let mut settings = Settings::new("http://127.0.0.1:1/v1/code/sessions/rig");
    settings.config(small_queue()).epoch(1).seed(5);
    let mut driver = settings.start(origin(), 0).unwrap();
    let reports = driver.reports();
    let statuses = driver.statuses();
    let answers: Vec<_> = (0..5)
        .map(|n| {
            driver.send(
                start,
                Stream::Events,
                tether_core::batch::Event::new(json!({"n": n})),
                None,
            )
        })
        .collect();
    let mut flush = driver.flush(start, Duration::MAX);
    drop(driver);
    let handed: usize = std::iter::from_fn(|| reports.try_next().map(Result::unwrap))
        .map(|r| match r {
            Report::HandedBack { events, .. } => events.len(),
            _ => 0,
        })
        .sum();
    let mut answers = answers;
    let queued = answers
        .iter_mut()
        .filter_map(|a| a.try_take())
        .filter(Result::is_ok)
        .count();
    assert_eq!(handed, queued, "every queued event handed back");
    assert_eq!(queued, 2, "the queue holds two");
    // Answered by the driver as it ended (its own fallback would say the status at the call:
    // `Connecting`).
    assert_eq!(
        flush.try_take(),
        Some(Err(FlushError::Ended(Status::Closed))),
        "the flush was answered"
    );
    let last = std::iter::from_fn(|| statuses.try_next().map(Result::unwrap)).last();
    assert_eq!(last, Some(Status::Closed));
    assert!(reports.is_finished());
}

#[test]
fn a_tap_sees_every_request_and_answer_with_its_time_and_a_panicking_one_is_dropped() {
    #[derive(Default)]
    struct Seen {
        sent: Vec<tether_core::session::RequestId>,
        answered: Vec<tether_core::session::RequestId>,
        drains: usize,
    }
    struct Recording(Arc<Mutex<Seen>>);
    impl tether_driver::Tap for Recording {
        fn output(&mut self, _at: Instant, output: &tether_core::session::Output) {
            if let tether_core::session::Output::Send(r) = output {
                self.0.lock().unwrap().sent.push(r.id);
            }
        }
        fn answer(
            &mut self,
            _at: Instant,
            id: tether_core::session::RequestId,
            _answer: Result<&HttpResponse, &tether_core::session::TransportError>,
        ) {
            self.0.lock().unwrap().answered.push(id);
        }
        fn drained(&mut self, _at: Instant, _s: &tether_core::session::Session) {
            self.0.lock().unwrap().drains += 1;
        }
    }
    let seen = Arc::new(Mutex::new(Seen::default()));
    let tap = Recording(Arc::clone(&seen));
    let (mut rig, handle) = Rig::with(SessionConfig::new("rig"), Box::new(ok), move |s| {
        s.tap(tap);
    });
    rig.run_until(50, |r| r.shared.lock().status() == Status::Connected);
    let mut close = handle.close(Duration::from_secs(1));
    rig.run_until(50, |_| close.is_ready());
    assert!(close.try_take().is_some());
    let seen = seen.lock().unwrap();
    assert!(seen.sent.len() >= 2, "the connect sequence");
    assert_eq!(seen.sent, seen.answered, "every request answered, in order");
    assert!(seen.drains > 0);

    struct Panicking;
    impl tether_driver::Tap for Panicking {
        fn answer(
            &mut self,
            _at: Instant,
            _id: tether_core::session::RequestId,
            _answer: Result<&HttpResponse, &tether_core::session::TransportError>,
        ) {
            panic!("tap bug");
        }
    }
    let (mut rig, handle) = Rig::with(SessionConfig::new("rig"), Box::new(ok), |s| {
        s.tap(Panicking);
    });
    let reports = handle.reports();
    rig.run_until(50, |r| r.shared.lock().status() == Status::Connected);
    assert!(
        std::iter::from_fn(|| reports.try_next().map(Result::unwrap))
            .any(|r| matches!(r, Report::CallbackPanicked { .. }))
    );
}

/// Where the driver's time starts on the (unread) real clock: these tests run on the core's
/// time alone.
#[allow(
    clippy::disallowed_methods,
    reason = "an origin only, never read again"
)]
fn origin() -> Origin<tether_core::Instant> {
    Origin::new(tether_core::Instant::ZERO)
}
