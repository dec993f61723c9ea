//! The read side over HTTP: customer profiles and timelines, lists, RFM, cohorts.
//!
//! Every endpoint accepts `min_position=P` (wait, bounded, until the read model has
//! applied position P; 503 after `ReadModel::min_position_wait`, 5 s by default) and `as_of`
//! (RFC 3339, or a date `YYYY-MM-DD` meaning its first instant, UTC). Without `as_of` the
//! reference time is the `occurred_at` of the latest event applied, never the wall clock.

use axum::{
    extract::{Path, Query, State},
    http::header,
    response::{IntoResponse, Response},
    Json,
};
use chrono::{DateTime, Utc};
use rapport_projections::{cohorts, reactivation, rfm, Lifecycle, Profile};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    query::{csv, currency, page_limit, prepare, query, view, Q},
    ApiError, AppState, Caller, READERS,
};
use crate::log::PersonalAccess;

const FAVOURITES_MAX: usize = 5;

/// Where a profile's identity is in the log: taken from the profile while the read model
/// is locked, read after the lock is given back (the read is IO, and the applier waits for
/// readers).
pub(super) struct IdentityAt {
    positions: Vec<u64>,
    erased: bool,
}

impl IdentityAt {
    /// Reads the identity and puts it into `profile` (from [`profile_json`]).
    pub(super) async fn fill(
        &self,
        state: &AppState,
        caller: &Caller,
        profile: &mut Value,
    ) -> Result<(), ApiError> {
        profile["identity"] = identity(state, caller, self).await?;
        Ok(())
    }
}

/// Identity as the caller may see it, read from the log (projections hold none): the
/// customer's `customer_registered` and `profile_updated` events, opened for the caller.
/// Erased events contribute nothing, so an erased customer's identity is simply absent.
async fn identity(state: &AppState, caller: &Caller, p: &IdentityAt) -> Result<Value, ApiError> {
    if caller.access() == PersonalAccess::Withheld {
        return Ok(json!({"withheld": true}));
    }
    let mut v = json!({});
    let mut traits = serde_json::Map::new();
    let mut identifiers = Vec::new();
    let stored = state.log.read_at(&p.positions).await?;
    let opened = state.log.open_all(stored, caller.access())?;
    caller.audit(state, "profile", &opened).await;
    for ev in opened {
        if ev.event_type == rapport_events::EventType::IdentifierAdded {
            // The value as the caller may see it (a pseudonym for analysts); the blind
            // index is Rapport's own and never shown.
            if let Some(value) = ev.data.get("value") {
                identifiers.push(json!({
                    "kind": ev.data.get("kind"),
                    "value": value,
                    "source": ev.data.get("source"),
                    "customer": ev.customer,
                    "position": ev.position,
                }));
            }
            continue;
        }
        for k in ["name", "email", "phone"] {
            if let Some(x) = ev.data.get(k) {
                v[k] = x.clone();
            }
        }
        if let Some(t) = ev.data.get("traits").and_then(Value::as_object) {
            for (k, x) in t {
                if !rapport_events::personal::NON_PERSONAL_TRAITS.contains(&k.as_str()) {
                    traits.insert(k.clone(), x.clone());
                }
            }
        }
    }
    if !traits.is_empty() {
        v["personal_traits"] = Value::Object(traits);
    }
    if !identifiers.is_empty() {
        v["identifiers"] = Value::Array(identifiers);
    }
    if p.erased {
        v["erased"] = json!(true);
    }
    Ok(v)
}

