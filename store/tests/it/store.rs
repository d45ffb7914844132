//! The SQLite store: round trips, and bad disks: an unwritable directory, a corrupt file, a
//! torn last write. Each is a typed error or a recovery that says what it dropped.

use std::fs;

use tether_driver::{Store, StoreCount, StoreError, WriteBatch};
use tether_store::{Discard, FILE_NAME, SqliteStore};

fn puts(keys: std::ops::Range<u64>) -> WriteBatch {
    WriteBatch {
        puts: keys
            .map(|k| (k, format!("record {k}").into_bytes()))
            .collect(),
        ..WriteBatch::default()
    }
}

#[test]
fn records_survive_a_reopen_read_in_chunks_and_the_last_key_outlives_deletes() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = SqliteStore::open(dir.path()).unwrap();
        store.write(&puts(0..10), true).unwrap();
        let mut batch = puts(10..12);
        batch.deletes = vec![0, 1, 2];
        batch.state = Some(b"[{\"k\":1}]".to_vec());
        store.write(&batch, false).unwrap();
        store
            .write(
                &WriteBatch {
                    deletes: vec![10, 11],
                    ..WriteBatch::default()
                },
                true,
            )
            .unwrap();
    }
    let mut store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(store.last_key().unwrap(), Some(11));
    let first = store.read(None, 4).unwrap();
    assert_eq!(first.iter().map(|r| r.0).collect::<Vec<_>>(), [3, 4, 5, 6]);
    let rest = store.read(Some(6), 100).unwrap();
    assert_eq!(rest.iter().map(|r| r.0).collect::<Vec<_>>(), [7, 8, 9]);
    assert_eq!(rest[0].1, b"record 7");
    assert_eq!(store.read_state().unwrap(), Some(b"[{\"k\":1}]".to_vec()));
    assert!(store.take_dropped().is_empty());
}

#[test]
fn a_finished_store_is_one_whole_file_while_still_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    store.write(&puts(0..200), true).unwrap();
    let wal = dir.path().join(format!("{FILE_NAME}-wal"));
    let main = dir.path().join(FILE_NAME);
    // Written, the records sit in the log; the file itself is its first pages.
    assert!(fs::metadata(&wal).unwrap().len() > 0);
    store.finish();
    // Finished (the session's end), the log is folded into the file before any drop: a
    // process that exits at once leaves the outbox whole in one file.
    assert_eq!(fs::metadata(&wal).map_or(0, |m| m.len()), 0);
    assert!(fs::metadata(&main).unwrap().len() > 8192);
    assert_eq!(store.count().unwrap(), StoreCount::new(200, 0));
    drop(store);
    let mut again = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(again.count().unwrap(), StoreCount::new(200, 0));
}

#[test]
fn an_unwritable_directory_is_an_open_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    fs::write(&file, b"not a directory").unwrap();
    match SqliteStore::open(file.join("outbox")) {
        Err(StoreError::Open { path, message }) => {
            assert!(path.ends_with("outbox"), "{path}");
            assert!(!message.is_empty());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_corrupt_file_is_a_typed_error_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = SqliteStore::open(dir.path()).unwrap();
        store.write(&puts(0..100), true).unwrap();
    }
    // Garbage over the whole file: not a database any more.
    let path = dir.path().join(FILE_NAME);
    let len = fs::metadata(&path).unwrap().len() as usize;
    fs::write(&path, vec![0x5a; len]).unwrap();
    match SqliteStore::open(dir.path()) {
        Err(StoreError::Corrupt { .. } | StoreError::Open { .. }) => {}
        other => panic!("{other:?}"),
    }
    // Garbage inside a page past the header: found by the check at open or by the read, or
    // (SQLite does not checksum cell contents) read back as records that no longer decode,
    // which the driver drops and reports (driver/tests/it/outbox.rs).
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = SqliteStore::open(dir.path()).unwrap();
        store.write(&puts(0..500), true).unwrap();
    }
    let path = dir.path().join(FILE_NAME);
    let mut bytes = fs::read(&path).unwrap();
    for b in &mut bytes[4096 + 100..4096 + 900] {
        *b ^= 0xa5;
    }
    fs::write(&path, bytes).unwrap();
    match SqliteStore::open(dir.path()) {
        Err(StoreError::Corrupt { .. } | StoreError::Open { .. }) => {}
        Ok(mut store) => match store.read(None, 1000) {
            Err(StoreError::Corrupt { .. } | StoreError::Read { .. }) => {}
            Ok(rows) => assert!(rows.len() <= 500),
            Err(other) => panic!("{other:?}"),
        },
        Err(other) => panic!("{other:?}"),
    }
}

/// The child half of the torn-write test: two synced writes, then death without a close or a
/// checkpoint, as under SIGKILL.
fn write_then_die(dir: &str) -> ! {
    let mut store = SqliteStore::open(dir).unwrap();
    store.write(&puts(0..50), true).unwrap();
    store.write(&puts(50..100), true).unwrap();
    std::process::abort();
}

