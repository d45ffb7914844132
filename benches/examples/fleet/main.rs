//! A paced fleet: N tokio sessions in one process, sharing one `tether_tokio::HttpTransport`
//! (h2c by default: one connection), against one `tether-server` in **another process**.
//!
//! ```sh
//! target/release/tether serve --addr 127.0.0.1:18787 --quiet --threads 1 &
//! target/release/examples/fleet --sessions 10000 --seconds 120 --url http://127.0.0.1:18787
//! ```
//!
//! Each session sends 5 events a second of about 200 bytes (spread evenly over the fleet),
//! patches its state every 10 s, and beats every 20 s ± 20 %. Measured: time to connect all;
//! heartbeat lateness over the paced run (`stats().heartbeat_lateness`, merged); event delivery
//! latency, from `send_event` returning to its `Delivered` report; client CPU (utime + stime of
//! this process); RSS per session (delta from before the first session to the end of the run,
//! over N); open fds (sampled peak); TIME_WAIT sockets to the server's port before and after the
//! run; and whether every event was delivered (close reports and the client's counters).
//!
//! `--http http1` runs the same fleet over one shared HTTP/1.1 pool instead.
//!
//! `--runtime smol` runs the sessions' drivers on a smol executor (`--threads` threads) instead,
//! sharing `tether_smol::HttpTransport`'s HTTP/1.1 pool (`--http http1`) or a prototype HTTP/2
//! transport on hyper (`--http h2c`, [`smol_h2`]); the producers stay on tokio in every mode,
//! so the modes differ only in the drivers' runtime and transport.
#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark is an I/O edge: it reads the clock"
)]

use std::collections::VecDeque;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::json;
use tether_core::heartbeat;
use tether_core::session::{SessionConfig, Status};
use tether_tokio::{Histogram, HttpTransport, Report, Stream, Tether};

mod smol_h2;

const USAGE: &str = "usage: fleet --url URL [--sessions N] [--seconds S] [--threads K] \
[--http h2c|http1] [--runtime tokio|smol] [--linger-ms L]

URL is the server's base URL (what `tether serve` prints after `listening on`). Defaults: 1000
sessions, 120 s, 2 threads, h2c, tokio, no linger (each event is sent at once).";

const EVENTS_PER_SECOND: u64 = 5;
const PATCH_EVERY: Duration = Duration::from_secs(10);
const T: Duration = Duration::from_secs(30);

#[derive(Clone, Debug)]
struct Args {
    sessions: usize,
    seconds: u64,
    threads: usize,
    h2c: bool,
    smol: bool,
    linger: Duration,
    base: String,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        sessions: 1000,
        seconds: 120,
        threads: 2,
        h2c: true,
        smol: false,
        linger: Duration::ZERO,
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
            "--sessions" => args.sessions = (number()? as usize).max(1),
            "--seconds" => args.seconds = number()?.max(1),
            "--threads" => args.threads = (number()? as usize).max(1),
            "--linger-ms" => args.linger = Duration::from_millis(number()?),
            "--http" => {
                args.h2c = match value.as_str() {
                    "h2c" => true,
                    "http1" => false,
                    other => return Err(format!("--http is h2c or http1, not `{other}`")),
                }
            }
            "--runtime" => {
                args.smol = match value.as_str() {
                    "smol" => true,
                    "tokio" => false,
                    other => return Err(format!("--runtime is tokio or smol, not `{other}`")),
                }
            }
            "--url" => args.base = value.trim_end_matches('/').to_owned(),
            other => return Err(format!("unknown flag `{other}`")),
        }
    }
    if args.base.is_empty() {
        return Err("--url is required (start `tether serve` and pass its URL)".into());
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

/// CPU time (user + system) of this process so far.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    let per_second = rustix::param::clock_ticks_per_second().max(1);
    Duration::from_secs_f64(ticks as f64 / per_second as f64)
}

/// Time this process's threads spent runnable but waiting for a CPU (the second field of each
/// thread's `schedstat`): on a shared machine, how much of the lateness is other processes'.
fn run_queue_wait() -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let nanos: u64 = tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|f| f.parse::<u64>().ok())
        })
        .sum();
    Duration::from_nanos(nanos)
}

/// The 1-minute load average.
fn load_average() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    load.split_whitespace().next().unwrap_or("?").to_owned()
}

/// Sockets in TIME_WAIT whose local or remote port is `port` (IPv4 and IPv6).
fn time_wait(port: u16) -> usize {
    let port = format!("{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .map(|path| {
            let table = std::fs::read_to_string(path).unwrap_or_default();
            table
                .lines()
                .skip(1)
                .filter(|line| {
                    let f: Vec<&str> = line.split_whitespace().collect();
                    let port_of = |a: &str| a.rsplit(':').next().map(str::to_owned);
                    f.len() > 3
                        && f[3] == "06"
                        && (port_of(f[1]).as_deref() == Some(port.as_str())
                            || port_of(f[2]).as_deref() == Some(port.as_str()))
                })
                .count()
        })
        .sum()
}

