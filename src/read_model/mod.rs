//! The read model: the projections of `rapport-projections`, kept up to date by a
//! catch-up-then-live subscription on the log, and the wait that gives read-your-writes.
//!
//! Snapshots: every `snapshot_every_events` applied events the state is written to
//! `<data-dir>/snapshots/read_state.snapshot` (see `crate::fold::snapshot`). At start the
//! snapshot is loaded if its version is the code's and its position is in the log;
//! otherwise the projection is rebuilt from the first event and says why.
//!
//! [`builds`]: `serve`'s business-time builds, which follow the applied position.

pub mod builds;
pub mod outbox;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use rapport_projections::{warnings::WarningConfig, LifecycleConfig, Projection, ReadState};
use tokio::sync::{watch, RwLock};

use crate::{
    config::{COMPACT_AFTER_CATCH_UP_EVENTS, HISTORY_EVERY_EVENTS, SNAPSHOT_EVERY_EVENTS},
    fold::{
        child::FoldChild,
        history::{history_snapshot_before, keep_history},
        snapshot::{
            load_snapshot, release_freed_memory, snapshot_path, write_snapshot,
            LIVE_STATE_DECODE_THREADS,
        },
        time_travel::TimeTravel,
    },
    log::Log,
};
use outbox::{held_rows, Cursor, FeedName, Outbox};
use rapport_projections::{
    feed::{Feed, FeedItem},
    lifecycle::LifecycleChange,
    segments::Change as SegmentChange,
    warnings::AlertChange,
};

/// Default longest wait of a query for `min_position` before it answers 503.
pub const MIN_POSITION_WAIT_MS: u64 = 5_000;
/// Events read and opened per batch.
const APPLY_BATCH_EVENTS: usize = 1024;
/// Events applied under one hold of the write lock (readers queue between holds).
const APPLY_LOCK_EVENTS_MAX: usize = 64;
/// Opened batches waiting for the applier.
const APPLY_QUEUE_BATCHES: usize = 8;
/// The outbox deletes what every consumer delivered at most this often, in milliseconds.
const OUTBOX_TRIM_EVERY_MS: u64 = 1_000;

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
        Ok(Ok(mut copy)) => {
            let mut state = m.state.write().await;
            // Holds are not in snapshot bytes.
            copy.warnings
                .feed_mut()
                .hold_after(state.warnings.feed().held_after());
            copy.segments
                .feed_mut()
                .hold_after(state.segments.feed().held_after());
            copy.lifecycles
                .feed_mut()
                .hold_after(state.lifecycles.feed().held_after());
            let old = std::mem::replace(&mut *state, copy);
            drop(state);
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
    let last = log.last_position();
    let loaded = if crate::fold::snapshot::from_this_log(&snapshot_path(dir), log).await {
        tokio::task::block_in_place(|| load_snapshot(dir, last, lifecycle, warnings))
    } else {
        None
    };
    match loaded.filter(|s| s.position() > from) {
        Some(mut state) => {
            m.hold(&mut state);
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
    /// Where the changes durable consumers still need are written (see [`outbox`]);
    /// `None` keeps only what the feeds keep in memory.
    pub outbox: Option<Arc<Outbox>>,
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
            outbox: None,
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
    pub time_travel: TimeTravel,
    applied: watch::Sender<u64>,
    /// How many times the state was compacted (at most once, after the catch-up at start).
    compactions: watch::Sender<u64>,
    /// Why the read model stopped following the log, once it has (an event it could not
    /// read): readiness, metrics and the console say it.
    stopped: std::sync::RwLock<Option<String>>,
    outbox: Option<Arc<Outbox>>,
    /// When the outbox last deleted what every consumer delivered.
    outbox_trimmed: std::sync::Mutex<std::time::Instant>,
}

/// Changes of the three feeds, owned (some may come from the outbox).
#[derive(Debug, Default)]
pub struct Window {
    pub alerts: Vec<AlertChange>,
    pub segments: Vec<SegmentChange>,
    pub lifecycles: Vec<LifecycleChange>,
}

impl Window {
    /// Whether `cursor` has passed the end of a feed's part read `limit` at a time: that
    /// feed may hold more after it, which could come before what the others hold next.
    pub fn used_up(&self, cursor: &Cursor, limit: usize) -> bool {
        fn one<T: FeedItem>(items: &[T], at: u64, limit: usize) -> bool {
            items.len() >= limit && items.last().is_none_or(|c| at >= c.seq())
        }
        one(&self.alerts, cursor.alerts, limit)
            || one(&self.segments, cursor.segments, limit)
            || one(&self.lifecycles, cursor.lifecycles, limit)
    }
}

/// Changes of `name` after `after` from the outbox, off the async workers;
/// `Err(first held after it)` when the next one is not there (a failed read says so in
/// the log and counts as a gap).
async fn from_outbox<T: serde::de::DeserializeOwned + Send + 'static>(
    outbox: Arc<Outbox>,
    name: FeedName,
    after: u64,
    limit: usize,
) -> Result<Vec<T>, Option<u64>> {
    match tokio::task::spawn_blocking(move || outbox.read(name, after, limit)).await {
        Ok(Ok(read)) => read,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot read the outbox");
            Err(None)
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot read the outbox");
            Err(None)
        }
    }
}

