//! The callers of the thread-sync scenario on their [`ThreadHandle`]s, what they watch, and the
//! checks at the end.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use serde_json::{Value, json};
use tether_core::Instant;
use tether_core::session::RequestId;
use tether_core::thread::{self, Contested, Message, StatusChange, SyncStatus, Thread};
use tether_driver::runtime::{HttpRequest, Route};
use tether_driver::{Subscription, ThreadHandle, ThreadReport as Report};
use tether_model::fault::{Delivery, Fault};

use super::plan::{Edit, Happening, POISONED, Plan};
use super::{ThreadReport, ThreadRunConfig, ThreadStats};
use crate::world::{Scenario, World};

/// How long after the heal the run may take to quiesce.
const QUIESCE_WITHIN: Duration = Duration::from_secs(3_600);

/// The callers, their handles and what they saw.
pub(super) struct Callers<'a> {
    config: &'a ThreadRunConfig,
    handles: Vec<ThreadHandle>,
    reports: Vec<Subscription<Report>>,
    statuses: Vec<Subscription<StatusChange>>,
    plan: Plan,
    heal_at: Instant,
    healed: bool,
    /// Whether each caller said offline for its cut-off.
    says_offline: Vec<bool>,
    /// Each client's messages added, by (thread, id).
    added: Vec<Vec<(String, String)>>,
    /// Messages deleted, by (client, thread, id).
    deleted: Vec<(usize, String, String)>,
    /// Messages, by (thread, id), that a merge kept against a delete, as a client reported
    /// (the policy's edit-beats-delete): a violation here, where only a message's author
    /// changes it, and then a delete of one of these may not stick.
    kept_against_delete: BTreeSet<(String, String)>,
    poisoned: bool,
    /// Whether each client reported the poisoned thread.
    reported_poison: Vec<bool>,
    /// The highest version each client's view showed of each thread.
    versions: Vec<BTreeMap<String, u64>>,
    server_versions: BTreeMap<String, u64>,
    /// Pushes on the wire, to read their answers' conflicts.
    pushes: HashSet<(usize, RequestId)>,
    /// Threads a client was answered a conflict on and has not yet said what became of it. Its
    /// next status must say: a merge still to push (`Conflict`) or nothing left to push
    /// (`Synced`).
    awaiting_conflict: BTreeSet<(usize, String)>,
    violations: Vec<String>,
    stats: ThreadStats,
    pending_before_heal: BTreeMap<usize, usize>,
}

impl<'a> Callers<'a> {
    pub(super) fn new(config: &'a ThreadRunConfig, handles: Vec<ThreadHandle>, plan: Plan) -> Self {
        let n = handles.len();
        Callers {
            config,
            reports: handles.iter().map(ThreadHandle::reports).collect(),
            statuses: handles.iter().map(ThreadHandle::statuses).collect(),
            handles,
            plan,
            heal_at: Instant::from_duration(config.active),
            healed: false,
            says_offline: vec![false; n],
            added: vec![Vec::new(); n],
            deleted: Vec::new(),
            kept_against_delete: BTreeSet::new(),
            poisoned: false,
            reported_poison: vec![false; n],
            versions: vec![BTreeMap::new(); n],
            server_versions: BTreeMap::new(),
            pushes: HashSet::new(),
            awaiting_conflict: BTreeSet::new(),
            violations: Vec::new(),
            stats: ThreadStats::default(),
            pending_before_heal: BTreeMap::new(),
        }
    }

