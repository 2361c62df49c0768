//! The `cell` command line: arguments (clap derive), then validated into a plan.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use camino::Utf8PathBuf;
use clap::{Args, CommandFactory as _, Parser, Subcommand};

use crate::host::agents::AgentKind;
use crate::host::config::{self, NetworkMode};
use crate::host::doctor;
use crate::host::hostenv::HostEnv;
use crate::host::launch::{self, EXIT_CANNOT_START};
use crate::host::plan::{self, Mount, Plan, PlanError};
use crate::host::prepare::{self, CellArgs};

/// Exit code for usage and configuration errors.
pub const EXIT_USAGE: u8 = 2;

/// Run AI coding agents, or any command, in a bubblewrap sandbox (a cell) that sees only its
/// worktree and what the configuration declares.
///
/// The configuration is read from `--config FILE`, `$CELL_CONFIG`,
/// `$XDG_CONFIG_HOME/cell/config.json`, `/etc/cell/config.json`, or else the built-in default
/// (host system directories read-only, the current directory read-write, no network; an
/// agent gets its API and login hosts through the egress proxy).
///
/// Examples:
///   cell run -- make test           run a command in the default cell
///   cell shell                      an interactive shell in the cell
///   cell claude                     Claude Code, prompts off, the cell is the boundary
///   cell run --allow pypi.org -- pip download x    one extra host for this run
///   cell login --cell web           log in to sites in the cell's browser (for its agent)
///   cell plan --json -- make test   the exact sandbox, without running it
///   cell ps                         the running cells (`cell stop NAME` ends one)
///   cell du                         disk use of the cells' homes (`cell reset NAME` empties one)
///   cell doctor                     can this host build cells?
///   cell selftest                   attack your own cell with the escape catalog
#[derive(Debug, Parser)]
#[command(name = "cell", version, verbatim_doc_comment, max_term_width = 100)]
pub struct Cli {
    /// The options of every subcommand.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Cmd,
}

/// The options of every subcommand.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Configuration file to use instead of the usual lookup.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<Utf8PathBuf>,
}

impl Cli {
    /// Parses the process's arguments. A launch (`cell run`, `cell shell`, `cell AGENT`)
    /// is first parsed by a command line of just that subcommand: building clap's whole
    /// tree (every subcommand with its help) costs more than the rest of parsing. Anything
    /// that parser does not accept (help, a misspelled option, a usage error) is parsed
    /// again by the whole tree, so help and errors read exactly as they always do.
    #[must_use]
    pub fn from_args() -> Self {
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        Self::launch_only(&args).unwrap_or_else(|| Self::parse_from(&args))
    }

