//! Moves the core's requests over HTTP: a small bounded pool of worker threads, each handing
//! its request to the [`Transport`] (by default [`Ureq`]: one `ureq::Agent`), and results
//! back to the driver over a channel.
//!
//! Nothing here decides anything: no retries, no classification, no timeouts of its own but a
//! backstop given to the transport so that a worker thread is freed some time after the core
//! has already failed the request at its deadline.

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use tether_core::session::{Method, Request, Response, TransportError};

use crate::driver::Msg;
use crate::token::Token;
use crate::transport::{HttpRequest, Transport};

/// `tether/<version>`
pub(crate) const USER_AGENT: &str = concat!("tether/", env!("CARGO_PKG_VERSION"));

/// How long after the core's deadline the transport gives up on its own, freeing the worker
/// thread. The core has failed the request at its deadline already; this only bounds the thread.
pub(crate) const BACKSTOP_GRACE: Duration = Duration::from_secs(1);

/// Worker threads started at once; one per channel of the core.
const MIN_WORKERS: usize = 6;
/// Most worker threads: one per channel, plus room for cancelled requests still on the wire
/// until their backstop frees them.
const MAX_WORKERS: usize = 12;

/// One request for a worker.
struct Job {
    request: HttpRequest,
    /// Set by the driver when the core cancels the request; a worker skips it if not started.
    cancelled: Arc<AtomicBool>,
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
            .user_agent(USER_AGENT)
            .build()
            .into();
        Ureq { agent }
    }
}

impl Transport for Ureq {
    /// Performs one request and reads at most the cap (+1 byte, to know there was more).
    fn send(&self, request: HttpRequest) -> Result<Response, TransportError> {
        let url = &request.url;
        let auth = request.token.as_ref().map(Token::header_value);
        let timeout = Some(request.timeout);
        let result = match request.method() {
            Method::Get => {
                let mut builder = self.agent.get(url);
                if let Some(auth) = &auth {
                    builder = builder.header("authorization", auth);
                }
                builder.config().timeout_global(timeout).build().call()
            }
            Method::Put | Method::Post => {
                let mut builder = if request.method() == Method::Put {
                    self.agent.put(url)
                } else {
                    self.agent.post(url)
                };
                if let Some(auth) = &auth {
                    builder = builder.header("authorization", auth);
                }
                builder
                    .header("content-type", "application/json")
                    .config()
                    .timeout_global(timeout)
                    .build()
                    .send(&request.body[..])
            }
        };
        let response = result.map_err(transport)?;
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
        let truncated = body.len() > cap;
        body.truncate(cap);
        Ok(Response {
            status,
            retry_after,
            date,
            body,
            truncated,
        })
    }
}

fn transport(error: ureq::Error) -> TransportError {
    // ureq's errors describe the connection, never the request's headers, so no token.
    TransportError {
        message: error.to_string(),
    }
}

/// Where requests go: the session URL, the token and the body cap every request carries.
pub(crate) struct Target {
    /// The session URL, without a trailing `/`.
    pub(crate) base: String,
    pub(crate) token: Option<Token>,
    pub(crate) max_body: usize,
}

/// A bounded pool of worker threads fed from one queue.
pub(crate) struct Pool {
    jobs: Sender<Job>,
    queue: Arc<Mutex<Receiver<Job>>>,
    idle: Arc<AtomicUsize>,
    workers: usize,
    transport: Arc<dyn Transport>,
    target: Target,
    replies: Sender<Msg>,
}

impl Pool {
    pub(crate) fn new(transport: Arc<dyn Transport>, target: Target, replies: Sender<Msg>) -> Self {
        let (jobs, queue) = mpsc::channel();
        let mut pool = Pool {
            jobs,
            queue: Arc::new(Mutex::new(queue)),
            idle: Arc::new(AtomicUsize::new(0)),
            workers: 0,
            transport,
            target,
            replies,
        };
        for _ in 0..MIN_WORKERS {
            pool.spawn_worker();
        }
        pool
    }

    /// Queues the core's request for a worker, with the transport's backstop `timeout`,
    /// adding a worker first if none is idle and the pool may grow.
    pub(crate) fn submit(
        &mut self,
        request: Request,
        timeout: Duration,
        cancelled: Arc<AtomicBool>,
    ) {
        let job = Job {
            request: HttpRequest {
                id: request.id,
                endpoint: request.endpoint,
                url: format!("{}{}", self.target.base, request.path()),
                body: request.body,
                token: self.target.token.clone(),
                max_response_body: self.target.max_body,
                timeout,
            },
            cancelled,
        };
        if self.idle.load(Ordering::Acquire) == 0 && self.workers < MAX_WORKERS {
            self.spawn_worker();
        }
        // The receiver lives as long as the pool (the queue is in an Arc the pool holds).
        let _ = self.jobs.send(job);
    }

    fn spawn_worker(&mut self) {
        let queue = Arc::clone(&self.queue);
        let idle = Arc::clone(&self.idle);
        let transport = Arc::clone(&self.transport);
        let replies = self.replies.clone();
        idle.fetch_add(1, Ordering::AcqRel);
        let spawned = thread::Builder::new()
            .name("tether-http".into())
            .spawn(move || worker(&queue, &idle, &*transport, &replies));
        match spawned {
            Ok(_) => self.workers += 1,
            // No thread: the job waits for an existing worker, and the core's deadline still
            // bounds it.
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
    replies: &Sender<Msg>,
) {
    loop {
        let job = {
            let queue = queue.lock().unwrap_or_else(PoisonError::into_inner);
            queue.recv()
        };
        let Ok(job) = job else {
            return; // the pool is gone
        };
        idle.fetch_sub(1, Ordering::AcqRel);
        if !job.cancelled.load(Ordering::Acquire) {
            let id = job.request.id;
            let result = transport.send(job.request);
            if replies.send(Msg::Reply { id, result }).is_err() {
                return; // the driver is gone
            }
        }
        idle.fetch_add(1, Ordering::AcqRel);
    }
}
