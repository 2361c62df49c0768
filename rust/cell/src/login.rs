//! `cell login`, the launcher's half: starts a cell whose command is the browser driver
//! ([`crate::browser`]), then makes the profile consistent with `cell-walflush`, warns when
//! the cookie store was not written during the login, moves the driver's storage state into
//! place, and restarts the browser MCP servers of running cells that share the profile.
//!
//! Nothing is exported unless the browser closed gracefully and every database of the
//! profile is consistent; the previous storage state stays until then.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context as _};
use camino::{Utf8Path, Utf8PathBuf};
use clap::ValueEnum;

use crate::browser::{LoginSpec, EXIT_CANCELLED};
use crate::config::{self, BindConfig, BindMode, Invalid};
use crate::fragments::CHROMIUM_PROFILE;
use crate::hostenv::HostEnv;
use crate::launch::{self, LiveCell};
use crate::plan::{self, PlanError};

/// Where the storage state goes, relative to the cell's home.
pub const STORAGE_STATE: &str = ".playwright/storage-state.json";
/// The variable through which Playwright MCP learns its profile.
const MCP_PROFILE_VAR: &str = "PLAYWRIGHT_MCP_USER_DATA_DIR";
/// `cell-walflush`'s message for a database that needed nothing.
const NOTHING_TO_DO: &str = "consistent, nothing to do";
/// How long stopped browsers of other cells get to exit.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How the browser shows its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Display {
    /// Wayland when `$WAYLAND_DISPLAY` is set; otherwise an error that explains the choices.
    Auto,
    /// The Wayland socket `$WAYLAND_DISPLAY` (clients cannot see each other's windows).
    Wayland,
    /// The X11 display `$DISPLAY`: the browser can then read and type into every window of
    /// that display, for the time of the login.
    X11,
    /// No window: a headless browser (scripted renewals, tests).
    None,
}

/// What the display adds to the launch.
#[derive(Debug, Default, PartialEq)]
pub struct DisplayPlan {
    /// Sockets and files to bind.
    pub binds: Vec<BindConfig>,
    /// Variables to set.
    pub env: BTreeMap<String, String>,
    /// Browser arguments.
    pub args: Vec<String>,
    /// Whether the browser runs headless.
    pub headless: bool,
}

fn ro(src: Utf8PathBuf, dst: Option<Utf8PathBuf>) -> BindConfig {
    BindConfig { src, dst, mode: BindMode::Ro, optional: false }
}

