//! Personal-data encryption: the master key, per-customer data keys, sealing and opening
//! the personal fields of an event, and pseudonyms.
//!
//! Scheme (see `docs/privacy.md`):
//! - every customer has a 256-bit data key per *generation* (a new generation starts when
//!   personal data arrives after an erasure);
//! - data keys are wrapped with AES-256-GCM under the 256-bit master key, with the
//!   customer id and generation as associated data, and stored wrapped only;
//! - an event's personal fields are one JSON object sealed with AES-256-GCM under the
//!   data key, with the event id and key generation as associated data, so a sealed blob
//!   cannot be moved to another event undetected;
//! - nonces are 96 random bits; AES-GCM stays safe with random nonces up to 2^32
//!   messages per key, and a data key seals one customer's events (a master key wraps one
//!   data key per customer and generation; rotate it long before 2^32 customers).
//!
//! Why AES-256-GCM and not XChaCha20-Poly1305: with AES-NI and the key schedule cached per
//! data key it seals a short personal field about ten times faster (`docs/benchmarks.md`),
//! and encryption must cost at most 15% of ingest.
//! - destroying a data key (erasure) makes every blob sealed with it unreadable.

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex},
};

use aes_gcm::{
    aead::{Aead, KeyInit, Payload},
    Aes256Gcm, Nonce,
};
use base64::Engine;
use compact_str::CompactString;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::{store::WrappedKey, strmap::StrMap};

const NONCE_LEN: usize = 12;
const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// Authentication failed: wrong key, or the bytes were changed.
    #[error("authentication failed (tampered data or wrong key)")]
    Tampered,
    #[error("master key: {0}")]
    MasterKey(String),
}

/// The 256-bit master key. Never printed, zeroed on drop.
#[derive(Clone)]
pub struct MasterKey {
    key: Zeroizing<[u8; KEY_LEN]>,
    /// Derived once: the public fingerprint and the expanded AES key.
    id: String,
    cipher: Arc<Aes256Gcm>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey(id={})", self.id())
    }
}

impl MasterKey {
    pub fn generate() -> MasterKey {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        MasterKey::from_bytes(key)
    }

    fn from_bytes(key: Zeroizing<[u8; KEY_LEN]>) -> MasterKey {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&key[..]).expect("HMAC takes any key length");
        mac.update(b"rapport master key id");
        let id = hex::encode(&mac.finalize().into_bytes()[..8]);
        let cipher = Arc::new(Aes256Gcm::new((&*key).into()));
        MasterKey { key, id, cipher }
    }

    /// Parses the text form: 32 bytes in standard base64 (surrounding whitespace ignored).
    pub fn from_text(text: &str) -> Result<MasterKey, CryptoError> {
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| CryptoError::MasterKey("must be 32 bytes in base64".into()))?,
        );
        let key: [u8; KEY_LEN] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::MasterKey("must be 32 bytes in base64".into()))?;
        Ok(MasterKey::from_bytes(Zeroizing::new(key)))
    }

    pub fn to_text(&self) -> Zeroizing<String> {
        Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(self.key.as_ref()))
    }

    /// Reads the key file, or creates it (mode 0600) when `create` and it does not exist.
    pub fn load_or_create(path: &Path, create: bool) -> Result<(MasterKey, bool), CryptoError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok((
                MasterKey::from_text(&text)
                    .map_err(|e| CryptoError::MasterKey(format!("{}: {e}", path.display())))?,
                false,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let key = MasterKey::generate();
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        CryptoError::MasterKey(format!("cannot create {}: {e}", dir.display()))
                    })?;
                }
                write_secret_file(path, key.to_text().as_bytes()).map_err(|e| {
                    CryptoError::MasterKey(format!("cannot write {}: {e}", path.display()))
                })?;
                Ok((key, true))
            }
            Err(e) => Err(CryptoError::MasterKey(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    /// A public fingerprint: which master key wrapped a data key (not secret).
    pub fn id(&self) -> String {
        self.id.clone()
    }

    fn cipher(&self) -> &Aes256Gcm {
        &self.cipher
    }

    fn wrap(&self, customer: &str, generation: u32, dk: &[u8; KEY_LEN]) -> Vec<u8> {
        seal_bytes(self.cipher(), dk, &wrap_aad(customer, generation))
    }

    fn unwrap(
        &self,
        customer: &str,
        generation: u32,
        wrapped: &[u8],
    ) -> Result<Zeroizing<[u8; KEY_LEN]>, CryptoError> {
        let plain = Zeroizing::new(open_bytes(
            self.cipher(),
            wrapped,
            &wrap_aad(customer, generation),
        )?);
        let key: [u8; KEY_LEN] = plain
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::Tampered)?;
        Ok(Zeroizing::new(key))
    }
}

