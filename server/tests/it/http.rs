//! The server over real HTTP on 127.0.0.1, driven by ureq. Every call is bounded by a timeout.

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use tether_core::session::Endpoint;
use tether_server::date::parse_http_date;
use tether_server::{DEFAULT_BODY_LIMIT, FaultKind, FaultMix, FaultPlan, Server, ServerConfig};

struct Reply {
    status: u16,
    date: Option<String>,
    retry_after: Option<String>,
    content_type: Option<String>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into()
}

fn finish(
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Reply, ureq::Error> {
    let mut resp = result?;
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (date, retry_after, content_type) = (
        header("date"),
        header("retry-after"),
        header("content-type"),
    );
    Ok(Reply {
        status: resp.status().as_u16(),
        date,
        retry_after,
        content_type,
        body: resp.body_mut().read_to_string()?,
    })
}

fn post(agent: &ureq::Agent, url: &str, body: &Value) -> Result<Reply, ureq::Error> {
    finish(
        agent
            .post(url)
            .header("content-type", "application/json")
            .send(body.to_string()),
    )
}

fn post_raw(agent: &ureq::Agent, url: &str, body: &str) -> Result<Reply, ureq::Error> {
    finish(
        agent
            .post(url)
            .header("content-type", "application/json")
            .send(body),
    )
}

fn put(agent: &ureq::Agent, url: &str, body: &Value) -> Result<Reply, ureq::Error> {
    finish(
        agent
            .put(url)
            .header("content-type", "application/json")
            .send(body.to_string()),
    )
}

fn get(agent: &ureq::Agent, url: &str) -> Result<Reply, ureq::Error> {
    finish(agent.get(url).call())
}

fn events(epoch: u64, uuids: &[&str]) -> Value {
    let events: Vec<Value> = uuids
        .iter()
        .map(|u| json!({"payload": {"uuid": u, "text": u}}))
        .collect();
    json!({"worker_epoch": epoch, "events": events})
}

fn uuids(payloads: &[Value]) -> Vec<String> {
    payloads
        .iter()
        .map(|p| p["uuid"].as_str().unwrap().to_owned())
        .collect()
}

fn start(config: ServerConfig) -> Server {
    Server::start(config).expect("server starts")
}

fn with_mix(mix: FaultMix) -> ServerConfig {
    ServerConfig::default().with_faults(FaultPlan::new(mix).with_seed(11))
}

#[test]
fn registration_bumps_the_epoch() {
    let server = start(ServerConfig::default());
    let (a, s) = (agent(), server.session_url("s1"));
    let first = post(&a, &format!("{s}/worker/register"), &json!({})).unwrap();
    assert_eq!(
        (first.status, first.json()),
        (200, json!({"worker_epoch": 1}))
    );
    let second = post(&a, &format!("{s}/worker/register"), &json!({})).unwrap();
    assert_eq!(second.json(), json!({"worker_epoch": 2}));
    let other = post(
        &a,
        &format!("{}/worker/register", server.session_url("s2")),
        &json!({}),
    )
    .unwrap();
    assert_eq!(other.json(), json!({"worker_epoch": 1}));
    assert_eq!(server.inspector().epoch("s1"), Some(2));
    assert_eq!(server.inspector().session_ids(), ["s1", "s2"]);
}

#[test]
fn put_merges_metadata_and_get_reports_the_epoch() {
    let server = start(ServerConfig::default());
    let (a, w) = (agent(), format!("{}/worker", server.session_url("s")));
    let r = put(
        &a,
        &w,
        &json!({"worker_epoch": 0, "worker_status": "idle",
        "external_metadata": {"a": 1, "nested": {"x": 1}}, "labels": {"k": 1}}),
    )
    .unwrap();
    assert_eq!((r.status, r.json()), (200, json!({})));
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    let date = parse_http_date(r.date.as_deref().expect("a Date header")).expect("IMF-fixdate");
    let skew = SystemTime::now().duration_since(date).unwrap_or_default();
    assert!(skew < Duration::from_secs(5), "{skew:?}");
    put(
        &a,
        &w,
        &json!({"worker_epoch": 0, "worker_status": "busy",
        "external_metadata": {"a": null, "nested": {"y": 2}}, "internal_metadata": {"i": 1},
        "labels": {"j": 2}}),
    )
    .unwrap();
    let expected = json!({"worker_epoch": 0, "worker_status": "busy",
        "external_metadata": {"nested": {"x": 1, "y": 2}}, "internal_metadata": {"i": 1},
        "labels": {"j": 2}});
    assert_eq!(get(&a, &w).unwrap().json(), json!({"worker": expected}));
    assert_eq!(server.inspector().document("s"), Some(expected));
}

#[test]
fn events_are_deduplicated_and_kept_in_first_arrival_order() {
    let server = start(ServerConfig::default());
    let (a, s) = (agent(), server.session_url("s"));
    for batch in [&["a", "b"][..], &["b", "c"], &["a", "d"]] {
        let r = post(&a, &format!("{s}/worker/events"), &events(0, batch)).unwrap();
        assert_eq!((r.status, r.json()), (200, json!({})));
    }
    post(
        &a,
        &format!("{s}/worker/internal-events"),
        &events(0, &["a", "a"]),
    )
    .unwrap();
    let updates = json!({"worker_epoch": 0, "updates": [{"event_id": "a", "status": "processed"}]});
    assert_eq!(
        post(&a, &format!("{s}/worker/events/delivery"), &updates)
            .unwrap()
            .status,
        200
    );

    let view = server.inspector().session("s").unwrap();
    assert_eq!(uuids(&view.events), ["a", "b", "c", "d"]);
    assert_eq!(view.events[2], json!({"uuid": "c", "text": "c"}));
    assert_eq!(view.duplicates.count, 2);
    assert_eq!(view.duplicates.uuids, ["b", "a"]);
    assert_eq!(uuids(&view.internal_events), ["a"]);
    assert_eq!(view.internal_duplicates.uuids, ["a"]);
    assert_eq!(view.delivery_updates.len(), 1);
    assert_eq!(view.stats.requests[&Endpoint::Events], 3);

    let no_uuid =
        json!({"worker_epoch": 0, "events": [{"payload": {"uuid": "e"}}, {"payload": {}}]});
    assert_eq!(
        post(&a, &format!("{s}/worker/events"), &no_uuid)
            .unwrap()
            .status,
        400
    );
    assert_eq!(
        server.inspector().events("s").len(),
        4,
        "a refused batch stores nothing"
    );
}

#[test]
fn a_lower_epoch_is_fenced_and_a_higher_one_takes_over() {
    let server = start(ServerConfig::default());
    let (a, s) = (agent(), server.session_url("s"));
    post(&a, &format!("{s}/worker/register"), &json!({})).unwrap();
    post(&a, &format!("{s}/worker/register"), &json!({})).unwrap();
    let stale = post(&a, &format!("{s}/worker/events"), &events(1, &["x"])).unwrap();
    assert_eq!(stale.status, 409);
    assert!(server.inspector().events("s").is_empty());
    assert_eq!(
        put(&a, &format!("{s}/worker"), &json!({"worker_epoch": 5}))
            .unwrap()
            .status,
        200
    );
    assert_eq!(server.inspector().epoch("s"), Some(5));

    assert_eq!(server.inspector().force_takeover("s"), 6);
    let beat = json!({"session_id": "s", "worker_epoch": 5});
    assert_eq!(
        post(&a, &format!("{s}/worker/heartbeat"), &beat)
            .unwrap()
            .status,
        409
    );
    assert_eq!(
        get(&a, &format!("{s}/worker")).unwrap().json()["worker"]["worker_epoch"],
        6
    );
}

#[test]
fn bodies_over_the_limit_get_413_declared_or_chunked() {
    let server = start(ServerConfig::default().with_body_limit(1024));
    let (a, url) = (
        agent(),
        format!("{}/worker/events", server.session_url("s")),
    );
    let big = "x".repeat(4096);
    let body =
        json!({"worker_epoch": 0, "events": [{"payload": {"uuid": "u", "pad": big}}]}).to_string();
    // Content-Length over the limit.
    assert_eq!(post_raw(&a, &url, &body).unwrap().status, 413);
    // Chunked (no length declared): cut off while reading.
    let reader = std::io::Cursor::new(body.clone().into_bytes());
    let chunked = a.post(&url).send(ureq::SendBody::from_owned_reader(reader));
    assert_eq!(finish(chunked).unwrap().status, 413);
    assert!(server.inspector().events("s").is_empty());
    // Under the limit is fine.
    assert_eq!(post(&a, &url, &events(0, &["small"])).unwrap().status, 200);
    assert_eq!(ServerConfig::default().body_limit, DEFAULT_BODY_LIMIT);
}

#[test]
fn malformed_requests_get_400_404_405() {
    let server = start(ServerConfig::default());
    let (a, s) = (agent(), server.session_url("s"));
    assert_eq!(
        post_raw(&a, &format!("{s}/worker/events"), "{not json")
            .unwrap()
            .status,
        400
    );
    assert_eq!(
        post(&a, &format!("{s}/worker/events"), &json!({"events": []}))
            .unwrap()
            .status,
        400
    );
    let negative = json!({"worker_epoch": -3, "events": []});
    assert_eq!(
        post(&a, &format!("{s}/worker/events"), &negative)
            .unwrap()
            .status,
        400
    );
    assert_eq!(
        put(&a, &format!("{s}/worker"), &json!({"worker_epoch": "1"}))
            .unwrap()
            .status,
        400
    );
    let r = get(&a, &format!("{}/v1/other", server.base_url())).unwrap();
    assert_eq!((r.status, r.json()["error"].is_string()), (404, true));
    assert_eq!(get(&a, &format!("{s}/worker/nope")).unwrap().status, 404);
    assert_eq!(get(&a, &format!("{s}/worker/events")).unwrap().status, 405);
    assert_eq!(
        post(&a, &format!("{s}/worker"), &json!({})).unwrap().status,
        405
    );
}

#[test]
fn a_429_carries_a_retry_after_consistent_with_its_date() {
    let server = start(with_mix(FaultMix {
        throttle_seconds: 0.5,
        throttle_date: 0.5,
        ..FaultMix::none()
    }));
    let (a, s) = (agent(), server.session_url("s"));
    let (mut seconds, mut dates) = (0, 0);
    for i in 0..40 {
        let r = post(
            &a,
            &format!("{s}/worker/events"),
            &events(0, &[&format!("e{i}")]),
        )
        .unwrap();
        assert_eq!(r.status, 429);
        let date = parse_http_date(r.date.as_deref().unwrap()).unwrap();
        let hint = r.retry_after.expect("Retry-After on a 429");
        if let Ok(secs) = hint.parse::<u64>() {
            assert_eq!(secs, 1);
            seconds += 1;
        } else {
            let at = parse_http_date(&hint).unwrap_or_else(|| panic!("unparseable {hint}"));
            assert_eq!(at.duration_since(date).unwrap(), Duration::from_secs(1));
            dates += 1;
        }
    }
    assert!(
        seconds > 0 && dates > 0,
        "both forms: {seconds} seconds, {dates} dates"
    );
    assert!(
        server.inspector().events("s").is_empty(),
        "a throttled request is not applied"
    );
    assert_eq!(
        server.inspector().totals().faults[&FaultKind::Throttled],
        40
    );
}

#[test]
fn lost_requests_and_responses_close_without_a_response_before_or_after_applying() {
    let before = start(with_mix(FaultMix {
        lost_request: 1.0,
        ..FaultMix::none()
    }));
    let url = format!("{}/worker/events", before.session_url("s"));
    assert!(post(&agent(), &url, &events(0, &["a"])).is_err());
    assert!(before.inspector().events("s").is_empty());

    let after = start(with_mix(FaultMix {
        lost_response: 1.0,
        ..FaultMix::none()
    }));
    let url = format!("{}/worker/events", after.session_url("s"));
    assert!(post(&agent(), &url, &events(0, &["a"])).is_err());
    assert_eq!(uuids(&after.inspector().events("s")), ["a"]);
    assert_eq!(
        after.inspector().stats("s").faults[&FaultKind::LostResponse],
        1
    );
}

#[test]
fn garbage_bodies_are_200_and_not_json() {
    let server = start(with_mix(FaultMix {
        garbage: 1.0,
        ..FaultMix::none()
    }));
    let (a, s) = (agent(), server.session_url("s"));
    for _ in 0..4 {
        let r = post(&a, &format!("{s}/worker/register"), &json!({})).unwrap();
        assert_eq!(r.status, 200);
        assert!(
            serde_json::from_str::<Value>(&r.body).is_err(),
            "{}",
            r.body
        );
    }
    assert_eq!(
        server.inspector().epoch("s"),
        Some(4),
        "a garbage answer was still applied"
    );
    // Routes whose body the client ignores are served normally.
    let r = post(&a, &format!("{s}/worker/events"), &events(4, &["a"])).unwrap();
    assert_eq!(r.json(), json!({}));
}

#[test]
fn a_hang_or_a_silent_loss_ends_with_a_closed_connection_after_hang_for() {
    // A hang is applied and never answered; a silent lost request never reaches the server.
    // Both hold the connection for `hang_for`, then close it.
    for (mix, applied) in [
        (
            FaultMix {
                hang: 1.0,
                ..FaultMix::none()
            },
            1,
        ),
        (
            FaultMix {
                lost_request: 1.0,
                lost_request_silent: 1.0,
                ..FaultMix::none()
            },
            0,
        ),
    ] {
        let plan = FaultPlan::new(mix).with_hang_for(Duration::from_millis(300));
        let server = start(ServerConfig::default().with_faults(plan));
        let url = format!("{}/worker/register", server.session_url("s"));
        let t = Instant::now();
        assert!(post(&agent(), &url, &json!({})).is_err());
        assert!(
            t.elapsed() >= Duration::from_millis(300),
            "{:?}",
            t.elapsed()
        );
        assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
        assert_eq!(server.inspector().epoch("s"), Some(applied));
    }
}

#[test]
fn shutdown_is_quick_with_idle_connections_and_hangs_in_flight() {
    let plan = FaultPlan::new(FaultMix {
        hang: 1.0,
        ..FaultMix::none()
    })
    .with_hang_for(Duration::from_secs(30));
    let server = start(ServerConfig::default().with_faults(plan));
    let url = format!("{}/worker/register", server.session_url("s"));
    let client = thread::spawn(move || post(&agent(), &url, &json!({})).is_err());
    while server.inspector().totals().total_requests() == 0 {
        thread::sleep(Duration::from_millis(10));
    }
    let t = Instant::now();
    server.shutdown().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "shutdown took {:?}",
        t.elapsed()
    );
    assert!(
        client.join().unwrap(),
        "the hung client saw its connection close"
    );

    // Idle keep-alive connections do not hold shutdown for the grace period.
    let server = start(ServerConfig::default());
    let a = agent();
    post(
        &a,
        &format!("{}/worker/register", server.session_url("s")),
        &json!({}),
    )
    .unwrap();
    let t = Instant::now();
    drop(server);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "drop took {:?}",
        t.elapsed()
    );
}

