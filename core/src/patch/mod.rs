//! RFC 7396 merge patches and their lawful coalescing (DESIGN.md §State uploader).

mod document;
mod merge;

pub use document::DocumentSchema;
pub use merge::apply;
