//! From configuration to a plan: every mount, file, variable and the exact bubblewrap argv.
//!
//! Planning reads the host file system (to check that sources exist and to resolve the
//! command) but never changes it; `cell plan` prints the result and `cell run` executes it.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;

use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;

use crate::contract::{Bridge, InitSpec, INIT_PATH, SOCKETS_DIR, SPEC_FILE, TASK_FILE};
use crate::host::config::{self, BindConfig, BindMode, CellConfig, ConfigFile, ConfigSource, NetworkMode};
use crate::host::descriptors::Descriptors;
use crate::host::hostenv::HostEnv;
use crate::host::syscache::Seen;

/// File in the runtime directory recording what the launch chose for the network beyond
/// the config (`--allow`, `--network`, the agent whose preset applies), so `cell net
/// reload` computes the policy exactly as the launch did ([`LaunchNetwork`]).
pub const EXTRA_ALLOW_FILE: &str = "launch-network.json";

/// The launch's own network choices, as recorded for `cell net reload`.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LaunchNetwork {
    /// `--allow` entries.
    pub allow: Vec<String>,
    /// `--network`.
    pub network: Option<NetworkMode>,
    /// The agent started (its preset hosts are allowed unless the config says otherwise).
    pub agent: Option<crate::host::agents::AgentKind>,
}

impl LaunchNetwork {
    /// The overrides these choices stand for.
    #[must_use]
    pub fn overrides(&self) -> Overrides {
        Overrides {
            allow: self.allow.clone(),
            network: self.network,
            agent: self.agent.map(|k| (k, Vec::new())),
            ..Overrides::default()
        }
    }
}

/// The egress policy of a cell for a launch with `overrides`: the one function the launch
/// and `cell net reload` share.
///
/// # Errors
/// When `--network none` and `--allow` contradict each other, or an entry is invalid.
pub fn egress_policy(
    cell: &CellConfig,
    overrides: &Overrides,
) -> Result<(config::NetworkConfig, cell_egress::policy::PolicyFile), PlanError> {
    let net = effective_network(cell, overrides)?;
    let policy = config::policy_file(&net, &overrides.allow);
    Ok((net, policy))
}
/// Directory under the runtime base holding one record per running cell.
pub const LIVE_DIR: &str = "live";
/// File in the runtime directory holding the egress policy.
pub const POLICY_FILE: &str = "egress-policy.json";
/// Host environment variables always passed into a cell when set (plus every `LC_*`).
pub const PASSED_ENV: [&str; 4] = ["TERM", "LANG", "COLORTERM", "TZ"];
/// `PATH` inside a cell unless the config sets one.
pub const DEFAULT_PATH: [&str; 7] =
    ["/run/current-system/sw/bin", "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// A problem with what the user asked for, found before anything runs (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// A field or flag has an unacceptable value.
    #[error(transparent)]
    Invalid(#[from] config::Invalid),
    /// No such cell.
    #[error("no cell named {name:?} in {source_desc}; declared cells: {names}")]
    UnknownCell {
        /// Requested name.
        name: String,
        /// Config description.
        source_desc: String,
        /// Declared names.
        names: String,
    },
    /// A program exists inside the cell but its interpreter (ELF loader or `#!` line) does not.
    #[error("{what} {program} cannot run inside the cell: its interpreter {interpreter} is not visible there; {fix}")]
    InterpreterMissing {
        /// `command` or `cell-init`.
        what: &'static str,
        /// The program.
        program: String,
        /// The missing interpreter.
        interpreter: String,
        /// How to fix it.
        fix: &'static str,
    },
    /// A program the launcher runs, or mounts as the cell's init, lies where the cell can
    /// write: the cell could have replaced it.
    #[error("{what} {program} lies in {mount}, which the cell can write (the worktree, the cell home or a read-write bind), so the cell could have planted or changed it; cell never runs a program from there: {fix}")]
    WritableProgram {
        /// `bubblewrap`, `cell-init`, `cell-egress`, a sidecar's name.
        what: String,
        /// The program (links resolved).
        program: Utf8PathBuf,
        /// The writable mount source it lies in.
        mount: Utf8PathBuf,
        /// How to fix it.
        fix: String,
    },
    /// The command cannot be found inside the cell.
    #[error("command {command:?} is not found inside the cell (searched {searched}); bind the directory holding it with --bind or `binds`, or give its full path")]
    CommandNotFound {
        /// The command as given.
        command: String,
        /// Where we looked (inside paths).
        searched: String,
    },
}

/// Launch-time choices that override the configuration for one run.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--workdir`.
    pub workdir: Option<Utf8PathBuf>,
    /// `--bind`, in order.
    pub binds: Vec<BindConfig>,
    /// `--network`.
    pub network: Option<NetworkMode>,
    /// `--allow`: allowlist entries added for this run (they imply `--network proxy`).
    pub allow: Vec<String>,
    /// `--allow-broad-worktree`.
    pub allow_broad_worktree: bool,
    /// The command and its arguments (empty: the cell's default command).
    pub command: Vec<String>,
    /// `cell <agent> ARGS...`: start this agent kind, with these extra arguments.
    pub agent: Option<(crate::host::agents::AgentKind, Vec<String>)>,
    /// Variables set for this run over the cell's own (`cell login`'s display).
    pub env: BTreeMap<String, String>,
    /// Variables an approved `.cell.json` suggests: set last, and only where nothing of
    /// the cell, the agent or the launch set one (see [`crate::host::project`]).
    pub project_env: BTreeMap<String, String>,
    /// `--publish`: host ports reaching the cell's ports for this run.
    pub publish: Vec<crate::host::publish::Published>,
    /// A launcher's task instead of a command (`cell login`'s driver, `cell selftest`'s
    /// probes): written to [`TASK_FILE`] and run as `cell-init --spec TASK_FILE`.
    pub task: Option<InitSpec>,
    /// `--host-port`: host services reachable inside for this run, beside `ports.host`.
    pub host_ports: Vec<u16>,
}

/// Host programs the plan runs.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tools {
    /// bubblewrap.
    pub bwrap: Utf8PathBuf,
    /// `cell-init`, mounted at [`INIT_PATH`].
    pub init: Utf8PathBuf,
    /// Whether this bubblewrap knows `--disable-userns` (0.8 and later).
    #[serde(skip)]
    pub disable_userns: bool,
    /// Programs of the built-in sidecars, by sidecar name (`egress`: `cell-egress`,
    /// needed when the network mode is `proxy`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sidecars: BTreeMap<String, Utf8PathBuf>,
}

pub use crate::host::sidecars::{HostFile, SidecarSpec};

/// The network of a cell.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPlan {
    /// Mode.
    pub mode: NetworkMode,
    /// The egress policy (proxy mode): allowlist, pins, limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<cell_egress::policy::PolicyFile>,
    /// The audit log of every egress decision (proxy mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_log: Option<Utf8PathBuf>,
}

/// The user a cell runs as.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CellUser {
    /// Login name inside.
    pub name: String,
    /// User id inside (the host uid, or 1000 when the host user is root).
    pub uid: u32,
    /// Group id inside.
    pub gid: u32,
    /// `$HOME` inside.
    pub home: Utf8PathBuf,
}

/// One step of building the cell's file system, in bubblewrap's order.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", tag = "op")]
pub enum Mount {
    /// Read-only bind of a host path.
    RoBind {
        /// Host path.
        src: Utf8PathBuf,
        /// Inside path.
        dst: Utf8PathBuf,
    },
    /// Read-write bind of a host path.
    Bind {
        /// Host path.
        src: Utf8PathBuf,
        /// Inside path.
        dst: Utf8PathBuf,
    },
    /// A symbolic link inside the cell.
    Symlink {
        /// Link target.
        target: Utf8PathBuf,
        /// Inside path.
        dst: Utf8PathBuf,
    },
    /// A fresh tmpfs.
    Tmpfs {
        /// Inside path.
        dst: Utf8PathBuf,
        /// Its size in bytes (`None`: the kernel's default, half the RAM). Without a cgroup
        /// the pages of a tmpfs count toward no limit of the cell, so each writable one is
        /// capped.
        #[serde(skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
    },
    /// An empty directory on bubblewrap's root (no mount: read-only once the root is
    /// remounted).
    Dir {
        /// Inside path.
        dst: Utf8PathBuf,
    },
    /// A minimal `/dev`.
    Dev {
        /// Inside path.
        dst: Utf8PathBuf,
    },
    /// A `/proc` of the cell's pid namespace.
    Proc {
        /// Inside path.
        dst: Utf8PathBuf,
    },
    /// A generated read-only file (`files[index]`).
    Data {
        /// Index into [`Plan::files`].
        index: usize,
        /// Inside path.
        dst: Utf8PathBuf,
    },
    /// `cell-init`'s spec ([`Plan::init_spec`]), read-only; the launcher writes it at launch,
    /// with the values of the plan's secrets.
    InitSpec {
        /// Inside path ([`SPEC_FILE`]).
        dst: Utf8PathBuf,
    },
}

impl Mount {
    /// Path inside the cell.
    #[must_use]
    pub fn dst(&self) -> &Utf8Path {
        match self {
            Self::RoBind { dst, .. }
            | Self::Bind { dst, .. }
            | Self::Symlink { dst, .. }
            | Self::Tmpfs { dst, .. }
            | Self::Dir { dst }
            | Self::Dev { dst }
            | Self::Proc { dst }
            | Self::Data { dst, .. }
            | Self::InitSpec { dst } => dst,
        }
    }

    /// Whether this is a file the launcher generates (rather than a mount of something).
    #[must_use]
    pub fn is_generated(&self) -> bool {
        matches!(self, Self::Data { .. } | Self::InitSpec { .. })
    }
}

/// A file the launcher generates and hands to bubblewrap through a file descriptor.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DataFile {
    /// Inside path.
    pub dst: Utf8PathBuf,
    /// Contents.
    pub contents: String,
}

/// One protected path and how it is held read-only.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Protected {
    /// The path (host and inside: the worktree is at the same path).
    pub path: Utf8PathBuf,
    /// `read-only` (exists, bound onto itself read-only) or `absent: quarantined if created`
    /// (does not exist: no mount; what the cell creates there is set aside, see
    /// [`crate::host::containment`]).
    pub how: &'static str,
}

/// Everything `cell run` will do, computed without side effects.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Cell name.
    pub cell: String,
    /// Where the configuration came from.
    pub config: String,
    /// Host programs.
    pub tools: Tools,
    /// The user inside.
    pub user: CellUser,
    /// Host path of the worktree (bound read-write at the same path).
    pub worktree: Utf8PathBuf,
    /// Directory the command starts in.
    pub cwd: Utf8PathBuf,
    /// Host directory holding the persistent home (created 0700 at launch).
    pub home: Utf8PathBuf,
    /// Network.
    pub network: NetworkPlan,
    /// Per-launch host directory for sidecar sockets and configuration (0700, removed when
    /// the cell ends).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_dir: Option<Utf8PathBuf>,
    /// Host-side helpers started before the cell, in order (see [`crate::host::sidecars`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sidecars: Vec<SidecarSpec>,
    /// In-cell ports `cell-init` bridges to sidecar sockets.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bridges: Vec<Bridge>,
    /// In-cell proxy ports where `cell-init` refuses every client, saying the network is
    /// off and how to allow a host (network mode `none`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refusals: Vec<u16>,
    /// Published ports: host ports the launcher listens on, each reaching a loopback port
    /// of the cell through a socket in the runtime directory (see [`crate::host::publish`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub published: Vec<crate::host::publish::Published>,
    /// Host name inside.
    pub hostname: String,
    /// File-system steps, in order.
    pub mounts: Vec<Mount>,
    /// Generated files.
    pub files: Vec<DataFile>,
    /// Per-cell host state (audit log, sidecar logs, launch records, the git views).
    pub state_dir: Utf8PathBuf,
    /// Where the launcher records the running cell (its home and pid 1), so `cell login`
    /// finds the cells that share a browser profile; removed when the cell ends.
    #[serde(skip)]
    pub live_record: Utf8PathBuf,
    /// Read-only paths inside the worktree, and how each is enforced.
    pub protected: Vec<Protected>,
    /// Protected paths that do not exist at launch: what the cell creates there is renamed
    /// aside (quarantined) and reported when it ends.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub absent: Vec<Utf8PathBuf>,
    /// What the exit looks at in repositories below the worktree's top (the host's git
    /// rules, the default list): see [`crate::host::containment`].
    #[serde(skip)]
    pub nested: crate::host::containment::Nested,
    /// The cell's private view of the worktree's repository (see [`crate::host::gitview`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git: Option<crate::host::gitview::GitView>,
    /// What the seccomp filter denies (absent only with `unsafeAllowAllSyscalls`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<Vec<String>>,
    /// Whether bubblewrap forbids new user namespaces inside (`--disable-userns`).
    pub disable_userns: bool,
    /// Resource limits (tasks, memory, CPU); how they are enforced is decided at launch
    /// (see [`crate::host::limits`] and `cell doctor`).
    pub limits: crate::host::limits::Limits,
    /// Variables read from host files at launch (values never appear in the plan).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_env: BTreeMap<String, Utf8PathBuf>,
    /// Entrypoint fragments `cell-init` runs before the command.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fragments: Vec<crate::contract::Fragment>,
    /// The complete environment of the command (nothing else is inherited).
    pub env: BTreeMap<String, String>,
    /// The command, as run by `cell-init`.
    pub command: Vec<String>,
    /// Where the plan's `PATH` search found `command[0]` inside the cell (absent when the
    /// command is a path): `cell-init` runs this file, with `command[0]` as its `argv[0]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub program: Option<Utf8PathBuf>,
    /// Whether one of the launcher's standard streams is a terminal: the cell then gets a
    /// pseudo-terminal of its own (never the host's), relayed by the launcher, and
    /// `cell-init` reports the command's stops on the job descriptor ([`Descriptors::job`]).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub terminal: bool,
    /// What the worktree's approved `.cell.json` added (see [`crate::host::project`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<crate::host::project::Applied>,
    /// Where the launcher keeps the cells' `/etc` directories (see
    /// [`crate::host::etctree`]): the runtime base's `etc`.
    #[serde(skip)]
    pub etc_base: Utf8PathBuf,
    /// The cell's `/etc` as one directory, when the plan has one of its own: worked out
    /// with [`Plan::argv`] (see [`Plan::set_argv`]).
    #[serde(skip)]
    pub etc: Option<crate::host::etctree::EtcTree>,
    /// The exact bubblewrap command line, program first.
    pub argv: Vec<String>,
}