#[test]
fn a_restarted_listener_keeps_port_and_data() {
    let server = start(ServerConfig::default());
    let (a, s) = (agent(), server.session_url("s"));
    post(&a, &format!("{s}/worker/register"), &json!({})).unwrap();
    post(&a, &format!("{s}/worker/events"), &events(1, &["a"])).unwrap();
    server.stop_listener().unwrap();
    assert!(!server.is_listening());
    assert!(
        post(&a, &format!("{s}/worker/events"), &events(1, &["b"])).is_err(),
        "server down"
    );
    server.restart_listener().unwrap();
    assert!(server.is_listening());
    assert_eq!(server.session_url("s"), s);
    post(&a, &format!("{s}/worker/events"), &events(1, &["b"])).unwrap();
    assert_eq!(uuids(&server.inspector().events("s")), ["a", "b"]);
    assert_eq!(server.inspector().epoch("s"), Some(1));
}

#[test]
fn heartbeats_are_recorded_and_expire_after_the_ttl() {
    let server = start(ServerConfig::default().with_heartbeat_ttl(Duration::from_millis(300)));
    let (a, s) = (agent(), server.session_url("s"));
    assert!(!server.inspector().is_alive("s"));
    let beat = json!({"session_id": "s", "worker_epoch": 0});
    assert_eq!(
        post(&a, &format!("{s}/worker/heartbeat"), &beat)
            .unwrap()
            .status,
        200
    );
    let inspector = server.inspector();
    assert!(inspector.is_alive("s"));
    assert_eq!(inspector.heartbeats("s").len(), 1);
    assert!(inspector.heartbeats("s")[0] <= inspector.uptime());
    thread::sleep(Duration::from_millis(400));
    assert!(!inspector.is_alive("s"));
    assert!(!inspector.session("s").unwrap().alive);
}

