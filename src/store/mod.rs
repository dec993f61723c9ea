//! The event store: the one place events are written and read back.
//!
//! [`EventStore`] is what every backend implements. It deals in *sealed* events: personal
//! fields are already encrypted by the log (`Log`, the layer above) before they reach a backend, so no
//! backend ever sees plaintext personal data. The embedded backend is [`sqlite`]; the
//! production one is [`kurrent`] (KurrentDB / EventStoreDB).

pub mod kurrent;
pub mod sqlite;

use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use rapport_events::EventType;
use uuid::Uuid;

/// Most events one append may carry.
pub const APPEND_EVENTS_MAX: usize = 10_000;
/// Most events one read returns.
pub const READ_EVENTS_MAX: usize = 10_000;

/// What the writer expects a stream's last version to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have this version (versions start at 0).
    Exact(u64),
}

impl std::str::FromStr for ExpectedVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "any" => Ok(ExpectedVersion::Any),
            "no_stream" => Ok(ExpectedVersion::NoStream),
            n => n
                .parse()
                .map(ExpectedVersion::Exact)
                .map_err(|_| "must be `any`, `no_stream` or a non-negative integer".into()),
        }
    }
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no_stream"),
            ExpectedVersion::Exact(n) => write!(f, "{n}"),
        }
    }
}

/// An event ready for storage: canonical public part, personal part encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedEvent {
    pub id: Uuid,
    pub stream: String,
    pub event_type: EventType,
    pub version: u16,
    pub customer: String,
    pub occurred_at: DateTime<Utc>,
    /// Canonical JSON of `data` without its personal fields.
    pub data: String,
    /// Canonical JSON of `metadata`, `None` when empty.
    pub metadata: Option<String>,
    /// `nonce ‖ ciphertext` of the personal fields, and the generation of the customer's
    /// data key that sealed them.
    pub sealed: Option<(Vec<u8>, u32)>,
    /// 16-byte digest of the whole canonical event (keyed by the customer's data key when
    /// the event has personal fields), compared when an id comes back.
    pub digest: [u8; 16],
}

/// A stored event as a backend returns it (still sealed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub position: u64,
    pub stream_version: u64,
    pub recorded_at: DateTime<Utc>,
    pub event: SealedEvent,
}

/// A customer's data key, wrapped by the master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub customer: String,
    pub generation: u32,
    /// `nonce ‖ ciphertext`; `None` once destroyed.
    pub wrapped: Option<Vec<u8>>,
    pub master_key_id: String,
}

/// One append: events, and the key changes that must commit with them.
#[derive(Debug, Default)]
pub struct AppendRequest {
    pub events: Vec<SealedEvent>,
    /// When set, every event must be in this stream and the stream must be at this version.
    pub expected: Option<(String, ExpectedVersion)>,
    /// Data keys the events use that are not yet durable.
    pub new_keys: Vec<WrappedKey>,
    /// Data keys to destroy in the same transaction (crypto-shredding).
    pub destroy_keys: Vec<(String, u32)>,
}

impl AppendRequest {
    /// The rules every backend checks before anything is written: the size limit, and with
    /// an expected version, one stream.
    pub fn check(&self) -> Result<(), StoreError> {
        if self.events.len() > APPEND_EVENTS_MAX {
            return Err(StoreError::Invalid(format!(
                "at most {APPEND_EVENTS_MAX} events per append"
            )));
        }
        if let Some((stream, _)) = &self.expected {
            if let Some(ev) = self.events.iter().find(|e| &e.stream != stream) {
                return Err(StoreError::Invalid(format!(
                    "event {} belongs to stream `{}`, not `{stream}`",
                    ev.id, ev.stream
                )));
            }
        }
        Ok(())
    }
}

