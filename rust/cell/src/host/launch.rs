//! Executing a plan: bubblewrap as a child, its status pipe, signal forwarding, the relay of
//! the cell's own terminal (see [`crate::host::pty`]), exit status.

use std::io::{Seek as _, Write as _};
use std::os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::process::Command;

use anyhow::{bail, Context as _};
use camino::{Utf8Path, Utf8PathBuf};
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::host::plan::{self, Plan};
use crate::sys::{is_private_dir, park, private_dir, unblock_all_signals, write_new_private};

/// Exit code when the cell could not be started (the host cannot isolate, bubblewrap failed).
pub const EXIT_CANNOT_START: u8 = 125;

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

fn memfd(name: &str, contents: &[u8]) -> anyhow::Result<OwnedFd> {
    use nix::sys::memfd::{memfd_create, MFdFlags};
    let fd = memfd_create(name, MFdFlags::MFD_CLOEXEC).context("memfd_create failed")?;
    let mut file = std::fs::File::from(fd);
    file.write_all(contents).context("cannot write a generated file")?;
    file.rewind().context("cannot rewind a generated file")?;
    park(&OwnedFd::from(file))
}

/// How long a sidecar may take to report that it is ready.
const SIDECAR_READY_TIMEOUT_MS: u16 = 10_000;
/// How long a sidecar gets to exit after SIGTERM before it is killed.
const SIDECAR_STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// The runtime directory and the sidecars of one launch; dropping it stops the sidecars
/// and removes the directory, whatever way the launch ends.
pub struct Running {
    runtime_dir: Option<Utf8PathBuf>,
    sidecars: Vec<(String, std::process::Child)>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for (_, child) in &self.sidecars {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        let deadline = std::time::Instant::now() + SIDECAR_STOP_GRACE;
        for (_, child) in &mut self.sidecars {
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if std::time::Instant::now() > deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => wait_exit_until(child.id(), deadline),
                }
            }
        }
        if let Some(dir) = &self.runtime_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Blocks until process `pid` (a child) exits or `deadline` passes, without polling: a
/// pidfd becomes readable when the process ends.
fn wait_exit_until(pid: u32, deadline: std::time::Instant) {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0u32) };
    let Ok(fd) = i32::try_from(fd) else { return };
    if fd < 0 {
        std::thread::sleep(std::time::Duration::from_millis(1));
        return;
    }
    // SAFETY: fd was just returned by pidfd_open and is owned here.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let left = deadline.saturating_duration_since(std::time::Instant::now());
    let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
    let mut fds = [nix::poll::PollFd::new(fd.as_fd(), nix::poll::PollFlags::POLLIN)];
    let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms));
}

/// Removes a launch's mount points from the home when dropped.
struct MountPointsGuard(crate::host::home::MountPoints);

impl Drop for MountPointsGuard {
    fn drop(&mut self) {
        self.0.remove();
    }
}

/// A running cell, as its launcher records it in the runtime base's `live` directory.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct LiveCell {
    /// Cell name.
    pub cell: String,
    /// Host directory of its home.
    pub home: Utf8PathBuf,
    /// Host pid of its pid 1 (`cell-init`).
    pub init: i32,
    /// Pid of its launcher.
    pub launcher: u32,
    /// Its pid namespace (`pid:[inode]`), which every process of the cell shares.
    pub ns: String,
    /// The start time of its pid 1 (clock ticks after boot), so a reused pid is not taken
    /// for it.
    pub start: u64,
    /// Its worktree (empty in records of older launchers).
    #[serde(default)]
    pub worktree: Utf8PathBuf,
    /// When it started (seconds since the epoch; 0 in records of older launchers).
    #[serde(default)]
    pub started: u64,
    /// Whether its network goes through the egress proxy.
    #[serde(default)]
    pub proxy: bool,
}

/// The pid namespace of a process, as `/proc/PID/ns/pid` names it.
#[must_use]
pub fn pid_namespace(pid: i32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok()?.into_os_string().into_string().ok()
}

