//! The default store of tether's durable outbox (docs/ARCHITECTURE.md §Durable outbox): SQLite, built in
//! (rusqlite's bundled build), in write-ahead-log mode, behind
//! [`tether_driver::Store`].
//!
//! Why SQLite and not redb: measured on this workload (append a batch of records, delete the
//! batch before it, commit synced), SQLite's WAL made 2.8× as many durable events per second
//! at 512-event batches and the same at small ones; see `benches/README.md`, §Outbox store.
//!
//! This crate does the I/O that `tether-driver` must not: the driver calls the trait from its
//! loop turn, once per group commit, and never opens a file itself.
//!
//! ```
//! use tether_driver::{Store, WriteBatch};
//! use tether_store::SqliteStore;
//!
//! let dir = tempfile::tempdir()?;
//! let mut store = SqliteStore::open(dir.path())?;
//! let batch = WriteBatch { puts: vec![(0, b"record".to_vec())], ..WriteBatch::default() };
//! store.write(&batch, true)?;
//! assert_eq!(store.read(None, 10)?, vec![(0, b"record".to_vec())]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::fs;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use tether_driver::{Dropped, Store, StoreCount, StoreError, WriteBatch};

mod tool;

use tool::Table;
pub use tool::{Discard, OutboxStats};

/// The database's file name inside the outbox directory.
pub const FILE_NAME: &str = "outbox.sqlite";

/// An outbox in a directory: one SQLite database in WAL mode, open in one process at a time.
/// Pending records are replayed by the next run; records marked dead stay until
/// [discarded](SqliteStore::discard).
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    synchronous: Option<bool>,
    dropped: Vec<Dropped>,
}

fn write_error(e: rusqlite::Error) -> StoreError {
    StoreError::Write {
        message: e.to_string(),
    }
}

fn read_error(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
            StoreError::Corrupt {
                message: e.to_string(),
            }
        }
        _ => StoreError::Read {
            message: e.to_string(),
        },
    }
}

