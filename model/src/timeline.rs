//! A timeline of one session: what was sent on which channel and how it ended, the faults and
//! partitions around it, the status stream, and how much was waiting to go.
//!
//! A [`Timeline`] is plain data; [`render`](crate::render::render) draws it as an SVG. It is
//! filled by a [`Recorder`] from timestamped facts: a request was sent, it was answered (or
//! failed, timed out, was cancelled), the status changed, the network was partitioned, the
//! queues held so much. The simulator's runner feeds one when a run asks for it (`tether-sim`'s
//! `RunConfig::with_timeline`); a driver of a real session can feed one the same way from its own
//! clock, turned into an [`Instant`]. The reference server builds one from its request log for
//! its inspector page.
//!
//! Nothing secret goes in: a bar's details name the request, its endpoint, its body's size and
//! how it ended, never a body or a token.
//!
//! ```
//! use tether_core::session::{Endpoint, Request, RequestId, Status};
//! use tether_core::Instant;
//! use tether_model::timeline::{Class, Lane, Recorder};
//!
//! let mut recorder = Recorder::new("one heartbeat");
//! recorder.status(Instant::ZERO, Status::Connected);
//! let beat = Request {
//!     id: RequestId(1),
//!     endpoint: Endpoint::Heartbeat,
//!     body: b"{}".to_vec(),
//!     deadline: Instant::from_secs(10),
//! };
//! recorder.sent(Instant::from_secs(1), &beat);
//! recorder.response(Instant::from_millis(1_020), RequestId(1), 200, None, None);
//! let timeline = recorder.finish(Instant::from_secs(2));
//! assert_eq!(timeline.bars.len(), 1);
//! assert_eq!((timeline.bars[0].lane, timeline.bars[0].class), (Lane::Heartbeat, Class::Success));
//! ```

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use crate::fault::{Delivery, TimeEvent};
use tether_core::classify::{Outcome, Reply, TransientCause, classify};
use tether_core::session::{Endpoint, Request, RequestId, Session, Status, Stream};
use tether_core::time::Instant;

/// A row of the picture: one channel of the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Lane {
    /// Register, the init `PUT /worker` and `GET /worker`.
    Connect,
    /// `POST /worker/heartbeat`.
    Heartbeat,
    /// `POST /worker/events`.
    Events,
    /// `POST /worker/internal-events`.
    InternalEvents,
    /// `POST /worker/events/delivery`: acknowledgements.
    Delivery,
    /// `PUT /worker` state updates once connected.
    State,
    /// Thread sync (not drawn until a session has threads).
    Threads,
}

impl Lane {
    /// The lanes drawn for every session, top to bottom.
    pub const SESSION: [Lane; 6] = [
        Lane::Connect,
        Lane::Heartbeat,
        Lane::Events,
        Lane::InternalEvents,
        Lane::Delivery,
        Lane::State,
    ];

    /// The lane's label.
    pub const fn name(self) -> &'static str {
        match self {
            Lane::Connect => "connect",
            Lane::Heartbeat => "heartbeat",
            Lane::Events => "events",
            Lane::InternalEvents => "internal events",
            Lane::Delivery => "acks",
            Lane::State => "state",
            Lane::Threads => "threads",
        }
    }

    /// The lane of a request to `endpoint`; `connected` says whether the session had connected
    /// (a `PUT /worker` before that is the init `PUT`).
    pub const fn of(endpoint: Endpoint, connected: bool) -> Lane {
        match endpoint {
            Endpoint::Register | Endpoint::GetWorker => Lane::Connect,
            Endpoint::PutWorker if !connected => Lane::Connect,
            Endpoint::PutWorker => Lane::State,
            Endpoint::Heartbeat => Lane::Heartbeat,
            Endpoint::Events => Lane::Events,
            Endpoint::InternalEvents => Lane::InternalEvents,
            Endpoint::Delivery => Lane::Delivery,
        }
    }
}

/// How a request ended, as a colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Class {
    /// 2xx.
    Success,
    /// Worth a retry: a retryable status, a transport error, 413 (split), an auth failure.
    Transient,
    /// 429 or 503 with a `Retry-After`.
    Throttled,
    /// Retrying cannot help: a permanent status, 409 (superseded), 404 (session unknown).
    Permanent,
    /// The core's deadline passed.
    TimedOut,
    /// Cancelled before its deadline (the session ended), or no outcome by the end.
    Cancelled,
}

impl Class {
    /// Every class, in the legend's order.
    pub const ALL: [Class; 6] = [
        Class::Success,
        Class::Transient,
        Class::Throttled,
        Class::Permanent,
        Class::TimedOut,
        Class::Cancelled,
    ];