/// Writes a file readable by its owner only (0600), atomically replacing nothing.
pub fn write_secret_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.write_all(b"\n")?;
    f.sync_all()
}

fn wrap_aad(customer: &str, generation: u32) -> Vec<u8> {
    format!("rapport-dk\0{customer}\0{generation}").into_bytes()
}

fn seal_aad(id: Uuid, generation: u32) -> [u8; 20] {
    let mut aad = [0u8; 20];
    aad[..16].copy_from_slice(id.as_bytes());
    aad[16..].copy_from_slice(&generation.to_be_bytes());
    aad
}

fn seal_bytes(cipher: &Aes256Gcm, plain: &[u8], aad: &[u8]) -> Vec<u8> {
    use aes_gcm::aead::AeadInPlace;
    // One buffer: nonce ‖ plaintext, encrypted in place, then the tag appended.
    let mut out = Vec::with_capacity(NONCE_LEN + plain.len() + 16);
    out.resize(NONCE_LEN, 0);
    // A random nonce from the thread's CSPRNG (seeded from the OS; no system call per
    // event). See the module comment for the bound on messages per key.
    rand::thread_rng().fill_bytes(&mut out[..NONCE_LEN]);
    out.extend_from_slice(plain);
    let (nonce, body) = out.split_at_mut(NONCE_LEN);
    let tag = cipher
        .encrypt_in_place_detached(Nonce::from_slice(nonce), aad, body)
        .expect("AES-GCM encryption cannot fail for in-memory buffers");
    out.extend_from_slice(&tag);
    out
}

fn open_bytes(cipher: &Aes256Gcm, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < NONCE_LEN {
        return Err(CryptoError::Tampered);
    }
    cipher
        .decrypt(
            Nonce::from_slice(&sealed[..NONCE_LEN]),
            Payload {
                msg: &sealed[NONCE_LEN..],
                aad,
            },
        )
        .map_err(|_| CryptoError::Tampered)
}

/// A customer's data key of one generation, expanded for use. Cloning it is one
/// reference count: the expanded forms are shared.
#[derive(Clone)]
pub struct DataKey {
    pub generation: u32,
    /// `None` once destroyed, or when damaged.
    expanded: Option<Arc<ExpandedKey>>,
    /// The key's stored form was damaged: nothing it sealed can be opened, though nothing
    /// was erased.
    damaged: bool,
}

/// What a raw data key expands to. The raw bytes themselves are not kept here.
struct ExpandedKey {
    /// HMAC-SHA-256 already keyed with the data key (saves two compressions per digest).
    mac: Hmac<Sha256>,
    /// The AES key schedule, expanded once (it zeroes itself on drop).
    cipher: Aes256Gcm,
}

impl DataKey {
    fn new(generation: u32, key: Option<&[u8; KEY_LEN]>) -> DataKey {
        let expanded = key.map(|k| {
            Arc::new(ExpandedKey {
                mac: <Hmac<Sha256> as Mac>::new_from_slice(&k[..])
                    .expect("HMAC takes any key length"),
                cipher: Aes256Gcm::new(k.into()),
            })
        });
        DataKey {
            generation,
            expanded,
            damaged: false,
        }
    }

    /// Destroyed by an erasure (a damaged key is not).
    pub fn is_destroyed(&self) -> bool {
        self.expanded.is_none() && !self.damaged
    }

    /// Its stored form did not unwrap when the keyring was loaded.
    pub fn is_damaged(&self) -> bool {
        self.damaged
    }

    pub fn seal(&self, id: Uuid, plain: &[u8]) -> Option<Vec<u8>> {
        self.expanded
            .as_ref()
            .map(|e| seal_bytes(&e.cipher, plain, &seal_aad(id, self.generation)))
    }

