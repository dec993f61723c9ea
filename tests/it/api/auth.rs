//! Keys and roles.

use rapport::auth::Role;

use super::helpers::{purchase, TestServer};

#[tokio::test(flavor = "multi_thread")]
async fn only_health_checks_are_open() {
    let s = TestServer::start().await;
    for path in ["/healthz", "/readyz"] {
        let resp = s
            .http
            .get(format!("{}{path}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    for path in [
        "/v1/events",
        "/metrics",
        "/v1/keys",
        "/v1/streams/customer-c",
    ] {
        let resp = s
            .http
            .get(format!("{}{path}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{path}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    assert_eq!(s.get("/v1/events", "rpk_nope_nope").await.0, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_decide_who_may_do_what() {
    let s = TestServer::start().await;
    let ingest = s.key(Role::Ingest);
    let analyst = s.key(Role::Analyst);
    let support = s.key(Role::Support);
    let ev = purchase("c-1", "o-1", "1").to_string();
    assert_eq!(
        s.post("/v1/events", &ingest, "application/json", ev.clone())
            .await
            .0,
        201
    );
    let (status, body) = s.post("/v1/events", &analyst, "application/json", ev).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "forbidden");
    assert_eq!(s.get("/v1/events", &ingest).await.0, 403);
    assert_eq!(s.get("/v1/events", &analyst).await.0, 200);
    assert_eq!(s.get("/v1/events", &support).await.0, 200);
    assert_eq!(s.get("/v1/keys", &support).await.0, 403);
    assert_eq!(
        s.delete("/v1/customers/c-1/personal-data", &support)
            .await
            .0,
        403
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_stored_hashed_and_revocation_takes_effect() {
    let s = TestServer::start().await;
    let (status, body) = s
        .post(
            "/v1/keys",
            &s.admin.clone(),
            "application/json",
            r#"{"role":"analyst","label":"bi"}"#,
        )
        .await;
    assert_eq!(status, 201);
    let token = body["token"].as_str().unwrap().to_owned();
    let id = body["key"]["id"].as_str().unwrap().to_owned();
    assert_eq!(s.get("/v1/events", &token).await.0, 200);
    let (_, list) = s.get("/v1/keys", &s.admin).await;
    assert!(
        !list.to_string().contains(&token),
        "secrets are never listed"
    );
    let db = std::fs::read(s.data_dir().join("rapport.sqlite")).unwrap();
    // `rpk_<id>_<secret>`: the id is hex; the secret (base64url) may itself contain `_`.
    let secret = token.splitn(3, '_').nth(2).unwrap();
    assert_eq!(secret.len(), 43);
    assert!(
        !db.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the secret is not in the store file"
    );
    assert_eq!(s.delete(&format!("/v1/keys/{id}"), &s.admin).await.0, 204);
    assert_eq!(s.get("/v1/events", &token).await.0, 401);
    let (status, body) = s
        .post(
            "/v1/keys",
            &s.admin.clone(),
            "application/json",
            r#"{"role":"boss"}"#,
        )
        .await;
    assert_eq!(
        (status, body["error"]["details"][0]["path"].as_str()),
        (400, Some("/role"))
    );
}
