//! The fold pipeline: the log read in batches of opened events (a reader task ahead of
//! the fold) and applied to a `ReadState`. The live read model, replay, time travel,
//! business-time builds and the catch-up child all fold through here.
//!
//! - [`snapshot`]: the snapshot file format; [`history`]: snapshots kept for time travel;
//! - [`time_travel`]: past states (`as_of_position`, `known_at`, `valid_at`);
//! - [`valid_time`]: business-time builds for `valid_at`;
//! - [`child`]: a fold run in a child process; [`costs`]: the fold timed per event type.

pub mod child;
pub mod costs;
pub mod history;
pub mod snapshot;
pub mod time_travel;
pub mod valid_time;

use futures::StreamExt;
use rapport_events::FoldEvent;
use rapport_projections::{Projection, ReadState};
use sha2::{Digest, Sha256};

use crate::{log::Log, store::StoreError};

/// Folds events `(state.position(), until]` into `state`, in position order. `on_batch`
/// is told how many events were read (for progress bars).
pub async fn fold(
    log: &Log,
    state: ReadState,
    until: u64,
    on_batch: impl FnMut(u64),
) -> Result<ReadState, StoreError> {
    let from = state.position();
    fold_from(log, state, from, until, on_batch).await
}

/// Folds events `(from, until]` into any projection, in position order (see [`fold`]).
pub async fn fold_from<S: Projection>(
    log: &Log,
    state: S,
    from: u64,
    until: u64,
    on_batch: impl FnMut(u64),
) -> Result<S, StoreError> {
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
pub(crate) async fn fold_batches<S: Projection, R>(
    mut state: S,
    read: impl FnOnce(tokio::sync::mpsc::Sender<Opened>) -> R,
    mut on_batch: impl FnMut(u64),
) -> Result<S, StoreError>
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
async fn read_opened(log: Log, after: u64, until: u64, tx: tokio::sync::mpsc::Sender<Opened>) {
    let mut batches = log.batches(after, until);
    while let Some(batch) = batches.next().await {
        let opened = batch.and_then(|b| b.into_iter().map(|s| log.open_fold(s)).collect());
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
        // What the detector said, apart from how it keeps its state: equal across any
        // change of the detector's internals that keeps its results.
        ("alerts", hex(&state.warnings.alert_stream_bytes())),
    ]
}
