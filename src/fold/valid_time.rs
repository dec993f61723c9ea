//! Business time (`valid_at=T`): the state folded from the events that occurred by `T`, in
//! the order they occurred.
//!
//! A `valid_at` state is the fold of the events recorded up to the query's position whose
//! `occurred_at` ≤ `T`, taken in **business order**: by `occurred_at`, then by position.
//! Lenses (segment definitions and erasures, which apply at every business time) come
//! first, in position order. So a `valid_at` answer depends on what occurred, not on when
//! it was imported: a shop's sales of 28 February imported on 3 March fold exactly where
//! they would have, had they arrived on time.
//!
//! Business order is also what makes these queries fast on any log. A **build** folds the
//! whole log once in business order and keeps a snapshot every `every_events` events of
//! that order, with the keys of the events between two snapshots (a *slice*):
//!
//! ```text
//! <snapshots>/valid/<until>/manifest.json   what was built: `until`, the cut after each snapshot
//!                          /<i>.snapshot     the state after the first i·every events (i ≥ 1)
//!                          /<i>.keys         the keys of the events after snapshot i (20 bytes each)
//! ```
//!
//! A query at `(P, T)` takes the newest build with `until ≤ P` and the events recorded
//! after it (the *tail*). It starts from the latest snapshot whose events all occurred by
//! `T` and none of whose events comes after a tail event in business order, then folds the
//! keys of the next slices up to `T` merged with the tail's, in business order. On a
//! freshly built log that is one snapshot and at most `every_events` events, however
//! shuffled its business times are. A tail event that occurred early (a late import)
//! pushes the start back to before it, until the next build; a lens in the tail pushes it
//! back to the first event. Without a usable build the fold starts from the first event.
//!
//! Builds are written by `rapport valid-time` (a child process of `serve`, see
//! `read_model::builds`) and by [`build`] in-process; a build becomes visible only once
//! complete (its folder is renamed into place), and older builds are then removed.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use rapport_events::{EventType, FoldEvent};
use rapport_projections::{warnings::WarningConfig, LifecycleConfig, Projection, ReadState};

use super::{fold_batches, snapshot, Opened};
use crate::{
    log::Log,
    store::{StoreError, StoredEvent, READ_EVENTS_MAX},
};

/// Bytes of one key in a `.keys` file: seconds (i64), nanoseconds (u32), position (u64),
/// little-endian.
const KEY_BYTES: usize = 20;

/// Where an event goes in business order: by `occurred_at`, then position; a lens before
/// every other event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    secs: i64,
    nanos: u32,
    pub position: u64,
}

impl Key {
    /// Before every key.
    pub(crate) const MIN: Key = Key {
        secs: i64::MIN,
        nanos: 0,
        position: 0,
    };

    pub fn of(ty: EventType, occurred_at: DateTime<Utc>, position: u64) -> Key {
        if ty.applies_at_every_valid_time() {
            Key {
                secs: i64::MIN,
                nanos: 0,
                position,
            }
        } else {
            Key {
                secs: occurred_at.timestamp(),
                nanos: occurred_at.timestamp_subsec_nanos(),
                position,
            }
        }
    }

    /// The greatest key of an event that occurred by `t`: a fold at `valid_at = t` takes
    /// the events whose key is at most this.
    pub fn last_by(t: DateTime<Utc>) -> Key {
        Key {
            secs: t.timestamp(),
            nanos: t.timestamp_subsec_nanos(),
            position: u64::MAX,
        }
    }

    fn write(self, out: &mut Vec<u8>) {
        out.extend(self.secs.to_le_bytes());
        out.extend(self.nanos.to_le_bytes());
        out.extend(self.position.to_le_bytes());
    }

    fn read(b: &[u8; KEY_BYTES]) -> Key {
        let (s, rest) = b.split_at(8);
        let (n, p) = rest.split_at(4);
        Key {
            secs: i64::from_le_bytes(s.try_into().expect("8 bytes")),
            nanos: u32::from_le_bytes(n.try_into().expect("4 bytes")),
            position: u64::from_le_bytes(p.try_into().expect("8 bytes")),
        }
    }
}

