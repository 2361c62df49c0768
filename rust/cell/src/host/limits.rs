//! Resource limits of a cell: tasks, memory and CPU.
//!
//! Every cell gets limits (defaults: [`DEFAULT_TASKS`] tasks, [`DEFAULT_MEMORY_PERCENT`]% of
//! the host's RAM, CPU weight [`DEFAULT_CPU_WEIGHT`]); `cells.<name>.limits` overrides them.
//! They are enforced, in this order of preference, by
//!
//! 1. a cgroup v2 group of the cell's own below the launcher's cgroup, where that cgroup is
//!    delegated to the launcher (a writable `cgroup.subtree_control`, as in a
//!    `systemd-run --user --scope -p Delegate=yes` scope): `pids.max`, `memory.max` (and
//!    `memory.swap.max` 0), `cpu.weight`, `cpu.max`;
//! 2. cgroup v1 hierarchies (`pids`, `memory`, `cpu`) where the launcher may create child
//!    groups (root, or groups handed to the user with [`Cgroup::create`]'s `owner`):
//!    `pids.max`, `memory.limit_in_bytes` (and `memory.memsw.limit_in_bytes`), `cpu.shares`,
//!    `cpu.cfs_quota_us`;
//! 3. else rlimits: tasks as `RLIMIT_NPROC`, which `cell-init` sets on itself inside the cell
//!    on Linux 5.14 and later, where the kernel counts it per uid in the cell's user namespace
//!    (the cell's own tasks, exactly; [`nproc_per_user_namespace`]); on older kernels it is
//!    counted per real uid across *all* of that user's processes, so it is set in bubblewrap's
//!    child as the user's running tasks plus the cell's (and does not apply to uid 0). The
//!    other rlimits are set per process in bubblewrap's child ([`ChildLimits::apply`]):
//!    memory as `RLIMIT_DATA` per process (not `RLIMIT_AS`: Node's V8
//!    reserves far more address space than it uses, and WebAssembly alone reserves 10 GB),
//!    and a CPU weight below 100 as a nice value. What is left unenforced is said on stderr
//!    at launch and by `cell doctor`.
//!
//! The group contains the whole cell: bubblewrap's child joins it between fork and exec
//! (through `cgroup.procs` descriptors the launcher opened), so bubblewrap and everything
//! under it is inside from its first instruction. The launcher and the sidecars stay
//! outside: moving the launcher in and back out would cost two migrations, and each can
//! wait for an RCU grace period (milliseconds). When the cell has ended its group is
//! removed; groups of launchers that were killed are removed by the next launch.
//!
//! The hook for a launcher that drops privileges before it launches: call
//! [`Cgroup::create`] while still root, with the account the cell runs as as `owner` (each
//! group directory and its `cgroup.procs` are handed to it). With cgroup v1 the dropped
//! launcher's child can then join as usual. With cgroup v2 only a writer of the common
//! ancestor's `cgroup.procs` may move a process, so the root launcher must
//! [`Cgroup::enter`] before the drop (and [`Cgroup::remove`] moves it back and removes the
//! groups). [`Applied::enter`] is the whole sequence for a launcher that keeps its uid.

use schemars::JsonSchema;
use serde::Deserialize;

use std::fmt;
use std::io::Write as _;

use camino::{Utf8Path, Utf8PathBuf};
use serde::{Serialize, Serializer};

/// Tasks (processes and threads) a cell may run at once unless its config says otherwise.
pub const DEFAULT_TASKS: u64 = 4096;
/// Share of the host's RAM a cell may use unless its config says otherwise.
pub const DEFAULT_MEMORY_PERCENT: u8 = 75;
/// CPU weight of a cell unless its config says otherwise (cgroup v2 scale, 100 = ordinary).
pub const DEFAULT_CPU_WEIGHT: u32 = 100;
/// The smallest memory limit accepted (a cell needs some memory to start at all).
const MIN_MEMORY: u64 = 8 << 20;
/// Prefix of the cgroup directories the launcher creates.
const GROUP_PREFIX: &str = "cell-";

/// A memory limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Memory {
    /// This many bytes.
    Bytes(u64),
    /// This share of the host's RAM (`MemTotal`), resolved at launch.
    Percent(u8),
    /// No limit.
    Max,
}

impl Serialize for Memory {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Bytes(b) => s.serialize_u64(*b),
            Self::Percent(p) => s.serialize_str(&format!("{p}%")),
            Self::Max => s.serialize_str("max"),
        }
    }
}

impl Memory {
    /// The limit in bytes on this host (`None`: no limit).
    #[must_use]
    pub fn bytes(self) -> Option<u64> {
        match self {
            Self::Bytes(b) => Some(b),
            Self::Percent(p) => Some((mem_total()? / 100 * u64::from(p)).max(MIN_MEMORY)),
            Self::Max => None,
        }
    }
}

impl fmt::Display for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bytes(b) => f.write_str(&human(*b)),
            Self::Percent(p) => match self.bytes() {
                Some(b) => write!(f, "{p}% of RAM ({} here)", human(b)),
                None => write!(f, "{p}% of RAM"),
            },
            Self::Max => f.write_str("no limit"),
        }
    }
}

/// The limits of one launch, as the plan carries them.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Most tasks at once (`"max"`: no limit).
    #[serde(serialize_with = "count_or_max")]
    pub tasks: Option<u64>,
    /// Most memory.
    pub memory: Memory,
    /// CPU weight, 1 to 10000.
    pub cpu_weight: u32,
    /// Hard CPU cap in percent of one CPU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_quota_percent: Option<u32>,
    /// `unsafeNoLimits`: nothing is limited.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unsafe_no_limits: bool,
}

#[allow(clippy::ref_option)] // serde's `serialize_with` passes `&Option<T>`
fn count_or_max<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(n) => s.serialize_u64(*n),
        None => s.serialize_str("max"),
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            tasks: Some(DEFAULT_TASKS),
            memory: Memory::Percent(DEFAULT_MEMORY_PERCENT),
            cpu_weight: DEFAULT_CPU_WEIGHT,
            cpu_quota_percent: None,
            unsafe_no_limits: false,
        }
    }
}

impl Limits {
    /// The size of the cell's writable tmpfs mounts (`/tmp`, `/dev/shm`): the memory limit
    /// (`None` without one).
    #[must_use]
    pub fn tmpfs_size(&self) -> Option<u64> {
        if self.unsafe_no_limits {
            return None;
        }
        self.memory.bytes()
    }

    /// The limits a (validated) config section asks for, defaults filled in.
    #[must_use]
    pub fn from_config(c: &LimitsConfig) -> Self {
        let d = Self::default();
        Self {
            tasks: parse_tasks(c.tasks.as_ref()).unwrap_or(d.tasks),
            memory: parse_memory(c.memory.as_ref()).unwrap_or(d.memory),
            cpu_weight: c.cpu_weight.unwrap_or(d.cpu_weight),
            cpu_quota_percent: parse_quota(c.cpu_quota.as_deref()).unwrap_or(None),
            unsafe_no_limits: c.unsafe_no_limits,
        }
    }
}

