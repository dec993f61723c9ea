//! The KurrentDB (EventStoreDB) backend, on the official `kurrentdb` client.
//!
//! How Rapport's contract maps onto KurrentDB (the long form is in `docs/kurrentdb.md`):
//!
//! - **Streams.** Rapport's stream `s` is the KurrentDB stream `{prefix}:{s}`; stream
//!   versions are KurrentDB revisions (both start at 0). Data keys live in
//!   `{prefix}-keys:{customer}:{generation}`, the master key's id in `{prefix}-meta`.
//! - **Positions.** Rapport's positions are gapless (1, 2, 3, …): position *n* is the *n*-th
//!   event of Rapport's streams in `$all` order. Every instance derives the same numbering
//!   from `$all` filtered by the prefix, so numbers are stable across restarts and nodes, as
//!   long as nobody deletes or truncates Rapport's event streams (a scavenge would then
//!   renumber; Rapport itself never does either). A [`Mirror`] keeps, per position, the
//!   `$all` position, so a read can start anywhere without scanning.
//! - **Idempotency.** The server deduplicates event ids only when the write carries an
//!   expected revision. Rapport therefore always sends one: the caller's, or the stream's
//!   current revision as the mirror knows it. A retry after a lost answer carries the same
//!   revision, so the server recognises the events; ids already in the mirror are compared by
//!   digest, as in the embedded store. Two instances writing the *same id* into *different*
//!   streams at the same instant can both succeed (documented limitation).
//! - **Atomicity.** One append is atomic per stream only (the client has no multi-stream
//!   append), so [`EventStore::atomic_across_streams`] is false: a request spanning several
//!   streams is written stream by stream, and the HTTP API refuses such batches.
//! - **Reconnects.** The mirror follows a catch-up subscription on `$all` and resubscribes
//!   from its last position after any error; appends retry transient errors (connection
//!   lost, leader changed, deadline) with the same expected revision.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use base64::Engine;
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use kurrentdb::{
    AppendToStreamOptions, Client, ClientSettings, EventData, Position, ReadAllOptions,
    ReadStreamOptions, RecordedEvent, StreamMetadata, StreamPosition, StreamState,
    SubscribeToAllOptions, SubscriptionEvent, SubscriptionFilter,
};
use rapport_events::EventType;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::watch;
use uuid::Uuid;

use super::{
    AppendRequest, Appended, EventStore, ExpectedVersion, SealedEvent, StoreError, StoredEvent,
    WrappedKey,
};

mod mirror;
mod payload;

pub use mirror::Mirror;
use mirror::*;
use payload::*;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The stream-name prefix when the URL names none.
pub const DEFAULT_PREFIX: &str = "rapport";
/// How long one call to the server may take.
const CALL_DEADLINE: Duration = Duration::from_secs(10);
/// How long an append keeps retrying transient errors before it gives up.
const RETRY_FOR: Duration = Duration::from_secs(30);
/// Pause between retries, and before resubscribing after an error.
const RETRY_PAUSE: Duration = Duration::from_millis(250);
/// How long an append waits to see its own events arrive on the subscription.
const VISIBLE_WITHIN: Duration = Duration::from_secs(30);
/// Times an append without an expected version re-reads a stream that moved under it.
const MOVED_RETRIES: usize = 8;
/// Events per page while catching up at start.
const CATCH_UP_PAGE_EVENTS: usize = 4096;

/// Where the store is and how its streams are named.
#[derive(Clone)]
pub struct KurrentOptions {
    pub settings: ClientSettings,
    pub prefix: String,
    /// The URL without credentials, for logs and the data directory's identity check.
    pub display: String,
}

