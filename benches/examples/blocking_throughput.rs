//! Throughput of `tether-blocking` against `tether-server` on loopback, without faults, beside
//! the naive way: one POST per event with the same ureq agent configuration.
//!
//! ```sh
//! cargo run --release -p tether-benches --features examples --example blocking_throughput [-- EVENTS NAIVE_EVENTS]
//! ```
#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark is an I/O edge: it reads the clock"
)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tether_blocking::Tether;
use tether_blocking::runtime::USER_AGENT;
use tether_core::batch::Event;
use tether_core::session::{SessionConfig, Status, Stream};
use tether_server::{Server, ServerConfig};

/// An event of 200 bytes as the server stores it (with its 36-character `uuid`).
fn event(seq: u64) -> Value {
    let mut event = json!({"type": "bench", "seq": seq, "text": ""});
    let uuid_len = r#","uuid":"00000000-0000-0000-0000-000000000000""#.len();
    let pad = 200usize.saturating_sub(event.to_string().len() + uuid_len);
    event["text"] = json!("x".repeat(pad));
    event
}

/// One run of the shim: time from the first send until a flush confirmed every event, and
/// what went on the wire meanwhile.
struct ShimRun {
    time: Duration,
    requests: u64,
    bytes: u64,
}

impl ShimRun {
    fn rate(&self, events: u64) -> f64 {
        events as f64 / self.time.as_secs_f64()
    }
}

type Sender<'a> =
    dyn Fn(&Tether, std::ops::Range<u64>) -> Result<(), Box<dyn std::error::Error>> + 'a;

fn run_shim(
    server: &Server,
    session: &str,
    events: u64,
    config: SessionConfig,
    send: impl Fn(&Tether, std::ops::Range<u64>) -> Result<(), Box<dyn std::error::Error>>,
) -> Result<ShimRun, Box<dyn std::error::Error>> {
    let send: &Sender<'_> = &send;
    let tether = tether_blocking::builder(server.session_url(session))
        .epoch(1)
        .seed(1)
        .config(config)
        .start()?;
    let _ = tether
        .statuses()
        .iter()
        .find(|s| *s != Ok(Status::Connecting));
    let before = tether.counters().wire;
    let started = Instant::now();
    send(&tether, 0..events)?;
    tether.flush(Duration::from_secs(120)).wait()?;
    let time = started.elapsed();
    let report = tether.close(Duration::from_secs(10)).wait();
    assert!(report.all_delivered(), "{report:?}");
    assert_eq!(server.inspector().events(session).len() as u64, events);
    let wire = report.counters.wire;
    Ok(ShimRun {
        time,
        requests: wire.requests - before.requests,
        bytes: wire.body_bytes - before.body_bytes,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let events: u64 = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let naive_events: u64 = args.next().map_or(Ok(5_000), |a| a.parse())?;
    let server = Server::start(ServerConfig::default())?;
    let inspector = server.inspector();

    // The shim, default configuration (batches of up to 100 events, one batch in flight):
    // first `send_event` per event, then `send_events` in chunks of 1 000.
    let defaults = SessionConfig::new("");
    let per_event = run_shim(
        &server,
        "shim-per-event",
        events,
        defaults.clone(),
        |tether, seqs| {
            for seq in seqs {
                tether
                    .send_event(event(seq), Duration::from_secs(60))
                    .wait()?;
            }
            Ok(())
        },
    )?;
    let bulk_send = |tether: &Tether, seqs: std::ops::Range<u64>| {
        let seqs: Vec<u64> = seqs.collect();
        for chunk in seqs.chunks(1_000) {
            let chunk = chunk.iter().map(|&seq| Event::new(event(seq)));
            tether
                .send_events(Stream::Events, chunk, Duration::from_secs(60))
                .wait()?;
        }
        Ok(())
    };
    let bulk = run_shim(&server, "shim-bulk", events, defaults.clone(), bulk_send)?;
    // The same with batches of up to 1 000 events (the protocol allows 10 MiB per batch).
    let mut big_batches = defaults;
    big_batches.events.max_batch_items = 1_000;
    let bulk_big = run_shim(&server, "shim-bulk-1000", events, big_batches, bulk_send)?;

    // One POST per event, through an agent configured as the shim's.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(USER_AGENT)
        // Per phase, not global: under a global timeout ureq looks the host up on a thread
        // of its own for every request, which would slow the baseline down for nothing.
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_recv_response(Some(Duration::from_secs(10)))
        .timeout_recv_body(Some(Duration::from_secs(10)))
        .build()
        .into();
    let url = format!("{}/worker/events", server.session_url("naive"));
    let mut naive_bytes = 0u64;
    let started = Instant::now();
    for seq in 0..naive_events {
        let mut payload = event(seq);
        payload["uuid"] = json!(format!("00000000-0000-4000-8000-{seq:012}"));
        let body = json!({"worker_epoch": 1, "events": [{"payload": payload}]}).to_string();
        naive_bytes += body.len() as u64;
        let response = agent
            .post(&url)
            .header("content-type", "application/json")
            .send(&body)?;
        assert_eq!(response.status().as_u16(), 200);
        let _ = response.into_body().read_to_string()?;
    }
    let naive_time = started.elapsed();
    assert_eq!(inspector.events("naive").len() as u64, naive_events);
    let naive_rate = naive_events as f64 / naive_time.as_secs_f64();

    // The floor: building each payload and serialising it once, as the core does at enqueue.
    let started = Instant::now();
    let mut json_bytes = 0usize;
    for seq in 0..events {
        json_bytes += serde_json::to_vec(&event(seq))?.len();
    }
    let floor = started.elapsed();
    println!(
        "building and serialising {events} payloads alone: {:.2} s ({:.0} events/s, {json_bytes} bytes)",
        floor.as_secs_f64(),
        events as f64 / floor.as_secs_f64()
    );
    println!(
        "| path | events | time | events/s | HTTP requests | body bytes sent | vs one POST per event |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, run) in [
        ("tether-blocking, `send_event` per event", &per_event),
        ("tether-blocking, `send_events` by 1 000", &bulk),
        (
            "tether-blocking, `send_events` by 1 000, `max_batch_items` 1 000",
            &bulk_big,
        ),
    ] {
        println!(
            "| {name} | {events} | {:.2} s | {:.0} | {} | {} | {:.1}× |",
            run.time.as_secs_f64(),
            run.rate(events),
            run.requests,
            run.bytes,
            run.rate(events) / naive_rate
        );
    }
    println!(
        "| one POST per event, same agent configuration | {naive_events} | {:.2} s | {:.0} | {naive_events} | {naive_bytes} | 1× |",
        naive_time.as_secs_f64(),
        naive_rate
    );
    server.shutdown()?;
    Ok(())
}
