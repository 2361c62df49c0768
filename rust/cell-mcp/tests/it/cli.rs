//! The binary as a process: exit codes, dry run, corrupt/empty/missing files, backups,
//! concurrency and the mount-point fallback.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use serde_json::{json, Value};

use crate::util::{files_starting, merge, stderr, write_servers, BIN};

fn stdio(cmd: &str) -> Value {
    json!({ "command": cmd, "args": ["--x"], "env": { "TOKEN": "secret" } })
}

#[test]
fn help_teaches_with_an_example() {
    let o = Command::new(BIN).args(["merge", "--help"]).output().unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    for needle in ["Example:", "cell-mcp merge --agent claude", "--dry-run", "\"servers\"", "backup", "opencode"] {
        assert!(s.contains(needle), "{needle} in:\n{s}");
    }
}

#[test]
fn bad_input_exits_2_naming_the_problem() {
    let t = tempfile::tempdir().unwrap();
    let cfg = t.path().join("c.json");
    let st = t.path().join("state");
    let good = write_servers(t.path(), "good.json", &json!({ "a": stdio("x") }));
    let o = merge("cursor", &good, &cfg, &st, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cursor"), "{}", stderr(&o));

    let cases = [
        (json!({ "a": { "command": "x", "url": "https://h" } }), "both"),
        (json!({ "a": {} }), "needs"),
        (json!({ "a": { "command": "x", "env": { "K": 1 } } }), "env.K"),
        (json!({ "a": { "url": "https://h", "headers": { "H": [] } } }), "headers.H"),
        (json!({ "": { "command": "x" } }), "empty"),
        (json!({ "a.b": { "command": "x" } }), "a.b"),
        (json!({ "a": { "command": "x", "cwd": "/" } }), "cwd"),
    ];
    for (servers, needle) in cases {
        let f = write_servers(t.path(), "bad.json", &servers);
        let o = merge("claude", &f, &cfg, &st, &[]);
        assert_eq!(o.status.code(), Some(2), "{servers}");
        assert!(stderr(&o).contains(needle), "{needle}: {}", stderr(&o));
    }
    std::fs::write(t.path().join("broken.json"), "{ nope").unwrap();
    let o = merge("claude", &t.path().join("broken.json"), &cfg, &st, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("broken.json") && stderr(&o).contains("not valid JSON"), "{}", stderr(&o));
    let o = merge("claude", &t.path().join("missing.json"), &cfg, &st, &[]);
    assert_eq!(o.status.code(), Some(2));

    let sse = write_servers(t.path(), "sse.json", &json!({ "ev": { "url": "https://h/sse", "transport": "sse" } }));
    let o = merge("codex", &sse, &t.path().join("config.toml"), &st, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("\"ev\"") && stderr(&o).contains("streamable HTTP"), "{}", stderr(&o));
    assert!(!cfg.exists() && !t.path().join("config.toml").exists(), "nothing written on bad input");
}

#[test]
fn io_failure_exits_1() {
    let t = tempfile::tempdir().unwrap();
    let good = write_servers(t.path(), "good.json", &json!({ "a": stdio("x") }));
    std::fs::write(t.path().join("file"), "").unwrap();
    let o = merge("claude", &good, &t.path().join("file/sub/c.json"), &t.path().join("st"), &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("file/sub"), "{}", stderr(&o));
}

#[test]
fn dry_run_prints_a_diff_and_writes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let cfg = t.path().join("c.json");
    std::fs::write(&cfg, "{\n  \"x\": 1\n}\n").unwrap();
    let good = write_servers(t.path(), "good.json", &json!({ "a": stdio("x") }));
    let o = merge("claude", &good, &cfg, &t.path().join("st"), &["--dry-run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with(&format!("--- {}", cfg.display())), "{out}");
    assert!(out.contains("-  \"x\": 1\n+  \"x\": 1,\n+  \"mcpServers\": {"), "{out}");
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), "{\n  \"x\": 1\n}\n");
    assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 2, "no lock, backup or state");
    // A missing file: the diff is all additions, and still nothing is created.
    let o = merge("gemini", &good, &t.path().join("new/settings.json"), &t.path().join("st"), &["--dry-run"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("+  \"mcpServers\""));
    assert!(!t.path().join("new").exists());
}