impl KurrentOptions {
    /// Parses `kurrentdb://[user:pass@]host:2113[,host2:2113…]?tls=false&prefix=rapport`.
    /// `prefix` is Rapport's own parameter; the rest goes to the client as it is (the
    /// schemes `kurrentdb`, `kdb`, `esdb` and their `+discover` forms).
    pub fn parse(url: &str) -> Result<KurrentOptions, String> {
        const SCHEMES: [&str; 6] = [
            "kurrentdb",
            "kurrentdb+discover",
            "kdb",
            "kdb+discover",
            "esdb",
            "esdb+discover",
        ];
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        if !scheme.is_some_and(|s| SCHEMES.contains(&s.as_str())) {
            return Err(format!(
                "`{}` is neither `embedded` nor a KurrentDB URL (kurrentdb://HOST:2113, kdb://, esdb://, or their +discover forms)",
                url.split_once('@').map_or(url, |(_, h)| h)
            ));
        }
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut prefix = DEFAULT_PREFIX.to_owned();
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some((k, v)) if k.eq_ignore_ascii_case("prefix") => prefix = v.to_owned(),
                _ => rest.push(pair),
            }
        }
        let valid = !prefix.is_empty()
            && !prefix.starts_with('$')
            && prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid {
            return Err(format!(
                "prefix `{prefix}`: must be letters, digits, `_`, `-` or `.`, not starting with `$`"
            ));
        }
        let client_url = if rest.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        let settings: ClientSettings = client_url.parse().map_err(|e| format!("{e}"))?;
        // Credentials never reach logs or files.
        let display = match base.split_once("://") {
            Some((scheme, tail)) => {
                let hosts = tail.rsplit_once('@').map_or(tail, |(_, h)| h);
                format!("{scheme}://{hosts}?prefix={prefix}")
            }
            None => base.to_owned(),
        };
        Ok(KurrentOptions {
            settings,
            prefix,
            display,
        })
    }
}

pub struct KurrentStore {
    client: Client,
    settings: ClientSettings,
    events_prefix: String,
    keys_prefix: String,
    meta_stream: String,
    /// Set once the master key's id is known to be recorded.
    meta_written: std::sync::atomic::AtomicBool,
    shared: Arc<Shared>,
    follower: tokio::task::JoinHandle<()>,
}

impl Drop for KurrentStore {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

fn io(what: &str, e: kurrentdb::Error) -> StoreError {
    match e {
        kurrentdb::Error::AccessDenied => StoreError::Io(format!(
            "kurrentdb: {what}: access denied (Rapport needs a user who may read `$all` and write its streams, e.g. an admin, in the --store URL)"
        )),
        e => StoreError::Io(format!("kurrentdb: {what}: {e}")),
    }
}

/// Errors after which the same call, repeated, may succeed.
fn transient(e: &kurrentdb::Error) -> bool {
    use kurrentdb::Error::*;
    match e {
        ConnectionClosed | GrpcConnectionError(_) | DeadlineExceeded | NotLeaderException(_) => {
            true
        }
        Grpc { code, .. } => matches!(
            code,
            tonic::Code::Unavailable | tonic::Code::Aborted | tonic::Code::Unknown
        ),
        _ => false,
    }
}

impl KurrentStore {
    /// Connects, follows `$all` from the start until caught up, then keeps following it.
    pub async fn open(opts: KurrentOptions) -> Result<KurrentStore, StoreError> {
        let client = Client::new(opts.settings.clone())
            .map_err(|e| StoreError::Io(format!("kurrentdb: {e}")))?;
        let events_prefix = format!("{}:", opts.prefix);
        let shared = Arc::new(Shared {
            mirror: RwLock::new(Mirror::default()),
            last: watch::channel(0).0,
        });
        catch_up(&client, &events_prefix, &shared).await?;
        let follower = tokio::spawn(follow(
            client.clone(),
            events_prefix.clone(),
            shared.clone(),
        ));
        Ok(KurrentStore {
            client,
            settings: opts.settings,
            keys_prefix: format!("{}-keys:", opts.prefix),
            meta_stream: format!("{}-meta", opts.prefix),
            meta_written: Default::default(),
            events_prefix,
            shared,
            follower,
        })
    }

