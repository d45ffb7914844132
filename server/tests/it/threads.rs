//! Thread sync's routes over real HTTP on 127.0.0.1 (docs/PROTOCOL.md §Thread sync).

use std::time::Duration;

use serde_json::{Value, json};
use tether_server::{Server, ServerConfig};

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into()
}

fn read(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, Value) {
    let mut resp = result.expect("a response");
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_string().expect("a body");
    (status, serde_json::from_str(&body).expect("JSON"))
}

#[test]
fn sync_pull_and_ping_over_http() {
    let config = ServerConfig::default().with_bind_addr("127.0.0.1:0".parse().unwrap());
    let server = Server::start(config).expect("the server starts");
    let url = server.session_url("s1");
    let agent = agent();
    let push = |epoch: u64, base: u64, messages: Value| {
        let body = json!({"worker_epoch": epoch, "client_id": "c1", "items": [
            {"id": "t", "base": base, "thread": {"id": "t", "title": "x", "messages": messages}}
        ]});
        read(
            agent
                .post(format!("{url}/threads/sync"))
                .send(body.to_string()),
        )
    };
    let m1 = json!([{"id": "m1", "role": "user", "content": "hi", "timestamp": 1}]);
    let (status, body) = push(0, 0, m1.clone());
    assert_eq!(
        (status, &body["results"][0]),
        (200, &json!({"id": "t", "status": "applied", "v": 1}))
    );
    let (_, body) = push(0, 0, m1);
    assert_eq!(body["results"][0]["status"], "conflict");
    assert_eq!(body["results"][0]["thread"]["v"], 1);
    let (_, body) = push(0, 1, json!([{"id": "m1"}]));
    assert_eq!(body["results"][0]["status"], "rejected");

    let (status, body) = read(agent.get(format!("{url}/threads?since=0&limit=10")).call());
    assert_eq!(status, 200);
    assert_eq!(body["version"], 1);
    assert_eq!(body["threads"][0]["title"], "x");
    let (status, body) = read(agent.get(format!("{url}/threads?since=1")).call());
    assert_eq!((status, body), (200, json!({"threads": [], "version": 1})));
    assert_eq!(
        read(agent.get(format!("{url}/threads?limit=0")).call()).0,
        400
    );
    assert_eq!(
        read(agent.get(format!("{url}/ping")).call()),
        (200, json!({}))
    );
    assert_eq!(read(agent.post(format!("{url}/ping")).send("{}")).0, 405);

    // Fencing: a newer epoch takes over, an older one is superseded.
    assert_eq!(
        read(
            agent
                .post(format!("{url}/threads/sync"))
                .send(r#"{"worker_epoch":5,"client_id":"c","items":[]}"#)
        )
        .0,
        200
    );
    assert_eq!(push(4, 1, json!([])).0, 409);
    server.shutdown().expect("a clean shutdown");
}

/// Drives a core `ThreadSync` against the server over HTTP, in real time, until `done` holds
/// (at most 200 turns of at most 50 ms).
fn drive(
    sync: &mut tether_core::thread::ThreadSync,
    url: &str,
    origin: std::time::Instant,
    outs: &mut Vec<tether_core::thread::Output>,
    done: impl Fn(&tether_core::thread::ThreadSync) -> bool,
) {
    use tether_core::session::Response;
    use tether_core::thread;
    use tether_core::{Instant, Poll};
    let agent = agent();
    let now = || Instant::from_micros(origin.elapsed().as_micros() as u64);
    for _ in 0..200 {
        let wake = loop {
            match sync.poll_output() {
                Poll::Output(thread::Output::Send(request)) => {
                    let target = format!("{url}{}", request.path);
                    let result = match request.endpoint {
                        thread::Endpoint::Sync => agent.post(target).send(&request.body[..]),
                        _ => agent.get(target).call(),
                    };
                    let mut resp = result.expect("a response");
                    let status = resp.status().as_u16();
                    let body = resp.body_mut().read_to_vec().expect("a body");
                    sync.handle_response(now(), request.id, Response::new(status, body));
                }
                Poll::Output(other) => outs.push(other),
                Poll::Timeout(wake) => break wake,
            }
        };
        if done(sync) {
            return;
        }
        let wait = wake.map_or(Duration::from_millis(50), |w| {
            Duration::from_micros(w.at.as_micros().saturating_sub(now().as_micros()))
                .min(Duration::from_millis(50))
        });
        std::thread::sleep(wait);
        sync.handle_timeout(now());
    }
    panic!("not done within 200 turns: {outs:?}");
}

#[test]
fn a_client_skips_a_poisoned_thread_and_goes_on() {
    use tether_core::thread::{self, InvalidThread, Message, SyncStatus, ThreadSync};
    use tether_core::{Instant, Rng};
    let config = ServerConfig::default().with_bind_addr("127.0.0.1:0".parse().unwrap());
    let server = Server::start(config).expect("the server starts");
    let url = server.session_url("s1");
    let agent = agent();
    let store = |id: &str, base: u64| {
        let body = json!({"worker_epoch": 0, "client_id": "other", "items": [{"id": id, "base": base,
            "thread": {"id": id, "messages": [{"id": "m", "role": "user", "content": "hi", "timestamp": 1}]}}]});
        read(
            agent
                .post(format!("{url}/threads/sync"))
                .send(body.to_string()),
        )
    };
    assert_eq!(store("good", 0).0, 200);
    let inspector = server.inspector();
    assert_eq!(
        inspector.poison_thread("s1", "bad", json!({"id": "bad", "messages": "oops"})),
        1
    );
    // The server serves it as stored.
    let (_, page) = read(agent.get(format!("{url}/threads?since=0")).call());
    assert_eq!(
        page["threads"][1],
        json!({"id": "bad", "v": 1, "messages": "oops"})
    );

    let origin = std::time::Instant::now();
    let mut sync = ThreadSync::new(thread::Config::new("c1"), Rng::new(3)).unwrap();
    let mut outs = Vec::new();
    sync.start(Instant::ZERO, 0);
    drive(&mut sync, &url, origin, &mut outs, |s| s.since() == 2);
    let invalid = |outs: &[thread::Output]| -> Vec<InvalidThread> {
        outs.iter()
            .filter_map(|o| match o {
                thread::Output::InvalidThread(t) => Some(t.clone()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        invalid(&outs),
        [InvalidThread {
            id: Some("bad".into()),
            error: thread::Error::MessagesNotAnArray
        }]
    );
    assert_eq!(sync.status("good"), SyncStatus::Synced);
    // Later changes arrive; the poisoned page is not pulled again.
    assert_eq!(store("later", 0).0, 200);
    let now = Instant::from_micros(origin.elapsed().as_micros() as u64);
    sync.pull_now(now);
    drive(&mut sync, &url, origin, &mut outs, |s| {
        s.thread("later").is_some()
    });
    assert_eq!(invalid(&outs).len(), 1);
    // An edit of the poisoned thread fails on its own (held); one of a good thread lands.
    let now = Instant::from_micros(origin.elapsed().as_micros() as u64);
    let m = |id: &str| Message::new(id, "user", id, 2);
    sync.add_message(now, "bad", m("b1")).unwrap();
    sync.add_message(now, "good", m("g1")).unwrap();
    drive(&mut sync, &url, origin, &mut outs, |s| {
        s.status("good") == SyncStatus::Synced && s.counts().held == 1
    });
    assert_eq!(sync.status("bad"), SyncStatus::Error);
    assert_eq!(invalid(&outs).len(), 2);
    assert_eq!(sync.pending(), 1, "the edit of the poisoned thread is kept");
    server.shutdown().expect("a clean shutdown");
}

#[test]
fn the_fault_plan_covers_the_thread_routes() {
    use tether_server::{FaultMix, FaultPlan};
    // Every request a 5xx that is not applied, or a 429: a push never lands.
    let mix = FaultMix {
        server_error: 0.5,
        server_error_applied: 0.0,
        throttle_seconds: 0.5,
        ..FaultMix::none()
    };
    let config = ServerConfig::default()
        .with_bind_addr("127.0.0.1:0".parse().unwrap())
        .with_faults(FaultPlan::new(mix).with_seed(3));
    let server = Server::start(config).expect("the server starts");
    let url = server.session_url("faulted");
    let agent = agent();
    let body = json!({"worker_epoch": 0, "client_id": "c1", "items": [
        {"id": "t", "base": 0, "thread": {"id": "t", "messages": []}}
    ]});
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let (status, _) = read(
            agent
                .post(format!("{url}/threads/sync"))
                .send(body.to_string()),
        );
        statuses.push(status);
        let (status, _) = read(agent.get(format!("{url}/threads?since=0")).call());
        statuses.push(status);
        let (status, _) = read(agent.get(format!("{url}/ping")).call());
        statuses.push(status);
    }
    assert!(
        statuses.iter().all(|s| *s == 429 || *s >= 500),
        "{statuses:?}"
    );
    assert!(statuses.contains(&429) && statuses.iter().any(|s| *s >= 500));
    assert!(
        server.inspector().threads("faulted").is_empty(),
        "nothing applied"
    );
    server.shutdown().expect("shutdown");
}
