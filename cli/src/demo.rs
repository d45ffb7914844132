//! `tether demo`: a session (through the blocking or the smol shim) against an in-process server
//! with injected faults, checked against the server's own record.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tether_core::backoff::{BackoffPolicy, ControllerConfig, Jitter};
use tether_core::patch::DocumentSchema;
use tether_core::session::{SessionConfig, Status};
use tether_server::{FaultPlan, Inspector, Server, ServerConfig};

use crate::args::{usage_error, ArgError, Args, Runtime};
use crate::report::{CloseReport, Counters};
use crate::worker::{Builder, Worker};

pub const USAGE: &str = "\
tether demo: run a session against an in-process server with injected faults, and check it

USAGE:
    tether demo [--events N] [--faults PLAN] [--seed S] [--runtime blocking|smol]

OPTIONS:
    --events N       events to stream, about 200 bytes each [default: 20000]
    --faults PLAN    none | light | heavy, optionally with overrides such as
                     `heavy,hang-ms=1500,5xx=0.2` [default: heavy]
    --seed S         seed of the session and the fault plan [default: 1]
    --runtime R      blocking | smol: drive the session with tether-blocking (threads)
                     or tether-smol (a task on smol) [default: blocking]
    --outbox DIR     keep a durable outbox in DIR (blocking runtime only; DIR must hold no
                     events from an earlier run): each send waits until its event is durable
    --outbox-sync S  every-write | never | MILLISECONDS, as for pipe [default: every-write]
    -h, --help       print this help

The server runs on 127.0.0.1 (a port the OS picks). Hangs last 1.5 s unless PLAN sets
hang-ms, and requests time out after 1 s, so faulted runs stay short.

EXIT CODES:
    0   every event delivered once, in order, and the state converged
    1   an event was lost or reordered, or the state did not converge
    2   a usage error
";

/// The demo's request deadline; the fault plan's hangs are made longer than it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
const DEFAULT_HANG: Duration = Duration::from_millis(1500);
const SESSION: &str = "demo";

struct Options {
    events: u64,
    faults: FaultPlan,
    seed: u64,
    runtime: Runtime,
    outbox: Option<String>,
    outbox_sync: tether_blocking::SyncPolicy,
}

fn options(parsed: &Args) -> Result<Options, ArgError> {
    let events: u64 = parsed.parsed("events", 20_000)?;
    if events == 0 {
        return Err(ArgError("--events must be at least 1".into()));
    }
    let seed: u64 = parsed.parsed("seed", 1)?;
    let runtime = parsed.parsed("runtime", Runtime::Blocking)?;
    let plan = parsed.value("faults").unwrap_or("heavy");
    let mut faults: FaultPlan = plan
        .parse()
        .map_err(|e| ArgError(format!("invalid value `{plan}` for --faults: {e}")))?;
    if !plan.contains("seed=") {
        faults = faults.with_seed(seed);
    }
    if !plan.contains("hang-ms=") {
        faults = faults.with_hang_for(DEFAULT_HANG);
    }
    let outbox = parsed.value("outbox").map(str::to_owned);
    if outbox.is_some() && runtime != Runtime::Blocking {
        return Err(ArgError("--outbox needs --runtime blocking".into()));
    }
    Ok(Options {
        events,
        faults,
        seed,
        runtime,
        outbox,
        outbox_sync: crate::pipe::sync_policy(parsed.value("outbox-sync"))?,
    })
}

