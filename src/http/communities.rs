//! Communities over HTTP: the list (sortable by size, activity, revenue, complaint rate)
//! and one community's page (members over time, leaders, dormant members, open alerts).

use axum::{
    extract::{Path, Query, State},
    Json,
};
use rapport_projections::communities::{CommunitySummary, Context};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{query::ReadQuery, ApiError, AppState, Caller, READERS};

/// Communities per page of the list.
const COMMUNITIES_PAGE_MAX: usize = 500;
/// The longest window, in months.
const WINDOW_MONTHS_MAX: u32 = 24;

#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CommunityQuery {
    /// `size` (default), `activity`, `revenue`, `complaint_rate`.
    #[schemars(extend("enum" = ["size", "activity", "revenue", "complaint_rate"]))]
    sort: Option<String>,
    /// Months of event time counted as recent (this one included); 3 by default.
    #[schemars(range(min = 1, max = WINDOW_MONTHS_MAX))]
    window_months: Option<u32>,
    cursor: Option<String>,
    #[schemars(range(min = 1, max = COMMUNITIES_PAGE_MAX))]
    limit: Option<usize>,
    #[serde(default)]
    #[schemars(schema_with = "crate::http::query::time_param")]
    as_of: Option<String>,
    min_position: Option<u64>,
    as_of_position: Option<u64>,
    #[serde(default)]
    #[schemars(schema_with = "crate::http::query::time_param")]
    known_at: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "crate::http::query::time_param")]
    valid_at: Option<String>,
}

impl CommunityQuery {
    fn travel(&self) -> ReadQuery {
        ReadQuery {
            min_position: self.min_position,
            as_of: self.as_of.clone(),
            as_of_position: self.as_of_position,
            known_at: self.known_at.clone(),
            valid_at: self.valid_at.clone(),
            ..Default::default()
        }
    }

    fn window(&self) -> Result<u32, ApiError> {
        match self.window_months.unwrap_or(3) {
            w @ 1..=WINDOW_MONTHS_MAX => Ok(w),
            _ => Err(ApiError::bad(
                "window_months",
                format!("must be 1 to {WINDOW_MONTHS_MAX}"),
            )),
        }
    }
}

type Q = Result<Query<CommunityQuery>, axum::extract::rejection::QueryRejection>;

/// The largest amount of a per-currency map (what `sort=revenue` orders by).
fn largest(m: &std::collections::BTreeMap<String, String>) -> Decimal {
    m.values()
        .filter_map(|v| v.parse::<Decimal>().ok())
        .max()
        .unwrap_or_default()
}

/// `GET /v1/communities?sort=&window_months=&cursor=&limit=`.
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    q: Q,
) -> Result<Json<Value>, ApiError> {
    caller.require(READERS)?;
    let Query(q) = q.map_err(ApiError::query)?;
    let window_months = q.window()?;
    let sort = q.sort.as_deref().unwrap_or("size");
    if !["size", "activity", "revenue", "complaint_rate"].contains(&sort) {
        return Err(ApiError::bad(
            "sort",
            "must be one of size, activity, revenue, complaint_rate",
        ));
    }
    let limit = super::query::limit_within(q.limit, 50, COMMUNITIES_PAGE_MAX)?;
    let offset = super::query::offset_cursor(q.cursor.as_deref())?;
    let (st, as_of) = super::query::view(&state, &q.travel()).await?;
    let cx = Context::new(
        &st.customers,
        &st.warnings,
        st.segments.config(),
        as_of,
        window_months,
    );
    let (page, total) = if sort == "size" {
        // By size only the page's communities need their members read.
        let mut by_size: Vec<_> = st.communities.iter().collect();
        by_size.sort_by(|(a_id, a), (b_id, b)| {
            b.member_count()
                .cmp(&a.member_count())
                .then_with(|| a_id.cmp(b_id))
        });
        let total = by_size.len();
        let page: Vec<CommunitySummary> = by_size
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|(id, c)| c.summary(id, &cx))
            .collect();
        (page, total)
    } else {
        let mut all: Vec<CommunitySummary> = st
            .communities
            .iter()
            .map(|(id, c)| c.summary(id, &cx))
            .collect();
        // Largest first on every measure; ties by id.
        all.sort_by(|a, b| {
            let order = match sort {
                "activity" => b.active_members.cmp(&a.active_members),
                "revenue" => largest(&b.member_revenue).cmp(&largest(&a.member_revenue)),
                "complaint_rate" => b.complaint_rate.total_cmp(&a.complaint_rate),
                _ => b.members.cmp(&a.members),
            };
            order.then_with(|| a.id.cmp(&b.id))
        });
        let total = all.len();
        (all.into_iter().skip(offset).take(limit).collect(), total)
    };
    let next = (offset + page.len() < total).then(|| (offset + page.len()).to_string());
    Ok(Json(json!({
        "communities": page,
        "total": total,
        "sort": sort,
        "as_of": as_of,
        "next_cursor": next,
        "position": st.position(),
    })))
}

/// `GET /v1/communities/{id}`.
pub(crate) async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    q: Q,
) -> Result<Json<Value>, ApiError> {
    caller.require(READERS)?;
    let Query(q) = q.map_err(ApiError::query)?;
    let window_months = q.window()?;
    let (st, as_of) = super::query::view(&state, &q.travel()).await?;
    let c = st
        .communities
        .get(&id)
        .ok_or_else(|| ApiError::NotFound(format!("no community `{id}`")))?;
    let cx = Context::new(
        &st.customers,
        &st.warnings,
        st.segments.config(),
        as_of,
        window_months,
    );
    let mut out = serde_json::to_value(c.detail(&id, &cx)).expect("a community serializes");
    out["as_of"] = json!(as_of);
    out["position"] = json!(st.position());
    Ok(Json(out))
}
