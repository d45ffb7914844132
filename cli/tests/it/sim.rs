//! `tether sim` end to end: the sweep, a trace, the crash and fleet scenarios, and usage errors.

use std::process::Command;

fn tether(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(args)
        .output()
        .expect("the tether binary runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn a_sweep_reports_every_seed_passing() {
    let (code, out) = tether(&["sim", "--seeds", "0..30"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("30 runs in"), "{out}");
    assert!(out.contains("30 passed, 0 failed"), "{out}");
}

#[test]
fn a_trace_is_one_line_per_input_and_output_and_replays_identically() {
    let (code, first) = tether(&["sim", "--trace", "4", "--faults", "flaky"]);
    assert_eq!(code, 0, "{first}");
    assert!(first.contains("status connected"), "{first}");
    assert!(first.contains("-> r0 POST /worker/register"), "{first}");
    assert!(first.contains("every invariant held"), "{first}");
    let (_, second) = tether(&["sim", "--trace", "4", "--faults", "flaky"]);
    assert_eq!(
        first, second,
        "a seed must replay to a byte-identical trace"
    );
    let (code, other) = tether(&["sim", "--trace", "5", "--faults", "flaky"]);
    assert_eq!(code, 0, "{other}");
    // The summary names the seed; the trace above it must differ on its own.
    let body = |out: &str| -> String {
        out.lines()
            .take_while(|l| !l.starts_with("seed "))
            .collect()
    };
    assert_ne!(
        body(&first),
        body(&other),
        "another seed must give another trace"
    );
}

#[test]
fn the_crash_scenario_sweeps_and_a_seed_replays() {
    let (code, out) = tether(&["sim", "--crash", "--seeds", "0..20"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("20 crash runs in"), "{out}");
    assert!(out.contains("20 passed, 0 failed"), "{out}");
    assert!(out.contains("crashes 100,"), "{out}");
    let (code, first) = tether(&["sim", "--crash", "--trace", "3"]);
    assert_eq!(code, 0, "{first}");
    assert!(first.contains("** crash: client 0 killed"), "{first}");
    assert!(first.contains("every invariant held"), "{first}");
    let (_, second) = tether(&["sim", "--crash", "--trace", "3"]);
    assert_eq!(
        first, second,
        "a seed must replay to a byte-identical trace"
    );
}

#[test]
fn the_fleet_scenario_sweeps_and_a_seed_replays() {
    let (code, out) = tether(&["sim", "--fleet", "5", "--seeds", "0..3"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("3 fleet (5 sessions) runs in"), "{out}");
    assert!(out.contains("3 passed, 0 failed"), "{out}");
    assert!(
        out.contains("sent 45, delivered 45, handed back 0"),
        "{out}"
    );
    let args = ["sim", "--fleet", "3", "--budget", "none", "--trace", "1"];
    let (code, first) = tether(&args);
    assert_eq!(code, 0, "{first}");
    assert!(first.contains("s2 -> r0 POST /worker/register"), "{first}");
    assert!(first.contains("retries granted 0"), "{first}");
    assert!(first.contains("every invariant held"), "{first}");
    let (_, second) = tether(&args);
    assert_eq!(
        first, second,
        "a seed must replay to a byte-identical trace"
    );
}

#[test]
fn the_thread_sync_sweep_passes_and_a_seed_replays_identically() {
    let (code, out) = tether(&["sim", "--sync", "--seeds", "0..20"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("20 thread-sync runs in"), "{out}");
    assert!(out.contains("20 passed, 0 failed"), "{out}");
    let (code, first) = tether(&["sim", "--sync", "--trace", "3"]);
    assert_eq!(code, 0, "{first}");
    // Every client is a real driver: worker and thread routes on one trace, by client.
    for line in [
        "c0 -> r0 PUT /worker",
        "POST /threads/sync",
        "every invariant held",
    ] {
        assert!(first.contains(line), "{line:?} not in\n{first}");
    }
    let (_, second) = tether(&["sim", "--sync", "--trace", "3"]);
    assert_eq!(
        first, second,
        "a seed must replay to a byte-identical trace"
    );
}

#[test]
fn bad_arguments_are_usage_errors() {
    for args in [
        &["sim", "--seeds", "9..3"][..],
        &["sim", "--faults", "stormy"],
        &["sim", "--threads", "0"],
        &["sim", "--bogus"],
        // The core-only runner is retired: the flag is gone.
        &["sim", "--core"],
        &["sim", "--budget", "none"],
        &["sim", "--crash", "--sync"],
        &["sim", "--crash", "--fleet", "3"],
        &["sim", "--fleet", "0"],
        &["sim", "--fleet", "3", "--faults", "calm"],
    ] {
        let (code, out) = tether(args);
        assert_eq!(code, 2, "{args:?}: {out}");
        assert!(out.contains("USAGE"), "{out}");
    }
    let (code, out) = tether(&["sim", "--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("--trace SEED"));
    assert!(!out.contains("--core"), "{out}");
}

#[test]
fn a_trace_read_only_in_part_ends_quietly_and_the_rest_still_happens() {
    use std::io::Read;
    use std::process::Stdio;
    let svg = std::env::temp_dir().join(format!("tether-sim-head-{}.svg", std::process::id()));
    let _ = std::fs::remove_file(&svg);
    // A world trace is larger than a pipe's buffer (~140 KiB) and the writer meets a broken
    // pipe mid-trace; a crash trace may fit, and then the summary after it meets it.
    let runs: [&[&str]; 2] = [
        &["sim", "--trace", "1", "--svg", svg.to_str().unwrap()],
        &["sim", "--crash", "--trace", "1"],
    ];
    for args in runs {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tether"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read a little, as `| head` does, and close the pipe's read end.
        let mut head = [0u8; 64];
        child.stdout.take().unwrap().read_exact(&mut head).unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    }
    let drawn = std::fs::read_to_string(&svg).expect("the --svg is written all the same");
    assert!(
        drawn.starts_with("<svg"),
        "{}",
        &drawn[..drawn.len().min(80)]
    );
}
