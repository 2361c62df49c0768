//! Agents: `cell claude|codex|gemini|opencode`, secrets from files, entrypoint fragments
//! and `cell verify`, on real cells (the real agents when they are installed).

use std::os::unix::fs::PermissionsExt as _;

use crate::both;
use crate::support::{ok, show, skip, stderr, Host};

fn on_host_path(program: &str) -> bool {
    ["/usr/local/bin", "/usr/bin", "/bin"].iter().any(|d| std::path::Path::new(d).join(program).exists())
}

both!(real_agents_start_in_a_cell, |h| {
    for (kind, program) in [("claude", "claude"), ("codex", "codex"), ("gemini", "gemini"), ("opencode", "opencode")] {
        if !on_host_path(program) {
            skip(
                &format!("real_agents_start_in_a_cell ({kind})"),
                &format!("{program} is not installed (npm install -g; .ci/run does)"),
            );
            continue;
        }
        let o = h.run([kind, "--version"]);
        let out = ok(&o);
        assert!(out.chars().any(|c| c.is_ascii_digit()), "{kind} --version printed no version:\n{}", show(&o));
    }
});

/// A stand-in agent outside the cell's view: prints what it was given.
const FAKE_AGENT: &str = r#"#!/bin/sh
echo "ARGS:$*"
echo "PROXY:$HTTPS_PROXY"
echo "AUTOUPDATE:$DISABLE_AUTOUPDATER"
echo "SECRET:$MY_TOKEN"
echo "STATE:$(cat "$HOME/.claude/skills/hello.md" 2>&1)"
echo "LINK:$(readlink "$HOME/.claude/skills")"
echo "made in the cell" > /patches/0001-test.patch && echo "PATCH:ok"
echo "FRAGMENTS:$(cat "$HOME/fragment-order" 2>&1 | tr '\n' ' ')"
"#;

