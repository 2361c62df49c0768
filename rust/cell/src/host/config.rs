//! The cell configuration file (schema version 1): serde types, loading and validation.
//!
//! Nix renders this document (one per host or user); without Nix it is written by hand.
//! Parsing rejects unknown fields and every error names the field path and how to fix it.

pub use crate::host::limits::{LimitValue, LimitsConfig};
use std::collections::BTreeMap;
use std::fmt;

use crate::contract::FailurePolicy;
use camino::{Utf8Path, Utf8PathBuf};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The only schema version this build understands.
pub const SCHEMA_VERSION: u32 = 1;

/// The configuration compiled into `cell`, used when no file is found.
pub const BUILTIN_CONFIG: &str = include_str!("builtin-config.json");

/// A whole configuration file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(title = "cell configuration")]
pub struct ConfigFile {
    /// Version of this document's format. Must be 1.
    pub schema_version: u32,
    /// Cell used when `--cell` is not given. Defaults to the only cell, or the one named
    /// `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_cell: Option<String>,
    /// The declared cells, by name (lowercase letters, digits, `-` and `_`).
    pub cells: BTreeMap<String, CellConfig>,
}

/// One cell: what the sandboxed command sees and may do.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CellConfig {
    /// Command run by `cell shell` and by `cell run` without a command. Defaults to the
    /// first of `bash`, `sh` found in the cell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Bind the host's system directories read-only (`/usr`, `/bin`, `/sbin`, `/lib*`,
    /// `/etc/alternatives`, certificates, `/nix/store` and `/run/current-system` when they
    /// exist). Turn off when `binds` names everything the cell needs (for example a Nix
    /// closure).
    #[serde(default = "default_true")]
    pub host_system: bool,
    /// The directory the command works in, bound read-write at the same path.
    #[serde(default)]
    pub worktree: WorktreeConfig,
    /// The cell's persistent home directory.
    #[serde(default)]
    pub home: HomeConfig,
    /// The host account a root launcher runs this cell as (a login name, never `root`): a
    /// cell started by root must not be root on the host, so `cell` run by root drops to
    /// this account for good before it builds the cell, and the worktree, the cell home
    /// and the files the agent writes belong to it. Default: the account named `cell`
    /// (`useradd --system --home-dir /var/lib/cell --create-home cell`). Ignored when
    /// `cell` is not run by root: the cell then runs as the user who started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as: Option<String>,
    /// Extra host paths made visible inside the cell.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub binds: Vec<BindConfig>,
    /// Environment variables set inside the cell (the host environment is never passed
    /// wholesale).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Names of host environment variables passed through when set. `TERM`, `LANG`,
    /// `LC_*`, `COLORTERM` and `TZ` always are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pass_env: Vec<String>,
    /// `PATH` inside the cell. Defaults to the usual system directories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Vec<String>>,
    /// Network access.
    #[serde(default)]
    pub network: NetworkConfig,
    /// Ports between the host and the cell: published ports and host services.
    #[serde(default, skip_serializing_if = "PortsConfig::is_empty")]
    pub ports: PortsConfig,
    /// Defences beyond the namespaces.
    #[serde(default)]
    pub security: SecurityConfig,
    /// Resource limits (tasks, memory, CPU). Every cell has them; these override the
    /// defaults (4096 tasks, 75% of the host's memory, CPU weight 100).
    #[serde(default, skip_serializing_if = "LimitsConfig::is_default")]
    pub limits: LimitsConfig,
    /// The coding agent this cell runs (`cell claude`, `cell codex`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentConfig>,
    /// Environment variables whose values are read, at launch, from host files (agenix or
    /// sops paths). They are never written to the cell's home or to any file on disk.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "BTreeMap<String, String>")]
    pub env_from_file: BTreeMap<String, Utf8PathBuf>,
    /// Persistent agent state (skills, settings, memory) kept in a host directory and linked
    /// into the agent's configuration directory at every start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<StateConfig>,
    /// A host directory bound read-write at `/patches`: the one rendezvous for
    /// `git format-patch` output. `/`, your home and non-directories are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub patches: Option<Utf8PathBuf>,
    /// Entrypoint fragments: executables `cell-init` runs, in order, before the command.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fragments: Vec<FragmentConfig>,
    /// MCP servers, declared once and merged into the agent's own config file at each start
    /// (servers cell added before and no longer declared are removed; yours are kept).
    #[serde(default, skip_serializing_if = "McpConfig::is_empty")]
    pub mcp: McpConfig,
    /// The cell's browser, for `cell login`: it runs inside the cell on the profile
    /// `~/.config/chromium` of the cell's home. The Nix module sets it with
    /// `chromium.enable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser: Option<BrowserConfig>,
    /// What a repository's approved `.cell.json` may add to this cell (see `cell project`):
    /// nothing unless set here. A project can only add, never weaken the cell.
    #[serde(default, skip_serializing_if = "crate::host::project::ProjectConfig::is_default")]
    pub project: crate::host::project::ProjectConfig,
    /// Host-side processes started for the cell before it and stopped after it, by name
    /// (lowercase letters, digits and `-`): a database, a host-side MCP server that holds
    /// its own credentials. Each runs on the host as you, outside the cell, and is reached
    /// from inside only at `127.0.0.1:cellPort` (a unix socket the launcher forwards to its
    /// host port; no route).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sidecars: BTreeMap<String, SidecarConfig>,
}

/// A user-declared sidecar: a host command listening on a host loopback TCP port.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SidecarConfig {
    /// The host program (an absolute path, or a name searched on `PATH` outside every place
    /// the cell can write) and its arguments. It runs as you, with an environment of
    /// `PATH`, `HOME`, `LANG` and what `env` and `envFromFile` set.
    pub command: Vec<String>,
    /// Variables set for the sidecar (not for the cell).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Variables of the sidecar read at launch from host files (secrets only it holds;
    /// never inside the cell, never on its command line).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "BTreeMap<String, String>")]
    pub env_from_file: BTreeMap<String, Utf8PathBuf>,
    /// The TCP port it listens on at the host's 127.0.0.1. The cell starts once that port
    /// accepts (or once it reports ready on `--ready-fd`, see `readyFd`).
    pub port: u16,
    /// The port it is reached at inside the cell, on 127.0.0.1 (default: `port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell_port: Option<u16>,
    /// It follows the `--ready-fd` protocol: descriptor 3 is a pipe on which it writes
    /// `ready` once it accepts connections (put `--ready-fd 3` in `command` if it needs the
    /// flag). Default: the launcher waits until `port` accepts.
    #[serde(default)]
    pub ready_fd: bool,
    /// The sidecar it dials out through: `"egress"` hands it the egress proxy's unix socket
    /// in `$CELL_VIA_SOCKET` (an HTTP CONNECT / SOCKS5 proxy), so what it sends out passes
    /// the cell's allowlist too. It is not forced to: it runs on the host with your rights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// Read-only files it contributes to the cell, as `{ "/path/inside": "/host/path" }`
    /// (a CA certificate it signs with). The host file must lie outside every place the cell
    /// can write; it may be written by the sidecar before it reports ready. Inside, the path
    /// must not be one cell makes itself (`/proc`, `/dev`, `/run/cell`, generated `/etc`
    /// files, another mount) nor under the system's programs (`/usr`, `/nix`, `/bin` ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "BTreeMap<String, String>")]
    pub cell_files: BTreeMap<Utf8PathBuf, Utf8PathBuf>,
}