impl fmt::Display for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.unsafe_no_limits {
            return f.write_str("none (unsafeNoLimits)");
        }
        match self.tasks {
            Some(n) => write!(f, "tasks {n}")?,
            None => f.write_str("tasks no limit")?,
        }
        write!(f, ", memory {}, CPU weight {}", self.memory, self.cpu_weight)?;
        if let Some(q) = self.cpu_quota_percent {
            write!(f, ", CPU quota {q}%")?;
        }
        Ok(())
    }
}

/// `limits.tasks`: `None` in the result means no limit.
///
/// # Errors
/// A message saying what is wrong.
pub fn parse_tasks(v: Option<&LimitValue>) -> Result<Option<u64>, String> {
    match v {
        None => Ok(Some(DEFAULT_TASKS)),
        Some(LimitValue::Number(0)) => Err("0 tasks would stop the cell's first process".to_owned()),
        Some(LimitValue::Number(n)) => Ok(Some(*n)),
        Some(LimitValue::Text(t)) if t == "max" => Ok(None),
        Some(LimitValue::Text(t)) => Err(format!("{t:?} is not a number of tasks")),
    }
}

/// `limits.memory`.
///
/// # Errors
/// A message saying what is wrong.
pub fn parse_memory(v: Option<&LimitValue>) -> Result<Memory, String> {
    let bytes = |b: u64| {
        if b < MIN_MEMORY {
            Err(format!("{} is too little to start a cell", human(b)))
        } else {
            Ok(Memory::Bytes(b))
        }
    };
    match v {
        None => Ok(Memory::Percent(DEFAULT_MEMORY_PERCENT)),
        Some(LimitValue::Number(n)) => bytes(*n),
        Some(LimitValue::Text(t)) if t == "max" => Ok(Memory::Max),
        Some(LimitValue::Text(t)) => {
            if let Some(p) = t.strip_suffix('%') {
                return match p.parse::<u8>() {
                    Ok(p @ 1..=100) => Ok(Memory::Percent(p)),
                    _ => Err(format!("{t:?} is not a share of RAM from 1% to 100%")),
                };
            }
            let (digits, shift) = match t.char_indices().last() {
                Some((i, 'K')) => (&t[..i], 10),
                Some((i, 'M')) => (&t[..i], 20),
                Some((i, 'G')) => (&t[..i], 30),
                Some((i, 'T')) => (&t[..i], 40),
                _ => (t.as_str(), 0),
            };
            let n: u64 = digits.parse().map_err(|_| format!("{t:?} is not an amount of memory"))?;
            bytes(n.checked_mul(1u64 << shift).ok_or_else(|| format!("{t:?} is too large"))?)
        }
    }
}

/// `limits.cpuQuota`: percent of one CPU.
///
/// # Errors
/// A message saying what is wrong.
pub fn parse_quota(v: Option<&str>) -> Result<Option<u32>, String> {
    let Some(t) = v else { return Ok(None) };
    match t.strip_suffix('%').map(str::parse::<u32>) {
        Some(Ok(p)) if (1..=100_000).contains(&p) => Ok(Some(p)),
        _ => Err(format!("{t:?} is not a percentage of one CPU")),
    }
}

fn human(b: u64) -> String {
    const UNITS: [(u32, &str); 4] = [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")];
    for (shift, unit) in UNITS {
        if b >= 1 << shift && b % (1 << shift) == 0 {
            return format!("{} {unit}", b >> shift);
        }
    }
    if b >= 1 << 20 {
        #[allow(clippy::cast_precision_loss)]
        return format!("{:.1} MiB", b as f64 / f64::from(1u32 << 20));
    }
    format!("{b} bytes")
}

/// The host's RAM in bytes (`MemTotal`), from `sysinfo(2)`, once per process: one system
/// call instead of reading `/proc/meminfo`.
fn mem_total() -> Option<u64> {
    static TOTAL: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *TOTAL.get_or_init(|| {
        // SAFETY: sysinfo fills the struct we own.
        let mut info: nix::libc::sysinfo = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { nix::libc::sysinfo(&raw mut info) } != 0 {
            return None;
        }
        info.totalram.checked_mul(u64::from(info.mem_unit.max(1)))
    })
}

// ---- where the host offers cgroups --------------------------------------------------

/// A cgroup controller a cell's limits use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    /// `pids`: tasks.
    Pids,
    /// `memory`.
    Memory,
    /// `cpu`: weight and quota.
    Cpu,
}

impl Controller {
    const ALL: [Self; 3] = [Self::Pids, Self::Memory, Self::Cpu];

    fn name(self) -> &'static str {
        match self {
            Self::Pids => "pids",
            Self::Memory => "memory",
            Self::Cpu => "cpu",
        }
    }
}

/// Where the groups of a cell can be made on this host, for this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Site {
    /// A delegated cgroup v2 group (the launcher's own) and the controllers it offers.
    V2 {
        /// The launcher's cgroup directory.
        parent: Utf8PathBuf,
        /// Controllers in its `cgroup.controllers`.
        controllers: Vec<Controller>,
    },
    /// cgroup v1 hierarchies: per controller, the launcher's group in that hierarchy.
    V1 {
        /// Controller and the directory new groups go under.
        parents: Vec<(Controller, Utf8PathBuf)>,
    },
    /// Neither.
    None,
}

impl Site {
    fn controllers(&self) -> Vec<Controller> {
        match self {
            Self::V2 { controllers, .. } => controllers.clone(),
            Self::V1 { parents } => parents.iter().map(|(c, _)| *c).collect(),
            Self::None => Vec::new(),
        }
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |cs: Vec<Controller>| cs.iter().map(|c| c.name()).collect::<Vec<_>>().join(", ");
        match self {
            Self::V2 { parent, controllers } => write!(f, "cgroup v2 under {parent} ({})", names(controllers.clone())),
            Self::V1 { parents } => {
                let dirs = parents.iter().map(|(c, d)| format!("{}: {d}", c.name())).collect::<Vec<_>>().join(", ");
                write!(f, "cgroup v1 ({dirs})")
            }
            Self::None => f.write_str("no cgroup this user can create groups in"),
        }
    }
}

/// One cgroup mount of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CgroupMount {
    v2: bool,
    root: String,
    point: Utf8PathBuf,
    options: Vec<String>,
}