impl Plan {
    /// The cell's `/etc` as one directory, when the plan has one of its own.
    #[must_use]
    pub fn etc_tree(&self) -> Option<crate::host::etctree::EtcTree> {
        crate::host::etctree::plan(&self.mounts, &self.files, &self.etc_base)
    }

    /// Works out the cell's `/etc` directory and the bubblewrap command line from the
    /// plan as it is now; call again after changing what they depend on.
    pub fn set_argv(&mut self) {
        self.etc = self.etc_tree();
        self.argv = bwrap_argv(self);
    }

    /// The numbers of the descriptors this launch hands bubblewrap.
    #[must_use]
    pub fn descriptors(&self) -> Descriptors {
        Descriptors::new(self.handed_files().len(), self.seccomp.is_some(), self.terminal)
    }

    /// The indices (in [`Plan::files`]) of the generated files handed to bubblewrap on
    /// descriptors, in the order of their descriptors: those the cell's `/etc` directory
    /// does not hold.
    #[must_use]
    pub fn handed_files(&self) -> Vec<usize> {
        (0..self.files.len()).filter(|i| !self.etc.as_ref().is_some_and(|t| t.holds_file(*i))).collect()
    }

    /// The descriptor that carries generated file `index` (one of [`Plan::handed_files`]).
    #[must_use]
    pub fn file_fd(&self, index: usize) -> i32 {
        let rank = self.handed_files().iter().position(|i| *i == index).unwrap_or(index);
        self.descriptors().file(rank)
    }

    /// What `cell-init` is told (at [`SPEC_FILE`]), without the secrets: the launcher adds
    /// the values of [`Plan::secret_env`] to its environment when it writes the spec.
    #[must_use]
    pub fn init_spec(&self) -> crate::contract::Launch {
        crate::contract::Launch {
            argv: self.command.clone(),
            program: self.program.clone(),
            env: self.env.clone(),
            fragments: self.fragments.clone(),
            bridges: self.bridges.clone(),
            published: self
                .published
                .iter()
                .map(|p| crate::contract::Bridge {
                    port: p.cell_port,
                    socket: format!("{SOCKETS_DIR}/{}", p.socket_name()).into(),
                })
                .collect(),
            refusals: self.refusals.clone(),
            job_fd: self.descriptors().job(),
            go_fd: Some(self.descriptors().go()),
            // Known at launch, once the limits are applied (crate::host::limits).
            tasks: None,
        }
    }
}

/// Selects the cell to run: `--cell`, else `defaultCell`, else the only one, else `default`.
///
/// # Errors
/// When the named cell does not exist or the choice is ambiguous.
pub fn select_cell<'c>(
    config: &'c ConfigFile,
    source: &ConfigSource,
    requested: Option<&str>,
) -> Result<(String, &'c CellConfig), PlanError> {
    let name = match (requested, &config.default_cell) {
        (Some(n), _) => n.to_owned(),
        (None, Some(d)) => d.clone(),
        (None, None) if config.cells.len() == 1 => config.cells.keys().next().cloned().unwrap_or_default(),
        (None, None) => "default".to_owned(),
    };
    config.cells.get(&name).map(|c| (name.clone(), c)).ok_or_else(|| PlanError::UnknownCell {
        name,
        source_desc: source.to_string(),
        names: config::cell_names(config),
    })
}

/// Builds the plan for one launch.
///
/// # Errors
/// [`PlanError`] for anything the user must fix; nothing on the host is changed.
pub fn build(
    name: &str,
    cell: &CellConfig,
    source: &ConfigSource,
    overrides: &Overrides,
    host: &HostEnv,
    tools: &Tools,
) -> Result<Plan, PlanError> {
    let user = cell_user(host, name)?;
    let worktree = worktree(cell, overrides, host)?;
    let cwd = start_dir(host, &worktree);
    let home = cell.home.path.clone().unwrap_or_else(|| host.data_home().join("cell").join(name).join("home"));
    let (net, policy) = egress_policy(cell, overrides)?;
    let hostname = format!("cell-{}", name.replace('_', "-"));
    let mut layout = Layout::base(cell, name, overrides, &home, &user, &worktree, Some(&host.runtime_base()))?;
    let shell = layout.shell();
    // The generated /etc files first, then the small host /etc files copied (see host_etc).
    let copies = std::mem::take(&mut layout.files);
    layout.files = etc_files(&user, &hostname, name, shell);
    layout.files.extend(copies);
    let generated = layout.files.len();
    // Host git for the gitlinks and the repository view (passed over where the cell writes).
    let host_git = crate::host::tools::find_git(host, &writable_sources(&layout.mounts)).ok();
    let guard = protections(&worktree, cell, name, source, host, host_git.as_deref(), &mut layout.mounts)?;
    let state_dir = host.state_home().join("cell").join(name);
    let git = git_view(name, &worktree, &state_dir, host, host_git, &mut layout)?;
    layout.mounts.push(Mount::RoBind { src: tools.init.clone(), dst: INIT_PATH.into() });
    let (network, sidecars) = network_plan(name, &net, policy, overrides, host, tools, cell)?;
    let published = published_ports(cell, name, overrides, &home)?;
    let runtime_dir = sidecar_mounts(name, host, &sidecars, !published.is_empty(), &mut layout)?;
    let bridges = crate::host::sidecars::bridges(&sidecars);
    for (index, f) in layout.files.iter().enumerate().take(generated) {
        layout.mounts.push(Mount::Data { index, dst: f.dst.clone() });
    }
    layout.mounts = order_mounts(std::mem::take(&mut layout.mounts));

    let mut env = environment(cell, host, &user, name, shell, &cwd);
    env.extend(overrides.env.clone());
    // The variables the sidecars contribute (egress: the proxy variables). Without network
    // the proxy variables point at cell-init's refusals: a proxy-aware tool fails at once
    // with the fix instead of retrying name lookups.
    let refusals = if network.mode == NetworkMode::None {
        env.extend(crate::host::sidecars::egress::environment(net.socks));
        crate::host::sidecars::egress::ports(net.socks)
    } else {
        Vec::new()
    };
    for s in &sidecars {
        env.extend(s.cell_env.clone());
    }
    let command = command_plan(cell, overrides, host, tools, &cwd, shell, &mut env, &mut layout)?;
    let secret_env = secret_env(cell, name, &layout.mounts)?;
    let handed = |v: &str| env.contains_key(v) || secret_env.contains_key(v);
    let first_run = crate::host::agents::FirstRun { worktree: &worktree, command: &command.argv, handed: &handed };
    let fragments = fragment_plan(cell, name, host, overrides.agent.as_ref(), &first_run, &mut layout)?;
    // cell-init's spec: written at launch (with the secrets) from the plan's fields.
    layout.mounts.push(Mount::InitSpec { dst: SPEC_FILE.into() });
    let mounts = order_mounts(layout.mounts);
    refuse_symlinks_under_writable_mounts(&mounts)?;

    let mut plan = Plan {
        cell: name.to_owned(),
        config: source.to_string(),
        tools: tools.clone(),
        user,
        worktree,
        cwd,
        home,
        network,
        runtime_dir,
        sidecars,
        bridges,
        refusals,
        published,
        hostname,
        mounts,
        files: layout.files,
        state_dir,
        live_record: host.runtime_base().join(LIVE_DIR).join(format!("{}.json", std::process::id())),
        protected: guard.protected,
        absent: guard.absent,
        nested: guard.nested,
        git,
        seccomp: (!cell.security.unsafe_allow_all_syscalls).then(crate::host::seccomp::summary),
        secret_env,
        fragments,
        disable_userns: tools.disable_userns,
        limits: crate::host::limits::Limits::from_config(&cell.limits),
        env,
        command: command.argv,
        program: command.program,
        terminal: crate::host::pty::stdio_has_terminal(),
        project: None,
        etc_base: host.runtime_base().join("etc"),
        etc: None,
        argv: Vec::new(),
    };
    plan.set_argv();
    Ok(plan)
}

/// Where the command starts: the current directory when it lies in the worktree (as given,
/// or with its links resolved), else the worktree.
fn start_dir(host: &HostEnv, worktree: &Utf8Path) -> Utf8PathBuf {
    if host.cwd.starts_with(worktree) {
        return host.cwd.clone();
    }
    match crate::sys::canonical_utf8(&host.cwd) {
        Ok(c) if c.starts_with(worktree) => c,
        _ => worktree.to_owned(),
    }
}

/// The file system of a cell while it is planned: mounts (in the order they were added;
/// [`order_mounts`] sorts them) and the generated files they refer to.
struct Layout {
    mounts: Vec<Mount>,
    files: Vec<DataFile>,
}

impl Layout {
    /// The mounts every cell has: the host system (when declared), `/dev`, `/proc`, the
    /// tmpfs mounts, the cell home, the binds and the worktree.
    fn base(
        cell: &CellConfig,
        name: &str,
        overrides: &Overrides,
        home: &Utf8Path,
        user: &CellUser,
        worktree: &Utf8Path,
        runtime_base: Option<&Utf8Path>,
    ) -> Result<Self, PlanError> {
        let mut mounts = Vec::new();
        let mut files = Vec::new();
        if cell.host_system {
            let (system, copies) = crate::host::syscache::system_mounts(runtime_base, host_system_mounts);
            mounts.extend(system);
            files = copies;
        }
        mounts.push(Mount::Dev { dst: "/dev".into() });
        mounts.push(Mount::Proc { dst: "/proc".into() });
        // Writable tmpfs mounts are capped: without a cgroup their pages count toward no
        // limit of the cell (an rlimit does not see them). /tmp and /dev/shm get the memory
        // limit each, /run (the cell's own small files) 64 MiB.
        let tmpfs_size = crate::host::limits::Limits::from_config(&cell.limits).tmpfs_size();
        mounts.push(Mount::Tmpfs { dst: "/dev/shm".into(), size: tmpfs_size });
        mounts.push(Mount::Tmpfs { dst: "/tmp".into(), size: tmpfs_size });
        mounts.push(Mount::Tmpfs { dst: "/run".into(), size: Some(64 << 20) });
        mounts.push(Mount::Bind { src: home.to_owned(), dst: user.home.clone() });
        let declared = cell.binds.iter().enumerate().map(|(i, b)| (format!("cells.{name}.binds[{i}]"), b));
        let flagged = overrides.binds.iter().map(|b| ("--bind".to_owned(), b));
        for (field, b) in declared.chain(flagged) {
            if let Some(m) = bind_mount(&field, b)? {
                mounts.push(m);
            }
        }
        mounts.push(Mount::Bind { src: worktree.to_owned(), dst: worktree.to_owned() });
        // The small host /etc files copied, until `build` puts the generated ones first.
        Ok(Self { mounts, files })
    }

    /// The login shell of the cell user, and `SHELL`: bash when the cell has it.
    fn shell(&self) -> &'static str {
        let so_far = order_mounts(self.mounts.clone());
        let fs = View { mounts: &so_far };
        ["/bin/bash", "/bin/sh"].into_iter().find(|s| fs.executable(Utf8Path::new(s)).is_some()).unwrap_or("/bin/sh")
    }

    /// Adds a generated read-only file at `dst`.
    fn add_file(&mut self, dst: &Utf8Path, contents: String) {
        self.files.push(DataFile { dst: dst.to_owned(), contents });
        self.mounts.push(Mount::Data { index: self.files.len() - 1, dst: dst.to_owned() });
    }
}

