//! The log: the event store seen through the keyring. Appending seals personal fields;
//! reading opens them as far as the reader's role allows. Handlers, importers and
//! projections all go through here, never to a backend directly.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::{stream::BoxStream, StreamExt};
use rapport_events::{
    data::{is_placeholder, BlockedValue, IdentifierAdded, IdentifierKind, PersonalDataErased},
    envelope::{identified_by, stream_for, IDENTIFIED_BY_MARK},
    personal::{self, PersonalFields, PersonalView},
    Event, EventData, EventType, Facts, FoldEvent, RecordedEvent, Subject, Upcasters,
};
use uuid::Uuid;

use crate::{
    crypto::{public_digest, KeyState, Keyring, NewKeys, INDEX_KEY_OWNER},
    store::{
        AppendRequest, Appended, EventStore, ExpectedVersion, SealedEvent, StoreError, StoredEvent,
    },
};

/// How much of the personal data a reader may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonalAccess {
    /// Decrypted values (roles `support`, `admin`; the data subject's own export).
    Plain,
    /// Stable pseudonyms instead of values (role `analyst`).
    Pseudonymised,
    /// Personal fields left out.
    Withheld,
}

#[derive(Clone)]
pub struct Log {
    store: Arc<dyn EventStore>,
    pub keys: Arc<Keyring>,
    /// Always `true` in the service. `false` only in `rapport bench`, to measure what
    /// encryption costs: personal fields are then stored unencrypted under generation 0,
    /// which [`Log::open`] refuses to read.
    encrypt: bool,
    /// Brings events written in an older version of their type to the version projections
    /// and readers expect ([`Upcasters::standard`] in the service).
    upcasters: Upcasters,
}

/// The rules an append is made under. Every entry point states its own: the HTTP API and
/// operator actions append all or nothing, Kafka and the benchmarks per stream, an import
/// all or nothing in its bulk transaction.
#[derive(Debug, Clone)]
pub struct AppendRules {
    /// Every event is in this stream, which must be at this version (optimistic
    /// concurrency).
    pub expected: Option<(String, ExpectedVersion)>,
    /// The batch is written whole or not at all. A store that commits one stream
    /// atomically (KurrentDB) then refuses a batch over several streams; without it such a
    /// batch is written stream by stream there.
    pub all_or_nothing: bool,
}

impl AppendRules {
    /// Whole or not at all, in any streams.
    pub fn all_or_nothing() -> AppendRules {
        AppendRules {
            expected: None,
            all_or_nothing: true,
        }
    }

    /// Whole or not at all, into `stream` at version `expected`.
    pub fn in_stream(stream: String, expected: ExpectedVersion) -> AppendRules {
        AppendRules {
            expected: Some((stream, expected)),
            all_or_nothing: true,
        }
    }

    /// Each stream's events atomically, streams one after the other where the store cannot
    /// do better (a consumer that retries a message whole relies on idempotent ids).
    pub fn per_stream() -> AppendRules {
        AppendRules {
            expected: None,
            all_or_nothing: false,
        }
    }
}

/// What an erasure did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Erasure {
    pub customer: String,
    /// The `personal_data_erased` event.
    pub event: Appended,
    /// Key generations destroyed (empty when the customer never had personal data).
    pub destroyed_generations: Vec<u32>,
    /// Whether the store's files were purged of freed pages right away.
    pub files_purged: bool,
}

impl Log {
    pub fn new(store: Arc<dyn EventStore>, keys: Arc<Keyring>) -> Log {
        Log {
            store,
            keys,
            encrypt: true,
            upcasters: Upcasters::standard(),
        }
    }

    /// The same log reading through another upcaster chain (tests of a schema change).
    pub fn with_upcasters(self, upcasters: Upcasters) -> Log {
        Log { upcasters, ..self }
    }

    /// A log that stores personal fields unencrypted: for the encryption-cost benchmark only.
    pub fn without_encryption_for_benchmarks(
        store: Arc<dyn EventStore>,
        keys: Arc<Keyring>,
    ) -> Log {
        Log {
            store,
            keys,
            encrypt: false,
            upcasters: Upcasters::standard(),
        }
    }

    /// The position of the last event (0 for an empty log).
    pub fn last_position(&self) -> u64 {
        self.store.last_position()
    }

