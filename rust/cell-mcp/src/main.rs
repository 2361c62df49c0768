//! `cell-mcp`: merge declared MCP servers into an agent's config file.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use cell_mcp::{AgentKind, MergeOptions, Servers};
use clap::{Parser, Subcommand};

/// Merge MCP servers, declared once, into each coding agent's own config file.
#[derive(Debug, Parser)]
#[command(name = "cell-mcp", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Merge the servers of a servers file into one agent config file.
    #[command(after_long_help = MERGE_HELP)]
    Merge(MergeArgs),
    /// Time merges into a generated ~/.claude.json (a benchmark, not a test).
    #[command(hide = true)]
    Bench {
        /// Size of the generated file in MiB.
        #[arg(long, default_value_t = 5)]
        size_mb: usize,
        /// Number of timed merges (each one really changes the file).
        #[arg(long, default_value_t = 11)]
        runs: usize,
    },
}

const MERGE_HELP: &str = r#"Servers file:
  {
    "servers": {
      "github": { "command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"],
                  "env": { "GITHUB_TOKEN": "..." } },
      "docs":   { "url": "https://mcp.example.com/mcp", "headers": { "Authorization": "Bearer ..." },
                  "transport": "http" }
    }
  }
  A server is stdio (command, args, env) or remote (url, headers, transport "http" | "sse").
  Names use letters, digits, '_' and '-'.

Where each agent keeps them:
  claude    ~/.claude.json                     "mcpServers"
  gemini    ~/.gemini/settings.json            "mcpServers"   (comments allowed)
  codex     ~/.codex/config.toml               [mcp_servers.<name>]  (no SSE)
  opencode  ~/.config/opencode/opencode.json   "mcp"          (comments allowed)

Rules:
  Every key and server you added yourself stays. The names cell-mcp writes are recorded in
  $XDG_STATE_HOME/cell/mcp/<agent>-<hash>.json (or --state DIR); a recorded server that is no
  longer declared is removed, nothing else ever is. A declared name that clashes with one of yours
  wins, with a warning, and is managed from then on. Before a change the file is copied to
  <file>.backup-<UTC time> (newest 5 kept); a file that does not parse is saved as
  <file>.corrupt-<UTC time> and recreated. Writes hold a lock on <file>.lock and are atomic. Only
  the servers value is rewritten: the rest of the file keeps its bytes, comments included
  (comments inside a changed servers value are dropped; the backup keeps them). Running the same
  merge again changes nothing. A config file, its <file>.lock or its directory that is a symbolic
  link is refused (exit 1), never followed.

Exit status: 0 done, 1 file system error, 2 bad input (agent, servers file, unsupported server).

Example:
  cell-mcp merge --agent claude --servers servers.json --config ~/.claude.json --dry-run
  cell-mcp merge --agent codex --servers servers.json --config ~/.codex/config.toml"#;

#[derive(Debug, clap::Args)]
struct MergeArgs {
    /// Agent kind: claude, codex, gemini or opencode.
    #[arg(long, value_parser = parse_agent)]
    agent: AgentKind,
    /// JSON file: { "servers": { "<name>": <server>, ... } }.
    #[arg(long, value_name = "FILE")]
    servers: PathBuf,
    /// The agent's config file to merge into (created if missing).
    #[arg(long, value_name = "PATH")]
    config: PathBuf,
    /// Directory for the records of managed servers [default: `$XDG_STATE_HOME/cell/mcp`].
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
    /// Print a diff of the config file and write nothing.
    #[arg(long)]
    dry_run: bool,
}

fn parse_agent(s: &str) -> Result<AgentKind, String> {
    s.parse()
}

/// An error that is the caller's input, not the machine (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct BadInput(String);

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cell-mcp: error: {e:#}");
            let bad_input = e.downcast_ref::<BadInput>().is_some()
                || e.downcast_ref::<cell_mcp::Error>().is_some_and(cell_mcp::Error::is_bad_input);
            ExitCode::from(if bad_input { 2 } else { 1 })
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Merge(args) => merge(args),
        Command::Bench { size_mb, runs } => bench(size_mb, runs),
    }
}