fn parse_mountinfo(text: &str) -> Vec<CgroupMount> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else { continue };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        let (Some(root), Some(point), Some(fstype), Some(sopts)) = (l.get(3), l.get(4), r.first(), r.get(2)) else {
            continue;
        };
        let v2 = *fstype == "cgroup2";
        if !v2 && *fstype != "cgroup" {
            continue;
        }
        out.push(CgroupMount {
            v2,
            root: (*root).replace("\\040", " "),
            point: Utf8PathBuf::from(point.replace("\\040", " ")),
            options: sopts.split(',').map(str::to_owned).collect(),
        });
    }
    out
}

/// `/proc/self/cgroup`: (hierarchy id, controllers, path).
fn parse_proc_cgroup(text: &str) -> Vec<(String, Vec<String>, String)> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let id = it.next()?.to_owned();
            let ctl = it.next()?.split(',').filter(|c| !c.is_empty()).map(str::to_owned).collect();
            Some((id, ctl, it.next()?.to_owned()))
        })
        .collect()
}

/// The directory of a cgroup path under a mount whose root may be a sub-group (inside a
/// cgroup namespace or a container).
fn join_mount(m: &CgroupMount, path: &str) -> Utf8PathBuf {
    let rel = if m.root == "/" { path } else { path.strip_prefix(m.root.as_str()).unwrap_or(path) };
    match rel.trim_matches('/') {
        "" => m.point.clone(),
        rel => m.point.join(rel),
    }
}

fn writable(p: &Utf8Path) -> bool {
    nix::unistd::access(p.as_std_path(), nix::unistd::AccessFlags::W_OK).is_ok()
}

/// Where this process could make a cell's groups.
#[must_use]
pub fn detect() -> Site {
    if let Some(parents) = DELEGATED.lock().ok().and_then(|d| d.clone()) {
        return if parents.is_empty() { Site::None } else { Site::V1 { parents } };
    }
    let mounts = parse_mountinfo(&crate::sys::read_text("/proc/self/mountinfo").unwrap_or_default());
    let own = parse_proc_cgroup(&crate::sys::read_text("/proc/self/cgroup").unwrap_or_default());
    site_from(&mounts, &own, &|p| crate::sys::read_text(p.as_str()).ok(), &writable)
}

fn site_from(
    mounts: &[CgroupMount],
    own: &[(String, Vec<String>, String)],
    read: &dyn Fn(&Utf8Path) -> Option<String>,
    can_write: &dyn Fn(&Utf8Path) -> bool,
) -> Site {
    if let (Some(m), Some((_, _, path))) =
        (mounts.iter().find(|m| m.v2), own.iter().find(|(id, c, _)| id == "0" && c.is_empty()))
    {
        let dir = join_mount(m, path);
        let offered = read(&dir.join("cgroup.controllers")).unwrap_or_default();
        let controllers: Vec<Controller> =
            Controller::ALL.into_iter().filter(|c| offered.split_whitespace().any(|o| o == c.name())).collect();
        if !controllers.is_empty()
            && can_write(&dir.join("cgroup.subtree_control"))
            && can_write(&dir.join("cgroup.procs"))
            && can_write(&dir)
        {
            return Site::V2 { parent: dir, controllers };
        }
    }
    let mut parents = Vec::new();
    for c in Controller::ALL {
        let Some(m) = mounts.iter().find(|m| !m.v2 && m.options.iter().any(|o| o == c.name())) else { continue };
        let Some((_, _, path)) = own.iter().find(|(id, cs, _)| id != "0" && cs.iter().any(|x| x == c.name())) else {
            continue;
        };
        let dir = join_mount(m, path);
        if can_write(&dir) {
            parents.push((c, dir));
        }
    }
    if parents.is_empty() {
        Site::None
    } else {
        Site::V1 { parents }
    }
}

// ---- the groups of one cell ---------------------------------------------------------

/// One group directory of a cell and the group the launcher came from.
#[derive(Debug)]
struct Group {
    dir: Utf8PathBuf,
    home: Utf8PathBuf,
    controllers: Vec<Controller>,
    entered: bool,
}

/// The cgroups of one cell (one per v1 hierarchy, or one v2 group). Dropping it does not
/// remove them; [`Applied`] does.
#[derive(Debug, Default)]
pub struct Cgroup {
    groups: Vec<Group>,
    /// Limits that failed to be written (controller and why).
    problems: Vec<String>,
}

fn write_file(path: &Utf8Path, value: &str) -> std::io::Result<()> {
    std::fs::OpenOptions::new().write(true).open(path)?.write_all(value.as_bytes())
}

impl Cgroup {
    /// Creates the groups of cell `name` for this launch (named `cell-<name>-<pid>`), writes
    /// `limits` into them and, with `owner`, hands each group directory and its
    /// `cgroup.procs` to that uid and gid. Groups left by launchers that were killed are
    /// removed first. Best effort: a controller whose group cannot be made is left out (and
    /// [`Applied`] falls back to rlimits for it).
    #[must_use]
    pub fn create(limits: &Limits, name: &str, owner: Option<(u32, u32)>) -> Self {
        let mut out = Self::default();
        let leaf = format!("{GROUP_PREFIX}{name}-{}", std::process::id());
        match detect() {
            Site::None => {}
            Site::V1 { parents } => {
                for (c, parent) in parents {
                    sweep(&parent);
                    let dir = parent.join(&leaf);
                    match make_group(&dir, &[c], limits, false, owner) {
                        Ok(()) => out.groups.push(Group { dir, home: parent, controllers: vec![c], entered: false }),
                        Err(e) => out.problems.push(format!("{}: {e}", c.name())),
                    }
                }
            }
            Site::V2 { parent, controllers } => {
                sweep(&parent);
                let (home, enabled) = enable_v2(&parent, &controllers);
                if enabled.is_empty() {
                    out.problems
                        .push(format!("cgroup v2: cannot enable controllers in {parent}/cgroup.subtree_control"));
                } else {
                    let dir = parent.join(&leaf);
                    match make_group(&dir, &enabled, limits, true, owner) {
                        Ok(()) => out.groups.push(Group { dir, home, controllers: enabled, entered: false }),
                        Err(e) => out.problems.push(format!("cgroup v2: {e}")),
                    }
                }
            }
        }
        out
    }

    /// Moves the calling process (all its threads) into the groups; everything it starts
    /// afterwards is inside. For a launcher that must join before it drops privileges
    /// (cgroup v2); [`Applied`] instead has bubblewrap's child join, so the launcher never
    /// has to move back out (each move costs the kernel an RCU grace period, milliseconds).
    /// A group it cannot enter is dropped (and removed).
    pub fn enter(&mut self) {
        let mut kept = Vec::new();
        for mut g in self.groups.drain(..) {
            match write_file(&g.dir.join("cgroup.procs"), "0") {
                Ok(()) => {
                    g.entered = true;
                    kept.push(g);
                }
                Err(e) => {
                    self.problems.push(format!("cannot enter {}: {e}", g.dir));
                    let _ = std::fs::remove_dir(&g.dir);
                }
            }
        }
        self.groups = kept;
    }