/// What `cell-init` runs, as the plan resolved it.
struct Command {
    /// The command and its arguments.
    argv: Vec<String>,
    /// Where a `PATH` search found `argv[0]` inside the cell.
    program: Option<Utf8PathBuf>,
}

/// The launch's runtime directory, when it has sidecars or published ports (their sockets
/// live there, in either network mode), with its `sockets/` bound into the cell; and the
/// files the sidecars contribute, checked and bound read-only.
fn sidecar_mounts(
    name: &str,
    host: &HostEnv,
    sidecars: &[crate::host::sidecars::SidecarSpec],
    published: bool,
    layout: &mut Layout,
) -> Result<Option<Utf8PathBuf>, PlanError> {
    let runtime_dir = (!sidecars.is_empty() || published).then(|| crate::host::sidecars::runtime_dir(host, name));
    if let Some(rt) = &runtime_dir {
        layout.mounts.push(Mount::RoBind { src: rt.join(crate::host::sidecars::SOCKETS), dst: SOCKETS_DIR.into() });
    }
    let generated: Vec<&Utf8Path> = layout.files.iter().map(|f| f.dst.as_path()).collect();
    crate::host::sidecars::check_cell_files(name, sidecars, &layout.mounts, &generated)?;
    for f in sidecars.iter().flat_map(|s| &s.cell_files) {
        layout.mounts.push(Mount::RoBind { src: f.src.clone(), dst: f.dst.clone() });
    }
    Ok(runtime_dir)
}

