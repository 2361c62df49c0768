//! Built-in agent kinds: how to start each coding agent with its prompts off (the cell is
//! the boundary), what it needs in its environment, and the hosts it must reach.

use serde::{Deserialize, Serialize};

/// An agent kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AgentKind {
    /// Anthropic's Claude Code.
    Claude,
    /// `OpenAI`'s Codex CLI.
    Codex,
    /// Google's Gemini CLI.
    Gemini,
    /// opencode.
    Opencode,
    /// Any other command (set `agent.command`).
    Custom,
}

/// What cell knows about an agent kind.
#[derive(Debug, Clone, Copy)]
pub struct Profile {
    /// The kind.
    pub kind: AgentKind,
    /// Program name looked up on the host's and the cell's `PATH`.
    pub program: &'static str,
    /// Arguments that switch the agent's own permission prompts off.
    pub no_prompt_args: &'static [&'static str],
    /// Management subcommands before which those arguments must not go (they would turn
    /// the subcommand into a prompt).
    pub plain_subcommands: &'static [&'static str],
    /// Environment: no self-updates (the install is read-only inside), no telemetry.
    pub env: &'static [(&'static str, &'static str)],
    /// Hosts the agent needs to work and to log in (from each agent's documentation).
    pub hosts: &'static [&'static str],
    /// Its configuration files and directories, relative to `$HOME` (kept in the cell home).
    pub config_paths: &'static [&'static str],
    /// The file its MCP servers live in, relative to `$HOME`.
    pub mcp_file: &'static str,
    /// The variable holding an API key whose use the agent asks to approve (or whose auth
    /// method it asks to choose) on its first run.
    pub api_key_env: Option<&'static str>,
}

/// The built-in profiles.
pub const PROFILES: [Profile; 4] = [
    Profile {
        kind: AgentKind::Claude,
        program: "claude",
        no_prompt_args: &["--dangerously-skip-permissions"],
        plain_subcommands: &[],
        env: &[("DISABLE_AUTOUPDATER", "1"), ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")],
        hosts: &["api.anthropic.com", "console.anthropic.com", "claude.ai", "claude.com", "platform.claude.com"],
        config_paths: &[".claude.json", ".claude/"],
        mcp_file: ".claude.json",
        api_key_env: Some("ANTHROPIC_API_KEY"),
    },
    Profile {
        kind: AgentKind::Codex,
        program: "codex",
        no_prompt_args: &["--dangerously-bypass-approvals-and-sandbox"],
        plain_subcommands: &[],
        env: &[],
        hosts: &["api.openai.com", "auth.openai.com", "chatgpt.com"],
        config_paths: &[".codex/"],
        mcp_file: ".codex/config.toml",
        // Codex records an API key only by writing it into ~/.codex/auth.json.
        api_key_env: None,
    },
    Profile {
        kind: AgentKind::Gemini,
        program: "gemini",
        no_prompt_args: &["--yolo"],
        plain_subcommands: &["mcp", "extensions", "skills", "hooks"],
        env: &[("GEMINI_CLI_TRUST_WORKSPACE", "true")],
        hosts: &[
            "generativelanguage.googleapis.com",
            "cloudcode-pa.googleapis.com",
            "oauth2.googleapis.com",
            "accounts.google.com",
            "www.googleapis.com",
        ],
        config_paths: &[".gemini/"],
        mcp_file: ".gemini/settings.json",
        api_key_env: Some("GEMINI_API_KEY"),
    },
    Profile {
        kind: AgentKind::Opencode,
        program: "opencode",
        no_prompt_args: &[],
        plain_subcommands: &[],
        env: &[("OPENCODE_DISABLE_AUTOUPDATE", "1"), ("OPENCODE_PERMISSION", "{\"*\":\"allow\"}")],
        hosts: &["opencode.ai", "models.dev", "api.anthropic.com", "api.openai.com"],
        config_paths: &[".config/opencode/", ".local/share/opencode/"],
        mcp_file: ".config/opencode/opencode.json",
        api_key_env: None,
    },
];

/// The loopback port on which an agent logging in (`cell codex login`) waits for the
/// browser's callback, to be published for the run: Codex's "Sign in with `ChatGPT`" listens
/// on 127.0.0.1:1455 and sends the browser back there. `None` for other runs and for the
/// login routes without a callback (`--device-auth`, `--with-api-key`, `status`).
#[must_use]
pub fn login_callback(kind: AgentKind, args: &[String]) -> Option<u16> {
    const NO_CALLBACK: [&str; 3] = ["--device-auth", "--with-api-key", "status"];
    let login = args.first().is_some_and(|a| a == "login");
    (kind == AgentKind::Codex && login && !args.iter().any(|a| NO_CALLBACK.contains(&a.as_str()))).then_some(1455)
}

/// Codex subcommands that do not start its interactive interface (the one that offers "Sign
/// in with `ChatGPT`" on a first run).
const CODEX_NOT_INTERACTIVE: [&str; 17] = [
    "exec",
    "e",
    "login",
    "logout",
    "mcp",
    "mcp-server",
    "app-server",
    "completion",
    "debug",
    "apply",
    "a",
    "cloud",
    "sandbox",
    "proto",
    "features",
    "help",
    "--version",
];

/// The callback port of an agent's interactive first run, and the file (relative to
/// `$HOME`) whose absence says it is not logged in yet: interactive Codex offers "Sign in
/// with `ChatGPT`" then, with the same callback on 127.0.0.1:1455 as `codex login`.
#[must_use]
pub fn first_run_callback(kind: AgentKind, args: &[String]) -> Option<(u16, &'static str)> {
    let interactive = args.first().is_none_or(|a| !CODEX_NOT_INTERACTIVE.contains(&a.as_str()) && a != "-V");
    (kind == AgentKind::Codex && interactive).then_some((1455, ".codex/auth.json"))
}

/// The profile of a built-in kind (`None` for `custom`).
#[must_use]
pub fn profile(kind: AgentKind) -> Option<&'static Profile> {
    PROFILES.iter().find(|p| p.kind == kind)
}

