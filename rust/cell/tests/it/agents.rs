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
                   /run/cell/cell-init --verify /run/cell/fragments.json";
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
