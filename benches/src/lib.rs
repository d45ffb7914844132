//! Criterion benchmarks of tether's machines; see `benches/README.md` for the numbers.
#![forbid(unsafe_code)]
