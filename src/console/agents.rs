//! Agent networks: the list ranked by pyramid risk, one network with its agents, one
//! agent with its upline chain. Each page is the API's own answer, laid out.

use askama::Template;
use axum::{
    extract::{Path, Query, State},
    response::Response,
    Json,
};
use serde::Deserialize;
use serde_json::Value;

use super::{
    alerts::urlencode, api_error_page, i18n::Arg, money, percent, ratio, render, text, Console,
    Frame, SignedIn, Tr,
};
use crate::http;

struct NetworkRow {
    root: String,
    risk: String,
    risk_class: String,
    participants: String,
    levels: String,
    recruitment: String,
    unrelated: String,
    loading: String,
    paid_entry: String,
    stocked: String,
    alert: String,
}

impl NetworkRow {
    fn of(n: &Value, t: Tr) -> NetworkRow {
        let risk = text(&n["risk"]);
        NetworkRow {
            root: text(&n["root"]),
            risk: if risk.is_empty() {
                t.get("agents-no-risk")
            } else {
                t.pick("level", &risk)
            },
            risk_class: if risk.is_empty() { "none".into() } else { risk },
            participants: text(&n["participants"]),
            levels: text(&n["levels"]),
            recruitment: percent(&n["recruitment_commission_share"]),
            unrelated: percent(&n["unrelated_commission_share"]),
            loading: ratio(&n["loading_ratio"]),
            paid_entry: text(&n["paid_entry"]),
            stocked: format!(
                "{} / {}",
                text(&n["stocked_and_left"]),
                text(&n["stocked_and_quiet"])
            ),
            alert: text(&n["alert"]),
        }
    }
}

#[derive(Template)]
#[template(path = "agents.html")]
struct ListPage {
    t: Tr,
    lang: &'static str,
    frame: Frame,
    networks: Vec<NetworkRow>,
    count: String,
    risk: String,
    next: Option<String>,
}

#[derive(Deserialize, Default)]
pub(crate) struct ListFilters {
    risk: Option<String>,
    cursor: Option<String>,
}

/// `GET /agents`: networks, highest pyramid risk first.
pub(crate) async fn list(
    State(c): State<Console>,
    signed: SignedIn,
    Query(f): Query<ListFilters>,
) -> Response {
    let t = signed.tr;
    let mut params = String::from("limit=50");
    let risk = f.risk.clone().filter(|r| !r.is_empty()).unwrap_or_default();
    if !risk.is_empty() {
        params.push_str(&format!("&risk={}", urlencode(&risk)));
    }
    if let Some(cur) = &f.cursor {
        params.push_str(&format!("&cursor={}", urlencode(cur)));
    }
    let uri = signed.api_uri(&params);
    let Json(v) = match http::agents::list_networks(
        State(c.app.clone()),
        signed.caller.clone(),
        Query::try_from_uri(&uri),
    )
    .await
    {
        Ok(v) => v,
        Err(e) => return api_error_page(t, e),
    };
    let networks = v["networks"]
        .as_array()
        .map(|a| a.iter().map(|n| NetworkRow::of(n, t)).collect())
        .unwrap_or_default();
    let next = v["next_cursor"].as_str().map(|cur| {
        format!(
            "/agents?risk={}&cursor={}{}",
            urlencode(&risk),
            urlencode(cur),
            signed.past_link()
        )
    });
    render(
        &ListPage {
            t,
            lang: t.lang.tag(),
            frame: signed.frame_travelling("agents"),
            networks,
            count: t.with(
                "agents-count",
                &[
                    ("networks", Arg::from(text(&v["total"]))),
                    ("agents", Arg::from(text(&v["agents"]))),
                ],
            ),
            risk,
            next,
        },
        t,
    )
}

struct AgentRow {
    id: String,
    level: String,
    upline: String,
    downline: String,
    retail: String,
    own: String,
    sell_through: String,
    fees: String,
    state: String,
}

#[derive(Template)]
#[template(path = "network.html")]
struct NetworkPage {
    t: Tr,
    lang: &'static str,
    frame: Frame,
    title: String,
    size: String,
    agents_heading: String,
    n: NetworkRow,
    signs: Vec<(String, bool)>,
    evidence: Vec<String>,
    retail: String,
    own: String,
    own_share: String,
    fees: String,
    commissions: Vec<(String, String)>,
    growth: Vec<(String, String)>,
    per_level: String,
    agents: Vec<AgentRow>,
}

fn agent_state(a: &Value, t: Tr) -> String {
    let mut s = vec![];
    if !a["left_at"].is_null() {
        s.push(t.get("agent-left"));
    }
    if a["quiet"] == true {
        s.push(t.get("agent-quiet"));
    }
    if a["stocked_and_gone"] == true {
        s.push(t.get("agent-stocked"));
    }
    s.join(", ")
}

