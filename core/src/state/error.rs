//! The state uploader's caller-misuse and bad-input errors.

use core::fmt;

/// Why the state uploader refused a call. Returned at once; nothing was queued.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A patch (or a rebase document) must be a JSON object.
    NotAnObject {
        /// The JSON type that was given: `"null"`, `"array"`, `"string"`, ...
        found: &'static str,
    },
    /// The patch sets a top-level key the uploader owns (`worker_epoch`).
    ReservedKey {
        /// The key.
        key: &'static str,
    },
    /// The patch's compact JSON is over the configured limit.
    TooLarge {
        /// The limit in bytes ([`Config::max_patch_bytes`](super::Config::max_patch_bytes)).
        limit: usize,
    },
    /// The uploader was closed.
    Closed,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotAnObject { found } => {
                write!(f, "a worker patch must be a JSON object, not {found}")
            }
            Error::ReservedKey { key } => {
                write!(f, "the key `{key}` is reserved: the uploader sets it")
            }
            Error::TooLarge { limit } => {
                write!(f, "the patch is larger than the {limit}-byte limit")
            }
            Error::Closed => f.write_str("the state uploader is closed"),
        }
    }
}

impl core::error::Error for Error {}
