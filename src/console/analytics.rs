//! Analytics: the monthly cohort retention heatmap, the RFM grid (recency × frequency)
//! with its segments, and buyers by lifecycle state at the end of every month. Each is the
//! API's own answer, laid out.

use askama::Template;
use axum::{
    extract::{Query, State},
    http::Uri,
    response::Response,
    Json,
};

use super::{api_error_page, render, text, Console, Frame, SignedIn, Tr};
use crate::http::{self, ApiError};
use serde_json::Value;

struct CohortRow {
    cohort: String,
    size: String,
    /// (retention %, heat class 0–10) per month after the cohort's.
    cells: Vec<(String, u8)>,
}

struct SegmentRow {
    segment: String,
    customers: String,
    monetary: String,
}

struct MonthRow {
    month: String,
    counts: Vec<String>,
}

#[derive(Template)]
#[template(path = "analytics.html")]
struct AnalyticsPage {
    t: Tr,
    lang: &'static str,
    frame: Frame,
    offsets: Vec<u32>,
    cohorts: Vec<CohortRow>,
    currency: String,
    /// Customers by (recency score, frequency score): rows r = 5..1, columns f = 1..5.
    grid: Vec<(u8, Vec<usize>)>,
    segments: Vec<SegmentRow>,
    states: Vec<&'static str>,
    months: Vec<MonthRow>,
}

/// `GET /analytics`.
pub(crate) async fn page(State(c): State<Console>, signed: SignedIn) -> Response {
    let t = signed.tr;
    let past = signed.past_param();
    let at: Uri = format!("/?{}", past.trim_start_matches('&'))
        .parse()
        .unwrap_or_default();
    // The three tables are independent: computed side by side, one task each.
    let (cohorts, rfm, lifecycle) = tokio::join!(
        tokio::spawn(http::customers::get_cohorts(
            State(c.app.clone()),
            signed.caller.clone(),
            Query::try_from_uri(&at),
        )),
        tokio::spawn(http::customers::get_rfm_grid(
            State(c.app.clone()),
            signed.caller.clone(),
            Query::try_from_uri(&at),
        )),
        tokio::spawn(http::customers::lifecycle_by_month(
            State(c.app.clone()),
            signed.caller.clone(),
            Query::try_from_uri(&at),
        )),
    );
    let table = |r: Result<Result<Json<Value>, ApiError>, tokio::task::JoinError>| match r {
        Ok(Ok(Json(v))) => Ok(v),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(ApiError::Internal(format!(
            "an analytics table failed: {e}"
        ))),
    };
    let (cohorts, rfm, lifecycle) = match (table(cohorts), table(rfm), table(lifecycle)) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return api_error_page(t, e),
    };
    let cohort_rows: Vec<CohortRow> = cohorts["cohorts"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| CohortRow {
                    cohort: text(&c["cohort"]),
                    size: text(&c["customers"]),
                    cells: c["periods"]
                        .as_array()
                        .map(|p| {
                            p.iter()
                                .map(|x| {
                                    let pct = text(&x["retention_pct"]);
                                    let heat = pct
                                        .parse::<f64>()
                                        .map_or(0, |v| (v / 10.0).clamp(0.0, 10.0).round() as u8);
                                    (pct, heat)
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    let width = cohort_rows.iter().map(|r| r.cells.len()).max().unwrap_or(0);
    let mut grid: Vec<(u8, Vec<usize>)> = (1..=5).rev().map(|r| (r, vec![0; 5])).collect();
    for cell in rfm["grid"].as_array().into_iter().flatten() {
        let (r, f) = (
            cell["r"].as_u64().unwrap_or(0),
            cell["f"].as_u64().unwrap_or(0),
        );
        if (1..=5).contains(&r) && (1..=5).contains(&f) {
            grid[(5 - r) as usize].1[(f - 1) as usize] =
                cell["customers"].as_u64().unwrap_or(0) as usize;
        }
    }
    let segments = rfm["segments"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| SegmentRow {
                    segment: rfm_name(t, &text(&s["segment"])),
                    customers: text(&s["customers"]),
                    monetary: text(&s["monetary"]),
                })
                .collect()
        })
        .unwrap_or_default();
    let states: Vec<&'static str> = rapport_projections::Lifecycle::ALL[1..]
        .iter()
        .map(|l| l.as_str())
        .collect();
    let months = lifecycle["months"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| MonthRow {
                    month: text(&m["month"]),
                    counts: states
                        .iter()
                        .map(|s| m["states"][*s].as_u64().unwrap_or(0).to_string())
                        .collect(),
                })
                .collect()
        })
        .unwrap_or_default();
    render(
        &AnalyticsPage {
            t,
            lang: t.lang.tag(),
            frame: signed.frame_travelling("analytics"),
            offsets: (0..width as u32).collect(),
            cohorts: cohort_rows,
            currency: text(&rfm["currency"]),
            grid,
            segments,
            states,
            months,
        },
        t,
    )
}

/// An RFM segment's name in the page's language (the API keeps the English name, which
/// is its identifier).
fn rfm_name(t: Tr, name: &str) -> String {
    let id: String = name
        .to_lowercase()
        .split(|c: char| !c.is_ascii_lowercase())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    let said = t.get(&format!("rfm-{id}"));
    // A name the catalogs do not know is shown as the API gives it.
    if said.starts_with("rfm-") {
        name.to_owned()
    } else {
        said
    }
}
