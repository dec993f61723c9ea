//! The alerts board (live), one alert's page, and the staff actions on it.

use askama::Template;
use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, Uri},
    response::{IntoResponse, Redirect, Response},
    Form, Json,
};
use rapport_projections::warnings::{Alert, Kind, Level};
use serde::Deserialize;
use serde_json::Value;

use super::{api_error_page, i18n::Arg, render, Console, Frame, SignedIn};
use crate::{http, http::AppState};

/// One alert as a card of the board.
pub(crate) struct Card {
    id: String,
    level: &'static str,
    kind: &'static str,
    status: &'static str,
    about: String,
    customers: usize,
    complaints: usize,
    communities: String,
    started: String,
    /// Level changes since it was raised, oldest first (how fast it grows).
    growth: String,
    /// Past a deadline now.
    overdue: bool,
    assignee: String,
}

pub(crate) fn level_name(l: Level) -> &'static str {
    match l {
        Level::Watch => "watch",
        Level::Warning => "warning",
        Level::Critical => "critical",
    }
}

pub(crate) fn snake<T: serde::Serialize>(v: &T) -> &'static str {
    match serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .as_deref()
    {
        Some("group_complaint") => "group_complaint",
        Some("spike") => "spike",
        Some("pyramid_risk") => "pyramid_risk",
        Some("open") => "open",
        Some("acknowledged") => "acknowledged",
        Some("resolved") => "resolved",
        Some("merged") => "merged",
        _ => "",
    }
}

/// A sentence of evidence in the page's language (`evidence-<id>` in the catalogs).
pub(crate) fn said(t: super::Tr, s: &rapport_projections::said::Said) -> String {
    let args: Vec<(&str, Arg)> = s
        .args
        .iter()
        .map(|(k, v)| (k.as_str(), Arg::from(v.clone())))
        .collect();
    t.with(&format!("evidence-{}", s.id), &args)
}

/// A time as the console shows it: to the minute, with its zone.
pub(crate) fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// An RFC 3339 time from the API as the console shows it (anything else as it is).
pub(crate) fn time_text(s: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| time(t.with_timezone(&chrono::Utc)))
        .unwrap_or_else(|_| s.to_owned())
}

