//! The command line: configuration errors, lookup, plans, doctor.

use std::os::unix::fs::PermissionsExt as _;

use crate::both;
use crate::support::{exists, ok, show, stderr, stdout, Host};

/// Runs `cell ARGS` expecting a usage/config error: exit 2, a message containing every
/// `needle`, and no cell state created on the host.
fn refused(h: &Host, args: &[&str], needles: &[&str]) {
    let o = h.run(args);
    assert_eq!(o.status.code(), Some(2), "expected exit 2:\n{}", show(&o));
    let err = stderr(&o);
    for n in needles {
        assert!(err.contains(n), "message lacks {n:?}:\n{err}");
    }
    assert!(!exists(&h.home.join(".local/share/cell")), "a refused launch created cell state on the host");
}

both!(config_errors_are_clear_and_create_nothing, |h| {
    let bad_json = h.write_config("bad.json", "{\"schemaVersion\": 1, \"cells\": {");
    refused(h, &["--config", bad_json.to_str().expect("utf8"), "run", "--", "true"], &["bad.json", "EOF"]);

    let unknown = h.write_config("unknown.json", r#"{"schemaVersion":1,"cells":{"default":{"netwrok":{}}}}"#);
    refused(
        h,
        &["--config", unknown.to_str().expect("utf8"), "run", "--", "true"],
        &["cells.default", "unknown field `netwrok`"],
    );

    let relative = h.write_config("rel.json", r#"{"schemaVersion":1,"cells":{"default":{"binds":[{"src":"data"}]}}}"#);
    refused(
        h,
        &["--config", relative.to_str().expect("utf8"), "run", "--", "true"],
        &["cells.default.binds[0].src", "relative", "absolute"],
    );

    let missing = h.write_config(
        "missing.json",
        r#"{"schemaVersion":1,"cells":{"default":{"binds":[{"src":"/nonexistent/cell-src"}]}}}"#,
    );
    refused(
        h,
        &["--config", missing.to_str().expect("utf8"), "run", "--", "true"],
        &["cells.default.binds[0].src", "/nonexistent/cell-src", "optional"],
    );

    refused(h, &["run", "--workdir", "/nonexistent/worktree", "--", "true"], &["--workdir", "/nonexistent/worktree"]);
    refused(h, &["run", "--bind", "/nonexistent/x", "--", "true"], &["--bind", "/nonexistent/x"]);
    refused(h, &["run", "--", "no-such-command-xyz"], &["no-such-command-xyz", "not found inside the cell"]);
    refused(h, &["run", "--", "./nope.sh"], &["./nope.sh"]);
    refused(h, &["run", "--cell", "nope", "--", "true"], &["no cell named \"nope\"", "default"]);
    refused(h, &["--config", "/nonexistent/config.json", "run", "--", "true"], &["/nonexistent/config.json"]);
});

both!(optional_binds_may_be_missing, |h| {
    let cfg = h.write_config(
        "opt.json",
        r#"{"schemaVersion":1,"cells":{"default":{"binds":[{"src":"/nonexistent/cell-src","optional":true}]}}}"#,
    );
    ok(&h.run(["--config", cfg.to_str().expect("utf8"), "run", "--", "true"]));
});

both!(declared_binds_are_visible_with_their_mode, |h| {
    let data = h.path("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::write(data.join("in.txt"), "shared\n").expect("write");
    h.chown_all();
    let ro = format!("{}:/data", data.display());
    let o = h.run([
        "run",
        "--bind",
        &ro,
        "--",
        "sh",
        "-c",
        "cat /data/in.txt; echo x > /data/new 2>/dev/null && echo WROTE; true",
    ]);
    assert_eq!(ok(&o), "shared\n", "read-only bind");
    let rw = format!("{}:/data:rw", data.display());
    ok(&h.run(["run", "--bind", &rw, "--", "sh", "-c", "echo x > /data/new"]));
    assert!(data.join("new").exists(), "read-write bind writes through");
});

both!(broad_worktrees_are_refused_unless_forced, |h| {
    let home = h.home.to_str().expect("utf8").to_owned();
    refused(h, &["run", "--workdir", &home, "--", "true"], &["home directory", "--allow-broad-worktree"]);
    refused(h, &["run", "--workdir", "/", "--", "true"], &["--allow-broad-worktree"]);
});

both!(config_lookup_order, |h| {
    let source = |cmd: &mut std::process::Command| -> String {
        let o = cmd.args(["plan", "--json", "--", "true"]).output().expect("plan");
        let v: serde_json::Value = serde_json::from_str(&ok(&o)).expect("json");
        v["config"].as_str().expect("config").to_owned()
    };
    // No file anywhere: the built-in default.
    assert_eq!(source(h.cell().env_remove("CELL_CONFIG")), "built-in default");
    // The user's XDG config.
    let xdg = h.home.join(".config/cell");
    std::fs::create_dir_all(&xdg).expect("mkdir");
    std::fs::write(xdg.join("config.json"), crate::support::DEFAULT_CONFIG).expect("write");
    h.chown_all();
    assert!(source(h.cell().env_remove("CELL_CONFIG")).ends_with(".config/cell/config.json"));
    // $CELL_CONFIG beats it, --config beats both.
    assert!(source(&mut h.cell()).contains("($CELL_CONFIG)"));
    let flag = h.write_config("flag.json", crate::support::DEFAULT_CONFIG);
    assert!(source(h.cell().arg("--config").arg(&flag)).contains("(--config)"));
});

both!(plan_is_what_run_executes, |h| {
    // A bubblewrap stand-in that records its argv, then runs the real one.
    let record = h.path("argv.bin");
    let fake = h.path("fake-bwrap");
    let real = which("bwrap");
    std::fs::write(&fake, format!("#!/bin/sh\nprintf '%s\\0' \"$@\" > {}\nexec {} \"$@\"\n", record.display(), real))
        .expect("write");
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    h.chown_all();
    let plan = ok(&h.cell().env("CELL_BWRAP", &fake).args(["plan", "--json", "--", "env"]).output().expect("plan"));
    let plan: serde_json::Value = serde_json::from_str(&plan).expect("json");
    let run = h.cell().env("CELL_BWRAP", &fake).args(["run", "--", "env"]).output().expect("run");
    let inside_env = ok(&run);
    let recorded = std::fs::read(&record).expect("recorded argv");
    let recorded: Vec<String> = recorded
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    let planned: Vec<String> =
        plan["argv"].as_array().expect("argv")[1..].iter().map(|v| v.as_str().expect("str").to_owned()).collect();
    assert_eq!(recorded, planned, "cell run executed exactly the planned bubblewrap argv");
    let mut seen: Vec<String> = inside_env.lines().map(str::to_owned).collect();
    seen.sort();
    let mut expected: Vec<String> = plan["env"]
        .as_object()
        .expect("env")
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().expect("str")))
        .collect();
    expected.sort();
    assert_eq!(seen, expected, "the command's environment is exactly the planned one");
});

both!(the_text_plan_starts_with_a_summary_and_groups_the_protected_paths, |h| {
    std::fs::write(h.work.join(".envrc"), "use nix\n").expect("write");
    h.chown_all();
    let o = h.run(["plan", "--allow", "api.test", "--", "echo", "hi there"]);
    let text = ok(&o);
    let lines: Vec<&str> = text.lines().collect();
    let work = h.work.to_str().expect("utf8");
    assert!(lines[0].starts_with("cell default (config: "), "{text}");
    assert_eq!(lines[1], "  command   echo 'hi there'", "{text}");
    assert!(lines[2].starts_with(&format!("  worktree  {work} (read-write)")), "{text}");
    assert!(lines[3].starts_with("  network   proxy: only through cell-egress, allowed: api.test"), "{text}");
    // One line for what is held read-only, one for what is watched, by worktree-relative name.
    let protected: Vec<&&str> = lines.iter().filter(|l| l.starts_with("  protected ")).collect();
    assert_eq!(protected, [&"  protected read-only: .envrc"], "{text}");
    let watched: Vec<&&str> = lines.iter().filter(|l| l.starts_with("  watched ")).collect();
    assert_eq!(watched.len(), 1, "{text}");
    assert!(watched[0].contains(": .mcp.json, .vscode, ") && watched[0].ends_with(", mise/config.toml"), "{text}");
    assert!(!watched[0].contains(work), "{text}");
    // The full argv stays, last.
    assert_eq!(lines[lines.len() - 2], "  bubblewrap:", "{text}");
});

fn which(name: &str) -> String {
    for d in ["/usr/local/bin", "/usr/bin", "/bin"] {
        let p = format!("{d}/{name}");
        if std::path::Path::new(&p).exists() {
            return p;
        }
    }
    panic!("{name} not found");
}

/// Replaces host-specific strings so the snapshot is the same on every machine.
fn normalise(text: &str, h: &Host) -> String {
    let mut t = text.replace(h.dir.path().to_str().expect("utf8"), "$TMP");
    t = t.replace(crate::support::init_bin().to_str().expect("utf8"), "$CELL_INIT");
    t = t.replace(&which("bwrap"), "$BWRAP");
    // As root the cell runs as the `cell` account: its name stays, its ids vary by machine.
    if h.who == crate::support::Who::User {
        let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(h.uid))
            .ok()
            .flatten()
            .map(|u| u.name)
            .expect("user name");
        t = t.replace(&format!("\"{name}\""), "\"$USER\"").replace(&format!("{name}:"), "$USER:");
    }
    // The gid by its place first: where the two ids are one number, the uid's name would win.
    t = t.replace(&format!("\"gid\": {},", h.gid), "\"gid\": $GID,");
    t = t.replace(&format!("\"--gid\",\n    \"{}\"", h.gid), "\"--gid\",\n    \"$GID\"");
    t = t.replace(&format!(":{}:{}:", h.uid, h.gid), ":$UID:$GID:").replace(&format!(":{}:", h.gid), ":$GID:");
    t = t.replace(&format!("\"{}\"", h.uid), "\"$UID\"").replace(&format!("\"{}\"", h.gid), "\"$GID\"");
    t = t.replace(&format!(": {},", h.uid), ": $UID,").replace(&format!(": {},", h.gid), ": $GID,");
    without_etc_digest(&t)
}

