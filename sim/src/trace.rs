//! A human-readable trace of a run: one line per input and output, at simulated time.
//!
//! Lines look like `    12.345s  -> r17 POST /worker/events 3 events 1234 B`: a fixed-width
//! time column, two spaces, the message. Nothing in a line depends on anything but the run's
//! inputs, so replaying a seed gives a byte-identical trace, and two traces can be compared with
//! [`Trace::digest`] or a diff.

use std::fmt::{self, Write};

use serde_json::Value;

use tether_core::session::{Endpoint, Request, RequestId, Response};
use tether_core::time::Instant;
use tether_model::fault::Delivery;

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
    /// use tether_sim::Trace;
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
            let indent = format!("\n{:width$}", "", width = SECONDS_WIDTH + 7);
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
        self.response_tagged(now, "", id, response);
    }

    fn response_tagged(&mut self, now: Instant, tag: &str, id: RequestId, response: &Response) {
        match &response.retry_after {
            Some(hint) => self.line(
                now,
                format_args!("{tag}<- {id} {} retry-after {hint}", response.status),
            ),
            None => self.line(now, format_args!("{tag}<- {id} {}", response.status)),
        }
    }

    /// What a [`Delivery`] gives the session, at the time it arrives (nothing for a hang).
    pub fn delivery(&mut self, id: RequestId, delivery: &Delivery) {
        self.delivery_tagged("", id, delivery);
    }

    /// [`delivery`](Self::delivery), the line starting with `tag` (e.g. `c1 `: which client
    /// of several it is for).
    pub fn delivery_tagged(&mut self, tag: &str, id: RequestId, delivery: &Delivery) {
        match delivery {
            Delivery::Respond { at, response } => self.response_tagged(*at, tag, id, response),
            Delivery::TransportError { at, error } => {
                self.line(*at, format_args!("{tag}<- {id} {error}"))
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

#[cfg(test)]
mod tests {
    use super::*;
    use tether_core::session::TransportError;

    fn sample() -> Trace {
        let mut trace = Trace::new();
        let request = Request {
            id: RequestId(17),
            endpoint: Endpoint::Events,
            body: br#"{"worker_epoch":1,"events":[{"payload":{}},{"payload":{}},{"payload":{}}]}"#
                .to_vec(),
            deadline: Instant::from_secs(22),
        };
        trace.request(Instant::from_millis(12_345), &request);
        trace.delivery(
            RequestId(17),
            &Delivery::Respond {
                at: Instant::from_millis(12_400),
                response: Response::new(200, "{}"),
            },
        );
        trace.line(
            Instant::from_millis(12_400),
            format_args!("status {}", "connected"),
        );
        trace
    }

    #[test]
    fn lines_have_a_fixed_time_column() {
        let trace = sample();
        assert_eq!(
            trace.as_str(),
            "    12.345s  -> r17 POST /worker/events 3 events 74 B\n\
             \x20   12.400s  <- r17 200\n\
             \x20   12.400s  status connected\n"
        );
        assert_eq!(trace.lines(), 3);
        let mut long = Trace::new();
        long.line(Instant::from_secs(123_456), format_args!("x"));
        long.line(Instant::ZERO, format_args!("y"));
        let starts: Vec<usize> = long
            .as_str()
            .lines()
            .map(|l| l.find("  x").or(l.find("  y")).unwrap())
            .collect();
        assert_eq!(starts, [11, 11]);
    }

    #[test]
    fn replaying_gives_a_byte_identical_trace() {
        let (a, b) = (sample(), sample());
        assert_eq!(a.to_string(), b.to_string());
        assert_eq!(a.digest(), b.digest());
        let mut c = sample();
        c.line(Instant::ZERO, format_args!("one more"));
        assert_ne!(a.digest(), c.digest());
    }

    #[test]
    fn hints_errors_and_multi_line_messages() {
        let mut trace = Trace::new();
        let mut throttled = Response::new(429, "");
        throttled.retry_after = Some("7".into());
        trace.response(Instant::from_secs(1), RequestId(2), &throttled);
        trace.delivery(
            RequestId(3),
            &Delivery::TransportError {
                at: Instant::from_secs(2),
                error: TransportError {
                    message: "reset".into(),
                },
            },
        );
        trace.delivery(RequestId(4), &Delivery::Hang);
        trace.line(
            Instant::from_secs(3),
            format_args!("violation:\nseq 2 lost"),
        );
        let put = Request {
            id: RequestId(5),
            endpoint: Endpoint::PutWorker,
            body: b"{}".to_vec(),
            deadline: Instant::MAX,
        };
        trace.request(Instant::from_secs(4), &put);
        assert_eq!(
            trace.as_str(),
            "     1.000s  <- r2 429 retry-after 7\n\
             \x20    2.000s  <- r3 transport error: reset\n\
             \x20    3.000s  violation:\n\
             \x20            seq 2 lost\n\
             \x20    4.000s  -> r5 PUT /worker 2 B\n"
        );
        assert_eq!(trace.lines(), 4);
    }
}
