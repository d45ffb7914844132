//! `tether outbox DIR`: a look into a durable outbox (`show`), its records as JSON Lines
//! (`export`), and the caller's deliberate discard (`discard`), the only way besides delivery
//! that an acknowledged event leaves it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use serde_json::{Value, json};
use tether_blocking::{Store, StoreError};
use tether_core::session::decode_record;
use tether_store::{Discard, FILE_NAME, SqliteStore};

use crate::args::usage_error;

const AFTER_HELP: &str = "\
An outbox keeps every line `tether pipe --outbox DIR` acknowledged until the server took it:
pending records are sent first by the next run on the outbox, with their uuids; dead records
(the server refused them for good) stay until discarded and are never sent again. The outbox
must not be in use: a running pipe holds it.

EXIT CODES:
    0   done
    1   no outbox at DIR, or it cannot be read or written (e.g. open in another process)
    2   a usage error (e.g. discard without --yes)
";

/// `tether outbox` arguments.
#[derive(Debug, clap::Args)]
#[command(
    help_template = "tether outbox: {about}\n\nUSAGE:\n    {usage}\n\nCOMMANDS:\n{subcommands}\n\n\
                     OPTIONS:\n{options}{after-help}",
    after_help = AFTER_HELP,
    override_usage = "tether outbox DIR <show|export|discard> [OPTIONS]"
)]
pub struct OutboxArgs {
    /// the outbox directory (as given to `tether pipe --outbox`)
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// What to do.
    #[command(subcommand)]
    action: Action,
}

/// What `tether outbox` does.
#[derive(Debug, clap::Subcommand)]
enum Action {
    /// say what the outbox keeps: pending and dead records, the oldest, bytes, the session
    Show {
        /// print one JSON object instead of lines of text
        #[arg(long)]
        json: bool,
    },
    /// print every pending and dead record as JSON Lines, payloads as they will be sent
    Export,
    /// drop records for good: --dead (what the server refused) or --all (everything)
    Discard {
        /// drop the dead records only
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        dead: bool,
        /// drop everything: pending and dead records and the kept state
        #[arg(long)]
        all: bool,
        /// yes, drop them: without it nothing is dropped
        #[arg(long)]
        yes: bool,
    },
}

pub fn run(args: &OutboxArgs) -> ExitCode {
    if let Action::Discard { yes: false, .. } = args.action {
        return usage_error(
            "outbox",
            "discard drops acknowledged events for good: add --yes to do it",
        );
    }
    let mut store = match open(&args.dir) {
        Ok(store) => store,
        Err(message) => {
            eprintln!("tether outbox: {message}");
            return ExitCode::from(1);
        }
    };
    let done = match &args.action {
        Action::Show { json } => show(&mut store, &args.dir, *json),
        Action::Export => export(&mut store),
        Action::Discard { all, .. } => discard(&mut store, *all),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("tether outbox: {message}");
            ExitCode::from(1)
        }
    }
}

/// Opens an existing outbox: a missing one is an error, not a new empty outbox.
fn open(dir: &Path) -> Result<SqliteStore, String> {
    if !dir.join(FILE_NAME).is_file() {
        return Err(format!("no outbox at {}", dir.display()));
    }
    SqliteStore::open(dir).map_err(|e| e.to_string())
}

fn show(store: &mut SqliteStore, dir: &Path, as_json: bool) -> Result<(), String> {
    let stats = store.stats().map_err(|e| e.to_string())?;
    let written_ms = stats.oldest_written.and_then(|at| {
        at.duration_since(SystemTime::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_millis() as u64)
    });
    let age = stats
        .oldest_written
        .and_then(|at| SystemTime::now().duration_since(at).ok())
        .map(|d| d.as_secs());
    if as_json {
        let shown = json!({
            "outbox": dir.display().to_string(),
            "session": stats.session,
            "pending": stats.pending,
            "dead": stats.dead,
            "bytes": stats.bytes,
            "oldest": stats.oldest_key.map(|key| json!({
                "key": key,
                "written_unix_ms": written_ms,
                "age_secs": age,
            })),
            "state": stats.state,
        });
        println!("{shown}");
        return Ok(());
    }
    let oldest = match (stats.oldest_key, age) {
        (None, _) => "none".to_owned(),
        (Some(key), Some(age)) => format!("key {key}, written {age} s ago"),
        (Some(key), None) => format!("key {key}"),
    };
    println!("outbox   {}", dir.display());
    println!(
        "session  {}",
        stats.session.as_deref().unwrap_or("(not bound)")
    );
    println!("pending  {} (sent first by the next run)", stats.pending);
    println!("dead     {} (kept until discarded)", stats.dead);
    println!("oldest   {oldest}");
    println!("bytes    {}", stats.bytes);
    println!("state    {}", if stats.state { "kept" } else { "none" });
    Ok(())
}

/// One record as a JSON Lines object: its payload as it will be sent, or why it cannot be read.
fn record_json(key: u64, kind: &str, record: &[u8]) -> Value {
    match decode_record(record) {
        Ok((stream, event)) => {
            let mut line = json!({"key": key, "outbox": kind, "stream": stream.name()});
            match event.payload() {
                Ok(payload) => line["payload"] = payload,
                Err(_) => {
                    line["payload_text"] =
                        Value::from(String::from_utf8_lossy(event.payload_bytes()).into_owned());
                }
            }
            if let Some(replace_key) = event.replace_key() {
                line["replace_key"] = Value::from(replace_key);
            }
            if event.is_ephemeral() {
                line["ephemeral"] = Value::Bool(true);
            }
            line
        }
        Err(error) => json!({
            "key": key,
            "outbox": kind,
            "error": error.to_string(),
            "record_text": String::from_utf8_lossy(record),
        }),
    }
}

fn export(store: &mut SqliteStore) -> Result<(), String> {
    const CHUNK: usize = 1024;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for dead in [false, true] {
        let kind = if dead { "dead" } else { "pending" };
        let mut after = None;
        loop {
            let chunk = if dead {
                store.read_dead(after, CHUNK)
            } else {
                store.read(after, CHUNK)
            }
            .map_err(|e: StoreError| e.to_string())?;
            let Some((last, _)) = chunk.last() else { break };
            after = Some(*last);
            for (key, record) in &chunk {
                writeln!(out, "{}", record_json(*key, kind, record)).map_err(|e| e.to_string())?;
            }
        }
    }
    let state = store.read_state().map_err(|e| e.to_string())?;
    if let Some(state) = state {
        let patches: Value = serde_json::from_slice(&state).unwrap_or(Value::Null);
        if patches.as_array().is_some_and(|p| !p.is_empty()) {
            writeln!(out, "{}", json!({"outbox": "pending", "state": patches}))
                .map_err(|e| e.to_string())?;
        }
    }
    out.flush().map_err(|e| e.to_string())
}

fn discard(store: &mut SqliteStore, all: bool) -> Result<(), String> {
    let what = if all { Discard::All } else { Discard::Dead };
    let dropped = store.discard(what).map_err(|e| e.to_string())?;
    println!(
        "{}",
        json!({"discarded": {"pending": dropped.pending, "dead": dropped.dead}})
    );
    Ok(())
}
