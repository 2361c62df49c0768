//! Starting and stopping the sidecars of a launch, generic over the plan's list: the
//! runtime directory, each sidecar's files, process, forwarder and readiness, the control
//! socket; and, when the launch ends, all of it stopped and removed.

use std::os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::process::Command;

use anyhow::{bail, Context as _};
use camino::{Utf8Path, Utf8PathBuf};
use nix::unistd::Pid;

use super::{control, forward, Readiness, SidecarSpec, VIA_ENV};
use crate::host::plan::Plan;
use crate::sys::{park, private_dir, unblock_all_signals};

/// How long a sidecar may take to report that it is ready.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How often a sidecar's port is tried while it starts.
const PORT_RETRY: std::time::Duration = std::time::Duration::from_millis(10);
/// How long a sidecar gets to exit after its stop signal before it is killed.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// One sidecar of a launch and its process (none for a host service, or after a restart
/// that failed).
pub(crate) struct Sidecar {
    pub spec: SidecarSpec,
    pub child: Option<std::process::Child>,
}

/// The sidecars of a launch, shared by the launch (which stops them when it ends) and its
/// control socket (status, reload, restart).
pub(crate) struct Launched {
    pub sidecars: std::sync::Mutex<Vec<Sidecar>>,
    /// The plan's writable mount sources (a restarted sidecar is checked as at launch).
    writable: Vec<Utf8PathBuf>,
    runtime: Utf8PathBuf,
}

