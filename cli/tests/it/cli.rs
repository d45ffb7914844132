//! The `tether` binary end to end: `pipe` against an in-process reference server on 127.0.0.1,
//! `demo` with heavy faults, and the usage errors. Every run is bounded in time. The `pipe` and
//! `demo` scenarios run on every runtime (`--runtime blocking`, `smol` and `tokio`) and expect
//! the same exit codes and output.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tether_server::{Server, ServerConfig};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the binary with `args` and `stdin`; kills it and fails if it runs past `limit`.
fn tether(args: &[&str], stdin: &str, limit: Duration) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tether");
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_owned();
    let writer = thread::spawn(move || {
        let _ = input.write_all(stdin.as_bytes());
    });
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
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
    let _ = writer.join();
    Run {
        code: status.code().expect("exit code"),
        stdout: out.join().expect("stdout"),
        stderr: err.join().expect("stderr"),
    }
}

fn lines(values: &[Value]) -> String {
    values.iter().map(|v| format!("{v}\n")).collect()
}

fn temp_file(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("tether-cli-{}-{name}", std::process::id()))
}

fn read_jsonl(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

/// For each scenario `fn(runtime: &str)`, a module of the same name with one test per runtime:
/// `<scenario>::blocking`, `<scenario>::smol` and `<scenario>::tokio`.
macro_rules! on_every_runtime {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[test]
            fn blocking() {
                super::$scenario("blocking");
            }

            #[test]
            fn smol() {
                super::$scenario("smol");
            }

            #[test]
            fn tokio() {
                super::$scenario("tokio");
            }
        }
    )*};
}

on_every_runtime!(
    pipe_delivers_valid_input_and_exits_0,
    pipe_reports_malformed_lines_by_number_skips_them_and_exits_6,
    pipe_superseded_hands_back_its_events_and_exits_4,
    pipe_with_the_server_down_hands_back_at_close_and_exits_3,
    demo_with_heavy_faults_exits_0,
);

fn pipe_delivers_valid_input_and_exits_0(runtime: &str) {
    let server = Server::start(ServerConfig::default()).expect("server");
    let url = server.session_url("pipe-ok");
    let mut input: Vec<Value> = (0..100).map(|seq| json!({"event": {"seq": seq}})).collect();
    input.insert(10, json!({"state": {"worker_status": "busy"}}));
    input.insert(50, json!({"flush": true}));
    input.push(json!({"internal_event": {"kind": "note"}}));
    input.push(json!({"state": {"external_metadata": {"done": true}}}));
    let run = tether(
        &[
            "pipe",
            "--runtime",
            runtime,
            "--url",
            &url,
            "--close-timeout",
            "5",
        ],
        &lines(&input),
        Duration::from_secs(30),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let inspector = server.inspector();
    let seqs: Vec<u64> = inspector
        .events("pipe-ok")
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, (0..100).collect::<Vec<_>>());
    assert_eq!(inspector.internal_events("pipe-ok").len(), 1);
    let document = inspector.document("pipe-ok").expect("document");
    assert_eq!(document["worker_status"], "busy");
    assert_eq!(document["external_metadata"], json!({"done": true}));
    // Status changes are JSON Lines on stderr.
    let statuses: Vec<Value> = run
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(statuses.first(), Some(&json!({"status": "connecting"})));
    assert!(
        statuses.contains(&json!({"status": "connected"})),
        "{}",
        run.stderr
    );
    assert_eq!(statuses.last(), Some(&json!({"status": "closed"})));
    server.shutdown().expect("shutdown");
}

fn pipe_reports_malformed_lines_by_number_skips_them_and_exits_6(runtime: &str) {
    let server = Server::start(ServerConfig::default()).expect("server");
    let url = server.session_url("pipe-bad");
    let input = "{\"event\": {\"seq\": 0}}\n\
                 not json\n\
                 {\"event\": {\"seq\": 1}}\n\
                 {\"event\": [1, 2]}\n\
                 {\"bogus\": true}\n\
                 {\"state\": {\"worker_epoch\": 9}}\n\
                 {\"event\": {\"seq\": 2}}\n";
    let run = tether(
        &["pipe", "--runtime", runtime, "--url", &url],
        input,
        Duration::from_secs(30),
    );
    assert_eq!(run.code, 6, "{}", run.stderr);
    for n in [2, 4, 5, 6] {
        assert!(
            run.stderr.contains(&format!("line {n}:")),
            "line {n} not named: {}",
            run.stderr
        );
    }
    for n in [1, 3, 7] {
        assert!(
            !run.stderr.contains(&format!("line {n}:")),
            "{}",
            run.stderr
        );
    }
    let seqs: Vec<u64> = server
        .inspector()
        .events("pipe-bad")
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, [0, 1, 2]);
    server.shutdown().expect("shutdown");
}

