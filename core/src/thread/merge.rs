//! The three-way merge of a thread (docs/PROTOCOL.md §Thread sync), with a pluggable policy.
//!
//! `merge(base, local, remote)`:
//!
//! - If one side equals the base, the other side wins whole; if both sides agree, that is the
//!   result. So `merge(b, x, x) = x`, `merge(b, b, r) = r` and `merge(b, l, b) = l` hold exactly.
//! - Tombstones (`deleted`): the union of both sides'. A tombstone one side dropped since the
//!   base (a resurrection by a policy) stays dropped, so each id is merged three ways like a
//!   flag. A delete against a concurrent edit of the same message is the policy's decision
//!   (default: the edit wins, and the tombstone goes), and is reported either way.
//! - Messages, tombstoned ones left out: those in the common prefix of all three stay. After it
//!   comes the union, by `id`, of both sides' remaining messages, ordered by
//!   `(timestamp, id)`. A message on both sides keeps the side that changed it from the base;
//!   changed on both, the policy decides (default: remote).
//! - Every other field: changed on one side, that side's value; changed on both to different
//!   values, the policy decides (default: local, as in seed 002).
//! - The result's `v` is the larger of the two sides' versions.
//!
//! So every message of either side is kept exactly once unless it is deleted, and a delete
//! survives concurrent appends and edits of other messages. Every decision the policy made,
//! which drops one side's change, comes back as an [`Override`] from
//! [`merge_reported`](ThreadMerge::merge_reported): nothing is overridden without a word.
//!
//! ```
//! use tether_core::thread::{Message, Thread, ThreadMerge};
//!
//! let mut base = Thread::new("t");
//! base.messages.push(Message::new("a", "user", "hi", 1));
//! base.messages.push(Message::new("b", "user", "typo", 2));
//! let mut local = base.clone();
//! local.messages.push(Message::new("l", "user", "mine", 5));
//! local.messages.retain(|m| m.id != "b"); // deleted here...
//! local.deleted.insert("b".into());
//! let mut remote = base.clone();
//! remote.messages.push(Message::new("r", "user", "theirs", 3));
//! remote.v = 2;
//!
//! let merged = ThreadMerge::default().merge(&base, &local, &remote);
//! let ids: Vec<&str> = merged.messages.iter().map(|m| m.id.as_str()).collect();
//! assert_eq!(ids, ["a", "r", "l"]); // ...and stays deleted; new ones by (timestamp, id)
//! assert!(merged.deleted.contains("b"));
//! assert_eq!(merged.v, 2);
//! ```

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde_json::Value;

use super::model::{Message, Thread};

/// One side of a merge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// This replica's copy.
    Local,
    /// The server's copy.
    Remote,
}

/// Decides what the merge cannot: a message or a field both sides changed differently, and a
/// delete against an edit.
pub trait MergePolicy: fmt::Debug {
    /// A message with the same id on both sides, different on each, and (if the base has it)
    /// different from the base on both. Default: the remote side's. The result keeps the id.
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

    /// `deleted_by` deleted a message that the other side holds as `edited`, different from
    /// `base` (or the base never had it): `true` keeps the delete, `false` keeps the message
    /// and drops the tombstone. Default: an edit of a message the base had wins (docs/PROTOCOL.md),
    /// so no one's writing vanishes unseen; a message the base never had is the deleting
    /// side's own, which the other side got through a push whose answer was lost, so the
    /// delete wins.
    fn keep_delete(&self, deleted_by: Side, base: Option<&Message>, edited: &Message) -> bool {
        let _ = (deleted_by, edited);
        base.is_none()
    }
}

/// The default policy: messages take the remote side, fields the local side, edits beat
/// deletes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DefaultPolicy;

impl MergePolicy for DefaultPolicy {}

/// What a contested decision was about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Contested {
    /// A message: changed on both sides, or deleted on one and changed on the other.
    Message {
        /// Its id.
        id: String,
    },
    /// A top-level field changed on both sides.
    Field {
        /// Its key.
        key: String,
    },
}

/// A change both sides made differently, and what the merge kept instead: the policy's
/// decision, reported so that no change is dropped without a word. Values are JSON: a
/// message as on the wire, a field's value; `None` is a deleted message or a removed field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Override {
    /// The thread.
    pub thread: String,
    /// The message or field.
    pub what: Contested,
    /// The local side's version.
    pub local: Option<Value>,
    /// The remote side's version.
    pub remote: Option<Value>,
    /// What the merge kept.
    pub kept: Option<Value>,
}

impl Override {
    /// Whether this replica's own change was dropped (the merge kept something else).
    pub fn local_lost(&self) -> bool {
        self.kept != self.local
    }
}

