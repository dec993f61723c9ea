//! Webhook subscriptions over HTTP (admin): create (the secret is shown once), list, show,
//! delete, resume a parked one, replay from a log position. Delivery is `crate::webhooks`.

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, AppState, Caller};
use crate::{
    auth::Role,
    webhooks::{Topic, WebhookError},
};

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Create {
    url: String,
    events: Vec<String>,
    #[serde(default)]
    segment: Option<String>,
    #[serde(default)]
    batch: Option<u32>,
}

/// `POST /v1/webhooks` `{"url", "events": [...], "segment"?, "batch"?}`.
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    b: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(&[Role::Admin])?;
    let c: Create = ApiError::json_body(&b)?;
    let mut topics = Vec::new();
    for (i, e) in c.events.iter().enumerate() {
        let t = Topic::parse(e).ok_or_else(|| {
            let known: Vec<_> = Topic::ALL.iter().map(|t| t.as_str()).collect();
            ApiError::bad(
                &format!("/events/{i}"),
                format!("must be one of {}", known.join(", ")),
            )
        })?;
        if !topics.contains(&t) {
            topics.push(t);
        }
    }
    let sub = state
        .webhooks
        .create(
            &c.url,
            topics,
            c.segment,
            c.batch.unwrap_or(1),
            &caller.key_id,
        )
        .await?;
    tracing::info!(webhook = %sub.id, by = %caller.key_id, "webhook subscribed");
    Ok((
        StatusCode::CREATED,
        Json(json!({"webhook": sub.public(), "secret": sub.secret})),
    ))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(&[Role::Admin])?;
    let all: Vec<Value> = state.webhooks.list().iter().map(|s| s.public()).collect();
    Ok(Json(json!({"webhooks": all})))
}

pub(crate) async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&[Role::Admin])?;
    let s = state.webhooks.get(&id).ok_or(WebhookError::NotFound(id))?;
    Ok(Json(s.public()))
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(&[Role::Admin])?;
    state.webhooks.delete(&id)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/webhooks/{id}/resume`: delivery goes on from where it stopped.
pub(crate) async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&[Role::Admin])?;
    Ok(Json(state.webhooks.resume(&id, None)?.public()))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Replay {
    from_position: u64,
}

/// `POST /v1/webhooks/{id}/replay` `{"from_position": P}`: every change caused by events
/// after position P is delivered again (and the subscription resumed).
pub(crate) async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    b: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require(&[Role::Admin])?;
    let r: Replay = ApiError::json_body(&b)?;
    if state.webhooks.get(&id).is_none() {
        return Err(WebhookError::NotFound(id).into());
    }
    let cursor = state
        .webhooks
        .cursor_after(r.from_position)
        .await
        .map_err(|m| ApiError::Conflict {
            code: "feed_truncated",
            message: m,
        })?;
    Ok(Json(state.webhooks.resume(&id, Some(cursor))?.public()))
}