/// The command of this launch: a launcher's task, the command given, the cell's own or its
/// shell; for `cell <agent>` the agent's, with its environment and the binds its install
/// needs. Checked to be runnable inside the cell, with `cell-init`.
#[allow(clippy::too_many_arguments)]
fn command_plan(
    cell: &CellConfig,
    overrides: &Overrides,
    host: &HostEnv,
    tools: &Tools,
    cwd: &Utf8Path,
    shell: &str,
    env: &mut BTreeMap<String, String>,
    layout: &mut Layout,
) -> Result<Command, PlanError> {
    let mut argv = if let Some(task) = &overrides.task {
        layout.add_file(Utf8Path::new(TASK_FILE), task.to_json());
        vec![INIT_PATH.to_owned(), "--spec".to_owned(), TASK_FILE.to_owned()]
    } else if overrides.command.is_empty() {
        cell.command.clone().unwrap_or_else(|| vec![shell.to_owned()])
    } else {
        overrides.command.clone()
    };
    if let Some((kind, args)) = &overrides.agent {
        let path = env.get("PATH").cloned().unwrap_or_default();
        let writable = writable_sources(&layout.mounts);
        let fs = View { mounts: &layout.mounts };
        let agent = agent_launch(cell, *kind, args, host, &fs, &path, cwd, &writable)?;
        argv = agent.command;
        for (k, v) in agent.env {
            env.entry(k).or_insert(v);
        }
        for dir in agent.path_dirs {
            let p = env.get("PATH").cloned().unwrap_or_default();
            env.insert("PATH".into(), format!("{dir}:{p}"));
        }
        if !agent.binds.is_empty() {
            for b in agent.binds {
                if layout.mounts.iter().any(|m| m.dst() == b) {
                    continue;
                }
                layout.mounts.push(Mount::RoBind { src: b.clone(), dst: b });
            }
            layout.mounts = order_mounts(std::mem::take(&mut layout.mounts));
        }
    }
    // A project's variables never replace one: they fill only what nothing else set.
    for (k, v) in &overrides.project_env {
        env.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let path = env.get("PATH").cloned().unwrap_or_default();
    let fs = View { mounts: &layout.mounts };
    let program = fs.check_runnable(&argv[0], &path, cwd, &tools.init)?;
    Ok(Command { argv, program })
}

/// The cell's network section with `--network` and `--allow` applied.
fn effective_network(cell: &CellConfig, overrides: &Overrides) -> Result<config::NetworkConfig, PlanError> {
    let mut net = cell.network.clone();
    match overrides.network {
        Some(NetworkMode::None) if !overrides.allow.is_empty() => {
            return Err(config::Invalid::new(
                "--allow",
                "--allow adds to the proxy's allowlist but --network none lets nothing out",
                "drop --network none (or drop --allow)",
            )
            .into())
        }
        Some(mode) => net.mode = Some(mode),
        None if !overrides.allow.is_empty() => net.mode = Some(NetworkMode::Proxy),
        None => {}
    }
    let mode = net.effective_mode(overrides.agent.is_some());
    net.mode = Some(mode);
    if let Some((kind, _)) = &overrides.agent {
        let preset = cell.agent.as_ref().is_none_or(|a| a.network_preset);
        if let (true, NetworkMode::Proxy, Some(p)) = (preset, mode, crate::host::agents::profile(*kind)) {
            for h in p.hosts {
                if !net.allow.iter().any(|a| a == h) {
                    net.allow.push((*h).to_owned());
                }
            }
        }
    }
    for a in &overrides.allow {
        let one = cell_egress::policy::PolicyFile { allow: vec![a.clone()], ..Default::default() };
        if let Err(e) = cell_egress::policy::Policy::from_file(&one) {
            let (message, fix) = cell_egress::policy::entry_of_url(a).map_or_else(
                || (e.to_string(), "give HOST, *.DOMAIN or an IP address, optionally with :PORT".to_owned()),
                |h| (format!("allow entry {a:?}: give a host, not a URL"), format!("use --allow {h}")),
            );
            return Err(config::Invalid::new("--allow", message, fix).into());
        }
    }
    Ok(net)
}

/// bubblewrap follows symbolic links when it creates mount points, resolving them against
/// the host's root. Under a writable mount (the cell home, the worktree, a rw bind) the cell
/// could plant such a link between two runs and so make the next launch create directories
/// anywhere the user can write. Every mount point below a writable mount is therefore
/// checked for links on the host side first.
fn refuse_symlinks_under_writable_mounts(mounts: &[Mount]) -> Result<(), PlanError> {
    for (i, m) in mounts.iter().enumerate() {
        let dst = m.dst();
        for outer in &mounts[..i] {
            let Mount::Bind { src, dst: outer_dst } = outer else { continue };
            if dst == outer_dst || !within(dst.as_str(), outer_dst.as_str()) {
                continue;
            }
            let Ok(rel) = dst.strip_prefix(outer_dst) else { continue };
            let mut host = src.clone();
            for comp in rel.components() {
                host.push(comp.as_str());
                match std::fs::symlink_metadata(&host) {
                    Ok(meta) if meta.file_type().is_symlink() => {
                        let link = if host == *dst { "it".to_owned() } else { format!("{host} on the way to it") };
                        return Err(config::Invalid::new(
                            format!("mount point {dst}"),
                            format!("{link} is a symbolic link inside the writable mount {outer_dst}, and cell does not follow links when it builds a cell"),
                            format!("if the cell made the link (it can write {outer_dst}), remove it; if the link is the host's own, {outer_dst} cannot be the worktree or a read-write bind"),
                        )
                        .into());
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
    }
    Ok(())
}

/// What `cell <agent>` runs and needs.
struct AgentLaunch {
    /// The agent's command and arguments.
    command: Vec<String>,
    /// Its kind's variables (the cell's own win).
    env: Vec<(String, String)>,
    /// Host paths to bind read-only (an install outside the cell's view).
    binds: Vec<Utf8PathBuf>,
    /// Directories to put in front of `PATH` (the host's node).
    path_dirs: Vec<Utf8PathBuf>,
}

/// The command, environment and extra bind of `cell <agent>`: the cell's agent settings
/// over the kind's defaults; an agent installed outside the cell's view (an npm prefix in
/// your home, say) is found on the host's `PATH` and its install bound read-only.
#[allow(clippy::too_many_arguments)]
fn agent_launch(
    cell: &CellConfig,
    kind: crate::host::agents::AgentKind,
    extra: &[String],
    host: &HostEnv,
    fs: &View<'_>,
    path: &str,
    cwd: &Utf8Path,
    writable: &[Utf8PathBuf],
) -> Result<AgentLaunch, PlanError> {
    let profile = crate::host::agents::profile(kind);
    let declared = cell.agent.as_ref().filter(|a| a.kind == kind);
    let declared = declared.or(cell.agent.as_ref().filter(|a| a.kind == crate::host::agents::AgentKind::Custom));
    let mut command: Vec<String> = match (declared.and_then(|a| a.command.clone()), profile) {
        (Some(c), _) => c,
        (None, Some(p)) => vec![p.program.to_owned()],
        (None, None) => {
            return Err(config::Invalid::new(
                "agent.command",
                "a custom agent needs a command",
                "declare the cell's agent with kind \"custom\" and a command",
            )
            .into())
        }
    };
    let plain = profile.is_some_and(|p| extra.first().is_some_and(|a| p.plain_subcommands.contains(&a.as_str())));
    let default_args: Vec<String> = match profile {
        Some(p) if !plain => p.no_prompt_args.iter().map(|s| (*s).to_owned()).collect(),
        _ => Vec::new(),
    };
    command.extend(declared.and_then(|a| a.args.clone()).unwrap_or(default_args));
    command.extend(extra.iter().cloned());
    let env: Vec<(String, String)> =
        profile.map(|p| p.env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()).unwrap_or_default();
    let mut binds = Vec::new();
    let mut path_dirs = Vec::new();
    if fs.find_command(&command[0], path, cwd).is_err() && !command[0].contains('/') {
        if let Some(real) = host_program(host, &command[0], writable) {
            binds.push(crate::host::agents::install_root(&real));
            command[0] = real.to_string();
            // A node script needs node; bring the host's, the binary alone.
            if binds[0] != real && fs.find_command("node", path, cwd).is_err() {
                if let Some(node) = host_program(host, "node", writable) {
                    if let Some(dir) = node.parent() {
                        path_dirs.push(dir.to_owned());
                    }
                    binds.push(node);
                }
            }
        }
    }
    Ok(AgentLaunch { command, env, binds, path_dirs })
}

/// Finds `name` on the host's `PATH`, skipping anything in or resolving into a place the
/// cell can write (the worktree, the cell home, writable binds): the cell must not choose
/// what gets bound into it. What is found runs in the cell; the programs the launcher
/// runs on the host are found stricter ([`crate::host::tools::find_git`]).
fn host_program(host: &HostEnv, name: &str, writable: &[Utf8PathBuf]) -> Option<Utf8PathBuf> {
    let inside_writable = |p: &Utf8Path| writable.iter().any(|w| within(p.as_str(), w.as_str()));
    host.var("PATH").unwrap_or("/usr/bin:/bin").split(':').filter(|d| d.starts_with('/')).map(Utf8Path::new).find_map(
        |d| {
            // The candidate first: a directory without it needs no resolving.
            let real = crate::sys::canonical_utf8(&d.join(name)).ok()?;
            let usable = crate::sys::is_executable(&real) && !inside_writable(&real);
            (usable && !crate::host::tools::skipped(d, writable)).then_some(real)
        },
    )
}

/// Checks the host files behind `envFromFile` (they are read at launch, not now).
fn secret_env(cell: &CellConfig, name: &str, mounts: &[Mount]) -> Result<BTreeMap<String, Utf8PathBuf>, PlanError> {
    for (k, p) in &cell.env_from_file {
        let real = crate::sys::canonical_utf8(p).unwrap_or_else(|_| p.clone());
        let exposed = mounts.iter().any(|m| match m {
            Mount::Bind { src, .. } => within(p.as_str(), src.as_str()) || within(real.as_str(), src.as_str()),
            _ => false,
        });
        if exposed || std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(config::Invalid::new(
                format!("cells.{name}.envFromFile.{k}"),
                format!("{p} is a symbolic link or lies where the cell can write (it could swap the file)"),
                "keep secrets outside the worktree, the cell home and writable binds, e.g. /run/agenix/<name>",
            )
            .into());
        }
        if let Err(e) = std::fs::File::open(p) {
            return Err(config::Invalid::new(
                format!("cells.{name}.envFromFile.{k}"),
                format!("{p} cannot be read: {e}"),
                "point it at a readable file (e.g. an agenix or sops secret path)",
            )
            .into());
        }
    }
    Ok(cell.env_from_file.clone())
}

/// Built-in and declared fragments, with the mounts and files they need.
fn fragment_plan(
    cell: &CellConfig,
    name: &str,
    host: &HostEnv,
    agent: Option<&(crate::host::agents::AgentKind, Vec<String>)>,
    first_run: &crate::host::agents::FirstRun<'_>,
    layout: &mut Layout,
) -> Result<Vec<crate::contract::Fragment>, PlanError> {
    use crate::contract::{Action, Fragment};
    let builtin = |order, name: &str, action| Fragment {
        order,
        name: name.to_owned(),
        on_failure: crate::contract::FailurePolicy::Abort,
        timeout_seconds: 60,
        action,
    };
    let mut list = Vec::new();
    if let Some(p) = &cell.patches {
        let field = format!("cells.{name}.patches");
        let real = p
            .canonicalize_utf8()
            .map_err(|e| config::Invalid::new(&field, format!("{p}: {e}"), "create the directory first"))?;
        let home = crate::sys::canonical_utf8(&host.home).unwrap_or_else(|_| host.home.clone());
        if !real.is_dir() || real == "/" || real == home {
            return Err(config::Invalid::new(
                &field,
                format!("{real} is `/`, your home or not a directory"),
                "use a dedicated directory, e.g. ~/patches/<project>",
            )
            .into());
        }
        layout.mounts.push(Mount::Bind { src: real, dst: crate::contract::PATCHES_DIR.into() });
        list.push(builtin(15, "patches", Action::Patches));
    }
    if let Some(state) = &cell.state {
        if !state.dir.is_dir() {
            return Err(config::Invalid::new(
                format!("cells.{name}.state.dir"),
                format!("{} is not a directory", state.dir),
                "create it (it holds the agent state kept between cells)",
            )
            .into());
        }
        layout.mounts.push(Mount::Bind { src: state.dir.clone(), dst: crate::contract::STATE_DIR.into() });
        list.push(builtin(20, "state-links", Action::StateLinks { links: state.links.clone() }));
    }
    list.push(builtin(22, "chromium-singleton", Action::ChromiumSingleton));
    let agent = agent.map(|(k, _)| *k).or(cell.agent.as_ref().map(|a| a.kind));
    if let Some(profile) = agent.and_then(crate::host::agents::profile) {
        // Also with no servers declared: servers cell added earlier must go.
        let servers = serde_json::json!({ "servers": cell.mcp.servers });
        layout.add_file(Utf8Path::new(crate::contract::SERVERS_FILE), servers.to_string());
        list.push(builtin(
            30,
            "mcp",
            Action::Mcp {
                agent: profile.kind.to_string(),
                servers: crate::contract::SERVERS_FILE.into(),
                target: profile.mcp_file.to_owned(),
            },
        ));
        list.push(builtin(25, "agent-state", crate::host::agents::first_run_answers(profile, first_run)));
    }
    for f in &cell.fragments {
        let inside = Utf8Path::new(crate::contract::SCRIPTS_DIR).join(&f.name);
        layout.mounts.push(Mount::RoBind { src: f.command[0].clone().into(), dst: inside.clone() });
        let mut command = f.command.clone();
        command[0] = inside.to_string();
        list.push(Fragment {
            order: f.order,
            name: f.name.clone(),
            on_failure: f.on_failure,
            timeout_seconds: f.timeout_seconds,
            action: Action::Script { command },
        });
    }
    Ok(crate::contract::ordered(list))
}

/// Whether the cell user could create an entry in host directory `dir`.
fn could_create_in(dir: &Utf8Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    nix::unistd::access(dir.as_std_path(), nix::unistd::AccessFlags::W_OK).is_ok()
        || std::fs::metadata(dir).is_ok_and(|m| m.uid() == nix::unistd::geteuid().as_raw())
}

/// Protections of one launch.
struct Guard {
    protected: Vec<Protected>,
    absent: Vec<Utf8PathBuf>,
    nested: crate::host::containment::Nested,
}

/// Protected paths, each with the field (or the reason) that asks for it.
type Wanted = Vec<(String, String)>;

/// The `.git` entries host git enters on its own in `worktree` ([`crate::host::gitlinks`]),
/// as protected paths: a submodule's (one not checked out: its directory) and a linked
/// worktree's.
fn git_entries(
    worktree: &Utf8Path,
    name: &str,
    host: &HostEnv,
    git: Option<&Utf8Path>,
    rules: &[crate::host::gitview::Rule],
    mounts: &[Mount],
    defaults: bool,
) -> Result<(Wanted, Option<crate::host::containment::IndexWatch>), PlanError> {
    let writable = writable_sources(mounts);
    // The kept lists of gitlinks are read only where no writable mount shows them.
    let state = host.state_home().join("cell").join(name);
    let keep = !writable.iter().any(|w| state.starts_with(w));
    let entries = crate::host::gitlinks::entries(worktree, git, &state, keep).map_err(|e| {
        config::Invalid::new(
            "the repository",
            e,
            "fix the repository (git status says what git thinks of it), or start the cell elsewhere",
        )
    })?;
    let field = "a submodule or linked worktree of the host repository";
    let mut out = Vec::new();
    // Host git that changes the index during the run (a merge, pull or switch) can bring a
    // gitlink this launch does not hold: the watch lists them again when that happens.
    let watch = git.map(|git| crate::host::containment::IndexWatch {
        worktree: worktree.to_owned(),
        git: git.to_owned(),
        state: state.clone(),
        keep,
        known: entries.clone(),
    });
    for rel in entries {
        let dir = rel.strip_suffix("/.git").unwrap_or(&rel).to_owned();
        if std::fs::symlink_metadata(worktree.join(&rel)).is_ok() {
            // Checked out: what its own configuration names in it (its hooks directory,
            // included files, programs) is held too, resolved against its own top.
            out.extend(
                crate::host::gitview::host_config_paths(&worktree.join(&dir), rules, &host.home)
                    .into_iter()
                    .map(|p| (field.to_owned(), format!("{dir}/{p}"))),
            );
            // Its top is a repository's top: what a hook runner reads from there (a
            // shared hook runs in it) and the tools' files, as at the worktree's top.
            if defaults {
                out.extend(
                    config::DEFAULT_PROTECTED
                        .iter()
                        .map(|p| ("security.defaultProtectedPaths".to_owned(), format!("{dir}/{p}"))),
                );
            }
            out.push((field.to_owned(), rel));
            continue;
        }
        if std::fs::symlink_metadata(worktree.join(&dir)).is_ok_and(|m| !m.is_dir()) {
            // A file where the submodule was: held as it is (a link is refused), so that no
            // directory with a `.git` takes its place while the cell runs.
            out.push((field.to_owned(), dir));
            continue;
        }
        // Not checked out (no `.git` in its directory): the directory itself is read-only,
        // made empty first where it is missing (as git leaves one). A `.git` the cell made
        // there would be found by host `git status` at once, well before a watch could set
        // it aside; such a submodule is initialised on the host.
        crate::sys::make_dirs_below(worktree, Utf8Path::new(&dir)).map_err(|e| {
            // Say which: a link on the way (one a cell committed beside it, say) is the usual.
            let mut at = worktree.to_owned();
            let link = Utf8Path::new(&dir).components().find_map(|c| {
                at.push(c);
                std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()).then(|| at.clone())
            });
            let (why, fix) = match link {
                Some(l) => (
                    format!("{l} is a symbolic link on the way to submodule {dir}, which cell cannot hold there"),
                    format!("remove the link, or the submodule from the index (git rm --cached {dir})"),
                ),
                None => (
                    format!("the directory of submodule {dir} cannot be made in {worktree}: {e}"),
                    "make it a directory (git submodule update --init makes it), or remove the submodule".to_owned(),
                ),
            };
            config::Invalid::new("the repository", why, fix)
        })?;
        out.push((field.to_owned(), format!("{dir}/")));
    }
    Ok((out, watch))
}

/// The paths a launch protects, each with the field that asked for it, and what its exit
/// looks at in repositories below the top.
fn wanted_paths(
    worktree: &Utf8Path,
    cell: &CellConfig,
    name: &str,
    host: &HostEnv,
    git: Option<&Utf8Path>,
    mounts: &[Mount],
) -> Result<(Wanted, crate::host::containment::Nested), PlanError> {
    let mut wanted: Vec<(String, String)> = Vec::new();
    if cell.security.default_protected_paths {
        wanted.extend(
            config::DEFAULT_PROTECTED.iter().map(|p| ("security.defaultProtectedPaths".to_owned(), (*p).to_owned())),
        );
    }
    for (i, p) in cell.security.protected_paths.iter().enumerate() {
        wanted.push((format!("cells.{name}.security.protectedPaths[{i}]"), p.clone()));
    }
    // What the host's git config names in the worktree (hooks directory, included config,
    // programs), and the checked-out submodules' `.git` entries: host git reads or runs them.
    let rules = crate::host::gitview::host_rules(host);
    for rel in crate::host::gitview::host_config_paths(worktree, &rules, &host.home) {
        wanted.push(("the host repository's git config".to_owned(), rel));
    }
    let defaults = cell.security.default_protected_paths;
    let (entries, index) = git_entries(worktree, name, host, git, &rules, mounts, defaults)?;
    wanted.extend(entries);
    // Repositories below the top are found at exit (a walk of the worktree): what their
    // configs name, and the default list at their tops, is set aside there when changed.
    let owned = |list: &[&str]| if defaults { list.iter().map(|p| (*p).to_owned()).collect() } else { Vec::new() };
    let nested = crate::host::containment::Nested {
        rules,
        home: host.home.clone(),
        at_tops: owned(&config::DEFAULT_PROTECTED),
        anywhere: owned(&config::PROTECTED_ANYWHERE),
        index,
    };
    Ok((wanted, nested))
}

/// Adds the mounts that hold protected paths read-only: existing ones are bound onto
/// themselves read-only; missing ones are only listed (the launch sets aside what the cell
/// creates there); every directory between the worktree and a protected path is bound onto
/// itself so it cannot be renamed or replaced (a mount point cannot be moved).
fn protections(
    worktree: &Utf8Path,
    cell: &CellConfig,
    name: &str,
    source: &ConfigSource,
    host: &HostEnv,
    git: Option<&Utf8Path>,
    mounts: &mut Vec<Mount>,
) -> Result<Guard, PlanError> {
    let (wanted, nested) = wanted_paths(worktree, cell, name, host, git, mounts)?;
    let mut guard = Guard { protected: Vec::new(), absent: Vec::new(), nested };
    let mut covered: std::collections::HashSet<Utf8PathBuf> = std::collections::HashSet::new();
    // Most protected paths lie in the worktree's top directory: one listing of it answers
    // for every name not there (a look at each would cost a system call per path).
    let top_names: Option<std::collections::HashSet<String>> =
        worktree.read_dir_utf8().ok().map(|entries| entries.flatten().map(|e| e.file_name().to_owned()).collect());
    // Most protected paths lie in the worktree's top directory: ask once per directory.
    let mut creatable: std::collections::HashMap<Utf8PathBuf, bool> = std::collections::HashMap::new();
    for (field, rel) in &wanted {
        let parts: Vec<&str> = rel.trim_end_matches('/').split('/').collect();
        let mut cur = worktree.to_owned();
        for (i, part) in parts.iter().enumerate() {
            let next = cur.join(part);
            if next.ancestors().any(|a| covered.contains(a)) {
                break;
            }
            let last = i + 1 == parts.len();
            let seen = if cur == worktree && top_names.as_ref().is_some_and(|names| !names.contains(*part)) {
                Err(std::io::Error::from(std::io::ErrorKind::NotFound))
            } else {
                std::fs::symlink_metadata(&next)
            };
            match seen {
                Err(_) => {
                    // No mount can stop a path being created without leaving a placeholder
                    // on the host (which a host-side rename or another cell's exit would
                    // lift anyway): the launcher renames aside what the cell creates there
                    // when it ends, and says so. Only a parent owned by someone else and
                    // not writable needs nothing.
                    if *creatable.entry(cur.clone()).or_insert_with(|| could_create_in(&cur)) {
                        // Only the path itself is covered: another protected path in the same
                        // missing directory (`.config/a` and `.config/b`) is watched too.
                        let full = worktree.join(rel.trim_end_matches('/'));
                        guard.protected.push(Protected { path: full.clone(), how: "absent: quarantined if created" });
                        guard.absent.push(full.clone());
                        covered.insert(full);
                    }
                    break;
                }
                Ok(m) if m.file_type().is_symlink() => {
                    let target = std::fs::read_link(&next).map(|t| t.display().to_string()).unwrap_or_default();
                    return Err(config::Invalid::new(
                        field.as_str(),
                        format!(
                            "protected path {rel}: {next} is a symbolic link (to {target}), which the cell could swap"
                        ),
                        "replace the link with the real file or directory, or take the path off the protected list",
                    )
                    .into());
                }
                Ok(m) if last || !m.is_dir() => {
                    mounts.push(Mount::RoBind { src: next.clone(), dst: next.clone() });
                    guard.protected.push(Protected { path: next.clone(), how: "read-only" });
                    covered.insert(next);
                    break;
                }
                Ok(_) => {
                    if !mounts.iter().any(|m| m.dst() == next) {
                        mounts.push(Mount::Bind { src: next.clone(), dst: next.clone() });
                    }
                    cur = next;
                }
            }
        }
    }
    // The cell's own configuration, wherever a writable mount would expose it.
    if let ConfigSource::Flag(p) | ConfigSource::Env(p) | ConfigSource::User(p) | ConfigSource::System(p) = source {
        if let Ok(real) = crate::sys::canonical_utf8(p) {
            let inside: Vec<Utf8PathBuf> = mounts
                .iter()
                .filter_map(|m| match m {
                    Mount::Bind { src, dst } if real.starts_with(src) => {
                        Some(dst.join(real.strip_prefix(src).unwrap_or(Utf8Path::new(""))))
                    }
                    _ => None,
                })
                .collect();
            for dst in inside {
                mounts.push(Mount::RoBind { src: real.clone(), dst: dst.clone() });
                guard.protected.push(Protected { path: dst, how: "read-only" });
            }
        }
    }
    Ok(guard)
}

/// The worktree's repository as the cell sees it: the launch's private git directory over
/// `.git` (or, for a `.git` file, at [`crate::contract::PRIVATE_INSIDE`] with a `.git` file
/// inside pointing there), and the host's object stores read-only.
fn git_view(
    name: &str,
    worktree: &Utf8Path,
    state_dir: &Utf8Path,
    host: &HostEnv,
    git: Option<Utf8PathBuf>,
    layout: &mut Layout,
) -> Result<Option<crate::host::gitview::GitView>, PlanError> {
    let dot = worktree.join(".git");
    let view = match crate::host::gitview::plan(name, worktree, state_dir, git, host) {
        Ok(None) => return Ok(None),
        Ok(Some(v)) => v,
        Err(why) if dot.is_file() && !std::fs::symlink_metadata(&dot).is_ok_and(|m| m.file_type().is_symlink()) => {
            // A `.git` file that names no usable git directory: held read-only, so the cell
            // cannot point it somewhere of its own; git inside reports the problem itself.
            let _ = why;
            layout.mounts.push(Mount::RoBind { src: dot.clone(), dst: dot });
            return Ok(None);
        }
        Err(why) => {
            return Err(config::Invalid::new(
                worktree.as_str(),
                format!("the worktree's repository cannot be given to the cell: {why}"),
                "fix the worktree's .git (or run the cell in a directory without one)",
            )
            .into())
        }
    };
    layout.mounts.push(Mount::Bind { src: view.private.clone(), dst: view.inside() });
    if view.gitfile {
        layout.add_file(&dot, format!("gitdir: {}\n", crate::contract::PRIVATE_INSIDE));
    }
    for (src, dst) in view.object_binds() {
        if src.is_dir() {
            layout.mounts.push(Mount::RoBind { src, dst });
        }
    }
    Ok(Some(view))
}

/// The network of a launch and its sidecars, in start order: the egress one (proxy mode),
/// then the declared ones and the host services.
fn network_plan(
    name: &str,
    net: &config::NetworkConfig,
    policy: cell_egress::policy::PolicyFile,
    overrides: &Overrides,
    host: &HostEnv,
    tools: &Tools,
    cell: &CellConfig,
) -> Result<(NetworkPlan, Vec<SidecarSpec>), PlanError> {
    use crate::host::sidecars::{egress, user};
    let runtime = crate::host::sidecars::runtime_dir(host, name);
    let state = host.state_home().join("cell").join(name);
    let mut sidecars = Vec::new();
    let plan = if net.mode == Some(NetworkMode::Proxy) {
        let Some(program) = tools.sidecars.get(egress::NAME) else {
            return Err(config::Invalid::new(
                "network.mode",
                "the proxy mode needs cell-egress, which was not found",
                "install cell-egress next to cell, or use --network none",
            )
            .into());
        };
        let launch = egress::EgressLaunch {
            program,
            cell: name,
            runtime: &runtime,
            state: &state,
            policy: &policy,
            socks: net.socks,
            overrides,
        };
        sidecars.push(egress::spec(&launch));
        NetworkPlan { mode: NetworkMode::Proxy, policy: Some(policy), audit_log: Some(egress::audit_log(&state)) }
    } else {
        NetworkPlan { mode: NetworkMode::None, policy: None, audit_log: None }
    };
    let places = user::Places { cell: name, runtime: &runtime, state: &state };
    let declared = user::specs(cell, &overrides.host_ports, host, &places, sidecars.first())?;
    sidecars.extend(declared);
    Ok((plan, sidecars))
}

/// The ports a launch publishes: the cell's `ports.publish`, then `--publish`, then the
/// login callback of an agent logging in (`cell codex login`), or best effort that of an
/// agent's interactive first run when its login file is not in the cell home yet (unless
/// that port is published already).
fn published_ports(
    cell: &CellConfig,
    name: &str,
    overrides: &Overrides,
    home: &Utf8Path,
) -> Result<Vec<crate::host::publish::Published>, PlanError> {
    use crate::host::agents;
    let mut all = crate::host::publish::from_config(&cell.ports, &format!("cells.{name}"))?;
    all.extend(overrides.publish.iter().cloned());
    if let Some((kind, args)) = &overrides.agent {
        let login = agents::login_callback(*kind, args).map(|port| (port, false, format!("`{kind} login`")));
        let first_run = agents::first_run_callback(*kind, args)
            .filter(|(_, file)| std::fs::symlink_metadata(home.join(file)).is_err())
            .map(|(port, _)| (port, true, format!("`{kind}` (not logged in yet)")));
        if let Some((port, optional, what)) = login.or(first_run) {
            if !all.iter().any(|p| p.cell_port == port || p.host_port == port) {
                all.push(crate::host::publish::Published {
                    address: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
                    host_port: port,
                    cell_port: port,
                    from: format!("{what}: its browser login callback on 127.0.0.1:{port}"),
                    optional,
                });
            }
        }
    }
    crate::host::publish::check_unique(&all)?;
    Ok(all)
}

/// Host sources of the plan's read-write mounts (the worktree, the cell home, rw binds,
/// state and patches directories), with links resolved as well as as given.
#[must_use]
pub fn writable_sources(mounts: &[Mount]) -> Vec<Utf8PathBuf> {
    let mut out = Vec::new();
    for m in mounts {
        if let Mount::Bind { src, .. } = m {
            out.push(src.clone());
            if let Ok(real) = crate::sys::canonical_utf8(src) {
                out.push(real);
            }
        }
    }
    out
}

/// Refuses `program` when it, or what it links to, lies in a writable mount source.
///
/// # Errors
/// [`PlanError::WritableProgram`] naming the program and how to fix it.
pub fn check_program(mounts: &[Mount], what: &str, program: &Utf8Path, fix: &str) -> Result<(), PlanError> {
    let writable = writable_sources(mounts);
    let real = crate::sys::canonical_utf8(program).unwrap_or_else(|_| crate::sys::normalise(program));
    for candidate in [crate::sys::normalise(program), real] {
        if let Some(mount) = writable.iter().find(|w| within(candidate.as_str(), w.as_str())) {
            return Err(PlanError::WritableProgram {
                what: what.to_owned(),
                program: candidate,
                mount: mount.clone(),
                fix: fix.to_owned(),
            });
        }
    }
    Ok(())
}

/// The launcher never runs a program from a place the cell can write: bubblewrap,
/// `cell-init` (the cell's pid 1) and every sidecar's program are checked against the
/// plan's writable mounts, links resolved.
///
/// # Errors
/// [`PlanError::WritableProgram`] for the first one that lies there.
pub fn check_tools(plan: &Plan) -> Result<(), PlanError> {
    check_program(
        &plan.mounts,
        "bubblewrap",
        &plan.tools.bwrap,
        "install bubblewrap outside the worktree and the cell home (e.g. apt install bubblewrap), take the entry \
         out of PATH, or point $CELL_BWRAP at it",
    )?;
    let sibling = "install cell with all its binaries outside the worktree and the cell home (a copy of the cell \
                   binary in the worktree looks for its helpers next to itself), or point the variable at them";
    check_program(&plan.mounts, "cell-init", &plan.tools.init, &format!("{sibling} ($CELL_INIT)"))?;
    for s in &plan.sidecars {
        if let Some(program) = s.command.first() {
            if s.name == crate::host::sidecars::egress::NAME {
                check_program(
                    &plan.mounts,
                    "cell-egress",
                    Utf8Path::new(program),
                    &format!("{sibling} ($CELL_EGRESS)"),
                )?;
            } else {
                let fix = "install the sidecar's program outside the worktree, the cell home and the read-write binds, and name it there";
                check_program(&plan.mounts, &format!("sidecar {}", s.name), Utf8Path::new(program), fix)?;
            }
        }
    }
    Ok(())
}

/// The cell's user is the host user that builds it, at the same uid: bubblewrap maps that
/// uid alone. It is never uid 0 (nor gid 0): a root launcher has become its `runAs`
/// account before it plans (see `cli::cell_host`), and a plan for root is refused here.
fn cell_user(host: &HostEnv, name: &str) -> Result<CellUser, PlanError> {
    if host.uid == 0 || host.gid == 0 {
        return Err(config::Invalid::new(
            format!("cells.{name}.runAs"),
            format!(
                "a cell's user never maps to host uid 0 or gid 0, and this launch runs as uid {} gid {}",
                host.uid, host.gid
            ),
            format!(
                "run cell as root (it then becomes the runAs account, default `{}`) or as your own user",
                config::DEFAULT_RUN_AS
            ),
        )
        .into());
    }
    Ok(CellUser { name: host.user.clone(), uid: host.uid, gid: host.gid, home: host.home.clone() })
}

pub(crate) fn worktree(cell: &CellConfig, overrides: &Overrides, host: &HostEnv) -> Result<Utf8PathBuf, PlanError> {
    let (field, given) = match (&overrides.workdir, &cell.worktree.path) {
        (Some(w), _) => ("--workdir", host.cwd.join(w)),
        (None, Some(p)) => ("worktree.path", p.clone()),
        (None, None) => ("the current directory", host.cwd.clone()),
    };
    let inaccessible = |what: String| {
        let r = host.run_as.as_ref()?;
        Some(config::Invalid::new(
            field,
            format!("{what}, and cells started by root run as account {} ({})", host.user, r.field),
            format!(
                "give the worktree to that account (chown -R {u} {given}), pick a worktree it can write, or set {f} \
                 to the account that owns it",
                u = host.user,
                f = r.field
            ),
        ))
    };
    let real = crate::sys::canonical_utf8(&given).map_err(|e| {
        let denied = e.kind() == std::io::ErrorKind::PermissionDenied;
        denied.then(|| inaccessible(format!("worktree {given} cannot be used: {e}"))).flatten().unwrap_or_else(|| {
            config::Invalid::new(
                field,
                format!("worktree {given} cannot be used: {e}"),
                "create the directory or point --workdir at an existing one",
            )
        })
    })?;
    if !real.is_dir() {
        return Err(config::Invalid::new(
            field,
            format!("worktree {real} is not a directory"),
            "point it at a directory",
        )
        .into());
    }
    if let Some(system) = system_directory(&real) {
        return Err(config::Invalid::new(
            field,
            if system == real {
                format!("worktree {real} is a system directory of the host, which cannot be a worktree (it would be the cell's to write)")
            } else {
                format!("worktree {real} lies in {system}, a system directory of the host, which cannot hold a worktree (it would be the cell's to write)")
            },
            "run cell from a project directory, or point --workdir (or worktree.path) at one",
        )
        .into());
    }
    let home = crate::sys::canonical_utf8(&host.home).unwrap_or_else(|_| host.home.clone());
    let broad = home.starts_with(&real);
    if broad && !(overrides.allow_broad_worktree || cell.worktree.allow_broad) {
        return Err(config::Invalid::new(
            field,
            format!("worktree {real} is `/`, your home directory or one of its parents, which would expose all of it read-write"),
            "run cell from a project directory, or pass --allow-broad-worktree (or set worktree.allowBroad) if you really mean it",
        )
        .into());
    }
    let access = nix::unistd::AccessFlags::R_OK | nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK;
    if let Err(e) = nix::unistd::access(real.as_std_path(), access) {
        if let Some(err) = inaccessible(format!("account {} cannot read and write worktree {real} ({e})", host.user)) {
            return Err(err.into());
        }
    }
    Ok(real)
}

/// The system directory `real` (links resolved) is or lies in, if any: never a worktree.
/// The trees of `/etc`, `/bin`, `/sbin`, `/lib*`, `/boot`, `/proc`, `/sys`, `/dev`, the
/// system parts of `/usr` and `/nix/store` hold nothing but the host's own files; `/usr`,
/// `/var`, `/run`, `/nix`, `/opt` and `/srv` themselves are refused, while a project below
/// them (`/var/lib/cell/project`, `/usr/local/src/x`) is fine.
fn system_directory(real: &Utf8Path) -> Option<Utf8PathBuf> {
    const TREES: [&str; 13] = [
        "/etc",
        "/bin",
        "/sbin",
        "/boot",
        "/proc",
        "/sys",
        "/dev",
        "/usr/bin",
        "/usr/sbin",
        "/usr/libexec",
        "/usr/share",
        "/usr/include",
        "/nix/store",
    ];
    const DIRS: [&str; 7] = ["/usr", "/var", "/run", "/nix", "/opt", "/srv", "/usr/local"];
    let mut parts = real.components().skip(1);
    let first = parts.next().map(|c| c.as_str()).unwrap_or_default();
    let second = parts.next().map(|c| c.as_str());
    let lib = |name: &str| name.starts_with("lib");
    if lib(first) || (first == "usr" && second.is_some_and(lib)) {
        let top = if first == "usr" { format!("/usr/{}", second.unwrap_or_default()) } else { format!("/{first}") };
        return Some(top.into());
    }
    TREES
        .iter()
        .find(|t| within(real.as_str(), t))
        .or_else(|| DIRS.iter().find(|d| real == **d))
        .map(|d| Utf8PathBuf::from(*d))
}

/// Read-only system directories of the host, in the form bubblewrap needs, and copies of
/// its small `/etc` files (see [`host_etc`]).
fn host_system_mounts(seen: &mut Seen) -> (Vec<Mount>, Vec<DataFile>) {
    let mut top: Vec<String> = vec!["/usr".into(), "/bin".into(), "/sbin".into()];
    let listed = seen.stat(Utf8Path::new("/")).and_then(|_| std::fs::read_dir("/"));
    if let Ok(entries) = listed {
        let mut libs: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("lib"))
            .map(|n| format!("/{n}"))
            .collect();
        libs.sort();
        top.extend(libs);
    }
    top.push("/nix/store".into());
    top.push("/run/current-system".into());
    let mut out = Vec::new();
    for p in top {
        let path = Utf8PathBuf::from(p);
        match seen.lstat(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                if let Ok(target) = seen.read_link(&path) {
                    if let Ok(target) = Utf8PathBuf::from_path_buf(target) {
                        out.push(Mount::Symlink { target, dst: path });
                    }
                }
            }
            Ok(m) if m.is_dir() => out.push(Mount::RoBind { src: path.clone(), dst: path }),
            _ => {}
        }
    }
    let mut copies = Vec::new();
    // Files of /etc that programs need; binds follow symlinks (NixOS links /etc into the store).
    // The loader's cache is binary: bound, never read to see whether it could be copied.
    if seen.stat(Utf8Path::new("/etc/ld.so.cache")).is_ok() {
        out.push(Mount::RoBind { src: "/etc/ld.so.cache".into(), dst: "/etc/ld.so.cache".into() });
    }
    for p in [
        "/etc/alternatives",
        "/etc/ld.so.conf",
        "/etc/ld.so.conf.d",
        "/etc/fonts",
        "/etc/localtime",
        "/etc/ssl/certs",
        "/etc/ssl/openssl.cnf",
        "/etc/ca-certificates",
        "/etc/pki",
        "/etc/terminfo",
        "/etc/static",
        // The shell-wide startup files and completions of the host (bash-completion itself
        // lies under /usr).
        "/etc/profile",
        "/etc/profile.d",
        "/etc/inputrc",
        "/etc/bash_completion",
        "/etc/bash_completion.d",
    ] {
        host_etc(seen, Utf8Path::new(p), Utf8Path::new(p), &mut out, &mut copies);
    }
    // The cell's own shell-wide bashrc (generated) sources the host's from `<path>.host`.
    for rc in system_bashrcs(|p| seen.stat(Utf8Path::new(p)).is_ok()) {
        host_etc(seen, Utf8Path::new(rc), Utf8Path::new(&format!("{rc}.host")), &mut out, &mut copies);
    }
    (out, copies)
}

/// Largest host `/etc` file copied into the cell instead of bound.
const COPIED_ETC_MAX: u64 = 64 << 10;

/// How host file `src` appears at `dst` in the cell, with as few mounts as it allows (each
/// costs bubblewrap 0.8–0.11 a mount and a re-read of `/proc/self/mountinfo`): a small text
/// file is copied (a plain write on bubblewrap's root, read-only once the root is remounted),
/// a link into `/usr` becomes the same link, anything else (a directory, a binary file such
/// as `ld.so.cache`) is bound read-only. A copy is what the file held at launch.
fn host_etc(seen: &mut Seen, src: &Utf8Path, dst: &Utf8Path, mounts: &mut Vec<Mount>, copies: &mut Vec<DataFile>) {
    let Ok(own) = seen.lstat(src) else { return };
    let meta = if own.file_type().is_symlink() {
        let Ok(meta) = seen.stat(src) else { return };
        if let Ok(target) = seen.read_link(src) {
            if let Ok(target) = Utf8PathBuf::from_path_buf(target) {
                if within(target.as_str(), "/usr") && !target.as_str().contains("/../") && seen.stat(&target).is_ok() {
                    mounts.push(Mount::Symlink { target, dst: dst.to_owned() });
                    return;
                }
            }
        }
        meta
    } else {
        own
    };
    if meta.is_file() && meta.len() <= COPIED_ETC_MAX {
        if let Some(contents) = read_small_text(seen, src) {
            copies.push(DataFile { dst: dst.to_owned(), contents });
            return;
        }
    }
    // A directory of more than one block is no small directory (and reading a large
    // indexed one costs more than its bind).
    if meta.is_dir() && meta.len() <= COPIED_DIR_SIZE {
        let mut tree = (Vec::new(), Vec::new(), 0);
        if replicate(seen, src, dst, &mut tree) {
            mounts.extend(tree.0);
            copies.extend(tree.1);
            return;
        }
    }
    mounts.push(Mount::RoBind { src: src.to_owned(), dst: dst.to_owned() });
}

/// Most entries of a host `/etc` directory that is copied instead of bound.
const COPIED_DIR_ENTRIES: usize = 16;

/// Largest size (as `stat` reports it) of a host `/etc` directory that is copied.
const COPIED_DIR_SIZE: u64 = 4096;

/// Copies a small host directory `src` (at most [`COPIED_DIR_ENTRIES`] entries in all, only
/// directories, links and small text files) to `dst` on bubblewrap's root: each directory a
/// `--dir`, each link the same link, each file a copy. `false` (and nothing to use) for
/// anything else, which is then bound. The tree is listed first (directory entries only, no
/// `stat`), so a directory too large to copy costs no file reads.
fn replicate(seen: &mut Seen, src: &Utf8Path, dst: &Utf8Path, tree: &mut (Vec<Mount>, Vec<DataFile>, usize)) -> bool {
    let mut entries = Vec::new();
    if !survey(seen, src, Utf8Path::new(""), &mut entries) {
        return false;
    }
    tree.0.push(Mount::Dir { dst: dst.to_owned() });
    for (rel, kind) in entries {
        tree.2 += 1;
        if tree.2 > COPIED_DIR_ENTRIES {
            return false;
        }
        let (from, to) = (src.join(&rel), dst.join(&rel));
        match kind {
            Entry::Link => {
                let Ok(target) = seen.read_link(&from) else { return false };
                let Ok(target) = Utf8PathBuf::from_path_buf(target) else { return false };
                tree.0.push(Mount::Symlink { target, dst: to });
            }
            Entry::Dir => tree.0.push(Mount::Dir { dst: to }),
            Entry::File => {
                let Some(contents) = read_small_text(seen, &from) else { return false };
                tree.1.push(DataFile { dst: to, contents });
            }
        }
    }
    true
}

/// What a directory entry is, as its listing says.
enum Entry {
    Dir,
    Link,
    File,
}

/// Lists `root/rel` recursively into `out` (sorted, parents first), by directory entries
/// alone; `false` past [`COPIED_DIR_ENTRIES`] entries or on anything but directories, links
/// and regular files.
fn survey(seen: &mut Seen, root: &Utf8Path, rel: &Utf8Path, out: &mut Vec<(Utf8PathBuf, Entry)>) -> bool {
    let dir = root.join(rel);
    let Ok(listing) = seen.stat(&dir).and_then(|_| dir.read_dir_utf8()) else { return false };
    let mut here = Vec::new();
    for e in listing {
        let Ok(e) = e else { return false };
        let Ok(ft) = e.file_type() else { return false };
        let kind = if ft.is_symlink() {
            Entry::Link
        } else if ft.is_dir() {
            Entry::Dir
        } else if ft.is_file() {
            Entry::File
        } else {
            return false;
        };
        here.push((rel.join(e.file_name()), kind));
        if out.len() + here.len() > COPIED_DIR_ENTRIES {
            return false;
        }
    }
    here.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, kind) in here {
        let dir = matches!(kind, Entry::Dir).then(|| path.clone());
        out.push((path, kind));
        if let Some(d) = dir {
            if !survey(seen, root, &d, out) {
                return false;
            }
        }
    }
    true
}

