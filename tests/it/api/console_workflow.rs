//! Handling an alert in the console, as a browser without JavaScript: owner, verdict (its
//! error on its field), a problem opened from the alert and resolved, the exposed
//! customers with their CSV and a segment made of them.

use rapport::auth::Role;
use reqwest::StatusCode;

use super::{console::Browser, helpers::TestServer, workflow::cascade};

async fn seeded() -> (TestServer, String) {
    let s = TestServer::start().await;
    let (status, body) = s.post_json("/v1/events", &cascade("2026-03-02")).await;
    assert_eq!(status, 201, "{body}");
    let last = body["last_position"].as_u64().unwrap();
    let (_, alerts) = s
        .get(
            &format!("/v1/alerts?level=warning&min_position={last}"),
            &s.admin,
        )
        .await;
    let id = alerts["alerts"][0]["id"].as_str().unwrap().to_owned();
    (s, id)
}

#[tokio::test(flavor = "multi_thread")]
async fn support_owns_judges_and_resolves_an_alert_through_a_problem_in_the_console() {
    let (s, id) = seeded().await;
    let (me, token) = s.keys.create(Role::Support, Some("Li")).unwrap();
    let mut b = Browser::new(&s);
    b.sign_in(&token).await;
    let page_path = format!("/alerts/{id}");
    let (status, page) = b.page(&page_path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("Acknowledge by") && page.contains("Highest severity"),
        "{page}"
    );
    let csrf = b.csrf(&page_path).await;

    let r = b
        .post(
            &format!("{page_path}/assign"),
            &[("csrf", &csrf), ("assignee", &me.id)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, a) = s
        .get(&page_path.replace("/alerts", "/v1/alerts"), &s.admin)
        .await;
    assert_eq!(a["assignee"], me.id.as_str());
    let (_, board) = b.page("/alerts?assignee=me").await;
    assert!(board.contains(&format!("/alerts/{id}")), "{board}");

    // A verdict without its reason: the page again, the message on the reason field.
    let r = b
        .post(
            &format!("{page_path}/review"),
            &[("csrf", &csrf), ("verdict", "confirmed"), ("reason", " ")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let html = r.text().await.unwrap();
    assert!(
        html.contains(r#"id="review-error" class="error field-error" data-field="reason""#),
        "{html}"
    );
    let r = b
        .post(
            &format!("{page_path}/review"),
            &[
                ("csrf", &csrf),
                ("verdict", "not_group_complaint"),
                ("reason", "three friends, one bad kettle"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, page) = b.page(&page_path).await;
    assert!(
        page.contains("Not a group complaint — three friends, one bad kettle"),
        "{page}"
    );

    // A problem opened from the alert's page, then resolved from its own page.
    let r = b
        .post(
            &format!("{page_path}/link"),
            &[("csrf", &csrf), ("title", "Kettle batch K-9")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, a) = s
        .get(&page_path.replace("/alerts", "/v1/alerts"), &s.admin)
        .await;
    let problem = a["problem"]
        .as_str()
        .expect("linked to a problem")
        .to_owned();
    let (_, list) = b.page("/problems").await;
    assert!(list.contains("Kettle batch K-9"), "{list}");
    let r = b
        .post(
            &format!("/problems/{problem}/resolve"),
            &[("csrf", &csrf), ("note", "replaced")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, p) = s.get(&format!("/v1/problems/{problem}"), &s.admin).await;
    assert_eq!(p["status"], "resolved");
    let (_, a) = s
        .get(&page_path.replace("/alerts", "/v1/alerts"), &s.admin)
        .await;
    assert_eq!(a["status"], "resolved");
    let (_, page) = b.page(&format!("/problems/{problem}")).await;
    assert!(page.contains("Resolved") && page.contains(&id), "{page}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_exposed_customers_are_listed_downloaded_and_made_a_segment() {
    let (s, id) = seeded().await;
    let analyst = s.key(Role::Analyst);
    let mut b = Browser::new(&s);
    b.sign_in(&analyst).await;
    let page_path = format!("/alerts/{id}");
    let (_, page) = b.page(&page_path).await;
    assert!(page.contains("4 customers · 406.00 CNY at stake"), "{page}");
    assert!(page.contains("/customers/b-4"), "{page}");
    assert!(
        !page.contains(&format!("{page_path}/assign")),
        "an analyst does not act on alerts"
    );
    let r = b.get(&format!("{page_path}/exposure.csv")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let csv = r.text().await.unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    let csrf = b.csrf(&page_path).await;
    let r = b
        .post(
            &format!("{page_path}/exposure-segment"),
            &[("csrf", &csrf), ("id", "Bad Id!")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains(r#"data-field="id""#));
    let r = b
        .post(
            &format!("{page_path}/exposure-segment"),
            &[("csrf", &csrf), ("id", "t1-buyers"), ("name", "Bought T-1")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/segments/t1-buyers");
    let (_, seg) = s.get("/v1/segments/t1-buyers", &s.admin).await;
    assert_eq!(seg["members"], 4, "{seg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn support_records_a_resolution_and_outreach_from_the_customers_page() {
    let (s, _) = seeded().await;
    let support = s.key(Role::Support);
    let mut b = Browser::new(&s);
    b.sign_in(&support).await;
    let (_, page) = b.page("/customers/c-1").await;
    assert!(
        page.contains(r#"action="/customers/c-1/resolve""#),
        "{page}"
    );
    let csrf = b.csrf("/customers/c-1").await;
    let r = b
        .post(
            "/customers/c-1/resolve",
            &[
                ("csrf", &csrf),
                ("complaint", "k-0"),
                ("satisfied", "yes"),
                ("resolution", "replaced the tin"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = b
        .post(
            "/customers/c-1/contact",
            &[
                ("csrf", &csrf),
                ("channel", "wechat"),
                ("campaign", "sorry-l0421"),
                ("outcome", "replied"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, p) = s.get("/v1/customers/c-1", &s.admin).await;
    assert_eq!(p["complaints"]["open"], serde_json::json!([]), "{p}");
    assert_eq!(p["complaints"]["satisfied"], 1);
    assert_eq!(p["outreach"]["last_campaign"], "sorry-l0421");
    // An analyst sees the customer but no form to record anything.
    let analyst = s.key(Role::Analyst);
    let mut a = Browser::new(&s);
    a.sign_in(&analyst).await;
    let (_, page) = a.page("/customers/c-1").await;
    assert!(!page.contains("/customers/c-1/contact"), "{page}");
    let csrf = a.csrf("/customers/c-1").await;
    let r = a
        .post(
            "/customers/c-1/contact",
            &[("csrf", &csrf), ("channel", "sms")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_alerts_board_and_an_alert_are_shown_as_they_were_at_a_past_position() {
    let (s, id) = seeded().await;
    // Acknowledged now; before that position it was open.
    let (_, body) = s
        .post_json(
            &format!("/v1/alerts/{id}/acknowledge"),
            &serde_json::json!({}),
        )
        .await;
    let acked = body["position"].as_u64().unwrap();
    let (status, past) = s
        .get(
            &format!("/v1/alerts/{id}?as_of_position={}", acked - 1),
            &s.admin,
        )
        .await;
    assert_eq!(status, 200, "{past}");
    assert_eq!(past["status"], "open");
    let (_, now) = s
        .get(&format!("/v1/alerts/{id}?min_position={acked}"), &s.admin)
        .await;
    assert_eq!(now["status"], "acknowledged");
    let (_, list) = s
        .get(
            &format!("/v1/alerts?status=open&as_of_position={}", acked - 1),
            &s.admin,
        )
        .await;
    assert_eq!(list["alerts"][0]["id"], id.as_str(), "{list}");
    // The console: the board in the past under a banner, not live, no forms.
    let support = s.key(Role::Support);
    let mut b = Browser::new(&s);
    b.sign_in(&support).await;
    let q = format!("when_kind=as_of_position&when={}", acked - 1);
    let (status, board) = b.page(&format!("/alerts?{q}")).await;
    assert_eq!(status, StatusCode::OK, "{board}");
    assert!(board.contains("class=\"past\""), "{board}");
    assert!(
        !board.contains("data-feed="),
        "a past board does not follow the feed"
    );
    assert!(
        board.contains(&format!("/alerts/{id}?{}", q.replace('&', "&#38;"))),
        "{board}"
    );
    let (_, page) = b.page(&format!("/alerts/{id}?{q}")).await;
    assert!(page.contains("class=\"past\""), "{page}");
    assert!(
        !page.contains(&format!("/alerts/{id}/assign")),
        "no action on the past"
    );
    let (_, board_now) = b.page("/alerts?status=open").await;
    assert!(
        !board_now.contains(&format!("/alerts/{id}")),
        "acknowledged now: {board_now}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn event_types_rfm_segments_and_timeline_entries_speak_the_pages_language() {
    let (s, id) = seeded().await;
    let mut b = Browser::new(&s);
    b.sign_in(&s.key(Role::Support)).await;
    b.lang = Some("zh-CN");
    let (_, customer) = b.page("/customers/b-1").await;
    assert!(customer.contains("<td>购买</td>"), "{customer}");
    let (_, alert) = b.page(&format!("/alerts/{id}")).await;
    assert!(alert.contains("<td>投诉</td>"), "{alert}");
    let (_, analytics) = b.page("/analytics").await;
    assert!(
        ["冠军客户", "新客户", "有潜力客户", "休眠客户", "忠诚客户"]
            .iter()
            .any(|n| analytics.contains(n)),
        "{analytics}"
    );
    b.lang = Some("en");
    let (_, customer) = b.page("/customers/b-1").await;
    assert!(customer.contains("<td>Purchase</td>"), "{customer}");
}