/// The binds, variables and arguments for `display`.
///
/// # Errors
/// [`PlanError`] when the display is not available or (for `auto`) only X11 is.
pub fn display_plan(display: Display, host: &HostEnv) -> Result<DisplayPlan, PlanError> {
    let bad = |field: &str, problem: String, fix: &str| PlanError::from(Invalid::new(field, problem, fix));
    match display {
        Display::None => Ok(DisplayPlan { headless: true, ..DisplayPlan::default() }),
        Display::Auto | Display::Wayland => {
            let Some(name) = host.var("WAYLAND_DISPLAY").filter(|v| !v.is_empty()) else {
                let fix = if display == Display::Auto && host.var("DISPLAY").is_some() {
                    "log in from a Wayland session, or pass --display x11 to share this X11 display with the \
                     browser for the login (an X11 client can read and type into every window of the display), \
                     or --display none for a headless browser"
                } else {
                    "log in from a Wayland session, or pass --display none for a headless browser"
                };
                return Err(bad("--display", "no Wayland display ($WAYLAND_DISPLAY is not set)".into(), fix));
            };
            let socket = if name.starts_with('/') {
                Utf8PathBuf::from(name)
            } else {
                let Some(dir) = host.runtime_dir() else {
                    return Err(bad(
                        "--display",
                        format!("$WAYLAND_DISPLAY is {name:?} but $XDG_RUNTIME_DIR is not set"),
                        "set XDG_RUNTIME_DIR, or WAYLAND_DISPLAY to the socket's absolute path",
                    ));
                };
                dir.join(name)
            };
            let mut env = BTreeMap::new();
            env.insert("WAYLAND_DISPLAY".to_owned(), socket.to_string());
            env.insert("XDG_SESSION_TYPE".to_owned(), "wayland".to_owned());
            Ok(DisplayPlan {
                binds: vec![ro(socket, None)],
                env,
                args: vec!["--ozone-platform=wayland".to_owned()],
                headless: false,
            })
        }
        Display::X11 => {
            let display = host.var("DISPLAY").unwrap_or_default();
            // Only a local display: the cell has no network to reach host:N.
            let number = display
                .strip_prefix(':')
                .map(|d| d.split('.').next().unwrap_or_default())
                .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
            let Some(number) = number else {
                return Err(bad(
                    "--display",
                    format!("$DISPLAY is {display:?}, not a local X11 display such as :0"),
                    "run cell login from a local X11 or Wayland session, or pass --display none",
                ));
            };
            let socket = Utf8PathBuf::from(format!("/tmp/.X11-unix/X{number}"));
            let mut binds = vec![ro(socket, None)];
            let mut env = BTreeMap::new();
            env.insert("DISPLAY".to_owned(), format!(":{number}"));
            let auth = host.var("XAUTHORITY").map(Utf8PathBuf::from).unwrap_or_else(|| host.home.join(".Xauthority"));
            if auth.is_file() {
                let inside = Utf8PathBuf::from("/run/cell/Xauthority");
                binds.push(ro(auth, Some(inside.clone())));
                env.insert("XAUTHORITY".to_owned(), inside.to_string());
            }
            Ok(DisplayPlan { binds, env, args: vec!["--ozone-platform=x11".to_owned()], headless: false })
        }
    }
}

/// What `cell login` was asked.
#[derive(Debug, Clone)]
pub struct Request {
    /// The display.
    pub display: Display,
    /// The page to open.
    pub url: Option<String>,
    /// Seconds the browser gets to close.
    pub close_timeout_secs: u64,
}