impl SqliteStore {
    /// Opens (creating it if needed) the outbox in directory `dir`.
    ///
    /// # Errors
    /// [`StoreError::Open`] when the directory cannot be created or written, or the file is
    /// not a database; [`StoreError::Locked`] when another process has it open;
    /// [`StoreError::Corrupt`] when SQLite's check of the file fails.
    pub fn open(dir: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let dir = dir.as_ref();
        let open_error = |message: String| StoreError::Open {
            path: dir.display().to_string(),
            message,
        };
        fs::create_dir_all(dir).map_err(|e| open_error(e.to_string()))?;
        let path = dir.join(FILE_NAME);
        let mut dropped = Vec::new();
        if let Some(torn) = torn_wal_tail(&path) {
            dropped.push(Dropped {
                key: None,
                reason: format!(
                    "the last write was torn ({torn} bytes of an incomplete log frame): SQLite \
                     discarded that write, which had not been acknowledged"
                ),
            });
        }
        match fs::metadata(&path) {
            // An outbox file is never empty once created (see `create`): an empty one was
            // truncated, and starting over in it would lose what it held without a word.
            Ok(meta) if meta.len() == 0 => {
                return Err(StoreError::Corrupt {
                    message: format!(
                        "{} is empty: it was truncated, and what it held is lost; move it away \
                         to start a new outbox",
                        path.display()
                    ),
                });
            }
            Ok(_) => {}
            Err(_) => create(&path).map_err(|e| open_error(e.to_string()))?,
        }
        let conn = Connection::open(&path).map_err(|e| open_error(e.to_string()))?;
        let setup = || -> rusqlite::Result<()> {
            // One process at a time: the first to open holds the file's lock until it closes
            // (or dies), and a second opener is refused at once rather than interleave writes.
            conn.busy_timeout(std::time::Duration::from_millis(200))?;
            conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
            let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(rusqlite::Error::InvalidQuery);
            }
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS events (k INTEGER PRIMARY KEY, v BLOB NOT NULL,
                                                    at INTEGER);
                 CREATE TABLE IF NOT EXISTS dead (k INTEGER PRIMARY KEY, v BLOB NOT NULL,
                                                  at INTEGER);
                 CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, v BLOB NOT NULL);",
            )?;
            // An outbox written before records carried their time: they get the column, empty.
            let has_at: bool = conn.query_row(
                "SELECT COUNT(*) > 0 FROM pragma_table_info('events') WHERE name = 'at'",
                [],
                |r| r.get(0),
            )?;
            if !has_at {
                conn.execute_batch("ALTER TABLE events ADD COLUMN at INTEGER")?;
            }
            // A write takes the exclusive lock now, and exclusive mode keeps it.
            conn.execute_batch("BEGIN EXCLUSIVE; COMMIT;")?;
            Ok(())
        };
        setup().map_err(|e| {
            if matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ) {
                return StoreError::Locked {
                    path: dir.display().to_string(),
                };
            }
            match read_error(e) {
                StoreError::Corrupt { message } => StoreError::Corrupt { message },
                other => open_error(other.to_string()),
            }
        })?;
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(read_error)?;
        if check != "ok" {
            return Err(StoreError::Corrupt { message: check });
        }
        Ok(SqliteStore {
            conn,
            path,
            synchronous: None,
            dropped,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn set_synchronous(&mut self, sync: bool) -> Result<(), StoreError> {
        if self.synchronous != Some(sync) {
            let value = if sync { "FULL" } else { "OFF" };
            self.conn
                .pragma_update(None, "synchronous", value)
                .map_err(write_error)?;
            self.synchronous = Some(sync);
        }
        Ok(())
    }
}

/// The wall-clock time a record was written, in milliseconds since the Unix epoch: what
/// `tether outbox show` says of the oldest. The store is the I/O edge; the driver never reads
/// a clock.
fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Creates an empty outbox database at `path` whole: set up under another name, then linked
/// into place (never over an existing file, so a racing opener keeps its own), so that an
/// outbox file is never seen empty.
fn create(path: &Path) -> std::io::Result<()> {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".new-{}", std::process::id()));
    let fresh = PathBuf::from(name);
    let _ = fs::remove_file(&fresh);
    {
        let conn = Connection::open(&fresh).map_err(std::io::Error::other)?;
        conn.execute_batch("PRAGMA user_version = 1;")
            .map_err(std::io::Error::other)?;
    }
    fs::File::open(&fresh)?.sync_all()?;
    let linked = fs::hard_link(&fresh, path);
    if linked.is_ok() || path.exists() {
        let _ = fs::remove_file(&fresh);
    }
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        // A file system without hard links: a rename, unless another opener got there first.
        Err(_) if !path.exists() => fs::rename(&fresh, path)?,
        Err(e) => return Err(e),
    }
    if let Some(dir) = path.parent() {
        // The new name itself durable.
        let _ = fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

/// If the write-ahead log ends in a partial frame (a write torn by a crash), its length.
fn torn_wal_tail(db: &Path) -> Option<u64> {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    let bytes = fs::read(PathBuf::from(wal)).ok()?;
    if bytes.len() < 32 {
        return (!bytes.is_empty()).then_some(bytes.len() as u64);
    }
    let page = u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    if page == 0 {
        return None;
    }
    let frames = bytes.len() - 32;
    let torn = frames % (page + 24);
    (torn != 0).then_some(torn as u64)
}

impl Store for SqliteStore {
    fn write(&mut self, batch: &WriteBatch, sync: bool) -> Result<(), StoreError> {
        self.set_synchronous(sync)?;
        let tx = self.conn.transaction().map_err(write_error)?;
        {
            let mut put = tx
                .prepare_cached("INSERT OR REPLACE INTO events (k, v, at) VALUES (?1, ?2, ?3)")
                .map_err(write_error)?;
            let mut last = None;
            let at = unix_millis();
            for (key, record) in &batch.puts {
                let key = i64::try_from(*key).map_err(|_| StoreError::Write {
                    message: format!("key {key} is out of range"),
                })?;
                put.execute(params![key, record, at]).map_err(write_error)?;
                last = last.max(Some(key));
            }
            let mut bury = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO dead (k, v, at) SELECT k, v, at FROM events WHERE k = ?1",
                )
                .map_err(write_error)?;
            let mut delete = tx
                .prepare_cached("DELETE FROM events WHERE k = ?1")
                .map_err(write_error)?;
            for key in &batch.dead {
                if let Ok(key) = i64::try_from(*key) {
                    bury.execute([key]).map_err(write_error)?;
                    delete.execute([key]).map_err(write_error)?;
                }
            }
            let mut delete_dead = tx
                .prepare_cached("DELETE FROM dead WHERE k = ?1")
                .map_err(write_error)?;
            for key in &batch.deletes {
                if let Ok(key) = i64::try_from(*key) {
                    delete.execute([key]).map_err(write_error)?;
                    delete_dead.execute([key]).map_err(write_error)?;
                }
            }
            let mut meta = tx
                .prepare_cached("INSERT OR REPLACE INTO meta (name, v) VALUES (?1, ?2)")
                .map_err(write_error)?;
            if let Some(last) = last {
                // The highest key ever written, kept apart: records are deleted.
                meta.execute(params!["last_key", last.to_le_bytes().to_vec()])
                    .map_err(write_error)?;
            }
            if let Some(state) = &batch.state {
                meta.execute(params!["state", state]).map_err(write_error)?;
            }
            if let Some(threads) = &batch.threads {
                meta.execute(params!["threads", threads])
                    .map_err(write_error)?;
            }
        }
        tx.commit().map_err(write_error)
    }

    fn read(
        &mut self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.read_table(Table::Events, after, limit)
    }

    fn read_dead(
        &mut self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.read_table(Table::Dead, after, limit)
    }

    fn count(&mut self) -> Result<StoreCount, StoreError> {
        let stats = self.stats()?;
        Ok(StoreCount::new(stats.pending, stats.dead))
    }

    /// Checkpoints the log into the file and empties it: a clean end leaves one whole file,
    /// whenever the connection is dropped. A failure leaves the log, which the next open
    /// reads: nothing is lost.
    fn finish(&mut self) {
        let _ = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }

    fn read_state(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn
            .query_row("SELECT v FROM meta WHERE name = 'state'", [], |r| r.get(0))
            .optional()
            .map_err(read_error)
    }

    fn read_threads(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn
            .query_row("SELECT v FROM meta WHERE name = 'threads'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(read_error)
    }

    fn last_key(&mut self) -> Result<Option<u64>, StoreError> {
        let meta: Option<Vec<u8>> = self
            .conn
            .query_row("SELECT v FROM meta WHERE name = 'last_key'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(read_error)?;
        let from_meta = match meta {
            None => None,
            Some(bytes) => {
                let bytes: [u8; 8] =
                    bytes
                        .as_slice()
                        .try_into()
                        .map_err(|_| StoreError::Corrupt {
                            message: "the last key is not 8 bytes".into(),
                        })?;
                u64::try_from(i64::from_le_bytes(bytes)).ok()
            }
        };
        let from_rows: Option<i64> = self
            .conn
            .query_row(
                "SELECT MAX(k) FROM (SELECT k FROM events UNION ALL SELECT k FROM dead)",
                [],
                |r| r.get(0),
            )
            .map_err(read_error)?;
        let from_rows = from_rows.and_then(|k| u64::try_from(k).ok());
        Ok(from_meta.max(from_rows))
    }

    fn take_dropped(&mut self) -> Vec<Dropped> {
        std::mem::take(&mut self.dropped)
    }
}
