//! Parity: every shim's driver — smol's, tokio's and the blocking one's — fed the same scripted server,
//! produce the same core trace as a plain synchronous loop driving
//! `tether_core::session::Session` with the same responses in the same order (docs/ARCHITECTURE.md,
//! convention 8).
//!
//! A trace is the core's outputs in order — requests (endpoint and body bytes), cancels,
//! statuses (`Retrying` without its wall-clock instant), deliveries, hand-backs, state
//! reports, flush results — plus the results of the caller's calls. Wall-clock times are left
//! out.
//!
//! Each way of driving the core is a [`Harness`]. The reference is [`Reference`]; the smol
//! shim is [`Smol`] (a scripted `tether_smol::Transport`), the tokio shim is [`Tokio`] (the same
//! script as a `tether_tokio::Transport`, on a `current_thread` runtime), the blocking shim is [`Blocking`] (a
//! scripted `tether_blocking::Transport` on its worker threads). Each shim's trace comes from
//! its builder's `observer` hook.
//!
//! The reference answers the oldest request first and settles everything before the next call;
//! the smol and tokio harnesses get that from one thread. The blocking shim has threads, so its harness
//! makes the same order explicit: the scripted transport answers requests one at a time in the
//! order the core sent them, and the caller waits, after each call, until every request sent
//! has been answered (or is hanging) and every answer has reached the core.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant as StdInstant};

use serde_json::{Value, json};
use tether_core::Instant;
use tether_core::batch::{self, Envelope};
use tether_core::session::{
    DeliveryStatus, Endpoint, Output, RequestId, Response, Session, SessionConfig, Status,
    TransportError,
};
use tether_smol::runtime::{AsyncTransport, BoxFuture, HttpRequest, HttpResponse};

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
    /// What each `flush` call answered the caller, in order.
    flushes: Vec<&'static str>,
}

