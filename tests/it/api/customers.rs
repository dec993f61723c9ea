//! The read side through HTTP: profiles, lists, timelines, RFM, cohorts, read-your-writes.

use rapport::auth::Role;
use serde_json::{json, Value};

use super::helpers::TestServer;

fn ev(ty: &str, customer: &str, at: &str, data: Value) -> Value {
    json!({"type": ty, "customer": customer, "occurred_at": at, "data": data})
}

/// c-1 buys twice (January, March) and gets a partial refund, refers c-2 who buys in
/// February; c-2 complains, c-3 echoes the complaint and replies to c-1's post; c-1 is
/// contacted by a campaign. The last event is on 2026-03-31.
fn story() -> Value {
    json!([
        ev(
            "customer_registered",
            "c-1",
            "2026-01-01T09:00:00Z",
            json!({"name": "Li Na", "email": "li@example.cn", "region": "Shanghai"})
        ),
        ev(
            "purchase",
            "c-1",
            "2026-01-05T10:00:00Z",
            json!({"order_id": "o-1", "amount": "100.00", "currency": "CNY",
            "items": [{"sku": "TEA-1", "quantity": 2, "unit_price": "50.00", "product": "Longjing", "category": "tea"}]})
        ),
        ev(
            "referral",
            "c-1",
            "2026-01-06T10:00:00Z",
            json!({"referee": "c-2"})
        ),
        ev(
            "purchase",
            "c-2",
            "2026-02-10T10:00:00Z",
            json!({"order_id": "o-2", "amount": "30", "currency": "CNY"})
        ),
        ev(
            "purchase",
            "c-1",
            "2026-03-01T10:00:00Z",
            json!({"order_id": "o-3", "amount": "50.50", "currency": "CNY"})
        ),
        ev(
            "refund",
            "c-1",
            "2026-03-02T10:00:00Z",
            json!({"order_id": "o-3", "amount": "20.25"})
        ),
        ev(
            "community_joined",
            "c-1",
            "2026-03-03T10:00:00Z",
            json!({"community": "g-12"})
        ),
        ev(
            "post",
            "c-1",
            "2026-03-04T10:00:00Z",
            json!({"post_id": "p-1", "community": "g-12", "text": "new tea is in"})
        ),
        ev(
            "complaint",
            "c-2",
            "2026-03-05T10:00:00Z",
            json!({"complaint_id": "k-1", "about": {"batch": "L0421"}, "text": "mouldy"})
        ),
        ev(
            "post",
            "c-3",
            "2026-03-05T11:00:00Z",
            json!({"post_id": "p-2", "community": "g-12", "text": "me too", "echoes": "k-1", "reply_to": "p-1", "mentions": ["c-1"]})
        ),
        ev(
            "complaint_resolved",
            "c-2",
            "2026-03-06T10:00:00Z",
            json!({"complaint_id": "k-1", "satisfied": true})
        ),
        ev(
            "contacted",
            "c-1",
            "2026-03-31T10:00:00Z",
            json!({"channel": "sms", "campaign": "spring", "outcome": "delivered"})
        ),
    ])
}

async fn seeded() -> (TestServer, u64) {
    seeded_on(TestServer::start().await).await
}