/// Holds `feed` after its floor, or after what the outbox already has when that is
/// further; said loudly when the feed no longer holds changes the outbox lacks.
fn hold_one<T: FeedItem>(outbox: &Outbox, name: FeedName, feed: &mut Feed<T>) {
    let Some(floor) = outbox.floor(name) else {
        return feed.hold_after(None);
    };
    let written = outbox.last(name).unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot read the outbox");
        0
    });
    let from = floor.max(written).min(feed.last_seq());
    if let Err(oldest) = feed.after(from, 0) {
        tracing::error!(
            feed = name.as_str(),
            from,
            oldest,
            "the outbox lacks changes the feed no longer holds: consumers behind them will stop there"
        );
    }
    feed.hold_after(Some(from));
}

/// Holds `feed` after `seq` at least (a new consumer).
fn hold_from<T>(feed: &mut Feed<T>, seq: u64) {
    let from = feed.held_after().map_or(seq, |h| h.min(seq));
    feed.hold_after(Some(from));
}

impl ReadModel {
    /// Starts following the log, from the snapshot in `opts.snapshots` when there is a
    /// usable one (written by this code, from this log: see `fold::snapshot`).
    pub async fn spawn(log: Log, opts: ReadModelOptions) -> Arc<ReadModel> {
        let ReadModelOptions {
            lifecycle,
            warnings,
            min_position_wait,
            snapshots,
            snapshot_every_events,
            history_every_events,
            compact_after_catch_up_events,
            catch_up_child,
            outbox,
        } = opts;
        let time_travel =
            TimeTravel::new(log.clone(), snapshots.clone(), lifecycle, warnings.clone());
        let usable = match snapshots.as_deref() {
            Some(d) => crate::fold::snapshot::from_this_log(&snapshot_path(d), &log).await,
            None => false,
        };
        let start = snapshots
            .as_deref()
            .filter(|_| usable)
            .and_then(|d| load_snapshot(d, log.last_position(), &lifecycle, &warnings))
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
            stopped: std::sync::RwLock::new(None),
            outbox,
            outbox_trimmed: std::sync::Mutex::new(std::time::Instant::now()),
        });
        model.hold(&mut *model.state.write().await);
        let m = model.clone();
        let store = log.clone();
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
        let store = log.clone();
        // Two stages, so reading and decoding overlap with folding: a reader task opens
        // events and hands batches over a bounded channel to the applier task.
        let (tx, mut rx) =
            tokio::sync::mpsc::channel::<Vec<rapport_events::FoldEvent>>(APPLY_QUEUE_BATCHES);
        let reader = m.clone();
        tokio::spawn(async move {
            let mut events = log.subscribe(from).ready_chunks(APPLY_BATCH_EVENTS);
            let mut read = from;
            while let Some(batch) = events.next().await {
                let mut opened = Vec::with_capacity(batch.len());
                for r in batch {
                    let stored = match r {
                        Ok(s) => s,
                        Err(e) => {
                            return reader
                                .stop(format!("reading the log after position {read}: {e}"));
                        }
                    };
                    let position = stored.position;
                    // What projections may see: see `Log::open_fold`.
                    match log.open_fold(stored) {
                        Ok(ev) => opened.push(ev),
                        Err(e) => {
                            // What came before it is applied; nothing after it is.
                            if !opened.is_empty() {
                                let _ = tx.send(opened).await;
                            }
                            return reader.stop(format!(
                                "the event at position {position} could not be read: {e}"
                            ));
                        }
                    }
                    read = position;
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
                .and_then(|d| history_snapshot_before(d, u64::MAX))
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
                // Before any snapshot of this state: see `outbox`.
                m.drain().await;
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
                        let anchors = crate::fold::snapshot::anchors(&store, last)
                            .await
                            .unwrap_or_default();
                        let w = tokio::task::spawn_blocking(move || {
                            let written = write_snapshot(&d, last, anchors, &bytes);
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

    /// Holds each feed after what durable consumers have delivered and the outbox does
    /// not have yet (after a load: what the outbox has, the state knows).
    fn hold(&self, st: &mut ReadState) {
        let Some(outbox) = &self.outbox else { return };
        hold_one(outbox, FeedName::Alerts, st.warnings.feed_mut());
        hold_one(outbox, FeedName::Segments, st.segments.feed_mut());
        hold_one(outbox, FeedName::Lifecycles, st.lifecycles.feed_mut());
    }

    /// Writes the held changes to the outbox, then lets the feeds drop them.
    async fn drain(&self) {
        let Some(outbox) = &self.outbox else { return };
        let (rows, copied) = {
            let st = self.state.read().await;
            let mut rows = Vec::new();
            let copied = [
                held_rows(outbox, FeedName::Alerts, st.warnings.feed(), &mut rows),
                held_rows(outbox, FeedName::Segments, st.segments.feed(), &mut rows),
                held_rows(
                    outbox,
                    FeedName::Lifecycles,
                    st.lifecycles.feed(),
                    &mut rows,
                ),
            ];
            let unchanged = [
                st.warnings.feed().held_after(),
                st.segments.feed().held_after(),
                st.lifecycles.feed().held_after(),
            ]
            .iter()
            .zip(copied)
            .all(|(held, c)| held.is_none_or(|h| h >= c));
            if rows.is_empty() && unchanged {
                return;
            }
            (rows, copied)
        };
        let o = outbox.clone();
        let due = {
            let mut last = self
                .outbox_trimmed
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let due = last.elapsed() >= Duration::from_millis(OUTBOX_TRIM_EVERY_MS);
            if due {
                *last = std::time::Instant::now();
            }
            due
        };
        let written = tokio::task::spawn_blocking(move || {
            if !rows.is_empty() {
                o.write(&rows)?;
            }
            if due {
                o.trim()?;
            }
            Ok::<_, outbox::OutboxError>(())
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            // Held in memory meanwhile; the next batch tries again.
            Ok(Err(e)) => return tracing::error!(error = %e, "cannot write the outbox"),
            Err(e) => return tracing::error!(error = %e, "cannot write the outbox"),
        }
        let mut st = self.state.write().await;
        st.warnings.feed_mut().copied_to(copied[0]);
        st.segments.feed_mut().copied_to(copied[1]);
        st.lifecycles.feed_mut().copied_to(copied[2]);
    }

    /// Registers a durable consumer that starts from the feeds' ends now (`start` reads
    /// them from the state, locked meanwhile so nothing it needs is let go), and returns
    /// where it starts.
    pub async fn register(
        &self,
        consumer: &str,
        start: impl FnOnce(&ReadState) -> Cursor,
    ) -> Cursor {
        let mut st = self.state.write().await;
        let cursor = start(&st);
        if let Some(outbox) = &self.outbox {
            outbox.set_floor(consumer, cursor);
            hold_from(st.warnings.feed_mut(), cursor.alerts);
            hold_from(st.segments.feed_mut(), cursor.segments);
            hold_from(st.lifecycles.feed_mut(), cursor.lifecycles);
        }
        cursor
    }

    /// The durable outbox, when there is one.
    pub fn outbox(&self) -> Option<&Arc<Outbox>> {
        self.outbox.as_ref()
    }

    /// The changes after `cursor` in the feeds `wanted` (by [`FeedName`]), at most `limit`
    /// of each: from the feeds while they hold them, else from the outbox.
    /// `Err((feed, oldest))` when neither has the next change of `feed`.
    pub async fn changes_after(
        &self,
        cursor: Cursor,
        wanted: [bool; 3],
        limit: usize,
    ) -> Result<Window, (FeedName, u64)> {
        let mut w = Window::default();
        let mut missing = Vec::new();
        {
            let st = self.state.read().await;
            if wanted[0] {
                match st.warnings.changes_after(cursor.alerts, limit) {
                    Ok(c) => w.alerts = c.into_iter().cloned().collect(),
                    Err(oldest) => missing.push((FeedName::Alerts, oldest)),
                }
            }
            if wanted[1] {
                match st.segments.changes_after(cursor.segments, limit) {
                    Ok(c) => w.segments = c.into_iter().cloned().collect(),
                    Err(oldest) => missing.push((FeedName::Segments, oldest)),
                }
            }
            if wanted[2] {
                match st.lifecycles.changes_after(cursor.lifecycles, limit) {
                    Ok(c) => w.lifecycles = c.into_iter().cloned().collect(),
                    Err(oldest) => missing.push((FeedName::Lifecycles, oldest)),
                }
            }
        }
        for (name, oldest) in missing {
            let Some(outbox) = self.outbox.clone() else {
                return Err((name, oldest));
            };
            let after = cursor.get(name);
            let gap = |first: Option<u64>| (name, first.map_or(oldest, |f| f.min(oldest)));
            match name {
                FeedName::Alerts => {
                    w.alerts = from_outbox(outbox, name, after, limit).await.map_err(gap)?
                }
                FeedName::Segments => {
                    w.segments = from_outbox(outbox, name, after, limit).await.map_err(gap)?
                }
                FeedName::Lifecycles => {
                    w.lifecycles = from_outbox(outbox, name, after, limit).await.map_err(gap)?
                }
            }
        }
        Ok(w)
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

    /// Why the read model stopped following the log, if it has.
    pub fn stopped(&self) -> Option<String> {
        self.stopped.read().map(|s| s.clone()).unwrap_or_default()
    }

    fn stop(&self, why: String) {
        tracing::error!(reason = %why, "the read model stopped following the log; it serves the state before it");
        if let Ok(mut s) = self.stopped.write() {
            *s = Some(why);
        }
    }

    /// Waits until the read model has applied `position`; `false` on timeout.
    pub async fn wait_for(&self, position: u64) -> bool {
        let mut rx = self.applied.subscribe();
        tokio::time::timeout(self.min_position_wait, rx.wait_for(|p| *p >= position))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}
