//! cell-mcp: MCP servers declared once, merged into each coding agent's own config file.
//!
//! The launcher (or `cell-init`) builds a [`Servers`] (it deserialises from the cell config
//! directly) and calls [`merge`] once per agent with a [`MergeOptions`]; the [`MergeReport`] says
//! what changed and carries the warnings to print. See `cell-mcp merge --help` for the rules.

mod agent;
pub mod diff;
mod error;
pub mod fsio;
pub mod jsonc;
mod merge;
pub mod record;
mod server;

pub use agent::{AgentKind, Format};
pub use error::Error;
pub use fsio::WriteMode;
pub use merge::{describe, merge, Corrupt, MergeOptions, MergeReport};
pub use record::default_state_dir;
pub mod seed;
pub use server::{validate_name, McpServer, RawServer, Servers, Transport};
