//! `tests/golden/<agent>[-case]/input.*` + servers (+ `managed.json`, the names recorded as ours
//! before the merge) → `expected.*`. `UPDATE_GOLDEN=1` rewrites the expectations.

use cell_mcp::{AgentKind, MergeOptions, Servers};
use std::collections::BTreeSet;

use crate::util::{files_starting, golden_dir};

fn cases() -> Vec<(String, AgentKind)> {
    let mut v: Vec<(String, AgentKind)> = std::fs::read_dir(golden_dir())
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            e.file_type().unwrap().is_dir().then(|| e.file_name().to_string_lossy().into_owned())
        })
        .map(|n| {
            let agent = n.split('-').next().unwrap().parse().unwrap();
            (n, agent)
        })
        .collect();
    v.sort();
    v
}

fn ext(agent: AgentKind) -> &'static str {
    if agent == AgentKind::Codex {
        "toml"
    } else {
        "json"
    }
}

#[test]
fn golden_files() {
    let cases = cases();
    assert!(cases.len() >= 6);
    for (name, agent) in cases {
        let case = golden_dir().join(&name);
        let tmp = tempfile::tempdir().unwrap();
        let input = case.join(format!("input.{}", ext(agent)));
        let config = tmp.path().join(format!("config.{}", ext(agent)));
        std::fs::copy(&input, &config).unwrap();
        let state = tmp.path().join("state");
        if let Ok(m) = std::fs::read_to_string(case.join("managed.json")) {
            let names: BTreeSet<String> = serde_json::from_str(&m).unwrap();
            cell_mcp::record::store(&cell_mcp::record::record_path(&state, agent, &config), agent, &config, &names)
                .unwrap();
        }
        let servers_file = if agent == AgentKind::Codex { "codex-servers.json" } else { "servers.json" };
        let servers =
            Servers::from_servers_file(&std::fs::read_to_string(golden_dir().join(servers_file)).unwrap()).unwrap();
        let opts = MergeOptions { agent, config: config.clone(), state_dir: state, dry_run: false };
        let first = cell_mcp::merge(&opts, &servers).unwrap();
        assert!(first.changed, "{name}");
        let out = std::fs::read_to_string(&config).unwrap();
        let expected_path = case.join(format!("expected.{}", ext(agent)));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&expected_path, &out).unwrap();
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap();
        assert_eq!(out, expected, "golden {name}");
        assert_parses(agent, &out);
        // The original bytes are in the backup, exactly.
        if !std::fs::read(&input).unwrap().is_empty() {
            let backup = first.backup.expect("backup");
            assert_eq!(std::fs::read(&backup).unwrap(), std::fs::read(&input).unwrap(), "{name}");
        }
        // Twice is once: byte-identical, no new backup, nothing reported.
        let second = cell_mcp::merge(&opts, &servers).unwrap();
        assert!(!second.changed && second.backup.is_none() && second.warnings.is_empty(), "{name}: {second:?}");
        assert_eq!(std::fs::read_to_string(&config).unwrap(), expected, "{name}");
        assert!(files_starting(tmp.path(), "config").len() <= 3, "{name}"); // file, lock, one backup
    }
}

fn assert_parses(agent: AgentKind, text: &str) {
    if agent == AgentKind::Codex {
        text.parse::<toml_edit::DocumentMut>().unwrap();
    } else {
        let clean = cell_mcp::jsonc::blank_comments(text);
        serde_json::from_str::<serde_json::Value>(&clean).unwrap();
    }
}

/// The user's servers and keys survive, undeclared managed ones go, in every format.
#[test]
fn golden_semantics() {
    let read = |case: &str, f: &str| std::fs::read_to_string(golden_dir().join(case).join(f)).unwrap();
    let claude: serde_json::Value = serde_json::from_str(&read("claude", "expected.json")).unwrap();
    let s = &claude["mcpServers"];
    assert_eq!(s["mine"]["command"], "my-server");
    assert!(s.get("stale").is_none(), "managed and undeclared: evicted");
    assert_eq!(s["docs"]["url"], "https://mcp.example.com/mcp", "name clash: ours wins");
    assert_eq!(claude["projects"]["/home/u/src"]["history"][0]["display"], "hi");
    assert_eq!(claude["numStartups"], 12);

    let gemini = read("gemini", "expected.json");
    for kept in ["// Gemini accepts comments here", "/* inline */", "\"vimMode\": true"] {
        assert!(gemini.contains(kept), "{kept}");
    }
    let codex = read("codex", "expected.toml");
    for kept in [
        "# Codex settings, hand-edited.",
        "model = \"o3\" # the model",
        "# my own server",
        "model = \"o4-mini\" # keep me",
    ] {
        assert!(codex.contains(kept), "{kept}");
    }
    assert!(!codex.contains("[mcp_servers.stale]") && !codex.contains("outdated"));
    let opencode = read("opencode", "expected.json");
    assert!(opencode.contains("// my provider settings") && !opencode.contains("\"stale\""));
    assert!(opencode.contains("\"tui\": { \"scroll_speed\": 3, }, /* trailing commas are fine in JSONC */"));
}
