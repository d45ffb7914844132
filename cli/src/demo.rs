//! `tether demo`: a session (through the blocking or the smol shim) against an in-process server
//! with injected faults, checked against the server's own record.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tether_blocking::Tap;
use tether_blocking::runtime::HttpResponse;
use tether_core::backoff::{BackoffPolicy, ControllerConfig, Jitter};
use tether_core::patch::DocumentSchema;
use tether_core::session::{Output, RequestId, Session, SessionConfig, Status, TransportError};
use tether_server::{FaultPlan, Inspector, Server, ServerConfig};
use tether_sim::render::render;
use tether_sim::timeline::Recorder;

use crate::args::{Runtime, help_template, usage_error};
use crate::progress::Progress;
use crate::report::{CloseReport, Counters, status_json};
use crate::session::Builder;
use tether_blocking::Tether;

const AFTER_HELP: &str = "\
The server runs on 127.0.0.1 (a port the OS picks). Hangs last 1.5 s unless PLAN sets
hang-ms, and requests time out after 1 s, so faulted runs stay short. Progress goes to stderr:
a bar on a terminal, a line per tenth otherwise.

EXIT CODES:
    0   every event delivered once, in order, and the state converged
        (--sync: every client holds the server's threads, every message once, all synced)
    1   an event was lost or reordered, or the state did not converge (--sync: no convergence)
    2   a usage error
";

/// `tether demo` arguments.
#[derive(Debug, clap::Args)]
#[command(help_template = help_template!("demo"), after_help = AFTER_HELP)]
pub struct DemoArgs {
    /// events to stream, about 200 bytes each [default: 20000]; with --sync, messages per
    /// client [default: 300]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    events: Option<u64>,
    /// none | light | heavy, optionally with overrides such as `heavy,hang-ms=1500,5xx=0.2`
    #[arg(long, value_name = "PLAN", default_value = "heavy")]
    faults: String,
    /// seed of the session and the fault plan
    #[arg(long, value_name = "S", default_value_t = 1)]
    seed: u64,
    /// blocking | smol | tokio: drive the session with tether-blocking (threads), tether-smol
    /// (a task on smol) or tether-tokio (a task on a tokio runtime)
    #[arg(long, value_name = "R", default_value = "blocking")]
    runtime: Runtime,
    /// print the final report as one JSON object on stdout instead of text
    #[arg(long)]
    json: bool,
    /// draw the run's timeline (requests, statuses, queue depth) as an SVG into FILE
    #[arg(long, value_name = "FILE")]
    svg: Option<String>,
    /// keep a durable outbox in DIR (on every runtime; DIR must hold no events from an
    /// earlier run): each send waits until its event is durable
    #[arg(long, value_name = "DIR")]
    outbox: Option<String>,
    /// every-write | never | MILLISECONDS, as for pipe
    #[arg(long, value_name = "S", default_value = "every-write",
          value_parser = crate::pipe::sync_policy)]
    outbox_sync: tether_blocking::SyncPolicy,
    /// thread sync instead: 3 clients share the threads of one session, each adding N
    /// messages (one offline for the first half), and the run checks that every client and the
    /// server converge
    #[arg(long)]
    sync: bool,
    /// keep the server and its inspector page up after the run (printing the page's URL at the
    /// start, to watch the run live) until Ctrl-C
    #[arg(long)]
    serve: bool,
}

/// The demo's request deadline; the fault plan's hangs are made longer than it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
const DEFAULT_HANG: Duration = Duration::from_millis(1500);
const SESSION: &str = "demo";

struct Options {
    events: u64,
    faults: FaultPlan,
    seed: u64,
    runtime: Runtime,
    json: bool,
    svg: Option<String>,
    outbox: Option<String>,
    outbox_sync: tether_blocking::SyncPolicy,
    serve: bool,
}

fn options(args: &DemoArgs) -> Result<Options, String> {
    let plan = args.faults.as_str();
    let mut faults: FaultPlan = plan
        .parse()
        .map_err(|e| format!("invalid value `{plan}` for --faults: {e}"))?;
    if !plan.contains("seed=") {
        faults = faults.with_seed(args.seed);
    }
    if !plan.contains("hang-ms=") {
        faults = faults.with_hang_for(DEFAULT_HANG);
    }
    Ok(Options {
        events: args.events.unwrap_or(20_000),
        faults,
        seed: args.seed,
        runtime: args.runtime,
        json: args.json,
        svg: args.svg.clone(),
        outbox: args.outbox.clone(),
        outbox_sync: args.outbox_sync,
        serve: args.serve,
    })
}

