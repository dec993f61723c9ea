//! Handling an alert in the console: who owns it, its deadlines, the verdict, the problem
//! it belongs to, merging, and the customers exposed to it. Every form posts through the
//! API's own handlers; an error comes back on the field that caused it.

use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::{StatusCode, Uri},
    response::{IntoResponse, Redirect, Response},
    Form, Json,
};
use rapport_projections::warnings::{Alert, ProblemStatus, Status};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    alerts::{alert_page, time, time_text, urlencode},
    api_error_page,
    i18n::Arg,
    Console, SignedIn, Tr,
};
use crate::{
    auth::Role,
    http::{self, ApiError},
};

/// Exposed customers shown on the page (the CSV has them all).
const EXPOSED_SHOWN_MAX: usize = 20;

/// The message of a failed form, by form.
#[derive(Default)]
pub(crate) struct FormErrors {
    pub(crate) assign: Option<String>,
    pub(crate) review: Option<String>,
    pub(crate) merge: Option<String>,
    pub(crate) link: Option<String>,
    pub(crate) segment: Option<String>,
}

pub(crate) struct Option2 {
    pub(crate) value: String,
    pub(crate) label: String,
}

pub(crate) struct ExposedRow {
    pub(crate) customer: String,
    pub(crate) amount: String,
    pub(crate) reach: String,
    pub(crate) last: String,
}

pub(crate) struct ExposureView {
    pub(crate) summary: String,
    /// What the buyers bought: the alert's keys that purchases name.
    pub(crate) keys: String,
    pub(crate) rows: Vec<ExposedRow>,
}

/// The handling section of an alert's page.
pub(crate) struct Handling {
    pub(crate) assignee: String,
    pub(crate) ack_by: String,
    pub(crate) resolve_by: String,
    pub(crate) overdue: String,
    pub(crate) severity: String,
    pub(crate) categories: String,
    pub(crate) review: String,
    pub(crate) problem: String,
    pub(crate) merged_into: String,
    pub(crate) merged: Vec<String>,
    pub(crate) staff: Vec<Option2>,
    pub(crate) merge_targets: Vec<Option2>,
    pub(crate) problems: Vec<Option2>,
    pub(crate) exposure: Option<ExposureView>,
    pub(crate) errors: FormErrors,
    pub(crate) can_act: bool,
    pub(crate) can_segment: bool,
}

fn money(v: &Value) -> String {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(c, a)| format!("{} {c}", a.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(" + ")
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "0".into())
}

