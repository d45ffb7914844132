//! The crate's integration tests, linked as one binary (each file below was its own binary;
//! one link per crate builds much faster).

mod backoff;
mod batch_behaviour;
mod batch_props;
mod batch_support;
mod caller_input;
mod coalesce_law;
mod common;
mod delta_law;
mod heartbeat;
mod maybe_delivered;
mod retry_budget;
mod session;
mod session_deltas;
mod session_hold;
mod state_lost_response;
mod state_model;
mod state_trace;
mod state_uploader;
mod thread_control;
mod thread_machines;
mod thread_merge_laws;
mod thread_sync;
mod typed_path;