/// The profile as JSON, with `identity` still to be read: see [`IdentityAt::fill`].
pub(super) fn profile_json(
    state: &AppState,
    c: &rapport_projections::Customers,
    p: &Profile,
    as_of: DateTime<Utc>,
) -> (Value, IdentityAt) {
    let lc = &state.read_model.lifecycle;
    let n = p.orders_until(as_of);
    let mut gross: std::collections::BTreeMap<String, (Decimal, u64)> = Default::default();
    for x in &p.purchases[..n] {
        let e = gross.entry(x.currency().to_owned()).or_default();
        e.0 += x.amount();
        e.1 += 1;
    }
    let aov: std::collections::BTreeMap<_, _> = gross
        .iter()
        .map(|(cur, (sum, k))| (cur.clone(), (sum / Decimal::from(*k)).round_dp(2)))
        .collect();
    let public_traits: std::collections::BTreeMap<&str, &str> = p
        .traits
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .filter(|(k, _)| rapport_events::personal::NON_PERSONAL_TRAITS.contains(k))
        .collect();
    let favourites = |m| {
        c.favourites(m, FAVOURITES_MAX)
            .into_iter()
            .map(|(name, units)| json!({"name": name, "units": units}))
            .collect::<Vec<_>>()
    };
    let at = IdentityAt {
        positions: p.identity_positions().collect(),
        erased: p.erased,
    };
    let v = json!({
        "id": p.id,
        // Whether the customer's personal data was crypto-shredded (their identity then
        // says so too, for every role).
        "erased": p.erased,
        "identity": null,
        "region": c.region(p),
        "channel": c.channel(p),
        "tags": c.names_of(&p.tags),
        "traits": public_traits,
        "first_seen": p.first_seen,
        "last_seen": p.last_seen,
        "first_purchase": p.purchases.first().filter(|x| x.at() <= as_of).map(|x| x.at()),
        "last_purchase": p.last_purchase_until(as_of),
        "orders": n,
        "revenue": p.net_revenue(as_of),
        "average_order_value": aov,
        "favourite_products": favourites(&p.products),
        "favourite_categories": favourites(&p.categories),
        "referrals": {
            "referees": c.referees(p).collect::<Vec<_>>(),
            "referees_who_bought": c.referees_who_bought(p, as_of),
            "referred_by": c.referred_by(p),
        },
        "complaints": {
            "open": p.complaints_open,
            "resolved": p.complaints_resolved,
            "satisfied": p.resolutions_satisfied,
            "unsatisfied": p.resolutions_unsatisfied,
        },
        "community": {
            "communities": c.names_of(&p.communities),
            "posts": p.posts,
            "replies_received": p.replies_received,
            "echoes_received": p.echoes_received,
            "mentions_received": p.mentions_received,
        },
        "outreach": {
            "contacts": p.contacts(),
            "last_contacted_at": p.last_contacted_at(),
            "last_campaign": p.last_campaign(),
            "last_outcome": p.last_outcome(),
        },
        "consent": consent_json(p, as_of),
        "influence": c.influence(p, as_of),
        "lifecycle": lc.state(p, as_of),
        "relationship": lc.relationship(p, as_of),
        "as_of": as_of,
    });
    (v, at)
}

pub(crate) async fn get_customer(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    q: Q,
) -> Result<Json<Value>, ApiError> {
    caller.require(READERS)?;
    let q = query(q)?;
    let (st, as_of) = view(&state, &q).await?;
    let c = &st.customers;
    // The person's profile: every id of it taken together.
    let p = c
        .person(&id)
        .ok_or_else(|| ApiError::NotFound(format!("no customer `{id}`")))?;
    let (mut v, at) = profile_json(&state, c, p, as_of);
    v["person"] = super::identity::person_json(c, &id);
    v["position"] = json!(c.position);
    drop(st);
    at.fill(&state, &caller, &mut v).await?;
    Ok(Json(v))
}

/// The customer's events, newest first. `cursor` is the stream version to continue below.
pub(crate) async fn timeline(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    q: Q,
) -> Result<Json<Value>, ApiError> {
    caller.require(READERS)?;
    let q = query(q)?;
    prepare(&state, &q).await?;
    let limit = page_limit(&q)?;
    let stream = rapport_events::stream_for(&id);
    let Some(last_version) = state.log.stream_version(&stream) else {
        return Err(ApiError::NotFound(format!("no customer `{id}`")));
    };
    let versions_end: u64 = match &q.cursor {
        Some(c) => c
            .parse::<u64>()
            .map_err(|_| ApiError::bad("cursor", "must be a cursor returned by this endpoint"))?
            .min(last_version + 1),
        None => last_version + 1,
    };
    let start = versions_end.saturating_sub(limit as u64);
    let page = state
        .log
        .read_stream(&stream, start, (versions_end - start) as usize)
        .await?;
    let mut events = state.log.open_all(page, caller.access())?;
    caller.audit(&state, "timeline", &events).await;
    events.reverse();
    let next = (start > 0).then(|| start.to_string());
    Ok(Json(
        json!({"customer": id, "events": events, "next_cursor": next}),
    ))
}

