//! No panic on caller input (docs/ARCHITECTURE.md, convention 6): a configuration out of bounds is a typed
//! error wherever it enters, and arithmetic on the durations a caller supplies saturates.
//!
//! Each test feeds the extremes a caller can write (`Duration::MAX` timeouts, linger, caps and
//! hints, `u32::MAX` attempts, NaN and infinite jitter, time near `Instant::MAX`) and checks the
//! typed error or the saturated value that comes back. Every loop is bounded.

use core::time::Duration;

use serde_json::json;
use tether_core::backoff::{
    Backoff, BackoffController, BackoffPolicy, ControllerConfig, Decision, Failure, Floor, Jitter,
};
use tether_core::batch::{self, BatchDrainer, Event, Reason};
use tether_core::heartbeat::{self, Heartbeat};
use tether_core::session::{
    ConfigError, Endpoint, Output, Request, Response, Session, SessionConfig, Status,
};
use tether_core::state::{self, StateUploader};
use tether_core::{Instant, Outcome, Poll, Rng, Wake};

/// Jitter fractions outside `[0, 0.5]`, NaN included.
const BAD_JITTER: [f64; 9] = [
    f64::NAN,
    -f64::NAN,
    -0.1,
    -0.0000001,
    0.5000001,
    1e300,
    f64::MAX,
    f64::INFINITY,
    f64::NEG_INFINITY,
];

/// Intervals outside 5–30 s.
const BAD_INTERVALS: [Duration; 6] = [
    Duration::ZERO,
    Duration::from_nanos(1),
    Duration::from_nanos(4_999_999_999),
    Duration::from_nanos(30_000_000_001),
    Duration::from_secs(3600),
    Duration::MAX,
];

fn session_error(config: SessionConfig) -> ConfigError {
    let validated = config.validate().expect_err("validate refuses it");
    let Err(constructed) = Session::new(config, tether_core::Rng::new(0), Instant::ZERO) else {
        panic!("Session::new accepted a configuration validate refuses");
    };
    assert_eq!(validated, constructed, "validate and new agree");
    constructed
}

#[test]
fn a_jitter_that_is_not_a_fraction_up_to_a_half_is_a_typed_error_wherever_it_enters() {
    for jitter in BAD_JITTER {
        let config = heartbeat::Config {
            jitter,
            ..heartbeat::Config::default()
        };
        assert_eq!(
            config.validate(),
            Err(heartbeat::ConfigError::Jitter),
            "{jitter}"
        );
        assert_eq!(
            Heartbeat::new(config, Rng::new(0)).err(),
            Some(heartbeat::ConfigError::Jitter),
            "{jitter}"
        );
        let mut session = SessionConfig::new("s");
        session.heartbeat.jitter = jitter;
        assert_eq!(
            session_error(session),
            ConfigError::Heartbeat(heartbeat::ConfigError::Jitter),
            "{jitter}"
        );
    }
    for jitter in [0.0, -0.0, f64::MIN_POSITIVE, 0.25, 0.5] {
        let config = heartbeat::Config {
            jitter,
            ..heartbeat::Config::default()
        };
        assert!(Heartbeat::new(config, Rng::new(0)).is_ok(), "{jitter}");
    }
}

#[test]
fn an_interval_outside_5_to_30_seconds_is_a_typed_error_wherever_it_enters() {
    for interval in BAD_INTERVALS {
        let config = heartbeat::Config {
            interval,
            ttl: Duration::MAX,
            ..heartbeat::Config::default()
        };
        let expected = heartbeat::ConfigError::Interval(interval);
        assert_eq!(config.validate(), Err(expected), "{interval:?}");
        assert_eq!(
            Heartbeat::new(config, Rng::new(0)).err(),
            Some(expected),
            "{interval:?}"
        );
        let mut session = SessionConfig::new("s");
        session.heartbeat = config;
        assert_eq!(
            session_error(session),
            ConfigError::Heartbeat(expected),
            "{interval:?}"
        );
    }
}

