//! The blocking handle: a tokio runtime on its own thread, a listener that can go down and come
//! back, and a bounded graceful shutdown.
//!
//! Each connection speaks HTTP/1.1 or HTTP/2 with prior knowledge (h2c), whichever its first
//! bytes say (hyper-util's auto builder), on the same port. Every request goes through the same
//! service, so the fault plan applies per request on both: on HTTP/2 a "reset" resets the
//! request's stream, not the connection the other sessions share.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc as std_mpsc};
use std::thread;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::config::ServerConfig;
use crate::error::ServerError;
use crate::http;
use crate::inspect::Inspector;
use crate::routes::SESSIONS_PREFIX;
use crate::shared::{Mode, Shared};

/// Orders from the blocking handle to the runtime thread.
enum Control {
    /// Serve on this (already bound) listener.
    Listen(StdListener, std_mpsc::Sender<std::io::Result<()>>),
    /// Close the listener and every connection at once ("server down").
    Stop(std_mpsc::Sender<()>),
}

/// A running reference server.
///
/// Dropping it shuts it down as [`Server::shutdown`] does.
pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    control: Option<mpsc::UnboundedSender<Control>>,
    thread: Option<thread::JoinHandle<()>>,
    listening: Mutex<bool>,
}

impl Server {
    /// Binds `config.bind_addr` and starts serving on a runtime thread of its own, so blocking
    /// callers need no async runtime.
    pub fn start(config: ServerConfig) -> Result<Server, ServerError> {
        let addr = config.bind_addr;
        let listener = bind(addr)?;
        let addr = listener
            .local_addr()
            .map_err(|source| ServerError::Bind { addr, source })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.worker_threads.max(1))
            .thread_name("tether-server-worker")
            .enable_io()
            .enable_time()
            .build()
            .map_err(ServerError::Runtime)?;
        let shared = Arc::new(Shared::new(config));
        let (control, commands) = mpsc::unbounded_channel();
        let task_shared = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("tether-server".into())
            .spawn(move || {
                runtime.block_on(control_loop(task_shared, commands));
                runtime.shutdown_timeout(std::time::Duration::from_millis(200));
            })
            .map_err(ServerError::Runtime)?;
        let server = Server {
            addr,
            shared,
            control: Some(control),
            thread: Some(thread),
            listening: Mutex::new(false),
        };
        server.listen(listener, &mut server.listening())?;
        Ok(server)
    }

    /// The address the server listens on (with the port the OS chose).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://HOST:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The inspector page: `http://HOST:PORT/` (see the crate docs, "The inspector page").
    pub fn inspector_url(&self) -> String {
        format!("{}/", self.base_url())
    }

    /// The session URL of `session_id`: `http://HOST:PORT/v1/code/sessions/{session_id}`.
    pub fn session_url(&self, session_id: &str) -> String {
        format!("{}{SESSIONS_PREFIX}{session_id}", self.base_url())
    }

    /// A handle to read the sessions and steer them, usable from any thread.
    pub fn inspector(&self) -> Inspector {
        Inspector::new(Arc::clone(&self.shared))
    }

    /// Whether the listener is up.
    pub fn is_listening(&self) -> bool {
        *self.listening()
    }

    fn listening(&self) -> MutexGuard<'_, bool> {
        self.listening
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Server down: closes the listener and every open connection at once, without answering
    /// in-flight requests. The sessions are kept. Clients see connection errors until
    /// [`Server::restart_listener`]. A no-op if already down.
    pub fn stop_listener(&self) -> Result<(), ServerError> {
        let mut listening = self.listening();
        if !*listening {
            return Ok(());
        }
        let (reply, done) = std_mpsc::channel();
        self.send(Control::Stop(reply))?;
        done.recv().map_err(|_| ServerError::Stopped)?;
        *listening = false;
        Ok(())
    }

    /// Listens again on the same address after [`Server::stop_listener`], with the sessions as
    /// they were. A no-op if already up.
    pub fn restart_listener(&self) -> Result<(), ServerError> {
        let mut listening = self.listening();
        if *listening {
            return Ok(());
        }
        self.listen(bind(self.addr)?, &mut listening)
    }

    /// Stops accepting, lets in-flight requests finish within
    /// [`ServerConfig::shutdown_grace`] (hangs and delays end at once), closes the rest and joins
    /// the runtime thread.
    pub fn shutdown(mut self) -> Result<(), ServerError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), ServerError> {
        // Closing the control channel is the shutdown signal.
        self.control.take();
        match self.thread.take() {
            Some(thread) => thread.join().map_err(|_| ServerError::Stopped),
            None => Ok(()),
        }
    }

    /// Hands `listener` to the runtime. `listening` is the held lock, so stops and restarts
    /// cannot interleave.
    fn listen(&self, listener: StdListener, listening: &mut bool) -> Result<(), ServerError> {
        let (reply, done) = std_mpsc::channel();
        self.send(Control::Listen(listener, reply))?;
        match done.recv() {
            Ok(Ok(())) => {
                *listening = true;
                Ok(())
            }
            Ok(Err(source)) => Err(ServerError::Bind {
                addr: self.addr,
                source,
            }),
            Err(_) => Err(ServerError::Stopped),
        }
    }

    fn send(&self, command: Control) -> Result<(), ServerError> {
        let control = self.control.as_ref().ok_or(ServerError::Stopped)?;
        control.send(command).map_err(|_| ServerError::Stopped)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .field("listening", &self.is_listening())
            .finish_non_exhaustive()
    }
}