/// Reads the log `(after, until]` in order, a batch at a time, into `f`.
async fn for_each_batch(
    log: &Log,
    after: u64,
    until: u64,
    mut f: impl FnMut(Vec<StoredEvent>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut batches = log.batches(after, until);
    while let Some(batch) = batches.next().await {
        f(batch?)?;
    }
    Ok(())
}

/// The keys of the events `(after, until]`, in position order.
pub async fn scan_keys(log: &Log, after: u64, until: u64) -> Result<Vec<Key>, StoreError> {
    let mut keys = Vec::with_capacity(until.saturating_sub(after) as usize);
    for_each_batch(log, after, until, |batch| {
        keys.extend(
            batch
                .iter()
                .map(|s| Key::of(s.event.event_type, s.event.occurred_at, s.position)),
        );
        Ok(())
    })
    .await?;
    Ok(keys)
}

/// The fold at `(position, t)` for a store whose reads by position are slow (KurrentDB:
/// one request each, see `EventStore::point_reads_are_cheap`): reads `(0, position]` in
/// order, keeps in memory what occurred by `t`, sorts it and folds it. Memory grows with
/// the events kept.
pub async fn fold_in_memory(
    log: &Log,
    mut state: ReadState,
    position: u64,
    t: DateTime<Utc>,
    mut on_batch: impl FnMut(u64),
) -> Result<ReadState, StoreError> {
    let last = Key::last_by(t);
    let mut kept = Vec::new();
    for_each_batch(log, 0, position, |batch| {
        for s in batch {
            let key = Key::of(s.event.event_type, s.event.occurred_at, s.position);
            if key <= last {
                kept.push((key, log.open_fold(s)?));
            }
        }
        Ok(())
    })
    .await?;
    kept.sort_unstable_by_key(|(k, _)| *k);
    for (_, ev) in &kept {
        state.apply(ev);
    }
    on_batch(kept.len() as u64);
    Ok(state)
}

/// Folds the events of `keys` (sorted) into `state`, in that order: a task reads and opens
/// the next batch (its positions in ascending order, one pass through the store) while
/// this one folds the previous. `on_batch` is told how many events were read.
pub async fn fold_keys(
    log: &Log,
    state: ReadState,
    keys: Vec<Key>,
    on_batch: impl FnMut(u64),
) -> Result<ReadState, StoreError> {
    debug_assert!(keys.is_sorted());
    let keys = Arc::new(keys);
    fold_batches(state, |tx| read_in_order(log.clone(), keys, tx), on_batch).await
}

async fn read_in_order(log: Log, keys: Arc<Vec<Key>>, tx: tokio::sync::mpsc::Sender<Opened>) {
    for chunk in keys.chunks(READ_EVENTS_MAX) {
        let opened = read_chunk(&log, chunk).await;
        let failed = opened.is_err();
        if tx.send(opened).await.is_err() || failed {
            return;
        }
    }
}

/// The events of `chunk`, opened, in the chunk's order.
async fn read_chunk(log: &Log, chunk: &[Key]) -> Opened {
    // Read in ascending position; `order[j]` is where the j-th of them goes.
    let mut order: Vec<usize> = (0..chunk.len()).collect();
    order.sort_unstable_by_key(|&i| chunk[i].position);
    let positions: Vec<u64> = order.iter().map(|&i| chunk[i].position).collect();
    let stored = log.read_at(&positions).await?;
    if stored.len() != positions.len() {
        let missing = positions
            .iter()
            .find(|p| !stored.iter().any(|s| s.position == **p))
            .copied()
            .unwrap_or_default();
        return Err(StoreError::Integrity {
            position: missing,
            what: "an event of the log could not be read back".into(),
        });
    }
    let mut slots: Vec<Option<FoldEvent>> = (0..chunk.len()).map(|_| None).collect();
    for (j, s) in stored.into_iter().enumerate() {
        if s.position != positions[j] {
            return Err(StoreError::Integrity {
                position: positions[j],
                what: format!("read position {} in its place", s.position),
            });
        }
        slots[order[j]] = Some(log.open_fold(s)?);
    }
    Ok(slots.into_iter().flatten().collect())
}

/// What a build holds (`manifest.json`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    /// `ReadState::VERSION` of its snapshots.
    pub version: u32,
    /// The build covers the events `(0, until]`.
    pub until: u64,
    pub every_events: u64,
    /// The thresholds it folded with: a build under others is not used.
    pub lifecycle: LifecycleConfig,
    pub warnings: WarningConfig,
    /// `cuts[i - 1]`: the last key folded into snapshot `i`, as (seconds, nanoseconds,
    /// position).
    cuts: Vec<(i64, u32, u64)>,
}

