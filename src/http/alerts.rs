//! Early-warning alerts over HTTP: list, one alert with its evidence, the live feed (SSE).
//! What staff do with them is in `workflow.rs`.

use axum::{
    extract::{Path, Query, State},
    http::HeaderMap,
    response::{sse::Event as SseEvent, Response},
    Json,
};
use rapport_projections::warnings::{self, Alert, Kind, Level, Status};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, AppState, Caller, READERS};
use crate::log::PersonalAccess;

/// Alerts per page of the list.
const ALERTS_PAGE_MAX: usize = 500;
/// Phrases shown per alert.
const PHRASES_MAX: usize = 5;
/// Complaint texts read to find shared phrases.
const PHRASE_COMPLAINTS_MAX: usize = 50;
/// Agents drawn on a network alert's graph.
const GRAPH_NODES_MAX: usize = 30;

#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlertQuery {
    #[schemars(extend("enum" = ["open", "acknowledged", "resolved", "merged"]))]
    status: Option<String>,
    /// At least this level.
    #[schemars(extend("enum" = ["watch", "warning", "critical"]))]
    level: Option<String>,
    #[schemars(extend("enum" = ["group_complaint", "spike", "pyramid_risk"]))]
    kind: Option<String>,
    /// Only alerts owned by this key id (`me`: the caller's).
    assignee: Option<String>,
    /// Only alerts past a deadline (`true`) or not (`false`).
    overdue: Option<bool>,
    /// Only alerts updated after this log position.
    after: Option<u64>,
    min_position: Option<u64>,
    #[schemars(range(min = 1, max = ALERTS_PAGE_MAX))]
    limit: Option<usize>,
    // Time travel: the alerts as they were (see `crate::fold::time_travel`).
    as_of_position: Option<u64>,
    #[serde(default)]
    #[schemars(schema_with = "crate::http::query::time_param")]
    known_at: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "crate::http::query::time_param")]
    valid_at: Option<String>,
}

impl AlertQuery {
    /// The read query of its time-travel parameters.
    fn travel(&self) -> super::query::ReadQuery {
        super::query::ReadQuery {
            min_position: self.min_position,
            as_of_position: self.as_of_position,
            known_at: self.known_at.clone(),
            valid_at: self.valid_at.clone(),
            ..Default::default()
        }
    }
}

fn parse_enum<T: serde::de::DeserializeOwned>(
    field: &str,
    v: &str,
    allowed: &str,
) -> Result<T, ApiError> {
    serde_json::from_value(Value::String(v.to_owned()))
        .map_err(|_| ApiError::bad(field, format!("must be one of {allowed}")))
}

/// `GET /v1/alerts?status=&level=&kind=&after=&limit=`: newest update last.
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<AlertQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(READERS)?;
    let Query(q) = q.map_err(ApiError::query)?;
    let status: Option<Status> = q
        .status
        .as_deref()
        .map(|s| parse_enum("status", s, "open, acknowledged, resolved, merged"))
        .transpose()?;
    let level: Option<Level> = q
        .level
        .as_deref()
        .map(|s| parse_enum("level", s, "watch, warning, critical"))
        .transpose()?;
    let kind: Option<Kind> = q
        .kind
        .as_deref()
        .map(|s| parse_enum("kind", s, "group_complaint, spike, pyramid_risk"))
        .transpose()?;
    let assignee = match q.assignee.as_deref() {
        Some("me") => Some(caller.key_id.as_str()),
        a => a,
    };
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > ALERTS_PAGE_MAX {
        return Err(ApiError::bad(
            "limit",
            format!("must be 1 to {ALERTS_PAGE_MAX}"),
        ));
    }
    let (st, _) = super::query::view(&state, &q.travel()).await?;
    let mut alerts: Vec<&Alert> = st
        .warnings
        .alerts()
        .filter(|a| status.is_none_or(|s| a.status == s))
        // `level=warning` means "at least warning".
        .filter(|a| level.is_none_or(|l| a.level >= l))
        .filter(|a| kind.is_none_or(|k| a.kind == k))
        .filter(|a| assignee.is_none_or(|k| a.assignee.as_deref() == Some(k)))
        .filter(|a| q.overdue.is_none_or(|o| a.overdue.is_some() == o))
        .filter(|a| q.after.is_none_or(|p| a.updated_at_position > p))
        .collect();
    alerts.sort_by(|a, b| {
        a.updated_at_position
            .cmp(&b.updated_at_position)
            .then_with(|| a.id.cmp(&b.id))
    });
    let total = alerts.len();
    alerts.truncate(limit);
    let next_after = (alerts.len() < total)
        .then(|| alerts.last().map(|a| a.updated_at_position))
        .flatten();
    Ok(Json(json!({
        "alerts": alerts,
        "total": total,
        "next_after": next_after,
        "position": st.position(),
        "last_change": st.warnings.last_seq(),
    })))
}