    /// Each group's `cgroup.procs`, open for writing (close-on-exec), for a child to join
    /// between fork and exec. A group whose file cannot be opened is dropped.
    fn open_procs(&mut self) -> Vec<std::fs::File> {
        let mut files = Vec::new();
        let mut kept = Vec::new();
        for g in self.groups.drain(..) {
            match std::fs::OpenOptions::new().write(true).open(g.dir.join("cgroup.procs")) {
                Ok(f) => {
                    files.push(f);
                    kept.push(g);
                }
                Err(e) => {
                    self.problems.push(format!("cannot open {}/cgroup.procs: {e}", g.dir));
                    let _ = std::fs::remove_dir(&g.dir);
                }
            }
        }
        self.groups = kept;
        files
    }

    fn covers(&self, c: Controller) -> bool {
        self.groups.iter().any(|g| g.controllers.contains(&c))
    }

    /// Moves the calling process back where it came from (if it entered) and removes the
    /// groups once their last task is gone.
    pub fn remove(&mut self) {
        let me = std::process::id().to_string();
        for g in self.groups.iter().filter(|g| g.entered) {
            let _ = write_file(&g.home.join("cgroup.procs"), &me);
        }
        for g in self.groups.drain(..) {
            // The cell's last processes may still be exiting (the kernel kills a pid
            // namespace's remaining tasks when its init ends).
            for _ in 0..2000 {
                match std::fs::remove_dir(&g.dir) {
                    Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY) => {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                    _ => break,
                }
            }
        }
    }
}

/// Enables the controllers in a delegated v2 group's `cgroup.subtree_control`. A group that
/// holds processes cannot (the "no internal processes" rule): when the launcher is its only
/// process, it first moves into a leaf of its own (`cell-launcher-<pid>`). Returns where the
/// launcher now lives and the controllers enabled.
fn enable_v2(parent: &Utf8Path, wanted: &[Controller]) -> (Utf8PathBuf, Vec<Controller>) {
    let mut home = parent.to_owned();
    let enabled = |p: &Utf8Path| std::fs::read_to_string(p.join("cgroup.subtree_control")).unwrap_or_default();
    let try_enable = |c: Controller| -> std::io::Result<()> {
        if enabled(parent).split_whitespace().any(|e| e == c.name()) {
            return Ok(());
        }
        write_file(&parent.join("cgroup.subtree_control"), &format!("+{}", c.name()))
    };
    let mut out = Vec::new();
    for &c in wanted {
        match try_enable(c) {
            Ok(()) => out.push(c),
            Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY) && home == parent => {
                let procs = std::fs::read_to_string(parent.join("cgroup.procs")).unwrap_or_default();
                let me = std::process::id().to_string();
                if procs.split_whitespace().all(|p| p == me) {
                    let leaf = parent.join(format!("{GROUP_PREFIX}launcher-{me}"));
                    let moved = std::fs::create_dir(&leaf)
                        .or_else(|e| if e.kind() == std::io::ErrorKind::AlreadyExists { Ok(()) } else { Err(e) })
                        .and_then(|()| write_file(&leaf.join("cgroup.procs"), "0"));
                    if moved.is_ok() {
                        home = leaf;
                        if try_enable(c).is_ok() {
                            out.push(c);
                        }
                    }
                }
            }
            Err(_) => {}
        }
    }
    (home, out)
}

/// Makes one group and writes the limits its controllers enforce.
fn make_group(
    dir: &Utf8Path,
    controllers: &[Controller],
    limits: &Limits,
    v2: bool,
    owner: Option<(u32, u32)>,
) -> std::io::Result<()> {
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let written = (|| -> std::io::Result<()> {
        for c in controllers {
            for (file, value) in limit_files(*c, limits, v2) {
                let path = dir.join(file);
                match write_file(&path, &value) {
                    Ok(()) => {}
                    // Swap limits exist only with swap accounting.
                    Err(_) if file.contains("sw") => {}
                    Err(e) => return Err(std::io::Error::new(e.kind(), format!("{path}: {e}"))),
                }
            }
        }
        if let Some((uid, gid)) = owner {
            let (u, g) = (Some(nix::unistd::Uid::from_raw(uid)), Some(nix::unistd::Gid::from_raw(gid)));
            for f in ["", "cgroup.procs", "tasks", "cgroup.threads"] {
                let p = if f.is_empty() { dir.to_owned() } else { dir.join(f) };
                if p.exists() {
                    nix::unistd::chown(p.as_std_path(), u, g).map_err(std::io::Error::from)?;
                }
            }
        }
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_dir(dir);
    }
    written
}

/// The files and values that carry `limits` for one controller.
fn limit_files(c: Controller, l: &Limits, v2: bool) -> Vec<(&'static str, String)> {
    const PERIOD_US: u64 = 100_000;
    let max = |v: Option<u64>, unlimited: &str| v.map_or_else(|| unlimited.to_owned(), |n| n.to_string());
    let quota = l.cpu_quota_percent.map(|p| u64::from(p) * PERIOD_US / 100);
    match (c, v2) {
        (Controller::Pids, _) => vec![("pids.max", max(l.tasks, "max"))],
        (Controller::Memory, true) => {
            let m = l.memory.bytes();
            let mut v = vec![("memory.max", max(m, "max"))];
            if m.is_some() {
                v.push(("memory.swap.max", "0".to_owned()));
            }
            v
        }
        (Controller::Memory, false) => {
            let m = max(l.memory.bytes(), "-1");
            vec![("memory.limit_in_bytes", m.clone()), ("memory.memsw.limit_in_bytes", m)]
        }
        (Controller::Cpu, true) => {
            vec![("cpu.weight", l.cpu_weight.to_string()), ("cpu.max", format!("{} {PERIOD_US}", max(quota, "max")))]
        }
        (Controller::Cpu, false) => vec![
            ("cpu.shares", (u64::from(l.cpu_weight) * 1024 / 100).max(2).to_string()),
            ("cpu.cfs_period_us", PERIOD_US.to_string()),
            ("cpu.cfs_quota_us", quota.map_or_else(|| "-1".to_owned(), |q| q.to_string())),
        ],
    }
}

/// Removes the empty groups of launchers that no longer run (`cell-<name>-<pid>`,
/// `cell-launcher-<pid>`).
fn sweep(parent: &Utf8Path) {
    let Ok(entries) = parent.read_dir_utf8() else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        if !name.starts_with(GROUP_PREFIX) || !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Some(pid) = name.rsplit_once('-').and_then(|(_, p)| p.parse::<u32>().ok()) else { continue };
        if !Utf8Path::new(&format!("/proc/{pid}")).exists() {
            // Its launcher was killed: what is left of its cell goes too. (A launcher killed
            // while bubblewrap sets up can leave bubblewrap's child waiting for ever for a
            // parent that is gone: bubblewrap arms its own die-with-parent only later.)
            end_tasks(e.path());
            // Fails (EBUSY) while tasks remain; then a later launch tries again.
            let _ = std::fs::remove_dir(e.path());
        }
    }
}

