//! `cell doctor`: can this host build a cell, and which defences does it support?

pub use crate::host::check::{Check, Status};
use std::process::Command;

use camino::Utf8Path;

use crate::host::hostenv::HostEnv;

pub(crate) fn check(name: &'static str, status: Status, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check { name, status, detail: detail.into(), fix: fix.into() }
}

/// Runs every check.
#[must_use]
pub fn run(host: &HostEnv) -> Vec<Check> {
    let mut out = Vec::new();
    // Not from the current directory or a cell home: the check runs what it finds.
    let bwrap = crate::host::tools::find_bwrap(host, &crate::host::tools::presumed_writable(host));
    match &bwrap {
        Ok(p) => {
            let version = Command::new(p)
                .arg("--version")
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_default();
            out.push(check("bubblewrap", Status::Pass, format!("{version} at {p}"), ""));
            out.push(bwrap_version(&version));
            out.push(bwrap_mount_kind(p, &version));
        }
        Err(e) => out.push(check("bubblewrap", Status::Fail, "not found", format!("{e:#}"))),
    }
    let init = crate::host::tools::find_init(host);
    match &init {
        Ok(p) => out.push(check("cell-init", Status::Pass, p.to_string(), "")),
        Err(e) => out.push(check("cell-init", Status::Fail, "not found: no cell can start", format!("{e:#}"))),
    }
    out.extend(helpers(host));
    out.extend(userns_checks(host));
    if let (Ok(b), Ok(i)) = (&bwrap, &init) {
        if host.is_root() {
            out.push(check(
                "jail probe",
                Status::Fail,
                "not probed: cells started by root run as their runAs account, and there is none usable (see above)",
                "fix the `cell account` line above",
            ));
        } else {
            out.push(probe(b, i, host));
        }
    }
    if let Ok(b) = &bwrap {
        out.push(if crate::host::tools::bwrap_supports_disable_userns(b, host) {
            check("--disable-userns", Status::Pass, "bubblewrap forbids nested user namespaces inside cells", "")
        } else {
            check(
                "--disable-userns",
                Status::Warn,
                "this bubblewrap (before 0.8) cannot forbid nested user namespaces; the seccomp filter still denies them",
                "upgrade bubblewrap to 0.8 or later for a second, independent defence",
            )
        });
    }
    out.push(seccomp());
    out.push(landlock());
    out.push(cgroup());
    out.push(crate::host::limits::doctor_check());
    out.push(runtime_dir(host));
    out
}

/// The host-side helpers a launch may need, found as a launch finds them
/// ([`crate::host::tools`]: `$CELL_EGRESS`/`$CELL_WALFLUSH`, else next to `cell`).
fn helpers(host: &HostEnv) -> Vec<Check> {
    let egress = match crate::host::tools::find_egress(host) {
        Ok(p) => check("cell-egress", Status::Pass, p.to_string(), ""),
        Err(e) => check(
            "cell-egress",
            Status::Fail,
            "not found: proxied cells cannot start (--allow, --network proxy, network.mode proxy, and every agent: \
             cell claude, codex, gemini, opencode); cells without a network still can",
            format!("{e:#}"),
        ),
    };
    let walflush = match crate::host::tools::find_walflush(host) {
        Ok(p) => check("cell-walflush", Status::Pass, p.to_string(), ""),
        Err(e) => check(
            "cell-walflush",
            Status::Warn,
            "not found: cell login refuses to run (it makes the browser's databases consistent with it); other cells start",
            format!("{e:#}"),
        ),
    };
    vec![egress, walflush]
}