    /// `args` parsed by the command line of its launch subcommand alone; `None` when it is
    /// no launch or that parser refuses it.
    fn launch_only(args: &[std::ffi::OsString]) -> Option<Self> {
        use clap::FromArgMatches as _;
        let name = ["run", "shell", "claude", "codex", "gemini", "opencode"]
            .into_iter()
            .find(|n| args.get(1).is_some_and(|a| a == n))?;
        let sub = clap::Command::new(name);
        let sub = match name {
            "run" => RunArgs::augment_args(sub),
            "shell" => CellArgs::augment_args(sub),
            "claude" | "codex" | "gemini" | "opencode" => AgentArgs::augment_args(sub).disable_version_flag(true),
            _ => return None,
        };
        let root = Global::augment_args(clap::Command::new("cell")).version(env!("CARGO_PKG_VERSION")).subcommand(sub);
        let matches = root.try_get_matches_from(args).ok()?;
        let (_, m) = matches.subcommand()?;
        let command = match name {
            "run" => Cmd::Run(RunArgs::from_arg_matches(m).ok()?),
            "shell" => Cmd::Shell(CellArgs::from_arg_matches(m).ok()?),
            agent => {
                let a = AgentArgs::from_arg_matches(m).ok()?;
                match agent {
                    "claude" => Cmd::Claude(a),
                    "codex" => Cmd::Codex(a),
                    "gemini" => Cmd::Gemini(a),
                    _ => Cmd::Opencode(a),
                }
            }
        };
        Some(Self { global: Global::from_arg_matches(&matches).ok()?, command })
    }
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run a command in a cell and exit with its status (128+N if a signal N ended it).
    ///
    /// Without a command, runs the cell's `command` (default: a shell).
    Run(RunArgs),
    /// Start an interactive shell in a cell: its `command` (default: bash, else sh), never
    /// the agent it declares.
    Shell(CellArgs),
    /// Start Claude Code in a cell, permission prompts off (the cell is the boundary).
    ///
    /// Arguments after the cell options go to claude (`cell claude -- --help` for its help).
    #[command(disable_version_flag = true)]
    Claude(AgentArgs),
    /// Start the Codex CLI in a cell, approvals and its own sandbox off.
    #[command(disable_version_flag = true)]
    Codex(AgentArgs),
    /// Start the Gemini CLI in a cell in YOLO mode.
    #[command(disable_version_flag = true)]
    Gemini(AgentArgs),
    /// Start opencode in a cell with every permission allowed.
    #[command(disable_version_flag = true)]
    Opencode(AgentArgs),
    /// Check inside a fresh cell that every entrypoint fragment's promise holds (state
    /// links, patches directory, MCP servers, ...); exits non-zero naming each failure.
    Verify(CellArgs),
    /// Log in to websites in the cell's browser, for the agent's browser tools.
    ///
    /// Opens the cell's Chromium (`browser.command`) on the profile `~/.config/chromium` of
    /// the cell's home, with the cell's network policy (add the site with --allow if the
    /// allowlist lacks it). Log in, then press Enter here: cell closes the browser over the
    /// DevTools protocol (`Browser.close`, so that it saves fresh cookies), makes the
    /// profile's SQLite databases consistent (`cell-walflush`), warns if the cookie store
    /// was not written, exports a Playwright storage state to
    /// `~/.playwright/storage-state.json` in the cell's home, and restarts the browser MCP
    /// servers of running cells that share that home. Nothing is exported unless every
    /// step before succeeded; Ctrl-C closes the browser gracefully and exports nothing.
    ///
    /// The window is shown on your Wayland display; `--display x11` shares an X11 display
    /// instead (any X11 client can read and type into every window of that display), and
    /// `--display none` runs the browser headless.
    #[command(verbatim_doc_comment)]
    Login(LoginArgs),
    /// Print what `cell run` would do (mounts, environment, the exact bubblewrap command
    /// line) without running anything.
    Plan(PlanArgs),
    /// Check that this host can build cells; exits non-zero when it cannot.
    Doctor,
    /// Validate the configuration (schema, values, allowlists, MCP servers) without looking
    /// at the file system or running anything; exit 2 naming every bad field. The Nix modules
    /// run this when a system or home is built.
    Check,
    /// Attack a cell built from your configuration with the escape catalog (reading and
    /// writing outside, protected paths, ptrace, `io_uring`, nested namespaces, host sockets,
    /// network bypasses, fail-closed launches) and report what held.
    ///
    /// The cell gets a scratch worktree; nothing of yours is touched. Exits non-zero when
    /// any case fails.
    Selftest {
        /// Cell to test.
        #[arg(long, value_name = "NAME")]
        cell: Option<String>,
        /// Print the results as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The network of a cell: its egress audit log.
    #[command(subcommand)]
    Net(NetCmd),
    /// The cell's commits. A cell works in a git directory of its own (your repository's
    /// git directory is never writable inside); the branches it changed reach your
    /// repository as `cell/<cell>/<branch>` when it ends (`cell git sync` brings over those of
    /// a launch that was killed).
    ///
    /// Review with `cell git log` and `cell git diff`, then take it with `cell git merge`
    /// (the worktree already holds the cell's files, uncommitted from your side, which a
    /// plain `git merge` refuses to overwrite). A branch of an earlier launch that a later
    /// one does not contain is kept as `cell-kept/<cell>/<branch>-<commit>`.
    ///
    /// `log`, `diff` and `merge` read the repository of the current directory (the first
    /// directory from here up with a `.git`), and refuse one that lies in the worktree of a
    /// cell still running, other than that worktree's own: the cell could have made it.
    ///
    /// The launcher runs the first `git` on PATH that only root can replace (a system or
    /// Nix profile git, never one a cell could have written); `CELL_GIT=/path/to/git`
    /// chooses another.
    #[command(subcommand)]
    Git(GitCmd),
    /// List the running cells: name, worktree, uptime, proxy on or off, pid of its init.
    Ps,
    /// Show what runs beside each running instance of a cell (its sidecars and host
    /// services: pids and ports), asked of its launcher over the launch's control socket.
    Status {
        /// Cell to show.
        #[arg(long, value_name = "NAME")]
        cell: Option<String>,
        /// Print the answers as JSON, one line per instance.
        #[arg(long)]
        json: bool,
        /// Restart this sidecar first in each instance: its stop signal, SIGKILL after 3 s,
        /// then started again with the same command, environment and secrets, and waited
        /// for until ready (open connections to it end).
        #[arg(long, value_name = "SIDECAR")]
        restart: Option<String>,
    },
    /// Stop the running instances of a cell: SIGTERM to its init, which ends its command;
    /// each launcher then cleans up as usual.
    Stop {
        /// The cell to stop.
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Show the disk use of each cell's home and state directories, largest first.
    Du,
    /// Delete a cell's home (asks first on a terminal; `--yes` otherwise). Refused while a
    /// cell using that home runs; links in the home are removed, never followed.
    Reset {
        /// The cell whose home to delete.
        #[arg(value_name = "NAME")]
        name: String,
        /// Delete without asking.
        #[arg(long)]
        yes: bool,
    },
    /// A repository's suggested settings (`.cell.json` at the worktree's root): show them,
    /// approve them, or forget the approval.
    ///
    /// A project may suggest hosts for the allowlist (`network.allow`), variables (`env`)
    /// and read-only binds (`binds`), e.g. `{"network": {"allow": ["pypi.org"]}}`. They
    /// apply only if the cell's own config lets projects add that kind
    /// (`cells.<name>.project`: `network`, `env`, `bindsUnder`; nothing by default) and you
    /// approved these exact bytes with `cell project allow`: the agent can write the
    /// worktree, so a changed file is ignored until approved again. A project can only
    /// add; it never replaces a setting of yours or lifts a protection.
    #[command(verbatim_doc_comment)]
    Project {
        /// What to do (default: show).
        #[command(subcommand)]
        action: Option<ProjectCmd>,
        /// The cell whose `project` settings apply.
        #[arg(long, value_name = "NAME", global = true)]
        cell: Option<String>,
        /// The worktree (default: the current directory, or the cell's `worktree.path`).
        #[arg(long, value_name = "DIR", global = true)]
        workdir: Option<camino::Utf8PathBuf>,
    },
    /// Print the JSON Schema of the configuration file.
    Schema,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to standard output.
    Man,
}

/// `cell net ...`.
#[derive(Debug, Subcommand)]
pub enum NetCmd {
    /// Show the cell's egress decisions (every connection the proxy allowed or denied).
    Log {
        /// Cell whose log to show.
        #[arg(long, value_name = "NAME")]
        cell: Option<String>,
        /// Show only the last N decisions (0: all).
        #[arg(short = 'n', long, default_value_t = 50, value_name = "N")]
        lines: usize,
        /// Print the raw JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Re-read the configuration and apply the cell's allowlist and name pins to its running
    /// instances now; open connections stay open.
    Reload {
        /// Cell to reload.
        #[arg(long, value_name = "NAME")]
        cell: Option<String>,
    },
}

/// `cell project ...`.
#[derive(Debug, Subcommand)]
pub enum ProjectCmd {
    /// Show the file, its SHA-256, whether you approved it and what it would add.
    Show,
    /// Approve the file as it is now (asks first on a terminal; `--yes` otherwise).
    Allow {
        /// Approve without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Forget the approval of this worktree's file.
    Forget,
}

/// `cell git ...`.
#[derive(Debug, Subcommand)]
pub enum GitCmd {
    /// Bring the branches of launches that were killed over now (a running cell's come over
    /// when it ends: until then it could change what host git would read).
    Sync {
        /// Cell whose branches to bring over.
        #[arg(long, value_name = "NAME")]
        cell: Option<String>,
    },
    /// Show the commits of the cell's branches that your current branch does not have.
    Log {
        /// Cell whose branches to show.
        #[arg(long, value_name = "NAME")]
        cell: Option<String>,
    },
    /// Show what a cell branch changes against your current branch (since they diverged).
    Diff {
        /// Cell whose branch to show.
        #[arg(long, value_name = "NAME")]
        cell: Option<String>,
        /// The branch (default: the cell's branch of your current branch's name, or its only one).
        branch: Option<String>,
    },
    /// Take a cell branch into your current branch. The worktree is shared, so it already
    /// holds the cell's files: when your branch has nothing the cell's lacks, your branch
    /// moves to the cell's commit and the index follows, the files stay as they are
    /// (`git status` then shows only what differs from the cell's commit, such as its
    /// uncommitted work). When both have commits of their own, it says how to merge.
    Merge {
        /// Cell whose branch to take.
        #[arg(long, value_name = "NAME")]
        cell: Option<String>,
        /// The branch (default: the cell's branch of your current branch's name, or its only one).
        branch: Option<String>,
    },
}

/// `cell run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Cell options.
    #[command(flatten)]
    pub cell: CellArgs,
    /// The command and its arguments (`cell run ls -la`; after `--` when the command
    /// itself starts with a dash). An option before the command must be one of
    /// `cell run`'s: a misspelled one is refused, never run as the command.
    #[arg(trailing_var_arg = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `cell login`.
#[derive(Debug, Clone, Args)]
pub struct LoginArgs {
    /// Cell options.
    #[command(flatten)]
    pub cell: CellArgs,
    /// Seconds the browser gets to close after Enter before it is killed (its fresh
    /// cookies may be lost then, and nothing is exported).
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub close_timeout: u64,
    /// The page to open (default: a blank page).
    #[arg(value_name = "URL")]
    pub url: Option<String>,
}

/// `cell claude|codex|gemini|opencode`.
#[derive(Debug, Clone, Args)]
pub struct AgentArgs {
    /// Cell options.
    #[command(flatten)]
    pub cell: CellArgs,
    /// Arguments for the agent.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "AGENT ARGS")]
    pub args: Vec<String>,
}

/// `cell plan`.
#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
    /// Plan `cell AGENT` instead of a command (the trailing arguments go to the agent).
    #[arg(long, value_name = "KIND")]
    pub agent: Option<AgentKind>,
    /// Cell options.
    #[command(flatten)]
    pub cell: CellArgs,
    /// The command the plan is for (as for `cell run`).
    #[arg(trailing_var_arg = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// Entry point of the `cell` binary.
#[must_use]
pub fn main() -> ExitCode {
    crate::timing::start();
    let cli = Cli::from_args();
    crate::timing::mark("arguments parsed");
    let result = run(&cli);
    crate::timing::mark("done");
    crate::timing::finish();
    match result {
        Ok(code) => {
            die_like_the_command(code);
            ExitCode::from(code)
        }
        Err(e) => {
            let usage = e.downcast_ref::<PlanError>().is_some() || e.downcast_ref::<config::Invalid>().is_some();
            let code = if usage { EXIT_USAGE } else { EXIT_CANNOT_START };
            eprintln!("cell: {e:#}");
            ExitCode::from(code)
        }
    }
}

/// A command at a terminal that Ctrl-C ended (exit 130, everything cleaned up by now):
/// the launcher ends by SIGINT too, as the shell expects of a program that Ctrl-C stopped
/// (it then prints its newline, and a `while` loop of launches stops).
fn die_like_the_command(code: u8) {
    use nix::sys::signal::{raise, signal, SigHandler, SigSet, SigmaskHow, Signal};
    use std::io::IsTerminal as _;
    if code != 130 || !std::io::stdin().is_terminal() {
        return;
    }
    // SAFETY: restoring the default disposition of SIGINT installs no handler.
    let _ = unsafe { signal(Signal::SIGINT, SigHandler::SigDfl) };
    let mut only = SigSet::empty();
    only.add(Signal::SIGINT);
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&only), None);
    let _ = raise(Signal::SIGINT);
}

/// Runs a parsed command line; returns the exit code.
///
/// # Errors
/// [`PlanError`] for problems the user must fix (exit 2); anything else means the cell
/// could not start (exit 125).
pub fn run(cli: &Cli) -> anyhow::Result<u8> {
    match &cli.command {
        Cmd::Run(a) => launch_cell(cli, &a.cell, &a.command, None),
        Cmd::Claude(a) => launch_cell(cli, &a.cell, &[], Some(&(AgentKind::Claude, a.args.clone()))),
        Cmd::Codex(a) => launch_cell(cli, &a.cell, &[], Some(&(AgentKind::Codex, a.args.clone()))),
        Cmd::Gemini(a) => launch_cell(cli, &a.cell, &[], Some(&(AgentKind::Gemini, a.args.clone()))),
        Cmd::Opencode(a) => launch_cell(cli, &a.cell, &[], Some(&(AgentKind::Opencode, a.args.clone()))),
        Cmd::Verify(a) => {
            // cell-init checks the fragments of its own spec.
            let verify = [crate::contract::INIT_PATH.to_owned(), "--verify".to_owned()];
            launch_cell(cli, a, &verify, None)
        }
        Cmd::Shell(a) => {
            let host = prepare::cell_host(cli.global.config.as_deref(), a.cell.as_deref(), None)?;
            let extra = prepare::Extra { shell: true, ..prepare::Extra::display(a, &host)? };
            let plan = prepare::make_plan(cli.global.config.as_deref(), a, &[], &host, None, &extra)?;
            Ok(prepare::run_plan(&plan, &host, None)?.unwrap_or(EXIT_CANNOT_START))
        }
        Cmd::Login(a) => crate::host::login::run(
            cli.global.config.as_deref(),
            &a.cell,
            &crate::host::login::Request {
                display: match a.cell.display {
                    Some(d) => d,
                    None => crate::host::display::display_from_env()?,
                },
                url: a.url.clone(),
                close_timeout_secs: a.close_timeout,
            },
        ),
        Cmd::Plan(a) => print_plan(cli, a),
        Cmd::Doctor => doctor(cli),
        Cmd::Net(NetCmd::Log { cell, lines, json }) => net_log(cli, cell.as_deref(), *lines, *json),
        Cmd::Net(NetCmd::Reload { cell }) => net_reload(cli, cell.as_deref()),
        Cmd::Git(g) => git_cmd(cli, g),
        Cmd::Ps => crate::host::manage::ps(cli.global.config.as_deref()),
        Cmd::Status { cell, json, restart } => status(cli, cell.as_deref(), *json, restart.as_deref()),
        Cmd::Stop { name } => crate::host::manage::stop(cli.global.config.as_deref(), name),
        Cmd::Du => crate::host::manage::du(cli.global.config.as_deref()),
        Cmd::Reset { name, yes } => crate::host::manage::reset(cli.global.config.as_deref(), name, *yes),
        Cmd::Selftest { cell, json } => selftest(cli, cell.as_deref(), *json),
        Cmd::Check => {
            let host = HostEnv::capture()?;
            let source = host.config_source(cli.global.config.as_deref());
            let config = config::load(&source).map_err(PlanError::from)?;
            let n = config.cells.len();
            println!("{source}: valid ({n} cell{}: {})", if n == 1 { "" } else { "s" }, config::cell_names(&config));
            Ok(0)
        }
        Cmd::Project { action, cell, workdir } => {
            let action = match action {
                None | Some(ProjectCmd::Show) => crate::host::project::Action::Show,
                Some(ProjectCmd::Allow { yes }) => crate::host::project::Action::Allow { yes: *yes },
                Some(ProjectCmd::Forget) => crate::host::project::Action::Forget,
            };
            crate::host::project::command(cli.global.config.as_deref(), cell.as_deref(), workdir.as_deref(), action)
        }
        Cmd::Schema => {
            print!("{}", config::json_schema());
            Ok(0)
        }
        Cmd::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "cell", &mut std::io::stdout());
            Ok(0)
        }
        Cmd::Man => {
            print!("{}", man_page()?);
            Ok(0)
        }
    }
}

