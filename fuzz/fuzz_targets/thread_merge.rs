#![no_main]
//! The three-way merge's laws (PROTOCOL.md §Thread sync) as assertions, over arbitrary edit
//! histories of both sides (appends, edits, deletes, titles) from one base: the result is valid,
//! holds every live message of either side exactly once, deletes only what a side deleted,
//! keeps a delete the other side did not contest, reports every local change it dropped, is
//! deterministic, and agrees with the swapped merge on ids and tombstones.

use std::collections::BTreeSet;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::json;
use tether_core::thread::{Contested, Message, Thread, ThreadMerge};

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Edit {
    Append { id: u8, ts: u8 },
    Change { at: u8, text: bool },
    Delete { at: u8 },
    Title(Option<bool>),
}

#[derive(Arbitrary, Debug)]
struct Case {
    base: Vec<(u8, u8)>,
    base_title: Option<bool>,
    local: Vec<Edit>,
    remote: Vec<Edit>,
    remote_v: u8,
}

fn apply(base: &Thread, edits: &[Edit]) -> Thread {
    let mut t = base.clone();
    for e in edits.iter().take(16) {
        match *e {
            Edit::Append { id, ts } => {
                let id = format!("m{}", id % 12);
                if t.message(&id).is_none() && !t.deleted.contains(&id) {
                    t.messages.push(Message::new(id, "user", "new", u64::from(ts % 8)));
                }
            }
            Edit::Change { at, text } if !t.messages.is_empty() => {
                let n = t.messages.len();
                t.messages[usize::from(at) % n].content = if text { "x" } else { "y" }.into();
            }
            Edit::Delete { at } if !t.messages.is_empty() => {
                let n = t.messages.len();
                let gone = t.messages.remove(usize::from(at) % n);
                t.deleted.insert(gone.id);
            }
            Edit::Title(title) => match title {
                Some(x) => {
                    t.fields.insert("title".into(), json!(x));
                }
                None => {
                    t.fields.remove("title");
                }
            },
            _ => {}
        }
    }
    t
}

fn ids(t: &Thread) -> BTreeSet<&str> {
    t.messages.iter().map(|m| m.id.as_str()).collect()
}

fuzz_target!(|case: Case| {
    let mut base = Thread::new("t");
    for (id, ts) in case.base.iter().take(8) {
        let id = format!("m{}", id % 12);
        if base.message(&id).is_none() {
            base.messages.push(Message::new(id, "user", "base", u64::from(ts % 8)));
        }
    }
    if let Some(x) = case.base_title {
        base.fields.insert("title".into(), json!(x));
    }
    let local = apply(&base, &case.local);
    let mut remote = apply(&base, &case.remote);
    remote.v = u64::from(case.remote_v);
    let merge = ThreadMerge::default();
    let merged = merge.merge_reported(&base, &local, &remote);
    let out = &merged.thread;

    assert!(out.validate().is_ok(), "{out:?}");
    assert_eq!(out.messages.len(), ids(out).len(), "a message twice");
    let live: BTreeSet<&str> = ids(&local)
        .union(&ids(&remote))
        .copied()
        .filter(|id| !out.deleted.contains(*id))
        .collect();
    assert_eq!(ids(out), live);
    assert!(out
        .deleted
        .iter()
        .all(|id| local.deleted.contains(id) || remote.deleted.contains(id)));
    for (side, other) in [(&local, &remote), (&remote, &local)] {
        for id in &side.deleted {
            if other.message(id) == base.message(id) || other.deleted.contains(id) {
                assert!(out.deleted.contains(id) && out.message(id).is_none(), "{id} came back");
            }
        }
    }
    // No local change dropped without a word.
    let version = |t: &Thread, id: &str| t.message(id).map(Message::to_value);
    let reported = |what: &Contested| {
        merged
            .overrides
            .iter()
            .any(|o| &o.what == what && o.local_lost())
    };
    for id in ids(&local).into_iter().chain(local.deleted.iter().map(String::as_str)) {
        let mine = version(&local, id);
        if mine != version(&base, id) && version(out, id) != mine {
            assert!(reported(&Contested::Message { id: id.into() }), "{id} dropped silently");
        }
    }
    for o in &merged.overrides {
        let held = match &o.what {
            Contested::Message { id } => version(out, id),
            Contested::Field { key } => out.fields.get(key).cloned(),
            _ => unreachable!(),
        };
        assert_eq!(held, o.kept);
    }
    // Deterministic, symmetric on ids and tombstones, and the identities.
    assert_eq!(merge.merge_reported(&base, &local, &remote), merged);
    let swapped = merge.merge(&base, &remote, &local);
    assert_eq!(ids(&swapped), ids(out));
    assert_eq!(swapped.deleted, out.deleted);
    assert_eq!(merge.merge(&base, &local, &local), local);
    let v = remote.v.max(base.v);
    assert_eq!(merge.merge(&base, &base, &remote), Thread { v, ..remote.clone() });
});
