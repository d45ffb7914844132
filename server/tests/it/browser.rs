//! The inspector page in a real browser: headless Chromium driven through WebDriver
//! (chromedriver), while a session streams events and patches into the server.
//!
//! The WebDriver client is a few calls over ureq (already a dev-dependency): new session,
//! navigate, find and click an element, run a script, screenshot, end the session. Everything
//! binds 127.0.0.1, every wait is bounded, and only the chromedriver this test started is
//! killed (chromedriver ends its Chromium when the session is deleted).
//!
//! The browser is found at `TETHER_CHROMEDRIVER` and `TETHER_CHROMIUM`, else
//! `/usr/bin/chromedriver` and `/usr/bin/chromium` (Debian's `chromium` and `chromium-driver`
//! packages; `.ci/run` installs them). Without them the test skips with a message, unless
//! `TETHER_REQUIRE_BROWSER` is set (as `.ci/run` does once the packages are in), when it fails.
//! `TETHER_INSPECTOR_SCREENSHOT=FILE` saves a PNG of the page as the test last saw it.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tether_server::{FaultMix, FaultPlan, Server, ServerConfig};

/// The whole test's budget; each wait below is a slice of it.
const WAIT: Duration = Duration::from_secs(20);
const SESSION: &str = "browser";

fn find(env: &str, default: &str) -> Option<PathBuf> {
    let path = std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from);
    path.is_file().then_some(path)
}

#[test]
fn the_inspector_page_in_headless_chromium() {
    let (Some(driver), Some(browser)) = (
        find("TETHER_CHROMEDRIVER", "/usr/bin/chromedriver"),
        find("TETHER_CHROMIUM", "/usr/bin/chromium"),
    ) else {
        let message = "no browser: the inspector's browser test needs chromedriver and chromium \
                       (apt-get install -y chromium chromium-driver, or set TETHER_CHROMEDRIVER \
                       and TETHER_CHROMIUM)";
        assert!(
            std::env::var_os("TETHER_REQUIRE_BROWSER").is_none(),
            "{message}, and TETHER_REQUIRE_BROWSER is set"
        );
        eprintln!("SKIPPED: {message}");
        return;
    };

    let config = ServerConfig::default().with_faults(
        FaultPlan::none()
            .with_seed(3)
            .with_hang_for(Duration::from_millis(100)),
    );
    let server = Server::start(config).expect("server");
    let stream = Stream::start(&server);
    let driver = Driver::start(&driver, &browser);
    let page = driver.session(&browser);

    page.navigate(&server.inspector_url());
    let card = format!("[data-session=\"{SESSION}\"]");

    // The session appears.
    let shown = wait_for("the session's card", || {
        page.script(&format!("return !!document.querySelector('{card}')"))
            .as_bool()
            .filter(|b| *b)
    });
    assert!(shown);

    // Its event count grows, live.
    let count = || -> Option<u64> {
        let text = page.script(&format!(
            "const e = document.querySelector('{card} [data-field=\"events-stored\"]'); \
             return e ? e.textContent : null"
        ));
        text.as_str()?.replace(',', "").parse().ok()
    };
    let first = wait_for("a first event count", || count().filter(|&n| n > 0));
    let later = wait_for("the event count to grow", || count().filter(|&n| n > first));
    assert!(later > first);

    // The document shows the last patch, highlighted: the page's progress is the server's (or
    // one patch behind, as the stream goes on), and it is the highlighted value.
    let progress = wait_for("the last patch in the document", || {
        let found = page.script(&format!(
            "const hot = [...document.querySelectorAll('{card} [data-field=\"document\"] .changed')]\
               .map(e => e.textContent); \
             const i = hot.indexOf('\"progress\"'); \
             return i < 0 ? null : Number(hot[i + 1]);"
        ));
        let shown = found.as_u64()?;
        let at_server =
            server.inspector().document(SESSION)?["external_metadata"]["progress"].as_u64()?;
        (shown > 0 && shown <= at_server && at_server - shown <= 5).then_some(shown)
    });
    assert!(progress > 0);

    // The fault switch, clicked, changes what the server does.
    assert_eq!(server.inspector().totals().total_faults(), 0);
    page.click("#plan button[data-plan=\"heavy\"]");
    wait_for("the server to switch to heavy", || {
        (server.inspector().faults().mix == FaultMix::heavy()).then_some(())
    });
    let faults = wait_for("faults injected in the stream", || {
        Some(server.inspector().stats(SESSION).total_faults()).filter(|&n| n >= 3)
    });
    wait_for("the page to show the plan and the faults", || {
        let shown = page.script(&format!(
            "const on = document.querySelector('#plan button.on'); \
             const f = document.querySelector('{card} [data-field=\"faults\"]'); \
             return [on && on.dataset.plan, f && Number(f.textContent)];"
        ));
        (shown[0] == "heavy" && shown[1].as_u64().is_some_and(|n| n > 0)).then_some(())
    });
    assert!(faults >= 3);
    assert!(
        server.inspector().changes()[0].starts_with("fault plan none -> heavy"),
        "the switch is logged"
    );
    wait_for("the worker to see a fault", || {
        (stream.errors.load(Ordering::Relaxed) > 0).then_some(())
    });

    if let Some(path) = std::env::var_os("TETHER_INSPECTOR_SCREENSHOT") {
        std::fs::write(path, page.screenshot()).expect("the screenshot is written");
    }
    drop(page);
    drop(driver);
    stream.stop();
    server.shutdown().expect("shutdown");
}