fn pipe_superseded_hands_back_its_events_and_exits_4(runtime: &str) {
    let server = Server::start(ServerConfig::default()).expect("server");
    let url = server.session_url("pipe-old");
    // A newer worker holds the session: epoch 1 is stale from the start.
    let inspector = server.inspector();
    inspector.force_takeover("pipe-old");
    inspector.force_takeover("pipe-old");
    let file = temp_file(&format!("superseded-{runtime}.jsonl"));
    let input: Vec<Value> = (0..20).map(|seq| json!({"event": {"seq": seq}})).collect();
    let run = tether(
        &[
            "pipe",
            "--runtime",
            runtime,
            "--url",
            &url,
            "--epoch",
            "1",
            "--undelivered",
            file.to_str().expect("utf-8 path"),
        ],
        &lines(&input),
        Duration::from_secs(30),
    );
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stderr.contains(r#"{"status":"superseded"}"#),
        "{}",
        run.stderr
    );
    let undelivered = read_jsonl(&file);
    let _ = std::fs::remove_file(&file);
    let seqs: Vec<u64> = undelivered
        .iter()
        .map(|u| {
            assert_eq!(u["reason"], "superseded", "{u}");
            assert_eq!(u["stream"], "events", "{u}");
            u["payload"]["seq"].as_u64().expect("seq")
        })
        .collect();
    assert_eq!(seqs, (0..20).collect::<Vec<_>>());
    assert!(inspector.events("pipe-old").is_empty());
    server.shutdown().expect("shutdown");
}

fn pipe_with_the_server_down_hands_back_at_close_and_exits_3(runtime: &str) {
    let server = Server::start(ServerConfig::default()).expect("server");
    let url = server.session_url("pipe-down");
    server.stop_listener().expect("stopped");
    let file = temp_file(&format!("down-{runtime}.jsonl"));
    let input = "{\"event\": {\"seq\": 0}}\n{\"state\": {\"worker_status\": \"busy\"}}\n";
    let started = Instant::now();
    let run = tether(
        &[
            "pipe",
            "--runtime",
            runtime,
            "--url",
            &url,
            "--close-timeout",
            "1",
            "--undelivered",
            file.to_str().expect("utf-8 path"),
        ],
        input,
        Duration::from_secs(20),
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(started.elapsed() < Duration::from_secs(10));
    let undelivered = read_jsonl(&file);
    let _ = std::fs::remove_file(&file);
    assert_eq!(undelivered.len(), 2, "{undelivered:?}");
    assert_eq!(undelivered[0]["reason"], "closed");
    assert_eq!(undelivered[0]["payload"]["seq"], 0);
    assert_eq!(undelivered[1]["reason"], "unacknowledged");
    server.shutdown().expect("shutdown");
}

#[test]
fn usage_errors_exit_2_with_the_usage() {
    let limit = Duration::from_secs(10);
    let run = tether(&["pipe"], "", limit);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--url is required"), "{}", run.stderr);
    assert!(run.stderr.contains("USAGE"), "{}", run.stderr);
    let run = tether(&["demo", "--events", "many"], "", limit);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--events"), "{}", run.stderr);
    let run = tether(&["serve", "--bogus"], "", limit);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("unknown flag `--bogus`"),
        "{}",
        run.stderr
    );
    for runtime in ["blocking", "smol", "tokio"] {
        let run = tether(
            &[
                "pipe",
                "--runtime",
                runtime,
                "--url",
                "ftp://127.0.0.1/v1/code/sessions/s",
            ],
            "",
            limit,
        );
        assert_eq!(run.code, 2);
        assert!(run.stderr.contains("only http and https"), "{}", run.stderr);
    }
    let url = "http://127.0.0.1:9/v1/code/sessions/s";
    for args in [&["demo"][..], &["pipe", "--url", url]] {
        let run = tether(&[args, &["--runtime", "async-std"]].concat(), "", limit);
        assert_eq!(run.code, 2);
        assert!(
            run.stderr
                .contains("expected `blocking`, `smol` or `tokio`"),
            "{}",
            run.stderr
        );
    }
    let run = tether(&["nope"], "", limit);
    assert_eq!(run.code, 2);
    for command in ["demo", "serve", "pipe"] {
        let run = tether(&[command, "--help"], "", limit);
        assert_eq!(run.code, 0);
        assert!(
            run.stdout.contains(&format!("tether {command}")),
            "{}",
            run.stdout
        );
        if command != "serve" {
            assert!(run.stdout.contains("tether-smol"), "{}", run.stdout);
            assert!(run.stdout.contains("tether-tokio"), "{}", run.stdout);
        }
    }
}