/// A text file of at most [`COPIED_ETC_MAX`] bytes: one open, the reads, one close.
fn read_small_text(seen: &mut Seen, p: &Utf8Path) -> Option<String> {
    use std::io::Read as _;
    let limit = usize::try_from(COPIED_ETC_MAX).unwrap_or(usize::MAX);
    let mut buf = Vec::with_capacity(8192);
    seen.stat(p).ok()?;
    std::fs::File::open(p).ok()?.take(COPIED_ETC_MAX + 1).read_to_end(&mut buf).ok()?;
    if buf.len() > limit {
        return None;
    }
    String::from_utf8(buf).ok()
}

fn bind_mount(field: &str, b: &BindConfig) -> Result<Option<Mount>, PlanError> {
    let dst = b.dst.clone().unwrap_or_else(|| b.src.clone());
    match std::fs::metadata(&b.src) {
        Ok(_) => {}
        Err(_) if b.optional => return Ok(None),
        // A --bind has no optional form: only a config bind does.
        Err(e) if field == "--bind" => {
            return Err(config::Invalid::new(
                field,
                format!("bind source {} cannot be used: {e}", b.src),
                "create it or drop the flag (a bind that may be missing belongs in the config's `binds`, with \"optional\": true)",
            )
            .into())
        }
        Err(e) => {
            return Err(config::Invalid::new(
                format!("{field}.src"),
                format!("bind source {} cannot be used: {e}", b.src),
                "create it, fix the path, or mark the bind optional (\"optional\": true)",
            )
            .into())
        }
    }
    Ok(Some(match b.mode {
        BindMode::Ro => Mount::RoBind { src: b.src.clone(), dst },
        BindMode::Rw => Mount::Bind { src: b.src.clone(), dst },
    }))
}

