//! `cell`: the jail launcher.

fn main() -> std::process::ExitCode {
    #[cfg(target_env = "musl")]
    // SAFETY: registers fork handlers that take and release the allocator's lock, before
    // any thread of the launcher's own exists.
    unsafe {
        dlmalloc::enable_alloc_after_fork();
    }
    cell::host::cli::main()
}

/// On musl (the installed build, scripts/release.sh), the launcher allocates with
/// `dlmalloc` (the allocator Rust's own wasm targets use, in plain Rust): musl's allocator
/// made each launch 0.5 ms slower than glibc's, for the many small allocations of planning.
/// It takes one lock, which the fork handlers above hold across a fork (a child of
/// `std::process::Command` with a pre-exec hook may allocate); posix_spawn-like clones run
/// no allocation between clone and exec. cell-init keeps musl's own allocator.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOC: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;
