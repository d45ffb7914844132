//! Thread sync in the simulator (docs/ARCHITECTURE.md §Thread sync): the server's side of the protocol,
//! and runs of several [`ThreadSync`](tether_core::thread::ThreadSync) clients editing the same
//! threads through faults and partitions, with the invariants checked after quiescence.

mod run;
pub mod store;

pub use run::{Scenario, ThreadFaults, ThreadReport, ThreadRunConfig, ThreadStats, run_threads};
pub use store::ThreadStore;
