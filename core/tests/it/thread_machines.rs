//! Thread sync's small machines in simulated time (docs/ARCHITECTURE.md §Thread sync).

use core::time::Duration;

use serde_json::json;
use tether_core::thread::{
    self, AdaptivePoller, Edit, ItemResult, Message, NetworkConfig, NetworkOutput, NetworkState,
    OfflineReason, PerfConfig, PerfMonitor, PollerConfig, PollerOutput, PollerTimer, PushConfig,
    PushOrchestrator, PushOutput, StatusStream, SyncStatus, Thread,
};
use tether_core::{Driven, Instant, Outcome, Poll, Rng, TransientCause};

const S: fn(u64) -> Instant = Instant::from_secs;
const MS: fn(u64) -> Instant = Instant::from_millis;

#[test]
fn poller_interval_follows_activity_and_decays_each_second() {
    let mut p = Driven::new(
        AdaptivePoller::new(PollerConfig::default(), Rng::new(1)),
        Instant::ZERO,
    );
    p.call(|p, now| p.start(now)).unwrap();
    assert_eq!(p.machine().interval(), Duration::from_secs(60));
    for _ in 0..5 {
        p.call(|p, now| p.record_activity(now)).unwrap();
    }
    assert_eq!(p.machine().activity(), 50);
    assert_eq!(p.machine().interval(), Duration::from_micros(32_500_000));
    // Decay: one a second, woken each second.
    assert_eq!(p.next_wake().unwrap().reason, PollerTimer::Decay);
    p.advance().unwrap();
    assert_eq!((p.now(), p.machine().activity()), (S(1), 49));
    // A stall is caught up arithmetically, no burst of pulls.
    let outs = p.advance_to(S(40)).unwrap();
    assert!(outs.is_empty());
    assert_eq!(p.machine().activity(), 10);
    assert_eq!(p.machine().next_pull(), Some(Instant::from_millis(54_500)));
    // Saturates at 100 → 5 s, and at 0 → 60 s.
    for _ in 0..20 {
        p.call(|p, now| p.record_activity(now)).unwrap();
    }
    assert_eq!(p.machine().activity(), 100);
    assert_eq!(p.machine().interval(), Duration::from_secs(5));
    p.advance_to(S(400)).unwrap();
    assert_eq!(p.machine().activity(), 0);
    assert_eq!(p.next_wake().unwrap().reason, PollerTimer::Pull);
}

#[test]
fn poller_deep_queue_raises_activity_and_pulls_come_sooner() {
    let mut p = Driven::new(
        AdaptivePoller::new(PollerConfig::default(), Rng::new(1)),
        Instant::ZERO,
    );
    p.call(|p, now| p.start(now)).unwrap();
    p.call(|p, now| p.set_queue_depth(now, 10)).unwrap();
    assert_eq!(p.machine().activity(), 0);
    p.call(|p, now| p.set_queue_depth(now, 11)).unwrap();
    assert_eq!(p.machine().activity(), 10);
    // Pulls at most one interval apart, never two at once.
    let mut pulls = Vec::new();
    while p.now() < S(300) {
        for out in p.advance().unwrap().unwrap() {
            assert_eq!(out, PollerOutput::Pull);
            pulls.push(p.now());
        }
    }
    for pair in pulls.windows(2) {
        let gap = pair[1].saturating_duration_since(pair[0]);
        assert!(gap >= Duration::from_secs(5) && gap <= Duration::from_secs(60));
    }
    assert!(pulls.len() >= 5, "{pulls:?}");
}

#[test]
fn poller_jitter_stays_in_bounds_and_replays() {
    let run = |seed| {
        let config = PollerConfig {
            jitter: 0.2,
            ..PollerConfig::default()
        };
        let mut p = Driven::new(AdaptivePoller::new(config, Rng::new(seed)), Instant::ZERO);
        p.call(|p, now| p.start(now)).unwrap();
        let mut at = Vec::new();
        for _ in 0..10 {
            p.advance().unwrap();
            at.push(p.now());
        }
        at
    };
    assert_eq!(run(3), run(3));
    assert_ne!(run(3), run(4));
    let mut last = Instant::ZERO;
    for at in run(3) {
        let gap = at.saturating_duration_since(last).as_secs_f64();
        assert!((48.0..=72.0).contains(&gap), "{gap}");
        last = at;
    }
}