    fn name(&self, stream: &str) -> String {
        format!("{}{stream}", self.events_prefix)
    }

    fn key_stream(&self, customer: &str, generation: u32) -> String {
        format!("{}{customer}:{generation}", self.keys_prefix)
    }

    /// Waits until the mirror has seen every id in `ids`.
    async fn visible(&self, ids: &[Uuid]) -> Result<Vec<u64>, StoreError> {
        let mut rx = self.shared.last.subscribe();
        let deadline = Instant::now() + VISIBLE_WITHIN;
        loop {
            {
                let m = self.shared.read();
                let found: Option<Vec<u64>> = ids
                    .iter()
                    .map(|i| m.ids.get(&i.as_u128()).copied())
                    .collect();
                if let Some(found) = found {
                    return Ok(found);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, rx.changed()).await.is_err() {
                return Err(StoreError::Io(format!(
                    "kurrentdb: the append was acknowledged but its events did not come back on `$all` within {} s; retrying the same request is safe",
                    VISIBLE_WITHIN.as_secs()
                )));
            }
        }
    }

    /// Waits until the mirror knows `stream` at `revision` or later (bounded).
    async fn stream_reaches(&self, stream: &str, revision: u64) {
        let mut rx = self.shared.last.subscribe();
        let deadline = Instant::now() + VISIBLE_WITHIN;
        while self
            .shared
            .read()
            .streams
            .get(stream)
            .is_none_or(|r| *r < revision)
        {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, rx.changed()).await.is_err() {
                return;
            }
        }
    }

    /// Reads the event at Rapport position `position`.
    async fn event_at(&self, position: u64) -> Result<StoredEvent, StoreError> {
        self.read_all(position - 1, 1)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::Io(format!("kurrentdb: position {position} vanished")))
    }