/// Kills every task of a group whose launcher is gone: all at once through `cgroup.kill`
/// (cgroup v2, Linux 5.14), else each pid `cgroup.procs` names, and waits a moment for them
/// to leave so that the group can be removed.
fn end_tasks(group: &Utf8Path) {
    let tasks = || -> Vec<i32> {
        let procs = std::fs::read_to_string(group.join("cgroup.procs")).unwrap_or_default();
        procs.split_whitespace().filter_map(|p| p.parse().ok()).filter(|p| *p > 1).collect()
    };
    let first = tasks();
    if first.is_empty() {
        return;
    }
    let mut killed = write_file(&group.join("cgroup.kill"), "1").is_ok();
    if !killed {
        for pid in first {
            let sent = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            killed |= sent.is_ok();
        }
    }
    // Only what could be signalled is waited for (at most 0.1 s, once per stale group).
    for _ in 0..50 {
        if !killed || tasks().is_empty() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

// ---- rlimits for bubblewrap's child -------------------------------------------------

/// Rlimits and niceness set between fork and exec of bubblewrap, for the limits no cgroup
/// carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChildLimits {
    nproc: Option<u64>,
    /// The task limit `cell-init` sets on itself inside the cell (not applied here).
    in_cell_tasks: Option<u64>,
    data: Option<u64>,
    nice: Option<i32>,
    /// `cgroup.procs` of the cell's groups (held open by [`Applied`]); the child writes
    /// `0` (itself) into each.
    procs: [Option<std::os::fd::RawFd>; 3],
}

impl ChildLimits {
    /// The task limit for `cell-init` to set inside the cell, where the kernel counts
    /// `RLIMIT_NPROC` per user namespace (see [`nproc_per_user_namespace`]).
    #[must_use]
    pub fn in_cell_tasks(&self) -> Option<u64> {
        self.in_cell_tasks
    }

    /// Moves the calling process into the cell's groups and applies the rlimits. Only
    /// async-signal-safe calls (`write`, `prlimit`, `setpriority`) and no allocation, for a
    /// `pre_exec` hook.
    ///
    /// # Errors
    /// When the kernel refuses one (then bubblewrap does not start).
    pub fn apply(&self) -> std::io::Result<()> {
        self.apply_to(0)
    }

    /// What [`ChildLimits::apply`] does, done to process `pid` (0: the calling one): it joins
    /// the groups and gets the rlimits and nice value. From outside, for a bubblewrap started
    /// before the plan was made, while it waits for its options. Allocates nothing.
    ///
    /// # Errors
    /// When the kernel refuses one.
    pub fn apply_to(&self, pid: i32) -> std::io::Result<()> {
        // The pid in decimal, on the stack.
        let mut digits = [0u8; 12];
        let mut at = digits.len();
        let mut rest = pid.unsigned_abs();
        loop {
            at -= 1;
            #[allow(clippy::cast_possible_truncation)]
            let digit = (rest % 10) as u8;
            digits[at] = b'0' + digit;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        let text = &digits[at..];
        for fd in self.procs.iter().flatten() {
            // SAFETY: write from a buffer we own to a descriptor we hold open.
            let n = unsafe { nix::libc::write(*fd, text.as_ptr().cast(), text.len()) };
            if usize::try_from(n).ok() != Some(text.len()) {
                return Err(std::io::Error::last_os_error());
            }
        }
        let set = |res, v: u64| {
            let lim = nix::libc::rlimit64 { rlim_cur: v, rlim_max: v };
            // SAFETY: prlimit64 reads one struct we own and writes nothing (no old value).
            if unsafe { nix::libc::prlimit64(pid, res, &raw const lim, std::ptr::null_mut()) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        };
        if let Some(n) = self.nproc {
            set(nix::libc::RLIMIT_NPROC, n)?;
        }
        if let Some(d) = self.data {
            set(nix::libc::RLIMIT_DATA, d)?;
        }
        if let Some(n) = self.nice {
            let who =
                nix::libc::id_t::try_from(pid).map_err(|_| std::io::Error::from_raw_os_error(nix::libc::ESRCH))?;
            // SAFETY: setpriority of one process by id (0: the calling one).
            if unsafe { nix::libc::setpriority(nix::libc::PRIO_PROCESS, who, n) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// The nice value closest to a CPU weight (the kernel's table: each nice step is about
/// 1.25x), never below 0: an unprivileged process cannot raise its priority.
fn nice_for(weight: u32) -> i32 {
    if weight >= DEFAULT_CPU_WEIGHT {
        return 0;
    }
    let steps = (f64::from(DEFAULT_CPU_WEIGHT) / f64::from(weight.max(1))).ln() / 1.25f64.ln();
    #[allow(clippy::cast_possible_truncation)]
    let n = steps.round() as i32;
    n.clamp(0, 19)
}

/// Whether the kernel counts `RLIMIT_NPROC` per user namespace (Linux 5.14 and later: the
/// count of a uid in a namespace covers the tasks of that namespace, and every ancestor
/// namespace's count is checked against the limit its creator had). Then `cell-init` sets the
/// cell's task limit on itself inside the cell: exactly the cell's own tasks are counted, with
/// no walk of `/proc`, and root's exemption does not apply (the cell has no capability in the
/// host's namespace). Before 5.14 the count is per real uid across the host, so the limit is
/// set for bubblewrap as the user's running tasks plus the cell's.
#[must_use]
pub fn nproc_per_user_namespace() -> bool {
    static PER_USERNS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PER_USERNS.get_or_init(|| {
        let release =
            nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default();
        kernel_at_least(&release, (5, 14))
    })
}

/// The kernel counts a cell's tasks against the user's own `RLIMIT_NPROC` too, with
/// everything else the user runs (the cell's user namespace was created under it), whatever
/// holds the cell's own limit. A cell gets at most half of it, so that a cell at its limit
/// never leaves the user's other programs unable to start one: `(cap, own limit)` when that
/// is below `n` (Linux 5.14 and later, where `cell-init` can set it inside the cell).
fn user_cap(n: u64) -> Option<(u64, u64)> {
    let own = own_task_limit()?;
    let cap = (own / 2).max(1);
    (cap < n && nproc_per_user_namespace()).then_some((cap, own))
}

/// The launcher's own soft `RLIMIT_NPROC` (`ulimit -u`), when it is finite.
fn own_task_limit() -> Option<u64> {
    let (soft, _) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NPROC).ok()?;
    (soft != nix::sys::resource::RLIM_INFINITY).then_some(soft)
}

/// Whether a kernel release string (`6.18.44-fc`, `5.14.0-rc1`) is at least `want`.
fn kernel_at_least(release: &str, want: (u32, u32)) -> bool {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next().and_then(|p| p.parse::<u32>().ok());
    let minor = parts.next().and_then(|p| p.parse::<u32>().ok());
    matches!((major, minor), (Some(a), Some(b)) if (a, b) >= want)
}

/// Tasks (threads included) whose real uid is `uid`: what `RLIMIT_NPROC` counts. Only the
/// processes whose `/proc/<pid>` belongs to `uid` (their effective uid; one `stat`, no
/// read) have their `status` read; that skips every other user's process. A process of
/// `uid` that the kernel shows as root's (a setuid program, or one made non-dumpable) is
/// not counted, which only lowers the count and so makes the limit tighter, never looser.
fn tasks_of(uid: u32) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0 };
    let mut n = 0;
    for e in dir.flatten() {
        if !e.file_name().to_str().is_some_and(|s| s.bytes().all(|b| b.is_ascii_digit())) {
            continue;
        }
        if !e.metadata().is_ok_and(|m| m.uid() == uid) {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(e.path().join("status")) else { continue };
        let field = |k: &str| status.lines().find_map(|l| l.strip_prefix(k)).map(str::trim);
        let real = field("Uid:").and_then(|v| v.split_whitespace().next()).and_then(|v| v.parse::<u32>().ok());
        if real == Some(uid) {
            n += field("Threads:").and_then(|v| v.parse::<u64>().ok()).unwrap_or(1);
        }
    }
    n
}

// ---- one launch ---------------------------------------------------------------------

/// How one limit is enforced for a launch.
#[derive(Debug, Clone, PartialEq, Eq)]
enum How {
    Cgroup,
    Rlimit(String),
    Not(String),
    Unlimited,
}

/// cgroup v1 parents a root launcher delegated to the `runAs` account before it dropped
/// privileges: [`detect`] answers with them, so the account makes (and removes) the cell's
/// groups under them itself.
static DELEGATED: std::sync::Mutex<Option<Vec<(Controller, Utf8PathBuf)>>> = std::sync::Mutex::new(None);

/// Called by a root launcher before it becomes the `runAs` account: in every cgroup v1
/// hierarchy root can write, makes (once) a group `cellacct.<uid>` under the launcher's own
/// and gives the directory to the account, which then creates and removes the groups of its
/// cells under it, with their limits (the delegated group itself has none and its limit
/// files stay root's). With cgroup v2 nothing is delegated here: a root launcher under
/// systemd gets a delegated scope from the Nix wrapper.
pub fn delegate_v1_as_root(owner: (u32, u32)) {
    let Site::V1 { parents } = detect() else { return };
    let mut out = Vec::new();
    for (c, parent) in parents {
        let dir = parent.join(format!("cellacct.{}", owner.0));
        let made = match std::fs::create_dir(&dir) {
            Ok(()) => true,
            Err(e) => e.kind() == std::io::ErrorKind::AlreadyExists,
        };
        let (u, g) = (Some(nix::unistd::Uid::from_raw(owner.0)), Some(nix::unistd::Gid::from_raw(owner.1)));
        if made && nix::unistd::chown(dir.as_std_path(), u, g).is_ok() {
            // v1 memory: children are accounted in the parent only with use_hierarchy.
            let _ = write_file(&dir.join("memory.use_hierarchy"), "1");
            out.push((c, dir));
        }
    }
    if let Ok(mut slot) = DELEGATED.lock() {
        *slot = Some(out);
    }
}

/// The limits of one running launch; dropping it moves the launcher out of the cell's
/// groups and removes them.
#[derive(Debug, Default)]
pub struct Applied {
    cgroup: Cgroup,
    procs: Vec<std::fs::File>,
    child: ChildLimits,
}

impl Applied {
    /// Creates the cell's groups (bubblewrap's child joins them in [`ChildLimits::apply`], so
    /// bubblewrap and everything under it is inside; the sidecars and the launcher stay
    /// outside) and works out the rlimits for what no group carries; prints one line on
    /// stderr naming any limit that is not enforced by a cgroup.
    ///
    /// # Errors
    /// None today; the signature leaves room for refusing to start without limits.
    pub fn enter(limits: &Limits, cell: &str, notes: Option<&Utf8Path>) -> anyhow::Result<Self> {
        if limits.unsafe_no_limits {
            return Ok(Self::default());
        }
        let mut cgroup = Cgroup::create(limits, cell, None);
        let procs = cgroup.open_procs();
        let (mut child, report) = fallback(limits, &cgroup, nix::unistd::getuid().as_raw());
        for (slot, f) in child.procs.iter_mut().zip(&procs) {
            *slot = Some(std::os::fd::AsRawFd::as_raw_fd(f));
        }
        if let Some(line) = report {
            if !noted_before(notes, cell, &line) {
                eprintln!("cell: {line}");
            }
        }
        Ok(Self { cgroup, procs, child })
    }

    /// The rlimits bubblewrap's child applies ([`ChildLimits::apply`] in its `pre_exec`).
    #[must_use]
    pub fn for_child(&self) -> ChildLimits {
        self.child
    }
}

impl Drop for Applied {
    fn drop(&mut self) {
        self.procs.clear();
        self.cgroup.remove();
    }
}

/// Per limit: how it is enforced, given the groups made.
fn plan_enforcement(l: &Limits, cg: &Cgroup, uid: u32) -> ([(&'static str, How); 3], ChildLimits) {
    let mut child = ChildLimits::default();
    let tasks = match l.tasks {
        None => How::Unlimited,
        Some(n) if cg.covers(Controller::Pids) => {
            // The group holds `n`; the user's own limit may be lower (see `user_cap`).
            child.in_cell_tasks = user_cap(n).map(|(cap, _)| cap);
            How::Cgroup
        }
        Some(n) if nproc_per_user_namespace() => {
            let capped = user_cap(n);
            child.in_cell_tasks = Some(capped.map_or(n, |(cap, _)| cap));
            How::Rlimit(match capped {
                Some((cap, own)) => format!(
                    "per cell (RLIMIT_NPROC in the cell's user namespace), {cap} instead of {n}: half of your own limit of {own} tasks (ulimit -u), which counts the cell's tasks too"
                ),
                None => "per cell (RLIMIT_NPROC in the cell's user namespace)".to_owned(),
            })
        }
        Some(_) if uid == 0 => How::Not("RLIMIT_NPROC does not apply to root".to_owned()),
        Some(n) => {
            let running = tasks_of(uid);
            child.nproc = Some(running + n);
            How::Rlimit(format!("per uid ({running} of your processes already running + {n})"))
        }
    };
    let memory = match l.memory.bytes() {
        None => How::Unlimited,
        Some(_) if cg.covers(Controller::Memory) => How::Cgroup,
        Some(b) => {
            child.data = Some(b);
            How::Rlimit(format!("{} per process", human(b)))
        }
    };
    let cpu = if cg.covers(Controller::Cpu) {
        How::Cgroup
    } else if l.cpu_weight == DEFAULT_CPU_WEIGHT && l.cpu_quota_percent.is_none() {
        How::Not("each process competes on its own".to_owned())
    } else {
        let nice = nice_for(l.cpu_weight);
        child.nice = (nice > 0).then_some(nice);
        let quota = if l.cpu_quota_percent.is_some() { ", cpuQuota not enforced" } else { "" };
        How::Rlimit(format!("as nice {nice}{quota}"))
    };
    ([("tasks", tasks), ("memory", memory), ("CPU weight", cpu)], child)
}

/// Whether this launcher, at a terminal, already said `line` for `cell` since the machine
/// started: it says it once a boot there (the runtime base, where `notes` lies, is per
/// boot), and on every launch into a log or a pipe. `cell doctor` always has it.
fn noted_before(notes: Option<&Utf8Path>, cell: &str, line: &str) -> bool {
    use std::io::IsTerminal as _;
    let Some(dir) = notes else { return false };
    if !std::io::stderr().is_terminal() {
        return false;
    }
    // The count of running processes changes from launch to launch: not part of the note.
    let shape: String = line.chars().filter(|c| !c.is_ascii_digit()).collect();
    let path = dir.join(format!("limits-noted-{cell}"));
    if crate::sys::read_no_follow(&path).is_ok_and(|s| s == shape) {
        return true;
    }
    let _ = std::fs::remove_file(&path);
    let _ = crate::sys::write_new_private(&path, shape.as_bytes());
    false
}

/// The rlimits and the one stderr line (when some limit is not in a cgroup).
fn fallback(l: &Limits, cg: &Cgroup, uid: u32) -> (ChildLimits, Option<String>) {
    let (hows, child) = plan_enforcement(l, cg, uid);
    // One short line: what is weaker than a cgroup, by name; `cell doctor` has the detail.
    let weak: Vec<String> = hows
        .iter()
        .filter_map(|(name, how)| match how {
            How::Rlimit(r) => Some(format!("{name} {r}")),
            How::Not(_) => Some(format!("{name} NOT enforced")),
            How::Cgroup | How::Unlimited => None,
        })
        .collect();
    if weak.is_empty() {
        // A group holds every limit, but the user's own task limit is the lower one.
        let capped = l.tasks.and_then(user_cap).filter(|_| child.in_cell_tasks.is_some());
        let line = capped.map(|(cap, own)| {
            format!(
                "this cell may run {cap} tasks, not {}: half of your own limit of {own} tasks (ulimit -u), which counts the cell's tasks too",
                l.tasks.unwrap_or(cap)
            )
        });
        return (child, line);
    }
    let line =
        format!("no cgroup for this cell's limits here: {}; `cell doctor` says why and how to fix it", weak.join(", "));
    (child, Some(line))
}

/// The `cell doctor` line: where limits would be enforced for this user.
#[must_use]
pub fn doctor_check() -> crate::host::check::Check {
    use crate::host::check::{Check, Status};
    let site = detect();
    let have = site.controllers();
    let missing: Vec<&str> = Controller::ALL.iter().filter(|c| !have.contains(c)).map(|c| c.name()).collect();
    let uid = nix::unistd::getuid().as_raw();
    let name = "resource limits";
    if missing.is_empty() {
        return Check {
            name,
            status: Status::Pass,
            detail: format!("{site}: tasks, memory and CPU per cell"),
            fix: String::new(),
        };
    }
    let mut weak = Vec::new();
    for m in &missing {
        weak.push(match *m {
            "pids" if nproc_per_user_namespace() => {
                "tasks as RLIMIT_NPROC in the cell's user namespace (per cell, threads included)".to_owned()
            }
            "pids" if uid == 0 => "tasks NOT enforced (RLIMIT_NPROC does not apply to root)".to_owned(),
            "pids" => format!("tasks only as RLIMIT_NPROC (counted across all processes of uid {uid})"),
            "memory" => "memory only as RLIMIT_DATA per process".to_owned(),
            _ => "CPU weight NOT enforced (a weight below 100 becomes a nice value)".to_owned(),
        });
    }
    Check {
        name,
        status: Status::Warn,
        detail: format!("{site}; {}", weak.join("; ")),
        fix: "run cell in a delegated cgroup v2 scope (`systemd-run --user --scope -p Delegate=yes cell ...`, which the Nix wrappers do), or as root where cgroup v1 hierarchies (pids, memory, cpu) are mounted".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(n: u64) -> LimitValue {
        LimitValue::Number(n)
    }
    fn t(s: &str) -> LimitValue {
        LimitValue::Text(s.to_owned())
    }

    #[test]
    fn tasks_of_counts_the_threads_of_this_process() {
        let uid = nix::unistd::getuid().as_raw();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || rx.recv());
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let ours: u64 = status.lines().find_map(|l| l.strip_prefix("Threads:")).unwrap().trim().parse().unwrap();
        assert!(ours >= 2);
        assert!(tasks_of(uid) >= ours, "{} < {ours}", tasks_of(uid));
        // Nobody runs as this uid: nothing is counted.
        assert_eq!(tasks_of(4_000_000_000), 0);
        tx.send(()).unwrap();
        t.join().unwrap().unwrap();
    }

    #[test]
    fn values_parse() {
        assert_eq!(parse_tasks(None), Ok(Some(DEFAULT_TASKS)));
        assert_eq!(parse_tasks(Some(&v(64))), Ok(Some(64)));
        assert_eq!(parse_tasks(Some(&t("max"))), Ok(None));
        assert!(parse_tasks(Some(&v(0))).is_err());
        assert!(parse_tasks(Some(&t("lots"))).is_err());
        assert_eq!(parse_memory(Some(&t("64M"))), Ok(Memory::Bytes(64 << 20)));
        assert_eq!(parse_memory(Some(&t("4G"))), Ok(Memory::Bytes(4 << 30)));
        assert_eq!(parse_memory(Some(&t("50%"))), Ok(Memory::Percent(50)));
        assert_eq!(parse_memory(Some(&t("max"))), Ok(Memory::Max));
        assert_eq!(parse_memory(Some(&v(1 << 30))), Ok(Memory::Bytes(1 << 30)));
        assert!(parse_memory(Some(&t("1K"))).is_err());
        assert!(parse_memory(Some(&t("0%"))).is_err());
        assert!(parse_memory(Some(&t("101%"))).is_err());
        assert!(parse_memory(Some(&t("4GB"))).is_err());
        assert!(parse_memory(Some(&t("99999999999T"))).is_err());
        assert_eq!(parse_quota(Some("200%")), Ok(Some(200)));
        assert!(parse_quota(Some("2")).is_err());
    }

    #[test]
    fn files_per_controller() {
        let l = Limits {
            tasks: Some(64),
            memory: Memory::Bytes(64 << 20),
            cpu_weight: 50,
            cpu_quota_percent: Some(150),
            unsafe_no_limits: false,
        };
        assert_eq!(limit_files(Controller::Pids, &l, false), vec![("pids.max", "64".to_owned())]);
        assert_eq!(limit_files(Controller::Memory, &l, true)[0], ("memory.max", (64u64 << 20).to_string()));
        assert_eq!(limit_files(Controller::Cpu, &l, true)[1], ("cpu.max", "150000 100000".to_owned()));
        assert_eq!(limit_files(Controller::Cpu, &l, false)[0], ("cpu.shares", "512".to_owned()));
        let none = Limits { tasks: None, memory: Memory::Max, ..l };
        assert_eq!(limit_files(Controller::Pids, &none, true), vec![("pids.max", "max".to_owned())]);
        assert_eq!(limit_files(Controller::Memory, &none, false)[0], ("memory.limit_in_bytes", "-1".to_owned()));
    }

    #[test]
    fn nice_follows_the_kernels_weights() {
        assert_eq!(nice_for(100), 0);
        assert_eq!(nice_for(10_000), 0);
        assert_eq!(nice_for(80), 1);
        assert_eq!(nice_for(10), 10);
        assert_eq!(nice_for(1), 19);
    }

    const MOUNTINFO: &str = "\
30 24 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:28 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
33 30 0:29 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
34 30 0:30 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const CGROUP: &str = "8:pids:/\n4:memory:/job/a\n1:cpu:/\n0::/\n";

    #[test]
    fn v1_hierarchies_are_found_under_the_launchers_groups() {
        let mounts = parse_mountinfo(MOUNTINFO);
        let own = parse_proc_cgroup(CGROUP);
        let site = site_from(&mounts, &own, &|_| Some(String::new()), &|_| true);
        assert_eq!(
            site,
            Site::V1 {
                parents: vec![
                    (Controller::Pids, "/sys/fs/cgroup/pids".into()),
                    (Controller::Memory, "/sys/fs/cgroup/memory/job/a".into()),
                    (Controller::Cpu, "/sys/fs/cgroup/cpu".into()),
                ]
            }
        );
        assert_eq!(site_from(&mounts, &own, &|_| None, &|_| false), Site::None);
    }

    #[test]
    fn a_delegated_v2_group_is_preferred() {
        let mounts = parse_mountinfo("40 1 0:40 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n");
        let own = parse_proc_cgroup("0::/user.slice/u.service/app.slice/x.scope\n");
        let read = |p: &Utf8Path| p.as_str().ends_with("controllers").then(|| "cpuset cpu io memory pids\n".to_owned());
        let site = site_from(&mounts, &own, &read, &|_| true);
        assert_eq!(
            site,
            Site::V2 {
                parent: "/sys/fs/cgroup/user.slice/u.service/app.slice/x.scope".into(),
                controllers: vec![Controller::Pids, Controller::Memory, Controller::Cpu],
            }
        );
        // Not delegated (not writable): nothing.
        assert_eq!(site_from(&mounts, &own, &read, &|_| false), Site::None);
    }

    #[test]
    fn kernel_releases_compare_by_major_and_minor() {
        assert!(kernel_at_least("6.18.44-fc-v1045", (5, 14)));
        assert!(kernel_at_least("5.14.0-rc1", (5, 14)));
        assert!(!kernel_at_least("5.13.19", (5, 14)));
        assert!(!kernel_at_least("4.19.0-21-amd64", (5, 14)));
        assert!(!kernel_at_least("garbage", (5, 14)));
    }

    #[test]
    fn without_groups_the_fallback_is_said() {
        let l = Limits {
            tasks: Some(64),
            memory: Memory::Bytes(64 << 20),
            cpu_weight: 100,
            cpu_quota_percent: None,
            unsafe_no_limits: false,
        };
        let (child, line) = fallback(&l, &Cgroup::default(), 0);
        let line = line.unwrap();
        assert!(line.contains("memory 64 MiB per process"), "{line}");
        assert_eq!(child.data, Some(64 << 20));
        let (child12345, _) = fallback(&Limits { cpu_weight: 10, ..l }, &Cgroup::default(), 12345);
        assert_eq!(child12345.nice, Some(10));
        if nproc_per_user_namespace() {
            // Counted in the cell's user namespace: cell-init sets exactly the cell's limit,
            // for root's cells too, and bubblewrap gets no RLIMIT_NPROC.
            for c in [child, child12345] {
                assert_eq!((c.nproc, c.in_cell_tasks), (None, Some(64)));
            }
            assert!(line.contains("tasks per cell (RLIMIT_NPROC in the cell's user namespace)"), "{line}");
        } else {
            assert_eq!((child.nproc, child.in_cell_tasks), (None, None));
            assert!(line.contains("tasks NOT enforced"), "{line}");
            assert!(child12345.nproc.is_some_and(|n| n >= 64));
        }
        let open = Limits {
            tasks: None,
            memory: Memory::Max,
            cpu_weight: 100,
            cpu_quota_percent: None,
            unsafe_no_limits: false,
        };
        let (child, line) = fallback(&open, &Cgroup::default(), 0);
        assert_eq!(child, ChildLimits::default());
        assert!(line.unwrap().contains("CPU weight NOT enforced"));
    }
}

/// Resource limits of a cell; an absent field keeps its default. They are enforced by a
/// cgroup of the cell's own where the host offers one (see `cell doctor`), else as
/// per-process rlimits where those can express them.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LimitsConfig {
    /// Most tasks (processes and threads) in the cell at once, or `"max"` for no limit.
    /// Default 4096.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<LimitValue>,
    /// Most memory of the cell: bytes, `"512M"`, `"4G"` (K, M, G, T are powers of 1024), a
    /// share of the host's RAM (`"50%"`), or `"max"` for no limit. Default `"75%"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<LimitValue>,
    /// The cell's share of CPU time against its sibling groups when the CPU is busy, 1 to
    /// 10000 (cgroup v2 `cpu.weight`; 100 is an ordinary group, however many processes the
    /// cell runs). Default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_weight: Option<u32>,
    /// A hard cap on CPU time, `"200%"` being two CPUs. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_quota: Option<String>,
    /// No limits at all: no cgroup, no rlimits. A fork bomb or a memory hog in the cell can
    /// then take the host down; for measuring and debugging only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unsafe_no_limits: bool,
}

impl LimitsConfig {
    /// Whether nothing is set (the defaults apply).
    #[must_use]
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// A number, or a word such as `"max"` or `"4G"`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(untagged)]
pub enum LimitValue {
    /// A plain number.
    Number(u64),
    /// A word.
    Text(String),
}
