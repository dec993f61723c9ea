//! The console: the web UI for support staff, marketers and analysts, served by `rapport
//! serve` at `/` on the API's listener. Pages are HTML rendered on the server from askama
//! templates (checked when the crate compiles); the only script is `assets/console.js`,
//! which follows the alert feed and refreshes the board. Every asset ships in the binary.
//!
//! The console is a client of the API in the same process: each page calls the API's own
//! handlers with the signed-in key's [`Caller`], so a page shows exactly what the API
//! would answer that key (the same queries, filters and roles; pseudonyms for analysts),
//! and nothing here reimplements a projection or a permission.

mod agents;
mod alerts;
mod analytics;
mod communities;
mod customers;
mod graph;
mod i18n;
mod identity;
mod problems;
mod reactivation;
mod record;
mod segments;
mod session;
mod sign_in;
mod system;
mod webhooks;
mod workflow;

use std::sync::Arc;

use askama::Template;
use axum::{
    extract::{FromRef, FromRequestParts, Query},
    http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
    Router,
};
use serde::Deserialize;

use crate::{
    auth::Role,
    http::{ApiError, AppState, Caller},
};
use i18n::{Lang, Tr};
use session::Sessions;

/// What the console's handlers share: the API's state and the sessions.
#[derive(Clone)]
pub(crate) struct Console {
    pub(crate) app: AppState,
    sessions: Arc<Sessions>,
    /// Whether the console is served over TLS (then cookies are `Secure`).
    secure: bool,
}

impl FromRef<Console> for AppState {
    fn from_ref(c: &Console) -> AppState {
        c.app.clone()
    }
}

/// The console's routes, to merge with the API's; `secure` when served over TLS.
pub fn router(app: AppState, secure: bool) -> Router {
    let console = Console {
        app,
        sessions: Arc::new(Sessions::default()),
        secure,
    };
    Router::new()
        .route("/", get(home))
        .route("/sign-in", get(sign_in::page).post(sign_in::submit))
        .route("/sign-out", post(sign_in::sign_out))
        .route("/language", get(language))
        .route("/alerts", get(alerts::board))
        .route("/alerts/board", get(alerts::board_fragment))
        .route("/alerts/feed", get(alerts::feed))
        .route("/alerts/{id}", get(alerts::alert))
        .route("/alerts/{id}/acknowledge", post(alerts::acknowledge))
        .route("/alerts/{id}/resolve", post(alerts::resolve))
        .route("/alerts/{id}/exposure.csv", get(workflow::exposure_csv))
        .route("/alerts/{id}/{action}", post(workflow::act))
        .route("/agents", get(agents::list))
        .route("/agents/networks/{root}", get(agents::network))
        .route("/agents/{id}", get(agents::agent))
        .route("/communities", get(communities::list))
        .route("/communities/{id}", get(communities::community))
        .route("/problems", get(problems::list).post(problems::open))
        .route("/problems/{id}", get(problems::problem))
        .route("/problems/{id}/resolve", post(problems::resolve))
        .route("/segments", get(segments::list).post(segments::define))
        .route("/segments/{id}", get(segments::segment))
        .route("/segments/{id}/members.csv", get(segments::members_csv))
        .route("/reactivation", get(reactivation::page))
        .route("/reactivation.csv", get(reactivation::csv))
        .route("/analytics", get(analytics::page))
        .route("/customers", get(customers::find))
        .route("/customers/{id}", get(customers::customer))
        .route("/customers/{id}/{what}", post(record::record))
        .route("/system", get(system::page))
        .route("/system/keys", post(system::create_key))
        .route("/system/keys/{id}/revoke", post(system::revoke_key))
        .route("/system/webhooks", post(webhooks::subscribe))
        .route("/system/webhooks/{id}/{action}", post(webhooks::act))
        .route("/assets/console.css", get(css))
        .route("/assets/console.js", get(js))
        .layer(axum::middleware::from_fn(security_headers))
        // A page whose handler panics answers 500; the server goes on.
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .with_state(console)
}

/// Every console response: scripts and styles only from this origin (no inline script,
/// no `eval`), no framing, no caching (pages hold personal data), no MIME sniffing.
async fn security_headers(req: axum::extract::Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; \
             object-src 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    res
}

async fn css() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("assets/console.css"),
    )
}

async fn js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/console.js"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// The language of a request: the `lang` cookie, else `Accept-Language`.
fn lang_of(headers: &HeaderMap) -> Lang {
    headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| session::cookie(c, "lang"))
        .and_then(Lang::from_tag)
        .unwrap_or_else(|| {
            Lang::from_accept_language(
                headers
                    .get(header::ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(""),
            )
        })
}

#[derive(Deserialize)]
struct LanguageQuery {
    to: String,
    back: Option<String>,
}

