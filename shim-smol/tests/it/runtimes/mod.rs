//! One end-to-end suite, run on every runtime: the blocking shim's threads, smol, and tokio.
//!
//! Each case is a plain function of a [`Runtime`], written once, against `tether_server` on
//! 127.0.0.1, and asserts what a user relies on: the reports ([`cases`]), the retry budget
//! shared by many sessions ([`budget`]) and thread sync ([`threads`]). `on_every_runtime!` makes one `#[test]` per case and
//! runtime, e.g. `runtimes::cases::on_smol::a_full_queue_...`, so a failure names its runtime.
//!
//! The cases call a [`Session`]: the one handle, `Tether`, whose answers the test's thread
//! `.wait()`s for while the session's driver runs on the runtime (the blocking shim's thread,
//! smol's global executor, a `current_thread` tokio runtime on a thread of its own) — the
//! answers need no runtime of their own, only the driver does.
//!
//! The suite lives here because this crate's tests already depend on all three shims (for
//! parity.rs); tokio's paused time and its kinds of runtime stay in tether-tokio's own tests.

use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tether_core::batch::{Event, EventId};
use tether_core::session::{SessionConfig, Status, Stream};
use tether_driver::{
    BulkSendError, CloseReport, Counters, FlushError, Lagged, PatchError, Report, SendError,
    SharedRetryBudget, Subscription, Tether, ThreadHandle, ThreadSyncConfig,
};

mod budget;
mod cases;
mod threads;

/// How a session is started: the same options on every runtime.
#[derive(Clone)]
pub struct Opts {
    pub url: String,
    pub config: SessionConfig,
    pub seed: u64,
    /// `None`: register for a new epoch.
    pub epoch: Option<u64>,
    pub budget: Option<SharedRetryBudget>,
}

impl Opts {
    pub fn new(url: String, config: SessionConfig) -> Self {
        Opts {
            url,
            config,
            seed: 1,
            epoch: None,
            budget: None,
        }
    }

    pub fn epoch(mut self, epoch: u64) -> Self {
        self.epoch = Some(epoch);
        self
    }

    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    pub fn budget(mut self, budget: SharedRetryBudget) -> Self {
        self.budget = Some(budget);
        self
    }
}

/// A way of running sessions.
pub trait Runtime: Send + Sync {
    fn start(&self, opts: Opts) -> Box<dyn Session>;
}

/// A running session, whatever drives it. Every call blocks at most its timeout.
pub trait Session: Send + Sync {
    fn send(&self, stream: Stream, event: Event, timeout: Duration) -> Result<EventId, SendError>;
    fn send_events(
        &self,
        stream: Stream,
        events: Vec<Event>,
        timeout: Duration,
    ) -> Result<Vec<EventId>, Box<BulkSendError>>;
    fn patch_state(&self, patch: Value) -> Result<u64, PatchError>;
    fn state(&self) -> Value;
    fn status(&self) -> Status;
    fn counters(&self) -> Counters;
    fn flush(&self, timeout: Duration) -> Result<(), FlushError>;
    fn close(&self, timeout: Duration) -> CloseReport;
    fn reports(&self) -> Box<dyn Feed<Report>>;
    fn statuses(&self) -> Box<dyn Feed<Status>>;
    /// Starts thread sync on the session as client `client`: the handle is the same type on
    /// every runtime, and its answers are `.wait()`ed for like the session's.
    fn threads(&self, client: &str) -> ThreadHandle;

    fn send_event(&self, payload: Value, timeout: Duration) -> Result<EventId, SendError> {
        self.send(Stream::Events, Event::new(payload), timeout)
    }
}

/// A subscription, read by blocking.
pub trait Feed<T>: Send {
    /// The next item, waiting at most `within`; `None` when none came in time or it ended.
    fn next_within(&mut self, within: Duration) -> Option<Result<T, Lagged>>;

    /// Every item queued now.
    fn drain(&mut self) -> Vec<T> {
        std::iter::from_fn(|| self.next_within(Duration::ZERO))
            .map(|item| item.expect("the reader kept up"))
            .collect()
    }

    /// Reads until an item matches `pred`, failing the test after `within`: everything read,
    /// the match last.
    fn read_until(&mut self, within: Duration, pred: &dyn Fn(&T) -> bool) -> Vec<T>
    where
        T: std::fmt::Debug,
    {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_within(left) {
                Some(Ok(item)) => {
                    let found = pred(&item);
                    seen.push(item);
                    if found {
                        return seen;
                    }
                }
                Some(Err(lagged)) => panic!("{lagged}"),
                None => panic!("nothing matching within {within:?}; read {seen:?}"),
            }
        }
    }
}

// ----- one handle on every runtime -----

