//! The embedded default store: one SQLite file (`<data-dir>/rapport.sqlite`, WAL mode,
//! `synchronous=FULL`), written by one writer thread that group-commits.
//!
//! Why this shape (measured on the reference machine, see `docs/ARCHITECTURE.md`):
//! a table with unique indexes on the event id and on (stream, version) ingests about
//! 100,000 events/s because every insert touches random B-tree pages. So the only index
//! written at append time is the primary key, `position` (append-only, sequential pages).
//! The id → position and stream → positions maps live in memory ([`Index`]) and are
//! rebuilt from the table when the store opens; the table stays the single source of truth.
//!
//! Concurrency: callers send jobs to the writer thread over a bounded channel. The writer
//! takes every job waiting (up to [`GROUP_COMMIT_EVENTS_MAX`]), checks each against the
//! index, writes them in one transaction and commits with one fsync, then answers each
//! caller. A job that breaks a rule (wrong expected version, conflicting id) fails alone;
//! an IO error fails the whole group and nothing of it is visible.

use std::{
    collections::HashMap,
    fs::File,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, RwLock,
    },
    time::Instant,
};

use chrono::{DateTime, SecondsFormat, Utc};
use hashbrown::HashTable;
use rapport_events::EventType;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use thin_vec::ThinVec;
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use crate::strmap::StrMap;

use super::{
    AppendRequest, Appended, EventStore, ExpectedVersion, SealedEvent, StoreError, StoredEvent,
    WrappedKey,
};

/// The on-disk format this code writes. A store with a higher number is refused.
pub const FORMAT_VERSION: u32 = 1;
/// Jobs that may wait for the writer; senders block (back-pressure) beyond this.
pub const WRITE_QUEUE_JOBS_MAX: usize = 4096;
/// Most events one group commit writes.
pub const GROUP_COMMIT_EVENTS_MAX: usize = 50_000;
/// SQLite's page cache per connection, KiB. Reads are sequential scans or lookups by
/// position (the operating system's file cache serves them as well) and appends go to the
/// end of the table, so a large cache bought nothing: 64 MB cost a serving process 46 MiB
/// of resident memory at 100,000 customers. 2 MB: with it and smaller name sets together
/// a restarted 1 M-customer server went from 1,049 to 998 MiB (not measured apart).
const PAGE_CACHE_KIB: u32 = 2_000;
/// Most positions [`EventStore::read_at`] reads on the async worker that calls it; more
/// are read under `block_in_place`.
const POINT_READS_INLINE_MAX: usize = 8;
/// Idle reader connections kept open.
const READERS_IDLE_MAX: usize = 8;

pub const DB_FILE: &str = "rapport.sqlite";
pub const LOCK_FILE: &str = "LOCK";

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
/// An event id as two words: a `u128` key is 16-byte aligned, which made every slot of the
/// id map 32 bytes instead of 24 (130 MB more at 10 M events).
type IdKey = (u64, u64);

/// Event id → position, in about 9 bytes an event: a 32-bit fingerprint of each event's
/// id, by position, and a lookup table of positions hashed by that fingerprint (a map of
/// 64-bit fingerprints to positions took 22 bytes an event at 10 M events; a map of ids,
/// 32). A fingerprint only says where an id *may* be: the caller reads the rows it names
/// and compares the ids, so an id is never missed nor confused with another. About one
/// absent id in 400 has a candidate to read at 10 M events. Positions past `u32::MAX` are
/// kept exactly.
#[derive(Default)]
struct IdIndex {
    /// `fingerprints[p - 1]` is the fingerprint of the id at position `p`.
    fingerprints: Vec<u32>,
    /// Positions, found by the hash of their fingerprint.
    table: HashTable<u32>,
    exact: FastMap<IdKey, u64>,
}

/// Where an id may be stored.
enum IdLookup {
    /// Stored at this position.
    At(u64),
    /// Stored at one of these positions if the row's id is this id; otherwise not stored.
    Candidates(Vec<u64>),
}

