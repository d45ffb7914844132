//! `tether threads`: a JSON Lines bridge to thread sync (docs/PROTOCOL.md §Thread sync), for
//! callers in other languages. Edits come in on stdin, one JSON object per line (see
//! [`input::Input`]); what happens comes out on stdout, one JSON object per line, typed by
//! its `"type"`:
//!
//! | `type` | when | fields |
//! |---|---|---|
//! | `remote` | a thread's view changed by a remote copy, a merge or a rollback | `id`, `thread` (the whole thread as it now stands, `null` if gone) |
//! | `status` | a thread's sync status changed | `thread`, `status` (`pending`, `syncing`, `synced`, `conflict`, `error`) |
//! | `pending` | the set of threads not yet on the server changed | `threads` |
//! | `override` | a merge dropped one side's change | `thread`, `what` (`{"message": id}` or `{"field": key}`), `local`, `remote`, `kept`, `local_lost` |
//! | `rejected` | the server refused a thread; it was rolled back | `thread`, `reason`, `refused`, `restored` |
//! | `invalid_thread` | the server sent an invalid thread; it was skipped | `thread`, `reason` |
//! | `handed_back` | threads not synced at the end | `reason` (`closed`, `superseded`, `session-unknown`), `threads` |
//! | `error` | an input line was malformed or refused; it was skipped | `line`, `error` |
//! | `flush` | a `{"flush": true}` line's answer | `line`, `ok`, `error` |
//! | `session` | the session's own status | `status`, ... |
//! | `offline`, `online`, `paused`, `resumed`, `held`, `retrying`, `slow_sync`, `lagged` | as they happen | |
//! | `summary` | last, once | `exit_code`, `lines`, `bad_lines`, `threads` (every thread's final view), `unsynced`, `rejected`, `stopped`, `session` |
//!
//! At end of input it flushes, closes thread sync and the session, prints the summary and
//! exits with one of the codes `tether threads --help` lists (as `pipe`'s where they apply).

use std::io::BufRead;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Value, json};
use tether_blocking::{ThreadCloseReport, ThreadHandle};
use tether_core::session::Status;
use tether_core::thread::{self, StopReason, Thread};

mod input;
mod output;

use crate::args::{Runtime, help_template, seconds, usage_error};
use crate::report::status_json;
use crate::session::Builder;
use output::{Out, say};

const AFTER_HELP: &str = "\
Each input line is one JSON object:
    {\"add\": {\"thread\": T, \"message\": {\"id\", \"role\", \"content\", \"timestamp\"}}}
    {\"edit\": {\"thread\": T, \"message\": {...}}}      replace a message, by its id
    {\"delete\": {\"thread\": T, \"message\": ID}}       delete a message (it stays deleted)
    {\"set\": {\"thread\": T, \"field\": F, \"value\": V}} set a top-level field; no value removes it
    {\"sync_now\": T}      push T's edits now, skipping the push window
    {\"flush\": true}      wait until every edit is on the server and a pull answered
    {\"pull_now\": true}   {\"pause\": true}   {\"resume\": true}   {\"online\": BOOL}
Stdout gets one JSON object per line, typed by \"type\": remote (the whole thread as it now
stands), status, pending, override, rejected, invalid_thread, handed_back, error (a malformed or
refused line, with its number; it is skipped), flush (a flush line's answer), session, offline,
online, paused, resumed, held, retrying, slow_sync, lagged, and last a summary with every
thread's final view. Bridges sharing one session's threads must share its epoch: give each the
same --epoch (a registration supersedes every earlier worker).

EXIT CODES (the first that applies, in this order):
    4   superseded by a newer worker
    5   the session gave up, or the server does not know it
    3   threads were handed back (not synced at the end) or refused by the server
    6   bad input: at least one line was malformed or refused
    0   every line was applied and every thread synced
    1   an internal error (thread sync could not start, stdout could not be written)
    2   a usage error
";

/// `tether threads` arguments.
#[derive(Debug, clap::Args)]
#[command(
    help_template = help_template!("threads"),
    after_help = AFTER_HELP,
    override_usage = "tether threads --url SESSION_URL [OPTIONS] < edits.jsonl"
)]
pub struct ThreadsArgs {
    /// the session URL, http:// or https://
    #[arg(long, value_name = "URL", required = true)]
    url: Option<String>,
    /// use this worker epoch; without it the session registers
    #[arg(long, value_name = "N")]
    epoch: Option<u64>,
    /// read the bearer token from environment variable VAR
    #[arg(long, value_name = "VAR")]
    token_env: Option<String>,
    /// blocking | smol | tokio: the runtime that drives the session
    #[arg(long, value_name = "R", default_value = "blocking")]
    runtime: Runtime,
    /// this client's id in thread sync (default: one unique to this process)
    #[arg(long, value_name = "ID")]
    client: Option<String>,
    /// how long a flush may wait, in seconds
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = seconds)]
    flush_timeout: Duration,
    /// how long close may drain before handing back, in seconds
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = seconds)]
    close_timeout: Duration,
}

/// Exit codes of `tether threads`, as `pipe`'s.
pub const HANDED_BACK: u8 = 3;
/// See [`HANDED_BACK`].
pub const SUPERSEDED: u8 = 4;
/// See [`HANDED_BACK`].
pub const GIVEN_UP: u8 = 5;
/// See [`HANDED_BACK`].
pub const BAD_INPUT: u8 = 6;

/// A client id unique to this process and moment.
fn default_client() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("bridge-{}-{nanos:x}", std::process::id())
}