/// The browser of a cell.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BrowserConfig {
    /// A Chromium (not Google Chrome: branded Chrome ignores `--load-extension`) and its
    /// arguments, e.g. `["chromium", "--no-sandbox"]`. `cell login` adds the profile, the
    /// DevTools pipe, the display and the page.
    pub command: Vec<String>,
}

/// The MCP servers of a cell.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct McpConfig {
    /// Servers by name.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, McpServerSchema>")]
    pub servers: serde_json::Map<String, serde_json::Value>,
}

impl McpConfig {
    fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }
}

/// One MCP server: `command` (with `args`, `env`) for a local process, or `url` (with
/// `headers`, `transport`) for a remote one; never both.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct McpServerSchema {
    /// Program of a local (stdio) server.
    pub command: Option<String>,
    /// Its arguments.
    pub args: Option<Vec<String>>,
    /// Its environment.
    pub env: Option<BTreeMap<String, String>>,
    /// Endpoint of a remote server.
    pub url: Option<String>,
    /// Request headers of a remote server.
    pub headers: Option<BTreeMap<String, String>>,
    /// `http` (streamable HTTP, the default) or `sse`.
    pub transport: Option<String>,
}

/// The agent of a cell.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentConfig {
    /// `claude`, `codex`, `gemini`, `opencode`, or `custom` (then `command` is required).
    pub kind: crate::host::agents::AgentKind,
    /// The program and fixed arguments (default: the kind's program, found on `PATH`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Arguments that replace the kind's default "no prompts" arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Add the kind's hosts (its API and login) to the allowlist.
    #[serde(default = "default_true")]
    pub network_preset: bool,
}

/// Persistent agent state linked into the cell's home.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StateConfig {
    /// Host directory holding the state (bound read-write at `/run/cell/state`).
    #[schemars(with = "String")]
    pub dir: Utf8PathBuf,
    /// Paths relative to `$HOME` (e.g. `.claude/skills`, `.claude/settings.json`) that become
    /// links to the same relative path in `dir`.
    pub links: Vec<String>,
}

/// A script fragment.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FragmentConfig {
    /// Name (letters, digits, `-`, `_`).
    pub name: String,
    /// Position: fragments run by order, then name. Built-ins use 15 (patches), 20
    /// (state-links), 22 (chromium-singleton), 25 (agent-state) and 30 (mcp).
    #[serde(default = "default_order")]
    pub order: u32,
    /// Host executable (bound read-only into the cell) and its arguments.
    pub command: Vec<String>,
    /// `abort` (the default: the cell does not start) or `warn`.
    #[serde(default)]
    pub on_failure: FailurePolicy,
    /// Seconds before the fragment is killed and counted as failed.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u32,
}

fn default_order() -> u32 {
    50
}

fn default_timeout() -> u32 {
    60
}

/// Paths inside the worktree that are read-only in the cell by default: places where a
/// file written by an agent would run code or change tools on the host later. A trailing
/// `/` marks a directory (what is made when the path does not exist yet).
/// The repository's git directory is not on the list: the cell never sees it writable (it
/// gets a private one, see `gitview`). Nor is `.gitmodules`: git checks it out and removes
/// it like any file, and git takes no command from it (`update = !cmd` counts only in
/// `.git/config`, `ext::` URLs are off by default). (`.opencode/` is not on the list: opencode itself
/// writes `.opencode/.gitignore` at start.)
pub const DEFAULT_PROTECTED: [&str; 53] = [
    ".mcp.json",
    ".envrc",
    ".vscode/",
    ".idea/",
    ".zed/",
    ".devcontainer/",
    ".devcontainer.json",
    ".claude/",
    ".codex/",
    ".gemini/",
    ".cursor/",
    "opencode.json",
    // pre-commit's config, and prek's (a drop-in that prefers `prek.toml`).
    ".pre-commit-config.yaml",
    ".pre-commit-config.yml",
    "prek.toml",
    // lefthook reads its config and a local one beside it, in any of five formats, with or
    // without a dot, or under `.config/`.
    "lefthook.yml",
    ".lefthook.yml",
    "lefthook.yaml",
    ".lefthook.yaml",
    "lefthook.toml",
    ".lefthook.toml",
    "lefthook.json",
    ".lefthook.json",
    "lefthook.jsonc",
    ".lefthook.jsonc",
    "lefthook-local.yml",
    ".lefthook-local.yml",
    "lefthook-local.yaml",
    ".lefthook-local.yaml",
    "lefthook-local.toml",
    ".lefthook-local.toml",
    "lefthook-local.json",
    ".lefthook-local.json",
    "lefthook-local.jsonc",
    ".lefthook-local.jsonc",
    ".config/lefthook.yml",
    ".config/lefthook.yaml",
    ".config/lefthook.toml",
    ".config/lefthook.json",
    ".config/lefthook.jsonc",
    ".config/lefthook-local.yml",
    ".config/lefthook-local.yaml",
    ".config/lefthook-local.toml",
    ".config/lefthook-local.json",
    ".config/lefthook-local.jsonc",
    // mise runs the tasks and hooks of its config files (once trusted, by path).
    "mise.toml",
    ".mise.toml",
    "mise.local.toml",
    ".mise.local.toml",
    ".config/mise.toml",
    ".config/mise/config.toml",
    ".mise/config.toml",
    "mise/config.toml",
];