fn fingerprint(id: &Uuid) -> u32 {
    // Version-7 ids keep a timestamp in the high word; the low word is random.
    let (hi, lo) = id.as_u64_pair();
    ((hi ^ lo.rotate_left(29)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32
}

/// The table's hash of a fingerprint: spread over 64 bits (the table takes its bucket from
/// the low bits and a tag from the top seven).
fn fingerprint_hash(fp: u32) -> u64 {
    u64::from(fp).wrapping_mul(0xD6E8_FEB8_6659_FD93)
}

impl IdIndex {
    /// Adds an id that is not stored yet.
    fn insert(&mut self, id: &Uuid, position: u64) {
        match u32::try_from(position) {
            Ok(p) if p > 0 => {
                let fp = fingerprint(id);
                let i = p as usize - 1;
                if self.fingerprints.len() <= i {
                    self.fingerprints.resize(i + 1, 0);
                }
                self.fingerprints[i] = fp;
                let fps = &self.fingerprints;
                self.table.insert_unique(fingerprint_hash(fp), p, |&q| {
                    fingerprint_hash(fps[q as usize - 1])
                });
            }
            _ => {
                self.exact.insert(id.as_u64_pair(), position);
            }
        }
    }

    fn lookup(&self, id: &Uuid) -> IdLookup {
        if let Some(&p) = self.exact.get(&id.as_u64_pair()) {
            return IdLookup::At(p);
        }
        let fp = fingerprint(id);
        IdLookup::Candidates(
            self.table
                .iter_hash(fingerprint_hash(fp))
                .filter(|&&p| self.fingerprints[p as usize - 1] == fp)
                .map(|&p| u64::from(p))
                .collect(),
        )
    }

    fn reserve(&mut self, n: usize) {
        self.fingerprints.reserve(n);
        let fps = &self.fingerprints;
        self.table
            .reserve(n, |&q| fingerprint_hash(fps[q as usize - 1]));
    }
}

/// What lives in memory instead of secondary indexes.
#[derive(Default)]
struct Index {
    /// Event id → position.
    ids: IdIndex,
    /// Stream → positions, indexed by stream version. Stream names up to 24 bytes (every
    /// customer id seen so far) are held inline, with no allocation of their own.
    streams: StrMap<Positions>,
}

/// A stream's positions in version order: 4 bytes each while they fit in 32 bits (the
/// first 4 billion events), 8 after; a header of 16 bytes and nothing inline but a
/// pointer (a `Vec<u64>` was 24 bytes inline and 8 a position).
enum Positions {
    Narrow(ThinVec<u32>),
    Wide(ThinVec<u64>),
}

impl Default for Positions {
    fn default() -> Positions {
        Positions::Narrow(ThinVec::new())
    }
}

impl Positions {
    fn len(&self) -> usize {
        match self {
            Positions::Narrow(v) => v.len(),
            Positions::Wide(v) => v.len(),
        }
    }

    fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        let (narrow, wide) = match self {
            Positions::Narrow(v) => (&v[..], &[][..]),
            Positions::Wide(v) => (&[][..], &v[..]),
        };
        narrow
            .iter()
            .map(|&p| u64::from(p))
            .chain(wide.iter().copied())
    }

    fn push(&mut self, position: u64) {
        match self {
            Positions::Narrow(v) => match u32::try_from(position) {
                Ok(p) => v.push(p),
                Err(_) => {
                    let mut wide: ThinVec<u64> = v.iter().map(|&p| u64::from(p)).collect();
                    wide.push(position);
                    *self = Positions::Wide(wide);
                }
            },
            Positions::Wide(v) => v.push(position),
        }
    }

    fn shrink_to_fit(&mut self) {
        match self {
            Positions::Narrow(v) => v.shrink_to_fit(),
            Positions::Wide(v) => v.shrink_to_fit(),
        }
    }
}

/// Observability hooks the writer reports to; the service plugs its metrics in here.
pub trait WriterMetrics: Send + Sync {
    fn group_committed(&self, events: usize, jobs: usize, fsync_seconds: f64);
}

struct NoMetrics;
impl WriterMetrics for NoMetrics {
    fn group_committed(&self, _: usize, _: usize, _: f64) {}
}

struct Shared {
    index: RwLock<Index>,
    last: AtomicU64,
    notify: watch::Sender<u64>,
    /// The latest `recorded_at` written, so it never goes backwards (a wall clock that
    /// steps back does not reorder recording times; `known_at` relies on it).
    recorded: Mutex<DateTime<Utc>>,
}

impl Shared {
    fn recorded_now(&self) -> String {
        let mut last = self.recorded.lock().unwrap_or_else(|e| e.into_inner());
        *last = (*last).max(Utc::now());
        time_text(&last)
    }
}

/// The `recorded_at` of the last event, or the epoch.
fn last_recorded(conn: &Connection) -> DateTime<Utc> {
    conn.query_row(
        "SELECT recorded_at FROM events ORDER BY position DESC LIMIT 1",
        [],
        |r| r.get::<_, String>(0),
    )
    .ok()
    .and_then(|s| parse_time(&s).ok())
    .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

enum Job {
    Append(
        AppendRequest,
        oneshot::Sender<Result<Vec<Appended>, StoreError>>,
    ),
    /// Starts a bulk transaction: later appends are written into it and answered at once
    /// (not yet durable) until `BulkEnd`.
    BulkBegin(oneshot::Sender<Result<(), StoreError>>),
    /// Commits (`true`) or rolls back (`false`) the bulk transaction; answers the number of
    /// events written.
    BulkEnd(bool, oneshot::Sender<Result<u64, StoreError>>),
    Rewrap(
        Vec<WrappedKey>,
        String,
        oneshot::Sender<Result<(), StoreError>>,
    ),
    Purge(oneshot::Sender<Result<(), StoreError>>),
}

/// Options for opening the embedded store; every one is set at the call site.
#[derive(Clone)]
pub struct SqliteOptions {
    /// `true`: fsync on every commit (`synchronous=FULL`). Only benchmarks of the
    /// non-durable upper bound turn it off.
    pub durable: bool,
    pub metrics: Arc<dyn WriterMetrics>,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            durable: true,
            metrics: Arc::new(NoMetrics),
        }
    }
}

pub struct SqliteStore {
    db_path: PathBuf,
    jobs: Mutex<Option<crossbeam_channel::Sender<Job>>>,
    shared: Arc<Shared>,
    readers: Mutex<Vec<Connection>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Whether `shared.index` is still to be built: a read-only store builds it on first
    /// use ([`SqliteStore::index`]). Replay, export and report read the log in order and
    /// never need it; building it took 5 to 9 s of a replay of 10 M events.
    index_pending: AtomicBool,
    /// Held while a read-only store builds its index, so it is built once.
    index_building: Mutex<()>,
    /// Held for the store's lifetime so that a second writer cannot open it (`None` for a
    /// read-only store, which takes no lock).
    _lock: Option<File>,
}

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

const SCHEMA: &str = "
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
CREATE TABLE IF NOT EXISTS api_keys (
    id         TEXT PRIMARY KEY,
    role       TEXT NOT NULL,
    hash       BLOB NOT NULL,            -- SHA-256 of the secret part
    label      TEXT,
    created_at TEXT NOT NULL,
    revoked_at TEXT
) WITHOUT ROWID;
";

fn time_text(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Format(format!("bad timestamp {s:?}: {e}")))
}

/// One stored row, borrowed from SQLite's buffers (see [`SqliteStore::for_each_raw_blocking`]).
pub struct RawRow<'a> {
    row: &'a rusqlite::Row<'a>,
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

const SELECT_EVENT: &str =
    "SELECT position, stream_version, recorded_at, id, stream, type, version, customer, occurred_at, data, metadata, sealed, key_gen, digest FROM events";

