//! `tether pipe`: JSON Lines from stdin through a session.

use std::fs::File;
use std::io::{BufRead, BufWriter, Write};
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use serde_json::{json, Value};
use tether_core::session::Status;

mod durable;

use crate::args::{usage_error, ArgError, Args, Runtime};
use crate::report::{status_json, undelivered_json, CloseReport};
use crate::worker::{Builder, Reports, SendError, Worker};
use tether_blocking::Report;
use tether_blocking::{FlushError, PatchError};

pub const USAGE: &str = "\
tether pipe: send JSON Lines from stdin through a session

USAGE:
    tether pipe --url SESSION_URL [OPTIONS] < input.jsonl

Each input line is one of:
    {\"event\": {...}}            an event for /worker/events
    {\"internal_event\": {...}}   an event for /worker/internal-events
    {\"state\": {...}}            a patch to the worker document
    {\"flush\": true}             wait until everything before it is delivered
A malformed line is reported on stderr with its line number and skipped. Status changes go
to stderr as JSON Lines. At end of input the session closes.

OPTIONS:
    --url URL              the session URL, http:// or https:// (required)
    --epoch N              use this worker epoch; without it the session registers
    --token-env VAR        read the bearer token from environment variable VAR
    --runtime R            blocking | smol: drive the session with tether-blocking
                           (threads) or tether-smol (a task on smol) [default: blocking]
    --close-timeout SECS   how long close may drain before handing back [default: 10]
    --send-timeout SECS    how long an event may wait for room in a full queue, and a
                           flush for delivery [default: 60]
    --undelivered FILE     write undelivered events (and unacknowledged state) to FILE as
                           JSON Lines with their reasons
    --outbox DIR           keep accepted events and unacknowledged state in a durable
                           outbox in DIR (created if needed; blocking runtime only). Lines
                           are read only as fast as they become durable, and each is
                           acknowledged on stdout with {\"ack\": LINE} once it is ({\"skipped\":
                           LINE} for a malformed one). After a crash, start again on the same
                           DIR: what it holds is sent again first, with its original uuids.
                           To feed unacknowledged lines again without duplicates, give each
                           event a \"uuid\" of its own.
    --outbox-sync S        every-write | never | MILLISECONDS: sync each group commit, never
                           (the OS writes when it will), or at most every MILLISECONDS
                           [default: every-write]
    -h, --help             print this help

EXIT CODES (the first that applies, in this order):
    4   the session was superseded by a newer worker
    5   the session gave up
    3   events or state were handed back (not delivered)
    6   bad input: at least one line was malformed or refused
    0   every line was valid and every event delivered
    1   an internal error (e.g. the undelivered file cannot be written)
    2   a usage error
";

/// Exit codes of `tether pipe`.
pub const HANDED_BACK: u8 = 3;
/// See [`HANDED_BACK`].
pub const SUPERSEDED: u8 = 4;
/// See [`HANDED_BACK`].
pub const GIVEN_UP: u8 = 5;
/// See [`HANDED_BACK`].
pub const BAD_INPUT: u8 = 6;

struct Options {
    url: String,
    epoch: Option<u64>,
    token: Option<String>,
    runtime: Runtime,
    close_timeout: Duration,
    send_timeout: Duration,
    undelivered: Option<String>,
    outbox: Option<String>,
    outbox_sync: tether_blocking::SyncPolicy,
}

fn options(parsed: &Args) -> Result<Options, ArgError> {
    let url = parsed
        .value("url")
        .ok_or_else(|| ArgError("--url is required".into()))?
        .to_owned();
    let token = match parsed.value("token-env") {
        None => None,
        Some(var) => Some(std::env::var(var).map_err(|_| {
            ArgError(format!(
                "environment variable `{var}` (--token-env) is not set"
            ))
        })?),
    };
    let secs = |name, default: f64| -> Result<Duration, ArgError> {
        let secs: f64 = parsed.parsed(name, default)?;
        Duration::try_from_secs_f64(secs)
            .map_err(|_| ArgError(format!("--{name} must be a number of seconds, at least 0")))
    };
    Ok(Options {
        url,
        epoch: parsed.optional("epoch")?,
        token,
        runtime: parsed.parsed("runtime", Runtime::Blocking)?,
        close_timeout: secs("close-timeout", 10.0)?,
        send_timeout: secs("send-timeout", 60.0)?,
        undelivered: parsed.value("undelivered").map(str::to_owned),
        outbox: parsed.value("outbox").map(str::to_owned),
        outbox_sync: sync_policy(parsed.value("outbox-sync"))?,
    })
}

/// `--outbox-sync`: `every-write`, `never`, or a number of milliseconds.
pub fn sync_policy(value: Option<&str>) -> Result<tether_blocking::SyncPolicy, ArgError> {
    use tether_blocking::SyncPolicy;
    match value {
        None | Some("every-write") => Ok(SyncPolicy::EveryWrite),
        Some("never") => Ok(SyncPolicy::Never),
        Some(ms) => ms
            .parse::<u64>()
            .map(|ms| SyncPolicy::Interval(Duration::from_millis(ms)))
            .map_err(|_| {
                ArgError("--outbox-sync must be every-write, never or milliseconds".into())
            }),
    }
}

pub fn run(args: &[String]) -> ExitCode {
    let valued = [
        "url",
        "epoch",
        "token-env",
        "runtime",
        "close-timeout",
        "send-timeout",
        "undelivered",
        "outbox",
        "outbox-sync",
    ];
    let parsed = match Args::parse(args, &valued, &[]) {
        Ok(p) => p,
        Err(e) => return usage_error("pipe", &e, USAGE),
    };
    if parsed.help {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let options = match options(&parsed) {
        Ok(o) => o,
        Err(e) => return usage_error("pipe", &e, USAGE),
    };
    let mut builder = Builder::new(options.runtime, &options.url)
        .epoch(options.epoch)
        .token(options.token.clone());
    if let Some(dir) = &options.outbox {
        if options.runtime != Runtime::Blocking {
            let e = ArgError("--outbox needs --runtime blocking".into());
            return usage_error("pipe", &e, USAGE);
        }
        match tether_store::SqliteStore::open(dir) {
            Ok(store) => builder = builder.outbox(store, options.outbox_sync),
            Err(e) => {
                eprintln!("tether pipe: {e}");
                return ExitCode::from(1);
            }
        }
    }
    let started = builder.start();
    let tether = match started {
        Ok(t) => t,
        Err(e) => return usage_error("pipe", &ArgError(e.to_string()), USAGE),
    };
    // Undelivered events are written as they are handed back, from the live report stream:
    // a pipe killed later has still kept what it was told.
    let sink = match options.undelivered.as_deref().map(File::create).transpose() {
        Ok(file) => file.map(BufWriter::new),
        Err(e) => {
            eprintln!("tether pipe: cannot write the undelivered events: {e}");
            return ExitCode::from(1);
        }
    };
    let reports = tether.reports();
    let recorder = thread::spawn(move || record_undelivered(reports, sink));
    let statuses = tether.statuses();
    let printer = thread::spawn(move || {
        let stderr = std::io::stderr();
        for status in statuses {
            let _ = writeln!(stderr.lock(), "{}", status_json(&status));
        }
    });
    let mut outcome = Outcome::default();
    let stdin = std::io::stdin();
    if let Some(blocking) = tether.blocking().filter(|_| options.outbox.is_some()) {
        let stdout = std::io::stdout();
        let fed = durable::feed(
            blocking,
            stdin.lock(),
            &mut stdout.lock(),
            &mut outcome,
            options.send_timeout,
        );
        if let Err(stop) = fed {
            eprintln!("tether pipe: stopped: {stop}; lines after the last ack are not safe");
            let _ = tether.close(options.close_timeout);
            let _ = printer.join();
            let _ = recorder.join();
            return ExitCode::from(1);
        }
    }
    let lines = stdin
        .lock()
        .lines()
        .enumerate()
        .filter(|_| options.outbox.is_none());
    for (index, line) in lines {
        let number = index + 1;
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                eprintln!("tether pipe: line {number}: cannot read: {e}");
                outcome.bad_lines += 1;
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        if let Err(message) = outcome.feed(&tether, &line, options.send_timeout) {
            eprintln!("tether pipe: line {number}: {message}; skipped");
            outcome.bad_lines += 1;
        }
    }
    let report = tether.close(options.close_timeout);
    let _ = printer.join();
    let written = match recorder.join() {
        Ok(Ok(Some(mut sink))) => write_refused(&mut sink, &outcome),
        Ok(Ok(None)) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(std::io::Error::other("the report writer panicked")),
    };
    let code = outcome.exit_code(&report);
    let undelivered = report.undelivered.len() + outcome.refused.len();
    if undelivered > 0 {
        eprintln!(
            "tether pipe: {undelivered} events not delivered{}",
            match &options.undelivered {
                Some(file) => format!(" (written to {file})"),
                None => " (give --undelivered FILE to keep them)".into(),
            }
        );
    }
    match written {
        Ok(()) => ExitCode::from(code),
        Err(e) => {
            eprintln!("tether pipe: cannot write the undelivered events: {e}");
            ExitCode::from(1)
        }
    }
}

#[derive(Default)]
struct Outcome {
    bad_lines: u64,
    /// Events the session refused because it had ended, with the reason.
    refused: Vec<Value>,
}

impl Outcome {
    /// Feeds one line; `Err` describes why the line is malformed.
    fn feed(&mut self, tether: &Worker, line: &str, send_timeout: Duration) -> Result<(), String> {
        let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
        let Value::Object(mut map) = value else {
            return Err("expected a JSON object".into());
        };
        if map.len() != 1 {
            return Err(
                "expected exactly one of `event`, `internal_event`, `state`, `flush`".into(),
            );
        }
        let (key, body) = map
            .iter_mut()
            .next()
            .map(|(k, v)| (k.clone(), v.take()))
            .unwrap_or_default();
        let sent = match key.as_str() {
            "event" | "internal_event" => {
                if !body.is_object() {
                    return Err(format!("`{key}` must be a JSON object"));
                }
                if key == "event" {
                    tether.send_event(body, send_timeout)
                } else {
                    tether.send_internal_event(body, send_timeout)
                }
            }
            "state" => {
                return match tether.patch_state(body) {
                    Ok(()) => Ok(()),
                    Err(PatchError::Invalid(e)) => Err(e.to_string()),
                    // The session ended: the close report says so.
                    Err(_) => Ok(()),
                };
            }
            "flush" => {
                if body != Value::Bool(true) {
                    return Err("`flush` must be true".into());
                }
                if let Err(FlushError::TimedOut) = tether.flush(send_timeout) {
                    eprintln!("tether pipe: flush timed out; going on");
                }
                return Ok(());
            }
            other => return Err(format!("unknown key `{other}`")),
        };
        let stream = if key == "event" {
            "events"
        } else {
            "internal-events"
        };
        match sent {
            Ok(()) => Ok(()),
            Err(SendError::Ended { payload, status }) => {
                let reason = match status {
                    Status::Superseded => "superseded",
                    Status::GivenUp(_) => "given-up",
                    _ => "closed",
                };
                self.refused.push(json!({
                    "stream": stream,
                    "reason": reason,
                    "payload": payload,
                }));
                Ok(())
            }
            Err(SendError::Timeout { payload }) => {
                self.refused.push(json!({
                    "stream": stream,
                    "reason": "queue-full",
                    "payload": payload,
                }));
                Ok(())
            }
            Err(SendError::Refused(message)) => Err(message),
        }
    }

    fn exit_code(&self, report: &CloseReport) -> u8 {
        match report.status {
            Status::Superseded => SUPERSEDED,
            Status::GivenUp(_) => GIVEN_UP,
            _ if !report.all_delivered() || !self.refused.is_empty() => HANDED_BACK,
            _ if self.bad_lines > 0 => BAD_INPUT,
            _ => 0,
        }
    }
}

/// Writes every hand-back as the session reports it, one JSON Lines record each, flushed at
/// once; gives the writer back at the end of the session for the refused lines.
fn record_undelivered(
    reports: Reports,
    mut sink: Option<BufWriter<File>>,
) -> std::io::Result<Option<BufWriter<File>>> {
    for report in reports {
        let Some(out) = sink.as_mut() else { continue };
        match report {
            Report::HandedBack { events, .. } => {
                for event in &events {
                    writeln!(out, "{}", undelivered_json(event))?;
                }
            }
            Report::StateRejected(rejection) => {
                let record = json!({
                    "state": rejection.update,
                    "reason": format!("rejected-{}", rejection.status),
                });
                writeln!(out, "{record}")?;
            }
            Report::StateUnacknowledged(unacknowledged) if !unacknowledged.update.is_empty() => {
                let record = json!({"state": unacknowledged.update, "reason": "unacknowledged"});
                writeln!(out, "{record}")?;
            }
            _ => continue,
        }
        out.flush()?;
    }
    Ok(sink)
}

/// The lines refused because the session had ended, after everything it handed back.
fn write_refused(out: &mut BufWriter<File>, outcome: &Outcome) -> std::io::Result<()> {
    for event in &outcome.refused {
        writeln!(out, "{event}")?;
    }
    out.flush()
}