#[test]
fn a_torn_last_write_is_dropped_and_said_so_and_what_came_before_is_intact() {
    const CHILD: &str = "TETHER_STORE_TORN_CHILD";
    if let Ok(dir) = std::env::var(CHILD) {
        write_then_die(&dir);
    }
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            // The test's path in the `it` binary: its module, then its name.
            "store::a_torn_last_write_is_dropped_and_said_so_and_what_came_before_is_intact",
            "--nocapture",
        ])
        .env(CHILD, dir.path())
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child was to die");
    // The log holds both writes; tear the last one.
    let wal = dir.path().join(format!("{FILE_NAME}-wal"));
    let len = fs::metadata(&wal).unwrap().len();
    assert!(len > 1000, "{len}");
    let file = fs::OpenOptions::new().write(true).open(&wal).unwrap();
    file.set_len(len - 700).unwrap();
    drop(file);
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let dropped = store.take_dropped();
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert!(dropped[0].reason.contains("torn"), "{dropped:?}");
    let keys: Vec<u64> = store
        .read(None, 1000)
        .unwrap()
        .iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(
        keys,
        (0..50).collect::<Vec<_>>(),
        "the first write is intact, the torn one gone"
    );
}

#[test]
fn a_dead_record_is_kept_not_replayed_survives_a_reopen_and_goes_only_when_discarded() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = SqliteStore::open(dir.path()).unwrap();
        // A put and its dead mark in one batch, as when a record is refused before a commit.
        let mut batch = puts(0..5);
        batch.dead = vec![4];
        store.write(&batch, true).unwrap();
        store
            .write(
                &WriteBatch {
                    dead: vec![1],
                    deletes: vec![0],
                    ..WriteBatch::default()
                },
                true,
            )
            .unwrap();
    }
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let pending: Vec<u64> = store.read(None, 100).unwrap().iter().map(|r| r.0).collect();
    assert_eq!(pending, [2, 3], "dead records are not replayed");
    let dead = store.read_dead(None, 100).unwrap();
    assert_eq!(dead.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 4]);
    assert_eq!(dead[0].1, b"record 1");
    assert_eq!(store.count().unwrap(), StoreCount::new(2, 2));
    assert_eq!(store.last_key().unwrap(), Some(4));
    let stats = store.stats().unwrap();
    assert_eq!(
        (stats.pending, stats.dead, stats.oldest_key),
        (2, 2, Some(2))
    );
    assert_eq!(stats.bytes, 4 * b"record 1".len() as u64);
    assert!(stats.oldest_written.is_some());
    // A delete drops a dead record too (the caller's discard of one).
    store
        .write(
            &WriteBatch {
                deletes: vec![4],
                ..WriteBatch::default()
            },
            true,
        )
        .unwrap();
    assert_eq!(store.discard(Discard::Dead).unwrap(), StoreCount::new(0, 1));
    assert_eq!(store.count().unwrap(), StoreCount::new(2, 0));
    assert_eq!(store.discard(Discard::All).unwrap(), StoreCount::new(2, 0));
    assert_eq!(store.count().unwrap(), StoreCount::new(0, 0));
    assert_eq!(store.last_key().unwrap(), Some(4), "keys never go back");
}

#[test]
fn an_outbox_belongs_to_one_session_unless_rebound() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(store.session().unwrap(), None);
    store.bind_session("http://127.0.0.1:1/a", false).unwrap();
    store.bind_session("http://127.0.0.1:1/a", false).unwrap();
    match store.bind_session("http://127.0.0.1:1/b", false) {
        Err(StoreError::OtherSession {
            stored, requested, ..
        }) => {
            assert_eq!(stored, "http://127.0.0.1:1/a");
            assert_eq!(requested, "http://127.0.0.1:1/b");
        }
        other => panic!("{other:?}"),
    }
    store.bind_session("http://127.0.0.1:1/b", true).unwrap();
    drop(store);
    let mut store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(
        store.session().unwrap().as_deref(),
        Some("http://127.0.0.1:1/b")
    );
}

#[test]
fn a_second_opener_is_refused_while_the_first_holds_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = SqliteStore::open(dir.path()).unwrap();
    first.write(&puts(0..3), true).unwrap();
    match SqliteStore::open(dir.path()) {
        Err(StoreError::Locked { path }) => assert!(!path.is_empty()),
        other => panic!("{other:?}"),
    }
    drop(first);
    let mut again = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(again.read(None, 10).unwrap().len(), 3);
}

#[test]
fn an_outbox_file_truncated_to_nothing_is_corrupt_not_a_fresh_start() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = SqliteStore::open(dir.path()).unwrap();
        store.write(&puts(0..100), true).unwrap();
    }
    // A new outbox is never an empty file, even before its first write.
    let fresh = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(fresh.path()).unwrap());
    assert!(fs::metadata(fresh.path().join(FILE_NAME)).unwrap().len() > 0);
    assert_eq!(
        fs::read_dir(fresh.path()).unwrap().count(),
        1,
        "no temporary file left"
    );
    // Opened empty, it would start over and lose the 100 records without a word.
    let path = dir.path().join(FILE_NAME);
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    match SqliteStore::open(dir.path()) {
        Err(StoreError::Corrupt { message }) => assert!(message.contains("empty"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        0,
        "left as it was found"
    );
}