#[test]
fn missing_file_and_dirs_are_created_private() {
    let t = tempfile::tempdir().unwrap();
    let cfg = t.path().join("home/.config/opencode/opencode.json");
    let good = write_servers(t.path(), "good.json", &json!({ "a": stdio("x") }));
    let o = merge("opencode", &good, &cfg, &t.path().join("st"), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    assert_eq!(v["mcp"]["a"]["command"], json!(["x", "--x"]));
    assert_eq!(v["mcp"]["a"]["environment"]["TOKEN"], "secret");
    assert_eq!(std::fs::metadata(&cfg).unwrap().permissions().mode() & 0o777, 0o600);
    for d in ["home", "home/.config", "home/.config/opencode"] {
        assert_eq!(std::fs::metadata(t.path().join(d)).unwrap().permissions().mode() & 0o777, 0o700, "{d}");
    }
}

#[test]
fn empty_file_counts_as_empty_object() {
    let t = tempfile::tempdir().unwrap();
    let cfg = t.path().join("settings.json");
    std::fs::write(&cfg, "").unwrap();
    let good = write_servers(t.path(), "good.json", &json!({ "a": stdio("x") }));
    let o = merge("gemini", &good, &cfg, &t.path().join("st"), &[]);
    assert!(o.status.success() && !stderr(&o).contains("warning"), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    assert_eq!(v, json!({ "mcpServers": { "a": { "command": "x", "args": ["--x"], "env": { "TOKEN": "secret" } } } }));
    assert!(files_starting(t.path(), "settings.json.corrupt").is_empty());
}

#[test]
fn corrupt_file_is_kept_aside_byte_for_byte() {
    let t = tempfile::tempdir().unwrap();
    let good = write_servers(t.path(), "good.json", &json!({ "a": stdio("x") }));
    for (agent, name, bytes) in [
        ("claude", ".claude.json", &b"{\"projects\": {\"/a\": {\"history\": [\x00\xff truncated"[..]),
        ("codex", "config.toml", b"[mcp_servers.x\ncommand = "),
        ("opencode", "opencode.json", b"{ \"mcp\": { /* unterminated"),
    ] {
        let cfg = t.path().join(name);
        std::fs::write(&cfg, bytes).unwrap();
        let o = merge(agent, &good, &cfg, &t.path().join("st"), &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stderr(&o).contains("did not parse") && stderr(&o).contains(".corrupt-"), "{}", stderr(&o));
        let aside = files_starting(t.path(), &format!("{name}.corrupt-"));
        assert_eq!(aside.len(), 1, "{aside:?}");
        assert_eq!(std::fs::read(t.path().join(&aside[0])).unwrap(), bytes, "{agent}");
        let text = std::fs::read_to_string(&cfg).unwrap();
        assert!(text.contains("\"a\"") || text.contains("[mcp_servers.a]"), "{text}");
        // Recovered: the next merge is a no-op.
        let o = merge(agent, &good, &cfg, &t.path().join("st"), &[]);
        assert!(stderr(&o).contains("unchanged"), "{}", stderr(&o));
    }
}

#[test]
fn backups_are_capped_at_five_and_foreign_files_spared() {
    let t = tempfile::tempdir().unwrap();
    let cfg = t.path().join(".claude.json");
    std::fs::write(&cfg, "{\"mine\": true}").unwrap();
    std::fs::write(t.path().join(".claude.json.backup-by-hand"), "keep").unwrap();
    let a = write_servers(t.path(), "a.json", &json!({ "a": stdio("x") }));
    let b = write_servers(t.path(), "b.json", &json!({ "b": stdio("y") }));
    for i in 0..8 {
        let o = merge("claude", if i % 2 == 0 { &a } else { &b }, &cfg, &t.path().join("st"), &[]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let backups = files_starting(t.path(), ".claude.json.backup-");
    assert_eq!(backups.len(), 6, "5 of ours + the hand-made one: {backups:?}");
    assert!(backups.contains(&".claude.json.backup-by-hand".to_owned()));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    assert_eq!(v["mine"], true);
    assert_eq!(v["mcpServers"].as_object().unwrap().keys().collect::<Vec<_>>(), ["b"], "a evicted when b declared");
}

#[test]
fn clash_with_a_user_server_warns_and_takes_over() {
    let t = tempfile::tempdir().unwrap();
    let cfg = t.path().join("settings.json");
    std::fs::write(&cfg, r#"{"mcpServers": {"a": {"command": "users"}, "u": {"command": "u"}}}"#).unwrap();
    let a = write_servers(t.path(), "a.json", &json!({ "a": stdio("ours") }));
    let o = merge("gemini", &a, &cfg, &t.path().join("st"), &[]);
    assert!(stderr(&o).contains("warning") && stderr(&o).contains("\"a\" was not written by cell-mcp"));
    // Now managed: dropping it from the declaration removes it; the user's "u" stays.
    let none = write_servers(t.path(), "none.json", &json!({}));
    let o = merge("gemini", &none, &cfg, &t.path().join("st"), &[]);
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    assert_eq!(v, json!({ "mcpServers": { "u": { "command": "u" } } }));
}

#[test]
fn concurrent_merges_serialise() {
    let t = tempfile::tempdir().unwrap();
    let cfg = t.path().join(".claude.json");
    let big: serde_json::Map<String, Value> =
        (0..2000).map(|i| (format!("/p/{i}"), json!({ "history": vec!["x"; 20] }))).collect();
    let user = json!({ "projects": big, "mcpServers": { "user": { "type": "stdio", "command": "u" } } });
    std::fs::write(&cfg, user.to_string()).unwrap();
    let a = write_servers(t.path(), "a.json", &json!({ "a1": stdio("a"), "a2": stdio("a") }));
    let b = write_servers(t.path(), "b.json", &json!({ "b1": stdio("b") }));
    for round in 0..15 {
        let spawn = |f: &std::path::Path| {
            Command::new(BIN)
                .args(["merge", "--agent", "claude", "--servers"])
                .arg(f)
                .arg("--config")
                .arg(&cfg)
                .arg("--state")
                .arg(t.path().join("st"))
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (pa, pb) = (spawn(&a), spawn(&b));
        let (oa, ob) = (pa.wait_with_output().unwrap(), pb.wait_with_output().unwrap());
        assert!(oa.status.success() && ob.status.success(), "{} {}", stderr(&oa), stderr(&ob));
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
        let mut names: Vec<&String> = v["mcpServers"].as_object().unwrap().keys().collect();
        names.sort();
        assert!(
            names == ["a1", "a2", "user"] || names == ["b1", "user"],
            "round {round}: one writer's set plus the user's, got {names:?}"
        );
        assert_eq!(v["projects"].as_object().unwrap().len(), 2000);
    }
    let leftovers: Vec<String> =
        files_starting(t.path(), ".").into_iter().filter(|n| n.contains(".cell-mcp-")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Bind-mounted single files cannot be renamed over: the merge must write in place. Needs root
/// and `unshare -m`; skipped loudly otherwise.
#[test]
fn mount_point_is_written_in_place() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("SKIP mount_point_is_written_in_place: needs root for unshare -m / mount --bind");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("host-claude.json");
    std::fs::write(&src, "{\"keep\": 1}\n").unwrap();
    let home = t.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let cfg = home.join(".claude.json");
    std::fs::write(&cfg, "").unwrap();
    let a = write_servers(t.path(), "a.json", &json!({ "a": stdio("x") }));
    let tmpfs = t.path().join("tmpfs");
    std::fs::create_dir(&tmpfs).unwrap();
    let script = r#"
        set -e
        mount --make-rprivate /
        mount --bind "$SRC" "$CFG"
        "$BIN" merge --agent claude --servers "$SERVERS" --config "$CFG" --state "$STATE"
        # A file from another device (st_dev differs from its directory's).
        mount -t tmpfs tmpfs "$TMPFS"
        echo '{"other": 2}' > "$TMPFS/f.json"
        mount --bind "$TMPFS/f.json" "$CFG"
        "$BIN" merge --agent claude --servers "$SERVERS" --config "$CFG" --state "$STATE"
        echo "--- tmpfs file:"; cat "$TMPFS/f.json"
    "#;
    let o = Command::new("unshare")
        .args(["-m", "sh", "-c", script])
        .env("SRC", &src)
        .env("CFG", &cfg)
        .env("BIN", BIN)
        .env("SERVERS", &a)
        .env("STATE", t.path().join("st"))
        .env("TMPFS", &tmpfs)
        .output();
    let o = match o {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            eprintln!("SKIP mount_point_is_written_in_place: unshare/mount failed: {}", stderr(&o));
            return;
        }
        Err(e) => {
            eprintln!("SKIP mount_point_is_written_in_place: no unshare: {e}");
            return;
        }
    };
    let err = stderr(&o);
    assert_eq!(err.matches("written in place").count(), 2, "{err}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&src).unwrap()).unwrap();
    assert_eq!(v["keep"], 1);
    assert_eq!(v["mcpServers"]["a"]["command"], "x");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("\"other\": 2") && out.contains("\"mcpServers\""), "{out}");
    // The backups taken before each in-place write hold the old bytes (not linked to the target).
    let backups = files_starting(&home, ".claude.json.backup-");
    assert_eq!(backups.len(), 2, "{backups:?}");
    assert_eq!(std::fs::read_to_string(home.join(&backups[0])).unwrap(), "{\"keep\": 1}\n");
}

/// Length and hash of a file's bytes (the "left byte-for-byte alone" check).
fn fingerprint(p: &std::path::Path) -> (usize, u64) {
    use std::hash::Hasher;
    let bytes = std::fs::read(p).unwrap();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(&bytes);
    (bytes.len(), h.finish())
}

/// The agent controls its home between runs: `.claude.json -> /host/secret` must not be read,
/// copied into the home as a `.corrupt-*` file, or written through (real runs and dry runs).
#[test]
fn symlinked_target_is_refused_and_nothing_copied() {
    let t = tempfile::tempdir().unwrap();
    let (home, outside) = (t.path().join("home"), t.path().join("outside"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let good = write_servers(t.path(), "good.json", &json!({ "a": stdio("x") }));
    for secret_text in ["TOKEN=host-secret\n", "{\"mcpServers\": {}, \"secret\": \"host\"}\n"] {
        let secret = outside.join("secret");
        std::fs::write(&secret, secret_text).unwrap();
        let before = fingerprint(&secret);
        let cfg = home.join(".claude.json");
        let _ = std::fs::remove_file(&cfg);
        std::os::unix::fs::symlink(&secret, &cfg).unwrap();
        for extra in [&[][..], &["--dry-run"][..]] {
            let o = merge("claude", &good, &cfg, &t.path().join("st"), extra);
            assert_eq!(o.status.code(), Some(1), "{extra:?}: {}", stderr(&o));
            let err = stderr(&o);
            assert!(err.contains(&format!("{}: is a symbolic link", cfg.display())), "{err}");
            assert!(!String::from_utf8_lossy(&o.stdout).contains("secret"), "the linked file leaked");
            assert_eq!(fingerprint(&secret), before, "the linked file was written");
            assert_eq!(files_starting(&home, ".claude.json"), [".claude.json"], "something was created or copied");
            assert!(std::fs::symlink_metadata(&cfg).unwrap().file_type().is_symlink());
            assert_eq!(files_starting(&outside, ""), ["secret"]);
        }
    }
}

/// `.gemini -> /host/dir`: the config's directory is a link, refused before anything is created.
#[test]
fn symlinked_config_directory_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let (home, outside) = (t.path().join("home"), t.path().join("outside"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, home.join(".gemini")).unwrap();
    let good = write_servers(t.path(), "good.json", &json!({ "a": stdio("x") }));
    let o = merge("gemini", &good, &home.join(".gemini/settings.json"), &t.path().join("st"), &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("{}: is a symbolic link", home.join(".gemini").display())), "{}", stderr(&o));
    assert!(files_starting(&outside, "").is_empty(), "written through the linked directory");
}

/// `.claude.json.lock -> elsewhere`: refused, and the link's target is not created.
#[test]
fn symlinked_lock_file_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let (home, outside) = (t.path().join("home"), t.path().join("outside"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let cfg = home.join(".claude.json");
    std::fs::write(&cfg, "{}\n").unwrap();
    let lock = home.join(".claude.json.lock");
    let target = outside.join("created-by-lock");
    std::os::unix::fs::symlink(&target, &lock).unwrap();
    let good = write_servers(t.path(), "good.json", &json!({ "a": stdio("x") }));
    let o = merge("claude", &good, &cfg, &t.path().join("st"), &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("{}: is a symbolic link", lock.display())), "{}", stderr(&o));
    assert!(std::fs::symlink_metadata(&target).is_err(), "the lock link's target was created");
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), "{}\n", "the config was written without the lock");
    assert_eq!(files_starting(&home, ""), [".claude.json", ".claude.json.lock"]);
}
