//! Per-project settings (`.cell.json`): a repository suggests, the user permits the kind in
//! the cell's config and approves the exact bytes; an agent that rewrites the file gets
//! nothing from it.

use std::path::PathBuf;

use crate::both;
use crate::support::{ok, show, stderr, Host, Upstream};

fn config(h: &Host, project: &serde_json::Value) -> PathBuf {
    let cfg = serde_json::json!({
        "schemaVersion": 1,
        "cells": { "proj": {
            "env": { "CELL_MINE": "mine" },
            "network": { "mode": "proxy", "hosts": { "up.test": "127.0.0.1" } },
            "project": project,
        } }
    });
    h.write_config("project.json", &cfg.to_string())
}

fn put(h: &Host, text: &str) {
    std::fs::write(h.work.join(".cell.json"), text).expect("write .cell.json");
    h.chown_all();
}

/// In the cell: `BODY|CELL_PROJECT|CELL_MINE` (curl through the proxy to the upstream).
fn probe(h: &Host, cfg: &std::path::Path, port: u16) -> std::process::Output {
    let script = format!(
        "b=$(curl -sf -m 10 http://up.test:{port}/ 2>/dev/null | head -c 64); echo \"$b|${{CELL_PROJECT-unset}}|$CELL_MINE\""
    );
    h.run(["--config", cfg.to_str().expect("utf8"), "run", "--", "sh", "-c", &script])
}

both!(project_settings_apply_only_once_approved_and_not_after_the_cell_rewrites_them, |h| {
    let up = Upstream::start("from-upstream");
    let cfg = config(h, &serde_json::json!({ "network": true, "env": true }));
    let cfgs = cfg.to_str().expect("utf8");
    let file = format!(
        r#"{{"network":{{"allow":["up.test:{}"]}},"env":{{"CELL_PROJECT":"yes","CELL_MINE":"theirs","HTTPS_PROXY":"http://x"}}}}"#,
        up.port
    );
    put(h, &file);
    // Not approved: nothing of it applies, and the launcher says how to review it.
    let o = probe(h, &cfg, up.port);
    assert!(ok(&o).trim().starts_with("|unset|mine"), "an unapproved file applied:\n{}", show(&o));
    assert!(stderr(&o).contains("not approved"), "{}", show(&o));
    // Approval needs a terminal or --yes; `cell project` shows the bytes and what they add.
    let o = h.run(["--config", cfgs, "project", "allow"]);
    assert_eq!(o.status.code(), Some(2), "approved without confirmation:\n{}", show(&o));
    let o = h.run(["--config", cfgs, "project"]);
    let out = ok(&o);
    assert!(out.contains("not approved") && out.contains(&format!("allowlist: up.test:{}", up.port)), "{out}");
    assert!(out.contains("env.CELL_MINE ignored") && out.contains("env.HTTPS_PROXY ignored"), "{out}");
    ok(&h.run(["--config", cfgs, "project", "allow", "--yes"]));
    // Approved: the host is allowed and the new variable set; the user's own is kept and
    // the launch's proxy variables cannot be replaced.
    let o = probe(h, &cfg, up.port);
    assert_eq!(ok(&o).trim(), "from-upstream|yes|mine", "{}", show(&o));
    // The agent rewrites the file from inside the cell (it owns the worktree) to reach more.
    let rewrite = format!(
        "printf '%s' '{{\"network\":{{\"allow\":[\"up.test:{p}\",\"*.test:{p}\"]}},\"env\":{{\"CELL_PROJECT\":\"agent\"}}}}' > .cell.json",
        p = up.port
    );
    ok(&h.run(["--config", cfgs, "run", "--", "sh", "-c", &rewrite]));
    let o = probe(h, &cfg, up.port);
    assert!(ok(&o).trim().starts_with("|unset|mine"), "a file the cell rewrote still applied:\n{}", show(&o));
    assert!(stderr(&o).contains("changed since"), "{}", show(&o));
    // The approvals live where no cell can see them.
    let approvals = h.home.join(".config/cell/approved-projects.json");
    assert!(approvals.exists(), "no approvals file at {}", approvals.display());
    let o = h.run([
        "--config",
        cfgs,
        "run",
        "--",
        "sh",
        "-c",
        &format!("cat {} 2>&1 || echo unreadable", approvals.display()),
    ]);
    assert!(ok(&o).contains("unreadable"), "the cell read the approvals:\n{}", show(&o));
    // Forgetting works; putting the approved bytes back then applies nothing.
    put(h, &file);
    ok(&h.run(["--config", cfgs, "project", "forget"]));
    let o = probe(h, &cfg, up.port);
    assert!(ok(&o).trim().starts_with("|unset|"), "{}", show(&o));
});

