//! The support workflow end to end over HTTP: a cascade raises an alert; support owns it,
//! sees who else bought the batch and turns them into a segment, records resolutions,
//! groups alerts under a problem, resolves it, and says whether the alert was right.
//! Deadlines pass on the deadline clock's ticks.

use rapport::auth::Role;
use serde_json::{json, Value};

use super::helpers::TestServer;

fn ev(ty: &str, customer: &str, at: &str, data: Value) -> Value {
    json!({"type": ty, "customer": customer, "occurred_at": at, "data": data})
}

fn buy(customer: &str, order: &str, at: &str, price: &str) -> Value {
    ev(
        "purchase",
        customer,
        at,
        json!({"order_id": order, "amount": price, "currency": "CNY",
               "items": [{"sku": "T-1", "product": "Longjing", "quantity": 1, "unit_price": price}]}),
    )
}

fn complaint(customer: &str, id: &str, at: &str, about: Value) -> Value {
    ev(
        "complaint",
        customer,
        at,
        json!({"complaint_id": id, "about": about, "text": "the Longjing tea smells of mould",
               "severity": 3, "category": "quality"}),
    )
}

/// Three friends who bought T-1 complain about it; four other buyers have not.
pub(super) fn cascade(day: &str) -> Value {
    let at = |h: u32| format!("{day}T{h:02}:00:00Z");
    let mut events = vec![];
    for c in ["c-1", "c-2", "c-3"] {
        events.push(ev(
            "community_joined",
            c,
            &at(1),
            json!({"community": "g-1"}),
        ));
        events.push(buy(c, &format!("o-{c}"), &at(2), "88.00"));
    }
    for (i, b) in ["b-1", "b-2", "b-3", "b-4"].iter().enumerate() {
        events.push(buy(
            b,
            &format!("o-{b}"),
            &at(3),
            &format!("{}.00", 100 + i),
        ));
    }
    events.push(ev(
        "purchase",
        "other",
        &at(3),
        json!({"order_id": "o-x", "amount": "5.00", "currency": "CNY",
               "items": [{"sku": "T-2", "quantity": 1, "unit_price": "5.00"}]}),
    ));
    for (i, c) in ["c-1", "c-2", "c-3"].iter().enumerate() {
        events.push(complaint(
            c,
            &format!("k-{i}"),
            &at(4 + i as u32),
            json!({"sku": "T-1"}),
        ));
    }
    Value::Array(events)
}