/// The name of the cell's `/etc` directory is the digest of its files, which hold the
/// machine's ids: `.../cell/etc/<32 hex digits>` becomes `.../cell/etc/$DIGEST`.
fn without_etc_digest(text: &str) -> String {
    let marker = "/cell/etc/";
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        let (head, tail) = rest.split_at(at + marker.len());
        out.push_str(head);
        let digits = tail.bytes().take_while(u8::is_ascii_hexdigit).count();
        if digits == 32 {
            out.push_str("$DIGEST");
            rest = &tail[32..];
        } else {
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

both!(plan_json_is_stable, |h| {
    let cfg = h.write_config(
        "snap.json",
        r#"{
          "schemaVersion": 1,
          "cells": {
            "snap": {
              "hostSystem": false,
              "binds": [
                { "src": "/usr" },
                { "src": "/lib", "optional": true },
                { "src": "/lib64", "optional": true },
                { "src": "/nonexistent", "optional": true }
              ],
              "env": { "EDITOR": "vi" },
              "passEnv": ["CELL_TEST_PASS"],
              "path": ["/usr/bin"],
              "command": ["/usr/bin/env"],
              "limits": { "memory": "1G" }
            }
          }
        }"#,
    );
    let o = h
        .cell()
        .env("TERM", "xterm-256color")
        .env("CELL_TEST_PASS", "passed")
        .env("CELL_TEST_NOT_PASSED", "hidden")
        .args(["--config", cfg.to_str().expect("utf8"), "plan", "--json", "--cell", "snap"])
        .output()
        .expect("plan");
    let actual = normalise(&ok(&o), h);
    let golden = format!(
        "{}/tests/golden/plan-{}.json",
        env!("CARGO_MANIFEST_DIR"),
        if h.who == crate::support::Who::Root { "root" } else { "user" }
    );
    crate::golden::check(&golden, &actual);
    // And the plan runs.
    let o = h
        .cell()
        .env("CELL_TEST_PASS", "passed")
        .args(["--config", cfg.to_str().expect("utf8"), "run", "--cell", "snap"])
        .output()
        .expect("run");
    let out = ok(&o);
    assert!(out.contains("EDITOR=vi") && out.contains("CELL_TEST_PASS=passed") && !out.contains("hidden"), "{out}");
});

both!(doctor_reports_and_fails_without_bubblewrap, |h| {
    let o = h.run(["doctor"]);
    let out = ok(&o);
    assert!(out.contains("[pass] bubblewrap") && out.contains("[pass] jail probe"), "{out}");
    assert!(out.contains("[pass] --disable-userns") && out.contains("[pass] seccomp"), "{out}");
    assert!(out.contains("landlock") && out.contains("cgroup v2") && out.contains("XDG_RUNTIME_DIR"), "{out}");
    let o = h.cell().env("CELL_BWRAP", "/nonexistent/bwrap").arg("doctor").output().expect("doctor");
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(stdout(&o).contains("[FAIL] bubblewrap") && stdout(&o).contains("fix:"), "{}", show(&o));
});

both!(a_jail_that_cannot_be_built_never_runs_the_command, |h| {
    // bubblewrap that fails to set up, as it does when user namespaces are forbidden.
    let fake = h.path("broken-bwrap");
    let ran = h.path("ran");
    std::fs::write(&fake, "#!/bin/sh\n[ \"$1\" = --version ] && { echo 'bubblewrap 0.0-broken'; exit 0; }\necho 'bwrap: No permissions to create a new namespace' >&2\nexit 1\n").expect("write");
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    h.chown_all();
    let o = h
        .cell()
        .env("CELL_BWRAP", &fake)
        .args(["run", "--", "sh", "-c", &format!("touch {}", ran.display())])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    let err = stderr(&o);
    assert!(
        err.contains("could not build cell")
            && err.contains("[FAIL] jail probe")
            && err.contains("never runs a command unsandboxed"),
        "{err}"
    );
    assert!(!ran.exists(), "the command ran although the jail failed");
});

#[test]
fn help_teaches() {
    let o = std::process::Command::new(crate::support::cell_bin()).arg("--help").output().expect("help");
    let out = ok(&o);
    for needle in ["run", "shell", "plan", "doctor", "Examples", "--config"] {
        assert!(out.contains(needle), "--help lacks {needle}:\n{out}");
    }
    let o = std::process::Command::new(crate::support::cell_bin()).args(["run", "--help"]).output().expect("help");
    assert!(ok(&o).contains("SRC[:DST][:ro|rw]"));
    let o = std::process::Command::new(crate::support::cell_bin()).args(["run", "--frobnicate"]).output().expect("run");
    assert_eq!(o.status.code(), Some(2));
    // A misspelled option is named as one, with the option meant, not looked up as the
    // command inside a cell.
    let o = std::process::Command::new(crate::support::cell_bin())
        .args(["run", "--netwrk", "none", "--", "true"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
    let err = crate::support::stderr(&o);
    assert!(err.contains("unexpected argument '--netwrk'") && err.contains("'--network'"), "{err}");
}

fn nix_golden(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../checks/golden").join(name)
}

#[test]
fn configs_rendered_by_the_nix_modules_pass_check() {
    for name in ["full.json", "minimal.json", "mk-cell.json"] {
        let o = std::process::Command::new(crate::support::cell_bin())
            .arg("--config")
            .arg(nix_golden(name))
            .arg("check")
            .output()
            .expect("check");
        assert!(o.status.success(), "{name} (rendered by modules/ and golden in checks/) is refused:\n{}", show(&o));
    }
    let bad = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(bad.path(), r#"{"schemaVersion":1,"cells":{"a":{"network":{"allow":["*"]}}}}"#).expect("write");
    let o = std::process::Command::new(crate::support::cell_bin())
        .arg("--config")
        .arg(bad.path())
        .arg("check")
        .output()
        .expect("check");
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains("cells.a.network.allow[0]"), "{}", show(&o));
}

both!(the_nix_rendered_minimal_config_launches_a_cell, |h| {
    let o = h
        .cell()
        .arg("--config")
        .arg(nix_golden("minimal.json"))
        .args(["run", "--", "sh", "-c", "id -u"])
        .output()
        .expect("run");
    assert_eq!(ok(&o).trim(), h.inside_uid().to_string());
});

both!(shell_gives_a_shell_even_where_an_agent_is_declared, |h| {
    let cfg = h.write_config(
        "agent.json",
        r#"{"schemaVersion":1,"cells":{"default":{"network":{"mode":"none"},
            "agent":{"kind":"custom","command":["sh","-c","echo AGENT-STARTED"]}}}}"#,
    );
    let cfg = cfg.to_str().expect("utf8");
    let with_stdin = |args: &[&str]| {
        use std::io::Write as _;
        let mut child = h
            .cell()
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        child.stdin.take().expect("stdin").write_all(b"echo SHELL-RAN $0\n").expect("write");
        child.wait_with_output().expect("wait")
    };
    // `cell run` without a command starts the declared agent, as documented ...
    assert_eq!(ok(&with_stdin(&["--config", cfg, "run"])).trim(), "AGENT-STARTED");
    // ... `cell shell` gives a shell, which reads its commands from standard input here.
    let out = ok(&with_stdin(&["--config", cfg, "shell"]));
    assert!(out.starts_with("SHELL-RAN /bin/") && !out.contains("AGENT-STARTED"), "{out}");
    let plan = ok(&h.run(["--config", cfg, "plan", "--json"]));
    assert!(plan.contains("AGENT-STARTED"), "cell plan (like cell run) plans the agent:\n{plan}");
});