/// `cell plan`: the plan, as text or JSON.
fn print_plan(cli: &Cli, a: &PlanArgs) -> anyhow::Result<u8> {
    let host = prepare::cell_host(cli.global.config.as_deref(), a.cell.cell.as_deref(), a.agent)?;
    let agent = a.agent.map(|k| (k, a.command.clone()));
    let command: &[String] = if agent.is_some() { &[] } else { &a.command };
    let extra = prepare::Extra::display(&a.cell, &host)?;
    let plan = prepare::make_plan(cli.global.config.as_deref(), &a.cell, command, &host, agent.as_ref(), &extra)?;
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut out, &plan)?;
        writeln!(out)?;
    } else {
        out.write_all(render_plan(&plan).as_bytes())?;
    }
    Ok(0)
}

/// `cell doctor`: one line per check; 1 when cells cannot start.
fn doctor(cli: &Cli) -> anyhow::Result<u8> {
    let (host, account) = doctor_host(cli)?;
    let checks: Vec<doctor::Check> = account.into_iter().chain(doctor::run(&host)).collect();
    for c in &checks {
        println!("{c}");
    }
    if doctor::can_start(&checks) {
        println!("cells can start on this host");
        Ok(0)
    } else {
        println!("cells cannot start on this host: fix the FAIL lines above");
        Ok(1)
    }
}

