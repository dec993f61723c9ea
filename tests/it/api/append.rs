//! Appending: formats, validation, idempotency, optimistic concurrency, limits.

use serde_json::json;

use super::helpers::{purchase, TestServer};

#[tokio::test(flavor = "multi_thread")]
async fn a_single_event_lands_at_position_one_in_its_customer_stream() {
    let s = TestServer::start().await;
    let (status, body) = s
        .post_json("/v1/events", &purchase("c-1042", "o-77", "129.90"))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["positions"], json!([1]));
    assert_eq!(body["events"][0]["stream"], "customer-c-1042");
    assert_eq!(body["events"][0]["stream_version"], 0);
    let (_, read) = s.get("/v1/events?after=0", &s.admin).await;
    assert_eq!(
        read["events"][0]["data"]["amount"], "129.90",
        "money keeps its exact text"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn json_numbers_for_money_are_read_exactly_and_stored_as_strings() {
    let s = TestServer::start().await;
    let body = r#"{"type":"purchase","customer":"c","occurred_at":"2026-03-01T10:00:00Z","data":{"order_id":"o","amount":0.30000000000000004,"currency":"CNY"}}"#;
    let (status, b) = s
        .post("/v1/events", &s.admin.clone(), "application/json", body)
        .await;
    // More than 8 decimals is refused rather than rounded.
    assert_eq!(status, 400, "{b}");
    let body = r#"{"type":"purchase","customer":"c","occurred_at":"2026-03-01T10:00:00Z","data":{"order_id":"o","amount":0.10,"currency":"CNY"}}"#;
    let (status, _) = s
        .post("/v1/events", &s.admin.clone(), "application/json", body)
        .await;
    assert_eq!(status, 201);
    let (_, read) = s.get("/v1/events", &s.admin).await;
    assert_eq!(read["events"][0]["data"]["amount"], "0.10");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_bad_event_rejects_the_whole_batch_and_names_the_field() {
    let s = TestServer::start().await;
    let mut batch: Vec<_> = (0..4)
        .map(|i| purchase("c-1", &format!("o-{i}"), "10"))
        .collect();
    batch[3]["data"]["amount"] = json!("-5");
    let (status, body) = s.post_json("/v1/events", &json!(batch)).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_event");
    assert_eq!(
        body["error"]["message"],
        "/3/data/amount: must be a non-negative decimal"
    );
    assert_eq!(body["error"]["details"][0]["path"], "/3/data/amount");
    let (_, read) = s.get("/v1/events", &s.admin).await;
    assert_eq!(read["last_position"], 0, "nothing of the batch was written");
}

#[tokio::test(flavor = "multi_thread")]
async fn ndjson_and_cloudevents_are_accepted() {
    let s = TestServer::start().await;
    let nd = format!(
        "{}\n{}\n",
        purchase("c-1", "o-1", "1"),
        purchase("c-2", "o-2", "2")
    );
    let (status, body) = s
        .post("/v1/events", &s.admin.clone(), "application/x-ndjson", nd)
        .await;
    assert_eq!((status, body["positions"].clone()), (201, json!([1, 2])));
    let ce = json!({"specversion": "1.0", "id": "evt-9", "source": "/shop", "type": "com.shop.purchase", "subject": "c-3",
        "time": "2026-03-01T10:00:00Z", "data": {"order_id": "o-3", "amount": "3", "currency": "CNY"}});
    let (status, body) = s
        .post(
            "/v1/events",
            &s.admin.clone(),
            "application/cloudevents+json",
            ce.to_string(),
        )
        .await;
    assert_eq!((status, body["positions"].clone()), (201, json!([3])));
    // The same CloudEvent redelivered is a duplicate, not a new event.
    let (status, body) = s
        .post(
            "/v1/events",
            &s.admin.clone(),
            "application/cloudevents-batch+json",
            json!([ce]).to_string(),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["events"][0]["duplicate"], true);
    assert_eq!(body["positions"], json!([3]));
    let (status, body) = s
        .post("/v1/events", &s.admin.clone(), "text/plain", "x")
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (415, Some("unsupported_media_type"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_id_is_idempotent_with_the_same_content_and_a_conflict_otherwise() {
    let s = TestServer::start().await;
    let mut ev = purchase("c-1", "o-1", "10.00");
    ev["id"] = json!("01932b6e-0000-7000-8000-000000000001");
    let (status, first) = s.post_json("/v1/events", &ev).await;
    assert_eq!(status, 201);
    let (status, again) = s.post_json("/v1/events", &ev).await;
    assert_eq!(status, 200);
    assert_eq!(again["positions"], first["positions"]);
    assert_eq!(again["events"][0]["duplicate"], true);
    // Equivalent JSON (a number instead of a string, another key order) is the same content.
    let same = r#"{"data": {"currency": "CNY", "amount": 10.00, "order_id": "o-1"}, "occurred_at": "2026-03-01T18:00:00+08:00",
        "customer": "c-1", "type": "purchase", "id": "01932b6e-0000-7000-8000-000000000001"}"#;
    assert_eq!(
        s.post("/v1/events", &s.admin.clone(), "application/json", same)
            .await
            .0,
        200
    );
    ev["data"]["amount"] = json!("11.00");
    let (status, body) = s.post_json("/v1/events", &ev).await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "id_conflict");
    let (_, read) = s.get("/v1/events", &s.admin).await;
    assert_eq!(read["last_position"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn expected_version_guards_a_stream() {
    let s = TestServer::start().await;
    let (status, _) = s
        .post_json(
            "/v1/events?expected_version=no_stream",
            &purchase("c-1", "o-1", "1"),
        )
        .await;
    assert_eq!(status, 201);
    let (status, body) = s
        .post_json(
            "/v1/events?expected_version=no_stream",
            &purchase("c-1", "o-2", "1"),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "wrong_expected_version");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is at version 0"),
        "{body}"
    );
    assert_eq!(
        s.post_json(
            "/v1/events?expected_version=0",
            &purchase("c-1", "o-2", "1")
        )
        .await
        .0,
        201
    );
    assert_eq!(
        s.post_json(
            "/v1/events?expected_version=0",
            &purchase("c-1", "o-3", "1")
        )
        .await
        .0,
        409
    );
    let (status, body) = s
        .post_json(
            "/v1/events?expected_version=1&stream=customer-c-2",
            &purchase("c-1", "o-3", "1"),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        s.post_json(
            "/v1/events?expected_version=banana",
            &purchase("c-1", "o-3", "1")
        )
        .await
        .0,
        400
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_appends_with_the_same_expected_version_let_exactly_one_win() {
    let s = std::sync::Arc::new(TestServer::start().await);
    s.post_json("/v1/events", &purchase("c-1", "o-0", "1"))
        .await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.post_json(
                "/v1/events?expected_version=0",
                &purchase("c-1", &format!("o-{}", i + 1), "1"),
            )
            .await
            .0
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        15,
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_are_enforced_with_the_limit_in_the_message() {
    let s = TestServer::start().await;
    let big = "x".repeat(rapport::http::BODY_BYTES_MAX + 1);
    let (status, body) = s
        .post("/v1/events", &s.admin.clone(), "application/json", big)
        .await;
    assert_eq!(status, 413);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains(&rapport::http::BODY_BYTES_MAX.to_string()));
    let n = rapport::store::APPEND_EVENTS_MAX + 1;
    let lines: String = (0..n)
        .map(|i| format!("{}\n", purchase("c", &format!("o-{i}"), "1")))
        .collect();
    let (status, body) = s
        .post(
            "/v1/events",
            &s.admin.clone(),
            "application/x-ndjson",
            lines,
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&rapport::store::APPEND_EVENTS_MAX.to_string()),
        "{body}"
    );
    let (status, body) = s
        .post("/v1/events", &s.admin.clone(), "application/json", "[]")
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = s
        .post(
            "/v1/events",
            &s.admin.clone(),
            "application/json",
            "{not json",
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("invalid JSON"));
}
