//! The durable outbox on every runtime (issue 22, item 7), on loopback against an in-process
//! `tether-server`:
//!
//! 1. **Durable rate**, side by side on blocking, smol and tokio: EVENTS events of about 200
//!    bytes in `send_events` chunks of 1 000, each answered only once its events are written
//!    (the default policy syncs each group commit), with up to 8 chunks waiting for their
//!    answer at once, so the next chunk is accepted while the previous one is written. "Accepted" is the rate
//!    until the last chunk was answered, "delivered" until a flush confirmed every event. Beside
//!    it, in the same run, the same runtime without an outbox (non-durable) and with an outbox
//!    that never syncs; the ratios are taken within one run.
//! 2. **Replay** of a REPLAY_EVENTS-event outbox (as a crash leaves it) on each runtime, in a
//!    child process of its own (this program again), so that its peak resident memory
//!    (`VmHWM`) is the client's alone: the server stays in this process. Once with the
//!    session's default queue (100 000 events), once with a queue of 10 000.
//!
//! ```sh
//! cargo run --release -p tether-benches --features examples --example outbox_throughput   # [-- EVENTS REPLAY_EVENTS RUNS]
//! ```
#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark is an I/O edge: it reads the clock"
)]

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tether_blocking::{SyncPolicy, Tether};
use tether_core::Rng;
use tether_core::batch::{BatchDrainer, Config, Event};
use tether_core::session::{SessionConfig, Stream, encode_record};
use tether_driver::{Store, WriteBatch};
use tether_server::{Server, ServerConfig};
use tether_store::SqliteStore;

type Error = Box<dyn std::error::Error>;

const RUNTIMES: [&str; 3] = ["blocking", "smol", "tokio"];

/// The child's environment variable: `RUNTIME DIR URL QUEUE`.
const CHILD: &str = "TETHER_OUTBOX_REPLAY_CHILD";

/// An event of about 200 bytes with its `uuid`.
fn event(seq: u64) -> Value {
    json!({"type": "bench", "seq": seq, "text": "x".repeat(130)})
}

fn config(queue: usize) -> SessionConfig {
    let mut config = SessionConfig::new("");
    config.events.max_batch_items = 1_000;
    config.events.max_queue_items = queue;
    config
}

/// Starts a session at `url` on `runtime`, with `outbox` if any; `tokio` must be the
/// runtime's handle when `runtime` is tokio.
fn start(
    runtime: &str,
    url: String,
    queue: usize,
    outbox: Option<(SqliteStore, SyncPolicy)>,
    tokio: &tokio::runtime::Runtime,
) -> Result<Tether, Error> {
    let settings = move |s: &mut tether_driver::Settings| {
        s.epoch(1).config(config(queue));
        if let Some((store, policy)) = outbox {
            s.outbox(store, policy);
        }
    };
    Ok(match runtime {
        "blocking" => tether_blocking::builder(url).settings(settings).start()?,
        "smol" => tether_smol::builder(url).settings(settings).start()?,
        _ => {
            let _entered = tokio.enter();
            tether_tokio::builder(url).settings(settings).start()?
        }
    })
}

/// Runs `work` to its end on `runtime`'s way: the blocking shim's caller blocks; smol and
/// tokio await on their own executors.
fn drive<T>(
    runtime: &str,
    tokio: &tokio::runtime::Runtime,
    work: impl std::future::Future<Output = T>,
) -> T {
    match runtime {
        "blocking" => futures_lite::future::block_on(work),
        "smol" => smol::block_on(work),
        _ => tokio.block_on(work),
    }
}

/// Rates of one run, in events per second.
#[derive(Clone, Copy, Debug, Default)]
struct Rates {
    accepted: f64,
    delivered: f64,
}