#[test]
fn the_request_log_has_one_line_per_request_and_no_token() {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    let config =
        ServerConfig::default().with_request_log(move |l| sink.lock().unwrap().push(l.to_string()));
    let server = start(config);
    let url = format!("{}/worker/register", server.session_url("s"));
    let r = agent()
        .post(&url)
        .header("authorization", "Bearer secret-token")
        .send("{}");
    assert_eq!(finish(r).unwrap().status, 200);
    get(&agent(), &format!("{}/nope", server.base_url())).unwrap();
    server.shutdown().unwrap();
    let lines = lines.lock().unwrap();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("POST /v1/code/sessions/s/worker/register 200"),
        "{}",
        lines[0]
    );
    assert!(lines[1].starts_with("GET /nope 404"), "{}", lines[1]);
    assert!(lines.iter().all(|l| !l.contains("secret")));
}

#[test]
fn the_same_seed_replays_the_same_faults_over_http() {
    let run = |seed| {
        let plan = FaultPlan::heavy()
            .with_seed(seed)
            .with_hang_for(Duration::from_millis(20))
            .with_latency_max(Duration::from_millis(5));
        let server = start(ServerConfig::default().with_faults(plan));
        let (a, s) = (agent(), server.session_url("s"));
        let outcomes: Vec<Option<u16>> = (0..60)
            .map(|i| {
                let r = post(
                    &a,
                    &format!("{s}/worker/internal-events"),
                    &events(0, &[&format!("{i}")]),
                );
                r.ok().map(|r| r.status)
            })
            .collect();
        (outcomes, server.inspector().totals())
    };
    let (first, stats) = run(5);
    assert_eq!(run(5), (first.clone(), stats.clone()));
    let (other, _) = run(6);
    assert_ne!(first, other, "another seed, other faults");
    assert!(stats.total_faults() > 0);
    assert_eq!(
        stats.total_requests(),
        60,
        "one request each: the client never retried"
    );
    assert!(first.iter().any(|o| o.is_none()) && first.contains(&Some(200)));
}

#[test]
fn a_huge_declared_body_is_refused_without_reading_it() {
    use std::io::{Read, Write};
    let server = start(ServerConfig::default().with_body_limit(1024));
    let mut stream = std::net::TcpStream::connect(server.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    // Declares a gigabyte and sends none of it: only the header check can answer.
    let head = "POST /v1/code/sessions/s/worker/events HTTP/1.1\r\nHost: x\r\n\
                Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n";
    stream.write_all(head.as_bytes()).unwrap();
    let mut response = [0u8; 12];
    stream.read_exact(&mut response).unwrap();
    assert_eq!(&response, b"HTTP/1.1 413");
}