/// A flush's answer, as every shim must give it for the same core trace.
fn flush_answer(answer: &Result<(), tether_driver::FlushError>) -> &'static str {
    match answer {
        Ok(()) => "done",
        Err(tether_driver::FlushError::TimedOut) => "timed out",
        Err(tether_driver::FlushError::Ended(_)) => "ended",
        Err(_) => "other",
    }
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
            // The core's bounded drain: a livelock fails the test instead of hanging it.
            let mut bound = tether_core::DrainBound::new(self.now, 100_000);
            let wake = loop {
                match bound.poll(&mut self.session).expect("the core livelocked") {
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
        let mut flushes = Vec::new();
        let mut lp = Loop {
            session: Session::new(
                case.config.clone(),
                tether_core::Rng::new(case.seed),
                Instant::ZERO,
            )
            .unwrap(),
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
                    // every shim answers the call at once with `Ended`.
                    let answer = if lp.session.flush(now, now + FLUSH).is_ok() {
                        let from = lp.trace.len();
                        lp.wait_for(|t| t.iter().any(|e| matches!(e, Entry::Flush(_))));
                        let done = lp.trace[from..].iter().find_map(|e| match e {
                            Entry::Flush(done) => Some(*done),
                            _ => None,
                        });
                        if done == Some(true) {
                            "done"
                        } else {
                            "timed out"
                        }
                    } else {
                        "ended"
                    };
                    flushes.push(answer);
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
            flushes,
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

impl AsyncTransport for ScriptedTransport {
    fn send(&self, request: HttpRequest) -> BoxFuture<Result<HttpResponse, TransportError>> {
        self.wire.lock().unwrap().push((
            request.route.worker().unwrap(),
            String::from_utf8_lossy(&request.body).into(),
        ));
        match self
            .script
            .lock()
            .unwrap()
            .next(request.route.worker().unwrap())
        {
            Answer::Respond(r) => Box::pin(async move { Ok(r.into()) }),
            Answer::Hang => Box::pin(futures_lite::future::pending()),
        }
    }
}

struct Smol;

/// Yields after each call: enough turns for the driver task to take every ready answer.
const SETTLE_YIELDS: usize = 32;

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
        let (tether, driver) = tether_smol::builder("http://127.0.0.1:9/v1/code/sessions/parity")
            .config(case.config.clone())
            .seed(case.seed)
            .transport(transport.clone())
            .observer(move |o| observed.lock().unwrap().push(entry(o)))
            .into_parts()
            .unwrap();
        // One thread runs both the driver and the caller. A call goes straight into the driver;
        // the caller then yields so that the driver task takes the scripted answers (ready at
        // once) and settles before the next call, as the reference loop does.
        let executor = smol::Executor::new();
        executor.spawn(driver).detach();
        let mut statuses = tether.statuses();
        let mut flushes = Vec::new();
        let caller = async {
            let mut seen = Vec::new();
            while !matches!(seen.last(), Some(Status::Connected)) {
                seen.push(statuses.next().await.map(Result::unwrap).unwrap());
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
                    Step::Patch(p) => tether.patch_state(p.clone()).is_err(),
                    Step::Flush => {
                        // After the end it answers `Ended`, as every shim does.
                        flushes.push(flush_answer(&tether.flush(FLUSH).await));
                        false
                    }
                    Step::Close => {
                        tether.close(FLUSH).await;
                        false
                    }
                };
                if refused {
                    trace.lock().unwrap().push(Entry::Refused(n));
                }
                for _ in 0..SETTLE_YIELDS {
                    futures_lite::future::yield_now().await;
                }
            }
            while let Some(s) = statuses.try_next().map(Result::unwrap) {
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
            flushes,
        }
    }
}

// ----- the tokio shim, with the same scripted transport (one `Transport` trait for every async
// runtime), on a current_thread runtime -----

struct Tokio;

impl Harness for Tokio {
    fn name(&self) -> &'static str {
        "tokio"
    }

    fn run(&self, case: &Case) -> Run {
        let trace = Arc::new(Mutex::new(Vec::new()));
        let transport = ScriptedTransport {
            script: Arc::new(Mutex::new(case.script.clone())),
            wire: Arc::new(Mutex::new(Vec::new())),
        };
        let observed = Arc::clone(&trace);
        let (tether, driver) = tether_tokio::builder("http://127.0.0.1:9/v1/code/sessions/parity")
            .config(case.config.clone())
            .seed(case.seed)
            .transport(transport.clone())
            .observer(move |o| observed.lock().unwrap().push(entry(o)))
            .into_parts()
            .unwrap();
        // As for smol: one thread runs the driver task and the caller, which yields after each
        // call so that the driver settles before the next one.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let mut statuses = tether.statuses();
        let mut flushes = Vec::new();
        let caller = async {
            tokio::spawn(driver);
            let mut seen = Vec::new();
            while !matches!(seen.last(), Some(Status::Connected)) {
                seen.push(statuses.next().await.map(Result::unwrap).unwrap());
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
                    Step::Patch(p) => tether.patch_state(p.clone()).is_err(),
                    Step::Flush => {
                        flushes.push(flush_answer(&tether.flush(FLUSH).await));
                        false
                    }
                    Step::Close => {
                        tether.close(FLUSH).await;
                        false
                    }
                };
                if refused {
                    trace.lock().unwrap().push(Entry::Refused(n));
                }
                for _ in 0..SETTLE_YIELDS {
                    tokio::task::yield_now().await;
                }
            }
            while let Some(s) = statuses.try_next().map(Result::unwrap) {
                seen.push(s);
            }
            seen
        };
        let seen = runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(30), caller).await })
            .expect("the tokio run took over 30 s");
        let trace = trace.lock().unwrap().clone();
        let wire = transport.wire.lock().unwrap().clone();
        Run {
            trace,
            wire,
            statuses: seen.iter().map(normal_status).collect(),
            flushes,
        }
    }
}

// ----- the blocking shim, with a scripted transport on its worker threads -----