/// Streams `events` in chunks of 1 000; the accepted and delivered rates.
async fn stream(tether: &Tether, events: u64) -> Result<Rates, Error> {
    let started = Instant::now();
    let seqs: Vec<u64> = (0..events).collect();
    // Up to WINDOW chunks wait for their commit at once: the next chunk is accepted while the
    // previous one is written and synced (group commit), as a producer that does not wait for
    // each answer before it goes on would do.
    const WINDOW: usize = 8;
    let mut waiting = std::collections::VecDeque::with_capacity(WINDOW);
    for chunk in seqs.chunks(1_000) {
        let chunk = chunk.iter().map(|&seq| Event::new(event(seq)));
        waiting.push_back(tether.send_events(Stream::Events, chunk, Duration::from_secs(60)));
        if waiting.len() >= WINDOW {
            if let Some(oldest) = waiting.pop_front() {
                oldest.await?;
            }
        }
    }
    for pending in waiting {
        pending.await?;
    }
    let accepted = started.elapsed();
    tether.flush(Duration::from_secs(120)).await?;
    let delivered = started.elapsed();
    Ok(Rates {
        accepted: events as f64 / accepted.as_secs_f64(),
        delivered: events as f64 / delivered.as_secs_f64(),
    })
}

/// One measurement: `events` through a session on `runtime`, with an outbox under `policy`
/// (`None`: no outbox).
fn run(
    server: &Server,
    runtime: &str,
    session: &str,
    events: u64,
    policy: Option<SyncPolicy>,
    tokio: &tokio::runtime::Runtime,
) -> Result<Rates, Error> {
    let dir = tempfile::tempdir()?;
    let outbox = match policy {
        Some(policy) => Some((SqliteStore::open(dir.path())?, policy)),
        None => None,
    };
    let tether = start(runtime, server.session_url(session), 100_000, outbox, tokio)?;
    let rates = drive(runtime, tokio, async {
        let rates = stream(&tether, events).await?;
        let report = tether.close(Duration::from_secs(10)).await;
        assert!(report.all_delivered(), "{report:?}");
        Ok::<_, Error>(rates)
    })?;
    assert_eq!(server.inspector().events(session).len() as u64, events);
    Ok(rates)
}

/// A value of this process's `/proc/self/status`, in KiB.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// Fills an outbox in `dir` with `events` records, as a crashed run leaves them.
fn fill(dir: &Path, events: u64) -> Result<(), Error> {
    let mut store = SqliteStore::open(dir)?;
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
    Ok(())
}

/// The child: replays the outbox in DIR to URL on RUNTIME, then prints its time and memory.
fn replay_child(spec: &str) -> Result<(), Error> {
    let mut parts = spec.split(' ');
    let (Some(runtime), Some(dir), Some(url), Some(queue)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("bad child spec".into());
    };
    let queue: usize = queue.parse()?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let before = status_kib("VmRSS:");
    let started = Instant::now();
    let store = SqliteStore::open(dir)?;
    let tether = start(
        runtime,
        url.to_owned(),
        queue,
        Some((store, SyncPolicy::EveryWrite)),
        &tokio,
    )?;
    let restored = drive(runtime, &tokio, async {
        tether.flush(Duration::from_secs(600)).await?;
        let time = started.elapsed();
        let restored = tether.outbox().map_or(0, |c| c.restored);
        let report = tether.close(Duration::from_secs(10)).await;
        assert!(report.all_delivered(), "{report:?}");
        Ok::<_, Error>((time, restored))
    })?;
    let (time, restored) = restored;
    println!(
        "{} {} {} {}",
        time.as_secs_f64(),
        restored,
        before,
        status_kib("VmHWM:")
    );
    Ok(())
}

/// What a replay child measured.
struct Replay {
    secs: f64,
    restored: u64,
    before_kib: u64,
    peak_kib: u64,
}

fn replay(
    server: &Server,
    runtime: &str,
    filled: &Path,
    events: u64,
    queue: usize,
) -> Result<Replay, Error> {
    let dir = tempfile::tempdir()?;
    std::fs::copy(
        filled.join(tether_store::FILE_NAME),
        dir.path().join(tether_store::FILE_NAME),
    )?;
    let session = format!("replay-{runtime}-{queue}");
    let spec = format!(
        "{runtime} {} {} {queue}",
        dir.path().display(),
        server.session_url(&session)
    );
    let out = std::process::Command::new(std::env::current_exe()?)
        .env(CHILD, spec)
        .stderr(std::process::Stdio::inherit())
        .output()?;
    if !out.status.success() {
        return Err(format!("the replay child failed: {}", out.status).into());
    }
    let text = String::from_utf8(out.stdout)?;
    let fields: Vec<&str> = text.split_whitespace().collect();
    let [secs, restored, before, peak] = fields[..] else {
        return Err(format!("the replay child said {text:?}").into());
    };
    let held = server.inspector().events(&session).len() as u64;
    assert_eq!(held, events, "every stored event delivered once");
    let mut store = SqliteStore::open(dir.path())?;
    assert!(store.read(None, 1)?.is_empty(), "the outbox is empty after");
    Ok(Replay {
        secs: secs.parse()?,
        restored: restored.parse()?,
        before_kib: before.parse()?,
        peak_kib: peak.parse()?,
    })
}

