//! The `agent-state` fragment: the agent's first-run answers the cell's config implies,
//! recorded in its own files before it starts (through `cell-mcp`'s seeding, in-process in
//! `cell-init`). It runs inside the cell, as the cell's user, so whatever the cell left in
//! its home (a link, a corrupt file) can only ever lead to the cell's own files.

use camino::Utf8Path;

use crate::contract::Action;

fn answers(
    action: &Action,
    env: &[(String, String)],
) -> anyhow::Result<(cell_mcp::AgentKind, cell_mcp::seed::Answers)> {
    let Action::AgentState { agent, trust, skip_permissions, api_key_env } = action else {
        anyhow::bail!("not an agent-state fragment");
    };
    let kind: cell_mcp::AgentKind = agent.parse().map_err(anyhow::Error::msg)?;
    let api_key = api_key_env.as_ref().and_then(|name| {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).or_else(|| std::env::var(name).ok())
    });
    Ok((kind, cell_mcp::seed::Answers { trust: trust.clone(), skip_permissions: *skip_permissions, api_key }))
}

fn describe(reports: &[cell_mcp::seed::SeedReport], home: &Utf8Path) -> String {
    let parts: Vec<String> = reports
        .iter()
        .map(|r| {
            let file = r.file.strip_prefix(home).unwrap_or(&r.file).display();
            if r.set.is_empty() {
                format!("~/{file} holds its answers")
            } else {
                format!("~/{file}: set {}", r.set.join(", "))
            }
        })
        .collect();
    if parts.is_empty() {
        "nothing to answer".to_owned()
    } else {
        parts.join("; ")
    }
}

/// Seeds the answers; reports what was set (warnings also go to standard error).
///
/// # Errors
/// When a file cannot be read or written, or is a symbolic link.
pub fn seed(action: &Action, env: &[(String, String)], home: &Utf8Path) -> anyhow::Result<String> {
    let (kind, answers) = answers(action, env)?;
    let reports = cell_mcp::seed::seed(kind, home.as_std_path(), &answers, false)?;
    for w in reports.iter().flat_map(|r| &r.warnings) {
        eprintln!("cell-init: agent-state: {w}");
    }
    Ok(describe(&reports, home))
}

/// The promise: seeding now would write nothing.
///
/// # Errors
/// When an answer is missing.
pub fn check(action: &Action, home: &Utf8Path) -> anyhow::Result<String> {
    let (kind, answers) = answers(action, &[])?;
    let reports = cell_mcp::seed::seed(kind, home.as_std_path(), &answers, true)?;
    let missing: Vec<String> = reports.iter().flat_map(|r| r.set.iter().cloned()).collect();
    if !missing.is_empty() {
        anyhow::bail!("first-run answers missing: {}", missing.join(", "));
    }
    Ok(describe(&reports, home))
}