    /// Waits until the log holds `position` (at once if it does).
    pub async fn wait_for_position(&self, position: u64) {
        while self.store.last_position() < position {
            self.store
                .wait_for_position_after(self.store.last_position())
                .await;
        }
    }

    /// The version of the last event of `stream`, if it has any.
    pub fn stream_version(&self, stream: &str) -> Option<u64> {
        self.store.stream_version(stream)
    }

    /// Whether the store's disk is full (its last write failed for want of room).
    pub fn store_full(&self) -> bool {
        self.store.is_full()
    }

    /// Whether one append may span several streams atomically.
    pub fn atomic_across_streams(&self) -> bool {
        self.store.atomic_across_streams()
    }

    /// Whether reading scattered positions costs about as much as reading them in order.
    pub fn point_reads_are_cheap(&self) -> bool {
        self.store.point_reads_are_cheap()
    }

    /// Up to `limit` sealed events after position `after`, in order.
    pub async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.store.read_all(after, limit).await
    }

    /// The sealed events at `positions` (ascending), skipping none that exist.
    pub async fn read_at(&self, positions: &[u64]) -> Result<Vec<StoredEvent>, StoreError> {
        self.store.read_at(positions).await
    }

    /// Up to `limit` sealed events of `stream` from version `from`.
    pub async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.store.read_stream(stream, from, limit).await
    }

    /// The sealed events `(after, until]` in order, a batch of at most `READ_EVENTS_MAX` at
    /// a time: the one paging loop over the log. Ends after the first error.
    pub fn batches(
        &self,
        after: u64,
        until: u64,
    ) -> BoxStream<'static, Result<Vec<StoredEvent>, StoreError>> {
        let store = self.store.clone();
        futures::stream::unfold(Some((store, after)), move |next| async move {
            let (store, after) = next?;
            if after >= until {
                return None;
            }
            let limit = crate::store::READ_EVENTS_MAX.min((until - after) as usize);
            match store.read_all(after, limit).await {
                Ok(batch) => {
                    let last = batch.last()?.position;
                    Some((Ok(batch), Some((store, last))))
                }
                Err(e) => Some((Err(e), None)),
            }
        })
        .boxed()
    }

    /// Every sealed event after `after`, then each new one as it is appended.
    pub fn subscribe(&self, after: u64) -> BoxStream<'static, Result<StoredEvent, StoreError>> {
        crate::store::subscribe(self.store.clone(), after)
    }

    /// Checks a stored event against the digest it was written with: what was read is
    /// what was appended. Events whose personal data was erased can be checked no more
    /// (their digest was keyed with the destroyed key).
    pub fn verify(&self, stored: &StoredEvent) -> Verified {
        let ev = &stored.event;
        let personal = match &ev.sealed {
            None => None,
            Some((blob, 0)) => Some(blob.clone()),
            Some((blob, generation)) => match self.keys.get(&ev.customer, *generation) {
                None => return Verified::Damaged("its data key is missing".into()),
                Some(key) if key.is_destroyed() => return Verified::Erased,
                Some(key) if key.is_damaged() => {
                    return Verified::Damaged("its customer's data key is damaged".into())
                }
                Some(key) => match key.open(ev.id, blob) {
                    Some(Ok(plain)) => Some(plain),
                    _ => return Verified::Damaged("its personal data does not decrypt".into()),
                },
            },
        };
        let personal = match personal.map(String::from_utf8).transpose() {
            Ok(p) => p,
            Err(_) => return Verified::Damaged("its personal data is not text".into()),
        };
        let canonical = canonical_bytes(
            ev.id,
            ev.event_type,
            ev.version,
            &ev.customer,
            &ev.occurred_at,
            &ev.data,
            ev.metadata.as_deref(),
            personal.as_deref(),
        );
        let digest = match &ev.sealed {
            Some((_, g)) if *g > 0 => self
                .keys
                .get(&ev.customer, *g)
                .and_then(|k| k.digest(&canonical)),
            _ => Some(public_digest(&canonical)),
        };
        match digest {
            Some(d) if d == ev.digest => Verified::Intact,
            Some(_) => Verified::Damaged("its content does not match its digest".into()),
            None => Verified::Erased,
        }
    }

    /// Seals one validated event: takes out its personal fields and encrypts them with the
    /// customer's data key (creating one if needed; it is added to `new_keys`).
    pub fn seal(&self, ev: &Event, new_keys: &mut NewKeys) -> SealedEvent {
        let indexed;
        let ev = match &ev.data {
            EventData::IdentifierAdded(d) => {
                indexed = Event {
                    data: EventData::IdentifierAdded(IdentifierAdded {
                        index: self.index_for_append(d, new_keys),
                        ..d.clone()
                    }),
                    ..ev.clone()
                };
                &indexed
            }
            EventData::IdentityRulesDefined(d) => {
                let mut d = d.clone();
                for b in &mut d.blocked {
                    if let Some(normalised) = b.value.take().and_then(|v| b.kind.normalise(&v).ok())
                    {
                        let key = self.keys.current_or_create(INDEX_KEY_OWNER, new_keys);
                        b.index = key.blind_index(b.kind.as_str(), &normalised);
                        b.hint = Some(BlockedValue::hint_of(&normalised));
                    }
                }
                indexed = Event {
                    data: EventData::IdentityRulesDefined(d),
                    ..ev.clone()
                };
                &indexed
            }
            _ => ev,
        };
        let ty = ev.event_type();
        let (public, personal_json) = personal::split_data(&ev.data);
        let metadata = (!ev.metadata.is_empty())
            .then(|| serde_json::to_string(&ev.metadata).expect("string map serializes"));
        let canonical = canonical_bytes(
            ev.id,
            ty,
            ty.current_version(),
            &ev.customer,
            &ev.occurred_at,
            &public,
            metadata.as_deref(),
            personal_json.as_deref(),
        );
        let (sealed, digest) = match personal_json {
            Some(pj) if !self.encrypt => (Some((pj.into_bytes(), 0)), public_digest(&canonical)),
            Some(pj) => {
                let key = self.keys.current_or_create(&ev.customer, new_keys);
                let sealed = key
                    .seal(ev.id, pj.as_bytes())
                    .expect("a current key is never destroyed");
                let digest = key
                    .digest(&canonical)
                    .expect("a current key is never destroyed");
                (Some((sealed, key.generation)), digest)
            }
            None => (None, public_digest(&canonical)),
        };
        SealedEvent {
            id: ev.id,
            stream: ev.stream(),
            event_type: ty,
            version: ty.current_version(),
            customer: ev.customer.clone(),
            occurred_at: ev.occurred_at,
            data: public,
            metadata,
            sealed,
            digest,
        }
    }

    /// The blind index an identifier is recorded with (whatever a client sent): `None` for
    /// a value that does not normalise or is a placeholder, so it links nobody.
    fn index_for_append(&self, d: &IdentifierAdded, new_keys: &mut NewKeys) -> Option<String> {
        let normalised = d.kind.normalise(&d.value).ok()?;
        if is_placeholder(&normalised) {
            return None;
        }
        let key = self.keys.current_or_create(INDEX_KEY_OWNER, new_keys);
        key.blind_index(d.kind.as_str(), &normalised)
    }

    /// The blind index to look an identifier up by: `None` when the value is no
    /// identifier of its kind, a placeholder, or no identifier was ever recorded.
    pub fn blind_index(&self, kind: IdentifierKind, value: &str) -> Option<String> {
        let normalised = kind.normalise(value).ok()?;
        if is_placeholder(&normalised) {
            return None;
        }
        self.keys
            .current(INDEX_KEY_OWNER)?
            .blind_index(kind.as_str(), &normalised)
    }

    /// Appends validated events under `rules`; returns where each landed (one entry per
    /// event given, in order).
    pub async fn append(
        &self,
        events: &[Event],
        rules: AppendRules,
    ) -> Result<Vec<Appended>, StoreError> {
        let mut new_keys = NewKeys::default();
        let resolved = self.resolve_identified(events, &mut new_keys);
        let (all, introduced) = match &resolved {
            Some((all, introduced)) => (all.as_slice(), introduced.as_slice()),
            None => (events, &[][..]),
        };
        if rules.all_or_nothing && rules.expected.is_none() && !self.atomic_across_streams() {
            if let Some(first) = all.first().map(Event::stream) {
                if let Some((i, e)) = all.iter().enumerate().find(|(_, e)| e.stream() != first) {
                    return Err(StoreError::Invalid(format!(
                        "/{i}/customer: this store commits one stream atomically and the batch is all or nothing: \
                         the event belongs to stream `{}`, the batch began with `{first}`",
                        e.stream()
                    )));
                }
            }
        }
        let req = self.seal_all(all, rules, new_keys);
        let keys = req.new_keys.clone();
        let out = self.store.append(req).await?;
        self.keys.mark_durable(&keys);
        // The events the log added to introduce an identified customer are not the caller's.
        Ok(out
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !introduced.contains(i))
            .map(|(_, a)| a)
            .collect())
    }

    /// Seals `events` into one request to the store (see [`Log::seal`]), customers named
    /// by an identifier resolved (see [`Log::resolve_identified`]).
    pub fn seal_request(&self, events: &[Event], rules: AppendRules) -> AppendRequest {
        let mut new_keys = NewKeys::default();
        match self.resolve_identified(events, &mut new_keys) {
            Some((all, _)) => self.seal_all(&all, rules, new_keys),
            None => self.seal_all(events, rules, new_keys),
        }
    }

    fn seal_all(
        &self,
        events: &[Event],
        rules: AppendRules,
        mut new_keys: NewKeys,
    ) -> AppendRequest {
        let events = events.iter().map(|e| self.seal(e, &mut new_keys)).collect();
        AppendRequest {
            events,
            expected: rules.expected,
            new_keys: new_keys.into_vec(),
            destroy_keys: vec![],
        }
    }

    /// Events whose customer is named by an identifier (`identified_by`), resolved: each is
    /// recorded under the id derived from the identifier's blind index (`ix-` and 24 hex
    /// digits), so the same identifier always names the same id, and the first event of an
    /// id the log does not hold yet is preceded by an `identifier_added` saying whom it
    /// identifies (the identity fold then joins it to whoever holds the identifier). `None`
    /// when no event names its customer so; otherwise also the indexes of the added events.
    fn resolve_identified(
        &self,
        events: &[Event],
        new_keys: &mut NewKeys,
    ) -> Option<(Vec<Event>, Vec<usize>)> {
        if !events
            .iter()
            .any(|e| e.customer.starts_with(IDENTIFIED_BY_MARK))
        {
            return None;
        }
        let mut all = Vec::with_capacity(events.len() + 1);
        let mut introduced = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for ev in events {
            let Some((kind, value)) = identified_by(&ev.customer) else {
                all.push(ev.clone());
                continue;
            };
            let key = self.keys.current_or_create(INDEX_KEY_OWNER, new_keys);
            let index = key
                .blind_index(kind.as_str(), value)
                .expect("a current key is never destroyed");
            let customer = format!("ix-{}", &index[..24]);
            if self.stream_version(&stream_for(&customer)).is_none()
                && seen.insert(customer.clone())
            {
                introduced.push(all.len());
                all.push(Event {
                    id: Uuid::now_v7(),
                    data: EventData::IdentifierAdded(IdentifierAdded {
                        kind,
                        value: value.to_owned(),
                        index: None,
                        source: Some("identified_by".into()),
                    }),
                    customer: customer.clone(),
                    occurred_at: ev.occurred_at,
                    metadata: Default::default(),
                });
            }
            all.push(Event {
                customer,
                ..ev.clone()
            });
        }
        Some((all, introduced))
    }

    /// Opens a stored event for a reader with `access`.
    pub fn open(
        &self,
        stored: StoredEvent,
        access: PersonalAccess,
    ) -> Result<RecordedEvent, StoreError> {
        let position = stored.position;
        let ev = stored.event;
        let mut data: serde_json::Value =
            serde_json::from_str(&ev.data).map_err(|e| StoreError::Integrity {
                position,
                what: format!("data is not JSON: {e}"),
            })?;
        let metadata = match &ev.metadata {
            Some(m) => serde_json::from_str(m).map_err(|e| StoreError::Integrity {
                position,
                what: format!("metadata is not a string map: {e}"),
            })?,
            None => Default::default(),
        };
        let personal = match &ev.sealed {
            None => personal::may_carry_personal(ev.event_type).then_some(PersonalView::Plain),
            Some((_, 0)) => {
                return Err(StoreError::Integrity {
                    position,
                    what: "personal data stored unencrypted (a benchmark store)".into(),
                })
            }
            Some((blob, generation)) => {
                let unknown = || StoreError::Integrity {
                    position,
                    what: format!(
                        "no data key generation {generation} for customer {}",
                        ev.customer
                    ),
                };
                // A reader that will not decrypt only needs to know whether the key is
                // gone (no key expanded: most events of a fold are read this way).
                let key = match access {
                    PersonalAccess::Withheld => None,
                    _ => Some(
                        self.keys
                            .get(&ev.customer, *generation)
                            .ok_or_else(unknown)?,
                    ),
                };
                let state = match &key {
                    None => self
                        .keys
                        .state(&ev.customer, *generation)
                        .ok_or_else(unknown)?,
                    Some(k) if k.is_damaged() => KeyState::Damaged,
                    Some(k) if k.is_destroyed() => KeyState::Destroyed,
                    Some(_) => KeyState::Live,
                };
                match (key, state) {
                    (_, KeyState::Destroyed) => Some(PersonalView::Erased),
                    (_, KeyState::Damaged) => {
                        tracing::error!(position, customer = %ev.customer, generation, "personal data left out: the customer's data key is damaged in the store");
                        Some(PersonalView::Damaged)
                    }
                    (None, KeyState::Live) => Some(PersonalView::Withheld),
                    (Some(key), KeyState::Live) => {
                        match key.open(ev.id, blob) {
                            Some(Ok(plain)) => {
                                let fields: PersonalFields = serde_json::from_slice(&plain)
                                    .map_err(|e| StoreError::Integrity {
                                        position,
                                        what: format!("personal data is not JSON: {e}"),
                                    })?;
                                if access == PersonalAccess::Pseudonymised {
                                    let pseud = fields.map_strings(|path, v| {
                                        key.pseudonym(path, v).expect("checked: live")
                                    });
                                    personal::merge(&mut data, &pseud);
                                    Some(PersonalView::Pseudonymised)
                                } else {
                                    personal::merge(&mut data, &fields);
                                    Some(PersonalView::Plain)
                                }
                            }
                            // The ciphertext was changed where it is stored: the event's other
                            // fields are intact (they are checked against their digest by
                            // `rapport check`), only its personal data is lost.
                            _ => {
                                tracing::error!(position, customer = %ev.customer, "personal data left out: its ciphertext is damaged in the store");
                                Some(PersonalView::Damaged)
                            }
                        }
                    }
                }
            }
        };
        // An identifier's blind index links customers across streams: only a reader who may
        // see the value sees it (support, admin), and nobody once the value is erased.
        if ev.event_type == EventType::IdentifierAdded && personal != Some(PersonalView::Plain) {
            if let Some(obj) = data.as_object_mut() {
                obj.remove("index");
            }
        }
        // After decryption: an upcaster may move personal fields (see `upcast.rs`).
        let version = if self.upcasters.needed(ev.event_type, ev.version) {
            self.upcasters
                .upcast(ev.event_type, ev.version, &mut data)
                .map_err(|e| StoreError::Integrity {
                    position,
                    what: e.to_string(),
                })?
        } else {
            ev.version
        };
        let (customer, subject) = Subject::of(ev.event_type, ev.customer).into_fields();
        Ok(RecordedEvent {
            position,
            stream: ev.stream,
            stream_version: stored.stream_version,
            recorded_at: stored.recorded_at,
            id: ev.id,
            event_type: ev.event_type,
            version,
            subject,
            customer,
            occurred_at: ev.occurred_at,
            data,
            metadata,
            personal,
        })
    }

    /// Opens a stored event as the projections fold it. Projections keep no personal data
    /// (nothing to erase in snapshots; identity is read from the log when shown). The one
    /// exception read while folding is complaint text, which the early-warning detector
    /// turns into MinHash signatures and never stores; every other personal field is left
    /// out. The payload is decoded straight from its stored text into [`Facts`] (no JSON
    /// tree); complaints, which need decrypting, and older versions, which need upcasting,
    /// take [`Log::open`]'s way.
    pub fn open_fold(&self, stored: StoredEvent) -> Result<FoldEvent, StoreError> {
        let (position, ty) = (stored.position, stored.event.event_type);
        let not_facts = |e: serde_json::Error| StoreError::Integrity {
            position,
            what: format!("data is not a `{ty}` payload: {e}"),
        };
        if ty == EventType::Complaint || self.upcasters.needed(ty, stored.event.version) {
            let access = if ty == EventType::Complaint {
                PersonalAccess::Plain
            } else {
                PersonalAccess::Withheld
            };
            return FoldEvent::from_recorded(&self.open(stored, access)?).map_err(not_facts);
        }
        if let Some((_, 0)) = stored.event.sealed {
            return Err(StoreError::Integrity {
                position,
                what: "personal data stored unencrypted (a benchmark store)".into(),
            });
        }
        let data = Facts::decode(ty, &stored.event.data).map_err(not_facts)?;
        let ev = stored.event;
        let (customer, subject) = Subject::of(ev.event_type, ev.customer).into_fields();
        Ok(FoldEvent {
            position,
            id: ev.id,
            event_type: ev.event_type,
            subject,
            customer,
            occurred_at: ev.occurred_at,
            data,
        })
    }

    pub fn open_all(
        &self,
        stored: Vec<StoredEvent>,
        access: PersonalAccess,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        stored.into_iter().map(|s| self.open(s, access)).collect()
    }

    /// Whether the customer has a live data key (personal data that an erasure would
    /// destroy).
    pub fn has_live_key(&self, customer: &str) -> bool {
        self.keys.current(customer).is_some()
    }

    /// Crypto-shreds a customer's personal data: records `personal_data_erased` and
    /// destroys the customer's data key in the same transaction, then purges freed pages.
    pub async fn erase(
        &self,
        customer: &str,
        requested_by: Option<String>,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Erasure, StoreError> {
        let current = self.keys.current(customer);
        let generation = current.as_ref().map_or(0, |k| k.generation);
        let event = Event {
            id,
            data: EventData::PersonalDataErased(PersonalDataErased {
                requested_by,
                key_generation: generation,
            }),
            customer: customer.to_owned(),
            occurred_at: now,
            metadata: Default::default(),
        };
        let mut req =
            self.seal_request(std::slice::from_ref(&event), AppendRules::all_or_nothing());
        // A damaged key goes too: its row could be mended from a copy, and the erasure
        // must hold then as well.
        let damaged = self
            .keys
            .damaged()
            .into_iter()
            .filter(|(c, _)| c == customer)
            .map(|(_, g)| g);
        let destroyed: Vec<u32> = current
            .iter()
            .map(|k| k.generation)
            .chain(damaged)
            .collect();
        req.destroy_keys = destroyed
            .iter()
            .map(|g| (customer.to_owned(), *g))
            .collect();
        let appended = self.store.append(req).await?;
        for g in &destroyed {
            self.keys.destroy(customer, *g);
        }
        let files_purged = match self.store.purge().await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "erasure committed; purging freed pages is deferred to the next checkpoint");
                false
            }
        };
        Ok(Erasure {
            customer: customer.to_owned(),
            event: appended.into_iter().next().expect("one event appended"),
            destroyed_generations: destroyed,
            files_purged,
        })
    }
}

/// The outcome of [`Log::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    Intact,
    /// Its personal data was erased: its digest cannot be recomputed.
    Erased,
    /// What is stored is not what was written: why.
    Damaged(String),
}

/// The bytes an event's digest is computed over: every field that was written, in a fixed
/// order, each followed by a zero byte.
#[allow(clippy::too_many_arguments)]
fn canonical_bytes(
    id: Uuid,
    ty: EventType,
    version: u16,
    customer: &str,
    occurred_at: &DateTime<Utc>,
    public: &str,
    metadata: Option<&str>,
    personal: Option<&str>,
) -> Vec<u8> {
    let occurred = rapport_events::envelope::format_time(occurred_at);
    let mut canonical = Vec::with_capacity(public.len() + 128);
    for part in [
        id.as_bytes().as_slice(),
        ty.as_str().as_bytes(),
        &version.to_be_bytes(),
        customer.as_bytes(),
        occurred.as_bytes(),
        public.as_bytes(),
        metadata.unwrap_or("").as_bytes(),
        personal.unwrap_or("").as_bytes(),
    ] {
        canonical.extend_from_slice(part);
        canonical.push(0);
    }
    canonical
}
