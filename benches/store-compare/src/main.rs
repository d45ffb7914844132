//! redb against SQLite (WAL) on the outbox's workload: each commit appends a batch of
//! 120-byte records and deletes the batch before it (delivered), synced (redb
//! `Durability::Immediate`, SQLite `synchronous=FULL`). Prints events/s, ms per commit and the
//! files' size at the end, for batches of 1, 64 and 512.
use redb::{Database, Durability, TableDefinition};
use std::time::Instant;
const T: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");

fn main() {
    let dir = std::env::args().nth(1).unwrap();
    let item = vec![b'x'; 120];
    for &(batch, total) in &[(1usize, 2000usize), (64, 50_000), (512, 200_000)] {
        // redb
        let p = format!("{dir}/r.redb");
        let _ = std::fs::remove_file(&p);
        let db = Database::create(&p).unwrap();
        let t = Instant::now();
        let mut k = 0u64;
        let mut del = 0u64;
        while (k as usize) < total {
            let mut tx = db.begin_write().unwrap();
            tx.set_durability(Durability::Immediate).unwrap();
            {
                let mut tab = tx.open_table(T).unwrap();
                for _ in 0..batch {
                    tab.insert(k, item.as_slice()).unwrap();
                    k += 1;
                }
                // delete the previous batch (delivered)
                while del + (batch as u64) < k {
                    tab.remove(del).unwrap();
                    del += 1;
                }
            }
            tx.commit().unwrap();
        }
        let e = t.elapsed();
        let size = std::fs::metadata(&p).unwrap().len();
        println!(
            "redb   batch {batch:4}: {:8.0} events/s, {:7.3} ms/commit, file {} KiB",
            total as f64 / e.as_secs_f64(),
            e.as_secs_f64() * 1000.0 / (total / batch) as f64,
            size / 1024
        );
        drop(db);
        let _ = std::fs::remove_file(&p);
        // sqlite
        let p = format!("{dir}/s.db");
        for s in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{p}{s}"));
        }
        let mut c = rusqlite::Connection::open(&p).unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        c.pragma_update(None, "synchronous", "FULL").unwrap();
        c.execute(
            "CREATE TABLE outbox (k INTEGER PRIMARY KEY, v BLOB NOT NULL)",
            [],
        )
        .unwrap();
        let t = Instant::now();
        let mut k = 0i64;
        let mut del = 0i64;
        while (k as usize) < total {
            let tx = c.transaction().unwrap();
            {
                let mut ins = tx
                    .prepare_cached("INSERT INTO outbox (k, v) VALUES (?1, ?2)")
                    .unwrap();
                for _ in 0..batch {
                    ins.execute(rusqlite::params![k, item]).unwrap();
                    k += 1;
                }
                let mut d = tx
                    .prepare_cached("DELETE FROM outbox WHERE k = ?1")
                    .unwrap();
                while del + (batch as i64) < k {
                    d.execute([del]).unwrap();
                    del += 1;
                }
            }
            tx.commit().unwrap();
        }
        let e = t.elapsed();
        let size = std::fs::metadata(&p).unwrap().len()
            + std::fs::metadata(format!("{p}-wal"))
                .map(|m| m.len())
                .unwrap_or(0);
        println!(
            "sqlite batch {batch:4}: {:8.0} events/s, {:7.3} ms/commit, files {} KiB",
            total as f64 / e.as_secs_f64(),
            e.as_secs_f64() * 1000.0 / (total / batch) as f64,
            size / 1024
        );
        drop(c);
        for s in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{p}{s}"));
        }
    }
}