    /// Appends `events`, all of `stream`, as one KurrentDB write.
    async fn append_stream(
        &self,
        stream: &str,
        events: &[&SealedEvent],
        expected: ExpectedVersion,
    ) -> Result<Vec<Appended>, StoreError> {
        let name = self.name(stream);
        let mut moved = 0;
        loop {
            // Ids this instance has already seen are compared, not resent.
            let mut out: Vec<Option<Appended>> = vec![None; events.len()];
            let mut fresh: Vec<usize> = Vec::new();
            let mut first_of: FastMap<u128, usize> = FastMap::default();
            for (i, ev) in events.iter().enumerate() {
                let known = self.shared.read().ids.get(&ev.id.as_u128()).copied();
                if let Some(position) = known {
                    let stored = self.event_at(position).await?;
                    let (gen, new_gen) = (
                        stored.event.sealed.as_ref().map(|s| s.1),
                        ev.sealed.as_ref().map(|s| s.1),
                    );
                    // As in the embedded store: a different key generation means the stored
                    // one wins, so a late retry can never bring erased data back.
                    let same = stored.event.digest == ev.digest
                        || (gen.is_some() && new_gen.is_some() && gen != new_gen);
                    if !same {
                        return Err(StoreError::IdConflict {
                            id: ev.id,
                            position,
                        });
                    }
                    out[i] = Some(Appended {
                        id: ev.id,
                        position,
                        stream: stored.event.stream,
                        stream_version: stored.stream_version,
                        duplicate: true,
                    });
                } else if let Some(&j) = first_of.get(&ev.id.as_u128()) {
                    if events[j].digest != ev.digest {
                        return Err(StoreError::IdConflict {
                            id: ev.id,
                            position: 0,
                        });
                    }
                } else {
                    first_of.insert(ev.id.as_u128(), i);
                    fresh.push(i);
                }
            }
            if fresh.is_empty() {
                return fill_inner_duplicates(events, out);
            }
            let state = match expected {
                ExpectedVersion::Exact(v) => StreamState::StreamRevision(v),
                ExpectedVersion::NoStream => StreamState::NoStream,
                ExpectedVersion::Any => match self.shared.read().streams.get(stream) {
                    Some(&r) => StreamState::StreamRevision(r),
                    None => StreamState::NoStream,
                },
            };
            let data = fresh
                .iter()
                .map(|&i| encode(events[i]))
                .collect::<Result<Vec<_>, _>>()?;
            let options = AppendToStreamOptions::default()
                .stream_state(state)
                .deadline(CALL_DEADLINE);
            // A retry after a lost answer carries the same expected revision, so the server
            // recognises the events instead of writing them twice.
            let written = self
                .retrying("append", || {
                    self.client
                        .append_to_stream(name.as_str(), &options, data.clone())
                })
                .await;
            match written {
                Ok(w) => {
                    let ids: Vec<Uuid> = fresh.iter().map(|&i| events[i].id).collect();
                    let positions = self.visible(&ids).await?;
                    let first_revision = w.next_expected_version + 1 - fresh.len() as u64;
                    for (k, &i) in fresh.iter().enumerate() {
                        out[i] = Some(Appended {
                            id: events[i].id,
                            position: positions[k],
                            stream: stream.to_owned(),
                            stream_version: first_revision + k as u64,
                            duplicate: false,
                        });
                    }
                    return fill_inner_duplicates(events, out);
                }
                Err(kurrentdb::Error::WrongExpectedVersion { current, .. }) => {
                    let actual = match current {
                        kurrentdb::CurrentRevision::Current(r) => Some(r),
                        kurrentdb::CurrentRevision::NoStream => None,
                    };
                    if expected == ExpectedVersion::Any && moved < MOVED_RETRIES {
                        // Another writer moved the stream: catch up and look again.
                        moved += 1;
                        if let Some(r) = actual {
                            self.stream_reaches(stream, r).await;
                        }
                        continue;
                    }
                    return Err(StoreError::WrongExpectedVersion {
                        stream: stream.to_owned(),
                        expected,
                        actual: actual.map_or("no_stream".into(), |r| r.to_string()),
                    });
                }
                Err(kurrentdb::Error::ResourceDeleted) => {
                    return Err(StoreError::Invalid(format!(
                        "stream `{name}` was deleted in KurrentDB and cannot be written"
                    )))
                }
                Err(e) => return Err(io("append", e)),
            }
        }
    }

    /// Writes data keys before the events that use them (KurrentDB cannot commit both at
    /// once; a key written by a failed append is harmless and reused by the retry).
    async fn write_keys(&self, keys: &[WrappedKey]) -> Result<(), StoreError> {
        for k in keys {
            let payload = KeyPayload {
                customer: k.customer.clone(),
                generation: k.generation,
                wrapped: k.wrapped.as_ref().map(hex::encode),
                master_key_id: k.master_key_id.clone(),
            };
            let ev = EventData::json(KEY_WRAPPED, &payload)
                .map_err(|e| StoreError::Io(e.to_string()))?;
            let stream = self.key_stream(&k.customer, k.generation);
            let options = AppendToStreamOptions::default()
                .stream_state(StreamState::NoStream)
                .deadline(CALL_DEADLINE);
            match self
                .retrying("write a data key", || {
                    self.client
                        .append_to_stream(stream.as_str(), &options, ev.clone())
                })
                .await
            {
                // The key stream exists: written by an earlier attempt.
                Ok(_) | Err(kurrentdb::Error::WrongExpectedVersion { .. }) => {}
                Err(e) => return Err(io("write a data key", e)),
            }
            self.ensure_meta(&k.master_key_id).await?;
        }
        Ok(())
    }