#[test]
fn max_gap_saturates_for_any_configuration() {
    let with = |interval: Duration, jitter: f64| heartbeat::Config {
        interval,
        jitter,
        ..heartbeat::Config::default()
    };
    // Valid configurations: the exact product.
    assert_eq!(
        with(Duration::from_secs(20), 0.5).max_gap(),
        Duration::from_secs(30)
    );
    assert_eq!(
        with(Duration::from_secs(20), 0.0).max_gap(),
        Duration::from_secs(20)
    );
    // Refused ones: an upper bound, never a panic. `Duration::mul_f64` panicked on each.
    assert_eq!(
        with(Duration::from_secs(20), f64::NAN).max_gap(),
        Duration::MAX
    );
    assert_eq!(
        with(Duration::from_secs(20), f64::INFINITY).max_gap(),
        Duration::MAX
    );
    assert_eq!(
        with(Duration::from_secs(20), 1e300).max_gap(),
        Duration::MAX
    );
    assert_eq!(with(Duration::MAX, 0.0).max_gap(), Duration::MAX);
    assert_eq!(with(Duration::MAX, 0.5).max_gap(), Duration::MAX);
    assert_eq!(with(Duration::ZERO, f64::INFINITY).max_gap(), Duration::MAX);
    // A negative jitter counts as none.
    assert_eq!(
        with(Duration::from_secs(20), -3.0).max_gap(),
        Duration::from_secs(20)
    );
    for jitter in BAD_JITTER {
        for interval in BAD_INTERVALS {
            assert!(with(interval, jitter).max_gap() >= interval);
        }
    }
}

#[test]
fn a_heartbeat_ttl_of_duration_max_never_goes_stale_and_never_panics() {
    let config = heartbeat::Config {
        ttl: Duration::MAX,
        ..heartbeat::Config::default()
    };
    let mut session = SessionConfig::new("s").with_epoch(1);
    session.heartbeat = config;
    session.heartbeat_timeout = Duration::MAX;
    let mut h = Driven::new(session, Instant::from_secs(1));
    h.connect();
    // Beats fail for a simulated day: with an unbounded TTL the worker never goes stale.
    for _ in 0..10_000 {
        if let Some(r) = h.take(Endpoint::Heartbeat) {
            assert_eq!(r.deadline, Instant::MAX, "the deadline saturates");
            h.respond(&r, Response::new(500, ""));
        }
        if h.now > Instant::from_secs(86_400) {
            break;
        }
        h.fire();
    }
    assert!(h.now > Instant::from_secs(86_400), "time moved on");
    assert!(!h.statuses.contains(&Status::Stale), "{:?}", h.statuses);
}

/// Every duration of a backoff policy at its maximum, with `jitter`.
fn huge_policy(jitter: Jitter) -> BackoffPolicy {
    BackoffPolicy {
        base: Duration::MAX,
        cap: Duration::MAX,
        jitter,
        floor: Some(Floor {
            from_attempt: 0,
            delay: Duration::MAX,
        }),
        max_hint: Duration::MAX,
    }
}

fn every_jitter() -> [Jitter; 9] {
    [
        Jitter::None,
        Jitter::Full,
        Jitter::Equal,
        Jitter::Decorrelated,
        Jitter::Additive {
            range: Duration::MAX,
            above_cap: true,
        },
        Jitter::Additive {
            range: Duration::MAX,
            above_cap: false,
        },
        Jitter::Proportional { fraction: f64::NAN },
        Jitter::Proportional {
            fraction: f64::INFINITY,
        },
        Jitter::Proportional { fraction: -1.0 },
    ]
}

/// The longest delay the backoff curve can express: `u64::MAX` microseconds. A saturated delay
/// is at least this (a floor or hint given as `Duration::MAX` passes through as it is).
const LONGEST: Duration = Duration::from_micros(u64::MAX);

