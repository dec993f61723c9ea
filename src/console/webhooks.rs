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
    /// The form's field (`url`, `segment`, `batch`) and the message shown on it.
    pub(crate) error: Option<(&'static str, String)>,
}

impl Notice {
    /// The message for `field`, if the error is about it.
    pub(crate) fn error_for(&self, field: &str) -> Option<&str> {
        self.error
            .as_ref()
            .filter(|(f, _)| *f == field)
            .map(|(_, m)| m.as_str())
    }
}

/// The form field an API error names (the URL field for anything else).
fn form_field(e: &ApiError) -> &'static str {
    match e {
        ApiError::BadRequest { field, .. } if field == "/batch" => "batch",
        ApiError::BadRequest { field, .. } if field == "/segment" => "segment",
        _ => "url",
    }
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
    segment: Option<String>,
    batch: Option<String>,
}

/// `POST /system/webhooks`.
pub(crate) async fn subscribe(State(c): State<Console>, signed: SignedIn, form: Bytes) -> Response {
    // Several boxes of one name: read the form as pairs.
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&form).unwrap_or_default();
    let mut f = SubscribeForm {
        csrf: None,
        url: None,
        events: Vec::new(),
        segment: None,
        batch: None,
    };
    for (k, v) in pairs {
        match k.as_str() {
            "csrf" => f.csrf = Some(v),
            "url" => f.url = Some(v),
            "events" => f.events.push(v),
            "segment" => f.segment = Some(v),
            "batch" => f.batch = Some(v),
            _ => {}
        }
    }
    if let Some(refused) = signed.csrf_refused(f.csrf.as_deref()) {
        return refused;
    }
    let mut body = json!({"url": f.url.unwrap_or_default().trim(), "events": f.events});
    if let Some(s) = f
        .segment
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        body["segment"] = json!(s);
    }
    if let Some(b) = f.batch.as_deref().map(str::trim).filter(|b| !b.is_empty()) {
        // What is not a number goes to the API as text, which names the field.
        body["batch"] = b.parse::<u64>().map_or(json!(b), |n| json!(n));
    }
    let body = Bytes::from(body.to_string());
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
                error: Some((form_field(&e), message(&e))),
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
