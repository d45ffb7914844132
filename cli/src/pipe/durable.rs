//! `tether pipe --outbox DIR`: lines are read only as fast as they become durable, and each is
//! acknowledged on stdout with `{"ack": LINE}` once it is.
//!
//! Lines already waiting in the input buffer are taken together (up to [`CHUNK`]; never waiting
//! for more input, so a producer that waits for each ack before its next line is answered):
//! their events go in as one bulk send per run of one stream, which the driver answers once
//! they are written in one group commit; state patches wait for the next one
//! ([`Tether::sync`]). Only then are the chunk's lines acknowledged, in order. A failing store refuses events: the pipe stops
//! reading and tries again until the send timeout, and never acknowledges what is not safe.

use std::io::{BufRead, BufReader, Read, Write};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tether_blocking::{BulkSendError, Refused, SendError, Tether};
use tether_core::batch::Event;
use tether_core::session::{Status, Stream};

use super::Outcome;
use crate::session::payload_of;

/// The most lines taken together.
pub const CHUNK: usize = 4096;

/// What the input said on one line.
enum Line {
    Event(Stream, Value),
    State(Value),
    Flush,
}

/// Why the pipe stopped before the end of its input.
pub enum Stop {
    /// The store failed: what was accepted is not durable.
    NotDurable(String),
    /// Stdout is gone.
    Output(std::io::Error),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::NotDurable(message) => write!(f, "the outbox failed: {message}"),
            Stop::Output(e) => write!(f, "cannot write the acknowledgements: {e}"),
        }
    }
}

/// Feeds `input` durably; acknowledges each line on `out` once it is durable.
pub fn feed(
    tether: &Tether,
    mut input: BufReader<impl Read>,
    out: &mut impl Write,
    outcome: &mut Outcome,
    send_timeout: Duration,
) -> Result<(), Stop> {
    let mut number = 0usize;
    loop {
        let mut chunk: Vec<(usize, Option<Line>)> = Vec::new();
        loop {
            let mut line = String::new();
            match input.read_line(&mut line) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    eprintln!("tether pipe: line {}: cannot read: {e}", number + 1);
                    outcome.bad_lines += 1;
                    break;
                }
            }
            number += 1;
            let parsed = if line.trim().is_empty() {
                None
            } else {
                match parse(&line) {
                    Ok(parsed) => Some(parsed),
                    Err(message) => {
                        eprintln!("tether pipe: line {number}: {message}; skipped");
                        outcome.bad_lines += 1;
                        None
                    }
                }
            };
            chunk.push((number, parsed));
            // Only what was already read: waiting here for a line the producer sends after
            // this one's ack would never end.
            let more = input.buffer().contains(&b'\n');
            if chunk.len() >= CHUNK || !more {
                break;
            }
        }
        if chunk.is_empty() {
            return Ok(());
        }
        run_chunk(tether, &mut chunk, outcome, send_timeout)?;
        tether
            .sync()
            .wait()
            .map_err(|e| Stop::NotDurable(e.to_string()))?;
        for (line, parsed) in &chunk {
            let ack = match parsed {
                Some(_) => json!({ "ack": line }),
                None => json!({ "skipped": line }),
            };
            writeln!(out, "{ack}").map_err(Stop::Output)?;
        }
        out.flush().map_err(Stop::Output)?;
    }
}

fn parse(line: &str) -> Result<Line, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(map) = value else {
        return Err("expected a JSON object".into());
    };
    if map.len() != 1 {
        return Err("expected exactly one of `event`, `internal_event`, `state`, `flush`".into());
    }
    let Some((key, body)) = map.into_iter().next() else {
        return Err("expected a JSON object".into());
    };
    match key.as_str() {
        "event" | "internal_event" if body.is_object() => Ok(Line::Event(
            if key == "event" {
                Stream::Events
            } else {
                Stream::InternalEvents
            },
            body,
        )),
        "event" | "internal_event" => Err(format!("`{key}` must be a JSON object")),
        "state" => Ok(Line::State(body)),
        "flush" if body == Value::Bool(true) => Ok(Line::Flush),
        "flush" => Err("`flush` must be true".into()),
        other => Err(format!("unknown key `{other}`")),
    }
}

