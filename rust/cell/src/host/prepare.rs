//! What every launch does before bubblewrap: a root launcher becomes its `runAs` account,
//! the configuration is read, the cell chosen and planned with the host's programs (none
//! from where the cell can write); and what it does after (the exit code, a host that cannot
//! isolate explained). `cell run`, the agents, `cell login` and `cell selftest` share it.

use std::fmt::Write as _;

use camino::{Utf8Path, Utf8PathBuf};
use clap::{Args, ValueEnum};

use crate::host::agents::AgentKind;
use crate::host::config::{self, BindConfig, BindMode, NetworkMode};
use crate::host::doctor;
use crate::host::hostenv::HostEnv;
use crate::host::launch::{self, Outcome};
use crate::host::plan::{self, Overrides, Plan, PlanError, Tools};

/// Options that shape a cell for one launch.
#[derive(Debug, Clone, Args)]
pub struct CellArgs {
    /// Cell to use (default: the config's `defaultCell`, the only cell, or `default`).
    #[arg(long, value_name = "NAME")]
    pub cell: Option<String>,
    /// Worktree: the directory bound read-write at its own path (default: current directory).
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<Utf8PathBuf>,
    /// Make a host path visible: SRC, SRC:DST, SRC:ro, SRC:DST:rw (read-only unless `rw`).
    #[arg(long = "bind", value_name = "SRC[:DST][:ro|rw]")]
    pub binds: Vec<String>,
    /// Network mode for this run: `none` (loopback only) or `proxy` (only through the
    /// egress proxy, only to the allowlist).
    #[arg(long, value_name = "MODE")]
    pub network: Option<NetworkArg>,
    /// Let the proxy through to HOST[:PORT] (or *.DOMAIN[:PORT]) for this run; implies
    /// `--network proxy`. Repeatable.
    #[arg(long = "allow", value_name = "HOST[:PORT]")]
    pub allow: Vec<String>,
    /// Reach the cell's 127.0.0.1:CELLPORT (default: HOSTPORT) from the host's
    /// 127.0.0.1:HOSTPORT while the cell runs, through a socket (never a route); works in
    /// either network mode. ADDRESS:HOSTPORT:CELLPORT listens on another host address
    /// (0.0.0.0: every interface, other machines too), with a warning. Repeatable.
    #[arg(long = "publish", value_name = "HOSTPORT[:CELLPORT]")]
    pub publish: Vec<String>,
    /// Allow `/`, your home directory or a parent of it as the worktree.
    #[arg(long)]
    pub allow_broad_worktree: bool,
    /// Share a display with the cell, for graphical programs such as the cell's browser:
    /// `auto` (Wayland when `$WAYLAND_DISPLAY` is set, else an error), `wayland`, `x11` (an
    /// X11 client can read and type into every window of the display), `none`. Default:
    /// none for run, shell and agents (only this flag gives them a display); for login,
    /// `$CELL_DISPLAY` or else auto.
    #[arg(long, value_enum, value_name = "DISPLAY")]
    pub display: Option<crate::host::display::Display>,
    /// Set the variable K to V in the cell for this run, over the config's `env`.
    /// Repeatable.
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Make the service listening on the host's 127.0.0.1:PORT reachable inside the cell at
    /// 127.0.0.1:PORT (that port alone, forwarded over a unix socket; no route), beside the
    /// config's `ports.host`. Repeatable.
    #[arg(long = "host-port", value_name = "PORT")]
    pub host_ports: Vec<u16>,
}

/// Network modes accepted on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum NetworkArg {
    /// Loopback only; nothing leaves the cell.
    None,
    /// Only through the egress proxy, only to the allowlist.
    Proxy,
}

impl From<NetworkArg> for NetworkMode {
    fn from(n: NetworkArg) -> Self {
        match n {
            NetworkArg::None => Self::None,
            NetworkArg::Proxy => Self::Proxy,
        }
    }
}

