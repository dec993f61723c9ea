//! Problems over HTTP: a root cause behind alerts and complaints (`problem-<id>`). Open
//! one, link alerts and single complaints to it, resolve it: its alerts are resolved and
//! every complaint still open under it gets a `complaint_resolved` on its customer's
//! stream, in the same append.

use std::collections::BTreeSet;

use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::StatusCode,
    Json,
};
use chrono::Utc;
use rapport_events::{
    data::{ComplaintResolved, EventData},
    Event, EventType, Subject,
};
use rapport_projections::warnings::{Problem, ProblemStatus};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    workflow::{caught_up, payload, record, RESPONDERS},
    ApiError, AppState, Caller, READERS,
};
use crate::{log::AppendRules, store::ExpectedVersion};

/// Complaints one resolution closes in one append.
const RESOLVE_COMPLAINTS_MAX: usize = 10_000;

/// `POST /v1/problems` `{id?, title, note?}`.
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(RESPONDERS)?;
    let mut v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad("/", format!("the body must be a JSON object: {e}")))?;
    let id = match v.as_object_mut().and_then(|o| o.remove("id")) {
        Some(Value::String(s)) => s,
        Some(_) => return Err(ApiError::bad("/id", "must be a string")),
        None => format!("pr-{}", (state.ids)().simple()),
    };
    super::segments::check_id(&id)?;
    let data = payload(
        EventType::ProblemOpened,
        &Bytes::from(v.to_string()),
        &caller,
    )?;
    let out = record(
        &state,
        Subject::Problem(id.clone()),
        data,
        ExpectedVersion::NoStream,
    )
    .await
    .map_err(|e| match e {
        ApiError::Conflict { .. } => ApiError::Conflict {
            code: "problem_exists",
            message: format!("problem `{id}` already exists"),
        },
        e => e,
    })?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"problem": id, "position": out["position"]})),
    ))
}

#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProblemQuery {
    #[schemars(extend("enum" = ["open", "resolved"]))]
    status: Option<String>,
    min_position: Option<u64>,
}

fn problem_json(p: &Problem, st: &rapport_projections::ReadState) -> Value {
    let alerts: Vec<Value> = p
        .alerts
        .iter()
        .filter_map(|id| st.warnings.get(&st.warnings.live_id(id)))
        .map(|a| {
            json!({"id": a.id, "level": a.level, "status": a.status, "kind": a.kind,
                   "complaints": a.complaints.len(), "customers": a.customers.len()})
        })
        .collect();
    let mut v = serde_json::to_value(p).unwrap_or_default();
    v["alert_summaries"] = json!(alerts);
    v
}

/// `GET /v1/problems?status=open|resolved`: newest first.
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<ProblemQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(READERS)?;
    let Query(q) = q.map_err(ApiError::query)?;
    let status: Option<ProblemStatus> = match q.status.as_deref() {
        None => None,
        Some("open") => Some(ProblemStatus::Open),
        Some("resolved") => Some(ProblemStatus::Resolved),
        Some(_) => return Err(ApiError::bad("status", "must be open or resolved")),
    };
    super::query::wait_min_position(&state, q.min_position).await?;
    let st = state.read_model.state.read().await;
    let mut problems: Vec<&Problem> = st
        .warnings
        .problems()
        .filter(|p| status.is_none_or(|s| p.status == s))
        .collect();
    problems.sort_by_key(|p| std::cmp::Reverse(p.opened_position));
    let out: Vec<Value> = problems.iter().map(|p| problem_json(p, &st)).collect();
    Ok(Json(json!({"problems": out, "position": st.position()})))
}

/// `GET /v1/problems/{id}`.
pub(crate) async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    q: Result<Query<ProblemQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(READERS)?;
    let Query(q) = q.map_err(ApiError::query)?;
    super::query::wait_min_position(&state, q.min_position).await?;
    let st = state.read_model.state.read().await;
    let p = st
        .warnings
        .problem(&id)
        .ok_or_else(|| ApiError::NotFound(format!("no problem `{id}`")))?;
    Ok(Json(problem_json(p, &st)))
}

