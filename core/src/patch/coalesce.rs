//! Lawful coalescing of RFC 7396 merge patches.
//!
//! Merging patch `b` into patch `a` key by key (what most libraries do) is not lawful: after
//! `{"a": null}` then `{"a": {"b": 1}}` the key `a` must hold exactly `{"b": 1}`, but the merged
//! patch `{"a": {"b": 1}}` would merge into whatever object the document already had there.
//! One merge patch cannot say "replace this key by exactly this object", so the coalesced form
//! is at most two patches: first the *resets* (a `null` at every path whose old value must be
//! discarded), then the *patch*. Composing any number of patches never needs more than two.
//!
//! Internally every path of the pending form has one of three effects:
//!
//! | effect | meaning | encoded as |
//! |---|---|---|
//! | identity | untouched | key absent from both patches |
//! | `Const(v)` | becomes exactly `v` (or is deleted when `v` is `null`) | `v` in `patch`; for an object `v` also `null` in `resets` |
//! | `Merge(m)` | becomes an object, and each child gets its effect | an object in `patch` (and in `resets` if a child needs one) |
//!
//! Composition: `x ; Const(c) = Const(c)`, `Const(c) ; Merge(m) = Const(apply(c, m))`, and
//! `Merge(m1) ; Merge(m2)` composes key by key. Everything is done in place, moving the new
//! patch's values into the pending form; nothing is cloned per patch.

use alloc::string::String;
use alloc::vec::Vec;

use serde_json::{Map, Value};

use super::apply;

/// The coalesced form of a sequence of RFC 7396 merge patches: at most two patches that, applied
/// in order, have the same effect on every document as the whole sequence.
///
/// ```
/// use serde_json::json;
/// use tether_core::patch::{apply, Coalesced};
///
/// let mut pending = Coalesced::new(json!({"a": null}));
/// pending.push(json!({"a": {"b": 1}}));
/// // `a` must become exactly {"b": 1}: the resets clear it first.
/// assert_eq!(pending.resets(), Some(&json!({"a": null})));
/// assert_eq!(pending.patch(), &json!({"a": {"b": 1}}));
///
/// let mut doc = json!({"a": {"c": 2}});
/// pending.apply_to(&mut doc);
/// assert_eq!(doc, json!({"a": {"b": 1}}));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coalesced {
    /// `None`; `Some(Null)` when the whole document is reset (then `patch` is an object free of
    /// nulls); or `Some(non-empty object)` with `null` at each reset path (then `patch` is an
    /// object holding an object at each of those paths).
    resets: Option<Value>,
    patch: Value,
}

impl Coalesced {
    /// The form of the one-patch sequence `[first]`.
    pub fn new(first: Value) -> Self {
        Coalesced {
            resets: None,
            patch: first,
        }
    }

    /// Composes `next` after everything already coalesced, in place.
    pub fn push(&mut self, next: Value) {
        let Value::Object(next) = next else {
            // A non-object patch replaces the whole document, whatever came before.
            self.resets = None;
            self.patch = next;
            return;
        };
        match &mut self.patch {
            Value::Object(pending) => {
                if matches!(self.resets, Some(Value::Null)) {
                    // The whole document is already a constant: fold the patch into it.
                    merge_map_owned(pending, next);
                    return;
                }
                let mut resets = match self.resets.take() {
                    Some(Value::Object(resets)) => resets,
                    _ => Map::new(),
                };
                compose_map(pending, &mut resets, next, &|_| true);
                self.resets = (!resets.is_empty()).then_some(Value::Object(resets));
            }
            constant => {
                // `Const(c) ; Merge(m)` is the constant `apply({}, m)`; only a reset of the whole
                // document can express it.
                *constant = Value::Object(stripped(next));
                self.resets = Some(Value::Null);
            }
        }
    }

    /// The resets to apply first, if the form needs two patches.
    pub fn resets(&self) -> Option<&Value> {
        self.resets.as_ref()
    }

    /// The patch to apply (after the resets, if any).
    pub fn patch(&self) -> &Value {
        &self.patch
    }

    /// How many patches the form is: 1 or 2.
    pub fn len(&self) -> usize {
        1 + usize::from(self.resets.is_some())
    }

