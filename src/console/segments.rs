//! Segments: the list with sizes, the rule editor (errors shown on the field that caused
//! them), a segment's members (paged, and as CSV).

use askama::Template;
use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::Uri,
    response::{IntoResponse, Redirect, Response},
    Form, Json,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    alerts::{time_text, urlencode},
    api_error_page, render, text, Console, Frame, SignedIn, Tr,
};
use crate::{auth::Role, http, http::ApiError};

struct SegmentRow {
    id: String,
    name: String,
    members: String,
    revision: String,
    defined_at: String,
}

/// What the editor was sent, and the errors by field.
#[derive(Default)]
struct Editor {
    id: String,
    name: String,
    rule: String,
    id_error: Option<String>,
    name_error: Option<String>,
    rule_error: Option<String>,
    form_error: Option<String>,
}

#[derive(Template)]
#[template(path = "segments.html")]
struct ListPage {
    t: Tr,
    lang: &'static str,
    frame: Frame,
    segments: Vec<SegmentRow>,
    can_define: bool,
    editor: Editor,
}

const EXAMPLE_RULE: &str = r#"{"all": [
  {"field": "days_since_last_purchase", "op": ">=", "value": 90},
  {"field": "orders", "op": ">=", "value": 2}
]}"#;

async fn list_page(c: &Console, signed: &SignedIn, editor: Editor) -> Response {
    let at: Uri = format!("/?{}", signed.past_param().trim_start_matches('&'))
        .parse()
        .unwrap_or_else(|_| Uri::from_static("/"));
    let Json(v) = match http::segments::list(
        State(c.app.clone()),
        signed.caller.clone(),
        Query::try_from_uri(&at),
    )
    .await
    {
        Ok(v) => v,
        Err(e) => return api_error_page(signed.tr, e),
    };
    let segments = v["segments"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| SegmentRow {
                    id: text(&s["id"]),
                    name: text(&s["name"]),
                    members: text(&s["members"]),
                    revision: text(&s["revision"]),
                    defined_at: time_text(&text(&s["defined_at"])),
                })
                .collect()
        })
        .unwrap_or_default();
    render(
        &ListPage {
            t: signed.tr,
            lang: signed.tr.lang.tag(),
            frame: signed.frame_travelling("segments"),
            segments,
            can_define: matches!(
                signed.caller.role,
                Role::Support | Role::Analyst | Role::Admin
            ),
            editor,
        },
        signed.tr,
    )
}

/// `GET /segments`.
pub(crate) async fn list(State(c): State<Console>, signed: SignedIn) -> Response {
    let editor = Editor {
        rule: EXAMPLE_RULE.to_owned(),
        ..Default::default()
    };
    list_page(&c, &signed, editor).await
}

#[derive(Deserialize)]
pub(crate) struct DefineForm {
    csrf: Option<String>,
    id: String,
    name: String,
    rule: String,
}

/// `POST /segments`: defines a segment through the API; its errors go back to the
/// editor, each on the field it names.
pub(crate) async fn define(
    State(c): State<Console>,
    signed: SignedIn,
    Form(form): Form<DefineForm>,
) -> Response {
    if let Some(refused) = signed.csrf_refused(form.csrf.as_deref()) {
        return refused;
    }
    let t = signed.tr;
    let mut editor = Editor {
        id: form.id.trim().to_owned(),
        name: form.name.trim().to_owned(),
        rule: form.rule.clone(),
        ..Default::default()
    };
    let rule: Value = match serde_json::from_str(&form.rule) {
        Ok(r) => r,
        Err(e) => {
            editor.rule_error = Some(format!("{}: {e}", t.get("segment-rule-not-json")));
            let mut r = list_page(&c, &signed, editor).await;
            *r.status_mut() = axum::http::StatusCode::BAD_REQUEST;
            return r;
        }
    };
    let body = json!({"id": editor.id, "name": editor.name, "rule": rule});
    match http::segments::create(
        State(c.app.clone()),
        signed.caller.clone(),
        Bytes::from(body.to_string()),
    )
    .await
    {
        Ok((_, Json(v))) => {
            let position = v["position"].as_u64().unwrap_or(0);
            c.app.read_model.wait_for(position).await;
            Redirect::to(&format!("/segments/{}", urlencode(&editor.id))).into_response()
        }
        Err(e) => {
            let status = match &e {
                ApiError::Invalid(_) | ApiError::BadRequest { .. } => {
                    axum::http::StatusCode::BAD_REQUEST
                }
                ApiError::Conflict { .. } => axum::http::StatusCode::CONFLICT,
                _ => return api_error_page(t, e),
            };
            for (path, message) in field_errors(e) {
                let slot = if path.starts_with("/id") {
                    &mut editor.id_error
                } else if path.starts_with("/name") {
                    &mut editor.name_error
                } else if path.starts_with("/rule") {
                    &mut editor.rule_error
                } else {
                    &mut editor.form_error
                };
                let line = if path.starts_with("/rule/") {
                    format!("{path}: {message}")
                } else {
                    message
                };
                match slot {
                    Some(s) => {
                        s.push_str("; ");
                        s.push_str(&line);
                    }
                    None => *slot = Some(line),
                }
            }
            let mut r = list_page(&c, &signed, editor).await;
            *r.status_mut() = status;
            r
        }
    }
}

