//! Entrypoint fragments as the launcher plans them and `cell-init` runs them.

use camino::Utf8PathBuf;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a failing fragment does to the launch.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FailurePolicy {
    /// The cell does not start.
    #[default]
    Abort,
    /// Logged; the cell starts anyway.
    Warn,
}

/// One planned fragment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Fragment {
    /// Position (then name).
    pub order: u32,
    /// Name.
    pub name: String,
    /// What failure does.
    pub on_failure: FailurePolicy,
    /// Seconds before it counts as failed.
    pub timeout_seconds: u32,
    /// What it does.
    pub action: Action,
}

/// What a fragment does.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Action {
    /// `/patches` is a writable directory (the bind is made by the launcher).
    Patches,
    /// Links `$HOME/<link>` → `/run/cell/state/<link>` for each link.
    StateLinks {
        /// Paths relative to `$HOME`.
        links: Vec<String>,
    },
    /// Removes stale `Singleton*` files from the cell's Chromium profile.
    ChromiumSingleton,
    /// Merges the declared MCP servers into the agent's own configuration file.
    Mcp {
        /// Agent kind.
        agent: String,
        /// The servers file (inside path).
        servers: Utf8PathBuf,
        /// The agent's configuration file, relative to `$HOME`.
        target: String,
    },
    /// Records the agent's first-run answers the cell's config implies (onboarding, folder
    /// trust, the bypass-permissions consent, approval of the handed API key) in its own
    /// files, never over a value already there (see `cell_mcp::seed`).
    AgentState {
        /// Agent kind.
        agent: String,
        /// The folder to trust (the worktree, inside path).
        trust: Option<String>,
        /// The agent runs with its permission prompts off.
        skip_permissions: bool,
        /// The variable holding the API key the cell hands it, when it does.
        api_key_env: Option<String>,
    },
    /// Runs an executable.
    Script {
        /// Program (inside path) and arguments.
        command: Vec<String>,
    },
}

/// Sorted by order, then name.
#[must_use]
pub fn ordered(mut list: Vec<Fragment>) -> Vec<Fragment> {
    list.sort_by(|a, b| (a.order, &a.name).cmp(&(b.order, &b.name)));
    list
}