/// Binds on the caller's thread so that errors come back from `start` itself. std sets
/// `SO_REUSEADDR` on Unix, so the same port can be bound again after a stop.
fn bind(addr: SocketAddr) -> Result<StdListener, ServerError> {
    let listener = StdListener::bind(addr).map_err(|source| ServerError::Bind { addr, source })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| ServerError::Bind { addr, source })?;
    Ok(listener)
}

/// The runtime thread's main task: obeys the handle until it is dropped, then drains.
async fn control_loop(shared: Arc<Shared>, mut commands: mpsc::UnboundedReceiver<Control>) {
    let mut current: Option<(watch::Sender<Mode>, JoinHandle<()>)> = None;
    while let Some(command) = commands.recv().await {
        match command {
            Control::Listen(listener, reply) => {
                let started = listener
                    .set_nonblocking(true)
                    .and_then(|()| TcpListener::from_std(listener));
                match started {
                    Ok(listener) => {
                        let (mode, watcher) = watch::channel(Mode::Running);
                        let task =
                            tokio::spawn(accept_loop(listener, Arc::clone(&shared), watcher));
                        current = Some((mode, task));
                        let _ = reply.send(Ok(()));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Control::Stop(reply) => {
                if let Some((mode, task)) = current.take() {
                    let _ = mode.send(Mode::Kill);
                    let _ = task.await;
                }
                let _ = reply.send(());
            }
        }
    }
    if let Some((mode, task)) = current.take() {
        let _ = mode.send(Mode::Draining);
        let _ = task.await;
    }
}

/// Accepts until the mode changes, then drains or kills the connections it opened.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut mode: watch::Receiver<Mode>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, Arc::clone(&shared), mode.clone()));
                }
                // Out of descriptors or a connection aborted before accept: try again shortly.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = mode.changed() => break,
        }
    }
    drop(listener);
    if *mode.borrow() == Mode::Draining {
        let grace = shared.config.shutdown_grace;
        let _ = tokio::time::timeout(grace, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
    }
    connections.shutdown().await;
}

/// HTTP/2 streams one connection may carry at once: a fleet of sessions shares one connection,
/// so this is sized for thousands of them (hyper's default is 200).
pub(crate) const H2_MAX_STREAMS: u32 = 16_384;
/// The HTTP/2 receive window of one stream: a full event batch arrives without a window update.
const H2_STREAM_WINDOW: u32 = 1024 * 1024;
/// The HTTP/2 receive window of a connection, shared by every session's uploads.
const H2_CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;
/// Streams a client may reset before the server has accepted them (h2's guard against rapid
/// resets, default 20). A fleet whose requests time out together resets many at once.
const H2_MAX_PENDING_RESETS: usize = 4096;

/// Connections accepted and open, for the inspector.
#[derive(Debug, Default)]
pub(crate) struct ConnectionCounters {
    pub accepted: AtomicU64,
    pub open: AtomicU64,
    pub http2_requests: AtomicU64,
}

/// Counts a connection open while it lives.
struct OpenConnection<'a>(&'a ConnectionCounters);

impl<'a> OpenConnection<'a> {
    fn new(counters: &'a ConnectionCounters) -> Self {
        counters.accepted.fetch_add(1, Ordering::Relaxed);
        counters.open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(counters)
    }
}

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One keep-alive connection: HTTP/1.1, or HTTP/2 with prior knowledge (h2c).
async fn serve_connection(stream: TcpStream, shared: Arc<Shared>, mut mode: watch::Receiver<Mode>) {
    let _ = stream.set_nodelay(true);
    let counted = Arc::clone(&shared);
    let _open = OpenConnection::new(&counted.connections);
    let service_mode = mode.clone();
    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        if req.version() == hyper::Version::HTTP_2 {
            let counters = &shared.connections;
            counters.http2_requests.fetch_add(1, Ordering::Relaxed);
        }
        http::handle(Arc::clone(&shared), service_mode.clone(), req)
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        .max_concurrent_streams(H2_MAX_STREAMS)
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONNECTION_WINDOW)
        .max_pending_accept_reset_streams(H2_MAX_PENDING_RESETS);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    loop {
        tokio::select! {
            _ = connection.as_mut() => return,
            changed = mode.changed() => {
                let now = *mode.borrow();
                match (changed, now) {
                    // Finish the request in flight (if any), then close.
                    (Ok(()), Mode::Draining) => connection.as_mut().graceful_shutdown(),
                    (Ok(()), Mode::Running) => {}
                    _ => return,
                }
            }
        }
    }
}