/// The start time of a process (field 22 of `/proc/PID/stat`).
#[must_use]
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()
}

/// The record of one running cell; dropping it removes the file. Best effort: a cell whose
/// record cannot be written still runs (only `cell login` misses it).
struct LiveRecord(Option<Utf8PathBuf>);

impl LiveRecord {
    fn write(plan: &Plan, init: Pid) -> Self {
        let path = &plan.live_record;
        let written = (|| -> anyhow::Result<()> {
            let record = LiveCell {
                cell: plan.cell.clone(),
                home: plan.home.clone(),
                init: init.as_raw(),
                launcher: std::process::id(),
                ns: pid_namespace(init.as_raw()).context("no pid namespace")?,
                start: start_time(init.as_raw()).context("no start time")?,
                worktree: plan.worktree.clone(),
                started: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
                proxy: plan.network.policy.is_some(),
            };
            let dir = path.parent().context("no directory")?;
            let base = dir.parent().context("no directory")?;
            if let Some(top) = base.parent() {
                std::fs::create_dir_all(top)?;
            }
            private_dir(base, false)?;
            private_dir(dir, false)?;
            std::fs::write(path, serde_json::to_vec(&record)?)?;
            Ok(())
        })();
        Self(written.ok().map(|()| path.clone()))
    }
}

impl Drop for LiveRecord {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The cells running now (records of launchers that died are removed). Only a private
/// `live` directory counts, like runtime directories.
#[must_use]
pub fn live_cells(base: &Utf8Path) -> Vec<LiveCell> {
    use std::os::unix::fs::MetadataExt as _;
    let dir = base.join(plan::LIVE_DIR);
    if !is_private_dir(base) || !is_private_dir(&dir) {
        return Vec::new();
    }
    let Ok(entries) = dir.read_dir_utf8() else { return Vec::new() };
    let me = nix::unistd::geteuid().as_raw();
    let mut out = Vec::new();
    for e in entries.flatten() {
        let Ok(text) = std::fs::read_to_string(e.path()) else { continue };
        let Ok(record) = serde_json::from_str::<LiveCell>(&text) else { continue };
        let alive = |pid: String| std::fs::metadata(format!("/proc/{pid}")).is_ok_and(|m| m.uid() == me);
        let same = pid_namespace(record.init).as_ref() == Some(&record.ns)
            && start_time(record.init) == Some(record.start)
            && std::fs::read_link("/proc/self/ns/pid").ok().and_then(|p| p.into_os_string().into_string().ok())
                != Some(record.ns.clone());
        if alive(record.launcher.to_string()) && alive(record.init.to_string()) && same {
            out.push(record);
        } else if !Utf8Path::new(&format!("/proc/{}", record.launcher)).exists() {
            let _ = std::fs::remove_file(e.path());
        }
    }
    out.sort_by(|a, b| (&a.cell, a.launcher).cmp(&(&b.cell, b.launcher)));
    out
}

/// Runtime directories of running launches of cell `name`. Only private directories (ours,
/// mode 0700, not links) count: anyone can create a look-alike in `/tmp`.
#[must_use]
pub fn running_instances(base: &Utf8Path, name: &str) -> Vec<Utf8PathBuf> {
    if !is_private_dir(base) {
        return Vec::new();
    }
    let Ok(entries) = base.read_dir_utf8() else { return Vec::new() };
    let mut out: Vec<Utf8PathBuf> = entries
        .flatten()
        .filter(|e| {
            e.file_name().rsplit_once('-').is_some_and(|(n, pid)| {
                n == name && pid.parse::<u32>().is_ok() && Utf8Path::new(&format!("/proc/{pid}")).exists()
            })
        })
        .map(|e| e.path().to_owned())
        .filter(|p| is_private_dir(p))
        .collect();
    out.sort();
    out
}

/// The pid of the `cell-egress` of a running launch, checked to be our own `cell-egress`
/// process (the pid file could be stale and the pid reused).
fn egress_pid(runtime: &Utf8Path) -> anyhow::Result<Pid> {
    use std::os::unix::fs::MetadataExt as _;
    let pid_file = runtime.join("egress.pid");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .with_context(|| format!("cannot read {pid_file}"))?
        .trim()
        .parse()
        .with_context(|| format!("{pid_file} does not hold a pid"))?;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
    let owner = std::fs::metadata(format!("/proc/{pid}")).map(|m| m.uid()).ok();
    let named = exe.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("cell-egress"));
    if !named || owner != Some(nix::unistd::geteuid().as_raw()) {
        bail!("pid {pid} in {pid_file} is not your cell-egress any more (exe {})", exe.display());
    }
    Ok(Pid::from_raw(pid))
}

