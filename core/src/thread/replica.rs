//! The local replica of the threads (seed 002's `OptimisticSyncManager`): for each thread, the
//! last synced copy and the optimistic view with every local edit applied.
//!
//! Edits apply to the view at once; a remote copy becomes the synced copy and is merged three
//! ways into the view; a refused thread rolls back to its synced copy. The replica only keeps
//! copies: when to push is the [`PushOrchestrator`](super::PushOrchestrator)'s business.
//!
//! ```
//! use tether_core::thread::{Message, Replica, Thread};
//!
//! let mut replica = Replica::default();
//! replica.add_message("t", Message::new("a", "user", "hi", 1))?;
//! replica.add_message("t", Message::new("b", "user", "oops", 2))?;
//! replica.delete_message("t", "b")?;
//! let mut remote = Thread::new("t");
//! remote.v = 1;
//! remote.messages.push(Message::new("b", "user", "oops", 2)); // the server never saw the delete
//! remote.messages.push(Message::new("c", "user", "theirs", 3));
//! let rebased = replica.rebase(remote).expect("newer than the synced copy");
//! let ids: Vec<&str> = replica.thread("t").unwrap().messages.iter().map(|m| m.id.as_str()).collect();
//! assert_eq!(ids, ["a", "c"]); // the delete stuck, the remote's message arrived
//! assert!(rebased.changed && !rebased.synced);
//! # Ok::<(), tether_core::thread::Error>(())
//! ```

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use serde_json::Value;

use super::merge::{DefaultPolicy, MergePolicy, Override, ThreadMerge};
use super::model::{Error, Message, Thread};
use super::wire::SyncItem;

#[derive(Clone, Debug)]
struct Copies {
    /// The last synced copy: what the server held when we last knew.
    base: Option<Thread>,
    /// The optimistic view; its `v` is the base's.
    local: Thread,
    /// The messages each unconfirmed push changed (added or edited against the synced copy it
    /// was based on), with that base's version, oldest first, at most [`MAX_UNCONFIRMED`]: a
    /// push whose answer was lost may have been applied, and a remote copy holding one of
    /// these messages holds this replica's own change, not another client's.
    unconfirmed: Vec<Unconfirmed>,
}

/// One push whose outcome is not known yet.
#[derive(Clone, Debug)]
struct Unconfirmed {
    /// The version the push was based on: the server applies it only onto that version.
    base: u64,
    /// The messages it added or changed.
    changed: Vec<Message>,
}

/// Pushes remembered per thread while none is confirmed: a retried push usually carries the
/// same changes; more than this means a long outage with many edits, and the oldest are
/// forgotten (their own edits would then merge as another client's).
const MAX_UNCONFIRMED: usize = 8;

/// One local edit of a thread, as data (so a caller can queue, log or bridge edits).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Edit {
    /// [`Replica::add_message`].
    Add(Message),
    /// [`Replica::update_message`].
    Update(Message),
    /// [`Replica::delete_message`], by message id.
    Delete(String),
    /// [`Replica::set_field`]: a key and its value (`None` removes it).
    Set(String, Option<Value>),
    /// [`Replica::put_thread`]: the thread's whole content (its `id` and `v` are ignored).
    Put(Thread),
}

/// What taking a remote copy did to a thread.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rebased {
    /// The view changed.
    pub changed: bool,
    /// The view is the remote copy: nothing local is left to push.
    pub synced: bool,
    /// Every both-sided change the merge policy decided (see [`Override`]).
    pub overrides: Vec<Override>,
}

/// A thread the server refused, rolled back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolledBack {
    /// The refused view, with every edit it held.
    pub refused: Thread,
    /// What the view holds now: the last synced copy, or `None` (the thread was new and is gone).
    pub restored: Option<Thread>,
}

/// A thread the server refused, rolled back and handed back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedThread {
    /// The thread.
    pub id: String,
    /// Why: the server's reason, or the status of a permanent failure.
    pub reason: String,
    /// The refused local copy, with every edit it held.
    pub refused: Thread,
    /// What the view holds now: the last synced copy, or `None` (the thread was new).
    pub restored: Option<Thread>,
}

/// The replica. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Replica<P: MergePolicy = DefaultPolicy> {
    merge: ThreadMerge<P>,
    threads: BTreeMap<String, Copies>,
}

impl Default for Replica<DefaultPolicy> {
    /// An empty replica with the default merge policy.
    fn default() -> Self {
        Replica::new(DefaultPolicy)
    }
}

impl<P: MergePolicy> Replica<P> {
    /// An empty replica merging with `policy`.
    pub fn new(policy: P) -> Self {
        Replica {
            merge: ThreadMerge::new(policy),
            threads: BTreeMap::new(),
        }
    }

    /// Applies one edit to a thread. Returns whether the view changed.
    ///
    /// # Errors
    /// The edit's [`Error`]; nothing changes then.
    pub fn apply(&mut self, thread: &str, edit: Edit) -> Result<bool, Error> {
        match edit {
            Edit::Add(message) => self.add_message(thread, message),
            Edit::Update(message) => self.update_message(thread, message),
            Edit::Delete(id) => self.delete_message(thread, &id),
            Edit::Set(key, value) => self.set_field(thread, &key, value),
            Edit::Put(content) => self.put_thread(Thread {
                id: thread.into(),
                ..content
            }),
        }
    }

