//! `cell doctor`: can this host build a cell, and which defences does it support?

use std::fmt;
use std::process::Command;

use camino::Utf8Path;

use crate::hostenv::HostEnv;

/// Result of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Works.
    Pass,
    /// Works, but something is missing that a later feature or a stricter cell needs.
    Warn,
    /// A cell cannot start.
    Fail,
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// Outcome.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// How to fix it (empty when it passes).
    pub fix: String,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.status {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        write!(f, "[{tag}] {}: {}", self.name, self.detail)?;
        if !self.fix.is_empty() {
            write!(f, "\n       fix: {}", self.fix)?;
        }
        Ok(())
    }
}

fn check(name: &'static str, status: Status, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check { name, status, detail: detail.into(), fix: fix.into() }
}

fn read_sysctl(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

/// Runs every check.
#[must_use]
pub fn run(host: &HostEnv) -> Vec<Check> {
    let mut out = Vec::new();
    let bwrap = crate::launch::find_bwrap(host);
    match &bwrap {
        Ok(p) => {
            let version = Command::new(p)
                .arg("--version")
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_default();
            out.push(check("bubblewrap", Status::Pass, format!("{version} at {p}"), ""));
        }
        Err(e) => out.push(check("bubblewrap", Status::Fail, "not found", format!("{e:#}"))),
    }
    let init = crate::launch::find_init(host);
    match &init {
        Ok(p) => out.push(check("cell-init", Status::Pass, p.to_string(), "")),
        Err(e) => out.push(check("cell-init", Status::Fail, "not found", format!("{e:#}"))),
    }
    out.extend(userns_checks(host));
    if let (Ok(b), Ok(i)) = (&bwrap, &init) {
        out.push(probe(b, i, host));
    }
    if let Ok(b) = &bwrap {
        out.push(if crate::launch::bwrap_supports_disable_userns(b, host) {
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
    out.push(crate::limits::doctor_check());
    out.push(runtime_dir(host));
    out
}

fn userns_checks(host: &HostEnv) -> Vec<Check> {
    let mut out = Vec::new();
    match read_sysctl("/proc/sys/user/max_user_namespaces").and_then(|v| v.parse::<u64>().ok()) {
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
    if let Some(v) = read_sysctl("/proc/sys/kernel/unprivileged_userns_clone") {
        if v == "0" && !host.is_root() {
            out.push(check(
                "unprivileged user namespaces",
                Status::Fail,
                "kernel.unprivileged_userns_clone is 0",
                "sysctl -w kernel.unprivileged_userns_clone=1 (and persist it in /etc/sysctl.d)",
            ));
        }
    }
    match read_sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") {
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

/// Builds a real, minimal cell with every namespace and runs `cell-init --probe` in it.
fn probe(bwrap: &Utf8Path, init: &Utf8Path, host: &HostEnv) -> Check {
    let uid = if host.is_root() { 1000 } else { host.uid }.to_string();
    let gid = if host.is_root() { 1000 } else { host.gid }.to_string();
    let out = Command::new(bwrap)
        .args(crate::plan::ISOLATION)
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

/// Whether the kernel can apply the cell's seccomp filter.
#[must_use]
pub fn seccomp_available() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let actions = read_sysctl("/proc/sys/kernel/seccomp/actions_avail");
    // Kernels without actions_avail (before 4.14) still filter; a missing Seccomp line
    // means no seccomp at all.
    status.lines().any(|l| l.starts_with("Seccomp:")) && actions.is_none_or(|a| a.contains("errno"))
}

fn seccomp() -> Check {
    if seccomp_available() {
        let n = crate::seccomp::summary().len();
        check("seccomp", Status::Pass, format!("filters supported; cells deny {n} system calls and uses"), "")
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
        return check(
            "XDG_RUNTIME_DIR",
            Status::Warn,
            "not set",
            "log in through a session manager (systemd-logind sets it) or export XDG_RUNTIME_DIR=/run/user/$(id -u); the egress proxy keeps its socket there",
        );
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