/// Runs `cell login`; returns the exit code.
///
/// # Errors
/// [`PlanError`] for configuration problems; anything else when the login failed (the
/// message says what state the profile is in).
pub fn run(cli: &crate::cli::Cli, cell_args: &crate::cli::CellArgs, req: &Request) -> anyhow::Result<u8> {
    let host = HostEnv::capture()?;
    let source = config::locate(cli.config.as_deref(), &host);
    let config = config::load(&source).map_err(PlanError::from)?;
    let (name, cell) = plan::select_cell(&config, &source, cell_args.cell.as_deref())?;
    let Some(browser) = &cell.browser else {
        return Err(PlanError::from(Invalid::new(
            format!("cells.{name}.browser"),
            "this cell declares no browser",
            "set browser.command to a Chromium, e.g. [\"chromium\", \"--no-sandbox\"] (the Nix module does this \
             with chromium.enable = true)",
        ))
        .into());
    };
    let display = display_plan(req.display, &host)?;
    let tmp_rel = format!(".playwright/.storage-state.{}.tmp", std::process::id());
    let spec = LoginSpec {
        command: browser.command.clone(),
        profile: CHROMIUM_PROFILE.into(),
        state_file: tmp_rel.clone().into(),
        headless: display.headless,
        extra_args: display.args.clone(),
        url: req.url.clone(),
        close_timeout_secs: req.close_timeout_secs,
    };
    let command = vec![plan::INIT_PATH.to_owned(), "--browser-login".to_owned(), serde_json::to_string(&spec)?];
    let mut args = cell_args.clone();
    args.cell = Some(name.clone());
    // The display comes in `extra`, with the browser's own arguments.
    args.display = None;
    let extra = crate::cli::Extra { binds: display.binds, env: display.env };
    let plan = crate::cli::make_plan(cli, &args, &command, &host, None, &extra)?;

    let profile = plan.home.join(CHROMIUM_PROFILE);
    let inside_profile = plan.user.home.join(CHROMIUM_PROFILE);
    let state_dir = plan.home.join(".playwright");
    let tmp = plan.home.join(&tmp_rel);
    let target = plan.home.join(STORAGE_STATE);

    let sharing: Vec<LiveCell> =
        launch::live_cells(&host.runtime_base()).into_iter().filter(|c| same_dir(&c.home, &plan.home)).collect();
    free_profile(&sharing, &inside_profile)?;
    remove_stale_singletons(&profile);
    refuse_links(&plan.home, &[CHROMIUM_PROFILE, ".playwright"])?;
    let _ = std::fs::remove_file(&tmp);

    let started = SystemTime::now();
    let outcome = crate::cli::run_plan(&plan, &host);
    let code = match outcome {
        Ok(Some(code)) => code,
        Ok(None) => {
            let _ = std::fs::remove_file(&tmp);
            return Ok(launch::EXIT_CANNOT_START);
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let fresh = cookies_written_since(&profile, started);
    let flushed = flush(&host, &profile);
    let result = finish(code, fresh, flushed, &tmp, &target, &state_dir);
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    let exported = result?;
    if exported {
        for c in launch::live_cells(&host.runtime_base()).into_iter().filter(|c| same_dir(&c.home, &plan.home)) {
            let n = stop_mcp_servers(&c, &inside_profile).len();
            if n > 0 {
                eprintln!(
                    "cell login: restarted {n} browser MCP server(s) in running cell {} (pid {}); its agent starts \
                     them again on the next browser call, with the new login",
                    c.cell, c.launcher
                );
            }
        }
        Ok(0)
    } else {
        Ok(130)
    }
}

/// After the cell: reports the flush and freshness, then moves the storage state into
/// place. `Ok(false)`: cancelled (nothing exported, not an error).
fn finish(
    code: u8,
    fresh: Option<bool>,
    flushed: anyhow::Result<Vec<String>>,
    tmp: &Utf8Path,
    target: &Utf8Path,
    state_dir: &Utf8Path,
) -> anyhow::Result<bool> {
    let report = flushed.context(
        "the browser's databases are not all consistent; the storage state was not exported (the previous one, \
         if any, is unchanged)",
    )?;
    let worked: Vec<&String> = report.iter().filter(|l| !l.ends_with(NOTHING_TO_DO)).collect();
    eprintln!("cell login: the profile's {} SQLite database(s) are consistent", report.len());
    for line in worked {
        eprintln!("cell login:   {line}");
    }
    if fresh != Some(true) {
        eprintln!(
            "cell login: warning: the cookie store was not written during this login (did you log in?); the \
             profile keeps what it had"
        );
    }
    if code == EXIT_CANCELLED {
        return Ok(false);
    }
    if code != 0 {
        bail!(
            "the browser login failed (exit {code}); the profile was made consistent, nothing was exported (the \
             previous storage state, if any, is unchanged); the browser's output is in ~/{} of the cell's home",
            crate::browser::BROWSER_LOG
        );
    }
    refuse_links(state_dir, &[""])?;
    let text = read_regular(tmp)?;
    let state: crate::browser::StorageState =
        serde_json::from_str(&text).with_context(|| format!("{tmp} is not a storage state"))?;
    if state.cookies.is_empty() && fresh == Some(true) {
        eprintln!("cell login: warning: the browser holds no cookies at all (did you log in?)");
    }
    std::fs::rename(tmp, target).with_context(|| format!("cannot move {tmp} to {target}"))?;
    eprintln!(
        "cell login: exported {} cookie(s) and the local storage of {} origin(s) to {target} (a Playwright storage \
         state; inside the cell: ~/{STORAGE_STATE})",
        state.cookies.len(),
        state.origins.len()
    );
    Ok(true)
}

fn read_regular(path: &Utf8Path) -> anyhow::Result<String> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut text = String::new();
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .with_context(|| format!("the browser driver left no storage state at {path}"))?;
    Ok(text)
}

fn same_dir(a: &Utf8Path, b: &Utf8Path) -> bool {
    a == b || matches!((a.canonicalize_utf8(), b.canonicalize_utf8()), (Ok(x), Ok(y)) if x == y)
}

/// Refuses symbolic links at `home/rel` for each `rel` (and their parents below `home`):
/// the launcher writes there on the host.
fn refuse_links(home: &Utf8Path, rels: &[&str]) -> anyhow::Result<()> {
    for rel in rels {
        let mut p = home.to_owned();
        for part in Utf8Path::new(rel).components() {
            p.push(part);
            if std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
                bail!("{p} is a symbolic link; cell login does not follow links in a cell's home (remove it)");
            }
        }
        if rel.is_empty() && std::fs::symlink_metadata(home).is_ok_and(|m| m.file_type().is_symlink()) {
            bail!("{home} is a symbolic link; cell login does not follow links in a cell's home (remove it)");
        }
    }
    Ok(())
}