    /// The class of an outcome from the response table.
    pub const fn of(outcome: Outcome) -> Class {
        match outcome {
            Outcome::Success => Class::Success,
            Outcome::Throttled(_) => Class::Throttled,
            Outcome::Transient(TransientCause::TimedOut) => Class::TimedOut,
            Outcome::Superseded | Outcome::SessionUnknown | Outcome::Permanent(_) => {
                Class::Permanent
            }
            _ => Class::Transient,
        }
    }

    /// The class's name in the legend.
    pub const fn name(self) -> &'static str {
        match self {
            Class::Success => "success",
            Class::Transient => "transient",
            Class::Throttled => "throttled",
            Class::Permanent => "permanent",
            Class::TimedOut => "timed out",
            Class::Cancelled => "cancelled",
        }
    }

    /// How bad the class is, for a merged bar that stands for several requests: the worst wins.
    pub const fn severity(self) -> u8 {
        match self {
            Class::Success => 0,
            Class::Cancelled => 1,
            Class::Throttled => 2,
            Class::Transient => 3,
            Class::TimedOut => 4,
            Class::Permanent => 5,
        }
    }
}

/// One request, from send to outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bar {
    /// Its channel.
    pub lane: Lane,
    /// When it was sent.
    pub start: Instant,
    /// When its outcome was known.
    pub end: Instant,
    /// How it ended.
    pub class: Class,
    /// Whether the network or server was told to fail it (a fault, a partition).
    pub faulted: bool,
    /// A one-line description for the hover title: id, endpoint, size, fault, outcome.
    pub details: String,
}

/// What a shaded [`Span`] stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum SpanKind {
    /// The network dropped everything: every lane is shaded.
    Partition,
    /// One request met a planned fault: its lane is shaded under its bar.
    Fault,
    /// The server restarted (an instant).
    Restart,
    /// A newer worker took the session over (an instant).
    Takeover,
}

/// A stretch of time (or an instant, when `start == end`) something was wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    /// What it is.
    pub kind: SpanKind,
    /// The lane it shades; `None` for all of them.
    pub lane: Option<Lane>,
    /// Its start.
    pub start: Instant,
    /// Its end.
    pub end: Instant,
    /// The hover title.
    pub label: String,
}

/// A kind of status, without its details.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum StatusKind {
    /// `connecting`.
    Connecting,
    /// `connected`.
    Connected,
    /// `retrying`.
    Retrying,
    /// `stale`.
    Stale,
    /// `given-up`.
    GivenUp,
    /// `superseded`.
    Superseded,
    /// `closed`.
    Closed,
}

impl StatusKind {
    /// Every kind, in the legend's order.
    pub const ALL: [StatusKind; 7] = [
        StatusKind::Connecting,
        StatusKind::Connected,
        StatusKind::Retrying,
        StatusKind::Stale,
        StatusKind::GivenUp,
        StatusKind::Superseded,
        StatusKind::Closed,
    ];

    /// The kind of a status (`None` for one this version does not know).
    pub fn of(status: &Status) -> Option<StatusKind> {
        Some(match status {
            Status::Connecting => StatusKind::Connecting,
            Status::Connected => StatusKind::Connected,
            Status::Retrying { .. } => StatusKind::Retrying,
            Status::Stale => StatusKind::Stale,
            Status::GivenUp(_) => StatusKind::GivenUp,
            Status::Superseded => StatusKind::Superseded,
            Status::Closed => StatusKind::Closed,
            _ => return None,
        })
    }

    /// The status's name on the status stream.
    pub const fn name(self) -> &'static str {
        match self {
            StatusKind::Connecting => "connecting",
            StatusKind::Connected => "connected",
            StatusKind::Retrying => "retrying",
            StatusKind::Stale => "stale",
            StatusKind::GivenUp => "given-up",
            StatusKind::Superseded => "superseded",
            StatusKind::Closed => "closed",
        }
    }
}

/// A status change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    /// When.
    pub at: Instant,
    /// Which status.
    pub kind: StatusKind,
    /// For `retrying`: when the retry goes, so the wait is drawn as what it is.
    pub until: Option<Instant>,
    /// The status as the session printed it.
    pub label: String,
}

/// How much the session held at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    /// When.
    pub at: Instant,
    /// Events held by the uploaders (queued and in flight), all streams.
    pub events: u64,
    /// Bytes of event JSON they hold.
    pub bytes: u64,
    /// State patches not acknowledged yet.
    pub patches: u64,
}

