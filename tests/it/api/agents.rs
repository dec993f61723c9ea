//! Agent networks end to end: events in, networks ranked by pyramid risk out, the alert
//! worked like any other, and bad input refused naming its field.

use rapport::auth::Role;
use serde_json::{json, Value};

use super::helpers::TestServer;

fn ev(ty: &str, c: &str, n: usize, data: Value) -> Value {
    let day = 1 + (n / 24) % 28;
    let hour = n % 24;
    json!({"type": ty, "customer": c, "occurred_at": format!("2026-03-{day:02}T{hour:02}:00:00Z"), "data": data})
}

/// A network of 36 agents over 4 levels under `p-0` who pay to join, buy stock and are
/// paid mostly for recruiting; and a network of 36 under `h-0` who sell to end customers.
pub(super) async fn seeded() -> (TestServer, u64) {
    let s = TestServer::start().await;
    let mut batch = vec![];
    let mut n = 0;
    let mut next = || {
        n += 1;
        n
    };
    for i in 0..36 {
        let up = (i > 0).then(|| format!("p-{}", (i - 1) / 3));
        let mut d = json!({"fee": "399.00", "currency": "CNY"});
        if let Some(u) = &up {
            d["upline"] = json!(u);
        }
        batch.push(ev("agent_joined", &format!("p-{i}"), next(), d));
        batch.push(ev("purchase", &format!("p-{i}"), next(),
            json!({"order_id": format!("po-{i}"), "amount": "1500.00", "currency": "CNY", "sold_by": "p-0"})));
        if let Some(u) = up {
            batch.push(ev("commission_paid", &u, next(),
                json!({"amount": "150.00", "currency": "CNY", "basis": "recruitment", "recruit": format!("p-{i}")})));
        }
    }
    for i in 0..36 {
        let up = (i > 0).then(|| format!("h-{}", (i - 1) / 6));
        let d = up.map_or(json!({}), |u| json!({"upline": u}));
        batch.push(ev("agent_joined", &format!("h-{i}"), next(), d));
        for k in 0..3 {
            batch.push(ev("purchase", &format!("end-{i}-{k}"), next(),
                json!({"order_id": format!("ho-{i}-{k}"), "amount": "120.00", "currency": "CNY", "sold_by": format!("h-{i}")})));
            batch.push(ev("commission_paid", &format!("h-{i}"), next(),
                json!({"amount": "12.00", "currency": "CNY", "basis": "retail", "order_id": format!("ho-{i}-{k}")})));
        }
    }
    let (status, body) = s.post_json("/v1/events", &json!(batch)).await;
    assert_eq!(status, 201, "{body}");
    (s, body["last_position"].as_u64().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn networks_are_ranked_by_pyramid_risk_and_a_healthy_one_is_not_flagged() {
    let (s, last) = seeded().await;
    let (status, list) = s
        .get(
            &format!("/v1/agents/networks?min_position={last}"),
            &s.key(Role::Analyst),
        )
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["total"], 2);
    let top = &list["networks"][0];
    assert_eq!(top["root"], "p-0");
    assert_eq!(
        (top["participants"].as_u64(), top["levels"].as_u64()),
        (Some(36), Some(4))
    );
    assert_eq!(top["risk"], "critical", "{top}");
    assert_eq!(top["recruitment_commission_share"], 1.0);
    assert_eq!(
        top["signs"],
        json!({"scale": true, "recruitment_pay": true, "paid_entry": true, "loading": true})
    );
    assert!(top["evidence"][0]
        .as_str()
        .unwrap()
        .starts_with("36 agents over 4 levels under p-0"));
    let healthy = &list["networks"][1];
    assert_eq!(healthy["root"], "h-0");
    assert_eq!(healthy["risk"], Value::Null, "{healthy}");
    assert_eq!(healthy["alert"], Value::Null);
    assert_eq!(
        healthy["signs"]["scale"], true,
        "large and deep enough, and healthy"
    );
    let (_, flagged) = s.get("/v1/agents/networks?risk=warning", &s.admin).await;
    assert_eq!(flagged["total"], 1);
    let (status, bad) = s.get("/v1/agents/networks?risk=loud", &s.admin).await;
    assert_eq!(
        (status, &bad["error"]["details"][0]["path"]),
        (400, &json!("risk"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_shows_its_upline_chain_and_figures() {
    let (s, last) = seeded().await;
    let (status, a) = s
        .get(&format!("/v1/agents/p-13?min_position={last}"), &s.admin)
        .await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["upline_chain"], json!(["p-4", "p-1", "p-0"]));
    assert_eq!(a["level"], 4);
    assert_eq!(a["own_purchases"], json!({"CNY": "1500.00"}));
    assert_eq!(a["entry_fees"], json!({"CNY": "399.00"}));
    assert_eq!(a["network"]["risk"], "critical");
    let (_, top) = s.get("/v1/agents/p-0", &s.admin).await;
    assert_eq!(top["total_downline"], 35);
    assert_eq!(top["commissions"]["recruitment"], json!({"CNY": "450.00"}));
    let (_, h) = s.get("/v1/agents/h-3", &s.admin).await;
    assert_eq!(h["retail_sales"], json!({"CNY": "360.00"}));
    let (status, _) = s.get("/v1/agents/nobody", &s.admin).await;
    assert_eq!(status, 404);
    let (_, net) = s.get("/v1/agents/networks/p-0", &s.admin).await;
    assert_eq!(net["agents"].as_array().unwrap().len(), 36);
    assert_eq!(net["agents"][0]["id"], "p-0");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pyramid_risk_alert_is_worked_like_any_other() {
    let (s, last) = seeded().await;
    let (_, alerts) = s
        .get(
            &format!("/v1/alerts?kind=pyramid_risk&min_position={last}"),
            &s.admin,
        )
        .await;
    assert_eq!(alerts["total"], 1, "{alerts}");
    let alert = &alerts["alerts"][0];
    let id = alert["id"].as_str().unwrap().to_owned();
    assert_eq!(alert["level"], "critical");
    assert!(alert["evidence"]["ties"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t
            .as_str()
            .unwrap()
            .contains("of commissions paid for recruitment")));
    assert!(alert["deadlines"]["acknowledge_by"].is_string(), "{alert}");
    // The evidence follows the network to its last event, not only its last announcement.
    assert_eq!(alert["evidence"]["observed"], 36, "{alert}");
    assert!(
        alert["evidence"]["ties"][0]
            .as_str()
            .unwrap()
            .starts_with("36 agents"),
        "{alert}"
    );
    let (status, ack) = s
        .post(
            &format!("/v1/alerts/{id}/acknowledge"),
            &s.admin,
            "application/json",
            r#"{"note":"asked the channel team"}"#,
        )
        .await;
    assert_eq!(status, 200, "{ack}");
    let (_, after) = s
        .get(
            &format!("/v1/alerts/{id}?min_position={}", ack["position"]),
            &s.admin,
        )
        .await;
    assert_eq!(after["status"], "acknowledged", "{after}");
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_events_with_bad_fields_are_refused_naming_the_field() {
    let s = TestServer::start().await;
    for (data, ty, path) in [
        (json!({"fee": "10.00"}), "agent_joined", "/data/currency"),
        (
            json!({"upline": "someone@example.com"}),
            "agent_joined",
            "/data/upline",
        ),
        (
            json!({"amount": "5.00", "currency": "CNY", "basis": "bonus"}),
            "commission_paid",
            "/data/basis",
        ),
        (
            json!({"order_id": "o", "amount": "5.00", "currency": "CNY", "sold_by": ""}),
            "purchase",
            "/data/sold_by",
        ),
    ] {
        let (status, body) = s.post_json("/v1/events", &ev(ty, "c-1", 1, data)).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["details"][0]["path"], path, "{body}");
    }
}
