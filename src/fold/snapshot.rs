//! The snapshot file: a JSON header line (projection name, code version, position,
//! compression), then the state's bytes in an LZ4 frame. Written to a temporary file,
//! fsynced and renamed, so a reader sees a whole snapshot or none. Snapshots hold no
//! personal data (see `rapport_projections::customers::Profile`).

use std::path::{Path, PathBuf};

use rapport_projections::{warnings::WarningConfig, LifecycleConfig, Projection, ReadState};

use crate::{log::Log, store::StoreError};

/// Returns freed memory to the OS now. mimalloc (the service's allocator, see `main.rs`)
/// returns it lazily, during later allocations, so an idle server after a catch-up would
/// keep the catch-up's garbage resident. Harmless when another allocator is in use
/// (tests): it then only collects mimalloc's own empty heap.
pub(crate) fn release_freed_memory() {
    // SAFETY: `mi_collect` has no preconditions; it may be called from any thread.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// Threads that decode a snapshot into the state the server keeps (at start, and the
/// compaction after a catch-up): one, the calling thread. What a thread allocates stays in
/// its allocator heap, so decoding on other threads leaves their heaps' slack behind in
/// the server (the least resident memory was on the calling thread; `docs/benchmarks.md`).
pub const LIVE_STATE_DECODE_THREADS: usize = 1;

/// Threads that decode a snapshot for a time-travel query, which waits for it: every core.
pub fn query_decode_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct SnapshotHeader {
    pub projection: String,
    pub version: u32,
    pub position: u64,
    /// How the state after the header line is compressed: `"lz4"` (an LZ4 frame with a
    /// content checksum). A snapshot without it is not read (the state is rebuilt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// Bytes of the state once decompressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_bytes: Option<u64>,
    /// The ids of the events at a few positions up to `position` (see [`anchor_positions`]):
    /// which log the state was folded from. A snapshot whose anchors are not the log's
    /// events (an older store file restored, a lost WAL, another import) is rebuilt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anchors: Vec<(u64, uuid::Uuid)>,
}

/// The positions a snapshot at `position` names the events of: itself and three earlier
/// ones spread over the log, so a history that differs anywhere but in between is caught.
pub fn anchor_positions(position: u64) -> Vec<u64> {
    let mut v: Vec<u64> = [
        position / 4,
        position / 2,
        position - position / 4,
        position,
    ]
    .into_iter()
    .filter(|p| *p > 0)
    .collect();
    v.dedup();
    v
}

/// The anchors of a snapshot at `position`: the ids of the log's events there.
pub async fn anchors(log: &Log, position: u64) -> Result<Vec<(u64, uuid::Uuid)>, StoreError> {
    let positions = anchor_positions(position);
    let found = log.read_at(&positions).await?;
    Ok(found
        .into_iter()
        .map(|e| (e.position, e.event.id))
        .collect())
}

/// Whether the snapshot at `path` was folded from `log`: it names the events at its anchor
/// positions and they are the log's. Reads the header line only, and a few events.
pub async fn from_this_log(path: &Path, log: &Log) -> bool {
    let Some(header) = read_header(path) else {
        return false;
    };
    if header.position == 0 {
        return true;
    }
    if header.anchors.is_empty() || header.position > log.last_position() {
        return false;
    }
    let want: Vec<u64> = header.anchors.iter().map(|a| a.0).collect();
    if want != anchor_positions(header.position) {
        return false;
    }
    match anchors(log, header.position).await {
        Ok(now) if now == header.anchors => true,
        Ok(_) => {
            tracing::warn!(
                path = %path.display(),
                position = header.position,
                "snapshot folded from another history of the log (its events are not the log's); rebuilding"
            );
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not read the snapshot's anchor events; rebuilding");
            false
        }
    }
}

/// The header line of a snapshot file, if it has a readable one.
fn read_header(path: &Path) -> Option<SnapshotHeader> {
    use std::io::BufRead as _;
    let f = std::fs::File::open(path).ok()?;
    let mut line = Vec::new();
    std::io::BufReader::new(f)
        .read_until(b'\n', &mut line)
        .ok()?;
    serde_json::from_slice(line.strip_suffix(b"\n").unwrap_or(&line)).ok()
}

/// LZ4, not zstd: it halves a state and decompresses several times faster than zstd's
/// fastest level, which compresses better but costs its reading time on every
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
        None => anyhow::bail!("uncompressed snapshot (no longer read)"),
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

pub fn snapshot_path(dir: &Path) -> PathBuf {
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
    // The snapshot's bytes (hundreds of MB at a million customers) were freed on this
    // thread; the allocator returns such pages only when this thread next allocates or
    // collects, and it may never do either.
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
pub fn write_snapshot(
    dir: &Path,
    position: u64,
    anchors: Vec<(u64, uuid::Uuid)>,
    state: &[u8],
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    write_snapshot_to(&snapshot_path(dir), position, anchors, state)
}

/// Writes a snapshot file at `path` atomically (`path.tmp`, fsync, rename).
pub fn write_snapshot_to(
    path: &Path,
    position: u64,
    anchors: Vec<(u64, uuid::Uuid)>,
    state: &[u8],
) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("snapshot.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    let header = SnapshotHeader {
        projection: ReadState::NAME.into(),
        version: ReadState::VERSION,
        position,
        compression: Some(SNAPSHOT_COMPRESSION.into()),
        state_bytes: Some(state.len() as u64),
        anchors,
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

/// The greatest position this data directory's snapshots were folded up to (the live
/// snapshot and the history kept for time travel): events up to it were acknowledged and
/// applied once.
pub fn published_position(snapshots: &Path) -> Option<u64> {
    let live = read_header(&snapshot_path(snapshots)).map(|h| h.position);
    let history = super::history::history_snapshot_before(snapshots, u64::MAX).map(|(p, _)| p);
    live.max(history)
}

/// Refuses a store that holds fewer events than its snapshots were folded from: events
/// acknowledged once are gone (a damaged or deleted WAL, an older store file restored
/// without its snapshots), and appending now would give their positions to other events.
pub fn check_not_rewound(snapshots: &Path, last_position: u64) -> anyhow::Result<()> {
    match published_position(snapshots) {
        Some(p) if p > last_position => anyhow::bail!(
            "the store holds {last_position} events, but snapshots in {} were folded from {p}: \
             acknowledged events are missing (a damaged or deleted `-wal` file, or an older store \
             file restored). Refusing to start, so that their positions are not given to other \
             events. Restore the store with its WAL from a backup; or, to accept the loss, move \
             the snapshots folder aside and start again",
            snapshots.display()
        ),
        _ => Ok(()),
    }
}
