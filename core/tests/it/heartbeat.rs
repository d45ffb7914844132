//! The heartbeat machine in simulated time (docs/ARCHITECTURE.md §Heartbeat).

use core::time::Duration;

use tether_core::heartbeat::{self, BeatId, Heartbeat};
use tether_core::{DrainBound, Instant, Outcome, Poll, Rng, TransientCause};

/// A beat that failed at the transport level.
const FAILED: Outcome = Outcome::Transient(TransientCause::Transport);

/// The most outputs one drain may yield before the test calls it a livelock.
const DRAIN_BOUND: usize = 1_000;

/// Polls until the timeout, passing each output to `on_output`; returns the wake-up.
fn drain(
    hb: &mut Heartbeat,
    mut on_output: impl FnMut(heartbeat::Output),
) -> Option<tether_core::Wake<heartbeat::Timer>> {
    let mut bound = DrainBound::new(Instant::ZERO, DRAIN_BOUND);
    loop {
        match bound.poll(hb).expect("the machine livelocked") {
            Poll::Output(out) => on_output(out),
            Poll::Timeout(wake) => return wake,
        }
    }
}

/// How the simulated server answers a beat.
#[derive(Clone, Copy)]
enum Server {
    /// Accepts every beat after this latency.
    Ok(Duration),
    /// Fails every beat at its 5 s deadline until `until`, then accepts at once.
    DownUntil(Instant),
}

/// Runs a started heartbeat from `start` to `end`, jumping the clock from wake-up to wake-up.
/// Returns the times of every beat and every output, in order.
fn run(
    config: heartbeat::Config,
    seed: u64,
    end: Instant,
    server: Server,
) -> Vec<(Instant, heartbeat::Output)> {
    let mut hb = Heartbeat::new(config, Rng::new(seed)).unwrap();
    let mut now = Instant::ZERO;
    hb.start(now);
    let mut log = Vec::new();
    let mut pending: Option<(Instant, BeatId, bool)> = None;
    for _ in 0..1_000_000 {
        let wake = drain(&mut hb, |out| {
            if let heartbeat::Output::Send(id) = out {
                assert!(pending.is_none(), "a beat was sent while one was in flight");
                pending = Some(match server {
                    Server::Ok(latency) => (now + latency, id, true),
                    Server::DownUntil(t) if now >= t => (now, id, true),
                    Server::DownUntil(_) => (now + Duration::from_secs(5), id, false),
                });
            }
            log.push((now, out));
        })
        .map(|w| w.at);
        let next = [wake, pending.map(|p| p.0)].into_iter().flatten().min();
        let Some(next) = next else { break };
        if next > end {
            break;
        }
        now = next.max(now);
        match pending {
            Some((at, id, ok)) if at <= now => {
                pending = None;
                hb.handle_outcome(now, id, if ok { Outcome::Success } else { FAILED })
                    .unwrap();
            }
            _ => hb.handle_timeout(now),
        }
    }
    log
}

fn beats(log: &[(Instant, heartbeat::Output)]) -> Vec<Instant> {
    log.iter()
        .filter(|(_, o)| matches!(o, heartbeat::Output::Send(_)))
        .map(|(t, _)| *t)
        .collect()
}

#[test]
fn one_hour_at_20s_without_jitter_is_exactly_180_beats() {
    let log = run(
        heartbeat::Config::default(),
        1,
        Instant::from_secs(3600),
        Server::Ok(Duration::from_millis(50)),
    );
    let beats = beats(&log);
    assert_eq!(beats.len(), 180);
    assert_eq!(beats.first(), Some(&Instant::from_secs(20)));
    assert_eq!(beats.last(), Some(&Instant::from_secs(3600)));
    assert!(
        beats
            .windows(2)
            .all(|w| w[1].saturating_duration_since(w[0]) == Duration::from_secs(20))
    );
}

#[test]
fn jittered_gaps_stay_within_bounds_and_vary() {
    let config = heartbeat::Config {
        jitter: 0.25,
        ..heartbeat::Config::default()
    };
    let log = run(
        config,
        7,
        Instant::from_secs(3600),
        Server::Ok(Duration::from_millis(10)),
    );
    let gaps: Vec<Duration> = beats(&log)
        .windows(2)
        .map(|w| w[1].saturating_duration_since(w[0]))
        .collect();
    assert!(gaps.len() > 100);
    for gap in &gaps {
        assert!(
            *gap >= Duration::from_secs(15) && *gap <= Duration::from_secs(25),
            "{gap:?}"
        );
    }
    assert!(gaps.iter().any(|g| *g != gaps[0]), "jitter had no effect");
}

