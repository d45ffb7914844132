//! A human-readable trace of the state uploader: coalescing, a failure, absorption during the
//! backoff wait, then success. One line per input (`>`), wake-up (`~`) and output (`<`).

use crate::common;

use core::time::Duration;

use common::{Sim, put};
use serde_json::json;
use tether_core::state;
use tether_core::{Outcome, TransientCause};

#[test]
fn coalesce_fail_absorb_succeed() {
    let mut sim = Sim::new(state::Config::default(), 42);
    sim.input("set_epoch 7", |up, now| up.set_epoch(now, 7));
    sim.input(
        "rebase {\"worker_status\":\"idle\",\"external_metadata\":{\"a\":{\"old\":true}}}",
        |up, now| {
            up.rebase(
                now,
                json!({"worker_status": "idle", "external_metadata": {"a": {"old": true}}}),
            )
            .unwrap()
        },
    );
    let (_, out) = sim.input("enqueue {\"worker_status\":\"running\"}", |up, now| {
        up.enqueue(now, json!({"worker_status": "running"}))
            .unwrap()
    });
    let (first, _) = put(&out[0]).unwrap();

    sim.set_time(sim.now() + Duration::from_millis(40));
    sim.input(
        "enqueue {\"external_metadata\":{\"a\":null,\"k\":1}}",
        |up, now| {
            up.enqueue(now, json!({"external_metadata": {"a": null, "k": 1}}))
                .unwrap()
        },
    );
    sim.input(
        "enqueue {\"external_metadata\":{\"k\":2,\"a\":{\"new\":1}}}",
        |up, now| {
            up.enqueue(now, json!({"external_metadata": {"k": 2, "a": {"new": 1}}}))
                .unwrap()
        },
    );
    sim.input(
        "enqueue {\"worker_status\":\"running\"} (same as the view, kept: put#0 may yet be rejected)",
        |up, now| {
            up.enqueue(now, json!({"worker_status": "running"}))
                .unwrap()
        },
    );

    sim.set_time(sim.now() + Duration::from_millis(60));
    let (_, out) = sim.input("outcome put#0 success", |up, now| {
        up.handle_outcome(now, first, Outcome::Success)
    });
    let (resets, _) = put(&out[0]).unwrap();

    sim.set_time(sim.now() + Duration::from_millis(80));
    sim.input("outcome put#1 503", |up, now| {
        up.handle_outcome(now, resets, Outcome::Transient(TransientCause::Transport))
    });

    sim.set_time(sim.now() + Duration::from_millis(200));
    sim.input(
        "enqueue {\"external_metadata\":{\"k\":3},\"worker_status\":\"busy\"}",
        |up, now| {
            up.enqueue(
                now,
                json!({"external_metadata": {"k": 3}, "worker_status": "busy"}),
            )
            .unwrap()
        },
    );
    sim.input("flush (deadline 30s)", |up, now| {
        up.flush(now, tether_core::Instant::from_secs(30)).unwrap()
    });
    let out = sim.advance().unwrap();
    let (retry, _) = put(&out[0]).unwrap();

    sim.set_time(sim.now() + Duration::from_millis(50));
    let (_, out) = sim.input("outcome put#2 success", |up, now| {
        up.handle_outcome(now, retry, Outcome::Success)
    });
    let (last, _) = put(&out[0]).unwrap();
    sim.set_time(sim.now() + Duration::from_millis(50));
    sim.input("outcome put#3 success", |up, now| {
        up.handle_outcome(now, last, Outcome::Success)
    });

    sim.set_time(sim.now() + Duration::from_millis(10));
    sim.input(
        "enqueue {\"worker_status\":\"busy\"} (idle and changes nothing: skipped)",
        |up, now| up.enqueue(now, json!({"worker_status": "busy"})).unwrap(),
    );

    let c = sim.up().counters();
    let mut trace = sim.trace().to_vec();
    trace.push(format!("view: {}", sim.up().view()));
    trace.push(format!(
        "counters: patches {}, puts sent {}, acknowledged {}, retries {}, rejections {}, no-ops skipped {}",
        c.patches, c.puts_sent, c.puts_acknowledged, c.retries, c.rejections, c.skipped_noop
    ));
    assert_eq!(sim.up().view(), sim.up().acknowledged());
    insta::assert_snapshot!(trace.join("\n"));
}
