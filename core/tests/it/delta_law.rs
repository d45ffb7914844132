//! The delta coalescer's law, by proptest: every merged event carries exactly the concatenation
//! of its deltas' texts, in order, with the other fields of the last; every delta is merged
//! exactly once; no delta crosses a non-delta event (a `release_all`); the byte bound and the
//! window hold.

use core::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};
use tether_core::batch::{DeltaCoalescer, DeltaConfig, Merged};
use tether_core::{Instant, Poll};

#[derive(Clone, Debug)]
enum Op {
    /// A delta of key `k` with this text.
    Delta(u8, String),
    /// A non-delta event of the same stream: the session releases everything first.
    Other,
    /// Time passes by this many milliseconds.
    Advance(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..3, "[a-zé ]{0,6}").prop_map(|(k, t)| Op::Delta(k, t)),
        1 => Just(Op::Other),
        2 => (0u16..250).prop_map(Op::Advance),
    ]
}

fn drain(c: &mut DeltaCoalescer, out: &mut Vec<Merged>) -> Option<Instant> {
    loop {
        match c.poll_output() {
            Poll::Output(m) => out.push(m),
            Poll::Timeout(w) => return w.map(|w| w.at),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn merged_events_are_exactly_their_deltas_in_order(
        ops in proptest::collection::vec(op(), 0..120),
        window in 0u64..200,
        max_bytes in 1usize..24,
        max_keys in 1usize..4,
    ) {
        let config = DeltaConfig {
            window: Duration::from_millis(window),
            max_bytes,
            max_keys,
            ..DeltaConfig::default()
        };
        let mut c = DeltaCoalescer::new(config).unwrap();
        let mut now = Instant::ZERO;
        // Inputs: (index, key, text); outputs in order, with a marker per non-delta event.
        let mut inputs: Vec<(u64, String, String)> = Vec::new();
        let mut out: Vec<Merged> = Vec::new();
        // Output position of each non-delta event, and how many deltas came before it.
        let mut markers: Vec<(usize, usize)> = Vec::new();
        for op in ops {
            match op {
                Op::Delta(k, text) => {
                    let key = format!("k{k}");
                    let i = inputs.len() as u64;
                    c.push(now, key.clone(), json!({"i": i, "text": text, "k": key})).unwrap();
                    inputs.push((i, key, text));
                }
                Op::Other => {
                    c.release_all();
                    drain(&mut c, &mut out);
                    markers.push((out.len(), inputs.len()));
                }
                Op::Advance(ms) => {
                    now = now.saturating_add(Duration::from_millis(u64::from(ms)));
                    c.handle_timeout(now);
                }
            }
            let wake = drain(&mut c, &mut out);
            // The window holds: nothing buffered is due.
            prop_assert!(wake.is_none_or(|at| at > now), "due at {wake:?}, now {now}");
        }
        c.release_all();
        drain(&mut c, &mut out);
        prop_assert!(c.is_empty());

        // Replay the outputs against the inputs, per key.
        let mut next_of_key: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
        for (pos, (_, key, _)) in inputs.iter().enumerate() {
            next_of_key.entry(key.clone()).or_default().push(pos);
        }
        let mut cursor: std::collections::BTreeMap<String, usize> = Default::default();
        // covered[pos] = index into `out` of the merged event that carries input `pos`.
        let mut covered = vec![usize::MAX; inputs.len()];
        for (o, merged) in out.iter().enumerate() {
            let positions = &next_of_key[&merged.key];
            let start = *cursor.get(&merged.key).unwrap_or(&0);
            let end = start + merged.deltas as usize;
            prop_assert!(end <= positions.len());
            let mine = &positions[start..end];
            cursor.insert(merged.key.clone(), end);
            let text: String = mine.iter().map(|&p| inputs[p].2.as_str()).collect();
            let last = *mine.last().unwrap();
            prop_assert_eq!(&merged.payload["text"], &Value::String(text.clone()));
            prop_assert_eq!(&merged.payload["i"], &json!(inputs[last].0));
            prop_assert_eq!(&merged.payload["k"], &json!(merged.key));
            prop_assert!(merged.deltas == 1 || text.len() <= max_bytes);
            for &p in mine {
                covered[p] = o;
            }
        }
        // Every delta is merged exactly once.
        prop_assert!(covered.iter().all(|&o| o != usize::MAX));
        for (key, positions) in &next_of_key {
            prop_assert_eq!(cursor.get(key).copied().unwrap_or(0), positions.len());
        }
        // Merged events come out in the order of their first deltas.
        let firsts: Vec<usize> = (0..out.len())
            .map(|o| covered.iter().position(|&c| c == o).unwrap())
            .collect();
        prop_assert!(firsts.windows(2).all(|w| w[0] < w[1]));
        // No delta crosses a non-delta event: the deltas given before it are out before it,
        // and none given after it.
        for (out_len, inputs_before) in markers {
            for (p, &o) in covered.iter().enumerate() {
                prop_assert_eq!(p < inputs_before, o < out_len);
            }
        }
    }
}

#[test]
fn a_delta_without_text_is_refused_and_handed_back() {
    let mut c = DeltaCoalescer::new(DeltaConfig::default()).unwrap();
    for bad in [
        json!("text"),
        json!({"text": 3}),
        json!({"other": "x"}),
        json!([1]),
    ] {
        let err = c.push(Instant::ZERO, "k", bad.clone()).unwrap_err();
        assert!(
            matches!(err, tether_core::batch::DeltaError::NoText { payload, .. } if payload == bad)
        );
    }
    assert!(c.is_empty());
    let nested = DeltaConfig {
        text_pointer: "/delta/text".into(),
        ..DeltaConfig::default()
    };
    let mut c = DeltaCoalescer::new(nested).unwrap();
    c.push(
        Instant::ZERO,
        "b",
        json!({"delta": {"text": "a"}, "index": 0}),
    )
    .unwrap();
    c.push(
        Instant::ZERO,
        "b",
        json!({"delta": {"text": "b"}, "index": 1}),
    )
    .unwrap();
    c.release_all();
    let Poll::Output(m) = c.poll_output() else {
        panic!()
    };
    assert_eq!(m.payload, json!({"delta": {"text": "ab"}, "index": 1}));
}