    fn happen(&mut self, world: &mut World, happening: Happening) {
        match happening {
            Happening::Edit(c, edit) => self.edit(world, c, edit),
            Happening::SyncNow(c, thread) => {
                world.line(format_args!("c{c} app sync now {thread}"));
                // A thread this replica does not hold yet is refused: nothing to push.
                let _ = self.handles[c].sync_now(&thread);
            }
            Happening::CutOff {
                client: c,
                isolation,
                says_offline,
            } => {
                world.client_mut(c).isolated = Some(isolation);
                let says = if says_offline {
                    ", app says offline"
                } else {
                    ""
                };
                world.line(format_args!("c{c} cut off ({isolation:?}){says}"));
                if says_offline {
                    self.says_offline[c] = true;
                    self.handles[c].set_online(false);
                }
            }
            Happening::Rejoin(c) => {
                let pending = self.handles[c].pending();
                self.pending_before_heal.insert(c, pending);
                world.client_mut(c).isolated = None;
                world.line(format_args!("c{c} rejoins, {pending} pending"));
                if std::mem::take(&mut self.says_offline[c]) {
                    self.handles[c].set_online(true);
                }
            }
            Happening::Pause(c) => {
                world.line(format_args!("c{c} app pauses"));
                self.handles[c].pause();
            }
            Happening::Resume(c) => {
                world.line(format_args!("c{c} app resumes"));
                self.handles[c].resume();
            }
            Happening::Poison => {
                world.line(format_args!("server poisons thread {POISONED}"));
                self.poisoned = true;
                let bad = json!({"id": POISONED, "messages": "not a list"});
                world.servers[0].threads_mut().poison(POISONED, bad);
                self.check_server_versions(world);
            }
        }
    }

    fn edit(&mut self, world: &mut World, c: usize, edit: Edit) {
        let handle = &self.handles[c];
        let ts = world.now().as_micros() / 1_000;
        let (what, result) = match edit {
            Edit::Add { thread, id } => {
                self.stats.messages += 1;
                let content = format!("hello from client {c}");
                let result = handle.add_message(&thread, Message::new(&id, "user", content, ts));
                self.added[c].push((thread.clone(), id.clone()));
                (format!("add {thread}/{id}"), result)
            }
            Edit::Title { thread, title } => {
                let result = handle.set_field(&thread, "title", Some(json!(title)));
                (format!("title {thread} {title}"), result)
            }
            Edit::Update { thread, id } => {
                let message = handle.thread(&thread).and_then(|t| t.message(&id).cloned());
                let Some(mut message) = message else {
                    self.violations.push(format!(
                        "client {c}: its message {thread}/{id} is gone from its view at {}",
                        world.now()
                    ));
                    return;
                };
                message.content.push_str(" (edited)");
                let result = handle.update_message(&thread, message);
                (format!("edit {thread}/{id}"), result)
            }
            Edit::Put { thread, summary } => {
                // Put back as the caller sees it: only a thread it holds.
                let Some(mut view) = handle.thread(&thread) else {
                    return;
                };
                view.fields.insert("summary".into(), json!(summary));
                let result = handle.put_thread(&view.to_value());
                (format!("put {thread} summary {summary}"), result)
            }
            Edit::Delete { thread, id } => {
                self.stats.deletes += 1;
                let result = handle.delete_message(&thread, &id);
                self.deleted.push((c, thread.clone(), id.clone()));
                (format!("delete {thread}/{id}"), result)
            }
        };
        world.line(format_args!("c{c} app {what}"));
        if let Err(e) = result {
            // Every planned edit is valid on the caller's own view, and nothing closes.
            self.violations.push(format!(
                "client {c}: {what} refused at {}: {e}",
                world.now()
            ));
        }
    }

    /// Hands every client's reports and status changes to the checks, as a caller reading
    /// its subscriptions would.
    fn read_reports(&mut self, world: &mut World) {
        for c in 0..self.handles.len() {
            while let Some(report) = self.reports[c].try_next() {
                match report {
                    Ok(report) => self.report(world, c, report),
                    Err(lagged) => self
                        .violations
                        .push(format!("client {c}'s reports lagged: {lagged}")),
                }
            }
            while let Some(change) = self.statuses[c].try_next() {
                match change {
                    Ok(change) => {
                        let said =
                            matches!(change.status, SyncStatus::Conflict | SyncStatus::Synced);
                        if self.awaiting_conflict.remove(&(c, change.thread.clone())) && !said {
                            self.violations.push(format!(
                                "client {c} was answered a conflict on {} and reported {} next",
                                change.thread, change.status
                            ));
                        }
                    }
                    Err(lagged) => self
                        .violations
                        .push(format!("client {c}'s statuses lagged: {lagged}")),
                }
            }
        }
    }

