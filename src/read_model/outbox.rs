//! The durable outbox: the changes of the read model's feeds (alerts, segment
//! membership, lifecycles) that a durable consumer (the Kafka outbox, a webhook
//! subscription) has not yet delivered, kept in `<data-dir>/outbox.sqlite`, so that no
//! backlog ever makes a consumer skip a change.
//!
//! The feeds keep their latest 100,000 changes in memory. While a consumer is registered
//! here (its *floor*: the last change it delivered, per feed), the read model holds every
//! change after the floor in memory until it is written here, which happens after every
//! applied batch and before any snapshot of that state is written. So what a snapshot
//! knows was written here first, and a restart (or the catch-up child, which writes here
//! too) finds every change after every floor either here or in the feed it reloads.
//! Consumers read from the feed while it still holds what they need, and from here when
//! they are further behind. Rows at or below every floor are deleted.
//!
//! Floors are kept in memory and written here now and then: a floor on disk may be
//! behind the consumer's own cursor, which only keeps more rows.

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{Arc, Mutex},
};

use rapport_projections::feed::{Feed, FeedItem};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// How long a write waits for another process's (the catch-up child's) write.
const BUSY_TIMEOUT_MS: u64 = 10_000;

/// The read model's feeds, numbered as they are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FeedName {
    Alerts = 0,
    Segments = 1,
    Lifecycles = 2,
}

impl FeedName {
    pub const ALL: [FeedName; 3] = [FeedName::Alerts, FeedName::Segments, FeedName::Lifecycles];

    pub fn as_str(self) -> &'static str {
        match self {
            FeedName::Alerts => "alerts",
            FeedName::Segments => "segments",
            FeedName::Lifecycles => "lifecycles",
        }
    }
}

/// How far a consumer has delivered, per feed (the feeds' `seq`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub alerts: u64,
    pub segments: u64,
    pub lifecycles: u64,
}

impl Cursor {
    pub fn get(&self, feed: FeedName) -> u64 {
        match feed {
            FeedName::Alerts => self.alerts,
            FeedName::Segments => self.segments,
            FeedName::Lifecycles => self.lifecycles,
        }
    }

    pub fn set(&mut self, feed: FeedName, seq: u64) {
        match feed {
            FeedName::Alerts => self.alerts = seq,
            FeedName::Segments => self.segments = seq,
            FeedName::Lifecycles => self.lifecycles = seq,
        }
    }
}

/// One change on its way to the outbox: feed, seq, causing position, JSON.
pub(super) type Row = (FeedName, u64, u64, String);

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("outbox file: {0}")]
    File(std::io::Error),
    #[error("outbox row {feed} {seq} cannot be read: {error}")]
    Decode {
        feed: &'static str,
        seq: u64,
        error: serde_json::Error,
    },
}

pub struct Outbox {
    db: Mutex<Connection>,
    floors: Mutex<BTreeMap<String, Cursor>>,
}

