//! What the driver asks its shim to do. A leaf: the driver and thread sync make actions, the
//! shims carry them out.

use tether_core::session::RequestId;

use crate::http::HttpRequest;

/// What the shim must do.
#[derive(Debug)]
#[non_exhaustive]
pub enum Action {
    /// Perform this request once and answer with [`Driver::handle_reply`](crate::Driver::handle_reply).
    Send(HttpRequest),
    /// The core failed this request at its deadline: stop it if you can; its answer is dropped.
    Cancel(RequestId),
}