    /// Records which master key wraps this store's data keys, once.
    async fn ensure_meta(&self, master_key_id: &str) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        if self.meta_written.load(Ordering::Acquire) {
            return Ok(());
        }
        if self.master_key_id().await?.is_some() {
            self.meta_written.store(true, Ordering::Release);
            return Ok(());
        }
        let ev = EventData::json(
            MASTER_KEY,
            &serde_json::json!({ "master_key_id": master_key_id }),
        )
        .map_err(|e| StoreError::Io(e.to_string()))?;
        let options = AppendToStreamOptions::default()
            .stream_state(StreamState::NoStream)
            .deadline(CALL_DEADLINE);
        match self
            .retrying("record the master key id", || {
                self.client
                    .append_to_stream(self.meta_stream.as_str(), &options, ev.clone())
            })
            .await
        {
            Ok(_) | Err(kurrentdb::Error::WrongExpectedVersion { .. }) => {
                self.meta_written.store(true, Ordering::Release);
                Ok(())
            }
            Err(e) => Err(io("record the master key id", e)),
        }
    }

    /// Destroys a data key: a marker replaces it, and the stream's `$tb` drops the wrapped
    /// key, which leaves the disk at the next scavenge of its chunk.
    async fn destroy_key(&self, customer: &str, generation: u32) -> Result<(), StoreError> {
        let stream = self.key_stream(customer, generation);
        let payload = KeyPayload {
            customer: customer.to_owned(),
            generation,
            wrapped: None,
            master_key_id: String::new(),
        };
        let ev =
            EventData::json(KEY_DESTROYED, &payload).map_err(|e| StoreError::Io(e.to_string()))?;
        let options = AppendToStreamOptions::default().deadline(CALL_DEADLINE);
        let w = self
            .retrying("destroy a data key", || {
                self.client
                    .append_to_stream(stream.as_str(), &options, ev.clone())
            })
            .await
            .map_err(|e| io("destroy a data key", e))?;
        let meta = StreamMetadata::builder()
            .truncate_before(w.next_expected_version)
            .build();
        self.retrying("truncate a destroyed data key", || {
            self.client
                .set_stream_metadata(stream.as_str(), &options, &meta)
        })
        .await
        .map_err(|e| io("truncate a destroyed data key", e))?;
        Ok(())
    }

    /// Runs `call` again after transient errors, for at most [`RETRY_FOR`]; any other
    /// answer is returned as the client gave it, for the caller to judge.
    async fn retrying<F, Fut>(
        &self,
        what: &str,
        call: F,
    ) -> kurrentdb::Result<kurrentdb::WriteResult>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = kurrentdb::Result<kurrentdb::WriteResult>>,
    {
        let started = Instant::now();
        loop {
            match call().await {
                Err(e) if transient(&e) && started.elapsed() < RETRY_FOR => {
                    tracing::warn!(error = %e, "kurrentdb: {what} failed; retrying");
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                r => return r,
            }
        }
    }

    /// Reads every event of streams starting with `prefix`, from the start of `$all`.
    async fn scan(&self, prefix: &str) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut out = Vec::new();
        read_through(&self.client, prefix, |r| {
            if !r.event_type.starts_with('$') {
                out.push(r)
            }
        })
        .await?;
        Ok(out)
    }
}

