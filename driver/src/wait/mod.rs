//! Answers that come later, and streams of facts, on any runtime or none: a [`Pending`] is a
//! future the driver completes, a [`Subscription`] a queue it feeds. Async callers await them;
//! blocking callers [`Pending::wait`] and [`Subscription::recv`], which park only the calling
//! thread, at its request ([`block`]). The driver itself never waits on either.

mod block;
mod pending;
mod subscription;

pub use pending::{Completer, Pending};
pub(crate) use subscription::Fanout;
pub use subscription::{Lagged, SUBSCRIPTION_CAPACITY, Subscription};
