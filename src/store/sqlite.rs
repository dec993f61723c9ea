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
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, RwLock,
    },
    time::Instant,
};

use chrono::{DateTime, SecondsFormat, Utc};
use rapport_events::EventType;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use super::{AppendRequest, Appended, EventStore, ExpectedVersion, SealedEvent, StoreError, StoredEvent, WrappedKey};

/// The on-disk format this code writes. A store with a higher number is refused.
pub const FORMAT_VERSION: u32 = 1;
/// Jobs that may wait for the writer; senders block (back-pressure) beyond this.
pub const WRITE_QUEUE_JOBS_MAX: usize = 4096;
/// Most events one group commit writes.
pub const GROUP_COMMIT_EVENTS_MAX: usize = 50_000;
/// Idle reader connections kept open.
const READERS_IDLE_MAX: usize = 8;

pub const DB_FILE: &str = "rapport.sqlite";
pub const LOCK_FILE: &str = "LOCK";

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// What lives in memory instead of secondary indexes.
#[derive(Default)]
struct Index {
    /// Event id → position.
    ids: FastMap<u128, u64>,
    /// Stream → positions, indexed by stream version.
    streams: FastMap<Box<str>, Vec<u64>>,
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
}

enum Job {
    Append(AppendRequest, oneshot::Sender<Result<Vec<Appended>, StoreError>>),
    Rewrap(Vec<WrappedKey>, String, oneshot::Sender<Result<(), StoreError>>),
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
        SqliteOptions { durable: true, metrics: Arc::new(NoMetrics) }
    }
}

pub struct SqliteStore {
    db_path: PathBuf,
    jobs: Mutex<Option<crossbeam_channel::Sender<Job>>>,
    shared: Arc<Shared>,
    readers: Mutex<Vec<Connection>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Held for the store's lifetime so that a second process cannot open it.
    _lock: File,
}