/// Later mounts at the same destination replace earlier ones; parents come before children.
fn order_mounts(mounts: Vec<Mount>) -> Vec<Mount> {
    let mut last: std::collections::HashMap<Utf8PathBuf, usize> =
        std::collections::HashMap::with_capacity(mounts.len());
    for (i, m) in mounts.iter().enumerate() {
        last.insert(m.dst().to_owned(), i);
    }
    let mut out: Vec<Mount> =
        mounts.into_iter().enumerate().filter(|(i, m)| last.get(m.dst()) == Some(i)).map(|(_, m)| m).collect();
    out.sort_by_cached_key(|m| depth(m.dst().as_str()));
    out
}

/// Number of components of an absolute, normalised path.
fn depth(p: &str) -> usize {
    p.split('/').filter(|c| !c.is_empty()).count()
}

/// Whether `path` is `dir` or lies below it (both absolute and normalised).
pub(crate) fn within(path: &str, dir: &str) -> bool {
    dir == "/" || path == dir || (path.starts_with(dir) && path.as_bytes().get(dir.len()) == Some(&b'/'))
}

/// The shell-wide startup files of bash: Debian's reads `/etc/bash.bashrc`, NixOS's (and
/// Fedora's `~/.bashrc`) `/etc/bashrc`.
const SYSTEM_BASHRCS: [&str; 2] = ["/etc/bash.bashrc", "/etc/bashrc"];

/// The shell-wide bashrc files a cell gets its own of: each one the host has (the host's is
/// bound at `<path>.host` and sourced from it), or Debian's when the host has neither.
fn system_bashrcs(mut exists: impl FnMut(&str) -> bool) -> Vec<&'static str> {
    let present: Vec<&'static str> = SYSTEM_BASHRCS.into_iter().filter(|p| exists(p)).collect();
    if present.is_empty() {
        vec![SYSTEM_BASHRCS[0]]
    } else {
        present
    }
}

/// The cell's shell-wide bashrc at `rc`: the host's (bound at `rc.host`), then the mark
/// `(cell:NAME) ` in front of the prompt. A prompt set later (the user's `~/.bashrc`) gets
/// it too: `PROMPT_COMMAND` prepends it before each prompt when it is missing. `name` is a
/// checked cell name (a-z, 0-9, `-`, `_`), safe in the quotes.
fn bashrc(name: &str, rc: &str) -> String {
    format!(
        "# Generated by cell: the host's shell-wide startup file, then the cell's mark in the prompt.\n\
         if [ -r {rc}.host ]; then . {rc}.host; fi\n\
         __cell_mark() {{ case \"$PS1\" in ''|'(cell:{name}) '*) ;; *) PS1='(cell:{name}) '\"$PS1\" ;; esac; }}\n\
         __cell_mark\n\
         case \";${{PROMPT_COMMAND-}};\" in *';__cell_mark;'*) ;; *) PROMPT_COMMAND=\"__cell_mark${{PROMPT_COMMAND:+;$PROMPT_COMMAND}}\" ;; esac\n"
    )
}