/// `cell selftest`: the catalog's results by family, or as JSON; 1 when a case failed.
fn selftest(cli: &Cli, cell: Option<&str>, json: bool) -> anyhow::Result<u8> {
    let host = prepare::cell_host(cli.global.config.as_deref(), cell, None)?;
    let lines = crate::host::selftest::run(cli.global.config.as_deref(), cell, &host)?;
    let failed = lines.iter().filter(|l| !l.ok).count();
    if json {
        println!("{}", serde_json::to_string_pretty(&lines)?);
    } else {
        let mut family = "";
        for l in &lines {
            if l.family != family {
                family = l.family;
                println!("{family}:");
            }
            println!("  [{}] {:<16} {}", if l.ok { "pass" } else { "FAIL" }, l.id, l.proves);
            println!("         {}", l.detail);
        }
        println!("{} passed, {} failed", lines.len() - failed, failed);
    }
    Ok(u8::from(failed > 0))
}

/// The man page, as roff.
///
/// # Errors
/// When rendering fails.
pub fn man_page() -> anyhow::Result<String> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut buf).context("rendering the man page")?;
    Ok(String::from_utf8(buf)?)
}

/// Bash, zsh and fish completion scripts, by file name.
#[must_use]
pub fn completion_files() -> Vec<(&'static str, String)> {
    use clap_complete::Shell;
    [(Shell::Bash, "cell.bash"), (Shell::Zsh, "_cell"), (Shell::Fish, "cell.fish")]
        .into_iter()
        .map(|(shell, file)| {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "cell", &mut buf);
            (file, String::from_utf8_lossy(&buf).into_owned())
        })
        .collect()
}

fn launch_cell(
    cli: &Cli,
    args: &CellArgs,
    command: &[String],
    agent: Option<&(AgentKind, Vec<String>)>,
) -> anyhow::Result<u8> {
    let host = prepare::cell_host(cli.global.config.as_deref(), args.cell.as_deref(), agent.map(|(k, _)| *k))?;
    crate::timing::mark("host");
    // bubblewrap's own start runs beside the planning (as the account the cell runs as:
    // `cell_host` dropped root); it does nothing until the plan is made and handed to it.
    let early = crate::host::launch::Early::start(&host);
    let extra = prepare::Extra::display(args, &host)?;
    crate::timing::mark("display");
    let plan = prepare::make_plan(cli.global.config.as_deref(), args, command, &host, agent, &extra)?;
    crate::timing::mark("plan made");
    Ok(prepare::run_plan(&plan, &host, early)?.unwrap_or(EXIT_CANNOT_START))
}

/// `cell git sync|log|diff`.
fn git_cmd(cli: &Cli, cmd: &GitCmd) -> anyhow::Result<u8> {
    let requested = match cmd {
        GitCmd::Sync { cell } | GitCmd::Log { cell } | GitCmd::Diff { cell, .. } | GitCmd::Merge { cell, .. } => {
            cell.as_deref()
        }
    };
    // A root launcher's cells keep their git directories in the runAs account's state.
    let host = prepare::cell_host(cli.global.config.as_deref(), requested, None)?;
    let (source, config) = prepare::load_config(cli.global.config.as_deref(), &host)?;
    let (name, cell) = plan::select_cell(&config, &source, requested)?;
    let home = cell.home.path.clone().unwrap_or_else(|| host.data_home().join("cell").join(&name).join("home"));
    let git = crate::host::tools::find_git(&host, &[host.cwd.clone(), home])?;
    let state = host.state_home().join("cell").join(&name);
    // A launch that was killed left its worktree uncontained: contained before git reads it.
    let cells = host.state_home().join("cell");
    for line in crate::host::containment::recover_all(cells.as_std_path()) {
        eprintln!("cell: {}", crate::sys::escape_controls(&line));
    }
    match cmd {
        GitCmd::Sync { .. } => Ok(git_sync(&git, &state, &name)),
        GitCmd::Log { .. } | GitCmd::Diff { .. } | GitCmd::Merge { .. } => {
            let running = crate::host::containment::running(cells.as_std_path());
            let repo = review_repository(&host.cwd, &running)?;
            if matches!(cmd, GitCmd::Merge { .. }) {
                refuse_merge_while_running(&repo, &running)?;
            }
            git_review(cmd, &git, &repo, &name)
        }
    }
}

/// The repository `cell git log|diff|merge` reads: the first directory from `cwd` up with
/// a `.git`, found here rather than by git, and handed to git by name (`--git-dir`,
/// `--work-tree`), so git discovers nothing of its own.
struct Repository {
    git_dir: camino::Utf8PathBuf,
    top: camino::Utf8PathBuf,
}

/// `cell git merge` waits for every cell running in the repository's worktree (or below
/// it): the index it moves may bring gitlinks the launch did not hold, which host `git
/// status` would enter while the cell can still make a repository there.
fn refuse_merge_while_running(
    repo: &Repository,
    running: &[crate::host::containment::Launch],
) -> Result<(), config::Invalid> {
    match running.iter().find(|l| l.worktree.starts_with(&repo.top)) {
        Some(l) => Err(config::Invalid::new(
            "the current directory",
            format!(
                "a cell still runs in {} (launcher pid {}): the merge would move the index under it",
                l.worktree.display(),
                l.launcher
            ),
            "merge once it has ended (cell ps lists the running cells)",
        )),
        None => Ok(()),
    }
}

