//! The worker document's patch semantics (docs/PROTOCOL.md, `PUT /worker`).

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde_json::{Map, Value};

use super::coalesce::{member_is_noop, merge_owned};
use super::{WorkerUpdate, apply};

/// Which top-level keys of the worker document are merge patches; every other key is replaced.
///
/// The client's coalescer and the reference server both apply patches through this type, so the
/// two can never disagree about what a `PUT /worker` means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentSchema {
    merge_keys: Vec<String>,
}

impl DocumentSchema {
    /// The keys docs/PROTOCOL.md applies as RFC 7396 merge patches.
    pub const DEFAULT_MERGE_KEYS: [&'static str; 2] = ["external_metadata", "internal_metadata"];

    /// A schema whose merge-patched keys are `merge_keys`.
    pub fn new<I, S>(merge_keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        DocumentSchema {
            merge_keys: merge_keys.into_iter().map(Into::into).collect(),
        }
    }

    /// Whether `key` is applied as a merge patch rather than replaced.
    pub fn is_merge_key(&self, key: &str) -> bool {
        self.merge_keys.iter().any(|k| k == key)
    }

    /// The merge-patched keys.
    pub fn merge_keys(&self) -> &[String] {
        &self.merge_keys
    }

    /// Applies one worker-document patch to `document`.
    ///
    /// A merge key's value is applied as an RFC 7396 merge patch to the stored value. Any other
    /// key is replaced whole. `null` deletes the key in both cases, as in RFC 7396. A document that
    /// is not an object becomes an empty object first.
    ///
    /// ```
    /// use serde_json::json;
    /// use tether_core::patch::DocumentSchema;
    ///
    /// let schema = DocumentSchema::default();
    /// let mut doc = json!({"worker_status": "idle", "tags": {"a": 1}, "external_metadata": {"a": 1}});
    /// let patch = json!({"tags": {"b": 2}, "external_metadata": {"b": 2}});
    /// schema.apply(&mut doc, patch.as_object().unwrap());
    /// assert_eq!(doc, json!({
    ///     "worker_status": "idle",
    ///     "tags": {"b": 2},                        // replaced
    ///     "external_metadata": {"a": 1, "b": 2},   // merged
    /// }));
    /// ```
    pub fn apply(&self, document: &mut Value, patch: &Map<String, Value>) {
        if !document.is_object() {
            *document = Value::Object(Map::new());
        }
        let Value::Object(target) = document else {
            unreachable!("document was made an object above");
        };
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else if self.is_merge_key(key) {
                if let Some(slot) = target.get_mut(key) {
                    apply(slot, value);
                } else {
                    let mut slot = Value::Null;
                    apply(&mut slot, value);
                    target.insert(key.clone(), slot);
                }
            } else if let Some(slot) = target.get_mut(key) {
                slot.clone_from(value);
            } else {
                target.insert(key.clone(), value.clone());
            }
        }
    }

    /// [`apply`](Self::apply), taking the patch by value so its values are moved, not cloned.
    pub fn apply_owned(&self, document: &mut Value, patch: Map<String, Value>) {
        if !document.is_object() {
            *document = Value::Object(Map::new());
        }
        let Value::Object(target) = document else {
            unreachable!("document was made an object above");
        };
        for (key, value) in patch {
            if value.is_null() {
                target.remove(&key);
            } else if self.is_merge_key(&key) {
                match target.get_mut(&key) {
                    Some(slot) => merge_owned(slot, value),
                    None => {
                        let mut slot = Value::Null;
                        merge_owned(&mut slot, value);
                        target.insert(key, slot);
                    }
                }
            } else {
                target.insert(key, value);
            }
        }
    }

    /// Whether applying `patch` would leave `document` unchanged. Costs no allocation.
    ///
    /// ```
    /// use serde_json::json;
    /// use tether_core::patch::DocumentSchema;
    ///
    /// let schema = DocumentSchema::default();
    /// let doc = json!({"worker_status": "idle", "external_metadata": {"a": 1}});
    /// let same = json!({"worker_status": "idle", "external_metadata": {"b": null}});
    /// assert!(schema.is_noop(&doc, same.as_object().unwrap()));
    /// ```
    pub fn is_noop(&self, document: &Value, patch: &Map<String, Value>) -> bool {
        let Value::Object(doc) = document else {
            return false;
        };
        patch
            .iter()
            .all(|(key, value)| member_is_noop(doc.get(key), value, self.is_merge_key(key)))
    }

    /// Coalesces `patches` into one [`WorkerUpdate`] that is lawful under [`apply`](Self::apply).
    pub fn coalesce<I>(&self, patches: I) -> WorkerUpdate
    where
        I: IntoIterator<Item = Map<String, Value>>,
    {
        let mut update = WorkerUpdate::default();
        for patch in patches {
            update.push(self, patch);
        }
        update
    }
}

impl Default for DocumentSchema {
    fn default() -> Self {
        DocumentSchema::new(Self::DEFAULT_MERGE_KEYS.iter().map(|k| k.to_string()))
    }
}