/// Where one appended event landed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Appended {
    pub id: Uuid,
    pub position: u64,
    pub stream: String,
    pub stream_version: u64,
    /// The id was already stored with the same content: nothing was written.
    pub duplicate: bool,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The stream is not at the expected version (HTTP 409).
    #[error("stream `{stream}` is at version {actual} but version {expected} was expected")]
    WrongExpectedVersion {
        stream: String,
        expected: ExpectedVersion,
        actual: String,
    },
    /// The id is stored with different content (HTTP 409).
    #[error("event id {id} is already stored at position {position} with different content")]
    IdConflict { id: Uuid, position: u64 },
    /// The request breaks a rule the store checks (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// Another process holds the store (e.g. a running server).
    #[error("the store at {0} is in use by another process (is `rapport serve` running?)")]
    Locked(String),
    /// The store was written by a newer Rapport or is not a Rapport store.
    #[error("{0}")]
    Format(String),
    /// A stored record failed its integrity check (tampered or corrupt).
    #[error("integrity check failed for the event at position {position}: {what}")]
    Integrity { position: u64, what: String },
    /// The writer has stopped (shutdown or a fatal IO error).
    #[error("the store is shutting down")]
    Closed,
    /// No room left on the store's disk (or its size limit): nothing of the request was
    /// written (HTTP 507).
    #[error("the store's disk is full: nothing was written ({0})")]
    Full(String),
    #[error("storage error: {0}")]
    Io(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => StoreError::Full(e.to_string()),
            _ => StoreError::Io(e.to_string()),
        }
    }
}

/// The event store contract. Every backend passes `tests/store_contract.rs`.
#[async_trait::async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends atomically: all events or none; durable before it returns `Ok`.
    async fn append(&self, req: AppendRequest) -> Result<Vec<Appended>, StoreError>;
    /// Events of one stream from `from_version`, at most `limit`.
    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError>;
    /// The global log after `after`, in position order, at most `limit`, up to `until` when set.
    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError>;
    /// The events at these positions, in the order given; positions with no event (0,
    /// beyond the last) are left out. For a few positions at a time, such as a profile's
    /// identity events.
    async fn read_at(&self, positions: &[u64]) -> Result<Vec<StoredEvent>, StoreError> {
        let mut out = Vec::with_capacity(positions.len());
        for &p in positions.iter().filter(|&&p| p >= 1) {
            out.extend(self.read_all(p - 1, 1).await?);
        }
        Ok(out)
    }
    /// Whether reading events by position ([`EventStore::read_at`]) costs about what
    /// reading them in order does. Business-time folds read that way (see `valid_time`).
    fn point_reads_are_cheap(&self) -> bool {
        false
    }
    /// The last durable position (0 when empty).
    fn last_position(&self) -> u64;
    /// The stream's last version, `None` when it has no events.
    fn stream_version(&self, stream: &str) -> Option<u64>;
    /// Resolves when `last_position` may have moved past `seen`.
    async fn wait_for_position_after(&self, seen: u64);
    /// Whether one append spanning several streams is atomic. When false, such an append is
    /// written stream by stream (each stream atomically), and callers that promise
    /// all-or-nothing batches must refuse them.
    fn atomic_across_streams(&self) -> bool {
        true
    }
    /// Whether the last write failed for want of disk space and none has succeeded since.
    fn is_full(&self) -> bool {
        false
    }
    /// Every data key, wrapped (destroyed ones with `wrapped: None`).
    async fn load_keys(&self) -> Result<Vec<WrappedKey>, StoreError>;
    /// Replaces wrapped keys (master-key rotation), atomically.
    async fn rewrap_keys(
        &self,
        keys: Vec<WrappedKey>,
        master_key_id: &str,
    ) -> Result<(), StoreError>;
    /// The id of the master key this store's data keys are wrapped with, if any.
    async fn master_key_id(&self) -> Result<Option<String>, StoreError>;
    /// Purges freed pages (after an erasure) so destroyed keys leave no trace in files.
    async fn purge(&self) -> Result<(), StoreError>;
}

/// Catch-up then live subscription on any store: pages through `read_all` and waits for
/// new positions. Positions arrive strictly increasing, with no gap at the switch from
/// catch-up to live, because both phases read by position from the last one seen.
pub fn subscribe(
    store: std::sync::Arc<dyn EventStore>,
    after: u64,
) -> BoxStream<'static, Result<StoredEvent, StoreError>> {
    const PAGE_EVENTS: usize = 1000;
    let s = futures::stream::unfold(
        (store, after, Vec::<StoredEvent>::new().into_iter()),
        |(store, mut after, mut buf)| async move {
            loop {
                if let Some(ev) = buf.next() {
                    after = ev.position;
                    return Some((Ok(ev), (store, after, buf)));
                }
                if store.last_position() <= after {
                    store.wait_for_position_after(after).await;
                    continue;
                }
                match store.read_all(after, PAGE_EVENTS).await {
                    Ok(page) => buf = page.into_iter(),
                    Err(e) => return Some((Err(e), (store, after, buf))),
                }
            }
        },
    );
    Box::pin(s)
}