/// Of the default list, the files tools read in any directory below the top as well: prek
/// runs every `.pre-commit-config.yaml` of a subdirectory from the top on each commit, mise
/// the config of the directory a shell enters (once trusted, by path). The exit sets aside
/// those the cell made or changed anywhere in the worktree.
pub const PROTECTED_ANYWHERE: [&str; 7] = [
    ".pre-commit-config.yaml",
    ".pre-commit-config.yml",
    "prek.toml",
    "mise.toml",
    ".mise.toml",
    "mise.local.toml",
    ".mise.local.toml",
];

/// Defences of a cell beyond the namespaces.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecurityConfig {
    /// Protect the built-in list of paths (`.git/hooks/`, `.git/config`, `.mcp.json`,
    /// `.envrc`, editor and agent project directories, ...).
    #[serde(default = "default_true")]
    pub default_protected_paths: bool,
    /// More paths, relative to the worktree, that are read-only inside the cell, including
    /// ones that do not exist yet (they cannot be created). A trailing `/` marks a directory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protected_paths: Vec<String>,
    /// Run without the seccomp filter. Only for debugging a program the filter breaks:
    /// it re-opens ptrace, `io_uring`, bpf, terminal injection and nested namespaces.
    #[serde(default)]
    pub unsafe_allow_all_syscalls: bool,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self { default_protected_paths: true, protected_paths: Vec::new(), unsafe_allow_all_syscalls: false }
    }
}

fn validate_limits(l: &LimitsConfig, at: &str, errs: &mut Vec<Invalid>) {
    if let Err(m) = crate::host::limits::parse_tasks(l.tasks.as_ref()) {
        errs.push(Invalid::new(format!("{at}.tasks"), m, "give a number of at least 1, or \"max\""));
    }
    if let Err(m) = crate::host::limits::parse_memory(l.memory.as_ref()) {
        errs.push(Invalid::new(
            format!("{at}.memory"),
            m,
            "give bytes (at least 8M) like \"512M\" or \"4G\", a share of RAM like \"50%\", or \"max\"",
        ));
    }
    if let Some(w) = l.cpu_weight {
        if !(1..=10_000).contains(&w) {
            errs.push(Invalid::new(
                format!("{at}.cpuWeight"),
                format!("{w} is out of range"),
                "give 1 to 10000 (100 is the default)",
            ));
        }
    }
    if let Err(m) = crate::host::limits::parse_quota(l.cpu_quota.as_deref()) {
        errs.push(Invalid::new(
            format!("{at}.cpuQuota"),
            m,
            "give a percentage of one CPU, e.g. \"200%\" for two CPUs",
        ));
    }
}

/// Where the worktree comes from.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorktreeConfig {
    /// Absolute host path of the worktree. Defaults to the current directory; `--workdir`
    /// overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub path: Option<Utf8PathBuf>,
    /// Allow `/` or the host home directory as the worktree (refused otherwise, because
    /// it exposes everything below it read-write).
    #[serde(default)]
    pub allow_broad: bool,
}

/// The persistent home directory of a cell.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HomeConfig {
    /// Absolute host directory holding the cell's home. Defaults to
    /// `$XDG_DATA_HOME/cell/<name>/home`. Created with mode 0700.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub path: Option<Utf8PathBuf>,
}

/// A host path made visible in the cell.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BindConfig {
    /// Absolute host path.
    #[schemars(with = "String")]
    pub src: Utf8PathBuf,
    /// Absolute path inside the cell. Defaults to `src`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub dst: Option<Utf8PathBuf>,
    /// `ro` (the default) or `rw`.
    #[serde(default)]
    pub mode: BindMode,
    /// Skip the bind silently when `src` does not exist (otherwise that is an error).
    #[serde(default)]
    pub optional: bool,
}

/// Whether a bind may be written.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BindMode {
    /// Read-only.
    #[default]
    Ro,
    /// Read-write.
    Rw,
}

/// Ports between the host and a cell.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PortsConfig {
    /// Ports of the cell reachable from the host, each `"HOSTPORT"` or
    /// `"HOSTPORT:CELLPORT"`: the launcher listens on the host's 127.0.0.1:HOSTPORT while the
    /// cell runs, and each connection reaches the cell's 127.0.0.1:CELLPORT through a socket
    /// in the launch's runtime directory (never a route; works with either network mode).
    /// `"ADDRESS:HOSTPORT:CELLPORT"` listens on another host address (`0.0.0.0`: every
    /// interface, so other machines reach the cell too), with a warning.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publish: Vec<String>,
    /// Host services: a service already listening on the host's 127.0.0.1:PORT is reachable
    /// inside at 127.0.0.1:PORT (forwarded over a unix socket, without a route and without
    /// the rest of the host's loopback), e.g. `[5432, 11434]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host: Vec<u16>,
}

impl PortsConfig {
    /// Whether nothing is declared.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.publish.is_empty() && self.host.is_empty()
    }
}

/// Network access of a cell.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetworkConfig {
    /// `none`: loopback only, no way out. `proxy`: the egress proxy (`cell-egress`) is the
    /// only way out, and it lets through only what `allow` names. Unset: `proxy` for agents
    /// and whenever `allow` or `hosts` is set, else `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<NetworkMode>,
    /// Destinations the proxy lets through: `host`, `*.domain` (strict subdomains), or an
    /// IP literal, each with an optional `:port` (default: 80 and 443). Empty denies
    /// everything.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// Static name pins for the proxy, like `/etc/hosts` (name → IP address), for reaching
    /// a named local service. Pinned addresses may be private: you declared them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hosts: BTreeMap<String, String>,
    /// Also offer SOCKS5 on 127.0.0.1:1080 inside the cell (for ssh and git over ssh).
    #[serde(default = "default_true")]
    pub socks: bool,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self { mode: None, allow: Vec::new(), hosts: BTreeMap::new(), socks: true }
    }
}

impl NetworkConfig {
    /// The mode in force: the declared one, else `proxy` for agents and allowlists.
    #[must_use]
    pub fn effective_mode(&self, agent: bool) -> NetworkMode {
        match self.mode {
            Some(m) => m,
            None if agent || !self.allow.is_empty() || !self.hosts.is_empty() => NetworkMode::Proxy,
            None => NetworkMode::None,
        }
    }
}

/// How a cell reaches the network.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// Loopback only; nothing leaves the cell.
    #[default]
    None,
    /// Only through the egress proxy, only to the allowlist.
    Proxy,
}

impl fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("none"),
            Self::Proxy => f.write_str("proxy"),
        }
    }
}

fn default_true() -> bool {
    true
}

