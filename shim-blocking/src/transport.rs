//! HTTP: a bounded pool of worker threads, the [`Transport`] seam they call, and the default
//! transport, ureq.

use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread;

use tether_core::session::{Method, RequestId, TransportError};
use tether_driver::{Action, HttpRequest, HttpResponse, Shared};

/// Worker threads started at once; one per channel of the core.
const MIN_WORKERS: usize = 6;
/// Most worker threads: one per channel, plus room for cancelled requests still on the wire
/// until their backstop frees them.
const MAX_WORKERS: usize = 12;

/// A blocking HTTP client the worker threads hand requests to; set one with
/// [`Builder::transport`](crate::Builder::transport). The default is ureq.
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
/// use tether_driver::{HttpRequest, HttpResponse};
///
/// /// Answers `200` to everything, as a scripted test server would.
/// struct AlwaysOk;
///
/// impl Transport for AlwaysOk {
///     fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
///         Ok(match request.endpoint {
///             Endpoint::GetWorker => HttpResponse::new(200, r#"{"worker":{}}"#),
///             Endpoint::Register => HttpResponse::new(200, r#"{"worker_epoch":1}"#),
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
pub(crate) struct Ureq {
    agent: ureq::Agent,
}

impl Ureq {
    pub(crate) fn new() -> Self {
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
        let headers = request.headers();
        let result = match request.method() {
            Method::Get => {
                let mut builder = self.agent.get(url);
                for (name, value) in &headers {
                    builder = builder.header(*name, value);
                }
                builder.config().timeout_global(timeout).build().call()
            }
            Method::Put | Method::Post => {
                let mut builder = if request.method() == Method::Put {
                    self.agent.put(url)
                } else {
                    self.agent.post(url)
                };
                for (name, value) in &headers {
                    builder = builder.header(*name, value);
                }
                builder
                    .config()
                    .timeout_global(timeout)
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

struct Job {
    request: HttpRequest,
    /// Set when the core cancels the request; a worker skips it if not started.
    cancelled: Arc<AtomicBool>,
}

/// What the driver thread and the workers share to hand out requests and cancel them.
struct Dispatch {
    jobs: Sender<Job>,
    cancels: Mutex<HashMap<RequestId, Arc<AtomicBool>>>,
}

impl Dispatch {
    fn job(&self, request: HttpRequest) -> Job {
        let cancelled = Arc::new(AtomicBool::new(false));
        let mut cancels = self.cancels.lock().unwrap_or_else(PoisonError::into_inner);
        cancels.retain(|_, c| Arc::strong_count(c) > 1);
        cancels.insert(request.id, Arc::clone(&cancelled));
        Job { request, cancelled }
    }

    fn cancel(&self, id: RequestId) {
        let flag = self
            .cancels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        if let Some(flag) = flag {
            flag.store(true, Ordering::Release);
        }
    }
}

/// A bounded pool of worker threads fed from one queue. A worker hands its answer straight to
/// the driver and takes what that made to do (the next batch, usually) itself: no handoff
/// through the driver thread per exchange.
///
/// The pool holds the only strong reference to the job sender; workers reach it through a
/// `Weak` only while they hand out follow-on work. So when the driver thread ends and drops
/// the pool, the queue closes, every idle worker's `recv` returns, and the workers, the
/// transport's connections and the driver they hold all end with the session.
pub(crate) struct Pool {
    dispatch: Arc<Dispatch>,
    queue: Arc<Mutex<Receiver<Job>>>,
    idle: Arc<AtomicUsize>,
    workers: usize,
    transport: Arc<dyn Transport>,
    shared: Arc<Shared>,
}

impl Pool {
    pub(crate) fn new(transport: Arc<dyn Transport>, shared: Arc<Shared>) -> Self {
        let (jobs, queue) = mpsc::channel();
        let mut pool = Pool {
            dispatch: Arc::new(Dispatch {
                jobs,
                cancels: Mutex::new(HashMap::new()),
            }),
            queue: Arc::new(Mutex::new(queue)),
            idle: Arc::new(AtomicUsize::new(0)),
            workers: 0,
            transport,
            shared,
        };
        for _ in 0..MIN_WORKERS {
            pool.spawn_worker();
        }
        pool
    }

    pub(crate) fn submit(&mut self, request: HttpRequest) {
        let job = self.dispatch.job(request);
        if self.idle.load(Ordering::Acquire) == 0 && self.workers < MAX_WORKERS {
            self.spawn_worker();
        }
        // The receiver lives as long as the pool (the queue is in an Arc the pool holds).
        let _ = self.dispatch.jobs.send(job);
    }

    pub(crate) fn cancel(&mut self, id: RequestId) {
        self.dispatch.cancel(id);
    }

    fn spawn_worker(&mut self) {
        let queue = Arc::clone(&self.queue);
        let idle = Arc::clone(&self.idle);
        let transport = Arc::clone(&self.transport);
        let shared = Arc::clone(&self.shared);
        let dispatch = Arc::downgrade(&self.dispatch);
        idle.fetch_add(1, Ordering::AcqRel);
        let spawned = thread::Builder::new()
            .name("tether-http".into())
            .spawn(move || worker(&queue, &idle, &*transport, &shared, &dispatch));
        match spawned {
            Ok(_) => self.workers += 1,
            // No thread: the job waits for an existing worker; the core's deadline bounds it.
            Err(_) => {
                self.idle.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

fn worker(
    queue: &Mutex<Receiver<Job>>,
    idle: &AtomicUsize,
    transport: &dyn Transport,
    shared: &Shared,
    dispatch: &Weak<Dispatch>,
) {
    loop {
        let job = {
            let queue = queue.lock().unwrap_or_else(PoisonError::into_inner);
            queue.recv()
        };
        let Ok(mut job) = job else {
            return; // the pool is gone
        };
        idle.fetch_sub(1, Ordering::AcqRel);
        loop {
            if job.cancelled.load(Ordering::Acquire) {
                break;
            }
            let id = job.request.id;
            let result = transport.send(job.request);
            let actions = shared.answer(id, result);
            let Some(dispatch) = dispatch.upgrade() else {
                return; // the session has ended: nothing more to hand out
            };
            let mut next = None;
            for action in actions {
                match action {
                    Action::Send(request) if next.is_none() => next = Some(dispatch.job(request)),
                    Action::Send(request) => {
                        let _ = dispatch.jobs.send(dispatch.job(request));
                    }
                    Action::Cancel(id) => dispatch.cancel(id),
                    _ => {}
                }
            }
            match next {
                Some(more) => job = more,
                None => break,
            }
        }
        idle.fetch_add(1, Ordering::AcqRel);
    }
}
