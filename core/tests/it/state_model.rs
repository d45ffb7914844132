//! The state uploader against a server model, under arbitrary patches and outcomes.
//!
//! The server model applies every acknowledged body with `DocumentSchema::apply`. Once
//! everything has landed, its document must equal the sequential application of every patch
//! that was not rejected (plus any resets of a rejected update that the server had already
//! acknowledged), and the uploader's optimistic view must equal it. At no point may two PUTs be
//! in flight, and the same seed and inputs must give the same outputs.

use crate::common;

use core::time::Duration;

use common::{Sim, put, worker_patch};
use proptest::prelude::*;
use serde_json::{Map, Value};
use tether_core::Instant;
use tether_core::patch::DocumentSchema;
use tether_core::state::{self, Output, PutId};
use tether_core::{Outcome, TransientCause};

#[derive(Clone, Debug)]
enum Op {
    Patch(Map<String, Value>),
    /// Gives the last patch again: often a no-op against the view, which must still survive the
    /// rejection of the update that made it one.
    Repeat,
    /// Answers the PUT in flight, if any; otherwise answers a made-up id, which must be ignored.
    Answer(Answer),
    /// Jumps to the next wake-up (a retry, or a request deadline).
    Advance,
    /// Moves the clock a little and sends a (probably early) timeout.
    Tick(u16),
    SetEpoch,
}

#[derive(Clone, Copy, Debug)]
enum Answer {
    Success,
    Transient,
    Throttled(u16),
    Permanent(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => worker_patch().prop_map(Op::Patch),
        2 => Just(Op::Repeat),
        4 => prop_oneof![
            4 => Just(Answer::Success),
            2 => Just(Answer::Transient),
            1 => (0u16..5000).prop_map(Answer::Throttled),
            1 => (400u16..500).prop_map(Answer::Permanent),
        ]
        .prop_map(Op::Answer),
        2 => Just(Op::Advance),
        1 => (0u16..2000).prop_map(Op::Tick),
        1 => Just(Op::SetEpoch),
    ]
}

struct World {
    sim: Sim,
    server: Value,
    patches: Vec<Map<String, Value>>,
    /// The PUT in flight according to the outputs seen so far, and its body.
    outstanding: Option<(PutId, Map<String, Value>)>,
    epoch: u64,
}

impl World {
    fn new(seed: u64, base: Map<String, Value>) -> Self {
        let mut sim = Sim::new(state::Config::default(), seed);
        sim.input("rebase", |up, now| {
            up.rebase(now, Value::Object(base.clone())).unwrap()
        });
        World {
            sim,
            server: Value::Object(base),
            patches: Vec::new(),
            outstanding: None,
            epoch: 0,
        }
    }

    fn observe(&mut self, outputs: Vec<Output>) {
        for output in outputs {
            if let Some((id, body)) = put(&output) {
                assert!(
                    self.outstanding.is_none(),
                    "{id} sent while {:?} is in flight",
                    self.outstanding.as_ref().map(|o| o.0)
                );
                assert_eq!(body.get("worker_epoch"), Some(&Value::from(self.epoch)));
                self.outstanding = Some((id, body));
            } else if let Output::Cancel { id } = output {
                assert_eq!(self.outstanding.take().map(|o| o.0), Some(id));
            }
        }
        assert_eq!(
            self.outstanding.as_ref().map(|o| o.0),
            self.sim.up().in_flight()
        );
    }

    fn answer(&mut self, answer: Answer) {
        let Some((id, body)) = self.outstanding.take() else {
            let (_, outputs) = self.sim.input("stale answer", |up, now| {
                up.handle_outcome(now, PutId(1_000_000), Outcome::Success)
            });
            assert!(outputs.is_empty(), "an unknown id must be ignored");
            return;
        };
        let outcome = match answer {
            Answer::Success => {
                DocumentSchema::default().apply(&mut self.server, &body);
                Outcome::Success
            }
            Answer::Transient => Outcome::Transient(TransientCause::Transport),
            Answer::Throttled(ms) => Outcome::Throttled(Duration::from_millis(u64::from(ms))),
            Answer::Permanent(status) => Outcome::Permanent(status),
        };
        let (_, outputs) = self
            .sim
            .input("answer", |up, now| up.handle_outcome(now, id, outcome));
        self.observe(outputs);
    }

