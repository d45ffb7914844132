//! How long drawing a run's timeline takes, and how big the SVG is.
//!
//! Runs ten-minute worker sessions in the simulator's world on the hostile mix with the default
//! workload (about 7 000 events), records each run's timeline, and renders it repeatedly; then
//! does the same for a synthetic timeline of 150 000 short requests, far denser than any run.
//!
//! ```sh
//! cargo run --release -p tether-benches --features examples --example timeline_render
//! ```

use std::time::{Duration, Instant as Clock};

use tether_core::Instant;
use tether_core::session::{Endpoint, Request, RequestId, Status};
use tether_sim::render::render;
use tether_sim::timeline::Recorder;
use tether_sim::{FaultMix, RunConfig, Timeline, WorkloadConfig, run_session};

const REPEAT: usize = 20;

/// The median and the slowest of `REPEAT` renders, and the size.
fn measure(timeline: &Timeline) -> (Duration, Duration, usize) {
    let mut times = Vec::with_capacity(REPEAT);
    let mut size = 0;
    for _ in 0..REPEAT {
        let started = Clock::now();
        let svg = render(timeline);
        times.push(started.elapsed());
        size = svg.len();
    }
    times.sort();
    (times[REPEAT / 2], times[REPEAT - 1], size)
}

fn dense() -> Timeline {
    let mut recorder = Recorder::new("dense");
    let endpoints = [
        Endpoint::Events,
        Endpoint::InternalEvents,
        Endpoint::Delivery,
    ];
    for i in 0..150_000u64 {
        let at = Instant::from_micros(i * 4_000);
        let id = RequestId(i);
        recorder.sent(
            at,
            &Request {
                id,
                endpoint: endpoints[(i % 3) as usize],
                body: vec![b' '; 100],
                deadline: at + Duration::from_secs(10),
            },
        );
        if i % 7 == 0 {
            recorder.fault(id, "503");
        }
        let end = at + Duration::from_millis(20);
        match i % 5 {
            0 => recorder.transport_error(end, id),
            1 => recorder.response(end, id, 429, Some("3"), None),
            _ => recorder.response(end, id, 200, None, None),
        }
        if i % 10 == 0 {
            let status = match i % 20 {
                0 => Status::Retrying {
                    attempt: 1,
                    at: at + Duration::from_millis(30),
                },
                _ => Status::Connected,
            };
            recorder.status(at, status);
        }
        recorder.sample(at, i % 500, (i % 500) * 100, i % 3);
    }
    recorder.finish(Instant::from_secs(600))
}

fn main() {
    println!(
        "| timeline | simulated | requests | spans | status changes | samples | render (median / max of {REPEAT}) | SVG |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let row = |name: &str, timeline: &Timeline| {
        let (median, max, size) = measure(timeline);
        println!(
            "| {name} | {:.0} s | {} | {} | {} | {} | {:.2} / {:.2} ms | {:.0} KiB |",
            timeline.end.as_micros() as f64 / 1e6,
            timeline.bars.len(),
            timeline.spans.len(),
            timeline.marks.len(),
            timeline.samples.len(),
            median.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3,
            size as f64 / 1024.0
        );
    };
    for seed in [3, 4, 5, 6] {
        let mut config = RunConfig::new(seed, FaultMix::hostile()).with_timeline();
        config.workload = WorkloadConfig::default();
        let report = run_session(&config).expect("a valid configuration");
        let timeline = report.timeline.expect("asked for a timeline");
        row(&format!("hostile seed {seed}"), &timeline);
    }
    row("synthetic, 150 000 requests", &dense());
}