/// A configuration problem, always naming where it is and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {source_name}: {error}")]
    Read {
        /// Which file.
        source_name: String,
        /// Why.
        error: std::io::Error,
    },
    /// The document is not valid JSON or does not match the schema.
    #[error("{source_name}: {}{message}", if field.is_empty() { String::new() } else { format!("{field}: ") })]
    Parse {
        /// Which file.
        source_name: String,
        /// Field path, e.g. `cells.default.binds[0].mode` (empty: the whole document).
        field: String,
        /// What serde said.
        message: String,
    },
    /// A value parsed but is not acceptable.
    #[error("{source_name}: {field}: {message}; {fix}")]
    Invalid {
        /// Which file.
        source_name: String,
        /// Field path.
        field: String,
        /// What is wrong.
        message: String,
        /// How to fix it.
        fix: String,
    },
    /// Several values parsed but are not acceptable: one line each.
    #[error("{source_name}: {} errors:{}", errors.len(), errors.iter().map(|e| format!("\n  {e}")).collect::<String>())]
    Errors {
        /// Which file.
        source_name: String,
        /// Each problem, naming its field.
        errors: Vec<Invalid>,
    },
}

/// Where a configuration was read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "path")]
pub enum ConfigSource {
    /// `--config FILE`.
    Flag(Utf8PathBuf),
    /// `$CELL_CONFIG`.
    Env(Utf8PathBuf),
    /// `$XDG_CONFIG_HOME/cell/config.json`.
    User(Utf8PathBuf),
    /// `/etc/cell/config.json`.
    System(Utf8PathBuf),
    /// Compiled into `cell`.
    Builtin,
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag(p) => write!(f, "{p} (--config)"),
            Self::Env(p) => write!(f, "{p} ($CELL_CONFIG)"),
            Self::User(p) | Self::System(p) => write!(f, "{p}"),
            Self::Builtin => f.write_str("built-in default"),
        }
    }
}

impl ConfigSource {
    fn name(&self) -> String {
        match self {
            Self::Flag(p) | Self::Env(p) | Self::User(p) | Self::System(p) => p.to_string(),
            Self::Builtin => "built-in config".to_owned(),
        }
    }
}

/// Finds the configuration file: `--config`, `$CELL_CONFIG`,
/// `$XDG_CONFIG_HOME/cell/config.json`, `/etc/cell/config.json`, then the built-in default.
/// A file named explicitly (flag or variable) must exist; the others are skipped when absent.
#[must_use]
pub fn locate(flag: Option<&Utf8Path>, cell_config: Option<&str>, config_home: &Utf8Path) -> ConfigSource {
    if let Some(p) = flag {
        return ConfigSource::Flag(p.to_owned());
    }
    if let Some(p) = cell_config.filter(|v| !v.is_empty()) {
        return ConfigSource::Env(Utf8PathBuf::from(p));
    }
    let user = config_home.join("cell/config.json");
    if user.exists() {
        return ConfigSource::User(user);
    }
    let system = Utf8PathBuf::from("/etc/cell/config.json");
    if system.exists() {
        return ConfigSource::System(system);
    }
    ConfigSource::Builtin
}

/// Reads and validates the configuration from `source`.
///
/// # Errors
/// When the file cannot be read, is not valid JSON, does not match the schema, or holds a
/// value that `validate` refuses.
pub fn load(source: &ConfigSource) -> Result<ConfigFile, ConfigError> {
    let text = match source {
        ConfigSource::Builtin => BUILTIN_CONFIG.to_owned(),
        ConfigSource::Flag(p) | ConfigSource::Env(p) | ConfigSource::User(p) | ConfigSource::System(p) => {
            std::fs::read_to_string(p).map_err(|error| ConfigError::Read { source_name: p.to_string(), error })?
        }
    };
    parse(&text, &source.name())
}

/// Parses and validates a configuration document.
///
/// # Errors
/// See [`load`].
pub fn parse(text: &str, source_name: &str) -> Result<ConfigFile, ConfigError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    let config: ConfigFile = serde_path_to_error::deserialize(de).map_err(|e| {
        let (field, message) = serde_problem(&e);
        ConfigError::Parse { source_name: source_name.to_owned(), field: field.unwrap_or_default(), message }
    })?;
    let mut errors = validate(&config);
    match errors.len() {
        0 => Ok(config),
        1 => {
            let v = errors.remove(0);
            Err(ConfigError::Invalid {
                source_name: source_name.to_owned(),
                field: v.field,
                message: v.message,
                fix: v.fix,
            })
        }
        _ => Err(ConfigError::Errors { source_name: source_name.to_owned(), errors }),
    }
}

/// What a serde error means for a person: the field it is in (`None` for the whole document
/// and for JSON that does not parse, where serde's path is only a guess) and the message, with
/// a hint where the fix is not obvious: the known name closest to a misspelt one, the line a
/// missing `schemaVersion` wants.
pub(crate) fn serde_problem(e: &serde_path_to_error::Error<serde_json::Error>) -> (Option<String>, String) {
    let inner = e.inner();
    if matches!(inner.classify(), serde_json::error::Category::Syntax | serde_json::error::Category::Eof) {
        return (None, format!("not valid JSON: {inner}"));
    }
    let path = e.path().to_string();
    let field = (path != ".").then_some(path);
    (field, explain_serde(&inner.to_string()))
}

/// Adds a hint to serde's terse messages where the fix is not obvious.
fn explain_serde(message: &str) -> String {
    if message.starts_with("unknown field") || message.starts_with("unknown variant") {
        // serde: "unknown field `netwrok`, expected one of `command`, `network`, ... at line 1 column 9".
        let mut names = message.split('`').skip(1).step_by(2);
        let guess = names.next().and_then(|bad| closest(bad, names));
        let what =
            if message.starts_with("unknown field") { "remove it or check its spelling" } else { "check its spelling" };
        match guess {
            // The list of every known name is noise once the meant one is found.
            Some(g) => {
                let short = match (message.find(", expected"), message.rfind(" at line ")) {
                    (Some(a), Some(b)) if a < b => format!("{}{}", &message[..a], &message[b..]),
                    _ => message.to_owned(),
                };
                format!("{short}; did you mean \"{g}\"?")
            }
            None => format!("{message}; {what} against `cell schema`"),
        }
    } else if message.starts_with("missing field `schemaVersion`") {
        format!("{message}; add the line `\"schemaVersion\": {SCHEMA_VERSION},` at the top of the document")
    } else if message.starts_with("missing field") {
        format!("{message}; add it (see `cell schema`)")
    } else {
        message.to_owned()
    }
}

