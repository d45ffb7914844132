//! `tether pipe`: JSON Lines from stdin through a session.

use std::fs::File;
use std::io::{BufRead, BufWriter, Write};
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use serde_json::{Value, json};
use tether_core::session::{OnGiveUp, SessionConfig, Status};

mod durable;

use crate::args::{Runtime, help_template, seconds, usage_error};
use crate::progress::Progress;
use crate::report::{CloseReport, status_json, undelivered_json};
use crate::session::{Builder, SendError};
use tether_blocking::Tether;
use tether_blocking::{FlushError, PatchError, Report, Subscription};

const AFTER_HELP: &str = "\
Each input line is one of:
    {\"event\": {...}}            an event for /worker/events
    {\"internal_event\": {...}}   an event for /worker/internal-events
    {\"state\": {...}}            a patch to the worker document
    {\"flush\": true}             wait until everything before it is delivered
    {\"delta\": {...}, \"key\": K}  a stream delta for /worker/events: deltas of key K within
                                the window are merged into one event (text concatenated)
A malformed line is reported on stderr with its line number and skipped. Status changes go
to stderr as JSON Lines (under a progress bar when stderr is a terminal). At end of input the
session closes.

EXIT CODES (the first that applies, in this order):
    4   the session was superseded by a newer worker
    5   the session gave up
    3   events or state were handed back: not delivered and yours again (with --outbox: dead
        letters the server refused for good, and lines refused because the session had ended)
    7   with --outbox: not everything was delivered, and the rest is kept in the outbox (none
        of it handed back): the next run on the same outbox sends it first, with the same
        uuids; `tether outbox DIR show` says what is kept
    6   bad input: at least one line was malformed or refused
    0   every line was valid and every event delivered
    1   an internal error (e.g. the undelivered file cannot be written, the outbox cannot be
        opened, is open in another process or belongs to another session)
    2   a usage error

With --outbox, an acknowledged line leaves the outbox only once the server took it, or when
you discard it (`tether outbox DIR discard`). A close that times out, a give-up or a
supersede keep it for the next run; --undelivered then lists only what is yours again.
";

/// `tether pipe` arguments.
#[derive(Debug, clap::Args)]
#[command(
    help_template = help_template!("pipe"),
    after_help = AFTER_HELP,
    override_usage = "tether pipe --url SESSION_URL [OPTIONS] < input.jsonl"
)]
pub struct PipeArgs {
    /// the session URL, http:// or https://
    #[arg(long, value_name = "URL", required = true)]
    url: Option<String>,
    /// use this worker epoch; without it the session registers
    #[arg(long, value_name = "N")]
    epoch: Option<u64>,
    /// read the bearer token from environment variable VAR
    #[arg(long, value_name = "VAR")]
    token_env: Option<String>,
    /// blocking | smol | tokio: drive the session with tether-blocking (threads), tether-smol
    /// (a task on smol) or tether-tokio (a task on a tokio runtime)
    #[arg(long, value_name = "R", default_value = "blocking")]
    runtime: Runtime,
    /// how long close may drain before handing back, in seconds
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = seconds)]
    close_timeout: Duration,
    /// how long an event may wait for room in a full queue, and a flush for delivery, in seconds
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = seconds)]
    send_timeout: Duration,
    /// write undelivered events (and unacknowledged state) to FILE as JSON Lines with their
    /// reasons
    #[arg(long, value_name = "FILE")]
    undelivered: Option<String>,
    /// print the final report as one JSON object on stdout
    #[arg(long)]
    json: bool,
    /// keep accepted events and unacknowledged state in a durable outbox in DIR (created if
    /// needed; on every runtime): lines are read only as fast as they become durable,
    /// and each is acknowledged on stdout with {"ack": LINE} once it is
    #[arg(long, value_name = "DIR")]
    outbox: Option<String>,
    /// every-write | never | MILLISECONDS: sync each group commit, never, or at most this often
    #[arg(long, value_name = "S", default_value = "every-write", value_parser = sync_policy)]
    outbox_sync: tether_blocking::SyncPolicy,
    /// let an outbox that belongs to another session move to this one: what it keeps is sent
    /// to this session
    #[arg(long)]
    rebind_outbox: bool,
    /// when the session gives up by its retry rules, hold what it was given instead of handing
    /// it back, and reconnect after SECS (again each time it gives up); end of input still
    /// closes
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    reconnect_after: Option<Duration>,
}