    /// Always `false`: a form holds at least one patch. (For clippy's `len_without_is_empty`.)
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The patches in the order they must be applied.
    pub fn patches(&self) -> impl Iterator<Item = &Value> {
        self.resets.iter().chain(core::iter::once(&self.patch))
    }

    /// The patches in the order they must be applied, by value.
    pub fn into_patches(self) -> Vec<Value> {
        self.resets
            .into_iter()
            .chain(core::iter::once(self.patch))
            .collect()
    }

    /// Applies the form to `document`: the same result as applying every coalesced patch in turn.
    pub fn apply_to(&self, document: &mut Value) {
        for patch in self.patches() {
            apply(document, patch);
        }
    }
}

/// Coalesces `patches` into their smallest equivalent form; `None` for an empty sequence.
///
/// ```
/// use serde_json::json;
/// let form = tether_core::patch::coalesce([json!({"a": 1}), json!({"a": null, "b": 2})]).unwrap();
/// assert_eq!(form.len(), 1);
/// assert_eq!(form.patch(), &json!({"a": null, "b": 2}));
/// ```
pub fn coalesce<I>(patches: I) -> Option<Coalesced>
where
    I: IntoIterator<Item = Value>,
{
    let mut patches = patches.into_iter();
    let mut form = Coalesced::new(patches.next()?);
    for patch in patches {
        form.push(patch);
    }
    Some(form)
}

/// Whether applying `patch` to `document` would leave it unchanged. Costs no allocation.
///
/// ```
/// use serde_json::json;
/// use tether_core::patch::is_noop;
/// assert!(is_noop(&json!({"a": {"b": 1}}), &json!({"a": {"b": 1, "c": null}})));
/// assert!(!is_noop(&json!({"a": 5}), &json!({"a": {}})));
/// ```
pub fn is_noop(document: &Value, patch: &Value) -> bool {
    match (document, patch) {
        (Value::Object(doc), Value::Object(patch)) => patch
            .iter()
            .all(|(k, v)| member_is_noop(doc.get(k), v, true)),
        (_, Value::Object(_)) => false,
        (doc, patch) => doc == patch,
    }
}

/// Whether setting one member to `value` (merged when `merge`, replaced otherwise) is a no-op.
pub(crate) fn member_is_noop(current: Option<&Value>, value: &Value, merge: bool) -> bool {
    match (current, value) {
        (current, Value::Null) => current.is_none(),
        (Some(current @ Value::Object(_)), Value::Object(_)) if merge => is_noop(current, value),
        (_, Value::Object(_)) if merge => false,
        (current, value) => current == Some(value),
    }
}

/// Composes the object patch `next` into the pending object `pending`, whose resets at the same
/// path are `resets`. `merged(key)` says whether a member is merge-patched (RFC 7396: always) or
/// replaced whole (the worker document's plain top-level keys).
pub(crate) fn compose_map(
    pending: &mut Map<String, Value>,
    resets: &mut Map<String, Value>,
    next: Map<String, Value>,
    merged: &dyn Fn(&str) -> bool,
) {
    for (key, value) in next {
        let merge = merged(&key);
        compose_member(pending, resets, key, value, merge);
    }
}

fn compose_member(
    pending: &mut Map<String, Value>,
    resets: &mut Map<String, Value>,
    key: String,
    value: Value,
    merge: bool,
) {
    let value = match value {
        Value::Object(value) if merge => value,
        // `x ; Const(v) = Const(v)`: last value wins and nothing before it matters.
        constant => {
            if !resets.is_empty() {
                resets.remove(&key);
            }
            pending.insert(key, constant);
            return;
        }
    };
    match pending.get_mut(&key) {
        // `identity ; Merge(m) = Merge(m)`.
        None => {
            pending.insert(key, Value::Object(value));
        }
        Some(Value::Object(existing)) => {
            if matches!(resets.get(&key), Some(Value::Null)) {
                // `Const(obj) ; Merge(m) = Const(apply(obj, m))`.
                merge_map_owned(existing, value);
            } else {
                // `Merge(m1) ; Merge(m2)`: recurse with this path's own resets.
                let mut child = match resets.remove(&key) {
                    Some(Value::Object(child)) => child,
                    _ => Map::new(),
                };
                compose_map(existing, &mut child, value, &|_| true);
                if !child.is_empty() {
                    resets.insert(key, Value::Object(child));
                }
            }
        }
        Some(constant) => {
            // `Const(c) ; Merge(m) = Const(apply({}, m))` for a non-object `c` (or a deletion):
            // the old value must be discarded first, which only a reset can say.
            *constant = Value::Object(stripped(value));
            resets.insert(key, Value::Null);
        }
    }
}