/// Removes the `Singleton*` files a browser that died left in the profile (only once no
/// browser of a running cell uses it: [`free_profile`]).
fn remove_stale_singletons(profile: &Utf8Path) {
    for name in ["SingletonLock", "SingletonSocket", "SingletonCookie"] {
        let p = profile.join(name);
        if std::fs::symlink_metadata(&p).is_ok_and(|m| !m.is_dir()) {
            let _ = std::fs::remove_file(&p);
        }
    }
}

/// Whether any cookie store of the profile was modified at or after `since` (`None`: the
/// profile has none). Read before the flush, which may itself write.
#[must_use]
pub fn cookies_written_since(profile: &Utf8Path, since: SystemTime) -> Option<bool> {
    let mut found = false;
    for dir in ["Default", "Default/Network"] {
        for suffix in ["", "-journal", "-wal"] {
            let p = profile.join(dir).join(format!("Cookies{suffix}"));
            if let Ok(m) = std::fs::symlink_metadata(&p) {
                found = true;
                // Coarse file-system clocks may stamp a write slightly before `since`.
                if m.modified().is_ok_and(|t| t + Duration::from_millis(20) >= since) {
                    return Some(true);
                }
            }
        }
    }
    found.then_some(false)
}

/// SQLite databases of a profile: regular files with the SQLite header, at most three
/// levels deep, cache directories skipped.
#[must_use]
pub fn profile_databases(profile: &Utf8Path) -> Vec<Utf8PathBuf> {
    fn walk(dir: &Utf8Path, depth: usize, out: &mut Vec<Utf8PathBuf>) {
        let Ok(entries) = dir.read_dir_utf8() else { return };
        for e in entries.flatten() {
            let Ok(t) = e.file_type() else { continue };
            let name = e.file_name();
            if t.is_dir() && depth < 3 && !name.contains("Cache") && !name.contains("cache") {
                walk(e.path(), depth + 1, out);
            } else if t.is_file() && is_sqlite(e.path()) {
                out.push(e.path().to_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(profile, 0, &mut out);
    out.sort();
    out
}

fn is_sqlite(path: &Utf8Path) -> bool {
    use std::io::Read as _;
    let mut head = [0u8; 16];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)).is_ok() && &head == b"SQLite format 3\0"
}

/// Runs `cell-walflush` on the profile's databases; its report lines (paths relative to
/// the profile).
fn flush(host: &HostEnv, profile: &Utf8Path) -> anyhow::Result<Vec<String>> {
    let dbs = profile_databases(profile);
    if dbs.is_empty() {
        return Ok(Vec::new());
    }
    let walflush = launch::find_walflush(host)?;
    let out = std::process::Command::new(&walflush)
        .arg("--json")
        .arg("--")
        .args(&dbs)
        .output()
        .with_context(|| format!("cannot run {walflush}"))?;
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{walflush} printed no report: {}", String::from_utf8_lossy(&out.stderr).trim()))?;
    let mut lines = Vec::new();
    let mut failed = Vec::new();
    for db in doc.get("databases").and_then(serde_json::Value::as_array).into_iter().flatten() {
        let path = db.get("path").and_then(serde_json::Value::as_str).unwrap_or("?");
        let rel = Utf8Path::new(path).strip_prefix(profile).map_or(path.to_owned(), ToString::to_string);
        let msg = db.get("message").and_then(serde_json::Value::as_str).unwrap_or("");
        if db.get("ok").and_then(serde_json::Value::as_bool) == Some(true) {
            lines.push(format!("{rel}: {msg}"));
        } else {
            failed.push(format!("{path}: {msg}"));
        }
    }
    if !failed.is_empty() || !out.status.success() {
        bail!("cell-walflush could not make these consistent: {}", failed.join("; "));
    }
    Ok(lines)
}

/// A process of a running cell.
#[derive(Debug, Clone)]
struct CellProcess {
    pid: i32,
    ppid: i32,
    argv: Vec<String>,
    mcp_profile: Option<String>,
}

/// What a process is to the profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A browser MCP server on the profile (`--user-data-dir PROFILE` or Playwright MCP's
    /// variable).
    McpServer,
    /// A browser's main process on the profile (`--user-data-dir=PROFILE`, no `--type=`).
    Browser,
    Other,
}

fn role(p: &CellProcess, profile: &str) -> Role {
    let flag = format!("--user-data-dir={profile}");
    if p.argv.contains(&flag) && !p.argv.iter().any(|a| a.starts_with("--type=")) {
        return Role::Browser;
    }
    let split = p.argv.windows(2).any(|w| w[0] == "--user-data-dir" && w[1] == profile);
    if split || p.mcp_profile.as_deref() == Some(profile) {
        return Role::McpServer;
    }
    Role::Other
}

/// The processes of a running cell: those in the pid namespace of its `cell-init`.
fn processes(cell: &LiveCell) -> Vec<CellProcess> {
    let ns = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let Some(target) = ns(cell.init) else { return Vec::new() };
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        if ns(pid).as_ref() != Some(&target) {
            continue;
        }
        let split = |bytes: Vec<u8>| -> Vec<String> {
            bytes
                .split(|b| *b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        };
        let argv = split(std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default());
        let environ = split(std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default());
        let mcp_profile = environ
            .iter()
            .find_map(|v| v.strip_prefix(MCP_PROFILE_VAR).and_then(|r| r.strip_prefix('=')).map(str::to_owned));
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let ppid = stat.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().nth(1)?.parse().ok()).unwrap_or(0);
        out.push(CellProcess { pid, ppid, argv, mcp_profile });
    }
    out
}