fn etc_files(user: &CellUser, hostname: &str, name: &str, shell: &str) -> Vec<DataFile> {
    let file = |dst: &str, contents: String| DataFile { dst: dst.into(), contents };
    vec![
        file(
            "/etc/passwd",
            format!(
                "root:x:0:0:root:/root:/usr/sbin/nologin\n{n}:x:{u}:{g}:cell user:{h}:{shell}\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
                n = user.name,
                u = user.uid,
                g = user.gid,
                h = user.home
            ),
        ),
        file(
            "/etc/group",
            format!("root:x:0:\n{n}:x:{g}:\nnogroup:x:65534:\n", n = user.name, g = user.gid),
        ),
        file("/etc/hostname", format!("{hostname}\n")),
        file(
            "/etc/hosts",
            format!("127.0.0.1 localhost {hostname}\n::1 localhost ip6-localhost ip6-loopback\n"),
        ),
        file(
            "/etc/nsswitch.conf",
            "passwd: files\ngroup: files\nshadow: files\nhosts: files\nnetworks: files\nprotocols: files\nservices: files\n"
                .to_owned(),
        ),
        file(
            "/etc/resolv.conf",
            "# cell: there is no resolver inside a cell; names are resolved by the egress proxy.\n".to_owned(),
        ),
    ]
    .into_iter()
    .chain(system_bashrcs(|p| Utf8Path::new(p).exists()).into_iter().map(|rc| file(rc, bashrc(name, rc))))
    .collect()
}

fn environment(
    cell: &CellConfig,
    host: &HostEnv,
    user: &CellUser,
    name: &str,
    shell: &str,
    cwd: &Utf8Path,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for (k, v) in &host.vars {
        if PASSED_ENV.contains(&k.as_str()) || k.starts_with("LC_") || cell.pass_env.contains(k) {
            env.insert(k.clone(), v.clone());
        }
    }
    let path = cell.path.clone().unwrap_or_else(|| DEFAULT_PATH.iter().map(|s| (*s).to_owned()).collect());
    env.insert("PATH".into(), path.join(":"));
    env.insert("HOME".into(), user.home.to_string());
    env.insert("USER".into(), user.name.clone());
    env.insert("LOGNAME".into(), user.name.clone());
    env.insert("SHELL".into(), shell.to_owned());
    env.insert("CELL_NAME".into(), name.to_owned());
    for (k, v) in &cell.env {
        env.insert(k.clone(), v.clone());
    }
    // bubblewrap sets PWD to its --chdir directory whatever we pass.
    env.insert("PWD".into(), cwd.to_string());
    env
}

/// The bubblewrap command line of `plan`, with its `/etc` directory as [`Plan::etc`] says
/// (see [`Plan::set_argv`]).
#[must_use]
pub fn bwrap_argv(plan: &Plan) -> Vec<String> {
    let mut a: Vec<String> = vec![plan.tools.bwrap.to_string()];
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| (*s).to_owned()));
    push(&ISOLATION);
    push(&["--as-pid-1"]);
    let fds = plan.descriptors();
    let uid = plan.user.uid.to_string();
    let gid = plan.user.gid.to_string();
    let status = fds.status().to_string();
    push(&["--uid", &uid, "--gid", &gid, "--hostname", &plan.hostname, "--json-status-fd", &status]);
    if plan.disable_userns {
        push(&["--disable-userns"]);
    }
    for fd in fds.seccomp() {
        push(&["--add-seccomp-fd", &fd.to_string()]);
    }
    let etc = plan.etc.as_ref();
    let mut etc_bound = false;
    for m in &plan.mounts {
        if let Some(tree) = etc {
            // The directory goes over /etc before anything below it; what it holds is not
            // asked of bubblewrap, what is mounted below it is (onto its mount points).
            if !etc_bound && m.dst().starts_with("/etc") {
                push(&["--ro-bind", tree.dir.as_str(), "/etc"]);
                etc_bound = true;
            }
            if tree.holds(m) {
                continue;
            }
        }
        match m {
            Mount::RoBind { src, dst } => push(&["--ro-bind", src.as_str(), dst.as_str()]),
            Mount::Bind { src, dst } => push(&["--bind", src.as_str(), dst.as_str()]),
            Mount::Symlink { target, dst } => push(&["--symlink", target.as_str(), dst.as_str()]),
            Mount::Tmpfs { dst, size: None } => push(&["--tmpfs", dst.as_str()]),
            Mount::Tmpfs { dst, size: Some(bytes) } => push(&["--size", &bytes.to_string(), "--tmpfs", dst.as_str()]),
            Mount::Dir { dst } => push(&["--dir", dst.as_str()]),
            Mount::Dev { dst } => push(&["--dev", dst.as_str()]),
            Mount::Proc { dst } => {
                // bubblewrap covers /proc/sysrq-trigger, /proc/irq and /proc/bus read-only
                // itself whenever its setup could write them, but never /proc/sys (the
                // kernel answers EACCES to a write check on that directory, whoever asks),
                // so a cell whose user maps to host uid 0 could set kernel.core_pattern.
                // The source is the host's /proc/sys: every sysctl there answers for the
                // namespaces of the process that reads it, so the cell still sees its own
                // hostname, network and user-namespace values.
                let sys = dst.join("sys");
                push(&["--proc", dst.as_str(), "--ro-bind", "/proc/sys", sys.as_str()]);
            }
            Mount::Data { dst, .. } | Mount::InitSpec { dst } => {
                let fd = match m {
                    Mount::Data { index, .. } => plan.file_fd(*index),
                    _ => fds.spec(),
                };
                // A file on bubblewrap's own root (a tmpfs made read-only by the final
                // `--remount-ro /`) needs no mount of its own: `--file` just writes it, which
                // spares a mount and a re-read of /proc/self/mountinfo per file. Anywhere
                // else (under /run, a bind, the worktree) it stays a read-only mount.
                // A `--dir` is on the root too.
                let on_root = !plan
                    .mounts
                    .iter()
                    .any(|o| !(o.is_generated() || matches!(o, Mount::Dir { .. })) && dst.starts_with(o.dst()));
                let how = if on_root { "--file" } else { "--ro-bind-data" };
                push(&["--perms", "0444", how, &fd.to_string(), dst.as_str()]);
            }
        }
    }
    // Everything else cell-init needs (the command, its environment, the fragments,
    // bridges, refusals and job descriptor) is in its spec.
    push(&["--remount-ro", "/", "--chdir", plan.cwd.as_str(), "--", INIT_PATH, "--spec", SPEC_FILE]);
    a
}

/// The isolation every cell gets: all namespaces, tied to its parent, a new session (the
/// TIOCSTI defence), no capabilities. `cell doctor`'s probe uses the same flags.
pub const ISOLATION: [&str; 10] = [
    "--unshare-user",
    "--unshare-ipc",
    "--unshare-pid",
    "--unshare-net",
    "--unshare-uts",
    "--unshare-cgroup",
    "--die-with-parent",
    "--new-session",
    "--cap-drop",
    "ALL",
];

/// The file system as the cell will see it, answered from the mount list and the host.
struct View<'m> {
    mounts: &'m [Mount],
}

enum Node {
    /// Backed by this host path.
    Host(Utf8PathBuf),
    /// A symlink made by the plan.
    Link(Utf8PathBuf),
    /// A directory that exists only because something is mounted below it, or a fresh tmpfs.
    Synthetic,
    /// Nothing there.
    Missing,
}

impl View<'_> {
    fn node(&self, inside: &Utf8Path) -> Node {
        // Mounts are ordered parents first, so the last one containing the path is the
        // deepest.
        let p = inside.as_str();
        let best = self.mounts.iter().rev().find(|m| within(p, m.dst().as_str()));
        match best {
            Some(Mount::RoBind { src, dst } | Mount::Bind { src, dst }) => {
                let rest = inside.strip_prefix(dst).unwrap_or(Utf8Path::new(""));
                Node::Host(if rest.as_str().is_empty() { src.clone() } else { src.join(rest) })
            }
            Some(Mount::Symlink { target, dst }) if dst == inside => Node::Link(target.clone()),
            Some(Mount::Tmpfs { dst, .. } | Mount::Dir { dst } | Mount::Dev { dst } | Mount::Proc { dst })
                if dst == inside =>
            {
                Node::Synthetic
            }
            _ if self.mounts.iter().any(|m| m.dst() != inside && within(m.dst().as_str(), p)) => Node::Synthetic,
            _ => Node::Missing,
        }
    }

    /// Resolves an inside path to the host file behind it, following symlinks as the cell would.
    fn resolve(&self, inside: &Utf8Path) -> Option<Utf8PathBuf> {
        let mut pending: Vec<String> = crate::sys::normal_components(inside);
        pending.reverse();
        let mut cur = Utf8PathBuf::from("/");
        let mut host: Option<Utf8PathBuf> = None;
        let mut hops = 0;
        while let Some(comp) = pending.pop() {
            let next = cur.join(&comp);
            let target = match self.node(&next) {
                Node::Missing => return None,
                Node::Synthetic => {
                    host = None;
                    cur = next;
                    continue;
                }
                Node::Link(t) => t,
                Node::Host(h) => match std::fs::symlink_metadata(&h) {
                    // Not there yet (a fresh cell home, say), but something is mounted
                    // below it: bubblewrap creates the directories.
                    Err(_)
                        if self.mounts.iter().any(|m| m.dst() != next && within(m.dst().as_str(), next.as_str())) =>
                    {
                        host = None;
                        cur = next;
                        continue;
                    }
                    Err(_) => return None,
                    Ok(m) if m.file_type().is_symlink() => {
                        Utf8PathBuf::from_path_buf(std::fs::read_link(&h).ok()?).ok()?
                    }
                    Ok(_) => {
                        host = Some(h);
                        cur = next;
                        continue;
                    }
                },
            };
            hops += 1;
            if hops > 40 {
                return None;
            }
            let base = if target.is_absolute() { target } else { cur.join(target) };
            let mut rest = crate::sys::normal_components(&base);
            rest.reverse();
            pending.extend(rest);
            cur = Utf8PathBuf::from("/");
        }
        host
    }

    /// The host path of an executable regular file at `inside`, if there is one.
    fn executable(&self, inside: &Utf8Path) -> Option<Utf8PathBuf> {
        let host = self.resolve(inside)?;
        let meta = std::fs::metadata(&host).ok()?;
        (meta.is_file() && meta.permissions().mode() & 0o111 != 0).then_some(host)
    }

    /// The interpreter `host` needs (ELF loader or `#!` program) when it is not visible
    /// inside the cell.
    fn missing_interpreter(&self, host: &Utf8Path) -> Option<Utf8PathBuf> {
        let interp = interpreter(host)?;
        self.resolve(&interp).is_none().then_some(interp)
    }

    /// Checks that the command and `cell-init` can be executed inside the cell: found,
    /// executable, and their interpreters visible. Returns where a `PATH` search found the
    /// command inside the cell (`None` when it was given as a path).
    fn check_runnable(
        &self,
        command: &str,
        path: &str,
        cwd: &Utf8Path,
        init: &Utf8Path,
    ) -> Result<Option<Utf8PathBuf>, PlanError> {
        let (inside, found) = self.find_command(command, path, cwd)?;
        let fix = "bind the directory that holds it (`binds`, --bind) or turn `hostSystem` on";
        if let Some(interp) = self.missing_interpreter(&found) {
            return Err(PlanError::InterpreterMissing {
                what: "command",
                program: command.to_owned(),
                interpreter: interp.to_string(),
                fix,
            });
        }
        if let Some(interp) = self.missing_interpreter(init) {
            return Err(PlanError::InterpreterMissing {
                what: "cell-init",
                program: init.to_string(),
                interpreter: interp.to_string(),
                fix,
            });
        }
        Ok(inside)
    }

    /// The command's host file, and its path inside the cell when a `PATH` search found it.
    fn find_command(
        &self,
        command: &str,
        path: &str,
        cwd: &Utf8Path,
    ) -> Result<(Option<Utf8PathBuf>, Utf8PathBuf), PlanError> {
        let not_found = |searched: String| PlanError::CommandNotFound { command: command.to_owned(), searched };
        if command.contains('/') {
            let inside = cwd.join(command);
            return self.executable(&inside).map(|h| (None, h)).ok_or_else(|| not_found(inside.to_string()));
        }
        path.split(':')
            .filter(|d| d.starts_with('/'))
            .find_map(|d| {
                let inside = Utf8Path::new(d).join(command);
                self.executable(&inside).map(|h| (Some(inside), h))
            })
            .ok_or_else(|| not_found(format!("PATH={path}")))
    }
}

