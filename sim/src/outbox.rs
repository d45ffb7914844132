//! Crash and restart with a durable outbox (docs/ARCHITECTURE.md §Durable outbox), in simulated time.
//!
//! [`run_crashes`] drives sessions with [`SessionConfig::outbox`] on against the
//! [`ServerModel`] over a lossy network. A model driver carries out the outbox outputs into a
//! journal that a group commit makes durable now and then; an event counts as acknowledged once
//! the commit holding its [`Output::Persist`] is done. At random steps the process "crashes":
//! the session, the requests in flight and the journal not yet committed are lost. A new
//! session starts on the durable outbox and restores it, in order, as room allows, before any
//! new event. At the end every acknowledged event must be on the server exactly once, in input
//! order, and the worker document must have converged.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tether_core::batch::{EnqueueError, Event, EventId, PreparedEvent};
use tether_core::session::{
    Output, Request, Session, SessionConfig, SessionError, Stream, TransportError, decode_record,
    encode_record,
};
use tether_core::{Instant, Poll, Rng};

use tether_model::{SEQ_FIELD, ServerConfig, ServerModel, seq_of};

/// What to simulate.
#[derive(Clone, Debug)]
pub struct CrashConfig {
    /// Every random choice derives from it.
    pub seed: u64,
    /// Events the application gives, in order (each carries its [`SEQ_FIELD`]).
    pub events: u64,
    /// State patches the application gives, interleaved with the events.
    pub patches: u64,
    /// Crashes, at random steps.
    pub crashes: u32,
    /// The chance that a request or its response is lost.
    pub loss: f64,
    /// The chance that a step ends with a group commit of the journal.
    pub commit: f64,
    /// The session's queue bound: replay goes in chunks of at most this.
    pub max_queue_items: usize,
}

impl CrashConfig {
    /// A run of `events` events with a few crashes on a lossy network.
    pub fn new(seed: u64, events: u64) -> Self {
        CrashConfig {
            seed,
            events,
            patches: events / 4,
            crashes: 5,
            loss: 0.1,
            commit: 0.5,
            max_queue_items: 16,
        }
    }
}

/// What a run saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CrashReport {
    /// Crashes that happened.
    pub crashes: u32,
    /// Events whose persist was committed: acknowledged.
    pub acknowledged: u64,
    /// Events restored from the outbox after a crash.
    pub restored: u64,
    /// Duplicates the server dropped (resends of events it already had).
    pub duplicates: u64,
    /// Every broken invariant, described.
    pub violations: Vec<String>,
}

/// The outbox as a store would keep it, and the journal a group commit makes durable.
#[derive(Default)]
struct Disk {
    events: BTreeMap<u64, Vec<u8>>,
    state: Vec<Map<String, Value>>,
    journal: Vec<Op>,
    next_key: u64,
}

enum Op {
    Put(u64, Vec<u8>, Option<u64>),
    Delete(u64),
    State(Vec<Map<String, Value>>),
}

impl Disk {
    /// Makes the journal durable; returns the seqs of the events it acknowledged.
    fn commit(&mut self) -> Vec<u64> {
        let mut acked = Vec::new();
        for op in self.journal.drain(..) {
            match op {
                Op::Put(key, record, seq) => {
                    self.events.insert(key, record);
                    acked.extend(seq);
                }
                Op::Delete(key) => {
                    self.events.remove(&key);
                }
                Op::State(state) => self.state = state,
            }
        }
        acked
    }
}

/// One life of the process: a session, what is in flight, the outbox's keys.
struct Life {
    session: Session,
    in_flight: VecDeque<Request>,
    keys: HashMap<(Stream, EventId), u64>,
    /// Stored records still to restore, in order.
    replay: VecDeque<(u64, Vec<u8>)>,
}

