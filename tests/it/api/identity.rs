//! One person, many ids, end to end: identifiers from two channels make one profile; staff
//! merge and unmerge; lookup by phone is for support only; erasure takes the whole person.

use rapport::auth::Role;
use serde_json::{json, Value};

use super::helpers::{purchase, registered, TestServer};

const PHONE: &str = "+8613800138000";

fn identifier(customer: &str, kind: &str, value: &str) -> Value {
    json!({"type": "identifier_added", "customer": customer, "occurred_at": "2026-02-01T09:00:00Z",
        "data": {"kind": kind, "value": value, "source": "test"}})
}

/// The till knows a phone number; the mini-program knows the same number, written
/// otherwise. Returns the server and the last position written.
async fn two_channels() -> (TestServer, u64) {
    let s = TestServer::start().await;
    let batch = json!([
        identifier("till-1", "phone", PHONE),
        purchase("till-1", "o-1", "30.00"),
        registered("wx-9", "Li Na", "li.na@example.cn", "0086 138-0013-8000"),
        identifier("wx-9", "phone", "0086 138-0013-8000"),
        purchase("wx-9", "o-2", "12.50"),
    ]);
    let (status, body) = s.post_json("/v1/events", &batch).await;
    assert_eq!(status, 201, "{body}");
    (s, body["last_position"].as_u64().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn two_channels_sharing_a_phone_number_are_one_profile() {
    let (s, last) = two_channels().await;
    let support = s.key(Role::Support);
    let (status, p) = s
        .get(&format!("/v1/customers/wx-9?min_position={last}"), &support)
        .await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["person"]["id"], "till-1");
    assert_eq!(p["person"]["ids"], json!(["till-1", "wx-9"]));
    assert_eq!(p["person"]["merged_into"], "till-1");
    assert_eq!(
        p["person"]["links"][0]["cause"]["rule"],
        "shared_identifier"
    );
    assert_eq!(p["person"]["links"][0]["cause"]["kind"], "phone");
    assert_eq!(p["orders"], 2, "orders of both ids");
    assert_eq!(p["identity"]["name"], "Li Na");
    let values: Vec<&str> = p["identity"]["identifiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["value"].as_str().unwrap())
        .collect();
    assert_eq!(values.len(), 2, "{p}");

    // One person in lists.
    let (_, list) = s.get("/v1/customers", &support).await;
    assert_eq!(list["total"], 1, "{list}");

    // Support finds her by the number, however it is written.
    for written in [PHONE, "+86 138 0013 8000"] {
        let q = format!("/v1/customers?identifier=phone:{}", urlencode(written));
        let (status, found) = s.get(&q, &support).await;
        assert_eq!(status, 200, "{found}");
        assert_eq!(found["customers"][0]["id"], "till-1");
        assert_eq!(
            found["customers"][0]["person"]["ids"],
            json!(["till-1", "wx-9"])
        );
        assert_eq!(found["total"], 1);
    }
    let (_, none) = s
        .get("/v1/customers?identifier=phone:%2B8613900000001", &support)
        .await;
    assert_eq!(none["total"], 0);

    // An analyst may not look people up, and sees pseudonyms of identifiers.
    let analyst = s.key(Role::Analyst);
    let (status, body) = s
        .get("/v1/customers?identifier=phone:%2B8613800138000", &analyst)
        .await;
    assert_eq!(status, 403, "{body}");
    let (_, p) = s.get("/v1/customers/wx-9", &analyst).await;
    let text = p.to_string();
    // (Pseudonyms are hex, so look for the number's longer pieces, not "138".)
    for piece in ["13800138000", "138-0013", "0013 8000"] {
        assert!(!text.contains(piece), "{text}");
    }
    assert!(p["identity"]["identifiers"][0]["value"]
        .as_str()
        .unwrap()
        .starts_with("anon-"));

    // The number is nowhere in the store's files.
    let bytes = std::fs::read(s.data_dir().join("rapport.sqlite")).unwrap_or_default();
    assert!(!bytes.windows(11).any(|w| w == b"13800138000"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_identifier_is_refused_naming_its_field() {
    let s = TestServer::start().await;
    let (status, body) = s
        .post_json(
            "/v1/events",
            &json!([identifier("c", "phone", "13800138000")]),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("/0/data/value"), "{body}");
    let (status, body) = s.get("/v1/customers?identifier=fax:123", &s.admin).await;
    assert_eq!(status, 400);
    assert!(body.to_string().contains("identifier"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn staff_merge_and_unmerge_two_customers() {
    let s = TestServer::start().await;
    let (status, _) = s
        .post_json(
            "/v1/events",
            &json!([
                purchase("c-1", "o-1", "10.00"),
                purchase("m-7", "o-2", "20.00")
            ]),
        )
        .await;
    assert_eq!(status, 201);
    let support = s.key(Role::Support);
    let merge = json!({"merged": "m-7", "reason": "same member card"}).to_string();
    let (status, body) = s
        .post(
            "/v1/customers/c-1/merge",
            &support,
            "application/json",
            merge.clone(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let at = body["position"].as_u64().unwrap();
    let (_, p) = s
        .get(&format!("/v1/customers/m-7?min_position={at}"), &support)
        .await;
    assert_eq!(p["person"]["id"], "c-1");
    assert_eq!(p["orders"], 2);
    assert_eq!(p["person"]["links"][0]["cause"]["rule"], "staff_merge");
    // Time travel gives the people as they were known then.
    let (status, before) = s
        .get(
            &format!("/v1/customers/m-7?as_of_position={}", at - 1),
            &support,
        )
        .await;
    assert_eq!(status, 200, "{before}");
    assert_eq!(before["person"]["id"], "m-7");
    assert_eq!(before["orders"], 1);
    // Twice is a conflict; an unknown customer is named.
    let (status, body) = s
        .post(
            "/v1/customers/c-1/merge",
            &support,
            "application/json",
            merge,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("already_one_person")),
        "{body}"
    );
    let (status, body) = s
        .post(
            "/v1/customers/c-1/merge",
            &support,
            "application/json",
            json!({"merged": "nobody", "reason": "x"}).to_string(),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body.to_string().contains("/merged"), "{body}");
    // An analyst may not merge.
    let analyst = s.key(Role::Analyst);
    let (status, _) = s
        .post(
            "/v1/customers/c-1/unmerge",
            &analyst,
            "application/json",
            json!({"other": "m-7", "reason": "x"}).to_string(),
        )
        .await;
    assert_eq!(status, 403);

    let (status, body) = s
        .post(
            "/v1/customers/c-1/unmerge",
            &support,
            "application/json",
            json!({"other": "m-7", "reason": "two sisters"}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let at = body["position"].as_u64().unwrap();
    let (_, p) = s
        .get(&format!("/v1/customers/m-7?min_position={at}"), &support)
        .await;
    assert_eq!(p["person"]["id"], "m-7");
    assert_eq!(p["orders"], 1);
    let (_, list) = s.get("/v1/customers", &support).await;
    assert_eq!(list["total"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn erasing_a_merged_person_erases_every_id_and_identifier() {
    let (s, last) = two_channels().await;
    let (status, export) = s
        .get(
            &format!("/v1/customers/till-1/export?min_position={last}"),
            &s.admin,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(export["ids"], json!(["till-1", "wx-9"]));
    assert_eq!(export["events"].as_array().unwrap().len(), 5);

    let (status, body) = s
        .delete("/v1/customers/till-1/personal-data", &s.admin)
        .await;
    assert_eq!(status, 200, "{body}");
    let erased: Vec<&str> = body["erasures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["customer"].as_str().unwrap())
        .collect();
    assert_eq!(erased, ["till-1", "wx-9"]);
    let at = body["erasures"][1]["event"]["position"].as_u64().unwrap();
    let (_, found) = s
        .get(
            &format!("/v1/customers?identifier=phone:%2B8613800138000&min_position={at}"),
            &s.admin,
        )
        .await;
    assert_eq!(found["total"], 0, "{found}");
    let (_, p) = s.get("/v1/customers/wx-9", &s.admin).await;
    assert!(p["identity"].get("name").is_none(), "{p}");
    assert!(p["identity"].get("identifiers").is_none(), "{p}");
    // The blind index is not shown once the value is erased.
    let (_, events) = s.get("/v1/streams/customer-wx-9", &s.admin).await;
    assert!(!events.to_string().contains("\"index\""), "{events}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blocked_value_merges_nobody() {
    let s = TestServer::start().await;
    let analyst = s.key(Role::Analyst);
    let rules = json!({"blocked": [{"kind": "phone", "value": "+86 21 5555 0000"}]}).to_string();
    let (status, _) = s
        .post(
            "/v1/customers/x/merge",
            &analyst,
            "application/json",
            rules.clone(),
        )
        .await;
    assert_eq!(status, 403);
    let resp = s
        .http
        .put(format!("{}/v1/identity/rules", s.base))
        .bearer_auth(&s.admin)
        .header("content-type", "application/json")
        .body(rules)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (status, _) = s
        .post_json(
            "/v1/events",
            &json!([
                identifier("a", "phone", "+862155550000"),
                identifier("b", "phone", "+86 21 5555 0000"),
                identifier("c", "member", "0000"),
                identifier("d", "member", "0000"),
            ]),
        )
        .await;
    assert_eq!(status, 201);
    let (_, list) = s
        .get(&format!("/v1/customers?min_position={}", 5), &s.admin)
        .await;
    assert_eq!(
        list["total"], 4,
        "a shop's number and a placeholder link nobody"
    );
    let (_, rules) = s.get("/v1/identity/rules", &s.admin).await;
    assert_eq!(rules["blocked"], 1, "{rules}");
    // The value itself is not recorded.
    let (_, stream) = s.get("/v1/streams/rules-identity", &s.admin).await;
    assert!(!stream.to_string().contains("5555 0000"), "{stream}");
    assert!(stream.to_string().contains("…0000"), "{stream}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_till_that_knows_only_the_phone_number_names_the_customer_by_it() {
    let (s, _) = two_channels().await;
    let sale = |order: &str| {
        json!({"type": "purchase", "identified_by": {"kind": "phone", "value": "+86 138 0013 8000"},
            "occurred_at": "2026-03-05T10:00:00Z",
            "data": {"order_id": order, "amount": "8.00", "currency": "CNY"}})
    };
    let (status, body) = s.post_json("/v1/events", &sale("o-3")).await;
    assert_eq!(status, 201, "{body}");
    let stream = body["events"][0]["stream"].as_str().unwrap().to_owned();
    assert!(stream.starts_with("customer-ix-"), "{body}");
    assert!(
        !stream.contains("13800138000"),
        "the id derives from the blind index, not the number"
    );
    assert_eq!(
        body["events"].as_array().unwrap().len(),
        1,
        "one answer per event sent"
    );
    // The same number always names the same id; the identifier is recorded once.
    let (_, again) = s.post_json("/v1/events", &sale("o-4")).await;
    assert_eq!(again["events"][0]["stream"], stream.as_str());
    let (_, events) = s.get(&format!("/v1/streams/{stream}"), &s.admin).await;
    let types: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["identifier_added", "purchase", "purchase"]);
    // And the sale joins the person who holds the number.
    let at = again["last_position"].as_u64().unwrap();
    let (_, p) = s
        .get(&format!("/v1/customers/wx-9?min_position={at}"), &s.admin)
        .await;
    assert_eq!(p["orders"], 4, "{p}");
    assert_eq!(p["person"]["ids"].as_array().unwrap().len(), 3);
    // Naming a customer both ways, or by a placeholder, is refused.
    let mut both = sale("o-5");
    both["customer"] = json!("c-1");
    let (status, body) = s.post_json("/v1/events", &both).await;
    assert_eq!(status, 400);
    assert!(body.to_string().contains("/identified_by"), "{body}");
    let mut placeholder = sale("o-6");
    placeholder["identified_by"] = json!({"kind": "member", "value": "0000"});
    let (status, body) = s.post_json("/v1/events", &placeholder).await;
    assert_eq!(status, 400);
    assert!(body.to_string().contains("/identified_by/value"), "{body}");
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(' ', "%20")
}
