//! The inspector page and its API over real HTTP on 127.0.0.1: what it shows, the changes it
//! makes, its refusals (a reason and a 400/401/403/404/405, never a panic) and the token rules.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tether_server::{FaultMix, FaultPlan, Server, ServerConfig};

struct Reply {
    status: u16,
    content_type: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into()
}

fn finish(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
    let mut resp = result.expect("an answer");
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    Reply {
        status: resp.status().as_u16(),
        content_type,
        body: resp.body_mut().read_to_string().expect("a body"),
    }
}

fn get(server: &Server, path: &str) -> Reply {
    finish(agent().get(format!("{}{path}", server.base_url())).call())
}

fn get_with(server: &Server, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = agent().get(format!("{}{path}", server.base_url()));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    finish(req.call())
}

/// A change, as the page sends it.
fn change(server: &Server, path: &str) -> Reply {
    finish(
        agent()
            .post(format!("{}{path}", server.base_url()))
            .header("x-tether-inspector", "1")
            .send_empty(),
    )
}

/// A worker's request with a bearer token; `None` when the connection closed unanswered.
fn worker(server: &Server, session: &str, route: &str, body: &Value) -> Option<u16> {
    let url = format!("{}{route}", server.session_url(session));
    let req = agent()
        .post(url)
        .header("authorization", "Bearer TOPSECRET-worker-token")
        .header("content-type", "application/json");
    let req = if route == "/worker" {
        agent()
            .put(format!("{}{route}", server.session_url(session)))
            .header("authorization", "Bearer TOPSECRET-worker-token")
            .header("content-type", "application/json")
            .send(body.to_string())
    } else {
        req.send(body.to_string())
    };
    req.ok().map(|r| r.status().as_u16())
}

fn events(from: u64, n: u64) -> Value {
    let events: Vec<Value> = (from..from + n)
        .map(|i| json!({"payload": {"uuid": format!("u{i}"), "seq": i}}))
        .collect();
    json!({"worker_epoch": 1, "events": events})
}

/// A session with an epoch, a document, 10 events (one sent twice) and a heartbeat.
fn populate(server: &Server, session: &str) {
    assert_eq!(
        worker(server, session, "/worker/register", &json!({})),
        Some(200)
    );
    let patch = json!({"worker_epoch": 1, "worker_status": "running",
        "external_metadata": {"progress": 7, "gone": null}});
    assert_eq!(worker(server, session, "/worker", &patch), Some(200));
    assert_eq!(
        worker(server, session, "/worker/events", &events(0, 10)),
        Some(200)
    );
    assert_eq!(
        worker(server, session, "/worker/events", &events(9, 1)),
        Some(200)
    );
    let beat = json!({"worker_epoch": 1, "session_id": session});
    assert_eq!(
        worker(server, session, "/worker/heartbeat", &beat),
        Some(200)
    );
}

