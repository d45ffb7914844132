//! `tether threads`' output: one JSON object per line on stdout, typed by `"type"`. Every line
//! goes through one writer thread, so lines from the status, report and pending streams never
//! interleave; each is flushed at once, for a caller that reads as it goes.

use std::io::Write;
use std::sync::mpsc;
use std::thread;

use serde_json::{Value, json};
use tether_blocking::{Lagged, Subscription, ThreadHandle, ThreadReport};
use tether_core::thread::{Contested, OfflineReason, StatusChange, StopReason, Thread};

use crate::report::status_json;

/// Where the lines go: a sender to the writer thread.
pub type Out = mpsc::Sender<Value>;

/// Starts the writer thread: it writes each value as one line and flushes. Its result is
/// whether every line was written (a closed stdout is an error at the end, not a panic).
pub fn writer() -> (Out, thread::JoinHandle<std::io::Result<()>>) {
    let (out, lines) = mpsc::channel::<Value>();
    let writer = thread::spawn(move || {
        let stdout = std::io::stdout();
        let mut result = Ok(());
        for line in lines {
            if result.is_ok() {
                let mut stdout = stdout.lock();
                result = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
            }
        }
        result
    });
    (out, writer)
}

/// Sends a line; a writer that has gone says so at the end.
pub fn say(out: &Out, line: Value) {
    let _ = out.send(line);
}

/// `{"type": "lagged", "stream": S, "skipped": N}`: a reader fell behind its stream.
fn lagged(stream: &str, lagged: &Lagged) -> Value {
    json!({"type": "lagged", "stream": stream, "skipped": lagged.0})
}

/// Prints every item of `feed` as `render` makes it, until the stream ends.
pub fn relay<T: Send + Clone + 'static>(
    stream: &'static str,
    feed: Subscription<T>,
    out: Out,
    render: impl Fn(T) -> Option<Value> + Send + 'static,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        for item in feed.iter() {
            let line = match item {
                Ok(item) => render(item),
                Err(skipped) => Some(lagged(stream, &skipped)),
            };
            if let Some(line) = line {
                say(&out, line);
            }
        }
    })
}

/// `{"type": "status", "thread": T, "status": S}`.
pub fn status(change: StatusChange) -> Option<Value> {
    Some(json!({
        "type": "status",
        "thread": change.thread,
        "status": change.status.as_str(),
    }))
}

/// `{"type": "pending", "threads": [T, ...]}`.
pub fn pending(threads: Vec<String>) -> Option<Value> {
    Some(json!({"type": "pending", "threads": threads}))
}

/// `{"type": "session", "status": S, ...}`: the session's own status.
pub fn session(status: tether_core::session::Status) -> Option<Value> {
    let mut line = status_json(&status);
    line["type"] = Value::from("session");
    Some(line)
}

fn threads_json(threads: &[Thread]) -> Vec<Value> {
    threads.iter().map(Thread::to_value).collect()
}

/// `superseded` or `session-unknown`.
pub fn stop_name(reason: StopReason) -> &'static str {
    match reason {
        StopReason::Superseded => "superseded",
        StopReason::SessionUnknown => "session-unknown",
    }
}

/// A report as a line; `threads` reads a remotely changed thread as it now stands.
pub fn report(threads: &ThreadHandle, report: ThreadReport) -> Option<Value> {
    Some(match report {
        ThreadReport::Updated { id } => json!({
            "type": "remote",
            "id": id,
            "thread": threads.thread(&id).map(|t| t.to_value()),
        }),
        ThreadReport::Rejected(r) => json!({
            "type": "rejected",
            "thread": r.id,
            "reason": r.reason,
            "refused": r.refused.to_value(),
            "restored": r.restored.map(|t| t.to_value()),
        }),
        ThreadReport::Overridden(o) => {
            let what = match &o.what {
                Contested::Message { id } => json!({"message": id}),
                Contested::Field { key } => json!({"field": key}),
                other => json!(format!("{other:?}")),
            };
            json!({
                "type": "override",
                "thread": o.thread,
                "what": what,
                "local": o.local,
                "remote": o.remote,
                "kept": o.kept,
                "local_lost": o.local_lost(),
            })
        }
        ThreadReport::InvalidThread(t) => json!({
            "type": "invalid_thread",
            "thread": t.id,
            "reason": t.error.to_string(),
        }),
        ThreadReport::HandedBack { unsynced } => json!({
            "type": "handed_back",
            "reason": "closed",
            "threads": threads_json(&unsynced),
        }),
        ThreadReport::Stopped { reason, unsynced } => json!({
            "type": "handed_back",
            "reason": stop_name(reason),
            "threads": threads_json(&unsynced),
        }),
        ThreadReport::Held { id, failures } => {
            json!({"type": "held", "thread": id, "failures": failures})
        }
        ThreadReport::Retrying { attempt, outcome } => json!({
            "type": "retrying",
            "attempt": attempt,
            "outcome": format!("{outcome:?}"),
        }),
        ThreadReport::Offline(reason) => match reason {
            OfflineReason::Caller => json!({"type": "offline", "reason": "caller"}),
            OfflineReason::TransportFailures(n) => {
                json!({"type": "offline", "reason": "transport-failures", "failures": n})
            }
        },
        ThreadReport::Online => json!({"type": "online"}),
        ThreadReport::Paused => json!({"type": "paused"}),
        ThreadReport::Resumed => json!({"type": "resumed"}),
        ThreadReport::SlowSync(slow) => json!({
            "type": "slow_sync",
            "ms": slow.duration.as_millis() as u64,
            "p95_ms": slow.p95.as_millis() as u64,
            "batch": slow.batch_size,
        }),
        _ => return None,
    })
}

/// `{"type": "error", "line": N, "error": WHY}`: a malformed or refused input line, skipped.
pub fn error(line: u64, why: &str) -> Value {
    json!({"type": "error", "line": line, "error": why})
}

/// `{"type": "flush", "line": N, "ok": BOOL[, "error": WHY]}`: a flush line's answer.
pub fn flushed(line: u64, result: Result<(), tether_blocking::ThreadFlushError>) -> Value {
    match result {
        Ok(()) => json!({"type": "flush", "line": line, "ok": true}),
        Err(e) => json!({"type": "flush", "line": line, "ok": false, "error": e.to_string()}),
    }
}
