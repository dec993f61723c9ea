//! Rule-based segments over HTTP: define, redefine and retire (operator events in the
//! segment's own stream `segment-<id>`), list, members (JSON and CSV) and the feed of
//! membership changes (SSE).

use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::{header, HeaderMap, StatusCode},
    response::{sse::Event as SseEvent, IntoResponse, Response},
    Json,
};
use chrono::Utc;
use rapport_events::{
    data::{EventData, SegmentRetired},
    Event, EventType, Subject,
};
use rapport_projections::Profile;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    query::{page_limit, query, view, Q},
    ApiError, AppState, Caller, READERS,
};
use crate::{auth::Role, store::ExpectedVersion};

/// Who may define and retire segments.
const DEFINERS: &[Role] = &[Role::Analyst, Role::Admin];
/// Longest segment id, in bytes.
const SEGMENT_ID_LEN_MAX: usize = 64;

/// Membership is a fold over events, so the past is asked for with `as_of_position`,
/// `known_at` or `valid_at`; a bare `as_of` would suggest a re-evaluation it is not.
fn refuse_as_of(q: &super::query::ReadQuery) -> Result<(), ApiError> {
    if q.as_of.is_some() {
        return Err(ApiError::bad(
            "as_of",
            "segment membership is a fold over events: ask for the past with as_of_position, known_at or valid_at",
        ));
    }
    Ok(())
}

pub(super) fn check_id(id: &str) -> Result<(), ApiError> {
    let ok = !id.is_empty()
        && id.len() <= SEGMENT_ID_LEN_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad(
            "/id",
            format!("must be 1 to {SEGMENT_ID_LEN_MAX} characters of a-z, 0-9, - and _"),
        ))
    }
}

/// Appends one operator event about a segment and answers where it landed.
async fn append_segment_event(
    state: &AppState,
    id: &str,
    data: EventData,
    expected: ExpectedVersion,
) -> Result<Value, ApiError> {
    let event = Event {
        id: (state.ids)(),
        data,
        customer: id.to_owned(),
        // When staff acted: an operator event never moves the projections' clock.
        occurred_at: Utc::now(),
        metadata: Default::default(),
    };
    let stream = Subject::Segment(id.to_owned()).stream();
    let appended = state
        .log
        .append(
            &[event],
            crate::log::AppendRules::in_stream(stream, expected),
        )
        .await?;
    let a = &appended[0];
    Ok(json!({"segment": id, "position": a.position, "event_id": a.id}))
}

/// Decodes a definition body (`name`, `description`, `rule`, and for POST `id`).
fn definition(
    body: &Bytes,
    caller: &Caller,
    id_in_body: bool,
) -> Result<(Option<String>, EventData), ApiError> {
    let mut v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad("/", format!("the body must be a JSON object: {e}")))?;
    let Some(obj) = v.as_object_mut() else {
        return Err(ApiError::bad("/", "the body must be a JSON object"));
    };
    let id = match obj.remove("id") {
        Some(Value::String(s)) if id_in_body => Some(s),
        Some(_) if id_in_body => return Err(ApiError::bad("/id", "must be a string")),
        Some(_) => {
            return Err(ApiError::bad(
                "/id",
                "the id is in the path here; leave it out of the body",
            ))
        }
        None => None,
    };
    obj.insert("requested_by".into(), caller.key_id.clone().into());
    let data = EventData::decode(EventType::SegmentDefined, 1, &v.to_string())
        .map_err(ApiError::Invalid)?;
    Ok((id, data))
}

/// `POST /v1/segments`: defines a new segment (409 if the id is taken).
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(DEFINERS)?;
    let (id, data) = definition(&body, &caller, true)?;
    let id = id.unwrap_or_else(|| format!("seg-{}", (state.ids)().simple()));
    check_id(&id)?;
    let out = append_segment_event(&state, &id, data, ExpectedVersion::NoStream)
        .await
        .map_err(|e| match e {
            ApiError::Conflict { .. } => ApiError::Conflict {
                code: "segment_exists",
                message: format!(
                    "segment `{id}` already exists; PUT /v1/segments/{id} redefines it"
                ),
            },
            e => e,
        })?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// `PUT /v1/segments/{id}`: defines or redefines a segment (a new revision).
