//! `tether demo --sync` end to end on both runtimes: three clients share threads through the
//! in-process server and must converge. Bounded in time.

use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Runs `tether` with `args`, killing it past `limit`; the exit code and stdout.
fn tether(args: &[&str], limit: Duration) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tether");
    let mut out = child.stdout.take().expect("stdout");
    let reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tether {args:?} ran past {limit:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    (
        status.code().expect("exit code"),
        reader.join().expect("stdout"),
    )
}

fn demo_sync_converges_and_exits_0(runtime: &str, faults: &str) {
    let args = [
        "demo",
        "--sync",
        "--runtime",
        runtime,
        "--events",
        "120",
        "--faults",
        faults,
    ];
    let (code, stdout) = tether(&args, Duration::from_secs(60));
    assert_eq!(code, 0, "{stdout}");
    for line in [
        "messages added        360 (120 per client)",
        "messages missing      0",
        "messages repeated     0 (plus 0 never added)",
        "clients converged     3 of 3",
        "statuses synced       3 of 3",
    ] {
        assert!(stdout.contains(line), "{line:?} not in\n{stdout}");
    }
    assert!(stdout.trim_end().ends_with("OK"), "{stdout}");
}

#[test]
fn demo_sync_on_blocking() {
    demo_sync_converges_and_exits_0("blocking", "light");
}

#[test]
fn demo_sync_on_smol() {
    demo_sync_converges_and_exits_0("smol", "heavy");
}

/// Heavy faults on every route, the thread routes included.
#[test]
fn demo_sync_through_heavy_faults_on_tokio() {
    demo_sync_converges_and_exits_0("tokio", "heavy");
}

#[test]
fn demo_sync_help_names_the_switch() {
    let (code, stdout) = tether(&["demo", "--help"], Duration::from_secs(10));
    assert_eq!(code, 0);
    assert!(stdout.contains("--sync"), "{stdout}");
}