impl Handling {
    pub(crate) async fn of(
        c: &Console,
        signed: &SignedIn,
        a: &Alert,
        errors: FormErrors,
    ) -> Handling {
        let t = signed.tr;
        let deadline = |d: Option<chrono::DateTime<chrono::Utc>>| {
            d.map_or_else(|| t.get("alert-no-deadline"), time)
        };
        // The past is read, not acted on: no forms, and no exposure (it is of now).
        let now = signed.past.is_none();
        let can_act = now && matches!(signed.caller.role, Role::Support | Role::Admin);
        let keys = c.app.keys.list().unwrap_or_default();
        let label = |id: &str| {
            keys.iter()
                .find(|k| k.id == id)
                .map(|k| match &k.label {
                    Some(l) => format!("{l} ({id})"),
                    None => id.to_owned(),
                })
                .unwrap_or_else(|| id.to_owned())
        };
        let staff = if can_act {
            keys.iter()
                .filter(|k| k.revoked_at.is_none() && matches!(k.role, Role::Support | Role::Admin))
                .map(|k| Option2 {
                    value: k.id.clone(),
                    label: label(&k.id),
                })
                .collect()
        } else {
            vec![]
        };
        let (merge_targets, problems) = {
            let st = c.app.read_model.state.read().await;
            let targets = st
                .warnings
                .alerts()
                .filter(|x| x.id != a.id && x.status.is_active())
                .map(|x| Option2 {
                    value: x.id.clone(),
                    label: format!(
                        "{} · {}",
                        x.id,
                        x.keys.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                })
                .collect();
            let problems = st
                .warnings
                .problems()
                .filter(|p| p.status == ProblemStatus::Open)
                .map(|p| Option2 {
                    value: p.id.clone(),
                    label: p.title.clone(),
                })
                .collect();
            (targets, problems)
        };
        Handling {
            assignee: a
                .assignee
                .as_deref()
                .map_or_else(|| t.get("alert-nobody"), label),
            ack_by: deadline(a.deadlines.acknowledge_by),
            resolve_by: deadline(a.deadlines.resolve_by),
            overdue: a
                .overdue
                .as_ref()
                .map(|o| {
                    t.with(
                        &format!("alert-overdue-{}", o.deadline),
                        &[("due", Arg::from(time(o.due)))],
                    )
                })
                .unwrap_or_default(),
            severity: a
                .severity_max
                .map(|s| s.to_string())
                .unwrap_or_else(|| "–".into()),
            categories: a.categories.iter().cloned().collect::<Vec<_>>().join(", "),
            review: a.review.as_ref().map_or_else(
                || t.get("alert-not-reviewed"),
                |r| {
                    t.with(
                        "alert-verdict-by",
                        &[
                            ("verdict", Arg::from(t.pick("verdict", r.verdict.as_str()))),
                            ("reason", Arg::from(r.reason.clone())),
                            ("key", Arg::from(r.by.clone().unwrap_or_default())),
                        ],
                    )
                },
            ),
            problem: a.problem.clone().unwrap_or_default(),
            merged_into: a.merged_into.clone().unwrap_or_default(),
            merged: a.merged.iter().cloned().collect(),
            staff,
            merge_targets,
            problems,
            exposure: if now {
                exposure(c, signed, &a.id).await
            } else {
                None
            },
            errors,
            can_act: can_act && a.status != Status::Merged,
            can_segment: now && signed.caller.role != Role::Ingest,
        }
    }
}

async fn exposure(c: &Console, signed: &SignedIn, id: &str) -> Option<ExposureView> {
    let t = signed.tr;
    let uri: Uri = format!("/?limit={EXPOSED_SHOWN_MAX}").parse().ok()?;
    let resp = http::exposure::get_exposure(
        State(c.app.clone()),
        signed.caller.clone(),
        Path(id.to_owned()),
        Query::try_from_uri(&uri),
    )
    .await
    .ok()?;
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    let keys: Vec<&str> = v["keys"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let rows: Vec<ExposedRow> = v["customers"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| ExposedRow {
                    customer: x["customer"].as_str().unwrap_or("").to_owned(),
                    amount: money(&x["amount"]),
                    reach: format!("{} · {}", x["communities"], x["influence"]),
                    last: time_text(x["last_bought_at"].as_str().unwrap_or("")),
                })
                .collect()
        })
        .unwrap_or_default();
    Some(ExposureView {
        summary: if rows.is_empty() {
            t.get("alert-exposure-none")
        } else {
            t.with(
                "alert-exposure-summary",
                &[
                    (
                        "count",
                        Arg::from(v["total"].as_u64().unwrap_or(0) as usize),
                    ),
                    ("amount", Arg::from(money(&v["amount"]))),
                    (
                        "since",
                        Arg::from(time_text(v["since"].as_str().unwrap_or(""))),
                    ),
                ],
            )
        },
        keys: if keys.is_empty() {
            String::new()
        } else {
            t.with(
                "alert-exposure-keys",
                &[("keys", Arg::from(keys.join(", ")))],
            )
        },
        rows,
    })
}

#[derive(Deserialize)]
pub(crate) struct WorkflowForm {
    csrf: Option<String>,
    assignee: Option<String>,
    verdict: Option<String>,
    reason: Option<String>,
    into: Option<String>,
    problem: Option<String>,
    title: Option<String>,
    id: Option<String>,
    name: Option<String>,
}

