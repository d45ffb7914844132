//! RFC 7396 merge patches and their lawful coalescing (docs/ARCHITECTURE.md §State uploader).
//!
//! - [`apply`]: RFC 7396 itself.
//! - [`Coalesced`] / [`coalesce`]: a sequence of merge patches as at most two, with the same
//!   effect on every document.
//! - [`DocumentSchema`]: the worker document's semantics (merge keys vs replaced keys), and
//!   [`WorkerUpdate`], the lawful coalesced form under it.

mod coalesce;
mod document;
mod merge;
mod update;

pub use coalesce::{Coalesced, coalesce, is_noop};
pub use document::DocumentSchema;
pub use merge::apply;
pub use update::WorkerUpdate;