pub fn run(args: &DemoArgs) -> ExitCode {
    let options = match options(args) {
        Ok(o) => o,
        Err(e) => return usage_error("demo", e),
    };
    if args.sync && args.serve {
        return usage_error("demo", "--serve is not available with --sync yet");
    }
    let result = if args.sync {
        crate::sync_demo::demo(&crate::sync_demo::SyncOptions {
            messages: args.events.unwrap_or(300),
            faults: options.faults,
            seed: options.seed,
            runtime: options.runtime,
        })
    } else {
        demo(&options)
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("tether demo: {e}");
            ExitCode::from(1)
        }
    }
}

/// The session's configuration: the protocol's defaults, but 1 s request deadlines and a
/// quicker retry curve (50 ms doubling to 1 s) so a faulted demo takes seconds, not minutes.
fn session_config() -> SessionConfig {
    session_config_for(SESSION)
}

/// [`session_config`] for a session named `id`.
pub(crate) fn session_config_for(id: &str) -> SessionConfig {
    let quick = BackoffPolicy {
        base: Duration::from_millis(50),
        cap: Duration::from_secs(1),
        jitter: Jitter::Additive {
            range: Duration::from_millis(50),
            above_cap: true,
        },
        floor: None,
        max_hint: Duration::from_secs(2),
    };
    let mut config = SessionConfig::new(id);
    config.events.backoff = quick;
    config.internal_events.backoff = quick;
    config.delivery.backoff = quick;
    config.state.backoff = quick;
    config.connect = ControllerConfig {
        policy: quick,
        max_attempts: Some(20),
        total_deadline: None,
    };
    config.request_timeout = REQUEST_TIMEOUT;
    config.heartbeat_timeout = REQUEST_TIMEOUT;
    config.heartbeat.interval = Duration::from_secs(5);
    config
}

/// Event `seq`: about 200 bytes of JSON with its `uuid`.
fn event(seq: u64) -> Value {
    json!({
        "type": "demo.tick",
        "seq": seq,
        "text": "the quick brown fox jumps over the lazy dog, again and again and again",
    })
}

/// Patch `i` of the series: the status, a progress counter, and metadata set and deleted.
fn patch(i: u64, last: bool) -> Value {
    let mut meta = Map::new();
    meta.insert("progress".into(), json!(i));
    meta.insert(format!("slot{}", i % 4), json!({"i": i}));
    meta.insert(
        format!("slot{}", (i + 2) % 4),
        if i % 3 == 0 { Value::Null } else { json!(i) },
    );
    json!({
        "worker_status": if last { "done" } else { "running" },
        "external_metadata": meta,
    })
}

fn demo(options: &Options) -> Result<bool, Box<dyn std::error::Error>> {
    let started = wall_clock::now();
    let mut config = ServerConfig::default().with_faults(options.faults.clone());
    if options.serve {
        config = config.with_change_log(|change| eprintln!("inspector: {change}"));
    }
    let server = Server::start(config)?;
    let url = server.session_url(SESSION);
    if options.serve {
        eprintln!("tether demo: watch it live at {}", server.inspector_url());
    }
    eprintln!(
        "tether demo: {} events against {} on {} (faults {:.0}%, seed {})",
        options.events,
        url,
        match options.runtime {
            Runtime::Blocking => "tether-blocking",
            Runtime::Smol => "tether-smol",
            Runtime::Tokio => "tether-tokio",
        },
        options.faults.mix.total() * 100.0,
        options.seed
    );
    let recorder = options.svg.as_ref().map(|_| {
        let title = format!(
            "tether demo --seed {} ({} events)",
            options.seed, options.events
        );
        Arc::new(Mutex::new(Recorder::new(title)))
    });
    let mut builder = Builder::new(options.runtime, &url)
        .seed(options.seed)
        .config(session_config());
    if let Some(recorder) = &recorder {
        builder = builder.tap(TimelineTap(Arc::clone(recorder)));
    }
    if let Some(dir) = &options.outbox {
        use tether_blocking::Store as _;
        let mut store = tether_store::SqliteStore::open(dir)?;
        if !store.read(None, 1)?.is_empty() {
            return Err(format!(
                "the outbox in {dir} holds events from an earlier run; demo needs an empty one \
                 (pipe --outbox replays them)"
            )
            .into());
        }
        builder = builder.outbox(store, options.outbox_sync);
    }
    let tether = builder.start()?;
    let statuses = tether.statuses();
    let patches = 100.min(options.events);
    let mut given = Vec::new();
    let done = AtomicBool::new(false);
    let tether_ref = &tether;
    let given_ref = &mut given;
    let done_ref = &done;
    let view = thread::scope(|scope| -> Result<Value, Box<dyn std::error::Error>> {
        scope.spawn(move || progress(tether_ref, options.events, done_ref));
        let sent = send_all(tether_ref, options.events, patches, given_ref);
        let flushed = tether_ref.flush(Duration::from_secs(120)).wait();
        done_ref.store(true, Ordering::Release);
        sent?;
        if let Err(e) = flushed {
            eprintln!("tether demo: flush: {e}");
        }
        Ok(tether_ref.state())
    })?;
    let report = tether.close(Duration::from_secs(10)).wait();
    let elapsed = started.elapsed();
    if let (Some(path), Some(recorder)) = (&options.svg, recorder) {
        let recorder = std::mem::replace(
            &mut *recorder.lock().unwrap_or_else(PoisonError::into_inner),
            Recorder::new(""),
        );
        let end = tether_core::Instant::from_duration(elapsed);
        std::fs::write(path, render(&recorder.finish(end)))?;
    }
    let transitions: Vec<Status> = statuses.try_iter().flatten().collect();
    let ok = check(
        &server.inspector(),
        &report,
        &given,
        &view,
        options.events,
        &transitions,
        elapsed,
        options.json,
    );
    if options.serve {
        let line = format!(
            "inspector: {} (the server stays up; Ctrl-C to stop)",
            server.inspector_url()
        );
        // With --json, stdout holds one JSON object: the URL goes to stderr then.
        if options.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
        loop {
            thread::park();
        }
    }
    server.shutdown()?;
    Ok(ok)
}