pub(super) async fn redefine(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require(DEFINERS)?;
    check_id(&id)?;
    let (_, data) = definition(&body, &caller, false)?;
    Ok(Json(
        append_segment_event(&state, &id, data, ExpectedVersion::Any).await?,
    ))
}

/// `DELETE /v1/segments/{id}`: retires a segment; every member exits.
pub(super) async fn retire(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(DEFINERS)?;
    let exists = state
        .read_model
        .state
        .read()
        .await
        .segments
        .get(&id)
        .is_some();
    if !exists {
        return Err(ApiError::NotFound(format!("no segment `{id}`")));
    }
    let data = EventData::SegmentRetired(SegmentRetired {
        requested_by: Some(caller.key_id.clone()),
    });
    Ok(Json(
        append_segment_event(&state, &id, data, ExpectedVersion::Any).await?,
    ))
}

fn segment_json(d: &rapport_projections::segments::SegmentDef, members: usize) -> Value {
    json!({
        "id": d.id,
        "name": d.name,
        "description": d.description,
        "rule": d.rule,
        "revision": d.revision,
        "defined_at": d.defined_at,
        "defined_position": d.defined_position,
        "members": members,
    })
}

/// `GET /v1/segments`.
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    q: Q,
) -> Result<Json<Value>, ApiError> {
    caller.require(READERS)?;
    let q = query(q)?;
    refuse_as_of(&q)?;
    let (st, _) = view(&state, &q).await?;
    let segments: Vec<Value> = st
        .segments
        .defs()
        .map(|d| segment_json(d, st.segments.members(&d.id).map_or(0, |m| m.len())))
        .collect();
    Ok(Json(json!({
        "segments": segments,
        "position": st.position(),
        "clock": st.segments.clock(),
        "last_change": st.segments.last_seq(),
    })))
}

/// `GET /v1/segments/{id}`.
pub(crate) async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    q: Q,
) -> Result<Json<Value>, ApiError> {
    caller.require(READERS)?;
    let q = query(q)?;
    refuse_as_of(&q)?;
    let (st, _) = view(&state, &q).await?;
    let d = st
        .segments
        .get(&id)
        .ok_or_else(|| ApiError::NotFound(format!("no segment `{id}`")))?;
    let mut v = segment_json(d, st.segments.members(&id).map_or(0, |m| m.len()));
    v["position"] = json!(st.position());
    v["clock"] = json!(st.segments.clock());
    Ok(Json(v))
}

/// The columns a marketing tool needs (no personal data: ids link back to the CRM).
fn member_row(
    p: &Profile,
    customers: &rapport_projections::Customers,
    state: &AppState,
    now: chrono::DateTime<Utc>,
) -> Value {
    let lc = &state.read_model.lifecycle;
    let revenue = p.net_revenue(now);
    json!({
        "customer": p.id,
        "lifecycle": lc.state(p, now),
        "relationship": lc.relationship(p, now),
        "orders": p.orders_until(now),
        "last_purchase": p.last_purchase_until(now),
        "revenue": revenue,
        "communities": customers.names_of(&p.communities),
        "last_contacted_at": p.last_contacted_at(),
        "marketing_channels": p.marketing_channels(now),
    })
}

