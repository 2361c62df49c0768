//! The README's install without Nix (`scripts/install --root PREFIX`) gives a complete tool:
//! every binary a launch can need sits beside `cell` in the prefix, `cell doctor` says so,
//! and a proxied launch (`--allow`, the way every agent launches) works from there.
//!
//! What this checks, honestly: the script is run for real, once per test process, into a
//! fresh prefix (`$CARGO_TARGET_TMPDIR/install-prefix`), and the binaries under test are
//! the installed ones, found through their own directory (no `CELL_*` variable). cargo
//! builds them in the workspace's `target/<triple>/release` (statically linked where the
//! host allows, see scripts/release.sh) as for any user, so a second run only relinks what
//! changed; the first run on a machine compiles a release build of the workspace (minutes
//! on two cores). cargo runs offline
//! (`CARGO_NET_OFFLINE`): the test build already fetched every dependency.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::both;
use crate::support::{ok, show, stdout, Upstream};

/// The prefix `scripts/install` filled, installing on first use.
fn prefix() -> &'static Path {
    static PREFIX: OnceLock<PathBuf> = OnceLock::new();
    PREFIX.get_or_init(|| {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let prefix = Path::new(env!("CARGO_TARGET_TMPDIR")).join("install-prefix");
        let _ = std::fs::remove_dir_all(&prefix);
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let cargo_dir = Path::new(&cargo).parent().map(Path::to_path_buf).unwrap_or_default();
        let path = std::env::join_paths(
            std::iter::once(cargo_dir).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
        )
        .expect("PATH");
        let o = Command::new("bash")
            .arg(repo.join("scripts/install"))
            .arg("--root")
            .arg(&prefix)
            .env("PATH", path)
            .env("CARGO_NET_OFFLINE", "true")
            .output()
            .expect("run scripts/install");
        assert!(o.status.success(), "scripts/install --root {} failed:\n{}", prefix.display(), show(&o));
        // Readable by the unprivileged test account too.
        let status = Command::new("chmod").arg("-R").arg("a+rX").arg(&prefix).status().expect("chmod");
        assert!(status.success());
        prefix
    })
}

both!(the_readme_install_is_a_complete_tool, |h| {
    let bin = prefix().join("bin");
    let cell = bin.join("cell");
    // doctor finds every helper beside the installed cell.
    let doctor = h.cell_at(&cell).arg("doctor").output().expect("doctor");
    let out = ok(&doctor);
    for helper in ["cell-init", "cell-egress", "cell-walflush"] {
        let line = format!("[pass] {helper}: {}", bin.join(helper).display());
        assert!(out.contains(&line), "doctor lacks {line:?}:\n{out}");
    }
    assert!(out.contains("cells can start on this host"), "{out}");

    // A proxied launch, as every agent's is, through the installed cell-egress.
    let up = Upstream::start("through-the-installed-proxy");
    let cfg = h.write_config(
        "pinned.json",
        r#"{"schemaVersion":1,"cells":{"default":{"network":{"hosts":{"example.test":"127.0.0.1"}}}}}"#,
    );
    let cfg = cfg.to_str().expect("utf8");
    ok(&h
        .cell_at(&cell)
        .args(["--config", cfg, "run", "--allow", "example.test", "--", "true"])
        .output()
        .expect("run"));
    let target = format!("example.test:{}", up.port);
    let o = h
        .cell_at(&cell)
        .args([
            "--config",
            cfg,
            "run",
            "--allow",
            &target,
            "--",
            "curl",
            "-s",
            "-m",
            "10",
            &format!("http://{target}/"),
        ])
        .output()
        .expect("run");
    assert_eq!(ok(&o), "through-the-installed-proxy", "{}", show(&o));
    assert_eq!(up.hits(), 1);

    // Without cell-egress beside it (the old `cargo install --path rust/cell` only), doctor
    // fails and says which command puts it there; a proxied launch refuses with the same.
    let lone = h.path("lone/bin");
    std::fs::create_dir_all(&lone).expect("mkdir");
    for b in ["cell", "cell-init"] {
        std::fs::copy(bin.join(b), lone.join(b)).expect("copy");
    }
    h.chown_all();
    let doctor = h.cell_at(&lone.join("cell")).arg("doctor").output().expect("doctor");
    assert_eq!(doctor.status.code(), Some(1), "{}", show(&doctor));
    let out = stdout(&doctor);
    let fix = format!("scripts/install --root {}", h.path("lone").display());
    assert!(out.contains("[FAIL] cell-egress: not found: proxied cells cannot start"), "{out}");
    assert!(out.contains(&fix) && out.contains("[warn] cell-walflush"), "{out}");
    let o = h.cell_at(&lone.join("cell")).args(["run", "--allow", "example.test", "--", "true"]).output().expect("run");
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert!(crate::support::stderr(&o).contains(&fix), "{}", show(&o));
});