/// Runs one seeded crash simulation and checks its invariants.
pub fn run_crashes(config: &CrashConfig) -> CrashReport {
    let mut rng = Rng::new(config.seed);
    let mut server = ServerModel::new(ServerConfig {
        session_id: Some("outbox".into()),
        ..ServerConfig::default()
    });
    let mut disk = Disk::default();
    let mut report = CrashReport::default();
    let mut now = Instant::ZERO;
    let mut next_event = 0u64;
    let mut next_patch = 0u64;
    // Per seq: acknowledged. Per patch key: every value given, and the index of the last
    // acknowledged one.
    let mut acked: Vec<u64> = Vec::new();
    let mut patches: Vec<(String, u64)> = Vec::new();
    let mut pending_patches: Vec<usize> = Vec::new();
    let mut acked_patches: Vec<usize> = Vec::new();
    let mut life = start(config, &mut rng, now, &disk, &mut report);
    let mut steps = 0u64;
    loop {
        steps += 1;
        if steps > 200_000 {
            report.violations.push("step limit: livelock?".into());
            break;
        }
        // The model driver restores what fits, then carries out the outputs.
        replay(&mut life, now, &mut report);
        drain(&mut life, &mut disk, now);
        let work_left = next_event < config.events || next_patch < config.patches;
        match rng.below(10) {
            0..=3 if !life.in_flight.is_empty() => {
                let Some(request) = life.in_flight.pop_front() else {
                    continue;
                };
                if rng.unit() < config.loss {
                    life.session
                        .handle_transport_error(now, request.id, &lost());
                    continue;
                }
                let response = server.handle(now, request.endpoint, &request.body);
                if rng.unit() < config.loss {
                    life.session
                        .handle_transport_error(now, request.id, &lost());
                } else {
                    life.session.handle_response(now, request.id, response);
                }
            }
            4..=6 if work_left && life.replay.is_empty() => {
                if next_patch < config.patches && rng.below(4) == 0 {
                    let key = format!("k{}", next_patch % 7);
                    let patch = json!({ key.clone(): next_patch });
                    if life.session.patch_state(now, patch).is_ok() {
                        patches.push((key, next_patch));
                        pending_patches.push(patches.len() - 1);
                        next_patch += 1;
                    }
                } else if next_event < config.events {
                    let event = Event::new(json!({ SEQ_FIELD: next_event }));
                    match life.session.send_event(now, event) {
                        Ok(_) => next_event += 1,
                        Err(SessionError::Enqueue {
                            error: EnqueueError::QueueFull { .. },
                            ..
                        }) => {}
                        Err(e) => report.violations.push(format!("send refused: {e}")),
                    }
                }
            }
            7 if report.crashes < config.crashes => {
                // A crash: everything not committed is lost, and a new life starts.
                disk.journal.clear();
                pending_patches.clear();
                report.crashes += 1;
                now = now.saturating_add(Duration::from_millis(rng.below(2000)));
                life = start(config, &mut rng, now, &disk, &mut report);
                continue;
            }
            _ => {
                let wake = match life.session.poll_output() {
                    Poll::Timeout(Some(wake)) => Some(wake.at),
                    _ => None,
                };
                match wake {
                    Some(at) => now = now.max(at),
                    None if !work_left && life.replay.is_empty() && life.in_flight.is_empty() => {
                        break;
                    }
                    None => now = now.saturating_add(Duration::from_millis(100)),
                }
                life.session.handle_timeout(now);
            }
        }
        if rng.unit() < config.commit {
            drain(&mut life, &mut disk, now);
            acked.extend(disk.commit());
            acked_patches.append(&mut pending_patches);
        }
        let idle = life.session.state_unacknowledged() == 0
            && Stream::ALL
                .iter()
                .all(|s| life.session.uploader_depth(*s).events == 0);
        if !work_left && life.replay.is_empty() && idle && report.crashes >= config.crashes {
            drain(&mut life, &mut disk, now);
            acked.extend(disk.commit());
            acked_patches.append(&mut pending_patches);
            break;
        }
    }
    check(
        &server,
        &disk,
        &acked,
        &patches,
        &acked_patches,
        &mut report,
    );
    let mut view = life.session.state_view().clone();
    let mut document = server.document();
    for doc in [&mut view, &mut document] {
        if let Some(map) = doc.as_object_mut() {
            map.retain(|k, _| k.starts_with('k'));
        }
    }
    if view != document {
        report.violations.push(format!(
            "the document did not converge: the client holds {view}, the server {document}"
        ));
    }
    report.acknowledged = acked.len() as u64;
    report.duplicates = server.duplicates(Stream::Events);
    report
}

fn lost() -> TransportError {
    TransportError {
        message: "lost".into(),
    }
}