impl Card {
    fn of(a: &Alert, t: super::Tr) -> Card {
        Card {
            id: a.id.clone(),
            level: level_name(a.level),
            kind: snake(&a.kind),
            status: snake(&a.status),
            about: a.keys.iter().cloned().collect::<Vec<_>>().join(", "),
            // A network's alert names its first agents; its size is the participant count.
            customers: match a.kind {
                Kind::PyramidRisk => a.evidence.observed,
                _ => a.customers.len(),
            },
            complaints: a.complaints.len(),
            communities: a.evidence.communities.join(", "),
            started: time(a.first_complaint_at),
            growth: a
                .levels
                .iter()
                .map(|(l, p)| format!("{} @{p}", t.pick("level", level_name(*l))))
                .collect::<Vec<_>>()
                .join(" → "),
            overdue: a.overdue.is_some(),
            assignee: a.assignee.clone().unwrap_or_default(),
        }
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct BoardFilters {
    level: Option<String>,
    status: Option<String>,
    kind: Option<String>,
    assignee: Option<String>,
    overdue: Option<String>,
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct BoardPage {
    t: super::Tr,
    lang: &'static str,
    frame: Frame,
    cards: Vec<Card>,
    /// "3 alerts · updated at position P".
    summary: String,
    /// The feed position the board shows: live updates follow from here.
    last_change: u64,
    /// Now, not a past point: the board follows the feed.
    live: bool,
    /// The past point for the cards' links (empty when live).
    past_link: String,
    level: String,
    status: String,
    kind: String,
    mine: bool,
    overdue: bool,
    query: String,
}

#[derive(Template)]
#[template(path = "alert_cards.html")]
struct Cards {
    t: super::Tr,
    cards: Vec<Card>,
    summary: String,
    past_link: String,
}

fn summary(t: super::Tr, total: usize, updated: &str) -> String {
    format!(
        "{} · {}",
        t.with("alerts-total", &[("count", total.into())]),
        t.with("alerts-updated", &[("position", updated.into())])
    )
}

/// The board's alerts, by the API's own list: critical first, then the latest update.
async fn cards(
    app: &AppState,
    signed: &SignedIn,
    uri: &Uri,
) -> Result<(Vec<Card>, usize, u64, String), Response> {
    // The board asks for every open alert by default; the filters are the API's (a
    // filter left at "any" is not sent).
    // The past the board is asked about travels as the API's own parameter.
    let query: Vec<&str> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| p.split_once('=').is_some_and(|(_, v)| !v.is_empty()))
        .filter(|p| !p.starts_with("when_kind=") && !p.starts_with("when="))
        .collect();
    let mut api_query = query.join("&");
    if !query.iter().any(|p| p.starts_with("status=")) {
        api_query.push_str("&status=open");
    }
    api_query.push_str("&limit=500");
    api_query.push_str(&signed.past_param());
    let api_uri: Uri = format!("/v1/alerts?{api_query}")
        .parse()
        .map_err(|_| api_error_page(signed.tr, http::ApiError::bad("query", "unreadable")))?;
    let Json(v) = http::alerts::list(
        State(app.clone()),
        signed.caller.clone(),
        Query::try_from_uri(&api_uri),
    )
    .await
    .map_err(|e| api_error_page(signed.tr, e))?;
    let mut alerts: Vec<Alert> = serde_json::from_value(v["alerts"].clone()).unwrap_or_default();
    alerts.sort_by(|a, b| {
        b.level
            .cmp(&a.level)
            .then(b.updated_at_position.cmp(&a.updated_at_position))
    });
    let total = v["total"].as_u64().unwrap_or(0) as usize;
    let last = v["last_change"].as_u64().unwrap_or(0);
    let updated = v["position"].as_u64().unwrap_or(0).to_string();
    Ok((
        alerts.iter().map(|a| Card::of(a, signed.tr)).collect(),
        total,
        last,
        updated,
    ))
}

/// `GET /alerts`: the board, open alerts by default, critical first.
pub(crate) async fn board(
    State(c): State<Console>,
    signed: SignedIn,
    uri: Uri,
    Query(f): Query<BoardFilters>,
) -> Response {
    let (cards, total, last_change, updated) = match cards(&c.app, &signed, &uri).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let page = BoardPage {
        t: signed.tr,
        lang: signed.tr.lang.tag(),
        frame: signed.frame_travelling("alerts"),
        live: signed.past.is_none(),
        past_link: signed.past_link(),
        cards,
        summary: summary(signed.tr, total, &updated),
        last_change,
        level: f.level.unwrap_or_default(),
        status: f.status.unwrap_or_default(),
        kind: f.kind.unwrap_or_default(),
        mine: f.assignee.as_deref() == Some("me"),
        overdue: f.overdue.as_deref() == Some("true"),
        query: uri.query().unwrap_or("").to_owned(),
    };
    render(&page, signed.tr)
}

/// `GET /alerts/board`: the cards alone, which the board's script swaps in when the feed
/// says an alert changed.
pub(crate) async fn board_fragment(
    State(c): State<Console>,
    signed: SignedIn,
    uri: Uri,
) -> Response {
    let (cards, total, _, updated) = match cards(&c.app, &signed, &uri).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    render(
        &Cards {
            t: signed.tr,
            cards,
            summary: summary(signed.tr, total, &updated),
            past_link: signed.past_link(),
        },
        signed.tr,
    )
}

/// `GET /alerts/feed?after=SEQ`: the API's alert feed (SSE) for the signed-in key.
pub(crate) async fn feed(
    State(c): State<Console>,
    signed: SignedIn,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    match http::alerts::subscribe(
        State(c.app.clone()),
        signed.caller.clone(),
        headers,
        Query::try_from_uri(&uri),
    )
    .await
    {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// A staff action as the alert page shows it.
struct ActionRow {
    action: String,
    at: String,
    by: String,
    note: String,
}

struct TimelineRow {
    /// Past the step the replay shows.
    future: bool,
    at: String,
    what: String,
    customer: String,
    complaint: String,
}

struct TextRow {
    at: String,
    customer: String,
    complaint: String,
    text: String,
}

#[derive(Template)]
#[template(path = "alert.html")]
struct AlertPage {
    t: super::Tr,
    lang: &'static str,
    frame: Frame,
    card: Card,
    graph: Option<super::graph::Graph>,
    /// Links of the replay control: previous step, next step, the whole cascade.
    replay: Replay,
    /// The top agent of a pyramid-risk alert's network.
    network: Option<String>,
    observed: String,
    connected: String,
    /// Why it holds its level now.
    support: String,
    ties: Vec<String>,
    timeline: Vec<TimelineRow>,
    phrases: Vec<String>,
    texts: Vec<TextRow>,
    actions: Vec<ActionRow>,
    h: super::workflow::Handling,
}

/// `GET /alerts/{id}`: the evidence, the timeline, what the complaints say (support and
/// admin), and the staff actions.
pub(crate) async fn alert(
    State(c): State<Console>,
    signed: SignedIn,
    Path(id): Path<String>,
    Query(s): Query<StepQuery>,
) -> Response {
    alert_page(&c, &signed, id, Default::default(), s.step).await
}

#[derive(Deserialize, Default)]
pub(crate) struct StepQuery {
    /// The replay's step: the cascade as it stood after this many timeline entries.
    step: Option<usize>,
}

/// The replay control's links and what the step shown is.
#[derive(Default)]
pub(crate) struct Replay {
    pub(crate) previous: Option<String>,
    pub(crate) next: Option<String>,
    pub(crate) whole: Option<String>,
    pub(crate) first: Option<String>,
    pub(crate) caption: String,
}

/// The alert's page, with the message of a form that failed on its field.
pub(crate) async fn alert_page(
    c: &Console,
    signed: &SignedIn,
    id: String,
    errors: super::workflow::FormErrors,
    step: Option<usize>,
) -> Response {
    let at = signed.api_uri("");
    let Json(v) = match http::alerts::get_one(
        State(c.app.clone()),
        signed.caller.clone(),
        Path(id),
        Query::try_from_uri(&at),
    )
    .await
    {
        Ok(v) => v,
        Err(e) => return api_error_page(signed.tr, e),
    };
    let Ok(a) = serde_json::from_value::<Alert>(v.clone()) else {
        return api_error_page(signed.tr, http::ApiError::Internal("alert shape".into()));
    };
    let t = signed.tr;
    let e = &a.evidence;
    let observed = t.with(
        "alert-observed",
        &[
            ("observed", Arg::from(e.observed)),
            ("expected", Arg::from(format!("{:.1}", e.expected))),
            ("statistic", Arg::from(format!("{:.2}", e.statistic))),
            ("threshold", Arg::from(format!("{:.1}", e.threshold))),
        ],
    );
    let connected = t.with(
        "alert-connected",
        &[
            ("connected", Arg::from(e.connected)),
            ("on_key", Arg::from(e.on_key)),
        ],
    );
    let network = (a.kind == Kind::PyramidRisk)
        .then(|| {
            a.keys
                .iter()
                .find_map(|k| k.strip_prefix("network:"))
                .map(str::to_owned)
        })
        .flatten();
    let (observed, connected) = match &network {
        Some(root) => (
            t.with(
                "alert-pyramid-network",
                &[
                    ("participants", Arg::from(e.observed)),
                    ("root", Arg::from(root.clone())),
                ],
            ),
            String::new(),
        ),
        None => (observed, connected),
    };
    let sp = &e.support;
    let support = if sp.level_key.is_empty() || network.is_some() {
        String::new()
    } else {
        let args = [
            ("key", Arg::from(sp.level_key.clone())),
            ("statistic", Arg::from(format!("{:.2}", sp.level_statistic))),
            ("position", Arg::from(sp.level_position.to_string())),
            (
                "since",
                Arg::from(sp.gone_since.map(time).unwrap_or_default()),
            ),
        ];
        let id = if sp.state == "gone" {
            "alert-support-gone"
        } else {
            "alert-support-holding"
        };
        t.with(id, &args)
    };
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let texts = v["evidence"]["complaint_texts"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| TextRow {
                    at: time_text(x["occurred_at"].as_str().unwrap_or("")),
                    customer: x["customer"].as_str().unwrap_or("").to_owned(),
                    complaint: x["complaint"].as_str().unwrap_or("").to_owned(),
                    text: x["text"].as_str().unwrap_or("").to_owned(),
                })
                .collect()
        })
        .unwrap_or_default();
    let graph = super::graph::layout(&v["graph"], step);
    let mut replay = Replay::default();
    if let Some(g) = graph.as_ref().filter(|g| g.steps > 1) {
        let here = format!("/alerts/{}", urlencode(&a.id));
        let past = signed.past_link();
        let link = |k: usize| format!("{here}?step={k}{past}#graph");
        replay.previous = (g.step > 1).then(|| link(g.step - 1));
        replay.next = (g.step < g.steps).then(|| link(g.step + 1));
        replay.first = (g.step > 1).then(|| link(1));
        replay.whole =
            (g.step < g.steps).then(|| format!("{here}?{}#graph", past.trim_start_matches('&')));
        let entry = e.timeline.get(g.step - 1);
        replay.caption = t.with(
            "graph-step",
            &[
                ("step", Arg::from(g.step)),
                ("steps", Arg::from(g.steps)),
                (
                    "at",
                    Arg::from(entry.map(|x| time(x.at)).unwrap_or_default()),
                ),
                (
                    "what",
                    Arg::from(entry.map(|x| t.pick("what", &x.what)).unwrap_or_default()),
                ),
                (
                    "customer",
                    Arg::from(entry.map(|x| x.customer.clone()).unwrap_or_default()),
                ),
            ],
        );
    }
    let shown_step = graph.as_ref().map_or(usize::MAX, |g| g.step);
    let page = AlertPage {
        t,
        lang: t.lang.tag(),
        frame: signed.frame_travelling("alerts"),
        graph,
        replay,
        observed,
        connected,
        support,
        ties: if e.said.is_empty() {
            e.ties.clone()
        } else {
            e.said.iter().map(|x| said(t, x)).collect()
        },
        timeline: e
            .timeline
            .iter()
            .enumerate()
            .map(|(i, x)| TimelineRow {
                future: i >= shown_step,
                at: time(x.at),
                what: t.pick("what", &x.what),
                customer: x.customer.clone(),
                complaint: x.complaint.clone(),
            })
            .collect(),
        phrases: strs(&v["evidence"]["shared_phrases"]),
        texts,
        actions: a
            .actions
            .iter()
            .map(|x| ActionRow {
                action: x.action.clone(),
                at: time(x.at),
                by: t.with(
                    "alert-by",
                    &[("key", x.by.clone().unwrap_or_default().into())],
                ),
                note: x.note.clone().unwrap_or_default(),
            })
            .collect(),
        h: super::workflow::Handling::of(c, signed, &a, errors).await,
        card: Card::of(&a, t),
        network,
    };
    render(&page, t)
}

#[derive(Deserialize)]
pub(crate) struct ActionForm {
    csrf: Option<String>,
    note: Option<String>,
}

async fn act(
    c: Console,
    signed: SignedIn,
    id: String,
    form: ActionForm,
    resolve: bool,
) -> Response {
    if let Some(refused) = signed.csrf_refused(form.csrf.as_deref()) {
        return refused;
    }
    let note = form.note.filter(|n| !n.trim().is_empty());
    let body = Bytes::from(serde_json::json!({ "note": note }).to_string());
    let state = State(c.app.clone());
    let caller = signed.caller.clone();
    let done = if resolve {
        http::workflow::resolve(state, caller, Path(id.clone()), body).await
    } else {
        http::workflow::acknowledge(state, caller, Path(id.clone()), body).await
    };
    match done {
        // Back to the alert once the read model shows the action.
        Ok(Json(v)) => {
            let position = v["position"].as_u64().unwrap_or(0);
            if !c.app.read_model.wait_for(position).await {
                tracing::warn!(
                    position,
                    "the console answered before the read model caught up"
                );
            }
            Redirect::to(&format!("/alerts/{}", urlencode(&id))).into_response()
        }
        Err(e) => api_error_page(signed.tr, e),
    }
}

/// `POST /alerts/{id}/acknowledge` (a form with the CSRF token and a note).
pub(crate) async fn acknowledge(
    State(c): State<Console>,
    signed: SignedIn,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    act(c, signed, id, form, false).await
}

/// `POST /alerts/{id}/resolve`.
pub(crate) async fn resolve(
    State(c): State<Console>,
    signed: SignedIn,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    act(c, signed, id, form, true).await
}

/// A path segment, percent-encoded (ids are client-chosen text).
pub(crate) fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
