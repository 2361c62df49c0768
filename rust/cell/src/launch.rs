//! Executing a plan: bubblewrap as a child, its status pipe, signal forwarding, exit status.

use std::io::{Seek as _, Write as _};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::process::Command;

use anyhow::{bail, Context as _};
use camino::{Utf8Path, Utf8PathBuf};
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::plan::{self, Plan};

/// Exit code when the cell could not be started (the host cannot isolate, bubblewrap failed).
pub const EXIT_CANNOT_START: u8 = 125;

/// Signals the launcher passes on to the cell's init.
const FORWARDED: [Signal; 7] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// Source descriptors are parked at or above this number so moving them to their fixed
/// targets never overwrites one another.
const PARK_FD: RawFd = 100;

/// Finds bubblewrap: `$CELL_BWRAP` (set by the Nix wrapper), else `bwrap` on `PATH`.
///
/// # Errors
/// When neither exists.
pub fn find_bwrap(env: &crate::hostenv::HostEnv) -> anyhow::Result<Utf8PathBuf> {
    if let Some(p) = env.var("CELL_BWRAP").filter(|p| !p.is_empty()) {
        let p = Utf8PathBuf::from(p);
        if is_executable(&p) {
            return Ok(p);
        }
        bail!("$CELL_BWRAP names {p}, which is not an executable file; unset it or point it at bubblewrap");
    }
    search_path(env.var("PATH").unwrap_or("/usr/bin:/bin"), "bwrap").context(
        "bubblewrap (bwrap) is not installed or not on PATH; install it (Debian/Ubuntu: apt install bubblewrap, Fedora: dnf install bubblewrap, Arch: pacman -S bubblewrap) or use the Nix package, which brings its own",
    )
}

/// Finds `cell-init`: `$CELL_INIT`, else next to the running `cell` binary.
///
/// # Errors
/// When it is missing.
pub fn find_init(env: &crate::hostenv::HostEnv) -> anyhow::Result<Utf8PathBuf> {
    if let Some(p) = env.var("CELL_INIT").filter(|p| !p.is_empty()) {
        let p = Utf8PathBuf::from(p);
        if is_executable(&p) {
            return Ok(p);
        }
        bail!("$CELL_INIT names {p}, which is not an executable file");
    }
    let exe = std::env::current_exe().context("cannot locate the running cell binary")?;
    let exe = exe.canonicalize().unwrap_or(exe);
    let dir = exe.parent().context("the cell binary has no parent directory")?;
    let init = Utf8PathBuf::from_path_buf(dir.join("cell-init"))
        .map_err(|p| anyhow::anyhow!("{} is not valid UTF-8", p.display()))?;
    if is_executable(&init) {
        Ok(init)
    } else {
        bail!("cell-init is missing: expected it at {init}, next to cell; reinstall cell with all its binaries")
    }
}

fn is_executable(p: &Utf8Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn search_path(path: &str, name: &str) -> Option<Utf8PathBuf> {
    path.split(':').filter(|d| d.starts_with('/')).map(|d| Utf8Path::new(d).join(name)).find(|p| is_executable(p))
}

/// Marks every inherited descriptor above stderr close-on-exec, so nothing the caller left
/// open reaches bubblewrap or the cell.
pub fn seal_inherited_fds() {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<RawFd> = dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).filter(|fd| *fd > 2).collect();
    for fd in fds {
        // SAFETY: fcntl on a descriptor number; a stale number fails harmlessly with EBADF.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let _ = fcntl(borrowed, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
    }
}

/// Creates the cell's home directory (mode 0700) if needed.
///
/// # Errors
/// When it cannot be created.
pub fn prepare_home(home: &Utf8Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(home).with_context(|| format!("cannot create the cell home {home}"))?;
    std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot make the cell home {home} private (0700)"))?;
    Ok(())
}

fn park(fd: &OwnedFd) -> anyhow::Result<OwnedFd> {
    fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(PARK_FD))
        .context("cannot duplicate a descriptor")
        // SAFETY: F_DUPFD_CLOEXEC returned a fresh descriptor that we now own.
        .map(|raw| unsafe { OwnedFd::from_raw_fd(raw) })
}

fn memfd(name: &str, contents: &str) -> anyhow::Result<OwnedFd> {
    use nix::sys::memfd::{memfd_create, MFdFlags};
    let fd = memfd_create(name, MFdFlags::MFD_CLOEXEC).context("memfd_create failed")?;
    let mut file = std::fs::File::from(fd);
    file.write_all(contents.as_bytes()).context("cannot write a generated file")?;
    file.rewind().context("cannot rewind a generated file")?;
    park(&OwnedFd::from(file))
}