async fn seeded_on(s: TestServer) -> (TestServer, u64) {
    let (status, body) = s.post_json("/v1/events", &story()).await;
    assert_eq!(status, 201, "{body}");
    let last = body["last_position"].as_u64().unwrap();
    (s, last)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_profile_shows_orders_net_revenue_ties_and_influence() {
    let (s, last) = seeded().await;
    let (status, p) = s
        .get(&format!("/v1/customers/c-1?min_position={last}"), &s.admin)
        .await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["identity"]["name"], "Li Na");
    assert_eq!(p["orders"], 2);
    assert_eq!(
        p["revenue"]["CNY"], "130.25",
        "100.00 + 50.50 − 20.25, exact"
    );
    assert_eq!(p["average_order_value"]["CNY"], "75.25");
    assert_eq!(
        p["favourite_products"][0],
        json!({"name": "Longjing", "units": 2})
    );
    assert_eq!(p["referrals"]["referees"], json!(["c-2"]));
    assert_eq!(p["referrals"]["referees_who_bought"], 1);
    assert_eq!(p["community"]["replies_received"], 1);
    assert_eq!(p["community"]["mentions_received"], 1);
    assert_eq!(p["outreach"]["last_campaign"], "spring");
    // 3 per referee who bought + 1 per reply + 1 per mention.
    assert_eq!(p["influence"], 5);
    assert_eq!(p["lifecycle"], "active");
    assert_eq!(p["relationship"], "customer");
    assert_eq!(
        p["as_of"], "2026-03-31T10:00:00Z",
        "the default reference time is the latest event's, not the clock's"
    );
    let (_, c2) = s.get("/v1/customers/c-2", &s.admin).await;
    assert_eq!(c2["referrals"]["referred_by"], "c-1");
    assert_eq!(c2["complaints"]["resolved"], 1);
    assert_eq!(c2["complaints"]["satisfied"], 1);
    assert_eq!(c2["community"]["echoes_received"], 1);
    assert_eq!(s.get("/v1/customers/nobody", &s.admin).await.0, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn as_of_answers_for_a_past_date() {
    let (s, last) = seeded().await;
    let (_, p) = s
        .get(
            &format!("/v1/customers/c-1?min_position={last}&as_of=2026-02-01"),
            &s.admin,
        )
        .await;
    assert_eq!(p["orders"], 1);
    assert_eq!(p["revenue"]["CNY"], "100.00");
    assert_eq!(p["lifecycle"], "new");
    let (_, p) = s
        .get(
            &format!("/v1/customers/c-1?min_position={last}&as_of=2026-12-01"),
            &s.admin,
        )
        .await;
    assert_eq!(
        p["lifecycle"], "dormant",
        "dormancy arrives with time, without any new event"
    );
    assert_eq!(
        s.get("/v1/customers/c-1?as_of=yesterday", &s.admin).await.0,
        400
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn analysts_see_pseudonyms_and_erasure_keeps_the_facts() {
    let (s, last) = seeded().await;
    let analyst = s.key(Role::Analyst);
    let (_, p) = s
        .get(&format!("/v1/customers/c-1?min_position={last}"), &analyst)
        .await;
    assert!(
        p["identity"]["name"].as_str().unwrap().starts_with("anon-"),
        "{p}"
    );
    let before = p;
    let (_, erased) = s.delete("/v1/customers/c-1/personal-data", &s.admin).await;
    let pos = erased["erasure"]["event"]["position"].as_u64().unwrap();
    let (_, p) = s
        .get(&format!("/v1/customers/c-1?min_position={pos}"), &s.admin)
        .await;
    assert_eq!(p["identity"], json!({"erased": true}));
    assert_eq!(p["revenue"]["CNY"], "130.25");
    assert!(!p.to_string().contains("Li Na"));
    // The erasure is stamped with today's wall clock, but it is no activity of the
    // customer's and moves no business clock: nobody turns dormant because of it.
    for field in ["as_of", "last_seen", "lifecycle"] {
        assert_eq!(p[field], before[field], "{field} moved with the erasure");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn lists_filter_sort_and_page() {
    let (s, last) = seeded().await;
    let (_, all) = s
        .get(
            &format!("/v1/customers?min_position={last}&sort=revenue&limit=2"),
            &s.admin,
        )
        .await;
    let ids: Vec<_> = all["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["c-1", "c-2"]);
    assert_eq!(all["total"], 3);
    let (_, rest) = s
        .get(
            &format!(
                "/v1/customers?sort=revenue&limit=2&cursor={}",
                all["next_cursor"].as_str().unwrap()
            ),
            &s.admin,
        )
        .await;
    assert_eq!(rest["customers"][0]["id"], "c-3");
    assert_eq!(rest["next_cursor"], Value::Null);
    let (_, g) = s.get("/v1/customers?community=g-12", &s.admin).await;
    assert_eq!(g["total"], 1);
    let (_, prospects) = s.get("/v1/customers?status=prospect", &s.admin).await;
    assert_eq!(prospects["customers"][0]["id"], "c-3");
    assert_eq!(s.get("/v1/customers?status=sleepy", &s.admin).await.0, 400);
    assert_eq!(s.get("/v1/customers?sort=age", &s.admin).await.0, 400);
    assert_eq!(s.get("/v1/customers?colour=red", &s.admin).await.0, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_timeline_is_newest_first_and_paged() {
    let (s, _) = seeded().await;
    let (_, t) = s.get("/v1/customers/c-1/timeline?limit=3", &s.admin).await;
    let types: Vec<_> = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["contacted", "post", "community_joined"]);
    let (_, t2) = s
        .get(
            &format!(
                "/v1/customers/c-1/timeline?limit=10&cursor={}",
                t["next_cursor"].as_str().unwrap()
            ),
            &s.admin,
        )
        .await;
    assert_eq!(t2["events"].as_array().unwrap().len(), 5);
    assert_eq!(t2["events"][4]["type"], "customer_registered");
    assert_eq!(t2["next_cursor"], Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn cohorts_count_distinct_buyers_per_month_after_the_first() {
    let (s, last) = seeded().await;
    let (_, c) = s
        .get(
            &format!("/v1/cohorts?period=month&min_position={last}"),
            &s.admin,
        )
        .await;
    let cohorts = c["cohorts"].as_array().unwrap();
    assert_eq!(cohorts.len(), 2, "{c}");
    assert_eq!(cohorts[0]["cohort"], "2026-01");
    assert_eq!(cohorts[0]["customers"], 1);
    let jan: Vec<_> = cohorts[0]["periods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["offset"].as_u64().unwrap(),
                p["customers"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(jan, [(0, 1), (1, 0), (2, 1)]);
    assert_eq!(cohorts[0]["periods"][2]["retention_pct"], "100");
    assert_eq!(
        cohorts[0]["periods"][2]["revenue"]["CNY"], "50.50",
        "refunds are not subtracted from cohort revenue"
    );
    assert_eq!(cohorts[1]["cohort"], "2026-02");
    assert_eq!(s.get("/v1/cohorts?period=week", &s.admin).await.0, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn rfm_scores_every_buyer_and_sums_segments() {
    let (s, last) = seeded().await;
    let (status, r) = s
        .get(
            &format!("/v1/rfm?as_of=2026-04-01&min_position={last}"),
            &s.admin,
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["currency"], "CNY");
    let rows = r["customers"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "only buyers are scored");
    assert_eq!(rows[0]["customer"], "c-1");
    assert_eq!(rows[0]["frequency"], 2);
    assert_eq!(rows[0]["monetary"], "130.25");
    let total: u64 = r["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["customers"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 2);
    // The grid: the same customers by recency and frequency score, without a row each.
    let (status, g) = s.get("/v1/rfm/grid?as_of=2026-04-01", &s.admin).await;
    assert_eq!(status, 200, "{g}");
    assert_eq!(g["customers"], 2);
    assert_eq!(g["segments"], r["segments"]);
    let cells = g["grid"].as_array().unwrap();
    assert_eq!(cells.len(), 25);
    assert_eq!((&cells[0]["r"], &cells[0]["f"]), (&json!(5), &json!(1)));
    for row in rows {
        let cell = cells
            .iter()
            .find(|c| c["r"] == row["r"] && c["f"] == row["f"])
            .unwrap();
        assert!(cell["customers"].as_u64().unwrap() >= 1, "{row} in {cell}");
    }
    let in_cells: u64 = cells.iter().map(|c| c["customers"].as_u64().unwrap()).sum();
    assert_eq!(in_cells, 2);
    let (status, csv) = s
        .get_text("/v1/rfm?as_of=2026-04-01&format=csv", &s.admin)
        .await;
    assert_eq!(status, 200);
    assert!(
        csv.starts_with("customer,recency_days,frequency,monetary,r,f,m,segment\nc-1,30,2,130.25,"),
        "{csv}"
    );
}

/// Positions come from appends: one beyond the end of the log, still beyond it after the
/// bounded wait, is the caller's mistake (a 503 would invite retrying for ever).
#[tokio::test(flavor = "multi_thread")]
async fn min_position_beyond_the_log_is_a_400_naming_the_field() {
    let wait = std::time::Duration::from_millis(300);
    let (s, last) = seeded_on(TestServer::start_with_min_position_wait(wait).await).await;
    let (status, body) = s
        .get(
            &format!("/v1/customers/c-1?min_position={}", last + 100),
            &s.admin,
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["details"][0]["path"], "min_position",
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("beyond the end of the log"),
        "{body}"
    );
}

/// d-1 bought monthly from January to September 2025, then went quiet; d-2 bought once long ago; d-1's referrer
/// r-1 is active. A spring campaign contacts both lapsing customers; d-2 buys after it.
#[tokio::test(flavor = "multi_thread")]
async fn dormant_customers_are_ranked_with_the_parts_of_their_score_and_campaigns_count_reactivations(
) {
    let s = TestServer::start().await;
    let mut events = vec![ev(
        "referral",
        "r-1",
        "2024-12-01T00:00:00Z",
        json!({"referee": "d-1"}),
    )];
    for m in 1..=9 {
        events.push(ev(
            "purchase",
            "d-1",
            &format!("2025-{m:02}-01T10:00:00Z"),
            json!({"order_id": format!("d1-{m}"), "amount": "80.00", "currency": "CNY"}),
        ));
    }
    events.push(ev(
        "purchase",
        "d-2",
        "2025-01-15T10:00:00Z",
        json!({"order_id": "d2-1", "amount": "500.00", "currency": "CNY"}),
    ));
    events.push(ev(
        "purchase",
        "r-1",
        "2026-03-20T10:00:00Z",
        json!({"order_id": "r1-1", "amount": "10.00", "currency": "CNY"}),
    ));
    events.push(ev(
        "contacted",
        "d-1",
        "2026-03-25T10:00:00Z",
        json!({"channel": "sms", "campaign": "spring"}),
    ));
    events.push(ev(
        "contacted",
        "d-2",
        "2026-03-25T10:00:00Z",
        json!({"channel": "sms", "campaign": "spring"}),
    ));
    events.push(ev(
        "purchase",
        "d-2",
        "2026-04-02T10:00:00Z",
        json!({"order_id": "d2-2", "amount": "60.00", "currency": "CNY"}),
    ));
    let (_, body) = s.post_json("/v1/events", &json!(events)).await;
    let last = body["last_position"].as_u64().unwrap();

    let (status, r) = s
        .get(
            &format!("/v1/reactivation?as_of=2026-04-01&min_position={last}"),
            &s.admin,
        )
        .await;
    assert_eq!(status, 200, "{r}");
    let ranked: Vec<_> = r["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["customer"].as_str().unwrap())
        .collect();
    assert_eq!(ranked, ["d-1", "d-2"], "{r}");
    let d1 = &r["customers"][0];
    assert_eq!(d1["lifecycle"], "dormant");
    assert_eq!(d1["active_referrer"], "r-1");
    assert_eq!(d1["reach"], 1.5);
    assert_eq!(d1["recently_contacted"], true);
    assert_eq!(r["customers"][1]["lifecycle"], "churned");

    let (_, c) = s.get("/v1/campaigns?as_of=2026-04-30", &s.admin).await;
    assert_eq!(c["campaigns"][0]["campaign"], "spring");
    assert_eq!(c["campaigns"][0]["contacts"], 2);
    assert_eq!(c["campaigns"][0]["reactivated_customers"], json!(["d-2"]));
    let (_, before) = s.get("/v1/campaigns?as_of=2026-03-31", &s.admin).await;
    assert_eq!(
        before["campaigns"][0]["reactivated"], 0,
        "as of then, nobody had bought yet"
    );
}
