//! `tether pipe --outbox` killed with SIGKILL at 50 random points on each runtime and started
//! again on the same outbox each time, with the server down for stretches of runs: kills land
//! during intake, during replay of a stored backlog and during delivery (at least 5 each), and
//! the server ends with every acknowledged line's event exactly once, in input order, and the
//! document converged. Bounded: at most 200 runs per runtime, a few seconds each runtime.
//! `benches/examples/outbox_crash.rs` runs it longer.

use crate::support;

use std::path::Path;

#[test]
fn sigkill_at_random_points_loses_and_duplicates_no_acknowledged_line() {
    for runtime in ["blocking", "smol", "tokio"] {
        let bin = Path::new(env!("CARGO_BIN_EXE_tether"));
        let started = std::time::Instant::now();
        let report = support::crash::run(bin, runtime, 13, 100_000, 50, 60);
        eprintln!(
            "{runtime}: {} kills in {:.1} s: {:?}, {} lines acknowledged before kills, {} \
             duplicates dropped",
            report.kills,
            started.elapsed().as_secs_f64(),
            report.phases,
            report.acked_before_kills,
            report.duplicates
        );
        assert!(report.violations.is_empty(), "{runtime}: {report:#?}");
        assert!(report.kills >= 50, "{runtime}: {report:#?}");
        assert!(report.acked_before_kills > 0, "{runtime}: {report:#?}");
        let phases = report.phases;
        let least = phases
            .intake
            .min(phases.replay)
            .min(phases.delivery)
            .min(phases.server_down);
        assert!(least >= 5, "{runtime}: kills in every phase: {phases:?}");
    }
}

/// Runs `tether` with `args` and empty input; its exit code and stderr.
fn tether(args: &[&str]) -> (Option<i32>, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run tether");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn an_outbox_that_cannot_be_opened_is_an_error_that_says_why() {
    let dir = std::env::temp_dir().join(format!("tether-outbox-file-{}", std::process::id()));
    std::fs::write(&dir, b"a file, not a directory").expect("write");
    let outbox = dir.join("outbox");
    let url = "http://127.0.0.1:1/v1/code/sessions/s";
    let (code, stderr) = tether(&["pipe", "--url", url, "--outbox", outbox.to_str().unwrap()]);
    let _ = std::fs::remove_file(&dir);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("cannot open the outbox"), "{stderr}");
    let (code, stderr) = tether(&[
        "pipe",
        "--url",
        url,
        "--outbox",
        "/tmp/x",
        "--outbox-sync",
        "x",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
}