/// Polls `check` every 100 ms until it gives a value, at most [`WAIT`].
fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(100));
    }
}

/// A worker streaming over plain HTTP: events in batches of 5 and a patch, every 50 ms, for at
/// most a minute; faults are counted and ignored (the next batch carries new events).
struct Stream {
    stop: Arc<AtomicBool>,
    errors: Arc<AtomicU64>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Stream {
    fn start(server: &Server) -> Stream {
        let url = server.session_url(SESSION);
        let stop = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(AtomicU64::new(0));
        let (stop2, errors2) = (Arc::clone(&stop), Arc::clone(&errors));
        let thread = thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(2)))
                .build()
                .into();
            let send = |method: &str, route: &str, body: Value| {
                let url = format!("{url}{route}");
                let sent = if method == "PUT" {
                    agent.put(&url).send(body.to_string())
                } else {
                    agent.post(&url).send(body.to_string())
                };
                let ok = sent.is_ok_and(|r| r.status().is_success());
                if !ok {
                    errors2.fetch_add(1, Ordering::Relaxed);
                }
            };
            send("POST", "/worker/register", json!({}));
            let started = Instant::now();
            let mut seq = 0u64;
            let mut progress = 0u64;
            while !stop2.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(60) {
                let events: Vec<Value> = (seq..seq + 5)
                    .map(|i| json!({"payload": {"uuid": format!("e{i}"), "seq": i}}))
                    .collect();
                seq += 5;
                send(
                    "POST",
                    "/worker/events",
                    json!({"worker_epoch": 1, "events": events}),
                );
                progress += 1;
                send(
                    "PUT",
                    "/worker",
                    json!({"worker_epoch": 1, "worker_status": "running",
                           "external_metadata": {"progress": progress}}),
                );
                thread::sleep(Duration::from_millis(50));
            }
        });
        Stream {
            stop,
            errors,
            thread: Some(thread),
        }
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A chromedriver this test started, on a free port of 127.0.0.1; killed on drop.
struct Driver {
    child: Child,
    base: String,
    profile: PathBuf,
}

impl Driver {
    fn start(driver: &std::path::Path, _browser: &std::path::Path) -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let profile = std::env::temp_dir().join(format!(
            "tether-inspector-browser-{}-{port}",
            std::process::id()
        ));
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            profile,
        };
        wait_for("chromedriver to listen", || {
            let reply = request("GET", &format!("{}/status", driver.base), None).ok()?;
            reply["value"]["ready"].as_bool().filter(|r| *r)
        });
        driver
    }

    /// A browser session: headless Chromium with a fresh profile.
    fn session(&self, browser: &std::path::Path) -> Page {
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1440,1100",
        ]
        .map(String::from)
        .into_iter()
        .chain([format!("--user-data-dir={}", self.profile.display())])
        .collect::<Vec<_>>();
        let body = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": browser.display().to_string(), "args": args},
        }}});
        let reply = request("POST", &format!("{}/session", self.base), Some(&body))
            .expect("a browser session");
        let id = reply["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id: {reply}"))
            .to_owned();
        Page {
            base: format!("{}/session/{id}", self.base),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// One WebDriver session; deleted (and its browser closed) on drop.
struct Page {
    base: String,
}

impl Page {
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let reply = request(method, &format!("{}{path}", self.base), body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        if reply["value"]["error"].is_string() {
            panic!("WebDriver {method} {path}: {}", reply["value"]);
        }
        reply["value"].clone()
    }

    fn navigate(&self, url: &str) {
        self.call("POST", "/url", Some(&json!({ "url": url })));
    }

    fn script(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(&json!({"script": script, "args": []})),
        )
    }

    fn click(&self, css: &str) {
        let found = self.call(
            "POST",
            "/element",
            Some(&json!({"using": "css selector", "value": css})),
        );
        let element = found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_owned();
        self.call(
            "POST",
            &format!("/element/{element}/click"),
            Some(&json!({})),
        );
    }

    fn screenshot(&self) -> Vec<u8> {
        let encoded = self.call("GET", "/screenshot", None);
        base64_decode(encoded.as_str().unwrap_or_default())
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        let _ = request("DELETE", &self.base, None);
    }
}

/// One WebDriver call, its JSON answer (errors included), within 30 s.
fn request(method: &str, url: &str, body: Option<&Value>) -> Result<Value, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let sent = match (method, body) {
        ("POST", Some(body)) => agent
            .post(url)
            .header("content-type", "application/json")
            .send(body.to_string()),
        ("GET", _) => agent.get(url).call(),
        ("DELETE", _) => agent.delete(url).call(),
        _ => return Err(format!("unsupported {method}")),
    };
    let mut reply = sent.map_err(|e| e.to_string())?;
    let text = reply
        .body_mut()
        .with_config()
        .limit(64 * 1024 * 1024)
        .read_to_string()
        .map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))
}

/// Standard base64, as WebDriver sends screenshots.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter_map(value) {
        acc = (acc << 6) | c;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}