fn row_to_event(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<StoredEvent, StoreError>> {
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

impl SqliteStore {
    /// Opens (or creates) the store in `dir`, taking an exclusive lock on it.
    pub fn open(dir: &Path, opts: SqliteOptions) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Io(format!("cannot create {}: {e}", dir.display())))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StoreError::Io(format!("cannot open {}: {e}", lock_path.display())))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked(dir.display().to_string()))
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StoreError::Io(format!(
                    "cannot lock {}: {e}",
                    lock_path.display()
                )))
            }
        }
        let db_path = dir.join(DB_FILE);
        let conn = connect(&db_path, opts.durable)?;
        let (index, last) = load_index(&conn, u64::MAX)?;
        drop_late_index(&conn)?;
        let (notify, _) = watch::channel(last);
        let shared = Arc::new(Shared {
            index: RwLock::new(index),
            last: AtomicU64::new(last),
            notify,
            recorded: Mutex::new(last_recorded(&conn)),
        });
        let (tx, rx) = crossbeam_channel::bounded(WRITE_QUEUE_JOBS_MAX);
        let writer_shared = shared.clone();
        let metrics = opts.metrics.clone();
        let writer = std::thread::Builder::new()
            .name("rapport-writer".into())
            .spawn(move || writer_loop(conn, rx, writer_shared, metrics))
            .map_err(|e| StoreError::Io(format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteStore {
            db_path,
            jobs: Mutex::new(Some(tx)),
            shared,
            readers: Mutex::new(Vec::new()),
            writer: Mutex::new(Some(writer)),
            index_pending: AtomicBool::new(false),
            index_building: Mutex::new(()),
            _lock: Some(lock),
        })
    }

    /// Opens an existing store for reading only, without the lock, so `export` and
    /// `report` work while a server is running. It sees the log as of opening; appends fail.
    pub fn open_read_only(dir: &Path) -> Result<SqliteStore, StoreError> {
        let db_path = dir.join(DB_FILE);
        if !db_path.exists() {
            return Err(StoreError::Io(format!("no store at {}", dir.display())));
        }
        let conn = Connection::open_with_flags(
            &db_path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // One read transaction, so `last` and `recorded` describe one moment. The
        // log's gaplessness is checked by every read in order (`check_contiguous`) and by
        // the index when it is built.
        conn.execute_batch("BEGIN")?;
        let last = conn.query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |r| {
            r.get::<_, i64>(0)
        })? as u64;
        let recorded = last_recorded(&conn);
        conn.execute_batch("COMMIT")?;
        let (notify, _) = watch::channel(last);
        let shared = Arc::new(Shared {
            index: RwLock::new(Index::default()),
            last: AtomicU64::new(last),
            notify,
            recorded: Mutex::new(recorded),
        });
        Ok(SqliteStore {
            db_path,
            jobs: Mutex::new(None),
            shared,
            readers: Mutex::new(vec![conn]),
            writer: Mutex::new(None),
            index_pending: AtomicBool::new(true),
            index_building: Mutex::new(()),
            _lock: None,
        })
    }

    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    /// The in-memory index (event ids, streams' positions), built first if this read-only
    /// store has not needed it yet. It covers the log up to `last`, as the store saw it
    /// when opened.
    fn index(&self) -> Result<std::sync::RwLockReadGuard<'_, Index>, StoreError> {
        if self.index_pending.load(Ordering::Acquire) {
            let _building = self
                .index_building
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if self.index_pending.load(Ordering::Acquire) {
                let last = self.shared.last.load(Ordering::Acquire);
                let (index, _) = self.with_reader(|c| load_index(c, last))?;
                *self.shared.index.write().unwrap_or_else(|e| e.into_inner()) = index;
                self.index_pending.store(false, Ordering::Release);
            }
        }
        Ok(self.shared.index.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Stops accepting writes, lets queued jobs finish, and joins the writer.
    pub fn close(&self) {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = h.join();
        }
    }

    /// The writer's queue, or `Closed` once the store is closing (or read-only).
    fn sender(&self) -> Result<crossbeam_channel::Sender<Job>, StoreError> {
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(StoreError::Closed)
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        self.sender()?.send(job).map_err(|_| StoreError::Closed)
    }

    /// Sends an append without waiting for it (imports keep several in flight).
    pub fn append_nowait(
        &self,
        req: AppendRequest,
    ) -> Result<oneshot::Receiver<Result<Vec<Appended>, StoreError>>, StoreError> {
        req.check()?;
        let (tx, rx) = oneshot::channel();
        self.send(Job::Append(req, tx))?;
        Ok(rx)
    }

    /// Starts a bulk transaction (for `rapport import`): appends sent until
    /// [`SqliteStore::bulk_end`] go into one transaction and are answered before they are
    /// durable. Blocking; call it outside async code.
    pub fn bulk_begin(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Job::BulkBegin(tx))?;
        rx.blocking_recv().map_err(|_| StoreError::Closed)?
    }

    /// Commits (durably, one fsync) or rolls back the bulk transaction; returns the number
    /// of events it wrote. Blocking.
    pub fn bulk_end(&self, commit: bool) -> Result<u64, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Job::BulkEnd(commit, tx))?;
        rx.blocking_recv().map_err(|_| StoreError::Closed)?
    }

    fn with_reader<T>(
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
    fn select_events(
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
    fn read_positions(&self, positions: &[u64]) -> Result<Vec<StoredEvent>, StoreError> {
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

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

/// Removes the late-event index an older Rapport kept (it served `valid_at` folds in
/// position order; business time now has builds of its own, see `valid_time`).
fn drop_late_index(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "DROP TABLE IF EXISTS late_events;
         DELETE FROM meta WHERE key IN ('late_index_through', 'occurred_watermark', 'late_index_rows', 'late_index_abandoned');",
    )?;
    Ok(())
}

/// The next position a read in order must see is `expected + 1`.
fn check_contiguous(expected: &mut u64, position: u64) -> Result<(), StoreError> {
    if position != *expected + 1 {
        return Err(gap_after(*expected));
    }
    *expected = position;
    Ok(())
}

fn gap_after(position: u64) -> StoreError {
    StoreError::Integrity {
        position: position + 1,
        what: format!("the log has a gap after position {position}"),
    }
}

/// Builds the index of the events up to `until`, checking that positions are gapless and
/// stream versions contiguous; returns it with the last position.
fn load_index(conn: &Connection, until: u64) -> Result<(Index, u64), StoreError> {
    let mut index = Index::default();
    let mut last = 0u64;
    let mut stmt = conn.prepare(
        "SELECT position, id, stream, stream_version FROM events WHERE position <= ?1 ORDER BY position",
    )?;
    let mut rows = stmt.query([until.min(i64::MAX as u64) as i64])?;
    while let Some(r) = rows.next()? {
        let position = r.get::<_, i64>(0)? as u64;
        let id: Vec<u8> = r.get(1)?;
        let stream: String = r.get(2)?;
        let version = r.get::<_, i64>(3)? as u64;
        check_contiguous(&mut last, position)?;
        let id = Uuid::from_slice(&id).map_err(|_| StoreError::Integrity {
            position,
            what: "the id is not 16 bytes".into(),
        })?;
        index.ids.insert(&id, position);
        let positions = index
            .streams
            .get_or_insert_with(&stream, Positions::default);
        if positions.len() as u64 != version {
            return Err(StoreError::Integrity {
                position,
                what: "stream versions are not contiguous".into(),
            });
        }
        positions.push(position);
    }
    // Loaded in one go: no room left for growth a stream may never need.
    for p in index.streams.values_mut() {
        p.shrink_to_fit();
    }
    index.streams.shrink_to_fit();
    Ok((index, last))
}

/// Which data keys are durable, and where: a 64-bit fingerprint of `(customer,
/// generation)` → `data_keys.key_row` (16 bytes a key; a map by customer id cost about
/// 100 bytes a customer). A hit is checked against the row it names; keys whose
/// fingerprints collide are found by a scan of the table (expected never: a million keys
/// collide with a probability of about 3 in 10^8).
struct KeyRows {
    rows: FastMap<u64, i64>,
    fingerprint: fn(&str, u32) -> u64,
}

impl Default for KeyRows {
    fn default() -> KeyRows {
        KeyRows {
            rows: FastMap::default(),
            fingerprint: key_fingerprint,
        }
    }
}

fn key_fingerprint(customer: &str, generation: u32) -> u64 {
    use std::hash::BuildHasher;
    foldhash::quality::FixedState::with_seed(0x6b65_7972_6f77).hash_one((customer, generation))
}

impl KeyRows {
    /// The row of `(customer, generation)`, if this map knows it. `conn` must see the rows
    /// the map names (the writer's connection, inside or outside its transaction).
    fn get(
        &self,
        conn: &Connection,
        customer: &str,
        generation: u32,
    ) -> Result<Option<i64>, StoreError> {
        let Some(&row) = self.rows.get(&(self.fingerprint)(customer, generation)) else {
            return Ok(None);
        };
        let named: (String, u32) = conn
            .prepare_cached("SELECT customer, generation FROM data_keys WHERE key_row = ?1")?
            .query_row([row], |r| Ok((r.get(0)?, r.get(1)?)))?;
        if named.0 == customer && named.1 == generation {
            return Ok(Some(row));
        }
        // Another key has this fingerprint.
        Ok(conn
            .prepare_cached(
                "SELECT key_row FROM data_keys WHERE customer = ?1 AND generation = ?2",
            )?
            .query_row(params![customer, generation], |r| r.get(0))
            .optional()?)
    }

    /// Records where a key was written. Of keys sharing a fingerprint the first keeps the
    /// slot; the others are found by [`KeyRows::get`]'s scan.
    fn insert(&mut self, customer: &str, generation: u32, row: i64) {
        self.rows
            .entry((self.fingerprint)(customer, generation))
            .or_insert(row);
    }

    /// Takes in the keys of a committed transaction.
    fn merge(&mut self, other: KeyRows) {
        for (fp, row) in other.rows {
            self.rows.entry(fp).or_insert(row);
        }
    }
}

fn load_key_rows(conn: &Connection) -> Result<KeyRows, StoreError> {
    let mut rows = KeyRows::default();
    let mut stmt = conn.prepare("SELECT key_row, customer, generation FROM data_keys")?;
    let mut q = stmt.query([])?;
    while let Some(r) = q.next()? {
        let customer: &str = r.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?;
        let (row, generation) = (r.get(0)?, r.get(2)?);
        rows.insert(customer, generation, row);
    }
    Ok(rows)
}

fn writer_loop(
    mut conn: Connection,
    rx: crossbeam_channel::Receiver<Job>,
    shared: Arc<Shared>,
    metrics: Arc<dyn WriterMetrics>,
) {
    let mut key_rows = match load_key_rows(&conn) {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the data keys; the writer stops");
            return;
        }
    };
    let mut bulk: Option<Bulk> = None;
    while let Ok(first) = rx.recv() {
        let mut appends = Vec::new();
        let mut events = 0usize;
        let mut others = Vec::new();
        let mut push = |job: Job, appends: &mut Vec<_>, events: &mut usize| match job {
            Job::Append(req, reply) => {
                *events += req.events.len();
                appends.push((req, reply));
            }
            other => others.push(other),
        };
        push(first, &mut appends, &mut events);
        while events < GROUP_COMMIT_EVENTS_MAX {
            match rx.try_recv() {
                Ok(job) => push(job, &mut appends, &mut events),
                Err(_) => break,
            }
        }
        if !appends.is_empty() {
            if let Some(b) = bulk.as_mut() {
                bulk_write(&conn, &shared, &key_rows, b, appends);
            } else {
                commit_group(&mut conn, &shared, &mut key_rows, appends, &*metrics);
            }
        }
        for job in others {
            match job {
                Job::BulkBegin(reply) => {
                    let r = if bulk.is_some() {
                        Err(StoreError::Invalid(
                            "a bulk import is already running".into(),
                        ))
                    } else {
                        conn.execute_batch("BEGIN IMMEDIATE")
                            .map_err(StoreError::from)
                            .map(|()| {
                                bulk = Some(Bulk {
                                    pending: Pending::new(&shared),
                                    recorded_at: shared.recorded_now(),
                                    failed: None,
                                });
                            })
                    };
                    let _ = reply.send(r);
                }
                Job::BulkEnd(commit, reply) => {
                    let r = match bulk.take() {
                        None => Err(StoreError::Invalid("no bulk import is running".into())),
                        Some(b) => {
                            let started = Instant::now();
                            let ok = commit && b.failed.is_none();
                            let sql = if ok { "COMMIT" } else { "ROLLBACK" };
                            match conn.execute_batch(sql) {
                                Ok(()) if ok => {
                                    let n = publish(&shared, &mut key_rows, b.pending);
                                    metrics.group_committed(n, 1, started.elapsed().as_secs_f64());
                                    truncate_wal(&conn);
                                    Ok(n as u64)
                                }
                                Ok(()) => match b.failed {
                                    Some(f) => Err(StoreError::Io(f)),
                                    None => Ok(0),
                                },
                                Err(e) => {
                                    let _ = conn.execute_batch("ROLLBACK");
                                    Err(e.into())
                                }
                            }
                        }
                    };
                    let _ = reply.send(r);
                }
                Job::Rewrap(keys, master_id, reply) => {
                    let _ = reply.send(rewrap(&mut conn, &key_rows, keys, &master_id));
                }
                Job::Purge(reply) => {
                    let r = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0)).map_err(StoreError::from).and_then(|busy| {
                        if busy != 0 {
                            Err(StoreError::Io("the checkpoint was blocked by a reader; it will complete at the next checkpoint".into()))
                        } else {
                            Ok(())
                        }
                    });
                    let _ = reply.send(r);
                }
                Job::Append(..) => unreachable!("appends are collected above"),
            }
        }
    }
}

