//! The read model: the projections of `rapport-projections`, kept up to date by a
//! catch-up-then-live subscription on the log, and the wait that gives read-your-writes.
//!
//! Not built yet (see `docs/projections.md`): snapshots and checkpoints. Today the read
//! model is rebuilt from the first event whenever the service starts.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use rapport_projections::{Customers, LifecycleConfig, Projection};
use tokio::sync::{watch, RwLock};

use crate::{
    log::{Log, PersonalAccess},
    store,
};

/// Default longest wait of a query for `min_position` before it answers 503.
pub const MIN_POSITION_WAIT_MS: u64 = 5_000;
/// Events applied under one write lock.
const APPLY_BATCH_EVENTS: usize = 1024;

pub struct ReadModel {
    pub customers: RwLock<Customers>,
    /// The time of the latest event applied (`occurred_at`): the default `as_of`.
    pub latest: RwLock<Option<DateTime<Utc>>>,
    pub lifecycle: LifecycleConfig,
    /// Longest wait for `min_position`.
    pub min_position_wait: Duration,
    applied: watch::Sender<u64>,
}

impl ReadModel {
    /// Starts following the log from its first event.
    pub fn spawn(log: Log, lifecycle: LifecycleConfig, min_position_wait: Duration) -> Arc<ReadModel> {
        let (applied, _) = watch::channel(0);
        let model = Arc::new(ReadModel { customers: RwLock::new(Customers::default()), latest: RwLock::new(None), lifecycle, min_position_wait, applied });
        let m = model.clone();
        tokio::spawn(async move {
            let mut events = store::subscribe(log.store.clone(), 0).ready_chunks(APPLY_BATCH_EVENTS);
            while let Some(batch) = events.next().await {
                let mut opened = Vec::with_capacity(batch.len());
                for r in batch {
                    // Projections see personal data as support staff do; what a reader may
                    // see of it is decided when it is read (see `http::customers`).
                    match r.and_then(|s| log.open(s, PersonalAccess::Plain)) {
                        Ok(ev) => opened.push(ev),
                        Err(e) => {
                            tracing::error!(error = %e, "the read model stopped: an event could not be read");
                            return;
                        }
                    }
                }
                let Some(last) = opened.last().map(|e| e.position) else { continue };
                let newest = opened.iter().map(|e| e.occurred_at).max();
                {
                    let mut c = m.customers.write().await;
                    for ev in &opened {
                        c.apply(ev);
                    }
                }
                {
                    let mut latest = m.latest.write().await;
                    *latest = (*latest).max(newest);
                }
                m.applied.send_replace(last);
            }
        });
        model
    }

    pub fn applied_position(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Waits until the read model has applied `position`; `false` on timeout.
    pub async fn wait_for(&self, position: u64) -> bool {
        let mut rx = self.applied.subscribe();
        tokio::time::timeout(self.min_position_wait, rx.wait_for(|p| *p >= position)).await.is_ok_and(|r| r.is_ok())
    }
}
