use clap::Parser;

// mimalloc: the import path allocates from two threads at once, where glibc malloc
// spent a fifth of the time in its arena locks (measured with `perf record`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mimalloc.h` (the same index in v2 and v3; the
/// crate is pinned by Cargo.lock).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// How long freed memory stays mapped before mimalloc returns it to the OS. The default
/// (10 ms) makes an import fault in and zero the same pages again and again; a second
/// keeps them for reuse.
const ALLOCATOR_PURGE_DELAY_MS: std::ffi::c_long = 1_000;
/// `mi_option_allow_thp` in mimalloc v3's `mimalloc.h`.
const MI_OPTION_ALLOW_THP: libmimalloc_sys::mi_option_t = 43;

fn main() -> anyhow::Result<()> {
    // SAFETY: sets a process-wide allocator option before any thread is started.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, ALLOCATOR_PURGE_DELAY_MS) };
    // No transparent huge pages. mimalloc asks for them on its arenas, and a 2 MiB page
    // stays resident while any of it is in use, so a server that folded a large log keeps
    // far more memory than its state needs (`docs/benchmarks.md`, memory). The
    // process-wide switch also covers the arena mimalloc mapped before `main`.
    // SAFETY: sets an allocator option and a flag of this process; no memory is touched.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_ALLOW_THP, 0);
        #[cfg(target_os = "linux")]
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
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
    rt.block_on(rapport::commands::run(cli))
}