/// Copies what the write-ahead log holds into the database file and empties the log
/// (`wal_checkpoint(TRUNCATE)`). After a bulk import the log is as large as the import
/// (3 GB for 10 M events): left in place it doubles the disk the store takes, and every
/// later read looks each page up in its index first. A checkpoint that a reader blocks
/// is only logged: SQLite's automatic checkpoints finish the copy later.
fn truncate_wal(conn: &Connection) {
    match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    }) {
        Ok(0) => {}
        Ok(_) => tracing::debug!("the checkpoint after the import was blocked by a reader"),
        Err(e) => tracing::warn!(error = %e, "could not checkpoint the write-ahead log"),
    }
}

fn rewrap(
    conn: &mut Connection,
    key_rows: &KeyRows,
    keys: Vec<WrappedKey>,
    master_id: &str,
) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut stmt = tx.prepare("UPDATE data_keys SET wrapped = ?2, master_key_id = ?3 WHERE key_row = ?1 AND wrapped IS NOT NULL")?;
        for k in &keys {
            let row = key_rows
                .get(&tx, &k.customer, k.generation)?
                .ok_or_else(|| {
                    StoreError::Invalid(format!(
                        "no stored data key {} generation {}",
                        k.customer, k.generation
                    ))
                })?;
            stmt.execute(params![row, k.wrapped, master_id])?;
        }
        tx.execute("INSERT INTO meta(key, value) VALUES ('master_key_id', ?1) ON CONFLICT(key) DO UPDATE SET value = excluded.value", [master_id])?;
    }
    tx.commit()?;
    Ok(())
}

/// What an open transaction has added on top of the shared index: positions, streams and
/// key rows that become visible (merged into the shared state) only when it commits.
struct Pending {
    /// Event id → position. The rest of a duplicate's record is read back from the open
    /// transaction (a connection sees its own uncommitted rows), so this stays small.
    ids: FastMap<IdKey, u64>,
    streams: FastMap<String, Vec<u64>>,
    key_rows: KeyRows,
    /// The position the next new event gets.
    next: u64,
}

impl Pending {
    fn new(shared: &Shared) -> Pending {
        Pending {
            ids: FastMap::default(),
            streams: FastMap::default(),
            key_rows: KeyRows::default(),
            next: shared.last.load(Ordering::Acquire) + 1,
        }
    }
}

