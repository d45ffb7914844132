//! The outbox crash test, shared by `cli/tests/outbox_crash.rs` (bounded) and
//! `benches/examples/outbox_crash.rs` (longer): `tether pipe --outbox` streams to an in-process
//! reference server and is killed with SIGKILL at random points, then started again on the same
//! outbox with the input from the line after the last one it acknowledged. At the end the
//! server must hold every line's event exactly once, in input order, and the document must have
//! converged.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tether_server::{Server, ServerConfig};

/// What a crash run did.
#[derive(Debug, Default)]
pub struct CrashRun {
    /// Processes killed with SIGKILL.
    pub kills: u32,
    /// Lines acknowledged before each kill, summed.
    pub acked_before_kills: usize,
    /// Duplicates the server dropped (resends after restarts).
    pub duplicates: u64,
    /// Every broken expectation.
    pub violations: Vec<String>,
}

/// A tiny deterministic generator, so a failing seed replays.
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Self {
        Lcg(seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407))
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

/// The input: events with their own uuid and `n`, a state patch every 25 lines.
pub fn input(lines: usize) -> Vec<String> {
    (0..lines)
        .map(|i| {
            if i % 25 == 24 {
                json!({ "state": { format!("k{}", i % 4): i } }).to_string()
            } else {
                json!({ "event": { "uuid": format!("line-{i}"), "n": i } }).to_string()
            }
        })
        .collect()
}

/// Runs `tether pipe --outbox dir` on `lines[from..]`; kills it after `kill_after` (`None`:
/// lets it finish). Returns the line numbers (1-based within the slice) it acknowledged.
fn pipe_once(
    bin: &Path,
    runtime: &str,
    url: &str,
    dir: &Path,
    lines: &[String],
    kill_after: Option<Duration>,
    limit: Duration,
) -> (Vec<usize>, bool) {
    let mut child = Command::new(bin)
        .args([
            "pipe",
            "--runtime",
            runtime,
            "--url",
            url,
            "--epoch",
            "1",
            "--close-timeout",
            "10",
            "--outbox",
        ])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tether pipe");
    let mut stdin = child.stdin.take().expect("stdin");
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let keep_open = kill_after.is_some();
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(text.as_bytes());
        // A run to be killed never sees the end of its input: it cannot finish first.
        keep_open.then_some(stdin)
    });
    let stdout = child.stdout.take().expect("stdout");
    let reader = thread::spawn(move || {
        let mut acked = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Ok(value) = serde_json::from_str::<Value>(&line) {
                if let Some(n) = value["ack"].as_u64() {
                    acked.push(n as usize);
                }
            }
        }
        acked
    });
    let started = Instant::now();
    let mut killed = false;
    loop {
        if let Some(_status) = child.try_wait().expect("wait") {
            break;
        }
        if kill_after.is_some_and(|k| started.elapsed() >= k) || started.elapsed() > limit {
            // SIGKILL, of the process this test started, by its id.
            let _ = child.kill();
            let _ = child.wait();
            killed = true;
            break;
        }
        thread::sleep(Duration::from_millis(2));
    }
    let _ = writer.join();
    (reader.join().unwrap_or_default(), killed)
}

/// The whole run: `kills` random kills over `lines` lines, then a run to the end.
pub fn run(
    bin: &Path,
    runtime: &str,
    seed: u64,
    lines: usize,
    kills: u32,
    max_delay_ms: u64,
) -> CrashRun {
    let server = Server::start(ServerConfig::default()).expect("server");
    let url = server.session_url("crash");
    let dir =
        std::env::temp_dir().join(format!("tether-outbox-crash-{}-{seed}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let input = input(lines);
    let mut rng = Lcg::new(seed);
    let mut report = CrashRun::default();
    let mut next = 0usize; // the first line not acknowledged yet
    let mut acked_lines: Vec<usize> = Vec::new();
    let mut runs = 0;
    while report.kills < kills && next < input.len() && runs < kills * 4 {
        runs += 1;
        let delay = Duration::from_millis(3 + rng.below(max_delay_ms));
        let end = (next + 100 + rng.below(1400) as usize).min(input.len());
        let (acked, killed) = pipe_once(
            bin,
            runtime,
            &url,
            &dir,
            &input[next..end],
            Some(delay),
            Duration::from_secs(30),
        );
        report.kills += u32::from(killed);
        // Acks come in order, one per line, starting with the first line fed.
        for (i, n) in acked.iter().enumerate() {
            if *n != i + 1 {
                report
                    .violations
                    .push(format!("ack {n} out of order (expected {})", i + 1));
                break;
            }
        }
        acked_lines.extend(acked.iter().map(|n| next + n - 1));
        report.acked_before_kills += acked.len();
        next += acked.len();
    }
    let (acked, killed) = pipe_once(
        bin,
        runtime,
        &url,
        &dir,
        &input[next..],
        None,
        Duration::from_secs(120),
    );
    if killed {
        report.violations.push("the last run did not finish".into());
    }
    acked_lines.extend(acked.iter().map(|n| next + n - 1));
    next += acked.len();
    if next != input.len() {
        report
            .violations
            .push(format!("{} of {} lines acknowledged", next, input.len()));
    }
    let inspector = server.inspector();
    let events = inspector.events("crash");
    let seen: Vec<u64> = events.iter().filter_map(|e| e["n"].as_u64()).collect();
    let expected: Vec<u64> = acked_lines
        .iter()
        .filter(|i| *i % 25 != 24)
        .map(|i| *i as u64)
        .collect();
    if seen != expected {
        let first_diff = seen
            .iter()
            .zip(&expected)
            .position(|(a, b)| a != b)
            .unwrap_or(seen.len().min(expected.len()));
        report.violations.push(format!(
            "the server holds {} events, {} were acknowledged; first difference at {first_diff}: \
             {:?} vs {:?}",
            seen.len(),
            expected.len(),
            seen.get(first_diff),
            expected.get(first_diff)
        ));
    }
    report.duplicates = inspector.duplicates("crash").count;
    // The document converged: each key holds its last value in the input.
    let document = inspector.document("crash").unwrap_or(Value::Null);
    for k in 0..4 {
        let last = (0..lines).rev().find(|i| i % 25 == 24 && i % 4 == k);
        if let Some(last) = last {
            let held = document.get(format!("k{k}")).and_then(Value::as_u64);
            if held != Some(last as u64) {
                report
                    .violations
                    .push(format!("k{k} holds {held:?}, the last patch set {last}"));
            }
        }
    }
    if dir.join("outbox.sqlite").exists() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    report
}
