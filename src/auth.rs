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

/// Longest key label, in characters.
pub const LABEL_CHARS_MAX: usize = 200;

/// What is wrong with a key label, if anything: labels are printed by `keys list` and in
/// log lines, so a control or invisible character could forge what they show.
pub fn label_problem(label: &str) -> Option<&'static str> {
    if label.chars().count() > LABEL_CHARS_MAX {
        Some("must be at most 200 characters")
    } else if label
        .chars()
        .any(|c| c.is_control() || rapport_events::data::is_invisible(c))
    {
        Some("must not contain control or invisible characters")
    } else {
        None
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

/// A new key's id (12 hex digits) and secret (32 random bytes, base64url).
fn mint() -> (String, String) {
    let mut id = [0u8; 6];
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut id);
    rand::rngs::OsRng.fill_bytes(&mut secret);
    (
        hex::encode(id),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
    )
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
        if let Some(why) = label.and_then(label_problem) {
            return Err(StoreError::Invalid(format!("label: {why}")));
        }
        let (id, secret) = mint();
        let info = self.insert(&id, &secret, role, label)?;
        Ok((info, format!("rpk_{id}_{secret}")))
    }

    /// Records a key whose id and secret were made by [`mint`].
    fn insert(
        &self,
        id: &str,
        secret: &str,
        role: Role,
        label: Option<&str>,
    ) -> Result<KeyInfo, StoreError> {
        let hash = Sha256::digest(secret.as_bytes());
        let created_at = now_text();
        self.conn().execute(
            "INSERT INTO api_keys (id, role, hash, label, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, role.as_str(), hash.as_slice(), label, created_at],
        )?;
        Ok(KeyInfo {
            id: id.to_owned(),
            role,
            label: label.map(str::to_owned),
            created_at,
            revoked_at: None,
        })
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

    /// Whether a key with this id was ever recorded (revoked or not).
    fn known(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .query_row("SELECT 1 FROM api_keys WHERE id = ?1", [id], |_| Ok(()))
            .optional()?
            .is_some())
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

    /// On first start (no active keys), creates an admin key and writes it to `path`
    /// (0600). Crash-safe: the token is written to the file (whole, synced, renamed into
    /// place) before the key is recorded; a start that finds the file but not its key (the
    /// previous one died in between) records that key, so the file always holds a working
    /// token.
    pub fn bootstrap_admin(&self, path: &Path) -> Result<Option<String>, StoreError> {
        if self.active_count()? > 0 {
            return Ok(None);
        }
        let io =
            |e: std::io::Error| StoreError::Io(format!("cannot write {}: {e}", path.display()));
        // A token in the file whose key was never recorded (a key that was recorded and
        // later revoked is not brought back).
        let from_file = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| {
                let rest = t.trim().strip_prefix("rpk_")?.to_owned();
                let (id, secret) = rest.split_once('_')?;
                Some((id.to_owned(), secret.to_owned()))
            })
            .filter(|(id, _)| !self.known(id).unwrap_or(true));
        let (id, secret) = match from_file {
            Some(kept) => kept,
            None => {
                let (id, secret) = mint();
                let tmp = path.with_extension("tmp");
                let _ = std::fs::remove_file(&tmp);
                let _ = std::fs::remove_file(path);
                crate::crypto::write_secret_file(&tmp, format!("rpk_{id}_{secret}").as_bytes())
                    .map_err(io)?;
                std::fs::rename(&tmp, path).map_err(io)?;
                if let Some(dir) = path.parent() {
                    std::fs::File::open(dir)
                        .and_then(|d| d.sync_all())
                        .map_err(io)?;
                }
                (id, secret)
            }
        };
        let info = self.insert(&id, &secret, Role::Admin, Some("bootstrap admin"))?;
        Ok(Some(info.id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first start died after writing `admin-key` and before recording its key: the
    /// next start records that key, so the file's token works.
    #[test]
    fn first_start_admin_key_survives_a_crash_between_the_file_and_the_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin-key");
        let (id, secret) = mint();
        crate::crypto::write_secret_file(&path, format!("rpk_{id}_{secret}").as_bytes()).unwrap();
        let keys = ApiKeys::open(dir.path()).unwrap();
        assert_eq!(keys.bootstrap_admin(&path).unwrap(), Some(id.clone()));
        let token = std::fs::read_to_string(&path).unwrap();
        assert_eq!(keys.authenticate(token.trim()).unwrap(), (id, Role::Admin));
        // Once a key exists, nothing more is made.
        assert_eq!(keys.bootstrap_admin(&path).unwrap(), None);
    }

    #[test]
    fn a_torn_or_revoked_admin_key_file_is_replaced_by_a_working_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin-key");
        std::fs::write(&path, "").unwrap();
        let keys = ApiKeys::open(dir.path()).unwrap();
        let first = keys.bootstrap_admin(&path).unwrap().unwrap();
        let token = std::fs::read_to_string(&path).unwrap();
        assert_eq!(keys.authenticate(token.trim()).unwrap().0, first);
        // Every key revoked: the next start makes a new one, not the revoked one again.
        assert!(keys.revoke(&first).unwrap());
        let second = keys.bootstrap_admin(&path).unwrap().unwrap();
        assert_ne!(second, first);
        let token = std::fs::read_to_string(&path).unwrap();
        assert_eq!(keys.authenticate(token.trim()).unwrap().0, second);
        assert!(!dir.path().join("admin-key.tmp").exists());
    }
}
