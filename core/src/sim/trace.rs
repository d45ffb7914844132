//! A human-readable trace of a run: one line per input and output, at simulated time.
//!
//! Lines look like `    12.345s  -> r17 POST /worker/events 3 events 1234 B`: a fixed-width
//! time column, two spaces, the message. Nothing in a line depends on anything but the run's
//! inputs, so replaying a seed gives a byte-identical trace, and two traces can be compared with
//! [`Trace::digest`] or a diff.

use alloc::string::String;
use core::fmt::{self, Write};

use serde_json::Value;

use super::faults::Delivery;
use crate::session::{Endpoint, Request, RequestId, Response};
use crate::time::Instant;

/// Width of the time column's whole seconds.
const SECONDS_WIDTH: usize = 6;

/// The lines of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trace {
    text: String,
    lines: usize,
}

impl Trace {
    /// An empty trace.
    pub fn new() -> Self {
        Trace::default()
    }

    /// Appends one line at `now`. Line breaks inside the message become continuation lines
    /// indented under the message column.
    ///
    /// ```
    /// use tether_core::sim::Trace;
    /// use tether_core::Instant;
    ///
    /// let mut trace = Trace::new();
    /// trace.line(Instant::from_millis(12_400), format_args!("status {}", "connected"));
    /// assert_eq!(trace.as_str(), "    12.400s  status connected\n");
    /// ```
    pub fn line(&mut self, now: Instant, args: fmt::Arguments<'_>) {
        let millis = now.as_micros() / 1_000;
        let _ = write!(
            self.text,
            "{:>width$}.{:03}s  ",
            millis / 1_000,
            millis % 1_000,
            width = SECONDS_WIDTH
        );
        let start = self.text.len();
        let _ = self.text.write_fmt(args);
        if self.text[start..].contains('\n') {
            let indent = alloc::format!("\n{:width$}", "", width = SECONDS_WIDTH + 7);
            let message = self.text.split_off(start).replace('\n', &indent);
            self.text.push_str(&message);
        }
        self.text.push('\n');
        self.lines += 1;
    }

    /// `-> r17 POST /worker/events 3 events 1234 B`: a request the session sent.
    pub fn request(&mut self, now: Instant, request: &Request) {
        self.line(
            now,
            format_args!(
                "-> {} {} {}{} B",
                request.id,
                request.endpoint,
                Summary(request.endpoint, &request.body),
                request.body.len()
            ),
        );
    }

    /// `<- r17 429 retry-after 7`: a response the session was given.
    pub fn response(&mut self, now: Instant, id: RequestId, response: &Response) {
        match &response.retry_after {
            Some(hint) => self.line(
                now,
                format_args!("<- {id} {} retry-after {hint}", response.status),
            ),
            None => self.line(now, format_args!("<- {id} {}", response.status)),
        }
    }

    /// What a [`Delivery`] gives the session, at the time it arrives (nothing for a hang).
    pub fn delivery(&mut self, id: RequestId, delivery: &Delivery) {
        match delivery {
            Delivery::Respond { at, response } => self.response(*at, id, response),
            Delivery::TransportError { at, error } => {
                self.line(*at, format_args!("<- {id} {error}"))
            }
            Delivery::Hang => {}
        }
    }

    /// The whole trace.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// How many lines were appended.
    pub fn lines(&self) -> usize {
        self.lines
    }

    /// Whether nothing was appended.
    pub fn is_empty(&self) -> bool {
        self.lines == 0
    }

    /// A 64-bit FNV-1a hash of the text: equal traces have equal digests.
    pub fn digest(&self) -> u64 {
        self.text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `3 events ` or `2 updates ` for batch bodies; nothing for the rest.
struct Summary<'a>(Endpoint, &'a [u8]);

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = match self.0 {
            Endpoint::Events | Endpoint::InternalEvents => "events",
            Endpoint::Delivery => "updates",
            _ => return Ok(()),
        };
        match serde_json::from_slice::<Value>(self.1) {
            Ok(body) => match body.get(field).and_then(Value::as_array) {
                Some(items) => write!(f, "{} {field} ", items.len()),
                None => Ok(()),
            },
            Err(_) => f.write_str("malformed "),
        }
    }
}
