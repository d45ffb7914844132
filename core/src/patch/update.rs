//! Coalescing worker-document patches (docs/PROTOCOL.md `PUT /worker`) under a [`DocumentSchema`].

use alloc::string::String;
use alloc::vec::Vec;

use serde_json::{Map, Value};

use super::DocumentSchema;
use super::coalesce::compose_map;

/// The coalesced form of a sequence of worker-document patches, lawful under
/// [`DocumentSchema::apply`]: at most two patches (resets, then the patch) whose application
/// equals applying every coalesced patch in turn, for every document.
///
/// A plain top-level key needs no reset (last value wins); a merge key (`external_metadata`,
/// `internal_metadata`) follows the RFC 7396 coalescer, which may need one.
///
/// ```
/// use serde_json::{json, Value};
/// use tether_core::patch::{DocumentSchema, WorkerUpdate};
///
/// let schema = DocumentSchema::default();
/// let obj = |v: Value| v.as_object().unwrap().clone();
/// let mut update = WorkerUpdate::default();
/// update.push(&schema, obj(json!({"worker_status": "running", "external_metadata": {"k": 1}})));
/// update.push(&schema, obj(json!({"worker_status": "idle", "external_metadata": {"j": 2}})));
/// assert_eq!(update.resets(), None);
/// assert_eq!(update.patch(), &obj(json!({
///     "worker_status": "idle",
///     "external_metadata": {"k": 1, "j": 2},
/// })));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerUpdate {
    resets: Option<Map<String, Value>>,
    patch: Map<String, Value>,
}

impl WorkerUpdate {
    /// The form of the one-patch sequence `[patch]`.
    pub fn from_patch(patch: Map<String, Value>) -> Self {
        WorkerUpdate {
            resets: None,
            patch,
        }
    }

    /// Composes `next` after everything already coalesced, in place, moving its values.
    pub fn push(&mut self, schema: &DocumentSchema, next: Map<String, Value>) {
        if self.patch.is_empty() && self.resets.is_none() {
            self.patch = next;
            return;
        }
        let mut resets = self.resets.take().unwrap_or_default();
        compose_map(&mut self.patch, &mut resets, next, &|key| {
            schema.is_merge_key(key)
        });
        self.resets = (!resets.is_empty()).then_some(resets);
    }

    /// Composes a whole later update after this one.
    pub fn append(&mut self, schema: &DocumentSchema, later: WorkerUpdate) {
        if let Some(resets) = later.resets {
            self.push(schema, resets);
        }
        self.push(schema, later.patch);
    }

    /// The resets to send first, if the form needs two patches.
    pub fn resets(&self) -> Option<&Map<String, Value>> {
        self.resets.as_ref()
    }

    /// Takes the resets out, leaving a one-patch form (once they have been acknowledged).
    pub fn take_resets(&mut self) -> Option<Map<String, Value>> {
        self.resets.take()
    }

    /// The patch to send (after the resets, if any).
    pub fn patch(&self) -> &Map<String, Value> {
        &self.patch
    }

    /// How many patches the form is: 1 or 2.
    pub fn len(&self) -> usize {
        1 + usize::from(self.resets.is_some())
    }

    /// Whether the form is the empty patch `{}` with no resets.
    pub fn is_empty(&self) -> bool {
        self.resets.is_none() && self.patch.is_empty()
    }

    /// The patches in the order they must be applied.
    pub fn patches(&self) -> impl Iterator<Item = &Map<String, Value>> {
        self.resets.iter().chain(core::iter::once(&self.patch))
    }

    /// The patches in the order they must be applied, by value.
    pub fn into_patches(self) -> Vec<Map<String, Value>> {
        self.resets
            .into_iter()
            .chain(core::iter::once(self.patch))
            .collect()
    }

    /// Applies the form to `document` with `schema`.
    pub fn apply_to(&self, schema: &DocumentSchema, document: &mut Value) {
        for patch in self.patches() {
            schema.apply(document, patch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn plain_keys_never_need_resets() {
        let schema = DocumentSchema::default();
        let mut u = WorkerUpdate::from_patch(obj(json!({"tags": null})));
        u.push(&schema, obj(json!({"tags": {"b": 2}})));
        assert_eq!(u.len(), 1);
        let mut doc = json!({"tags": {"a": 1}});
        u.apply_to(&schema, &mut doc);
        assert_eq!(doc, json!({"tags": {"b": 2}}));
    }

    #[test]
    fn merge_key_deleted_then_given_an_object_is_reset() {
        let schema = DocumentSchema::default();
        let mut u = WorkerUpdate::from_patch(obj(json!({"external_metadata": null})));
        u.push(&schema, obj(json!({"external_metadata": {"b": 2}})));
        assert_eq!(u.resets(), Some(&obj(json!({"external_metadata": null}))));
        let mut doc = json!({"external_metadata": {"a": 1}});
        u.apply_to(&schema, &mut doc);
        assert_eq!(doc, json!({"external_metadata": {"b": 2}}));
    }
}
