//! Integration tests: real databases in temporary directories, the real binary, concurrent
//! writers as threads, killed writers as child processes.

// Test helpers outside #[test] functions unwrap too; a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bad_input;
mod cookies;
mod journal;
mod snapshot;
mod symlinks;
mod util;
mod wal;