pub fn run(args: &[String]) -> ExitCode {
    let parsed = match Args::parse(
        args,
        &[
            "events",
            "faults",
            "seed",
            "runtime",
            "outbox",
            "outbox-sync",
        ],
        &[],
    ) {
        Ok(p) => p,
        Err(e) => return usage_error("demo", &e, USAGE),
    };
    if parsed.help {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let options = match options(&parsed) {
        Ok(o) => o,
        Err(e) => return usage_error("demo", &e, USAGE),
    };
    match demo(&options) {
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
    let mut config = SessionConfig::new(SESSION);
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
    let server = Server::start(ServerConfig::default().with_faults(options.faults.clone()))?;
    let url = server.session_url(SESSION);
    eprintln!(
        "tether demo: {} events against {} on {} (faults {:.0}%, seed {})",
        options.events,
        url,
        match options.runtime {
            Runtime::Blocking => "tether-blocking",
            Runtime::Smol => "tether-smol",
        },
        options.faults.rates.total() * 100.0,
        options.seed
    );
    let mut builder = Builder::new(options.runtime, &url)
        .seed(options.seed)
        .config(session_config());
    if let Some(dir) = &options.outbox {
        use tether_blocking::Store as _;
        let mut store = tether_store::SqliteStore::open(dir)?;
        let held = store.read(None, 1)?.len();
        if held > 0 {
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
        let flushed = tether_ref.flush(Duration::from_secs(120));
        done_ref.store(true, Ordering::Release);
        sent?;
        if let Err(e) = flushed {
            eprintln!("tether demo: flush: {e}");
        }
        Ok(tether_ref.state())
    })?;
    let report = tether.close(Duration::from_secs(10));
    let elapsed = started.elapsed();
    let transitions: Vec<Status> = statuses.ready();
    let ok = check(
        &server.inspector(),
        &report,
        &given,
        &view,
        options.events,
        &transitions,
        elapsed,
    );
    server.shutdown()?;
    Ok(ok)
}

/// Streams the events, with a patch after every `events / patches` of them.
fn send_all(
    tether: &Worker,
    events: u64,
    patches: u64,
    given: &mut Vec<Value>,
) -> Result<(), Box<dyn std::error::Error>> {
    let every = events / patches;
    for seq in 0..events {
        tether.send_event(event(seq), Duration::from_secs(60))?;
        let n = given.len() as u64;
        if seq % every == every - 1 && n < patches {
            let p = patch(n, n == patches - 1);
            tether.patch_state(p.clone())?;
            given.push(p);
        }
    }
    Ok(())
}

/// Prints progress until `done`: a bar on a terminal, a line per 10 % otherwise.
fn progress(tether: &Worker, total: u64, done: &AtomicBool) {
    let terminal = std::io::stderr().is_terminal();
    let mut next_line = total / 10;
    while !done.load(Ordering::Acquire) {
        let counters = tether.counters();
        let delivered = counters.events.delivered;
        if terminal {
            let width = 40;
            let filled = usize::try_from(delivered * width / total.max(1)).unwrap_or(0);
            eprint!(
                "\r[{}{}] {delivered}/{total} delivered, {} retries, {}   ",
                "#".repeat(filled),
                ".".repeat(40usize.saturating_sub(filled)),
                counters.events.retries,
                tether.status()
            );
            let _ = std::io::stderr().flush();
        } else if delivered >= next_line && next_line > 0 {
            eprintln!("delivered {delivered}/{total}");
            while next_line <= delivered {
                next_line += total / 10;
            }
        }
        thread::park_timeout(Duration::from_millis(100));
    }
    if terminal {
        eprintln!();
    }
}

fn check(
    inspector: &Inspector,
    report: &CloseReport,
    given: &[Value],
    view: &Value,
    total: u64,
    transitions: &[Status],
    elapsed: Duration,
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
    let ok = lost == 0
        && reordered == 0
        && converged
        && report.undelivered.is_empty()
        && report.status == Status::Closed;
    println!("{}", if ok { "OK" } else { "FAILED" });
    ok
}

/// The demo's one wall-clock reading (clippy bans `Instant::now` in the workspace's core).
mod wall_clock {
    #[allow(clippy::disallowed_methods, reason = "the CLI is an I/O edge")]
    pub fn now() -> std::time::Instant {
        std::time::Instant::now()
    }
}