/// Sends SIGTERM to the browser MCP servers of a cell and to the browsers they started;
/// returns those pids.
fn stop_mcp_servers(cell: &LiveCell, profile: &Utf8Path) -> Vec<i32> {
    let procs = processes(cell);
    let servers: Vec<i32> =
        procs.iter().filter(|p| role(p, profile.as_str()) == Role::McpServer).map(|p| p.pid).collect();
    let browsers =
        procs.iter().filter(|p| role(p, profile.as_str()) == Role::Browser && servers.contains(&p.ppid)).map(|p| p.pid);
    let all: Vec<i32> = servers.iter().copied().chain(browsers).collect();
    for pid in &all {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), nix::sys::signal::Signal::SIGTERM);
    }
    all
}

/// Before the login: stops the browser MCP servers of the cells sharing the profile and
/// refuses while another browser (an interactive one) still has it open.
fn free_profile(sharing: &[LiveCell], profile: &Utf8Path) -> anyhow::Result<()> {
    let mut stopped = Vec::new();
    for c in sharing {
        let pids = stop_mcp_servers(c, profile);
        if !pids.is_empty() {
            eprintln!(
                "cell login: stopped the browser MCP server of running cell {} (it restarts on its next call)",
                c.cell
            );
        }
        stopped.extend(pids);
    }
    let deadline = std::time::Instant::now() + STOP_GRACE;
    loop {
        let open: Vec<(String, i32)> = sharing
            .iter()
            .flat_map(|c| {
                processes(c)
                    .into_iter()
                    .filter(|p| role(p, profile.as_str()) == Role::Browser)
                    .map(|p| (c.cell.clone(), p.pid))
                    .collect::<Vec<_>>()
            })
            .collect();
        let Some((cell, pid)) = open.first() else { return Ok(()) };
        if stopped.is_empty() || std::time::Instant::now() > deadline {
            bail!(
                "the browser profile is open in running cell {cell} (browser pid {pid}); close that browser (or \
                 end the cell), then run cell login again: two browsers on one profile corrupt it"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(vars: &[(&str, &str)]) -> HostEnv {
        let mut h = HostEnv::capture().unwrap();
        h.vars = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        h
    }

    #[test]
    fn auto_picks_wayland_and_refuses_to_fall_back_to_x11() {
        let h = host(&[("WAYLAND_DISPLAY", "wayland-1"), ("XDG_RUNTIME_DIR", "/run/user/1000"), ("DISPLAY", ":0")]);
        let d = display_plan(Display::Auto, &h).unwrap();
        assert_eq!(d.binds, vec![ro("/run/user/1000/wayland-1".into(), None)]);
        assert_eq!(d.env["WAYLAND_DISPLAY"], "/run/user/1000/wayland-1");
        assert!(!d.headless);
        let e = display_plan(Display::Auto, &host(&[("DISPLAY", ":0")])).unwrap_err().to_string();
        assert!(e.contains("--display x11") && e.contains("every window"), "{e}");
    }

    #[test]
    fn x11_needs_a_local_display_and_binds_only_its_socket() {
        let d = display_plan(Display::X11, &host(&[("DISPLAY", ":3.0"), ("XAUTHORITY", "/nonexistent/xa")])).unwrap();
        assert_eq!(d.binds, vec![ro("/tmp/.X11-unix/X3".into(), None)]);
        assert_eq!(d.env.get("DISPLAY").map(String::as_str), Some(":3"));
        assert!(display_plan(Display::X11, &host(&[("DISPLAY", "remote:0")])).is_err());
        assert!(display_plan(Display::X11, &host(&[])).is_err());
        assert!(display_plan(Display::None, &host(&[])).unwrap().headless);
    }

    #[test]
    fn roles_tell_mcp_servers_from_browsers_and_renderers() {
        let p = |argv: &[&str], env: Option<&str>| CellProcess {
            pid: 1,
            ppid: 0,
            argv: argv.iter().map(|s| (*s).to_owned()).collect(),
            mcp_profile: env.map(str::to_owned),
        };
        let prof = "/home/u/.config/chromium";
        assert_eq!(role(&p(&["chromium", "--user-data-dir=/home/u/.config/chromium"], None), prof), Role::Browser);
        assert_eq!(
            role(&p(&["chromium", "--type=renderer", "--user-data-dir=/home/u/.config/chromium"], None), prof),
            Role::Other
        );
        assert_eq!(role(&p(&["node", "mcp", "--user-data-dir", prof], None), prof), Role::McpServer);
        assert_eq!(role(&p(&["node", "cli.js"], Some(prof)), prof), Role::McpServer);
        assert_eq!(role(&p(&["node", "cli.js"], Some("/elsewhere")), prof), Role::Other);
    }

    #[test]
    fn freshness_reads_the_cookie_store_times() {
        let dir = tempfile::tempdir().unwrap();
        let prof = Utf8Path::from_path(dir.path()).unwrap();
        let before = SystemTime::now() - Duration::from_secs(60);
        assert_eq!(cookies_written_since(prof, before), None);
        std::fs::create_dir_all(prof.join("Default")).unwrap();
        std::fs::write(prof.join("Default/Cookies"), b"x").unwrap();
        assert_eq!(cookies_written_since(prof, before), Some(true));
        assert_eq!(cookies_written_since(prof, SystemTime::now() + Duration::from_secs(60)), Some(false));
    }
}