/// Everything the picture shows, in time order within each list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Timeline {
    /// A caption: what was run.
    pub title: String,
    /// When the run ended; the time axis goes from zero to here.
    pub end: Instant,
    /// Requests, in the order they were sent.
    pub bars: Vec<Bar>,
    /// Partitions, faults, restarts and takeovers, in the order they began.
    pub spans: Vec<Span>,
    /// Status changes, in order.
    pub marks: Vec<Mark>,
    /// Queue depths, one per change.
    pub samples: Vec<Sample>,
}

impl Timeline {
    /// The lanes to draw: every session lane, and thread sync if anything ran on it.
    pub fn lanes(&self) -> Vec<Lane> {
        let mut lanes = Lane::SESSION.to_vec();
        if self.bars.iter().any(|b| b.lane == Lane::Threads) {
            lanes.push(Lane::Threads);
        }
        lanes
    }
}

/// A request sent and not yet ended.
#[derive(Clone, Debug)]
struct Open {
    bar: usize,
    deadline: Instant,
    fault: Option<String>,
}

/// Builds a [`Timeline`] from timestamped facts, in any order of requests (a fact about an
/// unknown or already-ended request is ignored, as the core ignores a late answer).
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    timeline: Timeline,
    open: BTreeMap<RequestId, Open>,
    connected: bool,
    last: Option<(u64, u64, u64)>,
}

impl Recorder {
    /// An empty timeline with a caption.
    pub fn new(title: impl Into<String>) -> Self {
        Recorder {
            timeline: Timeline {
                title: title.into(),
                ..Timeline::default()
            },
            ..Recorder::default()
        }
    }

    /// The session sent `request` at `at`. Only its id, endpoint, size and deadline are kept.
    pub fn sent(&mut self, at: Instant, request: &Request) {
        let lane = Lane::of(request.endpoint, self.connected);
        let mut details = String::new();
        let _ = write!(
            details,
            "{} {} ({} B) sent {}",
            request.id,
            request.endpoint,
            request.body.len(),
            Secs(at)
        );
        self.open.insert(
            request.id,
            Open {
                bar: self.timeline.bars.len(),
                deadline: request.deadline,
                fault: None,
            },
        );
        self.timeline.bars.push(Bar {
            lane,
            start: at,
            end: at,
            class: Class::Cancelled,
            faulted: false,
            details,
        });
    }

    /// The request `id` was made to fail (or be slow) on purpose: `fault` says how. Its lane is
    /// shaded under it once it ends.
    pub fn fault(&mut self, id: RequestId, fault: impl fmt::Display) {
        if let Some(open) = self.open.get_mut(&id) {
            open.fault = Some(fault.to_string());
            let bar = &mut self.timeline.bars[open.bar];
            bar.faulted = true;
            let _ = write!(bar.details, "; fault: {fault}");
        }
    }

    /// The request `id` got a response with this status (and headers) at `at`, classified by
    /// the response table.
    pub fn response(
        &mut self,
        at: Instant,
        id: RequestId,
        status: u16,
        retry_after: Option<&str>,
        date: Option<&str>,
    ) {
        let outcome = classify(Reply::Status {
            status,
            retry_after,
            date,
        });
        let mut what = format!("{status}");
        if let Some(hint) = retry_after {
            let _ = write!(what, " retry-after {hint}");
        }
        self.end(at, id, Class::of(outcome), &what);
    }

    /// The request `id` failed in transport at `at` (the error's text is not kept: it could
    /// carry a URL).
    pub fn transport_error(&mut self, at: Instant, id: RequestId) {
        self.end(at, id, Class::Transient, "transport error");
    }

    /// What a simulated [`Delivery`] gave the session for `id`, at `at`.
    pub fn delivery(&mut self, at: Instant, id: RequestId, delivery: &Delivery) {
        match delivery {
            Delivery::Respond { response, .. } => self.response(
                at,
                id,
                response.status,
                response.retry_after.as_deref(),
                response.date.as_deref(),
            ),
            Delivery::TransportError { .. } => self.transport_error(at, id),
            Delivery::Hang => {}
        }
    }

    /// The session cancelled `id` at `at`: a timeout if its deadline had passed, else a cancel.
    pub fn cancelled(&mut self, at: Instant, id: RequestId) {
        let timed_out = self.open.get(&id).is_some_and(|o| o.deadline <= at);
        if timed_out {
            self.end(at, id, Class::TimedOut, "timed out");
        } else {
            self.end(at, id, Class::Cancelled, "cancelled");
        }
    }