/// The candidate closest to `bad` when it is a likely misspelling of it: at most one edit for
/// short names, two for longer ones (an edit: a letter added, removed, changed, or two
/// neighbours swapped), ignoring case.
fn closest<'a>(bad: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let bad_l = bad.to_ascii_lowercase();
    let limit = if bad.chars().count() <= 4 { 1 } else { 2 };
    candidates
        .map(|c| (edit_distance(&bad_l, &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal string alignment distance (Levenshtein plus swaps of adjacent characters).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Rows i-2, i-1 and i of the usual table.
    let mut before: Vec<usize> = Vec::new();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut row = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let mut v = (prev[j + 1] + 1).min(row[j] + 1).min(prev[j] + usize::from(ca != cb));
            if i > 0 && j > 0 && *ca == b[j - 1] && a[i - 1] == *cb {
                v = v.min(before[j - 1] + 1);
            }
            row[j + 1] = v;
        }
        before = std::mem::replace(&mut prev, row);
    }
    prev[b.len()]
}

/// A validation failure before it is tied to a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}; {fix}")]
pub struct Invalid {
    /// Field path.
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

impl Invalid {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into(), fix: fix.into() }
    }
}

/// Checks the values serde cannot: versions, names, absolute paths, variable names.
/// Returns every problem found, each naming its field (empty: valid); a document of
/// another schema version gets only that one.
#[must_use]
pub fn validate(config: &ConfigFile) -> Vec<Invalid> {
    if config.schema_version != SCHEMA_VERSION {
        return vec![Invalid::new(
            "schemaVersion",
            format!("version {} is not supported", config.schema_version),
            format!("this cell understands schemaVersion {SCHEMA_VERSION}; upgrade cell or regenerate the file"),
        )];
    }
    let mut errs = Vec::new();
    if let Some(name) = &config.default_cell {
        if !config.cells.contains_key(name) {
            errs.push(Invalid::new(
                "defaultCell",
                format!("no cell named {name:?}"),
                format!("declare it under `cells` or use one of: {}", cell_names(config)),
            ));
        }
    }
    for (name, cell) in &config.cells {
        let at = format!("cells.{name}");
        if let Err(m) = validate_cell_name(name) {
            errs.push(Invalid::new(
                &at,
                m,
                "use lowercase letters, digits, `-` and `_`, starting with a letter or digit, at most 48 characters",
            ));
        }
        validate_cell(cell, &at, &mut errs);
    }
    errs
}

/// The account a root launcher runs cells as when `runAs` is not set.
pub const DEFAULT_RUN_AS: &str = "cell";

/// Checks a `runAs` value: an account name (as `useradd` accepts them), never root.
fn validate_run_as(field: &str, account: &str) -> Result<(), Invalid> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-.".contains(c);
    let body = account.strip_suffix('$').unwrap_or(account);
    if account == "root" {
        return Err(Invalid::new(
            field,
            "a cell never runs as root: root inside the jail would own every root file on the host",
            format!(
                "name an unprivileged account (the default is `{DEFAULT_RUN_AS}`: useradd --system --home-dir /var/lib/cell --create-home {DEFAULT_RUN_AS})"
            ),
        ));
    }
    if body.is_empty()
        || account.len() > 32
        || !body.chars().all(ok_char)
        || !body.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
    {
        return Err(Invalid::new(
            field,
            format!("{account:?} is not an account name"),
            "give a login name such as \"cell\" (lowercase letters, digits, `_`, `-`, `.`, starting with a letter or `_`; not a uid)",
        ));
    }
    Ok(())
}

/// Names of the declared cells, for messages.
#[must_use]
pub fn cell_names(config: &ConfigFile) -> String {
    if config.cells.is_empty() {
        return "(none declared)".to_owned();
    }
    config.cells.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
}

/// Checks a cell name: it becomes a directory name and part of a hostname.
///
/// # Errors
/// A message saying what is wrong.
pub fn validate_cell_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    if name.is_empty() {
        return Err("a cell name cannot be empty".to_owned());
    }
    if name.len() > 48 {
        return Err(format!("cell name {name:?} is longer than 48 characters"));
    }
    if !name.chars().all(ok_char) || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(format!("cell name {name:?} has characters other than a-z, 0-9, `-`, `_`"));
    }
    Ok(())
}

/// Checks one cell, step by step; every problem names its field under `at`.
fn validate_cell(cell: &CellConfig, at: &str, errs: &mut Vec<Invalid>) {
    crate::host::project::validate(at, &cell.project, errs);
    validate_programs(cell, at, errs);
    validate_paths(cell, at, errs);
    validate_environment(cell, at, errs);
    validate_network(&cell.network, &format!("{at}.network"), errs);
    validate_limits(&cell.limits, &format!("{at}.limits"), errs);
    crate::host::sidecars::validate(cell, at, errs);
}

/// The command, the account, the browser, the agent, published ports, MCP servers and
/// fragments.
fn validate_programs(cell: &CellConfig, at: &str, errs: &mut Vec<Invalid>) {
    if let Some(cmd) = &cell.command {
        if cmd.is_empty() || cmd[0].is_empty() {
            errs.push(Invalid::new(
                format!("{at}.command"),
                "the command is empty",
                "give a program and its arguments, e.g. [\"bash\", \"-l\"], or remove the field",
            ));
        }
        errs.extend(no_nul(&format!("{at}.command"), cmd.iter().map(String::as_str)).err());
    }
    if let Some(account) = &cell.run_as {
        errs.extend(validate_run_as(&format!("{at}.runAs"), account).err());
    }
    if let Some(browser) = &cell.browser {
        if browser.command.first().is_none_or(String::is_empty) {
            errs.push(Invalid::new(
                format!("{at}.browser.command"),
                "the browser command is empty",
                "give a Chromium and its arguments, e.g. [\"chromium\", \"--no-sandbox\"], or remove `browser`",
            ));
        }
        errs.extend(no_nul(&format!("{at}.browser.command"), browser.command.iter().map(String::as_str)).err());
    }
    if let Some(agent) = &cell.agent {
        if agent.kind == crate::host::agents::AgentKind::Custom && agent.command.as_ref().is_none_or(Vec::is_empty) {
            errs.push(Invalid::new(
                format!("{at}.agent.command"),
                "a custom agent needs a command",
                "set agent.command, e.g. [\"aider\", \"--yes\"], or pick a built-in kind",
            ));
        }
    }
    match crate::host::publish::from_config(&cell.ports, at) {
        Ok(published) => errs.extend(crate::host::publish::check_unique(&published).err()),
        Err(e) => errs.push(e),
    }
    if let Err(e) = cell_mcp::Servers::from_json_map(cell.mcp.servers.clone()) {
        errs.push(Invalid::new(
            format!("{at}.mcp.servers"),
            e.to_string(),
            "give each server either `command` (with `args`, `env`) or `url` (with `headers`, `transport`)",
        ));
    }
    if !cell.mcp.servers.is_empty()
        && cell.agent.as_ref().is_some_and(|a| a.kind == crate::host::agents::AgentKind::Custom)
    {
        errs.push(Invalid::new(
            format!("{at}.mcp"),
            "MCP servers are merged into a built-in agent's config; a custom agent has none",
            "use a built-in agent kind, or configure the custom agent's MCP servers yourself",
        ));
    }
    for (i, f) in cell.fragments.iter().enumerate() {
        let field = format!("{at}.fragments[{i}]");
        if f.name.is_empty() || !f.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            errs.push(Invalid::new(
                format!("{field}.name"),
                format!("{:?} is not a fragment name", f.name),
                "use letters, digits, `-` and `_`",
            ));
        }
        match f.command.first() {
            Some(p) if p.starts_with('/') => {}
            _ => errs.push(Invalid::new(
                format!("{field}.command"),
                "the command must start with an absolute host path",
                "e.g. [\"/etc/cell/fragments/setup.sh\", \"--quiet\"]",
            )),
        }
        if f.timeout_seconds == 0 {
            errs.push(Invalid::new(
                format!("{field}.timeoutSeconds"),
                "must be at least 1",
                "give the fragment a timeout in seconds",
            ));
        }
    }
}