/// A new process on the durable outbox: a session with the outbox on, its stored state given
/// again, its stored events queued for replay.
fn start(
    config: &CrashConfig,
    rng: &mut Rng,
    now: Instant,
    disk: &Disk,
    report: &mut CrashReport,
) -> Life {
    let mut session_config = SessionConfig::new("outbox").with_epoch(1).with_outbox(true);
    session_config.events.max_queue_items = config.max_queue_items;
    session_config.events.max_batch_items = config.max_queue_items.min(8);
    session_config.connect.max_attempts = None;
    let mut session = match Session::new(session_config, rng.fork(), now) {
        Ok(session) => session,
        Err(e) => panic!("the crash simulator's session config is valid: {e}"),
    };
    for patch in &disk.state {
        if let Err(e) = session.patch_state(now, Value::Object(patch.clone())) {
            report.violations.push(format!("stored state refused: {e}"));
        }
    }
    Life {
        session,
        in_flight: VecDeque::new(),
        keys: HashMap::new(),
        replay: disk.events.iter().map(|(k, v)| (*k, v.clone())).collect(),
    }
}

/// Restores stored events in order while there is room.
fn replay(life: &mut Life, now: Instant, report: &mut CrashReport) {
    while let Some((key, record)) = life.replay.pop_front() {
        let (stream, event): (Stream, PreparedEvent) = match decode_record(&record) {
            Ok(decoded) => decoded,
            Err(e) => {
                report.violations.push(format!("record {key}: {e}"));
                continue;
            }
        };
        match life.session.restore(now, stream, event) {
            Ok(id) => {
                life.keys.insert((stream, id), key);
                report.restored += 1;
            }
            Err(SessionError::Enqueue {
                error: EnqueueError::QueueFull { .. },
                ..
            }) => {
                life.replay.push_front((key, record));
                return;
            }
            Err(e) => report.violations.push(format!("restore refused: {e}")),
        }
    }
}

/// Carries out the session's outputs: requests go in flight, outbox outputs to the journal.
fn drain(life: &mut Life, disk: &mut Disk, _now: Instant) {
    while let Poll::Output(output) = life.session.poll_output() {
        match output {
            Output::Send(request) => life.in_flight.push_back(request),
            Output::Cancel(id) => life.in_flight.retain(|r| r.id != id),
            Output::Persist { stream, id, event } => {
                let key = disk.next_key;
                disk.next_key += 1;
                life.keys.insert((stream, id), key);
                let seq = event.payload().ok().as_ref().and_then(seq_of);
                disk.journal
                    .push(Op::Put(key, encode_record(stream, &event), seq));
            }
            Output::Forget { stream, events } => {
                for id in events {
                    if let Some(key) = life.keys.remove(&(stream, id)) {
                        disk.journal.push(Op::Delete(key));
                    }
                }
            }
            Output::PersistState(state) => disk.journal.push(Op::State(state)),
            _ => {}
        }
    }
}

fn check(
    server: &ServerModel,
    disk: &Disk,
    acked: &[u64],
    patches: &[(String, u64)],
    acked_patches: &[usize],
    report: &mut CrashReport,
) {
    let on_server = server.seqs(Stream::Events);
    let mut position: HashMap<u64, usize> = HashMap::new();
    for (i, seq) in on_server.iter().enumerate() {
        if position.insert(*seq, i).is_some() {
            report
                .violations
                .push(format!("event {seq} is on the server twice"));
        }
    }
    let mut last = None;
    for seq in acked {
        match position.get(seq) {
            None => report
                .violations
                .push(format!("acknowledged event {seq} never reached the server")),
            Some(&at) => {
                if last.is_some_and(|l| l > at) {
                    report
                        .violations
                        .push(format!("acknowledged event {seq} landed out of order"));
                }
                last = Some(at);
            }
        }
    }
    if !disk.events.is_empty() {
        report.violations.push(format!(
            "{} events still in the outbox at the end",
            disk.events.len()
        ));
    }
    // Every key holds the value of its last acknowledged patch or of a later one.
    let document = server.document();
    for &i in acked_patches {
        let (key, _) = &patches[i];
        let later: Vec<u64> = patches[i..]
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| *v)
            .collect();
        let held = document.get(key).and_then(Value::as_u64);
        if !held.is_some_and(|h| later.contains(&h)) {
            report.violations.push(format!(
                "state key {key} holds {held:?}, not an acknowledged value or a later one"
            ));
        }
    }
}