#[test]
fn backoff_delays_saturate_instead_of_overflowing() {
    for jitter in every_jitter() {
        let policy = huge_policy(jitter);
        for attempt in [0, 1, 63, 64, u32::MAX - 1, u32::MAX] {
            assert_eq!(policy.curve(attempt), LONGEST, "{jitter:?} {attempt}");
            for draw in [0.0, 0.5, 1.0, f64::NAN, -1.0, f64::INFINITY] {
                let d = policy.delay_with_draw(attempt, Duration::MAX, draw);
                assert!(d >= LONGEST, "{jitter:?} {attempt} {draw}: {d:?}");
                assert!(d <= policy.max_delay(attempt));
            }
        }
        // A hint skips the floor, and proportional jitter may draw it down: only bounded.
        for draw in [0.0, 0.5, 1.0, f64::NAN] {
            let hinted = policy.delay_for_hint_with_draw(Duration::MAX, draw);
            assert!(
                hinted <= policy.max_hinted_delay(),
                "{jitter:?}: {hinted:?}"
            );
        }
        let mut backoff = Backoff::new(policy);
        let mut rng = Rng::new(3);
        for _ in 0..100 {
            assert!(backoff.next_delay(None, &mut rng) >= LONGEST);
            let hinted = backoff.next_delay(Some(Duration::MAX), &mut rng);
            assert!(hinted <= policy.max_hinted_delay());
        }
        assert_eq!(backoff.attempt(), 200);
    }
}

#[test]
fn the_controller_saturates_at_the_end_of_time_with_u32_max_attempts() {
    for jitter in every_jitter() {
        let config = ControllerConfig {
            policy: huge_policy(jitter),
            max_attempts: Some(u32::MAX),
            total_deadline: Some(Duration::MAX),
        };
        let mut ctl = BackoffController::new(config, Rng::new(1));
        let now = Instant::MAX.saturating_sub(Duration::from_secs(1));
        ctl.start(now);
        for n in 1..=100 {
            let failure = if n % 2 == 0 {
                Failure::Throttled(Duration::MAX)
            } else {
                Failure::Transient
            };
            // Past the floor, the curve's delay saturates; a hint may be drawn down by
            // proportional jitter, but not below the second left.
            let decision = ctl.record_failure(now, failure);
            assert!(
                matches!(
                    decision,
                    Decision::Retry { attempt, delay, at: Instant::MAX }
                        if attempt == n && (delay >= LONGEST || n % 2 == 0)
                ),
                "{jitter:?}: {decision:?}"
            );
        }
    }
    // A total deadline of `Duration::MAX` from late in time still allows the retry.
    let mut ctl = BackoffController::new(
        ControllerConfig {
            total_deadline: Some(Duration::MAX),
            max_attempts: None,
            ..ControllerConfig::default()
        },
        Rng::new(1),
    );
    let late = Instant::MAX.saturating_sub(Duration::from_millis(1));
    ctl.start(late);
    assert!(matches!(
        ctl.record_failure(late, Failure::Transient),
        Decision::Retry {
            at: Instant::MAX,
            ..
        }
    ));
}

fn drain_batch(d: &mut BatchDrainer, log: &mut Vec<batch::Output>) -> Option<Wake<batch::Timer>> {
    for _ in 0..10_000 {
        match d.poll_output() {
            Poll::Output(o) => log.push(o),
            Poll::Timeout(w) => return w,
        }
    }
    panic!("the drainer never reached a timeout");
}

