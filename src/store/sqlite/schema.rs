//! The table layout, the connection's pragmas, and rows to events and back.

use super::*;

/// Opens a connection with Rapport's pragmas and makes sure the schema exists.
pub fn connect(db_path: &Path, durable: bool) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        db_path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", if durable { "FULL" } else { "OFF" })?;
    // Freed pages are zeroed, so a destroyed data key does not linger in the file.
    conn.pragma_update(None, "secure_delete", "ON")?;
    conn.pragma_update(None, "cache_size", -(PAGE_CACHE_KIB as i64))?;
    conn.execute_batch(SCHEMA)?;
    let format: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'format_version'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    match format.as_deref().map(str::parse::<u32>) {
        None => {
            conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('format_version', ?1)", [FORMAT_VERSION.to_string()])?;
        }
        Some(Ok(v)) if v <= FORMAT_VERSION => {}
        Some(_) => {
            return Err(StoreError::Format(format!(
                "{} was written by a newer Rapport (format {format:?}; this one reads up to {FORMAT_VERSION})",
                db_path.display()
            )))
        }
    }
    Ok(conn)
}

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    position       INTEGER PRIMARY KEY,  -- global, gapless, from 1
    id             BLOB NOT NULL,        -- 16-byte UUID; unique (enforced by the in-memory index)
    stream         TEXT NOT NULL,
    stream_version INTEGER NOT NULL,     -- from 0; (stream, stream_version) unique (in-memory index)
    type           TEXT NOT NULL,
    version        INTEGER NOT NULL,
    customer       TEXT NOT NULL,
    occurred_at    TEXT NOT NULL,        -- RFC 3339, UTC
    recorded_at    TEXT NOT NULL,        -- RFC 3339, UTC
    data           TEXT NOT NULL,        -- canonical JSON without personal fields
    metadata       TEXT,                 -- JSON object or NULL
    sealed         BLOB,                 -- AES-256-GCM nonce || ciphertext || tag of the personal fields
    key_gen        INTEGER,              -- generation of the customer's data key that sealed them
    digest         BLOB NOT NULL         -- 16-byte content digest for idempotent retries
);
-- Append-only like `events`: (customer, generation) is unique, enforced by the writer's
-- in-memory map (a unique index here would make every new customer a random B-tree insert).
CREATE TABLE IF NOT EXISTS data_keys (
    key_row       INTEGER PRIMARY KEY,
    customer      TEXT NOT NULL,
    generation    INTEGER NOT NULL,
    wrapped       BLOB,                  -- nonce || ciphertext under the master key; NULL once destroyed
    master_key_id TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    destroyed_at  TEXT
);
";

pub(super) fn time_text(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

pub(super) fn parse_time(s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Format(format!("bad timestamp {s:?}: {e}")))
}

/// One stored row, borrowed from SQLite's buffers (see [`SqliteStore::for_each_raw_blocking`]).
pub struct RawRow<'a> {
    pub(super) row: &'a rusqlite::Row<'a>,
    pub position: u64,
    pub stream_version: u64,
    pub recorded_at: &'a str,
    pub id: &'a [u8],
    pub stream: &'a str,
    pub event_type: &'a str,
    pub version: u16,
    pub customer: &'a str,
    pub occurred_at: &'a str,
    pub data: &'a str,
    pub metadata: Option<&'a str>,
    pub sealed: Option<&'a [u8]>,
    pub key_gen: Option<u32>,
}

impl RawRow<'_> {
    /// The owned, checked form.
    pub fn stored(&self) -> Result<StoredEvent, StoreError> {
        row_to_event(self.row)?
    }
}

pub(super) const SELECT_EVENT: &str =
    "SELECT position, stream_version, recorded_at, id, stream, type, version, customer, occurred_at, data, metadata, sealed, key_gen, digest FROM events";

pub(super) fn row_to_event(
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<Result<StoredEvent, StoreError>> {
    let position: i64 = r.get(0)?;
    let id: Vec<u8> = r.get(3)?;
    let ty: String = r.get(5)?;
    let sealed: Option<Vec<u8>> = r.get(11)?;
    let key_gen: Option<u32> = r.get(12)?;
    let digest: Vec<u8> = r.get(13)?;
    let recorded_at: String = r.get(2)?;
    let occurred_at: String = r.get(8)?;
    let build = || -> Result<StoredEvent, StoreError> {
        let bad = |what: &str| StoreError::Integrity {
            position: position as u64,
            what: what.to_owned(),
        };
        let id = Uuid::from_slice(&id).map_err(|_| bad("the id is not 16 bytes"))?;
        let event_type = EventType::parse(&ty).ok_or_else(|| bad("unknown event type"))?;
        let digest: [u8; 16] = digest
            .as_slice()
            .try_into()
            .map_err(|_| bad("the digest is not 16 bytes"))?;
        Ok(StoredEvent {
            position: position as u64,
            stream_version: r.get::<_, i64>(1).map_err(StoreError::from)? as u64,
            recorded_at: parse_time(&recorded_at)?,
            event: SealedEvent {
                id,
                stream: r.get(4).map_err(StoreError::from)?,
                event_type,
                version: r.get(6).map_err(StoreError::from)?,
                customer: r.get(7).map_err(StoreError::from)?,
                occurred_at: parse_time(&occurred_at)?,
                data: r.get(9).map_err(StoreError::from)?,
                metadata: r.get(10).map_err(StoreError::from)?,
                sealed: match (sealed, key_gen) {
                    (Some(s), Some(g)) => Some((s, g)),
                    (None, None) => None,
                    _ => return Err(bad("sealed data without a key generation")),
                },
                digest,
            },
        })
    };
    Ok(build())
}

/// The next position a read in order must see is `expected + 1`.
pub(super) fn check_contiguous(expected: &mut u64, position: u64) -> Result<(), StoreError> {
    if position != *expected + 1 {
        return Err(gap_after(*expected));
    }
    *expected = position;
    Ok(())
}

pub(super) fn gap_after(position: u64) -> StoreError {
    StoreError::Integrity {
        position: position + 1,
        what: format!("the log has a gap after position {position}"),
    }
}

/// The `recorded_at` of the last event, or the epoch.
pub(super) fn last_recorded(conn: &Connection) -> DateTime<Utc> {
    conn.query_row(
        "SELECT recorded_at FROM events ORDER BY position DESC LIMIT 1",
        [],
        |r| r.get::<_, String>(0),
    )
    .ok()
    .and_then(|s| parse_time(&s).ok())
    .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}
