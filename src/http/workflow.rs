//! What support staff do with alerts over HTTP: acknowledge, resolve, assign, review and
//! merge. Each is one operator event in the alert's stream `alert-<id>`, stamped with the
//! caller's key id, so the workflow replays and audits like everything else.

use axum::{
    body::Bytes,
    extract::{Path, State},
    Json,
};
use chrono::Utc;
use rapport_events::{data::EventData, Event, EventType, Subject};
use rapport_projections::warnings::Status;
use serde_json::{json, Value};

use super::{ApiError, AppState, Caller};
use crate::{auth::Role, store::ExpectedVersion};

/// Who may work alerts and problems.
pub(super) const RESPONDERS: &[Role] = &[Role::Support, Role::Admin];

/// Appends one operator event about `subject` and answers where it landed.
pub(super) async fn record(
    state: &AppState,
    subject: Subject,
    data: EventData,
    expected: ExpectedVersion,
) -> Result<Value, ApiError> {
    let (id, stream) = (subject.id().to_owned(), subject.stream());
    let ty = data.event_type();
    let event = Event {
        id: (state.ids)(),
        data,
        customer: id.clone(),
        // When staff acted: an operator event never moves the projections' clock.
        occurred_at: Utc::now(),
        metadata: Default::default(),
    };
    let appended = state
        .log
        .append(
            &[event],
            crate::log::AppendRules::in_stream(stream, expected),
        )
        .await?;
    tracing::info!(subject = %id, action = %ty, "staff action recorded");
    let a = &appended[0];
    Ok(json!({"subject": id, "type": ty, "position": a.position, "event_id": a.id}))
}

/// The body as the payload of a `ty` event, with `requested_by` set to the caller: field
/// errors name the body's field (`/reason`). An empty body is `{}`.
pub(super) fn payload(ty: EventType, body: &Bytes, caller: &Caller) -> Result<EventData, ApiError> {
    let mut v: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad("/", format!("the body must be a JSON object: {e}")))?
    };
    let Some(obj) = v.as_object_mut() else {
        return Err(ApiError::bad("/", "the body must be a JSON object"));
    };
    if obj.contains_key("requested_by") {
        return Err(ApiError::bad(
            "/requested_by",
            "is set by Rapport to the caller's key id",
        ));
    }
    obj.insert("requested_by".into(), caller.key_id.clone().into());
    EventData::decode(ty, 1, &v.to_string()).map_err(ApiError::Invalid)
}

/// Waits until the read model holds everything appended before this request, so an
/// action checked against it sees what the caller just wrote (a problem opened a moment
/// ago, an alert just raised).
pub(super) async fn caught_up(state: &AppState) -> Result<(), ApiError> {
    super::query::wait_min_position(state, Some(state.log.last_position())).await
}

/// The alert's status, or 404.
async fn alert_status(state: &AppState, id: &str) -> Result<Status, ApiError> {
    state
        .read_model
        .state
        .read()
        .await
        .warnings
        .get(id)
        .map(|a| a.status)
        .ok_or_else(|| ApiError::NotFound(format!("no alert `{id}`")))
}

async fn act(
    state: AppState,
    caller: Caller,
    id: String,
    body: Bytes,
    ty: EventType,
) -> Result<Json<Value>, ApiError> {
    caller.require(RESPONDERS)?;
    let data = payload(ty, &body, &caller)?;
    caught_up(&state).await?;
    if alert_status(&state, &id).await? == Status::Merged {
        return Err(ApiError::Conflict {
            code: "alert_merged",
            message: format!("alert `{id}` was merged into another; act on that one"),
        });
    }
    match &data {
        EventData::AlertAssigned(a) => check_assignee(&state, &a.assignee)?,
        EventData::AlertMerged(m) => check_merge(&state, &id, &m.into).await?,
        _ => {}
    }
    let out = record(&state, Subject::Alert(id), data, ExpectedVersion::Any).await?;
    Ok(Json(out))
}

/// The assignee must be a support or admin key that is not revoked.
fn check_assignee(state: &AppState, assignee: &str) -> Result<(), ApiError> {
    let keys = state.keys.list()?;
    match keys.iter().find(|k| k.id == assignee) {
        Some(k) if k.revoked_at.is_none() && RESPONDERS.contains(&k.role) => Ok(()),
        Some(_) => Err(ApiError::bad(
            "/assignee",
            "must be a support or admin key that is not revoked",
        )),
        None => Err(ApiError::bad(
            "/assignee",
            format!("no API key `{assignee}`; see GET /v1/keys"),
        )),
    }
}

async fn check_merge(state: &AppState, id: &str, into: &str) -> Result<(), ApiError> {
    let st = state.read_model.state.read().await;
    let Some(target) = st.warnings.get(into) else {
        return Err(ApiError::bad("/into", format!("no alert `{into}`")));
    };
    if into == id || st.warnings.live_id(into) == id {
        return Err(ApiError::bad(
            "/into",
            "an alert cannot be merged into itself",
        ));
    }
    if target.status == Status::Merged {
        return Err(ApiError::bad(
            "/into",
            format!(
                "alert `{into}` was itself merged into `{}`; merge into that one",
                st.warnings.live_id(into)
            ),
        ));
    }
    Ok(())
}

macro_rules! alert_action {
    ($($name:ident => $ty:ident, $doc:literal;)*) => {$(
        #[doc = $doc]
        pub(crate) async fn $name(
            State(state): State<AppState>,
            caller: Caller,
            Path(id): Path<String>,
            body: Bytes,
        ) -> Result<Json<Value>, ApiError> {
            act(state, caller, id, body, EventType::$ty).await
        }
    )*};
}

alert_action! {
    acknowledge => AlertAcknowledged, "`POST /v1/alerts/{id}/acknowledge` `{note?}`.";
    resolve => AlertResolved, "`POST /v1/alerts/{id}/resolve` `{note?}`.";
    assign => AlertAssigned, "`POST /v1/alerts/{id}/assign` `{assignee, note?}`: the assignee is a support or admin key id.";
    review => AlertReviewed, "`POST /v1/alerts/{id}/review` `{verdict, reason}`: `confirmed` or `not_group_complaint`.";
    merge => AlertMerged, "`POST /v1/alerts/{id}/merge` `{into, note?}`: this alert joins `into`.";
}
