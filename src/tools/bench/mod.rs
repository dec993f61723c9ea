//! Benchmarks (`rapport bench …`, and `cargo bench` which runs the same code): seeded
//! synthetic events of about 300 bytes, and the rates of each stage of ingest and export.
//! Numbers are printed, never asserted: targets are checked by reading them.

mod alert;
mod firm;
mod http;
mod memory;
mod time_travel;
mod webhooks;

pub use firm::firm_ndjson;

use std::{fmt::Write as _, time::Instant};

use alert::alert_latency;
use http::http_bench;
pub use memory::serve_memory;
use time_travel::as_of_queries;

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
    // SAFETY: as above: `u` is a valid, writable `rusage`.
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
                    .map(|c| {
                        log.seal_request(c, crate::log::AppendRules::per_stream())
                            .events
                            .len()
                    })
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
            )
            .await;
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
                        crate::export::export(
                            &store,
                            &log,
                            0,
                            u64::MAX,
                            access,
                            &mut std::io::sink(),
                        )
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
        webhooks::webhook_bench(&tmp.path().join("webhooks")).await?;
    }
    Ok(())
}

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
