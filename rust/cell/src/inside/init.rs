//! The in-cell init (`cell-init`): supervision of the cell's command.

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::process::Command;

use anyhow::{bail, Context as _};
use camino::Utf8Path;
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::contract::{InitSpec, Launch, EXIT_INIT_FAILED, EXIT_NOT_FOUND, FORWARDED, SPEC_FILE};

/// Runs `cell-init ARGS`: `--spec PATH` (what the launcher asks, see [`InitSpec`]),
/// `--verify` (inside a cell: do the fragments' promises hold?), or `--probe` and
/// `--version` (for `cell doctor`).
///
/// # Errors
/// When the arguments or the spec are malformed, a bridge port cannot be bound or signals
/// cannot be managed.
pub fn run(args: &[OsString]) -> anyhow::Result<u8> {
    // Not dumpable: the command runs as our uid, and /proc/1/fd, /proc/1/mem and the like
    // would otherwise let it write the job descriptor (forged stops), read our memory or
    // our environment. The command itself is dumpable again (execve resets it).
    nix::sys::prctl::set_dumpable(false).context("cannot make cell-init non-dumpable")?;
    match parse(args)? {
        Mode::Done(code) => Ok(code),
        Mode::Supervise(launch) => supervise(launch),
    }
}

/// What `cell-init` was asked: a one-off (`--probe`, a launcher's task, ...) already done,
/// or a command to supervise as pid 1 with its bridges, refusals, environment and fragments.
enum Mode {
    Done(u8),
    Supervise(Launch),
}

/// Reads `cell-init`'s arguments and its spec; the one-off modes run here.
fn parse(args: &[OsString]) -> anyhow::Result<Mode> {
    let args: Vec<&str> = args.iter().map(|a| a.to_str().unwrap_or("\u{fffd}")).collect();
    match args.as_slice() {
        ["--probe"] => {
            println!("cell-init: ok");
            Ok(Mode::Done(0))
        }
        ["--version"] => {
            println!("cell-init {}", env!("CARGO_PKG_VERSION"));
            Ok(Mode::Done(0))
        }
        ["--probe-sleep", _token] => {
            // A background process for the catalog: new session, long sleep; its token
            // (on its command line) lets the host find it if it outlives the cell.
            let _ = nix::unistd::setsid();
            std::thread::sleep(std::time::Duration::from_secs(300));
            Ok(Mode::Done(0))
        }
        ["--verify"] => match InitSpec::read(Utf8Path::new(SPEC_FILE))? {
            InitSpec::Run(launch) => Ok(Mode::Done(verify(&launch.fragments))),
            _ => bail!("{SPEC_FILE} is not the spec of a cell's pid 1"),
        },
        ["--spec", path] => match InitSpec::read(Utf8Path::new(path))? {
            InitSpec::Run(launch) => {
                // cell-init itself lives in the command's environment too (fragments need
                // HOME); it is still single-threaded here.
                for (k, v) in &launch.env {
                    std::env::set_var(k, v);
                }
                Ok(Mode::Supervise(launch))
            }
            // The command of a `cell login` cell (not pid 1): see crate::inside::browser.
            InitSpec::BrowserLogin(spec) => crate::inside::browser::run(&spec).map(Mode::Done),
            InitSpec::ProbeCatalog(probe) => {
                crate::inside::catalog::run_probes(&probe.context, &probe.results).map(Mode::Done)
            }
        },
        _ => bail!(
            "usage: cell-init --spec FILE | --verify | --probe | --version (cell-init runs as pid 1 of a cell, \
             told what to do by its launcher; start cells with `cell run`)"
        ),
    }
}

/// `cell-init --verify`: checks each fragment's promise, prints one line each; 1 when one
/// fails.
fn verify(fragments: &[crate::contract::Fragment]) -> u8 {
    let outcomes = crate::inside::fragments::verify(fragments);
    let failed = outcomes.iter().filter(|o| !o.ok).count();
    for o in &outcomes {
        println!("[{}] {}: {}", if o.ok { "ok" } else { "FAIL" }, o.label, o.detail);
    }
    println!("{} fragments verified, {failed} failed", outcomes.len());
    u8::from(failed > 0)
}

