//! Patch coalescing: patches per second coalesced into the pending update while a PUT is in
//! flight, against `json_patch::merge` (the usual, unlawful, way to combine merge patches).
//!
//! Workload (benches/README.md §Patch coalescing): patch `i` of 1 000 000 is
//! `{"worker_status": i % 3 == 0 ? "running" : "idle", "external_metadata": {"k{i % 50}": "v{i}"}}`,
//! and every 7th also sets `"k{(i + 1) % 50}": null`. Each iteration coalesces a batch of
//! `BATCH` consecutive patches (built outside the timing); the index runs on through the million
//! and wraps, so every patch of the workload is used.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Map, Value, json};
use tether_core::patch::{DocumentSchema, WorkerUpdate};
use tether_core::state::{self, Output, StateUploader};
use tether_core::{Instant, Poll};

const TOTAL: u64 = 1_000_000;
const BATCH: u64 = 10_000;

fn patch(i: u64) -> Map<String, Value> {
    let mut metadata = Map::new();
    metadata.insert(format!("k{}", i % 50), Value::from(format!("v{i}")));
    if i % 7 == 0 {
        metadata.insert(format!("k{}", (i + 1) % 50), Value::Null);
    }
    let status = if i % 3 == 0 { "running" } else { "idle" };
    match json!({"worker_status": status, "external_metadata": metadata}) {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

/// The next `BATCH` patches of the million, wrapping.
fn batch(next: &mut u64) -> Vec<Map<String, Value>> {
    let out = (0..BATCH).map(|k| patch((*next + k) % TOTAL)).collect();
    *next = (*next + BATCH) % TOTAL;
    out
}

/// An uploader with a PUT in flight, so every patch given to it coalesces into the pending update.
fn busy_uploader() -> StateUploader {
    let mut up = StateUploader::new(state::Config::default(), tether_core::Rng::new(1));
    up.set_epoch(Instant::ZERO, 1);
    up.enqueue(Instant::ZERO, json!({"worker_status": "starting"}))
        .unwrap();
    assert!(matches!(
        up.poll_output(),
        Poll::Output(Output::Send { .. })
    ));
    up
}

fn coalesce(c: &mut Criterion) {
    let mut group = c.benchmark_group("coalesce");
    group.throughput(Throughput::Elements(BATCH));

    let mut next = 0;
    group.bench_function("state_uploader_enqueue_in_flight", |b| {
        b.iter_batched(
            || (busy_uploader(), batch(&mut next)),
            |(mut up, patches)| {
                for p in patches {
                    black_box(up.enqueue_map(Instant::ZERO, p).unwrap());
                }
                up // dropped outside the timing
            },
            BatchSize::PerIteration,
        )
    });

    let mut next = 0;
    let schema = DocumentSchema::default();
    group.bench_function("worker_update_push", |b| {
        b.iter_batched(
            || batch(&mut next),
            |patches| {
                let mut pending = WorkerUpdate::default();
                for p in patches {
                    pending.push(&schema, black_box(p));
                }
                pending
            },
            BatchSize::PerIteration,
        )
    });

    let mut next = 0;
    group.bench_function("json_patch_merge_baseline", |b| {
        b.iter_batched(
            || {
                batch(&mut next)
                    .into_iter()
                    .map(Value::Object)
                    .collect::<Vec<_>>()
            },
            |patches| {
                let mut pending = Value::Object(Map::new());
                for p in &patches {
                    json_patch::merge(&mut pending, black_box(p));
                }
                (pending, patches)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, coalesce);
criterion_main!(benches);