/// What the blocking shim's scripted transport, its observer and the caller share.
#[derive(Default)]
struct Board {
    /// Closed until the caller has subscribed to the statuses, so that it sees them all.
    open: bool,
    /// The core's requests in the order it sent them (from the observer).
    sent: Vec<RequestId>,
    /// Requests the core cancelled (from the observer).
    cancelled: HashSet<RequestId>,
    /// Requests the transport has taken its turn on: answered, or hanging.
    served: HashSet<RequestId>,
    /// Calls of the transport that have returned (answers, and hangs let go).
    returned: u64,
    /// Of those, hangs the core had cancelled: their answers go nowhere.
    abandoned: u64,
    script: Script,
    trace: Vec<Entry>,
    wire: Vec<(Endpoint, String)>,
}

impl Board {
    fn resolved(&self, id: &RequestId) -> bool {
        self.served.contains(id) || self.cancelled.contains(id)
    }
}

#[derive(Default)]
struct Shared {
    board: Mutex<Board>,
    changed: Condvar,
}

/// How long any wait of the blocking harness may take before the test fails instead of hanging.
const STUCK: Duration = Duration::from_secs(30);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Board> {
        self.board.lock().unwrap()
    }

    /// Waits (at most [`STUCK`]) until `ready` holds.
    fn wait_until(&self, what: &str, ready: impl Fn(&Board) -> bool) -> MutexGuard<'_, Board> {
        let start = StdInstant::now();
        let mut board = self.lock();
        while !ready(&board) {
            assert!(start.elapsed() < STUCK, "blocking harness stuck: {what}");
            board = self
                .changed
                .wait_timeout(board, Duration::from_millis(10))
                .unwrap()
                .0;
        }
        board
    }
}

/// Answers the core's requests one at a time in the order it sent them: a request waits until
/// every earlier one has been answered, is hanging, or was cancelled. A hang holds its worker
/// until the core cancels it (or the request's backstop passes), then fails.
struct BlockingScript(Arc<Shared>);

impl tether_blocking::Transport for BlockingScript {
    fn send(
        &self,
        request: tether_blocking::runtime::HttpRequest,
    ) -> Result<tether_blocking::runtime::HttpResponse, TransportError> {
        let id = request.id;
        let mut board = self.0.wait_until("a request's turn", |b| {
            b.open
                && b.sent
                    .iter()
                    .take_while(|s| **s != id)
                    .all(|s| b.resolved(s))
        });
        board.wire.push((
            request.route.worker().unwrap(),
            String::from_utf8_lossy(&request.body).into(),
        ));
        let answer = board.script.next(request.route.worker().unwrap());
        board.served.insert(id);
        self.0.changed.notify_all();
        let result = match answer {
            Answer::Respond(r) => Ok(r.into()),
            Answer::Hang => {
                let backstop = request.backstop.unwrap_or(STUCK);
                let start = StdInstant::now();
                while !board.cancelled.contains(&id) && start.elapsed() < backstop {
                    board = self
                        .0
                        .changed
                        .wait_timeout(board, Duration::from_millis(10))
                        .unwrap()
                        .0;
                }
                // A cancelled request's answer never reaches the driver: it dropped the
                // request's future, as on every runtime.
                if board.cancelled.contains(&id) {
                    board.abandoned += 1;
                }
                Err(TransportError {
                    message: "scripted hang".into(),
                })
            }
        };
        board.returned += 1;
        self.0.changed.notify_all();
        result
    }
}

struct Blocking;

