//! Reads: on a pool of read connections, or inline for a few point reads.

use super::*;

impl SqliteStore {
    pub(super) fn with_reader<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match conn {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    &self.db_path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                c.busy_timeout(std::time::Duration::from_secs(10))?;
                c
            }
        };
        let out = f(&conn);
        let mut pool = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < READERS_IDLE_MAX {
            pool.push(conn);
        }
        out
    }

    /// SQLite's own check of the file (`PRAGMA quick_check`): `ok`, or what is wrong.
    pub fn quick_check(&self) -> Result<Vec<String>, StoreError> {
        self.with_reader(|c| {
            let mut st = c.prepare("PRAGMA quick_check")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// Copies the whole store (events, data keys, API keys) into a new file at `out`, with
    /// SQLite's online backup: one consistent copy, taken beside a running server.
    pub fn backup_to(&self, out: &std::path::Path) -> Result<(), StoreError> {
        self.with_reader(|c| {
            let mut dst = rusqlite::Connection::open(out)?;
            let backup = rusqlite::backup::Backup::new(c, &mut dst)?;
            // Every page in one step: one read transaction, so one consistent state.
            match backup.step(-1)? {
                rusqlite::backup::StepResult::Done => Ok(()),
                other => Err(StoreError::Io(format!(
                    "the backup did not complete in one step ({other:?}); try again"
                ))),
            }
        })
    }

    /// Synchronous read of the global log (used by export and by the async API).
    pub fn read_all_blocking(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let until = self.shared.last.load(Ordering::Acquire);
        let events = self.select_events(
            "WHERE position > ?1 AND position <= ?2 ORDER BY position LIMIT ?3",
            params![after as i64, until as i64, limit as i64],
            limit,
        )?;
        let mut expected = after;
        for e in &events {
            check_contiguous(&mut expected, e.position)?;
        }
        if events.len() < limit && expected < until {
            return Err(gap_after(expected));
        }
        Ok(events)
    }

    /// The events `{SELECT_EVENT} {rest}` selects, in its order (at most `limit`).
    pub(super) fn select_events(
        &self,
        rest: &str,
        params: impl rusqlite::Params,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.with_reader(|c| {
            let mut stmt = c.prepare_cached(&format!("{SELECT_EVENT} {rest}"))?;
            let rows = stmt.query_map(params, row_to_event)?;
            let mut out = Vec::with_capacity(limit.min(4096));
            for r in rows {
                out.push(r??);
            }
            Ok(out)
        })
    }

    /// Calls `f` on every event after `after`, in order, reading in one pass (fast export).
    pub fn for_each_blocking(
        &self,
        after: u64,
        until: u64,
        mut f: impl FnMut(StoredEvent) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let until = until.min(self.shared.last.load(Ordering::Acquire));
        self.with_reader(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "{SELECT_EVENT} WHERE position > ?1 AND position <= ?2 ORDER BY position"
            ))?;
            let rows = stmt.query_map(params![after as i64, until as i64], row_to_event)?;
            let mut expected = after;
            for r in rows {
                let event = r??;
                check_contiguous(&mut expected, event.position)?;
                f(event)?;
            }
            if expected < until {
                return Err(gap_after(expected));
            }
            Ok(())
        })
    }

    /// Like [`SqliteStore::for_each_blocking`], but hands out rows borrowed from SQLite's
    /// buffers, so a caller that only copies bytes (an export) allocates nothing per event.
    pub fn for_each_raw_blocking(
        &self,
        after: u64,
        until: u64,
        mut f: impl FnMut(&RawRow<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let until = until.min(self.shared.last.load(Ordering::Acquire));
        self.with_reader(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "{SELECT_EVENT} WHERE position > ?1 AND position <= ?2 ORDER BY position"
            ))?;
            let mut rows = stmt.query(params![after as i64, until as i64])?;
            let mut expected = after;
            while let Some(row) = rows.next()? {
                let text = |i: usize| -> Result<&str, StoreError> {
                    row.get_ref(i)?
                        .as_str()
                        .map_err(|e| StoreError::Format(e.to_string()))
                };
                let blob = |i: usize| -> Result<Option<&[u8]>, StoreError> {
                    row.get_ref(i)?
                        .as_blob_or_null()
                        .map_err(|e| StoreError::Format(e.to_string()))
                };
                let raw = RawRow {
                    row,
                    position: row.get::<_, i64>(0)? as u64,
                    stream_version: row.get::<_, i64>(1)? as u64,
                    recorded_at: text(2)?,
                    id: blob(3)?.unwrap_or_default(),
                    stream: text(4)?,
                    event_type: text(5)?,
                    version: row.get(6)?,
                    customer: text(7)?,
                    occurred_at: text(8)?,
                    data: text(9)?,
                    metadata: row
                        .get_ref(10)?
                        .as_str_or_null()
                        .map_err(|e| StoreError::Format(e.to_string()))?,
                    sealed: blob(11)?,
                    key_gen: row.get(12)?,
                };
                check_contiguous(&mut expected, raw.position)?;
                f(&raw)?;
            }
            if expected < until {
                return Err(gap_after(expected));
            }
            Ok(())
        })
    }

    pub fn read_stream_blocking(
        &self,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let positions: Vec<u64> = {
            let idx = self.index()?;
            match idx.streams.get(stream) {
                Some(p) => p.iter().skip(from_version as usize).take(limit).collect(),
                None => return Ok(Vec::new()),
            }
        };
        self.read_positions(&positions)
    }

    /// The events at `positions`, each of which must hold one, in the order given.
    pub(super) fn read_positions(&self, positions: &[u64]) -> Result<Vec<StoredEvent>, StoreError> {
        self.with_reader(|c| {
            let mut stmt = c.prepare_cached(&format!("{SELECT_EVENT} WHERE position = ?1"))?;
            let mut out = Vec::with_capacity(positions.len());
            for &p in positions {
                out.push(stmt.query_row([p as i64], row_to_event)??);
            }
            Ok(out)
        })
    }

    /// The events at `positions` that exist, in the order given (one primary-key read each).
    pub fn read_at_blocking(&self, positions: &[u64]) -> Result<Vec<StoredEvent>, StoreError> {
        let until = self.shared.last.load(Ordering::Acquire);
        let held: Vec<u64> = positions
            .iter()
            .copied()
            .filter(|&p| p >= 1 && p <= until)
            .collect();
        self.read_positions(&held)
    }

    /// The stream's last version, if it has events.
    pub fn stream_version_now(&self, stream: &str) -> Option<u64> {
        let idx = match self.index() {
            Ok(idx) => idx,
            Err(e) => {
                // Only a read-only store builds its index here; its reads in order report
                // the same damage as errors.
                tracing::error!(error = %e, "the store's index could not be built");
                return None;
            }
        };
        idx.streams.get(stream).map(|p| p.len() as u64 - 1)
    }
}
