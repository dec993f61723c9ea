//! Identity in the console: support finds a customer by phone number and lands on the
//! person; merges and unmerges from the customer's page; analysts get neither the search
//! nor the number.

use rapport::auth::Role;
use reqwest::StatusCode;
use serde_json::json;

use super::{
    console::Browser,
    helpers::{purchase, TestServer},
};

async fn seeded() -> TestServer {
    let s = TestServer::start().await;
    let batch = json!([
        {"type": "identifier_added", "customer": "till-1", "occurred_at": "2026-02-01T09:00:00Z", "data": {"kind": "phone", "value": "+8613800138000"}},
        purchase("till-1", "o-1", "30.00"),
        {"type": "identifier_added", "customer": "wx-9", "occurred_at": "2026-02-01T09:00:00Z", "data": {"kind": "phone", "value": "+86 138 0013 8000"}},
        purchase("m-7", "o-2", "20.00"),
    ]);
    let (status, body) = s.post_json("/v1/events", &batch).await;
    assert_eq!(status, 201, "{body}");
    let last = body["last_position"].as_u64().unwrap();
    s.get(&format!("/v1/customers?min_position={last}"), &s.admin)
        .await;
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn support_finds_a_customer_by_phone_and_sees_the_person() {
    let s = seeded().await;
    let mut b = Browser::new(&s);
    b.sign_in(&s.key(Role::Support)).await;
    let r = b
        .get("/customers?kind=phone&value=%2B86%20138%200013%208000")
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/customers/till-1");
    let (status, html) = b.page("/customers/wx-9").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("/customers/till-1"),
        "the person it is part of"
    );
    assert!(html.contains("+8613800138000"), "support sees the number");
    // A number nobody holds, and one that is no phone number: the message on the field.
    let (status, html) = b.page("/customers?kind=phone&value=%2B8613900000000").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("id=\"value-error\""), "{html}");
    let (status, html) = b.page("/customers?kind=phone&value=12345").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("aria-invalid=\"true\""), "{html}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_analyst_has_no_search_by_identifier_and_sees_no_number() {
    let s = seeded().await;
    let mut a = Browser::new(&s);
    a.sign_in(&s.key(Role::Analyst)).await;
    let (status, html) = a.page("/customers?kind=phone&value=%2B8613800138000").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !html.contains("name=\"value\""),
        "no identifier search for analysts"
    );
    let (_, html) = a.page("/customers/wx-9").await;
    for piece in ["13800138000", "0013 8000"] {
        assert!(!html.contains(piece), "{html}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn support_merges_and_unmerges_from_the_customers_page() {
    let s = seeded().await;
    let mut b = Browser::new(&s);
    b.sign_in(&s.key(Role::Support)).await;
    let csrf = b.csrf("/customers/till-1").await;
    // Without a reason: the API's message on the form.
    let r = b
        .post(
            "/customers/till-1/merge",
            &[("csrf", &csrf), ("other", "m-7"), ("reason", "")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("id=\"merge-error\""));
    let r = b
        .post(
            "/customers/till-1/merge",
            &[
                ("csrf", &csrf),
                ("other", "m-7"),
                ("reason", "same member card"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, p) = s.get("/v1/customers/m-7", &s.admin).await;
    assert_eq!(p["person"]["id"], "till-1");
    assert_eq!(p["orders"], 2);
    let r = b
        .post(
            "/customers/till-1/unmerge",
            &[("csrf", &csrf), ("other", "m-7"), ("reason", "two sisters")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, p) = s.get("/v1/customers/m-7", &s.admin).await;
    assert_eq!(p["person"]["id"], "m-7");
    // Without the CSRF token nothing happens.
    let r = b
        .post(
            "/customers/till-1/merge",
            &[("other", "m-7"), ("reason", "x")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}