/// Starts a session with `o`'s options on the runtime `builder` names: the same calls on each.
fn start<R: tether_driver::runtime::Runtime>(
    mut b: tether_driver::Builder<R>,
    o: Opts,
    runtime: Option<Arc<TokioThread>>,
) -> Box<dyn Session> {
    b = b.config(o.config).seed(o.seed);
    b = match o.epoch {
        Some(epoch) => b.epoch(epoch),
        None => b.register(),
    };
    if let Some(budget) = o.budget {
        b = b.retry_budget(budget);
    }
    Box::new(Started {
        tether: b.start().expect("the session starts"),
        _runtime: runtime,
    })
}

/// A session, and what must live as long as it (tokio's runtime thread).
struct Started {
    tether: Tether,
    _runtime: Option<Arc<TokioThread>>,
}

impl Session for Started {
    fn send(&self, stream: Stream, event: Event, timeout: Duration) -> Result<EventId, SendError> {
        self.tether.send(stream, event, timeout).wait()
    }
    fn send_events(
        &self,
        stream: Stream,
        events: Vec<Event>,
        timeout: Duration,
    ) -> Result<Vec<EventId>, Box<BulkSendError>> {
        self.tether.send_events(stream, events, timeout).wait()
    }
    fn patch_state(&self, patch: Value) -> Result<u64, PatchError> {
        self.tether.patch_state(patch)
    }
    fn state(&self) -> Value {
        self.tether.state()
    }
    fn status(&self) -> Status {
        self.tether.status()
    }
    fn counters(&self) -> Counters {
        self.tether.counters()
    }
    fn flush(&self, timeout: Duration) -> Result<(), FlushError> {
        self.tether.flush(timeout).wait()
    }
    fn close(&self, timeout: Duration) -> CloseReport {
        self.tether.close(timeout).wait()
    }
    fn reports(&self) -> Box<dyn Feed<Report>> {
        Box::new(self.tether.reports())
    }
    fn statuses(&self) -> Box<dyn Feed<Status>> {
        Box::new(self.tether.statuses())
    }
    fn threads(&self, client: &str) -> ThreadHandle {
        self.tether
            .threads(ThreadSyncConfig::new(client))
            .expect("thread sync starts")
    }
}

impl<T: Send> Feed<T> for Subscription<T> {
    fn next_within(&mut self, within: Duration) -> Option<Result<T, Lagged>> {
        if within.is_zero() {
            return self.try_next();
        }
        self.recv_timeout(within)
    }
}

pub struct Blocking;

impl Runtime for Blocking {
    fn start(&self, o: Opts) -> Box<dyn Session> {
        start(tether_blocking::builder(&o.url), o, None)
    }
}

pub struct Smol;

impl Runtime for Smol {
    fn start(&self, o: Opts) -> Box<dyn Session> {
        start(tether_smol::builder(&o.url), o, None)
    }
}

/// A `current_thread` tokio runtime, driven on a thread of its own until dropped; every
/// session of one [`Tokio`] runs on it.
struct TokioThread {
    handle: tokio::runtime::Handle,
    stop: Option<smol::channel::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Drop for TokioThread {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub struct Tokio(Arc<TokioThread>);

impl Tokio {
    pub fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let handle = runtime.handle().clone();
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let thread = thread::spawn(move || {
            runtime.block_on(async move {
                let _ = stopped.recv().await;
            });
        });
        Tokio(Arc::new(TokioThread {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        }))
    }
}

impl Runtime for Tokio {
    fn start(&self, o: Opts) -> Box<dyn Session> {
        let runtime = tether_tokio::Tokio::on(self.0.handle.clone());
        let builder = tether_driver::Builder::new(&o.url, runtime);
        start(builder, o, Some(Arc::clone(&self.0)))
    }
}

// ----- running a case -----

/// Runs `case` on its own thread and fails the test if it takes longer than `limit`, so a hang
/// fails instead of blocking the suite.
pub fn within(limit: Duration, case: impl FnOnce() + Send + 'static) {
    let (done, finished) = mpsc::channel();
    let worker = thread::spawn(move || {
        case();
        let _ = done.send(());
    });
    match finished.recv_timeout(limit) {
        Ok(()) => worker.join().expect("the case ended"),
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the case sends before it ends"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the case took longer than {limit:?}"),
    }
}

/// One `#[test]` per case and runtime, in the module of the cases: `mod on_blocking`,
/// `mod on_smol`, `mod on_tokio`, each calling `case(&runtime)` under the case's time bound.
macro_rules! on_every_runtime {
    ($($case:ident within $secs:literal;)*) => {
        mod on_blocking {
            $(#[test]
            fn $case() {
                $crate::runtimes::within(std::time::Duration::from_secs($secs), || {
                    super::$case(&$crate::runtimes::Blocking)
                });
            })*
        }
        mod on_smol {
            $(#[test]
            fn $case() {
                $crate::runtimes::within(std::time::Duration::from_secs($secs), || {
                    super::$case(&$crate::runtimes::Smol)
                });
            })*
        }
        mod on_tokio {
            $(#[test]
            fn $case() {
                $crate::runtimes::within(std::time::Duration::from_secs($secs), || {
                    super::$case(&$crate::runtimes::Tokio::new())
                });
            })*
        }
    };
}
use on_every_runtime;
