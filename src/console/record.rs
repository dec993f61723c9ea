//! What support records about a customer from their page: a complaint's resolution (with
//! whether the customer was satisfied) and outreach made; merges and unmerges go on to
//! `identity.rs`. Each is an event appended
//! through the API's own `POST /v1/events`, with the signed-in key, so the API's roles
//! (support may record these two types and nothing else) and validation apply.

use axum::{
    body::Body,
    extract::{Path, Query, State},
    http::{header, HeaderMap, HeaderValue, Uri},
    response::{IntoResponse, Redirect, Response},
    Form,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{alerts::urlencode, api_error_page, Console, SignedIn};
use crate::http;

/// Outreach channels offered by the form (the wire format takes any short text).
pub(crate) const CHANNELS: &[&str] = &["sms", "email", "wechat", "phone"];

#[derive(Deserialize)]
pub(crate) struct RecordForm {
    csrf: Option<String>,
    complaint: Option<String>,
    satisfied: Option<String>,
    resolution: Option<String>,
    channel: Option<String>,
    campaign: Option<String>,
    outcome: Option<String>,
    other: Option<String>,
    reason: Option<String>,
}

fn given(s: &Option<String>) -> Option<String> {
    s.as_ref()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// `POST /customers/{id}/resolve` and `/customers/{id}/contact`.
pub(crate) async fn record(
    State(c): State<Console>,
    signed: SignedIn,
    Path((id, what)): Path<(String, String)>,
    Form(f): Form<RecordForm>,
) -> Response {
    if let Some(refused) = signed.csrf_refused(f.csrf.as_deref()) {
        return refused;
    }
    if what == "merge" || what == "unmerge" {
        return super::identity::act(&c, &signed, &id, &what, given(&f.other), given(&f.reason))
            .await;
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let event = match what.as_str() {
        "resolve" => {
            let mut data = json!({"complaint_id": given(&f.complaint).unwrap_or_default()});
            match f.satisfied.as_deref() {
                Some("yes") => data["satisfied"] = Value::Bool(true),
                Some("no") => data["satisfied"] = Value::Bool(false),
                _ => {}
            }
            if let Some(r) = given(&f.resolution) {
                data["resolution"] = r.into();
            }
            json!({"type": "complaint_resolved", "customer": id, "occurred_at": now, "data": data})
        }
        "contact" => {
            let mut data = json!({"channel": given(&f.channel).unwrap_or_default()});
            if let Some(x) = given(&f.campaign) {
                data["campaign"] = x.into();
            }
            if let Some(x) = given(&f.outcome) {
                data["outcome"] = x.into();
            }
            json!({"type": "contacted", "customer": id, "occurred_at": now, "data": data})
        }
        _ => {
            return api_error_page(
                signed.tr,
                http::ApiError::NotFound(format!("nothing to record as `{what}`")),
            )
        }
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let no_query = Uri::from_static("/");
    let Ok(Query(q)) = Query::try_from_uri(&no_query) else {
        return api_error_page(signed.tr, http::ApiError::Internal("query".into()));
    };
    match http::events::append(
        State(c.app.clone()),
        signed.caller.clone(),
        Ok(Query(q)),
        headers,
        Body::from(event.to_string()),
    )
    .await
    {
        Ok(r) => {
            let body = axum::body::to_bytes(r.into_body(), usize::MAX)
                .await
                .unwrap_or_default();
            let position = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["last_position"].as_u64())
                .unwrap_or(0);
            c.app.read_model.wait_for(position).await;
            Redirect::to(&format!("/customers/{}", urlencode(&id))).into_response()
        }
        Err(e) => api_error_page(signed.tr, e),
    }
}