fn userns_checks(host: &HostEnv) -> Vec<Check> {
    let mut out = Vec::new();
    match crate::sys::read_sysctl("/proc/sys/user/max_user_namespaces").and_then(|v| v.parse::<u64>().ok()) {
        Some(0) => out.push(check(
            "user namespaces",
            Status::Fail,
            "user.max_user_namespaces is 0",
            "sysctl -w user.max_user_namespaces=15000 (and persist it in /etc/sysctl.d)",
        )),
        Some(n) => out.push(check("user namespaces", Status::Pass, format!("max_user_namespaces = {n}"), "")),
        None => out.push(check(
            "user namespaces",
            Status::Fail,
            "the kernel has no user namespaces (/proc/sys/user/max_user_namespaces missing)",
            "use a kernel built with CONFIG_USER_NS=y",
        )),
    }
    if let Some(v) = crate::sys::read_sysctl("/proc/sys/kernel/unprivileged_userns_clone") {
        if v == "0" && !host.is_root() {
            out.push(check(
                "unprivileged user namespaces",
                Status::Fail,
                "kernel.unprivileged_userns_clone is 0",
                "sysctl -w kernel.unprivileged_userns_clone=1 (and persist it in /etc/sysctl.d)",
            ));
        }
    }
    match crate::sys::read_sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") {
        Some(v) if v == "1" && !host.is_root() => out.push(check(
            "AppArmor userns restriction",
            Status::Warn,
            "kernel.apparmor_restrict_unprivileged_userns is 1: bubblewrap needs an AppArmor profile granting `userns` (the jail probe below shows whether it has one)",
            "install an AppArmor profile for bwrap with `userns,` (Ubuntu 24.04 ships one in apparmor-profiles as bwrap-userns-restrict) or sysctl -w kernel.apparmor_restrict_unprivileged_userns=0",
        )),
        Some(v) => out.push(check("AppArmor userns restriction", Status::Pass, format!("apparmor_restrict_unprivileged_userns = {v}"), "")),
        None => out.push(check("AppArmor userns restriction", Status::Pass, "not present on this kernel", "")),
    }
    out
}

/// The first bubblewrap release that does not follow a symbolic link in a mount point's
/// parent through `/oldroot` onto the host during setup (CVE-2026-87766).
pub const BWRAP_FIXED: (u32, u32, u32) = (0, 12, 0);

/// `bubblewrap 0.8.0` -> (0, 8, 0).
fn parse_bwrap_version(text: &str) -> Option<(u32, u32, u32)> {
    let v = text.split_whitespace().find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
    let mut parts = v.split(|c: char| !c.is_ascii_digit()).map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next().flatten().unwrap_or(0), parts.next().flatten().unwrap_or(0)))
}

/// Warns about a bubblewrap with the symlink-following setup bug: cell makes mount points
/// under the worktree, which the agent controls between runs.
fn bwrap_version(version: &str) -> Check {
    let (a, b, c) = BWRAP_FIXED;
    let fix = format!(
        "install bubblewrap {a}.{b}.{c} or later (the Nix package of cell brings a current one: nix run .#cell, or \
         point $CELL_BWRAP at a fixed bwrap)"
    );
    match parse_bwrap_version(version) {
        Some(v) if v >= BWRAP_FIXED => check("bubblewrap version", Status::Pass, format!("{}.{}.{} is not affected by CVE-2026-87766", v.0, v.1, v.2), ""),
        Some(v) => check(
            "bubblewrap version",
            Status::Warn,
            format!(
                "{}.{}.{} is older than {a}.{b}.{c}: during setup it follows a symbolic link in a mount point's parent \
                 through /oldroot onto the host (CVE-2026-87766), and cell makes mount points under the worktree, \
                 which the agent controls (cell refuses links it finds there, but a link made while bubblewrap sets \
                 up is not seen)",
                v.0, v.1, v.2
            ),
            fix,
        ),
        None => check(
            "bubblewrap version",
            Status::Warn,
            format!("cannot read the version of this bubblewrap ({version:?}); versions before {a}.{b}.{c} have CVE-2026-87766"),
            fix,
        ),
    }
}

/// How a bubblewrap applies the flags of a bind mount (read-only, nosuid, nodev).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountKind {
    /// With `mount(MS_REMOUNT)` per mount, after re-reading `/proc/self/mountinfo` to find
    /// the submounts (0.8–0.11): each bind costs about 0.12 ms plus 2 µs per mount already
    /// there.
    Remount,
    /// With one `mount_setattr` call per bind (containers/bubblewrap#756).
    Setattr,
}

