//! Many sessions on one smol executor against one `tether-server` (in this process).
//!
//! ```sh
//! cargo run --release -p tether-benches --example smol_many_sessions -- --sessions 1000 --seconds 30
//! ```
//!
//! Phases: start N sessions (5 s heartbeat) and wait until all are connected; stay idle for
//! `--seconds`; measure memory per session (RSS delta / N, from `/proc/self/statm`, taken
//! before the sessions started and at the end of the idle phase) and heartbeat lateness
//! (when the beat request was handed to the transport minus when the core scheduled it);
//! then every session streams events for `--stream-seconds` and the server's count gives
//! events per second; then every session closes.
#![allow(clippy::disallowed_methods)] // a benchmark reads the clock

use std::time::{Duration, Instant};

use serde_json::json;
use tether_core::heartbeat::HeartbeatConfig;
use tether_server::{Server, ServerConfig};
use tether_smol::{Builder, Histogram, SessionConfig, Status, Tether};

struct Args {
    sessions: usize,
    seconds: u64,
    stream_seconds: u64,
}

fn args() -> Args {
    let mut args = Args {
        sessions: 1000,
        seconds: 30,
        stream_seconds: 10,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        let n: u64 = value
            .parse()
            .unwrap_or_else(|_| panic!("{flag} needs a number, got `{value}`"));
        match flag.as_str() {
            "--sessions" => args.sessions = n as usize,
            "--seconds" => args.seconds = n,
            "--stream-seconds" => args.stream_seconds = n,
            other => panic!("unknown flag {other} (--sessions, --seconds, --stream-seconds)"),
        }
    }
    args
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

/// The soft limit of open files.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn lateness(sessions: &[Tether]) -> Histogram {
    let mut all = Histogram::default();
    for t in sessions {
        all.merge(&t.driver_stats().heartbeat_lateness);
    }
    all
}

fn print_lateness(label: &str, h: &Histogram) {
    println!(
        "{label}: {} beats, p50 {:?}, p99 {:?}, max {:?}",
        h.count(),
        h.quantile(0.5),
        h.quantile(0.99),
        h.max()
    );
}

fn main() {
    let args = args();
    let n = args.sessions;
    // Each session holds one connection when idle and up to six when busy; the server, in this
    // process, holds the other end of each.
    let needed = (n * 2 * 3 + 256) as u64;
    match open_files_limit() {
        Some(limit) if limit < needed => eprintln!(
            "warning: `ulimit -n` is {limit}; {n} sessions may need about {needed} (raise it)"
        ),
        Some(limit) => println!("open files limit {limit} (about {needed} needed)"),
        None => {}
    }

    let server = Server::start(ServerConfig::default()).expect("server");
    let rss_before = rss();
    let ex = smol::Executor::new();
    smol::block_on(ex.run(async {
        let mut config = SessionConfig::new("x");
        config.heartbeat = HeartbeatConfig {
            interval: Duration::from_secs(5),
            ..HeartbeatConfig::default()
        };
        config.events.max_queue_items = 1_000;

        let started = Instant::now();
        let sessions: Vec<Tether> = (0..n)
            .map(|i| {
                let id = format!("s{i}");
                let mut config = config.clone();
                config.session_id = id.clone();
                Builder::new(server.session_url(&id))
                    .epoch(1)
                    .seed(i as u64)
                    .config(config)
                    .start_on(&ex)
                    .expect("start")
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(120);
        while sessions.iter().any(|t| t.status() != Status::Connected) {
            assert!(Instant::now() < deadline, "not all sessions connected in 120 s");
            async_io::Timer::after(Duration::from_millis(50)).await;
        }
        println!("{n} sessions connected in {:?}", started.elapsed());

        async_io::Timer::after(Duration::from_secs(args.seconds)).await;
        let rss_idle = rss();
        let idle = lateness(&sessions);
        let wakeups: u64 = sessions.iter().map(Tether::driver_polls).sum();
        println!(
            "memory: {} KiB RSS delta, {:.1} KiB per idle session (server side included)",
            rss_idle.saturating_sub(rss_before) / 1024,
            rss_idle.saturating_sub(rss_before) as f64 / 1024.0 / n as f64
        );
        print_lateness("heartbeat lateness, idle", &idle);
        println!(
            "driver wake-ups: {:.1} per session over connect + {} s idle",
            wakeups as f64 / n as f64,
            args.seconds
        );

        // Every session streams.
        let inspector = server.inspector();
        let stream_start = Instant::now();
        let stop = stream_start + Duration::from_secs(args.stream_seconds);
        let tasks: Vec<_> = sessions
            .iter()
            .cloned()
            .map(|t| {
                ex.spawn(async move {
                    let mut k = 0u64;
                    while Instant::now() < stop {
                        let event = json!({"k": k, "kind": "bench", "text": "a short event body"});
                        if t.send_event(event, Duration::from_secs(5)).await.is_err() {
                            break;
                        }
                        k += 1;
                    }
                    t.flush(Duration::from_secs(30)).await.ok();
                    k
                })
            })
            .collect();
        let mut sent = 0;
        for task in tasks {
            sent += task.await;
        }
        let took = stream_start.elapsed();
        let delivered: usize = (0..n)
            .map(|i| inspector.events(&format!("s{i}")).len())
            .sum();
        println!(
            "streaming: {sent} events sent, {delivered} held by the server in {took:?}: {:.0} events/s",
            delivered as f64 / took.as_secs_f64()
        );
        print_lateness("heartbeat lateness, whole run", &lateness(&sessions));

        let closing = Instant::now();
        let mut clean = 0;
        for t in &sessions {
            let report = t.close(Duration::from_secs(10)).await;
            clean += usize::from(report.all_delivered());
        }
        println!("{clean}/{n} sessions closed clean in {:?}", closing.elapsed());
    }));
    server.shutdown().ok();
}