pub(crate) async fn list_customers(
    State(state): State<AppState>,
    caller: Caller,
    q: Q,
) -> Result<Json<Value>, ApiError> {
    caller.require(READERS)?;
    let q = query(q)?;
    let (st, as_of) = view(&state, &q).await?;
    let status = match &q.status {
        Some(s) => Some(Lifecycle::parse(s).ok_or_else(|| {
            ApiError::bad(
                "status",
                "must be one of prospect, new, active, reactivated, at_risk, dormant, churned",
            )
        })?),
        None => None,
    };
    let limit = page_limit(&q)?;
    let offset = super::query::offset_cursor(q.cursor.as_deref())?;
    let c = &st.customers;
    let lc = &state.read_model.lifecycle;
    if let Some(seg) = &q.segment {
        if q.as_of.is_some() && !st.is_past() {
            return Err(ApiError::bad(
                "as_of",
                "segment membership is a fold over events: ask for the past with as_of_position, known_at or valid_at, not as_of",
            ));
        }
        if st.segments.get(seg).is_none() {
            return Err(ApiError::NotFound(format!("no segment `{seg}`")));
        }
    }
    // By identifier: the few people holding it, found through its blind index.
    let people = match &q.identifier {
        Some(i) => super::identity::lookup(&state, &caller, c, i)?
            .iter()
            .filter_map(|id| c.person(id))
            .collect(),
        None => c.people_sorted(),
    };
    let mut rows: Vec<&Profile> = people
        .into_iter()
        .filter(|p| status.is_none_or(|s| lc.state(p, as_of) == s))
        .filter(|p| {
            q.segment
                .as_ref()
                .is_none_or(|s| st.segments.is_member(s, &p.id))
        })
        .filter(|p| {
            q.community
                .as_ref()
                .is_none_or(|g| c.has_name(&p.communities, g))
        })
        .collect();
    let total_revenue = |p: &Profile| p.net_revenue(as_of).values().copied().sum::<Decimal>();
    match q.sort.as_deref().unwrap_or("id") {
        "id" => {}
        "revenue" => rows.sort_by(|a, b| {
            total_revenue(b)
                .cmp(&total_revenue(a))
                .then_with(|| a.id.cmp(&b.id))
        }),
        "last_seen" => {
            rows.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then_with(|| a.id.cmp(&b.id)))
        }
        "influence" => rows.sort_by(|a, b| {
            c.influence(b, as_of)
                .cmp(&c.influence(a, as_of))
                .then_with(|| a.id.cmp(&b.id))
        }),
        _ => {
            return Err(ApiError::bad(
                "sort",
                "must be one of id, revenue, last_seen, influence",
            ))
        }
    }
    let total = rows.len();
    let mut page: Vec<(Value, IdentityAt)> = rows
        .iter()
        .skip(offset)
        .take(limit)
        .map(|p| {
            let (mut v, at) = profile_json(&state, c, p, as_of);
            v["person"] = super::identity::person_json(c, &p.id);
            (v, at)
        })
        .collect();
    drop(rows);
    drop(st);
    for (v, at) in &mut page {
        at.fill(&state, &caller, v).await?;
    }
    let page: Vec<Value> = page.into_iter().map(|(v, _)| v).collect();
    let next = (offset + page.len() < total).then(|| (offset + page.len()).to_string());
    Ok(Json(
        json!({"customers": page, "total": total, "next_cursor": next, "as_of": as_of}),
    ))
}

pub(crate) async fn get_rfm(
    State(state): State<AppState>,
    caller: Caller,
    q: Q,
) -> Result<Response, ApiError> {
    caller.require(READERS)?;
    let q = query(q)?;
    let csv_asked = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::bad("format", "must be json or csv")),
    };
    let (st, as_of) = view(&state, &q).await?;
    let c = &st.customers;
    let currency = currency(&q, c, as_of);
    let rows = rfm::rfm(c, as_of, &currency);
    if csv_asked {
        let mut out = super::query::csv_start(&q);
        out.push_str("customer,recency_days,frequency,monetary,r,f,m,segment\n");
        for r in &rows {
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{}\n",
                csv(&r.customer),
                r.recency_days,
                r.frequency,
                r.monetary,
                r.r,
                r.f,
                r.m,
                csv(r.segment)
            ));
        }
        return Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], out).into_response());
    }
    let segments = rfm::segment_totals(&rows);
    Ok(
        Json(
            json!({"as_of": as_of, "currency": currency, "segments": segments, "customers": rows}),
        )
        .into_response(),
    )
}

