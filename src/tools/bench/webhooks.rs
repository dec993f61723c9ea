//! The webhook benchmark: deliveries to a receiver on loopback, from a server built as
//! `rapport serve` builds it. The time from an acknowledged append to the delivery it
//! causes, one at a time; then how many deliveries per second a burst gets through.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Instant,
};

use super::*;

/// Appends timed one at a time (each waits for its delivery).
const LATENCY_SAMPLES: usize = 200;
/// Customers entering the segment in the burst.
const BURST_CUSTOMERS: usize = 5_000;
/// Customers entering the segment in the burst delivered in batches.
const BATCHED_BURST_CUSTOMERS: usize = 200_000;
/// Changes per delivery of the batched subscription.
const BATCH: u32 = 1_000;

type Arrivals = Arc<(Mutex<HashMap<String, Instant>>, tokio::sync::Notify)>;

async fn receive(
    axum::extract::State(a): axum::extract::State<Arrivals>,
    headers: axum::http::HeaderMap,
    body: String,
) -> axum::http::StatusCode {
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    // A batch counts as each change it carries.
    let ids: Vec<String> = if header("rapport-event") == "batch" {
        serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v["deliveries"].as_array().map(|d| {
                    d.iter()
                        .filter_map(|x| x["id"].as_str().map(str::to_owned))
                        .collect()
                })
            })
            .unwrap_or_default()
    } else {
        vec![header("rapport-delivery")]
    };
    let now = Instant::now();
    let mut got = a.0.lock().unwrap_or_else(|e| e.into_inner());
    for id in ids {
        got.insert(id, now);
    }
    drop(got);
    a.1.notify_waiters();
    axum::http::StatusCode::NO_CONTENT
}

async fn wait_for(a: &Arrivals, n: usize) -> anyhow::Result<()> {
    let wait = async {
        loop {
            let notified = a.1.notified();
            if a.0.lock().unwrap_or_else(|e| e.into_inner()).len() >= n {
                return;
            }
            notified.await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(CATCH_UP_WAIT_SECONDS), wait)
        .await
        .map_err(|_| anyhow::anyhow!("deliveries did not arrive"))
}

pub(super) async fn webhook_bench(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let arrivals: Arrivals = Default::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let receiver = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(arrivals.clone());
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let mut opts = crate::app::AppOptions::embedded(dir, MasterKey::generate());
    opts.config.webhooks.allow_private_targets = true;
    let app = crate::app::App::build(opts).await?;
    let (log, model) = (app.log().clone(), app.read_model().clone());
    let parse = |text: String| rapport_events::parse_one(&text, &mut uuid::Uuid::now_v7, true);
    let define = parse(r#"{"type":"segment_defined","subject":"buyers","occurred_at":"2026-03-01T00:00:00Z","data":{"name":"Buyers","rule":{"field":"orders","op":">=","value":1}}}"#.into())?;
    let at = log
        .append(&[define], crate::log::AppendRules::all_or_nothing())
        .await?;
    caught_up(&model, at[0].position).await?;
    let hooks = app.webhooks().clone();
    let single = hooks
        .create(
            &url,
            vec![crate::webhooks::Topic::SegmentEntered],
            None,
            1,
            "bench",
        )
        .await?;
    let buy = |i: usize| {
        parse(format!(
            r#"{{"type":"purchase","customer":"w-{i}","occurred_at":"2026-03-01T10:00:00Z","data":{{"order_id":"wo-{i}","amount":"9.90","currency":"CNY"}}}}"#
        ))
    };
    let mut lat = Vec::with_capacity(LATENCY_SAMPLES);
    for i in 0..LATENCY_SAMPLES {
        let ev = buy(i)?;
        let acked = log
            .append(&[ev], crate::log::AppendRules::all_or_nothing())
            .await?;
        let t0 = Instant::now();
        let _ = acked;
        wait_for(&arrivals, i + 1).await?;
        let seen = arrivals
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .copied()
            .max()
            .unwrap_or(t0);
        lat.push(seen.saturating_duration_since(t0).as_secs_f64() * 1000.0);
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "webhook: acknowledged append → delivery received, one at a time: p50 {:.2} ms, p99 {:.2} ms ({LATENCY_SAMPLES} deliveries)",
        pct(0.5),
        pct(0.99)
    );
    let started = Instant::now();
    for chunk in (LATENCY_SAMPLES..LATENCY_SAMPLES + BURST_CUSTOMERS)
        .collect::<Vec<_>>()
        .chunks(1000)
    {
        let events: Vec<_> = chunk.iter().map(|&i| buy(i)).collect::<Result<_, _>>()?;
        log.append(&events, crate::log::AppendRules::all_or_nothing())
            .await?;
    }
    wait_for(&arrivals, LATENCY_SAMPLES + BURST_CUSTOMERS).await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "webhook: a burst of {BURST_CUSTOMERS} segment entries delivered in {secs:.2} s = {:.0} deliveries/s (one subscription, cursor written after each)",
        BURST_CUSTOMERS as f64 / secs
    );
    // The same, for a subscription taking changes in batches (the way to hand a whole
    // audience to a tool).
    hooks.delete(&single.id)?;
    hooks
        .create(
            &url,
            vec![crate::webhooks::Topic::SegmentEntered],
            None,
            BATCH,
            "bench",
        )
        .await?;
    let before = arrivals.0.lock().unwrap_or_else(|e| e.into_inner()).len();
    let first = LATENCY_SAMPLES + BURST_CUSTOMERS;
    let started = Instant::now();
    for chunk in (first..first + BATCHED_BURST_CUSTOMERS)
        .collect::<Vec<_>>()
        .chunks(10_000)
    {
        let events: Vec<_> = chunk.iter().map(|&i| buy(i)).collect::<Result<_, _>>()?;
        log.append(&events, crate::log::AppendRules::all_or_nothing())
            .await?;
    }
    wait_for(&arrivals, before + BATCHED_BURST_CUSTOMERS).await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "webhook: a burst of {BATCHED_BURST_CUSTOMERS} segment entries, in batches of {BATCH}, appended and delivered in {secs:.2} s = {:.0} changes/s",
        BATCHED_BURST_CUSTOMERS as f64 / secs
    );
    hooks.stop_all();
    Ok(())
}