    fn step(&mut self, op: Op) {
        match op {
            Op::Patch(patch) => {
                let (seq, outputs) = self
                    .sim
                    .input("enqueue", |up, now| up.enqueue_map(now, patch.clone()));
                assert_eq!(seq, Ok(self.patches.len() as u64));
                self.patches.push(patch);
                self.observe(outputs);
            }
            Op::Repeat => {
                if let Some(last) = self.patches.last().cloned() {
                    self.step(Op::Patch(last));
                }
            }
            Op::Answer(answer) => self.answer(answer),
            Op::Advance => {
                if let Some(outputs) = self.sim.advance() {
                    self.observe(outputs);
                }
            }
            Op::Tick(ms) => {
                let at = self.sim.now() + Duration::from_millis(u64::from(ms));
                let outputs = self.sim.driven.advance_to(at).expect("livelock");
                self.observe(outputs);
            }
            Op::SetEpoch => {
                self.epoch += 1;
                let epoch = self.epoch;
                let (_, outputs) = self.sim.input("epoch", |up, now| up.set_epoch(now, epoch));
                self.observe(outputs);
            }
        }
    }

    /// Lets everything land: answers success and follows timers, boundedly.
    fn settle(&mut self) {
        if self.sim.up().epoch().is_none() {
            self.step(Op::SetEpoch);
        }
        for _ in 0..100 {
            if self.outstanding.is_some() {
                self.answer(Answer::Success);
            } else if self.sim.driven.next_wake().is_some() {
                self.step(Op::Advance);
            } else {
                break;
            }
        }
        assert!(self.sim.up().is_idle(), "did not settle");
    }

    /// Sequential application of every patch not rejected, with the resets that landed.
    fn expected(&self, base: &Map<String, Value>) -> Value {
        let schema = DocumentSchema::default();
        let rejections: Vec<_> = self
            .sim
            .outputs
            .iter()
            .filter_map(|o| match o {
                Output::Rejected(r) => Some(r.clone()),
                _ => None,
            })
            .collect();
        let mut doc = Value::Object(base.clone());
        for (seq, patch) in self.patches.iter().enumerate() {
            let seq = seq as u64;
            match rejections.iter().find(|r| r.patches.contains(&seq)) {
                Some(r) => {
                    if r.patches.start == seq {
                        if let Some(resets) = &r.applied_resets {
                            schema.apply(&mut doc, resets);
                        }
                    }
                }
                None => schema.apply(&mut doc, patch),
            }
        }
        doc
    }
}

fn without_epoch(doc: &Value) -> Value {
    let mut doc = doc.clone();
    if let Value::Object(m) = &mut doc {
        m.remove("worker_epoch");
    }
    doc
}

fn run(seed: u64, base: &Map<String, Value>, ops: &[Op]) -> World {
    let mut world = World::new(seed, base.clone());
    for op in ops {
        world.step(op.clone());
    }
    world.settle();
    world
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn converges_to_the_sequential_result(
        seed in any::<u64>(),
        base in worker_patch(),
        early_epoch in any::<bool>(),
        ops in prop::collection::vec(op(), 0..40),
    ) {
        let ops: Vec<Op> = early_epoch.then_some(Op::SetEpoch).into_iter().chain(ops).collect();
        // The base is a document: no nulls at the top.
        let base: Map<String, Value> = base.into_iter().filter(|(_, v)| !v.is_null()).collect();
        let world = run(seed, &base, &ops);
        let server = without_epoch(&world.server);
        prop_assert_eq!(&server, &world.expected(&base));
        prop_assert_eq!(world.sim.up().view(), &server);
        prop_assert_eq!(world.sim.up().acknowledged(), &server);
        let c = world.sim.up().counters();
        prop_assert_eq!(c.patches, world.patches.len() as u64);
        prop_assert!(c.puts_acknowledged <= c.puts_sent);

        // Same seed and inputs: byte-identical outputs.
        let again = run(seed, &base, &ops);
        prop_assert_eq!(&again.sim.outputs, &world.sim.outputs);
        prop_assert_eq!(again.sim.trace(), world.sim.trace());
    }
}

#[test]
fn a_long_failure_episode_still_converges() {
    let base = Map::new();
    let mut ops = vec![Op::SetEpoch];
    for i in 0..30 {
        let patch = serde_json::json!({"external_metadata": {format!("k{}", i % 4): i}});
        ops.push(Op::Patch(patch.as_object().unwrap().clone()));
        ops.push(Op::Answer(Answer::Transient));
        ops.push(Op::Advance);
    }
    let world = run(5, &base, &ops);
    assert_eq!(without_epoch(&world.server), world.expected(&base));
    assert!(world.sim.up().counters().retries >= 20);
    assert!(world.sim.now() > Instant::from_secs(60));
}
