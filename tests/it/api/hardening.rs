//! Valid input never takes Rapport down: each test pins a defect found by trying the API
//! as a careless client would, and is named after it.

use serde_json::json;

use super::helpers::{purchase, TestServer};

/// The largest amount an event may carry: 10^12 with the most decimal places allowed.
const AMOUNT_MAX: &str = "1000000000000.00000000";

#[tokio::test(flavor = "multi_thread")]
async fn money_overflow_an_amount_above_the_maximum_is_refused_naming_the_field() {
    let s = TestServer::start().await;
    let (status, body) = s
        .post_json(
            "/v1/events",
            &purchase("c-1", "o-1", "1000000000000.00000001"),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["details"][0]["path"], "/data/amount",
        "{body}"
    );
    let (status, body) = s
        .post_json(
            "/v1/events",
            &purchase("c-1", "o-1", "79228162514264337593543950335"),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (_, events) = s.get("/v1/events", &s.admin).await;
    assert_eq!(events["events"], json!([]), "nothing was written");
}

#[tokio::test(flavor = "multi_thread")]
async fn money_overflow_the_largest_amounts_keep_every_revenue_query_answering() {
    let s = TestServer::start().await;
    let batch = json!([
        purchase("c-1", "o-1", AMOUNT_MAX),
        purchase("c-1", "o-2", AMOUNT_MAX),
        purchase("c-2", "o-3", AMOUNT_MAX),
    ]);
    let (status, body) = s.post_json("/v1/events", &batch).await;
    assert_eq!(status, 201, "{body}");
    let last = body["last_position"].as_u64().unwrap();
    for path in [
        "/v1/rfm",
        "/v1/rfm/grid",
        "/v1/cohorts",
        "/v1/customers?sort=revenue",
        "/v1/customers/c-1",
        "/v1/customers/c-1/export",
        "/v1/reactivation",
    ] {
        let sep = if path.contains('?') { '&' } else { '?' };
        let (status, body) = s
            .get(&format!("{path}{sep}min_position={last}"), &s.admin)
            .await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (_, profile) = s.get("/v1/customers/c-1", &s.admin).await;
    assert_eq!(
        profile["revenue"]["CNY"], "2000000000000.00000000",
        "{profile}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn valid_at_after_an_erasure_answers_on_every_route() {
    let s = TestServer::start().await;
    let segment = json!({"id": "buyers", "name": "Buyers",
        "rule": {"field": "orders", "op": ">=", "value": 1}});
    let (status, body) = s.post_json("/v1/segments", &segment).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = s
        .post_json(
            "/v1/events",
            &json!([
                purchase("c-1", "o-1", "10.00"),
                purchase("c-2", "o-2", "12.00")
            ]),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = s.delete("/v1/customers/c-1/personal-data", &s.admin).await;
    assert_eq!(status, 200, "{body}");
    let last = body["erasure"]["event"]["position"].as_u64().unwrap();
    for path in [
        "/v1/customers/c-2",
        "/v1/customers/c-1",
        "/v1/customers",
        "/v1/segments/buyers/members",
        "/v1/rfm",
        "/v1/rfm/grid",
        "/v1/cohorts",
    ] {
        let sep = if path.contains('?') { '&' } else { '?' };
        let (status, body) = s
            .get(
                &format!("{path}{sep}valid_at=2026-03-02&min_position={last}"),
                &s.admin,
            )
            .await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (_, members) = s
        .get(
            &format!("/v1/segments/buyers/members?valid_at=2026-03-02&min_position={last}"),
            &s.admin,
        )
        .await;
    let ids: Vec<&str> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["customer"].as_str())
        .collect();
    assert_eq!(ids, ["c-1", "c-2"], "{members}");
}

#[tokio::test(flavor = "multi_thread")]
async fn csv_formula_injection_customer_ids_are_neutralised_and_a_bom_is_offered() {
    let s = TestServer::start().await;
    let batch = json!([
        purchase("=1+2", "o-1", "10.00"),
        purchase("@SUM(A1)", "o-2", "10.00"),
        purchase("-2+3", "o-3", "10.00"),
        purchase("c-1", "o-4", "10.00"),
    ]);
    let (status, body) = s.post_json("/v1/events", &batch).await;
    assert_eq!(status, 201, "{body}");
    let last = body["last_position"].as_u64().unwrap();
    let segment = json!({"id": "buyers", "name": "Buyers", "rule": {"field": "orders", "op": ">=", "value": 1}});
    let (status, _) = s.post_json("/v1/segments", &segment).await;
    assert_eq!(status, 201);
    for path in [
        "/v1/segments/buyers/members?format=csv",
        "/v1/rfm?format=csv",
    ] {
        let (status, csv) = s
            .get_text(&format!("{path}&min_position={}", last + 1), &s.admin)
            .await;
        assert_eq!(status, 200, "{path}: {csv}");
        let firsts: Vec<&str> = csv
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap())
            .collect();
        for risky in ["'=1+2", "'@SUM(A1)", "'-2+3"] {
            assert!(firsts.contains(&risky), "{path}: {csv}");
        }
        assert!(firsts.contains(&"c-1"), "{path}: {csv}");
        assert!(!csv.starts_with('\u{FEFF}'));
        let (_, with_bom) = s.get_text(&format!("{path}&bom=true"), &s.admin).await;
        assert!(with_bom.starts_with('\u{FEFF}'), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bearer_scheme_is_case_insensitive() {
    let s = TestServer::start().await;
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let resp = s
            .http
            .get(format!("{}/v1/events", s.base))
            .header("authorization", format!("{scheme} {}", s.admin))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{scheme}");
    }
    let resp = s
        .http
        .get(format!("{}/v1/events", s.base))
        .header("authorization", format!("Basic {}", s.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn events_after_a_position_past_the_end_is_empty_not_an_error() {
    let s = TestServer::start().await;
    let (status, _) = s
        .post_json("/v1/events", &purchase("c-1", "o-1", "1.00"))
        .await;
    assert_eq!(status, 201);
    for after in [
        "1",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551615",
    ] {
        let (status, body) = s.get(&format!("/v1/events?after={after}"), &s.admin).await;
        assert_eq!(status, 200, "{after}: {body}");
        assert_eq!(body["events"], json!([]), "{after}");
        assert_eq!(body["next_after"].to_string(), after, "{after}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn api_answers_are_never_cached_and_readiness_reports_the_read_model() {
    let s = TestServer::start().await;
    let resp = s
        .http
        .get(format!("{}/v1/customers", s.base))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let (status, body) = s
        .post_json("/v1/events", &purchase("c-1", "o-1", "1.00"))
        .await;
    assert_eq!(status, 201);
    let last = body["last_position"].as_u64().unwrap();
    let (_, _) = s
        .get(&format!("/v1/customers?min_position={last}"), &s.admin)
        .await;
    let ready: serde_json::Value = s
        .http
        .get(format!("{}/readyz", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["applied_position"], last, "{ready}");
    let metrics = s.get_text("/metrics", &s.admin).await.1;
    assert!(
        metrics.contains("rapport_read_model_lag_events 0"),
        "{metrics}"
    );
    assert!(metrics.contains("rapport_http_panics_total 0"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn trailing_text_after_an_event_is_refused_not_dropped() {
    let s = TestServer::start().await;
    let one = purchase("c-1", "o-1", "1.00").to_string();
    let two = purchase("c-2", "o-2", "2.00").to_string();
    for (ctype, body) in [
        ("application/json", format!("{one}{two}")),
        ("application/json", format!("{one} garbage")),
        ("application/x-ndjson", format!("{one}{two}\n")),
        (
            "application/cloudevents+json",
            r#"{"specversion":"1.0","id":"e-1","source":"shop","type":"purchase","subject":"c-1","time":"2026-03-01T10:00:00Z","data":{"order_id":"o-1","amount":"1.00","currency":"CNY"}} x"#.to_string(),
        ),
    ] {
        let (status, resp) = s
            .post("/v1/events", &s.admin.clone(), ctype, body.clone())
            .await;
        assert_eq!(status, 400, "{ctype} {body}: {resp}");
    }
    let (_, events) = s.get("/v1/events", &s.admin).await;
    assert_eq!(events["events"], json!([]), "nothing was written");
}

#[tokio::test(flavor = "multi_thread")]
async fn erasing_twice_records_one_erasure_and_new_personal_data_is_erased_again() {
    let s = TestServer::start().await;
    let reg = super::helpers::registered("c-1", "Li Na", "li@example.cn", "+8613800000001");
    let (status, _) = s.post_json("/v1/events", &reg).await;
    assert_eq!(status, 201);
    let (status, first) = s.delete("/v1/customers/c-1/personal-data", &s.admin).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(stream_len(&s).await, 2);
    let (status, again) = s.delete("/v1/customers/c-1/personal-data", &s.admin).await;
    assert_eq!(
        (status, again["already_erased"].as_bool()),
        (200, Some(true)),
        "{again}"
    );
    assert_eq!(stream_len(&s).await, 2, "no second erasure event");
    // New personal data after the erasure is erased by the next request.
    let (status, _) = s.post_json("/v1/events", &reg).await;
    assert_eq!(status, 201);
    let (status, third) = s.delete("/v1/customers/c-1/personal-data", &s.admin).await;
    assert_eq!(status, 200);
    assert!(third["erasure"].is_object(), "{third}");
    assert_eq!(stream_len(&s).await, 4);
}

async fn stream_len(s: &TestServer) -> usize {
    let (_, e) = s.get("/v1/streams/customer-c-1", &s.admin).await;
    e["events"].as_array().map_or(0, Vec::len)
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn the_data_directory_is_closed_to_other_users() {
    use std::os::unix::fs::PermissionsExt as _;
    let s = TestServer::start().await;
    let mode = std::fs::metadata(s.data_dir())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "mode {mode:o}");
}

#[tokio::test(flavor = "multi_thread")]
async fn invisible_characters_in_ids_and_control_characters_in_key_labels_are_refused() {
    let s = TestServer::start().await;
    for id in ["c\u{200B}-1", "c-1\u{202E}", " c-1", "c-1\u{FEFF}"] {
        let (status, body) = s
            .post_json("/v1/events", &purchase(id, "o-1", "1.00"))
            .await;
        assert_eq!(status, 400, "{id:?}: {body}");
        assert_eq!(body["error"]["details"][0]["path"], "/customer", "{body}");
    }
    let (_, events) = s.get("/v1/events", &s.admin).await;
    assert_eq!(events["events"], json!([]));
    for label in ["ops\nkey abc123 admin", "a\u{1b}[31mred", "x\u{202E}"] {
        let (status, body) = s
            .post_json("/v1/keys", &json!({"role": "analyst", "label": label}))
            .await;
        assert_eq!(status, 400, "{label:?}: {body}");
        assert_eq!(body["error"]["details"][0]["path"], "/label", "{body}");
    }
    // Chinese and spaces inside are fine.
    let (status, _) = s
        .post_json(
            "/v1/keys",
            &json!({"role": "analyst", "label": "客服 李娜"}),
        )
        .await;
    assert_eq!(status, 201);
}

#[tokio::test(flavor = "multi_thread")]
async fn dates_far_from_now_an_event_in_the_future_is_refused_naming_the_field() {
    let s = TestServer::start().await;
    let mut far = purchase("c-1", "o-1", "1.00");
    far["occurred_at"] = json!("9999-12-31T00:00:00Z");
    let (status, body) = s.post_json("/v1/events", &far).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["details"][0]["path"], "/occurred_at",
        "{body}"
    );
    let tomorrow_and_more = (chrono::Utc::now() + chrono::Duration::hours(30)).to_rfc3339();
    let mut soon = purchase("c-2", "o-2", "1.00");
    soon["occurred_at"] = json!(tomorrow_and_more);
    let (status, body) = s
        .post_json("/v1/events", &json!([purchase("c-3", "o-3", "1.00"), soon]))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["details"][0]["path"], "/1/occurred_at",
        "{body}"
    );
    // Within a day of now (clocks differ), and any past back to 1900, is accepted.
    let mut near = purchase("c-4", "o-4", "1.00");
    near["occurred_at"] = json!((chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339());
    let mut old = purchase("c-5", "o-5", "1.00");
    old["occurred_at"] = json!("1901-01-01T00:00:00Z");
    let (status, body) = s.post_json("/v1/events", &json!([near, old])).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dates_far_from_now_a_century_of_old_purchases_keeps_the_cohort_table_small() {
    let s = TestServer::start().await;
    let mut batch: Vec<serde_json::Value> = (0..101)
        .map(|i| {
            let mut p = purchase(&format!("c-{i}"), &format!("o-{i}"), "1.00");
            p["occurred_at"] = json!(format!("{}-06-01T00:00:00Z", 1900 + i.min(99)));
            p
        })
        .collect();
    batch.push(purchase("c-now", "o-now", "1.00"));
    let (status, body) = s.post_json("/v1/events", &json!(batch)).await;
    assert_eq!(status, 201, "{body}");
    let last = body["last_position"].as_u64().unwrap();
    let (status, text) = s
        .get_text(&format!("/v1/cohorts?min_position={last}"), &s.admin)
        .await;
    assert_eq!(status, 200);
    assert!(text.len() < 300_000, "{} bytes", text.len());
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["months"], 36);
    assert_eq!(
        v["earlier_customers"], 101,
        "the old buyers are counted, not shown"
    );
    let (status, v) = s.get("/v1/lifecycle/by-month", &s.admin).await;
    assert_eq!(status, 200);
    assert_eq!(v["months"].as_array().unwrap().len(), 36);
    // The largest window is still bounded; a larger one is refused naming the field.
    let (status, text) = s.get_text("/v1/cohorts?months=240", &s.admin).await;
    assert_eq!(status, 200);
    assert!(text.len() < 2_000_000, "{} bytes", text.len());
    let (status, body) = s.get("/v1/cohorts?months=241", &s.admin).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["details"][0]["path"], "months", "{body}");
}

/// Reads until the server closes the connection; how long that took.
async fn closed_after(mut stream: tokio::net::TcpStream) -> std::time::Duration {
    use tokio::io::AsyncReadExt as _;
    let started = std::time::Instant::now();
    let mut buf = [0u8; 1024];
    let wait = std::time::Duration::from_secs(20);
    loop {
        match tokio::time::timeout(wait, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("the connection was still open after {wait:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_connection_timeouts_slow_headers_slow_bodies_and_idle_connections_are_closed() {
    use tokio::io::AsyncWriteExt as _;
    let limits = rapport::http::ServeLimits {
        header_read_timeout: std::time::Duration::from_millis(300),
        body_read_timeout: std::time::Duration::from_millis(300),
        ..Default::default()
    };
    let s = TestServer::start_limited(limits).await;
    let addr = s.base.trim_start_matches("http://").to_owned();
    // Slowloris: headers that never end.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert!(closed_after(slow).await < std::time::Duration::from_secs(10));
    // An idle connection that never sends a request.
    let idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    assert!(closed_after(idle).await < std::time::Duration::from_secs(10));
    // A body announced and never sent.
    let mut body = tokio::net::TcpStream::connect(&addr).await.unwrap();
    body.write_all(
        format!(
            "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{",
            s.admin
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    assert!(closed_after(body).await < std::time::Duration::from_secs(10));
    // The server still answers.
    let (status, _) = s.get("/v1/events", &s.admin).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_key_holds_a_bounded_number_of_live_feeds_and_closing_one_frees_its_place() {
    let s = TestServer::start().await;
    let max = rapport::http::feed::FEEDS_PER_KEY_MAX;
    let mut open = Vec::new();
    for i in 0..max {
        let path = if i % 2 == 0 {
            "/v1/alerts/subscribe"
        } else {
            "/v1/events/subscribe"
        };
        open.push(s.feed(path).await);
    }
    let refused = s
        .http
        .get(format!("{}/v1/segments/changes", s.base))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_feeds", "{body}");
    // Another key is not affected.
    let other = s.key(rapport::auth::Role::Analyst);
    let resp = s
        .http
        .get(format!("{}/v1/alerts/subscribe", s.base))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    drop(resp);
    // Closing one lets the next in (the server notices the closed stream when it next
    // writes: the keep-alive at the latest).
    drop(open.pop());
    let mut status = 0;
    for _ in 0..400 {
        let r = s
            .http
            .get(format!("{}/v1/alerts/subscribe", s.base))
            .bearer_auth(&s.admin)
            .send()
            .await
            .unwrap();
        status = r.status().as_u16();
        if status == 200 {
            break;
        }
        // Wait for the server to notice the dropped feed: nudge the feeds with an event.
        let _ = s
            .post_json("/v1/events", &purchase("c-n", "o-n", "1.00"))
            .await;
    }
    assert_eq!(status, 200, "a closed feed gives its place back");
}

#[tokio::test(flavor = "multi_thread")]
async fn personal_data_that_escapes_erasure_ids_shaped_like_addresses_or_numbers_are_refused() {
    let s = TestServer::start().await;
    for (customer, field) in [
        ("li.na@example.cn", "/customer"),
        ("+86 138 0013 8000", "/customer"),
        ("13800138000", "/customer"),
    ] {
        let ev = json!({"type": "purchase", "customer": customer, "occurred_at": "2026-03-01T10:00:00Z",
            "data": {"order_id": "o-1", "amount": "1.00", "currency": "CNY"}});
        let (status, body) = s.post_json("/v1/events", &ev).await;
        assert_eq!(status, 400, "{customer}: {body}");
        assert!(body.to_string().contains(field), "{body}");
        assert!(
            body.to_string().contains("identifier_added"),
            "says what to do instead: {body}"
        );
    }
    let referral = json!({"type": "referral", "customer": "c-1", "occurred_at": "2026-03-01T10:00:00Z",
        "data": {"referee": "friend@example.com"}});
    let (status, body) = s.post_json("/v1/events", &referral).await;
    assert_eq!(status, 400);
    assert!(body.to_string().contains("/data/referee"), "{body}");
    // Pseudonymous ids, numeric ones included, are welcome.
    for customer in ["c-1", "12346", "10234567"] {
        let ev = json!({"type": "purchase", "customer": customer, "occurred_at": "2026-03-01T10:00:00Z",
            "data": {"order_id": format!("o-{customer}"), "amount": "1.00", "currency": "CNY"}});
        let (status, body) = s.post_json("/v1/events", &ev).await;
        assert_eq!(status, 201, "{customer}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn oracles_for_the_ingest_role_a_resent_id_or_a_stated_version_says_nothing() {
    let s = TestServer::start().await;
    let ingest = s.key(rapport::auth::Role::Ingest);
    let registered = |name: &str| {
        json!({"id": "01932b6e-0000-7000-8000-0000000000aa", "type": "customer_registered",
               "customer": "c-1", "occurred_at": "2026-03-01T10:00:00Z",
               "data": {"name": name, "region": "Shanghai"}})
        .to_string()
    };
    let send = |name: &str| s.post("/v1/events", &ingest, "application/json", registered(name));
    let (status, first) = send("李小龙").await;
    assert_eq!(status, 201, "{first}");
    // A right guess and a wrong one get the same answer: the stored event, unchanged.
    let (right_status, right) = send("李小龙").await;
    let (wrong_status, wrong) = send("王小明").await;
    assert_eq!((right_status, wrong_status), (200, 200), "{right} {wrong}");
    assert_eq!(right["events"], wrong["events"]);
    assert_eq!(wrong["events"][0]["duplicate"], true);
    let (_, profile) = s.get("/v1/customers/c-1", &s.admin).await;
    assert_eq!(
        profile["identity"]["name"], "李小龙",
        "the stored event was kept: {profile}"
    );
    // In a batch, the rest is written.
    let batch = format!(
        "{}\n{}\n",
        registered("王小明"),
        purchase("c-2", "o-1", "5.00")
    );
    let (status, body) = s
        .post("/v1/events", &ingest, "application/x-ndjson", batch)
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["events"][0]["duplicate"], true);
    assert_eq!(body["events"][1]["duplicate"], false);
    // A stream's version is for those who may read it.
    let (status, body) = s
        .post(
            "/v1/events?expected_version=0",
            &ingest,
            "application/json",
            purchase("c-1", "o-2", "1").to_string(),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("expected_version"));
    // Keys that may read keep the conflict and the version check.
    let (status, body) = s
        .post(
            "/v1/events",
            &s.admin.clone(),
            "application/json",
            registered("王小明"),
        )
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &json!("id_conflict"))
    );
}

/// What survives an erasure is exactly what `docs/privacy.md` says survives: the
/// customer id, the facts, `metadata` (documented as never for personal data) and staff's
/// own text on operator events. The personal fields do not.
#[tokio::test(flavor = "multi_thread")]
async fn personal_data_that_escapes_erasure_what_survives_is_exactly_what_is_documented() {
    let s = TestServer::start().await;
    let registered = json!({"type": "customer_registered", "customer": "c-77",
        "occurred_at": "2026-03-01T10:00:00Z",
        "data": {"name": "Erased Name Seventy", "email": "seventy@example.cn", "region": "Hangzhou"},
        "metadata": {"import_batch": "meta-kept-77"}});
    let (status, body) = s
        .post_json(
            "/v1/events",
            &json!([registered, purchase("c-77", "o-77", "12.00")]),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = s
        .post_json(
            "/v1/problems",
            &json!({"title": "Staff text kept 77", "note": "c-77 called twice"}),
        )
        .await;
    assert!(status == 200 || status == 201, "{status} {body}");
    let (status, body) = s.delete("/v1/customers/c-77/personal-data", &s.admin).await;
    assert_eq!(status, 200, "{body}");
    let (status, all) = s.get_text("/v1/events?limit=100", &s.admin).await;
    assert_eq!(status, 200);
    for gone in ["Erased Name Seventy", "seventy@example.cn"] {
        assert!(!all.contains(gone), "{gone} survived: {all}");
    }
    for kept in [
        "c-77",
        "12.00",
        "Hangzhou",
        "meta-kept-77",
        "Staff text kept 77",
    ] {
        assert!(all.contains(kept), "{kept} is documented to survive: {all}");
    }
}