/// Runs the command as pid 1: bridges and refusal ports, fragments, the command in its own
/// process group (the terminal's foreground with a pty), signals forwarded, orphans reaped.
fn supervise(launch: Launch) -> anyhow::Result<u8> {
    let Launch { argv, program: exec, env, fragments, bridges, published, refusals, job_fd, go_fd, tasks } = launch;
    let Some((program, rest)) = argv.split_first() else {
        bail!("the spec's command is empty");
    };
    // The signals the launcher forwards are blocked first of all: as pid 1, cell-init would
    // drop one it neither handles nor blocks, so one sent while the cell starts (a Ctrl-C, a
    // closed terminal) would be lost. Blocked, it waits for the loop below; the launcher
    // sends none before it sees them blocked (launch::forward).
    let mut early = SigSet::empty();
    for s in FORWARDED {
        early.add(s);
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&early), None).context("cannot block signals")?;
    if let Some(n) = tasks {
        // First, before any thread: everything of the cell (this init included) counts.
        nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NPROC, n, n)
            .with_context(|| format!("cannot limit the cell to {n} tasks (RLIMIT_NPROC)"))?;
    }
    if let Some(go) = go_fd {
        if !wait_for_go(go) {
            // The launcher could not finish preparing the cell; it says why.
            return Ok(EXIT_INIT_FAILED);
        }
    }
    close_inherited_fds(job_fd);
    // With a terminal (the launcher's pty), the command gets job control: the pty is our
    // controlling terminal and the command its foreground process group.
    let terminal = job_fd.and_then(|job| take_terminal().map(|tty| Terminal { tty, job }));

    // The forwarded signals (blocked above) and SIGCHLD.
    let mut set = early;
    set.add(Signal::SIGCHLD);
    if terminal.is_some() {
        // A launcher whose host terminal is not raw (stdin is not a terminal) passes Ctrl-Z
        // on; pid 1 only receives the signals it blocks or handles.
        set.add(Signal::SIGTSTP);
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).context("cannot block signals")?;
    // Bridge threads inherit the blocked mask, so signals reach the loop below.
    crate::inside::bridge::start(&bridges)?;
    crate::inside::publish::start(&published)?;
    let refusals = crate::inside::refusal::bind(&refusals)?;
    let vars: Vec<(String, String)> = env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    if let Err(e) = crate::inside::fragments::run_all(&fragments, &vars) {
        eprintln!("cell-init: {e:#}");
        return Ok(EXIT_INIT_FAILED);
    }

    raise_nofile_limit();
    let child = match spawn_command(program, rest, exec.as_deref(), &env, terminal.as_ref()) {
        Ok(pid) => pid,
        Err(e) => {
            eprintln!("cell-init: cannot run {program}: {e:#}");
            return Ok(EXIT_NOT_FOUND);
        }
    };
    let main = child;
    // The signals blocked above, read from a descriptor: the loop waits on them and on the
    // refusal ports together.
    let signals = nix::sys::signalfd::SignalFd::with_flags(&set, nix::sys::signalfd::SfdFlags::SFD_CLOEXEC)
        .context("cannot read signals")?;
    loop {
        let sig = next_signal(&signals, &refusals)?;
        if sig == Signal::SIGCHLD {
            if let Some(code) = reap(main, terminal.as_ref()) {
                if code != 0 {
                    if let Some(line) = crate::inside::refusal::summary() {
                        eprintln!("{line}");
                    }
                }
                return Ok(code);
            }
        } else if terminal.is_some() {
            // As a terminal would: the whole foreground group (a grandchild too).
            if nix::sys::signal::killpg(main, sig).is_err() {
                let _ = kill(main, sig);
            }
            wake_to_end(main, sig, true);
        } else {
            // The command may already be gone; its exit arrives as SIGCHLD.
            let _ = kill(main, sig);
            wake_to_end(main, sig, false);
        }
    }
}

/// After a SIGTERM, a SIGCONT too (as a shell's `kill` does for a stopped job): a command
/// stopped (by itself, or by anything in the cell) would keep the TERM pending, and the cell
/// would run on until a SIGKILL.
fn wake_to_end(main: Pid, sig: Signal, group: bool) {
    if sig != Signal::SIGTERM {
        return;
    }
    if !group || nix::sys::signal::killpg(main, Signal::SIGCONT).is_err() {
        let _ = kill(main, Signal::SIGCONT);
    }
}

