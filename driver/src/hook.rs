//! The caller's hooks on a session's outputs: an observer of the core's outputs, and a tap
//! that sees outputs, answers and the session with their time. A leaf: the driver calls them,
//! the settings hold them.

use tether_core::session::{Output, Session, TransportError};
use tether_core::{Instant, RequestId};

use crate::http::HttpResponse;

/// A hook that sees every output of the core, in order, before the driver acts on it. A panic
/// in it is caught: the hook is dropped and a [`Report::CallbackPanicked`](crate::Report) is
/// published; the session goes on.
pub type Observer = Box<dyn FnMut(&Output) + Send + 'static>;

/// A richer observer, with the time: every core output as it comes, every answer the
/// transport brought, and the session after each drain (to sample what it holds). What a
/// timeline of a real run is drawn from. Its methods run under the driver's lock: keep them
/// short, and do not call the handle from them. A panic in one is caught like an observer's.
pub trait Tap: Send + 'static {
    /// An output of the core at `at` (the core's time), before the driver acts on it.
    fn output(&mut self, at: Instant, output: &Output) {
        let _ = (at, output);
    }

    /// The transport's answer to request `id` at `at`.
    fn answer(
        &mut self,
        at: Instant,
        id: RequestId,
        answer: Result<&HttpResponse, &TransportError>,
    ) {
        let _ = (at, id, answer);
    }

    /// The session after a drain at `at`.
    fn drained(&mut self, at: Instant, session: &Session) {
        let _ = (at, session);
    }
}