/// `GET /agents/networks/{root}`.
pub(crate) async fn network(
    State(c): State<Console>,
    signed: SignedIn,
    Path(root): Path<String>,
) -> Response {
    let t = signed.tr;
    let uri = signed.api_uri("");
    let Json(v) = match http::agents::get_network(
        State(c.app.clone()),
        signed.caller.clone(),
        Path(root),
        Query::try_from_uri(&uri),
    )
    .await
    {
        Ok(v) => v,
        Err(e) => return api_error_page(t, e),
    };
    let signs = ["scale", "recruitment_pay", "paid_entry", "loading"]
        .iter()
        .map(|s| (t.get(&format!("sign-{s}")), v["signs"][s] == true))
        .collect();
    let strs = |x: &Value| -> Vec<String> {
        x.as_array()
            .map(|a| a.iter().map(text).collect())
            .unwrap_or_default()
    };
    let commissions = ["retail", "recruitment", "team"]
        .iter()
        .map(|b| (t.pick("basis", b), money(&v["commissions"][b])))
        .collect();
    let growth = v["growth"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, x)| (t.get(&format!("growth-{}", k.replace('_', "-"))), text(x)))
                .collect()
        })
        .unwrap_or_default();
    let agents = v["agents"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| AgentRow {
                    id: text(&x["id"]),
                    level: text(&x["level"]),
                    upline: text(&x["upline"]),
                    downline: format!(
                        "{} / {}",
                        text(&x["direct_downline"]),
                        text(&x["total_downline"])
                    ),
                    retail: money(&x["retail_sales"]),
                    own: money(&x["own_purchases"]),
                    sell_through: ratio(&x["sell_through"]),
                    fees: money(&x["entry_fees"]),
                    state: agent_state(x, t),
                })
                .collect()
        })
        .unwrap_or_default();
    let page = NetworkPage {
        t,
        lang: t.lang.tag(),
        frame: signed.frame_travelling("agents"),
        title: t.with("network-title", &[("root", Arg::from(text(&v["root"])))]),
        size: t.with(
            "network-size",
            &[
                ("participants", Arg::from(text(&v["participants"]))),
                ("levels", Arg::from(text(&v["levels"]))),
            ],
        ),
        agents_heading: t.with(
            "network-agents",
            &[("shown", Arg::from(text(&v["agents_shown"])))],
        ),
        n: NetworkRow::of(&v, t),
        signs,
        evidence: serde_json::from_value::<Vec<rapport_projections::said::Said>>(v["said"].clone())
            .map(|said| said.iter().map(|x| super::alerts::said(t, x)).collect())
            .unwrap_or_else(|_| strs(&v["evidence"])),
        retail: money(&v["retail_sales"]),
        own: money(&v["own_purchases"]),
        own_share: percent(&v["own_purchase_share"]),
        fees: money(&v["entry_fees"]),
        commissions,
        growth,
        per_level: strs(&v["per_level"]).join(" · "),
        agents,
    };
    render(&page, t)
}

#[derive(Template)]
#[template(path = "agent.html")]
struct AgentPage {
    t: Tr,
    lang: &'static str,
    frame: Frame,
    title: String,
    id: String,
    network: String,
    risk: String,
    chain: Vec<String>,
    downline: Vec<String>,
    facts: Vec<(String, String)>,
}

/// `GET /agents/{id}`.
pub(crate) async fn agent(
    State(c): State<Console>,
    signed: SignedIn,
    Path(id): Path<String>,
) -> Response {
    let t = signed.tr;
    let uri = signed.api_uri("");
    let Json(v) = match http::agents::get_agent(
        State(c.app.clone()),
        signed.caller.clone(),
        Path(id.clone()),
        Query::try_from_uri(&uri),
    )
    .await
    {
        Ok(v) => v,
        Err(e) => return api_error_page(t, e),
    };
    let strs = |x: &Value| -> Vec<String> {
        x.as_array()
            .map(|a| a.iter().map(text).collect())
            .unwrap_or_default()
    };
    let time = |x: &Value| super::alerts::time_text(&text(x));
    let facts = vec![
        (t.get("agent-level"), text(&v["level"])),
        (t.get("agent-tier"), text(&v["tier"])),
        (t.get("agent-joined"), time(&v["joined_at"])),
        (t.get("agent-left-at"), time(&v["left_at"])),
        (t.get("agent-total-downline"), text(&v["total_downline"])),
        (t.get("agent-retail"), money(&v["retail_sales"])),
        (t.get("agent-own"), money(&v["own_purchases"])),
        (t.get("agent-sell-through"), ratio(&v["sell_through"])),
        (
            t.get("agent-sell-through-recent"),
            ratio(&v["sell_through_recent"]),
        ),
        (t.get("agent-fees"), money(&v["entry_fees"])),
        (
            t.pick("basis", "retail"),
            money(&v["commissions"]["retail"]),
        ),
        (
            t.pick("basis", "recruitment"),
            money(&v["commissions"]["recruitment"]),
        ),
        (t.pick("basis", "team"), money(&v["commissions"]["team"])),
        (t.get("agent-last-active"), time(&v["last_active"])),
        (t.get("col-state"), agent_state(&v, t)),
    ];
    let risk = text(&v["network"]["risk"]);
    let page = AgentPage {
        t,
        lang: t.lang.tag(),
        frame: signed.frame_travelling("agents"),
        title: t.with("agent-title", &[("id", Arg::from(id.clone()))]),
        id,
        network: text(&v["network"]["root"]),
        risk: if risk.is_empty() {
            t.get("agents-no-risk")
        } else {
            t.pick("level", &risk)
        },
        chain: strs(&v["upline_chain"]),
        downline: strs(&v["direct_downline"]),
        facts,
    };
    render(&page, t)
}
