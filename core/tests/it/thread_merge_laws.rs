//! The three-way merge's laws (docs/PROTOCOL.md §Thread sync), by proptest.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::json;
use tether_core::thread::{Message, Thread, ThreadMerge};

fn message(id: String) -> impl Strategy<Value = Message> {
    (
        0u64..6,
        prop::sample::select(vec!["a", "b", "c"]),
        prop::sample::select(vec!["user", "assistant"]),
    )
        .prop_map(move |(ts, content, role)| Message::new(id.clone(), role, content, ts))
}

/// A valid thread with message ids drawn from `pool`.
fn thread(pool: &'static [&'static str], v: std::ops::Range<u64>) -> impl Strategy<Value = Thread> {
    (
        prop::sample::subsequence(pool.to_vec(), 0..=pool.len()).prop_shuffle(),
        v,
        prop::option::of(prop::sample::select(vec!["x", "y", "z"])),
    )
        .prop_flat_map(|(ids, v, title)| {
            let messages: Vec<_> = ids.into_iter().map(|id| message(id.to_string())).collect();
            (messages, Just(v), Just(title))
        })
        .prop_map(|(messages, v, title)| {
            let mut t = Thread::new("t");
            t.v = v;
            t.messages = messages;
            if let Some(title) = title {
                t.fields.insert("title".into(), json!(title));
            }
            t
        })
}

#[derive(Clone, Debug)]
enum Edit {
    Append(Message),
    Change(usize, &'static str),
    Title(Option<&'static str>),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (
            prop::sample::select(vec!["n0", "n1", "n2", "n3", "n4"]),
            0u64..6,
            prop::sample::select(vec!["p", "q"])
        )
            .prop_map(|(id, ts, c)| Edit::Append(Message::new(id, "user", c, ts))),
        (0usize..8, prop::sample::select(vec!["edited", "again"]))
            .prop_map(|(i, c)| Edit::Change(i, c)),
        prop::option::of(prop::sample::select(vec!["x", "w"])).prop_map(Edit::Title),
    ]
}

/// `base` after edits that never delete a message (the protocol's threads are append-only).
fn descend(base: &Thread, edits: &[Edit]) -> Thread {
    let mut t = base.clone();
    for e in edits {
        match e {
            Edit::Append(m) => {
                if t.message(&m.id).is_none() {
                    t.messages.push(m.clone());
                }
            }
            Edit::Change(i, c) => {
                if !t.messages.is_empty() {
                    let n = t.messages.len();
                    t.messages[i % n].content = c.to_string();
                }
            }
            Edit::Title(title) => match title {
                Some(title) => {
                    t.fields.insert("title".into(), json!(title));
                }
                None => {
                    t.fields.remove("title");
                }
            },
        }
    }
    t
}

const POOL: &[&str] = &["m0", "m1", "m2", "m3", "m4", "m5"];

fn ids(t: &Thread) -> Vec<&str> {
    t.messages.iter().map(|m| m.id.as_str()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn keeps_every_message_of_both_sides_exactly_once(
        base in thread(POOL, 0..5),
        le in prop::collection::vec(edit(), 0..6),
        re in prop::collection::vec(edit(), 0..6),
        bump in 0u64..3,
    ) {
        let local = descend(&base, &le);
        let mut remote = descend(&base, &re);
        remote.v += bump;
        let merged = ThreadMerge::default().merge(&base, &local, &remote);
        prop_assert!(merged.validate().is_ok());
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for id in ids(&merged) {
            *counts.entry(id).or_default() += 1;
        }
        prop_assert!(counts.values().all(|n| *n == 1), "{:?}", counts);
        let expected: std::collections::BTreeSet<&str> =
            ids(&local).into_iter().chain(ids(&remote)).collect();
        let got: std::collections::BTreeSet<&str> = counts.keys().copied().collect();
        prop_assert_eq!(got, expected);
        prop_assert_eq!(merged.v, local.v.max(remote.v));
    }

    #[test]
    fn is_deterministic(
        base in thread(POOL, 0..5),
        local in thread(POOL, 0..5),
        remote in thread(POOL, 0..5),
    ) {
        let merge = ThreadMerge::default();
        let a = merge.merge(&base, &local, &remote);
        let b = merge.clone().merge(&base.clone(), &local.clone(), &remote.clone());
        prop_assert_eq!(a, b);
    }

    #[test]
    fn both_sides_equal_gives_that_side(base in thread(POOL, 0..5), x in thread(POOL, 0..5)) {
        prop_assert_eq!(ThreadMerge::default().merge(&base, &x, &x), x);
    }

    #[test]
    fn unchanged_local_gives_remote(base in thread(POOL, 0..3), remote in thread(POOL, 3..6)) {
        prop_assert_eq!(ThreadMerge::default().merge(&base, &base, &remote), remote);
    }

    #[test]
    fn unchanged_remote_gives_local(base in thread(POOL, 0..3), mut local in thread(POOL, 0..3)) {
        local.v = local.v.max(base.v);
        prop_assert_eq!(ThreadMerge::default().merge(&base, &local, &base), local);
    }
}

#[test]
fn ties_are_ordered_by_message_id_and_scalars_by_policy() {
    let mut base = Thread::new("t");
    base.fields.insert("title".into(), json!("base"));
    let mut local = base.clone();
    local.messages.push(Message::new("b", "user", "l", 7));
    local.fields.insert("title".into(), json!("local"));
    let mut remote = base.clone();
    remote.messages.push(Message::new("a", "user", "r", 7));
    remote.fields.insert("title".into(), json!("remote"));
    let merged = ThreadMerge::default().merge(&base, &local, &remote);
    assert_eq!(ids(&merged), ["a", "b"]);
    assert_eq!(merged.fields["title"], json!("local"));
    // Swapping the sides orders the messages the same way.
    let swapped = ThreadMerge::default().merge(&base, &remote, &local);
    assert_eq!(ids(&swapped), ["a", "b"]);
}

#[test]
fn a_custom_policy_decides_both_sided_changes() {
    #[derive(Debug)]
    struct RemoteTitles;
    impl tether_core::thread::MergePolicy for RemoteTitles {
        fn field(
            &self,
            _key: &str,
            _base: Option<&serde_json::Value>,
            _local: Option<&serde_json::Value>,
            remote: Option<&serde_json::Value>,
        ) -> Option<serde_json::Value> {
            remote.cloned()
        }
        fn message(&self, _b: Option<&Message>, local: &Message, _r: &Message) -> Message {
            local.clone()
        }
    }
    let mut base = Thread::new("t");
    base.messages.push(Message::new("m", "user", "base", 1));
    let mut local = base.clone();
    local.messages[0].content = "local".into();
    local.fields.insert("title".into(), json!("l"));
    let mut remote = base.clone();
    remote.messages[0].content = "remote".into();
    remote.fields.insert("title".into(), json!("r"));
    let merged = ThreadMerge::new(RemoteTitles).merge(&base, &local, &remote);
    assert_eq!(merged.fields["title"], json!("r"));
    assert_eq!(merged.messages[0].content, "local");
    let default = ThreadMerge::default().merge(&base, &local, &remote);
    assert_eq!(default.messages[0].content, "remote");
    assert_eq!(default.fields["title"], json!("l"));
}
