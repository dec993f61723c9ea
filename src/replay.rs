//! Replay and time travel: folding the log again, from the first event or from a
//! snapshot, up to a position, optionally only events that occurred by a time.
//!
//! - `as_of_position=P`: the state after event P, from the nearest history snapshot at or
//!   before P plus the events after it (at most `history_every_events` of them).
//! - `known_at=T`: the same at the recording time T, translated to the last position
//!   recorded at or before T (`recorded_at` never goes backwards, so this is a binary
//!   search).
//! - `valid_at=T`: business time: only events whose `occurred_at` ≤ T, whatever their
//!   recording time, except segment definitions and erasures, which apply whenever they
//!   were written (a rule defined today can be asked about last March; erased data stays
//!   erased in every view of the past). A fold starts from the latest history snapshot
//!   whose events all occurred by T (its `occurred_max`), else from the first event.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use chrono::{DateTime, Utc};
use rapport_events::{EventType, FoldEvent};
use rapport_projections::{warnings::WarningConfig, LifecycleConfig, Projection, ReadState};
use sha2::{Digest, Sha256};

use crate::{
    log::Log,
    store::{EventStore, StoreError, READ_EVENTS_MAX},
};

/// Folds events `(state.position(), until]` into `state`, skipping events that occurred
/// after `valid_at`. `on_batch` is told how many events were read (for progress bars).
pub async fn fold(
    log: &Log,
    state: ReadState,
    until: u64,
    valid_at: Option<DateTime<Utc>>,
    on_batch: impl FnMut(u64),
) -> Result<ReadState, StoreError> {
    fold_from(log, state, until, valid_at, Source::Range, on_batch).await
}

/// Like [`fold`] for `valid_at = T`, reading only the late events (see
/// [`EventStore::read_late`]); right only once the watermark has passed `T` at
/// `state.position()`. Reads the whole range when the store keeps no late index.
pub async fn fold_late(
    log: &Log,
    state: ReadState,
    until: u64,
    valid_at: DateTime<Utc>,
    on_batch: impl FnMut(u64),
) -> Result<ReadState, StoreError> {
    fold_from(
        log,
        state,
        until,
        Some(valid_at),
        Source::Late(valid_at),
        on_batch,
    )
    .await
}