/// `GET /language?to=zh-CN&back=/alerts`: remembers the language in a cookie (a
/// preference of this browser, not server state) and goes back.
async fn language(Query(q): Query<LanguageQuery>) -> Response {
    let lang = Lang::from_tag(&q.to).unwrap_or(Lang::En);
    // Only a path of this console: never a redirect to another host.
    let back = q
        .back
        .filter(|b| b.starts_with('/') && !b.starts_with("//"))
        .unwrap_or_else(|| "/".into());
    let cookie = format!(
        "lang={}; Path=/; SameSite=Strict; Max-Age=31536000",
        lang.tag()
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to(&back)).into_response()
}

async fn home(signed: Option<SignedIn>) -> Redirect {
    match signed {
        Some(_) => Redirect::to("/alerts"),
        None => Redirect::to("/sign-in"),
    }
}

/// A request from a signed-in browser: its key authenticated again, and what every page
/// needs (language, the caller for the API's handlers, the CSRF token for its forms).
pub(crate) struct SignedIn {
    pub(crate) caller: Caller,
    pub(crate) csrf: String,
    session: String,
    pub(crate) tr: Tr,
    /// The request's path and query, for the language switcher to come back to.
    pub(crate) here: String,
    /// The past this page is asked about (time travel), if any.
    pub(crate) past: Option<Past>,
}

/// A point in the past a page is shown at: a log position, what was known at a
/// recording time, or what was true at a business time. Console URLs carry it as
/// `when_kind` and `when`; the API gets it as its own parameter.
#[derive(Clone)]
pub(crate) struct Past {
    /// `as_of_position`, `known_at` or `valid_at`.
    pub(crate) kind: &'static str,
    pub(crate) value: String,
}

impl Past {
    fn of_query(query: &str) -> Option<Past> {
        let mut kind = None;
        let mut value = None;
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=')?;
            let v = percent_decode(v);
            match k {
                "when_kind" => {
                    kind = ["as_of_position", "known_at", "valid_at"]
                        .into_iter()
                        .find(|x| *x == v)
                }
                "when" if !v.trim().is_empty() => value = Some(v.trim().to_owned()),
                _ => {}
            }
        }
        Some(Past {
            kind: kind?,
            value: value?,
        })
    }

    /// The API's query parameter: `&valid_at=2026-03-01`.
    pub(crate) fn api_param(&self) -> String {
        format!("&{}={}", self.kind, alerts::urlencode(&self.value))
    }

    /// The console's: `&when_kind=valid_at&when=2026-03-01`, for links that stay in it.
    pub(crate) fn console_param(&self) -> String {
        format!(
            "&when_kind={}&when={}",
            self.kind,
            alerts::urlencode(&self.value)
        )
    }
}

/// `%XX` and `+` decoded (a form's query string).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(x) => {
                        out.push(x);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            x => out.push(x),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Not signed in (or the key was revoked, or the session expired): to the sign-in page.
pub(crate) struct NotSignedIn;

impl IntoResponse for NotSignedIn {
    fn into_response(self) -> Response {
        Redirect::to("/sign-in").into_response()
    }
}

impl FromRequestParts<Console> for SignedIn {
    type Rejection = NotSignedIn;

    async fn from_request_parts(parts: &mut Parts, c: &Console) -> Result<Self, NotSignedIn> {
        let id = parts
            .headers
            .get(header::COOKIE)
            .and_then(|v| v.to_str().ok())
            .and_then(|h| session::cookie(h, session::COOKIE))
            .ok_or(NotSignedIn)?
            .to_owned();
        let (token, csrf) = c.sessions.get(&id).ok_or(NotSignedIn)?;
        let (key_id, role) = match c.app.keys.authenticate(&token) {
            Ok(k) => k,
            Err(_) => {
                // Revoked or unknown: the session ends with the key.
                c.sessions.end(&id);
                return Err(NotSignedIn);
            }
        };
        if role == Role::Ingest {
            return Err(NotSignedIn);
        }
        Ok(SignedIn {
            caller: Caller { key_id, role },
            csrf,
            session: id,
            tr: Tr {
                lang: lang_of(&parts.headers),
            },
            here: parts
                .uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
            past: parts.uri.query().and_then(Past::of_query),
        })
    }
}

impl axum::extract::OptionalFromRequestParts<Console> for SignedIn {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        c: &Console,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(
            <SignedIn as FromRequestParts<Console>>::from_request_parts(parts, c)
                .await
                .ok(),
        )
    }
}

/// What the page frame shows: who is signed in, the sign-out form, the languages.
pub(crate) struct Frame {
    /// "Signed in with key … (role)".
    pub(crate) who: String,
    pub(crate) csrf: String,
    pub(crate) here: String,
    pub(crate) langs: Vec<LangLink>,
    /// Which navigation entry is current.
    pub(crate) section: &'static str,
    /// Whether the system page is offered.
    pub(crate) admin: bool,
    /// The page's path, for the time-travel form; `None` on pages that only show now.
    pub(crate) travel: Option<String>,
    /// The banner of a page shown at a past point.
    pub(crate) past_banner: Option<String>,
    pub(crate) past_kind: &'static str,
    pub(crate) past_value: String,
}

