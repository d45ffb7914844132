//! Thread sync in the simulator (docs/ARCHITECTURE.md §Thread sync): runs of several
//! [`ThreadSync`](tether_core::thread::ThreadSync) clients editing the same threads through faults
//! and partitions, with the invariants checked after quiescence. The server's side is
//! [`tether_model`]'s [`ThreadStore`], re-exported here.

mod run;

pub use run::{Scenario, ThreadFaults, ThreadReport, ThreadRunConfig, ThreadStats, run_threads};
pub use tether_model::ThreadStore;