fn agent_config(h: &Host, fragments: &str) -> std::path::PathBuf {
    let bin = h.path("agentbin");
    let state = h.path("state");
    let patches = h.path("patches");
    std::fs::create_dir_all(&bin).expect("mkdir");
    std::fs::create_dir_all(state.join(".claude/skills")).expect("mkdir");
    std::fs::create_dir_all(&patches).expect("mkdir");
    std::fs::write(state.join(".claude/skills/hello.md"), "kept between cells\n").expect("write");
    std::fs::write(bin.join("fakeclaude"), FAKE_AGENT).expect("write");
    std::fs::set_permissions(bin.join("fakeclaude"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(h.path("token"), "s3cr3t-token\n").expect("write");
    let cfg = serde_json::json!({
        "schemaVersion": 1,
        "cells": { "claude": {
            "agent": { "kind": "claude", "command": ["fakeclaude"] },
            "envFromFile": { "MY_TOKEN": h.path("token") },
            "state": { "dir": state, "links": [".claude/skills/"] },
            "patches": patches,
            "fragments": serde_json::from_str::<serde_json::Value>(fragments).expect("fragments")
        } }
    });
    h.write_config("agent.json", &cfg.to_string())
}

fn fragment_script(h: &Host, name: &str, body: &str) -> std::path::PathBuf {
    let p = h.path(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    p
}

both!(an_agent_gets_its_args_env_state_patches_secrets_and_fragments, |h| {
    let second = fragment_script(h, "second.sh", "echo second >> \"$HOME/fragment-order\"");
    let first =
        fragment_script(h, "first.sh", "rm -f \"$HOME/fragment-order\"; echo first >> \"$HOME/fragment-order\"");
    let cfg = agent_config(
        h,
        &serde_json::json!([
            { "name": "second", "order": 60, "command": [second] },
            { "name": "first", "order": 40, "command": [first] }
        ])
        .to_string(),
    );
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", h.path("agentbin").display());
    let o =
        h.cell().env("PATH", &path).arg("--config").arg(&cfg).args(["claude", "--extra", "arg"]).output().expect("run");
    let out = ok(&o);
    assert!(out.contains("ARGS:--dangerously-skip-permissions --extra arg"), "{out}");
    assert!(out.contains("PROXY:http://127.0.0.1:3128"), "agents get the proxy:\n{out}");
    assert!(out.contains("AUTOUPDATE:1"), "{out}");
    assert!(out.contains("SECRET:s3cr3t-token\n"), "{out}");
    assert!(out.contains("STATE:kept between cells"), "{out}");
    assert!(out.contains("LINK:/run/cell/state/.claude/skills"), "{out}");
    assert!(out.contains("PATCH:ok"), "{out}");
    assert!(out.contains("FRAGMENTS:first second"), "fragments run by order:\n{out}");
    assert_eq!(std::fs::read_to_string(h.path("patches/0001-test.patch")).expect("patch"), "made in the cell\n");
    // The secret is in no file of the cell's home, nor in the plan.
    let o = h
        .cell()
        .env("PATH", &path)
        .arg("--config")
        .arg(&cfg)
        .args(["plan", "--json", "--agent", "claude"])
        .output()
        .expect("plan");
    let plan = ok(&o);
    assert!(!plan.contains("s3cr3t-token") && plan.contains("MY_TOKEN"), "{plan}");
    let grep = std::process::Command::new("grep")
        .args(["-r", "s3cr3t-token"])
        .arg(h.home.join(".local/share/cell"))
        .output()
        .expect("grep");
    assert!(
        grep.stdout.is_empty(),
        "the secret was written into the cell home: {}",
        String::from_utf8_lossy(&grep.stdout)
    );
    // The allowlist carries the agent's preset.
    let v: serde_json::Value = serde_json::from_str(&plan).expect("json");
    let allow = v["network"]["policy"]["allow"].as_array().expect("allow");
    assert!(allow.iter().any(|a| a == "api.anthropic.com"), "{allow:?}");
});

both!(failing_fragments_abort_or_warn_as_declared, |h| {
    let fail = fragment_script(h, "fail.sh", "echo broken >&2; exit 3");
    let slow = fragment_script(h, "slow.sh", "sleep 30");
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", h.path("agentbin").display());
    let run = |fragments: serde_json::Value| {
        let cfg = agent_config(h, &fragments.to_string());
        h.cell().env("PATH", &path).arg("--config").arg(&cfg).args(["claude"]).output().expect("run")
    };
    let o = run(serde_json::json!([{ "name": "must", "command": [fail] }]));
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert!(stderr(&o).contains("50-must") && !crate::support::stdout(&o).contains("ARGS:"), "{}", show(&o));
    let o = run(serde_json::json!([{ "name": "may", "command": [fail], "onFailure": "warn" }]));
    assert!(ok(&o).contains("ARGS:"), "a warn fragment does not stop the agent:\n{}", show(&o));
    assert!(stderr(&o).contains("50-may: FAILED"), "{}", show(&o));
    let start = std::time::Instant::now();
    let o = run(serde_json::json!([{ "name": "slow", "command": [slow], "timeoutSeconds": 1 }]));
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert!(stderr(&o).contains("timed out"), "{}", show(&o));
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
});

both!(verify_catches_each_broken_promise, |h| {
    let cfg = agent_config(h, "[]");
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", h.path("agentbin").display());
    let o = h
        .cell()
        .env("PATH", &path)
        .arg("--config")
        .arg(&cfg)
        .args(["verify", "--cell", "claude"])
        .output()
        .expect("verify");
    let out = ok(&o);
    assert!(
        out.contains("[ok] 15-patches") && out.contains("[ok] 20-state-links") && out.contains("0 failed"),
        "{out}"
    );
    // Break each promise after the fragments ran, then verify inside the same cell.
    let breaker = "rm \"$HOME/.claude/skills\"; mkdir -p \"$HOME/.config/chromium\"; \
                   ln -s stale \"$HOME/.config/chromium/SingletonLock\"; \
                   /run/cell/cell-init --verify";
    let o = h
        .cell()
        .env("PATH", &path)
        .arg("--config")
        .arg(&cfg)
        .args(["run", "--cell", "claude", "--", "sh", "-c", breaker])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let out = crate::support::stdout(&o);
    assert!(out.contains("[FAIL] 20-state-links") && out.contains("[FAIL] 22-chromium-singleton"), "{out}");
    // The next start repairs both (fragments are idempotent).
    let o = h
        .cell()
        .env("PATH", &path)
        .arg("--config")
        .arg(&cfg)
        .args(["verify", "--cell", "claude"])
        .output()
        .expect("verify");
    assert!(ok(&o).contains("0 failed"), "{}", show(&o));
});

both!(bad_agent_configs_are_refused, |h| {
    let refused = |json: &str, needles: &[&str]| {
        let cfg = h.write_config("bad-agent.json", json);
        let o = h.cell().arg("--config").arg(&cfg).args(["run", "--", "true"]).output().expect("run");
        assert_eq!(o.status.code(), Some(2), "{}", show(&o));
        for n in needles {
            assert!(stderr(&o).contains(n), "{n}:\n{}", show(&o));
        }
    };
    refused(
        r#"{"schemaVersion":1,"cells":{"a":{"agent":{"kind":"cursor"}}}}"#,
        &["cells.a.agent.kind", "unknown variant"],
    );
    refused(r#"{"schemaVersion":1,"cells":{"a":{"agent":{"kind":"custom"}}}}"#, &["cells.a.agent.command"]);
    refused(
        r#"{"schemaVersion":1,"cells":{"a":{"envFromFile":{"K":"/nonexistent/secret"}}}}"#,
        &["cells.a.envFromFile.K", "/nonexistent/secret"],
    );
    refused(r#"{"schemaVersion":1,"cells":{"a":{"patches":"/"}}}"#, &["cells.a.patches"]);
    refused(
        r#"{"schemaVersion":1,"cells":{"a":{"fragments":[{"name":"x","command":["rel.sh"]}]}}}"#,
        &["cells.a.fragments[0].command"],
    );
});

/// The agent's own config file with a server the user added, in its format.
fn user_server(kind: &str) -> (&'static str, String) {
    match kind {
        "claude" => (
            ".claude.json",
            r#"{"mcpServers":{"user-own":{"type":"stdio","command":"true","args":[],"env":{}}},"theme":"dark"}"#
                .to_owned(),
        ),
        "codex" => (".codex/config.toml", "# the user's own\n[mcp_servers.user-own]\ncommand = \"true\"\n".to_owned()),
        "gemini" => (".gemini/settings.json", r#"{"mcpServers":{"user-own":{"command":"true"}}}"#.to_owned()),
        _ => (
            ".config/opencode/opencode.json",
            r#"{"mcp":{"user-own":{"type":"local","command":["true"],"enabled":true}}}"#.to_owned(),
        ),
    }
}

both!(agents_list_exactly_the_declared_and_the_users_mcp_servers, |h| {
    for kind in ["claude", "codex", "gemini", "opencode"] {
        if !on_host_path(kind) {
            skip(
                &format!("agents_list_exactly_the_declared_and_the_users_mcp_servers ({kind})"),
                &format!("{kind} is not installed"),
            );
            continue;
        }
        let cell_home = h.home.join(format!(".local/share/cell/{kind}/home"));
        let (file, text) = user_server(kind);
        std::fs::create_dir_all(cell_home.join(file).parent().expect("parent")).expect("mkdir");
        std::fs::write(cell_home.join(file), text).expect("write");
        h.chown_all();
        let config = |servers: serde_json::Value| {
            let cfg = serde_json::json!({
                "schemaVersion": 1,
                "cells": { kind: {
                    "agent": { "kind": kind },
                    "env": { "GEMINI_API_KEY": "not-a-real-key" },
                    "mcp": { "servers": servers }
                } }
            });
            h.write_config(&format!("mcp-{kind}.json"), &cfg.to_string())
        };
        let list = |cfg: &std::path::Path| {
            let o = h.cell().arg("--config").arg(cfg).args([kind, "mcp", "list"]).output().expect("mcp list");
            format!("{}{}", crate::support::stdout(&o), stderr(&o))
        };
        let first = config(serde_json::json!({
            "cell-fs": { "command": "true", "args": ["--root", "/tmp"] },
            "cell-remote": { "url": "http://127.0.0.1:9/mcp" }
        }));
        let out = list(&first);
        for name in ["cell-fs", "cell-remote", "user-own"] {
            assert!(out.contains(name), "{kind} mcp list lacks {name}:\n{out}");
        }
        // Drop one declared server: it goes, the user's stays.
        let second = config(serde_json::json!({ "cell-fs": { "command": "true" } }));
        let out = list(&second);
        assert!(out.contains("cell-fs") && out.contains("user-own"), "{kind}:\n{out}");
        assert!(!out.contains("cell-remote"), "{kind} still lists an undeclared managed server:\n{out}");
        if kind == "codex" {
            let toml = std::fs::read_to_string(cell_home.join(file)).expect("read");
            assert!(toml.contains("# the user's own"), "codex comments survive:\n{toml}");
        }
    }
});

both!(mcp_declarations_are_checked, |h| {
    let cfg = h.write_config(
        "bad-mcp.json",
        r#"{"schemaVersion":1,"cells":{"a":{"agent":{"kind":"claude"},"mcp":{"servers":{"x":{"command":"true","url":"http://127.0.0.1:9"}}}}}}"#,
    );
    let o = h.cell().arg("--config").arg(&cfg).args(["run", "--", "true"]).output().expect("run");
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains("cells.a.mcp.servers") && stderr(&o).contains('x'), "{}", show(&o));
    let cfg = h.write_config(
        "bad-env.json",
        r#"{"schemaVersion":1,"cells":{"a":{"agent":{"kind":"claude"},"mcp":{"servers":{"x":{"command":"true","env":{"K":1}}}}}}}"#,
    );
    let o = h.cell().arg("--config").arg(&cfg).args(["run", "--", "true"]).output().expect("run");
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains("env"), "{}", show(&o));
});

both!(a_corrupt_agent_config_is_kept_aside_and_the_agent_starts, |h| {
    if !on_host_path("claude") {
        skip("a_corrupt_agent_config_is_kept_aside_and_the_agent_starts", "claude is not installed");
        return;
    }
    let cell_home = h.home.join(".local/share/cell/claude/home");
    std::fs::create_dir_all(&cell_home).expect("mkdir");
    std::fs::write(cell_home.join(".claude.json"), "{ this is not json").expect("write");
    h.chown_all();
    let cfg = h.write_config(
        "corrupt.json",
        r#"{"schemaVersion":1,"cells":{"claude":{"agent":{"kind":"claude"},"mcp":{"servers":{"cell-fs":{"command":"true"}}}}}}"#,
    );
    let o = h.cell().arg("--config").arg(&cfg).args(["claude", "mcp", "list"]).output().expect("run");
    let out = format!("{}{}", crate::support::stdout(&o), stderr(&o));
    assert!(out.contains("cell-fs"), "{out}");
    let aside: Vec<_> = std::fs::read_dir(&cell_home)
        .expect("read")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".claude.json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "the corrupt file was moved aside");
    assert_eq!(std::fs::read_to_string(aside[0].path()).expect("read"), "{ this is not json");
});

both!(a_host_installed_agent_brings_its_package_and_nothing_else, |h| {
    // An npm prefix of ~/.local: binding the prefix would show ~/.local/share/cell (other
    // cells' homes) inside.
    let pkg = h.home.join(".local/lib/node_modules/fakeagent");
    std::fs::create_dir_all(pkg.join("bin")).expect("mkdir");
    std::fs::create_dir_all(h.home.join(".local/bin")).expect("mkdir");
    std::fs::create_dir_all(h.home.join(".local/share/cell/other/home")).expect("mkdir");
    std::fs::write(h.home.join(".local/share/cell/other/home/token"), "other-cell-secret").expect("write");
    std::fs::write(
        pkg.join("bin/cli.sh"),
        format!(
            "#!/bin/sh\necho RAN; cat {}/.local/share/cell/other/home/token 2>&1; ls {}/.local/lib/node_modules\n",
            h.home.display(),
            h.home.display()
        ),
    )
    .expect("write");
    std::fs::set_permissions(pkg.join("bin/cli.sh"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::os::unix::fs::symlink(pkg.join("bin/cli.sh"), h.home.join(".local/bin/fakeagent")).expect("symlink");
    // A planted symlink in the worktree on PATH must not be used.
    std::fs::create_dir_all(h.work.join("bin")).expect("mkdir");
    std::os::unix::fs::symlink(h.path("outside/secret.txt"), h.work.join("bin/fakeagent2")).expect("symlink");
    h.chown_all();
    let cfg = h.write_config(
        "hostagent.json",
        r#"{"schemaVersion":1,"cells":{"claude":{"agent":{"kind":"claude","command":["fakeagent"]}}}}"#,
    );
    let path = format!("{}:{}:/usr/bin:/bin", h.work.join("bin").display(), h.home.join(".local/bin").display());
    let o = h
        .cell()
        .env("PATH", &path)
        .arg("--config")
        .arg(&cfg)
        .args(["claude", "--network", "none"])
        .output()
        .expect("run");
    let out = ok(&o);
    assert!(out.contains("RAN"), "{out}");
    assert!(!out.contains("other-cell-secret"), "the agent's prefix exposed another cell's home:\n{out}");
    let cfg2 = h.write_config(
        "planted.json",
        r#"{"schemaVersion":1,"cells":{"claude":{"agent":{"kind":"claude","command":["fakeagent2"]}}}}"#,
    );
    let o = h
        .cell()
        .env("PATH", &path)
        .arg("--config")
        .arg(&cfg2)
        .args(["claude", "--network", "none"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2), "a program planted in the worktree was used:\n{}", show(&o));
});
