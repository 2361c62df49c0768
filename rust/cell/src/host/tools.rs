//! The host programs a launch runs (bubblewrap, `cell-init`, the sidecars), found where the
//! cell cannot write, and what the host's bubblewrap supports.

use std::process::Command;

use anyhow::{bail, Context as _};
use camino::{Utf8Path, Utf8PathBuf};

use crate::sys::is_executable;

/// Finds bubblewrap: `$CELL_BWRAP` (set by the Nix wrapper), else `bwrap` on `PATH`,
/// skipping every `PATH` entry that is relative or lies, links resolved, in `skip` (places
/// the cell can write: a project venv's `.venv/bin` in the worktree, say). Nothing found
/// here is run before the plan's check ([`crate::host::plan::check_tools`]) has passed.
///
/// # Errors
/// When neither exists.
pub fn find_bwrap(env: &crate::host::hostenv::HostEnv, skip: &[Utf8PathBuf]) -> anyhow::Result<Utf8PathBuf> {
    if let Some(p) = env.var("CELL_BWRAP").filter(|p| !p.is_empty()) {
        let p = Utf8PathBuf::from(p);
        if is_executable(&p) {
            return Ok(p);
        }
        bail!("$CELL_BWRAP names {p}, which is not an executable file; unset it or point it at bubblewrap");
    }
    search_path(env.var("PATH").unwrap_or("/usr/bin:/bin"), "bwrap", skip).context(
        "bubblewrap (bwrap) is not installed or not on PATH (PATH entries where a cell can write are skipped); install it (Debian/Ubuntu: apt install bubblewrap, Fedora: dnf install bubblewrap, Arch: pacman -S bubblewrap) or use the Nix package, which brings its own",
    )
}

/// Finds `cell-init`: `$CELL_INIT`, else next to the running `cell` binary.
///
/// # Errors
/// When it is missing.
pub fn find_init(env: &crate::host::hostenv::HostEnv) -> anyhow::Result<Utf8PathBuf> {
    find_sibling(env, "CELL_INIT", "cell-init")
}

/// Finds `cell-egress`: `$CELL_EGRESS`, else next to the running `cell` binary.
///
/// # Errors
/// When it is missing.
pub fn find_egress(env: &crate::host::hostenv::HostEnv) -> anyhow::Result<Utf8PathBuf> {
    find_sibling(env, "CELL_EGRESS", "cell-egress")
}

/// Finds `cell-walflush`: `$CELL_WALFLUSH`, else next to the running `cell` binary.
///
/// # Errors
/// When it is missing.
pub fn find_walflush(env: &crate::host::hostenv::HostEnv) -> anyhow::Result<Utf8PathBuf> {
    find_sibling(env, "CELL_WALFLUSH", "cell-walflush")
}

fn find_sibling(env: &crate::host::hostenv::HostEnv, var: &str, name: &str) -> anyhow::Result<Utf8PathBuf> {
    if let Some(p) = env.var(var).filter(|p| !p.is_empty()) {
        let p = Utf8PathBuf::from(p);
        if is_executable(&p) {
            return Ok(p);
        }
        bail!("${var} names {p}, which is not an executable file");
    }
    let dir = own_dir()?;
    let path = dir.join(name);
    if is_executable(&path) {
        Ok(path)
    } else {
        bail!("{name} is missing: expected it at {path}, next to cell; {}", sibling_fix(&dir, var, name))
    }
}

/// The directory of the running `cell` binary, links resolved.
fn own_dir() -> anyhow::Result<Utf8PathBuf> {
    let exe = std::env::current_exe().context("cannot locate the running cell binary")?;
    let exe = exe.canonicalize().unwrap_or(exe);
    let dir = exe.parent().context("the cell binary has no parent directory")?;
    Utf8PathBuf::from_path_buf(dir.to_path_buf()).map_err(|p| anyhow::anyhow!("{} is not valid UTF-8", p.display()))
}

/// The command that puts a missing helper beside `cell` in `dir`: the whole tool installed
/// into the same prefix (`scripts/install`, which runs `cargo install --locked --path` for
/// each crate), or, for a binary in a build directory, the workspace built.
fn sibling_fix(dir: &Utf8Path, var: &str, name: &str) -> String {
    match dir.parent().filter(|_| dir.file_name() == Some("bin")) {
        Some(prefix) => format!(
            "install the whole tool into the same prefix, from a checkout of cell: scripts/install --root {prefix} \
             (or set ${var} to a {name} binary)"
        ),
        None => format!(
            "build every binary beside it: cargo build --workspace --bins in the checkout's rust/ directory \
             (or set ${var} to a {name} binary)"
        ),
    }
}

/// Whether this bubblewrap understands `--disable-userns` (0.8+). Asking costs one run of
/// `bwrap --help`, so the answer is cached per binary (path, size, modification time) in
/// `$XDG_CACHE_HOME/cell/bwrap-features`.
#[must_use]
pub fn bwrap_supports_disable_userns(bwrap: &Utf8Path, host: &crate::host::hostenv::HostEnv) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let key = std::fs::metadata(bwrap).map(|m| format!("{bwrap} {} {}.{}", m.size(), m.mtime(), m.mtime_nsec())).ok();
    let cache = host.cache_home().join("cell/bwrap-features");
    if let (Some(key), Ok(text)) = (&key, std::fs::read_to_string(&cache)) {
        for line in text.lines() {
            if let Some(answer) = line.strip_prefix(key.as_str()).and_then(|r| r.strip_prefix(" disable-userns=")) {
                return answer == "yes";
            }
        }
    }
    let supported = Command::new(bwrap)
        .arg("--help")
        .env_clear()
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--disable-userns"));
    if let Some(key) = key {
        if let Some(dir) = cache.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(&cache, format!("{key} disable-userns={}\n", if supported { "yes" } else { "no" }));
    }
    supported
}

/// The first executable `name` on `path`, skipping relative entries and entries in (or
/// resolving into) `skip`, and candidates whose resolved path lies in `skip`.
fn search_path(path: &str, name: &str, skip: &[Utf8PathBuf]) -> Option<Utf8PathBuf> {
    let skipped = |p: &Utf8Path| {
        skip.iter().any(|w| crate::host::plan::within(p.as_str(), w.as_str()))
            || p.canonicalize_utf8()
                .is_ok_and(|c| skip.iter().any(|w| crate::host::plan::within(c.as_str(), w.as_str())))
    };
    path.split(':')
        .filter(|d| d.starts_with('/'))
        .map(Utf8Path::new)
        .filter(|d| !skipped(d))
        .map(|d| d.join(name))
        .find(|p| is_executable(p) && !skipped(p))
}

/// Where a cell can write before any plan exists: the current directory (the default
/// worktree) and the cell homes, links resolved. Tool searches skip these; the plan's own
/// check then covers every writable mount.
#[must_use]
pub fn presumed_writable(env: &crate::host::hostenv::HostEnv) -> Vec<Utf8PathBuf> {
    let mut out = vec![env.cwd.clone(), env.data_home().join("cell")];
    let resolved: Vec<Utf8PathBuf> = out.iter().filter_map(|p| p.canonicalize_utf8().ok()).collect();
    out.extend(resolved);
    out
}
