//! Bad disks under `tether pipe --outbox`, on every runtime: a corrupt or truncated outbox file,
//! a read-only outbox directory and a full file system. Each ends in a typed error that says
//! what is wrong (never a panic), no line is acknowledged that is not durable, and once the
//! disk is fixed the next run delivers every line acknowledged before, once, in order, with
//! the document converged.
//!
//! The read-only test needs a user that permissions bind: as root it runs the pipe as `nobody`
//! through `setpriv`, and skips with a message when it cannot. The full-disk test mounts a
//! size-capped tmpfs and skips with a message when it may not mount.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};
use tether_server::{Server, ServerConfig};

use super::outbox::{lines, tempdir, tether, text};

/// `tether pipe --outbox dir` on `runtime`, with short timeouts, `input` on stdin.
fn pipe(runtime: &str, url: &str, dir: &Path, input: &str) -> Output {
    tether(&pipe_args(runtime, url, dir), input)
}

fn pipe_args<'a>(runtime: &'a str, url: &'a str, dir: &'a Path) -> Vec<&'a str> {
    vec![
        "pipe",
        "--runtime",
        runtime,
        "--url",
        url,
        "--epoch",
        "1",
        "--close-timeout",
        "1",
        "--send-timeout",
        "2",
        "--outbox",
        dir.to_str().expect("a UTF-8 path"),
    ]
}

/// 40 events and a state patch after every 10th: 44 lines.
fn input() -> String {
    (0..40)
        .map(|n| {
            let mut line = format!("{}\n", json!({ "event": { "n": n } }));
            if n % 10 == 9 {
                line.push_str(&format!("{}\n", json!({ "state": { "k": n } })));
            }
            line
        })
        .collect()
}

/// The acknowledged line numbers on stdout.
fn acks(output: &Output) -> Vec<u64> {
    lines(&output.stdout)
        .iter()
        .filter_map(|v| v["ack"].as_u64())
        .collect()
}

/// A run with the server down keeps every line of [`input`] in `dir` (exit 7).
fn keep(runtime: &str, server: &Server, url: &str, dir: &Path) {
    server.stop_listener().expect("server down");
    let out = pipe(runtime, url, dir, &input());
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert_eq!(acks(&out), (1..=44).collect::<Vec<_>>());
    server.restart_listener().expect("server up");
}

/// A run that must fail on the outbox: exit 1, a typed error naming it, no ack, no panic.
fn refused(out: &Output, says: &[&str]) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(says.iter().any(|s| stderr.contains(s)), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(acks(out).is_empty(), "acknowledged: {}", text(&out.stdout));
}

