//! `/v1/events` and `/v1/streams`: append, read, subscribe.

use std::{convert::Infallible, time::Duration};

use axum::{
    body::Body,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{
        sse::{Event as SseEvent, KeepAlive, Sse},
        IntoResponse, Response,
    },
    Json,
};
use futures::StreamExt;
use rapport_events::{cloudevents, Event, EventType, ValidationErrors};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, AppState, Caller, BODY_BYTES_MAX, READERS};
use crate::{
    auth::Role,
    store::{ExpectedVersion, APPEND_EVENTS_MAX, READ_EVENTS_MAX},
};

/// Bodies larger than this are parsed off the async workers.
const INLINE_PARSE_BYTES_MAX: usize = 64 * 1024;
/// Default page size of reads.
const READ_EVENTS_DEFAULT: usize = 100;

#[derive(Deserialize, schemars::JsonSchema)]
pub(crate) struct AppendQuery {
    /// The stream to append to (all events of the request must belong to it).
    stream: Option<String>,
    /// `any`, `no_stream`, or the stream's current version.
    #[schemars(regex(pattern = r"^(any|no_stream|[0-9]+)$"))]
    expected_version: Option<String>,
}

#[derive(Clone, Copy)]
enum BodyFormat {
    Json,
    Ndjson,
    CloudEvent,
    CloudEventBatch,
}

fn body_format(headers: &HeaderMap) -> Result<BodyFormat, ApiError> {
    let ct = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let base = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match base.as_str() {
        "application/json" | "" => Ok(BodyFormat::Json),
        "application/x-ndjson" | "application/ndjson" | "application/jsonl" => Ok(BodyFormat::Ndjson),
        "application/cloudevents+json" => Ok(BodyFormat::CloudEvent),
        "application/cloudevents-batch+json" => Ok(BodyFormat::CloudEventBatch),
        other => Err(ApiError::UnsupportedMediaType(format!(
            "content type `{other}` is not accepted; use application/json, application/x-ndjson, application/cloudevents+json or application/cloudevents-batch+json"
        ))),
    }
}

fn parse_body(
    text: &str,
    format: BodyFormat,
    ids: &super::IdGen,
) -> Result<Vec<Event>, ValidationErrors> {
    let mut next = || ids();
    match format {
        BodyFormat::Json => rapport_events::parse_batch(text, false, &mut next, false),
        BodyFormat::Ndjson => rapport_events::parse_batch(text, true, &mut next, false),
        BodyFormat::CloudEvent => cloudevents::parse_one(text, &mut next).map(|e| vec![e]),
        BodyFormat::CloudEventBatch => cloudevents::parse_batch(text, &mut next),
    }
}

/// Reads the body up to [`BODY_BYTES_MAX`], answering 413 beyond.
async fn body_text(body: Body) -> Result<String, ApiError> {
    let bytes = axum::body::to_bytes(body, BODY_BYTES_MAX)
        .await
        .map_err(|_| ApiError::TooLarge(format!("the body is larger than the limit of {BODY_BYTES_MAX} bytes; split it into several requests")))?;
    String::from_utf8(bytes.to_vec()).map_err(|_| ApiError::bad("/", "the body must be UTF-8"))
}

/// What the support role may append: a complaint's resolution (with the customer's
/// satisfaction), outreach made, and consent the customer gave or withdrew.
const SUPPORT_MAY_RECORD: &[EventType] = &[
    EventType::ComplaintResolved,
    EventType::Contacted,
    // A customer who calls to stop (or start) receiving offers.
    EventType::ConsentGiven,
    EventType::ConsentWithdrawn,
];

