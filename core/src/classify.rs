//! How the client treats a response: docs/PROTOCOL.md's table, as one table in code.
//!
//! Every machine that talks to the server asks [`classify`]; none of them looks at a status code
//! on its own, so the table below is the whole policy.

use core::fmt;
use core::time::Duration;

use crate::backoff::retry_after;

/// What came back for a request, as the core sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    /// The server answered with this status.
    Status {
        /// The HTTP status code.
        status: u16,
        /// The raw `Retry-After` header, if any.
        retry_after: Option<&'a str>,
        /// The raw `Date` header, if any; an HTTP-date `Retry-After` is measured against it.
        date: Option<&'a str>,
    },
    /// The connection failed or was reset before a response arrived.
    Transport,
    /// The core's deadline for the request passed.
    TimedOut,
    /// A 2xx response whose body could not be parsed, or was larger than the cap.
    BadBody,
}

impl<'a> Reply<'a> {
    /// A bare status with no headers.
    pub const fn status(status: u16) -> Self {
        Reply::Status {
            status,
            retry_after: None,
            date: None,
        }
    }
}

/// What a reply means for the session: the outcome column of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// 2xx: reset the channel's backoff and the auth-failure count.
    Success,
    /// 409: a newer worker owns the session. Terminal for the whole session.
    Superseded,
    /// 401, 403: retry with backoff; ten in a row give up.
    AuthFailure,
    /// 404: the session is unknown. Terminal unless configured transient.
    SessionUnknown,
    /// 429 or 503 with a usable `Retry-After`: wait for the hint (clamped by the policy).
    Throttled(Duration),
    /// Retry with backoff.
    Transient(TransientCause),
    /// 413: events split the batch.
    TooLarge,
    /// Retrying cannot help. Carries the status.
    Permanent(u16),
}

/// Why a transient outcome happened, for counters and traces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransientCause {
    /// A retryable status (408, 429, 5xx).
    Status(u16),
    /// Connection error or reset.
    Transport,
    /// The core's request deadline passed.
    TimedOut,
    /// Unparseable or oversized response body.
    BadBody,
}

impl fmt::Display for TransientCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransientCause::Status(s) => write!(f, "status {s}"),
            TransientCause::Transport => f.write_str("transport"),
            TransientCause::TimedOut => f.write_str("timeout"),
            TransientCause::BadBody => f.write_str("bad body"),
        }
    }
}

/// One row's verdict, before headers are looked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Success,
    Superseded,
    AuthFailure,
    SessionUnknown,
    /// Throttled if a `Retry-After` parses, else transient.
    MaybeThrottled,
    Transient,
    TooLarge,
    Permanent,
}

/// docs/PROTOCOL.md's response table. The first row whose range holds the status wins.
const TABLE: &[(u16, u16, Class)] = &[
    (200, 299, Class::Success),
    (409, 409, Class::Superseded),
    (401, 401, Class::AuthFailure),
    (403, 403, Class::AuthFailure),
    (404, 404, Class::SessionUnknown),
    (429, 429, Class::MaybeThrottled),
    (503, 503, Class::MaybeThrottled),
    (408, 408, Class::Transient),
    (500, 500, Class::Transient),
    (502, 502, Class::Transient),
    (504, 504, Class::Transient),
    (413, 413, Class::TooLarge),
    (400, 499, Class::Permanent),
    (501, 501, Class::Permanent),
    (505, 505, Class::Permanent),
    // Beyond the table: other 5xx are the server's trouble, so worth a retry; 1xx and 3xx
    // (redirects are never followed) mean a misconfigured URL, which retrying cannot fix.
    (506, 599, Class::Transient),
];