/// The server holds the 40 kept events of `session` once, in order, and the document
/// converged on the last patch.
fn delivered_once_in_order(server: &Server, session: &str) {
    let inspector = server.inspector();
    let seen: Vec<Value> = inspector
        .events(session)
        .iter()
        .map(|e| e["n"].clone())
        .collect();
    assert_eq!(seen, (0..40).map(Value::from).collect::<Vec<_>>());
    assert_eq!(inspector.duplicates(session).count, 0);
    let document = inspector.document(session).unwrap_or(Value::Null);
    assert_eq!(document["k"], 39, "{document}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

mod a_corrupt_or_truncated_outbox_is_a_typed_error_and_acknowledges_nothing {
    #[test]
    fn blocking() {
        super::corrupt("blocking");
    }

    #[test]
    fn smol() {
        super::corrupt("smol");
    }

    #[test]
    fn tokio() {
        super::corrupt("tokio");
    }
}

fn corrupt(runtime: &str) {
    let server = Server::start(ServerConfig::default()).expect("server");
    let session = format!("corrupt-{runtime}");
    let url = server.session_url(&session);
    let tmp = tempdir(&format!("corrupt-{runtime}"));
    let kept = tmp.join("kept");
    keep(runtime, &server, &url, &kept);
    let file = tether_file(&kept);
    let len = std::fs::metadata(&file).expect("the outbox file").len();
    assert!(len > 8192, "{len}");

    type Damage = fn(&Path, u64);
    let damages: [(&str, Damage, &[&str]); 4] = [
        (
            "garbage over the header",
            |file, _| {
                let mut bytes = std::fs::read(file).expect("read");
                bytes[..100].fill(0x5a);
                std::fs::write(file, bytes).expect("write");
            },
            &["the outbox is corrupt"],
        ),
        (
            "truncated to half",
            |file, len| truncate(file, len / 2),
            &["the outbox is corrupt"],
        ),
        (
            "truncated to nothing",
            |file, _| truncate(file, 0),
            &["the outbox is corrupt"],
        ),
        (
            "truncated to its first page",
            |file, _| truncate(file, 4096),
            &["the outbox is corrupt"],
        ),
    ];
    for (name, damage, says) in damages {
        let dir = tmp.join(name.replace(' ', "-"));
        copy_dir(&kept, &dir);
        damage(&tether_file(&dir), len);
        let new = format!("{}\n", json!({ "event": { "n": "new" } }));
        let out = pipe(runtime, &url, &dir, &new);
        refused(&out, says);
        let shown = tether(&["outbox", dir.to_str().unwrap(), "show"], "");
        refused(&shown, says);
        assert!(
            server.inspector().events(&session).is_empty(),
            "{name}: nothing was sent"
        );
    }
    // The undamaged copy still delivers everything it kept.
    let out = pipe(runtime, &url, &kept, "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    delivered_once_in_order(&server, &session);
    let _ = std::fs::remove_dir_all(&tmp);
}

fn tether_file(dir: &Path) -> PathBuf {
    dir.join("outbox.sqlite")
}

fn truncate(file: &Path, len: u64) {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(file)
        .expect("open");
    f.set_len(len).expect("truncate");
}

mod a_read_only_outbox_directory_is_an_error_and_loses_nothing {
    #[test]
    fn blocking() {
        super::read_only("blocking");
    }

    #[test]
    fn smol() {
        super::read_only("smol");
    }

    #[test]
    fn tokio() {
        super::read_only("tokio");
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// How to run the pipe so that a read-only directory binds it: as this user when permissions
/// bind it, else as `nobody` through `setpriv` (as root). `None` when neither works.
fn unprivileged(probe_dir: &Path) -> Option<Vec<String>> {
    if std::fs::write(probe_dir.join("probe"), b"x").is_err() {
        return Some(Vec::new());
    }
    let _ = std::fs::remove_file(probe_dir.join("probe"));
    let prefix: Vec<String> = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ]
    .map(str::to_owned)
    .to_vec();
    let works = Command::new(&prefix[0])
        .args(&prefix[1..])
        .arg("true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    works.then_some(prefix)
}

fn run_as(prefix: &[String], args: &[&str], input: &str) -> Output {
    let mut command = match prefix.split_first() {
        None => Command::new(env!("CARGO_BIN_EXE_tether")),
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(env!("CARGO_BIN_EXE_tether"));
            c
        }
    };
    let mut child = command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tether");
    let mut stdin = child.stdin.take().expect("stdin");
    let _ = stdin.write_all(input.as_bytes());
    drop(stdin);
    child.wait_with_output().expect("wait for tether")
}

fn read_only(runtime: &str) {
    let server = Server::start(ServerConfig::default()).expect("server");
    let session = format!("read-only-{runtime}");
    let url = server.session_url(&session);
    let tmp = tempdir(&format!("read-only-{runtime}"));
    let dir = tmp.join("outbox");
    keep(runtime, &server, &url, &dir);
    set_mode(&tmp, 0o755);
    set_mode(&dir, 0o555);
    set_mode(&tether_file(&dir), 0o444);
    let Some(prefix) = unprivileged(&dir) else {
        set_mode(&dir, 0o755);
        eprintln!(
            "skipped: the read-only directory does not bind this user (root) and `setpriv` to \
             run as nobody is not available"
        );
        let _ = std::fs::remove_dir_all(&tmp);
        return;
    };
    let new = format!("{}\n", json!({ "event": { "n": "new" } }));
    // The outbox it kept, in a directory that became read-only.
    let out = run_as(&prefix, &pipe_args(runtime, &url, &dir), &new);
    eprintln!(
        "{runtime}, read-only (as {prefix:?}): {}",
        text(&out.stderr)
    );
    refused(&out, &["cannot open the outbox", "read-only", "readonly"]);
    // A new outbox under it.
    let fresh = dir.join("fresh");
    let out = run_as(&prefix, &pipe_args(runtime, &url, &fresh), &new);
    refused(&out, &["cannot open the outbox"]);
    assert!(server.inspector().events(&session).is_empty());
    // Writable again: everything it kept is delivered, once, in order.
    set_mode(&dir, 0o755);
    set_mode(&tether_file(&dir), 0o644);
    let out = pipe(runtime, &url, &dir, "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    delivered_once_in_order(&server, &session);
    let _ = std::fs::remove_dir_all(&tmp);
}

mod a_full_disk_stops_the_acknowledgements_and_loses_nothing_acknowledged {
    #[test]
    fn blocking() {
        super::full_disk("blocking");
    }

    #[test]
    fn smol() {
        super::full_disk("smol");
    }

    #[test]
    fn tokio() {
        super::full_disk("tokio");
    }
}

/// A size-capped tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).ok()?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| Tmpfs(at.to_owned()))
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .expect("remount");
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn full_disk(runtime: &str) {
    let server = Server::start(ServerConfig::default()).expect("server");
    let session = format!("full-{runtime}");
    let url = server.session_url(&session);
    let tmp = tempdir(&format!("full-{runtime}"));
    let Some(fs) = Tmpfs::mount(&tmp.join("fs"), "384k") else {
        eprintln!("skipped: cannot mount a size-capped tmpfs (it takes root and CAP_SYS_ADMIN)");
        let _ = std::fs::remove_dir_all(&tmp);
        return;
    };
    let dir = fs.0.join("outbox");
    // Nothing is delivered, so the outbox only grows: 1 000 events of 1 KiB, a state patch
    // first, streamed 20 lines at a time.
    server.stop_listener().expect("server down");
    let pad = "x".repeat(1000);
    let mut input = vec![json!({ "state": { "k": "before" } }).to_string()];
    input.extend((0..1000).map(|n| json!({ "event": { "n": n, "pad": pad } }).to_string()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(pipe_args(runtime, &url, &dir))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tether pipe");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        for piece in input.chunks(20) {
            let text: String = piece.iter().map(|l| format!("{l}\n")).collect();
            if stdin.write_all(text.as_bytes()).is_err() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    });
    let stdout = child.stdout.take().expect("stdout");
    let acked: Vec<u64> = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str::<Value>(&l).ok()?["ack"].as_u64())
        .collect();
    let out = child.wait_with_output().expect("wait");
    let _ = writer.join();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the outbox failed"), "{stderr}");
    assert!(stderr.contains("full"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let n = acked.len() as u64;
    eprintln!("{runtime}: {n} of 1001 lines acknowledged before the disk filled: {stderr}");
    assert!(n > 1 && n < 1001, "{n} lines acknowledged");
    assert_eq!(acked, (1..=n).collect::<Vec<_>>(), "in order");
    // Room again: the next run delivers every acknowledged line once, in order (and perhaps
    // lines written but not acknowledged when the disk filled, after them).
    fs.resize("64m");
    server.restart_listener().expect("server up");
    let out = pipe(runtime, &url, &dir, "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let inspector = server.inspector();
    let seen: Vec<u64> = inspector
        .events(&session)
        .iter()
        .filter_map(|e| e["n"].as_u64())
        .collect();
    // Line 1 is the state patch; line L > 1 is event L - 2.
    assert!(
        seen.len() as u64 >= n - 1,
        "{} of {} delivered",
        seen.len(),
        n - 1
    );
    assert_eq!(seen, (0..seen.len() as u64).collect::<Vec<_>>());
    assert_eq!(inspector.duplicates(&session).count, 0);
    let document = inspector.document(&session).unwrap_or(Value::Null);
    assert_eq!(document["k"], "before", "{document}");
    drop(fs);
    let _ = std::fs::remove_dir_all(&tmp);
}