#[test]
fn the_page_shows_every_session_as_the_server_holds_it() {
    let server = Server::start(ServerConfig::default()).unwrap();
    populate(&server, "s1");
    populate(&server, "s:2+x");

    let page = get(&server, "/");
    assert_eq!(page.status, 200);
    assert!(page.content_type.starts_with("text/html"));
    assert!(page.body.contains("tether inspector"));
    for asset in ["/inspect/app.js", "/inspect/style.css", "/inspect/protocol"] {
        let reply = get(&server, asset);
        assert_eq!(reply.status, 200, "{asset}");
        assert!(!reply.body.is_empty());
    }
    let protocol = get(&server, "/inspect/protocol");
    assert!(protocol.body.contains("id=\"post-worker-events\""));

    let state = get(&server, "/inspect/api/state?events=3");
    assert_eq!(state.status, 200);
    let state = state.json();
    assert_eq!(state["sessions_total"], 2);
    let s1 = state["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "s1")
        .expect("s1 is shown")
        .clone();
    assert_eq!(s1["epoch"], 1);
    assert_eq!(s1["worker_status"], "running");
    assert_eq!(s1["liveness"], "live");
    assert_eq!(s1["heartbeats"], 1);
    assert_eq!(s1["events"]["stored"], 10);
    assert_eq!(s1["events"]["duplicates"], 1);
    assert!(s1["events"]["rate"].as_f64().unwrap() > 0.0);
    let last: Vec<u64> = s1["events"]["last"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["payload"]["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(last, [7, 8, 9]);
    assert_eq!(s1["document"]["external_metadata"], json!({"progress": 7}));
    assert_eq!(
        s1["last_patch"]["patch"],
        json!({"worker_status": "running", "external_metadata": {"progress": 7, "gone": null}})
    );
    let events_route = s1["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == "POST /worker/events")
        .unwrap()
        .clone();
    assert_eq!(events_route["count"], 2);
    assert_eq!(events_route["anchor"], "post-worker-events");
    assert_eq!(s1["requests_total"], 5);
    assert_eq!(s1["faults_total"], 0);

    // One session alone; a session id that needs encoding.
    let one = get(&server, "/inspect/api/state?session=s%3A2%2Bx&events=0").json();
    assert_eq!(one["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(one["sessions"][0]["events"]["last"], json!([]));
    let timeline = one["sessions"][0]["timeline"].as_str().unwrap().to_owned();
    assert_eq!(timeline, "/inspect/timeline.svg?session=s%3A2%2Bx");

    let svg = get(&server, &timeline);
    assert_eq!(svg.status, 200);
    assert!(svg.content_type.starts_with("image/svg+xml"));
    assert!(svg.body.starts_with("<svg"));
    assert!(svg.body.contains("session s:2+x as the server saw it"));
    assert!(svg.body.contains("5 requests"), "one bar per request");
    server.shutdown().unwrap();
}

#[test]
fn bad_requests_get_a_reason_never_a_panic() {
    let server = Server::start(ServerConfig::default()).unwrap();
    populate(&server, "s");
    let cases: &[(&str, u16, &str)] = &[
        ("/inspect/api/state?events=x", 400, "whole number"),
        ("/inspect/api/state?events=201", 400, "from 0 to 200"),
        ("/inspect/api/state?events=-1", 400, "whole number"),
        ("/inspect/api/state?nope=1", 400, "unknown parameter `nope`"),
        ("/inspect/api/state?session=s&session=s", 400, "twice"),
        ("/inspect/api/state?session=%ZZ", 400, "hex"),
        ("/inspect/api/state?session=%C3%28", 400, "UTF-8"),
        ("/inspect/api/state?session=", 400, "empty"),
        ("/inspect/api/state?session=nobody", 404, "no session"),
        ("/inspect/timeline.svg", 400, "`session` is required"),
        ("/inspect/timeline.svg?session=nobody", 404, "no session"),
        ("/inspect/nothing", 404, "no such route"),
        ("/inspect/api/faults?plan=heavy", 405, "method"),
    ];
    for &(path, status, reason) in cases {
        let reply = get(&server, path);
        assert_eq!(reply.status, status, "{path}: {}", reply.body);
        assert!(reply.error().contains(reason), "{path}: {}", reply.body);
    }
    let changes: &[(&str, u16, &str)] = &[
        ("/inspect/api/faults", 400, "`plan` is required"),
        ("/inspect/api/faults?plan=medium", 400, "unknown preset"),
        (
            "/inspect/api/faults?plan=heavy,5xx=2",
            400,
            "must be in [0, 1]",
        ),
        (
            "/inspect/api/partition?session=s",
            400,
            "`seconds` is required",
        ),
        (
            "/inspect/api/partition?session=s&seconds=3601",
            400,
            "from 0 to 3600",
        ),
        (
            "/inspect/api/partition?session=s&seconds=1.5",
            400,
            "whole number",
        ),
        (
            "/inspect/api/partition?seconds=5",
            400,
            "`session` is required",
        ),
        (
            "/inspect/api/partition?session=nobody&seconds=5",
            404,
            "no session",
        ),
        ("/inspect/api/state", 405, "method"),
    ];
    for &(path, status, reason) in changes {
        let reply = change(&server, path);
        assert_eq!(reply.status, status, "{path}: {}", reply.body);
        assert!(reply.error().contains(reason), "{path}: {}", reply.body);
    }
    // Nothing was changed by the refusals, and the server still serves.
    assert!(server.inspector().faults().is_none());
    assert!(server.inspector().changes().is_empty());
    assert_eq!(get(&server, "/inspect/api/state").status, 200);
    server.shutdown().unwrap();
}

#[test]
fn the_fault_switch_changes_what_the_server_does_and_is_logged() {
    let logged = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&logged);
    let config = ServerConfig::default()
        .with_faults(
            FaultPlan::none()
                .with_seed(5)
                .with_hang_for(Duration::from_millis(50)),
        )
        .with_change_log(move |line| log.lock().unwrap().push(line.to_owned()));
    let server = Server::start(config).unwrap();
    populate(&server, "s");
    assert_eq!(server.inspector().totals().total_faults(), 0);

    // A change needs the page's header, and the page's own origin.
    let bare = finish(
        agent()
            .post(format!(
                "{}/inspect/api/faults?plan=heavy",
                server.base_url()
            ))
            .send_empty(),
    );
    assert_eq!(bare.status, 403);
    let foreign = finish(
        agent()
            .post(format!(
                "{}/inspect/api/faults?plan=heavy",
                server.base_url()
            ))
            .header("x-tether-inspector", "1")
            .header("origin", "http://evil.example")
            .send_empty(),
    );
    assert_eq!(foreign.status, 403);
    assert!(server.inspector().faults().is_none());

    let reply = change(&server, "/inspect/api/faults?plan=heavy");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let plan = server.inspector().faults();
    assert_eq!(plan.mix, FaultMix::heavy());
    assert_eq!(
        (plan.seed, plan.hang_for),
        (5, Duration::from_millis(50)),
        "the sizes and seed in force are kept"
    );
    for i in 0..200 {
        let _ = worker(&server, "s", "/worker/events", &events(100 + i, 1));
    }
    let faults = server.inspector().stats("s").total_faults();
    assert!(faults > 20, "heavy faults about a quarter: {faults} of 200");

    let state = get(&server, "/inspect/api/state").json();
    assert_eq!(state["faults"]["preset"], "heavy");
    assert_eq!(state["sessions"][0]["faults_total"], faults);

    assert_eq!(change(&server, "/inspect/api/faults?plan=none").status, 200);
    let before = server.inspector().stats("s").total_faults();
    for i in 0..50 {
        assert_eq!(
            worker(&server, "s", "/worker/events", &events(400 + i, 1)),
            Some(200)
        );
    }
    assert_eq!(server.inspector().stats("s").total_faults(), before);

    let expected = [
        "fault plan none -> heavy (25.0 % of requests, seed 5)",
        "fault plan heavy (25.0 % of requests, seed 5) -> none",
    ];
    assert_eq!(server.inspector().changes(), expected);
    assert_eq!(*logged.lock().unwrap(), expected);
    let state = get(&server, "/inspect/api/state").json();
    assert_eq!(state["changes"][0]["text"], expected[1], "newest first");
    server.shutdown().unwrap();
}

#[test]
fn a_partition_drops_one_session_for_its_length() {
    let server = Server::start(ServerConfig::default()).unwrap();
    populate(&server, "cut");
    populate(&server, "other");
    let reply = change(&server, "/inspect/api/partition?session=cut&seconds=30");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.json()["partitioned_until_ms"].is_u64());
    for i in 0..3 {
        assert_eq!(
            worker(&server, "cut", "/worker/events", &events(50 + i, 1)),
            None,
            "dropped without an answer"
        );
    }
    assert_eq!(
        worker(&server, "other", "/worker/events", &events(50, 1)),
        Some(200)
    );
    let inspector = server.inspector();
    assert_eq!(inspector.partitioned_requests("cut"), 3);
    assert_eq!(inspector.events("cut").len(), 10, "nothing applied");
    let state = get(&server, "/inspect/api/state?session=cut").json();
    assert_eq!(state["sessions"][0]["faults"]["partition"], 3);
    assert!(state["sessions"][0]["partition_left_ms"].as_u64().unwrap() > 20_000);

    // Healed from the page: the next request goes through.
    assert_eq!(
        change(&server, "/inspect/api/partition?session=cut&seconds=0").status,
        200
    );
    assert_eq!(
        worker(&server, "cut", "/worker/events", &events(60, 1)),
        Some(200)
    );
    let state = get(&server, "/inspect/api/state?session=cut").json();
    assert!(state["sessions"][0]["partition_left_ms"].is_null());
    let svg = get(&server, "/inspect/timeline.svg?session=cut").body;
    assert!(svg.contains("partitioned from the inspector"));
    assert_eq!(
        inspector.changes(),
        [
            "session cut: partitioned for 30 s (every request dropped without an answer)",
            "session cut: partition ended"
        ]
    );

    // A short partition ends by itself.
    inspector.partition("other", Duration::from_millis(1_000));
    assert_eq!(
        worker(&server, "other", "/worker/events", &events(70, 1)),
        None
    );
    std::thread::sleep(Duration::from_millis(1_100));
    assert_eq!(
        worker(&server, "other", "/worker/events", &events(71, 1)),
        Some(200)
    );
    server.shutdown().unwrap();
}

#[test]
fn a_workers_bearer_token_is_never_shown() {
    let lines = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&lines);
    let config = ServerConfig::default()
        .with_request_log(move |line| sink.lock().unwrap().push_str(&format!("{line}\n")));
    let server = Server::start(config).unwrap();
    populate(&server, "s");
    let mut seen = String::new();
    for path in [
        "/",
        "/inspect/api/state?events=200",
        "/inspect/timeline.svg?session=s",
    ] {
        seen.push_str(&get(&server, path).body);
    }
    seen.push_str(&lines.lock().unwrap());
    seen.push_str(&format!("{:?}", server.inspector().session("s")));
    assert!(seen.contains("POST /v1/code/sessions/s/worker/events 200"));
    assert!(!seen.contains("TOPSECRET"), "a worker's token was shown");
    assert!(
        !lines.lock().unwrap().contains("/inspect/"),
        "the page's own requests are not in the request log"
    );
    server.shutdown().unwrap();
}

#[test]
fn a_token_guards_the_page_and_a_loopback_host_is_required_without_one() {
    let server =
        Server::start(ServerConfig::default().with_inspect_token("inspect-s3cret")).unwrap();
    populate(&server, "s");
    assert!(!format!("{server:?}").contains("s3cret"));
    for path in ["/", "/inspect/api/state", "/inspect/timeline.svg?session=s"] {
        let reply = get(&server, path);
        assert_eq!(reply.status, 401, "{path}");
        assert!(reply.error().contains("token"), "{path}");
        let wrong = get(&server, &format!("{path}{}token=nope", sep(path)));
        assert_eq!(wrong.status, 401, "{path}");
        let right = get(&server, &format!("{path}{}token=inspect-s3cret", sep(path)));
        assert_eq!(right.status, 200, "{path}");
        let header = get_with(&server, path, &[("x-tether-token", "inspect-s3cret")]);
        assert_eq!(header.status, 200, "{path}");
    }
    // Static assets hold no data.
    assert_eq!(get(&server, "/inspect/app.js").status, 200);
    // With a token, any Host will do (the server may be reached by name).
    let named = get_with(
        &server,
        "/inspect/api/state?token=inspect-s3cret",
        &[("host", "inspector.example:8787")],
    );
    assert_eq!(named.status, 200);
    server.shutdown().unwrap();

    // Without a token: only a loopback Host (no DNS rebinding).
    let server = Server::start(ServerConfig::default()).unwrap();
    for host in ["localhost:1", "127.0.0.1", "[::1]:8787"] {
        let reply = get_with(&server, "/inspect/api/state", &[("host", host)]);
        assert_eq!(reply.status, 200, "{host}");
    }
    let rebound = get_with(&server, "/", &[("host", "evil.example")]);
    assert_eq!(rebound.status, 403);
    assert!(rebound.error().contains("loopback Host"));
    // The protocol routes are not the page's: they answer whatever the Host.
    let url = format!("{}/worker", server.session_url("s"));
    let reply = finish(agent().get(url).header("host", "evil.example").call());
    assert_eq!(reply.status, 200);
    server.shutdown().unwrap();
}

fn sep(path: &str) -> &'static str {
    if path.contains('?') { "&" } else { "?" }
}
