//! The agent and community pages of the console, as a browser without JavaScript uses
//! them: what the API answers, laid out, for every role that reads, in both languages.

use rapport::auth::Role;
use reqwest::StatusCode;
use serde_json::json;

use super::console::Browser;

#[tokio::test(flavor = "multi_thread")]
async fn an_analyst_finds_the_pyramid_first_and_walks_its_network_down_to_an_agent() {
    let (s, last) = super::agents::seeded().await;
    let mut b = Browser::new(&s);
    b.sign_in(&s.key(Role::Analyst)).await;
    s.get(
        &format!("/v1/agents/networks?min_position={last}"),
        &s.admin,
    )
    .await;
    let (status, list) = b.page("/agents").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let pyramid = list
        .find("/agents/networks/p-0")
        .expect("the pyramid is listed");
    let healthy = list
        .find("/agents/networks/h-0")
        .expect("the healthy network is listed");
    assert!(pyramid < healthy, "highest risk first");
    assert!(list.contains("2 networks, 72 agents"), "{list}");
    let (_, flagged) = b.page("/agents?risk=critical").await;
    assert!(flagged.contains("p-0") && !flagged.contains("h-0"));

    let (status, net) = b.page("/agents/networks/p-0").await;
    assert_eq!(status, StatusCode::OK);
    assert!(net.contains("36 participants over 4 levels"), "{net}");
    assert!(net.contains("of commissions paid for recruitment"), "{net}");
    assert!(net.contains("href=\"/agents/p-13\""), "{net}");
    assert!(
        net.contains("href=\"/alerts/al-p-"),
        "the network links to its alert"
    );

    let (_, agent) = b.page("/agents/p-13").await;
    assert!(
        agent.contains("href=\"/agents/p-4\"") && agent.contains("1500.00 CNY"),
        "{agent}"
    );

    let (_, board) = b.page("/alerts?kind=pyramid_risk").await;
    assert!(board.contains("Pyramid risk"), "{board}");
    let (status, _) = b.page("/agents/nobody").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    b.lang = Some("zh-CN");
    let (_, zh) = b.page("/agents").await;
    assert!(
        zh.contains("代理网络") && zh.contains("2 个网络，72 位代理"),
        "{zh}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn communities_are_sorted_on_request_and_a_community_shows_its_leaders() {
    let s = super::helpers::TestServer::start().await;
    let ev = |ty: &str, c: &str, day: &str, data: serde_json::Value| json!({"type": ty, "customer": c, "occurred_at": format!("{day}T10:00:00Z"), "data": data});
    let batch = json!([
        ev(
            "community_joined",
            "a-1",
            "2026-03-01",
            json!({"community": "tea-lovers"})
        ),
        ev(
            "community_joined",
            "a-2",
            "2026-03-01",
            json!({"community": "tea-lovers"})
        ),
        ev(
            "community_joined",
            "b-1",
            "2026-03-01",
            json!({"community": "snackers"})
        ),
        ev(
            "post",
            "a-1",
            "2026-03-02",
            json!({"post_id": "p1", "community": "tea-lovers", "text": "new harvest"})
        ),
        ev(
            "purchase",
            "b-1",
            "2026-03-02",
            json!({"order_id": "o1", "amount": "90.00", "currency": "CNY"})
        ),
    ]);
    let (status, body) = s.post_json("/v1/events", &batch).await;
    assert_eq!(status, 201, "{body}");
    s.get(
        &format!("/v1/communities?min_position={}", body["last_position"]),
        &s.admin,
    )
    .await;
    let mut b = Browser::new(&s);
    b.sign_in(&s.key(Role::Support)).await;
    let (_, by_size) = b.page("/communities").await;
    assert!(
        by_size.find("tea-lovers").unwrap() < by_size.find("snackers").unwrap(),
        "{by_size}"
    );
    let (_, by_revenue) = b.page("/communities?sort=revenue").await;
    assert!(
        by_revenue.find("/communities/snackers").unwrap()
            < by_revenue.find("/communities/tea-lovers").unwrap()
    );
    let (status, page) = b.page("/communities/tea-lovers").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("Most posts") && page.contains("href=\"/customers/a-1\""),
        "{page}"
    );
}
