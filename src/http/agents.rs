//! Agent networks over HTTP: one agent with its upline chain and figures, the networks
//! ranked by pyramid risk, one network with its agents. Read-only: agents are recorded by
//! `agent_joined`, `agent_left`, `commission_paid` and `purchase.sold_by` events.

use axum::{
    extract::{Path, Query, State},
    Json,
};
use rapport_projections::{agents::NetworkView, warnings::Level, ReadState};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{query::ReadQuery, ApiError, AppState, Caller, READERS};

/// Networks per page.
const NETWORKS_PAGE_MAX: usize = 500;
/// Agents listed on a network's page.
const NETWORK_AGENTS_MAX: usize = 1000;

#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AgentQuery {
    /// Only networks at least at this risk level.
    #[schemars(extend("enum" = ["watch", "warning", "critical"]))]
    risk: Option<String>,
    /// Only networks with at least this many participants.
    min_participants: Option<u32>,
    cursor: Option<String>,
    #[schemars(range(min = 1, max = NETWORKS_PAGE_MAX))]
    limit: Option<usize>,
    min_position: Option<u64>,
    as_of_position: Option<u64>,
    #[serde(default)]
    #[schemars(schema_with = "crate::http::query::time_param")]
    known_at: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "crate::http::query::time_param")]
    valid_at: Option<String>,
}

impl AgentQuery {
    fn travel(&self) -> ReadQuery {
        ReadQuery {
            min_position: self.min_position,
            as_of_position: self.as_of_position,
            known_at: self.known_at.clone(),
            valid_at: self.valid_at.clone(),
            ..Default::default()
        }
    }
}

type Q = Result<Query<AgentQuery>, axum::extract::rejection::QueryRejection>;

/// The live id of a network's pyramid-risk alert, if it has one.
fn alert_of(st: &ReadState, root: &str) -> Option<String> {
    let id = st
        .warnings
        .live_id(&rapport_projections::warnings::network_alert_id(root));
    st.warnings.get(&id).map(|a| a.id.clone())
}

fn network_json(st: &ReadState, v: NetworkView) -> Value {
    let alert = alert_of(st, &v.root);
    let mut out = serde_json::to_value(v).expect("a network view serializes");
    out["alert"] = json!(alert);
    out
}

/// `GET /v1/agents/{id}`: the agent's upline chain, downline and figures.
pub(crate) async fn get_agent(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    q: Q,
) -> Result<Json<Value>, ApiError> {
    caller.require(READERS)?;
    let Query(q) = q.map_err(ApiError::query)?;
    let (st, _) = super::query::view(&state, &q.travel()).await?;
    let v = st
        .agents
        .agent_view(&id)
        .ok_or_else(|| ApiError::NotFound(format!("no agent `{id}`")))?;
    let net = st.agents.network(&v.network).map(|n| {
        let n = st.agents.network_view(n);
        json!({"root": n.root, "participants": n.participants, "levels": n.levels,
               "risk": n.risk, "alert": alert_of(&st, &n.root)})
    });
    let mut out = serde_json::to_value(v).expect("an agent view serializes");
    out["network"] = json!(net);
    out["position"] = json!(st.position());
    Ok(Json(out))
}

/// `GET /v1/agents/networks?risk=&min_participants=&cursor=&limit=`: networks, highest
/// pyramid risk first (level, then criteria met, then size).
pub(crate) async fn list_networks(
    State(state): State<AppState>,
    caller: Caller,
    q: Q,
) -> Result<Json<Value>, ApiError> {
    caller.require(READERS)?;
    let Query(q) = q.map_err(ApiError::query)?;
    let risk: Option<Level> = q
        .risk
        .as_deref()
        .map(|s| {
            serde_json::from_value(Value::String(s.to_owned()))
                .map_err(|_| ApiError::bad("risk", "must be one of watch, warning, critical"))
        })
        .transpose()?;
    let limit = super::query::limit_within(q.limit, 50, NETWORKS_PAGE_MAX)?;
    let offset = super::query::offset_cursor(q.cursor.as_deref())?;
    let (st, _) = super::query::view(&state, &q.travel()).await?;
    let mut nets: Vec<_> = st
        .agents
        .networks()
        .filter(|n| risk.is_none_or(|r| n.level >= Some(r)))
        .filter(|n| q.min_participants.is_none_or(|m| n.participants >= m))
        .map(|n| st.agents.network_view(n))
        .collect();
    nets.sort_by(|a, b| {
        b.risk_rank
            .cmp(&a.risk_rank)
            .then_with(|| a.root.cmp(&b.root))
    });
    let total = nets.len();
    let page: Vec<Value> = nets
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|n| network_json(&st, n))
        .collect();
    let next = (offset + page.len() < total).then(|| (offset + page.len()).to_string());
    Ok(Json(json!({
        "networks": page,
        "total": total,
        "agents": st.agents.len(),
        "next_cursor": next,
        "criteria": st.agents.config(),
        "position": st.position(),
    })))
}

/// `GET /v1/agents/networks/{root}`: one network with its agents, level by level.
pub(crate) async fn get_network(
    State(state): State<AppState>,
    caller: Caller,
    Path(root): Path<String>,
    q: Q,
) -> Result<Json<Value>, ApiError> {
    caller.require(READERS)?;
    let Query(q) = q.map_err(ApiError::query)?;
    let (st, _) = super::query::view(&state, &q.travel()).await?;
    let net = st
        .agents
        .network(&root)
        .ok_or_else(|| ApiError::NotFound(format!("no network under `{root}`")))?;
    let members = st.agents.members(&root);
    let agents: Vec<Value> = members
        .iter()
        .take(NETWORK_AGENTS_MAX)
        .filter_map(|m| st.agents.agent_view(m))
        .map(|a| {
            json!({"id": a.id, "upline": a.upline_chain.first(), "level": a.level,
                   "direct_downline": a.direct_downline.len(), "total_downline": a.total_downline,
                   "retail_sales": a.retail_sales, "own_purchases": a.own_purchases,
                   "sell_through": a.sell_through, "entry_fees": a.entry_fees,
                   "commissions": a.commissions, "left_at": a.left_at, "quiet": a.quiet,
                   "stocked_and_gone": a.stocked_and_gone})
        })
        .collect();
    let mut out = network_json(&st, st.agents.network_view(net));
    out["agents"] = json!(agents);
    out["agents_shown"] = json!(agents.len());
    out["position"] = json!(st.position());
    Ok(Json(out))
}