#[test]
fn serve_prints_its_url_and_stops_at_end_of_input() {
    let run = tether(
        &["serve", "--addr", "127.0.0.1:0", "--stdin-eof"],
        "",
        Duration::from_secs(20),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("listening on http://127.0.0.1:"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("/v1/code/sessions/demo"),
        "{}",
        run.stdout
    );
}

/// What `tether serve` (with `extra` arguments) wrote to stderr around one `GET` of a
/// session's worker document.
fn serve_log_of_one_request(extra: &[&str]) -> String {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(["serve", "--addr", "127.0.0.1:0", "--stdin-eof"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tether serve");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("a first line");
    let host = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned();
    let mut stream = std::net::TcpStream::connect(&host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /v1/code/sessions/quiet/worker HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("a response");
    assert!(response.starts_with("HTTP/1.1 "), "{response}");
    drop(child.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("tether serve did not stop at end of input");
        }
        thread::sleep(Duration::from_millis(20));
    }
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("stderr");
    stderr
}

#[test]
fn serve_logs_a_line_per_request_unless_quiet() {
    let logged = serve_log_of_one_request(&[]);
    assert!(
        logged.contains("GET /v1/code/sessions/quiet/worker"),
        "{logged}"
    );
    let quiet = serve_log_of_one_request(&["--quiet", "--threads", "1"]);
    assert!(!quiet.contains("/v1/code/sessions/quiet"), "{quiet}");
}

fn demo_with_heavy_faults_exits_0(runtime: &str) {
    let run = tether(
        &[
            "demo",
            "--runtime",
            runtime,
            "--events",
            "2000",
            "--faults",
            "heavy",
        ],
        "",
        Duration::from_secs(60),
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("events lost           0"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("events delivered      2000 of 2000"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.trim_end().ends_with("OK"), "{}", run.stdout);
}

#[test]
fn the_same_demo_leaves_the_same_record_at_the_server_on_every_runtime() {
    let record = |runtime: &str| {
        let run = tether(
            &[
                "demo",
                "--runtime",
                runtime,
                "--events",
                "1500",
                "--faults",
                "heavy",
                "--seed",
                "7",
            ],
            "",
            Duration::from_secs(60),
        );
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
        run.stdout
            .lines()
            .find_map(|l| l.strip_prefix("server record"))
            .map(|l| l.trim().to_owned())
            .expect("a server record line")
    };
    let blocking = record("blocking");
    assert_eq!(
        record("smol"),
        blocking,
        "smol and blocking left other records"
    );
}

#[test]
fn demo_draws_a_real_run_as_an_svg() {
    let dir = std::env::temp_dir().join(format!("tether-demo-svg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("run.svg");
    let run = tether(
        &[
            "demo",
            "--events",
            "500",
            "--faults",
            "light",
            "--svg",
            path.to_str().unwrap(),
        ],
        "",
        Duration::from_secs(60),
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let svg = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
    assert!(svg.contains("POST /worker/events"), "a bar per batch");
    assert!(
        svg.contains("POST /worker/register"),
        "the connect sequence"
    );
    assert!(!svg.contains("Bearer"), "never a token");
}

#[test]
fn json_reports_are_one_object_on_stdout() {
    let run = tether(
        &["demo", "--events", "300", "--runtime", "tokio", "--json"],
        "",
        Duration::from_secs(60),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report: serde_json::Value =
        serde_json::from_str(run.stdout.trim()).expect("one JSON object");
    assert_eq!(report["ok"], true);
    assert_eq!(report["events"]["delivered"], 300);
    assert_eq!(report["status"]["status"], "closed");

    let input = "{\"event\": {\"n\": 1}}\nnot json\n";
    let run = tether(
        &[
            "pipe",
            "--url",
            "http://127.0.0.1:9/v1/code/sessions/json",
            "--epoch",
            "1",
            "--close-timeout",
            "0.2",
            "--json",
        ],
        input,
        Duration::from_secs(20),
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    let report: serde_json::Value =
        serde_json::from_str(run.stdout.trim()).expect("one JSON object");
    assert_eq!(report["exit_code"], 3);
    assert_eq!(report["lines"], 2);
    assert_eq!(report["bad_lines"], 1);
    assert_eq!(report["undelivered"], 1);
}