    fn report(&mut self, world: &mut World, c: usize, report: Report) {
        let now = world.now();
        match report {
            Report::Updated { id } => {
                if let Some(thread) = self.handles[c].thread(&id) {
                    self.check_version(c, &thread, now);
                }
            }
            Report::Rejected(r) => {
                world.line(format_args!("c{c} thread {} rejected: {}", r.id, r.reason));
                self.violations.push(format!(
                    "client {c}: thread {} rejected: {}",
                    r.id, r.reason
                ));
            }
            Report::Overridden(o) => {
                self.stats.overridden += 1;
                if let Contested::Message { id } = &o.what {
                    let delete_lost = o.kept.is_some() && (o.local.is_none() || o.remote.is_none());
                    if delete_lost {
                        world.line(format_args!(
                            "c{c} a merge kept {}/{id} against a delete",
                            o.thread
                        ));
                        // Only a message's author edits or deletes it here, so no delete
                        // of it meets another client's edit: keeping it is a false conflict
                        // (its author's own change, merged as another's).
                        self.violations.push(format!(
                            "client {c}: a merge kept {}/{id} against a delete, though only its \
                             author changes it",
                            o.thread
                        ));
                        self.kept_against_delete
                            .insert((o.thread.clone(), id.clone()));
                    }
                }
            }
            Report::InvalidThread(bad) => {
                self.stats.invalid += 1;
                world.line(format_args!(
                    "c{c} invalid thread {:?}: {}",
                    bad.id,
                    bad.error.reason()
                ));
                if bad.id.as_deref() == Some(POISONED) {
                    self.reported_poison[c] = true;
                } else {
                    self.violations.push(format!(
                        "client {c}: thread {:?} reported invalid: {}",
                        bad.id,
                        bad.error.reason()
                    ));
                }
            }
            Report::Held { id, failures } => {
                world.line(format_args!("c{c} holds {id} after {failures} failures"));
            }
            Report::Offline(reason) => {
                self.stats.offline += 1;
                world.line(format_args!("c{c} offline: {reason:?}"));
            }
            Report::Online => world.line(format_args!("c{c} online")),
            Report::Stopped { reason, .. } => {
                self.violations
                    .push(format!("client {c} stopped at {now}: {reason:?}"));
            }
            Report::HandedBack { unsynced } => {
                let ids: Vec<&str> = unsynced.iter().map(|t| t.id.as_str()).collect();
                self.violations
                    .push(format!("client {c} handed back {ids:?} at {now}"));
            }
            _ => {}
        }
    }

    fn check_version(&mut self, c: usize, thread: &Thread, now: Instant) {
        let seen = self.versions[c].entry(thread.id.clone()).or_default();
        if thread.v < *seen {
            self.violations.push(format!(
                "client {c}: thread {} went from v{} to v{} at {now}",
                thread.id, seen, thread.v
            ));
        }
        *seen = (*seen).max(thread.v);
    }

    fn check_server_versions(&mut self, world: &World) {
        for t in world.servers[0].threads().threads() {
            let seen = self.server_versions.entry(t.id.clone()).or_default();
            if t.v < *seen {
                self.violations.push(format!(
                    "server: thread {} went from v{} to v{}",
                    t.id, seen, t.v
                ));
            }
            *seen = t.v;
        }
    }

    /// Every message added is on the server and no client has anything pending.
    fn all_synced(&self, world: &World) -> bool {
        let store = world.servers[0].threads();
        self.stats.messages > 0
            && self.handles.iter().all(|h| h.pending() == 0)
            && self.added.iter().flatten().all(|(thread, id)| {
                self.deleted.iter().any(|(_, t, i)| t == thread && i == id)
                    || store
                        .thread(thread)
                        .is_some_and(|t| t.message(id).is_some())
            })
    }

