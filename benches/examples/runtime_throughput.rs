//! Full batches on every runtime (issue 11, item 5): 200 000 events of about 200 bytes through
//! each shim to `tether-server` on loopback, no faults; events/s and events per batch, beside
//! one POST per event in the same process.
//!
//! ```sh
//! cargo run --release -p tether-benches --features examples --example runtime_throughput [-- EVENTS NAIVE_EVENTS ROUNDS]
//! ```
//!
//! Each of `ROUNDS` rounds (default 5) runs every runtime once, each against a fresh server, in
//! an order that rotates by one per round (no runtime is always first or last); the table gives
//! each runtime's median, least and most, and the ratio compares medians. On a shared 2-core
//! host one run of each swings by 1.5× on its own; medians of interleaved rounds do not.
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
        // Per phase, not global: under a global timeout ureq looks the host up on a thread
        // of its own for every request, which would slow the baseline down for nothing.
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_recv_response(Some(Duration::from_secs(10)))
        .timeout_recv_body(Some(Duration::from_secs(10)))
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
    let rounds: usize = args.next().map_or(Ok(5), |a| a.parse())?;
    if rounds == 0 {
        return Err("ROUNDS must be at least 1".into());
    }
    type Shim = fn(&Server, u64) -> Result<Run, Box<dyn std::error::Error>>;
    let shims: [(&str, Shim); 3] = [("blocking", blocking), ("smol", smol), ("tokio", tokio)];
    // Events/s of each runtime, per round.
    let mut rates: [Vec<f64>; 3] = Default::default();
    let mut batches = [0u64; 3];
    for round in 0..rounds {
        for k in 0..shims.len() {
            let i = (round + k) % shims.len();
            let (session, shim) = shims[i];
            // A fresh server for each run: the server keeps every event it took, and a
            // runtime measured against one holding the others' would pay for them.
            let server = Server::start(ServerConfig::default())?;
            let run = shim(&server, events)?;
            assert_eq!(
                server.inspector().events(session).len() as u64,
                events,
                "{session}"
            );
            server.shutdown()?;
            rates[i].push(events as f64 / run.time.as_secs_f64());
            batches[i] += run.batches;
        }
    }
    let server = Server::start(ServerConfig::default())?;
    let naive = one_post_per_event(&server, naive_events)?;
    assert_eq!(
        server.inspector().events("naive").len() as u64,
        naive_events
    );
    let naive_rate = naive_events as f64 / naive.as_secs_f64();

    println!(
        "| runtime | events × rounds | median events/s | least | most | events per batch | median vs one POST per event |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut medians = [0.0; 3];
    for (i, (session, _)) in shims.iter().enumerate() {
        rates[i].sort_by(f64::total_cmp);
        let median = rates[i][rates[i].len() / 2];
        medians[i] = median;
        println!(
            "| tether-{session} | {events} × {rounds} | {median:.0} | {:.0} | {:.0} | {:.1} | {:.1}× |",
            rates[i][0],
            rates[i][rates[i].len() - 1],
            (events * rounds as u64) as f64 / batches[i].max(1) as f64,
            median / naive_rate
        );
    }
    println!("| one POST per event | {naive_events} | {naive_rate:.0} | | | 1.0 | 1.0× |",);
    let fastest = medians.iter().copied().fold(0.0, f64::max);
    let slowest = medians.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "fastest / slowest runtime, medians: {:.2}× (target ≤ 1.5×)",
        fastest / slowest
    );
    server.shutdown()?;
    Ok(())
}