/// The next of the blocked signals; refusal clients arriving meanwhile are answered.
fn next_signal(
    signals: &nix::sys::signalfd::SignalFd,
    refusals: &crate::inside::refusal::Refusals,
) -> anyhow::Result<Signal> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd as _;
    loop {
        let listeners = refusals.fds();
        let events: Vec<PollFlags> = {
            let mut fds: Vec<PollFd> = std::iter::once(signals.as_fd())
                .chain(listeners.iter().map(|(_, fd)| *fd))
                .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
                .collect();
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e).context("waiting for signals"),
            }
            fds.iter().map(|f| f.revents().unwrap_or(PollFlags::empty())).collect()
        };
        for ((i, _), ev) in listeners.iter().zip(&events[1..]).filter(|(_, ev)| !ev.is_empty()) {
            refusals.ready(*i, *ev);
        }
        if !events[0].is_empty() {
            match signals.read_signal() {
                Ok(Some(info)) => {
                    if let Ok(sig) = Signal::try_from(i32::try_from(info.ssi_signo).unwrap_or(0)) {
                        return Ok(sig);
                    }
                }
                Ok(None) | Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                Err(e) => return Err(e).context("reading signals"),
            }
        }
    }
}

/// Waits for the launcher's go on `fd` (one byte) and closes it; `false` at end of file (the
/// launcher gave up or died) or on any error.
fn wait_for_go(fd: i32) -> bool {
    // SAFETY: the launcher hands us this descriptor (the spec's go pipe); nothing else owns it.
    let pipe = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let mut byte = [0u8; 1];
    loop {
        match nix::unistd::read(&pipe, &mut byte) {
            Ok(n) => return n == 1,
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return false,
        }
    }
}

/// Starts the command: `argv[0]` as given, run from `file` (the plan's `PATH` search) or
/// else from `program` itself, with exactly `env`, no signal blocked (the ones blocked here
/// are unblocked in the child) and, with a terminal, as the terminal's foreground group.
/// Spawned as `posix_spawn` does ([`crate::spawn`]): no fork of this process. A bare name
/// the plan did not resolve is searched on the command's `PATH` by std's `Command`.
fn spawn_command(
    program: &str,
    rest: &[String],
    file: Option<&Utf8Path>,
    env: &std::collections::BTreeMap<String, String>,
    terminal: Option<&Terminal>,
) -> anyhow::Result<Pid> {
    let tty = terminal.map(|t| t.tty);
    // Only async-signal-safe calls that allocate nothing: setpgid, ioctl(TIOCSPGRP),
    // pthread_sigmask.
    let hook = move || {
        if let Some(tty) = tty {
            foreground_group(tty)?;
        }
        crate::sys::unblock_all_signals()
    };
    let path = match file {
        Some(f) => f.as_str(),
        None if program.contains('/') => program,
        None => {
            let mut cmd = Command::new(program);
            cmd.args(rest).env_clear().envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            // SAFETY: the hook only makes async-signal-safe calls (above).
            unsafe { cmd.pre_exec(hook) };
            let child = cmd.spawn()?;
            return Ok(Pid::from_raw(i32::try_from(child.id()).context("child pid out of range")?));
        }
    };
    let argv: Vec<&str> = std::iter::once(program).chain(rest.iter().map(String::as_str)).collect();
    let env: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    crate::spawn::spawn_with(&crate::spawn::Exec { path, argv: &argv, env: &env, detach: false, here: true }, &hook)
}

/// The cell's terminal (a pty whose master the launcher holds) and the descriptor on which
/// the launcher hears that the command stopped.
struct Terminal {
    tty: i32,
    job: i32,
}

/// Makes the first of 0-2 that is a terminal our controlling terminal (we are the session
/// leader: bubblewrap's `--new-session`). Returns its descriptor, or `None` (with a warning)
/// when there is none or it cannot be taken: the command then runs without job control.
fn take_terminal() -> Option<i32> {
    // SAFETY: descriptors 0-2 are borrowed only for the isatty call.
    let tty =
        (0..3).find(|fd| nix::unistd::isatty(unsafe { std::os::fd::BorrowedFd::borrow_raw(*fd) }).unwrap_or(false))?;
    // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal from another session).
    if unsafe { nix::libc::ioctl(tty, nix::libc::TIOCSCTTY, 0) } != 0 {
        eprintln!("cell-init: cannot take the cell's terminal: {}", std::io::Error::last_os_error());
        return None;
    }
    Some(tty)
}