/// Host and inside paths: worktree, secrets' files, state, patches, home, binds.
fn validate_paths(cell: &CellConfig, at: &str, errs: &mut Vec<Invalid>) {
    if let Some(p) = &cell.worktree.path {
        errs.extend(absolute(&format!("{at}.worktree.path"), p).err());
    }
    for (k, p) in &cell.env_from_file {
        errs.extend(env_name(&format!("{at}.envFromFile.{k}"), k).err());
        errs.extend(absolute(&format!("{at}.envFromFile.{k}"), p).err());
    }
    if let Some(state) = &cell.state {
        errs.extend(absolute(&format!("{at}.state.dir"), &state.dir).err());
        for (i, l) in state.links.iter().enumerate() {
            errs.extend(
                relative_inside(
                    &format!("{at}.state.links[{i}]"),
                    l,
                    "write it relative to $HOME without `.` or `..`, e.g. \".claude/skills/\"",
                )
                .err(),
            );
        }
    }
    if let Some(p) = &cell.patches {
        errs.extend(absolute(&format!("{at}.patches"), p).err());
    }
    if let Some(p) = &cell.home.path {
        errs.extend(absolute(&format!("{at}.home.path"), p).err());
    }
    for (i, b) in cell.binds.iter().enumerate() {
        let field = format!("{at}.binds[{i}]");
        errs.extend(absolute(&format!("{field}.src"), &b.src).err());
        if let Some(dst) = &b.dst {
            errs.extend(absolute(&format!("{field}.dst"), dst).err());
            errs.extend(reserved_destination(&format!("{field}.dst"), dst).err());
        } else {
            errs.extend(reserved_destination(&format!("{field}.src"), &b.src).err());
        }
    }
}

/// Variables, passed names, `PATH` and protected paths.
fn validate_environment(cell: &CellConfig, at: &str, errs: &mut Vec<Invalid>) {
    for (k, v) in &cell.env {
        errs.extend(env_name(&format!("{at}.env.{k}"), k).err());
        errs.extend(no_nul(&format!("{at}.env.{k}"), [v.as_str()]).err());
    }
    for (i, p) in cell.security.protected_paths.iter().enumerate() {
        errs.extend(
            relative_inside(
                &format!("{at}.security.protectedPaths[{i}]"),
                p,
                "write it relative to the worktree without `.`, `..` or empty components, e.g. \"scripts/deploy.sh\" or \"ci/\"",
            )
            .err(),
        );
    }
    for (i, k) in cell.pass_env.iter().enumerate() {
        errs.extend(env_name(&format!("{at}.passEnv[{i}]"), k).err());
    }
    if let Some(path) = &cell.path {
        for (i, p) in path.iter().enumerate() {
            if !p.starts_with('/') || p.contains(':') {
                errs.push(Invalid::new(
                    format!("{at}.path[{i}]"),
                    format!("{p:?} is not an absolute directory"),
                    "list absolute directories without `:`, e.g. \"/usr/bin\"",
                ));
            }
        }
    }
}

/// The egress policy a network section describes (the file `cell-egress` reads).
#[must_use]
pub fn policy_file(net: &NetworkConfig, extra_allow: &[String]) -> cell_egress::policy::PolicyFile {
    cell_egress::policy::PolicyFile {
        allow: net.allow.iter().chain(extra_allow).cloned().collect(),
        hosts: net.hosts.clone(),
        limits: cell_egress::policy::Limits::default(),
    }
}

/// Checks allowlist entries and name pins with the proxy's own parser, so a cell never
/// starts with a policy its proxy would refuse or read differently.
pub(crate) fn validate_network(net: &NetworkConfig, at: &str, errs: &mut Vec<Invalid>) {
    use cell_egress::policy::{EntryError, Policy};
    let before = errs.len();
    for (i, entry) in net.allow.iter().enumerate() {
        let one = cell_egress::policy::PolicyFile { allow: vec![entry.clone()], ..Default::default() };
        if let Err(e) = Policy::from_file(&one) {
            // A URL: the proxy's reason already names the entry meant; say it once, as the fix.
            let (message, fix) = cell_egress::policy::entry_of_url(entry).map_or_else(
                || (e.to_string(), "write `host`, `*.domain` (at least two labels) or an IP address, optionally with `:port`; `*` and `*.com` are refused".to_owned()),
                |h| (format!("allow entry {entry:?}: give a host, not a URL"), format!("write {h:?}")),
            );
            errs.push(Invalid::new(format!("{at}.allow[{i}]"), message, fix));
        }
    }
    // The pins (and the entries together); a bad entry is already reported above.
    let mut whole = policy_file(net, &[]);
    if errs.len() > before {
        whole.allow.clear();
    }
    match Policy::from_file(&whole) {
        Ok(_) => {}
        Err(e) => {
            let field = match &e {
                EntryError::Pin { name, .. } => format!("{at}.hosts.{name}"),
                EntryError::Allow { .. } => format!("{at}.allow"),
                EntryError::Limit { .. } => at.to_owned(),
            };
            errs.push(Invalid::new(
                field,
                e.to_string(),
                "pin a host name to one IP address, e.g. \"svc.test\": \"127.0.0.1\"",
            ));
        }
    }
    if net.mode == Some(NetworkMode::None) && (!net.allow.is_empty() || !net.hosts.is_empty()) {
        errs.push(Invalid::new(
            format!("{at}.mode"),
            "`allow` and `hosts` are set but the mode is `none`, which lets nothing out",
            "set `\"mode\": \"proxy\"` or remove `allow` and `hosts`",
        ));
    }
}