async fn fold_from(
    log: &Log,
    mut state: ReadState,
    until: u64,
    valid_at: Option<DateTime<Utc>>,
    source: Source,
    mut on_batch: impl FnMut(u64),
) -> Result<ReadState, StoreError> {
    let from = state.position();
    if from >= until {
        return Ok(state);
    }
    // Two stages, as in the live read model: a task reads and opens batches (SQLite, JSON,
    // decryption) while this one folds the previous batch.
    let (tx, mut rx) = tokio::sync::mpsc::channel(FOLD_QUEUE_BATCHES);
    let reader = tokio::spawn(read_opened(log.clone(), from, until, valid_at, source, tx));
    while let Some(batch) = rx.recv().await {
        let Opened { events, last, read } = batch?;
        for ev in &events {
            state.apply(ev);
        }
        // Events past `valid_at` were not applied; the position still says how far the
        // fold read.
        if state.position() < last {
            state.customers.position = last;
        }
        on_batch(read);
    }
    if let Err(e) = reader.await {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    Ok(state)
}

/// One batch for the fold: the events to apply, and how far it read.
struct Opened {
    events: Vec<FoldEvent>,
    last: u64,
    read: u64,
}

/// Whether an event belongs in a fold at business time `valid_at`. A segment definition
/// or an erasure is a lens, not a fact of business time: it applies to the past whenever
/// it was written (see `EventType::applies_at_every_valid_time`).
fn valid(ty: EventType, occurred_at: DateTime<Utc>, valid_at: Option<DateTime<Utc>>) -> bool {
    ty.applies_at_every_valid_time() || valid_at.is_none_or(|t| occurred_at <= t)
}

/// Opened batches waiting for the fold.
const FOLD_QUEUE_BATCHES: usize = 4;

/// Which events of a range a fold reads.
#[derive(Clone, Copy)]
enum Source {
    /// All of them.
    Range,
    /// The late ones that occurred by then (the store's index), or all of them if the store
    /// has no index.
    Late(DateTime<Utc>),
}

/// Reads events `(after, until]` in batches, opens them as projections see them, and sends
/// them on; stops at the first error (sent on) or when the fold hangs up.
async fn read_opened(
    log: Log,
    mut after: u64,
    until: u64,
    valid_at: Option<DateTime<Utc>>,
    mut source: Source,
    tx: tokio::sync::mpsc::Sender<Result<Opened, StoreError>>,
) {
    while after < until {
        let limit = READ_EVENTS_MAX.min((until - after) as usize);
        let read = match source {
            Source::Range => log.store.read_all(after, limit).await,
            Source::Late(t) => match log.store.read_late(after, until, t, limit).await {
                Ok(Some(batch)) if batch.is_empty() => {
                    // No late event is left: the fold has read as far as `until`.
                    let _ = tx
                        .send(Ok(Opened {
                            events: Vec::new(),
                            last: until,
                            read: 0,
                        }))
                        .await;
                    return;
                }
                Ok(Some(batch)) => Ok(batch),
                Ok(None) => {
                    source = Source::Range;
                    continue;
                }
                Err(e) => Err(e),
            },
        };
        let opened = match read {
            Ok(batch) => {
                let Some(last) = batch.last().map(|s| s.position) else {
                    return;
                };
                after = last;
                let read = batch.len() as u64;
                // Skipped before opening: no JSON parsed, nothing decrypted.
                batch
                    .into_iter()
                    .filter(|s| valid(s.event.event_type, s.event.occurred_at, valid_at))
                    .map(|s| log.open_fold(s))
                    .collect::<Result<Vec<_>, _>>()
                    .map(|events| Opened { events, last, read })
            }
            Err(e) => Err(e),
        };
        let failed = opened.is_err();
        if tx.send(opened).await.is_err() || failed {
            return;
        }
    }
}

/// A digest per projection of the state's bytes: what `replay --verify` compares.
pub fn digests(state: &ReadState) -> Vec<(&'static str, String)> {
    let hex = |b: &[u8]| {
        Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    };
    vec![
        ("customers", hex(&state.customers.snapshot_bytes())),
        (
            "segments",
            hex(&serde_json::to_vec(&state.segments).expect("segments serialize")),
        ),
        (
            "warnings",
            hex(&serde_json::to_vec(&state.warnings).expect("warnings serialize")),
        ),
        (
            "lifecycles",
            hex(&serde_json::to_vec(&state.lifecycles).expect("lifecycles serialize")),
        ),
    ]
}

/// The last position recorded at or before `t` (0 if none).
pub async fn position_known_at(log: &Log, t: DateTime<Utc>) -> Result<u64, StoreError> {
    let (mut lo, mut hi) = (0u64, log.store.last_position());
    // Invariant: position lo is known at t (0 trivially); positions after hi are not.
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        let e = log.store.read_all(mid - 1, 1).await?;
        match e.first() {
            Some(s) if s.recorded_at <= t => lo = mid,
            _ => hi = mid - 1,
        }
    }
    Ok(lo)
}

/// Snapshots kept for time travel: `<dir>/history/<position>.snapshot`, hard links of the
/// read model's snapshots taken at least `every` positions apart.
pub fn history_dir(snapshots: &Path) -> PathBuf {
    snapshots.join("history")
}

/// The history snapshot with the greatest position ≤ `position` that a fold for `valid_at`
/// may start from: with `valid_at = T`, only one whose events all occurred by `T` (its
/// header's `occurred_max`), because a snapshot cannot take events back out.
pub fn history_snapshot_before(
    snapshots: &Path,
    position: u64,
    valid_at: Option<DateTime<Utc>>,
) -> Option<(u64, PathBuf)> {
    plan_fold(snapshots, position, valid_at).start
}

/// How a fold for `(position, valid_at)` goes: see [`plan_fold`].
#[derive(Debug, Default)]
pub struct FoldPlan {
    /// The history snapshot to start from ([`history_snapshot_before`]).
    pub start: Option<(u64, PathBuf)>,
    /// With `valid_at = T`: the first history snapshot after `start` whose events did not
    /// all occur by `T`. The watermark has passed `T` there, so after it the fold needs
    /// only the late events (see `EventStore::read_late`).
    pub watermark_past: Option<u64>,
}

