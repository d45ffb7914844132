//! Strategies shared by the integration tests.
#![allow(dead_code)]

use proptest::prelude::*;
use serde_json::{Map, Value};

/// Small key alphabet so keys collide; nulls, arrays, scalars and empty objects everywhere.
pub fn key() -> impl Strategy<Value = String> {
    prop_oneof![Just("a"), Just("b"), Just("c"), Just("d")].prop_map(String::from)
}

pub fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => Just(Value::Null),
        2 => (0i64..3).prop_map(Value::from),
        1 => Just(Value::from("s")),
        1 => Just(Value::Bool(true)),
        1 => (0i64..2).prop_map(|n| Value::Array(vec![Value::from(n)])),
        1 => Just(Value::Array(vec![])),
        2 => Just(Value::Object(Map::new())),
    ]
}

/// JSON values nested up to depth 4.
pub fn json(depth: u32) -> BoxedStrategy<Value> {
    if depth == 0 {
        return leaf().boxed();
    }
    prop_oneof![
        2 => leaf(),
        3 => prop::collection::btree_map(key(), json(depth - 1), 0..4)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
    ]
    .boxed()
}

pub fn object(depth: u32) -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(key(), json(depth - 1), 0..4).prop_map(|m| m.into_iter().collect())
}

/// A worker patch (or document): plain keys and the two merge keys, with a small inner alphabet.
pub fn worker_patch() -> impl Strategy<Value = Map<String, Value>> {
    let top = prop_oneof![
        Just("worker_status"),
        Just("tags"),
        Just("external_metadata"),
        Just("internal_metadata"),
    ]
    .prop_map(String::from);
    prop::collection::btree_map(top, json(3), 0..4).prop_map(|m| m.into_iter().collect())
}

use tether_core::state::{self, Output, StateUploader};
use tether_core::{Driven, Instant, Rng};

/// A state uploader on a simulated clock that records a one-line-per-event trace: the core's
/// bounded [`Driven`] with the trace format of the snapshots.
pub struct Sim {
    pub driven: Driven<StateUploader>,
    pub outputs: Vec<Output>,
}

impl Sim {
    pub fn new(config: state::Config, seed: u64) -> Self {
        let up = StateUploader::new(config, Rng::new(seed));
        Sim {
            driven: Driven::new(up, Instant::ZERO).with_log(describe),
            outputs: Vec::new(),
        }
    }

    pub fn now(&self) -> Instant {
        self.driven.now()
    }

    pub fn up(&self) -> &StateUploader {
        self.driven.machine()
    }

    pub fn trace(&self) -> &[String] {
        self.driven.log()
    }

    /// Runs one mutation at the current time, logs it, and drains the outputs it caused.
    pub fn input<R>(
        &mut self,
        what: &str,
        f: impl FnOnce(&mut StateUploader, Instant) -> R,
    ) -> (R, Vec<Output>) {
        self.driven.note(format_args!("{what}"));
        let (r, new) = self.driven.call(f).expect("the uploader livelocked");
        self.outputs.extend(new.iter().cloned());
        (r, new)
    }

    /// Moves the clock to `at` without waking the machine.
    pub fn set_time(&mut self, at: Instant) {
        self.driven.set_time(at);
    }

    /// Jumps to the next wake-up, if any, and handles it. Returns the outputs, or `None` if
    /// nothing was scheduled.
    pub fn advance(&mut self) -> Option<Vec<Output>> {
        let new = self.driven.advance().expect("the uploader livelocked")?;
        self.outputs.extend(new.iter().cloned());
        Some(new)
    }

    pub fn drain(&mut self) -> Vec<Output> {
        let new = self.driven.drain().expect("the uploader livelocked");
        self.outputs.extend(new.iter().cloned());
        new
    }
}

pub fn describe(output: &Output) -> String {
    match output {
        Output::Send { id, body } => format!("PUT {id} {}", String::from_utf8_lossy(body)),
        Output::Cancel { id } => format!("cancel {id} (request timeout)"),
        Output::Retrying { attempt, delay, at } => {
            format!(
                "retry #{attempt} after {:.3}s, at {at}",
                delay.as_secs_f64()
            )
        }
        Output::Rejected(r) => format!(
            "rejected {} ({}): patches {:?}, update {}, applied resets {}",
            r.id,
            r.status,
            r.patches,
            Value::from(
                r.update
                    .iter()
                    .cloned()
                    .map(Value::Object)
                    .collect::<Vec<_>>()
            ),
            r.applied_resets
                .clone()
                .map_or("none".to_string(), |m| Value::Object(m).to_string()),
        ),
        Output::FlushDone(_) => "flush: drained".to_string(),
        Output::FlushTimedOut(_) => "flush: deadline reached".to_string(),
        Output::Closed(u) => format!(
            "closed: unacknowledged patches {:?}, update {}, in flight {:?}",
            u.patches,
            Value::from(
                u.update
                    .iter()
                    .cloned()
                    .map(Value::Object)
                    .collect::<Vec<_>>()
            ),
            u.in_flight.map(|id| id.to_string()),
        ),
        other => format!("{other:?}"),
    }
}

/// The `id` and body (as an object) of a `Put`.
pub fn put(output: &Output) -> Option<(tether_core::state::PutId, Map<String, Value>)> {
    match output {
        Output::Send { id, body } => match serde_json::from_slice(body) {
            Ok(Value::Object(m)) => Some((*id, m)),
            _ => panic!(
                "body is not a JSON object: {}",
                String::from_utf8_lossy(body)
            ),
        },
        _ => None,
    }
}

pub fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}
