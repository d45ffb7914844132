//! The timeline picture of a run: pinned for one scenario, a pure function of the seed, bounded
//! in size, and showing what the fault plan did.

use std::time::Duration;

use tether_core::Instant;
use tether_core::session::Status;
use tether_core::session::{Endpoint, Request, RequestId};
use tether_sim::render::render;
use tether_sim::timeline::{Lane, Recorder, SpanKind, StatusKind, Timeline};
use tether_sim::{FaultMix, RunConfig, RunReport, WorkloadConfig, run_session};

/// A partition long enough to go stale, then a newer worker takes the session over.
fn partition_and_takeover() -> FaultMix {
    FaultMix {
        partitions_per_hour: 30.0,
        partition_min: Duration::from_secs(60),
        partition_max: Duration::from_secs(90),
        takeover: 1.0,
        ..FaultMix::flaky()
    }
}

fn readable(duration: Duration) -> WorkloadConfig {
    WorkloadConfig {
        duration,
        events_per_second: 0.2,
        burst_probability: 0.1,
        burst_max: 8,
        internal_events_per_second: 0.05,
        acks_per_second: 0.05,
        patches_per_second: 0.1,
        flushes_per_second: 1.0 / 60.0,
        ..WorkloadConfig::sweep()
    }
}

fn timeline_of(seed: u64, mix: FaultMix, workload: WorkloadConfig) -> (RunReport, Timeline) {
    let mut config = RunConfig::new(seed, mix).with_timeline();
    config.workload = workload;
    let mut report = run_session(&config).unwrap();
    assert!(report.passed(), "seed {seed}: {:?}", report.violations);
    let timeline = report.timeline.take().expect("asked for a timeline");
    (report, timeline)
}

/// The seed of the pinned scenario: its partition comes before its takeover.
const SCENARIO_SEED: u64 = 5;

fn scenario() -> (RunReport, Timeline) {
    timeline_of(
        SCENARIO_SEED,
        partition_and_takeover(),
        readable(Duration::from_secs(300)),
    )
}

#[test]
fn a_partition_and_a_takeover_show_as_spans_and_marks() {
    let (report, timeline) = scenario();
    assert_eq!(report.status, Status::Superseded);
    let partition = timeline
        .spans
        .iter()
        .find(|s| s.kind == SpanKind::Partition)
        .expect("a partition span");
    let takeover = timeline
        .spans
        .iter()
        .find(|s| s.kind == SpanKind::Takeover)
        .expect("a takeover line");
    assert!(partition.end <= takeover.start, "the partition comes first");
    assert!(partition.lane.is_none() && takeover.start == takeover.end);
    // Everything sent during the partition was lost: faulted, and never a success.
    let during: Vec<_> = timeline
        .bars
        .iter()
        .filter(|b| partition.start < b.start && b.start < partition.end)
        .collect();
    assert!(!during.is_empty());
    assert!(
        during
            .iter()
            .all(|b| b.faulted && b.details.contains("partition"))
    );
    assert!(
        timeline
            .spans
            .iter()
            .any(|s| s.kind == SpanKind::Fault && s.lane == Some(Lane::Heartbeat))
    );
    let kinds: Vec<StatusKind> = timeline.marks.iter().map(|m| m.kind).collect();
    assert_eq!(kinds.first(), Some(&StatusKind::Connecting));
    assert_eq!(kinds.last(), Some(&StatusKind::Superseded));
    assert!(kinds.contains(&StatusKind::Stale), "{kinds:?}");
    assert!(
        timeline
            .marks
            .iter()
            .any(|m| m.kind == StatusKind::Retrying && m.until.is_some_and(|u| u > m.at))
    );
    assert!(timeline.samples.iter().any(|s| s.events > 0 && s.bytes > 0));
    assert!(timeline.samples.iter().any(|s| s.patches > 0));
    assert_eq!(timeline.end, report.stats.end.max(timeline.end));

    let svg = render(&timeline);
    assert!(svg.contains("<title>partition "), "partition has a title");
    assert!(svg.contains("<title>takeover by a newer epoch at "));
    assert!(svg.contains(">superseded</text>"), "the legend names it");
}

#[test]
fn the_scenario_picture_is_pinned() {
    let (_, timeline) = scenario();
    insta::assert_snapshot!("partition_and_takeover_svg", render(&timeline));
}

#[test]
fn the_same_seed_draws_the_same_bytes() {
    let mix = FaultMix::hostile();
    let draw = |seed| render(&timeline_of(seed, mix.clone(), readable(Duration::from_secs(300))).1);
    let first = draw(7);
    assert_eq!(first, draw(7));
    assert_ne!(first, draw(8));
}

#[test]
fn a_ten_minute_hostile_run_stays_under_two_megabytes() {
    // The default workload (~7 000 events in ten minutes) on the worst mix: thousands of
    // requests, most narrower than a pixel.
    for seed in [3, 4] {
        let (report, timeline) = timeline_of(seed, FaultMix::hostile(), WorkloadConfig::default());
        assert_eq!(report.status, Status::Closed, "seed {seed} runs to the end");
        assert!(timeline.bars.len() > 300, "{}", timeline.bars.len());
        let svg = render(&timeline);
        assert!(svg.len() < 2 << 20, "seed {seed}: {} bytes", svg.len());
    }
}

#[test]
fn a_dense_timeline_merges_what_a_pixel_cannot_show() {
    // 150 000 requests of 20 ms each in ten minutes, every kind of outcome, a status change
    // and a retry wait every 40 ms: far more than any run makes, still under the bound.
    let mut recorder = Recorder::new("dense");
    let endpoints = [
        Endpoint::Events,
        Endpoint::InternalEvents,
        Endpoint::Delivery,
    ];
    for i in 0..150_000u64 {
        let at = Instant::from_micros(i * 4_000);
        let id = RequestId(i);
        let request = Request {
            id,
            endpoint: endpoints[(i % 3) as usize],
            body: vec![b' '; 100],
            deadline: at + Duration::from_secs(10),
        };
        recorder.sent(at, &request);
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
    let timeline = recorder.finish(Instant::from_secs(600));
    let svg = render(&timeline);
    assert!(svg.len() < 2 << 20, "{} bytes", svg.len());
    assert!(svg.contains(" requests from "), "narrow bars were merged");
}
