//! [`ThreadHandle`]: the caller's side of thread sync, the same on every runtime.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
// `shared_threads` is `tether_core::thread`, aliased: CI greps the driver for `thread::` paths.
use shared_threads::{Edit, Message, StatusChange, SyncStatus, Thread, ThreadSync};
use tether_core::Instant;
use tether_core::thread as shared_threads;

use crate::shared::Shared;
use crate::thread_report::{ThreadCallError, ThreadCloseReport, ThreadFlushError, ThreadReport};
use crate::threads::{ThreadPart, ThreadStartError};
use crate::wait::{Pending, Subscription};

/// The caller's handle to the thread sync of a running session (docs/PROTOCOL.md §Thread sync),
/// the same on every runtime: it drives a core `ThreadSync` over the session's transport and
/// loop. Cheap to clone. Edits apply to the local view at once and are pushed in the
/// background; a shim wraps the [`Pending`] answers (parking a thread or awaiting).
///
/// It starts pushing and pulling once the session knows its worker epoch. Closing the session
/// closes thread sync too (with the same timeout); any other end of the session hands back
/// what is unsynced at once.
#[derive(Clone)]
pub struct ThreadHandle {
    shared: Arc<Shared>,
}

impl ThreadHandle {
    /// Starts thread sync on the session `shared` drives.
    ///
    /// # Errors
    /// See [`ThreadStartError`].
    pub fn start(
        shared: &Arc<Shared>,
        config: shared_threads::Config,
    ) -> Result<ThreadHandle, ThreadStartError> {
        shared.with(|d, now| {
            let part = ThreadPart::new(config, d.thread_seed())?;
            d.install_threads(now, part)
        })?;
        Ok(ThreadHandle {
            shared: Arc::clone(shared),
        })
    }

    fn edit<R>(
        &self,
        f: impl FnOnce(&mut ThreadSync, Instant) -> Result<R, shared_threads::Error>,
    ) -> Result<R, ThreadCallError> {
        self.shared.with(|d, now| {
            d.with_threads(now, |part, now| match part {
                Some(part) => part.edit(now, f),
                None => Err(ThreadCallError::Closed),
            })
        })
    }

    /// A local edit: applied, queued to push, and journaled when the session keeps an outbox.
    fn apply(&self, thread: &str, edit: Edit) -> Result<(), ThreadCallError> {
        self.shared.with(|d, now| {
            d.with_threads(now, |part, now| match part {
                Some(part) => part.apply(now, thread, edit),
                None => Err(ThreadCallError::Closed),
            })
        })
    }

    fn read<R>(&self, f: impl FnOnce(&ThreadSync) -> R) -> Option<R> {
        let driver = self.shared.lock();
        driver.threads.as_deref().map(|t| f(t.sync()))
    }

    /// Appends `message` to `thread` (created if new).
    ///
    /// # Errors
    /// [`ThreadCallError::Invalid`] for a malformed message or a repeated id.
    pub fn add_message(&self, thread: &str, message: Message) -> Result<(), ThreadCallError> {
        self.apply(thread, Edit::Add(message))
    }

    /// Appends a message given as JSON (`{"id", "role", "content", "timestamp"}`).
    ///
    /// # Errors
    /// [`ThreadCallError::Invalid`] naming what is malformed.
    pub fn add_message_json(&self, thread: &str, message: &Value) -> Result<(), ThreadCallError> {
        let message = Message::from_value(message).map_err(ThreadCallError::Invalid)?;
        self.add_message(thread, message)
    }

    /// Replaces a message of `thread`, by id.
    ///
    /// # Errors
    /// [`ThreadCallError::Invalid`], e.g. for an unknown thread or message.
    pub fn update_message(&self, thread: &str, message: Message) -> Result<(), ThreadCallError> {
        self.apply(thread, Edit::Update(message))
    }

    /// Deletes a message of `thread`, by id. The delete sticks through merges (a tombstone:
    /// `"deleted": [id, ...]` on the wire), so a concurrent append or edit of another message
    /// does not bring it back.
    ///
    /// # Errors
    /// [`ThreadCallError::Invalid`], e.g. for an unknown thread or message.
    pub fn delete_message(&self, thread: &str, message: &str) -> Result<(), ThreadCallError> {
        self.apply(thread, Edit::Delete(message.into()))
    }

    /// Sets (`Some`) or removes (`None`) a top-level field of `thread`, e.g. `title`.
    ///
    /// # Errors
    /// [`ThreadCallError::Invalid`], e.g. for a reserved key (`id`, `v`, `messages`).
    pub fn set_field(
        &self,
        thread: &str,
        key: &str,
        value: Option<Value>,
    ) -> Result<(), ThreadCallError> {
        self.apply(thread, Edit::Set(key.into(), value))
    }

    /// Replaces a thread's content from JSON (validated first).
    ///
    /// # Errors
    /// [`ThreadCallError::Invalid`] naming what is malformed.
    pub fn put_thread(&self, thread: &Value) -> Result<(), ThreadCallError> {
        let parsed = Thread::from_value(thread).map_err(ThreadCallError::Invalid)?;
        let id = parsed.id.clone();
        self.apply(&id, Edit::Put(parsed))
    }

    /// The caller's word on connectivity: offline, only the probe runs and edits queue.
    pub fn set_online(&self, online: bool) {
        self.shared.with(|d, now| {
            d.with_threads(now, |part, now| {
                if let Some(sync) = part.and_then(ThreadPart::sync_mut) {
                    sync.set_online(now, online);
                }
            });
        });
    }

