//! A property of the folds and every query over them: whatever valid events arrive, at the
//! edges of what validation accepts (the largest amounts and the smallest, the earliest
//! and the latest dates, the longest ids and texts, many currencies), every read the API
//! documents still answers, and never with a server error.
//!
//! Seeded (a failure names its case); events are drawn with proptest's strategies and
//! sent one by one through the API, so what validation refuses is simply not there.

use chrono::{Duration, Utc};
use proptest::{
    prelude::*,
    strategy::ValueTree,
    test_runner::{Config, RngAlgorithm, TestRng, TestRunner},
};
use serde_json::{json, Value};

use super::helpers::TestServer;

/// Generated stores, each queried on every documented read.
const CASES: usize = 6;
/// Events drawn per store.
const EVENTS_PER_CASE: usize = 60;

const CURRENCIES: &[&str] = &[
    "CNY", "USD", "EUR", "JPY", "GBP", "HKD", "TWD", "SGD", "KRW", "BRL", "INR", "CHF", "KWD",
];

/// The customers of a case: the longest id validation takes, non-ASCII ids, short ones.
fn customers() -> Vec<String> {
    let longest = "客".repeat(rapport_events::data::ID_LEN_MAX / "客".len());
    vec![
        longest,
        "c-1".into(),
        "顾客-二".into(),
        "c-3".into(),
        "x".into(),
    ]
}

fn amount() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(rapport_events::money::AMOUNT_MAX.to_string()),
        Just("0.00000001".to_owned()),
        Just("0".to_owned()),
        (0u64..1_000_000, 0u32..100).prop_map(|(a, c)| format!("{a}.{c:02}")),
    ]
}

/// From the earliest accepted year to the most a clock may be ahead.
fn occurred_at() -> impl Strategy<Value = String> {
    let latest =
        Utc::now() + Duration::hours(rapport_events::envelope::OCCURRED_AHEAD_HOURS_MAX - 1);
    prop_oneof![
        Just("1900-01-01T00:00:00Z".to_owned()),
        Just(latest.to_rfc3339()),
        (0i64..(latest.timestamp() + 2_208_988_800)).prop_map(|s| {
            chrono::DateTime::from_timestamp(s - 2_208_988_800, 0)
                .unwrap()
                .to_rfc3339()
        }),
    ]
}

fn long_text() -> String {
    "茶叶有霉味".repeat(rapport_events::data::TEXT_LEN_MAX / "茶叶有霉味".len())
}

fn event() -> impl Strategy<Value = Value> {
    let people = customers();
    let n = people.len();
    (
        0..n,
        0..n,
        occurred_at(),
        amount(),
        prop::sample::select(CURRENCIES),
        0u8..11,
        0u32..4,
    )
        .prop_map(move |(who, other, at, amount, currency, kind, k)| {
            // Somebody else: nobody refers or recruits themselves.
            let other = (who + 1 + other % (n - 1)) % n;
            let tag: String = at.chars().filter(char::is_ascii_digit).collect();
            let (ty, data) = match kind {
                0 | 1 => ("purchase", json!({"order_id": format!("o-{tag}-{k}"), "amount": amount, "currency": currency,
                    "items": [{"sku": format!("S-{k}"), "quantity": 1, "unit_price": amount, "batch": "L1"}], "sold_by": people[other]})),
                2 => ("refund", json!({"order_id": format!("o-{k}"), "amount": amount, "currency": currency})),
                3 => ("referral", json!({"referee": people[other]})),
                4 => ("complaint", json!({"complaint_id": format!("k-{tag}"), "about": {"sku": format!("S-{k}"), "batch": "L1"}, "text": long_text(), "severity": 5})),
                5 => ("post", json!({"post_id": format!("p-{tag}"), "community": "群".repeat(40), "text": long_text(), "echoes": "k-1", "mentions": [people[other]]})),
                6 => ("community_joined", json!({"community": if k % 2 == 0 { "群".repeat(40) } else { "g-1".into() }})),
                7 => ("customer_registered", json!({"name": "名".repeat(100), "email": "a@example.com", "region": "north"})),
                8 => ("agent_joined", json!({"upline": people[other], "fee": amount, "currency": currency})),
                9 => ("commission_paid", json!({"amount": amount, "currency": currency, "basis": "recruitment", "recruit": people[other]})),
                _ => ("contacted", json!({"channel": "sms", "campaign": "c".repeat(100)})),
            };
            json!({"type": ty, "customer": people[who], "occurred_at": at, "data": data})
        })
}

/// The documented reads (SSE feeds aside), with the ids of this case in their paths, and
/// each once more as CSV where it answers CSV.
fn reads(doc: &Value) -> Vec<String> {
    let longest = customers().remove(0);
    let mut out = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let Some(get) = ops.get("get") else { continue };
        if get["responses"]["200"]["content"]
            .get("text/event-stream")
            .is_some()
        {
            continue;
        }
        let path = path
            .replace("{stream}", &format!("customer-{longest}"))
            .replace("{root}", "c-1")
            .replace(
                "{id}",
                if path.contains("communities") {
                    "g-1"
                } else {
                    &longest
                },
            );
        let query = if path.ends_with("/diff") {
            "?from=1"
        } else {
            ""
        };
        out.push(format!("{path}{query}"));
        if get["responses"]["200"]["content"].get("text/csv").is_some() {
            out.push(format!("{path}?format=csv"));
        }
    }
    // The reference times at the edges too.
    for read in [
        "/v1/cohorts",
        "/v1/rfm",
        "/v1/lifecycle/by-month",
        "/v1/communities",
        "/v1/reactivation",
    ] {
        out.push(format!("{read}?as_of=1900-01-01"));
        out.push(format!("{read}?as_of=9999-12-31"));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn every_read_answers_after_valid_events_at_the_edges_of_validation() {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let batch = prop::collection::vec(event(), EVENTS_PER_CASE);
    for case in 0..CASES {
        let events = batch.new_tree(&mut runner).unwrap().current();
        let s = TestServer::start().await;
        let mut accepted = 0;
        let mut last = 0;
        for e in &events {
            let (status, body) = s.post_json("/v1/events", e).await;
            assert!(status < 500, "case {case}: {status} {body} for {e}");
            if status == 201 {
                accepted += 1;
                last = body["events"][0]["position"].as_u64().unwrap_or(last);
            }
        }
        // The generator stays inside validation: a case of refusals would test nothing.
        assert!(
            accepted * 10 >= EVENTS_PER_CASE * 9,
            "case {case}: only {accepted} of {EVENTS_PER_CASE} events accepted"
        );
        let doc = s.get("/openapi.json", &s.admin).await.1;
        for read in reads(&doc) {
            let sep = if read.contains('?') { '&' } else { '?' };
            let url = format!("{read}{sep}min_position={last}");
            let (status, body) = s.get(&url, &s.admin).await;
            assert!(
                status < 500,
                "case {case}: GET {url} answered {status}: {body}"
            );
        }
    }
}
