//! Console sessions: signing in with an API key sets a session cookie (`HttpOnly`,
//! `SameSite=Strict`, expiring; `Secure` when the console is served over TLS). The server
//! keeps the key with the session and authenticates it again on every request, so a
//! revoked key ends its sessions at once (within the key cache's 2 s). Each session has a
//! CSRF token that every state-changing form carries.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use rand::RngCore;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The session cookie.
pub(crate) const COOKIE: &str = "rapport_session";
/// How long a session lasts after sign-in.
pub(crate) const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 60 * 60);
/// Sessions kept at once; past it the oldest expiring go first.
const SESSIONS_MAX: usize = 10_000;

/// One signed-in browser.
pub(crate) struct Session {
    /// The API key it signed in with (authenticated again on every request).
    pub(crate) token: Zeroizing<String>,
    /// Carried by every state-changing form of this session.
    pub(crate) csrf: String,
    expires: Instant,
}

/// Every live session, by the random id its cookie holds.
#[derive(Default)]
pub(crate) struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

fn random_hex() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

impl Sessions {
    /// Starts a session for `token`; returns its id (the cookie's value).
    pub(crate) fn start(&self, token: &str) -> String {
        let id = random_hex();
        let now = Instant::now();
        let mut map = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| s.expires > now);
        if map.len() >= SESSIONS_MAX {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(
            id.clone(),
            Session {
                token: Zeroizing::new(token.to_owned()),
                csrf: random_hex(),
                expires: now + SESSION_LIFETIME,
            },
        );
        id
    }

    /// The token and CSRF token of a live session.
    pub(crate) fn get(&self, id: &str) -> Option<(Zeroizing<String>, String)> {
        let mut map = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(id) {
            Some(s) if s.expires > Instant::now() => Some((s.token.clone(), s.csrf.clone())),
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    pub(crate) fn end(&self, id: &str) {
        self.by_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}

/// Whether `given` is the session's CSRF token (compared in constant time).
pub(crate) fn csrf_matches(expected: &str, given: Option<&str>) -> bool {
    given.is_some_and(|g| {
        g.len() == expected.len() && bool::from(g.as_bytes().ct_eq(expected.as_bytes()))
    })
}

/// The value of cookie `name` in a `Cookie` header.
pub(crate) fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// The `Set-Cookie` value that starts a session.
pub(crate) fn set_cookie(id: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_LIFETIME.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that ends it.
pub(crate) fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_holds_its_key_and_ends_when_asked() {
        let s = Sessions::default();
        let id = s.start("rpk_x_y");
        let (token, csrf) = s.get(&id).unwrap();
        assert_eq!(token.as_str(), "rpk_x_y");
        assert_eq!(csrf.len(), 64);
        assert!(csrf_matches(&csrf, Some(&csrf)));
        assert!(!csrf_matches(&csrf, Some("nope")));
        assert!(!csrf_matches(&csrf, None));
        s.end(&id);
        assert!(s.get(&id).is_none());
        assert!(s.get("forged").is_none());
    }

    #[test]
    fn cookies_are_found_by_name() {
        assert_eq!(cookie("a=1; rapport_session=abc; b=2", COOKIE), Some("abc"));
        assert_eq!(cookie("rapport_session_x=1", COOKIE), None);
        let set = set_cookie("abc", false);
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict") && !set.contains("Secure")
        );
        assert!(set_cookie("abc", true).ends_with("; Secure"));
    }
}