/// What a launch tells the `agent-state` fragment: where the agent starts, how, and which
/// variables the cell hands it.
#[derive(Clone, Copy)]
pub struct FirstRun<'a> {
    /// The worktree (the same path inside).
    pub worktree: &'a camino::Utf8Path,
    /// The command the cell runs (the agent with its arguments, or another command).
    pub command: &'a [String],
    /// Whether the cell hands the agent this variable (`env` or `envFromFile`).
    pub handed: &'a dyn Fn(&str) -> bool,
}

/// The `agent-state` fragment's action for `profile`: folder trust for the worktree; the
/// bypass-permissions consent only when the command carries the kind's no-prompt arguments;
/// the API key's approval only when the cell hands that key.
#[must_use]
pub fn first_run_answers(profile: &Profile, run: &FirstRun<'_>) -> crate::contract::Action {
    let skip_permissions = !profile.no_prompt_args.is_empty()
        && profile.no_prompt_args.iter().all(|a| run.command.iter().skip(1).any(|c| c == a));
    crate::contract::Action::AgentState {
        agent: profile.kind.to_string(),
        trust: Some(run.worktree.to_string()),
        skip_permissions,
        api_key_env: profile.api_key_env.filter(|v| (run.handed)(v)).map(str::to_owned),
    }
}

impl std::fmt::Display for AgentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Claude => "claude",
            Self::Codex => "codex",
            Self::Gemini => "gemini",
            Self::Opencode => "opencode",
            Self::Custom => "custom",
        })
    }
}

