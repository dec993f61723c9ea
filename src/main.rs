use clap::Parser;

// mimalloc: the import path allocates from two threads at once, where glibc malloc
// spent a fifth of the time in its arena locks (measured with `perf record`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    rapport::alloc::configure();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RAPPORT_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = rapport::cli::Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(rapport::alloc::collect_if_requested)
        .build()?;
    rt.block_on(rapport::cli::run(cli))
}
