//! `Retry-After` parsing (RFC 9110 §10.2.3), in both forms, with no wall clock.
//!
//! An HTTP-date hint is measured against the `Date` header of the same response, so the core
//! needs no clock of its own and the client's clock skew does not matter. Clamping the hint is the
//! policy's job ([`BackoffPolicy::delay_for_hint`](super::BackoffPolicy::delay_for_hint)).

use alloc::format;
use alloc::string::String;
use core::time::Duration;

/// The delay a `Retry-After` value asks for.
///
/// - delta-seconds (`"120"`): that many seconds; absurdly large values saturate.
/// - HTTP-date (IMF-fixdate, RFC 850 or asctime): the time from the response's `date` to it,
///   or zero if it lies in the past. Without a parseable `date` there is nothing to measure
///   against, so the hint is `None` and the caller falls back to its own curve.
///
/// Anything else is `None`.
///
/// ```
/// use core::time::Duration;
/// use tether_core::backoff::retry_after::parse;
///
/// assert_eq!(parse("3", None), Some(Duration::from_secs(3)));
/// assert_eq!(
///     parse("Sun, 06 Nov 1994 08:49:40 GMT", Some("Sun, 06 Nov 1994 08:49:37 GMT")),
///     Some(Duration::from_secs(3)),
/// );
/// assert_eq!(parse("soon", None), None);
/// ```
pub fn parse(value: &str, date: Option<&str>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        let secs = value.bytes().fold(0u64, |acc, b| {
            acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
        });
        return Some(Duration::from_secs(secs));
    }
    let target = parse_http_date(value)?;
    let origin = parse_http_date(date?.trim())?;
    Some(Duration::from_secs(target.saturating_sub(origin)))
}

/// Seconds since 1970-01-01T00:00:00Z of an HTTP-date in any of its three forms.
pub fn parse_http_date(s: &str) -> Option<u64> {
    let mut tokens = s.split_ascii_whitespace();
    let first = tokens.next()?;
    let rest: [&str; 5] = {
        let mut out = [""; 5];
        let mut n = 0;
        for t in tokens {
            *out.get_mut(n)? = t;
            n += 1;
        }
        match n {
            3..=5 => out,
            _ => return None,
        }
    };
    let date = if let Some(day_name) = first.strip_suffix(',') {
        if SHORT_DAYS.contains(&day_name) {
            // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
            let [day, month, year, time, zone] = rest;
            if zone != "GMT" || day.len() != 2 || year.len() != 4 {
                return None;
            }
            Civil {
                year: number(year)?,
                month: month_number(month)?,
                day: number(day)?,
                time: clock(time)?,
            }
        } else if LONG_DAYS.contains(&day_name) {
            // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"
            let [dmy, time, zone, extra, _] = rest;
            if zone != "GMT" || !extra.is_empty() {
                return None;
            }
            let mut parts = dmy.split('-');
            let (day, month, year) = (parts.next()?, parts.next()?, parts.next()?);
            if parts.next().is_some() || day.len() != 2 || year.len() != 2 {
                return None;
            }
            let yy = number(year)?;
            Civil {
                // RFC 9110: a two-digit year more than 50 years ahead is in the past century;
                // with no clock, pivot at 1970 as Unix time does.
                year: if yy < 70 { 2000 + yy } else { 1900 + yy },
                month: month_number(month)?,
                day: number(day)?,
                time: clock(time)?,
            }
        } else {
            return None;
        }
    } else if SHORT_DAYS.contains(&first) {
        // asctime: "Sun Nov  6 08:49:37 1994"
        let [month, day, time, year, extra] = rest;
        if !extra.is_empty() || day.is_empty() || day.len() > 2 || year.len() != 4 {
            return None;
        }
        Civil {
            year: number(year)?,
            month: month_number(month)?,
            day: number(day)?,
            time: clock(time)?,
        }
    } else {
        return None;
    };
    date.unix_seconds()
}

