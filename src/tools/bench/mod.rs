//! Benchmarks (`rapport bench …`, and `cargo bench` which runs the same code): seeded
//! synthetic events of about 300 bytes, and the rates of each stage of ingest and export.
//! Numbers are printed, never asserted: targets are checked by reading them.

mod memory;

use std::{fmt::Write as _, time::Instant};

pub use memory::serve_memory;

use rand::{rngs::StdRng, Rng, SeedableRng};

/// When the synthetic log's events occurred.
#[derive(Clone, Copy, Debug)]
pub enum LogTimes {
    /// Cycling through March 2026 every 28 events, so every part of the log holds every day
    /// of the month (99% of the events are late): no business-time build can keep a
    /// snapshot when such events arrive.
    Shuffled,
    /// In business order over the year 2025 (the whole log spans it), with this percentage
    /// of the events arriving late, by up to [`LATE_BY_DAYS_MAX`] days.
    InOrder { late_percent: u8 },
}

/// How late a late event of [`LogTimes::InOrder`] is, at most.
pub const LATE_BY_DAYS_MAX: i64 = 7;

impl LogTimes {
    /// The first instant and the length of the business time an in-order log spans.
    fn in_order_span() -> (chrono::DateTime<chrono::Utc>, chrono::Duration) {
        let start = chrono::DateTime::from_timestamp(1_735_689_600, 0).expect("2025-01-01");
        (start, chrono::Duration::days(365))
    }

    pub fn describe(self) -> String {
        match self {
            LogTimes::Shuffled => "times cycle through March every 28 events".into(),
            LogTimes::InOrder { late_percent } => format!(
                "in business order over 2025, {late_percent}% of events late by up to {LATE_BY_DAYS_MAX} days"
            ),
        }
    }
}

/// One NDJSON line per event, about 300 bytes each, deterministic for a seed.
/// Mix: 60% purchases, 20% posts (personal text), 10% registrations (personal), 10% others.
pub fn synthetic_ndjson(events: usize, customers: u32, seed: u64, times: LogTimes) -> String {
    let mut rng = StdRng::seed_from_u64(seed);
    // A second generator for the in-order times, so the shuffled log stays what it was.
    let mut late_rng = StdRng::seed_from_u64(seed ^ 0x1a7e);
    let (start, span) = LogTimes::in_order_span();
    let mut out = String::with_capacity(events * 310);
    for i in 0..events {
        let c = rng.gen_range(0..customers);
        let id =
            uuid::Uuid::from_u128(rng.gen::<u128>() & !(0xF000u128 << 64) | (0x4000u128 << 64));
        let day = 1 + (i % 28);
        // `at(hh:mm)`: the event's `occurred_at`.
        let at = |hh_mm: &str, late_rng: &mut StdRng| match times {
            LogTimes::Shuffled => format!("2026-03-{day:02}T{hh_mm}:00Z"),
            LogTimes::InOrder { late_percent } => {
                let mut t = start + span * (i as i32) / (events.max(1) as i32);
                if late_rng.gen_range(0..100) < u32::from(late_percent) {
                    t -= chrono::Duration::seconds(
                        late_rng.gen_range(60..LATE_BY_DAYS_MAX * 86_400),
                    );
                }
                rapport_events::envelope::format_time(&t)
            }
        };
        let r: f64 = rng.gen();
        let _ = if r < 0.6 {
            writeln!(
                out,
                r#"{{"id":"{id}","type":"purchase","customer":"c-{c}","occurred_at":"{}","data":{{"order_id":"o-{i}","amount":"{}.{:02}","currency":"CNY","items":[{{"sku":"SKU-{}","quantity":1,"unit_price":"12.50"}}]}},"metadata":{{"source":"shop"}}}}"#,
                at(&format!("10:{:02}", i % 60), &mut late_rng),
                rng.gen_range(1..1000),
                rng.gen_range(0..100),
                rng.gen_range(0..1000)
            )
        } else if r < 0.8 {
            writeln!(
                out,
                r#"{{"id":"{id}","type":"post","customer":"c-{c}","occurred_at":"{}","data":{{"post_id":"p-{i}","community":"g-{}","text":"The tea from batch L0421 tastes odd, anyone else? 茶叶有点霉味"}}}}"#,
                at("11:00", &mut late_rng),
                rng.gen_range(0..100)
            )
        } else if r < 0.9 {
            writeln!(
                out,
                r#"{{"id":"{id}","type":"customer_registered","customer":"c-{c}","occurred_at":"{}","data":{{"name":"Customer {c}","email":"c{c}@example.com","region":"Shanghai","channel":"wechat"}}}}"#,
                at("09:00", &mut late_rng)
            )
        } else {
            writeln!(
                out,
                r#"{{"id":"{id}","type":"community_joined","customer":"c-{c}","occurred_at":"{}","data":{{"community":"g-{}"}},"metadata":{{"source":"group-bot","correlation_id":"x-{i}"}}}}"#,
                at("08:00", &mut late_rng),
                rng.gen_range(0..100)
            )
        };
    }
    out
}