/// The lines of the README's quick start without Nix, comments dropped.
fn quick_start() -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).expect("README");
    let start = readme.find("## Quick start").expect("a quick start section");
    let block = &readme[start..];
    let open = block.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let close = open + block[open..].find("```").expect("its end");
    block[open..close]
        .lines()
        .map(|l| l.split("  #").next().unwrap_or_default().trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

both!(the_readme_quick_start_works_as_a_new_user_types_it, |h| {
    // A new user: a fresh home with no configuration, the installed tool first on PATH.
    let bin = prefix().join("bin");
    let project = h.home.join("src/project");
    std::fs::create_dir_all(&project).expect("mkdir");
    std::fs::write(project.join("Makefile"), "test:\n\t@echo quick-start-tests-pass\n").expect("Makefile");
    h.chown_all();
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display());
    let typed = |line: &str, stdin: &str| {
        use std::io::Write as _;
        let mut cmd = Command::new("bash");
        cmd.args(["-c", line])
            .current_dir(&project)
            .env_clear()
            .env("HOME", &h.home)
            .env("PATH", &path)
            .env("LANG", "C.UTF-8")
            .env("XDG_RUNTIME_DIR", h.path("run"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if h.who == crate::support::Who::User {
            use std::os::unix::process::CommandExt as _;
            cmd.uid(h.uid).gid(h.gid);
        }
        let mut child = cmd.spawn().expect("bash");
        child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("stdin");
        child.wait_with_output().expect("wait")
    };
    let claude = ["/usr/local/bin/claude", "/usr/bin/claude"].iter().any(|p| Path::new(p).exists());
    let codex = ["/usr/local/bin/codex", "/usr/bin/codex"].iter().any(|p| Path::new(p).exists());
    let lines = quick_start();
    assert!(lines.len() >= 10, "the quick start shrank to {lines:?}");
    for line in &lines {
        match line.as_str() {
            l if l.starts_with("sudo apt install bubblewrap") => {
                // Installed on this machine already; what matters is that it is there.
                ok(&typed("bwrap --version", ""));
            }
            // The prefix was filled by exactly this script (`--root`: not the user's ~/.cargo).
            "scripts/install" => assert!(bin.join("cell-egress").exists()),
            "cell doctor" => assert!(ok(&typed(line, "")).contains("cells can start on this host")),
            "cd ~/src/project && cell run -- make test" => {
                let o = typed(line, "");
                assert_eq!(ok(&o).trim(), "quick-start-tests-pass", "{}", show(&o));
            }
            "cell shell" => {
                let o = typed(line, "echo in-the-shell $0\nexit\n");
                assert!(ok(&o).contains("in-the-shell"), "{}", show(&o));
            }
            "cell plan -- make test" => assert!(ok(&typed(line, "")).contains("bwrap")),
            l if l.starts_with("cell run --allow pypi.org --allow files.pythonhosted.org --") => {
                // No internet here: the same flags plan and start the proxy; nothing is fetched.
                let o = typed(
                    "cell plan --json --allow pypi.org --allow files.pythonhosted.org -- pip download requests",
                    "",
                );
                let plan: serde_json::Value = serde_json::from_str(&ok(&o)).expect("plan json");
                assert_eq!(
                    plan["network"]["policy"]["allow"],
                    serde_json::json!(["pypi.org", "files.pythonhosted.org"])
                );
                ok(&typed("cell run --allow pypi.org --allow files.pythonhosted.org -- true", ""));
            }
            "cell net log" | "cell ps" => {
                ok(&typed(line, ""));
            }
            "cell stop default" => {
                let o = typed(line, "");
                assert!(crate::support::stderr(&o).contains("is not running"), "{}", show(&o));
            }
            "cell du" => assert!(ok(&typed(line, "")).contains("default  home")),
            "cell reset default" => {
                // Without a terminal it asks for --yes, as the comment says.
                let o = typed(line, "");
                assert_eq!(o.status.code(), Some(2), "{}", show(&o));
                assert!(ok(&typed("cell reset default --yes", "")).contains("deleted the home"));
            }
            "cell selftest" => {
                let o = typed(line, "");
                assert!(ok(&o).contains(" 0 failed"), "{}", show(&o));
            }
            // Interactive agents: their version through the same launch (the first screens
            // are the agents' tests).
            "cell claude" if claude => assert!(ok(&typed("cell claude -- --version", "")).contains("Claude Code")),
            l if l.starts_with("cell codex --") && codex => {
                assert!(ok(&typed("cell codex -- --version", "")).contains("codex"));
            }
            "cell claude" => crate::support::skip("quick start: cell claude", "claude is not installed"),
            l if l.starts_with("cell codex --") => {
                crate::support::skip("quick start: cell codex", "codex is not installed");
            }
            other => {
                panic!("the README's quick start has a line this test does not know: {other:?}; teach it what to check")
            }
        }
    }
});
