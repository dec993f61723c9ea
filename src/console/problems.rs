//! Problems: the root causes support staff group alerts under, and resolving one (which
//! resolves its alerts and closes their complaints still open).

use askama::Template;
use axum::{
    body::Bytes,
    extract::{Path, State},
    response::{IntoResponse, Redirect, Response},
    Form,
};
use rapport_projections::warnings::ProblemStatus;
use serde::Deserialize;

use super::{
    alerts::{time, urlencode},
    api_error_page, render,
    workflow::problem_status,
    Console, Frame, SignedIn, Tr,
};
use crate::{auth::Role, http};

struct ProblemRow {
    id: String,
    title: String,
    status: String,
    opened: String,
    alerts: usize,
}

struct AlertRow {
    id: String,
    level: String,
    status: String,
    complaints: usize,
}

#[derive(Template)]
#[template(path = "problems.html")]
struct ListPage {
    t: Tr,
    lang: &'static str,
    frame: Frame,
    problems: Vec<ProblemRow>,
    can_act: bool,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "problem.html")]
struct ProblemPage {
    t: Tr,
    lang: &'static str,
    frame: Frame,
    p: ProblemRow,
    open: bool,
    alerts: Vec<AlertRow>,
    complaints: Vec<String>,
    actions: Vec<String>,
    can_act: bool,
}

fn can_act(signed: &SignedIn) -> bool {
    matches!(signed.caller.role, Role::Support | Role::Admin)
}

async fn list_page(c: &Console, signed: &SignedIn, error: Option<String>) -> Response {
    let t = signed.tr;
    let problems = {
        let st = c.app.read_model.state.read().await;
        let mut ps: Vec<_> = st.warnings.problems().collect();
        ps.sort_by_key(|p| std::cmp::Reverse(p.opened_position));
        ps.into_iter()
            .map(|p| ProblemRow {
                id: p.id.clone(),
                title: p.title.clone(),
                status: problem_status(t, p.status),
                opened: time(p.opened_at),
                alerts: p.alerts.len(),
            })
            .collect()
    };
    render(
        &ListPage {
            t,
            lang: t.lang.tag(),
            frame: signed.frame("problems"),
            problems,
            can_act: can_act(signed),
            error,
        },
        t,
    )
}

/// `GET /problems`.
pub(crate) async fn list(State(c): State<Console>, signed: SignedIn) -> Response {
    if signed.caller.role == Role::Ingest {
        return api_error_page(signed.tr, http::ApiError::Forbidden(String::new()));
    }
    list_page(&c, &signed, None).await
}

#[derive(Deserialize)]
pub(crate) struct OpenForm {
    csrf: Option<String>,
    title: Option<String>,
}

/// `POST /problems`: opens one through the API.
pub(crate) async fn open(
    State(c): State<Console>,
    signed: SignedIn,
    Form(f): Form<OpenForm>,
) -> Response {
    if let Some(refused) = signed.csrf_refused(f.csrf.as_deref()) {
        return refused;
    }
    let body = serde_json::json!({"title": f.title.unwrap_or_default().trim()});
    match http::problems::create(
        State(c.app.clone()),
        signed.caller.clone(),
        Bytes::from(body.to_string()),
    )
    .await
    {
        Ok((_, axum::Json(v))) => {
            c.app
                .read_model
                .wait_for(v["position"].as_u64().unwrap_or(0))
                .await;
            let id = v["problem"].as_str().unwrap_or("");
            Redirect::to(&format!("/problems/{}", urlencode(id))).into_response()
        }
        Err(http::ApiError::Invalid(errs)) => {
            let msg = errs
                .0
                .iter()
                .map(|e| format!("{}: {}", e.path.trim_start_matches('/'), e.rule))
                .collect::<Vec<_>>()
                .join("; ");
            let mut r = list_page(&c, &signed, Some(msg)).await;
            *r.status_mut() = axum::http::StatusCode::BAD_REQUEST;
            r
        }
        Err(e) => api_error_page(signed.tr, e),
    }
}

/// `GET /problems/{id}`.
pub(crate) async fn problem(
    State(c): State<Console>,
    signed: SignedIn,
    Path(id): Path<String>,
) -> Response {
    let t = signed.tr;
    if signed.caller.role == Role::Ingest {
        return api_error_page(t, http::ApiError::Forbidden(String::new()));
    }
    let page = {
        let st = c.app.read_model.state.read().await;
        let Some(p) = st.warnings.problem(&id) else {
            return api_error_page(t, http::ApiError::NotFound(format!("no problem `{id}`")));
        };
        let alerts = p
            .alerts
            .iter()
            .filter_map(|a| st.warnings.get(&st.warnings.live_id(a)))
            .map(|a| AlertRow {
                id: a.id.clone(),
                level: t.pick("level", super::alerts::level_name(a.level)),
                status: t.pick("status", super::alerts::snake(&a.status)),
                complaints: a.complaints.len(),
            })
            .collect();
        ProblemPage {
            t,
            lang: t.lang.tag(),
            frame: signed.frame("problems"),
            open: p.status == ProblemStatus::Open,
            alerts,
            complaints: p.complaints.iter().cloned().collect(),
            actions: p
                .actions
                .iter()
                .map(|a| {
                    let mut line = format!("{} · {}", time(a.at), a.action);
                    if let Some(b) = &a.by {
                        line.push_str(&format!(
                            " · {}",
                            t.with("alert-by", &[("key", b.clone().into())])
                        ));
                    }
                    if let Some(n) = &a.note {
                        line.push_str(&format!(" · {n}"));
                    }
                    line
                })
                .collect(),
            p: ProblemRow {
                id: p.id.clone(),
                title: p.title.clone(),
                status: problem_status(t, p.status),
                opened: time(p.opened_at),
                alerts: p.alerts.len(),
            },
            can_act: can_act(&signed),
        }
    };
    render(&page, t)
}

#[derive(Deserialize)]
pub(crate) struct ResolveForm {
    csrf: Option<String>,
    note: Option<String>,
}

/// `POST /problems/{id}/resolve`.
pub(crate) async fn resolve(
    State(c): State<Console>,
    signed: SignedIn,
    Path(id): Path<String>,
    Form(f): Form<ResolveForm>,
) -> Response {
    if let Some(refused) = signed.csrf_refused(f.csrf.as_deref()) {
        return refused;
    }
    let note = f.note.filter(|n| !n.trim().is_empty());
    let body = serde_json::json!({ "note": note });
    match http::problems::resolve(
        State(c.app.clone()),
        signed.caller.clone(),
        Path(id.clone()),
        Bytes::from(body.to_string()),
    )
    .await
    {
        Ok(axum::Json(v)) => {
            c.app
                .read_model
                .wait_for(v["position"].as_u64().unwrap_or(0))
                .await;
            Redirect::to(&format!("/problems/{}", urlencode(&id))).into_response()
        }
        Err(e) => api_error_page(signed.tr, e),
    }
}
