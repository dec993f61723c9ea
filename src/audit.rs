//! The audit log of personal-data reads: who (which API key, which role) saw which
//! customers' personal data in plain, when, and through what (a profile, a timeline, a
//! page of events, a subject export, an alert's complaint phrases). PIPL and the GDPR
//! both expect a controller to be able to say so. Admins read it (`GET /v1/audit`).
//!
//! Entries go through a bounded queue to one writer that appends them to `audit.ndjson`
//! beside the store (owner-only) and syncs after each batch; a full queue makes the read
//! wait rather than go unrecorded. Pseudonymised reads (analysts) are not recorded: they
//! show no personal value.

use std::{io::Write, path::PathBuf, sync::Arc};

use chrono::{DateTime, Utc};
use rapport_events::{PersonalView, RecordedEvent};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// Entries waiting for the writer, at most.
const AUDIT_QUEUE_MAX: usize = 10_000;
/// Entries the writer takes from the queue per write and sync, at most.
const AUDIT_BATCH_MAX: usize = 1_000;
/// Entries `GET /v1/audit` answers, at most.
pub const AUDIT_READ_MAX: usize = 10_000;

/// One read of personal data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub at: DateTime<Utc>,
    pub key_id: String,
    pub role: String,
    /// What was read: `profile`, `timeline`, `events`, `subject_export`, `alert`.
    pub what: String,
    pub customers: Vec<String>,
}

pub struct Audit {
    file: PathBuf,
    tx: mpsc::Sender<Entry>,
}

impl Audit {
    /// Appends to `file` (created owner-only) from a writer task.
    pub fn open(file: PathBuf) -> anyhow::Result<Arc<Audit>> {
        let mut opts = std::fs::OpenOptions::new();
        opts.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut out = opts.open(&file)?;
        let (tx, mut rx) = mpsc::channel::<Entry>(AUDIT_QUEUE_MAX);
        // A thread of its own: the writes and syncs are blocking IO, and it needs no runtime.
        std::thread::Builder::new()
            .name("audit-log".into())
            .spawn(move || {
            while let Some(first) = rx.blocking_recv() {
                let mut batch = vec![first];
                while batch.len() < AUDIT_BATCH_MAX {
                    match rx.try_recv() {
                        Ok(e) => batch.push(e),
                        Err(_) => break,
                    }
                }
                let mut text = String::new();
                for e in &batch {
                    if let Ok(line) = serde_json::to_string(e) {
                        text.push_str(&line);
                        text.push('\n');
                    }
                }
                let written = out
                    .write_all(text.as_bytes())
                    .and_then(|()| out.sync_data());
                if let Err(e) = written {
                    tracing::error!(error = %e, entries = batch.len(), "cannot write the audit log");
                }
            }
        })?;
        Ok(Arc::new(Audit { file, tx }))
    }

    /// Records that `key_id` (`role`) read the personal data of `customers` through `what`.
    pub async fn record(&self, key_id: &str, role: &str, what: &str, mut customers: Vec<String>) {
        if customers.is_empty() {
            return;
        }
        customers.sort();
        customers.dedup();
        let e = Entry {
            at: Utc::now(),
            key_id: key_id.to_owned(),
            role: role.to_owned(),
            what: what.to_owned(),
            customers,
        };
        if self.tx.send(e).await.is_err() {
            tracing::error!("the audit log writer has stopped");
        }
    }

    /// The customers whose personal data `events` show in plain.
    pub fn plain_customers(events: &[RecordedEvent]) -> Vec<String> {
        events
            .iter()
            .filter(|e| e.personal == Some(PersonalView::Plain) && !e.customer.is_empty())
            .map(|e| e.customer.clone())
            .collect()
    }

    /// Entries, newest first, about `customer` and by `key_id` when given, at most `limit`.
    pub fn read(
        &self,
        customer: Option<&str>,
        key_id: Option<&str>,
        limit: usize,
    ) -> std::io::Result<Vec<Entry>> {
        let text = std::fs::read_to_string(&self.file)?;
        Ok(text
            .lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<Entry>(l).ok())
            .filter(|e| customer.is_none_or(|c| e.customers.iter().any(|x| x == c)))
            .filter(|e| key_id.is_none_or(|k| e.key_id == k))
            .take(limit)
            .collect())
    }
}