/// Requires a relative path without `.`, `..` or empty components.
fn relative_inside(field: &str, p: &str, fix: &str) -> Result<(), Invalid> {
    let ok = !p.is_empty()
        && !p.starts_with('/')
        && !p.contains('\0')
        && p.trim_end_matches('/').split('/').all(|c| !c.is_empty() && c != "." && c != "..");
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(field, format!("{p:?} is not a relative path"), fix))
    }
}

/// Requires an absolute, normalised path (no `.` or `..` components).
pub(crate) fn absolute(field: &str, p: &Utf8Path) -> Result<(), Invalid> {
    use camino::Utf8Component as C;
    if !p.is_absolute() {
        return Err(Invalid::new(
            field,
            format!("{p:?} is a relative path"),
            "use an absolute path (starting with `/`)",
        ));
    }
    if p.components().any(|c| matches!(c, C::CurDir | C::ParentDir)) || p.as_str().contains('\0') {
        return Err(Invalid::new(
            field,
            format!("{p:?} contains `.`, `..` or a NUL byte"),
            "write the path without `.` and `..` components",
        ));
    }
    Ok(())
}

/// Destinations the cell's own setup owns; a bind there would undo the jail.
pub(crate) fn reserved_destination(field: &str, dst: &Utf8Path) -> Result<(), Invalid> {
    const RESERVED: [&str; 4] = ["/", "/proc", "/dev", "/run/cell"];
    let s = dst.as_str().trim_end_matches('/');
    let s = if s.is_empty() { "/" } else { s };
    if RESERVED.iter().any(|r| s == *r || (*r != "/" && s.starts_with(&format!("{r}/")))) {
        return Err(Invalid::new(
            field,
            format!("{dst:?} is managed by cell itself"),
            "bind somewhere else; `/`, `/proc`, `/dev` and `/run/cell` cannot be replaced",
        ));
    }
    Ok(())
}

pub(crate) fn env_name(field: &str, k: &str) -> Result<(), Invalid> {
    let ok = !k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            format!("{k:?} is not a valid environment variable name"),
            "use letters, digits and `_`, not starting with a digit",
        ))
    }
}

pub(crate) fn no_nul<'a>(field: &str, values: impl IntoIterator<Item = &'a str>) -> Result<(), Invalid> {
    if values.into_iter().any(|v| v.contains('\0')) {
        return Err(Invalid::new(field, "contains a NUL byte", "remove the NUL byte"));
    }
    Ok(())
}

