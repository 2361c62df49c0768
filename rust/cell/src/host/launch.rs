//! Executing a plan: bubblewrap as a child, its status pipe, signal forwarding, the relay of
//! the cell's own terminal (see [`crate::host::pty`]), exit status.

use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt as _;

use anyhow::{bail, Context as _};
use camino::{Utf8Path, Utf8PathBuf};
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::host::plan::{self, Plan};
use crate::sys::{is_private_dir, park, private_dir, unblock_all_signals};

/// Exit code when the cell could not be started (the host cannot isolate, bubblewrap failed).
pub const EXIT_CANNOT_START: u8 = 125;

/// Marks every inherited descriptor above stderr close-on-exec, so nothing the caller left
/// open reaches bubblewrap or the cell. Once per process: what the launcher opens itself is
/// close-on-exec already (std and every `pipe2`, `memfd_create` and `F_DUPFD` here ask for
/// it), so a second pass (a launch whose bubblewrap was started early) would find nothing.
pub fn seal_inherited_fds() {
    static SEALED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if SEALED.load(std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    SEALED.store(true, std::sync::atomic::Ordering::SeqCst);
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
    write_at(&fd, contents)?;
    park(&fd)
}

/// Writes `bytes` to a memory file at offset 0 without moving its file offset: the reader
/// starts at the beginning with no rewind (one system call fewer for each of a launch's
/// files).
fn write_at(fd: &OwnedFd, bytes: &[u8]) -> anyhow::Result<()> {
    let mut done = 0;
    while done < bytes.len() {
        let at = i64::try_from(done).context("a generated file too large")?;
        match nix::sys::uio::pwrite(fd, &bytes[done..], at) {
            Ok(0) => bail!("cannot write a generated file"),
            Ok(n) => done += n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context("cannot write a generated file"),
        }
    }
    Ok(())
}

/// What a launch hands bubblewrap in memory files, as (name, contents, descriptor): each
/// generated file the cell's `/etc` directory does not hold, `cell-init`'s spec with the
/// values of the secrets and the task limit `tasks`, and the seccomp programs. Writes the
/// `/etc` directory first.
fn generated(plan: &Plan, tasks: Option<u64>) -> anyhow::Result<Vec<(String, Vec<u8>, RawFd)>> {
    let fds = plan.descriptors();
    if let Some(tree) = plan.etc.as_ref() {
        tree.materialise(&plan.files)?;
    }
    let mut out: Vec<(String, Vec<u8>, RawFd)> = plan
        .handed_files()
        .into_iter()
        .enumerate()
        .map(|(rank, i)| (plan.files[i].dst.to_string(), plan.files[i].contents.clone().into_bytes(), fds.file(rank)))
        .collect();
    let mut launch = with_secrets(plan)?;
    launch.tasks = tasks;
    let spec = crate::contract::InitSpec::Run(launch).to_json();
    out.push((crate::contract::SPEC_FILE.to_owned(), spec.into_bytes(), fds.spec()));
    if plan.seccomp.is_some() {
        for (program, fd) in crate::host::seccomp::programs().into_iter().zip(fds.seccomp()) {
            out.push(("seccomp".to_owned(), program, fd));
        }
    }
    Ok(out)
}

/// Removes a launch's mount points from the home when dropped, unless another launch of a
/// cell with the same home runs: a mount point this launch made may be the one that
/// launch's worktree is mounted on (the same worktree, started later), and removing it
/// would detach that mount in the other cell (the kernel detaches a mount whose mount
/// point is removed), leaving it without its worktree.
struct MountPointsGuard {
    points: crate::host::home::MountPoints,
    home: Utf8PathBuf,
    /// The runtime base, whose `live` records name the running launches.
    base: Option<Utf8PathBuf>,
    /// Where empty mount points are set aside (see [`crate::host::home::MountPoints::remove`]).
    aside: Option<Utf8PathBuf>,
}

impl MountPointsGuard {
    /// The mount points `plan` will make in its home (taken before the launch).
    fn new(plan: &Plan) -> Self {
        Self {
            points: crate::host::home::MountPoints::before(plan),
            home: plan.home.clone(),
            base: plan.live_record.parent().and_then(Utf8Path::parent).map(Utf8Path::to_owned),
            aside: plan.git.is_some().then(|| plan.state_dir.join("git")),
        }
    }
}

impl Drop for MountPointsGuard {
    fn drop(&mut self) {
        if self.points.is_empty() {
            return;
        }
        let me = std::process::id();
        let shared =
            self.base.as_deref().is_some_and(|b| live_cells(b).iter().any(|l| l.launcher != me && l.home == self.home));
        if !shared {
            // Into the cell's private git directory (swept by the next launch in a git
            // worktree), when there is one; else removed now.
            self.points.remove(self.aside.as_deref().filter(|a| crate::sys::is_private_dir(a)));
        }
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
    /// Its published ports (`127.0.0.1:8000 -> 8000`; empty in records of older launchers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub published: Vec<String>,
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

/// The file `cell stop` leaves beside a live record (`live/<launcher pid>.json`) before it
/// signals the cell, so that its launcher can say why the cell ended.
#[must_use]
pub fn stop_marker(record: &Utf8Path) -> Utf8PathBuf {
    record.with_extension("stopped")
}

/// The record of one running cell; dropping it removes the file (set aside in the cell's
/// private git directory when the launch has one, for the next launch's sweep) and a stop
/// marker. Best effort: a cell whose record cannot be written still runs (only `cell login`
/// misses it).
struct LiveRecord(Option<Utf8PathBuf>, Option<Utf8PathBuf>);

impl LiveRecord {
    /// Whether `cell stop` stopped this cell.
    fn stopped(&self) -> bool {
        self.0.as_ref().is_some_and(|p| std::fs::symlink_metadata(stop_marker(p)).is_ok())
    }

    fn write(plan: &Plan, init: Pid, published: Vec<String>) -> Self {
        let path = &plan.live_record;
        // A marker left by a launcher of the same pid that was killed is not about this cell.
        let _ = std::fs::remove_file(stop_marker(path));
        let written = (|| -> anyhow::Result<()> {
            let record = LiveCell {
                cell: plan.cell.clone(),
                home: plan.home.clone(),
                init: init.as_raw(),
                launcher: std::process::id(),
                ns: pid_namespace(init.as_raw()).context("no pid namespace")?,
                start: start_time(init.as_raw()).context("no start time")?,
                worktree: plan.worktree.clone(),
                started: crate::sys::since_epoch().as_secs(),
                proxy: plan.network.policy.is_some(),
                published,
            };
            let dir = path.parent().context("no directory")?;
            let base = dir.parent().context("no directory")?;
            if let Some(top) = base.parent() {
                std::fs::create_dir_all(top)?;
            }
            private_dir(base, false)?;
            private_dir(dir, false)?;
            let aside = plan.git.is_some().then(|| plan.state_dir.join("git"));
            let reuse = aside.as_deref().map(Utf8Path::as_std_path);
            crate::sys::write_reusing(
                path.as_std_path(),
                &serde_json::to_vec(&record)?,
                reuse,
                crate::host::gitview::DISCARDED,
            )?;
            Ok(())
        })();
        let aside = plan.git.is_some().then(|| plan.state_dir.join("git"));
        Self(written.ok().map(|()| path.clone()), aside.filter(|a| crate::sys::is_private_dir(a)))
    }
}

impl Drop for LiveRecord {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let aside = self.1.as_deref().map(Utf8Path::as_std_path);
            crate::sys::set_aside(p.as_std_path(), aside, crate::host::gitview::DISCARDED);
            let _ = std::fs::remove_file(stop_marker(p));
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

/// Refuses a launch whose worktree holds, or lies inside, the worktree of a cell of this
/// account that runs now (another worktree than this one). The outer cell can write the
/// parents of the inner one's paths: it could swap a path this launcher checked for a link
/// before bubblewrap mounts it (bubblewrap opens mount sources by name), or before the
/// inner launcher's exit walk renames what it found. Two cells in the same worktree see
/// none of each other's parents and are allowed.
///
/// # Errors
/// [`crate::host::config::Invalid`] naming the running cell and how to go on.
pub fn refuse_nested_running(plan: &Plan) -> Result<(), crate::host::plan::PlanError> {
    let Some(base) = plan.live_record.parent().and_then(Utf8Path::parent) else { return Ok(()) };
    let real = |p: &Utf8Path| crate::sys::canonical_utf8(p).unwrap_or_else(|_| p.to_owned());
    let ours = real(&plan.worktree);
    for other in live_cells(base) {
        let theirs = real(&other.worktree);
        if theirs == ours {
            continue;
        }
        let (outer, inner) = if ours.starts_with(&theirs) {
            ("holds", "this launch's worktree")
        } else if theirs.starts_with(&ours) {
            ("lies inside", "this launch's worktree")
        } else {
            continue;
        };
        return Err(crate::host::config::Invalid::new(
            "the worktree",
            format!(
                "cell {} (launcher pid {}) runs in {theirs}, which {outer} {inner} {ours}: a cell can rename the paths below its worktree, so it could swap what this launch mounts for another host directory",
                other.cell, other.launcher
            ),
            format!(
                "wait until it ends or stop it (cell stop {}), or start this cell in a directory neither holds nor lies inside the other",
                other.cell
            ),
        )
        .into());
    }
    Ok(())
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

/// What became of a launch.
#[derive(Debug)]
pub enum Outcome {
    /// The cell ran; this is the command's exit code (128+N for signal N).
    Exited(u8),
    /// bubblewrap could not build the cell; its exit code.
    SetupFailed(u8),
}

/// Runs a plan and waits for the cell to end; `early` is a bubblewrap started before the
/// plan was made ([`Early`]), used when it fits the plan (else ended, and one started now).
///
/// # Errors
/// When bubblewrap cannot be started or signals cannot be managed.
pub fn execute(plan: &Plan, early: Option<Early>) -> anyhow::Result<Outcome> {
    // One that does not fit is ended here (dropped), before anything of the launch is made.
    let mut early = early.filter(|e| e.fits(plan));
    if plan.seccomp.is_some() && !crate::host::seccomp::seccomp_available() {
        bail!(
            "this kernel cannot apply the cell's seccomp filter, and cell does not start a cell with weaker defences than declared; use a kernel with CONFIG_SECCOMP_FILTER (see `cell doctor`)"
        );
    }
    // The runtime base (the live records' parent) keeps what was said once this boot.
    let notes = plan.live_record.parent().and_then(Utf8Path::parent).filter(|d| d.is_dir());
    let limits = crate::host::limits::Applied::enter(&plan.limits, &plan.cell, notes)?;
    crate::timing::mark("limits");
    seal_inherited_fds();
    let new_home = std::fs::symlink_metadata(&plan.home).is_err();
    prepare_home(&plan.home)?;
    if new_home {
        for line in crate::host::home::seed(Utf8Path::new(crate::host::home::SKEL), &plan.home) {
            eprintln!("cell: the new cell home lacks a file of {}: {line}", crate::host::home::SKEL);
        }
    }
    // Dropped after the cell ended: the empty mount points it left in the home go.
    let _mount_points = MountPointsGuard::new(plan);
    // Dropped last: brings the cell's commits over and quarantines, after the cell ended.
    let held: Vec<Utf8PathBuf> =
        plan.protected.iter().filter(|p| p.how == "read-only").map(|p| p.path.clone()).collect();
    crate::timing::mark("home");
    let mut repository = crate::host::gitview::Session::start(
        &plan.state_dir,
        &plan.worktree,
        plan.git.as_ref(),
        &plan.absent,
        &held,
        &crate::host::plan::writable_sources(&plan.mounts),
        &plan.nested,
    )?;
    crate::timing::mark("repository");
    let mut running = crate::host::sidecars::start(plan)?;
    crate::timing::mark("sidecars");
    // A terminal on any of 0-2 never enters the cell: the cell gets a pty of its own, and
    // cell-init reports the command's stops on the job pipe.
    let mut pty = match early.as_mut() {
        Some(e) => e.pty.take(),
        None if plan.terminal => crate::host::pty::Pty::open()?,
        None => None,
    };
    let signals = Signals::block(pty.is_some())?;
    let published = running.serve_published()?;
    let Started { bwrap, status_read, go, job_read } = match early {
        Some(e) => e.release(plan, limits.for_child(), pty.as_mut())?,
        None => spawn_planned(plan, limits.for_child(), pty.as_mut())?,
    };
    crate::timing::mark("bubblewrap spawned");
    // While bubblewrap builds the cell: the repository view, the watch. Then the go.
    if let Err(e) = repository.ready(bwrap) {
        // cell-init sees the end of the go pipe and runs nothing.
        drop(go);
        let _ = wait_exit(bwrap);
        if let Some(pty) = &mut pty {
            pty.drain();
            pty.end();
        }
        return Err(e);
    }
    say_go(go);
    repository.sweep_behind();
    crate::timing::mark("ready");

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
    crate::timing::mark("cell-init started");
    let live = LiveRecord::write(plan, init, published);
    crate::timing::mark("recorded");
    let code = supervise(bwrap, init, &signals.fd, pty.as_mut(), job_read)?;
    crate::timing::mark("cell ended");
    if live.stopped() {
        eprintln!("cell: cell {} was stopped by `cell stop` (exit status {code})", plan.cell);
    }
    // Contained now, while the forwarded signals are still blocked: a Ctrl-C or SIGTERM
    // arriving meanwhile waits until the worktree is contained (and the next launch would
    // contain it if the launcher were killed outright).
    drop(repository);
    drop(signals);
    Ok(Outcome::Exited(code))
}

/// A bubblewrap that runs, and the launcher's ends of its pipes.
struct Started {
    bwrap: Pid,
    /// bubblewrap's status pipe.
    status_read: OwnedFd,
    /// The go pipe (one byte tells `cell-init` to start the command).
    go: OwnedFd,
    /// The job pipe, with a terminal.
    job_read: Option<OwnedFd>,
}

/// Starts bubblewrap for a plan that is made: every descriptor filled first, the limits
/// applied between fork and exec.
fn spawn_planned(
    plan: &Plan,
    limits: crate::host::limits::ChildLimits,
    mut pty: Option<&mut crate::host::pty::Pty>,
) -> anyhow::Result<Started> {
    let mut handed = Handed::new(plan, limits.in_cell_tasks())?;
    let go = handed.pipe_in(plan.descriptors().go())?;
    crate::timing::mark("descriptors");
    let job_read = match (&pty, plan.descriptors().job()) {
        (Some(_), Some(fd)) => Some(handed.pipe(fd)?),
        _ => None,
    };
    let mut pairs = handed.pairs();
    if let Some(pty) = &pty {
        pairs.extend(pty.slave_moves());
    }
    let bwrap = spawn_bwrap(plan, pairs, limits, pty.as_deref_mut())?;
    drop(handed.moves);
    if let Some(pty) = pty {
        pty.close_slave();
    }
    Ok(Started { bwrap, status_read: handed.status_read, go, job_read })
}

/// How many generated files an early bubblewrap has descriptors for; a plan that hands
/// more is started the ordinary way.
const EARLY_FILES: usize = 4;

/// The end of every plan's bubblewrap command line: `cell-init` and its spec, after `--`.
const EARLY_COMMAND: [&str; 4] = ["--", crate::contract::INIT_PATH, "--spec", crate::contract::SPEC_FILE];

/// bubblewrap started before the launch's plan is made, so that its own start (executing
/// it, its dynamic loader and C library: most of a millisecond) runs beside the planning.
/// It waits for its arguments on a pipe (`bwrap --args`) and holds every descriptor of
/// [`crate::host::descriptors::Descriptors`] at its fixed number: empty memory files for
/// the spec, the seccomp programs and up to [`EARLY_FILES`] generated files (their contents
/// are written before the arguments are), and the status, go and job pipes. Nothing of the
/// cell exists until [`Early::release`] has applied the limits to it and written the plan's
/// arguments; dropped before that, it is killed (it never read a word).
///
/// It is started from the launcher's thread, which waits for the exec (0.1-0.4 ms here),
/// then plans while bubblewrap's own start runs on the other processor. A helper thread
/// that started it instead, to save that wait, made launches no faster on two processors
/// (three tasks for two) and would have to outlive the launch as bubblewrap's parent.
///
/// Only a bubblewrap that no account but root can replace is started this early
/// ([`crate::sys::only_root_can_replace`]): one elsewhere on `PATH` could sit where a cell
/// writes, which the plan alone can tell (and then skips), so it waits for the plan.
pub struct Early {
    bwrap: Utf8PathBuf,
    child: Unreleased,
    args: Option<OwnedFd>,
    status_read: Option<OwnedFd>,
    go: Option<OwnedFd>,
    job_read: Option<OwnedFd>,
    /// The empty memory files, by their number in bubblewrap: the spec, the seccomp
    /// programs and [`EARLY_FILES`] generated files.
    blanks: Vec<(RawFd, OwnedFd)>,
    pty: Option<crate::host::pty::Pty>,
}

/// A bubblewrap that has not been given its options: killed (and reaped) when dropped.
struct Unreleased(Option<Pid>);

impl Drop for Unreleased {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
    }
}

impl Early {
    /// Starts bubblewrap for a launch on `host`, when it can be: not with
    /// `CELL_EARLY_BWRAP=0`, and only the bubblewrap the plan would find first, where only
    /// root can replace it. `None` means the launch starts it once the plan is made.
    #[must_use]
    pub fn start(host: &crate::host::hostenv::HostEnv) -> Option<Self> {
        if host.var("CELL_EARLY_BWRAP") == Some("0") {
            return None;
        }
        let bwrap = crate::host::tools::find_bwrap(host, &[]).ok()?;
        if !crate::sys::only_root_can_replace(&bwrap) {
            return None;
        }
        let early = Self::spawn(bwrap).ok();
        crate::timing::mark("bubblewrap starting early");
        early
    }

    fn spawn(bwrap: Utf8PathBuf) -> anyhow::Result<Self> {
        use nix::fcntl::OFlag;
        // Nothing the caller left open may reach bubblewrap.
        seal_inherited_fds();
        let pty = crate::host::pty::Pty::open()?;
        let fds = crate::host::descriptors::Descriptors::new(EARLY_FILES, true, pty.is_some());
        // The parked child's copy of every descriptor, and its number in the child.
        let mut moves: Vec<(OwnedFd, RawFd)> = Vec::new();
        let mut pipe = |target: RawFd, child_reads: bool| -> anyhow::Result<OwnedFd> {
            let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).context("cannot create a pipe")?;
            let (theirs, ours) = if child_reads { (read, write) } else { (write, read) };
            moves.push((park(&theirs)?, target));
            Ok(ours)
        };
        let status_read = pipe(fds.status(), false)?;
        let args = pipe(fds.args(), true)?;
        let go = pipe(fds.go(), true)?;
        let job_read = fds.job().map(|fd| pipe(fd, false)).transpose()?;
        let targets = std::iter::once(fds.spec()).chain(fds.seccomp()).chain((0..EARLY_FILES).map(|i| fds.file(i)));
        let mut blanks = Vec::new();
        for target in targets {
            use nix::sys::memfd::{memfd_create, MFdFlags};
            let fd = memfd_create("cell", MFdFlags::MFD_CLOEXEC).context("memfd_create failed")?;
            // Parked: no move onto a fixed number may overwrite a source still to move.
            moves.push((park(&fd)?, target));
            blanks.push((target, fd));
        }
        let mut pairs: Vec<(RawFd, RawFd)> = moves.iter().map(|(fd, target)| (fd.as_raw_fd(), *target)).collect();
        let mut pty = pty;
        // The slave goes with the thread, open until the child has moved it onto 0-2.
        let mut slave = None;
        if let Some(pty) = &mut pty {
            pairs.extend(pty.slave_moves());
            slave = pty.take_slave();
        }
        // The options come on the pipe; the command (bubblewrap reads none from there) is
        // the one every plan ends with.
        let mut argv = vec![bwrap.to_string(), "--args".to_owned(), fds.args().to_string()];
        argv.extend(EARLY_COMMAND.iter().map(|a| (*a).to_owned()));
        // As spawn_bwrap's hook, and killed with the launcher: until it reads its options,
        // bubblewrap has not asked for that itself. A launcher killed before the request
        // took effect (it is no longer the parent then) means no exec at all.
        let launcher = i32::try_from(std::process::id()).context("pid")?;
        let hook = move || {
            unblock_all_signals()?;
            // SAFETY: prctl on the calling process only.
            if unsafe { nix::libc::prctl(nix::libc::PR_SET_PDEATHSIG, nix::libc::SIGKILL) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: getppid has no arguments and cannot fail.
            if unsafe { nix::libc::getppid() } != launcher {
                return Err(std::io::Error::from_raw_os_error(nix::libc::ESRCH));
            }
            for (src, target) in &pairs {
                // SAFETY: dup2 on descriptors this process holds.
                if unsafe { nix::libc::dup2(*src, *target) } < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        };
        let pid = crate::spawn::spawn(bwrap.as_str(), &argv[1..], &hook)
            .with_context(|| format!("cannot start bubblewrap ({bwrap})"))?;
        // The child has its copies now.
        drop(moves);
        drop(slave);
        let child = Unreleased(Some(pid));
        Ok(Self { bwrap, child, args: Some(args), status_read: Some(status_read), go: Some(go), job_read, blanks, pty })
    }

    /// Whether `plan` can run on this bubblewrap: the same program and command, a terminal
    /// as the plan has one, no more generated files than it has descriptors for.
    fn fits(&self, plan: &Plan) -> bool {
        plan.argv.first().map(String::as_str) == Some(self.bwrap.as_str())
            && plan.argv.len() > EARLY_COMMAND.len()
            && plan.argv[plan.argv.len() - EARLY_COMMAND.len()..] == EARLY_COMMAND
            && plan.terminal == self.pty.is_some()
            && plan.handed_files().len() <= EARLY_FILES
    }

    /// Fills the descriptors, applies `limits` to bubblewrap (its groups, rlimits and nice
    /// value, which everything it starts inherits) and hands it the plan's options.
    fn release(
        mut self,
        plan: &Plan,
        limits: crate::host::limits::ChildLimits,
        pty: Option<&mut crate::host::pty::Pty>,
    ) -> anyhow::Result<Started> {
        for (_, contents, target) in generated(plan, limits.in_cell_tasks())? {
            let (_, fd) = self.blanks.iter().find(|(t, _)| *t == target).context("no early descriptor for a file")?;
            write_at(fd, &contents)?;
        }
        crate::timing::mark("descriptors");
        let pid = self.child.0.context("bubblewrap was released already")?;
        limits.apply_to(pid.as_raw()).context("cannot apply the cell's limits to bubblewrap")?;
        let mut words = Vec::new();
        for a in &plan.argv[1..plan.argv.len() - EARLY_COMMAND.len()] {
            if a.contains('\0') {
                bail!("a NUL byte in a bubblewrap argument");
            }
            words.extend_from_slice(a.as_bytes());
            words.push(0);
        }
        let (Some(args), Some(status_read), Some(go)) = (self.args.take(), self.status_read.take(), self.go.take())
        else {
            bail!("bubblewrap was released already");
        };
        if let Some(pty) = pty {
            pty.take();
        }
        write_all_fd(&args, &words)?;
        // From here on it is the launch's bubblewrap, waited for as the planned one is.
        self.child.0 = None;
        // The argument pipe closes here: bubblewrap reads to its end and builds the cell.
        drop(args);
        Ok(Started { bwrap: pid, status_read, go, job_read: self.job_read.take() })
    }
}

/// Writes all of `bytes` to a pipe, however many writes it takes.
fn write_all_fd(fd: &OwnedFd, mut bytes: &[u8]) -> anyhow::Result<()> {
    while !bytes.is_empty() {
        match nix::unistd::write(fd, bytes) {
            Ok(0) => bail!("bubblewrap stopped reading its arguments"),
            Ok(n) => bytes = &bytes[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context("cannot hand bubblewrap its arguments"),
        }
    }
    Ok(())
}

/// The descriptors the launcher hands bubblewrap, each parked above every target and moved
/// onto its number (from the plan's [`crate::host::descriptors::Descriptors`]) between fork
/// and exec: the status pipe, the generated files, `cell-init`'s spec with the values of
/// the secrets, the seccomp programs and, with a terminal, the job pipe.
struct Handed {
    moves: Vec<(OwnedFd, RawFd)>,
    /// The launcher's end of bubblewrap's status pipe.
    status_read: OwnedFd,
}

impl Handed {
    fn new(plan: &Plan, tasks: Option<u64>) -> anyhow::Result<Self> {
        let fds = plan.descriptors();
        let (status_read, status_write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("cannot create a pipe")?;
        let mut moves: Vec<(OwnedFd, RawFd)> = vec![(park(&status_write)?, fds.status())];
        drop(status_write);
        for (name, contents, fd) in generated(plan, tasks)? {
            moves.push((memfd(&name, &contents)?, fd));
        }
        Ok(Self { moves, status_read })
    }

    /// A pipe whose write end goes to `fd` in the cell; returns the read end.
    fn pipe(&mut self, fd: RawFd) -> anyhow::Result<OwnedFd> {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("cannot create a pipe")?;
        self.moves.push((park(&write)?, fd));
        Ok(read)
    }

    /// A pipe whose read end goes to `fd` in the cell; returns the write end.
    fn pipe_in(&mut self, fd: RawFd) -> anyhow::Result<OwnedFd> {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("cannot create a pipe")?;
        self.moves.push((park(&read)?, fd));
        Ok(write)
    }

    /// The `(source, target)` moves, for the child's pre-exec.
    fn pairs(&self) -> Vec<(RawFd, RawFd)> {
        self.moves.iter().map(|(fd, target)| (fd.as_raw_fd(), *target)).collect()
    }
}

/// Tells `cell-init` that the cell may start (one byte on the go pipe, which closes then).
/// A failed write needs no answer: `cell-init` is gone already (bubblewrap failed, and its
/// status says why), or it sees the pipe's end and runs nothing.
fn say_go(go: OwnedFd) {
    let _ = nix::unistd::write(&go, b"g");
    drop(go);
}

/// `cell-init`'s spec of a plan with the values of its secrets (`envFromFile`), read now:
/// they never appear in the plan.
fn with_secrets(plan: &Plan) -> anyhow::Result<crate::contract::Launch> {
    let mut spec = plan.init_spec();
    for (k, path) in &plan.secret_env {
        let value =
            crate::sys::read_no_follow(path).with_context(|| format!("cannot read the secret for {k} from {path}"))?;
        spec.env.insert(k.clone(), value.strip_suffix('\n').unwrap_or(&value).to_owned());
    }
    Ok(spec)
}

/// The signals the launcher forwards to the cell (and, with a pty, the job-control ones
/// it handles), blocked and read from a signalfd; the previous mask comes back on drop.
struct Signals {
    fd: nix::sys::signalfd::SignalFd,
    /// The caller may go on after the cell (`cell login` does): give it its signals back.
    _mask: MaskGuard,
}

impl Signals {
    fn block(pty: bool) -> anyhow::Result<Self> {
        let mut forwarded = SigSet::empty();
        forwarded.add(Signal::SIGCHLD);
        for s in crate::contract::FORWARDED {
            forwarded.add(s);
        }
        if pty {
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
        let mask = MaskGuard(previous);
        let fd = nix::sys::signalfd::SignalFd::with_flags(
            &forwarded,
            nix::sys::signalfd::SfdFlags::SFD_CLOEXEC | nix::sys::signalfd::SfdFlags::SFD_NONBLOCK,
        )
        .context("cannot create a signalfd")?;
        Ok(Self { fd, _mask: mask })
    }
}

/// Starts bubblewrap with the plan's argv, no environment, the descriptor moves `pairs`
/// and the limits no cgroup carries; with a pty, the host terminal is taken first.
fn spawn_bwrap(
    plan: &Plan,
    pairs: Vec<(RawFd, RawFd)>,
    child_limits: crate::host::limits::ChildLimits,
    pty: Option<&mut crate::host::pty::Pty>,
) -> anyhow::Result<Pid> {
    let (program, args) = plan.argv.split_first().context("empty bubblewrap command line")?;
    // bubblewrap gets no environment and a neutral directory: nothing meant for the cell
    // (a loader path, say) may steer it on the host. cell-init sets the command's
    // environment from its spec. Spawned as posix_spawn does (no fork of the launcher's
    // memory), see crate::spawn, in `/` and a process group of its own.
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
    if let Some(pty) = pty {
        pty.take();
    }
    crate::spawn::spawn(program, args, &hook).with_context(|| format!("cannot start bubblewrap ({program})"))
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
    let mut master_open = pty.is_some();
    loop {
        let ready = Ready::wait(signals, pty.as_deref(), master_open, job.as_ref())?;
        if let Some(p) = pty.as_deref_mut() {
            if !relay_terminal(p, &ready) {
                master_open = false;
            }
        }
        if ready.job {
            job_report(&mut job, pty.as_deref_mut());
        }
        if !ready.signals {
            continue;
        }
        if let Some(code) = handle_signals(bwrap, init, signals, pty.as_deref_mut()) {
            return Ok(finish(pty, code));
        }
    }
}

/// What became ready in one round of [`supervise`].
#[expect(clippy::struct_excessive_bools, reason = "one flag per descriptor polled")]
struct Ready {
    /// The signalfd.
    signals: bool,
    /// The pty master has output (or hung up).
    master: bool,
    /// The host terminal has input for the cell.
    stdin: bool,
    /// The pty master takes input again.
    master_writable: bool,
    /// The job pipe has a stop report (or was closed).
    job: bool,
}

impl Ready {
    /// Polls the signalfd, the pty master and the host's stdin (with a pty) and the job
    /// pipe; with a pty, wakes up in time for its foreground check and suspend watch.
    fn wait(
        signals: &nix::sys::signalfd::SignalFd,
        pty: Option<&crate::host::pty::Pty>,
        master_open: bool,
        job: Option<&OwnedFd>,
    ) -> anyhow::Result<Self> {
        use nix::poll::{PollFd, PollFlags, PollTimeout};
        let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        let (mut master, mut stdin, mut job_slot) = (None, None, None);
        if let Some(p) = pty {
            if master_open {
                let flags = if p.has_pending() { PollFlags::POLLIN | PollFlags::POLLOUT } else { PollFlags::POLLIN };
                fds.push(PollFd::new(p.master(), flags));
                master = Some(fds.len() - 1);
            }
            if p.reads_input() && !p.has_pending() {
                fds.push(PollFd::new(crate::host::pty::stdin(), PollFlags::POLLIN));
                stdin = Some(fds.len() - 1);
            }
        }
        if let Some(j) = job {
            fds.push(PollFd::new(j.as_fd(), PollFlags::POLLIN));
            job_slot = Some(fds.len() - 1);
        }
        let foreground_check = pty.is_some_and(crate::host::pty::Pty::awaits_foreground).then_some(FOREGROUND_CHECK_MS);
        let tick = pty.and_then(crate::host::pty::Pty::watch_tick);
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
        Ok(Self {
            signals: !revents(Some(0)).is_empty(),
            master: m.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR),
            stdin: !revents(stdin).is_empty(),
            master_writable: m.contains(PollFlags::POLLOUT),
            job: !revents(job_slot).is_empty(),
        })
    }
}

/// One round of the terminal relay: the foreground taken back, output and input carried,
/// an ignored suspend key acted on. Returns `false` once the master is closed.
fn relay_terminal(p: &mut crate::host::pty::Pty, ready: &Ready) -> bool {
    let mut open = true;
    if p.awaits_foreground() && p.foreground() {
        p.take();
    }
    if ready.master && !p.relay_output() {
        open = false;
    }
    if ready.stdin {
        p.read_input();
    }
    if ready.master_writable || p.has_pending() {
        p.write_input();
    }
    if p.check_suspend() == crate::host::pty::SuspendKey::Ignored {
        // The suspend key stopped nothing in the cell: the launcher goes anyway,
        // the cell runs on without the host terminal.
        p.end_watch();
        suspend(p, Signal::SIGTSTP as u8);
    }
    open
}

/// Reads a stop report of `cell-init` from the job pipe (dropped once it is closed).
fn job_report(job: &mut Option<OwnedFd>, pty: Option<&mut crate::host::pty::Pty>) {
    let mut buf = [0u8; 16];
    match job.as_ref().map(|j| nix::unistd::read(j, &mut buf)) {
        Some(Ok(0) | Err(_)) | None => *job = None,
        Some(Ok(n)) => {
            // Believed only when it is so: a process of the cell that got hold of the
            // pipe must not make the launcher let go of the terminal at will.
            if let (Some(p), Some(&last)) = (pty, buf[..n].last()) {
                if p.command_stopped() {
                    p.end_watch();
                    suspend(p, last);
                }
            }
        }
    }
}

/// Handles the pending signals: forwards them to the cell's init (the job-control ones as
/// a terminal would), follows the window size; returns bubblewrap's exit code once it
/// ended (128+N for signal N).
fn handle_signals(
    bwrap: Pid,
    init: Pid,
    signals: &nix::sys::signalfd::SignalFd,
    mut pty: Option<&mut crate::host::pty::Pty>,
) -> Option<u8> {
    while let Ok(Some(info)) = signals.read_signal() {
        let Ok(sig) = Signal::try_from(i32::try_from(info.ssi_signo).unwrap_or(0)) else { continue };
        match sig {
            Signal::SIGCHLD => match waitpid(bwrap, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, code)) => return Some(u8::try_from(code).unwrap_or(1)),
                Ok(WaitStatus::Signaled(_, s, _)) => {
                    return Some(128u8.saturating_add(u8::try_from(s as i32).unwrap_or(0)));
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
            _ => forward(bwrap, init, sig),
        }
    }
    None
}

/// Sends `sig` to the cell's pid 1 once it is `cell-init` with the forwarded signals
/// blocked (its `SigBlk`): before that, pid 1 (bubblewrap's child building the cell, or
/// `cell-init` starting) would drop a signal it does not handle, and a Ctrl-C or a SIGTERM
/// in the first milliseconds would be lost while the cell ran on. Waits at most 2 s; sends
/// nothing once `init` is no longer `bwrap`'s child (the cell ended; its pid may be another
/// process's now).
fn forward(bwrap: Pid, init: Pid, sig: Signal) {
    let status = format!("/proc/{init}/status");
    let bit = u32::try_from(sig as i32 - 1).ok().and_then(|b| 1u64.checked_shl(b)).unwrap_or(0);
    for _ in 0..2000 {
        let Ok(text) = std::fs::read_to_string(&status) else { return };
        let field = |k: &str| text.lines().find_map(|l| l.strip_prefix(k)).map(str::trim);
        if field("PPid:").and_then(|v| v.parse::<i32>().ok()) != Some(bwrap.as_raw()) {
            return;
        }
        let blocked = field("SigBlk:").and_then(|v| u64::from_str_radix(v, 16).ok()).unwrap_or(0);
        if blocked & bit != 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let _ = kill(init, sig);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_launcher_fills_the_descriptors_the_plan_names() {
        let work = tempfile::tempdir().unwrap();
        let work = Utf8PathBuf::from_path_buf(work.path().to_path_buf()).unwrap();
        let mut plan = crate::host::plan::testing::builtin_plan(&work);
        plan.terminal = true;
        let base = tempfile::tempdir().unwrap();
        plan.etc_base = Utf8PathBuf::from_path_buf(base.path().join("cell/etc")).unwrap();
        plan.set_argv();
        let fds = plan.descriptors();
        let mut handed = Handed::new(&plan, Some(77)).unwrap();
        handed.pipe(fds.job().unwrap()).unwrap();
        let targets: Vec<RawFd> = handed.pairs().iter().map(|(_, target)| *target).collect();
        // The cell's /etc directory is written, and its files get no descriptor.
        let tree = plan.etc_tree().unwrap();
        assert_eq!(std::fs::read_to_string(tree.dir.join("hostname")).unwrap(), "cell-default\n");
        let handed_files: Vec<usize> = (0..plan.files.len()).filter(|i| !tree.holds_file(*i)).collect();
        let mut expected = vec![fds.status()];
        expected.extend(handed_files.iter().map(|i| plan.file_fd(*i)));
        expected.push(fds.spec());
        expected.extend(fds.seccomp());
        expected.extend(fds.job());
        assert_eq!(targets, expected);
        // The spec is what the plan says, on its descriptor.
        let (spec_fd, _) = &handed.moves[1 + handed_files.len()];
        let text = std::fs::read_to_string(format!("/proc/self/fd/{}", spec_fd.as_raw_fd())).unwrap();
        let spec = crate::contract::InitSpec::parse(&text, crate::contract::SPEC_FILE.into()).unwrap();
        // The task limit cell-init sets inside the cell comes with it.
        let mut want = plan.init_spec();
        want.tasks = Some(77);
        assert_eq!(spec, crate::contract::InitSpec::Run(want));
    }
}