/// Opens a connection with Rapport's pragmas and makes sure the schema exists.
pub fn connect(db_path: &Path, durable: bool) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(db_path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", if durable { "FULL" } else { "OFF" })?;
    // Freed pages are zeroed, so a destroyed data key does not linger in the file.
    conn.pragma_update(None, "secure_delete", "ON")?;
    conn.pragma_update(None, "cache_size", -64_000)?;
    conn.execute_batch(SCHEMA)?;
    let format: Option<String> = conn.query_row("SELECT value FROM meta WHERE key = 'format_version'", [], |r| r.get(0)).optional()?;
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
    sealed         BLOB,                 -- XChaCha20-Poly1305 nonce || ciphertext of the personal fields
    key_gen        INTEGER,              -- generation of the customer's data key that sealed them
    digest         BLOB NOT NULL         -- 16-byte content digest for idempotent retries
);
CREATE TABLE IF NOT EXISTS data_keys (
    customer      TEXT NOT NULL,
    generation    INTEGER NOT NULL,
    wrapped       BLOB,                  -- nonce || ciphertext under the master key; NULL once destroyed
    master_key_id TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    destroyed_at  TEXT,
    PRIMARY KEY (customer, generation)
) WITHOUT ROWID;
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
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).map_err(|e| StoreError::Format(format!("bad timestamp {s:?}: {e}")))
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
        let bad = |what: &str| StoreError::Integrity { position: position as u64, what: what.to_owned() };
        let id = Uuid::from_slice(&id).map_err(|_| bad("the id is not 16 bytes"))?;
        let event_type = EventType::parse(&ty).ok_or_else(|| bad("unknown event type"))?;
        let digest: [u8; 16] = digest.as_slice().try_into().map_err(|_| bad("the digest is not 16 bytes"))?;
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
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Io(format!("cannot create {}: {e}", dir.display())))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StoreError::Io(format!("cannot open {}: {e}", lock_path.display())))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(StoreError::Locked(dir.display().to_string())),
            Err(std::fs::TryLockError::Error(e)) => return Err(StoreError::Io(format!("cannot lock {}: {e}", lock_path.display()))),
        }
        let db_path = dir.join(DB_FILE);
        let conn = connect(&db_path, opts.durable)?;
        let (index, last) = load_index(&conn)?;
        let (notify, _) = watch::channel(last);
        let shared = Arc::new(Shared { index: RwLock::new(index), last: AtomicU64::new(last), notify });
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
            _lock: lock,
        })
    }

    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    /// Stops accepting writes, lets queued jobs finish, and joins the writer.
    pub fn close(&self) {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = h.join();
        }
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        let tx = self.jobs.lock().unwrap_or_else(|e| e.into_inner()).clone().ok_or(StoreError::Closed)?;
        tx.send(job).map_err(|_| StoreError::Closed)
    }

    /// Sends an append without waiting for it (imports keep several in flight).
    pub fn append_nowait(&self, req: AppendRequest) -> Result<oneshot::Receiver<Result<Vec<Appended>, StoreError>>, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Job::Append(req, tx))?;
        Ok(rx)
    }

    fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let conn = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match conn {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(&self.db_path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
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
    pub fn read_all_blocking(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let until = self.shared.last.load(Ordering::Acquire);
        self.with_reader(|c| {
            let mut stmt = c.prepare_cached(&format!("{SELECT_EVENT} WHERE position > ?1 AND position <= ?2 ORDER BY position LIMIT ?3"))?;
            let rows = stmt.query_map(params![after as i64, until as i64, limit as i64], row_to_event)?;
            let mut out = Vec::with_capacity(limit.min(4096));
            for r in rows {
                out.push(r??);
            }
            Ok(out)
        })
    }

    /// Calls `f` on every event after `after`, in order, reading in one pass (fast export).
    pub fn for_each_blocking(&self, after: u64, until: u64, mut f: impl FnMut(StoredEvent) -> Result<(), StoreError>) -> Result<(), StoreError> {
        let until = until.min(self.shared.last.load(Ordering::Acquire));
        self.with_reader(|c| {
            let mut stmt = c.prepare_cached(&format!("{SELECT_EVENT} WHERE position > ?1 AND position <= ?2 ORDER BY position"))?;
            let rows = stmt.query_map(params![after as i64, until as i64], row_to_event)?;
            for r in rows {
                f(r??)?;
            }
            Ok(())
        })
    }

    pub fn read_stream_blocking(&self, stream: &str, from_version: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let positions: Vec<u64> = {
            let idx = self.shared.index.read().unwrap_or_else(|e| e.into_inner());
            match idx.streams.get(stream) {
                Some(p) => p.iter().skip(from_version as usize).take(limit).copied().collect(),
                None => return Ok(Vec::new()),
            }
        };
        self.with_reader(|c| {
            let mut stmt = c.prepare_cached(&format!("{SELECT_EVENT} WHERE position = ?1"))?;
            let mut out = Vec::with_capacity(positions.len());
            for p in positions {
                let ev = stmt.query_row([p as i64], row_to_event)??;
                out.push(ev);
            }
            Ok(out)
        })
    }

    /// The stream's last version, if it has events.
    pub fn stream_version(&self, stream: &str) -> Option<u64> {
        let idx = self.shared.index.read().unwrap_or_else(|e| e.into_inner());
        idx.streams.get(stream).map(|p| p.len() as u64 - 1)
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

fn load_index(conn: &Connection) -> Result<(Index, u64), StoreError> {
    let mut index = Index::default();
    let mut last = 0u64;
    let mut stmt = conn.prepare("SELECT position, id, stream, stream_version FROM events ORDER BY position")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let position = r.get::<_, i64>(0)? as u64;
        let id: Vec<u8> = r.get(1)?;
        let stream: String = r.get(2)?;
        let version = r.get::<_, i64>(3)? as u64;
        if position != last + 1 {
            return Err(StoreError::Integrity { position, what: format!("the log has a gap after position {last}") });
        }
        let id = Uuid::from_slice(&id).map_err(|_| StoreError::Integrity { position, what: "the id is not 16 bytes".into() })?;
        index.ids.insert(id.as_u128(), position);
        let positions = index.streams.entry(stream.into_boxed_str()).or_default();
        if positions.len() as u64 != version {
            return Err(StoreError::Integrity { position, what: "stream versions are not contiguous".into() });
        }
        positions.push(position);
        last = position;
    }
    Ok((index, last))
}

fn writer_loop(mut conn: Connection, rx: crossbeam_channel::Receiver<Job>, shared: Arc<Shared>, metrics: Arc<dyn WriterMetrics>) {
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
            let started = Instant::now();
            let jobs = appends.len();
            let n = commit_group(&mut conn, &shared, appends);
            metrics.group_committed(n, jobs, started.elapsed().as_secs_f64());
        }
        for job in others {
            match job {
                Job::Rewrap(keys, master_id, reply) => {
                    let _ = reply.send(rewrap(&mut conn, keys, &master_id));
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

fn rewrap(conn: &mut Connection, keys: Vec<WrappedKey>, master_id: &str) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut stmt = tx.prepare("UPDATE data_keys SET wrapped = ?3, master_key_id = ?4 WHERE customer = ?1 AND generation = ?2 AND wrapped IS NOT NULL")?;
        for k in &keys {
            stmt.execute(params![k.customer, k.generation, k.wrapped, master_id])?;
        }
        tx.execute("INSERT INTO meta(key, value) VALUES ('master_key_id', ?1) ON CONFLICT(key) DO UPDATE SET value = excluded.value", [master_id])?;
    }
    tx.commit()?;
    Ok(())
}

/// The stream positions the group has added so far, on top of the shared index.
#[derive(Default)]
struct Overlay {
    ids: FastMap<u128, (u64, [u8; 16], Option<u32>, String, u64)>,
    streams: FastMap<String, Vec<u64>>,
}

fn commit_group(conn: &mut Connection, shared: &Shared, jobs: Vec<(AppendRequest, oneshot::Sender<Result<Vec<Appended>, StoreError>>)>) -> usize {
    let recorded_at = time_text(&Utc::now());
    let last = shared.last.load(Ordering::Acquire);
    let idx = shared.index.read().unwrap_or_else(|e| e.into_inner());
    let mut overlay = Overlay::default();
    let mut next = last + 1;
    let mut replies = Vec::with_capacity(jobs.len());
    let result = (|| -> Result<(), StoreError> {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO events (position, id, stream, stream_version, type, version, customer, occurred_at, recorded_at, data, metadata, sealed, key_gen, digest)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?;
            let mut lookup = tx.prepare_cached("SELECT digest, key_gen, stream, stream_version FROM events WHERE position = ?1")?;
            let mut insert_key = tx.prepare_cached(
                "INSERT OR IGNORE INTO data_keys (customer, generation, wrapped, master_key_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut destroy_key =
                tx.prepare_cached("UPDATE data_keys SET wrapped = NULL, destroyed_at = ?3 WHERE customer = ?1 AND generation = ?2")?;
            for (req, reply) in jobs {
                // Decide everything about this job before writing any of it.
                let plan = plan_job(&req, &idx, &overlay, next, &mut lookup);
                let plan = match plan {
                    Ok(p) => p,
                    Err(e) => {
                        replies.push((reply, Err(e)));
                        continue;
                    }
                };
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
                    overlay.ids.insert(ev.id.as_u128(), (slot.position, ev.digest, key_gen, ev.stream.clone(), slot.stream_version));
                    overlay.streams.entry(ev.stream.clone()).or_default().push(slot.position);
                    next = slot.position + 1;
                }
                for k in &req.new_keys {
                    insert_key.execute(params![k.customer, k.generation, k.wrapped, k.master_key_id, recorded_at])?;
                }
                for (customer, generation) in &req.destroy_keys {
                    destroy_key.execute(params![customer, generation, recorded_at])?;
                }
                if !req.new_keys.is_empty() {
                    tx.execute(
                        "INSERT OR IGNORE INTO meta(key, value) VALUES ('master_key_id', ?1)",
                        [&req.new_keys[0].master_key_id],
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
                replies.push((reply, Ok(appended)));
            }
        }
        tx.commit()?;
        Ok(())
    })();
    drop(idx);
    let mut written = 0;
    match result {
        Ok(()) => {
            written = (next - 1 - last) as usize;
            if written > 0 {
                let mut idx = shared.index.write().unwrap_or_else(|e| e.into_inner());
                for (id, (pos, ..)) in overlay.ids {
                    idx.ids.insert(id, pos);
                }
                for (stream, positions) in overlay.streams {
                    idx.streams.entry(stream.into_boxed_str()).or_default().extend(positions);
                }
                drop(idx);
                shared.last.store(next - 1, Ordering::Release);
                shared.notify.send_replace(next - 1);
            }
            for (reply, r) in replies {
                let _ = reply.send(r);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "group commit failed; nothing of it was written");
            for (reply, _) in replies {
                let _ = reply.send(Err(StoreError::Io(e.to_string())));
            }
        }
    }
    written
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
    overlay: &Overlay,
    mut next: u64,
    lookup: &mut rusqlite::CachedStatement<'_>,
) -> Result<Vec<Slot>, StoreError> {
    let mut slots = Vec::with_capacity(req.events.len());
    // Ids and stream lengths this job itself adds, for duplicates inside one request.
    let mut local_ids: FastMap<u128, usize> = FastMap::default();
    let mut local_streams: FastMap<&str, u64> = FastMap::default();
    let stream_len = |s: &str, local: &FastMap<&str, u64>| -> u64 {
        idx.streams.get(s).map_or(0, |p| p.len() as u64) + overlay.streams.get(s).map_or(0, |p| p.len() as u64) + local.get(s).copied().unwrap_or(0)
    };
    if let Some((stream, _)) = &req.expected {
        if let Some(ev) = req.events.iter().find(|e| &e.stream != stream) {
            return Err(StoreError::Invalid(format!("event {} belongs to stream `{}`, not `{stream}`", ev.id, ev.stream)));
        }
    }
    for ev in &req.events {
        let key = ev.id.as_u128();
        let stored = if let Some(&(pos, digest, gen, ref stream, version)) = overlay.ids.get(&key) {
            Some((pos, digest, gen, stream.clone(), version))
        } else if let Some(&pos) = idx.ids.get(&key) {
            let (digest, gen, stream, version): (Vec<u8>, Option<u32>, String, i64) =
                lookup.query_row([pos as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            let digest: [u8; 16] = digest.as_slice().try_into().map_err(|_| StoreError::Integrity { position: pos, what: "bad digest".into() })?;
            Some((pos, digest, gen, stream, version as u64))
        } else {
            None
        };
        if let Some((pos, digest, gen, stream, version)) = stored {
            let new_gen = ev.sealed.as_ref().map(|(_, g)| *g);
            // Events sealed with different key generations cannot be compared (the old
            // key may be destroyed): the stored one wins and nothing is written, so a
            // late retry can never bring erased data back.
            let same = digest == ev.digest || (gen.is_some() && new_gen.is_some() && gen != new_gen);
            if !same {
                return Err(StoreError::IdConflict { id: ev.id, position: pos });
            }
            slots.push(Slot { position: pos, stream_version: version, duplicate: true, stream: Some(stream) });
            continue;
        }
        if let Some(&i) = local_ids.get(&key) {
            if req.events[i].digest != ev.digest {
                return Err(StoreError::IdConflict { id: ev.id, position: slots[i].position });
            }
            let s = &slots[i];
            let dup = Slot { position: s.position, stream_version: s.stream_version, duplicate: true, stream: None };
            slots.push(dup);
            continue;
        }
        let version = stream_len(&ev.stream, &local_streams);
        *local_streams.entry(ev.stream.as_str()).or_default() += 1;
        local_ids.insert(key, slots.len());
        slots.push(Slot { position: next, stream_version: version, duplicate: false, stream: None });
        next += 1;
    }
    if let Some((stream, expected)) = &req.expected {
        let all_duplicates = slots.iter().all(|s| s.duplicate);
        // A retried append whose events are all stored already succeeds again (idempotent).
        if !all_duplicates {
            let len = idx.streams.get(stream.as_str()).map_or(0, |p| p.len() as u64) + overlay.streams.get(stream).map_or(0, |p| p.len() as u64);
            let ok = match expected {
                ExpectedVersion::Any => true,
                ExpectedVersion::NoStream => len == 0,
                ExpectedVersion::Exact(v) => len == v + 1,
            };
            if !ok {
                let actual = if len == 0 { "no_stream".to_string() } else { (len - 1).to_string() };
                return Err(StoreError::WrongExpectedVersion { stream: stream.clone(), expected: *expected, actual });
            }
        }
    }
    Ok(slots)
}

#[async_trait::async_trait]
impl EventStore for SqliteStore {
    async fn append(&self, req: AppendRequest) -> Result<Vec<Appended>, StoreError> {
        if req.events.len() > super::APPEND_EVENTS_MAX {
            return Err(StoreError::Invalid(format!("at most {} events per append", super::APPEND_EVENTS_MAX)));
        }
        let (tx, rx) = oneshot::channel();
        // The queue is bounded; when it is full this waits, which is the back-pressure we want.
        let job = Job::Append(req, tx);
        let sender = self.jobs.lock().unwrap_or_else(|e| e.into_inner()).clone().ok_or(StoreError::Closed)?;
        let job = match sender.try_send(job) {
            Ok(()) => None,
            Err(crossbeam_channel::TrySendError::Full(job)) => Some(job),
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => return Err(StoreError::Closed),
        };
        if let Some(job) = job {
            tokio::task::spawn_blocking(move || sender.send(job)).await.map_err(|_| StoreError::Closed)?.map_err(|_| StoreError::Closed)?;
        }
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn read_stream(&self, stream: &str, from_version: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let limit = limit.min(super::READ_EVENTS_MAX);
        tokio::task::block_in_place(|| self.read_stream_blocking(stream, from_version, limit))
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let limit = limit.min(super::READ_EVENTS_MAX);
        tokio::task::block_in_place(|| self.read_all_blocking(after, limit))
    }

    fn last_position(&self) -> u64 {
        self.shared.last.load(Ordering::Acquire)
    }

    async fn wait_for_position_after(&self, seen: u64) {
        let mut rx = self.shared.notify.subscribe();
        let _ = rx.wait_for(|p| *p > seen).await;
    }

    async fn load_keys(&self) -> Result<Vec<WrappedKey>, StoreError> {
        tokio::task::block_in_place(|| {
            self.with_reader(|c| {
                let mut stmt = c.prepare("SELECT customer, generation, wrapped, master_key_id FROM data_keys ORDER BY customer, generation")?;
                let rows = stmt.query_map([], |r| {
                    Ok(WrappedKey { customer: r.get(0)?, generation: r.get(1)?, wrapped: r.get(2)?, master_key_id: r.get(3)? })
                })?;
                rows.collect::<Result<Vec<_>, _>>().map_err(StoreError::from)
            })
        })
    }

    async fn rewrap_keys(&self, keys: Vec<WrappedKey>, master_key_id: &str) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Job::Rewrap(keys, master_key_id.to_owned(), tx))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn master_key_id(&self) -> Result<Option<String>, StoreError> {
        tokio::task::block_in_place(|| {
            self.with_reader(|c| {
                c.query_row("SELECT value FROM meta WHERE key = 'master_key_id'", [], |r| r.get(0)).optional().map_err(StoreError::from)
            })
        })
    }

    async fn purge(&self) -> Result<(), StoreError> {
        // Idle readers hold no snapshot, but dropping them lets the checkpoint reset the WAL.
        self.readers.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let (tx, rx) = oneshot::channel();
        self.send(Job::Purge(tx))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}
