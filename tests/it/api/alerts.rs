//! Early warning through HTTP: connected customers complaining about one batch raise an
//! alert with evidence, live on the feed; staff act on it with events.

use futures::StreamExt;
use rapport::auth::Role;
use serde_json::{json, Value};

use super::helpers::TestServer;

fn ev(ty: &str, customer: &str, at: &str, data: Value) -> Value {
    json!({"type": ty, "customer": customer, "occurred_at": at, "data": data})
}

fn complaint(customer: &str, id: &str, at: &str, text: &str) -> Value {
    ev(
        "complaint",
        customer,
        at,
        json!({"complaint_id": id, "about": {"batch": "L0421"}, "text": text}),
    )
}

pub(super) async fn next(
    feed: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    buf: &mut String,
) -> Value {
    loop {
        if let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            if let Some(d) = frame.lines().find_map(|l| l.strip_prefix("data:")) {
                return serde_json::from_str::<Value>(d.trim()).unwrap();
            }
            continue;
        }
        let chunk = feed.next().await.expect("feed open").unwrap();
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_complaint_is_raised_live_explained_and_handled_by_staff() {
    let s = TestServer::start().await;
    let setup = json!([
        ev(
            "community_joined",
            "c-1",
            "2026-03-01T08:00:00Z",
            json!({"community": "g-12"})
        ),
        ev(
            "community_joined",
            "c-2",
            "2026-03-01T08:00:00Z",
            json!({"community": "g-12"})
        ),
        ev(
            "community_joined",
            "c-3",
            "2026-03-01T08:00:00Z",
            json!({"community": "g-12"})
        ),
        ev(
            "referral",
            "c-1",
            "2026-03-01T08:30:00Z",
            json!({"referee": "c-3"})
        ),
        complaint(
            "c-1",
            "k-1",
            "2026-03-02T09:00:00Z",
            "The Longjing tea from batch L0421 smells of mould"
        ),
        complaint(
            "c-2",
            "k-2",
            "2026-03-02T11:00:00Z",
            "My Longjing tea smells of mould too"
        ),
    ]);
    assert_eq!(s.post_json("/v1/events", &setup).await.0, 201);
    let mut feed = s.feed("/v1/alerts/subscribe").await;
    let mut buf = String::new();
    let raised = next(&mut feed, &mut buf).await;
    assert_eq!(raised["change"]["change"], "raised");
    assert_eq!(raised["alert"]["level"], "watch");
    let id = raised["alert"]["id"].as_str().unwrap().to_owned();

    let (_, appended) = s
        .post_json(
            "/v1/events",
            &complaint(
                "c-3",
                "k-3",
                "2026-03-02T13:00:00Z",
                "mould in the tea, smells of mould",
            ),
        )
        .await;
    let third = appended["positions"][0].as_u64().unwrap();
    let escalated = next(&mut feed, &mut buf).await;
    assert_eq!(escalated["change"]["change"], "escalated");
    assert_eq!(escalated["change"]["position"], third);
    let a = &escalated["alert"];
    assert_eq!(a["id"], id, "an ongoing cluster updates its alert");
    assert_eq!(a["kind"], "group_complaint");
    assert_eq!(a["level"], "warning");
    assert_eq!(a["complaints"], json!(["k-1", "k-2", "k-3"]));
    assert_eq!(a["customers"], json!(["c-1", "c-2", "c-3"]));
    assert_eq!(a["first_complaint_at"], "2026-03-02T09:00:00Z");
    assert_eq!(a["updated_at_position"], third);
    let ties: Vec<&str> = a["evidence"]["ties"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(ties.contains(&"3 of 3 in community g-12"), "{ties:?}");
    assert!(ties.contains(&"c-1 referred c-3"), "{ties:?}");

    // Operations see it too: alerts by level and status (every pair, so the watch it was
    // reads 0 now), and the feed open.
    let (_, metrics) = s.get_text("/metrics", &s.admin).await;
    for line in [
        r#"rapport_alerts{level="warning",status="open"} 1"#,
        r#"rapport_alerts{level="watch",status="open"} 0"#,
        r#"rapport_alerts{level="critical",status="merged"} 0"#,
        "rapport_sse_clients 1",
        "rapport_kafka_dead_letters_total 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }

    // Support sees the phrases the complaints share; an analyst sees none.
    let (status, one) = s
        .get(&format!("/v1/alerts/{id}"), &s.key(Role::Support))
        .await;
    assert_eq!(status, 200);
    let phrases = one["evidence"]["shared_phrases"].as_array().unwrap();
    assert!(
        phrases
            .iter()
            .any(|p| p.as_str().unwrap().contains("mould")),
        "{phrases:?}"
    );
    let (_, one) = s
        .get(&format!("/v1/alerts/{id}"), &s.key(Role::Analyst))
        .await;
    assert_eq!(one["evidence"]["shared_phrases"], Value::Null);

    let (status, list) = s
        .get("/v1/alerts?level=warning&status=open", &s.admin)
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["total"], 1);
    let (status, body) = s.get("/v1/alerts?level=loud", &s.admin).await;
    assert_eq!(
        (status, &body["error"]["details"][0]["path"]),
        (400, &json!("level"))
    );

    // Staff act; the actions are events in the alert's stream.
    let (status, _) = s
        .post(
            &format!("/v1/alerts/{id}/acknowledge"),
            &s.key(Role::Analyst),
            "application/json",
            "{}",
        )
        .await;
    assert_eq!(status, 403, "analysts read alerts, support handles them");
    let (status, ack) = s
        .post(
            &format!("/v1/alerts/{id}/resolve"),
            &s.admin,
            "application/json",
            r#"{"note":"batch recalled"}"#,
        )
        .await;
    assert_eq!(status, 200, "{ack}");
    let resolved = next(&mut feed, &mut buf).await;
    assert_eq!(resolved["change"]["change"], "resolved");
    assert_eq!(resolved["alert"]["status"], "resolved");
    assert_eq!(resolved["alert"]["actions"][0]["note"], "batch recalled");
    let (_, log) = s.get(&format!("/v1/streams/alert-{id}"), &s.admin).await;
    assert_eq!(log["events"][0]["type"], "alert_resolved");
    assert_eq!(
        s.post(
            "/v1/alerts/nope/resolve",
            &s.admin,
            "application/json",
            "{}"
        )
        .await
        .0,
        404
    );
}
