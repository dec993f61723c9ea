//! Identity in the console: finding customers by an identifier, the person a customer
//! belongs to, and staff's merge and unmerge forms. Every answer comes from the API's own
//! handlers with the signed-in key, so lookups are for support and admin only, as there.

use axum::{
    body::Bytes,
    extract::{Path, Query},
    http::{StatusCode, Uri},
    response::{IntoResponse, Redirect, Response},
    Json,
};
use serde_json::{json, Value};

use super::{alerts::urlencode, api_error_page, workflow::message, Console, SignedIn, Tr};
use crate::http::{self, ApiError};

/// The kinds a search can be by, in the order the form offers them.
pub(crate) const KINDS: &[&str] = &[
    "phone",
    "email",
    "member",
    "wechat_unionid",
    "wechat_openid",
    "external",
];

/// What a search by identifier found: one person (go there), several, or a message for
/// the value's field.
pub(crate) enum Found {
    One(String),
    Several(Vec<String>),
    Error(String),
}

/// Looks people up by `kind:value` through `GET /v1/customers?identifier=`.
pub(crate) async fn search(
    c: &Console,
    signed: &SignedIn,
    kind: &str,
    value: &str,
) -> Result<Found, Response> {
    let uri: Uri = match format!("/?identifier={}", urlencode(&format!("{kind}:{value}"))).parse() {
        Ok(u) => u,
        Err(_) => return Ok(Found::Error(signed.tr.get("customers-nobody"))),
    };
    let q = Query::try_from_uri(&uri);
    match http::customers::list_customers(
        axum::extract::State(c.app.clone()),
        signed.caller.clone(),
        q,
    )
    .await
    {
        Ok(Json(v)) => {
            let ids: Vec<String> = v["customers"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p["id"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            Ok(match ids.len() {
                0 => Found::Error(signed.tr.get("customers-nobody")),
                1 => Found::One(ids.into_iter().next().unwrap_or_default()),
                _ => Found::Several(ids),
            })
        }
        Err(e @ (ApiError::BadRequest { .. } | ApiError::Invalid(_))) => {
            Ok(Found::Error(message(&e)))
        }
        Err(e) => Err(api_error_page(signed.tr, e)),
    }
}

/// One link of the person, as the page shows it.
pub(crate) struct LinkRow {
    pub(crate) customer: String,
    pub(crate) other: String,
    pub(crate) cause: String,
    pub(crate) outcome: String,
}

/// The person part of the customer page.
pub(crate) struct PersonView {
    /// The id the person is known by, when it is not the page's.
    pub(crate) merged_into: Option<String>,
    /// Every id of the person (the page's included).
    pub(crate) ids: Vec<String>,
    /// `kind: value` as the key may see them (pseudonyms for analysts).
    pub(crate) identifiers: Vec<String>,
    pub(crate) links: Vec<LinkRow>,
}

fn s(v: &Value) -> String {
    v.as_str().map(str::to_owned).unwrap_or_default()
}

impl PersonView {
    /// From the profile the API gave.
    pub(crate) fn of(t: Tr, p: &Value) -> PersonView {
        let person = &p["person"];
        let links = person["links"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|l| {
                        let cause = match s(&l["cause"]["rule"]).as_str() {
                            "staff_merge" => {
                                t.with("person-cause-staff", &[("by", s(&l["cause"]["by"]).into())])
                            }
                            _ => t.with(
                                "person-cause-shared",
                                &[("kind", t.pick("identifier", &s(&l["cause"]["kind"])).into())],
                            ),
                        };
                        let outcome = if l["joined"].as_bool().unwrap_or(false) {
                            t.get("person-joined")
                        } else {
                            t.pick("person-refused", &s(&l["refused"]["reason"]))
                        };
                        LinkRow {
                            customer: s(&l["customer"]),
                            other: s(&l["other"]),
                            cause,
                            outcome,
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let identifiers = p["identity"]["identifiers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|i| {
                        format!(
                            "{}: {} ({})",
                            t.pick("identifier", &s(&i["kind"])),
                            s(&i["value"]),
                            s(&i["customer"])
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        PersonView {
            merged_into: person["merged_into"].as_str().map(str::to_owned),
            ids: person["ids"]
                .as_array()
                .map(|a| a.iter().map(s).collect())
                .unwrap_or_default(),
            identifiers,
            links,
        }
    }
}

/// `POST /customers/{id}/merge` (`other` is merged into `id`) and `/unmerge`: through the
/// API; on success back to the customer, else the page again with the error on the form.
pub(crate) async fn act(
    c: &Console,
    signed: &SignedIn,
    id: &str,
    what: &str,
    other: Option<String>,
    reason: Option<String>,
) -> Response {
    let other = other.unwrap_or_default();
    let reason = reason.unwrap_or_default();
    let state = || axum::extract::State(c.app.clone());
    let r = match what {
        "merge" => {
            let body = Bytes::from(json!({"merged": other, "reason": reason}).to_string());
            http::identity::merge(state(), signed.caller.clone(), Path(id.to_owned()), body).await
        }
        _ => {
            let body = Bytes::from(json!({"other": other, "reason": reason}).to_string());
            http::identity::unmerge(state(), signed.caller.clone(), Path(id.to_owned()), body).await
        }
    };
    match r {
        Ok(Json(v)) => {
            c.app
                .read_model
                .wait_for(v["position"].as_u64().unwrap_or(0))
                .await;
            Redirect::to(&format!("/customers/{}", urlencode(id))).into_response()
        }
        Err(e) => {
            let status = match &e {
                ApiError::Invalid(_) | ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
                ApiError::Conflict { .. } => StatusCode::CONFLICT,
                _ => return api_error_page(signed.tr, e),
            };
            let errors = super::customers::IdentityErrors {
                merge: (what == "merge").then(|| message(&e)),
                unmerge: (what != "merge").then(|| message(&e)),
            };
            let mut r = super::customers::page(c, signed, id.to_owned(), None, errors).await;
            *r.status_mut() = status;
            r
        }
    }
}
