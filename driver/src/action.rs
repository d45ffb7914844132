//! What the driver asks its shim to do. A leaf: the driver and thread sync make actions, the
//! shims carry them out.

use tether_core::RequestId;

use crate::http::HttpRequest;
use crate::store_job::StoreJob;

/// What the shim must do.
#[derive(Debug)]
#[non_exhaustive]
pub enum Action {
    /// Perform this request once and answer with [`Driver::handle_reply`](crate::Driver::handle_reply).
    Send(HttpRequest),
    /// The core failed this request at its deadline: stop it if you can; its answer is dropped.
    Cancel(RequestId),
    /// Run this store job where blocking is allowed (never on an executor thread, never under
    /// the driver's lock), then hand its result to
    /// [`Shared::store_done`](crate::runtime::Shared::store_done).
    Store(StoreJob),
}
