//! The three event streams: one uploader each, with what the session tracks about it.

use core::ops::{Index, IndexMut};

use super::Session;
use super::flight::Purpose;
use crate::batch::{self, BatchDrainer};
use crate::drive::Wake;
use crate::session::io::{Output, Stream};
use crate::time::Instant;

/// One value per stream of [`Stream::ALL`], indexed by stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct PerStream<T>([T; 3]);

impl<T> PerStream<T> {
    /// The values of [`Stream::ALL`], in that order.
    pub(super) const fn new(values: [T; 3]) -> Self {
        PerStream(values)
    }

    pub(super) fn from_fn(mut f: impl FnMut(Stream) -> T) -> Self {
        PerStream(Stream::ALL.map(&mut f))
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (Stream, &T)> + '_ {
        Stream::ALL.into_iter().zip(self.0.iter())
    }

    pub(super) fn values_mut(&mut self) -> impl Iterator<Item = &mut T> + '_ {
        self.0.iter_mut()
    }
}

const fn position(stream: Stream) -> usize {
    match stream {
        Stream::Events => 0,
        Stream::InternalEvents => 1,
        Stream::Delivery => 2,
    }
}

impl<T> Index<Stream> for PerStream<T> {
    type Output = T;

    fn index(&self, stream: Stream) -> &T {
        &self.0[position(stream)]
    }
}

impl<T> IndexMut<Stream> for PerStream<T> {
    fn index_mut(&mut self, stream: Stream) -> &mut T {
        &mut self.0[position(stream)]
    }
}

/// One stream's uploader and the session's view of it.
#[derive(Debug)]
pub(super) struct StreamSlot {
    pub(super) uploader: BatchDrainer,
    /// The uploader said [`batch::Output::Closed`]: everything was delivered or handed back.
    pub(super) closed: bool,
    /// The uploader's next wake-up, as of its last drain.
    pub(super) wake: Option<Wake<batch::Timer>>,
}

impl StreamSlot {
    pub(super) fn new(uploader: BatchDrainer) -> Self {
        StreamSlot {
            uploader,
            closed: false,
            wake: None,
        }
    }
}

impl Session {
    /// Carries out one output of `stream`'s uploader.
    pub(super) fn on_uploader(&mut self, now: Instant, stream: Stream, out: batch::Output) {
        match out {
            batch::Output::Send { id, body, .. } => {
                if !self.is_ended() {
                    self.send(now, Purpose::Batch(stream, id), body);
                }
            }
            batch::Output::Delivered { events, .. } => {
                let ids = self.config.outbox.then(|| events.clone());
                self.outputs.push_back(Output::Delivered { stream, events });
                self.forget(stream, || ids.unwrap_or_default());
            }
            batch::Output::HandedBack { reason, events } => {
                let ids = self
                    .config
                    .outbox
                    .then(|| events.iter().map(|u| u.id).collect());
                self.outputs.push_back(Output::HandedBack {
                    stream,
                    reason,
                    events,
                });
                self.settle_handed_back(stream, &reason, ids.unwrap_or_default());
            }
            batch::Output::FlushDone(flush) => self.stream_flushed(stream, Some(flush)),
            // Sub-flushes are given no deadline of their own, so this cannot report a session
            // flush done; the session's own deadline decides.
            batch::Output::FlushTimedOut(_) => {}
            batch::Output::Closed => {
                self.streams[stream].closed = true;
                self.budget
                    .drop_channel(super::flight::Channel::Stream(stream));
                self.stream_flushed(stream, None);
            }
        }
    }
}
