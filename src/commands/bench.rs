//! `rapport bench`: the benchmarks of `crate::tools::bench`.

use anyhow::Context;

use crate::cli::BenchArgs;

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let BenchArgs {
        events,
        customers,
        seed,
        http_seconds,
        http_clients,
        http_ingest_rate,
        skip_http,
        serve_memory,
        write_log,
        late_percent,
        mix,
    } = args;
    let times = late_percent.map_or(crate::tools::bench::LogTimes::Shuffled, |late_percent| {
        crate::tools::bench::LogTimes::InOrder { late_percent }
    });
    if let Some(path) = write_log {
        let text = match mix {
            crate::cli::MixArg::Synthetic => {
                crate::tools::bench::synthetic_ndjson(events, customers, seed, times)
            }
            crate::cli::MixArg::Firm => crate::tools::bench::firm_ndjson(events, customers, seed),
        };
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        let name = match mix {
            crate::cli::MixArg::Synthetic => "synthetic",
            crate::cli::MixArg::Firm => "firm",
        };
        println!(
            "wrote {events} events of the {name} mix ({customers} customers, seed {seed}) to {}",
            path.display()
        );
        return Ok(());
    }
    crate::tools::bench::run(crate::tools::bench::BenchOptions {
        serve_memory,
        events,
        customers,
        seed,
        http_seconds,
        http_clients,
        http_ingest_rate,
        skip_http,
        times,
    })
    .await
}
