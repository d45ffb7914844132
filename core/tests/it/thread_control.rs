//! The caller's controls of `ThreadSync` (seed 002's `syncImmediately`, `start`/`stop`,
//! `observePendingItems`), the adaptive poller inside it, and the batch size the performance
//! monitor picks, in simulated time.

use proptest::prelude::*;
use tether_core::session::TransportError;
use tether_core::thread::{self, MAX_ACTIVITY, PerfConfig, PollerConfig, SyncStatus, ThreadSync};
use tether_core::{Driven, Instant, Rng};

use super::thread_sync::{Server, client, msg, run_until};

fn requests(outs: &[thread::Output]) -> Vec<&thread::Request> {
    outs.iter()
        .filter_map(|o| match o {
            thread::Output::Send(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn pushes(outs: &[thread::Output]) -> usize {
    requests(outs)
        .iter()
        .filter(|r| r.endpoint == thread::Endpoint::Sync)
        .count()
}

fn pending(outs: &[thread::Output]) -> Vec<Vec<String>> {
    outs.iter()
        .filter_map(|o| match o {
            thread::Output::Pending(ids) => Some(ids.clone()),
            _ => None,
        })
        .collect()
}

/// A started client whose first pull was answered, at 1 s.
fn started(server: &mut Server, config: Option<thread::Config>) -> Driven<ThreadSync> {
    let mut sync = match config {
        Some(config) => Driven::new(ThreadSync::new(config, Rng::new(9)).unwrap(), Instant::ZERO),
        None => client(),
    };
    let mut outs = sync.call(|s, now| s.start(now, 1)).unwrap().1;
    run_until(&mut sync, server, false, Instant::from_secs(1), &mut outs);
    sync
}

fn edit(sync: &mut Driven<ThreadSync>, thread: &str, id: &str) -> Vec<thread::Output> {
    let (r, o) = sync
        .call(|s, now| s.add_message(now, thread, msg(id, 1)))
        .unwrap();
    r.unwrap();
    o
}

#[test]
fn sync_now_pushes_at_once_skipping_the_window() {
    let mut server = Server::default();
    let mut sync = started(&mut server, None);
    let mut outs = edit(&mut sync, "other", "o1");
    outs.extend(edit(&mut sync, "t", "a"));
    assert_eq!(pushes(&outs), 0, "an edit waits for the window");
    assert_eq!(sync.next_wake().unwrap().at, Instant::from_millis(1_100));

    let (r, o) = sync.call(|s, now| s.sync_now(now, "t")).unwrap();
    assert_eq!(r, Ok(true));
    assert_eq!(pushes(&o), 1, "{o:?}");
    assert_eq!(sync.now(), Instant::from_secs(1));
    outs.extend(o);
    run_until(
        &mut sync,
        &mut server,
        false,
        Instant::from_secs(2),
        &mut outs,
    );
    // The urged thread went first, and the other one rode along.
    assert_eq!(server.log, [vec!["t".to_string(), "other".to_string()]]);
    assert_eq!(sync.machine().status("t"), SyncStatus::Synced);

    // Nothing waits now; an unknown thread is the caller's mistake.
    assert_eq!(
        sync.call(|s, now| s.sync_now(now, "t")).unwrap().0,
        Ok(false)
    );
    assert_eq!(
        sync.call(|s, now| s.sync_now(now, "nope")).unwrap().0,
        Err(thread::Error::UnknownThread { id: "nope".into() })
    );
}

#[test]
fn sync_now_during_a_push_goes_right_after_it_without_a_window() {
    let mut server = Server::default();
    let mut sync = started(&mut server, None);
    edit(&mut sync, "t", "a");
    let outs = sync.advance().unwrap().unwrap();
    let [first] = requests(&outs)[..] else {
        panic!("{outs:?}")
    };
    let first = first.clone();
    edit(&mut sync, "t", "b");
    let (r, o) = sync.call(|s, now| s.sync_now(now, "t")).unwrap();
    assert_eq!(r, Ok(true));
    assert_eq!(pushes(&o), 0, "one push in flight at a time");
    sync.set_time(Instant::from_millis(1_150));
    let response = server.answer(&first);
    let (_, o) = sync
        .call(|s, now| s.handle_response(now, first.id, response))
        .unwrap();
    assert_eq!(pushes(&o), 1, "the second goes at once: {o:?}");
}

#[test]
fn paused_issues_no_request_for_an_hour_and_resume_picks_up() {
    let mut server = Server::default();
    let mut sync = started(&mut server, None);
    let (_, o) = sync.call(|s, now| s.pause(now)).unwrap();
    assert_eq!(o, [thread::Output::Paused]);
    assert!(sync.call(|s, now| s.pause(now)).unwrap().1.is_empty());
    let mut outs = edit(&mut sync, "t", "a");
    assert_eq!(
        sync.call(|s, now| s.sync_now(now, "t")).unwrap().0,
        Ok(true)
    );
    server.remote_edit("r", msg("x", 1));
    run_until(
        &mut sync,
        &mut server,
        false,
        Instant::from_secs(3_600),
        &mut outs,
    );
    assert!(requests(&outs).is_empty(), "{outs:?}");
    assert_eq!(sync.machine().status("t"), SyncStatus::Pending);
    assert!(sync.machine().thread("r").is_none());

    // Resume: a pull and the urged push go at once.
    let (_, o) = sync.call(|s, now| s.resume(now)).unwrap();
    assert_eq!(o[0], thread::Output::Resumed);
    let endpoints: Vec<_> = requests(&o).iter().map(|r| r.endpoint).collect();
    assert_eq!(endpoints, [thread::Endpoint::Pull, thread::Endpoint::Sync]);
    let mut outs = o;
    run_until(
        &mut sync,
        &mut server,
        false,
        Instant::from_secs(3_601),
        &mut outs,
    );
    assert_eq!(sync.machine().status("t"), SyncStatus::Synced);
    assert_eq!(sync.machine().thread("r"), Some(&server.threads["r"].0));
    assert_eq!(server.log, [vec!["t".to_string()]]);
}

#[test]
fn paused_offline_sends_no_probe() {
    let mut server = Server::default();
    let mut sync = started(&mut server, None);
    let mut outs = sync.call(|s, now| s.set_online(now, false)).unwrap().1;
    outs.extend(sync.call(|s, now| s.pause(now)).unwrap().1);
    outs.extend(edit(&mut sync, "t", "a"));
    run_until(
        &mut sync,
        &mut server,
        false,
        Instant::from_secs(600),
        &mut outs,
    );
    assert!(requests(&outs).is_empty(), "{outs:?}");
    let mut outs = sync.call(|s, now| s.resume(now)).unwrap().1;
    run_until(
        &mut sync,
        &mut server,
        false,
        Instant::from_secs(601),
        &mut outs,
    );
    // The probe that fell due goes first; its success goes online and everything runs.
    assert_eq!(requests(&outs)[0].endpoint, thread::Endpoint::Ping);
    assert_eq!(sync.machine().status("t"), SyncStatus::Synced);
}

#[test]
fn the_pending_stream_says_each_change_once() {
    let mut server = Server::default();
    let mut sync = started(&mut server, None);
    let mut outs = edit(&mut sync, "a", "1");
    outs.extend(edit(&mut sync, "a", "2"));
    outs.extend(edit(&mut sync, "b", "1"));
    assert_eq!(pending(&outs), [vec!["a"], vec!["a", "b"]]);
    run_until(
        &mut sync,
        &mut server,
        false,
        Instant::from_secs(600),
        &mut outs,
    );
    assert_eq!(pending(&outs), [vec!["a"], vec!["a", "b"], vec![]]);
    assert_eq!(sync.machine().pending_threads().count(), 0);
}

#[test]
fn the_poller_slows_down_when_idle_and_speeds_up_on_changes() {
    let mut server = Server::default();
    let mut sync = started(&mut server, None);
    let mut outs = Vec::new();
    for i in 0..10 {
        outs.extend(edit(&mut sync, "t", &format!("m{i}")));
    }
    assert_eq!(sync.machine().poll_interval().as_secs(), 5);
    // Idle: nothing edited, nothing changing remotely. The interval stretches to the cap.
    run_until(
        &mut sync,
        &mut server,
        false,
        Instant::from_secs(200),
        &mut outs,
    );
    assert_eq!(sync.machine().poll_interval().as_secs(), 60);
    // A remote change, once a pull brings it, speeds the pulls up again.
    server.remote_edit("r", msg("x", 1));
    until_pulled(&mut sync, &mut server, "r");
    assert!(sync.machine().poll_interval().as_secs() < 60);
    // Then, idle again, it slows back down.
    let later = sync.now() + core::time::Duration::from_secs(30);
    run_until(&mut sync, &mut server, false, later, &mut outs);
    assert_eq!(sync.machine().poll_interval().as_secs(), 60);

    // With a full remote boost the interval snaps back to the base.
    let mut config = thread::Config::new("c2");
    config.poller = PollerConfig {
        remote_boost: MAX_ACTIVITY,
        ..PollerConfig::default()
    };
    let mut server = Server::default();
    let mut sync = started(&mut server, Some(config));
    let mut outs = Vec::new();
    run_until(
        &mut sync,
        &mut server,
        false,
        Instant::from_secs(200),
        &mut outs,
    );
    assert_eq!(sync.machine().poll_interval().as_secs(), 60);
    server.remote_edit("r", msg("x", 1));
    until_pulled(&mut sync, &mut server, "r");
    assert_eq!(sync.machine().poll_interval().as_secs(), 5);
}

/// Runs second by second until a pull brought thread `id` (bounded: ten minutes).
fn until_pulled(sync: &mut Driven<ThreadSync>, server: &mut Server, id: &str) {
    let mut outs = Vec::new();
    for _ in 0..600 {
        if sync.machine().thread(id).is_some() {
            return;
        }
        let next = sync.now() + core::time::Duration::from_secs(1);
        run_until(sync, server, false, next, &mut outs);
    }
    panic!("thread {id} never arrived");
}

#[test]
fn the_push_batch_size_follows_the_performance_monitor() {
    let mut server = Server::default();
    let mut sync = started(&mut server, None);
    assert_eq!(sync.machine().batch_size(), 50);
    let mut outs = edit(&mut sync, "t0", "a");
    run_until(
        &mut sync,
        &mut server,
        false,
        Instant::from_secs(2),
        &mut outs,
    );
    // One push of one thread is all the monitor knows: the lower bound.
    assert_eq!(sync.machine().batch_size(), 10);

    let mut config = thread::Config::new("c3");
    config.perf = PerfConfig {
        batch_bounds: (3, 50),
        ..PerfConfig::default()
    };
    let mut server = Server::default();
    let mut sync = started(&mut server, Some(config));
    let mut outs = edit(&mut sync, "t0", "a");
    run_until(
        &mut sync,
        &mut server,
        false,
        Instant::from_secs(2),
        &mut outs,
    );
    assert_eq!(sync.machine().batch_size(), 3);
    for i in 1..=7 {
        outs.extend(edit(&mut sync, &format!("t{i}"), "a"));
    }
    run_until(
        &mut sync,
        &mut server,
        false,
        Instant::from_secs(3),
        &mut outs,
    );
    let sizes: Vec<usize> = server.log.iter().map(Vec::len).collect();
    assert_eq!(sizes, [1, 3, 3, 1]);
}

#[derive(Clone, Debug)]
enum Op {
    Edit(u8),
    SyncNow(u8),
    Pause,
    Resume,
    Online(bool),
    Advance(u16),
    Answer,
    Fail,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..4).prop_map(Op::Edit),
        2 => (0u8..4).prop_map(Op::SyncNow),
        1 => Just(Op::Pause),
        1 => Just(Op::Resume),
        1 => any::<bool>().prop_map(Op::Online),
        3 => (0u16..20_000).prop_map(Op::Advance),
        3 => Just(Op::Answer),
        1 => Just(Op::Fail),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// While paused no request goes; the pending stream never repeats itself and its last
    /// word is the machine's pending set; once resumed and online everything lands.
    #[test]
    fn paused_is_silent_and_the_pending_stream_is_exact(ops in prop::collection::vec(op(), 1..60)) {
        let mut server = Server::default();
        let mut sync = client();
        let mut open: Vec<thread::Request> = Vec::new();
        let mut last_pending: Vec<String> = Vec::new();
        let mut edits = 0usize;
        let (_, o) = sync.call(|s, now| s.start(now, 1)).unwrap();
        let mut outs = o;
        for op in ops {
            let paused = sync.machine().is_paused();
            let got = match op {
                Op::Edit(t) => {
                    edits += 1;
                    edit(&mut sync, &format!("t{t}"), &format!("m{edits}"))
                }
                Op::SyncNow(t) => sync.call(|s, now| { let _ = s.sync_now(now, &format!("t{t}")); }).unwrap().1,
                Op::Pause => sync.call(|s, now| s.pause(now)).unwrap().1,
                Op::Resume => sync.call(|s, now| s.resume(now)).unwrap().1,
                Op::Online(on) => sync.call(|s, now| s.set_online(now, on)).unwrap().1,
                Op::Advance(ms) => {
                    let at = sync.now() + core::time::Duration::from_millis(u64::from(ms));
                    sync.advance_to(at).unwrap()
                }
                Op::Answer | Op::Fail if open.is_empty() => Vec::new(),
                Op::Answer => {
                    let request = open.remove(0);
                    server.answered.insert(request.id);
                    let response = server.answer(&request);
                    sync.call(|s, now| s.handle_response(now, request.id, response)).unwrap().1
                }
                Op::Fail => {
                    let request = open.remove(0);
                    server.answered.insert(request.id);
                    let error = TransportError { message: "reset".into() };
                    sync.call(|s, now| s.handle_transport_error(now, request.id, &error)).unwrap().1
                }
            };
            if paused && sync.machine().is_paused() {
                prop_assert!(requests(&got).is_empty(), "a request while paused: {got:?}");
            }
            for out in &got {
                match out {
                    thread::Output::Send(r) => open.push(r.clone()),
                    thread::Output::Cancel(id) => {
                        server.answered.insert(*id);
                        open.retain(|r| r.id != *id);
                    }
                    thread::Output::Pending(ids) => {
                        prop_assert_ne!(ids, &last_pending, "a repeated pending set");
                        last_pending = ids.clone();
                    }
                    _ => {}
                }
            }
            let now: Vec<String> = sync.machine().pending_threads().map(String::from).collect();
            prop_assert_eq!(&now, &last_pending);
            outs.extend(got);
        }
        // Heal: resume, online, answer everything.
        outs.extend(sync.call(|s, now| s.resume(now)).unwrap().1);
        outs.extend(sync.call(|s, now| s.set_online(now, true)).unwrap().1);
        let until = sync.now() + core::time::Duration::from_secs(600);
        for request in open {
            server.answered.insert(request.id);
            let response = server.answer(&request);
            outs.extend(sync.call(|s, now| s.handle_response(now, request.id, response)).unwrap().1);
        }
        run_until(&mut sync, &mut server, false, until, &mut outs);
        prop_assert_eq!(sync.machine().pending_threads().count(), 0);
        let landed: usize = server.threads.values().map(|(t, _)| t.messages.len()).sum();
        prop_assert_eq!(landed, edits);
    }
}