/// Which rate of a [`Rates`].
type Field = fn(&Rates) -> f64;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn main() -> Result<(), Error> {
    if let Ok(spec) = std::env::var(CHILD) {
        return replay_child(&spec);
    }
    let mut args = std::env::args().skip(1);
    let events: u64 = args.next().map_or(Ok(200_000), |a| a.parse())?;
    let replay_events: u64 = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let runs: usize = args.next().map_or(Ok(3), |a| a.parse())?;
    let server = Server::start(ServerConfig::default())?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let modes: [(&str, Option<SyncPolicy>); 3] = [
        ("no outbox", None),
        ("outbox, never synced", Some(SyncPolicy::Never)),
        ("outbox, synced per group", Some(SyncPolicy::EveryWrite)),
    ];
    // rates[runtime][mode][run]
    let mut rates = vec![vec![Vec::new(); modes.len()]; RUNTIMES.len()];
    for round in 0..runs {
        for (r, runtime) in RUNTIMES.iter().enumerate() {
            for (m, (name, policy)) in modes.iter().enumerate() {
                let session = format!("{runtime}-{m}-{round}");
                let got = run(&server, runtime, &session, events, *policy, &tokio)?;
                println!(
                    "run {round} {runtime:8} {name:25} accepted {:>8.0} events/s, delivered \
                     {:>8.0} events/s",
                    got.accepted, got.delivered
                );
                rates[r][m].push(got);
            }
            let [plain, _, synced] = [&rates[r][0], &rates[r][1], &rates[r][2]];
            let (plain, synced) = (plain[round], synced[round]);
            println!(
                "run {round} {runtime:8} non-durable / durable: accepted {:.2}x, delivered {:.2}x",
                plain.accepted / synced.accepted,
                plain.delivered / synced.delivered
            );
        }
    }
    println!("\nmedians of {runs} runs, {events} events (events/s, accepted / delivered):");
    println!(
        "| runtime | no outbox | outbox, never synced | outbox, synced per group | non-durable / durable (accepted) | (delivered) |"
    );
    println!("|---|---|---|---|---|---|");
    for (r, runtime) in RUNTIMES.iter().enumerate() {
        let med = |m: usize, f: Field| median(rates[r][m].iter().map(f).collect());
        let ratio = |f: Field| {
            median(
                rates[r][0]
                    .iter()
                    .zip(&rates[r][2])
                    .map(|(p, s)| f(p) / f(s))
                    .collect(),
            )
        };
        let acc: Field = |x| x.accepted;
        let del: Field = |x| x.delivered;
        println!(
            "| {runtime} | {:.0} / {:.0} | {:.0} / {:.0} | {:.0} / {:.0} | {:.2}× | {:.2}× |",
            med(0, acc),
            med(0, del),
            med(1, acc),
            med(1, del),
            med(2, acc),
            med(2, del),
            ratio(acc),
            ratio(del)
        );
    }
    if replay_events == 0 {
        return Ok(());
    }
    let filled = tempfile::tempdir()?;
    fill(filled.path(), replay_events)?;
    let file = std::fs::metadata(filled.path().join(tether_store::FILE_NAME))?.len();
    println!(
        "\nreplay of {replay_events} stored events ({:.0} MiB file), each in a child process:",
        file as f64 / 1048576.0
    );
    println!("| runtime | queue | time | events/s | resident before | peak (VmHWM) |");
    println!("|---|---|---|---|---|---|");
    for queue in [100_000, 10_000] {
        for runtime in RUNTIMES {
            let got = replay(&server, runtime, filled.path(), replay_events, queue)?;
            assert_eq!(got.restored, replay_events);
            println!(
                "| {runtime} | {queue} | {:.1} s | {:.0} | {:.1} MiB | {:.1} MiB |",
                got.secs,
                replay_events as f64 / got.secs,
                got.before_kib as f64 / 1024.0,
                got.peak_kib as f64 / 1024.0
            );
        }
    }
    Ok(())
}