both!(messages_name_the_fix_once, |h| {
    // Each refusal is one line, its subject named once, its fix one the user can apply.
    let one_line = |args: &[&str]| {
        let o = h.run(args);
        assert_eq!(o.status.code(), Some(2), "{}", show(&o));
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "printed once:\n{err}");
        err
    };
    let err = one_line(&["run", "--bind", "/nonexistent/x:/y:ro", "--", "true"]);
    assert!(err.starts_with("cell: --bind: bind source /nonexistent/x cannot be used"), "{err}");
    assert_eq!(err.matches("/nonexistent/x").count(), 1, "{err}");
    assert!(err.contains("drop the flag") && !err.contains("mark the bind optional"), "{err}");
    let err = one_line(&["run", "--allow", "*", "--", "true"]);
    assert!(err.starts_with("cell: --allow: allow entry \"*\""), "{err}");

    // A system directory is no worktree: refused up front, with no advice about its files
    // (such as removing /etc/localtime) and, as root, no chown of it.
    for dir in ["/etc", "/usr", "/usr/share", "/var", "/lib"] {
        if !std::path::Path::new(dir).is_dir() {
            continue;
        }
        let err = one_line(&["run", "--workdir", dir, "--", "true"]);
        assert!(err.contains("system directory"), "{dir}: {err}");
        assert!(!err.contains("remove the link") && !err.contains("chown"), "{dir}: {err}");
    }

    // cell check: "1 cell", and every validation error at once.
    assert!(ok(&h.run(["check"])).contains("valid (1 cell: default)"));
    let bad = h.write_config(
        "bad-many.json",
        r#"{"schemaVersion":1,"cells":{
            "a":{"network":{"allow":["*","ok.test","*.com"],"hosts":{"x.test":"nope"}},
                 "binds":[{"src":"rel"}],"limits":{"memory":"3"}},
            "B":{}}}"#,
    );
    let o = h.run(["--config", bad.to_str().expect("utf8"), "check"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let err = stderr(&o);
    for field in [
        "6 errors:",
        "\n  cells.B: ",
        "\n  cells.a.binds[0].src: ",
        "\n  cells.a.network.allow[0]: ",
        "\n  cells.a.network.allow[2]: ",
        "\n  cells.a.network.hosts.x.test: ",
        "\n  cells.a.limits.memory: ",
    ] {
        assert!(err.contains(field), "lacks {field:?}:\n{err}");
    }
    assert!(!err.contains("allow[1]"), "{err}");

    // doctor: XDG_RUNTIME_DIR is only suggested where it would name a real directory.
    let o = h.cell().env_remove("XDG_RUNTIME_DIR").arg("doctor").output().expect("doctor");
    let out = stdout(&o);
    let line = out.lines().find(|l| l.contains("] XDG_RUNTIME_DIR:")).expect("an XDG_RUNTIME_DIR line");
    let session = std::path::PathBuf::from(format!("/run/user/{}", h.uid));
    if session.is_dir() {
        assert!(out.contains(&format!("export XDG_RUNTIME_DIR={}", session.display())), "{out}");
    } else {
        assert!(line.starts_with("[pass]") && line.contains(&format!("/tmp/cell-{}", h.uid)), "{out}");
        assert!(!out.contains("export XDG_RUNTIME_DIR"), "{out}");
    }
});
