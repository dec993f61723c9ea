use clap::Parser;

// mimalloc: the import path allocates from two threads at once, where glibc malloc
// spent a fifth of the time in its arena locks (measured with `perf record`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mimalloc.h` (the same index in v2 and v3; the
/// crate is pinned by Cargo.lock).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// How long freed memory stays mapped before mimalloc returns it to the OS. The default
/// (10 ms) made the import fault in and zero the same pages again and again
/// (`clear_page_erms` was 15% of its profile); a second keeps them for reuse.
const ALLOCATOR_PURGE_DELAY_MS: std::ffi::c_long = 1_000;

fn main() -> anyhow::Result<()> {
    // SAFETY: sets a process-wide allocator option before any thread is started.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, ALLOCATOR_PURGE_DELAY_MS) };
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
        .build()?;
    rt.block_on(rapport::cli::run(cli))
}
