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

mod index;
mod keys;
mod read;
mod schema;
mod writer;

use index::*;
use keys::*;
use schema::*;
pub use schema::{connect, RawRow};
use writer::*;

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
/// end of the table, so a large cache buys nothing but resident memory in every process
/// that opens the store.
const PAGE_CACHE_KIB: u32 = 2_000;
/// Most positions [`EventStore::read_at`] reads on the async worker that calls it; more
/// are read under `block_in_place`.
const POINT_READS_INLINE_MAX: usize = 8;
/// Idle reader connections kept open.
const READERS_IDLE_MAX: usize = 8;

pub use crate::layout::{DATABASE_FILE as DB_FILE, LOCK_FILE};

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

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
    /// Set when a commit failed for want of disk space, cleared by the next that succeeds:
    /// readiness says it, and the error is logged once per episode.
    full: AtomicBool,
}

impl Shared {
    fn recorded_now(&self) -> String {
        let mut last = self.recorded.lock().unwrap_or_else(|e| e.into_inner());
        *last = (*last).max(Utc::now());
        time_text(&last)
    }
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
    /// Largest size of the database file, in bytes (SQLite's `max_page_count`); a write
    /// past it fails as a full disk would. `None`: the disk's room.
    pub max_bytes: Option<u64>,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            durable: true,
            metrics: Arc::new(NoMetrics),
            max_bytes: None,
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
    /// never need it, and building it is most of opening a large store.
    index_pending: AtomicBool,
    /// Held while a read-only store builds its index, so it is built once.
    index_building: Mutex<()>,
    /// Held until the store is closed so that a second writer cannot open it (`None` for a
    /// read-only store, which takes no lock).
    lock: Mutex<Option<File>>,
}

impl SqliteStore {
    /// Opens (or creates) the store in `dir`, taking an exclusive lock on it.
    pub fn open(dir: &Path, opts: SqliteOptions) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Io(format!("cannot create {}: {e}", dir.display())))?;
        // The store, its WAL, snapshots and keys are for the service's user alone: the
        // folder is closed to others whatever mode SQLite gives the files in it.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
                StoreError::Io(format!(
                    "cannot restrict {} to its owner: {e}",
                    dir.display()
                ))
            })?;
        }
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
        if let Some(max) = opts.max_bytes {
            let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
            let pages = (max / page.max(1) as u64).max(1);
            conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))?;
        }
        let (index, last) = load_index(&conn, u64::MAX)?;
        let (notify, _) = watch::channel(last);
        let shared = Arc::new(Shared {
            index: RwLock::new(index),
            last: AtomicU64::new(last),
            notify,
            recorded: Mutex::new(last_recorded(&conn)),
            full: AtomicBool::new(false),
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
            lock: Mutex::new(Some(lock)),
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
            full: AtomicBool::new(false),
        });
        Ok(SqliteStore {
            db_path,
            jobs: Mutex::new(None),
            shared,
            readers: Mutex::new(vec![conn]),
            writer: Mutex::new(None),
            index_pending: AtomicBool::new(true),
            index_building: Mutex::new(()),
            lock: Mutex::new(None),
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
        // Nothing more is written: another writer may open the store (a restart in the
        // same process), whoever still holds this one.
        self.lock.lock().unwrap_or_else(|e| e.into_inner()).take();
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
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
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

    fn is_full(&self) -> bool {
        self.shared.full.load(Ordering::Relaxed)
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
    async fn ids_that_share_a_fingerprint_are_told_apart_before_and_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let master = MasterKey::generate();
        let a = Uuid::from_u128(0x0123_4567_89ab_4def_8123_4567_89ab_cdef);
        let (b, c) = (twin(a, 0xdead_beef), twin(a, 0x1234_5678_9abc));
        for restart in [false, true] {
            let (store, log) = open_log(dir.path(), &master);
            if !restart {
                // A first, then its twins: new events, not duplicates of A.
                let first = log
                    .append(
                        &[purchase(a, "o-a")],
                        crate::log::AppendRules::all_or_nothing(),
                    )
                    .await
                    .unwrap();
                assert!(!first[0].duplicate);
                let twins = log
                    .append(
                        &[purchase(b, "o-b"), purchase(c, "o-c")],
                        crate::log::AppendRules::all_or_nothing(),
                    )
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
                    crate::log::AppendRules::all_or_nothing(),
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
                .append(
                    &[purchase(b, "o-other")],
                    crate::log::AppendRules::all_or_nothing(),
                )
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
            log.append(&[join], crate::log::AppendRules::all_or_nothing())
                .await
                .unwrap();
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
            crate::log::AppendRules::all_or_nothing(),
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
            .append_nowait(log.seal_request(&events, crate::log::AppendRules::all_or_nothing()))
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