/// An API error as (JSON pointer, message) pairs.
fn field_errors(e: ApiError) -> Vec<(String, String)> {
    match e {
        ApiError::Invalid(errs) => errs.0.into_iter().map(|f| (f.path, f.rule)).collect(),
        ApiError::BadRequest { field, message } => vec![(field, message)],
        other => vec![(String::new(), other.status_and_message().1)],
    }
}

struct MemberRow {
    customer: String,
    lifecycle: String,
    orders: String,
    revenue: String,
    last_purchase: String,
    communities: String,
}

#[derive(Template)]
#[template(path = "segment.html")]
struct SegmentPage {
    t: Tr,
    lang: &'static str,
    frame: Frame,
    id: String,
    name: String,
    rule: String,
    /// The CSV of every member (at the same point in time as the page).
    csv: String,
    total: String,
    members: Vec<MemberRow>,
    next: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct MembersQuery {
    cursor: Option<String>,
}

/// `GET /segments/{id}?cursor=`: the definition and a page of members.
pub(crate) async fn segment(
    State(c): State<Console>,
    signed: SignedIn,
    Path(id): Path<String>,
    Query(q): Query<MembersQuery>,
) -> Response {
    let t = signed.tr;
    let none = Uri::from_static("/");
    let past = signed.past_param();
    let at: Uri = format!("/?{}", past.trim_start_matches('&'))
        .parse()
        .unwrap_or(none.clone());
    let Json(def) = match http::segments::get_one(
        State(c.app.clone()),
        signed.caller.clone(),
        Path(id.clone()),
        Query::try_from_uri(&at),
    )
    .await
    {
        Ok(v) => v,
        Err(e) => return api_error_page(t, e),
    };
    let members_uri: Uri = match &q.cursor {
        Some(cur) => format!("/?limit=50&cursor={}{past}", urlencode(cur)),
        None => format!("/?limit=50{past}"),
    }
    .parse()
    .unwrap_or(none);
    let resp = match http::segments::members(
        State(c.app.clone()),
        signed.caller.clone(),
        Path(id.clone()),
        Query::try_from_uri(&members_uri),
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return api_error_page(t, e),
    };
    let bytes = match axum::body::to_bytes(resp.into_body(), usize::MAX).await {
        Ok(b) => b,
        Err(e) => return api_error_page(t, ApiError::Internal(e.to_string())),
    };
    let page: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let members = page["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| MemberRow {
                    customer: text(&m["customer"]),
                    lifecycle: t.pick("lifecycle", &text(&m["lifecycle"])),
                    orders: text(&m["orders"]),
                    revenue: m["revenue"]
                        .as_object()
                        .map(|r| {
                            r.iter()
                                .map(|(k, v)| format!("{k} {}", text(v)))
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_default(),
                    last_purchase: time_text(&text(&m["last_purchase"])),
                    communities: m["communities"]
                        .as_array()
                        .map(|a| a.iter().map(text).collect::<Vec<_>>().join(", "))
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    let next = page["next_cursor"].as_str().map(|cur| {
        format!(
            "/segments/{}?cursor={}{}",
            urlencode(&id),
            urlencode(cur),
            signed.past_link()
        )
    });
    render(
        &SegmentPage {
            t,
            lang: t.lang.tag(),
            frame: signed.frame_travelling("segments"),
            csv: format!(
                "/segments/{}/members.csv?{}",
                urlencode(&id),
                signed.past_link().trim_start_matches('&')
            ),
            name: text(&def["name"]),
            rule: serde_json::to_string_pretty(&def["rule"]).unwrap_or_default(),
            total: text(&page["total"]),
            id,
            members,
            next,
        },
        t,
    )
}

/// `GET /segments/{id}/members.csv`: every member, as the API's CSV.
pub(crate) async fn members_csv(
    State(c): State<Console>,
    signed: SignedIn,
    Path(id): Path<String>,
) -> Response {
    let uri: Uri = format!("/?format=csv{}", signed.past_param())
        .parse()
        .unwrap_or_else(|_| Uri::from_static("/?format=csv"));
    match http::segments::members(
        State(c.app.clone()),
        signed.caller.clone(),
        Path(id),
        Query::try_from_uri(&uri),
    )
    .await
    {
        Ok(r) => r,
        Err(e) => api_error_page(signed.tr, e),
    }
}
