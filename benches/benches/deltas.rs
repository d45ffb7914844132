//! Delta coalescing: an assistant streams 1 000 tokens, one every 20 ms, each a
//! `{"type": "content_block_delta", "index": 0, "text": token}` delta of one content block,
//! through a whole [`Session`] on a simulated clock, against a server that answers every
//! request 30 ms after it was sent. With the default 100 ms window, and without coalescing
//! (window zero: each delta is its own event, as `send_event` would queue it).
//!
//! The bench prints, once per mode, the events on the wire, the requests, the events per
//! batch and the bytes of request bodies; criterion times the whole stream.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use tether_core::session::{Endpoint, Output, Response, Session, SessionConfig};
use tether_core::{Instant, Poll, Rng};

const TOKENS: u64 = 1_000;
const EVERY: Duration = Duration::from_millis(20);
const LATENCY: Duration = Duration::from_millis(30);

#[derive(Debug, Default)]
struct Wire {
    requests: u64,
    events: u64,
    body_bytes: u64,
    delivered: u64,
}

fn stream(window: Duration) -> Wire {
    let mut config = SessionConfig::new("bench").with_epoch(1);
    config.deltas.window = window;
    let mut session = Session::new(config, Rng::new(1), Instant::ZERO).unwrap();
    let mut wire = Wire::default();
    let mut now = Instant::ZERO;
    let mut replies: Vec<(Instant, tether_core::session::RequestId)> = Vec::new();
    let mut next_token = 0u64;
    let end = Instant::from_secs(120);
    loop {
        let wake = loop {
            match session.poll_output() {
                Poll::Output(Output::Send(request)) => {
                    if request.endpoint == Endpoint::Events {
                        wire.requests += 1;
                        wire.body_bytes += request.body.len() as u64;
                        let body: serde_json::Value =
                            serde_json::from_slice(&request.body).unwrap();
                        wire.events += body["events"].as_array().map_or(0, |a| a.len() as u64);
                    }
                    replies.push((now.saturating_add(LATENCY), request.id));
                }
                Poll::Output(Output::Delivered { events, .. }) => {
                    wire.delivered += events.len() as u64;
                }
                Poll::Output(o) => {
                    black_box(o);
                }
                Poll::Timeout(wake) => break wake.map(|w| w.at),
            }
        };
        let token_at = (next_token < TOKENS)
            .then(|| Instant::ZERO.saturating_add(EVERY * (next_token as u32 + 1)));
        let reply_at = replies.first().map(|r| r.0);
        let Some(next) = [token_at, reply_at, wake].into_iter().flatten().min() else {
            break;
        };
        if next > end {
            break;
        }
        now = next;
        if reply_at == Some(now) {
            let (_, id) = replies.remove(0);
            session.handle_response(now, id, Response::new(200, r#"{"worker":{}}"#));
        } else if token_at == Some(now) {
            let delta = json!({"type": "content_block_delta", "index": 0, "text": "tok "});
            session.send_delta(now, "block-0", delta).unwrap();
            next_token += 1;
            if next_token == TOKENS {
                session.flush(now, Instant::MAX).unwrap();
            }
        } else {
            session.handle_timeout(now);
        }
        let settled = next_token == TOKENS
            && replies.is_empty()
            && session.delta_counters().buffered_bytes == 0;
        if settled && wire.delivered == wire.events && wire.events > 0 {
            break;
        }
    }
    wire
}

fn report(name: &str, wire: &Wire) {
    eprintln!(
        "{name}: {} events in {} requests ({:.1} events/batch), {} body bytes ({:.0} B/token)",
        wire.events,
        wire.requests,
        wire.events as f64 / wire.requests.max(1) as f64,
        wire.body_bytes,
        wire.body_bytes as f64 / TOKENS as f64,
    );
}

fn bench(c: &mut Criterion) {
    let with = stream(Duration::from_millis(100));
    let without = stream(Duration::ZERO);
    report("coalesced (100 ms)", &with);
    report("not coalesced", &without);
    let mut group = c.benchmark_group("token_stream_1000");
    group.bench_function("coalesced_100ms", |b| {
        b.iter(|| black_box(stream(Duration::from_millis(100))))
    });
    group.bench_function("not_coalesced", |b| {
        b.iter(|| black_box(stream(Duration::ZERO)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
