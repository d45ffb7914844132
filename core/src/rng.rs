//! The seeded PRNG every machine owns.
//!
//! xoshiro256** seeded through SplitMix64: small, fast, and identical on every platform, so the
//! same seed replays the same jitter and the same event ids. It is not cryptographic; it need not
//! be, since nothing it makes is a secret.

use alloc::string::String;
use core::time::Duration;

use crate::time::duration_micros;

/// A deterministic pseudo-random generator, seeded by the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator whose whole output is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        let mut next = || {
            sm = sm.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = sm;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    /// A generator for a sub-machine, derived from this one so that one seed fixes a whole tree.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// A uniform value in `[0, n)`; `0` when `n` is `0`.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Lemire's multiply-shift; the bias is below 2^-64 · n, far under anything observable.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A uniform value in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform duration in `[0, upper)`, at microsecond resolution.
    pub fn duration_below(&mut self, upper: Duration) -> Duration {
        Duration::from_micros(self.below(duration_micros(upper)))
    }

    /// A uniform duration in `[low, high]`, at microsecond resolution.
    pub fn duration_between(&mut self, low: Duration, high: Duration) -> Duration {
        if high <= low {
            return low;
        }
        let span = duration_micros(high - low);
        low.saturating_add(Duration::from_micros(self.below(span.saturating_add(1))))
    }

    /// A random RFC 4122 version 4 UUID in its hyphenated lower-case form.
    pub fn uuid_v4(&mut self) -> String {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
        bytes[8] = (bytes[8] & 0x3f) | 0x80; // variant 10xx
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(36);
        for (i, b) in bytes.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                out.push('-');
            }
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0x0f)] as char);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        extern crate alloc;
        use alloc::vec::Vec;
        let stream = |seed: u64| {
            let mut rng = Rng::new(seed);
            (0..100).map(|_| rng.next_u64()).collect::<Vec<_>>()
        };
        assert_eq!(stream(42), stream(42));
        for other in [0, 1, 41, 43, u64::MAX] {
            let (a, b) = (stream(42), stream(other));
            // Not one value in common at the same position, let alone the whole stream.
            assert!(a.iter().zip(&b).all(|(x, y)| x != y), "seed {other}");
        }
        // A fork is a stream of its own, and the same for the same parent.
        let (mut p1, mut p2) = (Rng::new(42), Rng::new(42));
        let (mut f1, mut f2) = (p1.fork(), p2.fork());
        assert_eq!(f1.next_u64(), f2.next_u64());
        assert_ne!(f1.next_u64(), p1.next_u64());
    }

    #[test]
    fn below_stays_in_range() {
        let mut rng = Rng::new(7);
        for n in [1u64, 2, 3, 10, 1_000_000, u64::MAX] {
            for _ in 0..200 {
                assert!(rng.below(n) < n);
            }
        }
        assert_eq!(rng.below(0), 0);
    }

    #[test]
    fn unit_is_half_open() {
        let mut rng = Rng::new(9);
        for _ in 0..10_000 {
            let u = rng.unit();
            assert!((0.0..1.0).contains(&u));
        }
    }

    #[test]
    fn uuid_is_rfc4122_v4() {
        let mut rng = Rng::new(3);
        for _ in 0..100 {
            let id = rng.uuid_v4();
            let b = id.as_bytes();
            assert_eq!(id.len(), 36);
            assert_eq!([b[8], b[13], b[18], b[23]], [b'-'; 4]);
            assert_eq!(b[14], b'4', "version nibble in {id}");
            assert!(
                matches!(b[19], b'8' | b'9' | b'a' | b'b'),
                "variant in {id}"
            );
            assert!(
                id.chars()
                    .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            );
        }
    }

    #[test]
    fn duration_between_is_inclusive_and_ordered() {
        let mut rng = Rng::new(5);
        let lo = Duration::from_millis(10);
        let hi = Duration::from_millis(20);
        for _ in 0..1000 {
            let d = rng.duration_between(lo, hi);
            assert!(d >= lo && d <= hi);
        }
        assert_eq!(rng.duration_between(hi, lo), hi);
    }
}
