//! The `mcp` fragment: declared MCP servers merged into the cell agent's own config file
//! (through `cell-mcp`'s library, in-process in `cell-init`).

use camino::Utf8Path;

fn load(agent: &str, servers: &Utf8Path) -> anyhow::Result<(cell_mcp::AgentKind, cell_mcp::Servers)> {
    let kind: cell_mcp::AgentKind = agent.parse().map_err(anyhow::Error::msg)?;
    let text = std::fs::read_to_string(servers).map_err(|e| anyhow::anyhow!("cannot read {servers}: {e}"))?;
    Ok((kind, cell_mcp::Servers::from_servers_file(&text)?))
}

fn options(kind: cell_mcp::AgentKind, target: &Utf8Path, dry_run: bool) -> anyhow::Result<cell_mcp::MergeOptions> {
    let state_dir =
        cell_mcp::record::default_state_dir().ok_or_else(|| anyhow::anyhow!("no HOME for the MCP record"))?;
    Ok(cell_mcp::MergeOptions { agent: kind, config: target.as_std_path().to_owned(), state_dir, dry_run })
}

/// Merges; reports what changed (warnings also go to standard error).
///
/// # Errors
/// When the servers file is invalid or the target cannot be written.
pub fn merge(agent: &str, servers: &Utf8Path, target: &Utf8Path) -> anyhow::Result<String> {
    let (kind, servers) = load(agent, servers)?;
    let report = cell_mcp::merge(&options(kind, target, false)?, &servers)?;
    for w in &report.warnings {
        eprintln!("cell-init: mcp: {w}");
    }
    Ok(cell_mcp::describe(&report, target.as_std_path()))
}

/// The promise: merging now would change nothing (every declared server is in place, no
/// stale managed one is left).
///
/// # Errors
/// When the merge would change the file.
pub fn check(agent: &str, servers: &Utf8Path, target: &Utf8Path) -> anyhow::Result<String> {
    let (kind, servers) = load(agent, servers)?;
    let report = cell_mcp::merge(&options(kind, target, true)?, &servers)?;
    if report.changed {
        anyhow::bail!(
            "{target} is out of date: would add {:?}, update {:?}, remove {:?}",
            report.added,
            report.updated,
            report.removed
        );
    }
    Ok(format!("{target} holds the {} declared servers", servers.len()))
}
