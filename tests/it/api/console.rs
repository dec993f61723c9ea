//! The console through HTTP, as a browser without JavaScript would use it: sign-in and
//! sessions, CSRF, roles (an analyst's pages hold no personal value), escaping, the
//! security headers, languages, and the live alert feed the board follows.

use futures::StreamExt;
use rapport::auth::Role;
use reqwest::{header, redirect::Policy, Client, StatusCode};
use serde_json::json;

use super::helpers::{complaint, registered, TestServer};

const NAME: &str = "Zhang Wei-Console";
const EMAIL: &str = "zhang.console@example.cn";
const PHONE: &str = "+8613900000042";
const TEXT: &str = "批次L0421的茶叶发霉了 <script>alert('x')</script> mouldy";

/// A browser: no redirects followed (so tests see them), the session cookie by hand.
pub(super) struct Browser<'a> {
    s: &'a TestServer,
    http: Client,
    cookie: Option<String>,
    pub(super) lang: Option<&'static str>,
}

impl<'a> Browser<'a> {
    pub(super) fn new(s: &'a TestServer) -> Browser<'a> {
        Browser {
            s,
            http: Client::builder().redirect(Policy::none()).build().unwrap(),
            cookie: None,
            lang: None,
        }
    }

    fn headers(&self, mut r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let mut cookies = Vec::new();
        if let Some(c) = &self.cookie {
            cookies.push(c.clone());
        }
        if let Some(l) = self.lang {
            cookies.push(format!("lang={l}"));
        }
        if !cookies.is_empty() {
            r = r.header(header::COOKIE, cookies.join("; "));
        }
        r
    }

    pub(super) async fn get(&self, path: &str) -> reqwest::Response {
        self.headers(self.http.get(format!("{}{path}", self.s.base)))
            .send()
            .await
            .unwrap()
    }

    pub(super) async fn page(&self, path: &str) -> (StatusCode, String) {
        let r = self.get(path).await;
        (r.status(), r.text().await.unwrap())
    }

    pub(super) async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.headers(self.http.post(format!("{}{path}", self.s.base)))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// Signs in with `key`; returns the response to the form.
    pub(super) async fn sign_in(&mut self, key: &str) -> reqwest::Response {
        let r = self.post("/sign-in", &[("key", key)]).await;
        if let Some(set) = r.headers().get(header::SET_COOKIE) {
            let set = set.to_str().unwrap().to_owned();
            self.cookie = Some(set.split(';').next().unwrap().to_owned());
        }
        r
    }

    /// The CSRF token of the signed-in page at `path`.
    pub(super) async fn csrf(&self, path: &str) -> String {
        let (_, html) = self.page(path).await;
        let at = html
            .find("name=\"csrf\" value=\"")
            .expect("a form with a CSRF token")
            + 19;
        html[at..at + 64].to_owned()
    }
}

/// Whether `html` has an inline event handler attribute (` onclick=` and the like).
fn has_event_handler(html: &str) -> bool {
    html.match_indices(" on").any(|(i, _)| {
        let rest = &html[i + 3..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase())
            .collect();
        !name.is_empty() && rest[name.len()..].starts_with('=')
    })
}

/// A cascade in one community, with a registered customer whose complaint holds markup.
async fn seeded() -> (TestServer, String) {
    let s = TestServer::start().await;
    let batch = json!([
        registered("c-1", NAME, EMAIL, PHONE),
        {"type": "community_joined", "customer": "c-1", "occurred_at": "2026-03-01T09:00:00Z", "data": {"community": "g-1"}},
        {"type": "community_joined", "customer": "c-2", "occurred_at": "2026-03-01T09:00:00Z", "data": {"community": "g-1"}},
        {"type": "community_joined", "customer": "c-3", "occurred_at": "2026-03-01T09:00:00Z", "data": {"community": "g-1"}},
        complaint("c-1", "k-1", TEXT),
        complaint("c-2", "k-2", "L0421 茶叶有霉味 mouldy"),
        complaint("c-3", "k-3", "L0421 发霉 mouldy tea"),
    ]);
    let (status, body) = s.post_json("/v1/events", &batch).await;
    assert_eq!(status, 201, "{body}");
    let last = body["last_position"].as_u64().unwrap();
    let (_, alerts) = s
        .get(&format!("/v1/alerts?min_position={last}"), &s.admin)
        .await;
    let id = alerts["alerts"][0]["id"]
        .as_str()
        .expect("the cascade raised an alert");
    (s, id.to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_in_sets_a_strict_http_only_session_and_signing_out_ends_it() {
    let s = TestServer::start().await;
    let mut b = Browser::new(&s);
    let r = b.get("/alerts").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[header::LOCATION], "/sign-in");
    let r = b.sign_in(&s.admin).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = r.headers()[header::SET_COOKIE].to_str().unwrap();
    for attr in ["HttpOnly", "SameSite=Strict", "Max-Age=", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    let (status, html) = b.page("/alerts").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let csrf = b.csrf("/alerts").await;
    let r = b.post("/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(r.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    // The old cookie no longer opens anything.
    assert_eq!(b.get("/alerts").await.status(), StatusCode::SEE_OTHER);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_key_and_an_ingest_key_cannot_sign_in() {
    let s = TestServer::start().await;
    let mut b = Browser::new(&s);
    let r = b.sign_in("rpk_nope_nope").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.text().await.unwrap().contains("not valid or was revoked"));
    let ingest = s.key(Role::Ingest);
    let r = b.sign_in(&ingest).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(b.cookie.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_key_ends_its_sessions() {
    let s = TestServer::start().await;
    let support = s.key(Role::Support);
    let mut b = Browser::new(&s);
    b.sign_in(&support).await;
    assert_eq!(b.page("/alerts").await.0, StatusCode::OK);
    let id = support.split('_').nth(1).unwrap();
    let (status, _) = s.delete(&format!("/v1/keys/{id}"), &s.admin).await;
    assert_eq!(status, 204);
    // The key cache holds an answer for up to 2 s; the revocation shows within that.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let status = b.get("/alerts").await.status();
        if status == StatusCode::SEE_OTHER {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the session outlived its key"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_form_without_the_csrf_token_is_refused_and_changes_nothing() {
    let (s, id) = seeded().await;
    let mut b = Browser::new(&s);
    b.sign_in(&s.admin).await;
    let r = b
        .post(&format!("/alerts/{id}/acknowledge"), &[("note", "forged")])
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = b
        .post(
            &format!("/alerts/{id}/acknowledge"),
            &[("csrf", &"0".repeat(64)), ("note", "forged")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let (_, alert) = s.get(&format!("/v1/alerts/{id}"), &s.admin).await;
    assert_eq!(alert["status"], "open");
    assert_eq!(alert["actions"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alert_acknowledged_and_resolved_in_the_console_is_so_in_the_api() {
    let (s, id) = seeded().await;
    let support = s.key(Role::Support);
    let mut b = Browser::new(&s);
    b.sign_in(&support).await;
    let (status, board) = b.page("/alerts").await;
    assert_eq!(status, StatusCode::OK);
    assert!(board.contains(&format!("/alerts/{id}")), "{board}");
    let csrf = b.csrf(&format!("/alerts/{id}")).await;
    let r = b
        .post(
            &format!("/alerts/{id}/acknowledge"),
            &[("csrf", &csrf), ("note", "checking batch L0421")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, alert) = s.get(&format!("/v1/alerts/{id}"), &s.admin).await;
    assert_eq!(alert["status"], "acknowledged");
    assert_eq!(alert["actions"][0]["note"], "checking batch L0421");
    let (_, page) = b.page(&format!("/alerts/{id}")).await;
    assert!(page.contains("checking batch L0421"), "{page}");
    b.post(&format!("/alerts/{id}/resolve"), &[("csrf", &csrf)])
        .await;
    let (_, alert) = s.get(&format!("/v1/alerts/{id}"), &s.admin).await;
    assert_eq!(alert["status"], "resolved");
    // An analyst reads the alert but may not act on it.
    let analyst = s.key(Role::Analyst);
    let mut a = Browser::new(&s);
    a.sign_in(&analyst).await;
    let (_, page) = a.page(&format!("/alerts/{id}")).await;
    assert!(
        !page.contains("/acknowledge\""),
        "no action form for an analyst"
    );
    let csrf = a.csrf(&format!("/alerts/{id}")).await;
    let r = a
        .post(&format!("/alerts/{id}/acknowledge"), &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_analysts_pages_contain_no_personal_value() {
    let (s, id) = seeded().await;
    let analyst = s.key(Role::Analyst);
    let mut a = Browser::new(&s);
    a.sign_in(&analyst).await;
    let mut support = Browser::new(&s);
    support.sign_in(&s.key(Role::Support)).await;
    for path in [
        "/alerts".to_owned(),
        format!("/alerts/{id}"),
        "/customers/c-1".to_owned(),
    ] {
        let (status, html) = a.page(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        for value in [NAME, EMAIL, PHONE, "发霉了", "mouldy"] {
            assert!(
                !html.contains(value),
                "{path} shows `{value}` to an analyst"
            );
        }
    }
    // The same pages show them to support: the test searches for the right thing.
    let (_, html) = support.page("/customers/c-1").await;
    assert!(html.contains(NAME) && html.contains(EMAIL), "{html}");
    let (_, html) = support.page(&format!("/alerts/{id}")).await;
    assert!(html.contains("发霉了"), "{html}");
}

#[tokio::test(flavor = "multi_thread")]
async fn markup_in_a_complaint_is_shown_as_text() {
    let (s, id) = seeded().await;
    let mut b = Browser::new(&s);
    b.sign_in(&s.admin).await;
    for path in [format!("/alerts/{id}"), "/customers/c-1".to_owned()] {
        let (_, html) = b.page(&path).await;
        assert!(
            !html.contains("<script>alert"),
            "{path} lets markup through"
        );
        assert!(html.contains("&#60;script&#62;alert"), "{path}: {html}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_page_forbids_inline_scripts_framing_and_caching() {
    let (s, id) = seeded().await;
    let mut b = Browser::new(&s);
    b.sign_in(&s.admin).await;
    for path in [
        "/sign-in".to_owned(),
        "/alerts".to_owned(),
        format!("/alerts/{id}"),
        "/customers".to_owned(),
        "/customers/c-1".to_owned(),
        "/agents".to_owned(),
        "/communities".to_owned(),
    ] {
        let r = b.get(&path).await;
        let h = r.headers();
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(h[header::CACHE_CONTROL], "no-store", "{path}");
        let html = r.text().await.unwrap();
        assert!(
            !html.contains("<script>") && !has_event_handler(&html),
            "{path} has inline script"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_speak_chinese_when_asked_and_switch_on_request() {
    let (s, _) = seeded().await;
    let mut b = Browser::new(&s);
    b.sign_in(&s.admin).await;
    let r = b
        .headers(b.http.get(format!("{}/alerts", s.base)))
        .header(header::ACCEPT_LANGUAGE, "zh-CN,zh;q=0.9,en;q=0.5")
        .send()
        .await
        .unwrap();
    let html = r.text().await.unwrap();
    assert!(
        html.contains("<html lang=\"zh-CN\">") && html.contains("预警"),
        "{html}"
    );
    let r = b.get("/language?to=en&back=/alerts").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(r.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .starts_with("lang=en"));
    // Never a redirect off the console.
    let r = b.get("/language?to=en&back=//evil.example/").await;
    assert_eq!(r.headers()[header::LOCATION], "/");
    b.lang = Some("zh-CN");
    let (_, html) = b.page("/customers/c-1").await;
    assert!(html.contains("身份信息"), "{html}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_board_feed_delivers_a_new_alert_to_a_signed_in_browser() {
    let s = TestServer::start().await;
    let mut b = Browser::new(&s);
    b.sign_in(&s.key(Role::Support)).await;
    let (_, board) = b.page("/alerts").await;
    let at = board.find("data-feed=\"").unwrap() + 11;
    let feed_path: String = board[at..].chars().take_while(|c| *c != '"').collect();
    let resp = b.get(&feed_path).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut stream = resp.bytes_stream();
    let batch = json!([
        {"type": "community_joined", "customer": "c-1", "occurred_at": "2026-03-01T09:00:00Z", "data": {"community": "g-1"}},
        {"type": "community_joined", "customer": "c-2", "occurred_at": "2026-03-01T09:00:00Z", "data": {"community": "g-1"}},
        {"type": "community_joined", "customer": "c-3", "occurred_at": "2026-03-01T09:00:00Z", "data": {"community": "g-1"}},
        complaint("c-1", "k-1", "L0421 mouldy"),
        complaint("c-2", "k-2", "L0421 mouldy too"),
        complaint("c-3", "k-3", "L0421 mouldy again"),
    ]);
    let (status, _) = s.post_json("/v1/events", &batch).await;
    assert_eq!(status, 201);
    let mut buf = String::new();
    let got = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(chunk) = stream.next().await {
            buf.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
            if buf.contains("event: alert") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(got, Ok(true), "no alert on the board's feed: {buf}");
    // The fragment the script swaps in shows it.
    let (_, cards) = b.page("/alerts/board").await;
    assert!(cards.contains("class=\"card"), "{cards}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_segment_rule_shows_its_error_on_the_rule_field() {
    let s = TestServer::start().await;
    let mut b = Browser::new(&s);
    b.sign_in(&s.key(Role::Analyst)).await;
    let csrf = b.csrf("/segments").await;
    let r = b
        .post(
            "/segments",
            &[
                ("csrf", &csrf),
                ("id", "tea"),
                ("name", "Tea"),
                ("rule", r#"{"field": "orderz", "op": ">=", "value": 1}"#),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let html = r.text().await.unwrap();
    let at = html
        .find("data-field=\"rule\">")
        .expect("an error on the rule field");
    assert!(
        html[at..].starts_with("data-field=\"rule\">/rule/field: unknown field `orderz`"),
        "{html}"
    );
    assert!(html.contains("id=\"seg-rule\" name=\"rule\""), "{html}");
    assert!(html.contains("aria-invalid=\"true\""), "{html}");
    // Not JSON at all is also said on the field, and nothing was defined.
    let r = b
        .post(
            "/segments",
            &[
                ("csrf", &csrf),
                ("id", "tea"),
                ("name", "Tea"),
                ("rule", "{orders >= 1"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("data-field=\"rule\">The rule is not JSON"));
    let (_, list) = s.get("/v1/segments", &s.admin).await;
    assert_eq!(list["segments"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_segments_csv_download_has_one_row_per_member() {
    let s = TestServer::start().await;
    let batch = json!([
        super::helpers::purchase("c-1", "o-1", "10.00"),
        super::helpers::purchase("c-2", "o-2", "12.00"),
        super::helpers::purchase("c-2", "o-3", "14.00"),
    ]);
    let (status, _) = s.post_json("/v1/events", &batch).await;
    assert_eq!(status, 201);
    let mut b = Browser::new(&s);
    b.sign_in(&s.admin).await;
    let csrf = b.csrf("/segments").await;
    let r = b
        .post(
            "/segments",
            &[
                ("csrf", &csrf),
                ("id", "buyers"),
                ("name", "Buyers"),
                ("rule", r#"{"field": "orders", "op": ">=", "value": 1}"#),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[header::LOCATION], "/segments/buyers");
    let (status, page) = b.page("/segments/buyers").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("/segments/buyers/members.csv"), "{page}");
    let r = b.get("/segments/buyers/members.csv").await;
    assert!(r.headers()[header::CONTENT_DISPOSITION]
        .to_str()
        .unwrap()
        .contains("segment-buyers.csv"));
    let csv = r.text().await.unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(rows[0].starts_with("customer,"), "{csv}");
    assert!(
        rows[1].starts_with("c-1,") && rows[2].starts_with("c-2,"),
        "{csv}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reactivation_ranks_the_dormant_and_downloads_them_all() {
    let s = TestServer::start().await;
    let buy = |c: &str, o: &str, day: &str| {
        json!({"type": "purchase", "customer": c, "occurred_at": format!("{day}T10:00:00Z"),
            "data": {"order_id": o, "amount": "50.00", "currency": "CNY"}})
    };
    // c-old bought often a year ago; c-now keeps the clock at today.
    let batch = json!([
        buy("c-old", "o-1", "2025-01-05"),
        buy("c-old", "o-2", "2025-02-05"),
        buy("c-old", "o-3", "2025-03-05"),
        buy("c-now", "o-4", "2026-03-01"),
    ]);
    let (status, body) = s.post_json("/v1/events", &batch).await;
    assert_eq!(status, 201, "{body}");
    let last = body["last_position"].as_u64().unwrap();
    let (_, api) = s
        .get(&format!("/v1/reactivation?min_position={last}"), &s.admin)
        .await;
    assert_eq!(api["customers"][0]["customer"], "c-old", "{api}");
    let mut b = Browser::new(&s);
    b.sign_in(&s.key(Role::Analyst)).await;
    let (status, html) = b.page("/reactivation").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("/customers/c-old") && !html.contains("/customers/c-now\""),
        "{html}"
    );
    let r = b.get("/reactivation.csv?currency=CNY").await;
    assert!(r.headers()[header::CONTENT_DISPOSITION]
        .to_str()
        .unwrap()
        .contains("reactivation.csv"));
    let csv = r.text().await.unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert!(rows[0].starts_with("customer,lifecycle,"), "{csv}");
    assert_eq!(
        rows.len(),
        1 + api["total"].as_u64().unwrap() as usize,
        "{csv}"
    );
    assert!(rows[1].starts_with("c-old,"), "{csv}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_system_page_shows_the_lag_and_manages_keys_for_admins_only() {
    let s = TestServer::start().await;
    let mut admin = Browser::new(&s);
    admin.sign_in(&s.admin).await;
    let (status, html) = admin.page("/system").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Events not yet applied"), "{html}");
    let csrf = admin.csrf("/system").await;
    let r = admin
        .post(
            "/system/keys",
            &[
                ("csrf", &csrf),
                ("role", "support"),
                ("label", "night shift"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let html = r.text().await.unwrap();
    let at = html.find("id=\"new-token\" value=\"").unwrap() + 22;
    let token: String = html[at..].chars().take_while(|c| *c != '"').collect();
    assert!(token.starts_with("rpk_"), "{token}");
    // The new key works, and is revoked from the same page.
    assert_eq!(s.get("/v1/alerts", &token).await.0, 200);
    let id = token.split('_').nth(1).unwrap().to_owned();
    let r = admin
        .post(&format!("/system/keys/{id}/revoke"), &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, keys) = s.get("/v1/keys", &s.admin).await;
    let revoked = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id.as_str())
        .unwrap();
    assert!(revoked["revoked_at"].is_string(), "{keys}");
    // Without the token, nothing is created.
    let r = admin.post("/system/keys", &[("role", "admin")]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let mut support = Browser::new(&s);
    support.sign_in(&s.key(Role::Support)).await;
    assert_eq!(support.page("/system").await.0, StatusCode::FORBIDDEN);
    let (_, board) = support.page("/alerts").await;
    assert!(!board.contains("href=\"/system\""), "{board}");
}

#[tokio::test(flavor = "multi_thread")]
async fn time_travel_shows_a_page_as_of_the_past_under_a_banner() {
    let s = TestServer::start().await;
    let batch = json!([
        super::helpers::purchase("c-1", "o-1", "10.00"),
        {"type": "purchase", "customer": "c-1", "occurred_at": "2026-04-01T10:00:00Z",
            "data": {"order_id": "o-2", "amount": "20.00", "currency": "CNY"}},
    ]);
    let (status, body) = s.post_json("/v1/events", &batch).await;
    assert_eq!(status, 201);
    let first = body["positions"][0].as_u64().unwrap();
    let mut b = Browser::new(&s);
    b.sign_in(&s.key(Role::Support)).await;
    let (_, now) = b.page("/customers/c-1").await;
    assert!(now.contains("<dt>Orders</dt><dd>2</dd>"), "{now}");
    assert!(!now.contains("class=\"past\""), "no banner for now");
    // What was true in March (business time), then the state after the first event.
    let (status, march) = b
        .page("/customers/c-1?when_kind=valid_at&when=2026-03-15")
        .await;
    assert_eq!(status, StatusCode::OK, "{march}");
    assert!(march.contains("<dt>Orders</dt><dd>1</dd>"), "{march}");
    assert!(
        march.contains("class=\"past\"") && march.contains("2026-03-15"),
        "{march}"
    );
    assert!(march.contains("Back to now"), "{march}");
    let (_, after_first) = b
        .page(&format!(
            "/customers/c-1?when_kind=as_of_position&when={first}"
        ))
        .await;
    assert!(
        after_first.contains("<dt>Orders</dt><dd>1</dd>"),
        "{after_first}"
    );
    // A bad date is said, not a crash.
    let (status, bad) = b
        .page("/customers/c-1?when_kind=valid_at&when=yesterday")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    assert!(bad.contains("valid_at"), "{bad}");
}

#[tokio::test(flavor = "multi_thread")]
async fn analytics_lays_out_the_apis_cohorts_rfm_and_lifecycle_months() {
    let s = TestServer::start().await;
    let buy = |c: &str, o: &str, day: &str| {
        json!({"type": "purchase", "customer": c, "occurred_at": format!("{day}T10:00:00Z"),
            "data": {"order_id": o, "amount": "50.00", "currency": "CNY"}})
    };
    let batch = json!([
        buy("c-1", "o-1", "2026-01-05"),
        buy("c-1", "o-2", "2026-02-05"),
        buy("c-2", "o-3", "2026-01-20"),
        buy("c-3", "o-4", "2026-02-10"),
    ]);
    let (status, body) = s.post_json("/v1/events", &batch).await;
    assert_eq!(status, 201);
    let last = body["last_position"].as_u64().unwrap();
    let (status, months) = s
        .get(
            &format!("/v1/lifecycle/by-month?min_position={last}"),
            &s.admin,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(months["months"][0]["month"], "2026-01", "{months}");
    assert_eq!(months["months"][1]["states"]["new"], 2, "{months}");
    assert_eq!(months["months"][1]["states"]["active"], 1, "{months}");
    let mut b = Browser::new(&s);
    b.sign_in(&s.key(Role::Analyst)).await;
    let (status, html) = b.page("/analytics").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    // The January cohort: two customers, half of whom bought again in February.
    assert!(html.contains("<th scope=\"row\">2026-01</th><td>2</td><td class=\"heat-10\">100%</td><td class=\"heat-5\">50%</td>"), "{html}");
    assert!(html.contains("<th scope=\"row\">2026-02</th>"), "{html}");
    assert!(html.contains("Champions"), "{html}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alert_draws_its_customers_and_ties_and_replays_the_cascade_step_by_step() {
    let (s, id) = seeded().await;
    let (_, alert) = s
        .get(&format!("/v1/alerts/{id}"), &s.key(Role::Analyst))
        .await;
    let nodes: Vec<&str> = alert["graph"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["customer"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["c-1", "c-2", "c-3"], "in the order they complained");
    assert_eq!(
        alert["graph"]["edges"].as_array().unwrap().len(),
        3,
        "{alert}"
    );
    assert_eq!(alert["graph"]["edges"][0]["tie"], "community g-1");
    let mut b = Browser::new(&s);
    b.sign_in(&s.key(Role::Analyst)).await;
    let (_, whole) = b.page(&format!("/alerts/{id}")).await;
    assert!(whole.contains("<svg class=\"graph\""), "{whole}");
    assert_eq!(whole.matches("<circle").count(), 3);
    assert_eq!(
        whole.matches("<line x1").count(),
        3 + 1,
        "three ties and the legend's sample"
    );
    let (_, first) = b.page(&format!("/alerts/{id}?step=1")).await;
    assert!(first.contains("Step 1 of 3"), "{first}");
    assert_eq!(
        first.matches("<circle").count(),
        1,
        "one customer had complained then"
    );
    assert!(
        first.contains(&format!("/alerts/{id}?step=2#graph")),
        "a link to the next step"
    );
    assert_eq!(first.matches("class=\"future\"").count(), 2);
    let (_, out_of_range) = b.page(&format!("/alerts/{id}?step=99")).await;
    assert_eq!(
        out_of_range.matches("<circle").count(),
        3,
        "a step past the end shows it all"
    );
}