/// `GET /v1/rfm/grid`: the RFM summary without a row per customer: customers and net
/// revenue per recency × frequency cell and per segment (what a dashboard draws).
pub(crate) async fn get_rfm_grid(
    State(state): State<AppState>,
    caller: Caller,
    q: Q,
) -> Result<Json<Value>, ApiError> {
    caller.require(READERS)?;
    let q = query(q)?;
    let (st, as_of) = view(&state, &q).await?;
    let c = &st.customers;
    let currency = currency(&q, c, as_of);
    let rows = rfm::scores(c, as_of, &currency);
    Ok(Json(json!({
        "as_of": as_of,
        "currency": currency,
        "customers": rows.len(),
        "grid": rfm::grid(&rows),
        "segments": rfm::segment_totals(&rows),
    })))
}

pub(crate) async fn get_cohorts(
    State(state): State<AppState>,
    caller: Caller,
    q: Q,
) -> Result<Json<Value>, ApiError> {
    caller.require(READERS)?;
    let q = query(q)?;
    if q.period.as_deref().is_some_and(|p| p != "month") {
        return Err(ApiError::bad("period", "only `month` is supported"));
    }
    let months = months(&q)?;
    let (st, as_of) = view(&state, &q).await?;
    let table = cohorts::monthly(&st.customers, as_of, months);
    Ok(Json(json!({
        "period": "month",
        "as_of": as_of,
        "months": table.months,
        "cohorts": table.cohorts,
        "earlier_customers": table.earlier_customers,
    })))
}

/// `months=` of the cohort and lifecycle tables: 1 to [`cohorts::MONTHS_MAX`].
fn months(q: &super::query::ReadQuery) -> Result<u32, ApiError> {
    match q.months {
        None => Ok(cohorts::MONTHS_DEFAULT),
        Some(m) if (1..=cohorts::MONTHS_MAX).contains(&m) => Ok(m),
        Some(_) => Err(ApiError::bad(
            "months",
            format!("must be from 1 to {}", cohorts::MONTHS_MAX),
        )),
    }
}

/// `GET /v1/lifecycle/by-month`: buyers by lifecycle state at the end of every month, from
/// the first purchase's month to `as_of`.
pub(crate) async fn lifecycle_by_month(
    State(state): State<AppState>,
    caller: Caller,
    q: Q,
) -> Result<Json<Value>, ApiError> {
    caller.require(READERS)?;
    let q = query(q)?;
    let window = months(&q)?;
    let (st, as_of) = view(&state, &q).await?;
    let months: Vec<Value> = rapport_projections::lifecycle::by_month::by_month(
        &st.customers,
        &state.read_model.lifecycle,
        as_of,
        window,
    )
    .into_iter()
    .map(|(month, states)| json!({"month": month, "states": states}))
    .collect();
    Ok(Json(json!({"as_of": as_of, "months": months})))
}

/// `GET /v1/reactivation?currency=&limit=&format=json|csv`: dormant customers worth
/// winning back, best first. CSV holds every candidate (no limit), for a sending tool.
pub(crate) async fn get_reactivation(
    State(state): State<AppState>,
    caller: Caller,
    q: Q,
) -> Result<Response, ApiError> {
    caller.require(READERS)?;
    let q = query(q)?;
    let (st, as_of) = view(&state, &q).await?;
    let c = &st.customers;
    let currency = currency(&q, c, as_of);
    let mut all = reactivation::candidates(c, &state.read_model.lifecycle, as_of, &currency);
    if q.reachable == Some(true) {
        all.retain(|x| !x.marketing_channels.is_empty());
    }
    match q.format.as_deref().unwrap_or("json") {
        "csv" => {
            let mut out = super::query::csv_start(&q);
            out.push_str(
                "customer,lifecycle,days_since_last_purchase,orders,revenue,value,currency,p_alive,reach,active_referees,active_co_members,recently_contacted,score,marketing_channels\n",
            );
            for x in &all {
                out.push_str(&format!(
                    "{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                    csv(&x.customer),
                    x.lifecycle.as_str(),
                    x.days_since_last_purchase,
                    x.orders,
                    x.revenue,
                    x.value,
                    csv(&currency),
                    x.p_alive,
                    x.reach,
                    x.active_referees,
                    x.active_co_members,
                    x.recently_contacted,
                    x.score,
                    channels_text(&x.marketing_channels)
                ));
            }
            Ok((
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"reactivation.csv\"",
                    ),
                ],
                out,
            )
                .into_response())
        }
        "json" => {
            let limit = page_limit(&q)?;
            let total = all.len();
            let top: Vec<_> = all.into_iter().take(limit).collect();
            Ok(Json(
                json!({"as_of": as_of, "currency": currency, "total": total, "customers": top}),
            )
            .into_response())
        }
        _ => Err(ApiError::bad("format", "must be json or csv")),
    }
}

