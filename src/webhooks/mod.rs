//! Webhooks: subscriptions to the read model's change feeds (segment entered and exited,
//! alert raised, escalated, overdue and resolved, lifecycle changed), delivered to a URL,
//! signed, at least once, in order per subscription.
//!
//! Each subscription is a durable consumer of the read model's outbox
//! (`read_model::outbox`), under its id: what it has not delivered is kept for it however
//! far behind it falls. It keeps a cursor per feed, in
//! `webhooks.json` beside the store (mode 0600: it holds the signing secrets), written
//! atomically after every delivery, so a restart resumes where delivery stopped (a
//! delivery that succeeded just before a crash may come again: receivers dedupe on the
//! delivery id). Each subscription has its own task; a slow receiver delays nobody
//! else, and delivery never holds the read model's lock across a request, so it never
//! blocks ingest or queries. A receiver that keeps failing is retried with exponential
//! backoff and jitter, then parked with its last error until staff resume it. A feed
//! that no longer holds a change a subscription still needs parks it too, saying so:
//! nothing is ever skipped silently.

mod deliver;
pub mod target;

pub use deliver::signature;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::{
    config::WebhooksConfig,
    read_model::{outbox::Outbox, ReadModel},
};

/// What a subscription can be told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Topic {
    #[serde(rename = "segment.entered")]
    SegmentEntered,
    #[serde(rename = "segment.exited")]
    SegmentExited,
    #[serde(rename = "alert.raised")]
    AlertRaised,
    #[serde(rename = "alert.escalated")]
    AlertEscalated,
    #[serde(rename = "alert.overdue")]
    AlertOverdue,
    #[serde(rename = "alert.resolved")]
    AlertResolved,
    #[serde(rename = "lifecycle.changed")]
    LifecycleChanged,
}

impl Topic {
    pub const ALL: [Topic; 7] = [
        Topic::SegmentEntered,
        Topic::SegmentExited,
        Topic::AlertRaised,
        Topic::AlertEscalated,
        Topic::AlertOverdue,
        Topic::AlertResolved,
        Topic::LifecycleChanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Topic::SegmentEntered => "segment.entered",
            Topic::SegmentExited => "segment.exited",
            Topic::AlertRaised => "alert.raised",
            Topic::AlertEscalated => "alert.escalated",
            Topic::AlertOverdue => "alert.overdue",
            Topic::AlertResolved => "alert.resolved",
            Topic::LifecycleChanged => "lifecycle.changed",
        }
    }

    pub fn parse(s: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// How far a subscription has delivered, per feed (the feeds' `seq`).
pub use crate::read_model::outbox::Cursor;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Active,
    /// Too many failures in a row, or a gap in a feed: delivery waits for staff.
    Parked,
}

/// One subscription and its delivery state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: String,
    pub url: String,
    /// Signs every delivery (HMAC-SHA-256); shown once, when created.
    pub secret: String,
    pub topics: Vec<Topic>,
    /// Segment topics only for this segment, when set.
    pub segment: Option<String>,
    /// Changes per delivery, at most: 1 posts each change as itself; more post them
    /// together (see `docs/reach.md`).
    #[serde(default = "one")]
    pub batch: u32,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub cursor: Cursor,
    pub status: Status,
    /// Failed attempts in a row.
    pub failures: u32,
    pub last_error: Option<String>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub delivered: u64,
    /// Which delivery task may write this subscription: a resume starts a new task, and
    /// an old one finishing its last request must not write over what staff set.
    #[serde(skip)]
    generation: u64,
}

impl Subscription {
    /// What the API shows: everything but the secret.
    pub fn public(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.remove("secret");
        }
        v
    }
}

fn one() -> u32 {
    1
}

/// The most changes one delivery may carry.
pub const BATCH_MAX: u32 = 1_000;