    /// Every replica holds the server's threads (but the poisoned), synced, and has reported
    /// the poisoned one.
    fn quiescent(&self, world: &World) -> bool {
        let cheap = self.handles.iter().enumerate().all(|(c, h)| {
            h.pending() == 0
                && h.is_online()
                && !h.is_paused()
                && (!self.poisoned || self.reported_poison[c])
        });
        cheap
            && self.handles.iter().all(|h| {
                h.sync_statuses()
                    .iter()
                    .all(|(id, s)| *s == SyncStatus::Synced || id == POISONED)
            })
            && self
                .handles
                .iter()
                .all(|h| self.differs(world, h).is_empty())
    }

    /// The threads on which a client's view and the server's copy differ (the poisoned one
    /// aside).
    fn differs(&self, world: &World, handle: &ThreadHandle) -> BTreeSet<String> {
        let server: BTreeMap<&str, &Thread> = world.servers[0]
            .threads()
            .threads()
            .filter(|t| t.id != POISONED)
            .map(|t| (t.id.as_str(), t))
            .collect();
        let local: Vec<Thread> = handle.threads();
        let local: BTreeMap<&str, &Thread> = local.iter().map(|t| (t.id.as_str(), t)).collect();
        local
            .keys()
            .chain(server.keys())
            .filter(|k| local.get(*k) != server.get(*k))
            .map(|k| (*k).to_string())
            .collect()
    }

    /// The invariants, once quiesced or out of time, and the report.
    pub(super) fn finish(mut self, world: &mut World) -> ThreadReport {
        self.read_reports(world);
        let now = world.now();
        self.stats.steps = world.steps();
        let server = &world.servers[0];
        let (applied, conflicts, rejected) = server.threads().counts();
        self.stats.applied = applied;
        self.stats.conflicts = conflicts;
        self.stats.rejected = rejected;
        if world.step_limit_hit() {
            self.violations.push(format!(
                "the run hit its step bound ({})",
                self.config.max_steps
            ));
        } else if self.stats.quiesced_at.is_none() {
            self.violations.push(format!("no quiescence by {now}"));
        }
        let store = server.threads();
        for (c, handle) in self.handles.iter().enumerate() {
            let differ = self.differs(world, handle);
            if !differ.is_empty() {
                self.violations
                    .push(format!("client {c} differs from the server on {differ:?}"));
            }
            for (thread, status) in handle.sync_statuses() {
                if status != SyncStatus::Synced && thread != POISONED {
                    self.violations
                        .push(format!("client {c}: thread {thread} is {status}"));
                }
            }
            for (thread, id) in &self.added[c] {
                let count = store
                    .thread(thread)
                    .map_or(0, |t| t.messages.iter().filter(|m| &m.id == id).count());
                let gone = self.deleted.iter().any(|(_, t, i)| t == thread && i == id)
                    && !self
                        .kept_against_delete
                        .contains(&(thread.clone(), id.clone()));
                if count != usize::from(!gone) {
                    let want = if gone { "deleted, yet" } else { "added," };
                    self.violations.push(format!(
                        "message {id} of client {c} {want} is on the server {count} times"
                    ));
                }
            }
            for (who, thread, id) in &self.deleted {
                let kept = self
                    .kept_against_delete
                    .contains(&(thread.clone(), id.clone()));
                if !kept
                    && handle
                        .thread(thread)
                        .is_some_and(|t| t.message(id).is_some())
                {
                    self.violations.push(format!(
                        "message {id} deleted by client {who} is back in client {c}'s view"
                    ));
                }
            }
            if self.poisoned && !self.reported_poison[c] {
                self.violations.push(format!(
                    "client {c} never reported the poisoned thread {POISONED}"
                ));
            }
            let status = world.client(c).shared().lock().status();
            if status.is_terminal() {
                self.violations
                    .push(format!("client {c}'s session ended: {status}"));
            }
        }
        for (c, thread) in &self.awaiting_conflict {
            self.violations.push(format!(
                "client {c} was answered a conflict on {thread} and reported no conflict since"
            ));
        }
        let threads: Vec<Thread> = store.threads().cloned().collect();
        world.line(format_args!(
            "end: {} violation(s), server version {}",
            self.violations.len(),
            store.version()
        ));
        let (trace, _) = world.finish();
        ThreadReport {
            config: self.config.clone(),
            violations: self.violations,
            stats: self.stats,
            pending_before_heal: self.pending_before_heal,
            threads,
            trace,
        }
    }
}

