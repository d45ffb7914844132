//! HTTP: the blocking [`Transport`] seam, the default transport (ureq), and [`Pooled`], the
//! bounded pool of worker threads that makes a blocking transport the driver's async one.

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

use tether_core::session::{Method, TransportError};
use tether_driver::Pending;
use tether_driver::runtime::{AsyncTransport, BoxFuture, Completer, HttpRequest, HttpResponse};

/// Bounds each phase of the exchange by `backstop`, not the whole of it: ureq runs a name lookup
/// under a whole-exchange timeout on a thread of its own, and it looks the host up before every
/// request, pooled connection or not, so a global timeout costs a thread per request (measured:
/// one `clone` per batch, and blocking's throughput halved). Without one, the lookup runs on the
/// worker (an IP address is parsed, not looked up), bounded by the system resolver's own
/// timeouts (resolv.conf: 5 s × 2 tries by default), not by the backstop; the core's deadline
/// fails the request on time whatever the worker is doing, so this only keeps the worker longer.
macro_rules! with_backstop {
    ($config:expr, $backstop:expr) => {
        $config
            .timeout_connect($backstop)
            .timeout_send_request($backstop)
            .timeout_send_body($backstop)
            .timeout_recv_response($backstop)
            .timeout_recv_body($backstop)
    };
}

/// Most worker threads: one per channel, plus room for cancelled requests still on the wire
/// until their backstop frees them.
const MAX_WORKERS: usize = 12;

/// A blocking HTTP client the worker threads hand requests to; give one to a session with
/// `builder(url).transport(Pooled::new(client))`. The default is ureq.
///
/// The contract keeps the shim thin (docs/ARCHITECTURE.md, conventions 7 and 8):
///
/// - **One exchange per call, no policy.** Any status is an `Ok`; a failure to get one
///   (connect, reset, TLS, I/O, a malformed response) is an `Err`. No retries, no
///   classification: the core owns them, and every deadline.
/// - **Never follow a redirect**: a 3xx is returned as it is.
/// - **Never read a body past [`HttpRequest::max_response_body`]**: return the first that many
///   bytes with [`HttpResponse::truncated`] set.
/// - **Return by [`HttpRequest::backstop`].** The core fails the request at its deadline on its
///   own and drops a late answer; the backstop only frees the worker thread.
///
/// ```
/// use tether_blocking::Transport;
/// use tether_core::session::{Endpoint, TransportError};
/// use tether_driver::runtime::{HttpRequest, HttpResponse, Route};
///
/// /// Answers `200` to everything, as a scripted test server would.
/// struct AlwaysOk;
///
/// impl Transport for AlwaysOk {
///     fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
///         Ok(match request.route {
///             Route::Worker(Endpoint::GetWorker) => HttpResponse::new(200, r#"{"worker":{}}"#),
///             Route::Worker(Endpoint::Register) => {
///                 HttpResponse::new(200, r#"{"worker_epoch":1}"#)
///             }
///             _ => HttpResponse::new(200, "{}"),
///         })
///     }
/// }
/// ```
pub trait Transport: Send + Sync + 'static {
    /// Performs `request` once, blocking the calling worker thread until it has an answer.
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError>;
}

impl std::fmt::Debug for dyn Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Transport")
    }
}

impl<T: Transport + ?Sized> Transport for std::sync::Arc<T> {
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        (**self).send(request)
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        (**self).send(request)
    }
}

/// The built-in transport: one `ureq::Agent` (HTTP/1.1 keep-alive, https through rustls).
#[derive(Debug)]
pub struct Ureq {
    agent: ureq::Agent,
}

impl Default for Ureq {
    fn default() -> Self {
        Self::new()
    }
}

impl Ureq {
    /// An agent that never follows a redirect and returns every status as an answer.
    pub fn new() -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        Ureq { agent }
    }
}

