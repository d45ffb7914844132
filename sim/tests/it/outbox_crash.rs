//! Crash at random steps with a durable outbox, restart from what was persisted: every
//! acknowledged event lands exactly once, in order, and the document converges.

use tether_sim::{CrashConfig, run_crashes};

#[test]
fn every_acknowledged_event_lands_once_in_order_across_random_crashes() {
    let mut acknowledged = 0;
    let mut restored = 0;
    let mut duplicates = 0;
    for seed in 0..200 {
        let report = run_crashes(&CrashConfig::new(seed, 120));
        assert!(report.violations.is_empty(), "seed {seed}: {:#?}", report);
        assert!(report.crashes > 0, "seed {seed}: no crash happened");
        acknowledged += report.acknowledged;
        restored += report.restored;
        duplicates += report.duplicates;
    }
    // The sweep exercised what it is about: replays, and duplicates the server dropped.
    assert!(acknowledged > 10_000, "{acknowledged}");
    assert!(restored > 100, "{restored}");
    assert!(duplicates > 0, "{duplicates}");
}

#[test]
fn a_session_without_an_outbox_asks_for_nothing_durable() {
    use serde_json::json;
    use tether_core::batch::Event;
    use tether_core::session::{Output, Session, SessionConfig};
    use tether_core::{Instant, Poll, Rng};
    let mut session = Session::new(
        SessionConfig::new("s").with_epoch(1),
        Rng::new(1),
        Instant::ZERO,
    )
    .expect("valid");
    session
        .send_event(Instant::ZERO, Event::new(json!({"a": 1})))
        .expect("queued");
    session
        .patch_state(Instant::ZERO, json!({"k": 1}))
        .expect("patched");
    while let Poll::Output(output) = session.poll_output() {
        assert!(
            !matches!(
                output,
                Output::Persist { .. } | Output::Forget { .. } | Output::PersistState(_)
            ),
            "{output:?}"
        );
    }
}