/// `GET /v1/segments/{id}/members?format=json|csv&cursor=&limit=`. The cursor is the last
/// customer id of the previous page, so pages stay consistent while membership changes.
/// CSV returns every member (no paging), for import into marketing tools.
pub(crate) async fn members(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    q: Q,
) -> Result<Response, ApiError> {
    caller.require(READERS)?;
    let q = query(q)?;
    refuse_as_of(&q)?;
    let (st, _) = view(&state, &q).await?;
    let members = st
        .segments
        .members(&id)
        .ok_or_else(|| ApiError::NotFound(format!("no segment `{id}`")))?;
    let now = st
        .segments
        .clock()
        .unwrap_or(chrono::DateTime::<Utc>::UNIX_EPOCH);
    // Members are people; with `reachable=true` only those with a marketing channel.
    let reachable = |p: &&rapport_projections::Profile| {
        q.reachable != Some(true) || !p.marketing_channels(now).is_empty()
    };
    let profiles = members
        .iter()
        .filter_map(|m| st.customers.person(m))
        .filter(reachable);
    match q.format.as_deref().unwrap_or("json") {
        "csv" => {
            let mut out = super::query::csv_start(&q);
            out.push_str(
                "customer,lifecycle,relationship,orders,last_purchase,revenue,currency,communities,marketing_channels\n",
            );
            for p in profiles {
                let lc = &state.read_model.lifecycle;
                let revenue = p.net_revenue(now);
                // The currency most of the customer's purchases were in (ties: by code).
                let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
                for m in &p.purchases {
                    *counts.entry(m.currency()).or_default() += 1;
                }
                let main = counts
                    .iter()
                    .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
                    .map(|(c, _)| (*c).to_owned())
                    .unwrap_or_default();
                let communities = st.customers.names_of(&p.communities);
                out.push_str(&format!(
                    "{},{},{},{},{},{},{},{},{}\n",
                    super::query::csv(&p.id),
                    lc.state(p, now).as_str(),
                    json!(lc.relationship(p, now)).as_str().unwrap_or_default(),
                    p.orders_until(now),
                    p.last_purchase_until(now)
                        .map(|t| rapport_events::envelope::format_time(&t))
                        .unwrap_or_default(),
                    revenue
                        .get(&main)
                        .map(|d| d.to_string())
                        .unwrap_or_default(),
                    main,
                    super::query::csv(&communities.join(";")),
                    super::customers::channels_text(&p.marketing_channels(now)),
                ));
            }
            Ok((
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"segment-{id}.csv\""),
                    ),
                ],
                out,
            )
                .into_response())
        }
        "json" => {
            let limit = page_limit(&q)?;
            let after = q.cursor.as_deref();
            let page: Vec<Value> = members
                .iter()
                .filter(|m| after.is_none_or(|a| m.as_str() > a))
                .filter_map(|m| st.customers.person(m))
                .filter(reachable)
                .take(limit)
                .map(|p| member_row(p, &st.customers, &state, now))
                .collect();
            let next = (page.len() == limit)
                .then(|| {
                    page.last()
                        .and_then(|v| v["customer"].as_str())
                        .map(str::to_owned)
                })
                .flatten()
                .filter(|last| {
                    members
                        .range::<str, _>((
                            std::ops::Bound::Excluded(last.as_str()),
                            std::ops::Bound::Unbounded,
                        ))
                        .next()
                        .is_some()
                });
            let total = if q.reachable == Some(true) {
                members
                    .iter()
                    .filter_map(|m| st.customers.person(m))
                    .filter(reachable)
                    .count()
            } else {
                members.len()
            };
            Ok(Json(json!({
                "segment": id,
                "total": total,
                "members": page,
                "next_cursor": next,
                "position": st.position(),
                "clock": st.segments.clock(),
            }))
            .into_response())
        }
        _ => Err(ApiError::bad("format", "must be json or csv")),
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ChangesQuery {
    after: Option<u64>,
    segment: Option<String>,
}