impl Transport for Ureq {
    /// Performs one request and reads at most the cap (+1 byte, to know there was more).
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let timeout = request.backstop;
        let url = &request.url;
        let result = match request.method() {
            Method::Get => {
                let mut builder = self.agent.get(url);
                for (name, value) in request.headers() {
                    builder = builder.header(name, value);
                }
                with_backstop!(builder.config(), timeout).build().call()
            }
            Method::Put | Method::Post => {
                let mut builder = if request.method() == Method::Put {
                    self.agent.put(url)
                } else {
                    self.agent.post(url)
                };
                for (name, value) in request.headers() {
                    builder = builder.header(name, value);
                }
                with_backstop!(builder.config(), timeout)
                    .build()
                    .send(&request.body[..])
            }
        };
        // ureq's errors describe the connection, never the request's headers, so no token.
        let response = result.map_err(|e| TransportError {
            message: e.to_string(),
        })?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let retry_after = header("retry-after");
        let date = header("date");
        let status = response.status().as_u16();
        let cap = request.max_response_body;
        let mut body = Vec::new();
        response
            .into_body()
            .into_reader()
            .take(u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1))
            .read_to_end(&mut body)
            .map_err(|e| TransportError {
                message: format!("reading the response body: {e}"),
            })?;
        Ok(HttpResponse {
            status,
            retry_after,
            date,
            body,
            truncated: false,
        }
        .capped(cap))
    }
}

type Answer = Result<HttpResponse, TransportError>;

thread_local! {
    /// Set on the pool's workers: one whose answer wakes the driver task polls it itself.
    pub(crate) static HTTP_WORKER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

struct Job {
    request: HttpRequest,
    answer: Completer<Answer>,
}

/// A blocking [`Transport`] as the driver's [`AsyncTransport`]: each request goes to a bounded
/// pool of worker threads, and its answer comes back as a future whose waker the worker calls
/// (under [`run`](crate::run), that polls the driver task on the worker itself). Workers are started when none is idle, up to one per channel of the core plus room for
/// cancelled requests still on the wire until their backstop frees them.
///
/// Nothing outlives it: it holds the only sender of the job queue, so once the sessions using
/// it have ended and dropped it, every idle worker's `recv` returns and each busy one ends
/// after its exchange (bounded by the request's backstop).
pub struct Pooled {
    jobs: Sender<Job>,
    queue: Arc<Mutex<Receiver<Job>>>,
    /// Jobs sent and not yet answered (or skipped).
    busy: Arc<AtomicUsize>,
    workers: AtomicUsize,
    transport: Arc<dyn Transport>,
}

impl Pooled {
    /// A pool of worker threads calling `transport`.
    pub fn new(transport: impl Transport) -> Self {
        let (jobs, queue) = mpsc::channel();
        Pooled {
            jobs,
            queue: Arc::new(Mutex::new(queue)),
            busy: Arc::new(AtomicUsize::new(0)),
            workers: AtomicUsize::new(0),
            transport: Arc::new(transport),
        }
    }

    fn spawn_worker(&self) {
        let queue = Arc::clone(&self.queue);
        let busy = Arc::clone(&self.busy);
        let transport = Arc::clone(&self.transport);
        let spawned = thread::Builder::new()
            .name("tether-http".into())
            .spawn(move || worker(&queue, &busy, &*transport));
        // No thread: the job waits for an existing worker; the core's deadline bounds it.
        if spawned.is_ok() {
            self.workers.fetch_add(1, Ordering::AcqRel);
        }
    }
}

impl AsyncTransport for Pooled {
    fn send(&self, request: HttpRequest) -> BoxFuture<Answer> {
        let (answer, completer) = Pending::new(|| {
            Err(TransportError {
                message: "no HTTP worker could be started".into(),
            })
        });
        // Every worker busy: start another, up to the bound.
        let busy = self.busy.fetch_add(1, Ordering::AcqRel) + 1;
        let workers = self.workers.load(Ordering::Acquire);
        if busy > workers && workers < MAX_WORKERS {
            self.spawn_worker();
        }
        // The receiver lives as long as the pool: sending cannot fail.
        let _ = self.jobs.send(Job {
            request,
            answer: completer,
        });
        Box::pin(answer)
    }
}

impl std::fmt::Debug for Pooled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pooled")
            .field("workers", &self.workers.load(Ordering::Relaxed))
            .field("busy", &self.busy.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

fn worker(queue: &Mutex<Receiver<Job>>, busy: &AtomicUsize, transport: &dyn Transport) {
    HTTP_WORKER.set(true);
    loop {
        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(Job { request, answer }) = job else {
            return; // the pool is gone
        };
        // Cancelled (the driver dropped its future) before it started: skip it.
        // Answering may poll the driver task here, for as long as it has work: this worker
        // counts as busy meanwhile, so a request it makes starts another worker if none is idle.
        if !answer.is_abandoned() {
            answer.complete(transport.send(request));
        }
        busy.fetch_sub(1, Ordering::AcqRel);
    }
}