impl Blocking {
    /// Waits until every request the core has sent was answered (or hangs, or was cancelled)
    /// and every answer given has reached the driver: what the reference's `settle` does.
    fn settle(tether: &tether_blocking::Tether, shared: &Shared) {
        let start = StdInstant::now();
        loop {
            // A round trip to the driver: every answer queued before it has been handled, and
            // the outputs it caused are in the trace.
            let wire = tether.counters().wire;
            let handled = wire.responses + wire.transport_errors + wire.late_dropped;
            {
                let board = shared.lock();
                if board.returned - board.abandoned == handled
                    && board.sent.iter().all(|id| board.resolved(id))
                {
                    return;
                }
            }
            assert!(start.elapsed() < STUCK, "blocking harness stuck settling");
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

impl Harness for Blocking {
    fn name(&self) -> &'static str {
        "blocking"
    }

    fn run(&self, case: &Case) -> Run {
        let shared = Arc::new(Shared::default());
        shared.lock().script = case.script.clone();
        let observed = Arc::clone(&shared);
        let tether = tether_blocking::builder("http://127.0.0.1:9/v1/code/sessions/parity")
            .config(case.config.clone())
            .seed(case.seed)
            .transport(tether_blocking::Pooled::new(BlockingScript(Arc::clone(
                &shared,
            ))))
            .observer(move |o| {
                let mut board = observed.lock();
                match o {
                    Output::Send(r) => board.sent.push(r.id),
                    Output::Cancel(id) => {
                        board.cancelled.insert(*id);
                    }
                    _ => {}
                }
                board.trace.push(entry(o));
                observed.changed.notify_all();
            })
            .start()
            .unwrap();
        let statuses = tether.statuses();
        shared.lock().open = true;
        shared.changed.notify_all();
        Self::settle(&tether, &shared);
        let mut flushes = Vec::new();
        for (n, step) in case.program.iter().enumerate() {
            let t = Duration::from_secs(1);
            let live = &tether;
            let refused = match step {
                Step::Event(v) => live.send_event(v.clone(), t).wait().is_err(),
                Step::Internal(v) => live.send_internal_event(v.clone(), t).wait().is_err(),
                Step::Ack(id) => live
                    .ack_delivery(id, DeliveryStatus::Processed, t)
                    .wait()
                    .is_err(),
                Step::Patch(p) => live.patch_state(p.clone()).is_err(),
                Step::Flush => {
                    // After the end it answers `Ended`.
                    flushes.push(flush_answer(&live.flush(FLUSH).wait()));
                    false
                }
                Step::Close => {
                    // The handle is kept, so later calls are answered as on every runtime.
                    let report = live.close(FLUSH).wait();
                    assert!(report.status.is_terminal());
                    false
                }
            };
            if refused {
                shared.lock().trace.push(Entry::Refused(n));
            }
            Self::settle(&tether, &shared);
        }
        drop(tether);
        // The driver drops the status senders when it stops.
        let mut seen = Vec::new();
        while let Some(s) = statuses.recv_timeout(STUCK).map(Result::unwrap) {
            seen.push(normal_status(&s));
        }
        let board = shared.lock();
        Run {
            trace: board.trace.clone(),
            wire: board.wire.clone(),
            statuses: seen,
            flushes,
        }
    }
}

/// Every way of driving the core that must agree with the reference.
fn harnesses() -> Vec<Box<dyn Harness>> {
    vec![Box::new(Smol), Box::new(Tokio), Box::new(Blocking)]
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
        assert_eq!(
            reference.flushes, run.flushes,
            "{}: {name}: what each flush answered",
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
fn both_shims_match_the_reference_loop_through_faults_and_close() {
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
            Step::Flush,                  // after close: ended
        ],
    };
    let run = check(&case);
    // Every flush was answered, as the core decided, on every runtime (checked in `check`).
    assert_eq!(run.flushes, ["done", "done", "ended"]);
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
fn both_shims_match_the_reference_loop_when_superseded() {
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
    assert_eq!(run.flushes, ["done", "ended"]);
    assert!(run
        .trace
        .iter()
        .any(|e| matches!(e, Entry::HandedBack("events", r, events) if r == "Superseded" && events.len() == 1)));
    assert!(
        run.trace
            .iter()
            .any(|e| matches!(e, Entry::StateUnacknowledged(_)))
    );
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
