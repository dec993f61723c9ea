//! Personal data: pseudonyms for analysts, the subject's export, erasure everywhere.

use rapport::auth::Role;
use serde_json::json;

use super::helpers::{complaint, purchase, registered, TestServer};

const NAME: &str = "Zhang Wei-Erasable";
const EMAIL: &str = "zhang.erasable@example.cn";
const PHONE: &str = "+86 139 5555 0101";
const TEXT: &str = "批次L0421的茶叶发霉了 the erasable-tea smells of mould";

async fn seeded() -> TestServer {
    seeded_at().await.0
}

/// The seeded server and the position of its last event, for reads that must see it.
async fn seeded_at() -> (TestServer, u64) {
    let s = TestServer::start().await;
    let batch = json!([
        registered("c-9", NAME, EMAIL, PHONE),
        purchase("c-9", "o-1", "88.80"),
        complaint("c-9", "k-1", TEXT),
        registered("c-10", "Other Person", "other@example.com", "+1 555")
    ]);
    let (status, body) = s.post_json("/v1/events", &batch).await;
    assert_eq!(status, 201, "{body}");
    let last = body["last_position"].as_u64().unwrap();
    (s, last)
}

/// c-9's profile for the admin, once the read model has applied `position`.
async fn profile_at(s: &TestServer, position: u64) -> serde_json::Value {
    let path = format!("/v1/customers/c-9?min_position={position}");
    s.get(&path, &s.admin).await.1
}

fn contains_any(haystack: &[u8]) -> Vec<&'static str> {
    [NAME, EMAIL, PHONE, TEXT, "erasable"]
        .into_iter()
        .filter(|v| haystack.windows(v.len()).any(|w| w == v.as_bytes()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn personal_fields_are_encrypted_at_rest() {
    let s = seeded().await;
    for f in ["rapport.sqlite", "rapport.sqlite-wal"] {
        let bytes = std::fs::read(s.data_dir().join(f)).unwrap_or_default();
        assert!(
            contains_any(&bytes).is_empty(),
            "{f} holds plaintext personal data: {:?}",
            contains_any(&bytes)
        );
    }
    // The non-personal part stays readable for analysts with the sqlite3 shell.
    let conn = rusqlite::Connection::open(s.data_dir().join("rapport.sqlite")).unwrap();
    let data: String = conn
        .query_row("SELECT data FROM events WHERE type = 'purchase'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(data.contains("88.80"));
}

#[tokio::test(flavor = "multi_thread")]
async fn support_sees_values_analysts_see_stable_pseudonyms() {
    let s = seeded().await;
    let (_, plain) = s.get("/v1/streams/customer-c-9", &s.admin).await;
    assert_eq!(plain["events"][0]["data"]["email"], EMAIL);
    assert_eq!(plain["events"][0]["personal"], "plain");
    let analyst = s.key(Role::Analyst);
    let (_, pseud) = s.get("/v1/streams/customer-c-9", &analyst).await;
    let email = pseud["events"][0]["data"]["email"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(email.starts_with("anon-"), "{email}");
    assert_eq!(pseud["events"][0]["personal"], "pseudonymised");
    assert!(contains_any(pseud.to_string().as_bytes()).is_empty());
    let (_, again) = s.get("/v1/events", &analyst).await;
    assert_eq!(
        again["events"][0]["data"]["email"], email,
        "pseudonyms are stable"
    );
    assert_eq!(
        pseud["events"][1]["data"]["amount"], "88.80",
        "non-personal fields are untouched"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_subject_export_holds_everything_decrypted() {
    let s = seeded().await;
    let (status, export) = s.get("/v1/customers/c-9/export", &s.admin).await;
    assert_eq!(status, 200);
    let text = export.to_string();
    for v in [NAME, EMAIL, PHONE, "88.80"] {
        assert!(text.contains(v), "export lacks {v}");
    }
    assert!(!text.contains("Other Person"), "only this customer's data");
    assert_eq!(s.get("/v1/customers/nobody/export", &s.admin).await.0, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn after_erasure_no_output_reveals_the_values_and_the_facts_remain() {
    let (s, last) = seeded_at().await;
    let before = profile_at(&s, last).await;
    assert_eq!(before["erased"], false);
    let (status, body) = s.delete("/v1/customers/c-9/personal-data", &s.admin).await;
    assert_eq!(status, 200, "{body}");
    let position = body["erasure"]["event"]["position"].as_u64().unwrap();
    let after = profile_at(&s, position).await;
    assert_eq!(
        (&after["erased"], &after["identity"]["erased"]),
        (&json!(true), &json!(true))
    );
    assert_eq!(body["erasure"]["destroyed_generations"], json!([1]));
    let analyst = s.key(Role::Analyst);
    let mut outputs = Vec::new();
    for (path, token) in [
        ("/v1/events?limit=1000", &s.admin),
        ("/v1/events?limit=1000", &analyst),
        ("/v1/streams/customer-c-9", &s.admin),
        ("/v1/customers/c-9/export", &s.admin),
        ("/metrics", &s.admin),
    ] {
        let (status, text) = s.get_text(path, token).await;
        assert_eq!(status, 200, "{path}");
        outputs.push(text);
    }
    for text in &outputs {
        assert!(
            contains_any(text.as_bytes()).is_empty(),
            "an output still reveals {:?}",
            contains_any(text.as_bytes())
        );
    }
    let (_, stream) = s.get("/v1/streams/customer-c-9", &s.admin).await;
    let events = stream["events"].as_array().unwrap();
    assert_eq!(events[0]["personal"], "erased");
    assert_eq!(
        events[1]["data"]["amount"], "88.80",
        "the purchase is intact"
    );
    assert_eq!(
        events[2]["data"]["about"]["batch"], "L0421",
        "what the complaint was about is intact"
    );
    assert_eq!(events[3]["type"], "personal_data_erased");
    // Another customer is untouched.
    let (_, other) = s.get("/v1/streams/customer-c-10", &s.admin).await;
    assert_eq!(other["events"][0]["data"]["name"], "Other Person");
    // New personal data after the erasure uses a new key generation and is readable.
    s.post_json(
        "/v1/events",
        &registered("c-9", "Back Again", "back@example.com", "1"),
    )
    .await;
    let (_, stream) = s.get("/v1/streams/customer-c-9", &s.admin).await;
    assert_eq!(stream["events"][4]["data"]["name"], "Back Again");
    // Erasing someone unknown is a 404, not a new stream.
    assert_eq!(
        s.delete("/v1/customers/nobody/personal-data", &s.admin)
            .await
            .0,
        404
    );
    let dir = s.stop().await;
    for f in ["rapport.sqlite", "rapport.sqlite-wal"] {
        let bytes = std::fs::read(dir.path().join(f)).unwrap_or_default();
        assert!(contains_any(&bytes).is_empty(), "{f}");
    }
}
