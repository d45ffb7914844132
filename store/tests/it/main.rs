//! The crate's integration tests, linked as one binary (each file below was its own binary;
//! one link per crate builds much faster).

mod store;