/// RFC 7396 `apply`, taking the patch by value so its parts are moved, not cloned.
pub(crate) fn merge_owned(target: &mut Value, patch: Value) {
    match patch {
        Value::Object(patch) => {
            if let Value::Object(target) = target {
                merge_map_owned(target, patch);
            } else {
                *target = Value::Object(stripped(patch));
            }
        }
        other => *target = other,
    }
}

/// Merges the object patch `patch` into the object `target`, by value.
pub(crate) fn merge_map_owned(target: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (key, value) in patch {
        if value.is_null() {
            target.remove(&key);
        } else if let Some(slot) = target.get_mut(&key) {
            merge_owned(slot, value);
        } else {
            let value = match value {
                Value::Object(value) => Value::Object(stripped(value)),
                other => other,
            };
            target.insert(key, value);
        }
    }
}

/// `apply({}, patch)` for an object patch: the patch with its object members' nulls removed.
fn stripped(patch: Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    merge_map_owned(&mut out, patch);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use serde_json::json;

    fn sequential(doc: &Value, patches: &[Value]) -> Value {
        let mut doc = doc.clone();
        for p in patches {
            apply(&mut doc, p);
        }
        doc
    }

    fn check(doc: Value, patches: &[Value]) -> Coalesced {
        let form = coalesce(patches.iter().cloned()).unwrap();
        let mut got = doc.clone();
        form.apply_to(&mut got);
        assert_eq!(got, sequential(&doc, patches), "{patches:?} -> {form:?}");
        form
    }

    #[test]
    fn plain_merge_is_one_patch() {
        let form = check(json!({"x": 1}), &[json!({"a": 1}), json!({"b": {"c": 2}})]);
        assert_eq!(form.len(), 1);
        assert_eq!(form.patch(), &json!({"a": 1, "b": {"c": 2}}));
    }

    #[test]
    fn object_after_scalar_needs_a_reset() {
        let form = check(
            json!({"a": {"c": 2}}),
            &[json!({"a": 5}), json!({"a": {"b": 1, "z": null}})],
        );
        assert_eq!(form.resets(), Some(&json!({"a": null})));
        assert_eq!(form.patch(), &json!({"a": {"b": 1}}));
    }

    #[test]
    fn a_later_constant_drops_the_reset() {
        let form = check(
            json!({"a": {"c": 2}}),
            &[json!({"a": null}), json!({"a": {"b": 1}}), json!({"a": 3})],
        );
        assert_eq!(form.len(), 1);
        assert_eq!(form.patch(), &json!({"a": 3}));
    }

    #[test]
    fn nested_resets_are_pruned_when_overwritten() {
        let form = check(
            json!({"m": {"x": {"p": 0}}}),
            &[
                json!({"m": {"x": null}}),
                json!({"m": {"x": {"q": 1}}}),
                json!({"m": {"x": 7}}),
            ],
        );
        assert_eq!(form.len(), 1, "{form:?}");
    }

    #[test]
    fn object_after_non_object_document_patch_resets_the_root() {
        let form = check(
            json!({"a": 1}),
            &[json!(["whole"]), json!({"b": 2, "c": null})],
        );
        assert_eq!(form.resets(), Some(&Value::Null));
        assert_eq!(form.patch(), &json!({"b": 2}));
        let form = check(
            json!({"a": 1}),
            &[json!(["whole"]), json!({"b": 2}), json!({"b": {"c": 1}})],
        );
        assert_eq!(
            form.into_patches(),
            vec![Value::Null, json!({"b": {"c": 1}})]
        );
    }

    #[test]
    fn noop_detection() {
        assert!(is_noop(&json!({"a": 1}), &json!({})));
        assert!(is_noop(&json!({"a": 1}), &json!({"b": null})));
        assert!(!is_noop(&json!({"a": null}), &json!({"a": null})));
        assert!(!is_noop(&json!([1]), &json!({})));
        assert!(is_noop(&json!([1]), &json!([1])));
        assert!(!is_noop(&json!({"a": {"b": 1}}), &json!({"a": {"b": 2}})));
    }
}