fn raise_open_files_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            eprintln!("open files: could not raise the soft limit: {e}");
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn show(label: &str, h: &Histogram) {
    println!(
        "{label}: {} samples, p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        h.count(),
        h.quantile(0.5),
        h.quantile(0.99),
        h.max()
    );
}

fn config(id: &str, linger: Duration) -> SessionConfig {
    let mut config = SessionConfig::new(id);
    config.heartbeat = heartbeat::Config {
        interval: Duration::from_secs(20),
        jitter: 0.2,
        ttl: Duration::from_secs(60),
    };
    config.events.linger = linger;
    config
}

/// What one session's producer counted.
#[derive(Default)]
struct Produced {
    sent: u64,
    acknowledged: u64,
}

type InFlight = VecDeque<(tether_tokio::EventId, Instant)>;

/// Records the latency of each delivered event still in `in_flight` (ids increase).
fn note(
    in_flight: &mut InFlight,
    events: Vec<tether_tokio::EventId>,
    latency: &Mutex<Histogram>,
    produced: &mut Produced,
) {
    let now = Instant::now();
    let mut h = lock(latency);
    for id in events {
        while let Some(&(front, at)) = in_flight.front() {
            if front > id {
                break;
            }
            in_flight.pop_front();
            if front == id {
                h.record(now - at);
                produced.acknowledged += 1;
            }
        }
    }
}

