//! An audience delivered whole: a segment defined over every customer of a bulk import
//! reaches a webhook receiver that was down for the whole import and the definition,
//! once it comes back, each member once, however many there are; the feeds keep only
//! the latest 100,000 changes in memory, so this holds only because the outbox keeps the
//! rest for the subscription.
//!
//! `RAPPORT_AUDIENCE_CUSTOMERS` sets the size (1,000,000 by default: the figure the
//! product promises).

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{extract::State, http::StatusCode, routing::post, Router};
use serde_json::{json, Value};

use super::helpers::TestServer;

/// Events per append request of the bulk import.
const IMPORT_BATCH: usize = 10_000;
/// Changes per delivery the subscription asks for.
const DELIVERY_BATCH: u64 = 1_000;

fn audience_size() -> usize {
    std::env::var("RAPPORT_AUDIENCE_CUSTOMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

#[derive(Default)]
struct Got {
    down: bool,
    /// Delivery ids of the changes in answered (2xx) requests, in arrival order.
    ids: Vec<String>,
    customers: Vec<String>,
    requests: usize,
}

type Shared = (Arc<Mutex<Got>>, Arc<tokio::sync::Notify>);

async fn receive(State((got, changed)): State<Shared>, body: String) -> StatusCode {
    let status = {
        let mut g = got.lock().unwrap();
        g.requests += 1;
        if g.down {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            let v: Value = serde_json::from_str(&body).unwrap();
            let deliveries = match v.get("deliveries") {
                Some(d) => d.as_array().unwrap().clone(),
                None => vec![v],
            };
            for d in deliveries {
                assert_eq!(d["type"], "segment.entered", "{d}");
                g.ids.push(d["id"].as_str().unwrap().to_owned());
                g.customers
                    .push(d["data"]["customer"].as_str().unwrap().to_owned());
            }
            StatusCode::NO_CONTENT
        }
    };
    changed.notify_waiters();
    status
}

#[tokio::test(flavor = "multi_thread")]
async fn a_segment_over_every_imported_customer_reaches_a_receiver_that_was_down_whole() {
    let n = audience_size();
    let s = TestServer::start().await;
    let shared: Shared = Default::default();
    shared.0.lock().unwrap().down = true;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(shared.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let (status, body) = s
        .post_json(
            "/v1/webhooks",
            &json!({"url": url, "events": ["segment.entered"], "batch": DELIVERY_BATCH}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["webhook"]["id"].as_str().unwrap().to_owned();

    // The bulk import, then a segment that every imported customer matches.
    let ingest = s.key(rapport::auth::Role::Ingest);
    for start in (0..n).step_by(IMPORT_BATCH) {
        let lines: String = (start..(start + IMPORT_BATCH).min(n))
            .map(|i| {
                format!(
                    "{{\"type\":\"purchase\",\"customer\":\"m-{i}\",\"occurred_at\":\"2026-03-01T10:00:00Z\",\"data\":{{\"order_id\":\"mo-{i}\",\"amount\":\"9.90\",\"currency\":\"CNY\"}}}}\n"
                )
            })
            .collect();
        let (status, body) = s
            .post("/v1/events", &ingest, "application/x-ndjson", lines)
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = s
        .post_json(
            "/v1/segments",
            &json!({"id": "everyone", "name": "Everyone who bought",
                    "rule": {"field": "orders", "op": ">=", "value": 1}}),
        )
        .await;
    assert!(status == 200 || status == 201, "{status} {body}");
    let defined_at = body["position"].as_u64().unwrap();

    // Rapport has applied the definition while the receiver was down: the subscription
    // has parked after its failures.
    let applied = async {
        // 503 while the read model is still folding the import (each wait is bounded).
        while s
            .get(
                &format!("/v1/segments/everyone?min_position={defined_at}"),
                &s.admin,
            )
            .await
            .0
            == 503
        {}
    };
    tokio::time::timeout(Duration::from_secs(1_800), applied)
        .await
        .expect("the read model applies the definition");
    let w = super::webhooks::parked(&s, &id).await;
    assert_eq!(w["delivered"], 0, "{w}");

    // The receiver comes back; staff resume the subscription; everything arrives.
    shared.0.lock().unwrap().down = false;
    let (status, body) = s
        .post(
            &format!("/v1/webhooks/{id}/resume"),
            &s.admin.clone(),
            "application/json",
            "",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let started = std::time::Instant::now();
    let all_arrived = async {
        loop {
            let notified = shared.1.notified();
            if shared.0.lock().unwrap().ids.len() >= n {
                return;
            }
            notified.await;
        }
    };
    tokio::time::timeout(Duration::from_secs(1_800), all_arrived)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "only {} of {n} changes arrived",
                shared.0.lock().unwrap().ids.len()
            )
        });
    let secs = started.elapsed().as_secs_f64();
    let g = shared.0.lock().unwrap();
    let unique: HashSet<&String> = g.ids.iter().collect();
    assert_eq!(unique.len(), n, "every change arrived");
    assert_eq!(
        g.ids.len(),
        n,
        "none twice (no delivery was retried after success)"
    );
    let members: HashSet<&String> = g.customers.iter().collect();
    assert_eq!(members.len(), n, "every member once");
    assert!(
        g.ids.windows(2).all(|w| seq(&w[0]) < seq(&w[1])),
        "in order"
    );
    eprintln!(
        "audience: {n} segment.entered changes delivered in {secs:.1} s ({:.0}/s) in {} requests after the receiver came back",
        n as f64 / secs,
        g.requests
    );
}

fn seq(delivery: &str) -> u64 {
    delivery.rsplit('-').next().unwrap().parse().unwrap()
}