#[async_trait::async_trait]
impl EventStore for KurrentStore {
    async fn append(&self, req: AppendRequest) -> Result<Vec<Appended>, StoreError> {
        req.check()?;
        self.write_keys(&req.new_keys).await?;
        // Erasure destroys the key first: if the marker event then fails, the data is
        // already unreadable and a retry writes the marker.
        for (customer, generation) in &req.destroy_keys {
            self.destroy_key(customer, *generation).await?;
        }
        let expected = req.expected.as_ref().map_or(ExpectedVersion::Any, |e| e.1);
        // Streams in order of first appearance; each is one atomic write.
        let mut order: Vec<&str> = Vec::new();
        let mut groups: FastMap<&str, Vec<usize>> = FastMap::default();
        for (i, ev) in req.events.iter().enumerate() {
            groups
                .entry(ev.stream.as_str())
                .or_insert_with(|| {
                    order.push(ev.stream.as_str());
                    Vec::new()
                })
                .push(i);
        }
        let mut out: Vec<Option<Appended>> = vec![None; req.events.len()];
        for stream in order {
            let idx = &groups[stream];
            let events: Vec<&SealedEvent> = idx.iter().map(|&i| &req.events[i]).collect();
            let done = self.append_stream(stream, &events, expected).await?;
            for (&i, a) in idx.iter().zip(done) {
                out[i] = Some(a);
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let limit = limit.min(super::READ_EVENTS_MAX);
        if limit == 0 {
            return Ok(vec![]);
        }
        let options = ReadStreamOptions::default()
            .position(StreamPosition::Position(from_version))
            .forwards()
            .max_count(limit)
            .deadline(CALL_DEADLINE);
        let mut s = match self
            .client
            .read_stream(self.name(stream).as_str(), &options)
            .await
        {
            Ok(s) => s,
            Err(kurrentdb::Error::ResourceNotFound) => return Ok(vec![]),
            Err(e) => return Err(io("read a stream", e)),
        };
        let mut out = Vec::new();
        loop {
            let ev = match s.next().await {
                Ok(Some(ev)) => ev,
                Ok(None) | Err(kurrentdb::Error::ResourceNotFound) => break,
                Err(e) => return Err(io("read a stream", e)),
            };
            let Some(rec) = ev.event else { continue };
            let known = {
                let m = self.shared.read();
                m.ids.get(&rec.id.as_u128()).map(|&p| (p, m.recorded_at(p)))
            };
            // Only what the mirror has numbered is returned, so positions stay consistent
            // with `read_all`; the rest arrives within moments.
            let Some((position, recorded_at)) = known else {
                break;
            };
            out.push(decode(&rec, stream, position, recorded_at)?);
        }
        Ok(out)
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let limit = limit.min(super::READ_EVENTS_MAX);
        // Reads start at the event before the first wanted one (or at the start), so it does
        // not matter whether the server treats a start position as inclusive.
        let (mut from, want) = {
            let m = self.shared.read();
            if after >= m.last() || limit == 0 {
                return Ok(vec![]);
            }
            let want = (limit as u64).min(m.last() - after) as usize;
            let from = match after {
                0 => StreamPosition::Start,
                a => StreamPosition::Position(m.at[a as usize - 1].0),
            };
            (from, want)
        };
        let mut out: Vec<StoredEvent> = Vec::with_capacity(want);
        let mut next = after + 1;
        while out.len() < want {
            let page = read_page(
                &self.client,
                &self.events_prefix,
                from,
                want - out.len() + 1,
            )
            .await?;
            let mut progressed = false;
            for rec in page {
                if out.len() == want {
                    break;
                }
                let expected_at = self.shared.read().at[next as usize - 1];
                if rec.position < expected_at.0 || rec.event_type.starts_with('$') {
                    continue;
                }
                if rec.position != expected_at.0 {
                    return Err(StoreError::Integrity {
                        position: next,
                        what: format!(
                            "$all has {} where Rapport numbered {}; were Rapport's streams truncated or deleted?",
                            rec.position, expected_at.0
                        ),
                    });
                }
                let stream = rec
                    .stream_id()
                    .strip_prefix(self.events_prefix.as_str())
                    .unwrap_or_default()
                    .to_owned();
                let recorded_at = self.shared.read().recorded_at(next);
                out.push(decode(&rec, &stream, next, recorded_at)?);
                from = StreamPosition::Position(rec.position);
                next += 1;
                progressed = true;
            }
            if !progressed {
                return Err(StoreError::Io(format!(
                    "kurrentdb: reading $all after position {} returned nothing new",
                    next - 1
                )));
            }
        }
        Ok(out)
    }

    fn last_position(&self) -> u64 {
        *self.shared.last.borrow()
    }

    fn stream_version(&self, stream: &str) -> Option<u64> {
        self.shared.read().streams.get(stream).copied()
    }

    async fn wait_for_position_after(&self, seen: u64) {
        let mut rx = self.shared.last.subscribe();
        let _ = rx.wait_for(|p| *p > seen).await;
    }

    fn atomic_across_streams(&self) -> bool {
        false
    }

    async fn load_keys(&self) -> Result<Vec<WrappedKey>, StoreError> {
        let mut order: Vec<(String, u32)> = Vec::new();
        let mut keys: HashMap<(String, u32), WrappedKey> = HashMap::new();
        for rec in self.scan(&self.keys_prefix).await? {
            let p: KeyPayload = serde_json::from_slice(&rec.data).map_err(|e| {
                StoreError::Format(format!("kurrentdb: data key in `{}`: {e}", rec.stream_id()))
            })?;
            let wrapped = match (&*rec.event_type, p.wrapped) {
                (KEY_WRAPPED, Some(w)) => Some(hex::decode(w).map_err(|_| {
                    StoreError::Format(format!(
                        "kurrentdb: data key in `{}` is not hex",
                        rec.stream_id()
                    ))
                })?),
                (KEY_DESTROYED, _) => None,
                _ => continue,
            };
            let k = (p.customer.clone(), p.generation);
            if !keys.contains_key(&k) {
                order.push(k.clone());
            }
            let master_key_id = match keys.get(&k) {
                Some(old) if p.master_key_id.is_empty() => old.master_key_id.clone(),
                _ => p.master_key_id,
            };
            // A destroyed key stays destroyed, whatever a scan that overlaps shows later.
            if keys.get(&k).is_some_and(|old| old.wrapped.is_none()) {
                continue;
            }
            keys.insert(
                k,
                WrappedKey {
                    customer: p.customer,
                    generation: p.generation,
                    wrapped,
                    master_key_id,
                },
            );
        }
        Ok(order.into_iter().filter_map(|k| keys.remove(&k)).collect())
    }

    async fn rewrap_keys(
        &self,
        _keys: Vec<WrappedKey>,
        _master_key_id: &str,
    ) -> Result<(), StoreError> {
        Err(StoreError::Invalid(
            "master-key rotation is not available on the KurrentDB backend yet: KurrentDB cannot rewrap every key in one transaction".into(),
        ))
    }

    async fn master_key_id(&self) -> Result<Option<String>, StoreError> {
        let options = ReadStreamOptions::default()
            .position(StreamPosition::End)
            .backwards()
            .max_count(1)
            .deadline(CALL_DEADLINE);
        let mut s = match self
            .client
            .read_stream(self.meta_stream.as_str(), &options)
            .await
        {
            Ok(s) => s,
            Err(kurrentdb::Error::ResourceNotFound) => return Ok(None),
            Err(e) => return Err(io("read the master key id", e)),
        };
        match s.next().await {
            Ok(Some(ev)) => {
                let v: serde_json::Value = ev.get_original_event().as_json().map_err(|e| {
                    StoreError::Format(format!("kurrentdb: {}: {e}", self.meta_stream))
                })?;
                Ok(v["master_key_id"].as_str().map(str::to_owned))
            }
            Ok(None) | Err(kurrentdb::Error::ResourceNotFound) => Ok(None),
            Err(e) => Err(io("read the master key id", e)),
        }
    }

    async fn purge(&self) -> Result<(), StoreError> {
        let ops = kurrentdb::operations::Client::new(self.settings.clone())
            .map_err(|e| StoreError::Io(format!("kurrentdb: {e}")))?;
        let started = ops
            .start_scavenge(1, 0, &Default::default())
            .await
            .map_err(|e| io("start a scavenge", e))?;
        // The destroyed key leaves the disk only when the scavenge has processed its chunk;
        // this is not `Ok` because nothing is purged yet.
        Err(StoreError::Io(format!(
            "kurrentdb: scavenge {} started ({:?}); destroyed keys leave the disk when it has processed their chunk",
            started.id(),
            started.status()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(personal: bool) -> SealedEvent {
        SealedEvent {
            id: Uuid::from_u128(7),
            stream: "customer-c-1".into(),
            event_type: EventType::parse("purchase").unwrap(),
            version: 1,
            customer: "c-1".into(),
            occurred_at: "2026-03-01T10:00:00.123456789Z".parse().unwrap(),
            data: r#"{"amount":"12.50","currency":"CNY","order_id":"o \"1\" 订单"}"#.into(),
            metadata: personal.then(|| r#"{"source":"bot"}"#.into()),
            sealed: personal.then(|| (vec![0, 1, 2, 255], 3)),
            digest: [9; 16],
        }
    }

    #[test]
    fn a_sealed_event_round_trips_byte_for_byte_through_its_kurrentdb_payload() {
        for personal in [false, true] {
            let ev = sealed(personal);
            let json = payload_json(&ev).unwrap();
            let at = Utc.timestamp_micros(1_700_000_000_000_000).unwrap();
            let rec = Recorded {
                id: ev.id,
                event_type: ev.event_type.as_str(),
                revision: 4,
                data: json.as_bytes(),
            };
            let back = decode_parts(rec, &ev.stream, 12, at).unwrap();
            assert_eq!(back.event, ev, "{json}");
            assert_eq!(
                (back.position, back.stream_version, back.recorded_at),
                (12, 4, at)
            );
        }
    }

    #[test]
    fn a_foreign_or_damaged_payload_is_an_integrity_error_naming_the_position() {
        let ev = sealed(true);
        let json = payload_json(&ev)
            .unwrap()
            .replace("\"key_generation\":3,", "");
        for (ty, data) in [
            ("purchase", json.as_str()),
            ("purchase", "{}"),
            ("OrderPlaced", "{}"),
        ] {
            let rec = Recorded {
                id: ev.id,
                event_type: ty,
                revision: 0,
                data: data.as_bytes(),
            };
            let err = decode_parts(rec, "s", 5, Utc::now()).unwrap_err();
            assert!(
                matches!(err, StoreError::Integrity { position: 5, .. }),
                "{err}"
            );
        }
    }

    fn pos(p: u64) -> Position {
        Position {
            commit: p,
            prepare: p,
        }
    }

    #[test]
    fn the_mirror_numbers_events_gaplessly_and_ignores_a_resubscription_overlap() {
        let mut m = Mirror::default();
        let t = |s: i64| Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap();
        assert_eq!(m.apply("a", 0, Uuid::from_u128(1), pos(100), t(5)), Some(1));
        assert_eq!(m.apply("b", 0, Uuid::from_u128(2), pos(250), t(9)), Some(2));
        // A resubscription from position 250 delivers it again: not renumbered.
        assert_eq!(m.apply("b", 0, Uuid::from_u128(2), pos(250), t(9)), None);
        // A leader with a slower clock: knowledge time never goes back.
        assert_eq!(m.apply("a", 1, Uuid::from_u128(3), pos(900), t(1)), Some(3));
        assert_eq!(m.last(), 3);
        assert_eq!(m.recorded_at(3), t(9));
        assert_eq!(m.streams.get("a"), Some(&1));
        assert_eq!(m.ids.get(&3), Some(&3));
    }

    #[test]
    fn the_url_keeps_rapport_parameters_and_credentials_out_of_the_client_and_the_logs() {
        let o =
            KurrentOptions::parse("kurrentdb://admin:changeit@db1:2113?tls=false&prefix=shop-eu")
                .unwrap();
        assert_eq!(o.prefix, "shop-eu");
        assert_eq!(o.display, "kurrentdb://db1:2113?prefix=shop-eu");
        assert!(!o.display.contains("changeit"));
        let d = KurrentOptions::parse("esdb://localhost:2113?tls=false").unwrap();
        assert_eq!(d.prefix, DEFAULT_PREFIX);
        for bad in [
            "kurrentdb://h:2113?prefix=$all",
            "kurrentdb://h:2113?prefix=a:b",
            "http://h",
        ] {
            assert!(KurrentOptions::parse(bad).is_err(), "{bad}");
        }
    }
}