/// The JSON Schema of the configuration file, as committed in `docs/`.
#[must_use]
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(ConfigFile);
    let mut out = serde_json::to_string_pretty(&schema).unwrap_or_default();
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bad_field_is_reported_once() {
        let cfg = parse(r#"{"schemaVersion":1,"cells":{"a":{"envFromFile":{"X":"rel"},"patches":"rel"}}}"#, "t")
            .map(|_| ())
            .expect_err("invalid");
        let text = cfg.to_string();
        assert_eq!(text.matches("cells.a.envFromFile.X").count(), 1, "{text}");
        assert_eq!(text.matches("cells.a.patches").count(), 1, "{text}");
    }

    fn err(text: &str) -> String {
        parse(text, "test.json").map(|_| ()).unwrap_err().to_string()
    }

    #[test]
    fn builtin_config_is_valid() {
        let c = parse(BUILTIN_CONFIG, "builtin").unwrap();
        assert!(c.cells.contains_key("default"));
    }

    #[test]
    fn unknown_field_is_named_with_its_path() {
        let e = err(r#"{"schemaVersion":1,"cells":{"a":{"binds":[{"src":"/x","mdoe":"ro"}]}}}"#);
        assert!(e.contains("cells.a.binds[0]"), "{e}");
        assert!(e.contains("unknown field `mdoe`"), "{e}");
    }

    #[test]
    fn bad_enum_value_is_named() {
        let e = err(r#"{"schemaVersion":1,"cells":{"a":{"binds":[{"src":"/x","mode":"wr"}]}}}"#);
        assert!(e.contains("cells.a.binds[0].mode"), "{e}");
    }

    #[test]
    fn relative_paths_are_refused() {
        let e = err(r#"{"schemaVersion":1,"cells":{"a":{"binds":[{"src":"x"}]}}}"#);
        assert!(e.contains("cells.a.binds[0].src") && e.contains("relative"), "{e}");
        let e = err(r#"{"schemaVersion":1,"cells":{"a":{"worktree":{"path":"/a/../b"}}}}"#);
        assert!(e.contains("cells.a.worktree.path"), "{e}");
    }

    #[test]
    fn wrong_version_and_names() {
        assert!(err(r#"{"schemaVersion":2,"cells":{}}"#).contains("schemaVersion"));
        assert!(err(r#"{"schemaVersion":1,"cells":{"Bad Name":{}}}"#).contains("cells.Bad Name"));
        assert!(err(r#"{"schemaVersion":1,"defaultCell":"x","cells":{}}"#).contains("defaultCell"));
        assert!(err(r#"{"schemaVersion":1,"cells":{"a":{"env":{"1X":"v"}}}}"#).contains("cells.a.env.1X"));
        assert!(err(r#"{"schemaVersion":1,"cells":{"a":{"command":[]}}}"#).contains("cells.a.command"));
    }

    #[test]
    fn run_as_names_an_unprivileged_account() {
        assert!(parse(r#"{"schemaVersion":1,"cells":{"a":{"runAs":"agent-1"}}}"#, "t").is_ok());
        let e = err(r#"{"schemaVersion":1,"cells":{"a":{"runAs":"root"}}}"#);
        assert!(e.contains("cells.a.runAs") && e.contains("never runs as root"), "{e}");
        for bad in ["", "0", "1000", "Cell", "a b", "../x"] {
            let e = err(&format!(r#"{{"schemaVersion":1,"cells":{{"a":{{"runAs":"{bad}"}}}}}}"#));
            assert!(e.contains("cells.a.runAs"), "{bad}: {e}");
        }
        let e = err(r#"{"schemaVersion":1,"cells":{"a":{"runAs":7}}}"#);
        assert!(e.contains("cells.a.runAs"), "{e}");
    }

    #[test]
    fn reserved_destinations_are_refused() {
        let e = err(r#"{"schemaVersion":1,"cells":{"a":{"binds":[{"src":"/x","dst":"/proc/1"}]}}}"#);
        assert!(e.contains("cells.a.binds[0].dst"), "{e}");
        let e = err(r#"{"schemaVersion":1,"cells":{"a":{"binds":[{"src":"/"}]}}}"#);
        assert!(e.contains("cells.a.binds[0].src"), "{e}");
    }

    #[test]
    fn network_entries_are_checked_by_the_proxys_parser() {
        let e = err(r#"{"schemaVersion":1,"cells":{"a":{"network":{"mode":"proxy","allow":["ok.test","*"]}}}}"#);
        assert!(e.contains("cells.a.network.allow[1]"), "{e}");
        let e = err(
            r#"{"schemaVersion":1,"cells":{"a":{"network":{"mode":"proxy","allow":["https://pypi.org/simple"]}}}}"#,
        );
        assert!(e.contains("cells.a.network.allow[0]") && e.contains("give a host, not a URL"), "{e}");
        assert!(e.contains("write \"pypi.org\""), "{e}");
        let e = err(r#"{"schemaVersion":1,"cells":{"a":{"network":{"mode":"proxy","allow":["*.com"]}}}}"#);
        assert!(e.contains("cells.a.network.allow[0]"), "{e}");
        let e = err(
            r#"{"schemaVersion":1,"cells":{"a":{"network":{"mode":"proxy","allow":["evil.test\u0000.ok.test"]}}}}"#,
        );
        assert!(e.contains("cells.a.network.allow[0]"), "{e}");
        let e =
            err(r#"{"schemaVersion":1,"cells":{"a":{"network":{"mode":"proxy","hosts":{"svc.test":"not-an-ip"}}}}}"#);
        assert!(e.contains("cells.a.network.hosts.svc.test"), "{e}");
        let e = err(r#"{"schemaVersion":1,"cells":{"a":{"network":{"mode":"none","allow":["ok.test"]}}}}"#);
        assert!(e.contains("cells.a.network.mode"), "{e}");
        parse(r#"{"schemaVersion":1,"cells":{"a":{"network":{"mode":"proxy","allow":["*.ok.test:8443","127.0.0.1:9000"],"hosts":{"svc.test":"127.0.0.1"}}}}}"#, "t").unwrap();
    }

    #[test]
    fn limits_are_checked_with_their_field() {
        let e = err(r#"{"schemaVersion":1,"cells":{"a":{"limits":{"tasks":0}}}}"#);
        assert!(e.contains("cells.a.limits.tasks"), "{e}");
        let e = err(r#"{"schemaVersion":1,"cells":{"a":{"limits":{"memory":"4GB"}}}}"#);
        assert!(e.contains("cells.a.limits.memory"), "{e}");
        let e = err(r#"{"schemaVersion":1,"cells":{"a":{"limits":{"cpuWeight":0}}}}"#);
        assert!(e.contains("cells.a.limits.cpuWeight"), "{e}");
        let e = err(r#"{"schemaVersion":1,"cells":{"a":{"limits":{"cpuQuota":"2"}}}}"#);
        assert!(e.contains("cells.a.limits.cpuQuota"), "{e}");
        let e = err(r#"{"schemaVersion":1,"cells":{"a":{"limits":{"task":64}}}}"#);
        assert!(e.contains("cells.a.limits") && e.contains("unknown field `task`"), "{e}");
        let c = parse(
            r#"{"schemaVersion":1,"cells":{"a":{"limits":{"tasks":"max","memory":"50%","cpuWeight":20,"cpuQuota":"150%"}}}}"#,
            "t",
        )
        .unwrap();
        let l = crate::host::limits::Limits::from_config(&c.cells["a"].limits);
        assert_eq!(
            (l.tasks, l.memory, l.cpu_weight, l.cpu_quota_percent),
            (None, crate::host::limits::Memory::Percent(50), 20, Some(150))
        );
    }

    #[test]
    fn malformed_json_names_position() {
        let e = err(r#"{"schemaVersion":1,"cells":{"#);
        assert!(e.contains("test.json"), "{e}");
        assert!(e.contains("EOF") || e.contains("line"), "{e}");
        // Not a guessed field (serde's path says `cells.?`): the file and the position.
        let e = err("{\"schemaVersion\":1,\n \"cells\":{\"a\":{}, 3:{}}}");
        assert_eq!(e, "test.json: not valid JSON: key must be a string at line 2 column 19");
    }

    #[test]
    fn misspelt_names_get_the_one_meant() {
        let e = err(r#"{"schemaVersion":1,"cells":{"a":{"netwrok":{}}}}"#);
        assert!(
            e.contains("cells.a.netwrok: unknown field `netwrok`") && e.ends_with("did you mean \"network\"?"),
            "{e}"
        );
        assert!(!e.contains("expected one of"), "{e}");
        let e = err(r#"{"schemaVersion":1,"cells":{"a":{"binds":[{"src":"/x","mode":"wr"}]}}}"#);
        assert!(e.ends_with("did you mean \"rw\"?"), "{e}");
        let e = err(r#"{"schemaVersion":1,"cells":{"a":{"network":{"Allow":[]}}}}"#);
        assert!(e.ends_with("did you mean \"allow\"?"), "{e}");
        // Nothing close: the list of known names stays.
        let e = err(r#"{"schemaVersion":1,"cells":{"a":{"zzz":1}}}"#);
        assert!(e.contains("expected one of") && !e.contains("did you mean"), "{e}");
        assert_eq!(edit_distance("netwrok", "network"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(closest("env", ["envFromFile", "path"].into_iter()), None);
    }

    #[test]
    fn a_missing_schema_version_gets_the_line_to_add() {
        let e = err(r#"{"cells":{}}"#);
        assert!(e.starts_with("test.json: missing field `schemaVersion`"), "{e}");
        assert!(e.contains("add the line `\"schemaVersion\": 1,`"), "{e}");
    }

    #[test]
    fn a_url_allow_entry_says_the_fix_once() {
        let e = err(r#"{"schemaVersion":1,"cells":{"a":{"network":{"allow":["https://pypi.org/simple"]}}}}"#);
        assert_eq!(
            e,
            "test.json: cells.a.network.allow[0]: allow entry \"https://pypi.org/simple\": give a host, not a URL; write \"pypi.org\""
        );
    }
}
