//! The audit log: every plain read of a customer's personal data says who read it and how;
//! pseudonymised reads are not personal-data reads; only admins read the log.

use std::time::Duration;

use rapport::auth::Role;
use serde_json::{json, Value};

use super::helpers::{registered, TestServer};

/// Waits until the audit log answers `done` for `customer` (entries are written by a
/// writer of their own; the timeout only ends a hung test).
async fn audit_until(
    s: &TestServer,
    customer: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let wait = async {
        loop {
            let (status, v) = s
                .get(&format!("/v1/audit?customer={customer}"), &s.admin)
                .await;
            assert_eq!(status, 200, "{v}");
            let entries = v["entries"].as_array().cloned().unwrap_or_default();
            if done(&entries) {
                return entries;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .expect("audited")
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_reads_of_personal_data_are_recorded_with_who_and_how() {
    let s = TestServer::start().await;
    let batch = json!([registered(
        "c-9",
        "Audit Person",
        "a@example.com",
        "+8613900000009"
    )]);
    let (status, body) = s.post_json("/v1/events", &batch).await;
    assert_eq!(status, 201, "{body}");
    let at = body["last_position"].as_u64().unwrap();
    let support = s.key(Role::Support);
    let analyst = s.key(Role::Analyst);
    s.get(&format!("/v1/customers/c-9?min_position={at}"), &support)
        .await;
    s.get("/v1/customers/c-9", &analyst).await;
    s.get("/v1/customers/c-9/timeline", &support).await;
    s.get("/v1/customers/c-9/export", &s.admin).await;
    let entries = audit_until(&s, "c-9", |e| e.len() >= 3).await;
    let seen: Vec<(String, String)> = entries
        .iter()
        .map(|e| {
            (
                e["role"].as_str().unwrap().to_owned(),
                e["what"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        seen.contains(&("support".into(), "profile".into())),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("support".into(), "timeline".into())),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("admin".into(), "subject_export".into())),
        "{seen:?}"
    );
    assert!(
        seen.iter().all(|(role, _)| role != "analyst"),
        "pseudonyms are no plain read: {seen:?}"
    );
    assert!(entries
        .iter()
        .all(|e| e["key_id"].as_str().is_some_and(|k| !k.is_empty())));
    // Only admins read the log.
    let (status, _) = s.get("/v1/audit", &support).await;
    assert_eq!(status, 403);
    let (status, body) = s.get("/v1/audit?limit=0", &s.admin).await;
    assert_eq!(status, 400);
    assert!(body.to_string().contains("limit"), "{body}");
}