/// `GET /v1/alerts/{id}`: the alert, with the phrases its complaints share and the first
/// complaints' texts (read from the log for the caller: support and admin see them;
/// others see none).
pub(crate) async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    q: Result<Query<AlertQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(READERS)?;
    let Query(q) = q.map_err(ApiError::query)?;
    let (st, _) = super::query::view(&state, &q.travel()).await?;
    let alert = st
        .warnings
        .get(&id)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(format!("no alert `{id}`")))?;
    let graph = graph(&st, &alert);
    drop(st);
    let mut v = serde_json::to_value(&alert).map_err(|e| ApiError::Internal(e.to_string()))?;
    v["graph"] = graph;
    // Complaint texts are personal data: support and admin read them (and the phrases
    // they share); other roles get neither.
    let (phrases, complaint_texts) = if caller.access() == PersonalAccess::Plain {
        let mut texts = Vec::new();
        let mut shown = Vec::new();
        for pos in alert.complaint_positions.iter().take(PHRASE_COMPLAINTS_MAX) {
            let stored = state.log.read_all(pos - 1, 1).await?;
            let opened = state.log.open_all(stored, PersonalAccess::Plain)?;
            caller.audit(&state, "alert", &opened).await;
            for ev in opened {
                if let Some(t) = ev.data.get("text").and_then(Value::as_str) {
                    texts.push(t.to_owned());
                    shown.push(json!({
                        "complaint": ev.data.get("complaint_id"),
                        "customer": ev.customer,
                        "occurred_at": ev.occurred_at,
                        "text": t,
                    }));
                }
            }
        }
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        (
            Some(warnings::shared_phrases(&refs, PHRASES_MAX)),
            Some(shown),
        )
    } else {
        (None, None)
    };
    v["evidence"]["shared_phrases"] = json!(phrases);
    v["evidence"]["complaint_texts"] = json!(complaint_texts);
    Ok(Json(v))
}

/// The connected customers of an alert as a graph: each customer of its timeline in the
/// order they first appear (the step at which a replay shows them), and the ties among
/// them. A network's alert draws its first agents and who recruited whom.
fn graph(st: &rapport_projections::ReadState, alert: &Alert) -> Value {
    let mut nodes: Vec<Value> = vec![];
    let mut people: Vec<String> = vec![];
    for (step, t) in alert.evidence.timeline.iter().enumerate() {
        if !people.contains(&t.customer) {
            people.push(t.customer.clone());
            nodes.push(
                json!({"customer": t.customer, "step": step + 1, "position": t.position,
                "at": t.at, "what": t.what}),
            );
        }
    }
    if alert.kind == Kind::PyramidRisk {
        for c in alert.customers.iter().take(GRAPH_NODES_MAX) {
            people.push(c.clone());
            nodes.push(json!({"customer": c, "step": Value::Null, "what": "agent"}));
        }
        let edges: Vec<Value> = people
            .iter()
            .filter_map(|a| {
                let up = st.agents.agent(a)?.upline.as_ref()?;
                people
                    .contains(up)
                    .then(|| json!({"a": up, "b": a, "tie": "recruited"}))
            })
            .collect();
        return json!({"nodes": nodes, "edges": edges, "steps": 0});
    }
    let edges = st.warnings.ties_among(&people, &st.customers);
    json!({"nodes": nodes, "edges": edges, "steps": alert.evidence.timeline.len()})
}

/// `GET /v1/alerts/verdicts`: the detector's precision on staff's verdicts, per level.
pub(crate) async fn verdicts(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<AlertQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(READERS)?;
    let Query(q) = q.map_err(ApiError::query)?;
    super::query::wait_min_position(&state, q.min_position).await?;
    let st = state.read_model.state.read().await;
    Ok(Json(json!({
        "verdicts": st.warnings.verdicts(),
        "position": st.position(),
    })))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubscribeQuery {
    after: Option<u64>,
}

/// `GET /v1/alerts/subscribe?after=SEQ` (SSE): every alert change after `after` (or the
/// `Last-Event-ID`), then live; each event is `alert` with the change and the alert as it
/// is now.
pub(crate) async fn subscribe(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    q: Result<Query<SubscribeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(READERS)?;
    let Query(q) = q.map_err(ApiError::query)?;
    let after = super::feed::cursor(q.after, &headers);
    let guard = super::feed::FeedCounts::enter(&state.feeds, &caller.key_id)?;
    super::feed::live(
        state,
        guard,
        after,
        "list the alerts and follow from their `last_change`",
        Box::new(|st, cursor| {
            let changes = st
                .warnings
                .changes_after(cursor, super::feed::FEED_BATCH_CHANGES)?;
            Ok(changes
                .into_iter()
                .map(|c| {
                    let body = json!({"change": c, "alert": st.warnings.get(&c.alert)});
                    let ev = SseEvent::default()
                        .event("alert")
                        .id(c.seq.to_string())
                        .json_data(&body)
                        .unwrap_or_else(|_| SseEvent::default().event("error"));
                    (c.seq, Some(ev))
                })
                .collect())
        }),
    )
    .await
}
