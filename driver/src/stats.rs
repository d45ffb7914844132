//! What the driver measures about itself: how late its timers fire.

use std::time::Duration;

/// Sub-buckets per power of two: each bucket spans at most a quarter octave (±19 %).
const SUB: u32 = 4;
/// Buckets: 1 µs up to 2^40 µs (12 days), quarter octaves.
const BUCKETS: usize = 40 * SUB as usize + 1;

/// A fixed-size histogram of durations with quarter-octave buckets and an exact maximum.
///
/// It stays the same size however long the session runs (about 650 bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct Histogram {
    counts: Box<[u32; BUCKETS]>,
    count: u64,
    max: Duration,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            count: 0,
            max: Duration::ZERO,
        }
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count)
            .field("p50", &self.quantile(0.5))
            .field("p99", &self.quantile(0.99))
            .field("max", &self.max)
            .finish()
    }
}

fn bucket_of(micros: u64) -> usize {
    if micros < 2 {
        return micros as usize;
    }
    let octave = 63 - micros.leading_zeros(); // floor(log2)
    let frac = if octave >= 2 {
        (micros >> (octave - 2)) & 3
    } else {
        (micros << (2 - octave)) & 3
    };
    ((octave * SUB) as usize + frac as usize + 1).min(BUCKETS - 1)
}

/// The largest value a bucket holds (its upper bound), in microseconds.
fn bucket_upper(bucket: usize) -> u64 {
    if bucket < 2 {
        return bucket as u64;
    }
    let b = bucket as u64 - 1;
    let octave = b / u64::from(SUB);
    let frac = b % u64::from(SUB);
    let base = 1u64 << octave;
    let step = (base / u64::from(SUB)).max(1);
    base + (frac + 1) * step - 1
}

impl Histogram {
    /// Records one value.
    pub fn record(&mut self, value: Duration) {
        let micros = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        let slot = &mut self.counts[bucket_of(micros)];
        *slot = slot.saturating_add(1);
        self.count += 1;
        self.max = self.max.max(value);
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The largest value recorded, exactly.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// An upper bound of the `q` quantile (`0.0..=1.0`), never above the maximum; zero when
    /// empty.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (bucket, n) in self.counts.iter().enumerate() {
            seen += u64::from(*n);
            if seen >= rank {
                return Duration::from_micros(bucket_upper(bucket)).min(self.max);
            }
        }
        self.max
    }

    /// Adds another histogram's counts to this one.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a = a.saturating_add(*b);
        }
        self.count += other.count;
        self.max = self.max.max(other.max);
    }

    /// What was recorded after `earlier`, an earlier copy of this histogram (or of the same
    /// sessions' merge): its counts taken from these. The maximum is exact when it grew after
    /// `earlier`; otherwise it is the upper bound of the highest bucket left (never above this
    /// maximum). For the lateness of one phase of a run.
    #[must_use]
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let mut counts = Box::new([0; BUCKETS]);
        for ((slot, now), before) in counts
            .iter_mut()
            .zip(self.counts.iter())
            .zip(earlier.counts.iter())
        {
            *slot = now.saturating_sub(*before);
        }
        let max = if self.max > earlier.max {
            self.max
        } else {
            counts
                .iter()
                .rposition(|n| *n > 0)
                .map_or(Duration::ZERO, |b| {
                    Duration::from_micros(bucket_upper(b)).min(self.max)
                })
        };
        Histogram {
            counts,
            count: self.count.saturating_sub(earlier.count),
            max,
        }
    }
}

/// The driver's own measurements, the same on every runtime.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DriverStats {
    /// Heartbeat lateness: when the driver handled a beat's timer minus when the core had
    /// scheduled it. What a loaded runtime adds to the protocol's timing.
    pub heartbeat_lateness: Histogram,
    /// Deadlines the core named again after they were handled, waited for 1 ms instead of
    /// spinning.
    pub clamped_waits: u64,
    /// Times the shim's loop woke up (a call, an answer, a timer): what an idle session costs
    /// is how often this grows.
    pub wakeups: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_bound_their_values() {
        let mut last = 0;
        for micros in [
            0u64,
            1,
            2,
            3,
            4,
            5,
            7,
            8,
            9,
            15,
            16,
            100,
            1_000,
            49_999,
            1 << 30,
        ] {
            let b = bucket_of(micros);
            assert!(b >= last, "{micros}");
            last = b;
            assert!(
                bucket_upper(b) >= micros,
                "{micros} above {}",
                bucket_upper(b)
            );
            if micros >= 8 {
                assert!(
                    bucket_upper(b) as f64 <= micros as f64 * 1.25 + 1.0,
                    "{micros}"
                );
            }
        }
    }

    #[test]
    fn quantiles_are_upper_bounds_within_a_quarter_octave() {
        let mut h = Histogram::default();
        for ms in 1..=100u64 {
            h.record(Duration::from_millis(ms));
        }
        let p50 = h.quantile(0.5);
        assert!(p50 >= Duration::from_millis(50) && p50 <= Duration::from_millis(63));
        assert_eq!(h.quantile(1.0), Duration::from_millis(100));
        assert_eq!(h.max(), Duration::from_millis(100));
        let mut other = Histogram::default();
        other.record(Duration::from_secs(1));
        h.merge(&other);
        assert_eq!(h.count(), 101);
        assert_eq!(h.max(), Duration::from_secs(1));
    }

    #[test]
    fn since_keeps_what_came_after_a_snapshot() {
        let mut h = Histogram::default();
        for ms in 1..=10u64 {
            h.record(Duration::from_millis(ms));
        }
        let snapshot = h.clone();
        assert_eq!(h.since(&snapshot), Histogram::default());
        h.record(Duration::from_millis(3));
        h.record(Duration::from_millis(4));
        let after = h.since(&snapshot);
        assert_eq!(after.count(), 2);
        // The maximum did not grow: the highest bucket's bound, capped by the maximum.
        assert!(after.max() >= Duration::from_millis(4) && after.max() <= Duration::from_millis(5));
        h.record(Duration::from_millis(70));
        let after = h.since(&snapshot);
        assert_eq!(after.count(), 3);
        assert_eq!(after.max(), Duration::from_millis(70));
        assert!(after.quantile(0.5) <= Duration::from_millis(5));
    }
}
