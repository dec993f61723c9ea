//! Server-Sent Events over the read model's change feeds (segment changes, alert changes):
//! what is there after the cursor, then live, one read of the state per applied batch.

use std::{collections::VecDeque, convert::Infallible, time::Duration};

use axum::{
    http::HeaderMap,
    response::{
        sse::{Event as SseEvent, KeepAlive, Sse},
        IntoResponse, Response,
    },
};
use rapport_projections::ReadState;

use super::{ApiError, AppState};

/// Keep-alive comments on an idle feed.
const FEED_KEEP_ALIVE_SECS: u64 = 15;

/// The feed's cursor: `after`, else the `Last-Event-ID` header, else 0.
/// Changes one read of a feed sends before checking for more.
pub(super) const FEED_BATCH_CHANGES: usize = 1000;

pub(super) fn cursor(after: Option<u64>, headers: &HeaderMap) -> u64 {
    after
        .or_else(|| {
            headers
                .get("last-event-id")
                .and_then(|v| v.to_str().ok())
                .and_then(|s| s.parse::<u64>().ok())
        })
        .unwrap_or(0)
}

/// What one read of the state yields: `(seq, event to send, if any)` for items after the
/// cursor, or `Err(oldest kept)` when the cursor fell behind.
pub(super) type ReadFeed =
    dyn Fn(&ReadState, u64) -> Result<Vec<(u64, Option<SseEvent>)>, u64> + Send + Sync;

/// Streams `read` from `after`, then live. A cursor already older than what is kept is
/// answered 410 (`gone_hint` says what to do instead); a reader that falls behind later
/// gets a `gone` event and the stream ends.
/// Live feeds (SSE) one API key may hold open at once.
pub const FEEDS_PER_KEY_MAX: usize = 32;

/// Open feeds per API key, so that one key cannot hold the server's connections.
#[derive(Default)]
pub struct FeedCounts(std::sync::Mutex<std::collections::HashMap<String, usize>>);

/// One open feed of a key; the count goes down when the feed's stream is dropped.
pub(super) struct FeedGuard {
    counts: std::sync::Arc<FeedCounts>,
    key: String,
}

impl FeedCounts {
    /// Feeds open now, of every key.
    pub(super) fn open(&self) -> usize {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .sum()
    }

    /// Counts a feed of `key` in, or says why not (429).
    pub(super) fn enter(
        counts: &std::sync::Arc<FeedCounts>,
        key: &str,
    ) -> Result<FeedGuard, ApiError> {
        let mut m = counts.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(key.to_owned()).or_default();
        if *n >= FEEDS_PER_KEY_MAX {
            return Err(ApiError::TooManyRequests(format!(
                "the key `{key}` already holds {FEEDS_PER_KEY_MAX} live feeds open; close one first"
            )));
        }
        *n += 1;
        Ok(FeedGuard {
            counts: counts.clone(),
            key: key.to_owned(),
        })
    }
}

impl Drop for FeedGuard {
    fn drop(&mut self) {
        let mut m = self.counts.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.key);
            }
        }
    }
}

pub(super) async fn live(
    state: AppState,
    guard: FeedGuard,
    after: u64,
    gone_hint: &str,
    read: Box<ReadFeed>,
) -> Result<Response, ApiError> {
    if let Err(oldest) = read(&*state.read_model.state.read().await, after) {
        return Err(ApiError::Gone(format!(
            "changes before {oldest} are no longer kept; {gone_hint}"
        )));
    }
    struct Feed {
        state: AppState,
        /// Held while the stream lives.
        _guard: FeedGuard,
        cursor: u64,
        done: bool,
        applied: tokio::sync::watch::Receiver<u64>,
        ready: VecDeque<SseEvent>,
        read: Box<ReadFeed>,
    }
    let feed = Feed {
        applied: state.read_model.watch_applied(),
        _guard: guard,
        state,
        cursor: after,
        done: false,
        ready: VecDeque::new(),
        read,
    };
    let stream = futures::stream::unfold(feed, |mut f| async move {
        loop {
            if let Some(ev) = f.ready.pop_front() {
                return Some((Ok::<_, Infallible>(ev), f));
            }
            if f.done {
                return None;
            }
            f.applied.borrow_and_update();
            let batch = {
                let st = f.state.read_model.state.read().await;
                (f.read)(&st, f.cursor)
            };
            match batch {
                Err(oldest) => {
                    f.done = true;
                    f.ready.push_back(SseEvent::default().event("gone").data(format!(
                        "changes before {oldest} are no longer kept; re-read the state and follow from its `last_change`"
                    )));
                }
                Ok(items) if !items.is_empty() => {
                    for (seq, ev) in items {
                        f.cursor = seq;
                        f.ready.extend(ev);
                    }
                }
                Ok(_) => {
                    if f.applied.changed().await.is_err() {
                        return None;
                    }
                }
            }
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(FEED_KEEP_ALIVE_SECS)))
        .into_response())
}