pub(crate) async fn append(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<AppendQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Ingest, Role::Admin, Role::Support])?;
    let Query(q) = q.map_err(ApiError::query)?;
    // Whether a stream is at a version says how many events a customer has: only for
    // those who may read the stream.
    if caller.role == Role::Ingest && q.expected_version.is_some() {
        return Err(ApiError::Forbidden(
            "expected_version: an ingest key cannot read streams, so it cannot state their version; append without it, or with a support or admin key".into(),
        ));
    }
    let format = body_format(&headers)?;
    let expected = match &q.expected_version {
        Some(v) => Some(
            v.parse::<ExpectedVersion>()
                .map_err(|m| ApiError::bad("expected_version", m))?,
        ),
        None => None,
    };
    let text = body_text(body).await?;
    let array = text.trim_start().starts_with('[');
    let events = if text.len() > INLINE_PARSE_BYTES_MAX {
        let ids = state.ids.clone();
        tokio::task::spawn_blocking(move || parse_body(&text, format, &ids))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
    } else {
        parse_body(&text, format, &state.ids)
    }
    .map_err(ApiError::Invalid)?;
    if events.is_empty() {
        return Err(ApiError::bad("/", "the body holds no events"));
    }
    // A body of one event names its fields from the root; a batch by index.
    let one = events.len() == 1
        && !matches!(format, BodyFormat::Ndjson | BodyFormat::CloudEventBatch)
        && !array;
    rapport_events::envelope::check_not_ahead(&events, chrono::Utc::now(), |i| {
        if one {
            String::new()
        } else {
            format!("/{i}")
        }
    })
    .map_err(ApiError::Invalid)?;
    if caller.role == Role::Support {
        // Support records what it did with customers, nothing else.
        if let Some((i, e)) = events
            .iter()
            .enumerate()
            .find(|(_, e)| !SUPPORT_MAY_RECORD.contains(&e.data.event_type()))
        {
            return Err(ApiError::Forbidden(format!(
                "/{i}/type: the support role records {} only; `{}` needs an ingest or admin key",
                SUPPORT_MAY_RECORD
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(" and "),
                e.data.event_type()
            )));
        }
    }
    if events.len() > APPEND_EVENTS_MAX {
        return Err(ApiError::bad(
            "/",
            format!(
                "a batch may hold at most {APPEND_EVENTS_MAX} events; this one has {}",
                events.len()
            ),
        ));
    }
    let stream = match (&q.stream, expected) {
        (Some(s), _) => Some(s.clone()),
        (None, Some(_)) => {
            let first = events[0].stream();
            if events.iter().any(|e| e.stream() != first) {
                return Err(ApiError::bad(
                    "stream",
                    "expected_version needs all events in one stream; name it with `stream`",
                ));
            }
            Some(first)
        }
        (None, None) => None,
    };
    if let Some(s) = &stream {
        if let Some((i, e)) = events.iter().enumerate().find(|(_, e)| &e.stream() != s) {
            return Err(ApiError::bad(
                &format!("/{i}/customer"),
                format!("the event belongs to stream `{}`, not `{s}`", e.stream()),
            ));
        }
    }
    if stream.is_none() && !state.log.atomic_across_streams() {
        let first = events[0].stream();
        if let Some((i, e)) = events.iter().enumerate().find(|(_, e)| e.stream() != first) {
            return Err(ApiError::bad(
                &format!("/{i}/customer"),
                format!(
                    "this store (KurrentDB) commits one stream atomically, and a batch is all or nothing: \
                     the event belongs to stream `{}`, the batch began with `{first}`; send one stream per batch \
                     (Kafka ingest has no such limit)",
                    e.stream()
                ),
            ));
        }
    }
    let rules = match stream {
        Some(s) => crate::log::AppendRules::in_stream(s, expected.unwrap_or(ExpectedVersion::Any)),
        None => crate::log::AppendRules::all_or_nothing(),
    };
    let appended = if caller.role == Role::Ingest {
        append_blind(&state, &caller, events, rules).await?
    } else {
        state.log.append(&events, rules).await?
    };
    let positions: Vec<u64> = appended.iter().map(|a| a.position).collect();
    let status = if appended.iter().all(|a| a.duplicate) {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(json!({"positions": positions, "events": appended, "last_position": state.log.last_position()}))).into_response())
}

/// Appends for a key that cannot read: an id already stored with other content is
/// answered as the duplicate it would be with the same content (the stored event kept,
/// the rest of the batch written), so that re-sending an id with a guessed name cannot
/// tell whether the guess was right. Operators see it in the log.
async fn append_blind(
    state: &AppState,
    caller: &Caller,
    mut events: Vec<Event>,
    rules: crate::log::AppendRules,
) -> Result<Vec<crate::store::Appended>, ApiError> {
    use crate::store::{Appended, StoreError};
    let ids: Vec<uuid::Uuid> = events.iter().map(|e| e.id).collect();
    let mut kept: Vec<Appended> = Vec::new();
    // Each round sets aside at least one event, so this ends.
    let appended = loop {
        match state.log.append(&events, rules.clone()).await {
            Ok(a) => break a,
            Err(StoreError::IdConflict { id, position }) => {
                let stored = state.log.read_at(&[position]).await?;
                // Two events of this batch with one id: the client's own contradiction.
                let Some(s) = stored.into_iter().find(|s| s.event.id == id) else {
                    return Err(StoreError::IdConflict { id, position }.into());
                };
                tracing::warn!(key = %caller.key_id, %id, position, "an ingest key re-sent a stored id with other content; the stored event was kept");
                kept.push(Appended {
                    id,
                    position,
                    stream: s.event.stream,
                    stream_version: s.stream_version,
                    duplicate: true,
                });
                events.retain(|e| e.id != id);
                if events.is_empty() {
                    break Vec::new();
                }
            }
            Err(e) => return Err(e.into()),
        }
    };
    if kept.is_empty() {
        return Ok(appended);
    }
    // In the order the events were sent.
    let order: std::collections::HashMap<uuid::Uuid, usize> = ids
        .iter()
        .enumerate()
        .rev()
        .map(|(i, id)| (*id, i))
        .collect();
    let mut all: Vec<Appended> = appended.into_iter().chain(kept).collect();
    all.sort_by_key(|a| order.get(&a.id).copied());
    Ok(all)
}