pub struct Rate {
    pub what: &'static str,
    pub events: u64,
    pub seconds: f64,
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<44} {:>10} events in {:>7.3} s = {:>10.0} events/s",
            self.what,
            self.events,
            self.seconds,
            self.events as f64 / self.seconds.max(1e-9)
        )
    }
}

/// User plus system CPU seconds this process has used so far (all threads).
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct we pass and reads nothing else.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(u.ru_utime) + secs(u.ru_stime)
}

/// Resident memory of this process, KiB (Linux; 0 elsewhere).
pub fn rss_kib() -> u64 {
    proc_status_kib("self", "VmRSS:").unwrap_or(0)
}

/// A KiB field (`VmRSS:`, `VmHWM:` …) of `/proc/<pid>/status` (Linux; `None` elsewhere).
fn proc_status_kib(pid: &str, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub fn time<T>(what: &'static str, events: u64, f: impl FnOnce() -> T) -> (Rate, T) {
    let started = Instant::now();
    let out = f();
    (
        Rate {
            what,
            events,
            seconds: started.elapsed().as_secs_f64(),
        },
        out,
    )
}

use std::sync::Arc;

use crate::{
    crypto::{Keyring, MasterKey},
    import::{self, ImportOptions, Input},
    log::{Log, PersonalAccess},
    store::{
        sqlite::{SqliteOptions, SqliteStore},
        EventStore,
    },
};

pub struct BenchOptions {
    pub events: usize,
    pub customers: u32,
    pub seed: u64,
    pub http_seconds: u64,
    pub http_clients: usize,
    /// Events per second over all HTTP clients; 0 for as fast as they can.
    pub http_ingest_rate: u64,
    pub skip_http: bool,
    /// Only measure the resident memory of a `rapport serve` child on the synthetic log.
    pub serve_memory: bool,
    pub times: LogTimes,
}

fn fresh_log(dir: &std::path::Path, encrypt: bool) -> anyhow::Result<(Arc<SqliteStore>, Log)> {
    let store = Arc::new(SqliteStore::open(dir, SqliteOptions::default())?);
    let keys = Arc::new(Keyring::load(MasterKey::generate(), vec![])?);
    let dynstore = store.clone() as Arc<dyn EventStore>;
    let log = if encrypt {
        Log::new(dynstore, keys)
    } else {
        Log::without_encryption_for_benchmarks(dynstore, keys)
    };
    Ok((store, log))
}

/// One import as `rapport import` does it (all or nothing, no progress bar).
fn run_import(
    store: &SqliteStore,
    log: &Log,
    input: &[Input],
) -> anyhow::Result<import::ImportReport> {
    tokio::task::block_in_place(|| {
        import::import(
            store,
            log,
            input,
            ImportOptions {
                skip_invalid: false,
                progress: false,
            },
        )
    })
}

pub async fn run(opts: BenchOptions) -> anyhow::Result<()> {
    if opts.serve_memory {
        return serve_memory(&opts).await;
    }
    let tmp = tempfile::tempdir()?;
    println!(
        "rapport bench: {} events, {} customers, seed {}, {}, data in {}",
        opts.events,
        opts.customers,
        opts.seed,
        opts.times.describe(),
        tmp.path().display()
    );
    let (r, text) = time("generate synthetic NDJSON", opts.events as u64, || {
        synthetic_ndjson(opts.events, opts.customers, opts.seed, opts.times)
    });
    println!(
        "{r}   ({:.0} bytes/event)",
        text.len() as f64 / opts.events as f64
    );
    let lines: Vec<&str> = text.lines().collect();
    let (r, _) = time("parse + validate (1 thread)", lines.len() as u64, || {
        lines
            .iter()
            .filter(|l| rapport_events::parse_one(l, &mut uuid::Uuid::nil, false).is_ok())
            .count()
    });
    println!("{r}");
    {
        let events: Vec<_> = lines
            .iter()
            .map(|l| rapport_events::parse_one(l, &mut uuid::Uuid::nil, false))
            .collect::<Result<_, _>>()?;
        for (what, encrypt) in [
            ("seal, encryption OFF (1 thread)", false),
            ("seal, encryption ON (1 thread)", true),
        ] {
            let (_store, log) = fresh_log(&tmp.path().join(format!("seal-{encrypt}")), encrypt)?;
            let (r, _) = time(what, events.len() as u64, || {
                events
                    .chunks(import::IMPORT_CHUNK_EVENTS)
                    .map(|c| log.seal_request(c, None).events.len())
                    .sum::<usize>()
            });
            println!("{r}");
        }
    }
    let input = [Input::text("synthetic", text)];
    // Alternating OFF, ON, OFF, ON … so that neither side profits from running first or
    // from a quiet moment of the machine; compared by median. Five rounds, not three: on
    // this shared two-core machine one import's time varies by ±20% from round to round,
    // and the median of three rounds of the same build ranged from 1% to 15%.
    const IMPORT_ROUNDS: usize = 5;
    let mut rates = [Vec::new(), Vec::new()];
    // CPU seconds per import: less disturbed than the wall clock by other tenants of the
    // machine (time stolen from this VM is not counted).
    let mut cpu = [Vec::new(), Vec::new()];
    let plan: Vec<(&str, bool)> = (0..IMPORT_ROUNDS)
        .flat_map(|_| {
            [
                ("import, encryption OFF (durable)", false),
                ("import, encryption ON (durable)", true),
            ]
        })
        .collect();
    let last_round = plan.len() - 1;
    for (round, (label, encrypt)) in plan.into_iter().enumerate() {
        let dir = tmp.path().join(format!("import-{round}"));
        let (store, log) = fresh_log(&dir, encrypt)?;
        let cpu_before = cpu_seconds();
        let report = run_import(&store, &log, &input)?;
        let cpu_used = cpu_seconds() - cpu_before;
        anyhow::ensure!(
            report.events_written == opts.events as u64,
            "import wrote {} of {}",
            report.events_written,
            opts.events
        );
        let r = Rate {
            what: label,
            events: report.events_written,
            seconds: report.seconds,
        };
        println!("{r}   ({cpu_used:.2} CPU s)");
        rates[encrypt as usize].push(r.events as f64 / r.seconds);
        cpu[encrypt as usize].push(cpu_used);
        if encrypt && round == last_round {
            let report = run_import(&store, &log, &input)?;
            println!(
                "{}",
                Rate {
                    what: "re-import of the same file (all duplicates)",
                    events: report.duplicates,
                    seconds: report.seconds
                }
            );
            let rss_before = rss_kib();
            let started = Instant::now();
            let model = crate::read_model::ReadModel::spawn(
                log.clone(),
                crate::read_model::ReadModelOptions::service(None),
            );
            caught_up(&model, store.last_position()).await?;
            let r = Rate {
                what: "read model catch-up from the store (all projections)",
                events: opts.events as u64,
                seconds: started.elapsed().as_secs_f64(),
            };
            let customers = model.state.read().await.customers.len();
            println!(
                "{r}   ({customers} customers, +{} MiB resident)",
                rss_kib().saturating_sub(rss_before) / 1024
            );
            if opts.events as u64 >= crate::config::COMPACT_AFTER_CATCH_UP_EVENTS {
                let started = Instant::now();
                model
                    .watch_compactions()
                    .wait_for(|&n| n >= 1)
                    .await
                    .map_err(|_| anyhow::anyhow!("the read model stopped"))?;
                println!(
                    "then its compaction (queries are answered meanwhile): {:.2} s",
                    started.elapsed().as_secs_f64()
                );
            }
            alert_latency(&log, &model).await?;
            as_of_queries(&log, tmp.path(), opts.seed, opts.times).await?;
            for (what, access) in [
                (
                    "export to a sink, personal withheld",
                    PersonalAccess::Withheld,
                ),
                (
                    "export to a sink, personal decrypted",
                    PersonalAccess::Plain,
                ),
            ] {
                let (r, n) = time(what, opts.events as u64, || {
                    tokio::task::block_in_place(|| {
                        import::export(&store, &log, 0, u64::MAX, access, &mut std::io::sink())
                    })
                });
                n?;
                println!("{r}");
            }
            let (r, n) = time(
                "Parquet export to a sink, personal withheld",
                opts.events as u64,
                || {
                    tokio::task::block_in_place(|| -> anyhow::Result<u64> {
                        crate::export::events_parquet(
                            &store,
                            &log,
                            0,
                            u64::MAX,
                            PersonalAccess::Withheld,
                            std::io::sink(),
                        )
                    })
                },
            );
            n?;
            println!("{r}");
        }
        store.close();
        drop(store);
        drop(log);
        std::fs::remove_dir_all(&dir)?;
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (off, on) = (median(&mut rates[0].clone()), median(&mut rates[1].clone()));
    let pairs: Vec<String> = rates[0]
        .iter()
        .zip(&rates[1])
        .map(|(off, on)| format!("{:.1}%", (1.0 - on / off) * 100.0))
        .collect();
    println!(
        "encryption costs {:.1}% of import throughput, median of {IMPORT_ROUNDS} each (per round: {}; target: at most 15%)",
        (1.0 - on / off) * 100.0,
        pairs.join(", ")
    );
    let (cpu_off, cpu_on) = (median(&mut cpu[0].clone()), median(&mut cpu[1].clone()));
    println!(
        "encryption costs {:.1}% more CPU time per import, median of {IMPORT_ROUNDS} each ({cpu_off:.2} s off, {cpu_on:.2} s on)",
        (cpu_on / cpu_off - 1.0) * 100.0
    );
    if !opts.skip_http {
        http_bench(&tmp.path().join("http"), &opts).await?;
    }
    Ok(())
}

/// `opts.http_clients` concurrent clients, each POSTing one event at a time to a server
/// in this process for `opts.http_seconds`; prints the rate and latency percentiles.
/// Customers each HTTP client buys for (and the profile lookups ask about).
const LOOKUP_CUSTOMERS_PER_CLIENT: u64 = 1000;

async fn http_bench(dir: &std::path::Path, opts: &BenchOptions) -> anyhow::Result<()> {
    use http_body_util::{BodyExt, Full};
    use hyper_util::{client::legacy::Client, rt::TokioExecutor};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let metrics = Arc::new(crate::http::metrics::Metrics::new());
    let store = Arc::new(SqliteStore::open(
        dir,
        SqliteOptions {
            durable: true,
            metrics: metrics.clone(),
        },
    )?);
    let keyring = Arc::new(Keyring::load(MasterKey::generate(), vec![])?);
    let log = Log::new(store.clone() as Arc<dyn EventStore>, keyring);
    let keys = Arc::new(crate::auth::ApiKeys::open(dir)?);
    let (_, token) = keys.create(crate::auth::Role::Ingest, Some("bench"))?;
    let (_, reader_token) = keys.create(crate::auth::Role::Support, Some("bench-reader"))?;
    let read_model = crate::read_model::ReadModel::spawn(
        log.clone(),
        crate::read_model::ReadModelOptions::service(None),
    );
    // Every customer the lookups ask for exists before the clock starts, so each lookup
    // finds a profile (the ingest below adds orders to the same customers).
    let mut seeded = 0;
    for t in 0..opts.http_clients {
        let events: Vec<_> = (0..LOOKUP_CUSTOMERS_PER_CLIENT)
            .map(|j| {
                let text = format!(
                    r#"{{"type":"customer_registered","customer":"c-{t}-{j}","occurred_at":"2026-02-01T10:00:00Z","data":{{"name":"Customer {t}-{j}","region":"Shanghai"}}}}"#
                );
                rapport_events::parse_one(&text, &mut uuid::Uuid::now_v7, false)
            })
            .collect::<Result<_, _>>()?;
        seeded = log
            .append(&events, None)
            .await?
            .last()
            .map_or(seeded, |a| a.position);
    }
    caught_up(&read_model, seeded).await?;
    let state = crate::http::AppState {
        log,
        keys,
        metrics,
        ids: Arc::new(uuid::Uuid::now_v7),
        stopping: Default::default(),
        read_model,
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::http::serve(
        listener,
        crate::http::router(state),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let client: Client<_, Full<bytes::Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(opts.http_clients)
        .build_http();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(opts.http_seconds);
    let mut tasks = Vec::new();
    for t in 0..opts.http_clients {
        let client = client.clone();
        let token = token.clone();
        // Paced: each client sends one event every `clients / rate` seconds, the clients'
        // ticks spread evenly over that period. (Started together, all 64 clients sent at
        // once, and lookups that came during such a burst waited for it: at 2,000 events/s
        // every 32 ms, the lookup p99 was 2.2 ms against 0.2 ms in the handler.)
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
                let uri = format!(
                    "http://{addr}/v1/customers/c-{}-{}",
                    i % clients,
                    i % LOOKUP_CUSTOMERS_PER_CLIENT
                );
                lookups.push(tokio::spawn(async move {
                    let req = hyper::Request::get(uri)
                        .header("authorization", format!("Bearer {token}"))
                        .body(Full::new(bytes::Bytes::new()))
                        .expect("valid request");
                    let started = std::time::Instant::now();
                    let resp = client.request(req).await.ok()?;
                    let ok = resp.status() == hyper::StatusCode::OK;
                    let _ = resp.into_body().collect().await;
                    ok.then(|| started.elapsed().as_secs_f64())
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
    let (mut lat, missing) = reader.await?;
    lat.sort_by(|a, b| a.total_cmp(b));
    let p = |q: f64| {
        lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
            * 1000.0
    };
    println!(
        "profile lookups during that ingest: {} answered (+{missing} not found or failed), {:.0}/s, p50 {:.2} ms, p99 {:.2} ms",
        lat.len(),
        lat.len() as f64 / secs,
        p(0.5),
        p(0.99)
    );
    let _ = stop_tx.send(());
    let _ = server.await;
    store.close();
    Ok(())
}

/// Time from a durable append of the complaint that raises (or escalates) an alert to the
/// read model having applied it (the alert is then on `/v1/alerts/subscribe`), with the
/// read model caught up on the benchmark's store. Prints p50 and p99 of 50 trials.
/// Most a benchmark waits for a read model to catch up.
const CATCH_UP_WAIT_SECONDS: u64 = 1800;

async fn caught_up(model: &crate::read_model::ReadModel, position: u64) -> anyhow::Result<()> {
    let mut applied = model.watch_applied();
    tokio::time::timeout(
        std::time::Duration::from_secs(CATCH_UP_WAIT_SECONDS),
        applied.wait_for(|p| *p >= position),
    )
    .await
    .map_err(|_| {
        anyhow::anyhow!("the read model did not catch up within {CATCH_UP_WAIT_SECONDS} s")
    })?
    .map_err(|_| anyhow::anyhow!("the read model stopped"))?;
    Ok(())
}

/// As-of queries (issue 5's target: under 2 s on a 10 M-event log): a read model that keeps
/// history snapshots folds the log, then states at seeded random positions are rebuilt the
/// way `as_of_position` rebuilds them (nearest history snapshot, then the events after it).
async fn as_of_queries(
    log: &Log,
    dir: &std::path::Path,
    seed: u64,
    times: LogTimes,
) -> anyhow::Result<()> {
    const QUERIES: usize = 5;
    let snapshots = dir.join("snapshots");
    let last = log.last_position();
    let started = Instant::now();
    let model = crate::read_model::ReadModel::spawn(
        log.clone(),
        crate::read_model::ReadModelOptions::service(Some(snapshots.clone())),
    );
    caught_up(&model, last).await?;
    println!(
        "{}   (snapshots every {}, history every {})",
        Rate {
            what: "catch-up keeping snapshots",
            events: last,
            seconds: started.elapsed().as_secs_f64(),
        },
        crate::config::SNAPSHOT_EVERY_EVENTS,
        crate::config::HISTORY_EVERY_EVENTS,
    );
    let history: Vec<u64> = std::fs::read_dir(crate::fold::history::history_dir(&snapshots))?
        .filter_map(|e| e.ok()?.metadata().ok().map(|m| m.len()))
        .collect();
    println!(
        "history snapshots: {} files, {} MB in all, the largest {} MB",
        history.len(),
        history.iter().sum::<u64>() / 1_000_000,
        history.iter().max().copied().unwrap_or(0) / 1_000_000,
    );
    // Seconds to build the state at `position` (only events that occurred by `valid_at`),
    // and the events read for it, with a fresh `TimeTravel` each time so nothing is cached
    // from the previous query.
    let query = |position: u64, valid_at: Option<chrono::DateTime<chrono::Utc>>| {
        let tt = crate::fold::time_travel::TimeTravel::new(
            log.clone(),
            Some(snapshots.clone()),
            Default::default(),
            Default::default(),
        );
        async move {
            let started = Instant::now();
            let state = tt.state_at(position, valid_at).await?;
            anyhow::ensure!(
                state.position() == position,
                "as-of state at {} not {position}",
                state.position()
            );
            Ok((started.elapsed().as_secs_f64(), tt.events_read()))
        }
    };
    let median_max = |mut s: Vec<f64>| {
        s.sort_by(f64::total_cmp);
        (s[s.len() / 2], s[s.len() - 1])
    };
    let mut rng = StdRng::seed_from_u64(seed);
    let mut seconds = Vec::new();
    for _ in 0..QUERIES {
        seconds.push(query(rng.gen_range(1..=last), None).await?.0);
    }
    let (median, max) = median_max(seconds);
    println!(
        "as-of query (state at a random position, {QUERIES} queries): median {median:.2} s, max {max:.2} s (target: under 2 s on 10 M events)"
    );
    // Random positions rarely fall where it costs most: just before the last history
    // snapshot, the largest state is loaded and a whole interval folded after it.
    let mut kept: Vec<u64> = std::fs::read_dir(crate::fold::history::history_dir(&snapshots))?
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".snapshot")?
                .parse()
                .ok()
        })
        .collect();
    kept.sort_unstable();
    if let [.., before, last_kept] = kept[..] {
        let (s, read) = query(last_kept - 1, None).await?;
        println!(
            "as-of query, worst case (position {}: the snapshot at {before}, then {read} events): {s:.2} s (target: under 2 s)",
            last_kept - 1
        );
    }
    // Business time: `serve` builds it in a child process once the log has grown enough;
    // here in this process, as `rapport valid-time` does. A query then loads the build's
    // snapshot before `valid_at` and folds at most one interval of business order after it,
    // whether the log's business times are shuffled or not.
    let started = Instant::now();
    let every = crate::config::VALID_TIME_EVERY_EVENTS;
    let m = crate::fold::valid_time::build(
        log,
        &snapshots,
        last,
        every,
        Default::default(),
        Default::default(),
        |_| {},
    )
    .await?;
    let built: u64 =
        crate::fold::valid_time::builds(&snapshots, &Default::default(), &Default::default())
            .first()
            .and_then(|(dir, _)| std::fs::read_dir(dir).ok())
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.metadata().ok().map(|m| m.len()))
            .sum();
    println!(
        "{}   ({} snapshots every {every} events of business order, {} MB)",
        Rate {
            what: "business-time build (valid_at)",
            events: last,
            seconds: started.elapsed().as_secs_f64(),
        },
        m.snapshots(),
        built / 1_000_000
    );
    let pick = |rng: &mut StdRng| -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
        Ok(match times {
            LogTimes::Shuffled => {
                let day = rng.gen_range(1..=28);
                chrono::DateTime::parse_from_rfc3339(&format!("2026-03-{day:02}T12:00:00Z"))?
                    .to_utc()
            }
            LogTimes::InOrder { .. } => {
                let (start, span) = LogTimes::in_order_span();
                start + span * rng.gen_range(5..95) / 100
            }
        })
    };
    let valid_at_queries = |position: u64, rng: &mut StdRng| {
        let ts: anyhow::Result<Vec<_>> = (0..VALID_AT_QUERIES).map(|_| pick(rng)).collect();
        async move {
            let mut seconds = Vec::new();
            let mut read = 0;
            for t in ts? {
                let (secs, events) = query(position, Some(t)).await?;
                seconds.push(secs);
                read += events;
            }
            let (median, max) = median_max(seconds);
            anyhow::Ok((median, max, read / VALID_AT_QUERIES as u64))
        }
    };
    let (median, max, read) = valid_at_queries(last, &mut rng).await?;
    println!(
        "valid_at query (at the last position, {VALID_AT_QUERIES} queries; {}): median {median:.2} s, max {max:.2} s, {read} events read per query on average",
        times.describe(),
    );
    // A late import recorded after the build: events that occurred in the middle of the
    // log's business time. Until the next build, a query after that time starts from a
    // snapshot before it; the next build keeps the snapshots before it.
    let late_at = match times {
        LogTimes::Shuffled => {
            chrono::DateTime::parse_from_rfc3339("2026-03-15T00:00:00Z")?.to_utc()
        }
        LogTimes::InOrder { .. } => {
            let (start, span) = LogTimes::in_order_span();
            start + span / 2
        }
    };
    let late: Vec<rapport_events::Event> = (0..LATE_IMPORT_EVENTS)
        .map(|i| {
            let at = rapport_events::envelope::format_time(
                &(late_at + chrono::Duration::seconds(i as i64)),
            );
            rapport_events::parse_one(
                &format!(
                    r#"{{"type":"purchase","customer":"c-{i}","occurred_at":"{at}","data":{{"order_id":"late-{i}","amount":"9.90","currency":"CNY"}}}}"#
                ),
                &mut uuid::Uuid::now_v7,
                true,
            )
        })
        .collect::<Result<_, _>>()?;
    log.append(&late, None).await?;
    let with_late = log.last_position();
    let (median, max, read) = valid_at_queries(with_late, &mut rng).await?;
    println!(
        "valid_at query after {LATE_IMPORT_EVENTS} events that occurred on {late_at} were recorded, before the next build: median {median:.2} s, max {max:.2} s, {read} events read per query on average"
    );
    let started = Instant::now();
    let mut folded = 0;
    let m = crate::fold::valid_time::build(
        log,
        &snapshots,
        with_late,
        every,
        Default::default(),
        Default::default(),
        |n| folded += n,
    )
    .await?;
    println!(
        "the business-time build after them: {:.2} s, {folded} events folded ({} snapshots)",
        started.elapsed().as_secs_f64(),
        m.snapshots()
    );
    let (median, max, read) = valid_at_queries(with_late, &mut rng).await?;
    println!(
        "valid_at query after that build: median {median:.2} s, max {max:.2} s, {read} events read per query on average"
    );
    Ok(())
}

/// Events of the late import in the `valid_at` benchmark.
const LATE_IMPORT_EVENTS: usize = 1_000;

/// `valid_at` queries measured.
const VALID_AT_QUERIES: usize = 5;

async fn alert_latency(
    log: &crate::log::Log,
    model: &crate::read_model::ReadModel,
) -> anyhow::Result<()> {
    const TRIALS: usize = 50;
    let mut ms = Vec::with_capacity(TRIALS);
    let mut ids = uuid::Uuid::now_v7;
    let ev = |text: String, ids: &mut dyn FnMut() -> uuid::Uuid| {
        rapport_events::parse_one(&text, &mut || ids(), false).map_err(|e| anyhow::anyhow!("{e}"))
    };
    for t in 0..TRIALS {
        let g = format!("lat-g-{t}");
        let mut setup = Vec::new();
        for k in 0..3 {
            setup.push(ev(format!(r#"{{"type":"community_joined","customer":"lat-{t}-{k}","occurred_at":"2026-03-28T08:00:00Z","data":{{"community":"{g}"}}}}"#), &mut ids)?);
        }
        for k in 0..2 {
            setup.push(ev(format!(r#"{{"type":"complaint","customer":"lat-{t}-{k}","occurred_at":"2026-03-28T09:0{k}:00Z","data":{{"complaint_id":"lat-k-{t}-{k}","about":{{"batch":"LAT-{t}"}},"text":"mould in batch LAT-{t}"}}}}"#), &mut ids)?);
        }
        log.append(&setup, None).await?;
        let third = ev(
            format!(
                r#"{{"type":"complaint","customer":"lat-{t}-2","occurred_at":"2026-03-28T09:05:00Z","data":{{"complaint_id":"lat-k-{t}-2","about":{{"batch":"LAT-{t}"}},"text":"mould in batch LAT-{t} too"}}}}"#
            ),
            &mut ids,
        )?;
        let before = model.state.read().await.warnings.last_seq();
        let started = Instant::now();
        let p = log.append(&[third], None).await?[0].position;
        anyhow::ensure!(
            model.wait_for(p).await,
            "the read model did not apply the complaint"
        );
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        anyhow::ensure!(
            model.state.read().await.warnings.last_seq() > before,
            "the third connected complaint did not change an alert"
        );
        ms.push(elapsed);
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    println!(
        "alert latency: durable append of the escalating complaint → alert applied: p50 {:.1} ms, p99 {:.1} ms ({TRIALS} trials, includes the fsync)",
        ms[TRIALS / 2],
        ms[TRIALS * 99 / 100]
    );
    Ok(())
}