/// What became of a launch.
#[derive(Debug)]
pub enum Outcome {
    /// The cell ran; this is the command's exit code (128+N for signal N).
    Exited(u8),
    /// bubblewrap could not build the cell; its exit code.
    SetupFailed(u8),
}

/// Runs a plan and waits for the cell to end.
///
/// # Errors
/// When bubblewrap cannot be started or signals cannot be managed.
pub fn execute(plan: &Plan) -> anyhow::Result<Outcome> {
    seal_inherited_fds();
    prepare_home(&plan.home)?;

    let (status_read, status_write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("cannot create a pipe")?;
    let mut moves: Vec<(OwnedFd, RawFd)> = vec![(park(&status_write)?, plan::STATUS_FD)];
    drop(status_write);
    for (i, f) in plan.files.iter().enumerate() {
        moves.push((memfd(f.dst.as_str(), &f.contents)?, plan::data_fd(i)));
    }
    let pairs: Vec<(RawFd, RawFd)> = moves.iter().map(|(fd, target)| (fd.as_raw_fd(), *target)).collect();

    let mut forwarded = SigSet::empty();
    forwarded.add(Signal::SIGCHLD);
    for s in FORWARDED {
        forwarded.add(s);
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&forwarded), None).context("cannot block signals")?;

    let (program, args) = plan.argv.split_first().context("empty bubblewrap command line")?;
    let mut cmd = Command::new(program);
    cmd.args(args).env_clear().envs(&plan.env).process_group(0);
    // SAFETY: the closure only calls pthread_sigmask and dup2, which are async-signal-safe; the sources were
    // parked above every target, so no move overwrites a source still to be moved.
    unsafe {
        cmd.pre_exec(move || {
            unblock_all_signals()?;
            for (src, target) in &pairs {
                if nix::libc::dup2(*src, *target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn().with_context(|| format!("cannot start bubblewrap ({program})"))?;
    drop(moves);
    let bwrap = Pid::from_raw(i32::try_from(child.id()).context("pid out of range")?);

    // The read end stays open until bubblewrap exits: it writes its exit status there too.
    let mut status = std::io::BufReader::new(std::fs::File::from(status_read));
    let Some(init) = read_child_pid(&mut status) else {
        let code = wait_exit(bwrap)?;
        return Ok(Outcome::SetupFailed(code));
    };
    loop {
        let sig = forwarded.wait().context("waiting for signals")?;
        if sig == Signal::SIGCHLD {
            match waitpid(bwrap, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(Outcome::Exited(u8::try_from(code).unwrap_or(1))),
                Ok(WaitStatus::Signaled(_, s, _)) => {
                    return Ok(Outcome::Exited(128u8.saturating_add(u8::try_from(s as i32).unwrap_or(0))))
                }
                _ => {}
            }
        } else {
            let _ = kill(init, sig);
        }
    }
}

/// Clears the signal mask; for use between fork and exec.
///
/// # Errors
/// When `pthread_sigmask` fails.
pub fn unblock_all_signals() -> std::io::Result<()> {
    // SAFETY: sigemptyset and pthread_sigmask are async-signal-safe and only touch the
    // local set and this thread's mask.
    unsafe {
        let mut set: nix::libc::sigset_t = std::mem::zeroed();
        nix::libc::sigemptyset(&raw mut set);
        if nix::libc::pthread_sigmask(nix::libc::SIG_SETMASK, &raw const set, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Reads bubblewrap's status pipe until it reports the cell's first process (its host pid).
/// `None` means bubblewrap ended before starting anything.
fn read_child_pid(status: &mut impl std::io::Read) -> Option<Pid> {
    let stream = serde_json::Deserializer::from_reader(status).into_iter::<serde_json::Value>();
    for value in stream {
        let value = value.ok()?;
        if let Some(pid) = value.get("child-pid").and_then(serde_json::Value::as_i64) {
            return i32::try_from(pid).ok().map(Pid::from_raw);
        }
    }
    None
}

fn wait_exit(pid: Pid) -> anyhow::Result<u8> {
    loop {
        match waitpid(pid, None).context("waiting for bubblewrap")? {
            WaitStatus::Exited(_, code) => return Ok(u8::try_from(code).unwrap_or(1)),
            WaitStatus::Signaled(_, s, _) => return Ok(128u8.saturating_add(u8::try_from(s as i32).unwrap_or(0))),
            _ => {}
        }
    }
}