/// Formats seconds since the Unix epoch as an IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`:
/// the form a server writes in `Date` and `Retry-After`.
///
/// ```
/// use tether_core::backoff::retry_after::{format_http_date, parse_http_date};
/// assert_eq!(format_http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
/// assert_eq!(parse_http_date(&format_http_date(784_111_777)), Some(784_111_777));
/// ```
pub fn format_http_date(unix_secs: u64) -> String {
    // 1970-01-01 was a Thursday.
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    let days = unix_secs / 86_400;
    let secs = unix_secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
    )
}

const SHORT_DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LONG_DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

struct Civil {
    year: u64,
    month: u64,
    day: u64,
    time: (u64, u64, u64),
}

impl Civil {
    fn unix_seconds(&self) -> Option<u64> {
        let (h, m, s) = self.time;
        if !(1970..=9999).contains(&self.year)
            || self.day == 0
            || self.day > days_in_month(self.year, self.month)
            || h > 23
            || m > 59
            || s > 60
        {
            return None;
        }
        let days = days_from_civil(self.year, self.month, self.day);
        Some(days * 86_400 + h * 3_600 + m * 60 + s)
    }
}

fn number(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn month_number(s: &str) -> Option<u64> {
    MONTHS.iter().position(|m| *m == s).map(|i| i as u64 + 1)
}

fn clock(s: &str) -> Option<(u64, u64, u64)> {
    let mut parts = s.split(':');
    let (h, m, sec) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || [h, m, sec].iter().any(|p| p.len() != 2) {
        return None;
    }
    Some((number(h)?, number(m)?, number(sec)?))
}

fn is_leap(year: u64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm), for years from 1970 on.
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (the inverse of
/// [`days_from_civil`]).
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

    const IMF: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

    #[test]
    fn all_three_date_forms_agree() {
        let expected = Some(784_111_777);
        assert_eq!(parse_http_date(IMF), expected);
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), expected);
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), expected);
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2028 12:00:00 GMT"),
            Some(1_835_438_400)
        );
    }

    #[test]
    fn delta_seconds() {
        assert_eq!(parse("0", None), Some(Duration::ZERO));
        assert_eq!(parse(" 120 ", None), Some(Duration::from_secs(120)));
        assert_eq!(
            parse("99999999999999999999999999", None),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(parse("-1", None), None);
        assert_eq!(parse("1.5", None), None);
        assert_eq!(parse("", None), None);
    }

    #[test]
    fn http_date_is_measured_against_the_response_date() {
        let later = "Sun, 06 Nov 1994 08:51:37 GMT";
        assert_eq!(parse(later, Some(IMF)), Some(Duration::from_secs(120)));
        // In the past relative to the response: retry now.
        assert_eq!(parse(IMF, Some(later)), Some(Duration::ZERO));
        // No Date header: nothing to measure against.
        assert_eq!(parse(later, None), None);
        assert_eq!(parse(later, Some("yesterday")), None);
    }

    #[test]
    fn malformed_dates_are_rejected() {
        for bad in [
            "Sun, 31 Feb 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:49:37 PST",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1969 08:49:37 GMT",
            "Funday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37",
            "Sun, 06 Nov 1994 08:49 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT extra",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_known_dates() {
        assert_eq!(format_http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            format_http_date(951_782_400),
            "Tue, 29 Feb 2000 00:00:00 GMT"
        );
        assert_eq!(
            format_http_date(1_700_000_000),
            "Tue, 14 Nov 2023 22:13:20 GMT"
        );
    }

    #[test]
    fn format_round_trips_through_the_parser() {
        let mut t = 0u64;
        // Steps of a prime number of seconds cover every weekday, month, leap day and time field.
        while t < 253_402_300_799 {
            let s = format_http_date(t);
            assert_eq!(parse_http_date(&s), Some(t), "{s}");
            t += 86_400 * 13 + 3_607;
        }
        assert_eq!(
            parse_http_date(&format_http_date(253_402_300_799)),
            Some(253_402_300_799)
        );
    }
}