    /// Pushes `thread`'s queued edits now, skipping the push window (at once unless a push is
    /// in flight or backing off; while paused or offline, first once syncing runs again). A
    /// hold after failures pinned on the thread is lifted. Whether the thread had edits
    /// waiting (`false`: synced, or all it has is in the push in flight).
    ///
    /// # Errors
    /// [`ThreadCallError::Invalid`] for a thread this replica does not hold;
    /// [`ThreadCallError::Closed`] or [`ThreadCallError::Stopped`].
    pub fn sync_now(&self, thread: &str) -> Result<bool, ThreadCallError> {
        self.edit(|s, now| s.sync_now(now, thread))
    }

    /// Pauses syncing: no request goes (push, pull or probe) until [`resume`](Self::resume);
    /// edits still apply and queue, and a request in flight still settles. Reported as
    /// [`ThreadReport::Paused`]. A close still drains: it resumes first.
    pub fn pause(&self) {
        self.shared.with(|d, now| {
            d.with_threads(now, |part, now| {
                if let Some(sync) = part.and_then(ThreadPart::sync_mut) {
                    sync.pause(now);
                }
            });
        });
    }

    /// Resumes after [`pause`](Self::pause): pulls at once and pushes what queued meanwhile.
    /// Reported as [`ThreadReport::Resumed`].
    pub fn resume(&self) {
        self.shared.with(|d, now| {
            d.with_threads(now, |part, now| {
                if let Some(sync) = part.and_then(ThreadPart::sync_mut) {
                    sync.resume(now);
                }
            });
        });
    }

    /// Whether the caller paused syncing.
    pub fn is_paused(&self) -> bool {
        self.read(ThreadSync::is_paused).unwrap_or(false)
    }

    /// Pulls as soon as possible.
    pub fn pull_now(&self) {
        self.shared.with(|d, now| {
            d.with_threads(now, |part, now| {
                if let Some(sync) = part.and_then(ThreadPart::sync_mut) {
                    sync.pull_now(now);
                }
            });
        });
    }

    /// A thread's view: the local copy with every local edit applied.
    pub fn thread(&self, id: &str) -> Option<Thread> {
        self.read(|s| s.thread(id).cloned()).flatten()
    }

    /// Every thread's view, by id.
    pub fn threads(&self) -> Vec<Thread> {
        self.read(|s| s.threads().cloned().collect())
            .unwrap_or_default()
    }

    /// A thread's sync status.
    pub fn status(&self, id: &str) -> SyncStatus {
        self.read(|s| s.status(id)).unwrap_or_default()
    }

    /// Every thread's sync status, by id.
    pub fn sync_statuses(&self) -> BTreeMap<String, SyncStatus> {
        self.read(|s| s.statuses().clone()).unwrap_or_default()
    }

    /// Threads with changes the server does not hold yet.
    pub fn pending(&self) -> usize {
        self.read(ThreadSync::pending).unwrap_or(0)
    }

    /// Whether pushes and pulls may go (not offline).
    pub fn is_online(&self) -> bool {
        self.read(ThreadSync::is_online).unwrap_or(false)
    }

    /// Every status change from now on, per thread, starting with each known thread's
    /// current status; it ends once thread sync has ended.
    pub fn statuses(&self) -> Subscription<StatusChange> {
        self.shared.with(|d, now| {
            d.with_threads(now, |part, _| match part {
                Some(part) => part.statuses(),
                None => crate::threads::ended(),
            })
        })
    }

    /// The threads with changes the server does not hold yet (queued or in flight), by id:
    /// the current set first, then the set whenever it changes (empty once everything is
    /// synced); it ends once thread sync has ended.
    pub fn pending_threads(&self) -> Subscription<Vec<String>> {
        self.shared.with(|d, now| {
            d.with_threads(now, |part, _| match part {
                Some(part) => part.pending_threads(),
                None => crate::threads::ended(),
            })
        })
    }

    /// Every report from now on: rejections (with the refused copy and the reason), remote
    /// updates, retries, offline/online, hand-backs.
    pub fn reports(&self) -> Subscription<ThreadReport> {
        self.shared.with(|d, now| {
            d.with_threads(now, |part, _| match part {
                Some(part) => part.reports(),
                None => crate::threads::ended(),
            })
        })
    }

    /// Waits until every edit given before is on the server and a pull made after this call
    /// has answered (so the view holds what the server held then), or `timeout` passes.
    pub fn flush(&self, timeout: Duration) -> Pending<Result<(), ThreadFlushError>> {
        self.shared.with(|d, now| {
            d.with_threads(now, |part, now| match part {
                Some(part) => part.flush(now, timeout),
                None => Pending::ready(Err(ThreadFlushError::Closed)),
            })
        })
    }

    /// Stops intake, pushes what is queued for at most `timeout`, hands back what is left,
    /// and answers with the report. The session goes on.
    pub fn close(&self, timeout: Duration) -> Pending<ThreadCloseReport> {
        self.shared.with(|d, now| {
            d.with_threads(now, |part, now| match part {
                Some(part) => {
                    let pending = part.await_close();
                    part.close(now.saturating_add(timeout));
                    pending
                }
                None => Pending::ready(ThreadCloseReport::default()),
            })
        })
    }
}

impl fmt::Debug for ThreadHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadHandle")
            .field("pending", &self.pending())
            .finish_non_exhaustive()
    }
}
