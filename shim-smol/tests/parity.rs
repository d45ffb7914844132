//! Parity: the smol shim's driver, fed a scripted server, produces the same core trace as a
//! plain synchronous loop driving `tether_core::session::Session` with the same responses in
//! the same order (DESIGN.md, convention 8).
//!
//! A trace is the core's outputs in order — requests (endpoint and body bytes), cancels,
//! statuses (`Retrying` without its wall-clock instant), deliveries, hand-backs, state
//! reports, flush results — plus the results of the caller's calls. Wall-clock times are left
//! out.
//!
//! Each way of driving the core is a [`Harness`]. The reference is [`Reference`]; the smol
//! shim is [`Smol`]. The blocking shim (another branch) plugs in as one more `Harness`
//! implementation added to [`harnesses`], with nothing else to change.
#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tether_core::batch::{self, Envelope};
use tether_core::session::{
    DeliveryStatus, Endpoint, Output, Response, Session, SessionConfig, Status, TransportError,
};
use tether_core::Instant;
use tether_smol::{BoxFuture, Builder, HttpRequest, Transport};

// ----- the case: a script of answers and a program of calls -----

/// How the scripted server answers one request.
#[derive(Clone, Debug)]
enum Answer {
    Respond(Response),
    /// Never answers: the core's deadline must cancel it.
    Hang,
}

/// Answers per endpoint, in order; past the end every request gets `200 {}`.
#[derive(Clone, Debug, Default)]
struct Script(BTreeMap<Endpoint, VecDeque<Answer>>);

impl Script {
    fn then(mut self, endpoint: Endpoint, answer: Answer) -> Self {
        self.0.entry(endpoint).or_default().push_back(answer);
        self
    }

    fn next(&mut self, endpoint: Endpoint) -> Answer {
        self.0
            .get_mut(&endpoint)
            .and_then(VecDeque::pop_front)
            .unwrap_or_else(|| Answer::Respond(ok(endpoint)))
    }
}