/// Parses `SRC[:DST][:ro|rw]`; relative sources are taken from the current directory.
///
/// # Errors
/// When the specification is malformed.
pub fn parse_bind(spec: &str, cwd: &camino::Utf8Path) -> Result<BindConfig, config::Invalid> {
    let field = format!("--bind {spec}");
    let mut parts: Vec<&str> = spec.split(':').collect();
    let mode = match parts.last() {
        Some(&"ro") if parts.len() > 1 => {
            parts.pop();
            BindMode::Ro
        }
        Some(&"rw") if parts.len() > 1 => {
            parts.pop();
            BindMode::Rw
        }
        _ => BindMode::Ro,
    };
    let (src, dst) = match parts.as_slice() {
        [src] if !src.is_empty() => (*src, None),
        [src, dst] if !src.is_empty() && !dst.is_empty() => (*src, Some(Utf8PathBuf::from(*dst))),
        _ => {
            return Err(config::Invalid::new(
                field,
                "malformed bind",
                "write SRC, SRC:DST, SRC:ro or SRC:DST:rw (paths cannot contain `:`)",
            ))
        }
    };
    let src = cwd.join(src);
    config::absolute(&field, &crate::sys::normalise(&src))?;
    if let Some(d) = &dst {
        config::absolute(&field, d)?;
    }
    Ok(BindConfig { src: crate::sys::normalise(&src), dst, mode, optional: false })
}

/// Parses `K=V` (a `--env`): a valid name, a value without NUL.
///
/// # Errors
/// When the name is not a variable name or `=` is missing.
pub fn parse_env(spec: &str) -> Result<(String, String), config::Invalid> {
    let field = format!("--env {spec}");
    let Some((k, v)) = spec.split_once('=') else {
        return Err(config::Invalid::new(field, "no `=` in the variable", "write K=V (an empty value is K=)"));
    };
    config::env_name(&field, k)?;
    if v.contains('\0') {
        return Err(config::Invalid::new(field, "the value contains a NUL byte", "drop the NUL byte"));
    }
    Ok((k.to_owned(), v.to_owned()))
}

/// What a subcommand adds to a launch beyond the cell options (`cell login`'s display).
#[derive(Debug, Clone, Default)]
pub(crate) struct Extra {
    /// Binds after the `--bind` ones.
    pub binds: Vec<BindConfig>,
    /// Variables over the cell's own.
    pub env: std::collections::BTreeMap<String, String>,
    /// A file the launch needs until it ends (the display's X11 cookie): held, not read;
    /// dropping the last clone removes it.
    #[expect(dead_code, reason = "a guard")]
    pub temp: Option<std::sync::Arc<crate::host::display::TempFile>>,
    /// `cell shell`: the cell's command (a shell by default), never its declared agent.
    pub shell: bool,
    /// A launcher's task instead of a command (`cell login`'s driver).
    pub task: Option<crate::contract::InitSpec>,
}

impl Extra {
    /// What `--display` adds (nothing without it).
    ///
    /// # Errors
    /// When the display cannot be shared.
    pub(crate) fn display(args: &CellArgs, host: &HostEnv) -> anyhow::Result<Self> {
        let Some(d) = args.display else { return Ok(Self::default()) };
        let display = crate::host::display::display_plan(d, host)?;
        Ok(Self { binds: display.binds, env: display.env, temp: display.temp, ..Self::default() })
    }
}

/// The cell a launch asks for. For an agent: `--cell`, else a cell named after it, else the
/// one cell running that kind (`None`: the config's default).
pub(crate) fn requested_cell(
    config: &config::ConfigFile,
    flag: Option<&str>,
    agent: Option<AgentKind>,
) -> Option<String> {
    flag.map(str::to_owned).or_else(|| {
        let kind = agent?;
        let by_name = kind.to_string();
        if config.cells.contains_key(&by_name) {
            return Some(by_name);
        }
        let mut of_kind = config.cells.iter().filter(|(_, c)| c.agent.as_ref().is_some_and(|a| a.kind == kind));
        match (of_kind.next(), of_kind.next()) {
            (Some((n, _)), None) => Some(n.clone()),
            _ => None,
        }
    })
}

/// The configuration of this launch: the one a root launcher read before it became the
/// cell's account, else the usual lookup.
///
/// # Errors
/// When it cannot be read or is invalid.
pub(crate) fn load_config(
    config: Option<&Utf8Path>,
    host: &HostEnv,
) -> Result<(config::ConfigSource, config::ConfigFile), PlanError> {
    if let Some(r) = &host.run_as {
        return Ok((r.config.0.clone(), r.config.1.clone()));
    }
    let source = host.config_source(config);
    let config = config::load(&source)?;
    Ok((source, config))
}

