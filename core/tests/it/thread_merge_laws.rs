//! The three-way merge's laws (docs/PROTOCOL.md §Thread sync), by proptest.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use serde_json::{Value, json};
use tether_core::thread::{
    Contested, MergePolicy, Merged, Message, Override, Side, Thread, ThreadMerge,
};

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
    Delete(usize),
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
        (0usize..8).prop_map(Edit::Delete),
        prop::option::of(prop::sample::select(vec!["x", "w"])).prop_map(Edit::Title),
    ]
}

/// `base` after edits, as a replica makes them: a delete leaves a tombstone, and a deleted id
/// is never added again.
fn descend(base: &Thread, edits: &[Edit]) -> Thread {
    let mut t = base.clone();
    for e in edits {
        match e {
            Edit::Append(m) => {
                if t.message(&m.id).is_none() && !t.deleted.contains(&m.id) {
                    t.messages.push(m.clone());
                }
            }
            Edit::Delete(i) => {
                if !t.messages.is_empty() {
                    let n = t.messages.len();
                    let gone = t.messages.remove(i % n);
                    t.deleted.insert(gone.id);
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
    fn keeps_every_live_message_of_both_sides_exactly_once(
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
        // Every message of either side is there, unless it is deleted in the result...
        let expected: BTreeSet<&str> = ids(&local)
            .into_iter()
            .chain(ids(&remote))
            .filter(|id| !merged.deleted.contains(*id))
            .collect();
        let got: BTreeSet<&str> = counts.keys().copied().collect();
        prop_assert_eq!(got, expected);
        // ...and only what one side deleted is.
        let union: BTreeSet<&String> = local.deleted.iter().chain(&remote.deleted).collect();
        prop_assert!(merged.deleted.iter().all(|id| union.contains(id)));
        prop_assert_eq!(merged.v, local.v.max(remote.v));
    }

    #[test]
    fn a_delete_survives_concurrent_appends_and_edits_of_other_messages(
        base in thread(POOL, 0..5),
        le in prop::collection::vec(edit(), 0..6),
        re in prop::collection::vec(edit(), 0..6),
    ) {
        let local = descend(&base, &le);
        let remote = descend(&base, &re);
        let merged = ThreadMerge::default().merge(&base, &local, &remote);
        for (side, other) in [(&local, &remote), (&remote, &local)] {
            for id in &side.deleted {
                // The other side kept the message as the base had it (or deleted it too).
                let untouched = other.message(id) == base.message(id) || other.deleted.contains(id);
                if untouched {
                    prop_assert!(merged.deleted.contains(id), "{} came back", id);
                    prop_assert!(merged.message(id).is_none());
                }
            }
        }
    }

    #[test]
    fn a_delete_against_an_edit_keeps_the_edit_and_says_so(
        base in thread(POOL, 1..5).prop_filter("a message", |t| !t.messages.is_empty()),
        pick in 0usize..8,
        local_deletes in any::<bool>(),
        le in prop::collection::vec(edit(), 0..4),
        re in prop::collection::vec(edit(), 0..4),
    ) {
        let target = base.messages[pick % base.messages.len()].id.clone();
        let mut deleter = descend(&base, &le);
        let mut editor = descend(&base, &re);
        deleter.messages.retain(|m| m.id != target);
        deleter.deleted.insert(target.clone());
        editor.deleted.remove(&target);
        let edited = Message::new(target.clone(), "user", "rewritten", 9);
        match editor.messages.iter_mut().find(|m| m.id == target) {
            Some(m) => *m = edited.clone(),
            None => editor.messages.push(edited.clone()),
        }
        let (local, remote) = if local_deletes { (&deleter, &editor) } else { (&editor, &deleter) };
        let merged = ThreadMerge::default().merge_reported(&base, local, remote);
        prop_assert_eq!(merged.thread.message(&target), Some(&edited));
        prop_assert!(!merged.thread.deleted.contains(&target));
        let reported: Vec<&Override> = merged
            .overrides
            .iter()
            .filter(|o| o.what == Contested::Message { id: target.clone() })
            .collect();
        prop_assert_eq!(reported.len(), 1);
        let o = reported[0];
        prop_assert_eq!(&o.kept, &Some(edited.to_value()));
        prop_assert_eq!(o.local_lost(), local_deletes);
        prop_assert_eq!(if local_deletes { &o.local } else { &o.remote }, &None);
    }

    #[test]
    fn no_local_change_is_dropped_without_an_override(
        base in thread(POOL, 0..5),
        le in prop::collection::vec(edit(), 0..6),
        re in prop::collection::vec(edit(), 0..6),
    ) {
        let local = descend(&base, &le);
        let remote = descend(&base, &re);
        check_overrides(&ThreadMerge::default().merge_reported(&base, &local, &remote), &base, &local)?;
        // A policy that drops local changes wherever it may: remote fields, deletes win.
        check_overrides(&ThreadMerge::new(RemoteWins).merge_reported(&base, &local, &remote), &base, &local)?;
    }

    #[test]
    fn both_orders_agree_on_ids_and_tombstones(
        base in thread(POOL, 0..5),
        le in prop::collection::vec(edit(), 0..6),
        re in prop::collection::vec(edit(), 0..6),
    ) {
        let local = descend(&base, &le);
        let remote = descend(&base, &re);
        let merge = ThreadMerge::default();
        let a = merge.merge(&base, &local, &remote);
        let b = merge.merge(&base, &remote, &local);
        let set = |t: &Thread| ids(t).into_iter().map(String::from).collect::<BTreeSet<_>>();
        prop_assert_eq!(set(&a), set(&b));
        prop_assert_eq!(a.deleted, b.deleted);
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

/// Remote fields, remote messages, and a delete beats an edit.
#[derive(Debug)]
struct RemoteWins;

impl MergePolicy for RemoteWins {
    fn field(
        &self,
        _: &str,
        _: Option<&Value>,
        _: Option<&Value>,
        r: Option<&Value>,
    ) -> Option<Value> {
        r.cloned()
    }
    fn keep_delete(&self, _: Side, _: Option<&Message>, _: &Message) -> bool {
        true
    }
}

/// Every local change the merge dropped has an override saying so, and every override names
/// what the result holds.
fn check_overrides(merged: &Merged, base: &Thread, local: &Thread) -> Result<(), TestCaseError> {
    let version = |t: &Thread, id: &str| t.message(id).map(Message::to_value);
    let reported = |what: Contested| {
        merged
            .overrides
            .iter()
            .any(|o| o.what == what && o.local_lost())
    };
    let every_id: BTreeSet<&str> = ids(local)
        .into_iter()
        .chain(local.deleted.iter().map(String::as_str))
        .collect();
    for id in every_id {
        let mine = version(local, id);
        if mine != version(base, id) && version(&merged.thread, id) != mine {
            let what = Contested::Message { id: id.into() };
            prop_assert!(reported(what), "{} dropped silently", id);
        }
    }
    let title = |t: &Thread| t.fields.get("title").cloned();
    if title(local) != title(base) && title(&merged.thread) != title(local) {
        let field = Contested::Field {
            key: "title".into(),
        };
        prop_assert!(reported(field), "the title was dropped silently");
    }
    for o in &merged.overrides {
        let held: Option<Value> = match &o.what {
            Contested::Message { id } => version(&merged.thread, id),
            Contested::Field { key } => merged.thread.fields.get(key).cloned(),
            _ => unreachable!(),
        };
        prop_assert_eq!(&held, &o.kept);
    }
    Ok(())
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

#[test]
fn a_delete_of_a_message_the_base_never_had_wins_and_is_reported() {
    // The local side pushed `b`, the answer was lost, then it deleted `b`: the server's copy
    // holds `b` as it was, and the base (never synced) has nothing.
    let base = Thread::new("t");
    let mut local = base.clone();
    local.messages.push(Message::new("a", "user", "hi", 1));
    local.deleted.insert("b".into());
    let mut remote = base.clone();
    remote.v = 1;
    remote.messages.push(Message::new("a", "user", "hi", 1));
    remote.messages.push(Message::new("b", "user", "oops", 2));
    let merged = ThreadMerge::default().merge_reported(&base, &local, &remote);
    assert_eq!(ids(&merged.thread), ["a"]);
    assert!(merged.thread.deleted.contains("b"));
    assert_eq!(merged.overrides.len(), 1);
    assert!(!merged.overrides[0].local_lost());
    assert_eq!(merged.overrides[0].kept, None);
}
