//! Signing in with an API key, and out.

use askama::Template;
use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
    Form,
};
use serde::Deserialize;

use super::{lang_of, langs, render, session, Console, SignedIn, Tr};
use crate::auth::Role;

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    t: Tr,
    lang: &'static str,
    langs: Vec<super::LangLink>,
    error: Option<String>,
}

/// `GET /sign-in`.
pub(crate) async fn page(headers: HeaderMap) -> Response {
    let t = Tr {
        lang: lang_of(&headers),
    };
    render(
        &SignInPage {
            t,
            lang: t.lang.tag(),
            langs: langs(t.lang),
            error: None,
        },
        t,
    )
}

#[derive(Deserialize)]
pub(crate) struct SignInForm {
    key: String,
}

/// `POST /sign-in`: a valid key of a reading role starts a session. The form needs no
/// CSRF token: it changes nothing until the key proves itself, and the session cookie is
/// `SameSite=Strict`.
pub(crate) async fn submit(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let t = Tr {
        lang: lang_of(&headers),
    };
    let refused = |message: String| {
        let page = SignInPage {
            t,
            lang: t.lang.tag(),
            langs: langs(t.lang),
            error: Some(message),
        };
        let mut r = render(&page, t);
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        r
    };
    let token = form.key.trim();
    match c.app.keys.authenticate(token) {
        Ok((_, Role::Ingest)) => refused(t.get("sign-in-ingest")),
        Ok((key_id, role)) => {
            let id = c.sessions.start(token);
            tracing::info!(key = %key_id, role = role.as_str(), "signed in to the console");
            (
                [(header::SET_COOKIE, session::set_cookie(&id, c.secure))],
                Redirect::to("/alerts"),
            )
                .into_response()
        }
        Err(_) => refused(t.get("sign-in-bad-key")),
    }
}

#[derive(Deserialize)]
pub(crate) struct SignOutForm {
    csrf: Option<String>,
}

/// `POST /sign-out` (with the CSRF token): ends the session and clears its cookie.
pub(crate) async fn sign_out(
    State(c): State<Console>,
    signed: SignedIn,
    Form(form): Form<SignOutForm>,
) -> Response {
    if let Some(refused) = signed.csrf_refused(form.csrf.as_deref()) {
        return refused;
    }
    c.sessions.end(&signed.session);
    (
        [(header::SET_COOKIE, session::clear_cookie())],
        Redirect::to("/sign-in"),
    )
        .into_response()
}