/// The host a cell is built from. For a caller other than root, the caller's own. A root
/// launcher reads and validates the configuration first, then becomes the cell's `runAs`
/// account (default `cell`) for good and looks at the host again as that account, so that
/// the cell's home, state and runtime directories are the account's and bubblewrap runs
/// unprivileged as it: a cell started by root is never root on the host. (Dropping once, in
/// the launcher, rather than asking bubblewrap for another uid: every later step, sidecars
/// included, then runs without root, and nothing the cell controls is ever touched as root.)
///
/// # Errors
/// [`PlanError`] when the configuration or the account is unusable; anything else when
/// dropping root fails.
pub(crate) fn cell_host(
    config: Option<&Utf8Path>,
    flag: Option<&str>,
    agent: Option<AgentKind>,
) -> anyhow::Result<HostEnv> {
    let host = HostEnv::capture()?;
    if !host.is_root() {
        return Ok(host);
    }
    let (source, config) = load_config(config, &host)?;
    let requested = requested_cell(&config, flag, agent);
    let (name, cell) = plan::select_cell(&config, &source, requested.as_deref())?;
    let account = crate::host::hostenv::run_as_account(&name, cell.run_as.as_deref()).map_err(PlanError::from)?;
    // Only root can make cgroups in v1 hierarchies: delegate a group to the account first.
    crate::host::limits::delegate_v1_as_root((account.uid.as_raw(), account.gid.as_raw()));
    let invoker_git = crate::host::hostenv::RunAs::read_invoker_git(&host);
    crate::host::hostenv::become_account(&account)?;
    let run_as = crate::host::hostenv::RunAs {
        field: format!("cells.{name}.runAs"),
        config: std::sync::Arc::new((source, config)),
        invoker_git,
    };
    crate::host::hostenv::HostEnv::for_account(&host, &account, run_as)
}

pub(crate) fn make_plan(
    config: Option<&Utf8Path>,
    args: &CellArgs,
    command: &[String],
    host: &HostEnv,
    agent: Option<&(AgentKind, Vec<String>)>,
    extra: &Extra,
) -> anyhow::Result<Plan> {
    let (source, config) = load_config(config, host)?;
    crate::timing::mark("config loaded");
    let requested = requested_cell(&config, args.cell.as_deref(), agent.map(|(k, _)| *k));
    let (name, cell) = plan::select_cell(&config, &source, requested.as_deref())?;
    // `cell run` without a command in a cell that declares an agent starts that agent
    // (`cell shell` and a launcher's task never do).
    let declared = match (agent, command.is_empty(), &cell.agent) {
        (None, true, Some(a)) if !extra.shell && extra.task.is_none() => Some((a.kind, Vec::new())),
        _ => None,
    };
    let agent = agent.or(declared.as_ref());
    let mut binds =
        args.binds.iter().map(|b| parse_bind(b, &host.cwd)).collect::<Result<Vec<_>, _>>().map_err(PlanError::from)?;
    binds.extend(extra.binds.iter().cloned());
    let mut env = std::collections::BTreeMap::new();
    for spec in &args.env {
        let (k, v) = parse_env(spec).map_err(PlanError::from)?;
        env.insert(k, v);
    }
    env.extend(extra.env.clone());
    let mut overrides = Overrides {
        workdir: args.workdir.clone(),
        binds,
        network: args.network.map(NetworkMode::from),
        allow: args.allow.clone(),
        allow_broad_worktree: args.allow_broad_worktree,
        command: command.to_vec(),
        agent: agent.cloned(),
        env,
        project_env: std::collections::BTreeMap::new(),
        publish: args
            .publish
            .iter()
            .map(|spec| crate::host::publish::parse(spec, &format!("--publish {spec}")))
            .collect::<Result<_, _>>()
            .map_err(PlanError::from)?,
        task: extra.task.clone(),
        host_ports: args.host_ports.clone(),
    };
    let proxied = match args.network {
        Some(n) => NetworkMode::from(n) == NetworkMode::Proxy,
        None => !args.allow.is_empty() || cell.network.effective_mode(agent.is_some()) == NetworkMode::Proxy,
    };
    let worktree = plan::worktree(cell, &overrides, host)?;
    crate::timing::mark("worktree");
    let project = crate::host::project::extend(&name, cell, &worktree, host, &mut overrides).map_err(project_error)?;
    crate::timing::mark("project");
    let proxied = proxied || project.as_ref().is_some_and(|p| !p.allow.is_empty());
    let mut plan = plan_with_tools(&name, cell, &source, &overrides, host, proxied)?;
    // Approvals matter once any cell lets projects add: then no cell may write them.
    if config.cells.values().any(|c| !c.project.is_default()) {
        crate::host::project::check_out_of_reach(&plan, host, project.as_ref())?;
    }
    plan.project = project.map(|p| crate::host::project::settle(p, &plan, &overrides.project_env));
    Ok(plan)
}

