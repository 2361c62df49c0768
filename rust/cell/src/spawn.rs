//! Starting a program the way `posix_spawn` does, with a hook of our own before the exec:
//! the launcher's bubblewrap, and `cell-init`'s command.
//!
//! `std::process::Command` uses `posix_spawn` (a `clone(CLONE_VM | CLONE_VFORK)`: no copy of
//! the parent's page tables, no copy-on-write faults) only without a `pre_exec` hook; with
//! one it forks, which at the launcher's size costs about 0.2–0.5 ms more per launch. Both
//! callers need a hook (the launcher: descriptor moves, the cell's cgroups, rlimits,
//! niceness; `cell-init`: the empty signal mask its command must start with, which std's
//! `posix_spawn` path does not set, and the terminal's foreground group), so this does what
//! glibc's `posix_spawn` does itself: the child runs on a stack of its own in the parent's
//! memory while the calling thread waits, touches nothing but that stack and system calls
//! (no allocation: another thread may hold the allocator's lock), and reports a failure
//! through a shared word before it exits.

use std::ffi::CString;
use std::sync::atomic::{AtomicI32, Ordering};

use anyhow::Context as _;
use nix::unistd::Pid;

/// Size of the child's stack (it only makes system calls).
const STACK: usize = 64 << 10;

/// Runs `program` with `args`, an empty environment, `/` as its directory and a process
/// group of its own, after `hook` ran in the child (only async-signal-safe calls that
/// neither allocate nor take locks). Returns once the program was executed.
///
/// # Errors
/// When an argument holds a NUL byte, the clone fails, the hook fails or the program
/// cannot be executed (the child has then exited and been reaped).
pub fn spawn(program: &str, args: &[String], hook: &dyn Fn() -> std::io::Result<()>) -> anyhow::Result<Pid> {
    let argv: Vec<&str> = std::iter::once(program).chain(args.iter().map(String::as_str)).collect();
    spawn_with(&Exec { path: program, argv: &argv, env: &[], detach: true, here: false }, hook)
}

/// What [`spawn_with`] executes.
pub struct Exec<'a> {
    /// The file executed (no `PATH` search).
    pub path: &'a str,
    /// The program's arguments, `argv[0]` first.
    pub argv: &'a [&'a str],
    /// Its environment, `NAME=value` each.
    pub env: &'a [String],
    /// In `/` and a process group of its own (else the caller's directory and group).
    pub detach: bool,
    /// Executed on the caller's processor ([`Pinned`]): for a caller that only waits for
    /// the program (`cell-init`), not one that works beside it (the launcher, whose
    /// bubblewrap starts on the other processor while it plans).
    pub here: bool,
}

/// Runs `exec` after `hook` ran in the child (only async-signal-safe calls that neither
/// allocate nor take locks). Every signal handled by the caller is back to its default
/// and SIGPIPE too; the child's signal mask is the caller's (every signal blocked): the
/// hook sets the one the program starts with. Returns once the program was executed.
///
/// # Errors
/// When a string holds a NUL byte, the clone fails, the hook fails or the program cannot
/// be executed (the child has then exited and been reaped).
pub fn spawn_with(exec: &Exec<'_>, hook: &dyn Fn() -> std::io::Result<()>) -> anyhow::Result<Pid> {
    let program = exec.path;
    let detach = exec.detach;
    let path = CString::new(program).context("a NUL byte in the program path")?;
    let argv: Vec<CString> =
        exec.argv.iter().map(|a| CString::new(*a)).collect::<Result<_, _>>().context("a NUL byte in an argument")?;
    let mut argv_ptrs: Vec<*const nix::libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let env: Vec<CString> = exec
        .env
        .iter()
        .map(|e| CString::new(e.as_str()))
        .collect::<Result<_, _>>()
        .context("a NUL byte in the environment")?;
    let mut envp: Vec<*const nix::libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    let failed = AtomicI32::new(0);
    let mut stack = vec![0u8; STACK];

    let child = || -> isize {
        let fail = |stage: i32, error: std::io::Error| -> isize {
            let errno = error.raw_os_error().filter(|e| *e != 0).unwrap_or(nix::libc::EINVAL);
            failed.store(stage << 16 | (errno & 0xffff), Ordering::SeqCst);
            // SAFETY: _exit ends the child at once, without exit handlers.
            unsafe { nix::libc::_exit(127) }
        };
        // SAFETY: only system calls on this stack: signal dispositions (a handler of the
        // parent must never run in the child on shared memory), process group, directory,
        // the hook, exec.
        unsafe {
            for sig in 1..=nix::libc::SIGRTMAX() {
                if sig == nix::libc::SIGKILL || sig == nix::libc::SIGSTOP {
                    continue;
                }
                let mut old: nix::libc::sigaction = std::mem::zeroed();
                if nix::libc::sigaction(sig, std::ptr::null(), &raw mut old) != 0 {
                    continue;
                }
                // What std's Command does too: SIGPIPE, ignored by the Rust runtime, back to
                // its default; a handled signal to its default.
                if sig == nix::libc::SIGPIPE
                    || (old.sa_sigaction != nix::libc::SIG_IGN && old.sa_sigaction != nix::libc::SIG_DFL)
                {
                    let mut dfl: nix::libc::sigaction = std::mem::zeroed();
                    dfl.sa_sigaction = nix::libc::SIG_DFL;
                    nix::libc::sigaction(sig, &raw const dfl, std::ptr::null_mut());
                }
            }
            if detach && nix::libc::setpgid(0, 0) != 0 {
                return fail(1, std::io::Error::last_os_error());
            }
            if detach && nix::libc::chdir(c"/".as_ptr()) != 0 {
                return fail(2, std::io::Error::last_os_error());
            }
            if let Err(e) = hook() {
                return fail(3, e);
            }
            nix::libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), envp.as_ptr());
        }
        fail(4, std::io::Error::last_os_error())
    };

    // Every signal blocked around the clone, so none is handled in the child before its
    // dispositions are reset (the child's hook sets its own mask); restored right after.
    let mut all = nix::sys::signal::SigSet::all();
    let mut previous = nix::sys::signal::SigSet::empty();
    nix::sys::signal::pthread_sigmask(nix::sys::signal::SigmaskHow::SIG_SETMASK, Some(&all), Some(&mut previous))
        .context("cannot block signals")?;
    let pinned = if exec.here { Pinned::here() } else { None };
    // SAFETY: CLONE_VM | CLONE_VFORK suspends this thread until the child has executed the
    // program or exited; the child only uses its own stack, the prepared strings and
    // `failed`, all alive until then.
    let cloned = unsafe {
        nix::sched::clone(
            Box::new(child),
            &mut stack,
            nix::sched::CloneFlags::CLONE_VM | nix::sched::CloneFlags::CLONE_VFORK,
            Some(nix::libc::SIGCHLD),
        )
    };
    all = previous;
    let _ = nix::sys::signal::pthread_sigmask(nix::sys::signal::SigmaskHow::SIG_SETMASK, Some(&all), None);
    if let Some(p) = pinned {
        p.release(cloned.as_ref().ok().copied());
    }
    let pid = cloned.with_context(|| format!("cannot clone a process for {program}"))?;
    let code = failed.load(Ordering::SeqCst);
    if code != 0 {
        let _ = nix::sys::wait::waitpid(pid, None);
        let what = match code >> 16 {
            1 => "setpgid",
            2 => "chdir /",
            3 => "the set-up before exec",
            _ => "execve",
        };
        return Err(std::io::Error::from_raw_os_error(code & 0xffff))
            .with_context(|| format!("{what} failed for {program}"));
    }
    Ok(pid)
}