    /// The request `id` ended at `at` with this class; `what` says how, for the hover title.
    pub fn ended(&mut self, at: Instant, id: RequestId, class: Class, what: &str) {
        self.end(at, id, class, what);
    }

    fn end(&mut self, at: Instant, id: RequestId, class: Class, what: &str) {
        let Some(open) = self.open.remove(&id) else {
            return;
        };
        let bar = &mut self.timeline.bars[open.bar];
        bar.end = at.max(bar.start);
        bar.class = class;
        let _ = write!(
            bar.details,
            "; {what} at {} after {} ms",
            Secs(bar.end),
            bar.end.saturating_duration_since(bar.start).as_millis()
        );
        if let Some(fault) = open.fault {
            self.timeline.spans.push(Span {
                kind: SpanKind::Fault,
                lane: Some(bar.lane),
                start: bar.start,
                end: bar.end,
                label: format!("{}: {fault}", bar.lane.name()),
            });
        }
    }

    /// The status changed at `at`.
    pub fn status(&mut self, at: Instant, status: Status) {
        if status == Status::Connected {
            self.connected = true;
        }
        let Some(kind) = StatusKind::of(&status) else {
            return;
        };
        let until = match status {
            Status::Retrying { at: retry, .. } => Some(retry.max(at)),
            _ => None,
        };
        let mut label = format!("{} {status}", Secs(at));
        if let Some(until) = until {
            let _ = write!(
                label,
                " (waits {} ms)",
                until.saturating_duration_since(at).as_millis()
            );
        }
        self.timeline.marks.push(Mark {
            at,
            kind,
            until,
            label,
        });
    }

    /// A shaded span (a partition, a fault) or an instant (a restart, a takeover).
    pub fn span(&mut self, kind: SpanKind, lane: Option<Lane>, start: Instant, end: Instant) {
        let label = match kind {
            SpanKind::Partition => format!(
                "partition {} to {} ({} s)",
                Secs(start),
                Secs(end),
                end.saturating_duration_since(start).as_secs()
            ),
            SpanKind::Fault => format!("fault {} to {}", Secs(start), Secs(end)),
            SpanKind::Restart => format!("server restart at {}", Secs(start)),
            SpanKind::Takeover => format!("takeover by a newer epoch at {}", Secs(start)),
        };
        self.timeline.spans.push(Span {
            kind,
            lane,
            start,
            end: end.max(start),
            label,
        });
    }

    /// A planned event of the simulator's fault plan, as it happens at `at`.
    pub fn plan_event(&mut self, at: Instant, event: TimeEvent) {
        match event {
            TimeEvent::PartitionStart { until } => {
                self.span(SpanKind::Partition, None, at, until);
            }
            TimeEvent::Restart => self.span(SpanKind::Restart, None, at, at),
            TimeEvent::Takeover => self.span(SpanKind::Takeover, None, at, at),
            _ => {}
        }
    }

    /// The session held this much at `at`. Kept only when it changed.
    pub fn sample(&mut self, at: Instant, events: u64, bytes: u64, patches: u64) {
        if self.last == Some((events, bytes, patches)) {
            return;
        }
        self.last = Some((events, bytes, patches));
        self.timeline.samples.push(Sample {
            at,
            events,
            bytes,
            patches,
        });
    }

    /// Samples what `session` holds at `at`: every uploader's depth and the state uploader's
    /// unacknowledged patches.
    pub fn sample_session(&mut self, at: Instant, session: &Session) {
        let (mut events, mut bytes) = (0, 0);
        for stream in Stream::ALL {
            let depth = session.uploader_depth(stream);
            events += depth.events as u64;
            bytes += depth.bytes as u64;
        }
        self.sample(at, events, bytes, session.state_unacknowledged());
    }

    /// The timeline, ended at `end`: requests still open end there as cancelled, and spans
    /// are clipped to it.
    pub fn finish(mut self, end: Instant) -> Timeline {
        let open: Vec<RequestId> = self.open.keys().copied().collect();
        for id in open {
            self.end(end, id, Class::Cancelled, "no outcome by the end");
        }
        let mut timeline = self.timeline;
        timeline.end = end;
        for span in &mut timeline.spans {
            span.end = span.end.min(end);
        }
        timeline.spans.sort_by_key(|s| (s.start, s.kind));
        timeline
    }
}

/// `12.345 s`.
struct Secs(Instant);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_micros() / 1_000;
        write!(f, "{}.{:03} s", ms / 1_000, ms % 1_000)
    }
}
