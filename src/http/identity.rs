//! Identity over HTTP: finding customers by an identifier, staff's merges and unmerges,
//! the identity rules, and the `person` part of a profile (see
//! `projections/src/customers/identity.rs` for how ids become one person).

use std::collections::BTreeSet;

use axum::{
    body::Bytes,
    extract::{Path, State},
    Json,
};
use rapport_events::{
    data::{EventData, IdentifierKind},
    EventType, Subject,
};
use rapport_projections::{
    customers::{Cause, Refusal},
    Customers,
};
use serde_json::{json, Value};

use super::{
    workflow::{caught_up, payload, record, RESPONDERS},
    ApiError, AppState, Caller, READERS,
};
use crate::{auth::Role, store::ExpectedVersion};

/// `kind:value` (`phone:+8613800138000`) as a kind and a value.
pub(super) fn parse_identifier(s: &str) -> Result<(IdentifierKind, &str), ApiError> {
    let kinds = || {
        IdentifierKind::ALL
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (kind, value) = s.split_once(':').ok_or_else(|| {
        ApiError::bad(
            "identifier",
            format!("must be `kind:value` with a kind among {}", kinds()),
        )
    })?;
    let kind = IdentifierKind::parse(kind).ok_or_else(|| {
        ApiError::bad("identifier", format!("the kind must be one of {}", kinds()))
    })?;
    kind.normalise(value)
        .map_err(|why| ApiError::bad("identifier", format!("the value {why}")))?;
    Ok((kind, value))
}

/// The people holding an identifier: their ids (roots), sorted. Only support and admin
/// may look customers up by what identifies them.
pub(super) fn lookup(
    state: &AppState,
    caller: &Caller,
    c: &Customers,
    identifier: &str,
) -> Result<BTreeSet<String>, ApiError> {
    if !matches!(caller.role, Role::Support | Role::Admin) {
        return Err(ApiError::Forbidden(
            "finding customers by an identifier needs the support or admin role".into(),
        ));
    }
    let (kind, value) = parse_identifier(identifier)?;
    let Some(index) = state.log.blind_index(kind, value) else {
        return Ok(BTreeSet::new());
    };
    Ok(c.identity()
        .holders(&index)
        .iter()
        .filter_map(|&n| c.person_by_number(n))
        .map(|p| p.id.to_string())
        .collect())
}

/// Who customer `id` is: the person's id, its ids, and every link among them with its
/// cause (staff, or a shared identifier's kind) and, for a link not made, why.
pub(super) fn person_json(c: &Customers, id: &str) -> Value {
    let Some(n) = c.number(id) else {
        return Value::Null;
    };
    let members = c.identity().members_of(n);
    let name = |m: u32| c.by_number(m).map(|p| p.id.to_string());
    let links: Vec<Value> = c
        .identity()
        .links_of(&members)
        .map(|l| {
            let cause = match &l.cause {
                Cause::Staff { by } => json!({"rule": "staff_merge", "by": by}),
                Cause::Shared { kind, .. } => json!({"rule": "shared_identifier", "kind": kind}),
            };
            let refused = l.refused.as_ref().map(|r| match r {
                Refusal::Limit { kind, limit } => {
                    json!({"reason": "limit", "kind": kind, "limit": limit})
                }
                Refusal::Unmerged { position } => {
                    json!({"reason": "unmerged", "position": position})
                }
                Refusal::Blocked => json!({"reason": "blocked"}),
                Refusal::Ambiguous => json!({"reason": "ambiguous"}),
            });
            json!({
                "customer": name(l.a),
                "other": name(l.b),
                "position": l.position,
                "cause": cause,
                "joined": refused.is_none(),
                "refused": refused,
            })
        })
        .collect();
    let root = c.person_id(id);
    json!({
        "id": root,
        "ids": c.person_ids(id),
        "merged_into": (root != id).then_some(root),
        "links": links,
    })
}

/// Both customers must be known to the read model.
fn known(c: &Customers, field: &str, id: &str) -> Result<(), ApiError> {
    match c.number(id) {
        Some(_) => Ok(()),
        None if field.is_empty() => Err(ApiError::NotFound(format!("no customer `{id}`"))),
        None => Err(ApiError::bad(field, format!("no customer `{id}`"))),
    }
}

/// `POST /v1/customers/{id}/merge` `{"merged": ID, "reason": …}`: staff say `merged` is
/// the same person as `id`, who survives.
pub(crate) async fn merge(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    between(state, caller, id, body, EventType::CustomersMerged).await
}

/// `POST /v1/customers/{id}/unmerge` `{"other": ID, "reason": …}`: staff say the two are
/// different people; they stay apart from now on.
pub(crate) async fn unmerge(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    between(state, caller, id, body, EventType::CustomersUnmerged).await
}

/// Records staff's merge or unmerge of customer `id` and another: both must be known, and
/// a merge must join two people.
async fn between(
    state: AppState,
    caller: Caller,
    id: String,
    body: Bytes,
    ty: EventType,
) -> Result<Json<Value>, ApiError> {
    caller.require(RESPONDERS)?;
    let data = payload(ty, &body, &caller)?;
    let (field, other) = match &data {
        EventData::CustomersMerged(d) => ("/merged", d.merged.as_str()),
        EventData::CustomersUnmerged(d) => ("/other", d.other.as_str()),
        _ => unreachable!("decoded as a merge or an unmerge"),
    };
    if other == id {
        return Err(ApiError::bad(field, "must be another customer"));
    }
    caught_up(&state).await?;
    {
        let st = state.read_model.state.read().await;
        let c = &st.customers;
        known(c, "", &id)?;
        known(c, field, other)?;
        if ty == EventType::CustomersMerged && c.person_id(&id) == c.person_id(other) {
            return Err(ApiError::Conflict {
                code: "already_one_person",
                message: format!("`{other}` and `{id}` are already one person"),
            });
        }
    }
    let out = record(&state, Subject::Customer(id), data, ExpectedVersion::Any).await?;
    Ok(Json(out))
}

/// `GET /v1/identity/rules`: the rules in force (blocked values by their hint only).
pub(crate) async fn get_rules(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(READERS)?;
    let st = state.read_model.state.read().await;
    let cfg = &st.customers.identity().config;
    Ok(Json(json!({
        "kinds": cfg.kinds,
        "blocked": cfg.blocked.len(),
        "defined_position": (cfg.defined_position > 0).then_some(cfg.defined_position),
    })))
}

/// `PUT /v1/identity/rules` (admin): `{"kinds": {KIND: {merge, limit, priority}},
/// "blocked": [{"kind", "value"}]}`. Recorded as `identity_rules_defined`; the values
/// are kept only as blind indexes and hints.
pub(crate) async fn put_rules(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require(&[Role::Admin])?;
    let data = payload(EventType::IdentityRulesDefined, &body, &caller)?;
    let out = record(
        &state,
        Subject::Rules("identity".into()),
        data,
        ExpectedVersion::Any,
    )
    .await?;
    Ok(Json(out))
}