/// Channels as one CSV field: `sms;email`.
pub(super) fn channels_text(channels: &[rapport_events::data::ConsentChannel]) -> String {
    channels
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(";")
}

/// A profile's consent as of `as_of`: channel → purpose → whether given, the channels open
/// to marketing, the history of changes, and marketing contacts made without consent.
fn consent_json(p: &Profile, as_of: DateTime<Utc>) -> Value {
    use rapport_events::data::{ConsentChannel, Purpose};
    let mut now = serde_json::Map::new();
    for ch in ConsentChannel::ALL {
        now.insert(
            ch.as_str().into(),
            json!({
                "marketing": p.consents(ch, Purpose::Marketing, as_of),
                "service": p.consents(ch, Purpose::Service, as_of),
            }),
        );
    }
    let history: Vec<Value> = p
        .consent_history(as_of)
        .iter()
        .map(|c| {
            json!({"at": c.at, "channel": c.channel, "purpose": c.purpose, "given": c.given, "source": c.source})
        })
        .collect();
    let without: Vec<Value> = p
        .contacts_without_consent(as_of)
        .map(|m| json!({"at": m.at, "channel": m.channel, "campaign": m.campaign}))
        .collect();
    json!({
        "channels": now,
        "marketing_channels": p.marketing_channels(as_of),
        "history": history,
        "contacts_without_consent": without,
    })
}

pub(crate) async fn get_campaigns(
    State(state): State<AppState>,
    caller: Caller,
    q: Q,
) -> Result<Json<Value>, ApiError> {
    caller.require(READERS)?;
    let q = query(q)?;
    let (st, as_of) = view(&state, &q).await?;
    let c = &st.customers;
    Ok(Json(
        json!({"as_of": as_of, "attribution_days": reactivation::ATTRIBUTION_DAYS, "campaigns": reactivation::campaigns(c, &state.read_model.lifecycle, as_of)}),
    ))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct LifecycleChangesQuery {
    after: Option<u64>,
    /// Only changes into this state.
    #[schemars(extend("enum" = ["prospect", "new", "active", "reactivated", "at_risk", "dormant", "churned"]))]
    to: Option<String>,
}

/// `GET /v1/lifecycle/changes?after=SEQ&to=STATE` (SSE): every lifecycle change after
/// `after` (or the `Last-Event-ID`), then live ones, as `change` events whose id is the
/// change's `seq`: the same feed the Kafka outbox publishes on `rapport.customers`. A
/// cursor older than what is kept answers 410.
pub(super) async fn lifecycle_changes(
    State(state): State<AppState>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    q: Result<Query<LifecycleChangesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(READERS)?;
    let Query(q) = q.map_err(ApiError::query)?;
    let to = match q.to.as_deref() {
        None => None,
        Some(s) => Some(Lifecycle::parse(s).ok_or_else(|| {
            let all: Vec<&str> = Lifecycle::ALL.iter().map(|l| l.as_str()).collect();
            ApiError::bad("to", format!("must be one of {}", all.join(", ")))
        })?),
    };
    let after = super::feed::cursor(q.after, &headers);
    let guard = super::feed::FeedCounts::enter(&state.feeds, &caller.key_id)?;
    super::feed::live(
        state,
        guard,
        after,
        "re-read the customers (GET /v1/customers?status=…) and follow from the newest change",
        Box::new(move |st, cursor| {
            let changes = st
                .lifecycles
                .changes_after(cursor, super::feed::FEED_BATCH_CHANGES)?;
            Ok(changes
                .into_iter()
                .map(|c| {
                    let ev = to.is_none_or(|t| t == c.to).then(|| {
                        axum::response::sse::Event::default()
                            .event("change")
                            .id(c.seq.to_string())
                            .json_data(c)
                            .unwrap_or_else(|_| {
                                axum::response::sse::Event::default().event("error")
                            })
                    });
                    (c.seq, ev)
                })
                .collect())
        }),
    )
    .await
}