/// Between fork and exec: the command leads a process group of its own, which becomes the
/// terminal's foreground group (SIGTTOU blocked meanwhile: it is not in the foreground yet).
fn foreground_group(tty: i32) -> std::io::Result<()> {
    // SAFETY: setpgid, sigprocmask and ioctl(TIOCSPGRP) are async-signal-safe and touch only
    // this process.
    unsafe {
        if nix::libc::setpgid(0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut ttou: nix::libc::sigset_t = std::mem::zeroed();
        nix::libc::sigemptyset(&raw mut ttou);
        nix::libc::sigaddset(&raw mut ttou, nix::libc::SIGTTOU);
        nix::libc::pthread_sigmask(nix::libc::SIG_BLOCK, &raw const ttou, std::ptr::null_mut());
        let me = nix::libc::getpid();
        if nix::libc::ioctl(tty, nix::libc::TIOCSPGRP, &raw const me) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Raises the soft limit on open files to the hard limit: every bridged connection holds
/// several descriptors.
fn raise_nofile_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard.min(1 << 20), hard);
    }
}

/// Reaps every exited child; returns the exit code once the main command has ended. With a
/// terminal, a stop of the main command is reported to the launcher (one byte: the signal).
fn reap(main: Pid, terminal: Option<&Terminal>) -> Option<u8> {
    let mut result = None;
    let flags = if terminal.is_some() { WaitPidFlag::WNOHANG | WaitPidFlag::WUNTRACED } else { WaitPidFlag::WNOHANG };
    loop {
        match waitpid(None, Some(flags)) {
            Ok(WaitStatus::Stopped(pid, sig)) if pid == main => {
                if let Some(t) = terminal {
                    // SAFETY: the job descriptor stays open for cell-init's whole life.
                    let job = unsafe { std::os::fd::BorrowedFd::borrow_raw(t.job) };
                    let _ = nix::unistd::write(job, &[u8::try_from(sig as i32).unwrap_or(0)]);
                }
            }
            Ok(WaitStatus::Exited(pid, code)) if pid == main => {
                result = Some(u8::try_from(code).unwrap_or(1));
            }
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == main => {
                result = Some(128u8.saturating_add(u8::try_from(sig as i32).unwrap_or(0)));
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return result,
            Ok(_) => {}
        }
    }
}

/// Closes every descriptor above stderr that reached us (bubblewrap's status pipe, anything
/// a host process leaked) but the job descriptor, which stays ours (close-on-exec): none of
/// them belongs to the command.
fn close_inherited_fds(keep: Option<i32>) {
    let keep = keep.filter(|fd| *fd > 2);
    let ranges: Vec<(u32, u32)> = match keep.and_then(|fd| u32::try_from(fd).ok()) {
        Some(k) => vec![(3, k - 1), (k + 1, u32::MAX)],
        None => vec![(3, u32::MAX)],
    };
    // SAFETY: close_range only closes descriptors; nothing else in this process uses them.
    let failed = ranges
        .iter()
        .filter(|(first, last)| first <= last)
        .any(|(first, last)| unsafe { libc_close_range(*first, *last) } != 0);
    if failed {
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            let fds: Vec<i32> = dir
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .filter(|fd| *fd > 2 && Some(*fd) != keep)
                .collect();
            for fd in fds {
                let _ = nix::unistd::close(fd);
            }
        }
    }
    if let Some(fd) = keep {
        // SAFETY: fcntl on a descriptor number; a stale number fails harmlessly with EBADF.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let _ = nix::fcntl::fcntl(borrowed, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC));
    }
}

unsafe fn libc_close_range(first: u32, last: u32) -> i64 {
    // SAFETY: a raw syscall with integer arguments; failure is reported by the return value.
    unsafe { nix::libc::syscall(nix::libc::SYS_close_range, first, last, 0u32) }
}