/// A bad project file is the user's to fix (exit 2), like a bad config.
fn project_error(e: anyhow::Error) -> anyhow::Error {
    match e.downcast::<config::Invalid>() {
        Ok(i) => PlanError::from(i).into(),
        Err(e) => e,
    }
}

/// Plans a launch with the host's programs, none of them from a place the cell can write:
/// bubblewrap is searched on `PATH` skipping the current directory and the cell homes, the
/// plan's writable mounts are then known and the search repeated without them, and
/// [`plan::check_tools`] refuses whatever still lies there (a `$CELL_BWRAP`, a `cell`
/// binary whose helpers sit beside it in the worktree). Only then is bubblewrap first run
/// (asked for its features).
///
/// # Errors
/// [`PlanError`] when the plan or a program's place is refused; anything else when a
/// program is missing.
pub(crate) fn plan_with_tools(
    name: &str,
    cell: &config::CellConfig,
    source: &config::ConfigSource,
    overrides: &Overrides,
    host: &HostEnv,
    proxied: bool,
) -> anyhow::Result<Plan> {
    // A launch of this cell that was killed left its worktree uncontained: contain it
    // before this plan reads what is there.
    for line in crate::host::containment::recover(host.state_home().join("cell").join(name).as_std_path()) {
        eprintln!("cell: {}", crate::sys::escape_controls(&line));
    }
    crate::timing::mark("recover");
    // After the recovery, which moves things: the plan sees one file system.
    let _memo = crate::sys::CanonicalMemo::start();
    let presumed = crate::host::tools::presumed_writable(host);
    let egress = if proxied { Some(crate::host::tools::find_egress(host)?) } else { None };
    let bwrap = crate::host::tools::find_bwrap(host, &presumed)?;
    let sidecars = egress.into_iter().map(|e| (crate::host::sidecars::egress::NAME.to_owned(), e)).collect();
    let tools = Tools { bwrap, init: crate::host::tools::find_init(host)?, sidecars, disable_userns: false };
    crate::timing::mark("tools found");
    let mut plan = plan::build(name, cell, source, overrides, host, &tools)?;
    crate::timing::mark("plan built");
    // What the command line depends on and may change below; anything else stays put.
    let built_with = (plan.tools.bwrap.clone(), plan.disable_userns);
    let mut skip = presumed;
    skip.extend(plan::writable_sources(&plan.mounts));
    plan.tools.bwrap = crate::host::tools::find_bwrap_again(host, &built_with.0, &skip)?;
    plan::check_tools(&plan)?;
    crate::timing::mark("tools checked");
    crate::host::sidecars::refuse_visible_runtime(&plan, host)?;
    crate::host::launch::refuse_nested_running(&plan)?;
    crate::timing::mark("runtime checked");
    plan.tools.disable_userns = crate::host::tools::bwrap_supports_disable_userns(&plan.tools.bwrap, host);
    plan.disable_userns = plan.tools.disable_userns;
    if (plan.tools.bwrap.clone(), plan.disable_userns) != built_with {
        plan.argv = plan::bwrap_argv(&plan);
    }
    Ok(plan)
}

/// Runs a plan: `Some(exit code)` when the cell ran, `None` when bubblewrap could not
/// build it (the host's checks are printed then).
///
/// # Errors
/// When the cell cannot be started at all.
pub(crate) fn run_plan(plan: &Plan, host: &HostEnv, early: Option<launch::Early>) -> anyhow::Result<Option<u8>> {
    let mark = crate::host::denials::Mark::new(plan);
    match launch::execute(plan, early)? {
        Outcome::Exited(code) => {
            // A failed command after denied connections: say which, and the fix.
            if let Some(line) = mark.filter(|_| code != 0).and_then(|m| m.summary()) {
                eprintln!("{line}");
            }
            Ok(Some(code))
        }
        Outcome::SetupFailed(code) => {
            let mut msg =
                format!("cell: bubblewrap could not build cell {:?} (exit {code}); this host's checks:\n", plan.cell);
            for c in doctor::run(host) {
                let _ = writeln!(msg, "  {}", c.to_string().replace('\n', "\n  "));
            }
            msg.push_str("cell never runs a command unsandboxed; fix the host and try again (`cell doctor` repeats these checks)");
            eprintln!("{msg}");
            Ok(None)
        }
    }
}