impl Outbox {
    /// Opens (or creates) the outbox at `path`, with the floors it last wrote.
    pub fn open(path: &Path) -> Result<Arc<Outbox>, OutboxError> {
        // Customer ids and alert evidence: readable by this user only (SQLite gives its
        // journal files the database's mode).
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(OutboxError::File)?;
        }
        let db = Connection::open(path)?;
        // Every commit is synced: a snapshot may rely on what was written here.
        // The catch-up child writes here while the server reads.
        db.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))?;
        db.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
             CREATE TABLE IF NOT EXISTS changes (
                 feed INTEGER NOT NULL, seq INTEGER NOT NULL, position INTEGER NOT NULL,
                 body TEXT NOT NULL, PRIMARY KEY (feed, seq)) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS floors (
                 consumer TEXT PRIMARY KEY, alerts INTEGER NOT NULL,
                 segments INTEGER NOT NULL, lifecycles INTEGER NOT NULL);",
        )?;
        let floors = {
            let mut q = db.prepare("SELECT consumer, alerts, segments, lifecycles FROM floors")?;
            let rows = q.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    Cursor {
                        alerts: r.get::<_, i64>(1)? as u64,
                        segments: r.get::<_, i64>(2)? as u64,
                        lifecycles: r.get::<_, i64>(3)? as u64,
                    },
                ))
            })?;
            rows.collect::<Result<BTreeMap<_, _>, _>>()?
        };
        Ok(Arc::new(Outbox {
            db: Mutex::new(db),
            floors: Mutex::new(floors),
        }))
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn floors(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Cursor>> {
        self.floors.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers or moves `consumer`'s floor. A new consumer must be registered while
    /// the read model's state is locked for writing, with the feeds' ends it starts from
    /// (see `ReadModel::register`), so that no change it needs is let go meanwhile.
    pub fn set_floor(&self, consumer: &str, cursor: Cursor) {
        self.floors().insert(consumer.to_owned(), cursor);
    }

    /// Forgets `consumer` (a deleted subscription).
    pub fn remove_floor(&self, consumer: &str) -> Result<(), OutboxError> {
        self.floors().remove(consumer);
        self.db()
            .execute("DELETE FROM floors WHERE consumer = ?1", [consumer])?;
        Ok(())
    }

    /// The lowest floor of `feed`: the changes after it must be kept; `None` when no
    /// consumer is registered.
    pub fn floor(&self, feed: FeedName) -> Option<u64> {
        self.floors().values().map(|c| c.get(feed)).min()
    }

    /// The last change of `feed` written here (0 when none).
    pub fn last(&self, feed: FeedName) -> Result<u64, OutboxError> {
        let last: Option<i64> = self.db().query_row(
            "SELECT max(seq) FROM changes WHERE feed = ?1",
            [feed as i64],
            |r| r.get(0),
        )?;
        Ok(last.unwrap_or(0) as u64)
    }

    /// Writes `rows` in one synced transaction (a change written before is written again
    /// unchanged: a refold makes the same changes).
    pub(super) fn write(&self, rows: &[Row]) -> Result<(), OutboxError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        {
            let mut q = tx.prepare_cached(
                "INSERT OR REPLACE INTO changes (feed, seq, position, body) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (feed, seq, position, body) in rows {
                q.execute(params![*feed as i64, *seq as i64, *position as i64, body])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Changes of `feed` after `after`, at most `limit`, in order; `Err(oldest)` when the
    /// next one is not here (`oldest` the first after it that is, if any).
    pub fn read<T: DeserializeOwned>(
        &self,
        feed: FeedName,
        after: u64,
        limit: usize,
    ) -> Result<Result<Vec<T>, Option<u64>>, OutboxError> {
        let db = self.db();
        let mut q = db.prepare_cached(
            "SELECT seq, body FROM changes WHERE feed = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut rows = q.query(params![
            feed as i64,
            after.min(i64::MAX as u64) as i64,
            limit
        ])?;
        let mut out = Vec::new();
        let mut expect = after.saturating_add(1);
        while let Some(r) = rows.next()? {
            let seq = r.get::<_, i64>(0)? as u64;
            if seq != expect {
                return Ok(Err(Some(seq)));
            }
            let body: String = r.get(1)?;
            out.push(
                serde_json::from_str(&body).map_err(|error| OutboxError::Decode {
                    feed: feed.as_str(),
                    seq,
                    error,
                })?,
            );
            expect += 1;
        }
        if out.is_empty() {
            return Ok(Err(None));
        }
        Ok(Ok(out))
    }

    /// The last change of `feed` caused at or before log position `position`, among
    /// those kept here; `None` when the first kept one came after it.
    pub fn last_at_or_before(
        &self,
        feed: FeedName,
        position: u64,
    ) -> Result<Option<u64>, OutboxError> {
        let db = self.db();
        let first: Option<(i64, i64)> = db
            .query_row(
                "SELECT seq, position FROM changes WHERE feed = ?1 ORDER BY seq LIMIT 1",
                [feed as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((first_seq, first_position)) = first else {
            return Ok(None);
        };
        if first_position as u64 > position {
            return Ok((first_seq == 1).then_some(0));
        }
        let seq: Option<i64> = db.query_row(
            "SELECT max(seq) FROM changes WHERE feed = ?1 AND position <= ?2",
            params![feed as i64, position.min(i64::MAX as u64) as i64],
            |r| r.get(0),
        )?;
        Ok(seq.map(|s| s as u64))
    }

    /// Deletes what every consumer has delivered (everything, when none is registered)
    /// and writes the floors.
    pub fn trim(&self) -> Result<(), OutboxError> {
        let floors = self.floors().clone();
        let mut db = self.db();
        let tx = db.transaction()?;
        for feed in FeedName::ALL {
            let floor = floors
                .values()
                .map(|c| c.get(feed))
                .min()
                .unwrap_or(u64::MAX);
            tx.execute(
                "DELETE FROM changes WHERE feed = ?1 AND seq <= ?2",
                params![feed as i64, floor.min(i64::MAX as u64) as i64],
            )?;
        }
        tx.execute("DELETE FROM floors", [])?;
        for (consumer, c) in &floors {
            tx.execute(
                "INSERT INTO floors (consumer, alerts, segments, lifecycles) VALUES (?1, ?2, ?3, ?4)",
                params![consumer, c.alerts as i64, c.segments as i64, c.lifecycles as i64],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// The held changes of `feed` that the outbox needs (after its floor), as rows, and the
/// last seq they cover; nothing when no consumer is registered.
pub(super) fn held_rows<T: FeedItem + Serialize>(
    outbox: &Outbox,
    name: FeedName,
    feed: &Feed<T>,
    rows: &mut Vec<Row>,
) -> u64 {
    let Some(floor) = outbox.floor(name) else {
        return feed.last_seq();
    };
    // A hold that began after changes were dropped (see `ReadModel::hold`) starts at
    // the oldest kept.
    let held = feed
        .held()
        .or_else(|oldest| feed.after(oldest - 1, usize::MAX))
        .unwrap_or_default();
    for c in held.into_iter().filter(|c| c.seq() > floor) {
        match serde_json::to_string(c) {
            Ok(body) => rows.push((name, c.seq(), c.position(), body)),
            // A change that cannot be written stays held (and is tried again).
            Err(_) => return c.seq() - 1,
        }
    }
    feed.last_seq()
}
