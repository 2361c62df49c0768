//! The escape catalog: attacks run from inside a real cell (by `cell-init --spec TASK`),
//! each reporting whether the cell held. `cell selftest` runs it against the user's own
//! cell; the integration tests run it against test cells.
//!
//! Probes use raw system calls where a tool would hide the answer: the catalog must work in
//! a cell that has nothing but `cell-init` in it.

use std::ffi::CString;
use std::io::{Read as _, Write as _};
use std::net::{TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;

use crate::contract::{ProbeContext, ProbeResult};
use camino::{Utf8Path, Utf8PathBuf};

fn errno_name(e: i32) -> String {
    nix::errno::Errno::from_raw(e).to_string()
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Runs a raw system call and reports `Ok(return)` or `Err(errno)`.
fn sys(nr: i64, args: [u64; 4]) -> Result<i64, i32> {
    // SAFETY: probes call system calls that either fail or act on resources of this
    // probe process; pointers passed are null or point to live locals.
    let rc = unsafe { nix::libc::syscall(nr, args[0], args[1], args[2], args[3]) };
    if rc < 0 {
        Err(last_errno())
    } else {
        Ok(rc)
    }
}

fn result(id: &str, ok: bool, detail: impl Into<String>) -> ProbeResult {
    ProbeResult { id: id.to_owned(), ok, detail: detail.into() }
}

/// Expects every call to fail with `want`; reports each outcome.
fn expect_errno(id: &str, want: i32, calls: &[(&str, Result<i64, i32>)]) -> ProbeResult {
    let mut ok = true;
    let mut seen = Vec::new();
    for (name, r) in calls {
        match r {
            Err(e) if *e == want => seen.push(format!("{name}: {}", errno_name(*e))),
            Err(e) => {
                ok = false;
                seen.push(format!("{name}: {} (expected {})", errno_name(*e), errno_name(want)));
            }
            Ok(v) => {
                ok = false;
                seen.push(format!("{name}: SUCCEEDED ({v})"));
            }
        }
    }
    result(id, ok, seen.join("; "))
}

fn readable(p: &Utf8Path) -> bool {
    std::fs::read(p).is_ok() || std::fs::read_dir(p).is_ok()
}

/// Runs every in-cell case.
#[must_use]
pub fn probe_all(ctx: &ProbeContext) -> Vec<ProbeResult> {
    vec![
        fs_read_outside(ctx),
        fs_write_outside(ctx),
        fs_symlink(ctx),
        fs_hardlink(ctx),
        fs_protected(ctx),
        fs_proc_root(ctx),
        fs_host_tmp(ctx),
        fs_proc_sys(),
        fs_setid(ctx),
        pk_pids(ctx),
        pk_ptrace(),
        pk_caps(),
        pk_tiocsti(),
        pk_io_uring(),
        pk_userns(),
        pk_mount(ctx),
        pk_kernel(),
        pk_syscall_abi(),
        pk_vsock(),
        pk_host_sockets(ctx),
        pk_background(ctx),
        nw_host_ports(ctx),
        nw_raw(),
        nw_routes(),
        nw_proxy(ctx),
    ]
}

fn fs_read_outside(ctx: &ProbeContext) -> ProbeResult {
    let mut leaks: Vec<String> = Vec::new();
    if std::fs::read_to_string(&ctx.secret_file).is_ok_and(|s| s.contains(&ctx.secret)) {
        leaks.push(ctx.secret_file.to_string());
    }
    // A host entry leaks when the file inside at its path is that very file (same device
    // and inode): the cell's own home may hold another of the same name.
    for h in &ctx.host_only_paths {
        let same = std::fs::symlink_metadata(&h.path).is_ok_and(|m| {
            use std::os::unix::fs::MetadataExt as _;
            m.dev() == h.dev && m.ino() == h.ino
        });
        if same && readable(&h.path) {
            leaks.push(h.path.to_string());
        }
    }
    if readable(&ctx.outside_dir) {
        leaks.push(ctx.outside_dir.to_string());
    }
    for p in ["/etc/shadow", "/root", "/run/user"] {
        if readable(Utf8Path::new(p)) {
            leaks.push(p.to_owned());
        }
    }
    result(
        "fs-read-outside",
        leaks.is_empty(),
        if leaks.is_empty() { "nothing readable".to_owned() } else { format!("READABLE: {}", leaks.join(", ")) },
    )
}

fn fs_write_outside(ctx: &ProbeContext) -> ProbeResult {
    let name = format!("cell-selftest-{}", ctx.background_token);
    let targets = [
        Utf8PathBuf::from(format!("/{name}")),
        Utf8PathBuf::from(format!("/etc/{name}")),
        Utf8PathBuf::from(format!("/usr/{name}")),
        ctx.outside_dir.join(&name),
    ];
    let wrote: Vec<String> =
        targets.iter().filter(|t| std::fs::write(t, "x").is_ok()).map(ToString::to_string).collect();
    // The host also checks the outside directory itself afterwards.
    result(
        "fs-write-outside",
        wrote.is_empty(),
        if wrote.is_empty() { "every write refused".to_owned() } else { format!("WROTE: {}", wrote.join(", ")) },
    )
}

fn fs_symlink(ctx: &ProbeContext) -> ProbeResult {
    let link = ctx.worktree.join("selftest-link");
    let _ = std::fs::remove_file(&link);
    if std::os::unix::fs::symlink(&ctx.secret_file, &link).is_err() {
        return result("fs-symlink", false, "could not create a symlink in the worktree");
    }
    let read = std::fs::read_to_string(&link).ok();
    let write = std::fs::write(&link, "overwritten").is_ok();
    let _ = std::fs::remove_file(&link);
    let ok = read.is_none() && !write;
    result("fs-symlink", ok, format!("read through link: {}, write through link: {}", read.is_some(), write))
}

fn fs_hardlink(ctx: &ProbeContext) -> ProbeResult {
    let target = ctx.worktree.join("selftest-hardlink");
    let made = std::fs::hard_link(&ctx.secret_file, &target).is_ok();
    let passwd = std::fs::hard_link("/etc/passwd", ctx.worktree.join("selftest-hardlink2")).is_ok();
    let _ = std::fs::remove_file(&target);
    let _ = std::fs::remove_file(ctx.worktree.join("selftest-hardlink2"));
    result("fs-hardlink", !made && !passwd, format!("host secret linked: {made}, /etc/passwd linked: {passwd}"))
}

fn fs_protected(ctx: &ProbeContext) -> ProbeResult {
    // Inside, writes to .git land in the cell's private git directory and .mcp.json and
    // .vscode/ may be created; the host side checks that none of it reached the host's
    // repository or stayed where host tools would run it.
    let w = &ctx.worktree;
    let mut broke = Vec::new();
    let mut did = Vec::new();
    if std::fs::write(w.join(".git/hooks/pre-commit"), "#!/bin/sh\n").is_ok() {
        did.push("wrote .git/hooks/pre-commit");
    }
    if std::fs::OpenOptions::new()
        .append(true)
        .open(w.join(".git/config"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"[core]\n\tfsmonitor = /tmp/evil\n"))
        .is_ok()
    {
        did.push("set core.fsmonitor in .git/config");
    }
    if std::fs::write(w.join(".mcp.json"), "{}").is_ok() {
        did.push("wrote .mcp.json");
    }
    if std::fs::create_dir_all(w.join(".vscode/x")).is_ok() {
        did.push("created .vscode/x");
    }
    if std::fs::OpenOptions::new().append(true).open(w.join(".envrc")).is_ok() {
        broke.push("opened the existing .envrc for writing");
    }
    if std::fs::rename(w.join(".git"), w.join(".git-moved")).is_ok() {
        broke.push("moved .git away");
        let _ = std::fs::rename(w.join(".git-moved"), w.join(".git"));
    }
    let detail = if broke.is_empty() {
        format!(
            "inside: {} (checked on the host after the cell)",
            if did.is_empty() { "nothing written".to_owned() } else { did.join(", ") }
        )
    } else {
        broke.join(", ")
    };
    result("fs-protected", broke.is_empty(), detail)
}

fn fs_proc_root(ctx: &ProbeContext) -> ProbeResult {
    let via1 = Utf8PathBuf::from(format!("/proc/1/root{}", ctx.secret_file));
    let via_self = Utf8PathBuf::from(format!("/proc/self/root{}", ctx.secret_file));
    let leak = readable(&via1) || readable(&via_self) || readable(Utf8Path::new("/proc/1/root/etc/shadow"));
    result(
        "fs-proc-root",
        !leak,
        if leak { "READ a host file through /proc/*/root" } else { "nothing outside the cell's view" },
    )
}

fn fs_host_tmp(ctx: &ProbeContext) -> ProbeResult {
    let seen = !ctx.host_tmp_entry.is_empty() && Utf8Path::new(&ctx.host_tmp_entry).exists();
    let entries = std::fs::read_dir("/tmp").map(Iterator::count).unwrap_or(0);
    result("fs-host-tmp", !seen, format!("host /tmp entry visible: {seen}; the cell's /tmp holds {entries} entries"))
}

/// Regular files below `dir` (no symlinks followed), appended to `out`.
fn files_below(dir: &Utf8Path, out: &mut Vec<Utf8PathBuf>) {
    let Ok(entries) = dir.read_dir_utf8() else { return };
    for e in entries.flatten() {
        match e.file_type() {
            Ok(t) if t.is_dir() => files_below(e.path(), out),
            Ok(t) if t.is_file() => out.push(e.path().to_owned()),
            _ => {}
        }
    }
}

fn fs_proc_sys() -> ProbeResult {
    // Opening for writing is the whole test: a read-only mount refuses the open itself, and
    // nothing is ever written (a self-test must not change the host's kernel settings).
    let mut files = Vec::new();
    for dir in ["/proc/sys", "/proc/irq", "/proc/bus"] {
        files_below(Utf8Path::new(dir), &mut files);
    }
    let sys_files = files.iter().filter(|f| f.starts_with("/proc/sys")).count();
    if Utf8Path::new("/proc/sysrq-trigger").exists() {
        files.push("/proc/sysrq-trigger".into());
    }
    let writable: Vec<String> = files
        .iter()
        .filter(|f| std::fs::OpenOptions::new().write(true).open(f).is_ok())
        .map(ToString::to_string)
        .collect();
    let core_pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").is_ok();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let own_hostname = hostname.trim() == uname_nodename();
    let mut conf: Vec<String> = Utf8Path::new("/proc/sys/net/ipv4/conf")
        .read_dir_utf8()
        .map(|d| d.flatten().map(|e| e.file_name().to_owned()).collect())
        .unwrap_or_default();
    conf.sort();
    let own_net = conf == ["all", "default", "lo"];
    let ok = writable.is_empty() && sys_files > 100 && core_pattern && own_hostname && own_net;
    let shown: Vec<&str> = writable.iter().take(8).map(String::as_str).collect();
    result(
        "fs-proc-sys",
        ok,
        format!(
            "{} of {} files opened for writing{}{}; {sys_files} under /proc/sys; kernel.core_pattern readable: {core_pattern}; \
             kernel.hostname is the cell's ({}): {own_hostname}; net.ipv4.conf lists {conf:?}",
            writable.len(),
            files.len(),
            if shown.is_empty() { String::new() } else { format!(": WRITABLE {}", shown.join(", ")) },
            if writable.len() > shown.len() { " ..." } else { "" },
            hostname.trim(),
        ),
    )
}

/// The node name `uname` reports (the cell's UTS namespace).
fn uname_nodename() -> String {
    // SAFETY: uname fills the zeroed struct it is given.
    let mut u: nix::libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable utsname.
    if unsafe { nix::libc::uname(&raw mut u) } != 0 {
        return String::new();
    }
    let bytes: Vec<u8> = u.nodename.iter().take_while(|c| **c != 0).map(|c| c.to_ne_bytes()[0]).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `struct open_how` of `openat2`.
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Every route to a setuid or setgid file, tried in `dir` with `mode`; each must fail with
/// EPERM (openat2 with ENOSYS). Returns the attempts, names included.
fn setid_attempts(dir: &Utf8Path, tag: &str, mode: u64) -> Vec<(String, i32, Result<i64, i32>)> {
    let at_fdcwd = u64::from_ne_bytes(i64::from(nix::libc::AT_FDCWD).to_ne_bytes());
    let c = |name: &str| CString::new(dir.join(name).as_str()).unwrap_or_default();
    let existing = c(&format!(".selftest-setid-{tag}-{mode:o}"));
    let _ = std::fs::write(existing.to_str().unwrap_or_default(), "#!/bin/sh\n");
    let p = |s: &CString| s.as_ptr() as u64;
    let creat = u64::try_from(nix::libc::O_CREAT | nix::libc::O_WRONLY).unwrap_or(0o101);
    let tmpfile = u64::try_from(nix::libc::O_TMPFILE | nix::libc::O_WRONLY).unwrap_or(0);
    let regular = u64::from(nix::libc::S_IFREG) | mode;
    let eperm = nix::libc::EPERM;
    let new1 = c(&format!(".selftest-setid-{tag}-{mode:o}-openat"));
    let new2 = c(&format!(".selftest-setid-{tag}-{mode:o}-mknodat"));
    let new3 = c(&format!(".selftest-setid-{tag}-{mode:o}-openat2"));
    let dir_c = CString::new(dir.as_str()).unwrap_or_default();
    let fd = std::fs::File::open(existing.to_str().unwrap_or_default());
    let fd = fd.as_ref().map(std::os::fd::AsRawFd::as_raw_fd).map_or(u64::MAX, |f| u64::try_from(f).unwrap_or(0));
    let how = OpenHow { flags: creat, mode, resolve: 0 };
    let how_ptr = std::ptr::from_ref(&how) as u64;
    let mut out = vec![
        ("fchmod".to_owned(), eperm, sys(nix::libc::SYS_fchmod, [fd, mode, 0, 0])),
        ("fchmodat".to_owned(), eperm, sys(nix::libc::SYS_fchmodat, [at_fdcwd, p(&existing), mode, 0])),
        ("fchmodat2".to_owned(), eperm, sys(crate::sys::SYS_FCHMODAT2, [at_fdcwd, p(&existing), mode, 0])),
        ("openat(O_CREAT)".to_owned(), eperm, sys(nix::libc::SYS_openat, [at_fdcwd, p(&new1), creat, mode])),
        ("openat(O_TMPFILE)".to_owned(), eperm, sys(nix::libc::SYS_openat, [at_fdcwd, p(&dir_c), tmpfile, mode])),
        ("mknodat(S_IFREG)".to_owned(), eperm, sys(nix::libc::SYS_mknodat, [at_fdcwd, p(&new2), regular, 0])),
        (
            "openat2(O_CREAT)".to_owned(),
            nix::libc::ENOSYS,
            sys(nix::libc::SYS_openat2, [at_fdcwd, p(&new3), how_ptr, 24]),
        ),
    ];
    out.extend(setid_attempts_legacy(dir, tag, mode, &existing));
    for (_, _, r) in &out {
        if let Ok(fd) = r {
            if *fd > 2 {
                let _ = nix::unistd::close(i32::try_from(*fd).unwrap_or(-1));
            }
        }
    }
    for (name, _, _) in &mut out {
        *name = format!("{name} {mode:o} in {tag}");
    }
    out
}

/// The x86-64 table's older calls (the generic table has none of them).
#[cfg(target_arch = "x86_64")]
fn setid_attempts_legacy(
    dir: &Utf8Path,
    tag: &str,
    mode: u64,
    existing: &CString,
) -> Vec<(String, i32, Result<i64, i32>)> {
    let c = |name: &str| CString::new(dir.join(name).as_str()).unwrap_or_default();
    let p = |s: &CString| s.as_ptr() as u64;
    let creat = u64::try_from(nix::libc::O_CREAT | nix::libc::O_WRONLY).unwrap_or(0o101);
    let new1 = c(&format!(".selftest-setid-{tag}-{mode:o}-open"));
    let new2 = c(&format!(".selftest-setid-{tag}-{mode:o}-creat"));
    let new3 = c(&format!(".selftest-setid-{tag}-{mode:o}-mknod"));
    let eperm = nix::libc::EPERM;
    vec![
        ("chmod".to_owned(), eperm, sys(nix::libc::SYS_chmod, [p(existing), mode, 0, 0])),
        ("open(O_CREAT)".to_owned(), eperm, sys(nix::libc::SYS_open, [p(&new1), creat, mode, 0])),
        ("creat".to_owned(), eperm, sys(nix::libc::SYS_creat, [p(&new2), mode, 0, 0])),
        (
            "mknod(S_IFREG)".to_owned(),
            eperm,
            sys(nix::libc::SYS_mknod, [p(&new3), u64::from(nix::libc::S_IFREG) | mode, 0, 0]),
        ),
    ]
}

#[cfg(not(target_arch = "x86_64"))]
fn setid_attempts_legacy(_: &Utf8Path, _: &str, _: u64, _: &CString) -> Vec<(String, i32, Result<i64, i32>)> {
    Vec::new()
}

/// Files directly in `dir` whose mode has `S_ISUID` or `S_ISGID`.
fn setid_files(dir: &Utf8Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt as _;
    let set_id = nix::libc::S_ISUID | nix::libc::S_ISGID;
    dir.read_dir_utf8()
        .map(|d| {
            d.flatten()
                .filter(|e| e.metadata().is_ok_and(|m| m.permissions().mode() & set_id != 0))
                .map(|e| e.path().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn fs_setid(ctx: &ProbeContext) -> ProbeResult {
    let mut attempts = Vec::new();
    let mut left = Vec::new();
    for (dir, tag) in [(ctx.worktree.as_path(), "worktree"), (Utf8Path::new("/tmp"), "tmp")] {
        for mode in [0o4755, 0o2755] {
            attempts.extend(setid_attempts(dir, tag, mode));
        }
        left.extend(setid_files(dir));
    }
    // The worktree's files stay for the host to check (in its own view) and sweep.
    if let Ok(d) = Utf8Path::new("/tmp").read_dir_utf8() {
        for e in d.flatten().filter(|e| e.file_name().starts_with(".selftest-setid-")) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let mut broke = Vec::new();
    let mut routes: Vec<&str> = Vec::new();
    for (name, want, r) in &attempts {
        let route = name.split(' ').next().unwrap_or(name);
        if !routes.contains(&route) {
            routes.push(route);
        }
        match r {
            Err(e) if e == want => {}
            Err(e) => broke.push(format!("{name}: {} (expected {})", errno_name(*e), errno_name(*want))),
            Ok(_) => broke.push(format!("{name}: SUCCEEDED")),
        }
    }
    if !left.is_empty() {
        let shown: Vec<&str> = left.iter().take(4).map(String::as_str).collect();
        broke.push(format!("{} SET-ID FILES MADE: {} ...", left.len(), shown.join(", ")));
    }
    let ok = broke.is_empty();
    let detail = if ok {
        format!(
            "{} attempts with modes 4755 and 2755 in the worktree and /tmp, each refused ({}: EPERM; openat2: ENOSYS)",
            attempts.len(),
            routes.iter().filter(|r| !r.starts_with("openat2")).copied().collect::<Vec<_>>().join(", ")
        )
    } else {
        broke.join("; ")
    };
    result("fs-setid", ok, detail)
}

fn pk_pids(ctx: &ProbeContext) -> ProbeResult {
    let pids: Vec<u32> = std::fs::read_dir("/proc")
        .map(|d| d.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default();
    let init = std::fs::read("/proc/1/cmdline").map(|c| String::from_utf8_lossy(&c).into_owned()).unwrap_or_default();
    let ok = pids.len() <= 16 && !pids.contains(&ctx.host_pid) && init.contains("cell-init");
    result(
        "pk-pids",
        ok,
        format!("{} processes visible, pid 1 = {}", pids.len(), init.split('\0').next().unwrap_or("?")),
    )
}

fn pk_ptrace() -> ProbeResult {
    const PTRACE_TRACEME: u64 = 0;
    const PTRACE_ATTACH: u64 = 16;
    const PTRACE_DETACH: u64 = 17;
    // The attempts run against a child of this probe, never against pid 1: a successful
    // attach would stop its target.
    // SAFETY: the probe is single-threaded here; the child only calls ptrace and _exit.
    let child = match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            let code = match sys(nix::libc::SYS_ptrace, [PTRACE_TRACEME, 0, 0, 0]) {
                Ok(_) => 0,
                Err(e) => e,
            };
            // Give the parent time to try attaching.
            std::thread::sleep(std::time::Duration::from_millis(200));
            // SAFETY: leaving the forked child without running destructors.
            unsafe { nix::libc::_exit(code) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => child,
        Err(e) => return result("pk-ptrace", false, format!("fork failed: {e}")),
    };
    let pid = u64::try_from(child.as_raw()).unwrap_or(0);
    let attach = sys(nix::libc::SYS_ptrace, [PTRACE_ATTACH, pid, 0, 0]);
    if attach.is_ok() {
        let _ = nix::sys::wait::waitpid(child, Some(nix::sys::wait::WaitPidFlag::__WALL));
        let _ = sys(nix::libc::SYS_ptrace, [PTRACE_DETACH, pid, 0, 0]);
    }
    let traceme = loop {
        match nix::sys::wait::waitpid(child, Some(nix::sys::wait::WaitPidFlag::__WALL)) {
            Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => break Ok(0),
            Ok(nix::sys::wait::WaitStatus::Exited(_, e)) => break Err(e),
            Ok(nix::sys::wait::WaitStatus::Signaled(..)) | Err(_) => break Err(0),
            Ok(_) => {}
        }
    };
    let mut local = [0u8; 8];
    let iov = [local.as_mut_ptr() as u64, 8u64];
    expect_errno(
        "pk-ptrace",
        nix::libc::EPERM,
        &[
            ("ptrace(TRACEME)", traceme),
            ("ptrace(ATTACH, own child)", attach),
            (
                "process_vm_readv(1)",
                sys(nix::libc::SYS_process_vm_readv, [1, iov.as_ptr() as u64, 1, iov.as_ptr() as u64]),
            ),
        ],
    )
}

fn pk_caps() -> ProbeResult {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |k: &str| status.lines().find_map(|l| l.strip_prefix(k)).map(str::trim).unwrap_or("?").to_owned();
    let (eff, prm, nnp) = (field("CapEff:"), field("CapPrm:"), field("NoNewPrivs:"));
    let ok = eff.chars().all(|c| c == '0') && prm.chars().all(|c| c == '0') && nnp == "1";
    result("pk-caps", ok, format!("CapEff {eff}, CapPrm {prm}, NoNewPrivs {nnp}"))
}

fn pk_tiocsti() -> ProbeResult {
    let c: u8 = b'x';
    let ptr = std::ptr::from_ref(&c) as u64;
    expect_errno(
        "pk-tiocsti",
        nix::libc::EPERM,
        &[
            ("ioctl(0, TIOCSTI)", sys(nix::libc::SYS_ioctl, [0, 0x5412, ptr, 0])),
            ("ioctl(1, TIOCSTI)", sys(nix::libc::SYS_ioctl, [1, 0x5412, ptr, 0])),
            ("ioctl(0, TIOCLINUX)", sys(nix::libc::SYS_ioctl, [0, 0x541C, ptr, 0])),
        ],
    )
}

fn pk_io_uring() -> ProbeResult {
    let mut params = [0u8; 120];
    let p = params.as_mut_ptr() as u64;
    let r = sys(nix::libc::SYS_io_uring_setup, [1, p, 0, 0]);
    if let Ok(fd) = r {
        let _ = nix::unistd::close(i32::try_from(fd).unwrap_or(-1));
    }
    expect_errno(
        "pk-io-uring",
        nix::libc::EPERM,
        &[
            ("io_uring_setup", r),
            ("io_uring_enter", sys(nix::libc::SYS_io_uring_enter, [0, 0, 0, 0])),
            ("io_uring_register", sys(nix::libc::SYS_io_uring_register, [0, 0, 0, 0])),
        ],
    )
}

fn pk_userns() -> ProbeResult {
    const CLONE_NEWUSER: u64 = 0x1000_0000;
    const CLONE_NEWNS: u64 = 0x0002_0000;
    let mut calls = vec![
        ("unshare(NEWUSER)", sys(nix::libc::SYS_unshare, [CLONE_NEWUSER, 0, 0, 0])),
        ("unshare(NEWNS)", sys(nix::libc::SYS_unshare, [CLONE_NEWNS, 0, 0, 0])),
    ];
    // clone with CLONE_NEWUSER: on success the child exits at once.
    let r = sys(nix::libc::SYS_clone, [CLONE_NEWUSER | u64::try_from(nix::libc::SIGCHLD).unwrap_or(17), 0, 0, 0]);
    match r {
        Ok(0) => {
            // SAFETY: the child of a raw clone leaves immediately without touching shared state.
            unsafe { nix::libc::_exit(0) }
        }
        Ok(pid) => {
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap_or(0)), None);
        }
        Err(_) => {}
    }
    calls.push(("clone(NEWUSER)", r));
    let ns = std::fs::File::open("/proc/self/ns/net");
    let fd = ns.as_ref().map(std::os::fd::AsRawFd::as_raw_fd).unwrap_or(-1);
    calls.push(("setns(net)", sys(nix::libc::SYS_setns, [u64::try_from(fd).unwrap_or(0), 0, 0, 0])));
    // EPERM from the seccomp filter; ENOSPC from bubblewrap's --disable-userns (a user
    // namespace limit of zero) when the filter is off. Either way nothing nests.
    let calls: Vec<(&str, Result<i64, i32>)> = calls
        .into_iter()
        .map(|(n, r)| (n, if r == Err(nix::libc::ENOSPC) { Err(nix::libc::EPERM) } else { r }))
        .collect();
    let mut res = expect_errno("pk-userns", nix::libc::EPERM, &calls);
    // clone3 must answer ENOSYS (its flags are out of a filter's sight).
    let args = [0u64; 11];
    match sys(nix::libc::SYS_clone3, [args.as_ptr() as u64, 88, 0, 0]) {
        Err(e) if e == nix::libc::ENOSYS => res.detail.push_str("; clone3: ENOSYS"),
        Ok(0) => {
            // SAFETY: as above.
            unsafe { nix::libc::_exit(0) }
        }
        other => {
            res.ok = false;
            res.detail.push_str(&format!("; clone3: {other:?} (expected ENOSYS)"));
        }
    }
    res
}

fn pk_mount(ctx: &ProbeContext) -> ProbeResult {
    let tmpfs = CString::new("tmpfs").unwrap_or_default();
    let target = CString::new("/tmp").unwrap_or_default();
    let hooks = CString::new(ctx.worktree.join(".git/hooks").as_str()).unwrap_or_default();
    expect_errno(
        "pk-mount",
        nix::libc::EPERM,
        &[
            (
                "mount(tmpfs)",
                sys(nix::libc::SYS_mount, [tmpfs.as_ptr() as u64, target.as_ptr() as u64, tmpfs.as_ptr() as u64, 0]),
            ),
            ("umount2(.git/hooks)", sys(nix::libc::SYS_umount2, [hooks.as_ptr() as u64, 2, 0, 0])),
            ("fsopen(tmpfs)", sys(nix::libc::SYS_fsopen, [tmpfs.as_ptr() as u64, 0, 0, 0])),
            ("open_tree(/)", sys(nix::libc::SYS_open_tree, [u64::MAX - 99, target.as_ptr() as u64, 1, 0])),
            // open_tree with mount attributes (Linux 6.15): without the filter, a descriptor.
            (
                "open_tree_attr(/tmp)",
                sys(crate::sys::SYS_OPEN_TREE_ATTR, [u64::MAX - 99, target.as_ptr() as u64, 0, 0]),
            ),
            ("pivot_root", sys(nix::libc::SYS_pivot_root, [target.as_ptr() as u64, target.as_ptr() as u64, 0, 0])),
        ],
    )
}

fn pk_kernel() -> ProbeResult {
    let zeros = [0u8; 128];
    let z = zeros.as_ptr() as u64;
    // A struct timex (208 bytes on 64-bit Linux), modes 0: a read the kernel writes back.
    let mut timex = [0u8; 256];
    expect_errno(
        "pk-kernel",
        nix::libc::EPERM,
        &[
            ("bpf", sys(nix::libc::SYS_bpf, [0, z, 64, 0])),
            ("perf_event_open", sys(nix::libc::SYS_perf_event_open, [z, 0, u64::MAX, u64::MAX])),
            ("userfaultfd", sys(nix::libc::SYS_userfaultfd, [0, 0, 0, 0])),
            ("keyctl", sys(nix::libc::SYS_keyctl, [0, 0, 0, 0])),
            ("kexec_load", sys(nix::libc::SYS_kexec_load, [0, 0, 0, 0])),
            ("init_module", sys(nix::libc::SYS_init_module, [z, 0, z, 0])),
            // Reading the clock's state (modes 0) works without the filter.
            ("adjtimex(read)", sys(nix::libc::SYS_adjtimex, [timex.as_mut_ptr() as u64, 0, 0, 0])),
            // A bad descriptor: EBADF without the filter.
            ("quotactl_fd", sys(nix::libc::SYS_quotactl_fd, [u64::from(u32::MAX), 0, 0, 0])),
        ],
    )
}

fn pk_syscall_abi() -> ProbeResult {
    const READ_IMPLIES_EXEC: u64 = 0x0040_0000;
    let mut res = expect_errno(
        "pk-syscall-abi",
        nix::libc::EPERM,
        &[("personality(READ_IMPLIES_EXEC)", sys(nix::libc::SYS_personality, [READ_IMPLIES_EXEC, 0, 0, 0]))],
    );
    // Querying the personality stays allowed (programs do it).
    if sys(nix::libc::SYS_personality, [0xffff_ffff, 0, 0, 0]).is_err() {
        res.ok = false;
        res.detail.push_str("; personality(query) was refused");
    }
    abi_entries(&mut res);
    res
}

/// x86-64 only: the x32 table (number `| 0x4000_0000`) must answer EPERM, and an `int 0x80`
/// (the i386 table) must kill the process.
#[cfg(target_arch = "x86_64")]
fn abi_entries(res: &mut ProbeResult) {
    match sys(0x4000_0000 + nix::libc::SYS_getpid, [0, 0, 0, 0]) {
        Err(e) if e == nix::libc::EPERM => res.detail.push_str("; x32 getpid: EPERM"),
        other => {
            res.ok = false;
            res.detail.push_str(&format!("; x32 getpid: {other:?} (expected EPERM)"));
        }
    }
    // SAFETY: the child only runs one i386 system call (getpid, 20) and exits.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            let mut eax: u32 = 20;
            // SAFETY: int 0x80 with getpid's number and no arguments.
            unsafe { std::arch::asm!("int 0x80", inout("eax") eax, options(nostack)) };
            // SAFETY: leaving the forked child without running destructors.
            unsafe { nix::libc::_exit(i32::from(eax == 0)) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => match nix::sys::wait::waitpid(child, None) {
            Ok(nix::sys::wait::WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGSYS, _)) => {
                res.detail.push_str("; int 0x80: killed (SIGSYS)");
            }
            other => {
                res.ok = false;
                res.detail.push_str(&format!("; int 0x80: {other:?} (expected death by SIGSYS)"));
            }
        },
        Err(e) => {
            res.ok = false;
            res.detail.push_str(&format!("; fork failed: {e}"));
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn abi_entries(_res: &mut ProbeResult) {}

fn pk_vsock() -> ProbeResult {
    let r = sys(nix::libc::SYS_socket, [40, 1, 0, 0]);
    if let Ok(fd) = r {
        let _ = nix::unistd::close(i32::try_from(fd).unwrap_or(-1));
    }
    expect_errno("pk-vsock", nix::libc::EPERM, &[("socket(AF_VSOCK)", r)])
}

fn pk_host_sockets(ctx: &ProbeContext) -> ProbeResult {
    let mut reached = Vec::new();
    let mut tried = Vec::new();
    for p in &ctx.host_sockets {
        tried.push(p.to_string());
        if UnixStream::connect(p).is_ok() {
            reached.push(p.to_string());
        }
    }
    for name in [ctx.host_abstract.as_str(), "/tmp/.X11-unix/X0", "/tmp/.X11-unix/X1"] {
        tried.push(format!("@{name}"));
        if connect_abstract(name) {
            reached.push(format!("@{name}"));
        }
    }
    let detail = if reached.is_empty() {
        format!("none reachable of {}", tried.join(", "))
    } else {
        format!("REACHED: {}", reached.join(", "))
    };
    result("pk-host-sockets", reached.is_empty(), detail)
}

fn connect_abstract(name: &str) -> bool {
    use std::os::linux::net::SocketAddrExt as _;
    std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        .and_then(|a| UnixStream::connect_addr(&a))
        .is_ok()
}

fn pk_background(ctx: &ProbeContext) -> ProbeResult {
    // A detached sleeper in a new session; the host looks for its token after the cell.
    let spawned = std::process::Command::new("/run/cell/cell-init")
        .args(["--probe-sleep", &ctx.background_token])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    result(
        "pk-background",
        spawned.is_ok(),
        if spawned.is_ok() {
            "started; the host checks it died with the cell"
        } else {
            "could not start the background process"
        },
    )
}

fn nw_host_ports(ctx: &ProbeContext) -> ProbeResult {
    let tcp = TcpStream::connect(("127.0.0.1", ctx.host_tcp_port)).is_ok();
    let udp =
        UdpSocket::bind("127.0.0.1:0").and_then(|s| s.send_to(b"cell-selftest", ("127.0.0.1", ctx.host_udp_port)));
    // A send "succeeds" locally; the host checks that nothing arrived.
    result(
        "nw-host-ports",
        !tcp,
        format!(
            "tcp connect to host port: {}, udp datagram sent: {}",
            if tcp { "CONNECTED" } else { "refused" },
            udp.is_ok()
        ),
    )
}

fn nw_raw() -> ProbeResult {
    let calls = [
        ("socket(AF_INET, SOCK_RAW)", sys(nix::libc::SYS_socket, [2, 3, 1, 0])),
        ("socket(AF_PACKET, SOCK_RAW)", sys(nix::libc::SYS_socket, [17, 3, 0x0300, 0])),
    ];
    for (_, r) in &calls {
        if let Ok(fd) = r {
            let _ = nix::unistd::close(i32::try_from(*fd).unwrap_or(-1));
        }
    }
    expect_errno("nw-raw", nix::libc::EPERM, &calls)
}

fn nw_routes() -> ProbeResult {
    let dev = std::fs::read_to_string("/proc/net/dev").unwrap_or_default();
    let ifaces: Vec<&str> = dev.lines().skip(2).filter_map(|l| l.split(':').next()).map(str::trim).collect();
    let routes = std::fs::read_to_string("/proc/net/route").unwrap_or_default().lines().count().saturating_sub(1);
    let routes6 = std::fs::read_to_string("/proc/net/ipv6_route")
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.ends_with(" lo") && !l.trim().is_empty())
        .count();
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let nameserver = resolv.lines().any(|l| l.trim_start().starts_with("nameserver"));
    let ok = ifaces == ["lo"] && routes == 0 && routes6 == 0 && !nameserver;
    result(
        "nw-routes",
        ok,
        format!(
            "interfaces {ifaces:?}, {routes} IPv4 routes, {routes6} non-loopback IPv6 routes, nameserver: {nameserver}"
        ),
    )
}

/// Sends a CONNECT for `target` to `port` and returns the status line.
fn connect_via(port: u16, target: &str) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return "(no proxy)".to_owned() };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    let _ = write!(s, "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or("(closed)").to_owned()
}

fn nw_proxy(ctx: &ProbeContext) -> ProbeResult {
    if !ctx.proxy {
        // cell-init answers the proxy port itself: every request is refused, the host's
        // loopback port too (no sidecar, no route: nothing is forwarded).
        let direct = connect_via(3128, "cell-selftest-denied.invalid:443");
        let host = connect_via(3128, &format!("127.0.0.1:{}", ctx.host_tcp_port));
        let off = |l: &str| l.contains(" 403 ") && l.contains("the network is off");
        return result(
            "nw-proxy",
            off(&direct) && off(&host),
            format!("network mode none: the proxy port only refuses: {direct}; host port: {host}"),
        );
    }
    let denied = "cell-selftest-denied.invalid:443";
    let loopback = format!("127.1:{}", ctx.host_tcp_port);
    let direct = connect_via(3128, denied);
    let spelled = connect_via(3128, &loopback);
    // A relay inside the cell must not launder a denied CONNECT.
    let relay = std::net::TcpListener::bind("127.0.0.1:0").ok().and_then(|l| {
        let port = l.local_addr().ok()?.port();
        std::thread::spawn(move || {
            if let Ok((mut inbound, _)) = l.accept() {
                if let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", 3128)) {
                    let mut a = inbound.try_clone().ok();
                    let mut b = outbound.try_clone().ok();
                    std::thread::spawn(move || {
                        if let (Some(a), Some(b)) = (a.as_mut(), b.as_mut()) {
                            let _ = std::io::copy(a, b);
                        }
                    });
                    let _ = std::io::copy(&mut outbound, &mut inbound);
                }
            }
        });
        Some(connect_via(port, denied))
    });
    let relayed = relay.unwrap_or_else(|| "(relay failed)".to_owned());
    let refused = |l: &str| l.contains(" 403") || l.contains(" 400");
    let ok = refused(&direct) && refused(&spelled) && refused(&relayed);
    result("nw-proxy", ok, format!("denied name: {direct}; loopback as 127.1: {spelled}; relayed: {relayed}"))
}

/// `cell-init --spec TASK` with a [`crate::contract::InitSpec::ProbeCatalog`]: runs the
/// in-cell cases and writes one JSON line per case to `results`.
///
/// # Errors
/// When the results cannot be written.
pub fn run_probes(ctx: &ProbeContext, results: &Utf8Path) -> anyhow::Result<u8> {
    let mut out = String::new();
    for r in probe_all(ctx) {
        out.push_str(&serde_json::to_string(&r)?);
        out.push('\n');
    }
    std::fs::write(results, out)?;
    Ok(0)
}
