//! The `Date` header of every response: the simulated wall clock, with the day part cached.

use tether_core::backoff::retry_after::format_http_date;
use tether_core::time::Instant;

use super::ServerModel;

impl ServerModel {
    /// The simulated wall clock at `now`, in Unix seconds.
    pub fn unix_time(&self, now: Instant) -> u64 {
        self.config
            .base_unix_time
            .saturating_add(now.as_micros() / 1_000_000)
    }

    /// The `Date` header the server sends at `now`.
    pub fn date(&self, now: Instant) -> String {
        self.http_date(self.unix_time(now))
    }

    /// [`date`](Self::date), first caching the day part of `now`'s date.
    pub(super) fn cached_date(&mut self, now: Instant) -> String {
        let day = self.unix_time(now) / 86_400;
        if self.date_day.as_ref().is_none_or(|(d, _)| *d != day) {
            // `Tue, 14 Nov 2023 00:00:00 GMT` without its time of day.
            let mut prefix = format_http_date(day * 86_400);
            prefix.truncate(prefix.len() - "00:00:00 GMT".len());
            self.date_day = Some((day, prefix));
        }
        self.date(now)
    }

    /// [`format_http_date`] of `unix_secs` (e.g. a `Retry-After` date), reusing the cached day
    /// part when `unix_secs` falls on its day.
    pub fn http_date(&self, unix_secs: u64) -> String {
        let Some((_, prefix)) = self
            .date_day
            .as_ref()
            .filter(|(day, _)| *day == unix_secs / 86_400)
        else {
            return format_http_date(unix_secs);
        };
        let mut date = String::with_capacity(prefix.len() + "00:00:00 GMT".len());
        date.push_str(prefix);
        let secs = unix_secs % 86_400;
        for (i, field) in [secs / 3600, secs / 60 % 60, secs % 60]
            .into_iter()
            .enumerate()
        {
            if i > 0 {
                date.push(':');
            }
            date.push(char::from(b'0' + (field / 10) as u8));
            date.push(char::from(b'0' + (field % 10) as u8));
        }
        date.push_str(" GMT");
        date
    }
}
