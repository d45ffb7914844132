//! The outbox crash test, shared by `cli/tests/it/outbox_crash.rs` (bounded) and
//! `benches/examples/outbox_crash.rs` (longer): `tether pipe --outbox` streams to an in-process
//! reference server and is killed with SIGKILL at random points, then started again on the same
//! outbox with the input from the line after the last one it acknowledged. At the end the
//! server must hold every line's event exactly once, in input order, and the document must have
//! converged.
//!
//! The input is written a few lines at a time, as a producer streams it, so kills land while
//! lines are taken in. The server is down for stretches of one to three runs: those runs
//! acknowledge lines they cannot deliver, so the next run with the server up starts on a stored
//! backlog, and kills land while it is replayed. Each kill is classed by what the server held
//! and what was acknowledged at that moment ([`Phases`]).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tether_server::{FaultMix, FaultPlan, Server, ServerConfig};

/// What a crash run did.
#[derive(Debug, Default)]
pub struct CrashRun {
    /// Processes killed with SIGKILL.
    pub kills: u32,
    /// Lines acknowledged before each kill, summed.
    pub acked_before_kills: usize,
    /// Duplicates the server dropped (resends after restarts).
    pub duplicates: u64,
    /// Where the kills landed.
    pub phases: Phases,
    /// Every broken expectation.
    pub violations: Vec<String>,
}

/// Where kills landed, as observed at each kill. Intake overlaps with delivery and replay (a
/// pipe takes lines in while it delivers), so a kill may count in more than one.
#[derive(Debug, Default, Clone, Copy)]
pub struct Phases {
    /// Intake: the run had acknowledged some of its lines, not all.
    pub intake: u32,
    /// Replay: the run started with events an earlier run acknowledged still only in the
    /// outbox (the server up), and was killed before the server held them all.
    pub replay: u32,
    /// Delivery: the stored backlog was delivered, the server held some of this run's new
    /// events and not all of its input yet (the server up).
    pub delivery: u32,
    /// The server was down: what was acknowledged could only be kept.
    pub server_down: u32,
    /// Killed before it acknowledged a line or delivered an event (opening the outbox,
    /// connecting, the first group commit). Not one of the phases asked for; said apart.
    pub startup: u32,
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
/// When a run is killed.
#[derive(Clone, Copy, Debug)]
enum Kill {
    /// This long after it started.
    After(Duration),
    /// Never: it runs to the end of its input.
    Never,
}

#[allow(
    clippy::too_many_arguments,
    reason = "one run's whole setting, spelled out"
)]
fn pipe_once(
    bin: &Path,
    runtime: &str,
    url: &str,
    dir: &Path,
    lines: &[String],
    kill: Kill,
    limit: Duration,
    writes: u64,
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
    let lines: Vec<String> = lines.iter().map(|l| format!("{l}\n")).collect();
    let keep_open = !matches!(kill, Kill::Never);
    let writer = thread::spawn(move || {
        // A few lines at a time, as a producer streams them (`writes`: the generator's seed;
        // 0 writes everything at once).
        let mut rng = Lcg::new(writes);
        let mut rest = &lines[..];
        while !rest.is_empty() {
            let take = if writes == 0 {
                rest.len()
            } else {
                (1 + rng.below(64) as usize).min(rest.len())
            };
            let piece: String = rest[..take].concat();
            rest = &rest[take..];
            if stdin.write_all(piece.as_bytes()).is_err() {
                break;
            }
            if writes != 0 {
                thread::sleep(Duration::from_millis(1));
            }
        }
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
        let due = match kill {
            Kill::After(after) => started.elapsed() >= after,
            Kill::Never => false,
        };
        if due || started.elapsed() > limit {
            // SIGKILL, of the process this test started, by its id.
            let _ = child.kill();
            let _ = child.wait();
            killed = true;
            break;
        }
        thread::sleep(Duration::from_millis(1));
    }
    let _ = writer.join();
    (reader.join().unwrap_or_default(), killed)
}

/// A server that answers every request after up to 20 ms, and never fails one.
fn slow_server() -> FaultPlan {
    FaultPlan::new(FaultMix {
        latency: 1.0,
        latency_max: Duration::from_millis(20),
        ..FaultMix::none()
    })
}

/// How many of the lines before `end` are events (every 25th line is a state patch).
fn events_before(end: usize) -> usize {
    end - end / 25
}

/// How many of the `acked` lines are events (every 25th line is a state patch).
fn events_in(acked: &[usize]) -> usize {
    acked.iter().filter(|i| *i % 25 != 24).count()
}

/// The whole run: `kills` random kills over `lines` lines (more runs until every phase saw at
/// least `kills / 10`, within `kills * 4` runs), then a run to the end.
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
    let dir = std::env::temp_dir().join(format!(
        "tether-outbox-crash-{runtime}-{}-{seed}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let input = input(lines);
    let inspector = server.inspector();
    let held = || inspector.events("crash").len();
    let mut rng = Lcg::new(seed);
    let mut report = CrashRun::default();
    let mut next = 0usize; // the first line not acknowledged yet
    let mut acked_lines: Vec<usize> = Vec::new();
    let mut runs = 0;
    let mut down_for = 0; // runs left with the server down
    let least = kills / 10;
    let short = |p: &Phases| p.intake.min(p.replay).min(p.delivery).min(p.server_down) < least;
    while (report.kills < kills || short(&report.phases)) && next < input.len() && runs < kills * 4
    {
        runs += 1;
        let held_before = held();
        let backlog = events_in(&acked_lines).saturating_sub(held_before);
        if down_for == 0 && backlog == 0 && rng.below(3) == 0 {
            down_for = 1 + rng.below(3);
        }
        let down = down_for > 0;
        if down {
            down_for -= 1;
            server.stop_listener().expect("server down");
        } else {
            server.restart_listener().expect("server up");
        }
        let end = (next + 100 + rng.below(1400) as usize).min(input.len());
        // Replay comes first: kill early. Otherwise, half the time, the server answers each
        // request after up to 20 ms, so that delivery lags the acknowledgements.
        let replay = backlog > 0 && !down;
        let slow = !replay && !down && rng.below(2) == 0;
        inspector.set_faults(if slow {
            slow_server()
        } else {
            FaultPlan::none()
        });
        let kill = if replay {
            Kill::After(Duration::from_millis(10 + rng.below(max_delay_ms / 2)))
        } else {
            Kill::After(Duration::from_millis(5 + rng.below(max_delay_ms)))
        };
        let writes = 1 + rng.below(u64::MAX - 1);
        let (acked, killed) = pipe_once(
            bin,
            runtime,
            &url,
            &dir,
            &input[next..end],
            kill,
            Duration::from_secs(10),
            writes,
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
        if killed {
            // What was under way when the kill landed.
            let held_after = held();
            let this_run = held_after.saturating_sub(held_before + backlog);
            let phases = &mut report.phases;
            if !acked.is_empty() && next < end {
                phases.intake += 1;
            }
            if down {
                phases.server_down += 1;
            } else if held_after < held_before + backlog {
                phases.replay += 1;
            } else if this_run > 0 && held_after < events_before(end) {
                phases.delivery += 1;
            }
            if acked.is_empty() && this_run == 0 && (down || backlog == 0) {
                phases.startup += 1;
            }
        }
    }
    server.restart_listener().expect("server up");
    inspector.set_faults(FaultPlan::none());
    let (acked, killed) = pipe_once(
        bin,
        runtime,
        &url,
        &dir,
        &input[next..],
        Kill::Never,
        Duration::from_secs(120),
        0,
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
