//! The HTTP benchmark: concurrent single-event appends, and profile lookups beside them.

use super::*;

/// Customers each HTTP client buys for (and the profile lookups ask about).
const LOOKUP_CUSTOMERS_PER_CLIENT: u64 = 1000;

/// `opts.http_clients` concurrent clients, each POSTing one event at a time to a server
/// in this process (built as `rapport serve` builds it) for `opts.http_seconds`; prints
/// the rate and latency percentiles.
pub(super) async fn http_bench(dir: &std::path::Path, opts: &BenchOptions) -> anyhow::Result<()> {
    use http_body_util::{BodyExt, Full};
    use hyper_util::{client::legacy::Client, rt::TokioExecutor};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = crate::app::App::build(crate::app::AppOptions::embedded(dir, MasterKey::generate()))
        .await?;
    let log = app.log().clone();
    let keys = app.keys().clone();
    let read_model = app.read_model().clone();
    let (_, token) = keys.create(crate::auth::Role::Ingest, Some("bench"))?;
    let (_, reader_token) = keys.create(crate::auth::Role::Support, Some("bench-reader"))?;
    // Every customer the lookups ask for exists before the clock starts, so each lookup
    // finds a profile (the ingest below adds orders to the same customers).
    let mut seeded = 0;
    for t in 0..opts.http_clients {
        // Each customer also known by a phone number, which half the lookups ask by.
        let events: Vec<_> = (0..LOOKUP_CUSTOMERS_PER_CLIENT)
            .flat_map(|j| {
                [
                    format!(
                        r#"{{"type":"customer_registered","customer":"c-{t}-{j}","occurred_at":"2026-02-01T10:00:00Z","data":{{"name":"Customer {t}-{j}","region":"Shanghai"}}}}"#
                    ),
                    format!(
                        r#"{{"type":"identifier_added","customer":"c-{t}-{j}","occurred_at":"2026-02-01T10:00:00Z","data":{{"kind":"phone","value":"{}"}}}}"#,
                        bench_phone(t as u64, j)
                    ),
                ]
            })
            .map(|text| rapport_events::parse_one(&text, &mut uuid::Uuid::now_v7, false))
            .collect::<Result<_, _>>()?;
        seeded = log
            .append(&events, crate::log::AppendRules::per_stream())
            .await?
            .last()
            .map_or(seeded, |a| a.position);
    }
    caught_up(&read_model, seeded).await?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(listener, async move {
        let _ = stop_rx.await;
    }));
    let client: Client<_, Full<bytes::Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(opts.http_clients)
        .build_http();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(opts.http_seconds);
    let mut tasks = Vec::new();
    for t in 0..opts.http_clients {
        let client = client.clone();
        let token = token.clone();
        // Paced: each client sends one event every `clients / rate` seconds, the clients'
        // ticks spread evenly over that period: clients started together would send in
        // bursts, and the lookups that come during a burst would measure the burst.
        let mut pace = (opts.http_ingest_rate > 0).then(|| {
            let period = std::time::Duration::from_secs_f64(
                opts.http_clients as f64 / opts.http_ingest_rate as f64,
            );
            let mut t = tokio::time::interval_at(
                tokio::time::Instant::now() + period.mul_f64(t as f64 / opts.http_clients as f64),
                period,
            );
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = 0u64;
            while std::time::Instant::now() < deadline {
                if let Some(p) = pace.as_mut() {
                    p.tick().await;
                }
                i += 1;
                let body = format!(
                    r#"{{"type":"purchase","customer":"c-{t}-{}","occurred_at":"2026-03-01T10:00:00Z","data":{{"order_id":"o-{t}-{i}","amount":"129.90","currency":"CNY","items":[{{"sku":"TEA-01","quantity":2,"unit_price":"64.95"}}]}},"metadata":{{"source":"bench"}}}}"#,
                    i % LOOKUP_CUSTOMERS_PER_CLIENT
                );
                let req = hyper::Request::post(format!("http://{addr}/v1/events"))
                    .header("authorization", format!("Bearer {token}"))
                    .header("content-type", "application/json")
                    .body(Full::new(bytes::Bytes::from(body)))
                    .expect("valid request");
                let started = std::time::Instant::now();
                let resp = client.request(req).await?;
                let status = resp.status();
                let _ = resp.into_body().collect().await?;
                anyhow::ensure!(status == hyper::StatusCode::CREATED, "status {status}");
                lat.push(started.elapsed().as_secs_f64());
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    // Meanwhile: profile lookups at a steady PROFILE_LOOKUPS_PER_S, each on its own task so a
    // slow answer does not hold the next one back.
    const PROFILE_LOOKUPS_PER_S: u64 = 1000;
    const LOOKUP_CONNECTIONS_IDLE_MAX: usize = 16;
    let reader = {
        // The lookups come from another application than the ingest (a support desk, not
        // the shop), with connections of their own.
        let client: Client<_, Full<bytes::Bytes>> = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(LOOKUP_CONNECTIONS_IDLE_MAX)
            .build_http();
        let token = reader_token.clone();
        let clients = opts.http_clients as u64;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_micros(
                1_000_000 / PROFILE_LOOKUPS_PER_S,
            ));
            let mut lookups = Vec::new();
            let mut i = 0u64;
            while std::time::Instant::now() < deadline {
                tick.tick().await;
                i += 1;
                let (client, token) = (client.clone(), token.clone());
                let by_phone = i % 2 == 1;
                let uri = if by_phone {
                    format!(
                        "http://{addr}/v1/customers?identifier=phone:{}",
                        bench_phone(i % clients, i % LOOKUP_CUSTOMERS_PER_CLIENT)
                            .replace('+', "%2B")
                    )
                } else {
                    format!(
                        "http://{addr}/v1/customers/c-{}-{}",
                        i % clients,
                        i % LOOKUP_CUSTOMERS_PER_CLIENT
                    )
                };
                lookups.push(tokio::spawn(async move {
                    let req = hyper::Request::get(uri)
                        .header("authorization", format!("Bearer {token}"))
                        .body(Full::new(bytes::Bytes::new()))
                        .expect("valid request");
                    let started = std::time::Instant::now();
                    let resp = client.request(req).await.ok()?;
                    let ok = resp.status() == hyper::StatusCode::OK;
                    let body = resp.into_body().collect().await.ok()?.to_bytes();
                    // A lookup by phone must find its one customer.
                    let found = !by_phone
                        || serde_json::from_slice::<serde_json::Value>(&body)
                            .is_ok_and(|v| v["total"] == 1);
                    (ok && found).then(|| (by_phone, started.elapsed().as_secs_f64()))
                }));
            }
            let mut lat = Vec::new();
            let mut missing = 0;
            for l in lookups {
                match l.await {
                    Ok(Some(x)) => lat.push(x),
                    _ => missing += 1,
                }
            }
            (lat, missing)
        })
    };
    let started = std::time::Instant::now();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
            * 1000.0
    };
    println!(
        "{}   p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        Rate {
            what: if opts.http_ingest_rate > 0 {
                "HTTP single-event POST, durable, paced"
            } else {
                "HTTP single-event POST, durable, as fast as possible"
            },
            events: all.len() as u64,
            seconds: secs
        },
        pct(0.5),
        pct(0.99),
        all.last().copied().unwrap_or(0.0) * 1000.0
    );
    let (lat, missing) = reader.await?;
    for (by_phone, what) in [
        (false, "profile lookups by id"),
        (true, "lookups by phone number"),
    ] {
        let mut lat: Vec<f64> = lat
            .iter()
            .filter(|l| l.0 == by_phone)
            .map(|l| l.1)
            .collect();
        lat.sort_by(|a, b| a.total_cmp(b));
        let p = |q: f64| {
            lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0.0)
                * 1000.0
        };
        println!(
            "{what} during that ingest: {} answered, {:.0}/s, p50 {:.2} ms, p99 {:.2} ms",
            lat.len(),
            lat.len() as f64 / secs,
            p(0.5),
            p(0.99)
        );
    }
    println!("lookups not found or failed: {missing}");
    let _ = stop_tx.send(());
    server.await??;
    Ok(())
}

/// The phone number of bench customer `c-{client}-{j}`.
fn bench_phone(client: u64, j: u64) -> String {
    format!("+86139{client:04}{j:04}")
}
