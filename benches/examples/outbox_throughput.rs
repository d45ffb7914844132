//! The durable outbox on loopback: how many events per second become durable (each
//! `send_events` returns only once its events are written and synced, one group commit per
//! chunk) and are delivered to `tether-server`, with the default sync policy and the others;
//! then a replay of a large outbox, with the process's resident memory sampled meanwhile.
//! The replay goes to `tether serve` in its own process (`TETHER_BIN`, default
//! `target/debug/tether`: build it first), so that the memory sampled is the client's alone.
//!
//! ```sh
//! cargo build -p tether
//! cargo run --release -p tether-benches --features examples --example outbox_throughput   # [-- EVENTS REPLAY_EVENTS]
//! ```
#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark is an I/O edge: it reads the clock"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tether_blocking::SyncPolicy;
use tether_core::Rng;
use tether_core::batch::{BatchDrainer, Config, Event};
use tether_core::session::{SessionConfig, Status, Stream, encode_record};
use tether_driver::{Store, WriteBatch};
use tether_server::{Server, ServerConfig};
use tether_store::SqliteStore;

/// An event of about 200 bytes with its `uuid`.
fn event(seq: u64) -> Value {
    json!({"type": "bench", "seq": seq, "text": "x".repeat(130)})
}

fn config() -> SessionConfig {
    let mut config = SessionConfig::new("");
    config.events.max_batch_items = 1_000;
    config
}

/// Streams `events` through a session with an outbox under `policy`; returns the durable rate
/// (events/s until the last `send_events` returned) and the delivered rate (until a flush).
fn run(
    server: &Server,
    session: &str,
    events: u64,
    policy: SyncPolicy,
) -> Result<(f64, f64, u64), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(dir.path())?;
    let tether = tether_blocking::builder(server.session_url(session))
        .epoch(1)
        .config(config())
        .outbox(store, policy)
        .start()?;
    let _ = tether
        .statuses()
        .iter()
        .find(|s| *s != Ok(Status::Connecting));
    let started = Instant::now();
    let seqs: Vec<u64> = (0..events).collect();
    for chunk in seqs.chunks(1_000) {
        let chunk = chunk.iter().map(|&seq| Event::new(event(seq)));
        tether
            .send_events(Stream::Events, chunk, Duration::from_secs(60))
            .wait()?;
    }
    let durable = started.elapsed();
    tether.flush(Duration::from_secs(120)).wait()?;
    let delivered = started.elapsed();
    let commits = tether.counters().wire.requests;
    let report = tether.close(Duration::from_secs(10)).wait();
    assert!(report.all_delivered(), "{report:?}");
    assert_eq!(server.inspector().events(session).len() as u64, events);
    Ok((
        events as f64 / durable.as_secs_f64(),
        events as f64 / delivered.as_secs_f64(),
        commits,
    ))
}

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// Fills an outbox with `events` records as a crashed run would leave them, then starts a
/// session on it and measures the replay and the memory it takes.
/// `tether serve` on a port the OS picks, in its own process; its session URL for `session`.
fn serve(session: &str) -> Result<(std::process::Child, String), Box<dyn std::error::Error>> {
    use std::io::BufRead;
    let bin = std::env::var_os("TETHER_BIN").unwrap_or_else(|| "target/debug/tether".into());
    let mut child = std::process::Command::new(bin)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut reader = std::io::BufReader::new(stdout);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let base = line.trim().trim_start_matches("listening on ").to_owned();
    // It goes on printing: keep its stdout open.
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    Ok((child, format!("{base}/v1/code/sessions/{session}")))
}

fn replay(events: u64) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    {
        let mut store = SqliteStore::open(dir.path())?;
        let mut drainer = BatchDrainer::new(Config::default(), Rng::new(9))?;
        let mut key = 0u64;
        while key < events {
            let mut batch = WriteBatch::default();
            for _ in 0..10_000.min(events - key) {
                let prepared = drainer
                    .prepare(Event::new(event(key)))
                    .map_err(|e| e.to_string())?;
                batch
                    .puts
                    .push((key, encode_record(Stream::Events, &prepared)));
                key += 1;
            }
            store.write(&batch, false)?;
        }
    }
    let file = std::fs::metadata(dir.path().join(tether_store::FILE_NAME))?.len();
    let before = rss_kib();
    let peak = Arc::new(AtomicU64::new(before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (Arc::clone(&peak), Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let (mut server, url) = serve("replay")?;
    let started = Instant::now();
    let store = SqliteStore::open(dir.path())?;
    let tether = tether_blocking::builder(url)
        .epoch(1)
        .config(config())
        .outbox(store, SyncPolicy::EveryWrite)
        .start()?;
    tether.flush(Duration::from_secs(600)).wait()?;
    let time = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let report = tether.close(Duration::from_secs(10)).wait();
    assert!(report.all_delivered(), "{report:?}");
    let _ = server.kill(); // the server this example started, by its handle
    let _ = server.wait();
    let mut store = SqliteStore::open(dir.path())?;
    assert!(
        store.read(None, 1)?.is_empty(),
        "the outbox is empty after the replay"
    );
    let peak = peak.load(Ordering::Relaxed);
    println!(
        "replay of {events} stored events ({:.0} MiB file): {:.1} s ({:.0} events/s), \
         resident memory {} MiB before, peak {} MiB (+{} MiB)",
        file as f64 / 1048576.0,
        time.as_secs_f64(),
        events as f64 / time.as_secs_f64(),
        before / 1024,
        peak / 1024,
        peak.saturating_sub(before) / 1024
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let events: u64 = args.next().map_or(Ok(200_000), |a| a.parse())?;
    let replay_events: u64 = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let server = Server::start(ServerConfig::default())?;
    for (name, policy) in [
        ("every-write (default)", SyncPolicy::EveryWrite),
        (
            "interval 10 ms",
            SyncPolicy::Interval(Duration::from_millis(10)),
        ),
        ("never", SyncPolicy::Never),
    ] {
        let session = name.split(' ').next().unwrap_or("s");
        let (durable, delivered, requests) = run(&server, session, events, policy)?;
        println!(
            "{name:22} {events} events: durable {durable:>8.0} events/s, delivered \
             {delivered:>8.0} events/s ({requests} requests)"
        );
    }
    if replay_events > 0 {
        replay(replay_events)?;
    }
    Ok(())
}