fn ok(endpoint: Endpoint) -> Response {
    match endpoint {
        Endpoint::GetWorker => Response::new(200, r#"{"worker":{}}"#),
        Endpoint::Register => Response::new(200, r#"{"worker_epoch":1}"#),
        _ => Response::new(200, "{}"),
    }
}

fn status(code: u16) -> Answer {
    Answer::Respond(Response::new(code, r#"{"error":"scripted"}"#))
}

/// A call of the caller's, applied once everything before it has settled.
#[derive(Clone, Debug)]
enum Step {
    Event(Value),
    Internal(Value),
    Ack(&'static str),
    Patch(Value),
    /// Waits until everything before is delivered or handed back.
    Flush,
    /// Closes and waits for the terminal status.
    Close,
}

struct Case {
    name: &'static str,
    config: SessionConfig,
    seed: u64,
    script: Script,
    program: Vec<Step>,
}

// ----- the trace -----

#[derive(Clone, Debug, PartialEq)]
enum Entry {
    Request(Endpoint, String),
    Cancel(u64),
    Status(String),
    Delivered(&'static str, Vec<u64>),
    HandedBack(&'static str, String, Vec<String>),
    StateRejected(String),
    StateUnacknowledged(String),
    Flush(bool),
    /// The result of step `n` of the program, when it was refused.
    Refused(usize),
    Other(String),
}

fn normal_status(s: &Status) -> String {
    match s {
        Status::Retrying { attempt, .. } => format!("retrying attempt={attempt}"),
        other => other.to_string(),
    }
}

fn entry(output: &Output) -> Entry {
    match output {
        Output::Send(r) => Entry::Request(r.endpoint, String::from_utf8_lossy(&r.body).into()),
        Output::Cancel(id) => Entry::Cancel(id.0),
        Output::Status(s) => Entry::Status(normal_status(s)),
        Output::Delivered { stream, events } => {
            Entry::Delivered(stream.name(), events.iter().map(|e| e.0).collect())
        }
        Output::HandedBack {
            stream,
            reason,
            events,
        } => Entry::HandedBack(
            stream.name(),
            format!("{reason:?}"),
            events
                .iter()
                .map(|e| String::from_utf8_lossy(e.event.payload_bytes()).into())
                .collect(),
        ),
        Output::StateRejected(r) => Entry::StateRejected(format!("{r:?}")),
        Output::StateUnacknowledged(u) => Entry::StateUnacknowledged(format!("{u:?}")),
        Output::FlushDone(_) => Entry::Flush(true),
        Output::FlushTimedOut(_) => Entry::Flush(false),
        other => Entry::Other(format!("{other:?}")),
    }
}

/// What one harness saw.
#[derive(Debug, Default)]
struct Run {
    /// The core's outputs (and refused calls), in order.
    trace: Vec<Entry>,
    /// Requests as the transport received them: they must be the trace's requests.
    wire: Vec<(Endpoint, String)>,
    /// The status stream as the caller read it: it must be the trace's statuses.
    statuses: Vec<String>,
}

trait Harness {
    fn name(&self) -> &'static str;
    fn run(&self, case: &Case) -> Run;
}

// ----- the reference: a plain synchronous driver loop -----

struct Reference;

const FLUSH: Duration = Duration::from_secs(10);

/// The loop's state: the session, its simulated clock, the script and the trace.
struct Loop {
    session: Session,
    now: Instant,
    script: Script,
    trace: Vec<Entry>,
    /// Requests sent and not yet answered, answered in the order they were sent.
    pending: VecDeque<(tether_core::session::RequestId, Endpoint)>,
}

impl Loop {
    /// Drains the outputs, then answers the oldest request that has an answer, until none is
    /// left; returns the next wake-up.
    fn settle(&mut self) -> Option<tether_core::Wake<tether_core::session::Timer>> {
        loop {
            let wake = loop {
                match self.session.poll_output() {
                    tether_core::Poll::Output(o) => {
                        if let Output::Send(r) = &o {
                            self.pending.push_back((r.id, r.endpoint));
                        }
                        self.trace.push(entry(&o));
                    }
                    tether_core::Poll::Timeout(wake) => break wake,
                }
            };
            let Some((id, endpoint)) = self.pending.pop_front() else {
                return wake;
            };
            match self.script.next(endpoint) {
                Answer::Respond(r) => self.session.handle_response(self.now, id, r),
                Answer::Hang => {}
            }
        }
    }

    /// Settles and lets simulated time jump to each wake-up until `done` holds for what was
    /// traced since the call.
    fn wait_for(&mut self, done: impl Fn(&[Entry]) -> bool) {
        let start = self.trace.len();
        for _ in 0..10_000 {
            let wake = self.settle();
            if done(&self.trace[start..]) {
                return;
            }
            let wake = wake.expect("nothing scheduled while waiting");
            self.now = self.now.max(wake.at);
            self.session.handle_timeout(self.now);
        }
        panic!("the reference loop made no progress");
    }
}

fn is_terminal_entry(e: &Entry) -> bool {
    matches!(e, Entry::Status(s) if s == "closed" || s == "superseded" || s.starts_with("given-up"))
}

impl Harness for Reference {
    fn name(&self) -> &'static str {
        "reference"
    }

    fn run(&self, case: &Case) -> Run {
        let mut lp = Loop {
            session: Session::new(case.config.clone(), Instant::ZERO, case.seed).unwrap(),
            now: Instant::ZERO,
            script: case.script.clone(),
            trace: Vec::new(),
            pending: VecDeque::new(),
        };
        lp.settle();
        for (n, step) in case.program.iter().enumerate() {
            let now = lp.now;
            let refused = match step {
                Step::Event(v) => lp
                    .session
                    .send_event(now, batch::Event::new(v.clone()))
                    .is_err(),
                Step::Internal(v) => lp
                    .session
                    .send_internal_event(now, batch::Event::new(v.clone()))
                    .is_err(),
                Step::Ack(id) => lp
                    .session
                    .ack_delivery(now, id, DeliveryStatus::Processed)
                    .is_err(),
                Step::Patch(p) => lp.session.patch_state(now, p.clone()).is_err(),
                Step::Flush => {
                    // After the end the core refuses a flush, and nothing is reported for it;
                    // the shims answer the call at once (each in its own way), so its result
                    // is not part of the trace.
                    if lp.session.flush(now, now + FLUSH).is_ok() {
                        lp.wait_for(|t| t.iter().any(|e| matches!(e, Entry::Flush(_))));
                    }
                    false
                }
                Step::Close => {
                    lp.session.close(now, now + FLUSH);
                    if !lp.trace.iter().any(is_terminal_entry) {
                        lp.wait_for(|t| t.iter().any(is_terminal_entry));
                    }
                    false
                }
            };
            if refused {
                lp.trace.push(Entry::Refused(n));
            }
            lp.settle();
        }
        let trace = lp.trace;
        let statuses = trace
            .iter()
            .filter_map(|e| match e {
                Entry::Status(s) => Some(s.clone()),
                _ => None,
            })
            .collect();
        let wire = trace
            .iter()
            .filter_map(|e| match e {
                Entry::Request(endpoint, body) => Some((*endpoint, body.clone())),
                _ => None,
            })
            .collect();
        Run {
            trace,
            wire,
            statuses,
        }
    }
}

// ----- the smol shim, with a scripted transport -----

/// Answers from the script the moment it is asked, and records what it was asked.
#[derive(Clone)]
struct ScriptedTransport {
    script: Arc<Mutex<Script>>,
    wire: Arc<Mutex<Vec<(Endpoint, String)>>>,
}

impl Transport for ScriptedTransport {
    fn send(&self, request: HttpRequest) -> BoxFuture<Result<Response, TransportError>> {
        self.wire.lock().unwrap().push((
            request.endpoint,
            String::from_utf8_lossy(&request.body).into(),
        ));
        match self.script.lock().unwrap().next(request.endpoint) {
            Answer::Respond(r) => Box::pin(async move { Ok(r) }),
            Answer::Hang => Box::pin(futures_lite::future::pending()),
        }
    }
}

struct Smol;

impl Harness for Smol {
    fn name(&self) -> &'static str {
        "smol"
    }

    fn run(&self, case: &Case) -> Run {
        let trace = Arc::new(Mutex::new(Vec::new()));
        let transport = ScriptedTransport {
            script: Arc::new(Mutex::new(case.script.clone())),
            wire: Arc::new(Mutex::new(Vec::new())),
        };
        let observed = Arc::clone(&trace);
        let (tether, driver) = Builder::new("http://127.0.0.1:9/v1/code/sessions/parity")
            .config(case.config.clone())
            .seed(case.seed)
            .transport(transport.clone())
            .observer(move |o| observed.lock().unwrap().push(entry(o)))
            .into_parts()
            .unwrap();
        // One thread runs both the driver and the caller, so each call settles (the scripted
        // answers are ready at once) before the next one is made.
        let executor = smol::Executor::new();
        executor.spawn(driver).detach();
        let statuses = tether.statuses();
        let caller = async {
            let mut seen = Vec::new();
            while !matches!(seen.last(), Some(Status::Connected)) {
                seen.push(statuses.recv().await.unwrap());
            }
            for (n, step) in case.program.iter().enumerate() {
                let t = Duration::from_secs(1);
                let refused = match step {
                    Step::Event(v) => tether.send_event(v.clone(), t).await.is_err(),
                    Step::Internal(v) => tether.send_internal_event(v.clone(), t).await.is_err(),
                    Step::Ack(id) => tether
                        .ack_delivery(id, DeliveryStatus::Processed, t)
                        .await
                        .is_err(),
                    Step::Patch(p) => tether.patch_state(p.clone()).await.is_err(),
                    Step::Flush => {
                        tether.flush(FLUSH).await.unwrap();
                        false
                    }
                    Step::Close => {
                        tether.close(FLUSH).await.unwrap();
                        false
                    }
                };
                if refused {
                    trace.lock().unwrap().push(Entry::Refused(n));
                }
            }
            while let Ok(s) = statuses.try_recv() {
                seen.push(s);
            }
            seen
        };
        let bounded = futures_lite::future::or(async { Some(caller.await) }, async {
            async_io::Timer::after(Duration::from_secs(30)).await;
            None
        });
        let seen = smol::block_on(executor.run(bounded)).expect("the smol run took over 30 s");
        let trace = trace.lock().unwrap().clone();
        let wire = transport.wire.lock().unwrap().clone();
        Run {
            trace,
            wire,
            statuses: seen.iter().map(normal_status).collect(),
        }
    }
}

/// Every way of driving the core that must agree with the reference. The blocking shim's
/// harness goes here once its branch is merged.
fn harnesses() -> Vec<Box<dyn Harness>> {
    vec![Box::new(Smol)]
}

fn check(case: &Case) -> Run {
    let reference = Reference.run(case);
    for harness in harnesses() {
        let run = harness.run(case);
        let name = harness.name();
        for (i, (a, b)) in reference.trace.iter().zip(&run.trace).enumerate() {
            assert_eq!(
                a, b,
                "{}: {name} differs from the reference at entry {i}",
                case.name
            );
        }
        assert_eq!(
            reference.trace.len(),
            run.trace.len(),
            "{}: {name} trace length; tail {:?}",
            case.name,
            &run.trace[reference.trace.len().min(run.trace.len())..]
        );
        assert_eq!(
            reference.wire, run.wire,
            "{}: {name}: requests on the wire",
            case.name
        );
        assert_eq!(
            reference.statuses, run.statuses,
            "{}: {name}: status stream",
            case.name
        );
    }
    reference
}

// ----- the cases -----

fn config() -> SessionConfig {
    let mut config = SessionConfig::new("parity");
    config.request_timeout = Duration::from_millis(300);
    // A linger window, so that three events go as one batch (and a 413 can split it).
    config.events.linger = Duration::from_millis(40);
    assert_eq!(config.events.envelope, Envelope::Events);
    config
}

#[test]
fn the_smol_driver_matches_the_reference_loop_through_faults_and_close() {
    let script = Script::default()
        .then(
            Endpoint::Register,
            Answer::Respond(Response::new(200, r#"{"worker_epoch":5}"#)),
        )
        .then(
            Endpoint::GetWorker,
            Answer::Respond(Response::new(
                200,
                r#"{"worker":{"worker_status":"idle","external_metadata":{"a":1}}}"#,
            )),
        )
        .then(
            Endpoint::PutWorker,
            Answer::Respond(ok(Endpoint::PutWorker)),
        ) // init
        .then(Endpoint::Events, status(413)) // the batch of three is split
        .then(Endpoint::Events, Answer::Respond(ok(Endpoint::Events)))
        .then(Endpoint::Events, status(503)) // retried after the backoff
        .then(Endpoint::PutWorker, Answer::Hang) // cancelled at its deadline, retried
        .then(Endpoint::InternalEvents, status(400)); // a dead letter
    let case = Case {
        name: "faults-then-close",
        config: config(),
        seed: 42,
        script,
        program: vec![
            Step::Event(json!({"n": 1})),
            Step::Event(json!({"n": 2})),
            Step::Event(json!({"n": 3, "uuid": "fixed-3"})),
            Step::Flush,
            Step::Patch(json!({"worker_status": "busy", "external_metadata": {"b": 2}})),
            Step::Internal(json!({"i": 1})),
            Step::Ack("evt-1"),
            Step::Flush,
            Step::Patch(json!({"external_metadata": {"a": null}})),
            Step::Event(json!({"n": 4})),
            Step::Close,
            Step::Event(json!({"n": 5})), // after close: refused
        ],
    };
    let run = check(&case);
    // The script did what it was meant to: the trace can tell a split, a retry, a cancel, a
    // dead letter and a refused call apart.
    let has = |f: &dyn Fn(&Entry) -> bool| run.trace.iter().any(f);
    assert!(has(&|e| matches!(e, Entry::Cancel(_))));
    assert!(has(
        &|e| matches!(e, Entry::HandedBack("internal-events", r, _) if r.contains("400"))
    ));
    assert!(has(
        &|e| matches!(e, Entry::Status(s) if s.starts_with("retrying"))
    ));
    assert!(has(
        &|e| matches!(e, Entry::Delivered("events", ids) if ids.len() == 2)
    ));
    assert!(has(&|e| matches!(e, Entry::Refused(11))));
    assert_eq!(run.statuses.last().map(String::as_str), Some("closed"));
}

#[test]
fn the_smol_driver_matches_the_reference_loop_when_superseded() {
    let script = Script::default()
        .then(
            Endpoint::Register,
            Answer::Respond(Response::new(200, r#"{"worker_epoch":9}"#)),
        )
        .then(
            Endpoint::PutWorker,
            Answer::Respond(ok(Endpoint::PutWorker)),
        )
        .then(Endpoint::Events, Answer::Respond(ok(Endpoint::Events)))
        .then(Endpoint::PutWorker, status(409));
    let case = Case {
        name: "superseded",
        config: config(),
        seed: 7,
        script,
        program: vec![
            Step::Event(json!({"n": 1})),
            Step::Flush,
            Step::Event(json!({"n": 2})),
            Step::Patch(json!({"worker_status": "late"})), // 409: superseded
            Step::Flush,
            Step::Event(json!({"n": 3})), // refused: the session ended
            Step::Close,
        ],
    };
    let run = check(&case);
    assert!(run
        .trace
        .iter()
        .any(|e| matches!(e, Entry::HandedBack("events", r, events) if r == "Superseded" && events.len() == 1)));
    assert!(run
        .trace
        .iter()
        .any(|e| matches!(e, Entry::StateUnacknowledged(_))));
    assert!(run.trace.iter().any(|e| matches!(e, Entry::Refused(5))));
    assert_eq!(run.statuses.last().map(String::as_str), Some("superseded"));
}

#[test]
fn a_changed_response_changes_the_trace() {
    // The comparison can fail: the same program against a script that differs in one answer.
    let base = Script::default();
    let changed = Script::default().then(Endpoint::Events, status(503));
    let program = vec![Step::Event(json!({"n": 1})), Step::Flush, Step::Close];
    let run = |script: Script| {
        Reference
            .run(&Case {
                name: "x",
                config: config(),
                seed: 1,
                script,
                program: program.clone(),
            })
            .trace
    };
    let (base, changed) = (run(base), run(changed));
    assert!(
        base.contains(&Entry::Status("connected".into())),
        "{base:?}"
    );
    assert_ne!(base, changed);
}