impl Launched {
    /// The sidecars, even when a thread panicked holding them (they must still be stopped).
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Sidecar>> {
        self.sidecars.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Stops the sidecar `name` of a launch (its stop signal to its process group, then SIGKILL
/// after the grace period) and starts it again with the same spec, waiting until it is
/// ready. Its files are not written again: a policy reloaded since stays.
///
/// # Errors
/// When there is no such sidecar, it is a host service (nothing runs), or it does not come
/// up again (it is then left stopped, and `status` shows it not running).
pub(crate) fn restart(launched: &Launched, name: &str) -> anyhow::Result<u32> {
    let mut sidecars = launched.lock();
    let Some(one) = sidecars.iter_mut().find(|s| s.spec.name == name) else {
        bail!("this launch has no sidecar {name:?}");
    };
    if one.spec.command.is_empty() {
        bail!("{name} is a host service: nothing of the launcher's runs there to restart");
    }
    stop_all(std::slice::from_mut(one));
    one.child = None;
    let child = start_one(&one.spec, &launched.writable)?;
    let pid = child.id();
    one.child = Some(child);
    let pid_file = launched.runtime.join(format!("{name}.pid"));
    std::fs::write(&pid_file, format!("{pid}\n")).with_context(|| format!("cannot write {pid_file}"))?;
    Ok(pid)
}

/// Sends each sidecar's stop signal to its process group, then kills the groups of those
/// still running after [`STOP_GRACE`], and reaps them.
fn stop_all(sidecars: &mut [Sidecar]) {
    let group = |child: &std::process::Child| i32::try_from(child.id()).ok().map(Pid::from_raw);
    for s in sidecars.iter() {
        // Each runs in a process group of its own: what it started stops with it. It is not
        // reaped before this, so its pid (and group) is still its own.
        if let Some(pid) = s.child.as_ref().and_then(group) {
            let _ = nix::sys::signal::killpg(pid, s.spec.stop_signal);
        }
    }
    let deadline = std::time::Instant::now() + STOP_GRACE;
    for child in sidecars.iter_mut().filter_map(|s| s.child.as_mut()) {
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if std::time::Instant::now() > deadline => {
                    if let Some(pid) = group(child) {
                        let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
                    }
                    let _ = child.wait();
                    break;
                }
                Ok(None) => wait_exit_until(child.id(), deadline),
            }
        }
    }
}

/// The runtime directory and the sidecars of one launch; dropping it stops the sidecars
/// and removes the directory, whatever way the launch ends.
pub struct Running {
    runtime_dir: Option<Utf8PathBuf>,
    sidecars: Option<std::sync::Arc<Launched>>,
    forwarders: Vec<forward::Forwarder>,
    control: Option<control::Server>,
    /// The published ports, bound before the cell starts ...
    ports: Option<crate::host::publish::Listeners>,
    /// ... and served once the launcher blocked its signals; closed first when the launch ends.
    server: Option<crate::host::publish::Server>,
}

impl Running {
    /// Starts serving the published ports (on a thread with every signal blocked).
    ///
    /// # Errors
    /// When the serving thread cannot start.
    pub fn serve_published(&mut self) -> anyhow::Result<Vec<String>> {
        let described = self.ports.as_ref().map(crate::host::publish::Listeners::describe).unwrap_or_default();
        // Said at every launch, terminal or not: the person learns where to point a browser.
        for line in self.ports.as_ref().map(crate::host::publish::Listeners::announce).unwrap_or_default() {
            eprintln!("cell: {line}");
        }
        if let Some(ports) = self.ports.take() {
            self.server = Some(ports.serve()?);
        }
        Ok(described)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        drop(self.server.take());
        drop(self.ports.take());
        self.control = None;
        self.forwarders.clear();
        if let Some(launched) = self.sidecars.take() {
            stop_all(&mut launched.lock());
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

/// Starts the plan's sidecars in order, each ready before the next, then serves the
/// launch's control socket.
///
/// # Errors
/// When the runtime directory cannot be made or a sidecar does not become ready; the cell
/// must not start then.
pub fn start(plan: &Plan) -> anyhow::Result<Running> {
    let mut running =
        Running { runtime_dir: None, sidecars: None, forwarders: Vec::new(), control: None, ports: None, server: None };
    let Some(runtime) = &plan.runtime_dir else { return Ok(running) };
    let base = runtime.parent().context("runtime directory has no parent")?;
    if let Some(top) = base.parent() {
        std::fs::create_dir_all(top).with_context(|| format!("cannot create {top}"))?;
    }
    private_dir(base, false)?;
    sweep_stale(base);
    private_dir(runtime, true)?;
    running.runtime_dir = Some(runtime.clone());
    private_dir(&runtime.join(super::SOCKETS), true)?;
    // Before the sidecars: a host port in use stops the launch before anything else starts.
    running.ports = Some(crate::host::publish::bind(&plan.published, &runtime.join(super::SOCKETS))?);
    let writable = crate::host::plan::writable_sources(&plan.mounts);
    let launched = std::sync::Arc::new(Launched {
        sidecars: std::sync::Mutex::new(Vec::new()),
        writable: writable.clone(),
        runtime: runtime.clone(),
    });
    running.sidecars = Some(launched.clone());
    for spec in &plan.sidecars {
        if let Some(port) = spec.forward_to {
            running.forwarders.push(forward::start(&spec.socket, port)?);
        }
        let mut child = None;
        if !spec.command.is_empty() {
            for f in &spec.files {
                std::fs::write(&f.path, &f.contents).with_context(|| format!("cannot write {}", f.path))?;
            }
            let started = start_one(spec, &writable)?;
            let pid_file = runtime.join(format!("{}.pid", spec.name));
            std::fs::write(&pid_file, format!("{}\n", started.id()))
                .with_context(|| format!("cannot write {pid_file}"))?;
            child = Some(started);
        }
        launched.lock().push(Sidecar { spec: spec.clone(), child });
    }
    // The files they contribute exist now (a sidecar may write its own before it is ready):
    // each must be a file, and neither it nor what it links to where the cell writes.
    for (spec, f) in plan.sidecars.iter().flat_map(|s| s.cell_files.iter().map(move |f| (s, f))) {
        let real = crate::sys::canonical_utf8(&f.src).with_context(|| {
            format!("the {} sidecar's file {} for {} inside the cell is not there", spec.name, f.src, f.dst)
        })?;
        if !real.is_file() {
            bail!("the {} sidecar's file {} for {} inside the cell is not a file", spec.name, f.src, f.dst);
        }
        if let Some(w) = writable.iter().find(|w| crate::host::plan::within(real.as_str(), w.as_str())) {
            bail!(
                "the {} sidecar's file {} for {} inside the cell is {real}, in {w}, where the cell can write; the cell does not start",
                spec.name,
                f.src,
                f.dst
            );
        }
    }
    running.control = Some(control::serve(&plan.cell, runtime, launched)?);
    Ok(running)
}

/// The sidecar's `PATH`: the one it declares (else the launcher's), without relative
/// entries or entries where the cell can write.
fn sidecar_path(spec: &SidecarSpec, writable: &[Utf8PathBuf]) -> String {
    let declared = spec.env.get("PATH").cloned().or_else(|| std::env::var("PATH").ok());
    let path = declared.unwrap_or_else(|| "/usr/bin:/bin".to_owned());
    let kept: Vec<&str> = path
        .split(':')
        .filter(|d| d.starts_with('/'))
        .filter(|d| !writable.iter().any(|w| crate::host::plan::within(d, w.as_str())))
        .collect();
    if kept.is_empty() {
        "/usr/bin:/bin".to_owned()
    } else {
        kept.join(":")
    }
}

/// Starts one sidecar process and waits until it is ready.
fn start_one(spec: &SidecarSpec, writable: &[Utf8PathBuf]) -> anyhow::Result<std::process::Child> {
    let log_path = spec.log.clone().unwrap_or_else(|| "/dev/null".into());
    if let Some(dir) = spec.log.as_ref().and_then(|l| l.parent()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {dir}"))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make {dir} private"))?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open the sidecar log {log_path}"))?;
    if let (Readiness::Port, Some(port)) = (spec.ready, spec.forward_to) {
        // Readiness is the port accepting: an impostor already there would be taken for it.
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            bail!(
                "something already listens on the host's 127.0.0.1:{port}, where the {} sidecar is to listen, so the cell does not start (it would reach that instead); stop it or give the sidecar another port",
                spec.name
            );
        }
    }
    let (program, args) = spec.command.split_first().context("empty sidecar command")?;
    refuse_writable_interpreter(&spec.name, Utf8Path::new(program), writable)?;
    let mut cmd = Command::new(program);
    // Never the worktree (the launcher's own directory): an interpreter there would load
    // what the cell planted (`python3 -m` puts its directory first on sys.path).
    cmd.current_dir("/")
        .args(args)
        .env_clear()
        .envs(&spec.env)
        .env("PATH", sidecar_path(spec, writable))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .process_group(0);
    for (k, path) in &spec.secret_env {
        let value = crate::sys::read_no_follow(path)
            .with_context(|| format!("cannot read the secret for {k} of the {} sidecar from {path}", spec.name))?;
        cmd.env(k, value.strip_suffix('\n').unwrap_or(&value));
    }
    if let Some(via) = &spec.via {
        cmd.env(VIA_ENV, &via.socket);
    }
    let ready_pipe = if spec.ready == Readiness::Fd {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("cannot create a pipe")?;
        Some((read, park(&write)?))
    } else {
        None
    };
    let raw = ready_pipe.as_ref().map(|(_, w)| w.as_raw_fd());
    // The parent-death signal follows the thread that forks: the launcher's main thread, or
    // for a restart the control thread, which serves until the launch stops its sidecars.
    // SAFETY: only async-signal-safe calls between fork and exec: pthread_sigmask, prctl,
    // dup2.
    unsafe {
        cmd.pre_exec(move || {
            unblock_all_signals()?;
            if nix::libc::prctl(nix::libc::PR_SET_PDEATHSIG, nix::libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(raw) = raw {
                if nix::libc::dup2(raw, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().with_context(|| format!("cannot start the {} sidecar ({program})", spec.name))?;
    let ready = match ready_pipe {
        Some((read, write)) => {
            drop(write);
            ready_on_fd(read)
        }
        None => ready_on_port(spec.forward_to.unwrap_or(0), &mut child),
    };
    if ready {
        return Ok(child);
    }
    let _ = child.kill();
    let _ = child.wait();
    let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
    let tail: Vec<&str> = tail.lines().rev().take(5).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    let how = match spec.ready {
        Readiness::Port => format!(" (nothing accepted on the host's 127.0.0.1:{})", spec.forward_to.unwrap_or(0)),
        _ => String::new(),
    };
    let tail: Vec<String> = tail.iter().map(|l| crate::sys::escape_controls(l)).collect();
    bail!(
        "the {} sidecar did not become ready{how}, so the cell does not start; its log ({log_path}) ends with:\n  {}",
        spec.name,
        tail.join("\n  ")
    )
}

/// A script's `#!` interpreter must not lie where the cell writes either.
fn refuse_writable_interpreter(name: &str, program: &Utf8Path, writable: &[Utf8PathBuf]) -> anyhow::Result<()> {
    use std::io::Read as _;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(program).and_then(|mut f| f.read(&mut head)).unwrap_or(0);
    let Some(line) = head[..n].strip_prefix(b"#!") else { return Ok(()) };
    let line = String::from_utf8_lossy(line.split(|b| *b == b'\n').next().unwrap_or_default()).into_owned();
    let Some(interpreter) = line.split_whitespace().next() else { return Ok(()) };
    let given = Utf8PathBuf::from(interpreter);
    let real = crate::sys::canonical_utf8(&given).unwrap_or_else(|_| given.clone());
    if let Some(w) = writable.iter().find(|w| given.starts_with(w) || real.starts_with(w)) {
        bail!(
            "the {name} sidecar's program {program} is a script run by {interpreter}, which lies in {w}, where the cell can write; install the interpreter outside the cell's reach"
        );
    }
    Ok(())
}

/// Waits for `ready` on the read end of the readiness pipe.
fn ready_on_fd(read: OwnedFd) -> bool {
    use std::io::Read as _;
    let mut pipe = std::fs::File::from(read);
    let ms = u16::try_from(READY_TIMEOUT.as_millis()).unwrap_or(u16::MAX);
    let mut fds = [nix::poll::PollFd::new(pipe.as_fd(), nix::poll::PollFlags::POLLIN)];
    let polled = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms));
    let mut buf = [0u8; 16];
    let n = match polled {
        Ok(n) if n > 0 => pipe.read(&mut buf).unwrap_or(0),
        _ => 0,
    };
    buf[..n].starts_with(b"ready")
}

/// Waits until the host's `127.0.0.1:port` accepts, while the sidecar runs.
fn ready_on_port(port: u16, child: &mut std::process::Child) -> bool {
    let deadline = std::time::Instant::now() + READY_TIMEOUT;
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        if !matches!(child.try_wait(), Ok(None)) || std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(PORT_RETRY);
    }
}