/// `POST /v1/problems/{id}/links` `{alert}` or `{complaint}`.
pub(crate) async fn link(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require(RESPONDERS)?;
    let data = payload(EventType::ProblemLinked, &body, &caller)?;
    caught_up(&state).await?;
    {
        let st = state.read_model.state.read().await;
        let p = st
            .warnings
            .problem(&id)
            .ok_or_else(|| ApiError::NotFound(format!("no problem `{id}`")))?;
        if p.status == ProblemStatus::Resolved {
            return Err(ApiError::Conflict {
                code: "problem_resolved",
                message: format!("problem `{id}` is resolved; open a new one"),
            });
        }
        if let EventData::ProblemLinked(l) = &data {
            if let Some(a) = &l.alert {
                if st.warnings.get(a).is_none() {
                    return Err(ApiError::bad("/alert", format!("no alert `{a}`")));
                }
            }
            if let Some(c) = &l.complaint {
                if st.customers.complaint_author(c).is_none() {
                    return Err(ApiError::bad("/complaint", format!("no complaint `{c}`")));
                }
            }
        }
    }
    Ok(Json(
        record(&state, Subject::Problem(id), data, ExpectedVersion::Any).await?,
    ))
}

/// `POST /v1/problems/{id}/resolve` `{note?}`.
pub(crate) async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require(RESPONDERS)?;
    let data = payload(EventType::ProblemResolved, &body, &caller)?;
    caught_up(&state).await?;
    let now = Utc::now();
    let (resolved, open): (bool, Vec<(String, String)>) = {
        let st = state.read_model.state.read().await;
        let p = st
            .warnings
            .problem(&id)
            .ok_or_else(|| ApiError::NotFound(format!("no problem `{id}`")))?;
        let mut complaints: BTreeSet<&str> = p.complaints.iter().map(String::as_str).collect();
        for a in &p.alerts {
            if let Some(a) = st.warnings.get(&st.warnings.live_id(a)) {
                complaints.extend(a.complaints.iter().map(String::as_str));
            }
        }
        let open = complaints
            .into_iter()
            .filter_map(|c| {
                let author = st.customers.complaint_author(c)?;
                author
                    .complaints_open
                    .contains(c)
                    .then(|| (author.id.to_string(), c.to_owned()))
            })
            .collect();
        (p.status == ProblemStatus::Resolved, open)
    };
    if resolved && open.is_empty() {
        return Err(ApiError::Conflict {
            code: "problem_resolved",
            message: format!("problem `{id}` is already resolved"),
        });
    }
    if open.len() > RESOLVE_COMPLAINTS_MAX {
        return Err(ApiError::Conflict {
            code: "too_many_complaints",
            message: format!(
                "{} open complaints; one resolution closes at most {RESOLVE_COMPLAINTS_MAX}",
                open.len()
            ),
        });
    }
    // The problem first: its alerts are resolved before the resolutions of their
    // complaints move event time on (past a deadline, perhaps).
    let mut events: Vec<Event> = Vec::with_capacity(open.len() + 1);
    if !resolved {
        events.push(Event {
            id: (state.ids)(),
            data,
            customer: id.clone(),
            occurred_at: now,
            metadata: Default::default(),
        });
    }
    for (customer, complaint) in &open {
        events.push(Event {
            id: (state.ids)(),
            data: EventData::ComplaintResolved(ComplaintResolved {
                complaint_id: complaint.clone(),
                resolution: Some(format!("Resolved with problem {id}")),
                satisfied: None,
            }),
            customer: customer.clone(),
            occurred_at: now,
            metadata: Default::default(),
        });
    }
    // One append: the problem and its complaints are closed together (stream by stream on
    // a store that commits one stream atomically; a retry closes what is still open).
    let rules = if state.log.atomic_across_streams() {
        AppendRules::all_or_nothing()
    } else {
        AppendRules::per_stream()
    };
    let appended = state.log.append(&events, rules).await?;
    let last = appended.last().map(|a| a.position);
    tracing::info!(problem = %id, complaints = open.len(), "problem resolved");
    Ok(Json(
        json!({"problem": id, "position": last, "complaints_resolved": open.len()}),
    ))
}