fn merge(args: MergeArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.servers)
        .map_err(|e| BadInput(format!("cannot read servers file {}: {e}", args.servers.display())))?;
    let servers =
        Servers::from_servers_file(&text).map_err(|e| BadInput(format!("{}: {e}", args.servers.display())))?;
    let state_dir = match args.state {
        Some(dir) => dir,
        None => cell_mcp::default_state_dir()
            .ok_or_else(|| BadInput("neither XDG_STATE_HOME nor HOME is set; pass --state DIR".into()))?,
    };
    let opts = MergeOptions { agent: args.agent, config: args.config, state_dir, dry_run: args.dry_run };
    let report = cell_mcp::merge(&opts, &servers)
        .with_context(|| format!("merging MCP servers for {} into {}", opts.agent, opts.config.display()))?;
    for w in &report.warnings {
        eprintln!("cell-mcp: warning: {w}");
    }
    if let Some(diff) = &report.diff {
        print!("{diff}");
    } else if opts.dry_run {
        eprintln!("cell-mcp: {}: no change", opts.config.display());
    } else {
        eprintln!("cell-mcp: {}", cell_mcp::describe(&report, &opts.config));
    }
    Ok(())
}

/// Generate a realistic ~`size_mb` MiB `~/.claude.json` and time merges that change it.
fn bench(size_mb: usize, runs: usize) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("cell-mcp-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let config = dir.join(".claude.json");
    let doc = big_claude_json(size_mb << 20);
    std::fs::write(&config, &doc).with_context(|| format!("writing {}", config.display()))?;
    let sets = [bench_servers(&["github", "playwright"])?, bench_servers(&["github", "filesystem"])?];
    let opts =
        MergeOptions { agent: AgentKind::Claude, config: config.clone(), state_dir: dir.join("state"), dry_run: false };
    cell_mcp::merge(&opts, &sets[0])?;
    let mut changed = Vec::new();
    let mut unchanged = Vec::new();
    for i in 0..runs {
        let t = Instant::now();
        cell_mcp::merge(&opts, &sets[(i + 1) % 2])?;
        changed.push(t.elapsed());
        let t = Instant::now();
        cell_mcp::merge(&opts, &sets[(i + 1) % 2])?;
        unchanged.push(t.elapsed());
    }
    changed.sort();
    unchanged.sort();
    let size = std::fs::metadata(&config).map(|m| m.len()).unwrap_or(0);
    println!(
        "claude.json {:.1} MB on {}: merge with a change (backup + atomic write) median {:.1} ms (min {:.1}, max \
         {:.1}); merge with nothing to change median {:.1} ms; {runs} runs each",
        f64::from(u32::try_from(size / 1000).unwrap_or(u32::MAX)) / 1e3,
        dir.display(),
        ms(changed[runs / 2]),
        ms(changed[0]),
        ms(changed[runs - 1]),
        ms(unchanged[runs / 2]),
    );
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    Ok(())
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn bench_servers(names: &[&str]) -> anyhow::Result<Servers> {
    let map = names
        .iter()
        .map(|n| {
            let v =
                serde_json::json!({"command": "npx", "args": ["-y", format!("@example/{n}")], "env": {"TOKEN": "t"}});
            ((*n).to_owned(), v)
        })
        .collect();
    Ok(Servers::from_json_map(map)?)
}

/// A `~/.claude.json` shaped like a long-used one: settings, then many `projects` with history.
fn big_claude_json(target: usize) -> String {
    use serde_json::{json, Map, Value};
    let mut projects = Map::new();
    let mut size = 0;
    let mut i = 0;
    while size < target {
        let history: Vec<Value> = (0..20)
            .map(|h| {
                json!({
                    "display": format!("refactor the parser in module {i} step {h}, keep the tests green and \"quote\" things"),
                    "pastedContents": {}
                })
            })
            .collect();
        let p = json!({
            "allowedTools": [],
            "history": history,
            "mcpContextUris": [],
            "mcpServers": {},
            "enabledMcpjsonServers": [],
            "disabledMcpjsonServers": [],
            "hasTrustDialogAccepted": true,
            "projectOnboardingSeenCount": 3,
            "lastCost": 1.234_567,
            "lastSessionId": format!("{i:08x}-0000-4000-8000-000000000000"),
        });
        // Pretty-printed two levels deeper than on its own: four more spaces per line.
        let pretty = serde_json::to_string_pretty(&p).unwrap_or_default();
        size += pretty.len() + 4 * pretty.lines().count();
        projects.insert(format!("/home/user/src/project-{i}"), p);
        i += 1;
    }
    let doc = json!({
        "numStartups": 412,
        "installMethod": "npm",
        "autoUpdates": false,
        "tipsHistory": {"new-user-warmup": 1},
        "userID": "0123456789abcdef",
        "projects": projects,
        "mcpServers": {"mine": {"type": "stdio", "command": "my-server", "args": [], "env": {}}},
        "oauthAccount": {"emailAddress": "user@example.com"},
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}