/// `GET /v1/segments/changes?after=SEQ&segment=ID` (SSE): every membership change after
/// `after` (or the `Last-Event-ID`), then live ones. Each SSE event is `change` with the
/// change's `seq` as its id. A cursor older than what is kept answers 410: re-read the
/// members, then follow from `last_change` of `GET /v1/segments`.
pub(super) async fn changes(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    q: Result<Query<ChangesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(READERS)?;
    let Query(q) = q.map_err(ApiError::query)?;
    let after = super::feed::cursor(q.after, &headers);
    let segment = q.segment;
    let guard = super::feed::FeedCounts::enter(&state.feeds, &caller.key_id)?;
    super::feed::live(
        state,
        guard,
        after,
        "re-read the members and follow from `last_change` of GET /v1/segments",
        Box::new(move |st, cursor| {
            let changes = st
                .segments
                .changes_after(cursor, super::feed::FEED_BATCH_CHANGES)?;
            Ok(changes
                .into_iter()
                .map(|c| {
                    let wanted = segment.as_ref().is_none_or(|s| *s == c.segment);
                    let ev = wanted.then(|| {
                        SseEvent::default()
                            .event("change")
                            .id(c.seq.to_string())
                            .json_data(c)
                            .unwrap_or_else(|_| SseEvent::default().event("error"))
                    });
                    (c.seq, ev)
                })
                .collect())
        }),
    )
    .await
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DiffQuery {
    from: String,
    to: Option<String>,
    /// How times in `from`/`to` are read: `occurred` (business time, the default: only
    /// events that occurred by then) or `recorded` (what the system knew then).
    #[schemars(extend("enum" = ["occurred", "recorded"]))]
    basis: Option<String>,
    min_position: Option<u64>,
}

/// `GET /v1/segments/{id}/diff?from=&to=&basis=`: who entered and who left a segment
/// between two points, each a log position or a time.
pub(super) async fn diff(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    q: Result<Query<DiffQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(READERS)?;
    let Query(q) = q.map_err(ApiError::query)?;
    super::query::wait_min_position(&state, q.min_position).await?;
    let recorded = match q.basis.as_deref().unwrap_or("occurred") {
        "occurred" => false,
        "recorded" => true,
        _ => return Err(ApiError::bad("basis", "must be occurred or recorded")),
    };
    let last = state.log.last_position();
    // A point is (position, valid_at).
    let point = |field: &'static str, v: &str| {
        let state = state.clone();
        let v = v.to_owned();
        async move {
            if let Ok(p) = v.parse::<u64>() {
                if p > last {
                    return Err(ApiError::bad(
                        field,
                        format!("is beyond the last position of the log ({last})"),
                    ));
                }
                return Ok::<_, ApiError>((p, None));
            }
            let t = super::query::parse_as_of(&v).map_err(|_| {
                ApiError::bad(
                    field,
                    "must be a log position or an RFC 3339 time or a date YYYY-MM-DD",
                )
            })?;
            if recorded {
                Ok((
                    crate::fold::time_travel::position_known_at(&state.log, t).await?,
                    None,
                ))
            } else {
                Ok((last, Some(t)))
            }
        }
    };
    let from = point("from", &q.from).await?;
    let to = match &q.to {
        Some(t) => point("to", t).await?,
        None => (last, None),
    };
    // The two states are built at once, on two cores when there are.
    let model = state.read_model.clone();
    let a = tokio::spawn(async move { model.time_travel.state_at(from.0, from.1).await });
    let b = state.read_model.time_travel.state_at(to.0, to.1).await;
    let a = a.await.map_err(|e| {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic());
        }
        ApiError::Internal("the past state's task was cancelled".into())
    })??;
    let b = b?;
    if a.segments.get(&id).is_none() && b.segments.get(&id).is_none() {
        return Err(ApiError::NotFound(format!(
            "segment `{id}` is defined at neither point"
        )));
    }
    let empty = Default::default();
    let ma = a.segments.members(&id).unwrap_or(&empty);
    let mb = b.segments.members(&id).unwrap_or(&empty);
    let entered: Vec<&String> = mb.difference(ma).collect();
    let exited: Vec<&String> = ma.difference(mb).collect();
    let describe = |p: &(u64, Option<chrono::DateTime<Utc>>),
                    s: &rapport_projections::ReadState| {
        json!({"position": p.0, "valid_at": p.1, "clock": s.segments.clock(), "members": s.segments.members(&id).map_or(0, |m| m.len())})
    };
    Ok(Json(json!({
        "segment": id,
        "from": describe(&from, &a),
        "to": describe(&to, &b),
        "entered": entered,
        "exited": exited,
    })))
}