/// Which [`MountKind`] a bubblewrap binary has: one that calls `mount_setattr` names it (its
/// error messages do), the older ones never do.
#[must_use]
pub fn mount_kind(binary: &[u8]) -> MountKind {
    if binary.windows(b"mount_setattr".len()).any(|w| w == b"mount_setattr") {
        MountKind::Setattr
    } else {
        MountKind::Remount
    }
}

/// Binds (and data binds) of a plain default cell on this machine, for the estimate.
const TYPICAL_BINDS: u32 = 12;

/// `cell doctor`'s line about the mount kind of `bwrap` and what it costs a launch here.
fn bwrap_mount_kind(bwrap: &Utf8Path, version: &str) -> Check {
    let Ok(binary) = std::fs::read(bwrap) else {
        return check(
            "bubblewrap mounts",
            Status::Warn,
            format!("cannot read {bwrap} to tell how it applies mount flags"),
            "",
        );
    };
    match mount_kind(&binary) {
        MountKind::Setattr => check(
            "bubblewrap mounts",
            Status::Pass,
            format!("{version} applies mount flags with mount_setattr, one call per bind"),
            "",
        ),
        MountKind::Remount => {
            let host_mounts = std::fs::read_to_string("/proc/self/mountinfo").map_or(0, |t| t.lines().count());
            // Each bind re-reads the mount table of the cell's namespace, which holds the
            // host's mounts (under /oldroot) and the cell's own made so far.
            let per_bind_us = 120 + 2 * (u32::try_from(host_mounts).unwrap_or(u32::MAX / 4) + TYPICAL_BINDS / 2);
            let total_ms = f64::from(per_bind_us * TYPICAL_BINDS) / 1000.0;
            check(
                "bubblewrap mounts",
                Status::Pass,
                format!(
                    "{version} remounts each bind after re-reading /proc/self/mountinfo (bubblewrap 0.8-0.11): about \
                     {per_bind_us} us per bind with {host_mounts} host mounts, about {total_ms:.1} ms for the \
                     {TYPICAL_BINDS} binds of a default cell (estimated; bench/breakdown.sh measures it), paid by a \
                     bare bubblewrap call too; one with mount_setattr (containers/bubblewrap#756, the Nix package's \
                     kind when nixpkgs has it) applies each bind's flags in one call"
                ),
                "",
            )
        }
    }
}

/// Builds a real, minimal cell with every namespace and runs `cell-init --probe` in it.
fn probe(bwrap: &Utf8Path, init: &Utf8Path, host: &HostEnv) -> Check {
    let uid = host.uid.to_string();
    let gid = host.gid.to_string();
    let out = Command::new(bwrap)
        .args(crate::host::plan::ISOLATION)
        .args(["--uid", &uid, "--gid", &gid, "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--"])
        .arg(init)
        .arg("--probe")
        .env_clear()
        .output();
    match out {
        Ok(o) if o.status.success() => check("jail probe", Status::Pass, "a cell with every namespace unshared started", ""),
        Ok(o) => check(
            "jail probe",
            Status::Fail,
            format!("bubblewrap could not build a cell: {}", String::from_utf8_lossy(&o.stderr).trim()),
            "see the user-namespace lines above; inside a container, run cell on the host or give the container user namespaces",
        ),
        Err(e) => check("jail probe", Status::Fail, format!("cannot run {bwrap}: {e}"), "reinstall bubblewrap"),
    }
}

fn seccomp() -> Check {
    if crate::host::seccomp::seccomp_available() {
        let n = crate::host::seccomp::summary().len();
        check(
            "seccomp",
            Status::Pass,
            format!("filters supported; cells deny {n} system calls or uses of them (an ioctl's request, a flag)"),
            "",
        )
    } else {
        check(
            "seccomp",
            Status::Fail,
            "seccomp filters are not available, so cells with the default filter refuse to start",
            "use a kernel built with CONFIG_SECCOMP_FILTER=y (or, for debugging only, set security.unsafeAllowAllSyscalls)",
        )
    }
}