#[test]
fn network_goes_offline_after_repeated_transport_failures_and_probes() {
    let mut n = Driven::new(NetworkState::new(NetworkConfig::default()), Instant::ZERO);
    let transport = Outcome::Transient(TransientCause::Transport);
    n.call(|n, now| n.record(now, transport)).unwrap();
    n.call(|n, now| n.record(now, transport)).unwrap();
    // Any answer from the server resets the count.
    n.call(|n, now| n.record(now, Outcome::Transient(TransientCause::Status(503))))
        .unwrap();
    n.call(|n, now| n.record(now, transport)).unwrap();
    n.call(|n, now| n.record(now, Outcome::Transient(TransientCause::TimedOut)))
        .unwrap();
    assert!(n.machine().is_online());
    let (_, outs) = n.call(|n, now| n.record(now, transport)).unwrap();
    assert_eq!(
        outs,
        [NetworkOutput::Offline(OfflineReason::TransportFailures(3))]
    );
    // Probes every 30 s; one that hangs is cancelled at its 10 s deadline.
    let outs = n.advance().unwrap().unwrap();
    assert_eq!(
        (n.now(), outs.clone()),
        (
            S(30),
            vec![NetworkOutput::Send(tether_core::thread::ProbeId(0))]
        )
    );
    let outs = n.advance().unwrap().unwrap();
    assert_eq!(
        (n.now(), outs),
        (
            S(40),
            vec![NetworkOutput::Cancel(tether_core::thread::ProbeId(0))]
        )
    );
    let outs = n.advance().unwrap().unwrap();
    let [NetworkOutput::Send(id)] = outs[..] else {
        panic!("{outs:?}")
    };
    assert_eq!(n.now(), S(60));
    // A late answer to the cancelled probe is ignored; a failure waits for the next.
    n.call(|n, now| n.probe_result(now, tether_core::thread::ProbeId(0), Outcome::Success))
        .unwrap();
    assert!(!n.machine().is_online());
    let (_, outs) = n
        .call(|n, now| n.probe_result(now, id, Outcome::Success))
        .unwrap();
    assert_eq!(outs, [NetworkOutput::Online]);
    assert_eq!(n.next_wake(), None);
}

#[test]
fn network_follows_the_caller() {
    let mut n = Driven::new(NetworkState::new(NetworkConfig::default()), Instant::ZERO);
    let (_, outs) = n.call(|n, now| n.set_online(now, false)).unwrap();
    assert_eq!(outs, [NetworkOutput::Offline(OfflineReason::Caller)]);
    assert!(
        n.call(|n, now| n.set_online(now, false))
            .unwrap()
            .1
            .is_empty()
    );
    let (_, outs) = n.call(|n, now| n.set_online(now, true)).unwrap();
    assert_eq!(outs, [NetworkOutput::Online]);
}

#[test]
fn status_stream_reports_changes_only() {
    let mut s = StatusStream::default();
    s.set("a", SyncStatus::Pending);
    s.set("a", SyncStatus::Pending);
    s.set("a", SyncStatus::Syncing);
    s.set("b", SyncStatus::Synced);
    let mut changes = Vec::new();
    while let Poll::Output(c) = s.poll_output() {
        changes.push((c.thread, c.status.as_str()));
    }
    assert_eq!(
        changes,
        [
            ("a".to_string(), "pending"),
            ("a".to_string(), "syncing"),
            ("b".to_string(), "synced")
        ]
    );
    assert_eq!(s.get("zzz"), SyncStatus::Unknown);
}

