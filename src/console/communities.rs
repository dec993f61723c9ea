//! Communities: the list (sortable by size, activity, revenue, complaint rate) and one
//! community's page. Each is the API's own answer, laid out.

use askama::Template;
use axum::{
    extract::{Path, Query, State},
    response::Response,
    Json,
};
use serde::Deserialize;
use serde_json::Value;

use super::{alerts::urlencode, api_error_page, money, render, text, Console, Frame, SignedIn, Tr};
use crate::http;

/// The sorts the list offers, in the order of its columns.
const SORTS: [&str; 4] = ["size", "activity", "revenue", "complaint_rate"];

struct CommunityRow {
    id: String,
    members: String,
    active: String,
    posts: String,
    complaints: String,
    rate: String,
    revenue: String,
    trend: String,
    dormant: String,
    alerts: String,
}

impl CommunityRow {
    fn of(v: &Value) -> CommunityRow {
        CommunityRow {
            id: text(&v["id"]),
            members: text(&v["members"]),
            active: text(&v["active_members"]),
            posts: text(&v["posts_in_window"]),
            complaints: text(&v["complaints_in_window"]),
            rate: text(&v["complaint_rate"]),
            revenue: money(&v["member_revenue"]),
            trend: v["revenue_trend"]
                .as_f64()
                .map(|f| format!("{:+.0}%", (f - 1.0) * 100.0))
                .unwrap_or_default(),
            dormant: text(&v["dormant_members"]),
            alerts: v["open_alerts"].as_array().map_or(0, Vec::len).to_string(),
        }
    }
}

#[derive(Template)]
#[template(path = "communities.html")]
struct ListPage {
    t: Tr,
    lang: &'static str,
    frame: Frame,
    rows: Vec<CommunityRow>,
    /// (sort, label, current) for each sortable column.
    sorts: Vec<(&'static str, String, bool)>,
    past_link: String,
    next: Option<String>,
}

#[derive(Deserialize, Default)]
pub(crate) struct ListFilters {
    sort: Option<String>,
    cursor: Option<String>,
}

/// `GET /communities`.
pub(crate) async fn list(
    State(c): State<Console>,
    signed: SignedIn,
    Query(f): Query<ListFilters>,
) -> Response {
    let t = signed.tr;
    let sort = f
        .sort
        .as_deref()
        .filter(|s| SORTS.contains(s))
        .unwrap_or("size");
    let mut params = format!("limit=100&sort={sort}");
    if let Some(cur) = &f.cursor {
        params.push_str(&format!("&cursor={}", urlencode(cur)));
    }
    let uri = signed.api_uri(&params);
    let Json(v) = match http::communities::list(
        State(c.app.clone()),
        signed.caller.clone(),
        Query::try_from_uri(&uri),
    )
    .await
    {
        Ok(v) => v,
        Err(e) => return api_error_page(t, e),
    };
    let rows = v["communities"]
        .as_array()
        .map(|a| a.iter().map(CommunityRow::of).collect())
        .unwrap_or_default();
    let next = v["next_cursor"].as_str().map(|cur| {
        format!(
            "/communities?sort={sort}&cursor={}{}",
            urlencode(cur),
            signed.past_link()
        )
    });
    let page = ListPage {
        t,
        lang: t.lang.tag(),
        frame: signed.frame_travelling("communities"),
        rows,
        sorts: SORTS
            .iter()
            .map(|s| (*s, t.pick("sort", s), *s == sort))
            .collect(),
        past_link: signed.past_link(),
        next,
    };
    render(&page, t)
}

struct LeaderList {
    title: String,
    leaders: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "community.html")]
struct CommunityPage {
    t: Tr,
    lang: &'static str,
    frame: Frame,
    c: CommunityRow,
    joined: String,
    left: String,
    months: Vec<Vec<String>>,
    leaders: Vec<LeaderList>,
    dormant: Vec<Vec<String>>,
    open_alerts: Vec<String>,
}

/// `GET /communities/{id}`.
pub(crate) async fn community(
    State(c): State<Console>,
    signed: SignedIn,
    Path(id): Path<String>,
) -> Response {
    let t = signed.tr;
    let uri = signed.api_uri("");
    let Json(v) = match http::communities::get_one(
        State(c.app.clone()),
        signed.caller.clone(),
        Path(id),
        Query::try_from_uri(&uri),
    )
    .await
    {
        Ok(v) => v,
        Err(e) => return api_error_page(t, e),
    };
    let months = v["months"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| {
                    vec![
                        text(&m["month"]),
                        text(&m["joined"]),
                        text(&m["left"]),
                        text(&m["members_at_end"]),
                        text(&m["posts"]),
                        text(&m["complaints"]),
                        money(&m["member_revenue"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    let leaders = ["posts", "replies_received", "echoes_received", "influence"]
        .iter()
        .map(|k| LeaderList {
            title: t.pick("leaders", k),
            leaders: v["leaders"][k]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|l| (text(&l["customer"]), text(&l["value"])))
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect();
    let dormant = v["dormant"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| {
                    vec![
                        text(&d["customer"]),
                        t.pick("lifecycle", &text(&d["lifecycle"])),
                        super::alerts::time_text(&text(&d["last_purchase_at"])),
                        text(&d["spent"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    let page = CommunityPage {
        t,
        lang: t.lang.tag(),
        frame: signed.frame_travelling("communities"),
        c: CommunityRow::of(&v),
        joined: text(&v["joined_total"]),
        left: text(&v["left_total"]),
        months,
        leaders,
        dormant,
        open_alerts: v["open_alerts"]
            .as_array()
            .map(|a| a.iter().map(text).collect())
            .unwrap_or_default(),
    };
    render(&page, t)
}