/// Sends paced events and patches until `stop`, then flushes; records each event's delivery
/// latency into `latency` (one histogram for the fleet, so the measure costs no memory per
/// session).
async fn produce(
    tether: Tether,
    i: usize,
    n: usize,
    start: tokio::time::Instant,
    stop: tokio::time::Instant,
    latency: Arc<Mutex<Histogram>>,
) -> Produced {
    let period = Duration::from_millis(1000 / EVENTS_PER_SECOND);
    // Spread the fleet evenly over one period, and its patches over ten seconds.
    let offset = period.mul_f64(i as f64 / n as f64);
    let patch_offset = PATCH_EVERY.mul_f64(i as f64 / n as f64);
    let mut tick = tokio::time::interval_at(start + offset, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut patch = tokio::time::interval_at(start + patch_offset, PATCH_EVERY);
    patch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reports = tether.reports();
    let mut in_flight = InFlight::new();
    let mut produced = Produced::default();
    let text = "x".repeat(140);
    let mut patches = 0u64;
    loop {
        tokio::select! {
            at = tick.tick() => {
                if at >= stop {
                    break;
                }
                let event = json!({"k": produced.sent, "kind": "fleet", "text": text});
                match tether.send_event(event, T).await {
                    Ok(id) => {
                        in_flight.push_back((id, Instant::now()));
                        produced.sent += 1;
                    }
                    Err(e) => {
                        eprintln!("session {i}: send refused: {e}");
                        break;
                    }
                }
            }
            _ = patch.tick() => {
                patches += 1;
                let _ = tether.patch_state(json!({"progress": patches}));
            }
            Some(report) = reports.next() => {
                if let Ok(Report::Delivered { stream: Stream::Events, events }) = report {
                    note(&mut in_flight, events, &latency, &mut produced);
                }
            }
        }
    }
    let _ = tether.flush(T).await;
    while let Some(report) = reports.try_next() {
        if let Ok(Report::Delivered {
            stream: Stream::Events,
            events,
        }) = report
        {
            note(&mut in_flight, events, &latency, &mut produced);
        }
    }
    produced
}

/// Starts one session of the fleet on `builder`'s runtime.
fn start<R: tether_driver::runtime::Runtime>(
    builder: tether_driver::Builder<R>,
    seed: u64,
    config: SessionConfig,
    transport: Box<dyn tether_driver::runtime::AsyncTransport>,
) -> Tether {
    builder
        .epoch(1)
        .seed(seed)
        .config(config)
        .transport(transport)
        .start()
        .expect("start")
}

async fn run(args: &Args, handle: tokio::runtime::Handle) {
    let n = args.sessions;
    let port: u16 = args
        .base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(80);
    // The drivers' runtime and transport; smol's executor threads run until `stop_smol` drops.
    let (stop_smol, stopped) = smol::channel::bounded::<()>(1);
    let smol_ex = Arc::new(smol::Executor::new());
    let smol_threads: Vec<_> = (0..if args.smol { args.threads } else { 0 })
        .map(|_| {
            let (ex, stopped) = (Arc::clone(&smol_ex), stopped.clone());
            std::thread::spawn(move || smol::block_on(ex.run(stopped.recv())))
        })
        .collect();
    // One transport for the fleet; each session gets a clone (smol's HTTP/1.1 pool is sized
    // by the clones alive, so an `Arc` of one clone would keep six idle connections in all).
    let tokio_transport = if args.h2c {
        HttpTransport::h2c()
    } else {
        HttpTransport::new()
    };
    let smol_h2 = smol_h2::SmolH2::new(&args.base, Arc::clone(&smol_ex));
    let smol_h1 = tether_smol::HttpTransport::new(&format!("{}/v1/code/sessions/x", args.base))
        .expect("an http URL");
    let transport = || -> Box<dyn tether_driver::runtime::AsyncTransport> {
        match (args.smol, args.h2c) {
            (false, _) => Box::new(tokio_transport.clone()),
            (true, true) => Box::new(smol_h2.clone()),
            (true, false) => Box::new(smol_h1.clone()),
        }
    };
    let (rss_before, fds_before, tw_before) = (rss(), open_fds(), time_wait(port));
    let prefix = format!("fleet-{}", std::process::id());

    let connecting = Instant::now();
    let sessions: Vec<Tether> = (0..n)
        .map(|i| {
            let id = format!("{prefix}-{i}");
            let url = format!("{}/v1/code/sessions/{id}", args.base);
            let (seed, config) = (i as u64, config(&id, args.linger));
            if args.smol {
                let runtime = tether_smol::Smol::on(Arc::clone(&smol_ex));
                start(
                    tether_smol::Builder::new(url, runtime),
                    seed,
                    config,
                    transport(),
                )
            } else {
                let runtime = tether_tokio::Tokio::on(handle.clone());
                start(
                    tether_tokio::Builder::new(url, runtime),
                    seed,
                    config,
                    transport(),
                )
            }
        })
        .collect();
    let deadline = connecting + Duration::from_secs(300);
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
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "connect: {n} sessions connected in {:.2?} (open fds {})",
        connecting.elapsed(),
        open_fds()
    );

    let mut beats_before = Histogram::default();
    for s in &sessions {
        beats_before.merge(&s.stats().heartbeat_lateness);
    }
    let latency = Arc::new(Mutex::new(Histogram::default()));
    let cpu_before = cpu_time();
    let waited_before = run_queue_wait();
    let started = Instant::now();
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let stop = start + Duration::from_secs(args.seconds);
    let tasks: Vec<_> = sessions
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, s)| handle.spawn(produce(s, i, n, start, stop, Arc::clone(&latency))))
        .collect();
    let mut peak_fds = 0;
    while tokio::time::Instant::now() < stop {
        peak_fds = peak_fds.max(open_fds());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let (mut sent, mut acknowledged) = (0, 0);
    for task in tasks {
        let produced = task.await.expect("a producer panicked");
        sent += produced.sent;
        acknowledged += produced.acknowledged;
    }
    let took = started.elapsed();
    let cpu = cpu_time().saturating_sub(cpu_before);
    let waited = run_queue_wait().saturating_sub(waited_before);
    let rss_end = rss();
    let fds_end = open_fds();

    println!(
        "paced run: {:.1} s, {sent} events sent, {acknowledged} acknowledged ({:.0} events/s)",
        took.as_secs_f64(),
        acknowledged as f64 / took.as_secs_f64()
    );
    let mut beats = Histogram::default();
    for s in &sessions {
        beats.merge(&s.stats().heartbeat_lateness);
    }
    show("heartbeat lateness", &beats.since(&beats_before));
    show("event delivery (send -> acknowledged)", &lock(&latency));
    println!(
        "client CPU: {:.1} s over {:.1} s = {:.0} % of one core",
        cpu.as_secs_f64(),
        took.as_secs_f64(),
        100.0 * cpu.as_secs_f64() / took.as_secs_f64()
    );
    println!(
        "waiting for a CPU while runnable: {:.1} s over all threads (load average {} at the end)",
        waited.as_secs_f64(),
        load_average()
    );
    let delta = rss_end.saturating_sub(rss_before);
    println!(
        "memory: RSS {} KiB before, {} KiB at the end: {:.1} KiB per session",
        rss_before / 1024,
        rss_end / 1024,
        delta as f64 / 1024.0 / n as f64
    );
    println!("open fds: {fds_before} before, {fds_end} at the end, peak sampled {peak_fds}");

    let closing = Instant::now();
    let closes: Vec<_> = sessions
        .into_iter()
        .map(|s| handle.spawn(async move { s.close(T).await }))
        .collect();
    let (mut clean, mut delivered) = (0, 0);
    for close in closes {
        let report = close.await.expect("close panicked");
        clean += usize::from(report.all_delivered());
        delivered += report.counters.events.delivered;
    }
    println!(
        "close: {clean}/{n} sessions closed clean in {:.2?}; {delivered}/{sent} events delivered{}",
        closing.elapsed(),
        if delivered == sent && acknowledged == sent {
            " (every one)"
        } else {
            " (NOT every one)"
        }
    );
    drop((tokio_transport, smol_h1, smol_h2));
    drop(stop_smol);
    for thread in smol_threads {
        let _ = thread.join();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "TIME_WAIT sockets on port {port}: {tw_before} before, {} 2 s after closing",
        time_wait(port)
    );
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("fleet: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    raise_open_files_limit();
    println!(
        "{} fleet: {} sessions, {} thread(s), {} s, {}, linger {:?}, server {}",
        if args.smol { "smol" } else { "tokio" },
        args.sessions,
        args.threads,
        args.seconds,
        if args.h2c {
            "h2c (one shared transport)"
        } else {
            "HTTP/1.1 (one shared pool)"
        },
        args.linger,
        args.base
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let handle = runtime.handle().clone();
    runtime.block_on(run(&args, handle));
    ExitCode::SUCCESS
}
