//! The outbox crash test of `cli/tests/it/outbox_crash.rs`, longer: more kills, more lines, several
//! seeds, on every runtime. `tether pipe --outbox` streams to an in-process reference server
//! (down for stretches of runs) and is killed with SIGKILL at random points during intake,
//! replay and delivery; at the end every acknowledged line's event is on the server exactly
//! once, in input order, and the document converged.
//!
//! ```text
//! cargo build -p tether && cargo run -p tether-benches --features examples --example outbox_crash -- [KILLS] [SEEDS]
//! ```
//! `TETHER_BIN` names the binary (default `target/debug/tether`).
#![allow(
    clippy::disallowed_methods,
    reason = "an example is the I/O edge: it reads clocks and sleeps"
)]

#[path = "../../cli/tests/it/support/crash.rs"]
mod crash;

use std::path::PathBuf;

fn main() {
    let mut args = std::env::args().skip(1);
    let kills: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(500);
    let seeds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(4);
    let bin = std::env::var_os("TETHER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/debug/tether"));
    assert!(
        bin.exists(),
        "build the CLI first: cargo build -p tether ({bin:?})"
    );
    let mut failed = false;
    for runtime in ["blocking", "smol", "tokio"] {
        for seed in 0..seeds {
            let started = std::time::Instant::now();
            let report = crash::run(&bin, runtime, seed, 400_000, kills, 80);
            println!(
                "{runtime} seed {seed}: {} kills ({:?}), {} lines acknowledged before kills, {} \
                 duplicates dropped, {} violations, {:.1} s",
                report.kills,
                report.phases,
                report.acked_before_kills,
                report.duplicates,
                report.violations.len(),
                started.elapsed().as_secs_f64()
            );
            for v in &report.violations {
                println!("  {v}");
                failed = true;
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}
