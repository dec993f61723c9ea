//! Consent end to end: recorded by events (support may record a customer's call), shown on
//! the profile as of any time, carried by the reactivation list, segment members and their
//! downloads, and outreach without it counted per campaign.

use rapport::auth::Role;
use serde_json::{json, Value};

use super::helpers::TestServer;

fn ev(ty: &str, c: &str, day: &str, data: Value) -> Value {
    json!({"type": ty, "customer": c, "occurred_at": format!("{day}T10:00:00Z"), "data": data})
}

fn buy(c: &str, o: &str, day: &str) -> Value {
    ev(
        "purchase",
        c,
        day,
        json!({"order_id": o, "amount": "50.00", "currency": "CNY"}),
    )
}

fn consent(c: &str, day: &str, channel: &str) -> Value {
    ev(
        "consent_given",
        c,
        day,
        json!({"channel": channel, "purpose": "marketing", "source": "checkout_form"}),
    )
}

/// Two lapsed regulars, one who said yes to SMS; a customer keeping the clock at today.
async fn seeded() -> (TestServer, u64) {
    let s = TestServer::start().await;
    let batch = json!([
        buy("c-yes", "o-1", "2025-01-05"),
        buy("c-yes", "o-2", "2025-02-05"),
        buy("c-no", "o-3", "2025-01-06"),
        buy("c-no", "o-4", "2025-02-06"),
        consent("c-yes", "2025-01-05", "sms"),
        consent("c-no", "2025-01-06", "email"),
        ev(
            "consent_withdrawn",
            "c-no",
            "2025-03-01",
            json!({"channel": "email", "purpose": "marketing", "source": "unsubscribe_link"})
        ),
        buy("c-now", "o-5", "2026-03-01"),
        ev(
            "contacted",
            "c-no",
            "2026-03-01",
            json!({"channel": "email", "campaign": "win-back"})
        ),
        ev(
            "contacted",
            "c-yes",
            "2026-03-01",
            json!({"channel": "sms", "campaign": "win-back"})
        ),
    ]);
    let (status, body) = s.post_json("/v1/events", &batch).await;
    assert_eq!(status, 201, "{body}");
    let last = body["last_position"].as_u64().unwrap();
    (s, last)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_profile_answers_could_we_contact_her_then() {
    let (s, last) = seeded().await;
    let (_, p) = s
        .get(&format!("/v1/customers/c-no?min_position={last}"), &s.admin)
        .await;
    assert_eq!(p["consent"]["marketing_channels"], json!([]), "{p}");
    assert_eq!(p["consent"]["history"].as_array().unwrap().len(), 2);
    assert_eq!(
        p["consent"]["contacts_without_consent"][0]["campaign"],
        "win-back"
    );
    // On 1 February 2025 she had said yes to e-mail.
    let (_, then) = s.get("/v1/customers/c-no?as_of=2025-02-01", &s.admin).await;
    assert_eq!(
        then["consent"]["marketing_channels"],
        json!(["email"]),
        "{then}"
    );
    assert_eq!(then["consent"]["channels"]["email"]["marketing"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn audiences_say_which_channels_may_be_used_and_can_leave_out_the_unreachable() {
    let (s, last) = seeded().await;
    let (_, all) = s
        .get(&format!("/v1/reactivation?min_position={last}"), &s.admin)
        .await;
    let rows: Vec<(String, Value)> = all["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["customer"].as_str().unwrap().to_owned(),
                c["marketing_channels"].clone(),
            )
        })
        .collect();
    assert!(rows.contains(&("c-yes".into(), json!(["sms"]))), "{all}");
    assert!(rows.contains(&("c-no".into(), json!([]))), "{all}");
    let (_, reachable) = s.get("/v1/reactivation?reachable=true", &s.admin).await;
    assert_eq!(reachable["total"], 1, "{reachable}");
    assert_eq!(reachable["customers"][0]["customer"], "c-yes");
    let (_, csv) = s
        .get_text("/v1/reactivation?format=csv&reachable=true", &s.admin)
        .await;
    assert!(csv.lines().next().unwrap().ends_with(",marketing_channels"));
    assert!(
        csv.contains("c-yes") && csv.trim_end().ends_with(",sms"),
        "{csv}"
    );
    assert!(!csv.contains("c-no"));

    // A segment of everyone who bought: members say their channels.
    let seg = json!({"id": "buyers", "name": "Buyers", "rule": {"all": [{"field": "orders", "op": ">=", "value": 1}]}});
    let (status, body) = s.post_json("/v1/segments", &seg).await;
    assert_eq!(status, 201, "{body}");
    let at = body["position"].as_u64().unwrap();
    let (_, members) = s
        .get(
            &format!("/v1/segments/buyers/members?reachable=true&min_position={at}"),
            &s.admin,
        )
        .await;
    assert_eq!(members["total"], 1, "{members}");
    assert_eq!(members["members"][0]["marketing_channels"], json!(["sms"]));
    let (_, csv) = s
        .get_text("/v1/segments/buyers/members?format=csv", &s.admin)
        .await;
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(csv.lines().next().unwrap().ends_with(",marketing_channels"));
}

#[tokio::test(flavor = "multi_thread")]
async fn outreach_without_consent_is_counted_per_campaign_and_support_records_a_withdrawal() {
    let (s, last) = seeded().await;
    let (_, c) = s
        .get(&format!("/v1/campaigns?min_position={last}"), &s.admin)
        .await;
    let win = c["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["campaign"] == "win-back")
        .cloned()
        .unwrap();
    assert_eq!(win["contacts"], 2, "{c}");
    assert_eq!(win["contacted_without_consent"], 1, "{c}");
    // A customer calls support to stop the SMS offers.
    let support = s.key(Role::Support);
    let stop = ev(
        "consent_withdrawn",
        "c-yes",
        "2026-03-02",
        json!({"channel": "sms", "purpose": "marketing", "source": "phone_call_to_support"}),
    );
    let (status, body) = s
        .post("/v1/events", &support, "application/json", stop.to_string())
        .await;
    assert_eq!(status, 201, "{body}");
    let at = body["last_position"].as_u64().unwrap();
    let (_, p) = s
        .get(&format!("/v1/customers/c-yes?min_position={at}"), &support)
        .await;
    assert_eq!(p["consent"]["marketing_channels"], json!([]));
    // An unknown channel is refused, naming the field.
    let bad = ev(
        "consent_given",
        "c-yes",
        "2026-03-02",
        json!({"channel": "fax", "purpose": "marketing"}),
    );
    let (status, body) = s.post_json("/v1/events", &bad).await;
    assert_eq!(status, 400);
    assert!(body.to_string().contains("/data"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_shows_consent_and_lists_only_the_reachable_when_asked() {
    use super::console::Browser;
    let (s, last) = seeded().await;
    s.get(&format!("/v1/customers?min_position={last}"), &s.admin)
        .await;
    let mut b = Browser::new(&s);
    b.sign_in(&s.key(Role::Support)).await;
    let (_, html) = b.page("/reactivation").await;
    assert!(html.contains("c-yes") && html.contains("c-no"), "{html}");
    let (_, html) = b.page("/reactivation?reachable=true").await;
    assert!(html.contains("c-yes") && !html.contains(">c-no<"), "{html}");
    assert!(
        html.contains("reachable=true"),
        "the download keeps the filter"
    );
    let (_, html) = b.page("/customers/c-yes").await;
    assert!(html.contains("May be contacted for marketing on"), "{html}");
    assert!(html.contains("SMS"), "{html}");
}