/// `--outbox-sync`: `every-write`, `never`, or a number of milliseconds.
pub fn sync_policy(value: &str) -> Result<tether_blocking::SyncPolicy, String> {
    use tether_blocking::SyncPolicy;
    match value {
        "every-write" => Ok(SyncPolicy::EveryWrite),
        "never" => Ok(SyncPolicy::Never),
        ms => ms
            .parse::<u64>()
            .map(|ms| SyncPolicy::Interval(Duration::from_millis(ms)))
            .map_err(|_| "--outbox-sync must be every-write, never or milliseconds".into()),
    }
}

/// Exit codes of `tether pipe`.
pub const HANDED_BACK: u8 = 3;
/// See [`HANDED_BACK`].
pub const SUPERSEDED: u8 = 4;
/// See [`HANDED_BACK`].
pub const GIVEN_UP: u8 = 5;
/// See [`HANDED_BACK`].
pub const BAD_INPUT: u8 = 6;
/// See [`HANDED_BACK`].
pub const KEPT_IN_OUTBOX: u8 = 7;

pub fn run(args: &PipeArgs) -> ExitCode {
    let token = match &args.token_env {
        None => None,
        Some(var) => match std::env::var(var) {
            Ok(token) => Some(token),
            Err(_) => {
                return usage_error(
                    "pipe",
                    format!("environment variable `{var}` (--token-env) is not set"),
                );
            }
        },
    };
    let url = args.url.clone().unwrap_or_default();
    let mut builder = Builder::new(args.runtime, &url)
        .epoch(args.epoch)
        .token(token);
    if args.reconnect_after.is_some() {
        // An empty session id is the URL's.
        builder = builder.config(SessionConfig::new("").with_on_give_up(OnGiveUp::Hold));
    }
    if let Some(dir) = &args.outbox {
        let opened = tether_store::SqliteStore::open(dir).and_then(|mut store| {
            store.bind_session(&url, args.rebind_outbox)?;
            Ok(store)
        });
        match opened {
            Ok(store) => builder = builder.outbox(store, args.outbox_sync),
            Err(e) => {
                eprintln!("tether pipe: {e}");
                return ExitCode::from(1);
            }
        }
    }
    let started = builder.start();
    let tether = match started {
        Ok(t) => t,
        Err(e) => return usage_error("pipe", e),
    };
    // At once, so that the first status is the first one the session had.
    let statuses = tether.statuses();
    // Undelivered events are written as they are handed back, from the live report stream:
    // a pipe killed later has still kept what it was told.
    let sink = match args.undelivered.as_deref().map(File::create).transpose() {
        Ok(file) => file.map(BufWriter::new),
        Err(e) => {
            eprintln!("tether pipe: cannot write the undelivered events: {e}");
            return ExitCode::from(1);
        }
    };
    let reports = tether.reports();
    let durable = args.outbox.is_some();
    // What the outbox dropped before anyone could subscribe (unreadable records at open).
    let dropped_at_start = tether.shared().lock().outbox_dropped();
    for dropped in &dropped_at_start {
        say_dropped(dropped.key, &dropped.reason);
    }
    let recorder =
        thread::spawn(move || record_undelivered(reports, sink, durable, dropped_at_start));
    if args.outbox.is_some() {
        return durable_run(&tether, args, statuses, recorder);
    }
    let progress = Progress::new(None, "lines");
    let (outcome, report) = thread::scope(|scope| {
        let progress = &progress;
        let watched = &tether;
        scope.spawn(move || {
            for status in from_the_start(statuses, watched, args.reconnect_after) {
                progress.println(&status_json(&status).to_string());
            }
        });
        let outcome = feed_all(&tether, args.send_timeout, progress);
        progress.finish();
        (outcome, tether.close(args.close_timeout).wait())
    });
    let written = match recorder.join() {
        Ok(Ok(Some(mut sink))) => write_refused(&mut sink, &outcome),
        Ok(Ok(None)) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(std::io::Error::other("the report writer panicked")),
    };
    let code = outcome.exit_code(&report);
    if args.json {
        println!("{}", outcome.summary(&report, code));
    }
    let undelivered = report.undelivered.len() + outcome.refused.len();
    if undelivered > 0 {
        eprintln!(
            "tether pipe: {undelivered} events not delivered{}",
            match &args.undelivered {
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

/// `pipe --outbox`: lines read only as fast as they become durable, each acknowledged on
/// stdout; statuses as plain JSON Lines on stderr.
fn durable_run(
    tether: &Tether,
    args: &PipeArgs,
    statuses: Subscription<Status>,
    recorder: thread::JoinHandle<std::io::Result<Option<BufWriter<File>>>>,
) -> ExitCode {
    let (watched, reconnect_after) = (tether.clone(), args.reconnect_after);
    let printer = thread::spawn(move || {
        let stderr = std::io::stderr();
        for status in from_the_start(statuses, &watched, reconnect_after) {
            let _ = writeln!(stderr.lock(), "{}", status_json(&status));
        }
    });
    let mut outcome = Outcome::default();
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let fed = durable::feed(
        tether,
        // Large, so one read takes what the producer wrote so far: one group commit for it.
        std::io::BufReader::with_capacity(1 << 20, stdin.lock()),
        &mut stdout.lock(),
        &mut outcome,
        args.send_timeout,
    );
    if let Err(stop) = fed {
        eprintln!("tether pipe: stopped: {stop}; lines after the last ack are not safe");
        let _ = tether.close(args.close_timeout).wait();
        let _ = printer.join();
        let _ = recorder.join();
        return ExitCode::from(1);
    }
    let report = tether.close(args.close_timeout).wait();
    let _ = printer.join();
    let written = match recorder.join() {
        Ok(Ok(Some(mut sink))) => write_refused(&mut sink, &outcome),
        Ok(Ok(None)) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(std::io::Error::other("the report writer panicked")),
    };
    let code = outcome.exit_code(&report);
    let kept = report.kept_for_next_run();
    if kept > 0 {
        let dir = args.outbox.as_deref().unwrap_or_default();
        eprintln!("tether pipe: {kept} events kept in the outbox {dir} for the next run");
    }
    let handed_back = report.handed_back().count() + outcome.refused.len();
    if handed_back > 0 {
        eprintln!(
            "tether pipe: {handed_back} events handed back{}",
            match &args.undelivered {
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

/// Feeds stdin's lines to the session, showing progress.
fn feed_all(tether: &Tether, send_timeout: Duration, progress: &Progress) -> Outcome {
    let mut outcome = Outcome::default();
    let stdin = std::io::stdin();
    for (index, line) in stdin.lock().lines().enumerate() {
        let number = index + 1;
        outcome.lines = number as u64;
        if number % 64 == 0 {
            let delivered = tether.counters().events.delivered;
            progress.set(
                outcome.lines,
                format!("lines, {delivered} events delivered"),
            );
        }
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                progress.println(&format!("tether pipe: line {number}: cannot read: {e}"));
                outcome.bad_lines += 1;
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        if let Err(message) = outcome.feed(tether, &line, send_timeout) {
            progress.println(&format!("tether pipe: line {number}: {message}; skipped"));
            outcome.bad_lines += 1;
        }
    }
    outcome
}

#[derive(Default)]
struct Outcome {
    lines: u64,
    bad_lines: u64,
    /// Events the session refused because it had ended, with the reason.
    refused: Vec<Value>,
}

impl Outcome {
    /// Feeds a `{"delta": {...}, "key": "..."}` line.
    fn feed_delta(
        &mut self,
        tether: &Tether,
        mut map: serde_json::Map<String, Value>,
    ) -> Result<(), String> {
        let (Some(Value::String(key)), Some(delta)) = (map.remove("key"), map.remove("delta"))
        else {
            return Err("a delta line is {\"delta\": {...}, \"key\": \"...\"}".into());
        };
        match tether.send_delta(key, delta) {
            Ok(()) => Ok(()),
            Err(tether_core::batch::DeltaError::Closed { key, payload }) => {
                self.refused.push(json!({
                    "stream": "events",
                    "reason": "closed",
                    "key": key,
                    "payload": payload,
                }));
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Feeds one line; `Err` describes why the line is malformed.
    fn feed(&mut self, tether: &Tether, line: &str, send_timeout: Duration) -> Result<(), String> {
        let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
        let Value::Object(mut map) = value else {
            return Err("expected a JSON object".into());
        };
        if map.len() == 2 && map.contains_key("delta") {
            return self.feed_delta(tether, map);
        }
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
                    tether.send_event(body, send_timeout).wait()
                } else {
                    tether.send_internal_event(body, send_timeout).wait()
                }
            }
            "state" => {
                return match tether.patch_state(body) {
                    Ok(_) => Ok(()),
                    Err(PatchError::Invalid(e)) => Err(e.to_string()),
                    // The session ended: the close report says so.
                    Err(_) => Ok(()),
                };
            }
            "flush" => {
                if body != Value::Bool(true) {
                    return Err("`flush` must be true".into());
                }
                if let Err(FlushError::TimedOut) = tether.flush(send_timeout).wait() {
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
        match sent.map_err(SendError::from) {
            Ok(_) => Ok(()),
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

    /// The final report as one JSON object, for `--json`.
    fn summary(&self, report: &CloseReport, exit_code: u8) -> Value {
        let c = &report.counters;
        json!({
            "exit_code": exit_code,
            "status": status_json(&report.status),
            "lines": self.lines,
            "bad_lines": self.bad_lines,
            "events_delivered": c.events.delivered,
            "internal_events_delivered": c.internal_events.delivered,
            "undelivered": report.undelivered.len() + self.refused.len(),
            "state": {
                "puts": c.state.puts_sent,
                "acknowledged": c.state.puts_acknowledged,
                "rejected": report.state_rejected.len(),
                "unacknowledged": report.state_unacknowledged.is_some(),
            },
            "requests": c.wire.requests,
        })
    }

    fn exit_code(&self, report: &CloseReport) -> u8 {
        let state_kept = report.kept.is_some_and(|k| k.state);
        let handed_back = report.handed_back().next().is_some()
            || !report.state_rejected.is_empty()
            || (report.state_unacknowledged.is_some() && !state_kept)
            || !self.refused.is_empty();
        match report.status {
            Status::Superseded => SUPERSEDED,
            Status::GivenUp(_) => GIVEN_UP,
            _ if handed_back => HANDED_BACK,
            _ if report.kept_for_next_run() > 0 || state_kept => KEPT_IN_OUTBOX,
            _ if self.bad_lines > 0 => BAD_INPUT,
            _ => 0,
        }
    }
}

/// Every status of the session from its first. A session always starts `connecting`, but a
/// subscription made just after the start begins with the status of that moment, which on a
/// fast network may already be `connected`: the first is said here, and not twice. With
/// `reconnect_after`, a session that holds after giving up is reconnected once it has held
/// that long (each time), unless it ended first.
fn from_the_start<'a>(
    statuses: Subscription<Status>,
    tether: &'a Tether,
    reconnect_after: Option<Duration>,
) -> impl Iterator<Item = Status> + 'a {
    let mut held = false;
    let next = move || {
        loop {
            let item = match reconnect_after.filter(|_| held) {
                Some(after) => match statuses.recv_timeout(after) {
                    None if !statuses.is_finished() => {
                        // Still held: a reconnect refused here means it ended meanwhile.
                        let _ = tether.reconnect();
                        continue;
                    }
                    item => item,
                },
                None => statuses.recv(),
            };
            // A status stream that lagged skipped only changes older than the ones it holds.
            if let Ok(status) = item? {
                held = matches!(status, Status::Holding(_));
                return Some(status);
            }
        }
    };
    let mut statuses = std::iter::from_fn(next).peekable();
    if statuses.peek() == Some(&Status::Connecting) {
        statuses.next();
    }
    std::iter::once(Status::Connecting).chain(statuses)
}

/// Says on stderr, as a JSON line, that the outbox dropped a record (unreadable: torn or
/// corrupt) or a stored state patch or thread edit.
fn say_dropped(key: Option<u64>, reason: &str) {
    eprintln!(
        "{}",
        json!({"outbox_dropped": {"key": key, "reason": reason}})
    );
}

/// Writes every hand-back as the session reports it, one JSON Lines record each, flushed at
/// once; gives the writer back at the end of the session for the refused lines. With an
/// outbox (`durable`), what it keeps for the next run is not written: it is not the caller's
/// to resend.
fn record_undelivered(
    reports: Subscription<Report>,
    mut sink: Option<BufWriter<File>>,
    durable: bool,
    said: Vec<tether_blocking::Dropped>,
) -> std::io::Result<Option<BufWriter<File>>> {
    for report in reports.iter() {
        // A record the outbox could not read is never silent, with or without the file.
        if let Ok(Report::OutboxDropped { key, reason }) = &report {
            let dropped = tether_blocking::Dropped {
                key: *key,
                reason: reason.clone(),
            };
            if !said.contains(&dropped) {
                say_dropped(*key, reason);
            }
            continue;
        }
        let Some(out) = sink.as_mut() else { continue };
        let report = match report {
            Ok(report) => report,
            Err(lagged) => {
                // Not expected (this thread reads nothing else), but said if it happens.
                eprintln!("tether pipe: the undelivered file misses reports ({lagged})");
                continue;
            }
        };
        match report {
            Report::HandedBack { events, .. } => {
                for event in events.iter().filter(|e| !e.kept_for_next_run()) {
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
            Report::StateUnacknowledged(unacknowledged)
                if !unacknowledged.update.is_empty() && !durable =>
            {
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