/// Rewrites the egress policy of a running launch and tells its proxy to reload it; open
/// tunnels stay open.
///
/// # Errors
/// When the runtime directory is not private, the policy is invalid, the files cannot be
/// written or the proxy cannot be signalled.
pub fn reload_policy(runtime: &Utf8Path, policy: &cell_egress::policy::PolicyFile) -> anyhow::Result<()> {
    if !is_private_dir(runtime) {
        bail!("{runtime} is not a private directory of yours; not touching it");
    }
    cell_egress::policy::Policy::from_file(policy).context("the new policy is invalid")?;
    let pid = egress_pid(runtime)?;
    let path = runtime.join(plan::POLICY_FILE);
    let tmp = runtime.join(format!("{}.new", plan::POLICY_FILE));
    let _ = std::fs::remove_file(&tmp);
    write_new_private(&tmp, (serde_json::to_string_pretty(policy)? + "\n").as_bytes())?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot replace {path}"))?;
    kill(pid, Signal::SIGHUP).with_context(|| format!("cannot signal cell-egress (pid {pid})"))?;
    Ok(())
}

/// Removes runtime directories left by launchers that were killed.
fn sweep_stale(base: &Utf8Path) {
    let Ok(entries) = base.read_dir_utf8() else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.rsplit_once('-').and_then(|(_, p)| p.parse::<u32>().ok()) else { continue };
        if !Utf8Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Starts the plan's sidecars and waits until each reports ready.
///
/// # Errors
/// When the runtime directory cannot be made or a sidecar does not become ready; the cell
/// must not start then.
pub fn start_sidecars(plan: &Plan) -> anyhow::Result<Running> {
    let mut running = Running { runtime_dir: None, sidecars: Vec::new() };
    let Some(runtime) = &plan.runtime_dir else { return Ok(running) };
    let base = runtime.parent().context("runtime directory has no parent")?;
    if let Some(top) = base.parent() {
        std::fs::create_dir_all(top).with_context(|| format!("cannot create {top}"))?;
    }
    private_dir(base, false)?;
    sweep_stale(base);
    private_dir(runtime, true)?;
    running.runtime_dir = Some(runtime.clone());
    private_dir(&runtime.join("sockets"), true)?;
    for sidecar in &plan.sidecars {
        let child = start_sidecar(sidecar)?;
        let pid_file = runtime.join(format!("{}.pid", sidecar.name));
        std::fs::write(&pid_file, format!("{}\n", child.id())).with_context(|| format!("cannot write {pid_file}"))?;
        running.sidecars.push((sidecar.name.clone(), child));
    }
    Ok(running)
}

fn start_sidecar(sidecar: &plan::Sidecar) -> anyhow::Result<std::process::Child> {
    use std::io::Read as _;
    for f in &sidecar.files {
        std::fs::write(&f.path, &f.contents).with_context(|| format!("cannot write {}", f.path))?;
    }
    if let Some(dir) = sidecar.log.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {dir}"))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make {dir} private"))?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&sidecar.log)
        .with_context(|| format!("cannot open the sidecar log {}", sidecar.log))?;
    let (ready_read, ready_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("cannot create a pipe")?;
    let parked = park(&ready_write)?;
    drop(ready_write);
    let raw = parked.as_raw_fd();
    let (program, args) = sidecar.argv.split_first().context("empty sidecar command")?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .process_group(0);
    // SAFETY: only async-signal-safe calls between fork and exec: pthread_sigmask, prctl,
    // dup2.
    unsafe {
        cmd.pre_exec(move || {
            unblock_all_signals()?;
            if nix::libc::prctl(nix::libc::PR_SET_PDEATHSIG, nix::libc::SIGTERM) != 0 || nix::libc::dup2(raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().with_context(|| format!("cannot start the {} sidecar ({program})", sidecar.name))?;
    drop(parked);
    let mut pipe = std::fs::File::from(ready_read);
    let mut fds = [nix::poll::PollFd::new(pipe.as_fd(), nix::poll::PollFlags::POLLIN)];
    let polled = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(SIDECAR_READY_TIMEOUT_MS));
    let mut buf = [0u8; 16];
    let n = match polled {
        Ok(n) if n > 0 => pipe.read(&mut buf).unwrap_or(0),
        _ => 0,
    };
    if buf[..n].starts_with(b"ready") {
        return Ok(child);
    }
    let _ = child.kill();
    let _ = child.wait();
    let tail = std::fs::read_to_string(&sidecar.log).unwrap_or_default();
    let tail: Vec<&str> = tail.lines().rev().take(5).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    bail!(
        "the {} sidecar did not become ready, so the cell does not start; its log ({}) ends with:\n  {}",
        sidecar.name,
        sidecar.log,
        tail.join("\n  ")
    )
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
    if plan.seccomp.is_some() && !crate::host::seccomp::seccomp_available() {
        bail!(
            "this kernel cannot apply the cell's seccomp filter, and cell does not start a cell with weaker defences than declared; use a kernel with CONFIG_SECCOMP_FILTER (see `cell doctor`)"
        );
    }
    let limits = crate::host::limits::Applied::enter(&plan.limits, &plan.cell)?;
    seal_inherited_fds();
    let new_home = std::fs::symlink_metadata(&plan.home).is_err();
    prepare_home(&plan.home)?;
    if new_home {
        for line in crate::host::home::seed(Utf8Path::new(crate::host::home::SKEL), &plan.home) {
            eprintln!("cell: the new cell home lacks a file of {}: {line}", crate::host::home::SKEL);
        }
    }
    // Dropped after the cell ended: the empty mount points it left in the home go.
    let _mount_points = MountPointsGuard(crate::host::home::MountPoints::before(plan));
    // Dropped last: brings the cell's commits over and quarantines, after the cell ended.
    let held: Vec<Utf8PathBuf> =
        plan.protected.iter().filter(|p| p.how == "read-only").map(|p| p.path.clone()).collect();
    let repository =
        crate::host::gitview::Session::start(&plan.state_dir, &plan.worktree, plan.git.as_ref(), &plan.absent, &held)?;
    let _running = start_sidecars(plan)?;

    let (status_read, status_write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("cannot create a pipe")?;
    let mut moves: Vec<(OwnedFd, RawFd)> = vec![(park(&status_write)?, crate::contract::STATUS_FD)];
    drop(status_write);
    for (i, f) in plan.files.iter().enumerate() {
        let mut contents = f.contents.clone();
        if f.dst == crate::contract::ENV_FILE {
            for (k, path) in &plan.secret_env {
                let value =
                    read_no_follow(path).with_context(|| format!("cannot read the secret for {k} from {path}"))?;
                contents.push_str(&format!("{k}={}\0", value.strip_suffix('\n').unwrap_or(&value)));
            }
        }
        moves.push((memfd(f.dst.as_str(), contents.as_bytes())?, plan::data_fd(i)));
    }
    if plan.seccomp.is_some() {
        let programs = crate::host::seccomp::programs().context("cannot build the seccomp filter")?;
        for (i, program) in programs.iter().enumerate() {
            moves.push((memfd("seccomp", program)?, plan::data_fd(plan.files.len() + i)));
        }
    }
    let child_limits = limits.for_child();
    // A terminal on any of 0-2 never enters the cell: the cell gets a pty of its own, and
    // cell-init reports the command's stops on the job pipe.
    let mut pty = if plan.terminal { crate::host::pty::Pty::open()? } else { None };
    let mut job_read = None;
    if pty.is_some() {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("cannot create a pipe")?;
        moves.push((park(&write)?, plan.job_fd()));
        job_read = Some(read);
    }
    let mut pairs: Vec<(RawFd, RawFd)> = moves.iter().map(|(fd, target)| (fd.as_raw_fd(), *target)).collect();
    if let Some(pty) = &pty {
        pairs.extend(pty.slave_moves());
    }

    let mut forwarded = SigSet::empty();
    forwarded.add(Signal::SIGCHLD);
    for s in crate::contract::FORWARDED {
        forwarded.add(s);
    }
    if pty.is_some() {
        // Ctrl-Z on a host terminal that is not raw (stdin is not a terminal) stops the
        // command, not just the launcher; SIGTTIN/SIGTTOU blocked turn a background read
        // into EIO instead of a stop.
        for s in [Signal::SIGTSTP, Signal::SIGTTIN, Signal::SIGTTOU] {
            forwarded.add(s);
        }
    }
    let mut previous = SigSet::empty();
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&forwarded), Some(&mut previous))
        .context("cannot block signals")?;
    // The caller may go on after the cell (`cell login` does): give it its signals back.
    let _mask = MaskGuard(previous);
    let signals = nix::sys::signalfd::SignalFd::with_flags(
        &forwarded,
        nix::sys::signalfd::SfdFlags::SFD_CLOEXEC | nix::sys::signalfd::SfdFlags::SFD_NONBLOCK,
    )
    .context("cannot create a signalfd")?;

    let (program, args) = plan.argv.split_first().context("empty bubblewrap command line")?;
    // bubblewrap gets no environment and a neutral directory: nothing meant for the cell
    // (a loader path, say) may steer it on the host. cell-init sets the command's
    // environment from the plan's env file. Spawned as posix_spawn does (no fork of the
    // launcher's memory), see crate::host::spawn.
    // The hook only calls pthread_sigmask, write, setrlimit, setpriority and dup2, which
    // are async-signal-safe and allocate nothing; the sources were parked above every
    // target, so no move overwrites a source still to be moved (the pty slave is moved
    // last, onto 0-2).
    let hook = move || {
        unblock_all_signals()?;
        child_limits.apply()?;
        for (src, target) in &pairs {
            // SAFETY: dup2 on descriptors this process holds.
            if unsafe { nix::libc::dup2(*src, *target) } < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    };
    if let Some(pty) = &mut pty {
        pty.take();
    }
    let bwrap = crate::host::spawn::spawn(program, args, &hook)
        .with_context(|| format!("cannot start bubblewrap ({program})"))?;
    drop(moves);
    if let Some(pty) = &mut pty {
        pty.close_slave();
    }

    // The read end stays open until bubblewrap exits: it writes its exit status there too.
    let mut status = std::io::BufReader::new(std::fs::File::from(status_read));
    let Some(init) = read_child_pid_relaying(&mut status, pty.as_mut()) else {
        let code = wait_exit(bwrap)?;
        if let Some(pty) = &mut pty {
            pty.drain();
            pty.end();
        }
        return Ok(Outcome::SetupFailed(code));
    };
    let _live = LiveRecord::write(plan, init);
    repository.watch(bwrap)?;
    let code = supervise(bwrap, init, &signals, pty.as_mut(), job_read)?;
    Ok(Outcome::Exited(code))
}

/// Reads bubblewrap's status pipe for the cell's first process. With a pty, the cell's
/// terminal output is relayed meanwhile (bubblewrap's own errors go there), so a full pty
/// cannot stall the start.
fn read_child_pid_relaying(
    status: &mut std::io::BufReader<std::fs::File>,
    pty: Option<&mut crate::host::pty::Pty>,
) -> Option<Pid> {
    use nix::poll::{PollFd, PollFlags, PollTimeout};
    let Some(pty) = pty else { return read_child_pid(status) };
    loop {
        let (status_ready, master_ready) = {
            let mut fds = [
                PollFd::new(status.get_ref().as_fd(), PollFlags::POLLIN),
                PollFd::new(pty.master(), PollFlags::POLLIN),
            ];
            match nix::poll::poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return read_child_pid(status),
            }
            let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            (ready(&fds[0]), ready(&fds[1]))
        };
        if master_ready && !pty.relay_output() {
            return read_child_pid(status);
        }
        if status_ready {
            // bubblewrap writes its first status line at once when it starts the child.
            return read_child_pid(status);
        }
    }
}

/// How often a launcher in the background looks whether it has the foreground again.
const FOREGROUND_CHECK_MS: u16 = 200;

/// Waits for the cell to end while forwarding signals and, with a pty, relaying the
/// terminal and following the command's stops (see [`crate::host::pty`]). Returns the exit code
/// (128+N for signal N).
fn supervise(
    bwrap: Pid,
    init: Pid,
    signals: &nix::sys::signalfd::SignalFd,
    mut pty: Option<&mut crate::host::pty::Pty>,
    mut job: Option<OwnedFd>,
) -> anyhow::Result<u8> {
    use nix::poll::{PollFd, PollFlags, PollTimeout};
    let mut master_open = pty.is_some();
    loop {
        let (sig_ready, master_ready, stdin_ready, master_writable, job_ready) = {
            let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
            let (mut master, mut stdin, mut job_slot) = (None, None, None);
            if let Some(p) = pty.as_deref() {
                if master_open {
                    let flags =
                        if p.has_pending() { PollFlags::POLLIN | PollFlags::POLLOUT } else { PollFlags::POLLIN };
                    fds.push(PollFd::new(p.master(), flags));
                    master = Some(fds.len() - 1);
                }
                if p.reads_input() && !p.has_pending() {
                    fds.push(PollFd::new(crate::host::pty::stdin(), PollFlags::POLLIN));
                    stdin = Some(fds.len() - 1);
                }
            }
            if let Some(j) = &job {
                fds.push(PollFd::new(j.as_fd(), PollFlags::POLLIN));
                job_slot = Some(fds.len() - 1);
            }
            let foreground_check =
                pty.as_deref().is_some_and(crate::host::pty::Pty::awaits_foreground).then_some(FOREGROUND_CHECK_MS);
            let tick = pty.as_deref().and_then(crate::host::pty::Pty::watch_tick);
            let timeout = match (foreground_check, tick) {
                (None, None) => PollTimeout::NONE,
                (a, b) => PollTimeout::from(a.unwrap_or(u16::MAX).min(b.unwrap_or(u16::MAX))),
            };
            match nix::poll::poll(&mut fds, timeout) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e).context("waiting for the cell"),
            }
            let revents = |i: Option<usize>| i.and_then(|i| fds[i].revents()).unwrap_or(PollFlags::empty());
            let m = revents(master);
            (
                !revents(Some(0)).is_empty(),
                m.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR),
                !revents(stdin).is_empty(),
                m.contains(PollFlags::POLLOUT),
                !revents(job_slot).is_empty(),
            )
        };
        if let Some(p) = pty.as_deref_mut() {
            if p.awaits_foreground() && p.foreground() {
                p.take();
            }
            if master_ready && !p.relay_output() {
                master_open = false;
            }
            if stdin_ready {
                p.read_input();
            }
            if master_writable || p.has_pending() {
                p.write_input();
            }
            if p.check_suspend() == crate::host::pty::SuspendKey::Ignored {
                // The suspend key stopped nothing in the cell: the launcher goes anyway,
                // the cell runs on without the host terminal.
                p.end_watch();
                suspend(p, Signal::SIGTSTP as u8);
            }
        }
        if job_ready {
            let mut buf = [0u8; 16];
            match job.as_ref().map(|j| nix::unistd::read(j, &mut buf)) {
                Some(Ok(0) | Err(_)) | None => job = None,
                Some(Ok(n)) => {
                    // Believed only when it is so: a process of the cell that got hold of the
                    // pipe must not make the launcher let go of the terminal at will.
                    if let (Some(p), Some(&last)) = (pty.as_deref_mut(), buf[..n].last()) {
                        if p.command_stopped() {
                            p.end_watch();
                            suspend(p, last);
                        }
                    }
                }
            }
        }
        if !sig_ready {
            continue;
        }
        while let Ok(Some(info)) = signals.read_signal() {
            let Ok(sig) = Signal::try_from(i32::try_from(info.ssi_signo).unwrap_or(0)) else { continue };
            match sig {
                Signal::SIGCHLD => match waitpid(bwrap, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(_, code)) => return Ok(finish(pty, u8::try_from(code).unwrap_or(1))),
                    Ok(WaitStatus::Signaled(_, s, _)) => {
                        return Ok(finish(pty, 128u8.saturating_add(u8::try_from(s as i32).unwrap_or(0))));
                    }
                    _ => {}
                },
                // The pty's line discipline signals the cell's foreground group itself.
                Signal::SIGWINCH if pty.is_some() => {
                    if let Some(p) = pty.as_deref() {
                        p.sync_size();
                    }
                }
                Signal::SIGTTIN | Signal::SIGTTOU => {}
                Signal::SIGTSTP => {
                    // Ctrl-Z on a host terminal that is not raw: as for the suspend key, the
                    // launcher stops after the grace even if the cell ignores it.
                    let _ = kill(init, sig);
                    if let Some(p) = pty.as_deref_mut() {
                        p.watch_suspend();
                    }
                }
                Signal::SIGCONT => {
                    // `fg` (or `bg`): raw mode again only in the foreground, then the
                    // command resumes.
                    if let Some(p) = pty.as_deref_mut() {
                        p.take();
                    }
                    let _ = kill(init, sig);
                }
                _ => {
                    let _ = kill(init, sig);
                }
            }
        }
    }
}

