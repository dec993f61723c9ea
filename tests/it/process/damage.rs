//! Defect 15 of the hardening issue: one damaged data key stopped the whole server from
//! starting, and one damaged sealed event made every read page holding it a 500. Damage
//! now stays with what is damaged, and says what it is.

use serde_json::Value;

use super::{paths, Server};

const EVENTS: &str = r#"{"type":"customer_registered","customer":"c-1","occurred_at":"2026-03-01T10:00:00Z","data":{"name":"Ann","email":"ann@example.com"}}
{"type":"customer_registered","customer":"c-2","occurred_at":"2026-03-01T11:00:00Z","data":{"name":"Bo","email":"bo@example.com"}}
{"type":"complaint","customer":"c-2","occurred_at":"2026-03-02T10:00:00Z","data":{"complaint_id":"k-1","about":{"sku":"S"},"text":"broken"}}
{"type":"purchase","customer":"c-3","occurred_at":"2026-03-03T10:00:00Z","data":{"order_id":"o-3","amount":"7.00","currency":"CNY"}}
"#;

/// Appends [`EVENTS`], stops the server, flips the last bit of `column` in the row of
/// `table` that `row` selects, starts again.
fn damaged_store(table: &str, column: &str, row: &str) -> (tempfile::TempDir, Server) {
    let (tmp, data, master) = paths();
    let mut server = Server::start(&data, &master);
    let resp = reqwest::blocking::Client::new()
        .post(format!("{}/v1/events", server.base))
        .bearer_auth(&server.admin)
        .header("content-type", "application/x-ndjson")
        .body(EVENTS)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    server.kill9();
    let conn = rusqlite::Connection::open(data.join("rapport.sqlite")).unwrap();
    let mut blob: Vec<u8> = conn
        .query_row(
            &format!("SELECT {column} FROM {table} WHERE {row}"),
            [],
            |r| r.get(0),
        )
        .unwrap();
    *blob.last_mut().unwrap() ^= 0x01;
    conn.execute(
        &format!("UPDATE {table} SET {column} = ?1 WHERE {row}"),
        [&blob],
    )
    .unwrap();
    drop(conn);
    (tmp, Server::start(&data, &master))
}

fn page(server: &Server) -> Vec<Value> {
    server.get_json("/v1/events?limit=100")["events"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_damaged_data_key_loses_only_its_customers_personal_data() {
    let (_tmp, server) = damaged_store("data_keys", "wrapped", "customer = 'c-2'");
    let client = reqwest::blocking::Client::new();
    let ready = client
        .get(format!("{}/readyz", server.base))
        .send()
        .unwrap();
    assert_eq!(ready.status(), 200, "{}", ready.text().unwrap());
    let events = page(&server);
    assert_eq!(events.len(), 4, "{events:?}");
    assert_eq!(events[0]["personal"], "plain");
    assert_eq!(events[0]["data"]["name"], "Ann");
    for e in &events[1..3] {
        assert_eq!(e["personal"], "damaged", "{e}");
        assert!(
            e["data"].get("name").is_none() && e["data"].get("text").is_none(),
            "{e}"
        );
    }
    // The read model went past it: the last event is folded.
    let c3 = server.get_json("/v1/customers/c-3?min_position=4");
    assert_eq!(c3["orders"], 1, "{c3}");
    let metrics = server.get_text("/metrics");
    assert!(metrics.contains("rapport_damaged_data_keys 1"), "{metrics}");
    // The console's system page says so too.
    let console = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signed_in = console
        .post(format!("{}/sign-in", server.base))
        .form(&[("key", server.admin.as_str())])
        .send()
        .unwrap();
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let system = console
        .get(format!("{}/system", server.base))
        .header("cookie", cookie)
        .header("accept-language", "en")
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        system.contains("data keys damaged in the store"),
        "{system}"
    );
    // New personal data of that customer is sealed under a new key, and reads back.
    let resp = client
        .post(format!("{}/v1/events", server.base))
        .bearer_auth(&server.admin)
        .json(
            &serde_json::json!({"type": "profile_updated", "customer": "c-2",
            "occurred_at": "2026-03-04T10:00:00Z", "data": {"traits": {"nickname": "B"}}}),
        )
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().unwrap());
    let events = page(&server);
    assert_eq!(events[4]["personal"], "plain", "{}", events[4]);
    assert_eq!(events[4]["data"]["traits"]["nickname"], "B");
    // An erasure destroys the damaged key with the live one: all of it reads as erased.
    let resp = client
        .delete(format!("{}/v1/customers/c-2/personal-data", server.base))
        .bearer_auth(&server.admin)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().unwrap());
    let events = page(&server);
    for e in [&events[1], &events[2], &events[4]] {
        assert_eq!(e["personal"], "erased", "{e}");
    }
    assert!(server
        .get_text("/metrics")
        .contains("rapport_damaged_data_keys 0"));
}

#[test]
fn a_damaged_ciphertext_loses_only_that_events_personal_data() {
    let (_tmp, server) = damaged_store("events", "sealed", "position = 3");
    let events = page(&server);
    assert_eq!(events.len(), 4, "{events:?}");
    assert_eq!(events[1]["personal"], "plain");
    assert_eq!(events[1]["data"]["name"], "Bo");
    assert_eq!(events[2]["personal"], "damaged", "{}", events[2]);
    assert_eq!(events[2]["data"]["complaint_id"], "k-1");
    let c3 = server.get_json("/v1/customers/c-3?min_position=4");
    assert_eq!(c3["orders"], 1, "{c3}");
    let c2 = server.get_json("/v1/customers/c-2/timeline");
    assert!(c2.to_string().contains("damaged"), "{c2}");
}
