//! Replay and time travel: folding the log again, from the first event or from a
//! snapshot, up to a position, optionally only events that occurred by a time.
//!
//! - `as_of_position=P`: the state after event P, from the nearest history snapshot at or
//!   before P plus the events after it (at most `history_every_events` of them).
//! - `known_at=T`: the same at the recording time T, translated to the last position
//!   recorded at or before T (`recorded_at` never goes backwards, so this is a binary
//!   search).
//! - `valid_at=T`: business time: only events whose `occurred_at` ≤ T, whatever their
//!   recording time, folded in the order they occurred (see [`crate::valid_time`]).

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use chrono::{DateTime, Utc};
use rapport_events::FoldEvent;
use rapport_projections::{warnings::WarningConfig, LifecycleConfig, Projection, ReadState};
use sha2::{Digest, Sha256};

use crate::{
    log::Log,
    store::{EventStore, StoreError, READ_EVENTS_MAX},
};

/// Folds events `(state.position(), until]` into `state`, in position order. `on_batch`
/// is told how many events were read (for progress bars).
pub async fn fold(
    log: &Log,
    state: ReadState,
    until: u64,
    on_batch: impl FnMut(u64),
) -> Result<ReadState, StoreError> {
    let from = state.position();
    if from >= until {
        return Ok(state);
    }
    fold_batches(
        state,
        |tx| read_opened(log.clone(), from, until, tx),
        on_batch,
    )
    .await
}

/// A batch of opened events for a fold, or the error that ends it.
pub(crate) type Opened = Result<Vec<FoldEvent>, StoreError>;

/// Folds into `state` the batches `read` sends, in order. Two stages, as in the live read
/// model: `read` runs as a task of its own and reads and opens the next batch (SQLite,
/// JSON, decryption) while this one applies the previous; it stops at the first error,
/// which it sends on, or when the fold hangs up. `on_batch` is told how many events each
/// batch held.
pub(crate) async fn fold_batches<R>(
    mut state: ReadState,
    read: impl FnOnce(tokio::sync::mpsc::Sender<Opened>) -> R,
    mut on_batch: impl FnMut(u64),
) -> Result<ReadState, StoreError>
where
    R: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel(FOLD_QUEUE_BATCHES);
    let reader = tokio::spawn(read(tx));
    while let Some(batch) = rx.recv().await {
        let events = batch?;
        for ev in &events {
            state.apply(ev);
        }
        on_batch(events.len() as u64);
    }
    if let Err(e) = reader.await {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    Ok(state)
}

/// Opened batches waiting for the fold.
const FOLD_QUEUE_BATCHES: usize = 4;

/// Reads events `(after, until]` in batches, opens them as projections see them, and sends
/// them on; stops at the first error (sent on) or when the fold hangs up.
async fn read_opened(log: Log, mut after: u64, until: u64, tx: tokio::sync::mpsc::Sender<Opened>) {
    while after < until {
        let limit = READ_EVENTS_MAX.min((until - after) as usize);
        let opened = match log.store.read_all(after, limit).await {
            Ok(batch) => {
                let Some(last) = batch.last().map(|s| s.position) else {
                    return;
                };
                after = last;
                batch
                    .into_iter()
                    .map(|s| log.open_fold(s))
                    .collect::<Result<Vec<_>, _>>()
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

/// The history snapshot with the greatest position ≤ `position`.
pub fn history_snapshot_before(snapshots: &Path, position: u64) -> Option<(u64, PathBuf)> {
    let entries = std::fs::read_dir(history_dir(snapshots)).ok()?;
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let p: u64 = name.strip_suffix(".snapshot")?.parse().ok()?;
            (p <= position).then(|| (p, e.path()))
        })
        .max_by_key(|(p, _)| *p)
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
        let count = |n| {
            self.events_read
                .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        };
        let state = match valid_at {
            None => {
                let start = self
                    .snapshots
                    .as_deref()
                    .and_then(|dir| history_snapshot_before(dir, position))
                    .and_then(|(_, path)| self.load(&path, position));
                fold(
                    &self.log,
                    start.unwrap_or_else(|| self.empty()),
                    position,
                    count,
                )
                .await?
            }
            Some(t) if !self.log.store.point_reads_are_cheap() => {
                let mut state =
                    crate::valid_time::fold_in_memory(&self.log, self.empty(), position, t, count)
                        .await?;
                state.customers.position = position;
                state
            }
            Some(t) => self.valid_state(position, t, count).await?,
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

    /// The business-time state at `(position, t)`: from the newest usable build when
    /// there is one (see `valid_time::plan`), else from the first event.
    async fn valid_state(
        &self,
        position: u64,
        t: DateTime<Utc>,
        count: impl FnMut(u64),
    ) -> Result<ReadState, StoreError> {
        let builds = self
            .snapshots
            .as_deref()
            .map(|dir| (dir, &self.lifecycle, &self.warnings));
        // A build replaced while this query read it (its files removed) is looked for
        // again, once; what still does not load is damaged (the load said why): then every
        // event up to `position`.
        let mut planned = None;
        for _attempt in 0..2 {
            match crate::valid_time::plan(&self.log, builds, position, t).await {
                Ok(plan) => match plan.start {
                    None => {
                        planned = Some((self.empty(), plan.keys));
                        break;
                    }
                    Some(path) => {
                        if let Some(state) = self.load(&path, position) {
                            planned = Some((state, plan.keys));
                            break;
                        }
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "a business-time build could not be read");
                }
            }
        }
        let (start, keys) = match planned {
            Some(planned) => planned,
            None => (
                self.empty(),
                crate::valid_time::plan(&self.log, None, position, t)
                    .await?
                    .keys,
            ),
        };
        let mut state = crate::valid_time::fold_keys(&self.log, start, keys, count).await?;
        // Business order visits positions out of order: the state says how far the log was
        // read.
        state.customers.position = position;
        Ok(state)
    }

    fn empty(&self) -> ReadState {
        ReadState::new(self.lifecycle, self.warnings.clone())
    }

    /// Loads a snapshot for a query, decoding on every core. Reading and decoding one takes
    /// up to a second on a large log: not on a runtime worker's time (the store's reads do
    /// the same).
    fn load(&self, path: &Path, position: u64) -> Option<ReadState> {
        tokio::task::block_in_place(|| {
            crate::read_model::load_snapshot_file(
                path,
                position,
                &self.lifecycle,
                &self.warnings,
                crate::read_model::query_decode_threads(),
            )
        })
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
            crate::read_model::write_snapshot(&snapshots, rebuilt.position(), &bytes)?;
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