/// Why a change to the subscriptions was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("no webhook `{0}`")]
    NotFound(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Every subscription, the file they live in, and their delivery tasks.
pub struct Webhooks {
    file: PathBuf,
    config: WebhooksConfig,
    subs: Mutex<BTreeMap<String, Subscription>>,
    tasks: Mutex<BTreeMap<String, tokio::task::JoinHandle<()>>>,
    model: Arc<ReadModel>,
    client: reqwest::Client,
}

/// The subscriptions in `file` (none when it is absent).
fn read_subscriptions(file: &Path) -> anyhow::Result<BTreeMap<String, Subscription>> {
    match std::fs::read(file) {
        Ok(b) => Ok(serde_json::from_slice(&b)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e.into()),
    }
}

/// Registers every subscription in `file` as a durable consumer of `outbox`, from its
/// cursor (at start, before the read model follows the log).
pub fn register_floors(file: &Path, outbox: &Outbox) -> anyhow::Result<()> {
    for (id, sub) in read_subscriptions(file)? {
        outbox.set_floor(&id, sub.cursor);
    }
    Ok(())
}

impl Webhooks {
    /// Reads the subscriptions in `file` (none when it is absent).
    pub fn open(
        file: PathBuf,
        config: WebhooksConfig,
        model: Arc<ReadModel>,
    ) -> anyhow::Result<Arc<Webhooks>> {
        let subs = read_subscriptions(&file)?;
        let client = target::client(&config)?;
        Ok(Arc::new(Webhooks {
            file,
            config,
            subs: Mutex::new(subs),
            tasks: Mutex::new(BTreeMap::new()),
            model,
            client,
        }))
    }

    fn subs(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Subscription>> {
        self.subs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes every subscription: a temporary file, synced, renamed over the old one.
    fn save(&self, subs: &BTreeMap<String, Subscription>) -> std::io::Result<()> {
        let tmp = self.file.with_extension("tmp");
        let _ = std::fs::remove_file(&tmp);
        let bytes = serde_json::to_vec_pretty(subs).map_err(std::io::Error::other)?;
        crate::crypto::write_secret_file(&tmp, &bytes)?;
        std::fs::rename(&tmp, &self.file)
    }

    /// Starts a delivery task for every active subscription (at start).
    pub fn start_all(self: &Arc<Self>) {
        let ids: Vec<String> = self.subs().keys().cloned().collect();
        for id in ids {
            self.start(&id);
        }
    }

    fn start(self: &Arc<Self>, id: &str) {
        let generation = {
            let mut subs = self.subs();
            let Some(sub) = subs.get_mut(id) else { return };
            sub.generation += 1;
            sub.generation
        };
        self.spawn(id, generation);
    }

    /// Starts the delivery task of `generation`, stopping the one before.
    fn spawn(self: &Arc<Self>, id: &str, generation: u64) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = tasks.remove(id) {
            t.abort();
        }
        let task = tokio::spawn(deliver::run(self.clone(), id.to_owned(), generation));
        tasks.insert(id.to_owned(), task);
    }

    /// Stops every delivery task (at shutdown; cursors are already written).
    pub fn stop_all(&self) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        for (_, t) in std::mem::take(&mut *tasks) {
            t.abort();
        }
    }

    pub fn list(&self) -> Vec<Subscription> {
        self.subs().values().cloned().collect()
    }

    pub fn get(&self, id: &str) -> Option<Subscription> {
        self.subs().get(id).cloned()
    }

    /// Subscribes `url` to `topics`, from the feeds' current ends (what happens from now
    /// on). Returns the subscription, secret included.
    pub async fn create(
        self: &Arc<Self>,
        url: &str,
        topics: Vec<Topic>,
        segment: Option<String>,
        batch: u32,
        created_by: &str,
    ) -> Result<Subscription, WebhookError> {
        if !(1..=BATCH_MAX).contains(&batch) {
            return Err(WebhookError::Invalid {
                field: "/batch",
                message: format!("must be from 1 to {BATCH_MAX}"),
            });
        }
        target::check_url(url, &self.config).await?;
        if topics.is_empty() {
            return Err(WebhookError::Invalid {
                field: "/events",
                message: "name at least one event".into(),
            });
        }
        let id = format!("wh-{}", uuid::Uuid::now_v7().simple());
        let cursor = self
            .model
            .register(&id, |st| Cursor {
                alerts: st.warnings.last_seq(),
                segments: st.segments.last_seq(),
                lifecycles: st.lifecycles.last_seq(),
            })
            .await;
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let sub = Subscription {
            id,
            url: url.to_owned(),
            secret: format!("whsec_{}", hex::encode(secret)),
            topics,
            segment,
            batch,
            created_at: Utc::now(),
            created_by: created_by.to_owned(),
            cursor,
            status: Status::Active,
            failures: 0,
            last_error: None,
            last_attempt_at: None,
            delivered: 0,
            generation: 0,
        };
        {
            let mut subs = self.subs();
            subs.insert(sub.id.clone(), sub.clone());
            self.save(&subs)?;
        }
        self.start(&sub.id);
        Ok(sub)
    }

    pub fn delete(&self, id: &str) -> Result<(), WebhookError> {
        let mut subs = self.subs();
        if subs.remove(id).is_none() {
            return Err(WebhookError::NotFound(id.to_owned()));
        }
        self.save(&subs)?;
        if let Some(o) = self.model.outbox() {
            if let Err(e) = o.remove_floor(id) {
                tracing::warn!(webhook = %id, error = %e, "the outbox keeps this subscription's changes until the next start");
            }
        }
        if let Some(t) = self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
        {
            t.abort();
        }
        Ok(())
    }

    /// Resumes a parked subscription, optionally from `cursor` (a replay).
    pub fn resume(
        self: &Arc<Self>,
        id: &str,
        cursor: Option<Cursor>,
    ) -> Result<Subscription, WebhookError> {
        let sub = {
            let mut subs = self.subs();
            let sub = subs
                .get_mut(id)
                .ok_or_else(|| WebhookError::NotFound(id.to_owned()))?;
            sub.status = Status::Active;
            sub.failures = 0;
            if let Some(c) = cursor {
                sub.cursor = c;
            }
            if let Some(o) = self.model.outbox() {
                o.set_floor(id, sub.cursor);
            }
            // From here on the old task's writes are refused.
            sub.generation += 1;
            let sub = sub.clone();
            self.save(&subs)?;
            sub
        };
        self.spawn(id, sub.generation);
        Ok(sub)
    }

    /// The cursor that replays every change caused by events after `position`: from
    /// the feeds, or the outbox for what they no longer hold.
    pub async fn cursor_after(&self, position: u64) -> Result<Cursor, String> {
        let held = {
            let st = self.model.state.read().await;
            deliver::cursor_after(&st, position)
        };
        let mut cursor = Cursor::default();
        for (feed, seq) in held {
            let seq = match seq {
                Some(s) => s,
                None => self
                    .model
                    .outbox()
                    .and_then(|o| o.last_at_or_before(feed, position).ok().flatten())
                    .ok_or_else(|| {
                        format!(
                            "the {} feed no longer holds the changes after position {position}",
                            feed.as_str()
                        )
                    })?,
            };
            cursor.set(feed, seq);
        }
        Ok(cursor)
    }

    /// Updates one subscription's state and writes it, from its delivery task of
    /// `generation` (`None` when the subscription is gone or another task now delivers it).
    fn update(
        &self,
        id: &str,
        generation: u64,
        f: impl FnOnce(&mut Subscription),
    ) -> std::io::Result<Option<Subscription>> {
        let mut subs = self.subs();
        let Some(sub) = subs.get_mut(id).filter(|s| s.generation == generation) else {
            return Ok(None);
        };
        f(sub);
        let sub = sub.clone();
        self.save(&subs)?;
        if let Some(o) = self.model.outbox() {
            o.set_floor(id, sub.cursor);
        }
        Ok(Some(sub))
    }
}
