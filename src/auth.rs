//! API keys and roles. Keys are random 256-bit secrets; only their SHA-256 is stored
//! (`api_keys` table), which is the right tool for high-entropy tokens (a password hash
//! like Argon2 protects *low*-entropy secrets and would cost milliseconds per request).
//!
//! A key looks like `rpk_<id>_<secret>`; the id is public (it names the key in lists and
//! in the log), the secret is shown once. Lookups are cached for [`AUTH_CACHE_TTL_MS`], so
//! a revocation made by another process (`rapport keys revoke`) takes effect within that.

use std::{
    collections::HashMap,
    path::Path,
    sync::Mutex,
    time::{Duration, Instant},
};

use base64::Engine;
use rand::RngCore;
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::{sqlite, StoreError};

/// How long a looked-up key is trusted before it is read again.
pub const AUTH_CACHE_TTL_MS: u64 = 2_000;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Appends events.
    Ingest,
    /// Reads everything, with personal data.
    Support,
    /// Reads everything, personal data pseudonymised.
    Analyst,
    /// Everything, including keys and erasure.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Support => "support",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Role::Ingest, Role::Support, Role::Analyst, Role::Admin]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct KeyInfo {
    pub id: String,
    pub role: Role,
    pub label: Option<String>,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing or malformed `Authorization: Bearer <key>` header")]
    Missing,
    #[error("unknown or revoked API key")]
    Invalid,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A token's role and secret hash (`None`: unknown token), and when that was looked up.
type CachedKey = (Option<(Role, [u8; 32])>, Instant);

pub struct ApiKeys {
    conn: Mutex<Connection>,
    cache: Mutex<HashMap<String, CachedKey>>,
}

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The keys live in the embedded store's file, in a table of their own that only this
/// module reads and writes.
const API_KEYS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS api_keys (
    id         TEXT PRIMARY KEY,
    role       TEXT NOT NULL,
    hash       BLOB NOT NULL,            -- SHA-256 of the secret part
    label      TEXT,
    created_at TEXT NOT NULL,
    revoked_at TEXT
) WITHOUT ROWID;
";

impl ApiKeys {
    pub fn open(dir: &Path) -> Result<ApiKeys, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Io(format!("cannot create {}: {e}", dir.display())))?;
        let conn = sqlite::connect(&crate::layout::DataDir::new(dir).database(), true)?;
        conn.execute_batch(API_KEYS_SCHEMA)?;
        Ok(ApiKeys {
            conn: Mutex::new(conn),
            cache: Mutex::new(HashMap::new()),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates a key; returns its info and the full token (shown once).
    pub fn create(&self, role: Role, label: Option<&str>) -> Result<(KeyInfo, String), StoreError> {
        let mut id = [0u8; 6];
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut id);
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let id = hex::encode(id);
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
        let hash = Sha256::digest(secret.as_bytes());
        let created_at = now_text();
        self.conn().execute(
            "INSERT INTO api_keys (id, role, hash, label, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, role.as_str(), hash.as_slice(), label, created_at],
        )?;
        let token = format!("rpk_{id}_{secret}");
        Ok((
            KeyInfo {
                id,
                role,
                label: label.map(str::to_owned),
                created_at,
                revoked_at: None,
            },
            token,
        ))
    }

    pub fn list(&self) -> Result<Vec<KeyInfo>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, role, label, created_at, revoked_at FROM api_keys ORDER BY created_at, id",
        )?;
        let rows = stmt.query_map([], |r| {
            let role: String = r.get(1)?;
            Ok(KeyInfo {
                id: r.get(0)?,
                role: Role::parse(&role).unwrap_or(Role::Ingest),
                label: r.get(2)?,
                created_at: r.get(3)?,
                revoked_at: r.get(4)?,
            })
        })?;
        rows.collect::<Result<_, _>>().map_err(StoreError::from)
    }

    /// Revokes a key; `false` if there is no such (unrevoked) key.
    pub fn revoke(&self, id: &str) -> Result<bool, StoreError> {
        let n = self.conn().execute(
            "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![id, now_text()],
        )?;
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        Ok(n == 1)
    }

    pub fn active_count(&self) -> Result<u64, StoreError> {
        Ok(self.conn().query_row(
            "SELECT count(*) FROM api_keys WHERE revoked_at IS NULL",
            [],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    /// Checks a bearer token; returns the key id and role.
    pub fn authenticate(&self, token: &str) -> Result<(String, Role), AuthError> {
        let rest = token.strip_prefix("rpk_").ok_or(AuthError::Invalid)?;
        let (id, secret) = rest.split_once('_').ok_or(AuthError::Invalid)?;
        let now = Instant::now();
        let cached = {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache
                .get(id)
                .filter(|(_, at)| {
                    now.duration_since(*at) < Duration::from_millis(AUTH_CACHE_TTL_MS)
                })
                .map(|(k, _)| *k)
        };
        let entry = match cached {
            Some(e) => e,
            None => {
                let row: Option<(String, Vec<u8>)> = self
                    .conn()
                    .query_row(
                        "SELECT role, hash FROM api_keys WHERE id = ?1 AND revoked_at IS NULL",
                        [id],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .map_err(StoreError::from)?;
                let e = row.and_then(|(role, hash)| {
                    Some((
                        Role::parse(&role)?,
                        <[u8; 32]>::try_from(hash.as_slice()).ok()?,
                    ))
                });
                let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
                if cache.len() > 10_000 {
                    cache.clear();
                }
                cache.insert(id.to_owned(), (e, now));
                e
            }
        };
        let (role, hash) = entry.ok_or(AuthError::Invalid)?;
        let got = Sha256::digest(secret.as_bytes());
        if bool::from(got.as_slice().ct_eq(&hash)) {
            Ok((id.to_owned(), role))
        } else {
            Err(AuthError::Invalid)
        }
    }

    /// On first start (no active keys), creates an admin key and writes it to `path` (0600).
    pub fn bootstrap_admin(&self, path: &Path) -> Result<Option<String>, StoreError> {
        if self.active_count()? > 0 {
            return Ok(None);
        }
        let (info, token) = self.create(Role::Admin, Some("bootstrap admin"))?;
        let _ = std::fs::remove_file(path);
        crate::crypto::write_secret_file(path, token.as_bytes())
            .map_err(|e| StoreError::Io(format!("cannot write {}: {e}", path.display())))?;
        Ok(Some(info.id))
    }
}
