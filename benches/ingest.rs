//! `cargo bench` runs the same benchmark as `rapport bench` (see `src/bench`).
//! Sizes can be set with RAPPORT_BENCH_EVENTS and RAPPORT_BENCH_HTTP_SECONDS.

fn main() -> anyhow::Result<()> {
    let events = std::env::var("RAPPORT_BENCH_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let http_seconds = std::env::var("RAPPORT_BENCH_HTTP_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(rapport::tools::bench::run(
        rapport::tools::bench::BenchOptions {
            events,
            customers: 100_000,
            seed: 42,
            http_seconds,
            http_clients: 64,
            http_ingest_rate: 0,
            skip_http: false,
            // A child `rapport serve` needs the rapport binary: `rapport bench --serve-memory`.
            serve_memory: false,
            times: rapport::tools::bench::LogTimes::Shuffled,
        },
    ))
}