impl Manifest {
    pub(crate) fn cut(&self, i: usize) -> Key {
        match i {
            0 => Key::MIN,
            i => {
                let (secs, nanos, position) = self.cuts[i - 1];
                Key {
                    secs,
                    nanos,
                    position,
                }
            }
        }
    }

    /// Snapshots in the build (besides the empty state, number 0).
    pub fn snapshots(&self) -> usize {
        self.cuts.len()
    }
}

/// The folder of the builds.
pub fn builds_dir(snapshots: &Path) -> PathBuf {
    crate::layout::Snapshots::valid_builds(snapshots)
}

/// Complete builds with this code's state version and these thresholds, newest first.
pub fn builds(
    snapshots: &Path,
    lifecycle: &LifecycleConfig,
    warnings: &WarningConfig,
) -> Vec<(PathBuf, Manifest)> {
    let mut found: Vec<(PathBuf, Manifest)> = all_builds(snapshots)
        .into_iter()
        .filter(|(_, m)| {
            m.version == ReadState::VERSION && m.lifecycle == *lifecycle && m.warnings == *warnings
        })
        .collect();
    found.sort_unstable_by_key(|(_, m)| std::cmp::Reverse(m.until));
    found
}

/// Every complete build, whatever it was built with.
fn all_builds(snapshots: &Path) -> Vec<(PathBuf, Manifest)> {
    let Ok(entries) = std::fs::read_dir(builds_dir(snapshots)) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<u64>().is_ok())
        })
        .filter_map(|e| {
            let text = std::fs::read(e.path().join("manifest.json")).ok()?;
            let m: Manifest = serde_json::from_slice(&text).ok()?;
            Some((e.path(), m))
        })
        .collect()
}

/// Folds the log `(0, until]` in business order and writes a build of it under
/// `snapshots` (see the module's documentation); removes the older builds once it is in
/// place. `on_batch` is told how many events were folded.
///
/// When an older build with the same thresholds and interval exists, the new one starts
/// from it: its snapshots up to the first event recorded since (in business order) are
/// kept (hard links), and only what comes after is folded again. On a log written roughly
/// in business order that is the events since the last build and a little before them.
pub async fn build(
    log: &Log,
    snapshots: &Path,
    until: u64,
    every_events: u64,
    lifecycle: LifecycleConfig,
    warnings: WarningConfig,
    mut on_batch: impl FnMut(u64),
) -> anyhow::Result<Manifest> {
    use anyhow::Context as _;
    anyhow::ensure!(every_events > 0, "every_events must be at least 1");
    let root = builds_dir(snapshots);
    // What a build that did not finish (the process was killed) left behind.
    if let Ok(entries) = std::fs::read_dir(&root) {
        for e in entries.filter_map(|e| e.ok()) {
            if e.file_name().to_string_lossy().starts_with("building-") {
                std::fs::remove_dir_all(e.path())?;
            }
        }
    }
    let building = root.join(format!("building-{until}"));
    std::fs::create_dir_all(&building)
        .with_context(|| format!("creating {}", building.display()))?;
    let previous = builds(snapshots, &lifecycle, &warnings)
        .into_iter()
        .find(|(_, m)| m.until <= until && m.every_events == every_events);
    let start = match previous {
        Some((dir, m)) => resume(log, &dir, m, until, &building).await?,
        None => None,
    };
    let (mut state, mut cuts, keys) = match start {
        Some(start) => start,
        None => {
            let mut keys = scan_keys(log, 0, until).await?;
            keys.sort_unstable();
            (
                ReadState::new(lifecycle, warnings.clone()),
                Vec::new(),
                keys,
            )
        }
    };
    let kept = cuts.len();
    // Compressing and writing a snapshot overlaps the fold of the next slice (one at a time).
    let mut writing: Option<tokio::task::JoinHandle<std::io::Result<()>>> = None;
    for (n, slice) in keys.chunks(every_events as usize).enumerate() {
        let i = kept + n;
        let mut bytes = Vec::with_capacity(slice.len() * KEY_BYTES);
        for k in slice {
            k.write(&mut bytes);
        }
        write_synced(&building.join(format!("{i}.keys")), &bytes)?;
        state = fold_keys(log, state, slice.to_vec(), &mut on_batch).await?;
        // A snapshot says where the build ends; the fold sets the position again.
        state.customers.position = until;
        let last = slice[slice.len() - 1];
        cuts.push((last.secs, last.nanos, last.position));
        let bytes = state.snapshot_bytes();
        let path = building.join(format!("{}.snapshot", i + 1));
        if let Some(w) = writing.take() {
            w.await??;
        }
        let anchors = snapshot::anchors(log, until).await?;
        writing = Some(tokio::task::spawn_blocking(move || {
            snapshot::write_snapshot_to(&path, until, anchors, &bytes)
        }));
    }
    if let Some(w) = writing.take() {
        w.await??;
    }
    let manifest = Manifest {
        version: ReadState::VERSION,
        until,
        every_events,
        lifecycle,
        warnings,
        cuts,
    };
    write_synced(
        &building.join("manifest.json"),
        &serde_json::to_vec(&manifest)?,
    )?;
    let target = root.join(until.to_string());
    if target.exists() {
        std::fs::remove_dir_all(&target)?;
    }
    std::fs::rename(&building, &target)?;
    std::fs::File::open(&root)?.sync_all()?;
    for (dir, m) in all_builds(snapshots) {
        if m.until != until {
            std::fs::remove_dir_all(dir)?;
        }
    }
    Ok(manifest)
}

