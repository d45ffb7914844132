//! The merge-patch algebra against RFC 7396's own vectors (Appendix A), the project's composition
//! cases, and the coalescing law under arbitrary documents and patch sequences. The vectors and
//! cases live in `tests/data/` (see its README) and are compiled in.

use crate::common;

use common::{json, object, worker_patch};
use proptest::prelude::*;
use serde_json::{Map, Value};
use tether_core::patch::{DocumentSchema, apply, coalesce};

/// RFC 7396, Appendix A: the RFC's 15 example test cases.
const RFC7396_VECTORS: &str = include_str!("../data/rfc7396-vectors.json");
/// The project's merge-patch composition cases.
const COMPOSITION_CASES: &str = include_str!("../data/merge-patch-composition-cases.json");

fn load(name: &str, text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("tests/data/{name}: {e}"))
}

fn cases(data: &Value) -> &[Value] {
    data["cases"].as_array().expect("a `cases` array")
}

fn sequential(document: &Value, patches: &[Value]) -> Value {
    let mut doc = document.clone();
    for patch in patches {
        apply(&mut doc, patch);
    }
    doc
}

fn coalesced(document: &Value, patches: &[Value]) -> (Value, usize) {
    let form = coalesce(patches.iter().cloned()).expect("at least one patch");
    let mut doc = document.clone();
    form.apply_to(&mut doc);
    (doc, form.len())
}

#[test]
fn rfc7396_appendix_a_vectors() {
    let data = load("rfc7396-vectors.json", RFC7396_VECTORS);
    let cases = cases(&data);
    assert_eq!(cases.len(), 15, "RFC 7396 Appendix A has 15 examples");
    for case in cases {
        let mut doc = case["original"].clone();
        apply(&mut doc, &case["patch"]);
        assert_eq!(doc, case["result"], "{}", case["id"]);
        // A one-patch sequence coalesces to itself.
        let (doc, len) = coalesced(&case["original"], &[case["patch"].clone()]);
        assert_eq!(doc, case["result"], "coalesced {}", case["id"]);
        assert_eq!(len, 1, "{}", case["id"]);
    }
}

#[test]
fn composition_cases() {
    let data = load("merge-patch-composition-cases.json", COMPOSITION_CASES);
    let cases = cases(&data);
    assert!(
        cases.len() >= 11,
        "expected the 11 shipped cases, found {}",
        cases.len()
    );
    for case in cases {
        let id = &case["id"];
        let patches = [case["first"].clone(), case["second"].clone()];
        assert_eq!(
            sequential(&case["document"], &patches),
            case["sequential_result"],
            "{id}"
        );
        let (doc, len) = coalesced(&case["document"], &patches);
        assert_eq!(doc, case["sequential_result"], "coalesced {id}");
        assert!(len <= 2, "{id}");
    }
}

#[test]
fn composition_cases_hold_for_the_worker_schema_under_a_merge_key() {
    // Each object case, nested under `external_metadata`, is the same question for the worker
    // document.
    let schema = DocumentSchema::default();
    let data = load("merge-patch-composition-cases.json", COMPOSITION_CASES);
    let wrap = |v: &Value| {
        let mut m = Map::new();
        m.insert("external_metadata".into(), v.clone());
        m
    };
    for case in cases(&data) {
        let patches = [wrap(&case["first"]), wrap(&case["second"])];
        let document = Value::Object(wrap(&case["document"]));
        let mut expected = document.clone();
        for p in &patches {
            schema.apply(&mut expected, p);
        }
        let update = schema.coalesce(patches.iter().cloned());
        let mut got = document.clone();
        update.apply_to(&schema, &mut got);
        assert_eq!(got, expected, "{}", case["id"]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn coalescing_law(document in json(4), patches in prop::collection::vec(json(4), 1..=8)) {
        let (got, len) = coalesced(&document, &patches);
        prop_assert_eq!(got, sequential(&document, &patches));
        prop_assert!(len <= 2);
    }

    #[test]
    fn coalescing_law_for_object_patches(
        document in json(4),
        patches in prop::collection::vec(object(4).prop_map(Value::Object), 1..=8),
    ) {
        let (got, len) = coalesced(&document, &patches);
        prop_assert_eq!(got, sequential(&document, &patches));
        prop_assert!(len <= 2);
    }

    #[test]
    fn coalescing_law_for_the_worker_schema(
        document in worker_patch().prop_map(Value::Object),
        patches in prop::collection::vec(worker_patch(), 1..=8),
        custom in any::<bool>(),
    ) {
        let schema = if custom {
            DocumentSchema::new(["tags", "external_metadata"])
        } else {
            DocumentSchema::default()
        };
        let mut expected = document.clone();
        for p in &patches {
            schema.apply(&mut expected, p);
        }
        let update = schema.coalesce(patches.iter().cloned());
        prop_assert!(update.len() <= 2);
        let mut got = document.clone();
        update.apply_to(&schema, &mut got);
        prop_assert_eq!(&got, &expected);
        // `apply_owned` is `apply`.
        let mut owned = document.clone();
        for p in patches.iter().cloned() {
            schema.apply_owned(&mut owned, p);
        }
        prop_assert_eq!(owned, expected);
    }

    #[test]
    fn noop_detection_is_exact(document in json(3), patch in json(3)) {
        let mut after = document.clone();
        apply(&mut after, &patch);
        prop_assert_eq!(tether_core::patch::is_noop(&document, &patch), after == document);
    }

    #[test]
    fn worker_noop_detection_is_exact(document in worker_patch().prop_map(Value::Object), patch in worker_patch()) {
        let schema = DocumentSchema::default();
        let mut after = document.clone();
        schema.apply(&mut after, &patch);
        prop_assert_eq!(schema.is_noop(&document, &patch), after == document);
    }
}
