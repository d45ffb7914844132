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
