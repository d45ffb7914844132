//! One client of the world: a real [`Driver`](tether_driver::Driver) around a real session,
//! shared as a shim shares it ([`Shared`]), the caller's [`Tether`] handle, and a [`Tap`] that
//! hands the world every core output the driver saw, in order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;
use tether_core::Instant;
use tether_core::session::{Output, Session, Status};
use tether_driver::runtime::{Origin, Shared};
use tether_driver::{BuildError, MemoryStore, Settings, Tap, Tether};
use tether_model::timeline::Recorder;

use super::clock::VirtualClock;

/// What a client's tap saw, in order, since the world last looked.
#[derive(Debug)]
pub enum TapEntry {
    /// A core output at its time, before the driver acted on it.
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
    /// Keep the acknowledged document after every drain (for traces).
    follow: bool,
    acknowledged: Value,
    recorder: Option<SharedRecorder>,
}

struct WorldTap(Arc<Mutex<TapLog>>);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Tap for WorldTap {
    fn output(&mut self, at: Instant, output: &Output) {
        let mut log = lock(&self.0);
        if let Output::Status(Status::Connected) = output {
            log.sample = true;
        }
        log.entries.push(TapEntry::Output(at, output.clone()));
    }

    fn drained(&mut self, at: Instant, session: &Session) {
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
    notified: Arc<AtomicBool>,
    pub(super) deadline: Option<Instant>,
    pub(super) finished: bool,
    /// Which of the world's servers it talks to.
    pub server: usize,
    /// Its outbox's store, if it keeps one.
    pub store: Option<MemoryStore>,
    /// Cut off from the network, alone, while set: its requests fail so and an answer that
    /// arrives meanwhile is lost (a transport error). Set and cleared by the scenario.
    pub isolated: Option<Isolation>,
}

impl Client {
    pub(super) fn start(
        spec: ClientSpec,
        clock: &VirtualClock,
        recorder: Option<SharedRecorder>,
        follow: bool,
    ) -> Result<Client, BuildError> {
        let log = Arc::new(Mutex::new(TapLog {
            recorder,
            follow,
            ..TapLog::default()
        }));
        let mut settings = spec.settings;
        settings.tap(WorldTap(log.clone()));
        // The origin only meets a shared retry budget on common ground: every client of a
        // world shares one, so any fixed instant serves. The world reads no clock.
        let driver = settings.start(origin(), spec.seed)?;
        let notified = Arc::new(AtomicBool::new(true));
        let flag = notified.clone();
        let shared = Shared::new(
            driver,
            clock.reader(),
            Box::new(move || flag.store(true, Ordering::Relaxed)),
        );
        Ok(Client {
            tether: Some(Tether::new(shared.clone())),
            shared,
            log,
            notified,
            deadline: None,
            finished: false,
            server: spec.server,
            store: spec.store,
            isolated: None,
        })
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

    pub(super) fn take_notified(&self) -> bool {
        self.notified.swap(false, Ordering::Relaxed)
    }
}

/// The origin every client of a world shares.
fn origin() -> Origin {
    use std::sync::OnceLock;
    static ORIGIN: OnceLock<Origin> = OnceLock::new();
    #[allow(clippy::disallowed_methods)] // read once, never as the world's time
    *ORIGIN.get_or_init(|| Origin::new(std::time::Instant::now()))
}
