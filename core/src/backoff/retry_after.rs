//! `Retry-After` parsing.