/// Appends `events`; the position of the last of them (`last_position` is the log's,
/// which a deadline tick may already have passed).
async fn append(s: &TestServer, events: &Value) -> u64 {
    let (status, body) = s.post_json("/v1/events", events).await;
    assert_eq!(status, 201, "{body}");
    body["positions"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_u64()
        .unwrap()
}

async fn warning(s: &TestServer, after: u64) -> Value {
    let (_, alerts) = s
        .get(
            &format!("/v1/alerts?level=warning&min_position={after}"),
            &s.admin,
        )
        .await;
    assert_eq!(alerts["alerts"].as_array().unwrap().len(), 1, "{alerts}");
    alerts["alerts"][0].clone()
}

async fn send(s: &TestServer, token: &str, path: &str, body: Value) -> (u16, Value) {
    s.post(path, token, "application/json", body.to_string())
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn from_cascade_to_exposure_segment_to_resolution() {
    let s = TestServer::start().await;
    let (li, support) = s
        .keys
        .create(Role::Support, Some("Li, support lead"))
        .unwrap();
    let analyst = s.key(Role::Analyst);
    let last = append(&s, &cascade("2026-03-02")).await;
    let alert = warning(&s, last).await;
    let id = alert["id"].as_str().unwrap().to_owned();
    assert_eq!(alert["severity_max"], 3);
    assert_eq!(alert["categories"], json!(["quality"]));
    assert!(alert["deadlines"]["acknowledge_by"].is_string(), "{alert}");

    // Ownership: only a support or admin key can own it.
    let (status, body) = send(
        &s,
        &support,
        &format!("/v1/alerts/{id}/assign"),
        json!({"assignee": li.id}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let analyst_id = s
        .keys
        .list()
        .unwrap()
        .into_iter()
        .find(|k| k.role == Role::Analyst)
        .unwrap()
        .id;
    let (status, body) = send(
        &s,
        &support,
        &format!("/v1/alerts/{id}/assign"),
        json!({"assignee": analyst_id}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["details"][0]["path"].as_str()),
        (400, Some("/assignee")),
        "{body}"
    );
    assert_eq!(
        send(
            &s,
            &analyst,
            &format!("/v1/alerts/{id}/assign"),
            json!({"assignee": li.id})
        )
        .await
        .0,
        403
    );
    let (_, mine) = s
        .get(
            &format!(
                "/v1/alerts?assignee=me&min_position={}",
                body_position(&s).await
            ),
            &support,
        )
        .await;
    assert_eq!(mine["alerts"][0]["id"], id, "{mine}");

    // Exposure: the other buyers of T-1, most money first, never the complainants.
    let (status, x) = s.get(&format!("/v1/alerts/{id}/exposure"), &support).await;
    assert_eq!(status, 200, "{x}");
    let who: Vec<&str> = x["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["customer"].as_str().unwrap())
        .collect();
    assert_eq!(who, ["b-4", "b-3", "b-2", "b-1"], "{x}");
    assert_eq!(x["amount"]["CNY"], "406.00");
    assert_eq!(x["keys"], json!(["sku:T-1"]));
    let (status, csv) = s
        .get_text(&format!("/v1/alerts/{id}/exposure?format=csv"), &support)
        .await;
    assert_eq!(status, 200);
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(csv.lines().nth(1).unwrap().starts_with("b-4,"), "{csv}");
    let (status, seg) = send(
        &s,
        &support,
        &format!("/v1/alerts/{id}/exposure/segment"),
        json!({"id": "exposed-t1", "name": "Bought T-1"}),
    )
    .await;
    assert_eq!((status, seg["members"].as_u64()), (201, Some(4)), "{seg}");
    let (_, members) = s
        .get(
            &format!(
                "/v1/segments/exposed-t1/members?min_position={}",
                seg["position"]
            ),
            &s.admin,
        )
        .await;
    assert_eq!(members["members"].as_array().unwrap().len(), 4, "{members}");
    assert_eq!(
        send(
            &s,
            &support,
            &format!("/v1/alerts/{id}/exposure/segment"),
            json!({"id": "exposed-t1"})
        )
        .await
        .0,
        409
    );

    // Support records a resolution with the customer's satisfaction, and nothing else.
    let resolved = ev(
        "complaint_resolved",
        "c-1",
        "2026-03-03T09:00:00Z",
        json!({"complaint_id": "k-0", "satisfied": true}),
    );
    let (status, body) = send(&s, &support, "/v1/events", resolved).await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = send(
        &s,
        &support,
        "/v1/events",
        buy("c-9", "o-9", "2026-03-03T09:00:00Z", "1.00"),
    )
    .await;
    assert_eq!(status, 403);

    // A problem gathers the alert; resolving it resolves the alert and closes the
    // complaints still open, on the customers' own streams.
    let (status, p) = send(
        &s,
        &support,
        "/v1/problems",
        json!({"id": "damp-batch", "title": "Batch stored damp"}),
    )
    .await;
    assert_eq!(status, 201, "{p}");
    let (status, body) = send(
        &s,
        &support,
        "/v1/problems/damp-batch/links",
        json!({"alert": id}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(
        &s,
        &support,
        "/v1/problems/damp-batch/links",
        json!({"alert": "al-nope"}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["details"][0]["path"].as_str()),
        (400, Some("/alert")),
        "{body}"
    );
    let (status, body) = send(
        &s,
        &support,
        "/v1/problems/damp-batch/resolve",
        json!({"note": "recalled"}),
    )
    .await;
    assert_eq!(
        (status, body["complaints_resolved"].as_u64()),
        (200, Some(2)),
        "{body}"
    );
    let at = body["position"].as_u64().unwrap();
    let (_, a) = s
        .get(&format!("/v1/alerts/{id}?min_position={at}"), &support)
        .await;
    assert_eq!(
        (a["status"].as_str(), a["problem"].as_str()),
        (Some("resolved"), Some("damp-batch")),
        "{a}"
    );
    for c in ["c-1", "c-2", "c-3"] {
        let (_, p) = s
            .get(&format!("/v1/customers/{c}?min_position={at}"), &support)
            .await;
        assert_eq!(p["complaints"]["open"], json!([]), "{c}: {p}");
    }
    let (_, p) = s.get("/v1/problems/damp-batch", &analyst).await;
    assert_eq!(p["status"], "resolved");
    assert_eq!(p["alert_summaries"][0]["id"], id);
    assert_eq!(
        send(&s, &support, "/v1/problems/damp-batch/resolve", json!({}))
            .await
            .0,
        409
    );

    // Was it right? A verdict needs its reason.
    let (status, body) = send(
        &s,
        &support,
        &format!("/v1/alerts/{id}/review"),
        json!({"verdict": "confirmed"}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["details"][0]["path"].as_str()),
        (400, Some("/reason")),
        "{body}"
    );
    let (status, body) = send(
        &s,
        &support,
        &format!("/v1/alerts/{id}/review"),
        json!({"verdict": "confirmed", "reason": "damp warehouse"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, a) = s
        .get(
            &format!("/v1/alerts/{id}?min_position={}", body["position"]),
            &support,
        )
        .await;
    assert_eq!(a["review"]["verdict"], "confirmed");
    assert_eq!(a["review"]["by"], li.id.as_str());
    let actions: Vec<&str> = a["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["action"].as_str().unwrap())
        .collect();
    // The resolution recorded on 3 March moved event time past the deadline to
    // acknowledge (8 hours from the warning).
    assert_eq!(
        actions,
        ["assigned", "overdue", "linked", "resolved", "reviewed"]
    );
}

async fn body_position(s: &TestServer) -> u64 {
    let (_, b) = s.get("/v1/events?limit=1", &s.admin).await;
    b["last_position"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_alerts_about_one_cause_merge_into_one() {
    let s = TestServer::start().await;
    let mut events = cascade("2026-03-02").as_array().unwrap().clone();
    for c in ["d-1", "d-2", "d-3"] {
        events.push(ev(
            "community_joined",
            c,
            "2026-03-02T01:00:00Z",
            json!({"community": "g-2"}),
        ));
    }
    for (i, c) in ["d-1", "d-2", "d-3"].iter().enumerate() {
        events.push(complaint(
            c,
            &format!("m-{i}"),
            &format!("2026-03-02T0{}:30:00Z", 4 + i),
            json!({"store": "s-7"}),
        ));
    }
    let last = append(&s, &Value::Array(events)).await;
    let (_, alerts) = s
        .get(
            &format!("/v1/alerts?level=warning&min_position={last}"),
            &s.admin,
        )
        .await;
    let ids: Vec<String> = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2, "{alerts}");
    let (status, body) = s
        .post_json(
            &format!("/v1/alerts/{}/merge", ids[1]),
            &json!({"into": ids[1]}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["details"][0]["path"].as_str()),
        (400, Some("/into")),
        "{body}"
    );
    let (status, body) = s
        .post_json(
            &format!("/v1/alerts/{}/merge", ids[1]),
            &json!({"into": ids[0], "note": "same warehouse"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, kept) = s
        .get(
            &format!("/v1/alerts/{}?min_position={}", ids[0], body["position"]),
            &s.admin,
        )
        .await;
    assert_eq!(kept["complaints"].as_array().unwrap().len(), 6, "{kept}");
    assert_eq!(kept["merged"], json!([ids[1]]));
    let (_, gone) = s.get(&format!("/v1/alerts/{}", ids[1]), &s.admin).await;
    assert_eq!(
        (gone["status"].as_str(), gone["merged_into"].as_str()),
        (Some("merged"), Some(ids[0].as_str()))
    );
    let (status, body) = s
        .post_json(&format!("/v1/alerts/{}/acknowledge", ids[1]), &json!({}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("alert_merged")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deadline_passes_on_the_deadline_clock_and_the_alert_is_overdue_on_the_feed() {
    let s = TestServer::start_ticking().await;
    // The cascade became a warning ten hours ago: its eight hours to acknowledge are over.
    let day = (chrono::Utc::now() - chrono::Duration::hours(24))
        .format("%Y-%m-%d")
        .to_string();
    let mut feed = s.feed("/v1/alerts/subscribe?after=0").await;
    let last = append(&s, &cascade(&day)).await;
    let alert = warning(&s, last).await;
    let id = alert["id"].as_str().unwrap().to_owned();
    let mut buf = String::new();
    let overdue = loop {
        let frame = super::alerts::next(&mut feed, &mut buf).await;
        if frame["change"]["change"] == "overdue" {
            break frame;
        }
    };
    assert_eq!(overdue["alert"]["id"], id);
    assert_eq!(overdue["alert"]["overdue"]["deadline"], "acknowledge");
    let tick = overdue["change"]["position"].as_u64().unwrap();
    assert!(
        tick > last,
        "a tick after the customer events moved the clock"
    );
    let (_, events) = s
        .get(&format!("/v1/events?after={}", tick - 1), &s.admin)
        .await;
    assert_eq!(events["events"][0]["type"], "clock_ticked", "{events}");
    assert_eq!(events["events"][0]["subject"], "deadlines");
    let (_, listed) = s.get("/v1/alerts?overdue=true", &s.admin).await;
    assert_eq!(listed["alerts"][0]["id"], id);
    // Acknowledging clears it.
    let (_, body) = s
        .post_json(&format!("/v1/alerts/{id}/acknowledge"), &json!({}))
        .await;
    let (_, a) = s
        .get(
            &format!("/v1/alerts/{id}?min_position={}", body["position"]),
            &s.admin,
        )
        .await;
    assert_eq!(a["overdue"], Value::Null, "{a}");
    drop(feed);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alert_about_a_batch_or_a_store_finds_who_bought_that_batch_or_there() {
    let s = TestServer::start().await;
    let sale = |c: &str, batch: &str, store: &str| {
        ev(
            "purchase",
            c,
            "2026-03-01T10:00:00Z",
            json!({"order_id": format!("o-{c}"), "amount": "30.00", "currency": "CNY", "store": store,
                   "items": [{"sku": format!("SKU-{c}"), "quantity": 1, "unit_price": "30.00", "batch": batch}]}),
        )
    };
    let mut events = vec![
        sale("x-1", "L9", "s-1"),
        sale("x-2", "L9", "s-2"),
        sale("x-3", "L8", "s-1"),
        sale("x-4", "L8", "s-3"),
    ];
    for c in ["c-1", "c-2", "c-3"] {
        events.push(ev(
            "community_joined",
            c,
            "2026-03-02T01:00:00Z",
            json!({"community": "g-1"}),
        ));
    }
    for (i, c) in ["c-1", "c-2", "c-3"].iter().enumerate() {
        events.push(complaint(
            c,
            &format!("k-{i}"),
            &format!("2026-03-02T0{}:00:00Z", 4 + i),
            json!({"batch": "L9"}),
        ));
    }
    let last = append(&s, &Value::Array(events)).await;
    let alert = warning(&s, last).await;
    let (_, x) = s
        .get(
            &format!("/v1/alerts/{}/exposure", alert["id"].as_str().unwrap()),
            &s.admin,
        )
        .await;
    let who: Vec<&str> = x["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["customer"].as_str().unwrap())
        .collect();
    assert_eq!(who, ["x-1", "x-2"], "{x}");
    assert_eq!(x["keys"], json!(["batch:L9"]));
    // By store: a second cascade about store s-1.
    let mut events = vec![];
    for c in ["d-1", "d-2", "d-3"] {
        events.push(ev(
            "community_joined",
            c,
            "2026-03-03T01:00:00Z",
            json!({"community": "g-2"}),
        ));
    }
    for (i, c) in ["d-1", "d-2", "d-3"].iter().enumerate() {
        events.push(complaint(
            c,
            &format!("m-{i}"),
            &format!("2026-03-03T0{}:00:00Z", 4 + i),
            json!({"store": "s-1"}),
        ));
    }
    let last = append(&s, &Value::Array(events)).await;
    let (_, alerts) = s
        .get(
            &format!("/v1/alerts?level=warning&min_position={last}"),
            &s.admin,
        )
        .await;
    let by_store = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["keys"].as_array().unwrap().contains(&json!("store:s-1")))
        .unwrap();
    let (_, x) = s
        .get(
            &format!("/v1/alerts/{}/exposure", by_store["id"].as_str().unwrap()),
            &s.admin,
        )
        .await;
    let who: Vec<&str> = x["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["customer"].as_str().unwrap())
        .collect();
    assert_eq!(who, ["x-1", "x-3"], "{x}");
}
