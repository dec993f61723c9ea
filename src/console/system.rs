//! The system page (admin): how far the read model is behind the store, Kafka, the API
//! keys (create, list, revoke) and the webhook subscriptions (see `webhooks.rs`).

use askama::Template;
use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    Form, Json,
};
use serde::Deserialize;

use super::{api_error_page, error_page, render, Console, Frame, SignedIn, Tr};
use crate::{auth::Role, http};

struct KeyRow {
    id: String,
    role: &'static str,
    label: String,
    created_at: String,
    revoked_at: String,
    active: bool,
    own: bool,
}

#[derive(Template)]
#[template(path = "system.html")]
struct SystemPage {
    t: Tr,
    lang: &'static str,
    frame: Frame,
    store_position: u64,
    applied_position: u64,
    lag: u64,
    /// Why the read model stopped following the log, if it has.
    stopped: Option<String>,
    /// Data keys found damaged when the store was opened: their customers' personal data
    /// shows as damaged.
    damaged_keys: usize,
    clock: String,
    kafka: Option<String>,
    /// Messages on the in topic not yet consumed (`None`: not measured yet, or no Kafka).
    kafka_lag: Option<u64>,
    keys: Vec<KeyRow>,
    /// A key just created: its token, shown once.
    created: Option<(String, String)>,
    hooks: Vec<super::webhooks::HookRow>,
    topics: &'static [&'static str],
    notice: super::webhooks::Notice,
}

pub(crate) async fn system_page(
    c: &Console,
    signed: &SignedIn,
    created: Option<(String, String)>,
    notice: super::webhooks::Notice,
) -> Response {
    let t = signed.tr;
    if signed.caller.role != Role::Admin {
        return error_page(t, StatusCode::FORBIDDEN, t.get("error-forbidden"));
    }
    let Json(v) = match http::privacy::list_keys(State(c.app.clone()), signed.caller.clone()).await
    {
        Ok(v) => v,
        Err(e) => return api_error_page(t, e),
    };
    let keys: Vec<crate::auth::KeyInfo> =
        serde_json::from_value(v["keys"].clone()).unwrap_or_default();
    let store_position = c.app.log.last_position();
    let applied_position = c.app.read_model.applied_position();
    let clock = c
        .app
        .read_model
        .latest
        .read()
        .await
        .map(super::alerts::time)
        .unwrap_or_default();
    render(
        &SystemPage {
            t,
            lang: t.lang.tag(),
            frame: signed.frame("system"),
            store_position,
            applied_position,
            lag: store_position.saturating_sub(applied_position),
            stopped: c.app.read_model.stopped(),
            damaged_keys: c.app.log.keys.damaged().len(),
            clock,
            kafka: c.app.kafka.clone(),
            kafka_lag: c.app.kafka_lag.as_ref().and_then(|l| *l.borrow()),
            keys: keys
                .into_iter()
                .map(|k| KeyRow {
                    own: k.id == signed.caller.key_id,
                    active: k.revoked_at.is_none(),
                    role: k.role.as_str(),
                    label: k.label.unwrap_or_default(),
                    created_at: k.created_at,
                    revoked_at: k.revoked_at.unwrap_or_default(),
                    id: k.id,
                })
                .collect(),
            created,
            hooks: super::webhooks::rows(c, signed).await,
            topics: super::webhooks::TOPICS,
            notice,
        },
        t,
    )
}

/// `GET /system`.
pub(crate) async fn page(State(c): State<Console>, signed: SignedIn) -> Response {
    system_page(&c, &signed, None, Default::default()).await
}

#[derive(Deserialize)]
pub(crate) struct CreateForm {
    csrf: Option<String>,
    role: String,
    label: Option<String>,
}

/// `POST /system/keys`: creates a key and shows its token once.
pub(crate) async fn create_key(
    State(c): State<Console>,
    signed: SignedIn,
    Form(form): Form<CreateForm>,
) -> Response {
    if let Some(refused) = signed.csrf_refused(form.csrf.as_deref()) {
        return refused;
    }
    let body = serde_json::json!({
        "role": form.role,
        "label": form.label.filter(|l| !l.trim().is_empty()),
    });
    let body: http::privacy::CreateKey = match serde_json::from_value(body) {
        Ok(b) => b,
        Err(e) => return api_error_page(signed.tr, http::ApiError::bad("role", e.to_string())),
    };
    match http::privacy::create_key(State(c.app.clone()), signed.caller.clone(), Ok(Json(body)))
        .await
    {
        Ok((_, Json(v))) => {
            let id = v["key"]["id"].as_str().unwrap_or_default().to_owned();
            let token = v["token"].as_str().unwrap_or_default().to_owned();
            let mut r = system_page(&c, &signed, Some((id, token)), Default::default()).await;
            *r.status_mut() = StatusCode::CREATED;
            r
        }
        Err(e) => api_error_page(signed.tr, e),
    }
}

#[derive(Deserialize)]
pub(crate) struct RevokeForm {
    csrf: Option<String>,
}

/// `POST /system/keys/{id}/revoke`.
pub(crate) async fn revoke_key(
    State(c): State<Console>,
    signed: SignedIn,
    Path(id): Path<String>,
    Form(form): Form<RevokeForm>,
) -> Response {
    if let Some(refused) = signed.csrf_refused(form.csrf.as_deref()) {
        return refused;
    }
    match http::privacy::revoke_key(State(c.app.clone()), signed.caller.clone(), Path(id)).await {
        Ok(_) => Redirect::to("/system").into_response(),
        Err(e) => api_error_page(signed.tr, e),
    }
}
