//! Keys, erasure and the data subject's export.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, AppState, Caller};
use crate::{auth::Role, log::PersonalAccess, store::READ_EVENTS_MAX};

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateKey {
    #[schemars(extend("enum" = ["ingest", "support", "analyst", "admin"]))]
    role: String,
    label: Option<String>,
}

pub(crate) async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<CreateKey>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    caller.require(&[Role::Admin])?;
    let Json(body) = body.map_err(|e| ApiError::bad("/", e.body_text()))?;
    let role = Role::parse(&body.role)
        .ok_or_else(|| ApiError::bad("/role", "must be one of ingest, support, analyst, admin"))?;
    if let Some(why) = body.label.as_deref().and_then(crate::auth::label_problem) {
        return Err(ApiError::bad("/label", why));
    }
    let (info, token) = state.keys.create(role, body.label.as_deref())?;
    tracing::info!(key = %info.id, role = role.as_str(), by = %caller.key_id, "API key created");
    Ok((
        StatusCode::CREATED,
        Json(json!({"key": info, "token": token})),
    ))
}

pub(crate) async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(&[Role::Admin])?;
    Ok(Json(json!({"keys": state.keys.list()?})))
}

pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(&[Role::Admin])?;
    if state.keys.revoke(&id)? {
        tracing::info!(key = %id, by = %caller.key_id, "API key revoked");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no active key `{id}`")))
    }
}

pub(super) async fn erase(
    State(state): State<AppState>,
    caller: Caller,
    Path(customer): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(&[Role::Admin])?;
    let stream = rapport_events::stream_for(&customer);
    if state.log.read_stream(&stream, 0, 1).await?.is_empty() {
        return Err(ApiError::NotFound(format!(
            "customer `{customer}` has no events"
        )));
    }
    // Erasing again what is already erased appends nothing: one record per erasure, not
    // per request. (New personal data since, under a new key, is erased again.) A person
    // of several ids is erased whole: every id's key and identifiers.
    super::workflow::caught_up(&state).await?;
    let ids: Vec<(String, bool)> = {
        let st = state.read_model.state.read().await;
        let c = &st.customers;
        let mut ids = c.person_ids(&customer);
        if ids.is_empty() {
            ids.push(&customer);
        }
        // The id asked for first: its erasure is the answer's `erasure`.
        ids.sort_by_key(|i| *i != customer);
        ids.into_iter()
            .map(|i| (i.to_owned(), c.get(i).is_some_and(|p| p.erased)))
            .collect()
    };
    let mut erasures = Vec::new();
    for (id, erased) in ids {
        if erased && !state.log.has_live_key(&id) {
            continue;
        }
        let erasure = state
            .log
            .erase(
                &id,
                Some(caller.key_id.clone()),
                (state.ids)(),
                chrono::Utc::now(),
            )
            .await?;
        // The customer id is a pseudonymous key, not personal data; the values are never logged.
        tracing::info!(customer = %id, by = %caller.key_id, generations = ?erasure.destroyed_generations, "personal data erased");
        erasures.push(erasure);
    }
    if erasures.is_empty() {
        return Ok(Json(json!({"erasure": null, "already_erased": true})));
    }
    let first = (erasures[0].customer == customer).then(|| erasures[0].clone());
    Ok(Json(json!({"erasure": first, "erasures": erasures})))
}

/// Everything Rapport holds about one customer, decrypted (access and portability).
pub(super) async fn export_customer(
    State(state): State<AppState>,
    caller: Caller,
    Path(customer): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(&[Role::Admin, Role::Support])?;
    let stream = rapport_events::stream_for(&customer);
    // Every id of the person: the subject's data is all of it (as of everything written).
    super::workflow::caught_up(&state).await?;
    let ids: Vec<String> = {
        let st = state.read_model.state.read().await;
        let ids = st.customers.person_ids(&customer);
        if ids.is_empty() {
            vec![customer.clone()]
        } else {
            ids.into_iter().map(str::to_owned).collect()
        }
    };
    let mut events = Vec::new();
    for id in &ids {
        let stream = rapport_events::stream_for(id);
        let mut from = 0;
        loop {
            let page = state
                .log
                .read_stream(&stream, from, READ_EVENTS_MAX)
                .await?;
            let n = page.len();
            events.extend(state.log.open_all(page, PersonalAccess::Plain)?);
            if n < READ_EVENTS_MAX {
                break;
            }
            from += n as u64;
        }
    }
    events.sort_by_key(|e| e.position);
    caller.audit(&state, "subject_export", &events).await;
    if events.is_empty() {
        return Err(ApiError::NotFound(format!(
            "customer `{customer}` has no events"
        )));
    }
    let erased = events
        .iter()
        .any(|e| e.personal == Some(rapport_events::PersonalView::Erased));
    let key = state.log.keys.current(&customer).map(|k| k.generation);
    let profile = {
        let st = state.read_model.state.read().await;
        let c = &st.customers;
        let as_of = state
            .read_model
            .latest
            .read()
            .await
            .unwrap_or(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH);
        c.person(&customer)
            .map(|p| super::customers::profile_json(&state, c, p, as_of))
    };
    let profile = match profile {
        Some((mut v, at)) => {
            at.fill(&state, &caller, &mut v).await?;
            Some(v)
        }
        None => None,
    };
    Ok(Json(json!({
        "customer": customer,
        "ids": ids,
        "stream": stream,
        "exported_at": chrono::Utc::now(),
        "personal_data": {"current_key_generation": key, "some_events_erased": erased},
        "profile": profile,
        "events": events,
    })))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    customer: Option<String>,
    key_id: Option<String>,
    #[schemars(range(min = 1, max = crate::audit::AUDIT_READ_MAX))]
    limit: Option<usize>,
}

/// `GET /v1/audit?customer=&key_id=&limit=` (admin): who read which customers' personal
/// data, newest first.
pub(crate) async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<axum::extract::Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(&[Role::Admin])?;
    let axum::extract::Query(q) = q.map_err(ApiError::query)?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > crate::audit::AUDIT_READ_MAX {
        return Err(ApiError::bad(
            "limit",
            format!("must be 1 to {}", crate::audit::AUDIT_READ_MAX),
        ));
    }
    let entries = state
        .audit
        .read(q.customer.as_deref(), q.key_id.as_deref(), limit)
        .map_err(|e| ApiError::Internal(format!("audit log: {e}")))?;
    Ok(Json(json!({"entries": entries})))
}
