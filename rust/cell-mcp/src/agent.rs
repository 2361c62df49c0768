//! The four agent kinds and how each spells an MCP server.
//!
//! Formats were checked against the agents' own `mcp add` output (claude-code 2.1, codex-cli
//! 0.169, gemini-cli 0.61, opencode 1.18):
//!
//! | agent | file | key | stdio | remote |
//! |---|---|---|---|---|
//! | claude | `~/.claude.json` (JSON) | `mcpServers` | `type: "stdio"`, `command`, `args`, `env` | `type: "http"\|"sse"`, `url`, `headers` |
//! | gemini | `~/.gemini/settings.json` (JSONC) | `mcpServers` | `command`, `args`, `env` | `url`, `type: "http"\|"sse"`, `headers` (`httpUrl` is deprecated upstream) |
//! | codex | `~/.codex/config.toml` | `[mcp_servers.<name>]` | `command`, `args`, `[…env]` | `url`, `[…http_headers]`; streamable HTTP only, SSE refused |
//! | opencode | `~/.config/opencode/opencode.json` (JSONC) | `mcp` | `type: "local"`, `command: [cmd, …args]`, `environment`, `enabled` | `type: "remote"`, `url`, `headers`, `enabled` (it picks HTTP or SSE itself) |

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde_json::{json, Map, Value};

use crate::{Error, McpServer, Transport};

/// A built-in agent kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AgentKind {
    Claude,
    Codex,
    Gemini,
    Opencode,
}

/// The file family an agent's config belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Strict JSON.
    Json,
    /// JSON with `//` and `/* */` comments and trailing commas.
    Jsonc,
    /// TOML, edited with `toml_edit`.
    Toml,
}

impl AgentKind {
    /// Every kind, for help texts and tests.
    pub const ALL: [AgentKind; 4] = [AgentKind::Claude, AgentKind::Codex, AgentKind::Gemini, AgentKind::Opencode];

    /// The lowercase name (`claude`, `codex`, `gemini`, `opencode`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            AgentKind::Claude => "claude",
            AgentKind::Codex => "codex",
            AgentKind::Gemini => "gemini",
            AgentKind::Opencode => "opencode",
        }
    }

    /// The config file format.
    #[must_use]
    pub fn format(self) -> Format {
        match self {
            AgentKind::Claude => Format::Json,
            AgentKind::Gemini | AgentKind::Opencode => Format::Jsonc,
            AgentKind::Codex => Format::Toml,
        }
    }

    /// The top-level key holding the servers.
    #[must_use]
    pub fn servers_key(self) -> &'static str {
        match self {
            AgentKind::Claude | AgentKind::Gemini => "mcpServers",
            AgentKind::Codex => "mcp_servers",
            AgentKind::Opencode => "mcp",
        }
    }

    /// The user-scope config file under `home` (codex honours `$CODEX_HOME`, opencode
    /// `$XDG_CONFIG_HOME`; the caller passes those in when set).
    #[must_use]
    pub fn default_config_path(self, home: &Path, codex_home: Option<&Path>, xdg_config: Option<&Path>) -> PathBuf {
        match self {
            AgentKind::Claude => home.join(".claude.json"),
            AgentKind::Gemini => home.join(".gemini/settings.json"),
            AgentKind::Codex => codex_home.map_or_else(|| home.join(".codex"), Path::to_path_buf).join("config.toml"),
            AgentKind::Opencode => {
                xdg_config.map_or_else(|| home.join(".config"), Path::to_path_buf).join("opencode/opencode.json")
            }
        }
    }

    /// The server as this agent's JSON spells it (codex: the JSON image of its TOML table).
    ///
    /// # Errors
    /// [`Error::Unsupported`] when the agent cannot express it (codex and SSE).
    pub fn render(self, name: &str, server: &McpServer) -> Result<Value, Error> {
        let strings = |m: &std::collections::BTreeMap<String, String>| -> Value {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect())
        };
        let mut out = Map::new();
        match (self, server) {
            (AgentKind::Claude, McpServer::Stdio { command, args, env }) => {
                out.insert("type".into(), "stdio".into());
                out.insert("command".into(), command.as_str().into());
                out.insert("args".into(), json!(args));
                out.insert("env".into(), strings(env));
            }
            (AgentKind::Gemini | AgentKind::Codex, McpServer::Stdio { command, args, env }) => {
                out.insert("command".into(), command.as_str().into());
                if !args.is_empty() {
                    out.insert("args".into(), json!(args));
                }
                if !env.is_empty() {
                    out.insert("env".into(), strings(env));
                }
            }
            (AgentKind::Opencode, McpServer::Stdio { command, args, env }) => {
                out.insert("type".into(), "local".into());
                let argv: Vec<&str> =
                    std::iter::once(command.as_str()).chain(args.iter().map(String::as_str)).collect();
                out.insert("command".into(), json!(argv));
                if !env.is_empty() {
                    out.insert("environment".into(), strings(env));
                }
                out.insert("enabled".into(), true.into());
            }
            (AgentKind::Claude, McpServer::Remote { url, headers, transport }) => {
                out.insert("type".into(), transport.as_str().into());
                out.insert("url".into(), url.as_str().into());
                if !headers.is_empty() {
                    out.insert("headers".into(), strings(headers));
                }
            }
            (AgentKind::Gemini, McpServer::Remote { url, headers, transport }) => {
                out.insert("url".into(), url.as_str().into());
                out.insert("type".into(), transport.as_str().into());
                if !headers.is_empty() {
                    out.insert("headers".into(), strings(headers));
                }
            }
            (AgentKind::Codex, McpServer::Remote { transport: Transport::Sse, .. }) => {
                return Err(Error::Unsupported {
                    agent: "codex",
                    name: name.to_owned(),
                    reason: "codex speaks only streamable HTTP to remote servers; declare \"transport\": \"http\" \
                             or bridge the SSE server through a stdio proxy"
                        .into(),
                });
            }
            (AgentKind::Codex, McpServer::Remote { url, headers, transport: Transport::Http }) => {
                out.insert("url".into(), url.as_str().into());
                if !headers.is_empty() {
                    out.insert("http_headers".into(), strings(headers));
                }
            }
            (AgentKind::Opencode, McpServer::Remote { url, headers, .. }) => {
                out.insert("type".into(), "remote".into());
                out.insert("url".into(), url.as_str().into());
                if !headers.is_empty() {
                    out.insert("headers".into(), strings(headers));
                }
                out.insert("enabled".into(), true.into());
            }
        }
        Ok(Value::Object(out))
    }
}

