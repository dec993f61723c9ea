//! An alert's exposure over HTTP: the customers who bought what it is about (its `sku:`,
//! `product:`, `batch:` and `store:` keys) from `exposure_days` before its first complaint until now, and
//! have not complained in it; with the money at stake and their community reach. One call
//! turns the list into a segment (`customer in [...]`), so marketing can reach them before
//! they complain.

use std::collections::BTreeMap;

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use chrono::{DateTime, Duration, Utc};
use rapport_events::{data::EventData, segment::IN_VALUES_MAX, EventType, Subject};
use rapport_projections::{exposure::Exposed, ReadState};
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::{
    query::{csv, csv_start, query, wait_min_position, ReadQuery, Q},
    workflow::record,
    ApiError, AppState, Caller, READERS,
};
use crate::{auth::Role, store::ExpectedVersion};

/// Rows in one JSON answer (the CSV holds them all).
const EXPOSED_PAGE_MAX: usize = 1_000;

/// `POST /v1/alerts/{id}/exposure/segment`: the new segment's id, and its name ("Exposed
/// to <alert>" when absent).
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ExposureSegment {
    id: String,
    name: Option<String>,
}

/// The alert's exposure, read from one state.
struct Exposure {
    keys: Vec<String>,
    since: DateTime<Utc>,
    days: i64,
    rows: Vec<(Exposed, usize, u64)>,
}

fn exposure_of(st: &ReadState, id: &str) -> Result<Exposure, ApiError> {
    let alert = st
        .warnings
        .get(id)
        .ok_or_else(|| ApiError::NotFound(format!("no alert `{id}`")))?;
    // What purchases name; a topic or a text cluster is bought by nobody.
    let keys: Vec<String> = alert
        .keys
        .iter()
        .filter(|k| {
            ["sku:", "product:", "batch:", "store:"]
                .iter()
                .any(|p| k.starts_with(p))
        })
        .cloned()
        .collect();
    let days = st.exposure.days();
    let since = alert.first_complaint_at - Duration::days(days);
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let complained = |c: &str| alert.customers.contains(c);
    let now = st.warnings.clock().unwrap_or(alert.raised_at);
    let rows = st
        .exposure
        .exposed(&refs, since, &complained, &st.customers)
        .into_iter()
        .map(|e| {
            let reach = st.customers.get(&e.customer).map_or((0, 0), |p| {
                (p.communities.len(), st.customers.influence(p, now))
            });
            (e, reach.0, reach.1)
        })
        .collect();
    Ok(Exposure {
        keys,
        since,
        days,
        rows,
    })
}

fn total(rows: &[(Exposed, usize, u64)]) -> BTreeMap<String, Decimal> {
    let mut out: BTreeMap<String, Decimal> = BTreeMap::new();
    for (e, _, _) in rows {
        for (c, a) in &e.amount {
            let sum = out.entry(c.clone()).or_default();
            *sum = sum.checked_add(*a).unwrap_or(*sum);
        }
    }
    out
}

/// `GET /v1/alerts/{id}/exposure[?format=csv]`: support, analysts and admins.
pub(crate) async fn get_exposure(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    q: Q,
) -> Result<Response, ApiError> {
    caller.require(READERS)?;
    let q = query(q)?;
    wait_min_position(&state, q.min_position).await?;
    let st = state.read_model.state.read().await;
    let x = exposure_of(&st, &id)?;
    if q.format.as_deref() == Some("csv") {
        return Ok(csv_answer(&q, &id, &x));
    }
    if let Some(f) = &q.format {
        return Err(ApiError::bad("format", format!("`{f}` is not json or csv")));
    }
    let limit = q.limit.unwrap_or(EXPOSED_PAGE_MAX);
    if limit == 0 || limit > EXPOSED_PAGE_MAX {
        return Err(ApiError::bad(
            "limit",
            format!("must be 1 to {EXPOSED_PAGE_MAX}"),
        ));
    }
    let customers: Vec<Value> = x
        .rows
        .iter()
        .take(limit)
        .map(|(e, communities, influence)| {
            json!({
                "customer": e.customer,
                "last_bought_at": e.last_bought_at,
                "lines": e.lines,
                "amount": e.amount,
                "communities": communities,
                "influence": influence,
            })
        })
        .collect();
    let note = x.keys.is_empty().then_some(
        "this alert is about no SKU, product, batch or store (only a topic or a text), so nobody bought what it is about",
    );
    Ok(Json(json!({
        "alert": id,
        "keys": x.keys,
        "since": x.since,
        "days": x.days,
        "total": x.rows.len(),
        "amount": total(&x.rows),
        "customers": customers,
        "note": note,
        "position": st.position(),
    }))
    .into_response())
}

fn csv_answer(q: &ReadQuery, id: &str, x: &Exposure) -> Response {
    let mut out = csv_start(q);
    out.push_str("customer,last_bought_at,lines,currency,amount,communities,influence\n");
    let none = (String::new(), Decimal::ZERO);
    for (e, communities, influence) in &x.rows {
        let mut money: Vec<(&String, &Decimal)> = e.amount.iter().collect();
        if money.is_empty() {
            money.push((&none.0, &none.1));
        }
        for (currency, amount) in money {
            out.push_str(&format!(
                "{},{},{},{},{},{},{}\n",
                csv(&e.customer),
                e.last_bought_at.to_rfc3339(),
                e.lines,
                csv(currency),
                amount,
                communities,
                influence
            ));
        }
    }
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"exposure-{}.csv\"",
                    id.replace('"', "")
                ),
            ),
        ],
        out,
    )
        .into_response()
}

/// `POST /v1/alerts/{id}/exposure/segment` `{id, name?}`: defines a segment whose members
/// are the alert's exposed customers now (a fixed list: `customer in [...]`).
pub(crate) async fn to_segment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(&[Role::Support, Role::Analyst, Role::Admin])?;
    let body: ExposureSegment = ApiError::json_body(&body)?;
    let segment = body.id;
    super::segments::check_id(&segment)?;
    super::workflow::caught_up(&state).await?;
    let ids: Vec<String> = {
        let st = state.read_model.state.read().await;
        exposure_of(&st, &id)?
            .rows
            .into_iter()
            .map(|(e, _, _)| e.customer)
            .collect()
    };
    if ids.is_empty() {
        return Err(ApiError::Conflict {
            code: "no_exposure",
            message: format!("alert `{id}` has no exposed customers to make a segment of"),
        });
    }
    if ids.len() > IN_VALUES_MAX {
        return Err(ApiError::Conflict {
            code: "exposure_too_large",
            message: format!(
                "{} exposed customers; a segment of named customers holds at most {IN_VALUES_MAX}: use the CSV",
                ids.len()
            ),
        });
    }
    let name = body.name.unwrap_or_else(|| format!("Exposed to {id}"));
    let definition = json!({
        "name": name,
        "description": format!("Customers who bought what alert {id} is about and had not complained when it was made"),
        "rule": {"field": "customer", "op": "in", "value": ids},
        "requested_by": caller.key_id,
    });
    let data = EventData::decode(EventType::SegmentDefined, 1, &definition.to_string())
        .map_err(ApiError::Invalid)?;
    let members = ids.len();
    let out = record(
        &state,
        Subject::Segment(segment.clone()),
        data,
        ExpectedVersion::NoStream,
    )
    .await
    .map_err(|e| match e {
        ApiError::Conflict { .. } => ApiError::Conflict {
            code: "segment_exists",
            message: format!("segment `{segment}` already exists; choose another id"),
        },
        e => e,
    })?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"segment": segment, "members": members, "position": out["position"]})),
    ))
}
