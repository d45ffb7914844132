//! What a durable outbox keeps, end to end: `tether pipe --outbox` with the server down closes
//! on its timeout and says (exit 7) that the acknowledged lines are kept; `tether outbox` shows
//! and exports them; the next run with the server up delivers each once, in order, with the
//! uuid it had. A dead letter is handed back (exit 3), kept marked dead, and discarded only on
//! `--yes`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};
use tether_server::{Server, ServerConfig};

/// Runs `tether` with `args` and `input` on stdin.
pub(crate) fn tether(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tether");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_owned();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let output = child.wait_with_output().expect("wait for tether");
    let _ = writer.join();
    output
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(crate) fn lines(bytes: &[u8]) -> Vec<Value> {
    text(bytes)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn pipe(url: &str, dir: &Path, undelivered: &Path, input: &str) -> Output {
    pipe_on("blocking", url, dir, undelivered, input)
}

fn pipe_on(runtime: &str, url: &str, dir: &Path, undelivered: &Path, input: &str) -> Output {
    tether(
        &[
            "pipe",
            "--runtime",
            runtime,
            "--url",
            url,
            "--epoch",
            "1",
            "--close-timeout",
            "2",
            "--send-timeout",
            "10",
            "--outbox",
            dir.to_str().unwrap(),
            "--undelivered",
            undelivered.to_str().unwrap(),
        ],
        input,
    )
}

fn show(dir: &Path) -> Value {
    let out = tether(&["outbox", dir.to_str().unwrap(), "show", "--json"], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("show prints JSON")
}

/// The outbox on every runtime: the store's work runs off the executor (smol's `unblock`,
/// tokio's `spawn_blocking`, the blocking shim's own driver thread).
mod a_close_with_the_server_down_keeps_every_acknowledged_line_for_the_next_run {
    #[test]
    fn blocking() {
        super::kept_for_the_next_run("blocking");
    }

    #[test]
    fn smol() {
        super::kept_for_the_next_run("smol");
    }

    #[test]
    fn tokio() {
        super::kept_for_the_next_run("tokio");
    }
}

fn kept_for_the_next_run(runtime: &str) {
    let pipe = |url: &str, dir: &Path, undelivered: &Path, input: &str| {
        pipe_on(runtime, url, dir, undelivered, input)
    };
    let server = Server::start(ServerConfig::default()).expect("server");
    let url = server.session_url("kept");
    server.stop_listener().expect("server down");
    let tmp = tempdir(&format!("kept-{runtime}"));
    let dir = tmp.join("outbox");
    let undelivered = tmp.join("undelivered.jsonl");
    // 100 events, and a state patch after every 20th: the document must converge too.
    let input: String = (0..100)
        .map(|n| {
            let mut line = format!("{}\n", json!({ "event": { "n": n } }));
            if n % 20 == 19 {
                let patch = json!({ "state": { format!("k{}", n % 3): n, "last": n } });
                line.push_str(&format!("{patch}\n"));
            }
            line
        })
        .collect();

    let first = pipe(&url, &dir, &undelivered, &input);
    let stderr = text(&first.stderr);
    assert_eq!(first.status.code(), Some(7), "kept in the outbox: {stderr}");
    let acks = lines(&first.stdout);
    assert_eq!(acks.len(), 105, "{acks:?}");
    assert!(
        acks.iter().enumerate().all(|(i, a)| a["ack"] == i + 1),
        "every line acknowledged, in order: {acks:?}"
    );
    assert!(stderr.contains("100 events kept in the outbox"), "{stderr}");
    let written = std::fs::read_to_string(&undelivered).unwrap_or_default();
    assert!(written.is_empty(), "kept is not handed back: {written}");

    let shown = show(&dir);
    assert_eq!(shown["pending"], 100, "{shown}");
    assert_eq!(shown["dead"], 0, "{shown}");
    assert_eq!(shown["session"], url.as_str(), "{shown}");
    assert!(shown["bytes"].as_u64().unwrap() > 0, "{shown}");
    assert_eq!(shown["oldest"]["key"], 0, "{shown}");
    let export = tether(&["outbox", dir.to_str().unwrap(), "export"], "");
    assert_eq!(export.status.code(), Some(0), "{}", text(&export.stderr));
    let exported = lines(&export.stdout);
    assert!(exported.iter().all(|r| r["outbox"] == "pending"));
    // The kept state, as the patches not acknowledged yet.
    let (state, exported): (Vec<Value>, Vec<Value>) =
        exported.into_iter().partition(|r| r.get("state").is_some());
    assert_eq!(state.len(), 1, "{state:?}");
    assert_eq!(exported.len(), 100);
    let uuids: Vec<Value> = exported
        .iter()
        .map(|r| r["payload"]["uuid"].clone())
        .collect();
    let ns: Vec<Value> = exported.iter().map(|r| r["payload"]["n"].clone()).collect();
    assert_eq!(ns, (0..100).map(Value::from).collect::<Vec<_>>());

    // Another session may not take this outbox's events without saying so.
    let other = server.session_url("other");
    let refused = pipe(&other, &dir, &undelivered, "");
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("belongs to session"),
        "{}",
        text(&refused.stderr)
    );

    let before = server.inspector().document("kept").unwrap_or(Value::Null);
    assert!(
        before.get("last").is_none(),
        "nothing reached the server: {before}"
    );
    server.restart_listener().expect("server up");
    let second = pipe(&url, &dir, &undelivered, "");
    assert_eq!(second.status.code(), Some(0), "{}", text(&second.stderr));
    let inspector = server.inspector();
    let events = inspector.events("kept");
    let seen: Vec<Value> = events.iter().map(|e| e["n"].clone()).collect();
    assert_eq!(seen, ns, "every acknowledged line once, in order");
    let seen_uuids: Vec<Value> = events.iter().map(|e| e["uuid"].clone()).collect();
    assert_eq!(
        seen_uuids, uuids,
        "with the uuids they were acknowledged with"
    );
    assert_eq!(inspector.duplicates("kept").count, 0);
    // The document converged on the patches acknowledged while the server was down.
    let document = inspector.document("kept").unwrap_or(Value::Null);
    for (key, value) in [("k0", 99), ("k1", 79), ("k2", 59), ("last", 99)] {
        assert_eq!(document[key], value, "{key} in {document}");
    }
    let shown = show(&dir);
    assert_eq!(
        (shown["pending"].clone(), shown["dead"].clone()),
        (json!(0), json!(0))
    );
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn a_dead_letter_is_handed_back_kept_marked_dead_and_discarded_only_on_yes() {
    let server = Server::start(ServerConfig::default().with_body_limit(4096)).expect("server");
    let url = server.session_url("dead");
    let tmp = tempdir("dead");
    let dir = tmp.join("outbox");
    let undelivered = tmp.join("undelivered.jsonl");
    let big = "x".repeat(8000);
    let input = format!(
        "{}\n{}\n",
        json!({ "event": { "n": 0, "big": big } }),
        json!({ "event": { "n": 1 } })
    );
    let run = pipe(&url, &dir, &undelivered, &input);
    assert_eq!(run.status.code(), Some(3), "{}", text(&run.stderr));
    let written = lines(&std::fs::read(&undelivered).unwrap_or_default());
    assert_eq!(written.len(), 1, "{written:?}");
    assert_eq!(written[0]["reason"], "too-large");
    assert_eq!(written[0]["outbox"], "dead");
    let shown = show(&dir);
    assert_eq!(
        (shown["pending"].clone(), shown["dead"].clone()),
        (json!(0), json!(1))
    );
    let export = lines(&tether(&["outbox", dir.to_str().unwrap(), "export"], "").stdout);
    assert_eq!(export.len(), 1, "{export:?}");
    assert_eq!(export[0]["outbox"], "dead");
    assert_eq!(export[0]["payload"]["n"], 0);

    // Not replayed by the next run.
    let again = pipe(&url, &dir, &undelivered, "");
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    let seen: Vec<Value> = server
        .inspector()
        .events("dead")
        .iter()
        .map(|e| e["n"].clone())
        .collect();
    assert_eq!(seen, [json!(1)]);

    let no = tether(&["outbox", dir.to_str().unwrap(), "discard", "--dead"], "");
    assert_eq!(no.status.code(), Some(2), "{}", text(&no.stderr));
    assert!(text(&no.stderr).contains("--yes"), "{}", text(&no.stderr));
    assert_eq!(show(&dir)["dead"], 1, "nothing dropped without --yes");
    let yes = tether(
        &[
            "outbox",
            dir.to_str().unwrap(),
            "discard",
            "--dead",
            "--yes",
        ],
        "",
    );
    assert_eq!(yes.status.code(), Some(0), "{}", text(&yes.stderr));
    assert_eq!(lines(&yes.stdout)[0]["discarded"]["dead"], 1);
    assert_eq!(show(&dir)["dead"], 0);

    let missing = tether(&["outbox", tmp.join("none").to_str().unwrap(), "show"], "");
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("no outbox"),
        "{}",
        text(&missing.stderr)
    );
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Per runtime: the lock is the store's, but the pipe holding it runs its store work on each
/// runtime's own path.
mod a_second_process_is_refused_while_a_pipe_holds_the_outbox {
    #[test]
    fn blocking() {
        super::refused_while_held("blocking");
    }

    #[test]
    fn smol() {
        super::refused_while_held("smol");
    }

    #[test]
    fn tokio() {
        super::refused_while_held("tokio");
    }
}

fn refused_while_held(runtime: &str) {
    let url = "http://127.0.0.1:1/v1/code/sessions/held";
    let tmp = tempdir(&format!("held-{runtime}"));
    let dir = tmp.join("outbox");
    // A pipe that waits on its input (kept open) holds the outbox.
    let mut held = Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(["pipe", "--runtime", runtime, "--url", url, "--epoch", "1"])
        .arg("--outbox")
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tether pipe");
    let mut stdin = held.stdin.take().expect("stdin");
    writeln!(stdin, "{}", json!({ "event": { "n": 0 } })).expect("write a line");
    // Its ack comes without more input; bounded, so a pipe that waits for more fails the test.
    let stdout = held.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut ack = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut ack);
        let _ = tx.send(ack);
    });
    let ack = rx.recv_timeout(std::time::Duration::from_secs(30));
    if ack.is_err() {
        let _ = held.kill();
        let _ = held.wait();
    }
    let ack = ack.expect("the line is acknowledged without waiting for the next");
    assert!(ack.contains("\"ack\""), "{ack}");
    let second = tether(&["outbox", dir.to_str().unwrap(), "show"], "");
    let third = pipe_on(runtime, url, &dir, &tmp.join("u.jsonl"), "");
    // Of the process this test started, by its handle.
    drop(stdin);
    let _ = held.kill();
    let _ = held.wait();
    assert_eq!(second.status.code(), Some(1));
    assert!(
        text(&second.stderr).contains("open in another process"),
        "{}",
        text(&second.stderr)
    );
    assert_eq!(third.status.code(), Some(1));
    assert!(text(&third.stderr).contains("open in another process"));
    // Once it is gone, the outbox opens, and keeps the line it acknowledged.
    assert_eq!(show(&dir)["pending"], 1);
    let _ = std::fs::remove_dir_all(&tmp);
}

/// A fresh directory of this test's own under the system's temporary directory.
pub(crate) fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tether-outbox-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temporary directory");
    dir
}

#[test]
fn a_record_the_outbox_cannot_read_is_said_on_stderr_and_the_rest_is_sent() {
    use tether_blocking::{Store, WriteBatch};
    let server = Server::start(ServerConfig::default()).expect("server");
    let url = server.session_url("unreadable");
    let tmp = tempdir("unreadable");
    let dir = tmp.join("outbox");
    let undelivered = tmp.join("undelivered.jsonl");
    {
        let mut store = tether_store::SqliteStore::open(&dir).expect("open");
        store.bind_session(&url, false).expect("bind");
        let batch = WriteBatch {
            puts: vec![(0, b"not a record".to_vec())],
            ..WriteBatch::default()
        };
        store.write(&batch, true).expect("write");
    }
    let run = pipe(&url, &dir, &undelivered, "{\"event\": {\"n\": 1}}\n");
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("\"outbox_dropped\"") && stderr.contains("\"key\":0"),
        "the drop is said: {stderr}"
    );
    assert_eq!(server.inspector().events("unreadable").len(), 1);
    let _ = std::fs::remove_dir_all(&tmp);
}
