//! Many sessions on one tokio runtime or one smol executor against one `tether-server` in
//! **another process**, so that this process's memory is the client's alone.
//!
//! ```sh
//! target/release/tether serve --addr 127.0.0.1:8787 2>/dev/null &   # prints its URL
//! cargo run --release -p tether-benches --features examples --example many_sessions -- \
//!     --runtime tokio --sessions 10000 --seconds 60 --stream-seconds 20 --url http://127.0.0.1:8787
//! ```
//!
//! Phases: start N sessions (5 s heartbeat, epoch given) and wait until all are connected; stay
//! idle for `--seconds`; measure memory per idle session (RSS delta / N, from
//! `/proc/self/statm`, before the first session started and at the end of the idle phase) and
//! heartbeat lateness (`Tether::driver_stats().heartbeat_lateness` merged over all sessions);
//! then every session streams small events for `--stream-seconds` and flushes (events/s from
//! the client's own `delivered` counters, i.e. acknowledged by the server), with the lateness
//! of the beats of that phase alone; then all sessions close at once.
//!
//! tokio: all sessions share one cloned `tether_tokio::HttpTransport`, so one hyper client
//! pools connections across sessions (`--http h2c`: one HTTP/2 connection for all of them).
//! smol: each session has its own transport and keeps one connection per channel it uses.
//!
//! The program raises its open-file soft limit to the hard limit, and stops with a message
//! saying how to raise it (`ulimit -n`) if that is still below what N sessions may need.
#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark is an I/O edge: it reads the clock"
)]

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tether_core::heartbeat;
use tether_core::session::{SessionConfig, Status};
use tether_tokio::{CloseReport, Counters, DriverStats, Histogram};

const USAGE: &str = "usage: many_sessions --url URL [--runtime tokio|smol] [--sessions N] \
[--seconds S] [--stream-seconds T] [--threads K] [--http http1|h2c]

URL is the server's base URL (what `tether serve` prints after `listening on`) or any session
URL of it. Defaults: tokio, 1000 sessions, 60 s idle, 20 s streaming, 2 threads, http1 (h2c is
for tokio only).";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Runtime {
    Tokio,
    Smol,
}

#[derive(Clone, Debug)]
struct Args {
    runtime: Runtime,
    sessions: usize,
    seconds: u64,
    stream_seconds: u64,
    threads: usize,
    /// tokio's shared transport speaks h2c (one connection) instead of HTTP/1.1.
    h2c: bool,
    /// The server's base URL, without a trailing slash.
    base: String,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        runtime: Runtime::Tokio,
        sessions: 1000,
        seconds: 60,
        stream_seconds: 20,
        threads: 2,
        h2c: false,
        base: String::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(String::new());
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || -> Result<u64, String> {
            value
                .parse()
                .map_err(|_| format!("{flag} needs a number, got `{value}`"))
        };
        match flag.as_str() {
            "--runtime" => {
                args.runtime = match value.as_str() {
                    "tokio" => Runtime::Tokio,
                    "smol" => Runtime::Smol,
                    other => return Err(format!("--runtime is tokio or smol, not `{other}`")),
                }
            }
            "--sessions" => args.sessions = number()? as usize,
            "--seconds" => args.seconds = number()?,
            "--stream-seconds" => args.stream_seconds = number()?,
            "--threads" => args.threads = (number()? as usize).max(1),
            "--http" => {
                args.h2c = match value.as_str() {
                    "h2c" => true,
                    "http1" => false,
                    other => return Err(format!("--http is http1 or h2c, not `{other}`")),
                }
            }
            "--url" => {
                let base = match value.find("/v1/code/sessions/") {
                    Some(at) => &value[..at],
                    None => value.as_str(),
                };
                args.base = base.trim_end_matches('/').to_owned();
            }
            other => return Err(format!("unknown flag `{other}`")),
        }
    }
    if args.base.is_empty() {
        return Err("--url is required (start `tether serve` and pass its URL)".into());
    }
    if args.sessions == 0 {
        return Err("--sessions must be at least 1".into());
    }
    Ok(args)
}

