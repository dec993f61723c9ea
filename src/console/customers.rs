//! Customer 360: find a customer by id; their profile and their paged timeline.

use askama::Template;
use axum::{
    extract::{Path, Query, State},
    http::Uri,
    response::{Redirect, Response},
    Json,
};
use serde::Deserialize;
use serde_json::Value;

use super::{
    alerts::{time_text, urlencode},
    api_error_page, render, Console, Frame, SignedIn, Tr,
};
use crate::{auth::Role, http};

#[derive(Template)]
#[template(path = "customers.html")]
struct FindPage {
    t: Tr,
    lang: &'static str,
    frame: Frame,
    /// Support and admin: the search by identifier.
    can_lookup: bool,
    kinds: &'static [&'static str],
    kind: String,
    value: String,
    /// The message on the value's field.
    error: Option<String>,
    /// Several people hold the identifier.
    found: Vec<String>,
}

#[derive(Deserialize)]
pub(crate) struct FindQuery {
    id: Option<String>,
    kind: Option<String>,
    value: Option<String>,
}

fn given(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// `GET /customers?id=` or `?kind=&value=`: the search forms, or straight to the
/// customer (by id, or the one person holding the identifier).
pub(crate) async fn find(
    State(c): State<Console>,
    signed: SignedIn,
    Query(q): Query<FindQuery>,
) -> Response {
    let to = |id: &str| {
        axum::response::IntoResponse::into_response(Redirect::to(&format!(
            "/customers/{}",
            urlencode(id)
        )))
    };
    if let Some(id) = given(q.id) {
        return to(&id);
    }
    let can_lookup = matches!(signed.caller.role, Role::Support | Role::Admin);
    let kind = given(q.kind).unwrap_or_else(|| "phone".into());
    let value = given(q.value);
    let (mut error, mut found) = (None, Vec::new());
    if let (Some(v), true) = (&value, can_lookup) {
        match super::identity::search(&c, &signed, &kind, v).await {
            Ok(super::identity::Found::One(id)) => return to(&id),
            Ok(super::identity::Found::Several(ids)) => found = ids,
            Ok(super::identity::Found::Error(e)) => error = Some(e),
            Err(page) => return page,
        }
    }
    let page = FindPage {
        t: signed.tr,
        lang: signed.tr.lang.tag(),
        frame: signed.frame("customers"),
        can_lookup,
        kinds: super::identity::KINDS,
        kind,
        value: value.unwrap_or_default(),
        error,
        found,
    };
    let mut r = render(&page, signed.tr);
    if page.error.is_some() {
        *r.status_mut() = axum::http::StatusCode::BAD_REQUEST;
    }
    r
}

/// One row of the profile: a label (message id) and its value as text.
struct Row {
    label: &'static str,
    value: String,
}

struct EventRow {
    position: String,
    at: String,
    event_type: String,
    data: String,
}

#[derive(Template)]
#[template(path = "customer.html")]
struct CustomerPage {
    t: Tr,
    lang: &'static str,
    frame: Frame,
    title: String,
    erased: bool,
    identity: Vec<Row>,
    profile: Vec<Row>,
    events: Vec<EventRow>,
    older: Option<String>,
    /// Support and admin, on the page of now: the forms that record a resolution and
    /// outreach.
    can_record: bool,
    id: String,
    open_complaints: Vec<String>,
    channels: &'static [&'static str],
    person: super::identity::PersonView,
    errors: IdentityErrors,
}

/// Messages on the merge and unmerge forms after a refused action.
#[derive(Default)]
pub(crate) struct IdentityErrors {
    pub(crate) merge: Option<String>,
    pub(crate) unmerge: Option<String>,
}

/// A JSON value as one line of text: strings as they are, lists joined, maps as
/// `key value` pairs, nothing for null.
fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(", "),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k} {}", text(v)))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

#[derive(Deserialize)]
pub(crate) struct TimelineQuery {
    cursor: Option<String>,
}

/// `GET /customers/{id}?cursor=`: the profile as the API gives it to this key (identity
/// decrypted for support and admin, pseudonyms for analysts), and a page of events.
pub(crate) async fn customer(
    State(c): State<Console>,
    signed: SignedIn,
    Path(id): Path<String>,
    Query(q): Query<TimelineQuery>,
) -> Response {
    page(&c, &signed, id, q.cursor, IdentityErrors::default()).await
}

