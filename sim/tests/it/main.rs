//! The crate's integration tests, linked as one binary (each file below was its own binary;
//! one link per crate builds much faster).

mod fleet;
mod outbox_crash;
mod sim_sweep;
mod sim_timeline;
mod threads;
mod world_scenarios;