/// Where a build after `old` (in `dir`) starts: the state of the last snapshot that no
/// event recorded since precedes in business order, the cuts up to it, and the keys to
/// fold after it. Links the kept snapshots and slices into `building`. `None` when no
/// snapshot can be kept (or it is unreadable): the build starts from the first event.
async fn resume(
    log: &Log,
    dir: &Path,
    old: Manifest,
    until: u64,
    building: &Path,
) -> anyhow::Result<Option<(ReadState, Vec<(i64, u32, u64)>, Vec<Key>)>> {
    let tail = scan_keys(log, old.until, until).await?;
    let first = tail.iter().min().copied();
    let Some(k) = (1..=old.snapshots())
        .rev()
        .find(|&i| first.is_none_or(|f| old.cut(i) < f))
    else {
        return Ok(None);
    };
    let path = dir.join(format!("{k}.snapshot"));
    if !snapshot::from_this_log(&path, log).await {
        return Ok(None);
    }
    let state = tokio::task::block_in_place(|| {
        snapshot::load_snapshot_file(
            &path,
            until,
            &old.lifecycle,
            &old.warnings,
            snapshot::query_decode_threads(),
        )
    });
    let Some(state) = state else {
        return Ok(None);
    };
    for i in 0..k {
        std::fs::hard_link(
            dir.join(format!("{i}.keys")),
            building.join(format!("{i}.keys")),
        )?;
        std::fs::hard_link(
            dir.join(format!("{}.snapshot", i + 1)),
            building.join(format!("{}.snapshot", i + 1)),
        )?;
    }
    let mut keys = tail;
    for i in k..old.snapshots() {
        keys.extend(read_keys_file(&dir.join(format!("{i}.keys")))?);
    }
    keys.sort_unstable();
    tracing::debug!(
        kept = k,
        of = old.snapshots(),
        to_fold = keys.len(),
        "business time: building on the previous build"
    );
    Ok(Some((state, old.cuts[..k].to_vec(), keys)))
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn read_keys_file(path: &Path) -> Result<Vec<Key>, StoreError> {
    let bytes =
        std::fs::read(path).map_err(|e| StoreError::Io(format!("{}: {e}", path.display())))?;
    if bytes.len() % KEY_BYTES != 0 {
        return Err(StoreError::Io(format!("{}: truncated", path.display())));
    }
    Ok(bytes
        .chunks_exact(KEY_BYTES)
        .map(|b| Key::read(b.try_into().expect("KEY_BYTES")))
        .collect())
}

/// How a `valid_at` fold goes.
#[derive(Debug)]
pub struct Plan {
    /// The snapshot to start from (none: the empty state).
    pub start: Option<PathBuf>,
    /// The events to fold after it, in business order.
    pub keys: Vec<Key>,
}

/// Plans the fold at `(position, t)`: from the newest build at or before `position`, the
/// latest snapshot that holds only events that occurred by `t` and none that a tail event
/// precedes; then the next slices' keys up to `t` and the tail's, merged. Without a build,
/// every key up to `position`.
pub async fn plan(
    log: &Log,
    builds_in: Option<(&Path, &LifecycleConfig, &WarningConfig)>,
    position: u64,
    t: DateTime<Utc>,
) -> Result<Plan, StoreError> {
    let last = Key::last_by(t);
    let build = builds_in
        .map(|(dir, lifecycle, warnings)| builds(dir, lifecycle, warnings))
        .unwrap_or_default()
        .into_iter()
        .find(|(_, m)| m.until <= position);
    let after = build.as_ref().map_or(0, |(_, m)| m.until);
    let tail = scan_keys(log, after, position).await?;
    let Some((dir, m)) = build else {
        let mut keys: Vec<Key> = tail.into_iter().filter(|k| *k <= last).collect();
        keys.sort_unstable();
        return Ok(Plan { start: None, keys });
    };
    // Every tail key is after the build's keys of its own business time (its position is
    // greater), so a snapshot is usable when its cut precedes the first tail key.
    let first_tail = tail.iter().min().copied();
    let usable = |i: usize| m.cut(i) <= last && first_tail.is_none_or(|f| m.cut(i) < f);
    let start = (0..=m.snapshots()).rev().find(|&i| usable(i)).unwrap_or(0);
    let mut keys: Vec<Key> = tail.into_iter().filter(|k| *k <= last).collect();
    for i in start..m.snapshots() {
        let slice = read_keys_file(&dir.join(format!("{i}.keys")))?;
        let done = slice.last().is_some_and(|k| *k > last);
        keys.extend(slice.into_iter().filter(|k| *k <= last));
        if done {
            break;
        }
    }
    keys.sort_unstable();
    Ok(Plan {
        start: (start > 0).then(|| dir.join(format!("{start}.snapshot"))),
        keys,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn business_order_puts_lenses_first_then_time_then_position() {
        let early = Key::of(EventType::Purchase, at("2026-03-01T00:00:00Z"), 9);
        let late = Key::of(EventType::Purchase, at("2026-03-02T00:00:00Z"), 1);
        let same_time_later = Key::of(EventType::Purchase, at("2026-03-01T00:00:00Z"), 10);
        let lens = Key::of(EventType::SegmentDefined, at("2027-01-01T00:00:00Z"), 50);
        let mut keys = vec![late, same_time_later, lens, early];
        keys.sort_unstable();
        assert_eq!(keys, [lens, early, same_time_later, late]);
    }

    #[test]
    fn an_event_is_in_a_valid_at_fold_exactly_when_it_occurred_by_then() {
        let t = at("2026-03-01T12:00:00.000000500Z");
        let by = Key::last_by(t);
        assert!(Key::of(EventType::Purchase, t, u64::MAX) <= by);
        let a_nanosecond_after = t + chrono::Duration::nanoseconds(1);
        assert!(Key::of(EventType::Purchase, a_nanosecond_after, 1) > by);
        assert!(Key::of(EventType::PersonalDataErased, a_nanosecond_after, 1) <= by);
    }

    #[test]
    fn keys_survive_their_file_encoding() {
        let keys = [
            Key::of(EventType::Purchase, at("1969-07-20T20:17:40.123456789Z"), 7),
            Key::of(
                EventType::SegmentDefined,
                at("2026-03-01T00:00:00Z"),
                u64::MAX,
            ),
        ];
        let mut bytes = Vec::new();
        for k in keys {
            k.write(&mut bytes);
        }
        let back: Vec<Key> = bytes
            .chunks_exact(KEY_BYTES)
            .map(|b| Key::read(b.try_into().unwrap()))
            .collect();
        assert_eq!(back, keys);
    }
}