    /// Appends a message, creating the thread if this replica does not hold it. Returns whether
    /// the view changed.
    ///
    /// # Errors
    /// [`Error`] for an invalid message, one whose id the thread holds, or a deleted id.
    pub fn add_message(&mut self, thread: &str, message: Message) -> Result<bool, Error> {
        self.edit(thread, true, |t| {
            if t.message(&message.id).is_some() {
                return Err(Error::DuplicateMessage { id: message.id });
            }
            t.messages.push(message);
            Ok(())
        })
    }

    /// Replaces the message with the same id.
    ///
    /// # Errors
    /// [`Error::UnknownThread`], [`Error::UnknownMessage`] or an invalid message.
    pub fn update_message(&mut self, thread: &str, message: Message) -> Result<bool, Error> {
        self.edit(thread, false, |t| {
            let slot = t
                .messages
                .iter_mut()
                .find(|m| m.id == message.id)
                .ok_or_else(|| Error::UnknownMessage {
                    id: message.id.clone(),
                })?;
            *slot = message;
            Ok(())
        })
    }

    /// Deletes a message and remembers its id as a tombstone, so the delete survives merges.
    /// Deleting an id already deleted changes nothing.
    ///
    /// # Errors
    /// [`Error::UnknownThread`] or [`Error::UnknownMessage`].
    pub fn delete_message(&mut self, thread: &str, id: &str) -> Result<bool, Error> {
        self.edit(thread, false, |t| {
            if t.deleted.contains(id) {
                return Ok(());
            }
            let before = t.messages.len();
            t.messages.retain(|m| m.id != id);
            if t.messages.len() == before {
                return Err(Error::UnknownMessage { id: id.into() });
            }
            t.deleted.insert(id.into());
            Ok(())
        })
    }

    /// Sets (or with `None` removes) a top-level field, creating the thread if needed.
    ///
    /// # Errors
    /// [`Error::ReservedField`] for `id`, `v`, `messages` or `deleted`.
    pub fn set_field(
        &mut self,
        thread: &str,
        key: &str,
        value: Option<Value>,
    ) -> Result<bool, Error> {
        self.edit(thread, true, |t| {
            match value {
                Some(value) => t.fields.insert(key.into(), value),
                None => t.fields.remove(key),
            };
            Ok(())
        })
    }

    /// Replaces a thread's content with `thread` (its `v` is ignored), creating it if needed.
    /// Messages it leaves out are deleted (tombstoned), as are the ids in its `deleted`.
    ///
    /// # Errors
    /// [`Error`] if `thread` is not valid or brings back a deleted id.
    pub fn put_thread(&mut self, thread: Thread) -> Result<bool, Error> {
        let id = thread.id.clone();
        self.edit(&id, true, |t| {
            let gone: Vec<String> = t
                .messages
                .iter()
                .filter(|m| thread.message(&m.id).is_none())
                .map(|m| m.id.clone())
                .collect();
            t.deleted.extend(gone);
            t.deleted.extend(thread.deleted);
            t.messages = thread.messages;
            t.fields = thread.fields;
            Ok(())
        })
    }

    fn edit(
        &mut self,
        id: &str,
        create: bool,
        f: impl FnOnce(&mut Thread) -> Result<(), Error>,
    ) -> Result<bool, Error> {
        let mut thread = match self.threads.get(id) {
            Some(copies) => copies.local.clone(),
            None if create && !id.is_empty() => Thread::new(id),
            None if create => return Err(Error::MissingId),
            None => return Err(Error::UnknownThread { id: id.into() }),
        };
        f(&mut thread)?;
        thread.validate()?;
        let copies = self.threads.entry(id.into()).or_insert_with(|| Copies {
            base: None,
            local: Thread::new(id),
            unconfirmed: Vec::new(),
        });
        if copies.local == thread {
            return Ok(false);
        }
        copies.local = thread;
        Ok(true)
    }

    /// Whether a remote copy is newer than the synced copy (or the thread is new here).
    pub fn is_newer(&self, remote: &Thread) -> bool {
        self.threads
            .get(&remote.id)
            .and_then(|c| c.base.as_ref())
            .is_none_or(|b| b.v < remote.v)
    }

    /// Makes `remote` the synced copy and merges the view's local changes into it (base = the
    /// old synced copy). Returns `None` (and changes nothing) if `remote` is not newer.
    pub fn rebase(&mut self, remote: Thread) -> Option<Rebased> {
        self.is_newer(&remote).then(|| self.take_remote(remote))
    }

