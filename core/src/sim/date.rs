//! The server model's `Date` header: an IMF-fixdate formatter (RFC 9110 §5.6.7).
//!
//! The simulated server has a wall clock (a base Unix time plus the simulated [`Instant`]), so
//! its `Date` and HTTP-date `Retry-After` headers are consistent with each other and replay
//! exactly. Parsing lives in [`crate::backoff::retry_after::parse_http_date`].
//!
//! [`Instant`]: crate::Instant

use alloc::format;
use alloc::string::String;

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]; // 1970-01-01 was a Thursday
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Formats seconds since the Unix epoch as an IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
///
/// ```
/// use tether_core::sim::date::imf_fixdate;
/// assert_eq!(imf_fixdate(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
/// ```
pub fn imf_fixdate(unix_secs: u64) -> String {
    let days = unix_secs / 86_400;
    let secs = unix_secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backoff::retry_after::parse_http_date;

    #[test]
    fn known_dates() {
        assert_eq!(imf_fixdate(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(imf_fixdate(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(imf_fixdate(1_700_000_000), "Tue, 14 Nov 2023 22:13:20 GMT");
    }

    #[test]
    fn round_trips_through_the_parser() {
        let mut t = 0u64;
        // Steps of a prime number of seconds cover every weekday, month, leap day and time field.
        while t < 253_402_300_799 {
            let s = imf_fixdate(t);
            assert_eq!(parse_http_date(&s), Some(t), "{s}");
            t += 86_400 * 13 + 3_607;
        }
        assert_eq!(
            parse_http_date(&imf_fixdate(253_402_300_799)),
            Some(253_402_300_799)
        );
    }
}
