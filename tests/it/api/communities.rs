//! Communities end to end: the list sorted as asked, one community's page, and the past.

use rapport::auth::Role;
use serde_json::{json, Value};

use super::helpers::TestServer;

fn ev(ty: &str, c: &str, day: &str, data: Value) -> Value {
    json!({"type": ty, "customer": c, "occurred_at": format!("{day}T10:00:00Z"), "data": data})
}

#[tokio::test(flavor = "multi_thread")]
async fn communities_are_listed_by_what_is_asked_and_one_shows_its_leaders_and_past() {
    let s = TestServer::start().await;
    let mut batch = vec![];
    for i in 0..5 {
        batch.push(ev(
            "community_joined",
            &format!("big-{i}"),
            "2026-01-05",
            json!({"community": "big"}),
        ));
    }
    for i in 0..2 {
        let c = format!("small-{i}");
        batch.push(ev(
            "community_joined",
            &c,
            "2026-01-06",
            json!({"community": "small"}),
        ));
        batch.push(ev(
            "purchase",
            &c,
            "2026-02-01",
            json!({"order_id": format!("o-{i}"), "amount": "500.00", "currency": "CNY"}),
        ));
        batch.push(ev(
            "complaint",
            &c,
            "2026-03-01",
            json!({"complaint_id": format!("k-{i}"), "about": {"batch": "L9"}, "text": "leaking"}),
        ));
    }
    let (status, first) = s.post_json("/v1/events", &json!(batch)).await;
    assert_eq!(status, 201, "{first}");
    let before = first["last_position"].as_u64().unwrap();
    let later = json!([
        ev(
            "post",
            "big-0",
            "2026-03-02",
            json!({"post_id": "p-1", "community": "big", "text": "hello"})
        ),
        ev(
            "post",
            "big-1",
            "2026-03-02",
            json!({"post_id": "p-2", "community": "big", "text": "hi", "reply_to": "p-1"})
        ),
        ev(
            "community_left",
            "big-4",
            "2026-03-03",
            json!({"community": "big"})
        ),
    ]);
    let (_, last) = s.post_json("/v1/events", &later).await;
    let last = last["last_position"].as_u64().unwrap();
    let analyst = s.key(Role::Analyst);
    let (status, by_size) = s
        .get(&format!("/v1/communities?min_position={last}"), &analyst)
        .await;
    assert_eq!(status, 200, "{by_size}");
    assert_eq!(by_size["communities"][0]["id"], "big");
    assert_eq!(by_size["communities"][0]["members"], 4);
    let (_, by_rate) = s.get("/v1/communities?sort=complaint_rate", &analyst).await;
    assert_eq!(by_rate["communities"][0]["id"], "small");
    assert_eq!(by_rate["communities"][0]["complaint_rate"], 1.0);
    let (_, by_revenue) = s.get("/v1/communities?sort=revenue", &analyst).await;
    assert_eq!(
        by_revenue["communities"][0]["member_revenue"],
        json!({"CNY": "1000.00"})
    );
    let (status, bad) = s.get("/v1/communities?sort=loudest", &analyst).await;
    assert_eq!(
        (status, &bad["error"]["details"][0]["path"]),
        (400, &json!("sort"))
    );
    let (status, bad) = s.get("/v1/communities?window_months=0", &analyst).await;
    assert_eq!(
        (status, &bad["error"]["details"][0]["path"]),
        (400, &json!("window_months"))
    );

    let (_, big) = s.get("/v1/communities/big", &analyst).await;
    assert_eq!(
        big["leaders"]["posts"].as_array().unwrap().len(),
        2,
        "{big}"
    );
    assert_eq!(big["leaders"]["replies_received"][0]["customer"], "big-0");
    assert_eq!(big["left_total"], 1);
    assert_eq!(big["active_members"], 2);
    // As the log stood before the posts: five members, no posts.
    let (_, then) = s
        .get(
            &format!("/v1/communities/big?as_of_position={before}"),
            &analyst,
        )
        .await;
    assert_eq!(
        (then["members"].as_u64(), then["posts_in_window"].as_u64()),
        (Some(5), Some(0)),
        "{then}"
    );
    let (status, _) = s.get("/v1/communities/nowhere", &analyst).await;
    assert_eq!(status, 404);
}
