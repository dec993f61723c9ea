//! Reading: streams, the global log, subscriptions, metrics, the OpenAPI document.

use futures::StreamExt;
use serde_json::{json, Value};

use super::helpers::{purchase, TestServer};

#[tokio::test(flavor = "multi_thread")]
async fn streams_and_the_global_log_page() {
    let s = TestServer::start().await;
    let batch: Vec<_> = (0..25)
        .map(|i| {
            purchase(
                if i % 2 == 0 { "even" } else { "odd" },
                &format!("o-{i}"),
                "1",
            )
        })
        .collect();
    assert_eq!(s.post_json("/v1/events", &json!(batch)).await.0, 201);
    let (_, page) = s
        .get(
            "/v1/streams/customer-even?from_version=10&limit=2",
            &s.admin,
        )
        .await;
    let versions: Vec<_> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["stream_version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [10, 11]);
    assert_eq!(page["next_from_version"], 12);
    let mut after = 0;
    let mut seen = Vec::new();
    loop {
        let (_, page) = s
            .get(&format!("/v1/events?after={after}&limit=7"), &s.admin)
            .await;
        let events = page["events"].as_array().unwrap();
        if events.is_empty() {
            break;
        }
        seen.extend(events.iter().map(|e| e["position"].as_u64().unwrap()));
        after = page["next_after"].as_u64().unwrap();
    }
    assert_eq!(seen, (1..=25).collect::<Vec<_>>());
    assert_eq!(s.get("/v1/streams/customer-nobody", &s.admin).await.0, 404);
    let (status, body) = s.get("/v1/events?limit=0", &s.admin).await;
    assert_eq!(
        (status, body["error"]["details"][0]["path"].as_str()),
        (400, Some("limit"))
    );
    assert_eq!(s.get("/v1/events?after=-1", &s.admin).await.0, 400);
    // A parameter that does not parse is named, not just "query".
    let (status, body) = s.get("/v1/events?after=-1", &s.admin).await;
    assert_eq!(
        (status, body["error"]["details"][0]["path"].as_str()),
        (400, Some("after"))
    );
    let (status, body) = s.get("/v1/customers/c-1?as_of_position=x", &s.admin).await;
    assert_eq!(
        (status, body["error"]["details"][0]["path"].as_str()),
        (400, Some("as_of_position"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subscription_catches_up_then_goes_live_without_gap_or_duplicate() {
    let s = std::sync::Arc::new(TestServer::start().await);
    let first: Vec<_> = (0..30)
        .map(|i| purchase("c", &format!("o-{i}"), "1"))
        .collect();
    s.post_json("/v1/events", &json!(first)).await;
    let mut body = s.feed("/v1/events/subscribe?after=5").await;
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            for i in 0..20 {
                let batch: Vec<_> = (0..3)
                    .map(|j| purchase("d", &format!("p-{i}-{j}"), "1"))
                    .collect();
                assert_eq!(s.post_json("/v1/events", &json!(batch)).await.0, 201);
            }
        })
    };
    let mut buf = String::new();
    let mut positions = Vec::new();
    while positions.len() < 85 {
        let chunk = body.next().await.expect("stream open").unwrap();
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data:")) {
                let ev: Value = serde_json::from_str(data.trim()).unwrap();
                positions.push(ev["position"].as_u64().unwrap());
            }
        }
    }
    writer.await.unwrap();
    assert_eq!(positions, (6..=90).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_report_appends_commits_and_route_latency() {
    let s = TestServer::start().await;
    s.post_json("/v1/events", &purchase("c", "o", "1")).await;
    let (status, text) = s.get_text("/metrics", &s.admin).await;
    assert_eq!(status, 200);
    assert!(text.contains("rapport_events_appended_total 1"), "{text}");
    assert!(text.contains("rapport_group_commit_seconds_bucket"));
    assert!(text.contains(r#"route="/v1/events""#));
    // A catch-up of one event is never followed by a compaction (the memory benchmark
    // waits for this gauge to reach 1 after a long one).
    assert!(
        text.lines()
            .any(|l| l == "rapport_read_model_compactions 0"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_documented_route_exists_and_the_document_is_openapi_3_1() {
    let s = TestServer::start().await;
    let doc: Value = s
        .http
        .get(format!("{}/openapi.json", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["components"]["schemas"]["purchase_v1"].is_object());
    // Every reference resolves inside the document, and every link names an operation.
    let text = doc.to_string();
    for r in text.split("\"$ref\":\"").skip(1) {
        let target = &r[..r.find('"').unwrap()];
        let name = target
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("a reference outside the components: {target}"));
        assert!(doc["components"]["schemas"][name].is_object(), "{target}");
    }
    let ids: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|ops| ops.as_object().unwrap().values())
        .map(|op| op["operationId"].as_str().unwrap())
        .collect();
    for ops in doc["paths"].as_object().unwrap().values() {
        for op in ops.as_object().unwrap().values() {
            for response in op["responses"].as_object().unwrap().values() {
                for link in response["links"].as_object().into_iter().flatten() {
                    let target = link.1["operationId"].as_str().unwrap();
                    assert!(ids.contains(&target), "a link to no operation: {target}");
                }
            }
        }
    }
    // A route's query parameters come from the type its query is read into.
    let alerts = &doc["paths"]["/v1/alerts"]["get"]["parameters"];
    let limit = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(limit["schema"]["maximum"], 500, "{limit}");
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            let url = format!(
                "{}{}",
                s.base,
                path.replace("{stream}", "customer-x").replace("{id}", "x")
            );
            let req = s.http.request(method.to_uppercase().parse().unwrap(), url);
            let status = req.send().await.unwrap().status().as_u16();
            assert_ne!(status, 404, "{method} {path} is documented but not routed");
            assert_ne!(status, 405, "{method} {path} is documented but not routed");
        }
    }
    let undocumented = s
        .http
        .get(format!("{}/v1/nothing", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(undocumented.status(), 404);
}