/// Draws the run: every request from its send to its answer, the statuses, and what the
/// session held after each drain, each at the core's time.
struct TimelineTap(Arc<Mutex<Recorder>>);

impl TimelineTap {
    fn recorder(&self) -> std::sync::MutexGuard<'_, Recorder> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Tap for TimelineTap {
    fn output(&mut self, at: tether_core::Instant, output: &Output) {
        match output {
            Output::Send(request) => self.recorder().sent(at, request),
            Output::Cancel(id) => self.recorder().cancelled(at, *id),
            Output::Status(status) => self.recorder().status(at, *status),
            _ => {}
        }
    }

    fn answer(
        &mut self,
        at: tether_core::Instant,
        id: RequestId,
        answer: Result<&HttpResponse, &TransportError>,
    ) {
        match answer {
            Ok(r) => self.recorder().response(
                at,
                id,
                r.status,
                r.retry_after.as_deref(),
                r.date.as_deref(),
            ),
            Err(_) => self.recorder().transport_error(at, id),
        }
    }

    fn drained(&mut self, at: tether_core::Instant, session: &Session) {
        self.recorder().sample_session(at, session);
    }
}

/// Streams the events, with a patch after every `events / patches` of them.
fn send_all(
    tether: &Tether,
    events: u64,
    patches: u64,
    given: &mut Vec<Value>,
) -> Result<(), Box<dyn std::error::Error>> {
    let every = events / patches;
    for seq in 0..events {
        tether
            .send_event(event(seq), Duration::from_secs(60))
            .wait()?;
        let n = given.len() as u64;
        if seq % every == every - 1 && n < patches {
            let p = patch(n, n == patches - 1);
            tether.patch_state(p.clone())?;
            given.push(p);
        }
    }
    Ok(())
}

/// Shows progress until `done`: a bar on a terminal, a line per 10 % otherwise.
fn progress(tether: &Tether, total: u64, done: &AtomicBool) {
    let progress = Progress::new(Some(total), "delivered");
    while !done.load(Ordering::Acquire) {
        let counters = tether.counters();
        let message = format!("{} retries, {}", counters.events.retries, tether.status());
        progress.set(counters.events.delivered, message);
        thread::park_timeout(Duration::from_millis(100));
    }
    progress.finish();
}