/// The customer page, with messages on the identity forms when an action was refused.
pub(crate) async fn page(
    c: &Console,
    signed: &SignedIn,
    id: String,
    cursor: Option<String>,
    errors: IdentityErrors,
) -> Response {
    let t = signed.tr;
    let none = Uri::from_static("/");
    let at: Uri = format!("/?{}", signed.past_param().trim_start_matches('&'))
        .parse()
        .unwrap_or(none.clone());
    let Json(p) = match http::customers::get_customer(
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
    let timeline_uri: Uri = match &cursor {
        Some(cur) => format!("/?cursor={}", urlencode(cur))
            .parse()
            .unwrap_or(none.clone()),
        None => none.clone(),
    };
    let Json(tl) = match http::customers::timeline(
        State(c.app.clone()),
        signed.caller.clone(),
        Path(id.clone()),
        Query::try_from_uri(&timeline_uri),
    )
    .await
    {
        Ok(v) => v,
        Err(e) => return api_error_page(t, e),
    };
    let ident = &p["identity"];
    let identity = [
        ("field-name", "name"),
        ("field-email", "email"),
        ("field-phone", "phone"),
    ]
    .into_iter()
    .filter(|(_, k)| !ident[k].is_null())
    .map(|(label, k)| Row {
        label,
        value: text(&ident[k]),
    })
    .collect();
    let at = |v: &Value| time_text(&text(v));
    let count = |v: &Value| {
        v.as_array()
            .map_or_else(|| text(v), |a| a.len().to_string())
    };
    let profile = [
        (
            "field-lifecycle",
            t.pick("lifecycle", &text(&p["lifecycle"])),
        ),
        (
            "field-relationship",
            t.pick("relationship", &text(&p["relationship"])),
        ),
        ("field-first-purchase", at(&p["first_purchase"])),
        ("field-last-purchase", at(&p["last_purchase"])),
        (
            "field-complaints",
            format!(
                "{} / {}",
                count(&p["complaints"]["open"]),
                count(&p["complaints"]["resolved"])
            ),
        ),
    ]
    .into_iter()
    .chain(
        [
            ("field-orders", &p["orders"]),
            ("field-revenue", &p["revenue"]),
            ("field-aov", &p["average_order_value"]),
            ("field-region", &p["region"]),
            ("field-channel", &p["channel"]),
            ("field-communities", &p["community"]["communities"]),
            ("field-tags", &p["tags"]),
            ("field-referred-by", &p["referrals"]["referred_by"]),
            ("field-referees", &p["referrals"]["referees"]),
            ("field-influence", &p["influence"]),
            ("field-outreach", &p["outreach"]["contacts"]),
        ]
        .into_iter()
        .map(|(label, v)| (label, text(v))),
    )
    .chain([
        (
            "field-marketing-consent",
            match p["consent"]["marketing_channels"].as_array() {
                Some(a) if !a.is_empty() => a
                    .iter()
                    .map(|c| t.pick("channel", &text(c)))
                    .collect::<Vec<_>>()
                    .join(", "),
                _ => t.get("consent-none"),
            },
        ),
        (
            "field-without-consent",
            count(&p["consent"]["contacts_without_consent"]),
        ),
    ])
    .map(|(label, value)| Row { label, value })
    .collect();
    let events = tl["events"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| EventRow {
                    position: text(&e["position"]),
                    at: time_text(&text(&e["occurred_at"])),
                    event_type: {
                        let ty = text(&e["type"]);
                        let said = t.pick("event", &ty);
                        // A type the catalogs do not name is shown as the API gives it.
                        if said.starts_with("event-") {
                            ty
                        } else {
                            said
                        }
                    },
                    data: serde_json::to_string(&e["data"]).unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    let page = CustomerPage {
        t,
        lang: t.lang.tag(),
        frame: signed.frame_travelling("customers"),
        title: t.with("customer-title", &[("id", id.as_str().into())]),
        older: tl["next_cursor"].as_str().map(|cur| {
            format!(
                "/customers/{}?cursor={}{}",
                urlencode(&id),
                urlencode(cur),
                signed.past_link()
            )
        }),
        erased: p["erased"].as_bool().unwrap_or(false),
        can_record: matches!(signed.caller.role, Role::Support | Role::Admin)
            && signed.past.is_none(),
        id: id.clone(),
        open_complaints: p["complaints"]["open"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        channels: super::record::CHANNELS,
        person: super::identity::PersonView::of(t, &p),
        errors,
        identity,
        profile,
        events,
    };
    render(&page, t)
}