/// A merge's result and the decisions the policy made on the way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merged {
    /// The merged thread.
    pub thread: Thread,
    /// Every both-sided change the policy decided, in a stable order (tombstones, messages,
    /// fields).
    pub overrides: Vec<Override>,
}

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
        self.merge_reported(base, local, remote).thread
    }

    /// [`merge`](Self::merge), with every decision the policy made.
    pub fn merge_reported(&self, base: &Thread, local: &Thread, remote: &Thread) -> Merged {
        let v = local.v.max(remote.v);
        let pick = |side: &Thread| Merged {
            thread: Thread { v, ..side.clone() },
            overrides: Vec::new(),
        };
        if local.same_content(remote) || remote.same_content(base) {
            return pick(local);
        }
        if local.same_content(base) {
            return pick(remote);
        }
        let mut overrides = Vec::new();
        let deleted = self.tombstones(base, local, remote, &mut overrides);
        let messages = self.messages(base, local, remote, &deleted, &mut overrides);
        let fields = self.fields(base, local, remote, &mut overrides);
        Merged {
            thread: Thread {
                id: local.id.clone(),
                v,
                messages,
                deleted,
                fields,
            },
            overrides,
        }
    }

    /// Each tombstone merged three ways as a flag; a delete against an edit asks the policy.
    fn tombstones(
        &self,
        base: &Thread,
        local: &Thread,
        remote: &Thread,
        overrides: &mut Vec<Override>,
    ) -> BTreeSet<String> {
        let ids: BTreeSet<&String> = base
            .deleted
            .iter()
            .chain(&local.deleted)
            .chain(&remote.deleted)
            .collect();
        let mut merged = BTreeSet::new();
        for id in ids {
            let b = base.deleted.contains(id);
            let l = local.deleted.contains(id);
            let r = remote.deleted.contains(id);
            let deleted = if l == r || l == b { r } else { l };
            if !deleted {
                continue;
            }
            let before = base.message(id);
            // A side that still holds the message and changed it contests the delete.
            let (edited, deleted_by) =
                match (edited(local, id, l, before), edited(remote, id, r, before)) {
                    (Some(m), _) => (m, Side::Remote),
                    (None, Some(m)) => (m, Side::Local),
                    (None, None) => {
                        merged.insert(id.clone());
                        continue;
                    }
                };
            let keep_delete = self.policy.keep_delete(deleted_by, before, edited);
            let edited = Some(edited.to_value());
            let (l, r) = match deleted_by {
                Side::Local => (None, edited.clone()),
                Side::Remote => (edited.clone(), None),
            };
            overrides.push(Override {
                thread: local.id.clone(),
                what: Contested::Message { id: id.clone() },
                local: l,
                remote: r,
                kept: if keep_delete { None } else { edited },
            });
            if keep_delete {
                merged.insert(id.clone());
            }
        }
        merged
    }

    fn messages(
        &self,
        base: &Thread,
        local: &Thread,
        remote: &Thread,
        deleted: &BTreeSet<String>,
        overrides: &mut Vec<Override>,
    ) -> Vec<Message> {
        let (base, local_messages, remote) = (
            live(base, deleted),
            live(local, deleted),
            live(remote, deleted),
        );
        let prefix = base
            .iter()
            .zip(&local_messages)
            .zip(&remote)
            .take_while(|((b, l), r)| b == l && l == r)
            .count();
        let mut merged: Vec<Message> = base[..prefix].iter().map(|m| (*m).clone()).collect();
        let base_by_id: BTreeMap<&str, &Message> =
            base.iter().map(|m| (m.id.as_str(), *m)).collect();
        let remote_by_id: BTreeMap<&str, &Message> = remote[prefix..]
            .iter()
            .map(|m| (m.id.as_str(), *m))
            .collect();
        let mut taken = BTreeSet::new();
        let mut tail: Vec<Message> = Vec::new();
        for l in local_messages[prefix..].iter().copied() {
            taken.insert(l.id.as_str());
            let chosen = match remote_by_id.get(l.id.as_str()) {
                None => l.clone(),
                Some(r) if *r == l => l.clone(),
                Some(r) => match base_by_id.get(l.id.as_str()) {
                    Some(b) if *b == l => (*r).clone(),
                    Some(b) if *b == *r => l.clone(),
                    b => {
                        let mut chosen = self.policy.message(b.copied(), l, r);
                        chosen.id.clone_from(&l.id);
                        overrides.push(Override {
                            thread: local.id.clone(),
                            what: Contested::Message { id: l.id.clone() },
                            local: Some(l.to_value()),
                            remote: Some(r.to_value()),
                            kept: Some(chosen.to_value()),
                        });
                        chosen
                    }
                },
            };
            tail.push(chosen);
        }
        tail.extend(
            remote[prefix..]
                .iter()
                .filter(|r| !taken.contains(r.id.as_str()))
                .map(|r| (*r).clone()),
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
        overrides: &mut Vec<Override>,
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
                let kept = self.policy.field(key, b, l, r);
                overrides.push(Override {
                    thread: local.id.clone(),
                    what: Contested::Field { key: key.clone() },
                    local: l.cloned(),
                    remote: r.cloned(),
                    kept: kept.clone(),
                });
                kept
            };
            if let Some(value) = value {
                fields.insert(key.clone(), value);
            }
        }
        fields
    }
}

/// The message `id` of a side that did not delete it (`gone`) and changed it from `before`.
fn edited<'a>(
    side: &'a Thread,
    id: &str,
    gone: bool,
    before: Option<&Message>,
) -> Option<&'a Message> {
    side.message(id).filter(|m| !gone && Some(*m) != before)
}

/// A side's messages that are not deleted.
fn live<'a>(t: &'a Thread, deleted: &BTreeSet<String>) -> Vec<&'a Message> {
    t.messages
        .iter()
        .filter(|m| !deleted.contains(&m.id))
        .collect()
}
