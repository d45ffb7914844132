//! The typed fast path gives exactly what the `Value` path gives, and bad input stays a typed
//! error: `enqueue_serialize` against `enqueue(Event::from_serialize(..))` on twin drainers.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde::Serialize;
use serde_json::{Value, json};
use tether_core::batch::{self, BatchDrainer, Config, Event, Output};
use tether_core::{Instant, Poll, Rng};

fn twins() -> (BatchDrainer, BatchDrainer) {
    let make = || {
        let mut d = BatchDrainer::new(Config::default(), Rng::new(9)).unwrap();
        d.set_epoch(Instant::ZERO, 1);
        d
    };
    (make(), make())
}

/// The first batch body a drainer sends.
fn body(d: &mut BatchDrainer) -> Vec<u8> {
    for _ in 0..100 {
        match d.poll_output() {
            Poll::Output(Output::Send { body, .. }) => return body,
            Poll::Output(_) => {}
            Poll::Timeout(_) => break,
        }
    }
    panic!("no batch was sent")
}

fn same_as_value_path<T: Serialize>(value: &T) {
    let (mut typed, mut valued) = twins();
    let a = typed.enqueue_serialize(Instant::ZERO, value);
    let b = Event::from_serialize(value).and_then(|e| valued.enqueue(Instant::ZERO, e));
    match (a, b) {
        (Ok(_), Ok(_)) => assert_eq!(
            String::from_utf8(body(&mut typed)).unwrap(),
            String::from_utf8(body(&mut valued)).unwrap()
        ),
        (Err(a), Err(b)) => assert_eq!(
            core::mem::discriminant(&a),
            core::mem::discriminant(&b),
            "{a} vs {b}"
        ),
        (a, b) => panic!("typed {a:?} vs value {b:?}"),
    }
}

#[derive(Serialize)]
struct Line<'a> {
    kind: &'a str,
    seq: u64,
    text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    uuid: Option<String>,
}

#[derive(Serialize)]
#[serde(transparent)]
struct Wrapped(BTreeMap<String, Value>);

#[derive(Serialize)]
enum Shape {
    Unit,
    Struct { a: u8 },
}

#[test]
fn structs_maps_and_odd_shapes_match_the_value_path() {
    let text = "x".repeat(100);
    same_as_value_path(&Line {
        kind: "line",
        seq: 1,
        text: text.clone(),
        uuid: None,
    });
    same_as_value_path(&Line {
        kind: "line",
        seq: 2,
        text,
        uuid: Some("given".into()),
    });
    same_as_value_path(&json!({"a": 1, "uuid": "u-1"}));
    same_as_value_path(&json!({"a": 1}));
    same_as_value_path(&json!({}));
    same_as_value_path(&json!({"uuid": 7, "b": [1, 2]})); // a non-string uuid is overwritten
    same_as_value_path(&json!({"uuid": null}));
    same_as_value_path(&Wrapped(BTreeMap::from([("k".into(), json!({"uuid": 1}))])));
    same_as_value_path(&Some(json!({"a": 1})));
    same_as_value_path(&Shape::Struct { a: 1 });
    // Not objects: the same typed error.
    same_as_value_path(&json!([1, 2]));
    same_as_value_path(&3);
    same_as_value_path(&Shape::Unit);
    same_as_value_path(&BTreeMap::from([((1, 2), 3)])); // keys JSON cannot express
}

#[test]
fn a_value_that_cannot_serialise_is_a_typed_error() {
    let (mut typed, _) = twins();
    let err = typed
        .enqueue_serialize(Instant::ZERO, &BTreeMap::from([((1, 2), 3)]))
        .unwrap_err();
    assert!(matches!(err, batch::Error::Unserializable { .. }), "{err}");
}

#[test]
fn a_keyed_event_nested_too_deep_to_read_back_is_a_typed_error() {
    let mut d = BatchDrainer::new(Config::default(), Rng::new(1)).unwrap();
    // Deeper than serde_json reads back (128 levels), so it cannot be re-stamped.
    let deep: Value = (0..200).fold(json!(1), |inner, _| json!({"n": inner}));
    let first = Event::new(json!({"a": 1})).replace_key("k");
    d.enqueue(Instant::ZERO, first).unwrap();
    let mut deep_event = Event::new(deep).replace_key("k");
    // Prepared with another uuid, so that replacing the queued event must re-stamp it.
    deep_event = Event::new(match deep_event.into_payload() {
        Value::Object(mut m) => {
            m.insert("uuid".into(), json!("other"));
            Value::Object(m)
        }
        _ => unreachable!(),
    })
    .replace_key("k");
    let prepared = BatchDrainer::new(Config::default(), Rng::new(2))
        .unwrap()
        .prepare(deep_event)
        .unwrap();
    let err = d
        .enqueue_prepared(Instant::ZERO, prepared.clone())
        .unwrap_err();
    match err {
        batch::Error::Unreadable { event, .. } => assert_eq!(event, prepared),
        other => panic!("{other:?}"),
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z\u{e9}\"\\\\]{0,6}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("(uuid|[a-c])", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn any_json_value_gives_the_same_item_and_uuid(value in json_value()) {
        same_as_value_path(&value);
    }
}