#[test]
fn batch_linger_backoff_and_deadlines_of_duration_max_saturate() {
    let config = batch::Config {
        linger: Duration::MAX,
        backoff: huge_policy(Jitter::Full),
        max_consecutive_failures: Some(u32::MAX),
        ..batch::Config::default()
    };
    let mut d = BatchDrainer::new(config, Rng::new(1)).expect("a valid config");
    let mut log = Vec::new();
    let now = Instant::from_secs(10);
    d.set_epoch(now, 1);
    d.enqueue(now, Event::new(json!({"n": 1}))).unwrap();
    // The linger window ends at the end of time, not in a panic.
    assert_eq!(
        drain_batch(&mut d, &mut log),
        Some(Wake::new(Instant::MAX, batch::Timer::Linger))
    );
    assert!(log.is_empty(), "{log:?}");
    // A flush sends at once whatever the linger; its deadline may be as late as time goes.
    let flush = d.flush(now, now.saturating_add(Duration::MAX));
    drain_batch(&mut d, &mut log);
    let Some(batch::Output::Send { id, .. }) = log.pop() else {
        panic!("{log:?}")
    };
    // A failure waits out a saturated backoff.
    d.handle_outcome(now, id, Outcome::Throttled(Duration::MAX));
    let wake = drain_batch(&mut d, &mut log).expect("the backoff and the flush deadline");
    assert_eq!(wake.at, Instant::MAX);
    // Closing with a close deadline of `now + Duration::MAX` still ends at an explicit one.
    d.close(now, now.saturating_add(Duration::MAX));
    d.close(now, now + Duration::from_secs(1));
    let wake = drain_batch(&mut d, &mut log).expect("the close deadline");
    assert_eq!(wake.at, now + Duration::from_secs(1));
    d.handle_timeout(wake.at);
    drain_batch(&mut d, &mut log);
    assert!(log.iter().any(|o| matches!(
        o,
        batch::Output::HandedBack { reason: Reason::Closed, events } if events.len() == 1
    )));
    assert!(log.contains(&batch::Output::FlushDone(flush)));
    assert_eq!(log.last(), Some(&batch::Output::Closed));
}

fn drain_state(up: &mut StateUploader, log: &mut Vec<state::Output>) -> Option<Wake<state::Timer>> {
    for _ in 0..10_000 {
        match up.poll_output() {
            Poll::Output(o) => log.push(o),
            Poll::Timeout(w) => return w,
        }
    }
    panic!("the state uploader never reached a timeout");
}

#[test]
fn state_request_timeout_and_backoff_of_duration_max_saturate() {
    let config = state::Config::default()
        .with_request_timeout(Some(Duration::MAX))
        .with_backoff(huge_policy(Jitter::Additive {
            range: Duration::MAX,
            above_cap: true,
        }));
    let mut up = StateUploader::new(config, Rng::new(1));
    let mut log = Vec::new();
    let now = Instant::from_secs(10);
    up.set_epoch(now, 1);
    up.enqueue(now, json!({"worker_status": "busy"})).unwrap();
    let wake = drain_state(&mut up, &mut log);
    assert_eq!(
        wake,
        Some(Wake::new(Instant::MAX, state::Timer::RequestDeadline))
    );
    let Some(state::Output::Send { id, .. }) = log.pop() else {
        panic!("{log:?}")
    };
    up.handle_outcome(now, id, Outcome::Throttled(Duration::MAX));
    let wake = drain_state(&mut up, &mut log);
    assert_eq!(wake, Some(Wake::new(Instant::MAX, state::Timer::Backoff)));
    assert!(
        matches!(
            log.pop(),
            Some(state::Output::Retrying { attempt: 1, delay, at: Instant::MAX }) if delay >= LONGEST
        ),
        "{log:?}"
    );
    up.flush(now, now.saturating_add(Duration::MAX)).unwrap();
    up.close(now);
    drain_state(&mut up, &mut log);
    assert!(matches!(log.last(), Some(state::Output::Closed(_))));
}

/// A session driven by hand for these tests: keeps the requests it was asked to send.
struct Driven {
    session: Session,
    now: Instant,
    requests: Vec<Request>,
    statuses: Vec<Status>,
    outputs: Vec<Output>,
    wake: Option<Instant>,
}

impl Driven {
    fn new(config: SessionConfig, now: Instant) -> Self {
        let session = Session::new(config, tether_core::Rng::new(7), now).expect("a valid config");
        let mut h = Driven {
            session,
            now,
            requests: Vec::new(),
            statuses: Vec::new(),
            outputs: Vec::new(),
            wake: None,
        };
        h.drain();
        h
    }

    fn drain(&mut self) {
        for _ in 0..10_000 {
            match self.session.poll_output() {
                Poll::Output(Output::Send(r)) => self.requests.push(r),
                Poll::Output(Output::Status(s)) => self.statuses.push(s),
                Poll::Output(o) => self.outputs.push(o),
                Poll::Timeout(w) => {
                    self.wake = w.map(|w| w.at);
                    return;
                }
            }
        }
        panic!("the session never reached a timeout");
    }

