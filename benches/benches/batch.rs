//! The batch drainer: events of about 200 bytes of JSON, batches of 100.
//!
//! - `end_to_end`: enqueue (serialise + uuid) → batch → body assembly → success.
//! - `body_write` vs `body_memcpy`: assembling one 100-event body into a reused buffer, against
//!   one `extend_from_slice` of the same bytes; `body_items_memcpy`: the same 100 items copied
//!   one by one from their own allocations (no commas, no envelope).
//! - `machine_no_body` vs `vecdeque`: the machine on prepared events with
//!   [`BodyMode::Deferred`] (no body built), against `VecDeque` push + pop of the same handles.

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use tether_core::batch::{BatchDrainer, BodyMode, Config, Event, Output, PreparedEvent};
use tether_core::{Instant, Outcome, Poll, Rng};

/// Events per iteration (the 1 000 000-event workload, scaled down; rates are per event).
const N: usize = 10_000;
const BATCH: usize = 100;

/// About 200 bytes of JSON once the uuid is stamped.
fn payload(i: usize) -> Value {
    json!({
        "type": "assistant",
        "seq": i,
        "session": "sess-0123456789",
        "text": "the quick brown fox jumps over the lazy dog, again and again",
        "tokens": [1, 2, 3, 4, 5],
    })
}

/// Batches fill to 100 before they go: a linger window that never elapses on a fixed clock.
fn config(body: BodyMode) -> Config {
    Config {
        linger: Duration::from_secs(1),
        body,
        ..Config::default()
    }
}

fn drainer(body: BodyMode) -> BatchDrainer {
    let mut d = BatchDrainer::new(config(body), Rng::new(1)).unwrap();
    d.set_epoch(Instant::ZERO, 7);
    d
}

/// Drains outputs, answering each send with success. Returns bytes of body seen.
fn pump(d: &mut BatchDrainer) -> usize {
    let mut seen = 0;
    loop {
        match d.poll_output() {
            Poll::Output(Output::Send { id, body, .. }) => {
                seen += body.len();
                black_box(&body);
                d.handle_outcome(Instant::ZERO, id, Outcome::Success);
            }
            Poll::Output(o) => {
                black_box(o);
            }
            Poll::Timeout(_) => return seen,
        }
    }
}

fn prepared() -> Vec<PreparedEvent> {
    let mut d = drainer(BodyMode::Deferred);
    (0..N)
        .map(|i| d.prepare(Event::new(payload(i))).unwrap())
        .collect()
}

fn batch(c: &mut Criterion) {
    let events: Vec<Value> = (0..N).map(payload).collect();
    let handles = prepared();
    let mean = handles.iter().map(|p| p.bytes()).sum::<usize>() / N;
    eprintln!("mean event item: {mean} bytes");

    let mut g = c.benchmark_group("batch");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("end_to_end", |b| {
        b.iter_batched(
            || (drainer(BodyMode::Assembled), events.clone()),
            |(mut d, events)| {
                let mut bytes = 0;
                for e in events {
                    d.enqueue(Instant::ZERO, Event::new(e)).unwrap();
                    bytes += pump(&mut d);
                }
                black_box(bytes)
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("machine_no_body", |b| {
        b.iter_batched(
            || (drainer(BodyMode::Deferred), handles.clone()),
            |(mut d, handles)| {
                for h in handles {
                    d.enqueue_prepared(Instant::ZERO, h).unwrap();
                    pump(&mut d);
                }
                d
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("vecdeque", |b| {
        b.iter_batched(
            || (VecDeque::<PreparedEvent>::new(), handles.clone()),
            |(mut q, handles)| {
                for h in handles {
                    q.push_back(h);
                    if q.len() == BATCH {
                        for h in q.drain(..) {
                            black_box(&h);
                        }
                    }
                }
                q
            },
            BatchSize::LargeInput,
        )
    });

    // One 100-event batch in flight, its body written into a reused buffer.
    let mut d = drainer(BodyMode::Deferred);
    let mut id = None;
    for h in handles.iter().take(BATCH).cloned() {
        d.enqueue_prepared(Instant::ZERO, h).unwrap();
        while let Poll::Output(o) = d.poll_output() {
            if let Output::Send { id: i, .. } = o {
                id = Some(i);
            }
        }
    }
    let id = id.unwrap();
    let mut flat = Vec::new();
    assert!(d.write_body(id, &mut flat));
    g.throughput(Throughput::Bytes(flat.len() as u64));
    let mut buf = Vec::with_capacity(flat.len());
    g.bench_function("body_write", |b| {
        b.iter(|| {
            buf.clear();
            d.write_body(black_box(id), &mut buf);
            black_box(buf.len())
        })
    });
    g.bench_function("body_memcpy", |b| {
        b.iter(|| {
            buf.clear();
            buf.extend_from_slice(black_box(&flat));
            black_box(buf.len())
        })
    });
    // The same 100 items, each in its own allocation as the drainer holds them, copied one by
    // one: the floor for any assembly that does one copy per item.
    let items: Vec<PreparedEvent> = handles.iter().take(BATCH).cloned().collect();
    g.bench_function("body_items_memcpy", |b| {
        b.iter(|| {
            buf.clear();
            for item in black_box(&items) {
                buf.extend_from_slice(item.item_bytes());
            }
            black_box(buf.len())
        })
    });
    g.finish();
}

criterion_group!(benches, batch);
criterion_main!(benches);
