//! HTTP-dates (RFC 9110 §5.6.7, the IMF-fixdate form) for `Date` and `Retry-After`.
//!
//! The calendar arithmetic lives in the core (`tether_core::backoff::retry_after`), beside the
//! client's parser, so the two can never disagree; this module adapts it to `SystemTime`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tether_core::backoff::retry_after;

/// The wall clock, read in one place so that every other function here stays pure.
#[allow(
    clippy::disallowed_methods,
    reason = "the server is the I/O edge: it reads the clock"
)]
pub(crate) fn wall_clock() -> SystemTime {
    SystemTime::now()
}

/// Whole seconds since the Unix epoch; times before it clamp to `0`.
pub fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Formats `time` as an IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT` (sub-seconds dropped).
pub fn format_http_date(time: SystemTime) -> String {
    retry_after::format_http_date(unix_seconds(time))
}

/// Parses an IMF-fixdate; `None` for anything else (the obsolete forms are not accepted: the
/// server only ever writes this one).
pub fn parse_http_date(text: &str) -> Option<SystemTime> {
    let secs = retry_after::parse_http_date(text)?;
    (retry_after::format_http_date(secs) == text).then(|| UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn formats_known_dates() {
        assert_eq!(format_http_date(at(0)), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            format_http_date(at(784_111_777)),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(
            format_http_date(at(951_782_400)),
            "Tue, 29 Feb 2000 00:00:00 GMT"
        );
        assert_eq!(
            format_http_date(at(4_102_444_799)),
            "Thu, 31 Dec 2099 23:59:59 GMT"
        );
    }

    #[test]
    fn parse_inverts_format() {
        for secs in [
            0,
            59,
            86_399,
            784_111_777,
            951_782_400,
            1_700_000_000,
            4_102_444_799,
        ] {
            assert_eq!(parse_http_date(&format_http_date(at(secs))), Some(at(secs)));
        }
        let mut s = 1u64;
        for _ in 0..2000 {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let t = at(s % 8_000_000_000);
            assert_eq!(parse_http_date(&format_http_date(t)), Some(t));
        }
    }

    #[test]
    fn rejects_other_forms() {
        for bad in [
            "",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 31 Feb 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "Sun, 06 Xyz 1994 08:49:37 GMT",
            "Sun, 0a Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }
}
