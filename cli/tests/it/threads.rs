//! `tether threads` end to end: `tether serve` and three bridges, each a real process on its
//! own runtime (blocking, smol, tokio), share one session's threads. Each adds messages (one
//! also edits, deletes and sets a title, one sends malformed lines), flushes, and flushes
//! again once all have; then every bridge's final view must be the server's threads, read
//! through `GET /threads`. Every process is the test's own, and each is killed past its bound.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(60);
const MESSAGES: usize = 20;

/// A child process that is killed if the test lets go of it early.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl Proc {
    /// Waits for the exit code until `deadline`; kills the process and fails past it.
    fn exit_code(&mut self, deadline: Instant) -> i32 {
        loop {
            if let Some(status) = self.0.try_wait().expect("wait") {
                return status.code().expect("an exit code");
            }
            assert!(Instant::now() < deadline, "a process ran past its bound");
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Reads `reader`'s lines into a channel on a thread of its own.
fn lines_of(reader: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// `tether serve` on a port the OS picks; stops at end of its stdin.
struct Serve {
    proc: Proc,
    stdin: Option<ChildStdin>,
    base: String,
}

impl Serve {
    fn start() -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tether"))
            .args(["serve", "--addr", "127.0.0.1:0", "--stdin-eof"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn tether serve");
        let stdin = child.stdin.take();
        let out = lines_of(child.stdout.take().expect("stdout"));
        let proc = Proc(child);
        let line = out
            .recv_timeout(Duration::from_secs(20))
            .expect("tether serve says where it listens");
        let base = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{line}"))
            .to_owned();
        Serve { proc, stdin, base }
    }

    /// `GET path` on the server, the body as JSON.
    fn get(&self, path: &str) -> Value {
        let host = self.base.trim_start_matches("http://");
        let mut stream = TcpStream::connect(host).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("a response");
        let (head, body) = response.split_once("\r\n\r\n").expect("a body");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
    }

    fn stop(mut self) {
        drop(self.stdin.take());
        assert_eq!(self.proc.exit_code(Instant::now() + LIMIT), 0);
    }
}

/// A running `tether threads`.
struct Bridge {
    proc: Proc,
    stdin: Option<ChildStdin>,
    out: mpsc::Receiver<String>,
    /// Every stdout line so far.
    seen: Vec<Value>,
    /// Input lines written so far.
    written: u64,
}

impl Bridge {
    fn start(url: &str, client: &str, runtime: &str) -> Bridge {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tether"))
            .args(["threads", "--url", url, "--epoch", "1", "--client", client])
            .args(["--runtime", runtime, "--close-timeout", "10"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn tether threads");
        let stdin = child.stdin.take();
        let out = lines_of(child.stdout.take().expect("stdout"));
        Bridge {
            proc: Proc(child),
            stdin,
            out,
            seen: Vec::new(),
            written: 0,
        }
    }

    /// Writes one input line; its number.
    fn write(&mut self, line: &str) -> u64 {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write a line");
        self.written += 1;
        self.written
    }

    /// Reads stdout until a line matches, failing past `deadline`.
    fn read_until(&mut self, deadline: Instant, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .out
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no such line; saw {:#?}", self.seen));
            let value: Value = serde_json::from_str(&line).expect("stdout is JSON Lines");
            assert!(value["type"].is_string(), "untyped: {value}");
            self.seen.push(value.clone());
            if pred(&value) {
                return value;
            }
        }
    }

    /// Flushes and waits for the answer, which must be a success.
    fn flush(&mut self, deadline: Instant) {
        let line = self.write(r#"{"flush": true}"#);
        let answer = self.read_until(deadline, |v| v["type"] == "flush" && v["line"] == line);
        assert_eq!(answer["ok"], true, "{answer}");
    }

    /// Ends input; the exit code and the summary, with every line read.
    fn finish(mut self, deadline: Instant) -> (i32, Value, Vec<Value>) {
        drop(self.stdin.take());
        let summary = self.read_until(deadline, |v| v["type"] == "summary");
        let code = self.proc.exit_code(deadline);
        (code, summary, self.seen)
    }
}

fn message(id: &str, content: &str, timestamp: usize) -> Value {
    json!({"id": id, "role": "user", "content": content, "timestamp": timestamp})
}

/// Threads by id, without the server's version (compared separately).
fn by_id(threads: &Value) -> std::collections::BTreeMap<String, Value> {
    threads
        .as_array()
        .expect("an array of threads")
        .iter()
        .map(|t| (t["id"].as_str().expect("an id").to_owned(), t.clone()))
        .collect()
}

#[test]
fn three_bridges_on_three_runtimes_converge_on_the_servers_threads() {
    let deadline = Instant::now() + LIMIT;
    let serve = Serve::start();
    let url = format!("{}/v1/code/sessions/bridges", serve.base);
    let runtimes = ["blocking", "smol", "tokio"];
    let mut bridges: Vec<Bridge> = runtimes
        .iter()
        .enumerate()
        .map(|(i, runtime)| Bridge::start(&url, &format!("bridge-{i}"), runtime))
        .collect();
    let mut malformed = Vec::new();
    for k in 0..MESSAGES {
        for (i, bridge) in bridges.iter_mut().enumerate() {
            let id = format!("b{i}-m{k}");
            let add = json!({"add": {
                "thread": format!("t{}", k % 2),
                "message": message(&id, &format!("{id} says hi"), k * 3 + i),
            }});
            bridge.write(&add.to_string());
            if i == 1 && k == 4 {
                // Malformed: reported with its number, skipped, and the bridge goes on.
                malformed.push(bridge.write(r#"{"add": {"thread": "t0"}}"#));
                malformed.push(bridge.write("not json"));
            }
        }
    }
    let b2 = &mut bridges[2];
    b2.write(r#"{"edit": {"thread": "t0", "message": {"id": "b2-m0", "role": "user", "content": "edited", "timestamp": 2}}}"#);
    b2.write(r#"{"delete": {"thread": "t1", "message": "b2-m1"}}"#);
    b2.write(r#"{"sync_now": "t1"}"#);
    bridges[0].write(r#"{"set": {"thread": "t0", "field": "title", "value": "bridged"}}"#);
    // Every edit on the server, then a pull after all of them: every view is the server's.
    for _ in 0..2 {
        for bridge in &mut bridges {
            bridge.flush(deadline);
        }
    }
    let server = serve.get("/v1/code/sessions/bridges/threads?since=0&limit=100");
    let server = by_id(&server["threads"]);
    let mut ends = Vec::new();
    for bridge in bridges {
        ends.push(bridge.finish(deadline));
    }
    serve.stop();

    // The server holds every message once, the edit, the delete and the title.
    assert_eq!(server.len(), 2, "{server:#?}");
    let ids: Vec<String> = server
        .values()
        .flat_map(|t| t["messages"].as_array().unwrap().iter())
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 3 * MESSAGES - 1, "{ids:?}");
    assert!(!ids.contains(&"b2-m1".to_owned()));
    assert_eq!(server["t1"]["deleted"], json!(["b2-m1"]));
    assert_eq!(server["t0"]["title"], "bridged");
    let edited = server["t0"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "b2-m0")
        .unwrap();
    assert_eq!(edited["content"], "edited");

    for (i, (code, summary, seen)) in ends.iter().enumerate() {
        let expected = if i == 1 { 6 } else { 0 };
        assert_eq!(*code, expected, "bridge {i}: {summary}");
        assert_eq!(summary["exit_code"], expected);
        assert_eq!(summary["unsynced"], json!([]));
        // The final view is the server's.
        assert_eq!(by_id(&summary["threads"]), server, "bridge {i}");
        // Remote changes came out as whole threads holding the other bridges' messages.
        let remote_from_others = seen.iter().any(|v| {
            v["type"] == "remote"
                && v["thread"]["messages"].as_array().is_some_and(|ms| {
                    ms.iter()
                        .any(|m| !m["id"].as_str().unwrap().starts_with(&format!("b{i}-")))
                })
        });
        assert!(remote_from_others, "bridge {i} saw no remote change");
        // Every thread's last status is `synced`.
        for thread in ["t0", "t1"] {
            let last = seen
                .iter()
                .rfind(|v| v["type"] == "status" && v["thread"] == thread)
                .unwrap_or_else(|| panic!("bridge {i}: no status for {thread}"));
            assert_eq!(last["status"], "synced", "bridge {i}");
        }
        let errors: Vec<&Value> = seen.iter().filter(|v| v["type"] == "error").collect();
        if i == 1 {
            assert_eq!(errors.len(), 2, "{errors:?}");
            for (error, line) in errors.iter().zip(&malformed) {
                assert_eq!(error["line"], *line);
                assert!(error["error"].as_str().is_some_and(|e| !e.is_empty()));
            }
            assert_eq!(summary["bad_lines"], 2);
        } else {
            assert!(errors.is_empty(), "bridge {i}: {errors:?}");
        }
    }
}