/// What to bind so a host program runs inside a cell, and no more: its npm package
/// directory (`…/node_modules/<name>` or `…/node_modules/@scope/<name>`), else the file
/// itself. Never a whole prefix, which could be `~/.local` or your home.
#[must_use]
pub fn install_root(real: &camino::Utf8Path) -> camino::Utf8PathBuf {
    let s = real.as_str();
    if let Some(i) = s.rfind("/node_modules/") {
        let after = &s[i + "/node_modules/".len()..];
        let mut parts = after.split('/');
        let first = parts.next().unwrap_or("");
        let take = if first.starts_with('@') { 2 } else { 1 };
        let pkg: Vec<&str> = after.split('/').take(take).collect();
        if pkg.len() == take && pkg.iter().all(|p| !p.is_empty()) {
            return format!("{}/node_modules/{}", &s[..i], pkg.join("/")).into();
        }
    }
    real.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_kind_has_a_profile_with_hosts_that_parse() {
        for kind in [AgentKind::Claude, AgentKind::Codex, AgentKind::Gemini, AgentKind::Opencode] {
            let p = profile(kind).unwrap();
            assert!(!p.hosts.is_empty());
            for h in p.hosts {
                cell_egress::policy::AllowEntry::parse(h).unwrap();
            }
        }
        assert!(profile(AgentKind::Custom).is_none());
    }

    #[test]
    fn codex_logging_in_publishes_its_callback_port() {
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(login_callback(AgentKind::Codex, &args(&["login"])), Some(1455));
        assert_eq!(login_callback(AgentKind::Codex, &args(&["login", "--device-auth"])), None);
        assert_eq!(login_callback(AgentKind::Codex, &args(&["login", "status"])), None);
        assert_eq!(login_callback(AgentKind::Codex, &args(&["exec", "login"])), None);
        assert_eq!(login_callback(AgentKind::Codex, &args(&[])), None);
        assert_eq!(login_callback(AgentKind::Claude, &args(&["login"])), None);
        assert_eq!(first_run_callback(AgentKind::Codex, &args(&[])), Some((1455, ".codex/auth.json")));
        assert_eq!(first_run_callback(AgentKind::Codex, &args(&["fix the tests"])).map(|c| c.0), Some(1455));
        assert_eq!(first_run_callback(AgentKind::Codex, &args(&["exec", "x"])), None);
        assert_eq!(first_run_callback(AgentKind::Codex, &args(&["--version"])), None);
        assert_eq!(first_run_callback(AgentKind::Gemini, &args(&[])), None);
    }

    #[test]
    fn first_run_answers_follow_the_launch() {
        let claude = profile(AgentKind::Claude).unwrap();
        let cmd = |args: &[&str]| args.iter().map(|a| (*a).to_owned()).collect::<Vec<String>>();
        let with_flag = cmd(&["claude", "--dangerously-skip-permissions"]);
        let key = |v: &str| v == "ANTHROPIC_API_KEY";
        let run = FirstRun { worktree: "/w".into(), command: &with_flag, handed: &key };
        assert_eq!(
            first_run_answers(claude, &run),
            crate::contract::Action::AgentState {
                agent: "claude".into(),
                trust: Some("/w".into()),
                skip_permissions: true,
                api_key_env: Some("ANTHROPIC_API_KEY".into()),
            }
        );
        let plain = cmd(&["claude"]);
        let nothing = |_: &str| false;
        let run = FirstRun { worktree: "/w".into(), command: &plain, handed: &nothing };
        let crate::contract::Action::AgentState { skip_permissions, api_key_env, .. } = first_run_answers(claude, &run)
        else {
            panic!()
        };
        assert!(!skip_permissions && api_key_env.is_none());
        // opencode has no no-prompt arguments: nothing to consent to.
        let oc = cmd(&["opencode"]);
        let run = FirstRun { worktree: "/w".into(), command: &oc, handed: &key };
        let crate::contract::Action::AgentState { skip_permissions, api_key_env, .. } =
            first_run_answers(profile(AgentKind::Opencode).unwrap(), &run)
        else {
            panic!()
        };
        assert!(!skip_permissions && api_key_env.is_none());
    }

    #[test]
    fn install_roots() {
        assert_eq!(
            install_root("/home/a/.nvm/versions/node/v22/lib/node_modules/@x/y/cli.js".into()),
            "/home/a/.nvm/versions/node/v22/lib/node_modules/@x/y"
        );
        assert_eq!(
            install_root("/home/a/.local/lib/node_modules/pkg/bin/x.js".into()),
            "/home/a/.local/lib/node_modules/pkg"
        );
        assert_eq!(
            install_root("/srv/a/node_modules/p/node_modules/q/c.js".into()),
            "/srv/a/node_modules/p/node_modules/q"
        );
        assert_eq!(install_root("/home/a/.local/bin/tool".into()), "/home/a/.local/bin/tool");
    }
}