/// Classifies one reply by the response table.
///
/// ```
/// use tether_core::classify::{classify, Outcome, Reply, TransientCause};
///
/// assert_eq!(classify(Reply::status(204)), Outcome::Success);
/// assert_eq!(classify(Reply::status(409)), Outcome::Superseded);
/// assert_eq!(classify(Reply::status(429)), Outcome::Transient(TransientCause::Status(429)));
/// let throttled = Reply::Status { status: 429, retry_after: Some("2"), date: None };
/// assert_eq!(classify(throttled), Outcome::Throttled(core::time::Duration::from_secs(2)));
/// ```
pub fn classify(reply: Reply<'_>) -> Outcome {
    let (status, retry_after, date) = match reply {
        Reply::Status {
            status,
            retry_after,
            date,
        } => (status, retry_after, date),
        Reply::Transport => return Outcome::Transient(TransientCause::Transport),
        Reply::TimedOut => return Outcome::Transient(TransientCause::TimedOut),
        Reply::BadBody => return Outcome::Transient(TransientCause::BadBody),
    };
    let class = TABLE
        .iter()
        .find(|(lo, hi, _)| (*lo..=*hi).contains(&status))
        .map_or(Class::Permanent, |(_, _, class)| *class);
    match class {
        Class::Success => Outcome::Success,
        Class::Superseded => Outcome::Superseded,
        Class::AuthFailure => Outcome::AuthFailure,
        Class::SessionUnknown => Outcome::SessionUnknown,
        Class::MaybeThrottled => match retry_after.and_then(|v| retry_after::parse(v, date)) {
            Some(hint) => Outcome::Throttled(hint),
            None => Outcome::Transient(TransientCause::Status(status)),
        },
        Class::Transient => Outcome::Transient(TransientCause::Status(status)),
        Class::TooLarge => Outcome::TooLarge,
        Class::Permanent => Outcome::Permanent(status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_hint(
        status: u16,
        retry_after: &'static str,
        date: Option<&'static str>,
    ) -> Reply<'static> {
        Reply::Status {
            status,
            retry_after: Some(retry_after),
            date,
        }
    }

    #[test]
    fn every_row_of_the_protocol_table() {
        use Outcome::*;
        use TransientCause as C;
        let rows: &[(Reply<'static>, Outcome)] = &[
            (Reply::status(200), Success),
            (Reply::status(201), Success),
            (Reply::status(299), Success),
            (Reply::status(409), Superseded),
            (Reply::status(401), AuthFailure),
            (Reply::status(403), AuthFailure),
            (Reply::status(404), SessionUnknown),
            (with_hint(429, "7", None), Throttled(Duration::from_secs(7))),
            (with_hint(503, "7", None), Throttled(Duration::from_secs(7))),
            (
                with_hint(
                    429,
                    "Sun, 06 Nov 1994 08:49:39 GMT",
                    Some("Sun, 06 Nov 1994 08:49:37 GMT"),
                ),
                Throttled(Duration::from_secs(2)),
            ),
            (Reply::status(408), Transient(C::Status(408))),
            (Reply::status(429), Transient(C::Status(429))),
            (with_hint(429, "later", None), Transient(C::Status(429))),
            (Reply::status(500), Transient(C::Status(500))),
            (Reply::status(502), Transient(C::Status(502))),
            (Reply::status(503), Transient(C::Status(503))),
            (Reply::status(504), Transient(C::Status(504))),
            (Reply::status(413), TooLarge),
            (Reply::status(400), Permanent(400)),
            (Reply::status(410), Permanent(410)),
            (Reply::status(422), Permanent(422)),
            (Reply::status(501), Permanent(501)),
            (Reply::status(505), Permanent(505)),
            (Reply::Transport, Transient(C::Transport)),
            (Reply::TimedOut, Transient(C::TimedOut)),
            (Reply::BadBody, Transient(C::BadBody)),
        ];
        for (reply, expected) in rows {
            assert_eq!(classify(*reply), *expected, "{reply:?}");
        }
    }

    #[test]
    fn a_hint_on_a_non_throttling_status_is_ignored() {
        assert_eq!(
            classify(with_hint(500, "9", None)),
            Outcome::Transient(TransientCause::Status(500))
        );
    }

    #[test]
    fn statuses_outside_the_table_are_decided_not_panicked_on() {
        assert_eq!(classify(Reply::status(302)), Outcome::Permanent(302));
        assert_eq!(classify(Reply::status(100)), Outcome::Permanent(100));
        assert_eq!(classify(Reply::status(0)), Outcome::Permanent(0));
        assert_eq!(
            classify(Reply::status(599)),
            Outcome::Transient(TransientCause::Status(599))
        );
        assert_eq!(
            classify(Reply::status(u16::MAX)),
            Outcome::Permanent(u16::MAX)
        );
    }
}