/// Plans a fold from the history snapshots' headers. Their `occurred_max` never goes down
/// with the position (each is the state's running maximum), so those a `valid_at` fold may
/// start from come first.
pub fn plan_fold(snapshots: &Path, position: u64, valid_at: Option<DateTime<Utc>>) -> FoldPlan {
    let Ok(entries) = std::fs::read_dir(history_dir(snapshots)) else {
        return FoldPlan::default();
    };
    let mut found: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let p: u64 = name.strip_suffix(".snapshot")?.parse().ok()?;
            (p <= position).then(|| (p, e.path()))
        })
        .collect();
    found.sort_unstable_by_key(|(p, _)| std::cmp::Reverse(*p));
    let Some(t) = valid_at else {
        return FoldPlan {
            start: found.into_iter().next(),
            watermark_past: None,
        };
    };
    let mut plan = FoldPlan::default();
    for (p, path) in found {
        let Some(h) = crate::read_model::read_snapshot_header(&path)
            .filter(|h| h.version == ReadState::VERSION)
        else {
            continue;
        };
        match h.occurred_max {
            Some(m) if m > t => plan.watermark_past = Some(p),
            _ => {
                plan.start = Some((p, path));
                break;
            }
        }
    }
    plan
}

/// Which past state: after a position, with only the events that occurred by a time.
type StateAt = (u64, Option<DateTime<Utc>>);

/// Builds past states for queries, with a small cache of the latest ones.
pub struct TimeTravel {
    log: Log,
    snapshots: Option<PathBuf>,
    lifecycle: LifecycleConfig,
    warnings: WarningConfig,
    cache: Mutex<Vec<(StateAt, Arc<ReadState>)>>,
    /// Events the folds have read from the store (all of them, applied or skipped).
    events_read: std::sync::atomic::AtomicU64,
}

/// Past states kept in memory.
const TIME_TRAVEL_CACHE_STATES: usize = 2;

impl TimeTravel {
    pub fn new(
        log: Log,
        snapshots: Option<PathBuf>,
        lifecycle: LifecycleConfig,
        warnings: WarningConfig,
    ) -> TimeTravel {
        TimeTravel {
            log,
            snapshots,
            lifecycle,
            warnings,
            cache: Mutex::new(Vec::new()),
            events_read: Default::default(),
        }
    }

