//! Reactivation: the dormant customers worth winning back, ranked, with the parts of each
//! score; a CSV of all of them for the tool that sends the message; campaign results.

use askama::Template;
use axum::{
    extract::{Query, State},
    http::Uri,
    response::Response,
    Json,
};
use serde::Deserialize;
use serde_json::Value;

use super::{alerts::urlencode, api_error_page, ratio, render, text, Console, Frame, SignedIn, Tr};
use crate::http;

struct CandidateRow {
    customer: String,
    lifecycle: String,
    days: String,
    orders: String,
    revenue: String,
    value: String,
    p_alive: String,
    reach: String,
    contacted: bool,
    score: String,
    /// The channels open to marketing, in the page's language.
    channels: String,
}

struct CampaignRow {
    campaign: String,
    contacts: String,
    customers: String,
    reactivated: String,
    without_consent: String,
}

#[derive(Template)]
#[template(path = "reactivation.html")]
struct ReactivationPage {
    t: Tr,
    lang: &'static str,
    frame: Frame,
    currency: String,
    summary: String,
    csv: String,
    candidates: Vec<CandidateRow>,
    campaigns: Vec<CampaignRow>,
    reachable: bool,
}

#[derive(Deserialize)]
pub(crate) struct ReactivationQuery {
    currency: Option<String>,
    /// Only customers with a channel open to marketing.
    reachable: Option<String>,
}

impl ReactivationQuery {
    fn reachable(&self) -> bool {
        self.reachable
            .as_deref()
            .is_some_and(|r| r == "true" || r == "on")
    }

    /// The API's query for these filters.
    fn params(&self) -> String {
        let mut out = self
            .currency
            .as_ref()
            .filter(|c| !c.is_empty())
            .map(|c| format!("&currency={}", urlencode(c)))
            .unwrap_or_default();
        if self.reachable() {
            out.push_str("&reachable=true");
        }
        out
    }
}

/// `GET /reactivation?currency=`: the top 100 candidates and the campaigns.
pub(crate) async fn page(
    State(c): State<Console>,
    signed: SignedIn,
    Query(q): Query<ReactivationQuery>,
) -> Response {
    let t = signed.tr;
    let params = q.params();
    let past = signed.past_param();
    let uri: Uri = format!("/?limit=100{params}{past}")
        .parse()
        .unwrap_or_default();
    let resp = match http::customers::get_reactivation(
        State(c.app.clone()),
        signed.caller.clone(),
        Query::try_from_uri(&uri),
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return api_error_page(t, e),
    };
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let v: Value = serde_json::from_slice(&body).unwrap_or_default();
    let at: Uri = format!("/?{}", past.trim_start_matches('&'))
        .parse()
        .unwrap_or_default();
    let Json(camp) = match http::customers::get_campaigns(
        State(c.app.clone()),
        signed.caller.clone(),
        Query::try_from_uri(&at),
    )
    .await
    {
        Ok(v) => v,
        Err(e) => return api_error_page(t, e),
    };
    let candidates = v["customers"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| CandidateRow {
                    customer: text(&x["customer"]),
                    lifecycle: t.pick("lifecycle", &text(&x["lifecycle"])),
                    days: text(&x["days_since_last_purchase"]),
                    orders: text(&x["orders"]),
                    revenue: text(&x["revenue"]),
                    value: text(&x["value"]),
                    p_alive: ratio(&x["p_alive"]),
                    reach: ratio(&x["reach"]),
                    contacted: x["recently_contacted"].as_bool().unwrap_or(false),
                    score: ratio(&x["score"]),
                    channels: x["marketing_channels"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .map(|c| t.pick("channel", &text(c)))
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    let campaigns = camp["campaigns"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| CampaignRow {
                    campaign: text(&x["campaign"]),
                    contacts: text(&x["contacts"]),
                    customers: text(&x["customers"]),
                    reactivated: text(&x["reactivated"]),
                    without_consent: text(&x["contacted_without_consent"]),
                })
                .collect()
        })
        .unwrap_or_default();
    let currency = text(&v["currency"]);
    let total = v["total"].as_u64().unwrap_or(0) as usize;
    render(
        &ReactivationPage {
            t,
            lang: t.lang.tag(),
            frame: signed.frame_travelling("reactivation"),
            summary: t.with(
                "reactivation-total",
                &[
                    ("count", total.into()),
                    ("currency", currency.as_str().into()),
                ],
            ),
            csv: format!(
                "/reactivation.csv?currency={}{}{}",
                urlencode(&currency),
                if q.reachable() { "&reachable=true" } else { "" },
                signed.past_link()
            ),
            reachable: q.reachable(),
            currency,
            candidates,
            campaigns,
        },
        t,
    )
}

/// `GET /reactivation.csv?currency=`: every candidate, as the API's CSV.
pub(crate) async fn csv(
    State(c): State<Console>,
    signed: SignedIn,
    Query(q): Query<ReactivationQuery>,
) -> Response {
    let uri: Uri = format!("/?format=csv{}{}", q.params(), signed.past_param())
        .parse()
        .unwrap_or_default();
    match http::customers::get_reactivation(
        State(c.app.clone()),
        signed.caller.clone(),
        Query::try_from_uri(&uri),
    )
    .await
    {
        Ok(r) => r,
        Err(e) => api_error_page(signed.tr, e),
    }
}