    /// Like [`rebase`](Self::rebase), whatever the versions: a push's conflict names the
    /// server's copy, which is the one to merge with.
    pub fn take_remote(&mut self, remote: Thread) -> Rebased {
        let id = remote.id.clone();
        let Some(copies) = self.threads.get_mut(&id) else {
            self.threads.insert(
                id,
                Copies {
                    base: Some(remote.clone()),
                    local: remote,
                    unconfirmed: Vec::new(),
                },
            );
            return Rebased {
                changed: true,
                synced: true,
                overrides: Vec::new(),
            };
        };
        let mut base = copies.base.clone().unwrap_or_else(|| Thread::new(&id));
        own_changes_as_base(&mut base, &remote, &copies.unconfirmed);
        // A push based on a version older than the remote's was applied (the remote holds it)
        // or can never be (the server moved past its base): either way it is settled.
        copies.unconfirmed.retain(|push| push.base >= remote.v);
        let merged = self.merge.merge_reported(&base, &copies.local, &remote);
        let changed = !merged.thread.same_content(&copies.local);
        copies.local = Thread {
            v: remote.v,
            ..merged.thread
        };
        let synced = copies.local.same_content(&remote);
        copies.base = Some(remote);
        Rebased {
            changed,
            synced,
            overrides: merged.overrides,
        }
    }

    /// The server stored `pushed` as version `v`: it becomes the synced copy; the view, which
    /// may hold edits made since, takes the version.
    pub fn applied(&mut self, pushed: Thread, v: u64) {
        if let Some(copies) = self.threads.get_mut(&pushed.id) {
            copies.local.v = v;
            copies.base = Some(Thread { v, ..pushed });
            copies.unconfirmed.clear();
        }
    }

    /// Rolls a thread back to its synced copy (one never synced is dropped). `None` if the
    /// replica does not hold it.
    pub fn roll_back(&mut self, id: &str) -> Option<RolledBack> {
        let copies = self.threads.get_mut(id)?;
        let refused = copies.local.clone();
        let restored = copies.base.clone();
        copies.unconfirmed.clear();
        match &restored {
            Some(base) => copies.local = base.clone(),
            None => {
                self.threads.remove(id);
            }
        }
        Some(RolledBack { refused, restored })
    }

    /// [`item`](Self::item), for a push about to go out: the replica remembers what it
    /// pushed until the server confirms a push, so that if this push's answer is lost but the
    /// server applied it, the change comes back in a remote copy as this replica's own. (Without
    /// that, an edit whose answer was lost and then a delete of the same message merged as
    /// another client's edit against the delete, and the edit won: the message came back.)
    pub fn sending(&mut self, id: &str) -> Option<SyncItem> {
        let item = self.item(id)?;
        if let Some(copies) = self.threads.get_mut(id) {
            let base = copies.base.as_ref();
            let changed: Vec<Message> = copies
                .local
                .messages
                .iter()
                .filter(|m| base.and_then(|b| b.message(&m.id)) != Some(*m))
                .cloned()
                .collect();
            let push = Unconfirmed {
                base: item.base,
                changed,
            };
            let repeat = copies
                .unconfirmed
                .last()
                .is_some_and(|last| last.base == push.base && last.changed == push.changed);
            if !push.changed.is_empty() && !repeat {
                if copies.unconfirmed.len() == MAX_UNCONFIRMED {
                    copies.unconfirmed.remove(0);
                }
                copies.unconfirmed.push(push);
            }
        }
        Some(item)
    }

    /// The push item for a thread: its view, based on the synced version (0 if never synced).
    pub fn item(&self, id: &str) -> Option<SyncItem> {
        let copies = self.threads.get(id)?;
        let base = copies.base.as_ref().map_or(0, |b| b.v);
        Some(SyncItem {
            id: id.into(),
            base,
            thread: Thread {
                v: base,
                ..copies.local.clone()
            },
        })
    }

    /// The view of a thread.
    pub fn thread(&self, id: &str) -> Option<&Thread> {
        self.threads.get(id).map(|c| &c.local)
    }

    /// The last synced copy of a thread.
    pub fn synced(&self, id: &str) -> Option<&Thread> {
        self.threads.get(id).and_then(|c| c.base.as_ref())
    }

    /// Every thread's view, by id.
    pub fn threads(&self) -> impl Iterator<Item = &Thread> {
        self.threads.values().map(|c| &c.local)
    }

    /// The merge in use.
    pub fn merge(&self) -> &ThreadMerge<P> {
        &self.merge
    }
}

/// Where `remote` holds a message exactly as one of this replica's unconfirmed pushes changed
/// it, the change is this replica's own (applied by the server, its answer lost): the merge
/// takes that message as the base, so it is neither another client's edit nor contested by this
/// replica's later delete or edit of it. Messages a push carried unchanged prove nothing.
fn own_changes_as_base(base: &mut Thread, remote: &Thread, unconfirmed: &[Unconfirmed]) {
    for message in &remote.messages {
        let own = unconfirmed
            .iter()
            .any(|push| push.changed.contains(message));
        if !own || base.message(&message.id) == Some(message) {
            continue;
        }
        match base.messages.iter_mut().find(|m| m.id == message.id) {
            Some(slot) => *slot = message.clone(),
            None => base.messages.push(message.clone()),
        }
    }
}
