//! Full batches on every runtime (issue 11, item 5): 200 000 events of about 200 bytes through
//! each shim to `tether-server` on loopback, no faults; events/s and events per batch, beside
//! one POST per event through the same server in the same run.
//!
//! ```sh
//! cargo run --release -p tether-benches --features examples --example runtime_throughput [-- EVENTS NAIVE_EVENTS [reverse]]
//! ```
//!
//! `reverse` runs tokio, smol, blocking instead of blocking, smol, tokio: the first runtime meets
//! a server that has not warmed up yet.
#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark is an I/O edge: it reads the clock"
)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tether_core::session::SessionConfig;
use tether_server::{Server, ServerConfig};

/// An event of 200 bytes as the server stores it (with its 36-character `uuid`).
fn event(seq: u64) -> Value {
    let mut event = json!({"type": "bench", "seq": seq, "text": ""});
    let uuid_len = r#","uuid":"00000000-0000-0000-0000-000000000000""#.len();
    let pad = 200usize.saturating_sub(event.to_string().len() + uuid_len);
    event["text"] = json!("x".repeat(pad));
    event
}

/// What one run through a shim did.
struct Run {
    runtime: &'static str,
    time: Duration,
    batches: u64,
}

const TIMEOUT: Duration = Duration::from_secs(60);

fn blocking(server: &Server, events: u64) -> Result<Run, Box<dyn std::error::Error>> {
    let session = "blocking";
    let tether = tether_blocking::builder(server.session_url(session))
        .epoch(1)
        .seed(1)
        .config(SessionConfig::new(session))
        .start()?;
    let started = Instant::now();
    for seq in 0..events {
        tether.send_event(event(seq), TIMEOUT).wait()?;
    }
    tether.flush(Duration::from_secs(120)).wait()?;
    let time = started.elapsed();
    let report = tether.close(Duration::from_secs(10)).wait();
    assert!(report.all_delivered(), "{report:?}");
    Ok(Run {
        runtime: "tether-blocking",
        time,
        batches: report.counters.events.batches_sent,
    })
}

fn smol(server: &Server, events: u64) -> Result<Run, Box<dyn std::error::Error>> {
    let session = "smol";
    smol::block_on(async {
        let tether = tether_smol::builder(server.session_url(session))
            .epoch(1)
            .seed(1)
            .config(SessionConfig::new(session))
            .start()?;
        let started = Instant::now();
        for seq in 0..events {
            tether.send_event(event(seq), TIMEOUT).await?;
        }
        tether.flush(Duration::from_secs(120)).await?;
        let time = started.elapsed();
        let report = tether.close(Duration::from_secs(10)).await;
        assert!(report.all_delivered(), "{report:?}");
        Ok(Run {
            runtime: "tether-smol",
            time,
            batches: report.counters.events.batches_sent,
        })
    })
}

fn tokio(server: &Server, events: u64) -> Result<Run, Box<dyn std::error::Error>> {
    let session = "tokio";
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let tether = tether_tokio::builder(server.session_url(session))
            .epoch(1)
            .seed(1)
            .config(SessionConfig::new(session))
            .start()?;
        let started = Instant::now();
        for seq in 0..events {
            tether.send_event(event(seq), TIMEOUT).await?;
        }
        tether.flush(Duration::from_secs(120)).await?;
        let time = started.elapsed();
        let report = tether.close(Duration::from_secs(10)).await;
        assert!(report.all_delivered(), "{report:?}");
        Ok(Run {
            runtime: "tether-tokio",
            time,
            batches: report.counters.events.batches_sent,
        })
    })
}

/// One POST per event, with a plain ureq agent: the way without tether.
fn one_post_per_event(
    server: &Server,
    events: u64,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let url = format!("{}/worker/events", server.session_url("naive"));
    let started = Instant::now();
    for seq in 0..events {
        let mut payload = event(seq);
        payload["uuid"] = json!(format!("00000000-0000-4000-8000-{seq:012}"));
        let body = json!({"worker_epoch": 1, "events": [{"payload": payload}]}).to_string();
        let response = agent
            .post(&url)
            .header("content-type", "application/json")
            .send(&body)?;
        assert_eq!(response.status().as_u16(), 200);
        let _ = response.into_body().read_to_string()?;
    }
    Ok(started.elapsed())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let events: u64 = args.next().map_or(Ok(200_000), |a| a.parse())?;
    let naive_events: u64 = args.next().map_or(Ok(5_000), |a| a.parse())?;
    let reverse = match args.next().as_deref() {
        None => false,
        Some("reverse") => true,
        Some(other) => return Err(format!("unknown argument {other:?}: only `reverse`").into()),
    };
    let server = Server::start(ServerConfig::default())?;
    let inspector = server.inspector();

    let mut runs = Vec::with_capacity(3);
    if reverse {
        runs.push(tokio(&server, events)?);
        runs.push(smol(&server, events)?);
        runs.push(blocking(&server, events)?);
    } else {
        runs.push(blocking(&server, events)?);
        runs.push(smol(&server, events)?);
        runs.push(tokio(&server, events)?);
    }
    for run in &runs {
        let session = run.runtime.trim_start_matches("tether-");
        assert_eq!(inspector.events(session).len() as u64, events, "{session}");
    }
    let naive = one_post_per_event(&server, naive_events)?;
    assert_eq!(inspector.events("naive").len() as u64, naive_events);
    let naive_rate = naive_events as f64 / naive.as_secs_f64();

    let rates: Vec<f64> = runs
        .iter()
        .map(|r| events as f64 / r.time.as_secs_f64())
        .collect();
    println!(
        "| runtime | events | time | events/s | batches | events per batch | vs one POST per event |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (run, rate) in runs.iter().zip(&rates) {
        println!(
            "| {} | {events} | {:.2} s | {rate:.0} | {} | {:.1} | {:.1}× |",
            run.runtime,
            run.time.as_secs_f64(),
            run.batches,
            events as f64 / run.batches.max(1) as f64,
            rate / naive_rate
        );
    }
    println!(
        "| one POST per event | {naive_events} | {:.2} s | {naive_rate:.0} | {naive_events} | 1.0 | 1.0× |",
        naive.as_secs_f64()
    );
    let fastest = rates.iter().copied().fold(0.0, f64::max);
    let slowest = rates.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "fastest / slowest runtime: {:.2}× (target ≤ 1.5×)",
        fastest / slowest
    );
    server.shutdown()?;
    Ok(())
}