#[allow(
    clippy::too_many_arguments,
    reason = "one call site; the facts it checks"
)]
fn check(
    inspector: &Inspector,
    report: &CloseReport,
    given: &[Value],
    view: &Value,
    total: u64,
    transitions: &[Status],
    elapsed: Duration,
    json: bool,
) -> bool {
    let stored = inspector.events(SESSION);
    let seqs: Vec<u64> = stored.iter().filter_map(|e| e["seq"].as_u64()).collect();
    let mut seen = vec![false; usize::try_from(total).unwrap_or(0)];
    for &s in &seqs {
        if let Some(slot) = seen.get_mut(usize::try_from(s).unwrap_or(usize::MAX)) {
            *slot = true;
        }
    }
    let lost = seen.iter().filter(|s| !**s).count();
    let reordered = seqs.windows(2).filter(|w| w[1] <= w[0]).count();
    let duplicates = inspector.duplicates(SESSION).count;

    let schema = DocumentSchema::default();
    let mut expected = json!({});
    for p in given {
        if let Some(map) = p.as_object() {
            schema.apply(&mut expected, map);
        }
    }
    if expected.get("worker_status").is_none() {
        expected["worker_status"] = json!("idle");
    }
    let mut document = inspector.document(SESSION).unwrap_or(Value::Null);
    if let Some(map) = document.as_object_mut() {
        map.remove("worker_epoch");
    }
    let mut view = view.clone();
    if let Some(map) = view.as_object_mut() {
        map.remove("worker_epoch");
    }
    let converged = document == expected && view == expected;

    let c: &Counters = &report.counters;
    let f = &c.session.failures;
    // What the server holds, as one number: the same seed must leave the same record whatever
    // runtime drove the session (events in order, the document).
    let record = {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        seqs.hash(&mut hasher);
        document.to_string().hash(&mut hasher);
        hasher.finish()
    };
    let stats = inspector.stats(SESSION);
    if !json {
        println!("events delivered      {} of {}", seqs.len(), total);
        println!("server record         {record:016x} (events in order, the document)");
        println!("events lost           {lost}");
        println!("events reordered      {reordered}");
        println!("undelivered (report)  {}", report.undelivered.len());
        println!("duplicates filtered   {duplicates} (by the server)");
        println!(
            "batches               {} sent, {} retried",
            c.events.batches_sent, c.events.retries
        );
        println!(
            "retries by cause      throttled {}, 5xx {}, timeouts {}, transport {}, bad body {}, \
             auth {}, too large {}",
            f.throttled, f.server_errors, f.timeouts, f.transport, f.bad_body, f.auth, f.too_large
        );
        println!(
            "state                 {} PUTs for {} patches ({} acknowledged), {}",
            c.state.puts_sent,
            given.len(),
            c.state.puts_acknowledged,
            if converged {
                "converged"
            } else {
                "DID NOT CONVERGE"
            }
        );
        println!(
            "heartbeats            {} sent, {} accepted, {} at the server",
            c.session.heartbeats_sent,
            c.session.heartbeats_ok,
            inspector.heartbeats(SESSION).len()
        );
        println!(
            "status transitions    {} (final: {})",
            c.session.status_changes.max(transitions.len() as u64),
            report.status
        );
        println!(
            "server                {} requests, {} faults injected",
            stats.total_requests(),
            stats.total_faults()
        );
        println!("elapsed               {:.2} s", elapsed.as_secs_f64());
        if !converged {
            println!("expected document     {expected}");
            println!("server document       {document}");
            println!("client view           {view}");
        }
    }
    let ok = lost == 0
        && reordered == 0
        && converged
        && report.undelivered.is_empty()
        && report.status == Status::Closed;
    if json {
        let summary = json!({
            "ok": ok,
            "server_record": format!("{record:016x}"),
            "events": {"total": total, "delivered": seqs.len(), "lost": lost,
                       "reordered": reordered, "undelivered": report.undelivered.len(),
                       "duplicates_filtered": duplicates},
            "batches": {"sent": c.events.batches_sent, "retried": c.events.retries},
            "retries_by_cause": {"throttled": f.throttled, "server_errors": f.server_errors,
                                 "timeouts": f.timeouts, "transport": f.transport,
                                 "bad_body": f.bad_body, "auth": f.auth,
                                 "too_large": f.too_large},
            "state": {"puts": c.state.puts_sent, "patches": given.len(),
                      "acknowledged": c.state.puts_acknowledged, "converged": converged},
            "heartbeats": {"sent": c.session.heartbeats_sent, "ok": c.session.heartbeats_ok,
                           "at_server": inspector.heartbeats(SESSION).len()},
            "status": status_json(&report.status),
            "status_transitions": c.session.status_changes.max(transitions.len() as u64),
            "server": {"requests": stats.total_requests(), "faults": stats.total_faults()},
            "elapsed_s": elapsed.as_secs_f64(),
        });
        println!("{summary}");
    } else {
        println!("{}", if ok { "OK" } else { "FAILED" });
    }
    ok
}

pub(crate) fn wall_clock_now() -> std::time::Instant {
    wall_clock::now()
}

/// The demo's one wall-clock reading (clippy bans `Instant::now` in the workspace's core).
mod wall_clock {
    #[allow(clippy::disallowed_methods, reason = "the CLI is an I/O edge")]
    pub fn now() -> std::time::Instant {
        std::time::Instant::now()
    }
}
