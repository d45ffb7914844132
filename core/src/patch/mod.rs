//! RFC 7396 merge patches and their lawful coalescing (DESIGN.md §State uploader).

mod merge;

pub use merge::apply;
