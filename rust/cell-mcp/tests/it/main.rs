//! Integration tests: golden files per format, the CLI as a process, concurrency, mount points,
//! and the real agents' own `mcp list`.

// Test helpers outside #[test] functions unwrap too; a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agents;
mod cli;
mod golden;
mod util;