/// The calling thread held on the processor it runs on while it starts a program, so that
/// the child executes there too. Otherwise the kernel places the new process, and again the
/// exec, on the idlest processor: in a virtual machine one that is halted, which takes most
/// of a millisecond to wake (0.7 ms here, against 0.08 ms for an exec where the parent ran),
/// while this thread waits for the exec. The child gets the thread's processors back once it
/// has executed the program; the scheduler spreads it from there as usual.
struct Pinned {
    before: nix::sched::CpuSet,
}

impl Pinned {
    /// Pins the calling thread to its processor; `None` where that cannot be done (the
    /// start then goes as it would have).
    fn here() -> Option<Self> {
        let me = Pid::from_raw(0);
        let before = nix::sched::sched_getaffinity(me).ok()?;
        // SAFETY: sched_getcpu has no arguments and only reads where this thread runs.
        let cpu = usize::try_from(unsafe { nix::libc::sched_getcpu() }).ok()?;
        let mut one = nix::sched::CpuSet::new();
        one.set(cpu).ok()?;
        nix::sched::sched_setaffinity(me, &one).ok()?;
        Some(Self { before })
    }

    /// Gives the thread, and the started `child`, the processors the thread had.
    fn release(self, child: Option<Pid>) {
        let _ = nix::sched::sched_setaffinity(Pid::from_raw(0), &self.before);
        if let Some(child) = child {
            let _ = nix::sched::sched_setaffinity(child, &self.before);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_started_program_gets_every_processor_back() {
        let before = nix::sched::sched_getaffinity(Pid::from_raw(0)).expect("affinity");
        let argv = ["/bin/sh", "-c", "sleep 1"];
        let exec = Exec { path: "/bin/sh", argv: &argv, env: &[], detach: true, here: true };
        let pid = spawn_with(&exec, &|| Ok(())).expect("spawn");
        let child = nix::sched::sched_getaffinity(pid).expect("child affinity");
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(pid, None);
        let after = nix::sched::sched_getaffinity(Pid::from_raw(0)).expect("affinity");
        for cpu in 0..nix::sched::CpuSet::count() {
            let was = before.is_set(cpu).unwrap_or(false);
            assert_eq!(after.is_set(cpu).unwrap_or(false), was, "the caller's processor {cpu}");
            assert_eq!(child.is_set(cpu).unwrap_or(false), was, "the child's processor {cpu}");
        }
    }

    #[test]
    fn spawns_runs_the_hook_and_reports_a_failed_exec() {
        let pid = spawn("/bin/sh", &["-c".into(), "exit 7".into()], &|| Ok(())).expect("spawn");
        assert_eq!(nix::sys::wait::waitpid(pid, None).expect("wait"), nix::sys::wait::WaitStatus::Exited(pid, 7));
        let e = spawn("/nonexistent/prog", &[], &|| Ok(())).expect_err("no such program");
        assert!(format!("{e:#}").contains("execve failed"), "{e:#}");
        let e =
            spawn("/bin/true", &[], &|| Err(std::io::Error::from_raw_os_error(nix::libc::EPERM))).expect_err("hook");
        assert!(format!("{e:#}").contains("set-up before exec"), "{e:#}");
    }
}
