//! The README's install without Nix (`scripts/install --root PREFIX`) gives a complete tool:
//! every binary a launch can need sits beside `cell` in the prefix, `cell doctor` says so,
//! and a proxied launch (`--allow`, the way every agent launches) works from there.
//!
//! What this checks, honestly: the script is run for real, once per test process, into a
//! fresh prefix (`$CARGO_TARGET_TMPDIR/install-prefix`), and the binaries under test are
//! the installed ones, found through their own directory (no `CELL_*` variable). cargo
//! builds them in the workspace's `target/release` as `cargo install --path` does for any
//! user, so a second run only relinks what changed; the first run on a machine compiles a
//! release build of the workspace (minutes on two cores). cargo runs offline
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
