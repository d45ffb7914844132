//! One client of the world: a real [`Driver`](tether_driver::Driver) around a real session,
//! shared as a shim shares it ([`Shared`]), the caller's [`Tether`] handle, and a [`Tap`] that
//! hands the world every core output the driver saw, in order.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tether_core::Instant;
use tether_core::session::{Output, Request, Session, Status};
use tether_driver::runtime::{NotifyFn, Origin, Shared};
use tether_driver::{BuildError, MemoryStore, Settings, Tap, Tether};
use tether_model::timeline::Recorder;

use super::clock::VirtualClock;

/// What a client's tap saw, in order, since the world last looked.
#[derive(Debug)]
pub enum TapEntry {
    /// A core output at its time, before the driver acted on it. A request's body is kept
    /// only when the world is traced or drawn (empty otherwise).
    Output(Instant, Output),
    /// The session's acknowledged document after a drain the world asked a sample of (see
    /// [`Client::sample_acknowledged`]) or that made the session connected.
    Acknowledged(Value),
}

/// A timeline recorder shared by the world and the clients' taps.
pub type SharedRecorder = Arc<Mutex<Recorder>>;

#[derive(Default)]
struct TapLog {
    entries: Vec<TapEntry>,
    sample: bool,
    /// Traced: keep the acknowledged document after every drain, and requests' bodies.
    follow: bool,
    acknowledged: Value,
    recorder: Option<SharedRecorder>,
}

/// The tap of a client started at `start`: it hands the world its times in the world's frame.
struct WorldTap(Arc<Mutex<TapLog>>, Duration);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Tap for WorldTap {
    fn output(&mut self, at: Instant, output: &Output) {
        let at = at + self.1;
        let mut log = lock(&self.0);
        if let Output::Status(Status::Connected) = output {
            log.sample = true;
        }
        // A request's body is read only by traces and the timeline: copy it only for them.
        let output = match output {
            Output::Send(request) if !log.follow && log.recorder.is_none() => {
                Output::Send(Request {
                    body: Vec::new(),
                    ..*request
                })
            }
            other => other.clone(),
        };
        log.entries.push(TapEntry::Output(at, output));
    }

    fn drained(&mut self, at: Instant, session: &Session) {
        let at = at + self.1;
        let mut log = lock(&self.0);
        if std::mem::take(&mut log.sample) {
            let value = session.state_acknowledged().clone();
            log.entries.push(TapEntry::Acknowledged(value));
        }
        if log.follow {
            log.acknowledged = session.state_acknowledged().clone();
        }
        if let Some(recorder) = &log.recorder {
            lock(recorder).sample_session(at, session);
        }
    }
}

/// How to start one client.
#[derive(Clone, Debug)]
pub struct ClientSpec {
    /// The driver's settings (URL, epoch or registration, core configuration, seed, budget,
    /// outbox). The world adds its tap.
    pub settings: Settings,
    /// The default seed for [`Settings::start`].
    pub seed: u64,
    /// Which of the world's servers it talks to.
    pub server: usize,
    /// The durable outbox's store it runs on, if any (kept to restart on it after a crash).
    pub store: Option<MemoryStore>,
}

/// How a client cut off from the network (alone: the others go on) fails its requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// Every request fails after the base round trip: connection refused.
    Refused,
    /// Every request is lost in silence: the client's deadline fires.
    Silent,
}

/// One client: driver, handle, tap.
pub struct Client {
    shared: Arc<Shared>,
    tether: Option<Tether>,
    log: Arc<Mutex<TapLog>>,
    pub(super) deadline: Option<Instant>,
    pub(super) finished: bool,
    /// When it started: its driver's time counts from there.
    start: Duration,
    /// Which of the world's servers it talks to.
    pub server: usize,
    /// Its outbox's store, if it keeps one.
    pub store: Option<MemoryStore>,
    /// Cut off from the network, alone, while set: its requests fail so and an answer that
    /// arrives meanwhile is lost (a transport error). Set and cleared by the scenario.
    pub isolated: Option<Isolation>,
}

impl Client {
    /// Starts a client whose driver wakes the world's loop with `notify`.
    pub(super) fn start(
        spec: ClientSpec,
        clock: &VirtualClock,
        recorder: Option<SharedRecorder>,
        follow: bool,
        notify: NotifyFn,
    ) -> Result<Client, BuildError> {
        let log = Arc::new(Mutex::new(TapLog {
            recorder,
            follow,
            ..TapLog::default()
        }));
        // The driver's time counts from its start, as every shim's does (a driver starts at
        // its zero); the world converts its times at this edge.
        let start = clock.now().since_origin();
        let mut settings = spec.settings;
        settings.tap(WorldTap(log.clone(), start));
        // The origin only meets a shared retry budget on common ground: every client's is
        // its start on the world's clock, so a budget relates them exactly. The world reads
        // no clock.
        let driver = settings.start(origin(start), spec.seed)?;
        let shared = Shared::new(driver, clock.reader_since(Instant::ZERO + start), notify);
        Ok(Client {
            tether: Some(Tether::new(shared.clone())),
            shared,
            log,
            deadline: None,
            finished: false,
            start,
            server: spec.server,
            store: spec.store,
            isolated: None,
        })
    }

    /// A time of the driver's (its deadlines, its outputs' times) in the world's frame.
    pub fn world_time(&self, at: Instant) -> Instant {
        at + self.start
    }

    /// The driver, as a shim shares it.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The caller's handle; `None` once dropped.
    pub fn tether(&self) -> Option<&Tether> {
        self.tether.as_ref()
    }

    /// Drops the caller's handle (the last one): the session closes itself, as a dropped
    /// handle does on every runtime.
    pub fn drop_handle(&mut self) {
        self.tether = None;
    }

    /// Whether the driver said it is finished (its session ended, every waiter answered).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The next drain the driver makes also yields a [`TapEntry::Acknowledged`].
    pub fn sample_acknowledged(&self) {
        lock(&self.log).sample = true;
    }

    /// The acknowledged document after the last drain, when the world follows it (traces).
    pub fn acknowledged(&self) -> Value {
        lock(&self.log).acknowledged.clone()
    }

    pub(super) fn take_entries(&self, into: &mut Vec<TapEntry>) {
        let mut log = lock(&self.log);
        into.append(&mut log.entries);
    }

    /// Kills the client as a killed process dies: nothing it does from now on reaches its
    /// store. The driver's own `Drop` runs its shutdown (the end's writes, a shim's last
    /// rites that a killed process never runs), so the store refuses every write until the
    /// driver is gone, then works again for the next process.
    ///
    /// # Panics
    /// If the driver is shared beyond this client (the scenario kept a clone of the handle):
    /// it would outlive the crash and write later, on the next process's store.
    pub(super) fn kill(mut self) {
        let store = self.store.take();
        if let Some(store) = &store {
            store.fail(Some("the process was killed"));
        }
        self.tether = None;
        assert_eq!(
            Arc::strong_count(&self.shared),
            1,
            "a crashed client's driver is still shared: the scenario must not keep a clone of \
             its handle"
        );
        drop(self);
        if let Some(store) = store {
            store.fail(None);
        }
    }
}

/// The origin of a client started `start` into the world, on the world's own clock: the
/// core's time, so every client's frame is the world's shifted by its start.
fn origin(start: Duration) -> Origin<Instant> {
    Origin::new(Instant::ZERO + start)
}
