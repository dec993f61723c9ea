//! The read model: the projections of `rapport-projections`, kept up to date by a
//! catch-up-then-live subscription on the log, and the wait that gives read-your-writes.
//!
//! Snapshots: every [`SNAPSHOT_EVERY_EVENTS`] applied events the state is written to
//! `<data-dir>/snapshots/read_state.snapshot` (a JSON header line with the projection's name,
//! code version and position, then the state; written to a temporary file, fsynced and
//! renamed). At start the snapshot is loaded if its version is the code's and its position
//! is in the log; otherwise the projection is rebuilt from the first event and says why.
//! Snapshots hold no personal data (see `rapport_projections::customers::Profile`).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use rapport_projections::{warnings::WarningConfig, LifecycleConfig, Projection, ReadState};
use tokio::sync::{watch, RwLock};

use crate::{log::Log, store};

/// Default longest wait of a query for `min_position` before it answers 503.
pub const MIN_POSITION_WAIT_MS: u64 = 5_000;
/// Events read and opened per batch.
const APPLY_BATCH_EVENTS: usize = 1024;
/// Events applied under one hold of the write lock (readers queue between holds).
const APPLY_LOCK_EVENTS_MAX: usize = 64;
/// Opened batches waiting for the applier.
const APPLY_QUEUE_BATCHES: usize = 8;
/// A snapshot is written after this many events since the last one.
pub const SNAPSHOT_EVERY_EVENTS: u64 = 100_000;
/// Positions between the snapshots kept for time travel: an as-of query replays at most
/// this many events after loading one.
pub const HISTORY_EVERY_EVENTS: u64 = 250_000;