    fn take(&mut self, endpoint: Endpoint) -> Option<Request> {
        let i = self.requests.iter().position(|r| r.endpoint == endpoint)?;
        Some(self.requests.remove(i))
    }

    fn respond(&mut self, r: &Request, response: Response) {
        self.session.handle_response(self.now, r.id, response);
        self.drain();
    }

    fn fire(&mut self) {
        if let Some(at) = self.wake {
            self.now = self.now.max(at);
        }
        self.session.handle_timeout(self.now);
        self.drain();
    }

    /// Answers the init `PUT` and the `GET` of a session given its epoch.
    fn connect(&mut self) {
        let init = self.take(Endpoint::PutWorker).expect("the init PUT");
        self.respond(&init, Response::new(200, "{}"));
        let get = self.take(Endpoint::GetWorker).expect("the GET");
        self.respond(&get, Response::new(200, r#"{"worker":{}}"#));
        assert_eq!(self.session.status(), Status::Connected);
    }
}

#[test]
fn a_connect_curve_of_duration_max_retries_at_the_end_of_time() {
    let mut config = SessionConfig::new("s");
    config.request_timeout = Duration::MAX;
    config.max_auth_failures = u32::MAX;
    config.connect = ControllerConfig {
        policy: huge_policy(Jitter::Decorrelated),
        max_attempts: Some(u32::MAX),
        total_deadline: Some(Duration::MAX),
    };
    let mut h = Driven::new(config, Instant::from_secs(1));
    let register = h.take(Endpoint::Register).expect("register");
    assert_eq!(register.deadline, Instant::MAX, "the deadline saturates");
    // A Retry-After too long for a u64, on top of a curve at its maximum.
    h.respond(
        &register,
        Response {
            status: 503,
            retry_after: Some("99999999999999999999999".into()),
            ..Response::default()
        },
    );
    assert_eq!(
        h.session.status(),
        Status::Retrying {
            attempt: 1,
            at: Instant::MAX
        }
    );
    // Close interrupts the wait.
    h.session.close(h.now, h.now + Duration::from_secs(1));
    h.drain();
    for _ in 0..100 {
        if h.session.status().is_terminal() {
            break;
        }
        h.fire();
    }
    assert_eq!(h.session.status(), Status::Closed);
    assert!(h.now <= Instant::from_secs(2));
}

#[test]
fn session_timeouts_backoff_and_deadlines_of_duration_max_saturate() {
    let mut config = SessionConfig::new("s").with_epoch(1);
    config.request_timeout = Duration::MAX;
    config.heartbeat_timeout = Duration::MAX;
    // A linger of `Duration::MAX`; a batch of one is full, so it goes at once.
    config.events.linger = Duration::MAX;
    config.events.max_batch_items = 1;
    config.events.backoff = huge_policy(Jitter::Equal);
    config.events.max_consecutive_failures = Some(u32::MAX);
    let mut h = Driven::new(config, Instant::from_secs(1));
    h.connect();
    h.session
        .send_event(h.now, Event::new(json!({"n": 1})))
        .unwrap();
    h.drain();
    let events = h.take(Endpoint::Events).expect("a full batch goes at once");
    assert_eq!(events.deadline, Instant::MAX, "the deadline saturates");
    h.respond(&events, Response::new(503, ""));
    assert_eq!(
        h.session.status(),
        Status::Retrying {
            attempt: 1,
            at: Instant::MAX
        }
    );
    // A flush and a close with deadlines of `now + Duration::MAX`, then an explicit close
    // deadline, which wins.
    let flush = h
        .session
        .flush(h.now, h.now.saturating_add(Duration::MAX))
        .unwrap();
    h.session.close(h.now, h.now.saturating_add(Duration::MAX));
    h.session.close(h.now, h.now + Duration::from_secs(1));
    h.drain();
    for _ in 0..100 {
        if h.session.status().is_terminal() {
            break;
        }
        h.fire();
    }
    assert_eq!(h.session.status(), Status::Closed);
    assert!(h.now <= Instant::from_secs(2));
    assert!(
        h.outputs.contains(&Output::FlushDone(flush)),
        "the event was handed back"
    );
}