impl fmt::Display for AgentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AgentKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        AgentKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown agent kind {s:?} (expected claude, codex, gemini or opencode)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn stdio() -> McpServer {
        McpServer::Stdio {
            command: "npx".into(),
            args: vec!["-y".into(), "pkg".into()],
            env: BTreeMap::from([("K".into(), "v".into())]),
        }
    }

    fn remote(transport: Transport) -> McpServer {
        McpServer::Remote { url: "https://h/mcp".into(), headers: BTreeMap::new(), transport }
    }

    #[test]
    fn renders_each_format() {
        let r = |k: AgentKind, s: &McpServer| k.render("s", s).unwrap();
        assert_eq!(
            r(AgentKind::Claude, &stdio()),
            json!({"type": "stdio", "command": "npx", "args": ["-y", "pkg"], "env": {"K": "v"}})
        );
        assert_eq!(r(AgentKind::Gemini, &stdio()), json!({"command": "npx", "args": ["-y", "pkg"], "env": {"K": "v"}}));
        assert_eq!(
            r(AgentKind::Opencode, &stdio()),
            json!({"type": "local", "command": ["npx", "-y", "pkg"], "environment": {"K": "v"}, "enabled": true})
        );
        assert_eq!(r(AgentKind::Claude, &remote(Transport::Sse)), json!({"type": "sse", "url": "https://h/mcp"}));
        assert_eq!(r(AgentKind::Gemini, &remote(Transport::Http)), json!({"url": "https://h/mcp", "type": "http"}));
        assert_eq!(r(AgentKind::Codex, &remote(Transport::Http)), json!({"url": "https://h/mcp"}));
        assert_eq!(
            r(AgentKind::Opencode, &remote(Transport::Sse)),
            json!({"type": "remote", "url": "https://h/mcp", "enabled": true})
        );
        let e = AgentKind::Codex.render("s", &remote(Transport::Sse)).unwrap_err().to_string();
        assert!(e.contains("\"s\"") && e.contains("codex"), "{e}");
    }

    #[test]
    fn names_round_trip() {
        for k in AgentKind::ALL {
            assert_eq!(k.name().parse::<AgentKind>(), Ok(k));
        }
        assert!("cursor".parse::<AgentKind>().unwrap_err().contains("cursor"));
    }
}