    pub fn open(&self, id: Uuid, sealed: &[u8]) -> Option<Result<Vec<u8>, CryptoError>> {
        self.expanded
            .as_ref()
            .map(|e| open_bytes(&e.cipher, sealed, &seal_aad(id, self.generation)))
    }

    /// 16-byte keyed digest (HMAC-SHA-256) of `bytes`.
    pub fn digest(&self, bytes: &[u8]) -> Option<[u8; 16]> {
        let mut mac = self.expanded.as_ref()?.mac.clone();
        mac.update(b"digest\0");
        mac.update(bytes);
        Some(
            mac.finalize().into_bytes()[..16]
                .try_into()
                .expect("16 of 32 bytes"),
        )
    }

    /// A stable pseudonym for `value` at `path`: the same value of the same customer
    /// always gets the same pseudonym; nothing can be learned from it once the key is gone.
    pub fn pseudonym(&self, path: &str, value: &str) -> Option<String> {
        let mut mac = self.expanded.as_ref()?.mac.clone();
        mac.update(b"pseudonym\0");
        mac.update(path.as_bytes());
        mac.update(b"\0");
        mac.update(value.as_bytes());
        Some(format!(
            "anon-{}",
            hex::encode(&mac.finalize().into_bytes()[..8])
        ))
    }
}

/// The keyring entry whose key computes blind indexes of identifiers. Not a customer id
/// (ids may not hold control characters), never erased, rewrapped with the others when
/// the master key rotates, so indexes stay the same across rotations.
pub const INDEX_KEY_OWNER: &str = "\u{1}identifier-index";

impl DataKey {
    /// The blind index of an identifier: a keyed hash (HMAC-SHA-256, 128 bits in hex) of
    /// its kind and normalised value. Equal values give equal indexes; nothing about the
    /// value can be learnt from it without the key.
    pub fn blind_index(&self, kind: &str, normalised: &str) -> Option<String> {
        let mut mac = self.expanded.as_ref()?.mac.clone();
        mac.update(b"blind-index\0");
        mac.update(kind.as_bytes());
        mac.update(b"\0");
        mac.update(normalised.as_bytes());
        Some(hex::encode(&mac.finalize().into_bytes()[..16]))
    }
}

/// Plain SHA-256 digest for events without personal fields (nothing secret inside).
pub fn public_digest(bytes: &[u8]) -> [u8; 16] {
    Sha256::digest(bytes)[..16]
        .try_into()
        .expect("16 of 32 bytes")
}

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Keys that an append must make durable, at most once each.
#[derive(Default)]
pub struct NewKeys(FastMap<String, Vec<WrappedKey>>);

