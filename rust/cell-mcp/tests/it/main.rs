//! Integration tests: golden files per format, the CLI as a process, concurrency, mount points,
//! and the real agents' own `mcp list`.

mod agents;
mod cli;
mod golden;
mod util;