/// Returns freed memory to the OS now. mimalloc (the service's allocator, see `main.rs`)
/// returns it lazily, during later allocations: after a catch-up an idle server held
/// 503 MiB where 393 MiB were live (100,000 customers, 1 M events). Harmless when another
/// allocator is in use (tests): it then only collects mimalloc's own empty heap.
fn release_freed_memory() {
    // SAFETY: `mi_collect` has no preconditions; it may be called from any thread.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// What writing a snapshot at a position did: the write, and the history link if one was
/// due.
type SnapshotWrite = (u64, std::io::Result<()>, Option<std::io::Result<()>>);

/// Takes note of a finished snapshot write.
fn settle(
    done: Result<SnapshotWrite, tokio::task::JoinError>,
    snapshot_at: &mut u64,
    history_at: &mut u64,
) {
    match done {
        Ok((at, Ok(()), kept)) => {
            *snapshot_at = at;
            match kept {
                Some(Ok(())) => *history_at = at,
                Some(Err(e)) => tracing::warn!(error = %e, "could not keep a history snapshot"),
                None => {}
            }
        }
        Ok((_, Err(e), _)) => tracing::warn!(error = %e, "could not write the snapshot"),
        Err(e) => tracing::warn!(error = %e, "could not write the snapshot"),
    }
}

/// Threads that decode a snapshot into the state the server keeps (at start, and the
/// compaction after a catch-up): one, the calling thread. What a thread allocates stays in
/// its allocator heap; restarted on a million customers' snapshot, the server held 990 MiB
/// with the profiles decoded on two threads, 999 MiB on one started for it, and 963 MiB on
/// the calling thread (966 MiB before chunked snapshots; `docs/benchmarks.md`, session 11).
pub const LIVE_STATE_DECODE_THREADS: usize = 1;

/// Threads that decode a snapshot for a time-travel query, which waits for it: every core.
pub fn query_decode_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The service's default for [`ReadModelOptions::compact_after_catch_up_events`].
pub const COMPACT_AFTER_CATCH_UP_EVENTS: u64 = 1_000_000;

/// Replaces the state by a copy of itself made from its snapshot bytes. A long catch-up
/// leaves the state scattered among the freed remains of the events it folded (pages the
/// allocator cannot return because a few live blocks sit in each); the copy is packed.
/// Measured at 1 M customers and 10 M events: see `docs/benchmarks.md`. Events wait
/// meanwhile (the applier is this task); queries go on reading the old state.
async fn compact(m: &ReadModel) {
    let started = std::time::Instant::now();
    let bytes = m.state.read().await.snapshot_bytes();
    let decode = move || ReadState::from_snapshot_bytes(&bytes, LIVE_STATE_DECODE_THREADS);
    match tokio::task::spawn_blocking(decode).await {
        Ok(Ok(copy)) => {
            let old = std::mem::replace(&mut *m.state.write().await, copy);
            drop(old);
            m.compactions.send_modify(|n| *n += 1);
            tracing::info!(
                millis = started.elapsed().as_millis() as u64,
                "compacted the read model after its catch-up"
            );
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "could not compact the read model"),
        Err(e) => tracing::warn!(error = %e, "could not compact the read model"),
    }
}

/// Runs the catch-up in `child`, then puts the snapshot it left into the state; returns
/// the position the state is then at (`from` if the child failed).
async fn catch_up_in_child(
    m: &ReadModel,
    log: &Log,
    child: &FoldChild,
    dir: &Path,
    lifecycle: &LifecycleConfig,
    warnings: &WarningConfig,
    from: u64,
) -> u64 {
    let started = std::time::Instant::now();
    tracing::info!(from, "catching up in a child process");
    if let Err(e) = child.run().await {
        tracing::warn!(
            error = format!("{e:#}"),
            "the catch-up process failed; catching up here"
        );
    }
    let last = log.store.last_position();
    let loaded = tokio::task::block_in_place(|| load_snapshot(dir, last, lifecycle, warnings));
    match loaded.filter(|s| s.position() > from) {
        Some(state) => {
            let position = state.position();
            let latest = state.segments.clock();
            *m.state.write().await = state;
            *m.latest.write().await = latest;
            // Logged before it is published: whoever sees the position may rely on it.
            tracing::info!(
                position,
                seconds = started.elapsed().as_secs_f64(),
                "loaded the catch-up process's snapshot"
            );
            m.applied.send_replace(position);
            position
        }
        None => from,
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct SnapshotHeader {
    pub projection: String,
    pub version: u32,
    pub position: u64,
    /// How the state after the header line is compressed: `"lz4"` (an LZ4 frame with a
    /// content checksum), or absent for none (snapshots written before compression; still
    /// read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// Bytes of the state once decompressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_bytes: Option<u64>,
}

/// LZ4, not zstd: a 10 M-event state (211 MB) becomes 93 MB and decompresses in about
/// 0.13 s; zstd's fastest level made it 66 MB but took 0.25–0.45 s to read back, on every
/// `as_of_position` query that loads a history snapshot.
const SNAPSHOT_COMPRESSION: &str = "lz4";

/// A snapshot file's header and its state bytes (decompressed).
pub fn read_snapshot_file(path: &Path) -> anyhow::Result<(SnapshotHeader, Vec<u8>)> {
    use anyhow::Context as _;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let split = bytes
        .iter()
        .position(|b| *b == b'\n')
        .context("no header line")?;
    let header: SnapshotHeader =
        serde_json::from_slice(&bytes[..split]).context("unreadable header")?;
    let body = &bytes[split + 1..];
    let state = match header.compression.as_deref() {
        None => body.to_vec(),
        Some(SNAPSHOT_COMPRESSION) => {
            let mut out = Vec::with_capacity(header.state_bytes.unwrap_or(0) as usize);
            std::io::Read::read_to_end(&mut lz4_flex::frame::FrameDecoder::new(body), &mut out)
                .context("corrupt compressed state")?;
            out
        }
        Some(other) => anyhow::bail!("unknown compression `{other}`"),
    };
    Ok((header, state))
}

/// Reads only the header line of a snapshot file.
pub fn read_snapshot_header(path: &Path) -> Option<SnapshotHeader> {
    use std::io::BufRead;
    let mut line = Vec::new();
    std::io::BufReader::new(std::fs::File::open(path).ok()?)
        .read_until(b'\n', &mut line)
        .ok()?;
    serde_json::from_slice(&line).ok()
}

fn snapshot_path(dir: &Path) -> PathBuf {
    dir.join(format!("{}.snapshot", ReadState::NAME))
}

/// Loads the snapshot if it was written by this code's projection version and is not ahead
/// of the log; otherwise says why not and returns `None`.
pub fn load_snapshot(
    dir: &Path,
    last_position: u64,
    lifecycle: &LifecycleConfig,
    warnings: &WarningConfig,
) -> Option<ReadState> {
    let loaded = load_snapshot_file(
        &snapshot_path(dir),
        last_position,
        lifecycle,
        warnings,
        LIVE_STATE_DECODE_THREADS,
    );
    // The snapshot's bytes (over 200 MB at a million customers) were freed on this
    // thread; the allocator returns such pages only when this thread next allocates or
    // collects, and it may not (a restarted server held 1,137–1,159 MiB instead of
    // 910–928 in some runs).
    release_freed_memory();
    loaded
}

/// Loads one snapshot file under the same checks as [`load_snapshot`], decoding on up to
/// `threads` threads.
pub fn load_snapshot_file(
    path: &Path,
    last_position: u64,
    lifecycle: &LifecycleConfig,
    warnings: &WarningConfig,
    threads: usize,
) -> Option<ReadState> {
    if !path.exists() {
        return None;
    }
    let started = std::time::Instant::now();
    let (header, bytes) = match read_snapshot_file(path) {
        Ok(read) => read,
        Err(e) => {
            tracing::warn!(
                error = format!("{e:#}"),
                "unreadable snapshot; rebuilding from the first event"
            );
            return None;
        }
    };
    if header.projection != ReadState::NAME || header.version != ReadState::VERSION {
        tracing::warn!(
            found = header.version,
            code = ReadState::VERSION,
            "snapshot written by another projection version; rebuilding from the first event"
        );
        return None;
    }
    if header.position > last_position {
        tracing::warn!(
            snapshot = header.position,
            log = last_position,
            "snapshot is ahead of the log; rebuilding from the first event"
        );
        return None;
    }
    let read = started.elapsed();
    let decoded = ReadState::from_snapshot_bytes(&bytes, threads);
    tracing::debug!(
        path = %path.display(),
        bytes = bytes.len(),
        read_ms = read.as_millis() as u64,
        decode_ms = (started.elapsed() - read).as_millis() as u64,
        "loaded a snapshot"
    );
    match decoded {
        Ok(c)
            if c.position() == header.position
                && c.segments.config() == lifecycle
                && c.warnings.config() == warnings =>
        {
            Some(c)
        }
        Ok(c) if c.position() == header.position => {
            tracing::warn!("snapshot taken with other lifecycle or early-warning thresholds; rebuilding from the first event");
            None
        }
        Ok(_) => {
            tracing::warn!("snapshot header and body disagree; rebuilding from the first event");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "unreadable snapshot; rebuilding from the first event");
            None
        }
    }
}

/// Writes the live snapshot of `dir` atomically (temporary file, fsync, rename).
pub fn write_snapshot(dir: &Path, position: u64, state: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    write_snapshot_to(&snapshot_path(dir), position, state)
}

/// Writes a snapshot file at `path` atomically (`path.tmp`, fsync, rename).
pub fn write_snapshot_to(path: &Path, position: u64, state: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("snapshot.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    let header = SnapshotHeader {
        projection: ReadState::NAME.into(),
        version: ReadState::VERSION,
        position,
        compression: Some(SNAPSHOT_COMPRESSION.into()),
        state_bytes: Some(state.len() as u64),
    };
    serde_json::to_writer(&mut f, &header)?;
    f.write_all(b"\n")?;
    let frame = lz4_flex::frame::FrameInfo::new()
        .block_size(lz4_flex::frame::BlockSize::Max4MB)
        .content_size(Some(state.len() as u64))
        .content_checksum(true);
    let mut z =
        lz4_flex::frame::FrameEncoder::with_frame_info(frame, std::io::BufWriter::new(&mut f));
    z.write_all(state)?;
    z.finish().map_err(std::io::Error::other)?.flush()?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Keeps the current snapshot (just written at `position`) for time travel, as a hard link.
fn keep_history(dir: &Path, position: u64) -> std::io::Result<()> {
    let history = crate::replay::history_dir(dir);
    std::fs::create_dir_all(&history)?;
    let target = history.join(format!("{position}.snapshot"));
    if !target.exists() {
        std::fs::hard_link(snapshot_path(dir), target)?;
    }
    Ok(())
}

/// How the read model runs; every option is set by the caller.
#[derive(Clone)]
pub struct ReadModelOptions {
    pub lifecycle: LifecycleConfig,
    pub warnings: WarningConfig,
    /// Longest wait of a query for `min_position`.
    pub min_position_wait: Duration,
    /// Where snapshots live; `None` keeps everything in memory only.
    pub snapshots: Option<PathBuf>,
    pub snapshot_every_events: u64,
    /// A snapshot is kept for time travel at least this many positions after the last
    /// one kept (`<snapshots>/history/<position>.snapshot`, a hard link).
    pub history_every_events: u64,
    /// A catch-up at start that folds at least this many events is followed by one
    /// compaction of the state (see [`compact`]).
    pub compact_after_catch_up_events: u64,
    /// Where a long catch-up at start runs instead of in this process (see
    /// [`FoldChild`]); `None` folds every backlog here.
    pub catch_up_child: Option<FoldChild>,
}

/// A catch-up at start of at least `min_events` runs in a child process (`rapport
/// catch-up`), which folds the log from the snapshot, writes the snapshots a catch-up here
/// would have written, and exits; the read model then loads the last one as at a restart
/// and folds what is left. What folding leaves behind in the heap (pages kept resident by
/// a few live blocks each, which no compaction in place got rid of: 998–1,075 MiB after a
/// catch-up here against 961–967 MiB restarted, a million customers) goes with the child.
/// Meanwhile the read model answers from the state it started with, as during any
/// catch-up. If the child fails, the catch-up runs here after all.
///
/// The same runs the business-time builds of `valid_at` (`rapport valid-time`, see
/// [`crate::valid_time::spawn_builds`]), with `min_events` the growth of the log that
/// starts one.
#[derive(Clone)]
pub struct FoldChild {
    /// The `rapport` executable.
    pub program: PathBuf,
    /// Its arguments (`catch-up --data-dir …` or `valid-time --data-dir …`).
    pub args: Vec<std::ffi::OsString>,
    /// Written to its standard input: the master key (so it is in no argument and no
    /// environment variable), then the configuration as JSON.
    pub stdin: zeroize::Zeroizing<String>,
    pub min_events: u64,
}

impl FoldChild {
    /// Runs the child to its end. It is started and waited for on a thread of its own,
    /// which lives as long as the child: the child dies with the thread that started it
    /// (`PR_SET_PDEATHSIG`), and a runtime worker can end while the child still runs
    /// (after `block_in_place`, a worker finishes as a blocking thread).
    pub async fn run(&self) -> anyhow::Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let me = self.clone();
        std::thread::Builder::new()
            .name("rapport-child".into())
            .spawn(move || {
                let _ = tx.send(me.run_blocking());
            })?;
        rx.await
            .map_err(|_| anyhow::anyhow!("the child's thread ended without an answer"))?
    }

    fn run_blocking(&self) -> anyhow::Result<()> {
        use std::io::Write;
        let mut child = std::process::Command::new(&self.program)
            .args(&self.args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()?;
        let mut stdin = child.stdin.take().expect("piped");
        let written = stdin.write_all(self.stdin.as_bytes());
        drop(stdin);
        if let Err(e) = written {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e.into());
        }
        let status = child.wait()?;
        anyhow::ensure!(
            status.success(),
            "the child process `{}` ended with {status}",
            self.args
                .first()
                .map(|a| a.to_string_lossy())
                .unwrap_or_default()
        );
        Ok(())
    }
}

impl ReadModelOptions {
    /// The service's defaults, with snapshots in `dir`.
    pub fn service(dir: Option<PathBuf>) -> ReadModelOptions {
        ReadModelOptions {
            lifecycle: LifecycleConfig::default(),
            warnings: WarningConfig::default(),
            min_position_wait: Duration::from_millis(MIN_POSITION_WAIT_MS),
            snapshots: dir,
            snapshot_every_events: SNAPSHOT_EVERY_EVENTS,
            history_every_events: HISTORY_EVERY_EVENTS,
            compact_after_catch_up_events: COMPACT_AFTER_CATCH_UP_EVENTS,
            catch_up_child: None,
        }
    }
}

pub struct ReadModel {
    pub state: RwLock<ReadState>,
    /// The time of the latest event applied (`occurred_at`): the default `as_of`.
    pub latest: RwLock<Option<DateTime<Utc>>>,
    pub lifecycle: LifecycleConfig,
    /// Longest wait for `min_position`.
    pub min_position_wait: Duration,
    /// Past states for `as_of_position`, `known_at`, `valid_at`.
    pub time_travel: crate::replay::TimeTravel,
    applied: watch::Sender<u64>,
    /// How many times the state was compacted (at most once, after the catch-up at start).
    compactions: watch::Sender<u64>,
}

impl ReadModel {
    /// Starts following the log from its first event.
    /// Starts following the log, from the snapshot in `opts.snapshots` when there is a
    /// usable one.
    pub fn spawn(log: Log, opts: ReadModelOptions) -> Arc<ReadModel> {
        let ReadModelOptions {
            lifecycle,
            warnings,
            min_position_wait,
            snapshots,
            snapshot_every_events,
            history_every_events,
            compact_after_catch_up_events,
            catch_up_child,
        } = opts;
        let time_travel = crate::replay::TimeTravel::new(
            log.clone(),
            snapshots.clone(),
            lifecycle,
            warnings.clone(),
        );
        let start = snapshots
            .as_deref()
            .and_then(|d| load_snapshot(d, log.store.last_position(), &lifecycle, &warnings))
            .unwrap_or_else(|| ReadState::new(lifecycle, warnings.clone()));
        let from = start.position();
        if from > 0 {
            tracing::info!(position = from, "read model resumed from its snapshot");
        }
        let latest = start.segments.clock();
        let (applied, _) = watch::channel(from);
        let model = Arc::new(ReadModel {
            state: RwLock::new(start),
            latest: RwLock::new(latest),
            lifecycle,
            min_position_wait,
            time_travel,
            applied,
            compactions: watch::Sender::new(0),
        });
        let m = model.clone();
        let store = log.store.clone();
        let child = catch_up_child.filter(|c| {
            snapshots.is_some() && store.last_position().saturating_sub(from) >= c.min_events
        });
        tokio::spawn(async move {
            let from = match (child, snapshots.as_deref()) {
                (Some(child), Some(dir)) => {
                    catch_up_in_child(&m, &log, &child, dir, &lifecycle, &warnings, from).await
                }
                _ => from,
            };
            m.follow(
                log,
                from,
                snapshots,
                snapshot_every_events,
                history_every_events,
                compact_after_catch_up_events,
            )
            .await;
        });
        model
    }

    /// Folds the log from `from` (where the state is), catch-up then live, writing
    /// snapshots into `snapshots`; returns only when the log's subscription ends.
    async fn follow(
        self: Arc<ReadModel>,
        log: Log,
        from: u64,
        snapshots: Option<PathBuf>,
        snapshot_every_events: u64,
        history_every_events: u64,
        compact_after_catch_up_events: u64,
    ) {
        let m = self;
        let store = log.store.clone();
        // Two stages, so reading and decoding overlap with folding: a reader task opens
        // events and hands batches over a bounded channel to the applier task.
        let (tx, mut rx) =
            tokio::sync::mpsc::channel::<Vec<rapport_events::FoldEvent>>(APPLY_QUEUE_BATCHES);
        tokio::spawn(async move {
            let mut events =
                store::subscribe(log.store.clone(), from).ready_chunks(APPLY_BATCH_EVENTS);
            while let Some(batch) = events.next().await {
                let mut opened = Vec::with_capacity(batch.len());
                for r in batch {
                    // What projections may see: see `Log::open_fold`.
                    match r.and_then(|s| log.open_fold(s)) {
                        Ok(ev) => opened.push(ev),
                        Err(e) => {
                            tracing::error!(error = %e, "the read model stopped: an event could not be read");
                            return;
                        }
                    }
                }
                if tx.send(opened).await.is_err() {
                    return;
                }
            }
        });
        {
            let mut snapshot_at = from;
            let mut history_at = snapshots
                .as_deref()
                .and_then(|d| crate::replay::history_snapshot_before(d, u64::MAX))
                .map_or(0, |(p, _)| p);
            // Whether the last batch left a backlog behind it.
            let mut behind = true;
            let mut compacted = false;
            // A snapshot being written in the background (while catching up).
            let mut writing: Option<tokio::task::JoinHandle<SnapshotWrite>> = None;
            while let Some(opened) = rx.recv().await {
                let Some(last) = opened.last().map(|e| e.position) else {
                    continue;
                };
                // Operator events (segments, alerts) never move the business clock.
                let newest = opened
                    .iter()
                    .filter(|e| e.event_type.records_business_time())
                    .map(|e| e.occurred_at)
                    .max();
                // Short write-lock holds, so lookups (fair queue) get in between.
                for part in opened.chunks(APPLY_LOCK_EVENTS_MAX) {
                    let mut c = m.state.write().await;
                    for ev in part {
                        c.apply(ev);
                    }
                }
                {
                    let mut latest = m.latest.write().await;
                    *latest = (*latest).max(newest);
                }
                // The snapshot (every `snapshot_every_events`) is written before the new
                // position is published, so whoever sees position P may rely on a snapshot
                // at or after the last interval boundary before P. While catching up the
                // file is written and synced in the background (the next snapshot, or the
                // end of the catch-up, waits for it) and folding goes on.
                if let Some(dir) = &snapshots {
                    // While catching up on a long backlog, only the snapshots that become
                    // history are written: a snapshot costs as much as folding a few hundred
                    // thousand events, and a restart mid-way redoes at most one interval.
                    let catching_up =
                        store.last_position().saturating_sub(last) >= snapshot_every_events;
                    let due = |snapshot_at: u64, history_at: u64| {
                        let history = last - history_at >= history_every_events || history_at == 0;
                        let snapshot = last - snapshot_at >= snapshot_every_events
                            && (!catching_up || history);
                        (snapshot, history)
                    };
                    if due(snapshot_at, history_at).0 {
                        if let Some(w) = writing.take() {
                            settle(w.await, &mut snapshot_at, &mut history_at);
                        }
                    }
                    if let (true, history) = due(snapshot_at, history_at) {
                        let bytes = {
                            let state = m.state.read().await;
                            state.snapshot_bytes()
                        };
                        let d = dir.clone();
                        let w = tokio::task::spawn_blocking(move || {
                            let written = write_snapshot(&d, last, &bytes);
                            let kept = (history && written.is_ok()).then(|| keep_history(&d, last));
                            (last, written, kept)
                        });
                        if catching_up {
                            writing = Some(w);
                        } else {
                            settle(w.await, &mut snapshot_at, &mut history_at);
                        }
                    }
                }
                let now_behind = store.last_position() > last;
                let caught_up = behind && !now_behind;
                if caught_up {
                    if let Some(w) = writing.take() {
                        settle(w.await, &mut snapshot_at, &mut history_at);
                    }
                }
                m.applied.send_replace(last);
                // Once, after the catch-up at start, once its end is published: queries
                // read the old state meanwhile (the content is the same), new events wait.
                if caught_up && !compacted && last - from >= compact_after_catch_up_events {
                    compact(&m).await;
                    compacted = true;
                }
                if caught_up {
                    // Caught up: the batches, decoded events and snapshot buffers of the
                    // catch-up are garbage now. An idle server would keep them resident.
                    release_freed_memory();
                }
                behind = now_behind;
            }
        }
    }

    /// A receiver that sees every new applied position (for live feeds).
    pub fn watch_applied(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// A receiver of how many times the state was compacted (at most once, after the
    /// catch-up at start, once its end is published).
    pub fn watch_compactions(&self) -> watch::Receiver<u64> {
        self.compactions.subscribe()
    }

    pub fn applied_position(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Waits until the read model has applied `position`; `false` on timeout.
    pub async fn wait_for(&self, position: u64) -> bool {
        let mut rx = self.applied.subscribe();
        tokio::time::timeout(self.min_position_wait, rx.wait_for(|p| *p >= position))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}