impl NewKeys {
    fn add(&mut self, key: &WrappedKey) {
        match self.0.get_mut(key.customer.as_str()) {
            Some(v) if v.iter().any(|k| k.generation == key.generation) => {}
            Some(v) => v.push(key.clone()),
            None => {
                self.0.insert(key.customer.clone(), vec![key.clone()]);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.0.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_vec(self) -> Vec<WrappedKey> {
        let mut v: Vec<WrappedKey> = self.0.into_values().flatten().collect();
        // Deterministic order, whatever the hash seed.
        v.sort_by(|a, b| (&a.customer, a.generation).cmp(&(&b.customer, b.generation)));
        v
    }
}

/// One generation of a customer's data key, as the keyring holds it: the raw 32 bytes only,
/// zeroed on drop (the expanded forms are about 1.2 KB and live in [`Expanded`], bounded).
struct Generation {
    generation: u32,
    /// Created in memory and not yet durable: its wrapped form is in [`Keys::pending`] and
    /// travels with every append that uses it. A flag here (it fits in the padding) spares
    /// the look-up in that map for the keys that are durable, nearly all of them.
    pending: bool,
    /// Its stored wrapped form did not unwrap (the row was damaged): `key` is `None`, but
    /// the key was not destroyed and what it sealed is not erased; it cannot be opened.
    damaged: bool,
    /// `None` once destroyed, or when damaged.
    key: Option<Zeroizing<[u8; KEY_LEN]>>,
}

/// A customer's generations, held inline in the keyring's map: the current one, and the
/// earlier ones (there are some only after an erasure, so almost always none).
struct CustomerKeys {
    current: Generation,
    earlier: thin_vec::ThinVec<Generation>,
}

impl CustomerKeys {
    fn find(&self, generation: u32) -> Option<&Generation> {
        std::iter::once(&self.current)
            .chain(&self.earlier)
            .find(|g| g.generation == generation)
    }

    fn find_mut(&mut self, generation: u32) -> Option<&mut Generation> {
        std::iter::once(&mut self.current)
            .chain(self.earlier.iter_mut())
            .find(|g| g.generation == generation)
    }

    fn all(&self) -> impl Iterator<Item = &Generation> {
        self.earlier.iter().chain(std::iter::once(&self.current))
    }

    /// Adds a generation; the greatest number stays current (keys load in row order,
    /// which is creation order, but nothing here relies on it).
    fn push(&mut self, g: Generation) {
        if g.generation > self.current.generation {
            let old = std::mem::replace(&mut self.current, g);
            self.earlier.push(old);
        } else {
            self.earlier.push(g);
        }
    }
}

/// Expanded keys (AES schedule, keyed HMAC) kept for this many `(customer, generation)`
/// pairs: a direct-mapped cache, so the keyring of a million customers holds a million raw
/// keys (32 bytes each) and not a million expansions (≈1.2 KB each).
pub const EXPANDED_KEYS_CACHED: usize = 16_384;

/// Direct-mapped: the slot is chosen by a hash of `(customer, generation)`; a miss expands
/// the raw key (about 1 µs) and replaces whatever the slot held.
struct Expanded {
    slots: Vec<Option<(CompactString, DataKey)>>,
    hasher: foldhash::fast::FixedState,
}

impl Expanded {
    fn new() -> Expanded {
        Expanded {
            slots: (0..EXPANDED_KEYS_CACHED).map(|_| None).collect(),
            hasher: foldhash::fast::FixedState::default(),
        }
    }

    fn slot(&self, customer: &str, generation: u32) -> usize {
        use std::hash::BuildHasher;
        (self.hasher.hash_one((customer, generation)) as usize) % self.slots.len()
    }

    fn get_or_expand(&mut self, customer: &str, g: &Generation) -> DataKey {
        let i = self.slot(customer, g.generation);
        match &mut self.slots[i] {
            Some((c, k)) if c == customer && k.generation == g.generation => k.clone(),
            slot => {
                let mut k = DataKey::new(g.generation, g.key.as_deref());
                k.damaged = g.damaged;
                match slot {
                    // The slot's string is reused when the new id fits where the old one was.
                    Some((c, old)) => {
                        c.clear();
                        c.push_str(customer);
                        *old = k.clone();
                    }
                    None => *slot = Some((customer.into(), k.clone())),
                }
                k
            }
        }
    }

    fn forget(&mut self, customer: &str, generation: u32) {
        let i = self.slot(customer, generation);
        if matches!(&self.slots[i], Some((c, k)) if c == customer && k.generation == generation) {
            self.slots[i] = None;
        }
    }
}

struct Keys {
    customers: StrMap<CustomerKeys>,
    /// Generations created in memory but not yet durable in the store (few at a time).
    pending: FastMap<CompactString, Vec<WrappedKey>>,
    expanded: Expanded,
    /// Generations found damaged on load and not destroyed since: (customer, generation).
    damaged: Vec<(String, u32)>,
}

impl Keys {
    fn forget_pending(&mut self, customer: &str, generation: u32) {
        if let Some(g) = self
            .customers
            .get_mut(customer)
            .and_then(|c| c.find_mut(generation))
        {
            g.pending = false;
        }
        if let Some(p) = self.pending.get_mut(customer) {
            p.retain(|p| p.generation != generation);
            if p.is_empty() {
                self.pending.remove(customer);
            }
        }
    }
}

/// All customers' data keys, unwrapped in memory.
pub struct Keyring {
    master: MasterKey,
    keys: Mutex<Keys>,
}

/// What became of one generation of a customer's data key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Live,
    /// Destroyed by an erasure.
    Destroyed,
    /// Its stored form does not unwrap: what it sealed cannot be opened.
    Damaged,
}

impl Keyring {
    /// Unwraps every stored key. Fails if a key was wrapped by another master key (the
    /// wrong master key was given). A key that does not unwrap under the right one was
    /// damaged where it is stored: it is kept as damaged ([`Keyring::damaged`]), so the
    /// damage stays with that customer's personal data and the rest of the store opens.
    pub fn load(master: MasterKey, wrapped: Vec<WrappedKey>) -> Result<Keyring, CryptoError> {
        let id = master.id();
        let mut customers: StrMap<CustomerKeys> = StrMap::default();
        let mut damaged = Vec::new();
        for w in wrapped {
            let (key, is_damaged) = match &w.wrapped {
                Some(bytes) => {
                    if w.master_key_id != id {
                        return Err(CryptoError::MasterKey(format!(
                            "the store's data keys are wrapped by master key {} but the configured master key is {id}",
                            w.master_key_id
                        )));
                    }
                    match master.unwrap(&w.customer, w.generation, bytes) {
                        Ok(k) => (Some(k), false),
                        Err(_) => {
                            damaged.push((w.customer.clone(), w.generation));
                            (None, true)
                        }
                    }
                }
                None => (None, false),
            };
            let g = Generation {
                generation: w.generation,
                pending: false,
                damaged: is_damaged,
                key,
            };
            match customers.get_mut(w.customer.as_str()) {
                Some(c) => c.push(g),
                None => {
                    customers.get_or_insert_with(&w.customer, || CustomerKeys {
                        current: g,
                        earlier: thin_vec::ThinVec::new(),
                    });
                }
            }
        }
        customers.shrink_to_fit();
        Ok(Keyring {
            master,
            keys: Mutex::new(Keys {
                damaged,
                customers,
                pending: FastMap::default(),
                expanded: Expanded::new(),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Keys> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn master_id(&self) -> String {
        self.master.id()
    }

    /// The customer's current usable key, creating a new generation when there is none
    /// (first personal data, or first after an erasure). New keys are returned wrapped in
    /// `new_keys` until [`Keyring::mark_durable`] is called.
    pub fn current_or_create(&self, customer: &str, new_keys: &mut NewKeys) -> DataKey {
        let mut keys = self.lock();
        let Keys {
            customers,
            pending,
            expanded,
            ..
        } = &mut *keys;
        let current = customers.get(customer).map(|c| &c.current);
        if let Some(g) = current.filter(|g| g.key.is_some()) {
            if g.pending {
                if let Some(p) = pending
                    .get(customer)
                    .and_then(|p| p.iter().find(|p| p.generation == g.generation))
                {
                    new_keys.add(p);
                }
            }
            return expanded.get_or_expand(customer, g);
        }
        let generation = current.map_or(1, |g| g.generation + 1);
        let mut raw = Zeroizing::new([0u8; KEY_LEN]);
        // The thread's CSPRNG (ChaCha12, seeded and periodically reseeded from the OS):
        // a system call per new customer cost more than the rest of the key's creation.
        rand::thread_rng().fill_bytes(raw.as_mut());
        let wrapped = WrappedKey {
            customer: customer.to_owned(),
            generation,
            wrapped: Some(self.master.wrap(customer, generation, &raw)),
            master_key_id: self.master.id.clone(),
        };
        let g = Generation {
            generation,
            pending: true,
            damaged: false,
            key: Some(raw),
        };
        let c = match customers.get_mut(customer) {
            Some(c) => {
                c.push(g);
                c
            }
            None => customers.get_or_insert_with(customer, || CustomerKeys {
                current: g,
                earlier: thin_vec::ThinVec::new(),
            }),
        };
        let key = expanded.get_or_expand(customer, &c.current);
        new_keys.add(&wrapped);
        pending.entry(customer.into()).or_default().push(wrapped);
        key
    }

    /// The key of one generation, if known (destroyed keys come back destroyed).
    pub fn get(&self, customer: &str, generation: u32) -> Option<DataKey> {
        self.expand(customer, |c| c.find(generation))
    }

    /// Whether the key of `(customer, generation)` is live, destroyed or damaged; `None` if
    /// unknown. Cheaper than [`Keyring::get`] for readers that will not decrypt: nothing is
    /// expanded.
    pub fn state(&self, customer: &str, generation: u32) -> Option<KeyState> {
        let keys = self.lock();
        let g = keys.customers.get(customer)?.find(generation)?;
        Some(match (&g.key, g.damaged) {
            (Some(_), _) => KeyState::Live,
            (None, true) => KeyState::Damaged,
            (None, false) => KeyState::Destroyed,
        })
    }

    /// The keys whose stored form did not unwrap when the store was opened and that no
    /// erasure has destroyed since: (customer, generation).
    pub fn damaged(&self) -> Vec<(String, u32)> {
        self.lock().damaged.clone()
    }

    /// The current generation, if the customer has a usable key.
    pub fn current(&self, customer: &str) -> Option<DataKey> {
        self.expand(customer, |c| Some(&c.current).filter(|g| g.key.is_some()))
    }

    /// The generation `pick` chooses among the customer's, expanded (from the cache).
    fn expand(
        &self,
        customer: &str,
        pick: impl FnOnce(&CustomerKeys) -> Option<&Generation>,
    ) -> Option<DataKey> {
        let mut keys = self.lock();
        let Keys {
            customers,
            expanded,
            ..
        } = &mut *keys;
        let g = pick(customers.get(customer)?)?;
        Some(expanded.get_or_expand(customer, g))
    }

    /// The keys were committed with an append: they are no longer pending.
    pub fn mark_durable(&self, durable: &[WrappedKey]) {
        if durable.is_empty() {
            return;
        }
        let mut keys = self.lock();
        for k in durable {
            keys.forget_pending(&k.customer, k.generation);
        }
    }

    /// Puts keys back to pending: a bulk transaction that carried them was rolled back
    /// (see `import`), so they must travel with the next append that uses them.
    pub fn restore_pending(&self, restored: &[WrappedKey]) {
        let mut keys = self.lock();
        for k in restored {
            let Some(g) = keys
                .customers
                .get_mut(k.customer.as_str())
                .and_then(|c| c.find_mut(k.generation))
                .filter(|g| g.key.is_some())
            else {
                continue;
            };
            g.pending = true;
            let p = keys.pending.entry(k.customer.as_str().into()).or_default();
            if !p.iter().any(|p| p.generation == k.generation) {
                p.push(k.clone());
            }
        }
    }

    /// Forgets the key of `(customer, generation)` in memory (after the store destroyed it).
    pub fn destroy(&self, customer: &str, generation: u32) {
        let mut keys = self.lock();
        if let Some(g) = keys
            .customers
            .get_mut(customer)
            .and_then(|c| c.find_mut(generation))
        {
            g.key = None;
            g.damaged = false;
        }
        keys.damaged
            .retain(|(c, g)| (c.as_str(), *g) != (customer, generation));
        keys.expanded.forget(customer, generation);
        keys.forget_pending(customer, generation);
    }

    /// Every live key, re-wrapped under `new_master` (for master-key rotation). A damaged
    /// key cannot be re-wrapped; the caller refuses to rotate while there is one (its row
    /// would keep naming the old master key, and the store would not open under the new).
    pub fn rewrap_all(&self, new_master: &MasterKey) -> Vec<WrappedKey> {
        let keys = self.lock();
        let mut out = Vec::new();
        for (customer, generations) in keys.customers.iter() {
            for k in generations.all() {
                if let Some(raw) = &k.key {
                    out.push(WrappedKey {
                        customer: customer.to_string(),
                        generation: k.generation,
                        wrapped: Some(new_master.wrap(customer, k.generation, raw)),
                        master_key_id: new_master.id(),
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_personal_data_opens_only_with_its_key_and_event() {
        let ring = Keyring::load(MasterKey::generate(), vec![]).unwrap();
        let mut new = NewKeys::default();
        let k = ring.current_or_create("c-1", &mut new);
        assert_eq!(new.len(), 1);
        let id = Uuid::from_u128(1);
        let sealed = k.seal(id, b"{\"name\":\"Ann\"}").unwrap();
        assert_eq!(k.open(id, &sealed).unwrap().unwrap(), b"{\"name\":\"Ann\"}");
        // Moved to another event: detected.
        assert!(matches!(
            k.open(Uuid::from_u128(2), &sealed),
            Some(Err(CryptoError::Tampered))
        ));
        // One flipped bit: detected.
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(matches!(k.open(id, &bad), Some(Err(CryptoError::Tampered))));
    }

    #[test]
    fn keys_survive_a_reload_only_under_the_same_master_key() {
        let master = MasterKey::generate();
        let ring = Keyring::load(master.clone(), vec![]).unwrap();
        let mut new = NewKeys::default();
        let k = ring.current_or_create("c-1", &mut new);
        let new = new.into_vec();
        let sealed = k.seal(Uuid::nil(), b"x").unwrap();
        let again = Keyring::load(master, new.clone()).unwrap();
        assert_eq!(
            again
                .get("c-1", 1)
                .unwrap()
                .open(Uuid::nil(), &sealed)
                .unwrap()
                .unwrap(),
            b"x"
        );
        assert!(Keyring::load(MasterKey::generate(), new).is_err());
    }

    #[test]
    fn keys_pushed_out_of_the_expanded_cache_still_open_what_they_sealed() {
        let ring = Keyring::load(MasterKey::generate(), vec![]).unwrap();
        let mut new = NewKeys::default();
        let customers = 2 * EXPANDED_KEYS_CACHED + 1;
        let sealed: Vec<Vec<u8>> = (0..customers)
            .map(|i| {
                let k = ring.current_or_create(&format!("c-{i}"), &mut new);
                k.seal(Uuid::from_u128(i as u128), format!("secret {i}").as_bytes())
                    .unwrap()
            })
            .collect();
        for (i, blob) in sealed.iter().enumerate() {
            let k = ring.get(&format!("c-{i}"), 1).unwrap();
            let plain = k.open(Uuid::from_u128(i as u128), blob).unwrap().unwrap();
            assert_eq!(plain, format!("secret {i}").as_bytes());
        }
        // A destroyed key is destroyed whether or not its expansion was cached.
        ring.destroy("c-0", 1);
        ring.destroy(&format!("c-{}", customers - 1), 1);
        assert!(ring.get("c-0", 1).unwrap().is_destroyed());
        assert!(ring
            .get(&format!("c-{}", customers - 1), 1)
            .unwrap()
            .is_destroyed());
        assert!(ring.current("c-0").is_none());
    }

    #[test]
    fn after_destruction_a_new_generation_starts() {
        let ring = Keyring::load(MasterKey::generate(), vec![]).unwrap();
        let mut new = NewKeys::default();
        let k1 = ring.current_or_create("c", &mut new);
        ring.mark_durable(&new.into_vec());
        assert_eq!(ring.state("c", 1), Some(KeyState::Live));
        ring.destroy("c", k1.generation);
        assert!(ring.get("c", 1).unwrap().is_destroyed());
        assert_eq!(ring.state("c", 1), Some(KeyState::Destroyed));
        let mut new2 = NewKeys::default();
        assert_eq!(ring.current_or_create("c", &mut new2).generation, 2);
        // Both generations stay known, the first one destroyed, whatever the cache holds.
        assert_eq!(
            (ring.state("c", 1), ring.state("c", 2)),
            (Some(KeyState::Destroyed), Some(KeyState::Live))
        );
        assert_eq!(ring.state("c", 3), None);
        assert_eq!(ring.state("nobody", 1), None);
        assert!(ring.get("c", 1).unwrap().is_destroyed());
        assert!(!ring.current("c").unwrap().is_destroyed());
    }

    #[test]
    fn a_damaged_key_is_kept_as_damaged_and_the_rest_load() {
        let master = MasterKey::generate();
        let ring = Keyring::load(master.clone(), vec![]).unwrap();
        let mut new = NewKeys::default();
        ring.current_or_create("a", &mut new);
        ring.current_or_create("b", &mut new);
        let mut wrapped = new.into_vec();
        let b = wrapped.iter_mut().find(|w| w.customer == "b").unwrap();
        *b.wrapped.as_mut().unwrap().last_mut().unwrap() ^= 1;
        let again = Keyring::load(master, wrapped).unwrap();
        assert_eq!(again.damaged(), [("b".to_owned(), 1)]);
        assert_eq!(again.state("a", 1), Some(KeyState::Live));
        assert_eq!(again.state("b", 1), Some(KeyState::Damaged));
        let b1 = again.get("b", 1).unwrap();
        assert!(b1.is_damaged() && !b1.is_destroyed());
        // New personal data of b is sealed under a new generation, not the damaged one.
        let mut new = NewKeys::default();
        assert_eq!(again.current_or_create("b", &mut new).generation, 2);
    }
}