/// Resident memory in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Open file descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

/// Raises the soft open-file limit to the hard one; the limit in force afterwards.
fn raise_open_files_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let before = limit.current;
        limit.current = limit.maximum;
        match setrlimit(Resource::Nofile, limit) {
            Ok(()) => println!(
                "open files: soft limit raised from {} to the hard limit {}",
                show_limit(before),
                show_limit(limit.maximum)
            ),
            Err(e) => eprintln!("open files: could not raise the soft limit: {e}"),
        }
    }
    getrlimit(Resource::Nofile).current.or(Some(u64::MAX))
}

fn show_limit(limit: Option<u64>) -> String {
    limit.map_or_else(|| "unlimited".into(), |n| n.to_string())
}

fn print_lateness(label: &str, h: &Histogram) {
    println!(
        "heartbeat lateness, {label}: {} beats, p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        h.count(),
        h.quantile(0.5),
        h.quantile(0.99),
        h.max()
    );
}

/// What the phases need of a session, the same on both runtimes.
trait Session: Clone + Send + Sync + 'static {
    fn status(&self) -> Status;
    fn stats(&self) -> DriverStats;
    fn counters(&self) -> Counters;
    fn polls(&self) -> u64;
    /// Queues one event; false once the session refuses it.
    fn send(&self, event: Value) -> impl Future<Output = bool> + Send;
    fn flush(&self) -> impl Future<Output = ()> + Send;
    fn close(&self) -> impl Future<Output = CloseReport> + Send;
}

const SEND_TIMEOUT: Duration = Duration::from_secs(5);
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

macro_rules! session_impl {
    ($ty:ty) => {
        impl Session for $ty {
            fn status(&self) -> Status {
                <$ty>::status(self)
            }
            fn stats(&self) -> DriverStats {
                self.stats()
            }
            fn counters(&self) -> Counters {
                <$ty>::counters(self)
            }
            fn polls(&self) -> u64 {
                self.stats().wakeups
            }
            async fn send(&self, event: Value) -> bool {
                self.send_event(event, SEND_TIMEOUT).await.is_ok()
            }
            async fn flush(&self) {
                <$ty>::flush(self, FLUSH_TIMEOUT).await.ok();
            }
            async fn close(&self) -> CloseReport {
                <$ty>::close(self, CLOSE_TIMEOUT).await
            }
        }
    };
}
// tether-smol and tether-tokio share one `Tether` type: the driver's `AsyncTether`.
session_impl!(tether_smol::Tether);

/// Sleeping and spawning on the runtime under test.
trait Exec {
    fn sleep(&self, d: Duration) -> impl Future<Output = ()>;
    fn spawn<T: Send + 'static>(
        &self,
        f: impl Future<Output = T> + Send + 'static,
    ) -> impl Future<Output = T> + 'static;
}

struct TokioExec(tokio::runtime::Handle);

impl Exec for TokioExec {
    fn sleep(&self, d: Duration) -> impl Future<Output = ()> {
        tokio::time::sleep(d)
    }
    fn spawn<T: Send + 'static>(
        &self,
        f: impl Future<Output = T> + Send + 'static,
    ) -> impl Future<Output = T> + 'static {
        let task = self.0.spawn(f);
        async move { task.await.expect("a benchmark task panicked") }
    }
}

struct SmolExec(Arc<smol::Executor<'static>>);

impl Exec for SmolExec {
    async fn sleep(&self, d: Duration) {
        async_io::Timer::after(d).await;
    }
    fn spawn<T: Send + 'static>(
        &self,
        f: impl Future<Output = T> + Send + 'static,
    ) -> impl Future<Output = T> + 'static {
        self.0.spawn(f)
    }
}