pub fn run(args: &ThreadsArgs) -> ExitCode {
    let token = match &args.token_env {
        None => None,
        Some(var) => match std::env::var(var) {
            Ok(token) => Some(token),
            Err(_) => {
                return usage_error(
                    "threads",
                    format!("environment variable `{var}` (--token-env) is not set"),
                );
            }
        },
    };
    let url = args.url.clone().unwrap_or_default();
    let tether = match Builder::new(args.runtime, &url)
        .epoch(args.epoch)
        .token(token)
        .start()
    {
        Ok(t) => t,
        Err(e) => return usage_error("threads", e),
    };
    let client = args.client.clone().unwrap_or_else(default_client);
    let threads = match tether.threads(thread::Config::new(client)) {
        Ok(threads) => threads,
        Err(e) => {
            eprintln!("tether threads: {e}");
            let _ = tether.close(args.close_timeout).wait();
            return ExitCode::from(1);
        }
    };
    let (out, writer) = output::writer();
    let readers = [
        output::relay("session", tether.statuses(), out.clone(), output::session),
        output::relay("status", threads.statuses(), out.clone(), output::status),
        output::relay(
            "pending",
            threads.pending_threads(),
            out.clone(),
            output::pending,
        ),
        {
            let view = threads.clone();
            output::relay("reports", threads.reports(), out.clone(), move |r| {
                output::report(&view, r)
            })
        },
    ];
    let fed = feed_all(&threads, args.flush_timeout, &out);
    // The last flush: a pull after the last edit, so the final view holds what the server did.
    let flushed = threads.flush(args.flush_timeout).wait().is_ok();
    let report = threads.close(args.close_timeout).wait();
    let session = tether.close(args.close_timeout).wait().status;
    for reader in readers {
        let _ = reader.join();
    }
    let code = exit_code(&fed, &report, &session);
    say(&out, summary(&fed, &report, &session, flushed, code));
    drop(out);
    match writer.join() {
        Ok(Ok(())) => ExitCode::from(code),
        _ => ExitCode::from(1),
    }
}

/// What the input did.
#[derive(Debug, Default)]
struct Fed {
    lines: u64,
    bad_lines: u64,
}

/// Applies stdin's lines in order; a malformed or refused line is an `error` line.
fn feed_all(threads: &ThreadHandle, flush_timeout: Duration, out: &Out) -> Fed {
    let mut fed = Fed::default();
    for (index, line) in std::io::stdin().lock().lines().enumerate() {
        let number = index as u64 + 1;
        fed.lines = number;
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                say(out, output::error(number, &format!("cannot read: {e}")));
                fed.bad_lines += 1;
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let applied = input::parse(&line).and_then(|input| match input {
            input::Input::Flush => {
                let answer = threads.flush(flush_timeout).wait();
                say(out, output::flushed(number, answer));
                Ok(())
            }
            other => input::apply(threads, other),
        });
        if let Err(why) = applied {
            say(out, output::error(number, &why));
            fed.bad_lines += 1;
        }
    }
    fed
}

fn exit_code(fed: &Fed, report: &ThreadCloseReport, session: &Status) -> u8 {
    match (session, report.stopped) {
        (Status::Superseded, _) | (_, Some(StopReason::Superseded)) => SUPERSEDED,
        (Status::GivenUp(_), _) | (_, Some(StopReason::SessionUnknown)) => GIVEN_UP,
        _ if !report.unsynced.is_empty() || report.rejected > 0 => HANDED_BACK,
        _ if fed.bad_lines > 0 => BAD_INPUT,
        _ => 0,
    }
}

fn summary(
    fed: &Fed,
    report: &ThreadCloseReport,
    session: &Status,
    flushed: bool,
    code: u8,
) -> Value {
    json!({
        "type": "summary",
        "exit_code": code,
        "lines": fed.lines,
        "bad_lines": fed.bad_lines,
        "flushed": flushed,
        "threads": report.threads.iter().map(Thread::to_value).collect::<Vec<_>>(),
        "unsynced": report.unsynced.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        "rejected": report.rejected,
        "stopped": report.stopped.map(output::stop_name),
        "session": status_json(session)["status"],
    })
}
