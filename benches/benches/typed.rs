//! The enqueue paths against their floors (issue 10, item 6): the same events generated and
//! serialised into one growing body with no machine, against the drainer taking them through
//! `enqueue_serialize` (typed) or `enqueue(Event::new(Value))` and building 100-event bodies,
//! each batch answered as it goes (the default 100 000-event queue, batches of 100, the events
//! of the `batch` bench).
//!
//! Report the ratios `typed_floor / typed_drainer` and `value_floor / value_drainer` from one
//! run (targets: ≥ 80 % and ≥ 85 %).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use serde::Serialize;
use serde_json::{Value, json};
use tether_core::batch::{BatchDrainer, BodyMode, Config, Event, Output};
use tether_core::{Instant, Outcome, Poll, Rng};

const N: usize = 100_000;

/// The `batch` bench's event, as a typed struct.
#[derive(Serialize)]
struct Line {
    r#type: &'static str,
    seq: usize,
    session: &'static str,
    text: &'static str,
    tokens: [u8; 5],
}

fn line(i: usize) -> Line {
    Line {
        r#type: "assistant",
        seq: i,
        session: "sess-0123456789",
        text: "the quick brown fox jumps over the lazy dog, again and again",
        tokens: [1, 2, 3, 4, 5],
    }
}

/// The same event as a `Value`.
fn value(i: usize) -> Value {
    json!({
        "type": "assistant",
        "seq": i,
        "session": "sess-0123456789",
        "text": "the quick brown fox jumps over the lazy dog, again and again",
        "tokens": [1, 2, 3, 4, 5],
    })
}

fn drainer() -> BatchDrainer {
    let config = Config {
        linger: Duration::from_secs(1),
        body: BodyMode::Assembled,
        ..Config::default()
    };
    let mut d = BatchDrainer::new(config, Rng::new(1)).unwrap();
    d.set_epoch(Instant::ZERO, 7);
    d
}

/// Drains the outputs: every body built, every batch a success.
fn drain(d: &mut BatchDrainer) -> usize {
    let mut bytes = 0;
    loop {
        match d.poll_output() {
            Poll::Output(Output::Send { id, body, .. }) => {
                bytes += body.len();
                black_box(&body);
                d.handle_outcome(Instant::ZERO, id, Outcome::Success);
            }
            Poll::Output(o) => {
                black_box(o);
            }
            Poll::Timeout(_) => return bytes,
        }
    }
}

#[derive(Serialize)]
struct FloorItem<'a, T> {
    payload: &'a T,
}

/// The floor: generate each event, give it a uuid, serialise it into one growing body.
fn floor<T: Serialize>(
    make: impl Fn(usize) -> T,
    mut stamp: impl FnMut(&mut T, &mut Rng),
) -> usize {
    let mut rng = Rng::new(1);
    let mut body = Vec::with_capacity(N * 220);
    body.extend_from_slice(br#"{"worker_epoch":7,"events":["#);
    for i in 0..N {
        let mut event = make(i);
        stamp(&mut event, &mut rng);
        if i > 0 {
            body.push(b',');
        }
        serde_json::to_writer(&mut body, &FloorItem { payload: &event }).unwrap();
    }
    body.extend_from_slice(b"]}");
    black_box(body.len())
}

#[derive(Serialize)]
struct Stamped {
    #[serde(flatten)]
    line: Line,
    uuid: String,
}

fn typed(c: &mut Criterion) {
    let mut g = c.benchmark_group("typed");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("typed_floor", |b| {
        b.iter(|| {
            floor(
                |i| Stamped {
                    line: line(i),
                    uuid: String::new(),
                },
                |e, rng| e.uuid = rng.uuid_v4(),
            )
        })
    });
    g.bench_function("typed_drainer", |b| {
        b.iter_batched(
            drainer,
            |mut d| {
                let mut bytes = 0;
                for i in 0..N {
                    d.enqueue_serialize(Instant::ZERO, &line(i)).unwrap();
                    bytes += drain(&mut d);
                }
                bytes
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("value_floor", |b| {
        b.iter(|| {
            floor(value, |e, rng| {
                e.as_object_mut()
                    .unwrap()
                    .insert("uuid".into(), Value::String(rng.uuid_v4()));
            })
        })
    });
    g.bench_function("value_drainer", |b| {
        b.iter_batched(
            drainer,
            |mut d| {
                let mut bytes = 0;
                for i in 0..N {
                    d.enqueue(Instant::ZERO, Event::new(value(i))).unwrap();
                    bytes += drain(&mut d);
                }
                bytes
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, typed);
criterion_main!(benches);