both!(a_project_adds_only_what_the_cells_config_permits, |h| {
    let up = Upstream::start("not-for-you");
    // The user lets projects add variables but not hosts or binds.
    let cfg = config(h, &serde_json::json!({ "env": true }));
    let cfgs = cfg.to_str().expect("utf8");
    let outside = h.outside.to_str().expect("utf8");
    put(
        h,
        &format!(
            r#"{{"network":{{"allow":["up.test:{}"]}},"env":{{"CELL_PROJECT":"ok"}},"binds":[{{"src":"{outside}"}}]}}"#,
            up.port
        ),
    );
    ok(&h.run(["--config", cfgs, "project", "allow", "--yes"]));
    let o = probe(h, &cfg, up.port);
    assert_eq!(ok(&o).trim(), "|ok|mine", "{}", show(&o));
    assert!(stderr(&o).contains("network.allow ignored") && stderr(&o).contains("binds[0] ignored"), "{}", show(&o));
    let o =
        h.run(["--config", cfgs, "run", "--", "sh", "-c", &format!("cat {outside}/secret.txt 2>&1 || echo hidden")]);
    assert!(ok(&o).contains("hidden"), "a project bind the user did not permit was made:\n{}", show(&o));
    // A cell that lets projects add nothing ignores even an approved file.
    let none = h.write_config(
        "plain.json",
        r#"{"schemaVersion":1,"cells":{"proj":{"network":{"mode":"proxy","hosts":{"up.test":"127.0.0.1"}}}}}"#,
    );
    let o = probe(h, &none, up.port);
    assert!(ok(&o).trim().starts_with("|unset|"), "{}", show(&o));
    assert!(stderr(&o).contains("lets projects add nothing"), "{}", show(&o));
});

both!(a_project_file_that_is_a_link_or_malformed_is_refused_by_name, |h| {
    let cfg = config(h, &serde_json::json!({ "network": true }));
    let cfgs = cfg.to_str().expect("utf8");
    std::os::unix::fs::symlink(h.outside.join("secret.txt"), h.work.join(".cell.json")).expect("link");
    let o = h.run(["--config", cfgs, "run", "--", "true"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains("symbolic link"), "{}", show(&o));
    std::fs::remove_file(h.work.join(".cell.json")).expect("rm");
    put(h, r#"{"network":{"allow":["https://pypi.org/simple"]}}"#);
    // A file with a bad entry cannot be approved; the error names the entry and the fix.
    let o = h.run(["--config", cfgs, "project", "allow", "--yes"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains(".cell.json: network.allow[0]") && stderr(&o).contains("pypi.org"), "{}", show(&o));
    assert!(!h.home.join(".config/cell/approved-projects.json").exists(), "a bad file was approved");
    put(h, r#"{"netwrk":{}}"#);
    let o = h.run(["--config", cfgs, "project"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains("netwrk"), "{}", show(&o));
});

both!(a_permitted_project_bind_is_read_only_and_never_from_where_the_cell_writes, |h| {
    let outside = h.outside.to_str().expect("utf8").to_owned();
    let work = h.work.to_str().expect("utf8").to_owned();
    let cfg = config(h, &serde_json::json!({ "bindsUnder": [outside, work] }));
    let cfgs = cfg.to_str().expect("utf8");
    put(h, &format!(r#"{{"binds":[{{"src":"{outside}","dst":"/data"}}]}}"#));
    ok(&h.run(["--config", cfgs, "project", "allow", "--yes"]));
    let o = h.run([
        "--config",
        cfgs,
        "run",
        "--",
        "sh",
        "-c",
        "cat /data/secret.txt; echo x > /data/new 2>/dev/null && echo WROTE || echo read-only",
    ]);
    let out = ok(&o);
    assert!(out.contains(crate::support::SECRET) && out.contains("read-only"), "{}", show(&o));
    // Below the worktree (the cell's to write) a bind is refused even though permitted.
    std::fs::create_dir_all(h.work.join("sub")).expect("mkdir");
    put(h, &format!(r#"{{"binds":[{{"src":"{work}/sub"}}]}}"#));
    ok(&h.run(["--config", cfgs, "project", "allow", "--yes"]));
    let o = h.run(["--config", cfgs, "run", "--", "true"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains("which this cell can write"), "{}", show(&o));
});