fn given(s: &Option<String>) -> Option<String> {
    s.as_ref()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// The message of an API error, for the field of a form.
pub(crate) fn message(e: &ApiError) -> String {
    match e {
        ApiError::Invalid(errs) => errs
            .0
            .iter()
            .map(|f| format!("{}: {}", f.path.trim_start_matches('/'), f.rule))
            .collect::<Vec<_>>()
            .join("; "),
        ApiError::BadRequest { field, message } => {
            format!("{}: {message}", field.trim_start_matches('/'))
        }
        ApiError::Conflict { message, .. } | ApiError::NotFound(message) => message.clone(),
        ApiError::Forbidden(m) => m.clone(),
        _ => String::new(),
    }
}

/// After an action: back to the alert once the read model shows it, or the page again
/// with the error on the form's field.
async fn done(
    c: &Console,
    signed: &SignedIn,
    id: &str,
    result: Result<Value, ApiError>,
    slot: fn(&mut FormErrors) -> &mut Option<String>,
) -> Response {
    match result {
        Ok(v) => {
            let position = v["position"].as_u64().unwrap_or(0);
            c.app.read_model.wait_for(position).await;
            Redirect::to(&format!("/alerts/{}", urlencode(id))).into_response()
        }
        Err(e) => {
            let status = match &e {
                ApiError::Invalid(_) | ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
                ApiError::Conflict { .. } => StatusCode::CONFLICT,
                _ => return api_error_page(signed.tr, e),
            };
            let mut errors = FormErrors::default();
            *slot(&mut errors) = Some(message(&e));
            let mut r = alert_page(c, signed, id.to_owned(), errors, None).await;
            *r.status_mut() = status;
            r
        }
    }
}

/// `POST /alerts/{id}/assign`, `/review`, `/merge`, `/link`, `/exposure/segment`.
pub(crate) async fn act(
    State(c): State<Console>,
    signed: SignedIn,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<WorkflowForm>,
) -> Response {
    if let Some(refused) = signed.csrf_refused(f.csrf.as_deref()) {
        return refused;
    }
    let app = || State(c.app.clone());
    let caller = || signed.caller.clone();
    let body = |v: Value| Bytes::from(v.to_string());
    let json = |r: Result<Json<Value>, ApiError>| r.map(|Json(v)| v);
    match action.as_str() {
        "assign" => {
            let b = body(json!({"assignee": given(&f.assignee).unwrap_or_default()}));
            let r = json(http::workflow::assign(app(), caller(), Path(id.clone()), b).await);
            done(&c, &signed, &id, r, |e| &mut e.assign).await
        }
        "review" => {
            let mut v = json!({"verdict": given(&f.verdict).unwrap_or_default()});
            if let Some(r) = given(&f.reason) {
                v["reason"] = r.into();
            }
            let r = json(http::workflow::review(app(), caller(), Path(id.clone()), body(v)).await);
            done(&c, &signed, &id, r, |e| &mut e.review).await
        }
        "merge" => {
            let b = body(json!({"into": given(&f.into).unwrap_or_default()}));
            let r = json(http::workflow::merge(app(), caller(), Path(id.clone()), b).await);
            done(&c, &signed, &id, r, |e| &mut e.merge).await
        }
        "link" => {
            let r = link(&c, &signed, &id, &f).await;
            done(&c, &signed, &id, r, |e| &mut e.link).await
        }
        "exposure-segment" => {
            let mut v = json!({"id": given(&f.id).unwrap_or_default()});
            if let Some(n) = given(&f.name) {
                v["name"] = n.into();
            }
            let r = http::exposure::to_segment(app(), caller(), Path(id.clone()), body(v))
                .await
                .map(|(_, Json(v))| v);
            match r {
                Ok(v) => {
                    let position = v["position"].as_u64().unwrap_or(0);
                    c.app.read_model.wait_for(position).await;
                    let seg = v["segment"].as_str().unwrap_or("");
                    Redirect::to(&format!("/segments/{}", urlencode(seg))).into_response()
                }
                Err(e) => done(&c, &signed, &id, Err(e), |e| &mut e.segment).await,
            }
        }
        _ => api_error_page(
            signed.tr,
            ApiError::NotFound(format!("no action `{action}`")),
        ),
    }
}

/// Links the alert to the chosen problem, or to a new one with the given title.
async fn link(
    c: &Console,
    signed: &SignedIn,
    id: &str,
    f: &WorkflowForm,
) -> Result<Value, ApiError> {
    let problem = match (given(&f.problem), given(&f.title)) {
        (_, Some(title)) => {
            let (_, Json(v)) = http::problems::create(
                State(c.app.clone()),
                signed.caller.clone(),
                Bytes::from(json!({"title": title}).to_string()),
            )
            .await?;
            // The link is checked against the read model: it must hold the new problem.
            c.app
                .read_model
                .wait_for(v["position"].as_u64().unwrap_or(0))
                .await;
            v["problem"].as_str().unwrap_or("").to_owned()
        }
        (Some(p), None) => p,
        (None, None) => {
            return Err(ApiError::bad(
                "/problem",
                "choose a problem or give a new one's title",
            ))
        }
    };
    let Json(v) = http::problems::link(
        State(c.app.clone()),
        signed.caller.clone(),
        Path(problem),
        Bytes::from(json!({"alert": id}).to_string()),
    )
    .await?;
    Ok(v)
}

/// `GET /alerts/{id}/exposure.csv`: every exposed customer, as the API's CSV.
pub(crate) async fn exposure_csv(
    State(c): State<Console>,
    signed: SignedIn,
    Path(id): Path<String>,
    uri: Uri,
) -> Response {
    let bom = if uri.query().unwrap_or("").contains("bom=true") {
        "&bom=true"
    } else {
        ""
    };
    let api: Uri = match format!("/?format=csv{bom}").parse() {
        Ok(u) => u,
        Err(_) => return api_error_page(signed.tr, ApiError::bad("query", "unreadable")),
    };
    match http::exposure::get_exposure(
        State(c.app.clone()),
        signed.caller.clone(),
        Path(id),
        Query::try_from_uri(&api),
    )
    .await
    {
        Ok(r) => r,
        Err(e) => api_error_page(signed.tr, e),
    }
}

/// Words for the problem status.
pub(crate) fn problem_status(t: Tr, s: ProblemStatus) -> String {
    t.get(match s {
        ProblemStatus::Open => "problem-status-open",
        ProblemStatus::Resolved => "problem-status-resolved",
    })
}