fn merged_lateness<S: Session>(sessions: &[S]) -> Histogram {
    let mut all = Histogram::default();
    for s in sessions {
        all.merge(&s.stats().heartbeat_lateness);
    }
    all
}

fn delivered<S: Session>(sessions: &[S]) -> u64 {
    sessions.iter().map(|s| s.counters().events.delivered).sum()
}

/// The phases, on either runtime. `start` starts session `i`.
async fn phases<S: Session, E: Exec>(args: &Args, exec: &E, start: impl Fn(usize) -> S) {
    let n = args.sessions;
    let (rss_before, fds_before) = (rss(), open_fds());

    let started = Instant::now();
    let sessions: Vec<S> = (0..n).map(&start).collect();
    let deadline = started + Duration::from_secs(300);
    loop {
        let connected = sessions
            .iter()
            .filter(|s| s.status() == Status::Connected)
            .count();
        if connected == n {
            break;
        }
        if Instant::now() > deadline {
            println!("only {connected}/{n} sessions connected in 300 s; giving up");
            return;
        }
        exec.sleep(Duration::from_millis(20)).await;
    }
    println!(
        "connect: {n} sessions connected in {:.2?} (open fds {})",
        started.elapsed(),
        open_fds()
    );

    exec.sleep(Duration::from_secs(args.seconds)).await;
    let rss_idle = rss();
    let idle = merged_lateness(&sessions);
    let fds_idle = open_fds();
    let delta = rss_idle.saturating_sub(rss_before);
    println!(
        "memory: RSS {} KiB before, {} KiB idle: {} KiB delta, {:.1} KiB per idle session",
        rss_before / 1024,
        rss_idle / 1024,
        delta / 1024,
        delta as f64 / 1024.0 / n as f64
    );
    println!(
        "open fds: {fds_before} before, {fds_idle} idle ({:.2} per session)",
        (fds_idle.saturating_sub(fds_before)) as f64 / n as f64
    );
    print_lateness(&format!("idle {} s", args.seconds), &idle);
    let polls: u64 = sessions.iter().map(Session::polls).sum();
    println!(
        "driver wake-ups: {:.1} per session over connect + {} s idle",
        polls as f64 / n as f64,
        args.seconds
    );

    // Every session streams.
    let delivered_before = delivered(&sessions);
    let stream_start = Instant::now();
    let stop = stream_start + Duration::from_secs(args.stream_seconds);
    let tasks: Vec<_> = sessions
        .iter()
        .cloned()
        .map(|s| {
            exec.spawn(async move {
                let mut k = 0u64;
                while Instant::now() < stop {
                    let event = json!({"k": k, "kind": "bench", "text": "a short event body"});
                    if !s.send(event).await {
                        break;
                    }
                    k += 1;
                }
                s.flush().await;
                k
            })
        })
        .collect();
    let mut peak_fds = 0;
    while Instant::now() < stop {
        peak_fds = peak_fds.max(open_fds());
        exec.sleep(Duration::from_millis(500)).await;
    }
    let mut sent = 0;
    for task in tasks {
        sent += task.await;
    }
    let took = stream_start.elapsed();
    let acked = delivered(&sessions) - delivered_before;
    println!(
        "streaming: {sent} events queued, {acked} acknowledged in {took:.2?} (flush included): \
         {:.0} events/s (peak open fds sampled {peak_fds})",
        acked as f64 / took.as_secs_f64()
    );
    let whole = merged_lateness(&sessions);
    print_lateness(
        &format!("streaming {} s", args.stream_seconds),
        &whole.since(&idle),
    );
    print_lateness("whole run", &whole);

    let closing = Instant::now();
    let closes: Vec<_> = sessions
        .iter()
        .cloned()
        .map(|s| exec.spawn(async move { s.close().await.all_delivered() }))
        .collect();
    let mut clean = 0;
    for close in closes {
        clean += usize::from(close.await);
    }
    println!(
        "close: {clean}/{n} sessions closed clean in {:.2?}",
        closing.elapsed()
    );
}