impl SignedIn {
    pub(crate) fn frame(&self, section: &'static str) -> Frame {
        Frame {
            who: self.tr.with(
                "signed-in-as",
                &[
                    ("key", self.caller.key_id.as_str().into()),
                    ("role", self.caller.role.as_str().into()),
                ],
            ),
            csrf: self.csrf.clone(),
            here: self.here.clone(),
            langs: langs(self.tr.lang),
            section,
            admin: self.caller.role == Role::Admin,
            travel: None,
            past_banner: None,
            past_kind: "",
            past_value: String::new(),
        }
    }

    /// The frame of a page that can be shown as of a past point (time travel): the form in
    /// the header, and the banner when it is.
    pub(crate) fn frame_travelling(&self, section: &'static str) -> Frame {
        let mut f = self.frame(section);
        f.travel = Some(self.here.split('?').next().unwrap_or("/").to_owned());
        if let Some(p) = &self.past {
            f.past_banner = Some(self.tr.with(
                &format!("past-banner-{}", p.kind.replace('_', "-")),
                &[("when", p.value.as_str().into())],
            ));
            f.past_kind = p.kind;
            f.past_value = p.value.clone();
        }
        f
    }

    /// The URI an API handler reads its query from: `params` (without `?`) and the past
    /// asked about, if any.
    pub(crate) fn api_uri(&self, params: &str) -> axum::http::Uri {
        let past = self.past_param();
        let query = format!("{params}{past}");
        format!("/?{}", query.trim_start_matches('&'))
            .parse()
            .unwrap_or_default()
    }

    /// The API query parameter of the past asked about (empty for now).
    pub(crate) fn past_param(&self) -> String {
        self.past.as_ref().map(Past::api_param).unwrap_or_default()
    }

    /// The same for the console's own links.
    pub(crate) fn past_link(&self) -> String {
        self.past
            .as_ref()
            .map(Past::console_param)
            .unwrap_or_default()
    }

    /// The refusal of a form whose CSRF token is not this session's (`None`: it is).
    pub(crate) fn csrf_refused(&self, given: Option<&str>) -> Option<Response> {
        (!session::csrf_matches(&self.csrf, given))
            .then(|| error_page(self.tr, StatusCode::FORBIDDEN, self.tr.get("error-csrf")))
    }
}

/// A language of the switcher.
pub(crate) struct LangLink {
    pub(crate) tag: &'static str,
    pub(crate) name: &'static str,
    pub(crate) current: bool,
}

fn langs(current: Lang) -> Vec<LangLink> {
    Lang::ALL
        .iter()
        .map(|l| LangLink {
            tag: l.tag(),
            name: l.name(),
            current: *l == current,
        })
        .collect()
}

/// Renders a page, or the error page if the template fails.
/// Text of a JSON value from the API as a page shows it (nothing for null).
pub(crate) fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Exact sums per currency (`{"CNY": "12.00"}`) as `12.00 CNY`.
pub(crate) fn money(v: &serde_json::Value) -> String {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(c, a)| format!("{} {c}", text(a)))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// A share (0–1) as a percentage, or nothing.
pub(crate) fn percent(v: &serde_json::Value) -> String {
    v.as_f64()
        .map(|f| format!("{:.0}%", f * 100.0))
        .unwrap_or_default()
}

/// A ratio to two places, or nothing.
pub(crate) fn ratio(v: &serde_json::Value) -> String {
    v.as_f64().map_or_else(String::new, |x| format!("{x:.2}"))
}

pub(crate) fn render(t: &impl Template, tr: Tr) -> Response {
    match t.render() {
        Ok(html) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a console page could not be rendered");
            error_page(tr, StatusCode::INTERNAL_SERVER_ERROR, tr.get("error-title"))
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    t: Tr,
    lang: &'static str,
    message: String,
}

pub(crate) fn error_page(t: Tr, status: StatusCode, message: String) -> Response {
    let page = ErrorPage {
        t,
        lang: t.lang.tag(),
        message,
    };
    let html = page.render().unwrap_or_else(|_| "error".into());
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response()
}

/// An API error as a page: its status, and its message (already fit for the caller).
pub(crate) fn api_error_page(t: Tr, e: ApiError) -> Response {
    let (status, message) = e.status_and_message();
    let message = match status {
        StatusCode::FORBIDDEN => t.get("error-forbidden"),
        StatusCode::NOT_FOUND => t.get("error-not-found"),
        _ if status.is_server_error() => t.get("error-title"),
        _ => message,
    };
    error_page(t, status, message)
}