/// The repository of `cwd` ([`Repository`]), refused where a running launch (of any cell
/// of this account, `running`) could have made it: anywhere in its worktree but the
/// worktree's own `.git` that was there before it started (that one the cell cannot write).
/// A repository a cell made configures what its git runs (`gpg.program`, filters, an
/// fsmonitor...): it is set aside when the cell ends, and never read before.
fn review_repository(
    cwd: &camino::Utf8Path,
    running: &[crate::host::containment::Launch],
) -> Result<Repository, config::Invalid> {
    let not_here = || {
        config::Invalid::new(
            "the current directory",
            format!("{cwd} is not in a git repository"),
            "run it in the repository the cell worked in",
        )
    };
    let real = crate::sys::canonical_utf8(cwd).map_err(|_| not_here())?;
    let top =
        real.ancestors().find(|d| std::fs::symlink_metadata(d.join(".git")).is_ok()).ok_or_else(not_here)?.to_owned();
    if let Some(l) = running.iter().find(|l| {
        top.as_std_path().starts_with(&l.worktree) && !(top.as_std_path() == l.worktree.as_path() && l.had_git)
    }) {
        return Err(config::Invalid::new(
            "the current directory",
            format!(
                "the repository at {top} lies in the worktree of a cell that is still running ({}, launcher pid {}), \
                 which could have made it or changed its configuration",
                l.worktree.display(),
                l.launcher
            ),
            format!(
                "run cell git in {} itself, or once that cell has ended (its exit sets aside what it made)",
                l.worktree.display()
            ),
        ));
    }
    let dirs = crate::host::gitview::host_git_dirs(&top)
        .map_err(|e| config::Invalid::new("the current directory", e, "run it in the repository the cell worked in"))?
        .ok_or_else(not_here)?;
    Ok(Repository { git_dir: dirs.git_dir, top })
}

/// `cell git sync`: brings every finished launch's changed branches over; 1 when one failed.
fn git_sync(git: &camino::Utf8Path, state: &camino::Utf8Path, name: &str) -> u8 {
    let records = crate::host::gitview::records(state);
    let (mut said, mut failed) = (false, false);
    for r in &records {
        // One launch's failure never keeps the others' branches from coming over.
        match crate::host::gitview::sync_record(r, Some(git), false) {
            // Escaped: the lines name what the cell made (an object store entry, a branch).
            Ok(lines) => {
                for line in lines {
                    println!("{}", crate::sys::escape_controls(&line));
                    said = true;
                }
            }
            Err(e) => {
                eprintln!("cell: {r}: {}", crate::sys::escape_controls(&format!("{e:#}")));
                failed = true;
            }
        }
    }
    if !said && !failed {
        println!("nothing to bring over: no branch of cell {name} changed since it was last brought over");
    }
    u8::from(failed)
}

