//! `tether pipe --outbox` killed with SIGKILL at 50 random points and started again on the
//! same outbox each time: the server ends with every acknowledged line's event exactly once,
//! in input order, and the document converged. Bounded: 50 kills, about ten seconds.
//! `benches/examples/outbox_crash.rs` runs it longer.
#![allow(
    clippy::disallowed_methods,
    reason = "tests are the I/O edge: they read clocks and sleep"
)]

mod support;

use std::path::Path;

#[test]
fn sigkill_at_random_points_loses_and_duplicates_no_acknowledged_line() {
    let bin = Path::new(env!("CARGO_BIN_EXE_tether"));
    let report = support::crash::run(bin, 13, 100_000, 50, 60);
    eprintln!("{report:?}");
    assert!(report.violations.is_empty(), "{report:#?}");
    assert!(report.kills >= 50, "{report:#?}");
    assert!(report.acked_before_kills > 0, "{report:#?}");
}
