#![no_main]
//! The coalescing law: for every document and every sequence of patches, applying the coalesced
//! form equals applying the patches one after another, and the form is at most two patches.
//! Checked for plain RFC 7396 patches and for worker-document patches under `DocumentSchema`.

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use tether_core::patch::{apply, coalesce, DocumentSchema};

/// A small key alphabet, so keys collide.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Key {
    A,
    B,
    C,
    D,
}

impl Key {
    fn name(self) -> &'static str {
        match self {
            Key::A => "a",
            Key::B => "b",
            Key::C => "c",
            Key::D => "d",
        }
    }
}

/// The worker document's top-level keys: two merge keys and two replaced ones.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum TopKey {
    Status,
    Tags,
    External,
    Internal,
}

impl TopKey {
    fn name(self) -> &'static str {
        match self {
            TopKey::Status => "worker_status",
            TopKey::Tags => "tags",
            TopKey::External => "external_metadata",
            TopKey::Internal => "internal_metadata",
        }
    }
}

#[derive(Arbitrary, Debug)]
enum J {
    Null,
    Bool(bool),
    Num(u8),
    Str(Key),
    Arr(Vec<J>),
    Obj(Vec<(Key, J)>),
}

impl J {
    /// Depth-capped, so a hostile input cannot build a tree deep enough to matter.
    fn value(&self, depth: u32) -> Value {
        match self {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Num(n) => Value::from(*n),
            J::Str(k) => Value::from(k.name()),
            J::Arr(items) if depth > 0 => {
                Value::Array(items.iter().take(4).map(|j| j.value(depth - 1)).collect())
            }
            J::Obj(members) if depth > 0 => Value::Object(
                members
                    .iter()
                    .take(6)
                    .map(|(k, j)| (k.name().to_owned(), j.value(depth - 1)))
                    .collect(),
            ),
            J::Arr(_) => Value::Array(Vec::new()),
            J::Obj(_) => Value::Object(Map::new()),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Case {
    document: J,
    patches: Vec<J>,
    worker_document: Vec<(TopKey, J)>,
    worker_patches: Vec<Vec<(TopKey, J)>>,
}

fn worker(members: &[(TopKey, J)]) -> Map<String, Value> {
    members
        .iter()
        .take(6)
        .map(|(k, j)| (k.name().to_owned(), j.value(4)))
        .collect()
}

fuzz_target!(|case: Case| {
    // RFC 7396.
    let document = case.document.value(5);
    let patches: Vec<Value> = case.patches.iter().take(16).map(|j| j.value(5)).collect();
    if let Some(form) = coalesce(patches.iter().cloned()) {
        let mut sequential = document.clone();
        for patch in &patches {
            apply(&mut sequential, patch);
        }
        let mut coalesced = document.clone();
        form.apply_to(&mut coalesced);
        assert_eq!(
            coalesced, sequential,
            "patches {patches:?} coalesced to {form:?}"
        );
        assert!(form.len() <= 2);
    }

    // The worker document.
    let schema = DocumentSchema::default();
    let document = Value::Object(worker(&case.worker_document));
    let patches: Vec<Map<String, Value>> = case
        .worker_patches
        .iter()
        .take(16)
        .map(|p| worker(p))
        .collect();
    let form = schema.coalesce(patches.iter().cloned());
    let mut sequential = document.clone();
    for patch in &patches {
        schema.apply(&mut sequential, patch);
    }
    let mut coalesced = document.clone();
    form.apply_to(&schema, &mut coalesced);
    assert_eq!(
        coalesced, sequential,
        "worker patches {patches:?} coalesced to {form:?}"
    );
    assert!(form.len() <= 2);
});