#[test]
fn the_same_seed_gives_the_same_beats() {
    let config = heartbeat::Config {
        jitter: 0.5,
        ..heartbeat::Config::default()
    };
    let a = run(
        config,
        42,
        Instant::from_secs(600),
        Server::Ok(Duration::ZERO),
    );
    let b = run(
        config,
        42,
        Instant::from_secs(600),
        Server::Ok(Duration::ZERO),
    );
    let c = run(
        config,
        43,
        Instant::from_secs(600),
        Server::Ok(Duration::ZERO),
    );
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn no_beat_is_sent_while_one_is_in_flight() {
    // Every beat takes 45 s to answer: two slots pass while it is in flight.
    let log = run(
        heartbeat::Config::default(),
        1,
        Instant::from_secs(600),
        Server::Ok(Duration::from_secs(45)),
    );
    // The driver asserts no overlap; the count shows slots were skipped rather than queued.
    let beats = beats(&log);
    assert!(beats.len() < 600 / 20 / 2, "{} beats", beats.len());
    assert!(!beats.is_empty());
}

#[test]
fn after_a_stall_missed_beats_are_skipped_not_burst() {
    let mut hb = Heartbeat::new(heartbeat::Config::default(), Rng::new(1)).unwrap();
    hb.start(Instant::ZERO);
    // The driver was asleep for ten minutes: 30 slots passed.
    hb.handle_timeout(Instant::from_secs(600));
    let mut sent = Vec::new();
    let wake = drain(&mut hb, |out| {
        if let heartbeat::Output::Send(id) = out {
            sent.push(id);
        }
    })
    .unwrap();
    assert_eq!(sent.len(), 1, "one beat, not a burst");
    hb.handle_outcome(Instant::from_secs(600), sent[0], Outcome::Success)
        .unwrap();
    let next = drain(&mut hb, |out| {
        assert!(
            !matches!(out, heartbeat::Output::Send(_)),
            "a second beat after the stall"
        );
    })
    .unwrap()
    .at;
    assert!(wake.at >= Instant::from_secs(600));
    assert_eq!(
        next,
        Instant::from_secs(620),
        "the cadence resumes from the stall"
    );
}

#[test]
fn stale_is_reported_once_when_no_beat_succeeds_within_the_ttl_and_live_after() {
    let log = run(
        heartbeat::Config::default(),
        1,
        Instant::from_secs(300),
        Server::DownUntil(Instant::from_secs(200)),
    );
    let stale: Vec<_> = log
        .iter()
        .filter(|(_, o)| matches!(o, heartbeat::Output::Stale { .. }))
        .collect();
    assert_eq!(stale.len(), 1, "{log:?}");
    assert_eq!(
        stale[0].0,
        Instant::from_secs(60),
        "stale exactly one TTL after the start"
    );
    assert_eq!(
        stale[0].1,
        heartbeat::Output::Stale {
            last_ok: Instant::ZERO
        }
    );
    let live: Vec<_> = log
        .iter()
        .filter(|(_, o)| *o == heartbeat::Output::Live)
        .collect();
    assert_eq!(live.len(), 1);
    assert!(live[0].0 >= Instant::from_secs(200));
}

#[test]
fn a_spurious_or_early_timeout_is_a_no_op() {
    let mut hb = Heartbeat::new(heartbeat::Config::default(), Rng::new(1)).unwrap();
    hb.start(Instant::ZERO);
    let before = hb.poll_output();
    hb.handle_timeout(Instant::from_secs(3));
    hb.handle_timeout(Instant::from_secs(1)); // time running backwards is clamped
    assert_eq!(hb.poll_output(), before);
}

#[test]
fn failures_are_not_retried_and_unknown_outcomes_are_errors() {
    let mut hb = Heartbeat::new(heartbeat::Config::default(), Rng::new(1)).unwrap();
    hb.start(Instant::ZERO);
    hb.handle_timeout(Instant::from_secs(20));
    let Poll::Output(heartbeat::Output::Send(id)) = hb.poll_output() else {
        panic!("expected a beat")
    };
    hb.handle_outcome(Instant::from_secs(21), id, FAILED)
        .unwrap();
    match hb.poll_output() {
        Poll::Timeout(Some(w)) => assert_eq!(
            w.at,
            Instant::from_secs(40),
            "no retry before the next slot"
        ),
        other => panic!("{other:?}"),
    }
    assert!(
        hb.handle_outcome(Instant::from_secs(21), id, Outcome::Success)
            .is_err()
    );
}

#[test]
fn stopping_cancels_everything() {
    let mut hb = Heartbeat::new(heartbeat::Config::default(), Rng::new(1)).unwrap();
    hb.start(Instant::ZERO);
    hb.stop(Instant::from_secs(1));
    assert_eq!(hb.poll_output(), Poll::Timeout(None));
    hb.handle_timeout(Instant::from_secs(1_000));
    assert_eq!(hb.poll_output(), Poll::Timeout(None));
}

#[test]
fn an_interval_outside_5_to_30_seconds_is_a_configuration_error() {
    for secs in [0, 4, 31, 3600] {
        let config = heartbeat::Config {
            interval: Duration::from_secs(secs),
            ..heartbeat::Config::default()
        };
        assert_eq!(
            Heartbeat::new(config, Rng::new(0)).err(),
            Some(heartbeat::ConfigError::Interval(Duration::from_secs(secs)))
        );
    }
    for secs in [5, 30] {
        let config = heartbeat::Config {
            interval: Duration::from_secs(secs),
            ..heartbeat::Config::default()
        };
        assert!(Heartbeat::new(config, Rng::new(0)).is_ok());
    }
    let bad_jitter = heartbeat::Config {
        jitter: f64::NAN,
        ..heartbeat::Config::default()
    };
    assert_eq!(bad_jitter.validate(), Err(heartbeat::ConfigError::Jitter));
    let short_ttl = heartbeat::Config {
        ttl: Duration::from_secs(10),
        ..heartbeat::Config::default()
    };
    assert_eq!(
        short_ttl.validate(),
        Err(heartbeat::ConfigError::TtlShorterThanInterval)
    );
}
