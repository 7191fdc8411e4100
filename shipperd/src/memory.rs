//! The only place shipperd uses `unsafe`: one call into the C library's allocator that no crate
//! wraps. The block is a single libc call with plain integer arguments.
#![allow(unsafe_code)]

/// Keeps every thread on one malloc arena. glibc gives each thread that meets contention an arena
/// of its own, and memory freed in one arena is not reused by the others: with the runtime's
/// workers and the queue thread passing batches between them, that showed as ~3 MiB more
/// resident memory under load (measured with scripts/bench/shipping.sh), for no speed gained
/// (per-thread caches in front of the arena take the contention). Call before any thread starts.
pub fn single_malloc_arena() {
    // SAFETY: mallopt takes two integers and only changes allocator tuning; it is called from
    // main before other threads exist, as glibc asks for M_ARENA_MAX.
    let ok = unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    if ok != 1 {
        tracing::debug!("mallopt(M_ARENA_MAX) not supported by this C library");
    }
}