impl Scenario for Callers<'_> {
    fn due(&self) -> Option<Instant> {
        let next = self.plan.keys().next().map(|k| k.0);
        match (self.healed, next) {
            (false, Some(at)) => Some(at.min(self.heal_at)),
            (false, None) => Some(self.heal_at),
            (true, next) => next,
        }
    }

    fn act(&mut self, world: &mut World) {
        let now = world.now();
        if !self.healed && now >= self.heal_at && self.plan.keys().next().is_none_or(|k| k.0 >= now)
        {
            self.healed = true;
            world.line(format_args!("** heal: no more faults"));
            return;
        }
        if let Some((_, happening)) = self.plan.pop_first() {
            self.happen(world, happening);
        }
    }

    fn sending(&mut self, world: &mut World, c: usize, request: &HttpRequest) {
        let query = request.url.split_once('?').map_or("", |(_, q)| q);
        let sep = if query.is_empty() { "" } else { "?" };
        match request.route {
            Route::Thread(endpoint) => match endpoint {
                thread::Endpoint::Pull => self.stats.pulls += 1,
                thread::Endpoint::Sync => {
                    self.stats.pushes += 1;
                    self.pushes.insert((c, request.id));
                }
                _ => self.stats.pings += 1,
            },
            _ => self.stats.worker_requests += 1,
        }
        if world.is_traced() {
            world.line(format_args!(
                "c{c} -> {} {}{sep}{query} {} B",
                request.id,
                request.route,
                request.body.len()
            ));
        }
    }

    fn sent(&mut self, world: &mut World, _: usize, request: &HttpRequest, fault: &Fault) {
        if *fault != Fault::None {
            self.stats.faults += 1;
        }
        if request.route == Route::Thread(thread::Endpoint::Sync) && fault.reaches_server() {
            self.check_server_versions(world);
        }
    }

    fn answered(&mut self, _: &mut World, c: usize, id: RequestId, delivery: &Delivery) {
        if !self.pushes.remove(&(c, id)) {
            return;
        }
        let Delivery::Respond { response, .. } = delivery else {
            return;
        };
        if response.status != 200 {
            return;
        }
        let Ok(body) = serde_json::from_slice::<Value>(&response.body) else {
            return;
        };
        let results = body.get("results").and_then(Value::as_array);
        for result in results.into_iter().flatten() {
            let conflict = result.get("status").and_then(Value::as_str) == Some("conflict");
            let valid = result
                .get("thread")
                .is_some_and(|t| Thread::from_value(t).is_ok());
            if let (true, true, Some(thread)) =
                (conflict, valid, result.get("id").and_then(Value::as_str))
            {
                self.awaiting_conflict.insert((c, thread.to_string()));
            }
        }
    }

    fn settle(&mut self, world: &mut World) {
        self.read_reports(world);
        if !self.plan.is_empty() {
            return;
        }
        if self.stats.all_synced_at.is_none() && self.all_synced(world) {
            self.stats.all_synced_at = Some(world.now());
        }
        if self.healed && self.stats.quiesced_at.is_none() && self.quiescent(world) {
            self.stats.quiesced_at = Some(world.now());
            world.line(format_args!("quiesced"));
        }
    }

    fn done(&self, world: &World) -> bool {
        self.stats.quiesced_at.is_some() || world.now() > self.heal_at + QUIESCE_WITHIN
    }
}