#[test]
fn perf_monitor_p95_slow_syncs_and_best_batch() {
    let mut perf = PerfMonitor::new(PerfConfig::default());
    assert_eq!(perf.p95(), None);
    assert_eq!(perf.best_batch_size(), 50);
    let mut slow = 0;
    for i in 0..100u64 {
        let size = if i % 2 == 0 { 20 } else { 40 };
        let ms = if size == 20 { 10 + i % 5 } else { 30 + i % 5 };
        slow += usize::from(perf.record(Duration::from_millis(ms), size).is_some());
    }
    assert_eq!(perf.p95(), Some(Duration::from_millis(34)));
    assert_eq!(perf.best_batch_size(), 20);
    let event = perf.record(Duration::from_secs(2), 40).expect("slow");
    assert_eq!(event.p95, Duration::from_millis(34));
    assert!(slow < 10, "{slow}");
    assert_eq!(perf.total(), 101);
}

fn drive_push(config: PushConfig) -> Driven<PushOrchestrator> {
    Driven::new(PushOrchestrator::new(config, Rng::new(5)), Instant::ZERO)
}

fn msg(id: &str, ts: u64) -> Message {
    Message::new(id, "user", id, ts)
}

fn sends(outs: &[PushOutput]) -> Vec<(tether_core::thread::PushId, Vec<(String, u64)>)> {
    outs.iter()
        .filter_map(|o| match o {
            PushOutput::Send { id, items } => {
                Some((*id, items.iter().map(|i| (i.id.clone(), i.base)).collect()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn push_merges_edits_within_the_window_and_caps_batches_at_50() {
    let mut p = drive_push(PushConfig::default());
    for i in 0..60u64 {
        p.set_time(MS(i));
        let thread = format!("t{i:02}");
        p.call(|p, now| p.add_message(now, &thread, msg("a", i)))
            .unwrap()
            .0
            .unwrap();
        p.call(|p, now| p.add_message(now, &thread, msg("b", i)))
            .unwrap()
            .0
            .unwrap();
    }
    let outs = p.advance().unwrap().unwrap();
    assert_eq!(p.now(), MS(100));
    let sent = sends(&outs);
    assert_eq!(sent.len(), 1);
    let (id, items) = &sent[0];
    assert_eq!(items.len(), 50);
    assert!(items.iter().all(|(_, base)| *base == 0));
    let PushOutput::Send { items: full, .. } = outs
        .iter()
        .find(|o| matches!(o, PushOutput::Send { .. }))
        .unwrap()
    else {
        unreachable!()
    };
    assert_eq!(full[0].thread.messages.len(), 2, "two edits, one item");
    let results = items
        .iter()
        .map(|(t, _)| ItemResult::Applied {
            id: t.clone(),
            v: 1,
        })
        .collect();
    let (r, outs) = p
        .call(|p, now| p.handle_results(now, *id, results))
        .unwrap();
    r.unwrap();
    assert!(sends(&outs).is_empty(), "the next batch waits a window");
    let outs = p.advance().unwrap().unwrap();
    let sent = sends(&outs);
    assert_eq!(sent[0].1.len(), 10);
    assert_eq!(p.machine().pending(), 10);
    assert_eq!(p.machine().replica().synced("t00").map(|t| t.v), Some(1));
}

#[test]
fn push_conflict_merges_three_ways_and_pushes_again() {
    let mut p = drive_push(PushConfig::default());
    p.call(|p, now| p.add_message(now, "t", msg("mine", 5)))
        .unwrap()
        .0
        .unwrap();
    let outs = p.advance().unwrap().unwrap();
    let (id, _) = sends(&outs)[0].clone();
    let mut current = Thread::new("t");
    current.v = 3;
    current.messages.push(msg("theirs", 2));
    current.fields.insert("title".into(), json!("theirs"));
    let (_, outs) = p
        .call(|p, now| {
            p.handle_results(
                now,
                id,
                vec![ItemResult::Conflict {
                    id: "t".into(),
                    thread: current.clone(),
                }],
            )
        })
        .unwrap();
    assert!(
        outs.contains(&PushOutput::Status(tether_core::thread::StatusChange {
            thread: "t".into(),
            status: SyncStatus::Conflict
        }))
    );
    let view = p.machine().replica().thread("t").unwrap();
    let ids: Vec<&str> = view.messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["theirs", "mine"]);
    assert_eq!(view.fields["title"], json!("theirs"));
    let outs = p.advance().unwrap().unwrap();
    let sent = sends(&outs);
    assert_eq!(sent[0].1, [("t".to_string(), 3)]);
    let (_, outs) = p
        .call(|p, now| {
            p.handle_results(
                now,
                sent[0].0,
                vec![ItemResult::Applied {
                    id: "t".into(),
                    v: 4,
                }],
            )
        })
        .unwrap();
    assert!(
        outs.contains(&PushOutput::Status(tether_core::thread::StatusChange {
            thread: "t".into(),
            status: SyncStatus::Synced
        }))
    );
    assert!(p.machine().is_idle());
}

#[test]
fn push_rejection_rolls_back_and_hands_the_thread_back() {
    let mut p = drive_push(PushConfig::default());
    let mut remote = Thread::new("t");
    remote.v = 2;
    remote.messages.push(msg("old", 1));
    p.call(|p, now| p.apply_remote(now, remote.clone()))
        .unwrap();
    p.call(|p, now| p.add_message(now, "t", msg("bad", 9)))
        .unwrap()
        .0
        .unwrap();
    let outs = p.advance().unwrap().unwrap();
    let (id, items) = sends(&outs)[0].clone();
    assert_eq!(items, [("t".to_string(), 2)]);
    let (_, outs) = p
        .call(|p, now| {
            p.handle_results(
                now,
                id,
                vec![ItemResult::Rejected {
                    id: "t".into(),
                    error: "no".into(),
                }],
            )
        })
        .unwrap();
    let rejected = outs
        .iter()
        .find_map(|o| match o {
            PushOutput::Rejected(r) => Some(r.clone()),
            _ => None,
        })
        .expect("handed back");
    assert_eq!(rejected.reason, "no");
    assert_eq!(rejected.refused.messages.len(), 2);
    assert_eq!(rejected.restored.as_ref(), Some(&remote));
    assert_eq!(p.machine().replica().thread("t"), Some(&remote));
    assert!(p.machine().is_idle());
}

#[test]
fn push_failures_retry_on_the_backoff_curve_and_413_halves() {
    let mut p = drive_push(PushConfig::default());
    for i in 0..8 {
        p.call(|p, now| p.add_message(now, &format!("t{i}"), msg("m", 1)))
            .unwrap()
            .0
            .unwrap();
    }
    let outs = p.advance().unwrap().unwrap();
    let (id, items) = sends(&outs)[0].clone();
    assert_eq!(items.len(), 8);
    let (_, outs) = p
        .call(|p, now| p.handle_failure(now, id, Outcome::TooLarge))
        .unwrap();
    let (id, items) = sends(&outs)[0].clone();
    assert_eq!(items.len(), 4, "halved and sent at once");
    let (_, outs) = p
        .call(|p, now| p.handle_failure(now, id, Outcome::Transient(TransientCause::Status(503))))
        .unwrap();
    let retry = outs
        .iter()
        .find_map(|o| match o {
            PushOutput::Retrying { attempt, delay, .. } => Some((*attempt, *delay)),
            _ => None,
        })
        .unwrap();
    assert_eq!(retry.0, 1);
    assert!(retry.1 >= Duration::from_millis(500) && retry.1 < Duration::from_secs(1));
    // The deadline is the core's: a hang is cancelled at 10 s and retried.
    let outs = p.advance().unwrap().unwrap();
    let (id, _) = sends(&outs)[0];
    let outs = p.advance().unwrap().unwrap();
    assert!(outs.contains(&PushOutput::Cancel(id)));
    // A late answer to the cancelled push is ignored.
    p.call(|p, now| p.handle_results(now, id, vec![]))
        .unwrap()
        .0
        .unwrap();
    assert_eq!(p.machine().pending(), 8);
}

#[test]
fn push_stops_on_superseded_and_hands_back_everything_unsynced() {
    let mut p = drive_push(PushConfig::default());
    p.call(|p, now| p.add_message(now, "a", msg("m", 1)))
        .unwrap()
        .0
        .unwrap();
    let outs = p.advance().unwrap().unwrap();
    let (id, _) = sends(&outs)[0];
    p.call(|p, now| p.add_message(now, "b", msg("m", 1)))
        .unwrap()
        .0
        .unwrap();
    let (_, outs) = p
        .call(|p, now| p.handle_failure(now, id, Outcome::Superseded))
        .unwrap();
    let unsynced = outs
        .iter()
        .find_map(|o| match o {
            PushOutput::Stopped { unsynced, .. } => Some(unsynced.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(unsynced.len(), 2);
    assert_eq!(
        p.call(|p, now| p.add_message(now, "c", msg("m", 1)))
            .unwrap()
            .0,
        Err(thread::Error::Stopped)
    );
}

#[test]
fn push_offline_edits_queue_and_are_never_dropped() {
    let mut p = drive_push(PushConfig::default());
    p.call(|p, now| p.set_paused(now, true)).unwrap();
    for i in 0..200u64 {
        p.set_time(S(i));
        p.call(|p, now| p.add_message(now, "t", msg(&format!("m{i}"), i)))
            .unwrap()
            .0
            .unwrap();
    }
    assert_eq!(p.next_wake(), None);
    assert_eq!(p.machine().pending(), 1);
    let outs = p.call(|p, now| p.set_paused(now, false)).unwrap().1;
    assert!(sends(&outs).is_empty());
    let outs = p.advance().unwrap().unwrap();
    let PushOutput::Send { items, .. } = outs
        .iter()
        .find(|o| matches!(o, PushOutput::Send { .. }))
        .unwrap()
    else {
        unreachable!()
    };
    assert_eq!(items[0].thread.messages.len(), 200);
}

#[test]
fn bad_input_is_a_typed_error_never_a_panic() {
    let mut p = drive_push(PushConfig::default());
    let bad = [
        json!(1),
        json!({"id": ""}),
        json!({"id": "t", "messages": {}}),
        json!({"id": "t", "messages": [1]}),
        json!({"id": "t", "messages": [{"role": "user"}]}),
        json!({"id": "t", "messages": [{"id": "a", "role": "u", "content": "c", "timestamp": -1}]}),
        json!({"id": "t", "v": "x"}),
        json!({"id": "t", "messages": [
            {"id": "a", "role": "u", "content": "c", "timestamp": 1},
            {"id": "a", "role": "u", "content": "d", "timestamp": 2}]}),
    ];
    for value in bad {
        let r = p
            .call(|p, now| {
                let thread = Thread::from_value(&value)?;
                p.edit(now, "t", Edit::Put(thread))
            })
            .unwrap()
            .0;
        assert!(r.is_err(), "{value}");
    }
    assert!(
        p.call(|p, now| p.add_message(now, "t", msg("", 1)))
            .unwrap()
            .0
            .is_err()
    );
    assert_eq!(
        p.call(|p, now| p.edit(now, "nope", Edit::Update(msg("a", 1))))
            .unwrap()
            .0,
        Err(thread::Error::UnknownThread { id: "nope".into() })
    );
    assert_eq!(
        p.call(|p, now| p.edit(now, "t", Edit::Set("messages".into(), Some(json!(1)))))
            .unwrap()
            .0,
        Err(thread::Error::ReservedField { key: "messages" })
    );
    assert_eq!(p.machine().replica().threads().count(), 0);
    assert_eq!(p.next_wake(), None);
}