    /// The state after `position`, with only events that occurred by `valid_at`.
    pub async fn state_at(
        &self,
        position: u64,
        valid_at: Option<DateTime<Utc>>,
    ) -> Result<Arc<ReadState>, StoreError> {
        let key = (position, valid_at);
        if let Some((_, s)) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(k, _)| *k == key)
        {
            return Ok(s.clone());
        }
        let plan = self
            .snapshots
            .as_deref()
            .map(|dir| plan_fold(dir, position, valid_at))
            .unwrap_or_default();
        // Reading and decoding a snapshot takes up to a second on a large log: not on a
        // runtime worker's time (the store's reads do the same).
        let start = plan
            .start
            .and_then(|(_, path)| {
                tokio::task::block_in_place(|| {
                    crate::read_model::load_snapshot_file(
                        &path,
                        position,
                        &self.lifecycle,
                        &self.warnings,
                        crate::read_model::query_decode_threads(),
                    )
                })
            })
            .unwrap_or_else(|| ReadState::new(self.lifecycle, self.warnings.clone()));
        // With `valid_at`: the range up to where the watermark passed it, then the late
        // events only.
        let late_from = plan
            .watermark_past
            .filter(|&p| p >= start.position() && p < position);
        let count = |n| {
            self.events_read
                .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        };
        let state = fold(
            &self.log,
            start,
            late_from.unwrap_or(position),
            valid_at,
            count,
        )
        .await?;
        let state = match (late_from, valid_at) {
            (Some(_), Some(t)) => fold_late(&self.log, state, position, t, count).await?,
            _ => state,
        };
        let state = Arc::new(state);
        let evicted = {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache.push((key, state.clone()));
            (cache.len() > TIME_TRAVEL_CACHE_STATES).then(|| cache.remove(0))
        };
        // Freeing a million customers' state takes a tenth of a second or more: not
        // before this answer.
        if let Some(old) = evicted {
            tokio::task::spawn_blocking(move || drop(old));
        }
        Ok(state)
    }

    /// How many events the folds have read from the store so far (a query answered from
    /// the cache reads none).
    pub fn events_read(&self) -> u64 {
        self.events_read.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// `rapport replay [--projection NAME…] [--verify]`.
pub async fn run_cli(
    data_dir: &Path,
    master: crate::crypto::MasterKey,
    config: &crate::config::Config,
    projections: &[String],
    verify: bool,
) -> anyhow::Result<()> {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    const NAMES: [&str; 4] = ["customers", "segments", "warnings", "lifecycles"];
    for p in projections {
        anyhow::ensure!(
            NAMES.contains(&p.as_str()),
            "unknown projection `{p}` (known: {})",
            NAMES.join(", ")
        );
    }
    let wanted = |name: &str| projections.is_empty() || projections.iter().any(|p| p == name);
    let begun = std::time::Instant::now();
    let (store, log) = crate::server::open_log_read_only(data_dir, master).await?;
    eprintln!(
        "opened the store ({} events) and the keyring in {:.2} s",
        store.last_position(),
        begun.elapsed().as_secs_f64()
    );
    let snapshots = data_dir.join("snapshots");
    let lifecycle = config.lifecycle;
    let warnings = config.early_warning.clone();
    let live = if verify {
        let live = crate::read_model::load_snapshot(
            &snapshots,
            store.last_position(),
            &lifecycle,
            &warnings,
        );
        let Some(live) = live else {
            anyhow::bail!(
                "no usable snapshot in {} to verify against (start the server, or run `rapport replay` without --verify)",
                snapshots.display()
            );
        };
        Some(live)
    } else {
        None
    };
    let until = live
        .as_ref()
        .map_or(store.last_position(), |l| l.position());
    let bar = ProgressBar::with_draw_target(
        Some(until),
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} events  {per_sec}  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let rebuilt = fold(
        &log,
        ReadState::new(lifecycle, warnings.clone()),
        until,
        None,
        |n| bar.inc(n),
    )
    .await?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "replayed {} events in {secs:.2} s ({:.0} events/s)",
        rebuilt.position(),
        rebuilt.position() as f64 / secs.max(1e-9)
    );
    match live {
        Some(live) => {
            let (a, b) = (digests(&live), digests(&rebuilt));
            let mut differ = Vec::new();
            for ((name, x), (_, y)) in a.iter().zip(&b) {
                if !wanted(name) {
                    continue;
                }
                let same = x == y;
                println!(
                    "{name:<10} {} live {} replayed {}",
                    if same { "same     " } else { "DIFFERENT" },
                    &x[..16],
                    &y[..16]
                );
                if !same {
                    differ.push(*name);
                }
            }
            anyhow::ensure!(
                differ.is_empty(),
                "the replayed state differs from the live snapshot at position {until} in: {}",
                differ.join(", ")
            );
            println!("verified at position {until}: replay gives the live state byte for byte");
        }
        None => {
            let started = std::time::Instant::now();
            let bytes = rebuilt.snapshot_bytes();
            crate::read_model::write_snapshot(
                &snapshots,
                rebuilt.position(),
                rebuilt.occurred_max,
                &bytes,
            )?;
            eprintln!(
                "wrote the snapshot in {:.2} s",
                started.elapsed().as_secs_f64()
            );
            for (name, d) in digests(&rebuilt) {
                if wanted(name) {
                    println!("{name:<10} {}", &d[..16]);
                }
            }
            println!(
                "wrote a fresh snapshot at position {} to {} (a running server keeps its own state until it restarts)",
                rebuilt.position(),
                snapshots.display()
            );
        }
    }
    let secs = begun.elapsed().as_secs_f64();
    eprintln!(
        "in all {secs:.2} s: {:.0} events/s end to end",
        rebuilt.position() as f64 / secs.max(1e-9)
    );
    Ok(())
}