/// `cell git log|diff|merge`, run in `repo`.
fn git_review(cmd: &GitCmd, git: &camino::Utf8Path, repo: &Repository, name: &str) -> anyhow::Result<u8> {
    let prefix = format!("cell/{name}/");
    let out = git_in(git, repo)
        .args(["for-each-ref", "--format=%(refname:short)", &format!("refs/heads/{prefix}")])
        .output()
        .context("cannot run git")?;
    if !out.status.success() {
        anyhow::bail!("git for-each-ref failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let branches: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
    if branches.is_empty() {
        println!("cell {name} has no branches in this repository yet (they arrive when the cell ends, or with `cell git sync`)");
        return Ok(0);
    }
    if let GitCmd::Diff { branch, .. } | GitCmd::Merge { branch, .. } = cmd {
        let current = current_branch(git, repo);
        let wanted = branch.clone().or_else(|| current.clone()).unwrap_or_default();
        // `wip`, `default/wip` and `cell/default/wip` all name the cell's `wip`.
        let short = wanted.strip_prefix("cell/").unwrap_or(&wanted);
        let short = short.strip_prefix(&format!("{name}/")).unwrap_or(short);
        let chosen = branches
            .iter()
            .find(|b| b.strip_prefix(&prefix) == Some(short))
            .or_else(|| (branches.len() == 1 && branch.is_none()).then(|| &branches[0]))
            .ok_or_else(|| {
                config::Invalid::new(
                    "BRANCH",
                    format!("cell {name} has no branch {wanted}"),
                    format!("name one of {}", branches.join(", ")),
                )
            })?;
        if matches!(cmd, GitCmd::Merge { .. }) {
            return merge_cell_branch(git, repo, current.as_deref(), chosen);
        }
        // What the cell wrote is shown, never sent to the terminal raw (escape
        // sequences in file contents or commit messages could drive it).
        let o = git_in(git, repo)
            .args(["--no-pager", "diff", "--no-ext-diff", "--no-textconv", &format!("HEAD...{chosen}")])
            .output()?;
        print!("{}", escape_text(&String::from_utf8_lossy(&o.stdout)));
        return Ok(u8::from(!o.status.success()));
    }
    for b in &branches {
        println!("{b}:");
        let o =
            git_in(git, repo).args(["--no-pager", "log", "--oneline", "--decorate", &format!("HEAD..{b}")]).output()?;
        print!("{}", escape_text(&String::from_utf8_lossy(&o.stdout)));
    }
    Ok(0)
}

/// Host git on `repo`, with the settings of [`crate::host::gitview::SAFE_GIT`] (no hooks, no
/// fsmonitor, pager, editor or transport).
fn git_in(git: &camino::Utf8Path, repo: &Repository) -> std::process::Command {
    let mut c = std::process::Command::new(git);
    // What git runs by name (a pager the user's GIT_PAGER names, say) comes from where
    // only root writes, never from a `.venv/bin` on PATH that a cell may have filled.
    let path = crate::host::tools::trusted_path(std::env::var("PATH").ok().as_deref());
    c.args(crate::host::gitview::SAFE_GIT)
        .arg(format!("--git-dir={}", repo.git_dir))
        .arg(format!("--work-tree={}", repo.top))
        .env("PATH", path)
        .current_dir(&repo.top);
    c
}

/// The branch HEAD names in `dir`'s repository (`None` when detached).
fn current_branch(git: &camino::Utf8Path, dir: &Repository) -> Option<String> {
    let o = git_in(git, dir).args(["symbolic-ref", "--short", "-q", "HEAD"]).output().ok()?;
    let name = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    (o.status.success() && !name.is_empty()).then_some(name)
}

/// `cell git merge`: `current` moved to the cell branch `chosen` when it descends from it
/// (the index follows, the shared worktree stays); otherwise what to do.
fn merge_cell_branch(
    git: &camino::Utf8Path,
    dir: &Repository,
    current: Option<&str>,
    chosen: &str,
) -> anyhow::Result<u8> {
    let run = |args: &[&str]| git_in(git, dir).args(args).output();
    let Some(current) = current else {
        return Err(config::Invalid::new(
            "HEAD",
            "HEAD is detached: there is no branch to take the cell's work into",
            "git switch to the branch to merge into, then run cell git merge again",
        )
        .into());
    };
    let id = |rev: &str| -> anyhow::Result<String> {
        let o = run(&["rev-parse", "-q", "--verify", &format!("{rev}^{{commit}}")])?;
        anyhow::ensure!(o.status.success(), "{rev} names no commit");
        Ok(String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let (ours, theirs) = (id("HEAD")?, id(&format!("refs/heads/{chosen}"))?);
    let ancestor = |a: &str, b: &str| run(&["merge-base", "--is-ancestor", a, b]).is_ok_and(|o| o.status.success());
    if ancestor(&theirs, &ours) {
        println!("{current} already has everything of {chosen}");
        return Ok(0);
    }
    if !ancestor(&ours, &theirs) {
        println!(
            "{current} and {chosen} both have commits of their own: commit or stash the worktree's changes (the files are the cell's), then git merge {chosen}"
        );
        return Ok(1);
    }
    // A fast-forward whose files are already in the worktree: the branch and the index move,
    // the files stay (a checkout would refuse them as local changes, or overwrite them).
    let o = run(&[
        "update-ref",
        "-m",
        &format!("cell git merge {chosen}"),
        &format!("refs/heads/{current}"),
        &theirs,
        &ours,
    ])?;
    anyhow::ensure!(o.status.success(), "cannot move {current}: {}", String::from_utf8_lossy(&o.stderr).trim());
    let o = run(&["reset", "-q", "--mixed", "HEAD"])?;
    anyhow::ensure!(
        o.status.success(),
        "{current} is now {chosen}, but its index could not follow ({}): run git reset to match it",
        String::from_utf8_lossy(&o.stderr).trim()
    );
    println!(
        "{current} is now {chosen} ({}); the files were already there: git status shows what differs from its commit",
        &theirs[..12.min(theirs.len())]
    );
    Ok(0)
}

/// Text for the terminal: control characters other than newline and tab escaped.
fn escape_text(s: &str) -> String {
    s.split_inclusive('\n')
        .map(|l| {
            let (body, nl) = l.strip_suffix('\n').map_or((l, ""), |b| (b, "\n"));
            let parts: Vec<String> = body.split('\t').map(crate::sys::escape_controls).collect();
            format!("{}{nl}", parts.join("\t"))
        })
        .collect()
}

/// `cell net log`: the audit log of a cell, readable.
fn net_log(cli: &Cli, requested: Option<&str>, lines: usize, json: bool) -> anyhow::Result<u8> {
    // A root launcher's cells keep their state in the runAs account's directories.
    let host = prepare::cell_host(cli.global.config.as_deref(), requested, None)?;
    let (source, config) = prepare::load_config(cli.global.config.as_deref(), &host)?;
    let (name, _) = plan::select_cell(&config, &source, requested)?;
    let path = host.state_home().join("cell").join(&name).join("egress.jsonl");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("no egress decisions recorded for cell {name} yet ({path} does not exist)");
            return Ok(0);
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {path}")),
    };
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let shown = if lines == 0 { &all[..] } else { &all[all.len().saturating_sub(lines)..] };
    let mut out = std::io::stdout().lock();
    for line in shown {
        if json {
            writeln!(out, "{}", escape_json_controls(line))?;
        } else {
            writeln!(out, "{}", render_audit_line(line))?;
        }
    }
    Ok(0)
}

/// `cell net reload`: the policy computed as the launch did, sent to each running instance
/// over its control socket.
fn net_reload(cli: &Cli, requested: Option<&str>) -> anyhow::Result<u8> {
    use crate::host::sidecars::control;
    let host = prepare::cell_host(cli.global.config.as_deref(), requested, None)?;
    let (source, config) = prepare::load_config(cli.global.config.as_deref(), &host)?;
    let (name, cell) = plan::select_cell(&config, &source, requested)?;
    let instances = launch::running_instances(&host.runtime_base(), &name);
    let mut reloaded = 0;
    for runtime in instances {
        let status = control::request(&runtime, &control::Request::Status)?.status.unwrap_or_default();
        if !status.sidecars.iter().any(|s| s.name == crate::host::sidecars::egress::NAME) {
            // An instance without the proxy (only sidecars of its own).
            continue;
        }
        let record_path = runtime.join(plan::EXTRA_ALLOW_FILE);
        let launch: plan::LaunchNetwork = match std::fs::read_to_string(&record_path) {
            Ok(t) => {
                serde_json::from_str(&t).with_context(|| format!("{record_path} is not a launch's network record"))?
            }
            Err(_) => plan::LaunchNetwork::default(),
        };
        // The same function as the launch: the config as it is now, with the launch's own
        // choices (its --allow entries, --network, the agent whose preset hosts it allowed).
        let (net, mut policy) = plan::egress_policy(cell, &launch.overrides())?;
        if net.mode == Some(NetworkMode::None) {
            // The running proxy cannot be removed; an empty allowlist is what `none` means.
            policy.allow.clear();
            policy.hosts.clear();
        }
        let answer = control::request(&runtime, &control::Request::Reload { policy: policy.clone() })?;
        if !answer.ok {
            anyhow::bail!("the launcher of {runtime} refused the reload: {}", answer.error.unwrap_or_default());
        }
        let allow = if policy.allow.is_empty() { "nothing".to_owned() } else { policy.allow.join(", ") };
        println!("reloaded {runtime}: allowed {allow}");
        reloaded += 1;
    }
    if reloaded == 0 {
        eprintln!("cell: no running instance of cell {name} uses the proxy");
        return Ok(1);
    }
    Ok(0)
}

/// `cell status [--restart SIDECAR]`.
fn status(cli: &Cli, requested: Option<&str>, json: bool, restart: Option<&str>) -> anyhow::Result<u8> {
    use crate::host::sidecars::control;
    let host = prepare::cell_host(cli.global.config.as_deref(), requested, None)?;
    let (source, config) = prepare::load_config(cli.global.config.as_deref(), &host)?;
    let (name, _) = plan::select_cell(&config, &source, requested)?;
    let instances = launch::running_instances(&host.runtime_base(), &name);
    if instances.is_empty() {
        eprintln!("cell: no running instance of cell {name} has sidecars");
        return Ok(1);
    }
    let mut out = std::io::stdout().lock();
    for runtime in instances {
        let request = match restart {
            Some(name) => control::Request::Restart { sidecar: name.to_owned() },
            None => control::Request::Status,
        };
        let answer = control::request(&runtime, &request)?;
        let Some(status) = answer.status.filter(|_| answer.ok) else {
            let what = if restart.is_some() { "did not restart it" } else { "did not answer" };
            anyhow::bail!("the launcher of {runtime} {what}: {}", answer.error.unwrap_or_default());
        };
        if json {
            writeln!(out, "{}", serde_json::to_string(&status)?)?;
            continue;
        }
        writeln!(out, "cell {} (launcher pid {}, {runtime})", status.cell, status.launcher)?;
        for s in &status.sidecars {
            let pid = s.pid.map_or_else(|| "no process".to_owned(), |p| format!("pid {p}"));
            let state = if s.running { "running" } else { "exited" };
            let ports: Vec<String> = s.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
            let host_port = s.host_port.map(|p| format!(" -> host 127.0.0.1:{p}")).unwrap_or_default();
            writeln!(out, "  {:<12} {pid} {state}, inside {}{host_port}", s.name, ports.join(", "))?;
        }
    }
    Ok(0)
}

/// One audit record as a line a person reads.
#[must_use]
pub fn render_audit_line(line: &str) -> String {
    let Ok(record) = serde_json::from_str::<serde_json::Value>(line) else {
        return format!("(unreadable) {}", crate::sys::escape_controls(line));
    };
    let text = |k: &str| record.get(k).and_then(serde_json::Value::as_str).unwrap_or("").to_owned();
    let num = |k: &str| record.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
    let host = record.get("host").and_then(serde_json::Value::as_str);
    let port = record.get("port").and_then(serde_json::Value::as_u64);
    let target = match (host, port) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        _ => "-".to_owned(),
    };
    let via = match record.get("address").and_then(serde_json::Value::as_str) {
        Some(a) => format!(" via {a}"),
        None => String::new(),
    };
    let bytes = if num("bytesUp") + num("bytesDown") > 0 {
        format!(" ({} B up, {} B down)", num("bytesUp"), num("bytesDown"))
    } else {
        String::new()
    };
    let line = format!(
        "{} {:<5} {:<7} {:<7} {target}{via}: {}{bytes}",
        text("time"),
        text("verdict"),
        text("client"),
        text("method"),
        text("reason")
    );
    crate::sys::escape_controls(&line)
}

/// The same for a JSON line: controls become `\u00NN` escapes, which keep the line valid
/// JSON with the same value (JSON lets DEL and C1 stand unescaped in strings).
#[must_use]
pub fn escape_json_controls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || crate::sys::is_bidi_control(c) {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// Quotes a word for display in a POSIX shell.
#[must_use]
pub fn shell_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The human-readable form of a plan.
#[must_use]
pub fn render_plan(p: &Plan) -> String {
    let mut o = String::new();
    // The summary first: which cell runs what, where, with which network.
    let _ = writeln!(o, "cell {} (config: {})", p.cell, p.config);
    let _ = writeln!(o, "  command   {}", p.command.iter().map(|w| shell_quote(w)).collect::<Vec<_>>().join(" "));
    let _ = writeln!(o, "  worktree  {} (read-write), starting in {}", p.worktree, p.cwd);
    match &p.network.policy {
        None => {
            let _ = writeln!(o, "  network   none (loopback only; no route, no resolver)");
        }
        Some(policy) => {
            let allow =
                if policy.allow.is_empty() { "nothing (empty allowlist)".to_owned() } else { policy.allow.join(", ") };
            let _ = writeln!(o, "  network   proxy: only through cell-egress, allowed: {allow}");
            for (name, ip) in &policy.hosts {
                let _ = writeln!(o, "            pin {name} -> {ip}");
            }
            if let Some(a) = &p.network.audit_log {
                let _ = writeln!(o, "            audit log {a}");
            }
        }
    }
    let _ = writeln!(o, "  user      {} (uid {}, gid {}), HOME={}", p.user.name, p.user.uid, p.user.gid, p.user.home);
    let _ = writeln!(o, "  home      {} (host) at {}", p.home, p.user.home);
    if let Some(g) = &p.git {
        let _ = writeln!(
            o,
            "  git       {} is the cell's own (seeded from {} at launch; the host's objects read-only); \
             its changed branches come back as cell/{}/<branch>",
            g.inside(),
            g.host_git_dir,
            p.cell
        );
    }
    // Protected paths, grouped, relative to the worktree (the full paths are in `--json`).
    let relative =
        |path: &camino::Utf8Path| path.strip_prefix(&p.worktree).map_or_else(|_| path.to_string(), ToString::to_string);
    let held: Vec<String> = p.protected.iter().filter(|x| x.how == "read-only").map(|x| relative(&x.path)).collect();
    if !held.is_empty() {
        let _ = writeln!(o, "  protected read-only: {}", held.join(", "));
    }
    if !p.absent.is_empty() {
        let absent: Vec<String> = p.absent.iter().map(|a| relative(a)).collect();
        let _ =
            writeln!(o, "  watched   absent, set aside when the cell ends if it creates them: {}", absent.join(", "));
    }
    render_sidecars_and_ports(p, &mut o);
    let _ = writeln!(o, "  hostname  {}", p.hostname);
    let _ = writeln!(o, "  limits    {}", p.limits);
    render_mounts(p, &mut o);
    let _ = writeln!(o, "  environment (nothing else is inherited):");
    for (k, v) in &p.env {
        let _ = writeln!(o, "    {k}={}", shell_quote(v));
    }
    let _ = writeln!(o, "  bubblewrap:");
    let _ = writeln!(o, "    {}", p.argv.iter().map(|w| shell_quote(w)).collect::<Vec<_>>().join(" "));
    o
}

/// The sidecars and published ports of a plan, for [`render_plan`].
fn render_sidecars_and_ports(p: &Plan, o: &mut String) {
    for sc in &p.sidecars {
        let inside: Vec<String> = sc.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let what = match (sc.command.first(), sc.forward_to) {
            (None, Some(port)) => format!("host service: the host's 127.0.0.1:{port}"),
            (Some(program), Some(port)) => format!("{program} on the host's 127.0.0.1:{port}"),
            (Some(program), None) => format!("{program} on {}", sc.socket),
            (None, None) => "nothing".to_owned(),
        };
        let _ = writeln!(o, "  sidecar   {}: {what}, reached inside at {}", sc.name, inside.join(", "));
        if let Some(log) = &sc.log {
            let _ = writeln!(o, "            log {log}");
        }
        for k in sc.secret_env.keys() {
            let _ = writeln!(o, "            secret {k} (read from {} at launch)", sc.secret_env[k]);
        }
    }
    for pub_port in &p.published {
        let _ = writeln!(
            o,
            "  publish   host {} -> the cell's 127.0.0.1:{} ({})",
            std::net::SocketAddr::new(pub_port.address, pub_port.host_port),
            pub_port.cell_port,
            pub_port.from
        );
    }
}

/// The mounts of a plan, for [`render_plan`].
fn render_mounts(p: &Plan, o: &mut String) {
    let _ = writeln!(o, "  mounts:");
    for m in &p.mounts {
        let line = match m {
            Mount::RoBind { src, dst } if src == dst => format!("ro-bind   {dst}"),
            Mount::RoBind { src, dst } => format!("ro-bind   {dst} <- {src}"),
            Mount::Bind { src, dst } if src == dst => format!("rw-bind   {dst}"),
            Mount::Bind { src, dst } => format!("rw-bind   {dst} <- {src}"),
            Mount::Symlink { target, dst } => format!("symlink   {dst} -> {target}"),
            Mount::Tmpfs { dst, size: None } => format!("tmpfs     {dst}"),
            Mount::Tmpfs { dst, size: Some(b) } => format!("tmpfs     {dst} ({} MiB at most)", b >> 20),
            Mount::Dir { dst } => format!("dir       {dst}"),
            Mount::Dev { dst } => format!("dev       {dst}"),
            Mount::Proc { dst } => format!("proc      {dst}"),
            Mount::Data { dst, .. } => format!("generated {dst} (read-only)"),
            Mount::InitSpec { dst } => {
                format!("generated {dst} (read-only): cell-init's spec, secrets filled in at launch")
            }
        };
        let _ = writeln!(o, "    {line}");
    }
}

/// The host `cell doctor` checks from, and a line about the account cells run as. As root:
/// the account of the config's default cell (`runAs`, else `cell`), become for good, as
/// every cell-building command does; when there is none usable, root's own view and a FAIL
/// line saying what to create or set.
///
/// # Errors
/// When the host cannot be read or dropping root fails.
pub fn doctor_host(cli: &crate::host::cli::Cli) -> anyhow::Result<(HostEnv, Option<doctor::Check>)> {
    let host = HostEnv::capture()?;
    if !host.is_root() {
        return Ok((host, None));
    }
    let loaded = prepare::load_config(cli.global.config.as_deref(), &host).ok();
    let chosen = loaded.as_ref().and_then(|(source, config)| {
        crate::host::plan::select_cell(config, source, None).ok().map(|(n, c)| (n, c.run_as.clone()))
    });
    let (name, run_as) = chosen.unwrap_or_else(|| ("default".to_owned(), None));
    let account = match crate::host::hostenv::run_as_account(&name, run_as.as_deref()) {
        Ok(a) => a,
        Err(e) => return Ok((host, Some(doctor::check("cell account", doctor::Status::Fail, e.message, e.fix)))),
    };
    let Some(config) = loaded else {
        return Ok((
            host,
            Some(doctor::check(
                "cell account",
                doctor::Status::Fail,
                "the configuration is invalid",
                "run `cell check`",
            )),
        ));
    };
    crate::host::hostenv::become_account(&account)?;
    let line = doctor::check(
        "cell account",
        doctor::Status::Pass,
        format!(
            "cell runs as root: cell {name} runs as account {} (uid {}, gid {}), never as root",
            account.name, account.uid, account.gid
        ),
        "",
    );
    let run_as = crate::host::hostenv::RunAs {
        field: format!("cells.{name}.runAs"),
        config: std::sync::Arc::new(config),
        invoker_git: Vec::new(),
    };
    match HostEnv::for_account(&host, &account, run_as) {
        Ok(h) => Ok((h, Some(line))),
        Err(e) => {
            Ok((HostEnv::capture()?, Some(doctor::check("cell account", doctor::Status::Fail, format!("{e:#}"), ""))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::config::BindMode;

    /// The launch-only parser reads every command line it accepts exactly as the whole tree
    /// does, and leaves help, versions and errors to the whole tree.
    #[test]
    fn a_launch_parses_alike_with_only_its_subcommand() {
        let same = [
            "cell run -- true",
            "cell run --network none -- true",
            "cell run --cell web --config /c.json --bind /a:/b:rw --allow x.org:443 -- make -j2 test",
            "cell run --config /c.json --workdir w --env A=1 --env B=2 --publish 8000 --host-port 5432 ls -la",
            "cell run --allow-broad-worktree --display none -- sh -c 'echo --help'",
            "cell run",
            "cell run -- true --help",
            "cell run -- --netwrk none",
            "cell shell --cell web --network proxy",
            "cell claude --network proxy -- --resume",
            "cell claude --cell x --model opus",
            "cell codex -- --help",
            "cell gemini --version",
            "cell opencode",
        ];
        for line in same {
            let args: Vec<std::ffi::OsString> = line.split(' ').map(Into::into).collect();
            let whole = Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{line}: {e}"));
            let fast = Cli::launch_only(&args).unwrap_or_else(|| panic!("{line}: the launch-only parser refused it"));
            assert_eq!(format!("{fast:?}"), format!("{whole:?}"), "{line}");
        }
        for line in [
            "cell run --help",
            "cell run -h",
            "cell --version",
            "cell run --network nonsense -- true",
            "cell run --netwrk none -- true",
            "cell shell extra",
            "cell ps",
            "cell --config /c.json run -- true",
            "cell",
        ] {
            let args: Vec<std::ffi::OsString> = line.split(' ').map(Into::into).collect();
            assert!(Cli::launch_only(&args).is_none(), "{line}: left to the whole tree");
        }
    }

    /// A misspelled option before the command is refused with clap's suggestion, never
    /// taken as the command; the command's own options still pass, with or without `--`.
    #[test]
    fn a_misspelled_option_is_no_command() {
        let parse = |line: &str| Cli::try_parse_from(line.split(' '));
        for line in ["cell run --netwrk none -- true", "cell run -n none true", "cell plan --jsn -- true"] {
            let e = parse(line).expect_err(line);
            assert_eq!(e.kind(), clap::error::ErrorKind::UnknownArgument, "{line}: {e}");
        }
        let e = parse("cell run --netwrk none -- true").expect_err("misspelled");
        assert!(e.to_string().contains("'--network'"), "no suggestion: {e}");
        let command = |line: &str| match parse(line).unwrap_or_else(|e| panic!("{line}: {e}")).command {
            Cmd::Run(r) => r.command,
            Cmd::Plan(p) => p.command,
            other => panic!("{line}: {other:?}"),
        };
        assert_eq!(command("cell run ls -la --network x"), ["ls", "-la", "--network", "x"]);
        assert_eq!(command("cell run --network none -- -weird --flag"), ["-weird", "--flag"]);
        assert_eq!(command("cell plan --json sh -c true"), ["sh", "-c", "true"]);
    }

    #[test]
    fn bind_specs() {
        let cwd = camino::Utf8Path::new("/w");
        let b = prepare::parse_bind("/a", cwd).unwrap();
        assert_eq!((b.src.as_str(), b.dst, b.mode), ("/a", None, BindMode::Ro));
        let b = prepare::parse_bind("rel/x:/in:rw", cwd).unwrap();
        assert_eq!(
            (b.src.as_str(), b.dst.as_ref().map(|d| d.as_str()), b.mode),
            ("/w/rel/x", Some("/in"), BindMode::Rw)
        );
        let b = prepare::parse_bind("/a:ro", cwd).unwrap();
        assert_eq!(b.mode, BindMode::Ro);
        assert!(prepare::parse_bind("/a:b:rw", cwd).unwrap_err().to_string().contains("relative"));
        assert!(prepare::parse_bind(":x", cwd).is_err());
        assert!(prepare::parse_bind("/a:/b:/c:rw", cwd).is_err());
    }

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn audit_lines_carry_no_control_characters() {
        let line =
            "{\"time\":\"t\",\"verdict\":\"deny\",\"host\":\"a\u{9b}31mb\\u001b]0;x\\u0007\",\"reason\":\"r\u{7f}\"}";
        let shown = render_audit_line(line);
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert!(shown.contains("a\\x9b31mb\\x1b]0;x\\x07") && shown.contains("r\\x7f"), "{shown}");
        let json = escape_json_controls(line);
        assert!(!json.chars().any(char::is_control), "{json:?}");
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back, serde_json::from_str::<serde_json::Value>(line).unwrap());
        assert!(!render_audit_line("not json \u{9b}[2J").chars().any(char::is_control));
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("a/b"), "a/b");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
