//! What `tether outbox` needs beyond the driver's [`Store`](tether_driver::Store): a look
//! inside (counts, bytes, the oldest record, the session), the caller's deliberate discard,
//! and the session the outbox belongs to.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{OptionalExtension, params};
use tether_driver::{StoreCount, StoreError};

use crate::{SqliteStore, read_error, write_error};

/// The two tables of event records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Table {
    /// Pending: replayed by the next run.
    Events,
    /// Marked dead: kept until discarded.
    Dead,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Events => "events",
            Table::Dead => "dead",
        }
    }
}

/// A look inside an outbox.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutboxStats {
    /// Event records the next run sends first.
    pub pending: u64,
    /// Event records the server refused for good, kept until discarded.
    pub dead: u64,
    /// Bytes of event records, pending and dead.
    pub bytes: u64,
    /// The oldest pending record's key.
    pub oldest_key: Option<u64>,
    /// When the oldest pending record was written, if the outbox recorded it.
    pub oldest_written: Option<SystemTime>,
    /// Whether unacknowledged state patches are kept.
    pub state: bool,
    /// The session the outbox belongs to, once bound.
    pub session: Option<String>,
}

/// What [`SqliteStore::discard`] drops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Discard {
    /// The records marked dead.
    Dead,
    /// Everything: pending and dead records, the kept state and the kept thread edits.
    All,
}

impl SqliteStore {
    /// Records of `table` above `after`, by key.
    pub(crate) fn read_table(
        &mut self,
        table: Table,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let after = after.map_or(-1, |a| i64::try_from(a).unwrap_or(i64::MAX));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = format!(
            "SELECT k, v FROM {} WHERE k > ?1 ORDER BY k LIMIT ?2",
            table.name()
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(read_error)?;
        let rows = stmt
            .query_map(params![after, limit], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
            })
            .map_err(read_error)?;
        let mut out = Vec::new();
        for row in rows {
            let (key, record) = row.map_err(read_error)?;
            let key = u64::try_from(key).map_err(|_| StoreError::Corrupt {
                message: format!("a negative key {key}"),
            })?;
            out.push((key, record));
        }
        Ok(out)
    }

    /// Counts, bytes, the oldest pending record and the session.
    ///
    /// # Errors
    /// [`StoreError::Read`] or [`StoreError::Corrupt`].
    pub fn stats(&mut self) -> Result<OutboxStats, StoreError> {
        let count = |table: Table| -> Result<(u64, u64), StoreError> {
            let sql = format!(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(v)), 0) FROM {}",
                table.name()
            );
            let (n, bytes): (i64, i64) = self
                .conn
                .query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(read_error)?;
            Ok((
                u64::try_from(n).unwrap_or(0),
                u64::try_from(bytes).unwrap_or(0),
            ))
        };
        let (pending, pending_bytes) = count(Table::Events)?;
        let (dead, dead_bytes) = count(Table::Dead)?;
        let oldest: Option<(i64, Option<i64>)> = self
            .conn
            .query_row("SELECT k, at FROM events ORDER BY k LIMIT 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(read_error)?;
        let state: Option<Vec<u8>> = self.meta("state")?;
        let state = state.is_some_and(|s| !s.is_empty() && s.as_slice() != b"[]");
        Ok(OutboxStats {
            pending,
            dead,
            bytes: pending_bytes + dead_bytes,
            oldest_key: oldest.and_then(|(k, _)| u64::try_from(k).ok()),
            oldest_written: oldest
                .and_then(|(_, at)| at)
                .and_then(|ms| u64::try_from(ms).ok())
                .map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
            state,
            session: self.session()?,
        })
    }

    /// Drops what `what` names, durably, on the caller's word: the only way besides delivery
    /// that an accepted event leaves the outbox. Returns what was dropped.
    ///
    /// # Errors
    /// [`StoreError::Write`]; then nothing was dropped.
    pub fn discard(&mut self, what: Discard) -> Result<StoreCount, StoreError> {
        self.set_synchronous(true)?;
        let tx = self.conn.transaction().map_err(write_error)?;
        let dead = tx.execute("DELETE FROM dead", []).map_err(write_error)?;
        let pending = match what {
            Discard::Dead => 0,
            Discard::All => {
                tx.execute("DELETE FROM meta WHERE name IN ('state', 'threads')", [])
                    .map_err(write_error)?;
                tx.execute("DELETE FROM events", []).map_err(write_error)?
            }
        };
        tx.commit().map_err(write_error)?;
        Ok(StoreCount::new(pending as u64, dead as u64))
    }

    /// The session the outbox belongs to, once bound.
    ///
    /// # Errors
    /// [`StoreError::Read`] or [`StoreError::Corrupt`].
    pub fn session(&mut self) -> Result<Option<String>, StoreError> {
        Ok(self
            .meta("session")?
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// Binds the outbox to `session` (its URL): an outbox belongs to one session, so its
    /// records never go to another. The first bind records it; a later one for another session
    /// is refused unless `rebind`.
    ///
    /// # Errors
    /// [`StoreError::OtherSession`] when it belongs to another session and `rebind` is false;
    /// [`StoreError::Write`] when the binding cannot be written.
    pub fn bind_session(&mut self, session: &str, rebind: bool) -> Result<(), StoreError> {
        match self.session()? {
            Some(stored) if stored == session => return Ok(()),
            Some(stored) if !rebind => {
                return Err(StoreError::OtherSession {
                    path: self.path.display().to_string(),
                    stored,
                    requested: session.to_owned(),
                });
            }
            _ => {}
        }
        self.set_synchronous(true)?;
        self.conn
            .execute(
                "INSERT OR REPLACE INTO meta (name, v) VALUES ('session', ?1)",
                params![session.as_bytes()],
            )
            .map_err(write_error)?;
        Ok(())
    }

    fn meta(&mut self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn
            .query_row("SELECT v FROM meta WHERE name = ?1", [name], |r| r.get(0))
            .optional()
            .map_err(read_error)
    }
}
