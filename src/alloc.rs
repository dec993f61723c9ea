//! The allocator's settings, and returning freed memory to the OS after a burst of work
//! (the catch-up at start).
//!
//! mimalloc (the service's allocator, see `main.rs`) returns freed memory lazily and per
//! thread: a page freed from another thread becomes free only when the thread that owns
//! it collects, and freed pages go back to the OS `PURGE_DELAY_MS` later, when some
//! allocation or collection looks. An idle server does neither. So after the catch-up a
//! collection is *requested* here, and each runtime worker runs it the next time it goes
//! idle (`on_thread_park`, wired in `main.rs`); it is requested again once the delay has
//! passed. Harmless with another allocator (tests): it then collects mimalloc's own empty
//! heap.

use std::{
    cell::Cell,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

/// `mi_option_purge_delay` in mimalloc's `mimalloc.h` (the crate is pinned by Cargo.lock).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// How long freed memory stays mapped before mimalloc returns it to the OS. The default
/// (10 ms) made the import fault in and zero the same pages again and again
/// (`clear_page_erms` was 15% of its profile); a second keeps them for reuse.
pub const PURGE_DELAY_MS: u64 = 1_000;

/// Sets the allocator's options. Call before any thread is started.
pub fn configure() {
    // SAFETY: sets a process-wide allocator option; called before other threads exist.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS as _) };
}

/// Bumped by every request; each thread remembers the last one it served.
static REQUESTED: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static SERVED: Cell<u64> = const { Cell::new(0) };
}

/// Collects this thread's freed memory now and asks every runtime worker to collect its
/// own when it next goes idle; asks again once the purge delay has passed (from a task of
/// the current runtime, if there is one).
pub fn release_freed_memory() {
    request();
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async {
            tokio::time::sleep(Duration::from_millis(2 * PURGE_DELAY_MS)).await;
            request();
        });
    }
}

fn request() {
    let generation = REQUESTED.fetch_add(1, Ordering::Relaxed) + 1;
    SERVED.with(|s| s.set(generation));
    collect();
}

/// For `on_thread_park`: collects if a request came since this thread last did; an atomic
/// load otherwise.
pub fn collect_if_requested() {
    let requested = REQUESTED.load(Ordering::Relaxed);
    if SERVED.with(|s| s.replace(requested)) != requested {
        collect();
    }
}

fn collect() {
    // SAFETY: `mi_collect` has no preconditions; it may be called from any thread.
    unsafe { libmimalloc_sys::mi_collect(true) };
}