type Reply = oneshot::Sender<Result<Vec<Appended>, StoreError>>;
/// Each job's reply with its outcome.
type Answered = Vec<(Reply, Result<Vec<Appended>, StoreError>)>;

/// Writes `jobs` into the open transaction. Returns each job's outcome, or an IO error
/// (then the transaction must be rolled back) with the replies still to be answered.
fn write_jobs(
    conn: &Connection,
    idx: &Index,
    key_rows: &KeyRows,
    p: &mut Pending,
    recorded_at: &str,
    jobs: Vec<(AppendRequest, Reply)>,
) -> Result<Answered, (StoreError, Vec<Reply>)> {
    let mut replies = Vec::with_capacity(jobs.len());
    let mut jobs = jobs.into_iter();
    let result = (|| -> Result<(), StoreError> {
        let mut insert = conn.prepare_cached(
            "INSERT INTO events (position, id, stream, stream_version, type, version, customer, occurred_at, recorded_at, data, metadata, sealed, key_gen, digest)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )?;
        let mut lookup = conn.prepare_cached(
            "SELECT digest, key_gen, stream, stream_version, id FROM events WHERE position = ?1",
        )?;
        let mut insert_key =
            conn.prepare_cached("INSERT INTO data_keys (customer, generation, wrapped, master_key_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5)")?;
        let mut destroy_key = conn.prepare_cached(
            "UPDATE data_keys SET wrapped = NULL, destroyed_at = ?2 WHERE key_row = ?1",
        )?;
        for (req, reply) in jobs.by_ref() {
            // Decide everything about this job before writing any of it.
            let plan = match plan_job(&req, idx, p, &mut lookup) {
                Ok(plan) => plan,
                Err(e) => {
                    replies.push((reply, Err(e)));
                    continue;
                }
            };
            // From here on an error is an IO error: the reply joins the failed ones.
            replies.push((reply, Ok(Vec::new())));
            for (ev, slot) in req.events.iter().zip(&plan) {
                if slot.duplicate {
                    continue;
                }
                let (sealed, key_gen) = match &ev.sealed {
                    Some((s, g)) => (Some(s.as_slice()), Some(*g)),
                    None => (None, None),
                };
                insert.execute(params![
                    slot.position as i64,
                    ev.id.as_bytes().as_slice(),
                    ev.stream,
                    slot.stream_version as i64,
                    ev.event_type.as_str(),
                    ev.version,
                    ev.customer,
                    time_text(&ev.occurred_at),
                    recorded_at,
                    ev.data,
                    ev.metadata,
                    sealed,
                    key_gen,
                    ev.digest.as_slice(),
                ])?;
                p.ids.insert(ev.id.as_u64_pair(), slot.position);
                match p.streams.get_mut(ev.stream.as_str()) {
                    Some(v) => v.push(slot.position),
                    None => {
                        p.streams.insert(ev.stream.clone(), vec![slot.position]);
                    }
                }
                p.next = slot.position + 1;
            }
            for k in &req.new_keys {
                if key_rows.get(conn, &k.customer, k.generation)?.is_some()
                    || p.key_rows.get(conn, &k.customer, k.generation)?.is_some()
                {
                    continue;
                }
                insert_key.execute(params![
                    k.customer,
                    k.generation,
                    k.wrapped,
                    k.master_key_id,
                    recorded_at
                ])?;
                p.key_rows
                    .insert(&k.customer, k.generation, conn.last_insert_rowid());
            }
            for (customer, generation) in &req.destroy_keys {
                let row = match key_rows.get(conn, customer, *generation)? {
                    Some(row) => Some(row),
                    None => p.key_rows.get(conn, customer, *generation)?,
                };
                if let Some(row) = row {
                    destroy_key.execute(params![row, recorded_at])?;
                }
            }
            if let Some(k) = req.new_keys.first() {
                conn.execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES ('master_key_id', ?1)",
                    [&k.master_key_id],
                )?;
            }
            let appended = req
                .events
                .iter()
                .zip(plan)
                .map(|(ev, slot)| Appended {
                    id: ev.id,
                    position: slot.position,
                    stream: slot.stream.unwrap_or_else(|| ev.stream.clone()),
                    stream_version: slot.stream_version,
                    duplicate: slot.duplicate,
                })
                .collect();
            replies.last_mut().expect("pushed above").1 = Ok(appended);
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(replies),
        Err(e) => {
            let mut failed: Vec<Reply> = replies.into_iter().map(|(r, _)| r).collect();
            failed.extend(jobs.map(|(_, r)| r));
            Err((e, failed))
        }
    }
}

/// Makes a committed transaction visible: merges its additions into the shared index.
fn publish(shared: &Shared, key_rows: &mut KeyRows, p: Pending) -> usize {
    let last = shared.last.load(Ordering::Acquire);
    let written = (p.next - 1 - last) as usize;
    key_rows.merge(p.key_rows);
    if written > 0 {
        let mut idx = shared.index.write().unwrap_or_else(|e| e.into_inner());
        idx.ids.reserve(p.ids.len());
        for (id, pos) in p.ids {
            idx.ids.insert(&Uuid::from_u64_pair(id.0, id.1), pos);
        }
        for (stream, positions) in p.streams {
            let all = idx.streams.get_or_insert_with(&stream, Positions::default);
            for position in positions {
                all.push(position);
            }
        }
        drop(idx);
        shared.last.store(p.next - 1, Ordering::Release);
        shared.notify.send_replace(p.next - 1);
    }
    written
}

fn fail_all(replies: Vec<Reply>, e: &StoreError) {
    for r in replies {
        let _ = r.send(Err(StoreError::Io(e.to_string())));
    }
}

/// One group commit: one transaction, one fsync, then every caller is answered.
/// Commits one group and answers its appenders. The metrics are recorded before the
/// answers go out, so whoever saw an acknowledgement sees it counted.
fn commit_group(
    conn: &mut Connection,
    shared: &Shared,
    key_rows: &mut KeyRows,
    jobs: Vec<(AppendRequest, Reply)>,
    metrics: &dyn WriterMetrics,
) -> usize {
    let started = Instant::now();
    let job_count = jobs.len();
    let recorded_at = shared.recorded_now();
    let mut pending = Pending::new(shared);
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        fail_all(jobs.into_iter().map(|(_, r)| r).collect(), &e.into());
        return 0;
    }
    let idx = shared.index.read().unwrap_or_else(|e| e.into_inner());
    let outcome = write_jobs(conn, &idx, key_rows, &mut pending, &recorded_at, jobs);
    drop(idx);
    match outcome.and_then(|replies| match conn.execute_batch("COMMIT") {
        Ok(()) => Ok(replies),
        Err(e) => Err((e.into(), replies.into_iter().map(|(r, _)| r).collect())),
    }) {
        Ok(replies) => {
            let written = publish(shared, key_rows, pending);
            metrics.group_committed(written, job_count, started.elapsed().as_secs_f64());
            for (reply, r) in replies {
                let _ = reply.send(r);
            }
            written
        }
        Err((e, replies)) => {
            let _ = conn.execute_batch("ROLLBACK");
            tracing::error!(error = %e, "group commit failed; nothing of it was written");
            fail_all(replies, &e);
            0
        }
    }
}

/// A bulk import's transaction: open across many appends, committed (one fsync) or rolled
/// back as a whole at the end, so an import is all or nothing and never half-visible.
struct Bulk {
    pending: Pending,
    recorded_at: String,
    /// The first IO error; once set, the bulk can only be rolled back.
    failed: Option<String>,
}

fn bulk_write(
    conn: &Connection,
    shared: &Shared,
    key_rows: &KeyRows,
    b: &mut Bulk,
    jobs: Vec<(AppendRequest, Reply)>,
) {
    if let Some(f) = &b.failed {
        fail_all(
            jobs.into_iter().map(|(_, r)| r).collect(),
            &StoreError::Io(f.clone()),
        );
        return;
    }
    let idx = shared.index.read().unwrap_or_else(|e| e.into_inner());
    match write_jobs(conn, &idx, key_rows, &mut b.pending, &b.recorded_at, jobs) {
        Ok(replies) => {
            for (reply, r) in replies {
                let _ = reply.send(r);
            }
        }
        Err((e, replies)) => {
            b.failed = Some(e.to_string());
            fail_all(replies, &e);
        }
    }
}

struct Slot {
    position: u64,
    stream_version: u64,
    duplicate: bool,
    /// For duplicates: the stream the original landed in.
    stream: Option<String>,
}

fn plan_job(
    req: &AppendRequest,
    idx: &Index,
    overlay: &Pending,
    lookup: &mut rusqlite::CachedStatement<'_>,
) -> Result<Vec<Slot>, StoreError> {
    let mut next = overlay.next;
    let mut slots = Vec::with_capacity(req.events.len());
    // Ids and stream lengths this job itself adds, for duplicates inside one request.
    let mut local_ids: FastMap<IdKey, usize> = FastMap::default();
    let mut local_streams: FastMap<&str, u64> = FastMap::default();
    let stream_len = |s: &str, local: &FastMap<&str, u64>| -> u64 {
        idx.streams.get(s).map_or(0, |p| p.len() as u64)
            + overlay.streams.get(s).map_or(0, |p| p.len() as u64)
            + local.get(s).copied().unwrap_or(0)
    };
    // `AppendRequest::check` ran before the request was queued.
    for ev in &req.events {
        let key = ev.id.as_u64_pair();
        let (candidates, exact) = match overlay.ids.get(&key) {
            Some(&pos) => (vec![pos], true),
            None => match idx.ids.lookup(&ev.id) {
                IdLookup::At(pos) => (vec![pos], true),
                IdLookup::Candidates(c) => (c, false),
            },
        };
        let mut stored = None;
        for pos in candidates {
            type Row = (Vec<u8>, Option<u32>, String, i64, Vec<u8>);
            let (digest, gen, stream, version, id): Row = lookup.query_row([pos as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;
            let integrity = |what: &str| StoreError::Integrity {
                position: pos,
                what: what.into(),
            };
            let digest: [u8; 16] = digest
                .as_slice()
                .try_into()
                .map_err(|_| integrity("bad digest"))?;
            let same_id = id.as_slice() == ev.id.as_bytes();
            if exact && !same_id {
                return Err(integrity("the id index points at another event"));
            }
            // A fingerprint shared with another id: this one is not stored there.
            if same_id {
                stored = Some((pos, digest, gen, stream, version as u64));
                break;
            }
        }
        if let Some((pos, digest, gen, stream, version)) = stored {
            let new_gen = ev.sealed.as_ref().map(|(_, g)| *g);
            // Events sealed with different key generations cannot be compared (the old
            // key may be destroyed): the stored one wins and nothing is written, so a
            // late retry can never bring erased data back.
            let same =
                digest == ev.digest || (gen.is_some() && new_gen.is_some() && gen != new_gen);
            if !same {
                return Err(StoreError::IdConflict {
                    id: ev.id,
                    position: pos,
                });
            }
            slots.push(Slot {
                position: pos,
                stream_version: version,
                duplicate: true,
                stream: Some(stream),
            });
            continue;
        }
        if let Some(&i) = local_ids.get(&key) {
            if req.events[i].digest != ev.digest {
                return Err(StoreError::IdConflict {
                    id: ev.id,
                    position: slots[i].position,
                });
            }
            let s = &slots[i];
            let dup = Slot {
                position: s.position,
                stream_version: s.stream_version,
                duplicate: true,
                stream: None,
            };
            slots.push(dup);
            continue;
        }
        let version = stream_len(&ev.stream, &local_streams);
        *local_streams.entry(ev.stream.as_str()).or_default() += 1;
        local_ids.insert(key, slots.len());
        slots.push(Slot {
            position: next,
            stream_version: version,
            duplicate: false,
            stream: None,
        });
        next += 1;
    }
    if let Some((stream, expected)) = &req.expected {
        let all_duplicates = slots.iter().all(|s| s.duplicate);
        // A retried append whose events are all stored already succeeds again (idempotent).
        if !all_duplicates {
            let len = idx
                .streams
                .get(stream.as_str())
                .map_or(0, |p| p.len() as u64)
                + overlay.streams.get(stream).map_or(0, |p| p.len() as u64);
            let ok = match expected {
                ExpectedVersion::Any => true,
                ExpectedVersion::NoStream => len == 0,
                ExpectedVersion::Exact(v) => len == v + 1,
            };
            if !ok {
                let actual = if len == 0 {
                    "no_stream".to_string()
                } else {
                    (len - 1).to_string()
                };
                return Err(StoreError::WrongExpectedVersion {
                    stream: stream.clone(),
                    expected: *expected,
                    actual,
                });
            }
        }
    }
    Ok(slots)
}

#[async_trait::async_trait]
impl EventStore for SqliteStore {
    async fn append(&self, req: AppendRequest) -> Result<Vec<Appended>, StoreError> {
        req.check()?;
        let (tx, rx) = oneshot::channel();
        // The queue is bounded; when it is full this waits, which is the back-pressure we want.
        let job = Job::Append(req, tx);
        let sender = self.sender()?;
        let job = match sender.try_send(job) {
            Ok(()) => None,
            Err(crossbeam_channel::TrySendError::Full(job)) => Some(job),
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => {
                return Err(StoreError::Closed)
            }
        };
        if let Some(job) = job {
            tokio::task::spawn_blocking(move || sender.send(job))
                .await
                .map_err(|_| StoreError::Closed)?
                .map_err(|_| StoreError::Closed)?;
        }
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let limit = limit.min(super::READ_EVENTS_MAX);
        tokio::task::block_in_place(|| self.read_stream_blocking(stream, from_version, limit))
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let limit = limit.min(super::READ_EVENTS_MAX);
        tokio::task::block_in_place(|| self.read_all_blocking(after, limit))
    }

    async fn read_at(&self, positions: &[u64]) -> Result<Vec<StoredEvent>, StoreError> {
        // A few primary-key reads take tens of microseconds: done on the calling worker.
        // Handing the worker off (`block_in_place`) cost more than the read, and under
        // ingest it was most of the profile handler's tail (p99 1.7 of 1.8 ms).
        if positions.len() <= POINT_READS_INLINE_MAX {
            self.read_at_blocking(positions)
        } else {
            tokio::task::block_in_place(|| self.read_at_blocking(positions))
        }
    }

    fn point_reads_are_cheap(&self) -> bool {
        true
    }

    fn last_position(&self) -> u64 {
        self.shared.last.load(Ordering::Acquire)
    }

    fn stream_version(&self, stream: &str) -> Option<u64> {
        self.stream_version_now(stream)
    }

    async fn wait_for_position_after(&self, seen: u64) {
        let mut rx = self.shared.notify.subscribe();
        let _ = rx.wait_for(|p| *p > seen).await;
    }

    async fn load_keys(&self) -> Result<Vec<WrappedKey>, StoreError> {
        tokio::task::block_in_place(|| {
            self.with_reader(|c| {
                let mut stmt = c.prepare("SELECT customer, generation, wrapped, master_key_id FROM data_keys ORDER BY key_row")?;
                let rows = stmt.query_map([], |r| {
                    Ok(WrappedKey { customer: r.get(0)?, generation: r.get(1)?, wrapped: r.get(2)?, master_key_id: r.get(3)? })
                })?;
                rows.collect::<Result<Vec<_>, _>>().map_err(StoreError::from)
            })
        })
    }

    async fn rewrap_keys(
        &self,
        keys: Vec<WrappedKey>,
        master_key_id: &str,
    ) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Job::Rewrap(keys, master_key_id.to_owned(), tx))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn master_key_id(&self) -> Result<Option<String>, StoreError> {
        tokio::task::block_in_place(|| {
            self.with_reader(|c| {
                c.query_row(
                    "SELECT value FROM meta WHERE key = 'master_key_id'",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .map_err(StoreError::from)
            })
        })
    }

    async fn purge(&self) -> Result<(), StoreError> {
        // Idle readers hold no snapshot, but dropping them lets the checkpoint reset the WAL.
        self.readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let (tx, rx) = oneshot::channel();
        self.send(Job::Purge(tx))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        crypto::{Keyring, MasterKey},
        log::Log,
    };

    #[test]
    fn stream_positions_past_u32_are_kept_exactly() {
        let mut p = Positions::default();
        let big = u64::from(u32::MAX) + 5;
        for position in [1, 7, u64::from(u32::MAX), big, big + 1] {
            p.push(position);
        }
        assert!(matches!(p, Positions::Wide(_)));
        p.shrink_to_fit();
        assert_eq!(p.len(), 5);
        assert_eq!(
            p.iter().collect::<Vec<_>>(),
            [1, 7, u64::from(u32::MAX), big, big + 1]
        );
        let mut small = Positions::default();
        small.push(3);
        assert!(matches!(small, Positions::Narrow(_)));
        assert_eq!(small.iter().collect::<Vec<_>>(), [3]);
    }

    #[test]
    fn key_rows_whose_fingerprints_collide_are_still_found_exactly() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        let mut rows = KeyRows {
            fingerprint: |_, _| 7,
            ..KeyRows::default()
        };
        let mut add = |customer: &str, generation: u32| {
            conn.execute(
                "INSERT INTO data_keys (customer, generation, wrapped, master_key_id, created_at) VALUES (?1, ?2, x'00', 'm', 't')",
                params![customer, generation],
            )
            .unwrap();
            rows.insert(customer, generation, conn.last_insert_rowid());
            conn.last_insert_rowid()
        };
        let (a, b, a2) = (add("c-a", 1), add("c-b", 1), add("c-a", 2));
        let found = |c: &str, g: u32| rows.get(&conn, c, g).unwrap();
        assert_eq!(
            (found("c-a", 1), found("c-b", 1), found("c-a", 2)),
            (Some(a), Some(b), Some(a2))
        );
        assert_eq!(
            found("c-c", 1),
            None,
            "an unknown key is not mistaken for its twin"
        );
        assert_eq!(found("c-b", 2), None);
        // The real fingerprint tells these apart without a scan.
        assert_ne!(key_fingerprint("c-a", 1), key_fingerprint("c-a", 2));
    }

    /// An id with the same fingerprint as `id` (the fingerprint mixes the two words with an
    /// invertible multiply, so equal mixed words collide).
    fn twin(id: Uuid, x: u64) -> Uuid {
        let (hi, lo) = id.as_u64_pair();
        let lo2 = (lo.rotate_left(29) ^ x).rotate_right(29);
        let twin = Uuid::from_u64_pair(hi ^ x, lo2);
        assert_eq!(fingerprint(&twin), fingerprint(&id));
        assert_ne!(twin, id);
        twin
    }

    /// Where each appended event landed, and whether it was a duplicate.
    fn placed(appended: &[crate::store::Appended]) -> Vec<(u64, bool)> {
        appended.iter().map(|a| (a.position, a.duplicate)).collect()
    }

    fn purchase(id: Uuid, order: &str) -> rapport_events::Event {
        let text = format!(
            r#"{{"id":"{id}","type":"purchase","customer":"c-1","occurred_at":"2026-03-01T10:00:00Z","data":{{"order_id":"{order}","amount":"1.50","currency":"CNY"}}}}"#
        );
        rapport_events::parse_one(&text, &mut Uuid::nil, false).unwrap()
    }

    /// The store in `dir`, opened for writing, and its log under `master`.
    fn open_log(dir: &Path, master: &MasterKey) -> (Arc<SqliteStore>, Log) {
        let store = Arc::new(SqliteStore::open(dir, SqliteOptions::default()).unwrap());
        let log = Log::new(
            store.clone() as Arc<dyn EventStore>,
            Arc::new(Keyring::load(master.clone(), vec![]).unwrap()),
        );
        (store, log)
    }

    fn event_at(ty: &str, customer: &str, day: u32, data: &str) -> rapport_events::Event {
        let text = format!(
            r#"{{"type":"{ty}","customer":"{customer}","occurred_at":"2026-03-{day:02}T10:00:00Z","data":{data}}}"#
        );
        rapport_events::parse_one(&text, &mut Uuid::now_v7, false).unwrap()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn opening_for_writing_drops_the_late_event_index_of_an_older_rapport() {
        let dir = tempfile::tempdir().unwrap();
        let master = MasterKey::generate();
        let (store, log) = open_log(dir.path(), &master);
        store.close();
        drop((store, log));
        let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        conn.execute_batch(
            "CREATE TABLE late_events (position INTEGER PRIMARY KEY, occurred_at INTEGER NOT NULL);
             INSERT INTO late_events VALUES (1, 0);
             INSERT INTO meta(key, value) VALUES ('late_index_through', '1');",
        )
        .unwrap();
        drop(conn);
        let (store, log) = open_log(dir.path(), &master);
        store.close();
        drop((store, log));
        let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        let left: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'late_events'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let meta: i64 = conn
            .query_row(
                "SELECT count(*) FROM meta WHERE key LIKE 'late_index%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!((left, meta), (0, 0));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn ids_that_share_a_fingerprint_are_told_apart_before_and_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let master = MasterKey::generate();
        let a = Uuid::from_u128(0x0123_4567_89ab_4def_8123_4567_89ab_cdef);
        let (b, c) = (twin(a, 0xdead_beef), twin(a, 0x1234_5678_9abc));
        for restart in [false, true] {
            let (store, log) = open_log(dir.path(), &master);
            if !restart {
                // A first, then its twins: new events, not duplicates of A.
                let first = log.append(&[purchase(a, "o-a")], None).await.unwrap();
                assert!(!first[0].duplicate);
                let twins = log
                    .append(&[purchase(b, "o-b"), purchase(c, "o-c")], None)
                    .await
                    .unwrap();
                assert_eq!(placed(&twins), [(2, false), (3, false)]);
                let stored = store.read_all(0, 10).await.unwrap();
                assert_eq!(
                    stored.iter().map(|s| s.event.id).collect::<Vec<_>>(),
                    [a, b, c]
                );
            }
            // Each one again (a retry): found at its own position, whichever of them holds
            // the fingerprint.
            let again = log
                .append(
                    &[purchase(c, "o-c"), purchase(a, "o-a"), purchase(b, "o-b")],
                    None,
                )
                .await
                .unwrap();
            assert_eq!(
                placed(&again),
                [(3, true), (1, true), (2, true)],
                "restart: {restart}"
            );
            // The same id with other content is a conflict, not a new event.
            let err = log
                .append(&[purchase(b, "o-other")], None)
                .await
                .unwrap_err();
            assert!(
                matches!(err, StoreError::IdConflict { position: 2, .. }),
                "{err}"
            );
            assert_eq!(store.last_position(), 3);
            store.close();
        }
    }

    #[test]
    fn a_position_past_u32_is_kept_exactly() {
        let mut idx = IdIndex::default();
        let (a, b) = (Uuid::from_u128(7), Uuid::from_u128(8));
        idx.insert(&a, u32::MAX as u64 + 5);
        idx.insert(&b, 9);
        assert!(matches!(idx.lookup(&a), IdLookup::At(p) if p == u32::MAX as u64 + 5));
        assert!(matches!(idx.lookup(&b), IdLookup::Candidates(c) if c == [9]));
        assert!(matches!(idx.lookup(&Uuid::from_u128(9)), IdLookup::Candidates(c) if c.is_empty()));
    }

    /// Two ids with one fingerprint: the index names both positions for either id (the
    /// writer then tells them apart by the rows' ids, as the test above shows).
    #[test]
    fn ids_sharing_a_fingerprint_are_both_candidates() {
        let a = Uuid::from_u128(0x0123_4567_89ab_4def_8123_4567_89ab_cdef);
        let b = twin(a, 0xdead_beef);
        let mut idx = IdIndex::default();
        idx.insert(&a, 3);
        idx.insert(&b, 8);
        idx.insert(&Uuid::from_u128(5), 9);
        for id in [a, b] {
            let IdLookup::Candidates(mut c) = idx.lookup(&id) else {
                panic!("not exact")
            };
            c.sort();
            assert_eq!(c, [3, 8]);
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_read_only_store_builds_its_index_when_first_asked_and_reports_a_gap_in_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let master = MasterKey::generate();
        let (writer, log) = open_log(dir.path(), &master);
        for (i, c) in ["c-1", "c-2", "c-1"].into_iter().enumerate() {
            let join = event_at(
                "community_joined",
                c,
                5,
                &format!(r#"{{"community":"g{i}"}}"#),
            );
            log.append(&[join], None).await.unwrap();
        }
        let reader = SqliteStore::open_read_only(dir.path()).unwrap();
        assert!(
            reader.index_pending.load(Ordering::Acquire),
            "not built at open"
        );
        // Appended after the reader opened: the reader's log ends where it was.
        log.append(
            &[event_at(
                "community_joined",
                "c-1",
                6,
                r#"{"community":"g3"}"#,
            )],
            None,
        )
        .await
        .unwrap();
        assert_eq!(reader.last_position(), 3);
        assert_eq!(reader.stream_version_now("customer-c-1"), Some(1));
        let stream = reader.read_stream_blocking("customer-c-1", 0, 10).unwrap();
        assert_eq!(
            stream.iter().map(|e| e.position).collect::<Vec<_>>(),
            [1, 3]
        );
        assert!(!reader.index_pending.load(Ordering::Acquire));
        assert_eq!(reader.read_all_blocking(0, 10).unwrap().len(), 3);
        writer.close();
        drop((writer, log, reader));

        // Position 2 goes missing (a damaged file): every read in order says so.
        let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        conn.execute("DELETE FROM events WHERE position = 2", [])
            .unwrap();
        drop(conn);
        let reader = SqliteStore::open_read_only(dir.path()).unwrap();
        let gap = |r: Result<(), StoreError>| match r {
            Err(StoreError::Integrity { position: 2, what }) => {
                assert!(what.contains("gap"), "{what}")
            }
            other => panic!("expected the gap before position 2, got {other:?}"),
        };
        gap(reader.read_all_blocking(0, 10).map(drop));
        gap(reader.for_each_blocking(0, u64::MAX, |_| Ok(())));
        gap(reader.for_each_raw_blocking(0, u64::MAX, |_| Ok(())));
        assert!(reader.read_stream_blocking("customer-c-1", 0, 10).is_err());
        assert!(
            SqliteStore::open(dir.path(), SqliteOptions::default()).is_err(),
            "a writer refuses to open it"
        );
    }

    #[test]
    fn a_bulk_import_leaves_no_write_ahead_log_behind() {
        let dir = tempfile::tempdir().unwrap();
        let master = MasterKey::generate();
        let (store, log) = open_log(dir.path(), &master);
        store.bulk_begin().unwrap();
        let events: Vec<_> = (0..2000)
            .map(|i| {
                event_at(
                    "community_joined",
                    &format!("c-{i}"),
                    5,
                    r#"{"community":"g"}"#,
                )
            })
            .collect();
        let reply = store
            .append_nowait(log.seal_request(&events, None))
            .unwrap();
        assert_eq!(store.bulk_end(true).unwrap(), 2000);
        assert_eq!(reply.blocking_recv().unwrap().unwrap().len(), 2000);
        let wal =
            std::fs::metadata(dir.path().join(format!("{DB_FILE}-wal"))).map_or(0, |m| m.len());
        assert_eq!(wal, 0, "the import's pages are in the database file");
        store.close();
        let reader = SqliteStore::open_read_only(dir.path()).unwrap();
        assert_eq!(reader.read_all_blocking(0, 5000).unwrap().len(), 2000);
    }
}
