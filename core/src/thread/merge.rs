//! The three-way merge of a thread (docs/PROTOCOL.md §Thread sync), with a pluggable policy.
//!
//! `merge(base, local, remote)`:
//!
//! - If one side equals the base, the other side wins whole; if both sides agree, that is the
//!   result. So `merge(b, x, x) = x`, `merge(b, b, r) = r` and `merge(b, l, b) = l` hold exactly.
//! - Otherwise messages in the common prefix of all three stay. After it comes the union, by
//!   `id`, of both sides' remaining messages, ordered by `(timestamp, id)`. A message on both
//!   sides keeps the side that changed it from the base; changed on both, the policy decides
//!   (default: remote).
//! - Every other field: changed on one side, that side's value; changed on both to different
//!   values, the policy decides (default: local, as in seed 002).
//! - The result's `v` is the larger of the two sides' versions.
//!
//! Every message of either side is kept exactly once (ids are unique in each side). A message
//! one side deleted survives when the other side changed the thread too: a union cannot tell
//! a deletion from an addition, and the protocol's threads are append-only.
//!
//! ```
//! use tether_core::thread::{Message, Thread, ThreadMerge};
//!
//! let mut base = Thread::new("t");
//! base.messages.push(Message::new("a", "user", "hi", 1));
//! let mut local = base.clone();
//! local.messages.push(Message::new("l", "user", "mine", 5));
//! let mut remote = base.clone();
//! remote.messages.push(Message::new("r", "user", "theirs", 3));
//! remote.v = 2;
//!
//! let merged = ThreadMerge::default().merge(&base, &local, &remote);
//! let ids: Vec<&str> = merged.messages.iter().map(|m| m.id.as_str()).collect();
//! assert_eq!(ids, ["a", "r", "l"]); // prefix, then by (timestamp, id)
//! assert_eq!(merged.v, 2);
//! ```

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde_json::Value;

use super::model::{Message, Thread};

/// Decides what the merge cannot: a message or a field both sides changed differently.
pub trait MergePolicy: fmt::Debug {
    /// A message with the same id on both sides, different on each, and (if the base has it)
    /// different from the base on both. Default: the remote side's.
    fn message(&self, base: Option<&Message>, local: &Message, remote: &Message) -> Message {
        let _ = (base, local);
        remote.clone()
    }

    /// A top-level field changed on both sides to different values (`None`: removed).
    /// Default: the local side's (seed 002).
    fn field(
        &self,
        key: &str,
        base: Option<&Value>,
        local: Option<&Value>,
        remote: Option<&Value>,
    ) -> Option<Value> {
        let _ = (key, base, remote);
        local.cloned()
    }
}

/// The default policy: messages take the remote side, fields the local side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DefaultPolicy;

impl MergePolicy for DefaultPolicy {}

/// The three-way merge with a policy. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct ThreadMerge<P: MergePolicy = DefaultPolicy> {
    policy: P,
}

impl Default for ThreadMerge<DefaultPolicy> {
    /// The merge with the [`DefaultPolicy`].
    fn default() -> Self {
        ThreadMerge::new(DefaultPolicy)
    }
}

impl<P: MergePolicy> ThreadMerge<P> {
    /// A merge deciding both-sided changes with `policy`.
    pub fn new(policy: P) -> Self {
        ThreadMerge { policy }
    }

    /// The policy in use.
    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// Merges `local` and `remote`, both descended from `base`. Deterministic: a pure
    /// function of its arguments and the policy.
    pub fn merge(&self, base: &Thread, local: &Thread, remote: &Thread) -> Thread {
        let v = local.v.max(remote.v);
        let pick = |side: &Thread| Thread { v, ..side.clone() };
        if local.same_content(remote) || remote.same_content(base) {
            return pick(local);
        }
        if local.same_content(base) {
            return pick(remote);
        }
        Thread {
            id: local.id.clone(),
            v,
            messages: self.messages(base, local, remote),
            fields: self.fields(base, local, remote),
        }
    }

    fn messages(&self, base: &Thread, local: &Thread, remote: &Thread) -> Vec<Message> {
        let prefix = base
            .messages
            .iter()
            .zip(&local.messages)
            .zip(&remote.messages)
            .take_while(|((b, l), r)| b == l && l == r)
            .count();
        let mut merged: Vec<Message> = base.messages[..prefix].to_vec();
        let base_by_id: BTreeMap<&str, &Message> =
            base.messages.iter().map(|m| (m.id.as_str(), m)).collect();
        let remote_by_id: BTreeMap<&str, &Message> = remote.messages[prefix..]
            .iter()
            .map(|m| (m.id.as_str(), m))
            .collect();
        let mut taken = BTreeSet::new();
        let mut tail: Vec<Message> = Vec::new();
        for l in &local.messages[prefix..] {
            taken.insert(l.id.as_str());
            let chosen = match remote_by_id.get(l.id.as_str()) {
                None => l.clone(),
                Some(r) if *r == l => l.clone(),
                Some(r) => match base_by_id.get(l.id.as_str()) {
                    Some(b) if *b == l => (*r).clone(),
                    Some(b) if *b == *r => l.clone(),
                    b => self.policy.message(b.copied(), l, r),
                },
            };
            tail.push(chosen);
        }
        tail.extend(
            remote.messages[prefix..]
                .iter()
                .filter(|r| !taken.contains(r.id.as_str()))
                .cloned(),
        );
        tail.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
        merged.extend(tail);
        merged
    }

    fn fields(
        &self,
        base: &Thread,
        local: &Thread,
        remote: &Thread,
    ) -> serde_json::Map<String, Value> {
        let keys: BTreeSet<&String> = base
            .fields
            .keys()
            .chain(local.fields.keys())
            .chain(remote.fields.keys())
            .collect();
        let mut fields = serde_json::Map::new();
        for key in keys {
            let (b, l, r) = (
                base.fields.get(key),
                local.fields.get(key),
                remote.fields.get(key),
            );
            let value = if l == r || r == b {
                l.cloned()
            } else if l == b {
                r.cloned()
            } else {
                self.policy.field(key, b, l, r)
            };
            if let Some(value) = value {
                fields.insert(key.clone(), value);
            }
        }
        fields
    }
}
