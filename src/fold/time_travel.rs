//! Time travel: past states for queries, from the nearest snapshot plus the events after
//! it, up to a position, optionally only the events that occurred by a time.
//!
//! - `as_of_position=P`: the state after event P, from the nearest history snapshot at or
//!   before P plus the events after it (at most `history_every_events` of them).
//! - `known_at=T`: the same at the recording time T, translated to the last position
//!   recorded at or before T (`recorded_at` never goes backwards, so this is a binary
//!   search).
//! - `valid_at=T`: business time: only events whose `occurred_at` ≤ T, whatever their
//!   recording time, folded in the order they occurred (see [`super::valid_time`]).

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use chrono::{DateTime, Utc};
use rapport_projections::{warnings::WarningConfig, LifecycleConfig, ReadState};

use super::{fold, history::history_snapshot_before, snapshot, valid_time};
use crate::{log::Log, store::StoreError};

/// The last position recorded at or before `t` (0 if none).
pub async fn position_known_at(log: &Log, t: DateTime<Utc>) -> Result<u64, StoreError> {
    let (mut lo, mut hi) = (0u64, log.last_position());
    // Invariant: position lo is known at t (0 trivially); positions after hi are not.
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        let e = log.read_all(mid - 1, 1).await?;
        match e.first() {
            Some(s) if s.recorded_at <= t => lo = mid,
            _ => hi = mid - 1,
        }
    }
    Ok(lo)
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
                let before = self
                    .snapshots
                    .as_deref()
                    .and_then(|dir| history_snapshot_before(dir, position));
                let start = match before {
                    Some((_, path)) => self.load(&path, position).await,
                    None => None,
                };
                fold(
                    &self.log,
                    start.unwrap_or_else(|| self.empty()),
                    position,
                    count,
                )
                .await?
            }
            Some(t) if !self.log.point_reads_are_cheap() => {
                let mut state =
                    valid_time::fold_in_memory(&self.log, self.empty(), position, t, count).await?;
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
            match valid_time::plan(&self.log, builds, position, t).await {
                Ok(plan) => match plan.start {
                    None => {
                        planned = Some((self.empty(), plan.keys));
                        break;
                    }
                    Some(path) => {
                        if let Some(state) = self.load(&path, position).await {
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
                valid_time::plan(&self.log, None, position, t).await?.keys,
            ),
        };
        let mut state = valid_time::fold_keys(&self.log, start, keys, count).await?;
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
    async fn load(&self, path: &Path, position: u64) -> Option<ReadState> {
        // A snapshot folded from another history of the log is not used (it is rebuilt).
        if !snapshot::from_this_log(path, &self.log).await {
            return None;
        }
        tokio::task::block_in_place(|| {
            snapshot::load_snapshot_file(
                path,
                position,
                &self.lifecycle,
                &self.warnings,
                snapshot::query_decode_threads(),
            )
        })
    }

    /// How many events the folds have read from the store so far (a query answered from
    /// the cache reads none).
    pub fn events_read(&self) -> u64 {
        self.events_read.load(std::sync::atomic::Ordering::Relaxed)
    }
}