/// The command in the cell stopped (signal `sig`): the host terminal gets its settings back
/// and the launcher stops itself the same way, so the host shell sees the job stop. It goes
/// on when continued; the SIGCONT then waits on the signalfd, which resumes the command.
fn suspend(pty: &mut crate::host::pty::Pty, sig: u8) {
    pty.flush_output();
    pty.restore();
    let stop = match Signal::try_from(i32::from(sig)) {
        Ok(s @ (Signal::SIGTTIN | Signal::SIGTTOU)) => s,
        _ => Signal::SIGTSTP,
    };
    let mut only = SigSet::empty();
    only.add(stop);
    // Raised while blocked, then unblocked: the default action (stop) happens here.
    let _ = kill(Pid::this(), stop);
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&only), None);
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&only), None);
}

/// The cell ended: what it left in its terminal reaches the host before the launcher goes.
fn finish(pty: Option<&mut crate::host::pty::Pty>, code: u8) -> u8 {
    if let Some(p) = pty {
        p.drain();
        p.end();
    }
    code
}

/// Restores a signal mask when dropped.
struct MaskGuard(SigSet);

impl Drop for MaskGuard {
    fn drop(&mut self) {
        let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.0), None);
    }
}

/// Reads a file, refusing a symbolic link in its last component.
fn read_no_follow(path: &Utf8Path) -> std::io::Result<String> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut text = String::new();
    std::fs::OpenOptions::new().read(true).custom_flags(nix::libc::O_NOFOLLOW).open(path)?.read_to_string(&mut text)?;
    Ok(text)
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