/// The Landlock ABI version, if the kernel has Landlock enabled.
#[must_use]
pub fn landlock_abi() -> Option<i64> {
    const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1;
    // SAFETY: landlock_create_ruleset with a null attribute and the VERSION flag only
    // returns a number; it creates nothing.
    let rc = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    (rc > 0).then_some(rc)
}

fn landlock() -> Check {
    match landlock_abi() {
        Some(abi) => check("landlock", Status::Pass, format!("ABI version {abi}"), ""),
        None => check(
            "landlock",
            Status::Warn,
            "Landlock is not enabled",
            "boot with lsm=...,landlock (kernel 5.13+); cells do not use it yet",
        ),
    }
}

fn cgroup() -> Check {
    if Utf8Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        check("cgroup v2", Status::Pass, "unified hierarchy mounted", "")
    } else {
        check(
            "cgroup v2",
            Status::Warn,
            "no unified cgroup hierarchy at /sys/fs/cgroup",
            "boot with systemd.unified_cgroup_hierarchy=1; resource limits need it",
        )
    }
}

fn runtime_dir(host: &HostEnv) -> Check {
    use std::os::unix::fs::MetadataExt as _;
    let Some(dir) = host.runtime_dir() else {
        let fallback = host.runtime_base();
        // Only a directory that exists and is the user's own is worth pointing at: a
        // variable naming a missing one breaks every proxied launch.
        let session = format!("/run/user/{}", host.uid);
        return match std::fs::metadata(&session) {
            Ok(m) if m.is_dir() && m.uid() == host.uid && m.mode() & 0o077 == 0 => check(
                "XDG_RUNTIME_DIR",
                Status::Warn,
                format!("not set, although your session directory {session} exists; cells use {fallback} meanwhile"),
                format!("export XDG_RUNTIME_DIR={session}"),
            ),
            _ => check(
                "XDG_RUNTIME_DIR",
                Status::Pass,
                format!(
                    "not set (no session directory {session}): the egress proxy's sockets go under {fallback}, a private \
                     directory cell makes, which is fine"
                ),
                "",
            ),
        };
    };
    match std::fs::metadata(&dir) {
        Ok(m) if m.is_dir() && m.uid() == host.uid && m.mode() & 0o077 == 0 => {
            check("XDG_RUNTIME_DIR", Status::Pass, format!("{dir} (private)"), "")
        }
        Ok(m) if m.is_dir() => check(
            "XDG_RUNTIME_DIR",
            Status::Warn,
            format!("{dir} is not private to you (mode {:o}, owner {})", m.mode() & 0o7777, m.uid()),
            format!("chmod 0700 {dir}, or point XDG_RUNTIME_DIR at a directory only you own"),
        ),
        _ => check(
            "XDG_RUNTIME_DIR",
            Status::Warn,
            format!("{dir} does not exist"),
            "create it with mode 0700 or fix the variable",
        ),
    }
}

/// Whether every check allows a cell to start.
#[must_use]
pub fn can_start(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.status != Status::Fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_bubblewrap_is_warned_about() {
        assert_eq!(parse_bwrap_version("bubblewrap 0.8.0"), Some((0, 8, 0)));
        assert_eq!(mount_kind(b"\0bwrap: Can't remount\0"), MountKind::Remount);
        assert_eq!(mount_kind(b"\0mount_setattr failed\0"), MountKind::Setattr);
        assert_eq!(parse_bwrap_version("bubblewrap 0.11"), Some((0, 11, 0)));
        assert_eq!(parse_bwrap_version("bubblewrap 0.12.1\n"), Some((0, 12, 1)));
        assert_eq!(bwrap_version("bubblewrap 0.11.9").status, Status::Warn);
        assert!(bwrap_version("bubblewrap 0.11.9").detail.contains("CVE-2026-87766"));
        assert_eq!(bwrap_version("bubblewrap 0.12.0").status, Status::Pass);
        assert_eq!(bwrap_version("bubblewrap 1.0.0").status, Status::Pass);
        assert_eq!(bwrap_version("").status, Status::Warn);
    }
}