/// Sends a chunk in order: runs of events in bulk, patches and flushes between them.
fn run_chunk(
    tether: &Tether,
    chunk: &mut [(usize, Option<Line>)],
    outcome: &mut Outcome,
    send_timeout: Duration,
) -> Result<(), Stop> {
    let mut run: Vec<(usize, Value)> = Vec::new();
    let mut run_stream = Stream::Events;
    for (number, parsed) in chunk.iter_mut() {
        let Some(line) = parsed.as_mut() else {
            continue;
        };
        match line {
            Line::Event(stream, payload) => {
                if *stream != run_stream && !run.is_empty() {
                    send_run(tether, run_stream, &mut run, outcome, send_timeout)?;
                }
                run_stream = *stream;
                run.push((*number, std::mem::take(payload)));
            }
            Line::State(patch) => {
                send_run(tether, run_stream, &mut run, outcome, send_timeout)?;
                if let Err(tether_blocking::PatchError::Invalid(e)) =
                    tether.patch_state(std::mem::take(patch))
                {
                    eprintln!("tether pipe: line {number}: {e}; skipped");
                    outcome.bad_lines += 1;
                    *parsed = None;
                }
            }
            Line::Flush => {
                send_run(tether, run_stream, &mut run, outcome, send_timeout)?;
                if tether.flush(send_timeout).wait().is_err() {
                    eprintln!("tether pipe: flush timed out; going on");
                }
            }
        }
    }
    send_run(tether, run_stream, &mut run, outcome, send_timeout)
}

/// One bulk send, answered once every event in it is durable. While the store fails, the same
/// events are offered again (back-pressure) until the send timeout.
fn send_run(
    tether: &Tether,
    stream: Stream,
    run: &mut Vec<(usize, Value)>,
    outcome: &mut Outcome,
    send_timeout: Duration,
) -> Result<(), Stop> {
    #[allow(clippy::disallowed_methods, reason = "the CLI is the clock's edge")]
    let deadline = Instant::now() + send_timeout;
    let mut pending: Vec<(usize, Event)> = run
        .drain(..)
        .map(|(n, payload)| (n, Event::new(payload)))
        .collect();
    while !pending.is_empty() {
        let events = pending.iter().map(|(_, e)| e.clone());
        let error = match tether.send_events(stream, events, send_timeout).wait() {
            Ok(_) => return Ok(()),
            Err(error) => error,
        };
        let BulkSendError { sent, error, .. } = *error;
        let failed = pending
            .drain(..=sent.len().min(pending.len() - 1))
            .next_back();
        let (number, _) = failed.unwrap_or((0, Event::new(Value::Null)));
        match error {
            SendError::StoreFailed { event, message } => {
                #[allow(clippy::disallowed_methods, reason = "the CLI is the clock's edge")]
                let late = Instant::now() >= deadline;
                if late {
                    return Err(Stop::NotDurable(message));
                }
                // Not taken: offer it again first, after a pause.
                pending.insert(0, (number, refused_event(event)));
                thread::sleep(Duration::from_millis(100));
            }
            SendError::NotDurable { message, .. } => return Err(Stop::NotDurable(message)),
            SendError::Ended { event, status } => {
                let reason = match status {
                    Status::Superseded => "superseded",
                    Status::GivenUp(_) => "given-up",
                    _ => "closed",
                };
                refuse(outcome, stream, reason, &event);
            }
            SendError::Timeout { event } => refuse(outcome, stream, "queue-full", &event),
            other => {
                eprintln!("tether pipe: line {number}: {other}; skipped");
                outcome.bad_lines += 1;
            }
        }
    }
    Ok(())
}

fn refused_event(event: Refused) -> Event {
    match event {
        Refused::Given(event) => event,
        Refused::Prepared(prepared) => Event::new(prepared.payload().unwrap_or(Value::Null)),
    }
}

fn refuse(outcome: &mut Outcome, stream: Stream, reason: &str, event: &Refused) {
    outcome.refused.push(json!({
        "stream": stream.name(),
        "reason": reason,
        "payload": payload_of(event),
    }));
}
