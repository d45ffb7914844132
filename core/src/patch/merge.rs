//! RFC 7396 JSON merge patch, applied in place.

use serde_json::{Map, Value};

/// Applies `patch` to `document` as RFC 7396 defines it.
///
/// An object patch merges key by key (`null` deletes); any other patch replaces the document.
///
/// ```
/// use serde_json::json;
/// let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}});
/// tether_core::patch::apply(&mut doc, &json!({"a": "z", "c": {"f": null}}));
/// assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}}));
/// ```
pub fn apply(document: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *document = patch.clone();
        return;
    };
    if !document.is_object() {
        *document = Value::Object(Map::new());
    }
    let Value::Object(target) = document else {
        unreachable!("document was made an object above");
    };
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else if let Some(slot) = target.get_mut(key) {
            apply(slot, value);
        } else {
            // Only a new key costs a clone of its name.
            let mut slot = Value::Null;
            apply(&mut slot, value);
            target.insert(key.clone(), slot);
        }
    }
}
