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

/// In the cell: `BODY|PROJECT_VAR|CELL_MINE` (curl through the proxy to the upstream).
fn probe(h: &Host, cfg: &std::path::Path, port: u16) -> std::process::Output {
    let script = format!(
        "b=$(curl -sf -m 10 http://up.test:{port}/ 2>/dev/null | head -c 64); echo \"$b|${{PROJECT_VAR-unset}}|$CELL_MINE\""
    );
    h.run(["--config", cfg.to_str().expect("utf8"), "run", "--", "sh", "-c", &script])
}

both!(project_settings_apply_only_once_approved_and_not_after_the_cell_rewrites_them, |h| {
    let up = Upstream::start("from-upstream");
    let cfg = config(h, &serde_json::json!({ "network": true, "env": true }));
    let cfgs = cfg.to_str().expect("utf8");
    let file = format!(
        r#"{{"network":{{"allow":["up.test:{}"]}},"env":{{"PROJECT_VAR":"yes","CELL_MINE":"theirs","HTTPS_PROXY":"http://x"}}}}"#,
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
        "printf '%s' '{{\"network\":{{\"allow\":[\"up.test:{p}\",\"*.test:{p}\"]}},\"env\":{{\"PROJECT_VAR\":\"agent\"}}}}' > .cell.json",
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
            r#"{{"network":{{"allow":["up.test:{}"]}},"env":{{"PROJECT_VAR":"ok"}},"binds":[{{"src":"{outside}"}}]}}"#,
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
    // A link, a directory or a FIFO the cell planted is ignored, loudly; the launch goes on
    // (hostile input never stops a launch), and `cell project` refuses it by name.
    std::os::unix::fs::symlink(h.outside.join("secret.txt"), h.work.join(".cell.json")).expect("link");
    let o = h.run(["--config", cfgs, "run", "--", "true"]);
    assert!(o.status.success() && stderr(&o).contains("symbolic link"), "{}", show(&o));
    let o = h.run(["--config", cfgs, "project", "allow", "--yes"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    std::fs::remove_file(h.work.join(".cell.json")).expect("rm");
    std::fs::create_dir(h.work.join(".cell.json")).expect("mkdir");
    h.chown_all();
    let o = h.run(["--config", cfgs, "run", "--", "true"]);
    assert!(o.status.success() && stderr(&o).contains("not a regular file"), "{}", show(&o));
    std::fs::remove_dir(h.work.join(".cell.json")).expect("rmdir");
    // Addresses are for the user's own config only, in any spelling.
    for ip in ["127.0.0.1:8080", "0x7f000001:8080", "[::1]:8080", "169.254.169.254"] {
        put(h, &format!(r#"{{"network":{{"allow":["{ip}"]}}}}"#));
        let o = h.run(["--config", cfgs, "project", "allow", "--yes"]);
        assert_eq!(o.status.code(), Some(2), "{ip}: {}", show(&o));
        assert!(stderr(&o).contains("host names only"), "{ip}: {}", show(&o));
    }
    // A variable given twice is refused (the display would show one of them).
    put(h, r#"{"env":{"FOO":"shown","FOO":"used"}}"#);
    let o = h.run(["--config", cfgs, "project", "allow", "--yes"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains("given twice"), "{}", show(&o));
    // Invisible characters are shown escaped; a closed pipe is no crash.
    put(h, "{\"env\":{\"A\":\"x\u{202e}y\u{200b}\"}}");
    let o = h.run(["--config", cfgs, "project"]);
    assert!(ok(&o).contains("\\u{202e}") && ok(&o).contains("\\u{200b}"), "{}", show(&o));
    let mut child = h
        .cell()
        .args(["--config", cfgs, "project"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let o = child.wait_with_output().expect("wait");
    assert!(!stderr(&o).contains("panicked"), "{}", show(&o));
    put(h, r#"{"network":{"allow":["https://pypi.org/simple"]}}"#);
    // A file with a bad entry cannot be approved; the error names the entry and the fix.
    let o = h.run(["--config", cfgs, "project", "allow", "--yes"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains(".cell.json: network.allow[0]") && stderr(&o).contains("pypi.org"), "{}", show(&o));
    assert_eq!(stderr(&o).matches("\"pypi.org\"").count(), 1, "the fix is said once: {}", show(&o));
    assert!(!h.home.join(".config/cell/approved-projects.json").exists(), "a bad file was approved");
    put(h, r#"{"netwrk":{}}"#);
    let o = h.run(["--config", cfgs, "project"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains("netwrk") && stderr(&o).contains("did you mean \"network\"?"), "{}", show(&o));
    // JSON that does not parse names the file, not a guessed field.
    put(h, "{\"env\":{\"A\":\"x\",\n 3: 1}}");
    let o = h.run(["--config", cfgs, "project"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains(".cell.json: not valid JSON: key must be a string at line 2"), "{}", show(&o));
    assert!(!stderr(&o).contains('?'), "{}", show(&o));
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
    put(h, &format!(r#"{{"binds":[{{"src":"{work}/sub","dst":"/data/sub"}}]}}"#));
    ok(&h.run(["--config", cfgs, "project", "allow", "--yes"]));
    let o = h.run(["--config", cfgs, "run", "--", "true"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains("which this cell can write"), "{}", show(&o));
});

both!(a_project_never_replaces_a_passed_or_preset_variable_nor_binds_over_the_cell, |h| {
    let cfg = h.write_config(
        "keep.json",
        &serde_json::json!({"schemaVersion":1,"cells":{"proj":{
            "passEnv": ["CELL_T_PASS"],
            "project": { "env": true, "bindsUnder": [h.outside] },
        }}})
        .to_string(),
    );
    let cfgs = cfg.to_str().expect("utf8");
    let outside = h.outside.to_str().expect("utf8");
    let work = h.work.to_str().expect("utf8");
    put(
        h,
        &format!(
            r#"{{"env":{{"CELL_T_PASS":"theirs","DISABLE_AUTOUPDATER":"0","LC_ALL":"x","CELL_NAME":"x","OK_ADDED":"1"}},
               "binds":[{{"src":"{outside}","dst":"/proc/self"}},{{"src":"{outside}","dst":"/run/cell/x"}},
                        {{"src":"{outside}","dst":"{work}/sub"}},{{"src":"{outside}","dst":"/etc/passwd"}},
                        {{"src":"{outside}","dst":"/data/ok"}}]}}"#
        ),
    );
    ok(&h.run(["--config", cfgs, "project", "allow", "--yes"]));
    let o = h
        .cell()
        .env("CELL_T_PASS", "mine")
        .args([
            "--config",
            cfgs,
            "run",
            "--",
            "sh",
            "-c",
            "echo $CELL_T_PASS $CELL_NAME $OK_ADDED ${LC_ALL-unset}; ls /data/ok",
        ])
        .output()
        .expect("run");
    let out = ok(&o);
    assert!(out.starts_with("mine proj 1 unset\n") && out.contains("secret.txt"), "{}", show(&o));
    assert_eq!(stderr(&o).matches("binds[").count(), 4, "each refused bind is named:\n{}", show(&o));
    assert!(!h.work.join("sub").exists(), "a project bind made a mount point in the worktree");
    // The agent's preset variables stay the preset's.
    let o = h.run(["--config", cfgs, "plan", "--json", "--agent", "claude"]);
    let plan: serde_json::Value = serde_json::from_str(&ok(&o)).expect("plan");
    assert_eq!(plan["env"]["DISABLE_AUTOUPDATER"], "1", "{}", show(&o));
    assert!(stderr(&o).contains("env.DISABLE_AUTOUPDATER ignored"), "{}", show(&o));
});

both!(no_cell_may_write_the_approvals_once_a_cell_trusts_projects, |h| {
    let config_cell = h.home.join(".config/cell");
    std::fs::create_dir_all(&config_cell).expect("mkdir");
    let cfg = h.write_config(
        "two.json",
        &serde_json::json!({"schemaVersion":1,"cells":{
            "plain": { "binds": [{ "src": config_cell, "dst": "/x", "mode": "rw" }] },
            "proj": { "project": { "env": true } },
        }})
        .to_string(),
    );
    let cfgs = cfg.to_str().expect("utf8");
    // The plain cell (no project settings of its own) would write the approvals the other trusts.
    let o = h.run([
        "--config",
        cfgs,
        "run",
        "--cell",
        "plain",
        "--",
        "sh",
        "-c",
        "echo '{\"projects\":{}}' > /x/approved-projects.json",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains("which this cell can write"), "{}", show(&o));
    assert!(!config_cell.join("approved-projects.json").exists());
});
