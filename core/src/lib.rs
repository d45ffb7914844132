//! Sans-IO state machines that keep a worker session in sync with a server.
//!
//! tether sends heartbeats, uploads an event stream in batches, and keeps a worker-state document
//! in sync by coalescing JSON merge patches. It retries with backoff, gives up by clear rules, and
//! never loses an event without telling the caller. This crate is the pure part: it never reads a
//! clock, sleeps, spawns or touches a socket, and `#![no_std]` makes that a compile-time fact.
//! Runtimes drive it through thin shims (`tether-blocking`, `tether-smol`), a simulator drives it
//! in virtual time, and anyone can drive it from their own loop.
//!
//! # The drive contract
//!
//! Every machine follows the same contract (see [`Machine`]):
//!
//! 1. Time comes in from outside as an [`Instant`] — microseconds since an origin the driver
//!    picked. An earlier `now` than one already seen is clamped, so time never runs backwards.
//! 2. Randomness comes from a [`Rng`] seeded by the caller: the same seed and the same inputs give
//!    byte-identical outputs.
//! 3. Make **one** call — a typed mutator such as `enqueue`, `flush` or `handle_outcome`, or
//!    `handle_timeout` — then drain `poll_output` until it returns [`Poll::Timeout`]. Outputs always come first, so a driver
//!    never sleeps on pending work. `Timeout(Some(wake))` says when to call back and why;
//!    `Timeout(None)` means nothing is scheduled. A spurious or early timeout is a no-op.
//! 4. Bad input is a typed error returned at once; remote and transport failures come back in
//!    as inputs; giving up comes out as an output.
//!
//! ```text
//!            ┌──────────── a typed call(now, ..) / handle_timeout(now) ◀─────────────┐
//!            ▼                                                                        │
//!   ┌─────────────────┐   poll_output() ──▶ Output(o) ──▶ carry out o, poll again     │
//!   │     machine     │                                                               │
//!   └─────────────────┘   poll_output() ──▶ Timeout(at) ──▶ sleep until `at` or an ───┘
//!                                                           input arrives
//! ```
//!
//! # A driver loop
//!
//! A blocking driver of the [`heartbeat`] machine. A real driver sends the beat over HTTP and
//! feeds the outcome back when it arrives; here the "server" accepts every beat at once, and the
//! clock is simulated so the example runs instantly.
//!
//! ```
//! use tether_core::heartbeat::{self, Heartbeat};
//! use tether_core::{Instant, Outcome, Poll, Rng};
//!
//! let mut heartbeat = Heartbeat::new(heartbeat::Config::default(), Rng::new(7))?;
//! let mut now = Instant::ZERO; // a real driver: origin.elapsed() of a std::time::Instant
//! heartbeat.start(now);
//!
//! let mut beats = 0;
//! loop {
//!     // Drain every output before looking at the next deadline.
//!     let wake = loop {
//!         match heartbeat.poll_output() {
//!             Poll::Output(heartbeat::Output::Send(id)) => {
//!                 beats += 1; // send POST /worker/heartbeat here
//!                 heartbeat.handle_outcome(now, id, Outcome::Success)?;
//!             }
//!             Poll::Output(other) => println!("{now}: {other:?}"),
//!             Poll::Timeout(wake) => break wake,
//!         }
//!     };
//!     let Some(wake) = wake else { break };
//!     if wake.at > Instant::from_secs(120) {
//!         break; // the example's end; a real driver runs until the session ends
//!     }
//!     now = wake.at; // a real driver sleeps until wake.at (or until an input arrives)
//!     heartbeat.handle_timeout(now);
//! }
//! assert_eq!(beats, 6); // at 20, 40, ..., 120 s
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The machines
//!
//! - [`backoff`]: the delay curve with its jitter kinds and floor, `Retry-After` parsing, and the
//!   give-up controller.
//! - [`classify`]: docs/PROTOCOL.md's response table, in one place.
//! - [`heartbeat`]: periodic beats and liveness.
//! - [`patch`]: RFC 7396 merge patches and the worker document's semantics.
//!
//! The machines, each usable alone (all but the controller, which answers each failure at once
//! and keeps no timers, implement [`Machine`]):
//!
//! | machine | module | what it does |
//! |---|---|---|
//! | [`BackoffController`](backoff::BackoffController) | [`backoff`] | attempts, retry delays, the give-up rules (no timers of its own: it answers each failure) |
//! | [`Heartbeat`](heartbeat::Heartbeat) | [`heartbeat`] | a beat every interval once started, staleness after the TTL |
//! | [`BatchDrainer`](batch::BatchDrainer) | [`batch`] | the event uploader: bounded queue, batches, one in flight, 413 splits, dead letters |
//! | [`StateUploader`](state::StateUploader) | [`state`] | the worker document: one PUT in flight, lawful coalescing, rollback |
//! | [`Session`](session::Session) | [`session`] | all of the above composed over docs/PROTOCOL.md's endpoints |
//! | [`ThreadSync`](thread::ThreadSync) | [`thread`] | two-way sync of shared threads: pushes, adaptive pulls, three-way merge, offline probe |
//!
//! One vocabulary runs through them: every constructor is `new(config, rng)` (the session also
//! takes the `now` it starts connecting at); every reply is classified into one [`Outcome`] by
//! [`classify`]; every flush is named by a [`FlushId`] and ends in `FlushDone` or
//! `FlushTimedOut`; every request on the wire, the session's and thread sync's alike, by one
//! [`RequestId`]; deadlines are timers called `RequestDeadline`, `FlushDeadline` and
//! `CloseDeadline`; and a [`GiveUpReason`](backoff::GiveUpReason) says why anything gave up.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

pub mod backoff;
pub mod batch;
pub mod budget;
pub mod classify;
pub mod drive;
pub mod heartbeat;
pub mod patch;
pub mod rng;
pub mod session;
pub mod state;
pub mod thread;
pub mod time;

pub use classify::{Outcome, TransientCause};
pub use drive::{DrainBound, Driven, FlushId, Livelock, Machine, Poll, RequestId, Wake};
pub use rng::Rng;
pub use time::{Clock, Instant};
