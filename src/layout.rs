//! What Rapport keeps under `--data-dir`, named in one place. Nothing else in the service
//! spells a file or folder name of the data directory.
//!
//! ```text
//! <data-dir>/rapport.sqlite        the embedded store (events, data keys) and the API keys
//!           /LOCK                  held by the one process writing the store
//!           /store                 which store the derived state below belongs to
//!           /admin-key             the admin key made at first start (mode 0600)
//!           /kafka-outbox.checkpoint
//!           /outbox.sqlite         changes durable consumers have not delivered yet
//!           /snapshots/read_state.snapshot     the live read model's snapshot
//!                     /history/<position>.snapshot   kept for time travel
//!                     /valid/<until>/…               business-time builds
//! ```

use std::path::{Path, PathBuf};

/// The embedded store's SQLite file.
pub const DATABASE_FILE: &str = "rapport.sqlite";
/// The file lock of the process writing the store.
pub const LOCK_FILE: &str = "LOCK";

/// A data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir(PathBuf);

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> DataDir {
        DataDir(root.into())
    }

    pub fn root(&self) -> &Path {
        &self.0
    }

    /// The embedded store's database (events, data keys, API keys).
    pub fn database(&self) -> PathBuf {
        self.0.join(DATABASE_FILE)
    }

    /// Names the store the derived state here (snapshots, checkpoints) belongs to.
    pub fn store_identity(&self) -> PathBuf {
        self.0.join("store")
    }

    /// The admin key written when the first start found no API key.
    pub fn admin_key(&self) -> PathBuf {
        self.0.join("admin-key")
    }

    /// The audit log of personal-data reads (mode 0600).
    pub fn audit_log(&self) -> PathBuf {
        self.0.join("audit.ndjson")
    }

    /// Webhook subscriptions, their secrets and their delivery cursors (mode 0600).
    pub fn webhooks(&self) -> PathBuf {
        self.0.join("webhooks.json")
    }

    /// How far the Kafka outbox has published.
    pub fn kafka_outbox_checkpoint(&self) -> PathBuf {
        self.0.join("kafka-outbox.checkpoint")
    }

    /// The changes durable consumers (Kafka, webhooks) have not delivered yet.
    pub fn outbox(&self) -> PathBuf {
        self.0.join("outbox.sqlite")
    }

    /// The read model's snapshots (see [`Snapshots`]).
    pub fn snapshots(&self) -> PathBuf {
        self.0.join("snapshots")
    }
}

/// What lives under the snapshots folder.
pub struct Snapshots;

impl Snapshots {
    /// The snapshots kept for time travel.
    pub fn history(snapshots: &Path) -> PathBuf {
        snapshots.join("history")
    }

    /// The business-time builds.
    pub fn valid_builds(snapshots: &Path) -> PathBuf {
        snapshots.join("valid")
    }
}