/// The program interpreter an executable names: `PT_INTERP` of a 64-bit little-endian ELF
/// file, or the first word of a `#!` line. `None` when there is none or it cannot be read.
fn interpreter(host: &Utf8Path) -> Option<Utf8PathBuf> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut f = std::fs::File::open(host).ok()?;
    // One read for the headers: an ELF file's program headers and interpreter name lie in
    // its first page (where they do not, they are read from their offsets).
    let mut page = vec![0u8; 4096];
    let mut n = 0;
    while n < page.len() {
        match f.read(&mut page[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return None,
        }
    }
    page.truncate(n);
    let head = &page[..];
    if let Some(rest) = head.strip_prefix(b"#!") {
        let line = rest.split(|b| *b == b'\n').next()?;
        let word = std::str::from_utf8(line).ok()?.split_whitespace().next()?;
        return word.starts_with('/').then(|| Utf8PathBuf::from(word));
    }
    if n < 64 || !head.starts_with(b"\x7fELF") || head[4] != 2 || head[5] != 1 {
        return None;
    }
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
    // `len` bytes at `off`: from the first page, else read.
    let mut bytes = |off: u64, len: usize| -> Option<Vec<u8>> {
        let start = usize::try_from(off).ok()?;
        if let Some(b) = page.get(start..start.checked_add(len)?) {
            return Some(b.to_vec());
        }
        let mut buf = vec![0u8; len];
        f.seek(SeekFrom::Start(off)).ok()?;
        f.read_exact(&mut buf).ok()?;
        Some(buf)
    };
    let phoff = u64_at(head, 0x20);
    let phentsize = u64::from(u16_at(head, 0x36));
    let phnum = u64::from(u16_at(head, 0x38));
    for i in 0..phnum.min(64) {
        let ph = bytes(phoff + i * phentsize, 56)?;
        if u32::from_le_bytes([ph[0], ph[1], ph[2], ph[3]]) == 3 {
            let (off, size) = (u64_at(&ph, 8), u64_at(&ph, 32));
            let buf = bytes(off, usize::try_from(size.min(4096)).ok()?)?;
            let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
            return std::str::from_utf8(&buf[..end]).ok().map(Utf8PathBuf::from);
        }
    }
    None
}

/// Plans for unit tests elsewhere.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// The built-in default cell for a user `alice` (uid 4242) in worktree `work`, with
    /// this test binary as `cell-init`.
    /// The host programs of a test plan: bwrap where Debian has it, this test binary as init.
    pub(crate) fn tools() -> Tools {
        Tools {
            bwrap: "/usr/bin/bwrap".into(),
            init: Utf8PathBuf::from_path_buf(std::env::current_exe().unwrap()).unwrap(),
            sidecars: BTreeMap::new(),
            disable_userns: true,
        }
    }

    pub(crate) fn builtin_plan(work: &Utf8Path) -> Plan {
        let host = HostEnv {
            vars: BTreeMap::new(),
            uid: 4242,
            gid: 4242,
            user: "alice".into(),
            home: "/home/alice".into(),
            cwd: work.to_owned(),
            run_as: None,
        };
        let config = config::parse(config::BUILTIN_CONFIG, "builtin").unwrap();
        let (name, cell) = select_cell(&config, &ConfigSource::Builtin, None).unwrap();
        let tools = tools();
        build(&name, cell, &ConfigSource::Builtin, &Overrides::default(), &host, &tools).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two words after `flag` at each place it appears in `argv`.
    fn after_pair<'a>(argv: &'a [String], flag: &str) -> Vec<(&'a str, &'a str)> {
        argv.windows(3).filter(|w| w[0] == flag).map(|w| (w[1].as_str(), w[2].as_str())).collect()
    }

    /// The descriptor after `flag` at each place it appears in `argv`, with the word after it.
    fn after<'a>(argv: &'a [String], flag: &str) -> Vec<(i32, &'a str)> {
        argv.windows(3).filter(|w| w[0] == flag).map(|w| (w[1].parse().unwrap(), w[2].as_str())).collect()
    }

    #[test]
    fn bwrap_argv_and_the_spec_take_their_descriptors_from_the_table() {
        let work = tempfile::tempdir().unwrap();
        let work = Utf8PathBuf::from_path_buf(work.path().to_path_buf()).unwrap();
        let mut plan = testing::builtin_plan(&work);
        for terminal in [false, true] {
            plan.terminal = terminal;
            plan.argv = bwrap_argv(&plan);
            let fds = plan.descriptors();
            let status: Vec<i32> = after(&plan.argv, "--json-status-fd").iter().map(|(fd, _)| *fd).collect();
            assert_eq!(status, [fds.status()]);
            let seccomp: Vec<i32> =
                plan.argv.windows(2).filter(|w| w[0] == "--add-seccomp-fd").map(|w| w[1].parse().unwrap()).collect();
            assert_eq!(seccomp, fds.seccomp());
            assert_eq!(seccomp.len(), crate::host::seccomp::programs().len());
            let mut files: Vec<(i32, &str)> = after(&plan.argv, "--file");
            files.extend(after(&plan.argv, "--ro-bind-data"));
            files.sort_unstable();
            // The files of the cell's /etc directory need no descriptor; the directory is bound.
            let tree = plan.etc_tree().expect("the built-in cell has an /etc of its own");
            assert!(after_pair(&plan.argv, "--ro-bind").contains(&(tree.dir.as_str(), "/etc")), "{:?}", plan.argv);
            let mut expected: Vec<(i32, &str)> = plan
                .files
                .iter()
                .enumerate()
                .filter(|(i, _)| !tree.holds_file(*i))
                .map(|(i, f)| (plan.file_fd(i), f.dst.as_str()))
                .collect();
            assert!(plan.files.iter().enumerate().any(|(i, f)| tree.holds_file(i) && f.dst == "/etc/passwd"));
            expected.push((fds.spec(), SPEC_FILE));
            expected.sort_unstable();
            assert_eq!(files, expected);
            assert_eq!(plan.argv[plan.argv.len() - 3..], [INIT_PATH, "--spec", SPEC_FILE]);
            let job = plan.init_spec().job_fd;
            assert_eq!(job, fds.job());
            assert_eq!(job.is_some(), terminal);
            let mut all: Vec<i32> = status.into_iter().chain(seccomp).chain(files.iter().map(|(fd, _)| *fd)).collect();
            all.extend(job);
            let n = all.len();
            all.sort_unstable();
            all.dedup();
            assert_eq!(all.len(), n, "a descriptor is used twice: {all:?}");
        }
    }

    fn m_bind(src: &str, dst: &str) -> Mount {
        Mount::RoBind { src: src.into(), dst: dst.into() }
    }

    #[test]
    fn mounts_are_ordered_parents_first_and_deduplicated() {
        let ms = order_mounts(vec![
            m_bind("/a", "/x/y/z"),
            m_bind("/b", "/x"),
            Mount::Tmpfs { dst: "/x".into(), size: None },
            m_bind("/c", "/w"),
        ]);
        let dsts: Vec<&str> = ms.iter().map(|m| m.dst().as_str()).collect();
        assert_eq!(dsts, ["/x", "/w", "/x/y/z"]);
        assert_eq!(ms[0], Mount::Tmpfs { dst: "/x".into(), size: None });
    }

    #[test]
    fn builtin_default_binds_no_private_host_path() {
        use std::os::unix::fs::FileTypeExt as _;
        let work = tempfile::tempdir().unwrap();
        let work = Utf8PathBuf::from_path_buf(work.path().to_path_buf()).unwrap();
        let plan = testing::builtin_plan(&work);
        let tools = plan.tools.clone();
        let own = [plan.home.clone(), plan.worktree.clone(), tools.init.clone()];
        for m in &plan.mounts {
            let (Mount::RoBind { src, .. } | Mount::Bind { src, .. }) = m else { continue };
            if own.contains(src) {
                continue;
            }
            for private in
                ["/home", "/root", "/run/user", "/etc/shadow", "/etc/gshadow", "/var/run", "/run/docker.sock"]
            {
                assert!(!src.starts_with(private), "built-in default binds {src}");
            }
            let meta = std::fs::metadata(src).unwrap();
            assert!(!meta.file_type().is_socket(), "built-in default binds the socket {src}");
            assert!(matches!(m, Mount::RoBind { .. }), "system path {src} must be read-only");
        }
        assert_eq!(plan.network.mode, NetworkMode::None);
        assert!(plan.sidecars.is_empty() && plan.runtime_dir.is_none());
        assert_eq!(plan.user.uid, 4242);
        assert_eq!(plan.env.get("HOME").map(String::as_str), Some("/home/alice"));
    }

    #[test]
    fn a_plan_for_host_uid_0_is_refused() {
        let work = tempfile::tempdir().unwrap();
        let work = Utf8PathBuf::from_path_buf(work.path().to_path_buf()).unwrap();
        let config = config::parse(config::BUILTIN_CONFIG, "builtin").unwrap();
        let (name, cell) = select_cell(&config, &ConfigSource::Builtin, None).unwrap();
        let tools = testing::tools();
        for (uid, gid) in [(0, 0), (0, 4242), (4242, 0)] {
            let host = HostEnv {
                vars: BTreeMap::new(),
                uid,
                gid,
                user: "root".into(),
                home: "/root".into(),
                cwd: work.clone(),
                run_as: None,
            };
            let e = build(&name, cell, &ConfigSource::Builtin, &Overrides::default(), &host, &tools).unwrap_err();
            assert!(e.to_string().contains("never maps to host uid 0"), "{e}");
        }
    }

    #[test]
    fn small_host_directories_are_copied_and_others_bound() {
        let tmp = std::env::temp_dir().join(format!("cell-replicate-{}", std::process::id()));
        let src = Utf8PathBuf::from_path_buf(tmp.clone()).expect("utf-8");
        std::fs::create_dir_all(src.join("sub")).expect("mkdir");
        std::fs::write(src.join("a.conf"), "x\n").expect("write");
        std::os::unix::fs::symlink("/usr/share/x", src.join("l")).expect("symlink");
        let dst = Utf8Path::new("/etc/d");
        let (mut mounts, mut copies) = (Vec::new(), Vec::new());
        host_etc(&mut Seen::default(), &src, dst, &mut mounts, &mut copies);
        assert_eq!(
            mounts,
            vec![
                Mount::Dir { dst: "/etc/d".into() },
                Mount::Symlink { target: "/usr/share/x".into(), dst: "/etc/d/l".into() },
                Mount::Dir { dst: "/etc/d/sub".into() },
            ]
        );
        assert_eq!(copies, vec![DataFile { dst: "/etc/d/a.conf".into(), contents: "x\n".into() }]);
        // A binary file: the whole directory is bound.
        std::fs::write(src.join("sub/bin"), [0xffu8, 0xfe, 0]).expect("write");
        let (mut mounts, mut copies) = (Vec::new(), Vec::new());
        host_etc(&mut Seen::default(), &src, dst, &mut mounts, &mut copies);
        assert_eq!(mounts, vec![Mount::RoBind { src: src.clone(), dst: dst.into() }]);
        assert!(copies.is_empty());
        let _ = std::fs::remove_dir_all(&tmp);
    }

    #[test]
    fn interpreters_are_read_from_elf_and_scripts() {
        let me = Utf8PathBuf::from_path_buf(std::env::current_exe().unwrap()).unwrap();
        if cfg!(target_env = "musl") {
            // Rust's musl targets link statically: no loader.
            assert_eq!(interpreter(&me), None);
        } else {
            let loader = interpreter(&me).expect("a dynamically linked test binary names its loader");
            assert!(loader.as_str().contains("ld-linux") || loader.as_str().contains("ld-musl"), "{loader}");
        }
        let dir = tempfile::tempdir().unwrap();
        let script = Utf8Path::from_path(dir.path()).unwrap().join("s");
        std::fs::write(&script, "#!/usr/bin/env  bash -e\necho\n").unwrap();
        assert_eq!(interpreter(&script), Some("/usr/bin/env".into()));
        std::fs::write(&script, "plain text").unwrap();
        assert_eq!(interpreter(&script), None);
    }

    #[test]
    fn view_follows_plan_symlinks_and_host_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        let tool = root.join("usr/bin/tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("tool", root.join("usr/bin/alias")).unwrap();
        std::os::unix::fs::symlink("/usr/bin/tool", root.join("usr/bin/abs")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("usr/bin/outside")).unwrap();
        let mounts = vec![
            m_bind(root.join("usr").as_str(), "/usr"),
            Mount::Symlink { target: "usr/bin".into(), dst: "/bin".into() },
        ];
        let v = View { mounts: &mounts };
        assert_eq!(v.executable("/bin/tool".into()), Some(tool.clone()));
        assert_eq!(v.executable("/bin/alias".into()), Some(tool.clone()));
        assert_eq!(v.executable("/usr/bin/abs".into()), Some(tool));
        assert_eq!(v.executable("/usr/bin/outside".into()), None, "host /etc is not in the cell");
        assert_eq!(v.executable("/usr/bin/missing".into()), None);
        assert!(v.find_command("tool", "/nowhere:/bin", "/".into()).is_ok());
        assert!(matches!(v.find_command("nope", "/bin", "/".into()), Err(PlanError::CommandNotFound { .. })));
    }
}