fn config(id: &str) -> SessionConfig {
    let mut config = SessionConfig::new(id);
    config.heartbeat = heartbeat::Config {
        interval: Duration::from_secs(5),
        ..heartbeat::Config::default()
    };
    config.events.max_queue_items = 1_000;
    config
}

fn run_tokio(args: &Args, prefix: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let handle = runtime.handle().clone();
    runtime.block_on(async {
        // One hyper client (and connection pool) for every session.
        let transport = if args.h2c {
            tether_tokio::HttpTransport::h2c()
        } else {
            tether_tokio::HttpTransport::new()
        };
        let exec = TokioExec(handle.clone());
        phases(args, &exec, |i| {
            let id = format!("{prefix}-{i}");
            let url = format!("{}/v1/code/sessions/{id}", args.base);
            tether_tokio::Builder::new(url, tether_tokio::Tokio::on(handle.clone()))
                .epoch(1)
                .seed(i as u64)
                .config(config(&id))
                .transport(transport.clone())
                .start()
                .expect("start")
        })
        .await;
    });
}

fn run_smol(args: &Args, prefix: &str) {
    let ex = Arc::new(smol::Executor::new());
    // The helper threads run the executor until this sender is dropped.
    let (stop, stopped) = smol::channel::bounded::<()>(1);
    std::thread::scope(|scope| {
        for _ in 1..args.threads {
            let ex = Arc::clone(&ex);
            let stopped = stopped.clone();
            scope.spawn(move || smol::block_on(ex.run(stopped.recv())));
        }
        let exec = SmolExec(Arc::clone(&ex));
        smol::block_on(ex.run(async {
            phases(args, &exec, |i| {
                let id = format!("{prefix}-{i}");
                let url = format!("{}/v1/code/sessions/{id}", args.base);
                tether_smol::Builder::new(url, tether_smol::Smol::on(Arc::clone(&ex)))
                    .epoch(1)
                    .seed(i as u64)
                    .config(config(&id))
                    .start()
                    .expect("start")
            })
            .await;
        }));
        drop(stop);
    });
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("many_sessions: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let n = args.sessions as u64;
    // Idle, a smol session holds one connection (its heartbeat's); streaming, one per channel in
    // use (events and heartbeat). The shared tokio HTTP/1.1 pool keeps a connection per request
    // in flight at the peak (up to one per channel per session); over h2c it needs one.
    let (idle_needed, streaming_needed) = (n + 256, 4 * n + 256);
    let limit = raise_open_files_limit().unwrap_or(u64::MAX);
    if limit < idle_needed {
        eprintln!(
            "many_sessions: the open-file limit is {limit}, and {n} idle sessions need about \
             {idle_needed} file descriptors ({streaming_needed} while streaming).\n\
             Raise it in this shell first, e.g. `ulimit -n {streaming_needed}` (above the hard \
             limit, `ulimit -Hn`, this needs root or CAP_SYS_RESOURCE), or run fewer sessions."
        );
        return ExitCode::from(1);
    }
    if limit < streaming_needed {
        println!(
            "warning: the open-file limit is {limit}; {n} sessions may need up to \
             {streaming_needed} while streaming (`ulimit -n {streaming_needed}`), and the \
             server as many: expect `too many open files` errors (and retries) then"
        );
    }
    let runtime = match args.runtime {
        Runtime::Tokio => "tokio",
        Runtime::Smol => "smol",
    };
    let http = if args.h2c { "h2c" } else { "http1" };
    println!(
        "{runtime}: {n} sessions, {} thread(s), {} s idle, {} s streaming, {http}, server {} \
         (open-file limit {limit})",
        args.threads, args.seconds, args.stream_seconds, args.base
    );
    let prefix = format!("many-{runtime}-{}", std::process::id());
    match args.runtime {
        Runtime::Tokio => run_tokio(&args, &prefix),
        Runtime::Smol => run_smol(&args, &prefix),
    }
    ExitCode::SUCCESS
}