#[derive(Deserialize, schemars::JsonSchema)]
pub(super) struct ReadAllQuery {
    /// Events after this log position.
    #[serde(default)]
    after: u64,
    #[schemars(range(min = 1, max = READ_EVENTS_MAX))]
    limit: Option<usize>,
}

fn check_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(READ_EVENTS_DEFAULT),
        Some(0) => Err(ApiError::bad("limit", "must be at least 1")),
        Some(n) if n > READ_EVENTS_MAX => Err(ApiError::bad(
            "limit",
            format!("must be at most {READ_EVENTS_MAX}"),
        )),
        Some(n) => Ok(n),
    }
}

pub(super) async fn read_all(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<ReadAllQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(READERS)?;
    let Query(q) = q.map_err(ApiError::query)?;
    let limit = check_limit(q.limit)?;
    // Past the log's end there is nothing to read (and a position past 2^63 is no
    // SQLite integer).
    let stored = if q.after >= state.log.last_position() {
        Vec::new()
    } else {
        state.log.read_all(q.after, limit).await?
    };
    let events = state.log.open_all(stored, caller.access())?;
    caller.audit(&state, "events", &events).await;
    let next_after = events.last().map_or(q.after, |e| e.position);
    Ok(Json(
        json!({"events": events, "next_after": next_after, "last_position": state.log.last_position()}),
    ))
}

#[derive(Deserialize, schemars::JsonSchema)]
pub(super) struct ReadStreamQuery {
    #[serde(default)]
    from_version: u64,
    #[schemars(range(min = 1, max = READ_EVENTS_MAX))]
    limit: Option<usize>,
}

pub(super) async fn read_stream(
    State(state): State<AppState>,
    caller: Caller,
    Path(stream): Path<String>,
    q: Result<Query<ReadStreamQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(READERS)?;
    let Query(q) = q.map_err(ApiError::query)?;
    let limit = check_limit(q.limit)?;
    let stored = state
        .log
        .read_stream(&stream, q.from_version, limit)
        .await?;
    if stored.is_empty() && q.from_version == 0 {
        return Err(ApiError::NotFound(format!(
            "stream `{stream}` has no events"
        )));
    }
    let events = state.log.open_all(stored, caller.access())?;
    caller.audit(&state, "events", &events).await;
    let next = events
        .last()
        .map_or(q.from_version, |e| e.stream_version + 1);
    Ok(Json(
        json!({"stream": stream, "events": events, "next_from_version": next}),
    ))
}

#[derive(Deserialize, schemars::JsonSchema)]
pub(super) struct SubscribeQuery {
    after: Option<u64>,
}

/// Server-Sent Events: catch-up from `after` (or `Last-Event-ID`), then live. Each SSE
/// event has `id` = position, so a reconnecting client resumes with no gap.
pub(super) async fn subscribe(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    q: Result<Query<SubscribeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(READERS)?;
    let Query(q) = q.map_err(|e| ApiError::bad("after", e.body_text()))?;
    let after = super::feed::cursor(q.after, &headers);
    let guard = super::feed::FeedCounts::enter(&state.feeds, &caller.key_id)?;
    let log = state.log.clone();
    let access = caller.access();
    let stream = state.log.subscribe(after).map(move |r| {
        // Held while the stream lives.
        let _held = &guard;
        let ev = match r.and_then(|s| log.open(s, access)) {
            Ok(ev) => SseEvent::default()
                .event("event")
                .id(ev.position.to_string())
                .json_data(&ev)
                .unwrap_or_else(|_| SseEvent::default().event("error")),
            Err(e) => {
                tracing::error!(error = %e, "subscription read failed");
                SseEvent::default()
                    .event("error")
                    .data("read failed; reconnect with Last-Event-ID")
            }
        };
        Ok::<_, Infallible>(ev)
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
