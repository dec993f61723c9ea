//! Webhook subscriptions on the system page (admin): the list with each one's delivery
//! state, a form to subscribe (the secret shown once), resume and delete. Every action is
//! the API's own handler with the signed-in key.

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    Form, Json,
};
use serde::Deserialize;
use serde_json::json;

use super::{api_error_page, text, workflow::message, Console, SignedIn};
use crate::http::{self, ApiError};

/// What a subscription can be told about, as the form offers it.
pub(crate) const TOPICS: &[&str] = &[
    "segment.entered",
    "segment.exited",
    "alert.raised",
    "alert.escalated",
    "alert.overdue",
    "alert.resolved",
    "lifecycle.changed",
];

pub(crate) struct HookRow {
    pub(crate) id: String,
    pub(crate) url: String,
    pub(crate) topics: String,
    pub(crate) status: String,
    pub(crate) parked: bool,
    pub(crate) delivered: String,
    pub(crate) failures: String,
    pub(crate) last_error: String,
}

/// What the page says after a webhook action: a subscription just made (its secret, shown
/// once), or the message for the form's field.
#[derive(Default)]
pub(crate) struct Notice {
    pub(crate) created: Option<(String, String)>,
    pub(crate) error: Option<String>,
}

/// The subscriptions, as the API lists them to this key.
pub(crate) async fn rows(c: &Console, signed: &SignedIn) -> Vec<HookRow> {
    let Ok(Json(v)) = http::webhooks::list(State(c.app.clone()), signed.caller.clone()).await
    else {
        return Vec::new();
    };
    v["webhooks"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|w| HookRow {
                    id: text(&w["id"]),
                    url: text(&w["url"]),
                    topics: w["topics"]
                        .as_array()
                        .map(|t| t.iter().map(text).collect::<Vec<_>>().join(", "))
                        .unwrap_or_default(),
                    status: text(&w["status"]),
                    parked: w["status"] == "parked",
                    delivered: text(&w["delivered"]),
                    failures: text(&w["failures"]),
                    last_error: text(&w["last_error"]),
                })
                .collect()
        })
        .unwrap_or_default()
}

#[derive(Deserialize)]
pub(crate) struct SubscribeForm {
    csrf: Option<String>,
    url: Option<String>,
    /// Checked topics (the form sends one `events` per box).
    #[serde(default)]
    events: Vec<String>,
}

/// `POST /system/webhooks`.
pub(crate) async fn subscribe(State(c): State<Console>, signed: SignedIn, form: Bytes) -> Response {
    // Several boxes of one name: read the form as pairs.
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&form).unwrap_or_default();
    let mut f = SubscribeForm {
        csrf: None,
        url: None,
        events: Vec::new(),
    };
    for (k, v) in pairs {
        match k.as_str() {
            "csrf" => f.csrf = Some(v),
            "url" => f.url = Some(v),
            "events" => f.events.push(v),
            _ => {}
        }
    }
    if let Some(refused) = signed.csrf_refused(f.csrf.as_deref()) {
        return refused;
    }
    let body = Bytes::from(
        json!({"url": f.url.unwrap_or_default().trim(), "events": f.events}).to_string(),
    );
    match http::webhooks::create(State(c.app.clone()), signed.caller.clone(), body).await {
        Ok((_, Json(v))) => {
            let notice = Notice {
                created: Some((text(&v["webhook"]["id"]), text(&v["secret"]))),
                error: None,
            };
            let mut r = super::system::system_page(&c, &signed, None, notice).await;
            *r.status_mut() = StatusCode::CREATED;
            r
        }
        Err(e @ (ApiError::BadRequest { .. } | ApiError::Invalid(_))) => {
            let notice = Notice {
                created: None,
                error: Some(message(&e)),
            };
            let mut r = super::system::system_page(&c, &signed, None, notice).await;
            *r.status_mut() = StatusCode::BAD_REQUEST;
            r
        }
        Err(e) => api_error_page(signed.tr, e),
    }
}

#[derive(Deserialize)]
pub(crate) struct ActionForm {
    csrf: Option<String>,
}

/// `POST /system/webhooks/{id}/resume` and `/delete`.
pub(crate) async fn act(
    State(c): State<Console>,
    signed: SignedIn,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<ActionForm>,
) -> Response {
    if let Some(refused) = signed.csrf_refused(f.csrf.as_deref()) {
        return refused;
    }
    let app = || State(c.app.clone());
    let r = match action.as_str() {
        "resume" => http::webhooks::resume(app(), signed.caller.clone(), Path(id))
            .await
            .map(|_| ()),
        "delete" => http::webhooks::delete(app(), signed.caller.clone(), Path(id))
            .await
            .map(|_| ()),
        _ => Err(ApiError::NotFound(format!("no action `{action}`"))),
    };
    match r {
        Ok(()) => Redirect::to("/system").into_response(),
        Err(e) => api_error_page(signed.tr, e),
    }
}
