//! Rule-based segments through HTTP: definition as an event, membership that follows
//! events and time, the change feed (SSE), members as JSON and CSV, the list filter.

use futures::StreamExt;
use rapport::auth::Role;
use serde_json::{json, Value};

use super::helpers::TestServer;

fn ev(ty: &str, customer: &str, at: &str, data: Value) -> Value {
    json!({"type": ty, "customer": customer, "occurred_at": at, "data": data})
}

fn buy(customer: &str, order: &str, at: &str) -> Value {
    ev(
        "purchase",
        customer,
        at,
        json!({"order_id": order, "amount": "20.00", "currency": "CNY"}),
    )
}

fn lapsed_regulars() -> Value {
    json!({"id": "lapsed-regulars", "name": "Lapsed regulars", "rule": {"all": [
        {"field": "days_since_last_purchase", "op": ">=", "value": 90},
        {"field": "orders", "op": ">=", "value": 3},
        {"field": "communities", "op": "contains", "value": "g-1"}
    ]}})
}

/// Reads SSE frames until `n` `change` events arrived.
async fn next_changes(
    body: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    buf: &mut String,
    n: usize,
) -> Vec<Value> {
    let mut out = Vec::new();
    while out.len() < n {
        let chunk = body.next().await.expect("feed open").unwrap();
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            if frame.lines().any(|l| l == "event: change") {
                let data = frame.lines().find_map(|l| l.strip_prefix("data:")).unwrap();
                out.push(serde_json::from_str(data.trim()).unwrap());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dormant_regular_enters_as_time_passes_and_exits_when_buying_again() {
    let s = TestServer::start().await;
    let history = json!([
        ev(
            "community_joined",
            "c-1",
            "2026-01-01T08:00:00Z",
            json!({"community": "g-1"})
        ),
        buy("c-1", "o-1", "2026-01-02T10:00:00Z"),
        buy("c-1", "o-2", "2026-01-05T10:00:00Z"),
        buy("c-1", "o-3", "2026-01-10T10:00:00Z"),
        buy("c-2", "o-4", "2026-01-11T10:00:00Z"),
    ]);
    assert_eq!(s.post_json("/v1/events", &history).await.0, 201);

    // A rule with a mistake is refused, naming the place.
    let mut bad = lapsed_regulars();
    bad["rule"]["all"][1]["op"] = json!("at least");
    let (status, body) = s.post_json("/v1/segments", &bad).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["details"][0]["path"], "/rule/all/1/op");

    // Given the segment, defined on the wall clock's today but evaluated at event time.
    let (status, body) = s.post_json("/v1/segments", &lapsed_regulars()).await;
    assert_eq!(status, 201, "{body}");
    let defined_at = body["position"].as_u64().unwrap();
    let (status, seg) = s
        .get(
            &format!("/v1/segments/lapsed-regulars?min_position={defined_at}"),
            &s.admin,
        )
        .await;
    assert_eq!(status, 200, "{seg}");
    assert_eq!(seg["members"], 0, "only days since c-1's last purchase");
    assert_eq!(seg["revision"], 1);
    let (status, _) = s.post_json("/v1/segments", &lapsed_regulars()).await;
    assert_eq!(status, 409, "the id is taken");
    let ingest = s.key(Role::Ingest);
    let (status, _) = s
        .post(
            "/v1/segments",
            &ingest,
            "application/json",
            lapsed_regulars().to_string(),
        )
        .await;
    assert_eq!(status, 403);

    // The definition is an event in the segment's own stream, naming a subject.
    let (_, log) = s.get("/v1/streams/segment-lapsed-regulars", &s.admin).await;
    assert_eq!(log["events"][0]["type"], "segment_defined");
    assert_eq!(log["events"][0]["subject"], "lapsed-regulars");
    assert!(log["events"][0].get("customer").is_none());

    // When someone else's purchase moves event time past 90 days after c-1's last order …
    let mut feed = s.feed("/v1/segments/changes?after=0").await;
    let mut buf = String::new();
    let (_, appended) = s
        .post_json("/v1/events", &buy("c-2", "o-5", "2026-04-15T10:00:00Z"))
        .await;
    let clock_mover = appended["positions"][0].as_u64().unwrap();
    // … then c-1 entered, caused by time passing, at the position of that event.
    let changes = next_changes(&mut feed, &mut buf, 1).await;
    assert_eq!(changes[0]["customer"], "c-1");
    assert_eq!(changes[0]["change"], "entered");
    assert_eq!(changes[0]["cause"], "time");
    assert_eq!(changes[0]["position"], clock_mover);
    assert_eq!(changes[0]["seq"], 1);

    let (status, members) = s
        .get(
            &format!("/v1/segments/lapsed-regulars/members?min_position={clock_mover}"),
            &s.admin,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(members["total"], 1);
    assert_eq!(members["members"][0]["customer"], "c-1");
    assert_eq!(members["members"][0]["orders"], 3);
    assert_eq!(members["members"][0]["lifecycle"], "at_risk");
    let (status, csv) = s
        .get_text("/v1/segments/lapsed-regulars/members?format=csv", &s.admin)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        csv,
        "customer,lifecycle,relationship,orders,last_purchase,revenue,currency,communities,marketing_channels\n\
         c-1,at_risk,user,3,2026-01-10T10:00:00Z,60.00,CNY,g-1,\n"
    );
    let (_, list) = s
        .get("/v1/customers?segment=lapsed-regulars", &s.admin)
        .await;
    let ids: Vec<&str> = list["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["c-1"]);
    let (status, body) = s.get("/v1/customers?segment=nope", &s.admin).await;
    assert_eq!(status, 404, "{body}");

    // When c-1 buys again, c-1 exits, caused by that purchase.
    let (_, appended) = s
        .post_json("/v1/events", &buy("c-1", "o-6", "2026-04-16T10:00:00Z"))
        .await;
    let changes = next_changes(&mut feed, &mut buf, 1).await;
    assert_eq!(
        (
            &changes[0]["change"],
            &changes[0]["cause"],
            &changes[0]["position"]
        ),
        (&json!("exited"), &json!("event"), &appended["positions"][0])
    );

    // Time travel: who entered between the definition and the clock-moving purchase; the
    // past as of a position; business time with valid_at.
    let (status, diff) = s
        .get(
            &format!("/v1/segments/lapsed-regulars/diff?from={defined_at}&to={clock_mover}"),
            &s.admin,
        )
        .await;
    assert_eq!(status, 200, "{diff}");
    assert_eq!(
        (&diff["entered"], &diff["exited"]),
        (&json!(["c-1"]), &json!([]))
    );
    let now = appended["positions"][0].as_u64().unwrap();
    let (_, diff) = s
        .get(
            &format!("/v1/segments/lapsed-regulars/diff?from={clock_mover}&to={now}"),
            &s.admin,
        )
        .await;
    assert_eq!(
        (&diff["entered"], &diff["exited"]),
        (&json!([]), &json!(["c-1"]))
    );
    // In business time too, though the rule was defined (on the wall clock) long after.
    let (status, diff) = s
        .get(
            "/v1/segments/lapsed-regulars/diff?from=2026-01-12&to=2026-04-15T12:00:00Z",
            &s.admin,
        )
        .await;
    assert_eq!(status, 200, "{diff}");
    assert_eq!(
        (&diff["entered"], &diff["exited"]),
        (&json!(["c-1"]), &json!([]))
    );
    let (status, past) = s.get("/v1/customers/c-1?as_of_position=3", &s.admin).await;
    assert_eq!(status, 200, "{past}");
    assert_eq!(past["orders"], 2, "after event 3 c-1 had bought twice");
    let (_, past) = s
        .get("/v1/customers/c-1?valid_at=2026-01-04", &s.admin)
        .await;
    assert_eq!(past["orders"], 1, "by 4 January c-1 had bought once");
    let (_, m) = s
        .get(
            &format!("/v1/segments/lapsed-regulars/members?as_of_position={clock_mover}"),
            &s.admin,
        )
        .await;
    assert_eq!(m["total"], 1);
    let (status, body) = s
        .get("/v1/customers/c-1?as_of_position=999", &s.admin)
        .await;
    assert_eq!(
        (status, &body["error"]["details"][0]["path"]),
        (400, &json!("as_of_position"))
    );

    // Retiring the segment ends it; its stream keeps the history.
    let (status, _) = s.delete("/v1/segments/lapsed-regulars", &s.admin).await;
    assert_eq!(status, 200);
    let (_, list) = s.get("/v1/segments?min_position=9", &s.admin).await;
    assert_eq!(list["segments"], json!([]));
    assert_eq!(
        s.delete("/v1/segments/lapsed-regulars", &s.admin).await.0,
        404
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_cannot_send_operator_events_directly() {
    let s = TestServer::start().await;
    let forged = json!({"type": "segment_defined", "subject": "x", "occurred_at": "2026-01-01T00:00:00Z",
        "data": {"name": "x", "rule": {"field": "orders", "op": ">", "value": 0}}});
    let (status, body) = s.post_json("/v1/events", &forged).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("written by Rapport itself"),
        "{body}"
    );
}

/// The lifecycle feed (the one Kafka publishes on `rapport.customers`) over HTTP: time alone
/// moves a quiet customer to at-risk, at the position of the event that moved event time.
#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_changes_follow_event_time_and_can_be_filtered_by_state() {
    let s = TestServer::start().await;
    let history = json!([
        buy("c-1", "o-1", "2026-01-02T10:00:00Z"),
        buy("c-2", "o-2", "2026-01-03T10:00:00Z"),
    ]);
    assert_eq!(s.post_json("/v1/events", &history).await.0, 201);
    let (status, body) = s.get("/v1/lifecycle/changes?to=sleeping", &s.admin).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["details"][0]["path"], "to", "{body}");

    let mut feed = s.feed("/v1/lifecycle/changes?after=0&to=at_risk").await;
    let mut buf = String::new();
    let (_, appended) = s
        .post_json("/v1/events", &buy("c-2", "o-3", "2026-04-15T10:00:00Z"))
        .await;
    let clock_mover = appended["positions"][0].as_u64().unwrap();
    let changes = next_changes(&mut feed, &mut buf, 1).await;
    assert_eq!(changes[0]["customer"], "c-1");
    assert_eq!(
        (&changes[0]["from"], &changes[0]["to"], &changes[0]["cause"]),
        (&json!("new"), &json!("at_risk"), &json!("time"))
    );
    assert_eq!(changes[0]["position"], clock_mover);
    assert_eq!(changes[0]["at"], "2026-04-15T10:00:00Z");
    // A misspelt parameter is named, not ignored.
    let (status, text) = s
        .get_text("/v1/lifecycle/changes?after=0&limit_wait=0", &s.admin)
        .await;
    assert_eq!(status, 400, "unknown parameters are refused: {text}");
}
