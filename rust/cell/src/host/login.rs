//! `cell login`, the launcher's half: starts a cell whose command is the browser driver
//! (`cell-init` with a browser-login spec, inside the cell), then makes the profile consistent with `cell-walflush`, warns when
//! the cookie store was not written during the login, moves the driver's storage state into
//! place, and restarts the browser MCP servers of running cells that share the profile.
//!
//! Nothing is exported unless the browser closed gracefully and every database of the
//! profile is consistent; the previous storage state stays until then.

use std::os::fd::OwnedFd;
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use anyhow::{bail, Context as _};
use camino::Utf8Path;

use crate::contract::CHROMIUM_PROFILE;
use crate::contract::{LoginSpec, EXIT_CANCELLED};
use crate::host::config::Invalid;
use crate::host::launch::{self, LiveCell};
use crate::host::plan::{self, PlanError};

/// Where the storage state goes, relative to the cell's home.
pub const STORAGE_STATE: &str = ".playwright/storage-state.json";
/// Its directory.
const STATE_DIR: &str = ".playwright";
/// `cell-walflush` inside a login cell.
const WALFLUSH_PATH: &str = "/run/cell/cell-walflush";
/// The largest storage state accepted.
const MAX_STATE_BYTES: u64 = 64 << 20;
/// The variable through which Playwright MCP learns its profile.
const MCP_PROFILE_VAR: &str = "PLAYWRIGHT_MCP_USER_DATA_DIR";
/// How long stopped browsers of other cells get to exit.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// What `cell login` was asked.
#[derive(Debug, Clone)]
pub struct Request {
    /// The display.
    pub display: crate::host::display::Display,
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
pub fn run(
    config_flag: Option<&Utf8Path>,
    cell_args: &crate::host::prepare::CellArgs,
    req: &Request,
) -> anyhow::Result<u8> {
    let host = crate::host::prepare::cell_host(config_flag, cell_args.cell.as_deref(), None)?;
    let LoginCell { plan, tmp_name, inside_profile } = login_cell(config_flag, cell_args, req, &host)?;

    // Everything in the profile happens inside the cell (the driver cleans, flushes and
    // checks it); the host touches the cell's home only through `STATE_DIR`, opened once
    // without following links.
    refuse_links(&plan.home, STATE_DIR)?;
    let sharing: Vec<LiveCell> =
        launch::live_cells(&host.runtime_base()).into_iter().filter(|c| same_dir(&c.home, &plan.home)).collect();
    free_profile(&sharing, &inside_profile, &plan.home)?;

    let code = match crate::host::prepare::run_plan(&plan, &host, None) {
        Ok(Some(code)) => code,
        Ok(None) => {
            discard(&plan.home, &tmp_name);
            return Ok(launch::EXIT_CANNOT_START);
        }
        Err(e) => {
            discard(&plan.home, &tmp_name);
            return Err(e);
        }
    };
    if code == EXIT_CANCELLED {
        discard(&plan.home, &tmp_name);
        return Ok(130);
    }
    if code != 0 {
        discard(&plan.home, &tmp_name);
        bail!(
            "the browser login failed (exit {code}; the messages above say why); nothing was exported, the \
             previous storage state (if any) is unchanged; the browser's output is in ~/{} of the cell's home",
            crate::contract::BROWSER_LOG
        );
    }
    let exported = export(&plan.home, &tmp_name);
    if exported.is_err() {
        discard(&plan.home, &tmp_name);
    }
    let (cookies, origins) = exported?;
    eprintln!(
        "cell login: exported {cookies} cookie(s) and the local storage of {origins} origin(s) to {} (a \
         Playwright storage state; inside the cell: ~/{STORAGE_STATE})",
        plan.home.join(STORAGE_STATE)
    );
    restart_mcp_servers(&host, &plan.home, &inside_profile);
    Ok(0)
}

/// The planned login cell.
struct LoginCell {
    /// Its plan: the driver as the command, the display, `cell-walflush`.
    plan: crate::host::plan::Plan,
    /// The driver's storage state file, in the cell home's `STATE_DIR`.
    tmp_name: String,
    /// The browser profile, inside.
    inside_profile: camino::Utf8PathBuf,
}

/// Plans the login cell: the cell's browser, driven by `cell-init` with a
/// [`crate::contract::InitSpec::BrowserLogin`], on the display asked for, with `cell-walflush`.
fn login_cell(
    config_flag: Option<&Utf8Path>,
    cell_args: &crate::host::prepare::CellArgs,
    req: &Request,
    host: &crate::host::hostenv::HostEnv,
) -> anyhow::Result<LoginCell> {
    let (source, config) = crate::host::prepare::load_config(config_flag, host)?;
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
    let display = crate::host::display::display_plan(req.display, host)?;
    let tmp_name = format!(".storage-state.{}.tmp", std::process::id());
    let spec = LoginSpec {
        command: browser.command.clone(),
        profile: CHROMIUM_PROFILE.into(),
        state_file: Utf8Path::new(STATE_DIR).join(&tmp_name),
        headless: display.headless,
        extra_args: display.args.clone(),
        url: req.url.clone(),
        close_timeout_secs: req.close_timeout_secs,
        walflush: WALFLUSH_PATH.into(),
    };
    let mut args = cell_args.clone();
    args.cell = Some(name.clone());
    // The display comes in `extra`, with the browser's own arguments.
    args.display = None;
    let mut binds = display.binds.clone();
    let walflush = crate::host::tools::find_walflush(host)?;
    binds.push(crate::host::display::ro(walflush.clone(), Some(WALFLUSH_PATH.into())));
    let extra = crate::host::prepare::Extra {
        binds,
        env: display.env.clone(),
        temp: display.temp,
        shell: false,
        task: Some(crate::contract::InitSpec::BrowserLogin(spec)),
    };
    let plan = crate::host::prepare::make_plan(config_flag, &args, &[], host, None, &extra)?;
    plan::check_program(
        &plan.mounts,
        "cell-walflush",
        &walflush,
        "install cell with all its binaries outside the worktree and the cell home, or point $CELL_WALFLUSH at them",
    )?;
    let inside_profile = plan.user.home.join(CHROMIUM_PROFILE);
    Ok(LoginCell { plan, tmp_name, inside_profile })
}

/// Restarts the browser MCP servers of the running cells that share the login's home, so
/// that they use the new login.
fn restart_mcp_servers(host: &crate::host::hostenv::HostEnv, home: &Utf8Path, inside_profile: &Utf8Path) {
    for c in launch::live_cells(&host.runtime_base()).into_iter().filter(|c| same_dir(&c.home, home)) {
        let n = stop_mcp_servers(&c, inside_profile).len();
        if n > 0 {
            eprintln!(
                "cell login: restarted {n} browser MCP server(s) in running cell {} (pid {}); its agent starts \
                 them again on the next browser call, with the new login",
                c.cell, c.launcher
            );
        }
    }
}

/// The cell's `STATE_DIR`, opened without following a link.
fn state_dir(home: &Utf8Path) -> anyhow::Result<OwnedFd> {
    let home_fd = nix::fcntl::open(home.as_std_path(), OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .with_context(|| format!("cannot open {home}"))?;
    nix::fcntl::openat(&home_fd, STATE_DIR, OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())
        .with_context(|| format!("cannot open {home}/{STATE_DIR} (it must be a directory, not a link)"))
}

/// Checks the driver's file and puts what it read over the storage state, all relative to
/// the state directory's descriptor; returns the number of cookies and origins.
fn export(home: &Utf8Path, tmp_name: &str) -> anyhow::Result<(usize, usize)> {
    use std::io::{Read as _, Write as _};
    let dir = state_dir(home)?;
    let fd = nix::fcntl::openat(
        &dir,
        tmp_name,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("the browser driver left no storage state ({STATE_DIR}/{tmp_name})"))?;
    let file = std::fs::File::from(fd);
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        bail!("{STATE_DIR}/{tmp_name} in the cell's home is not a regular file");
    }
    let mut text = String::new();
    file.take(MAX_STATE_BYTES + 1).read_to_string(&mut text).context("cannot read the storage state")?;
    if text.len() as u64 > MAX_STATE_BYTES {
        bail!("the storage state is larger than {MAX_STATE_BYTES} bytes; not exported");
    }
    let state: crate::contract::StorageState =
        serde_json::from_str(&text).context("the driver's file is not a storage state")?;
    // The host writes the bytes it checked into a file it creates itself, so what lands
    // at the target is exactly that, whatever happens to the driver's file meanwhile.
    let target = Utf8Path::new(STORAGE_STATE).file_name().unwrap_or("storage-state.json");
    let fresh = format!("{tmp_name}.checked");
    let _ = nix::unistd::unlinkat(&dir, fresh.as_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
    let out = nix::fcntl::openat(
        &dir,
        fresh.as_str(),
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .context("cannot create the storage state")?;
    let written = std::fs::File::from(out).write_all(text.as_bytes()).context("cannot write the storage state");
    let moved = written.and_then(|()| {
        nix::fcntl::renameat(&dir, fresh.as_str(), &dir, target).context("cannot move the storage state into place")
    });
    if moved.is_err() {
        let _ = nix::unistd::unlinkat(&dir, fresh.as_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
    }
    moved?;
    let _ = nix::unistd::unlinkat(&dir, tmp_name, nix::unistd::UnlinkatFlags::NoRemoveDir);
    Ok((state.cookies.len(), state.origins.len()))
}

/// Removes the driver's file, if any (relative to the state directory).
fn discard(home: &Utf8Path, tmp_name: &str) {
    if let Ok(dir) = state_dir(home) {
        let _ = nix::unistd::unlinkat(&dir, tmp_name, nix::unistd::UnlinkatFlags::NoRemoveDir);
    }
}

fn same_dir(a: &Utf8Path, b: &Utf8Path) -> bool {
    a == b || matches!((crate::sys::canonical_utf8(a), crate::sys::canonical_utf8(b)), (Ok(x), Ok(y)) if x == y)
}

/// Refuses a symbolic link at `home/rel`: a clear message before the launch (the export
/// itself never follows one).
fn refuse_links(home: &Utf8Path, rel: &str) -> anyhow::Result<()> {
    let p = home.join(rel);
    if std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
        bail!("{p} is a symbolic link; cell login does not follow links in a cell's home (remove it)");
    }
    Ok(())
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

/// The processes of a running cell: those in the pid namespace its record names.
fn processes(cell: &LiveCell) -> Vec<CellProcess> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        if launch::pid_namespace(pid).as_ref() != Some(&cell.ns) {
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

/// Opens the cell's pid namespace (through its pid 1, checked to be the recorded one): while
/// the file is open the namespace lives, so its inode names no other.
fn pin_namespace(cell: &LiveCell) -> Option<std::fs::File> {
    let file = std::fs::File::open(format!("/proc/{}/ns/pid", cell.init)).ok()?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    let ns = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?.into_os_string().into_string().ok()?;
    (ns == cell.ns && launch::start_time(cell.init) == Some(cell.start)).then_some(file)
}

/// Sends SIGTERM to `pid` only while it is still in the cell's pid namespace: the signal
/// goes through a pidfd taken before the check, so a pid reused meanwhile is not hit.
fn terminate_in(cell: &LiveCell, pid: i32) {
    // SAFETY: pidfd_open takes a pid and flags; it returns a new descriptor or -1.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0u32) };
    let Ok(fd) = i32::try_from(fd) else { return };
    if fd < 0 {
        return;
    }
    // SAFETY: fd was just returned by pidfd_open and is owned here.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    if launch::pid_namespace(pid).as_ref() != Some(&cell.ns) {
        return;
    }
    // SAFETY: pidfd_send_signal with a pidfd we own, a signal number, no info, no flags.
    unsafe {
        nix::libc::syscall(
            nix::libc::SYS_pidfd_send_signal,
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            nix::libc::SIGTERM,
            std::ptr::null::<nix::libc::siginfo_t>(),
            0u32,
        );
    }
}

/// Sends SIGTERM to the browser MCP servers of a cell and to the browsers they started;
/// returns those pids.
fn stop_mcp_servers(cell: &LiveCell, profile: &Utf8Path) -> Vec<i32> {
    // Holding the namespace keeps its inode from going to another namespace meanwhile.
    let Some(_pin) = pin_namespace(cell) else { return Vec::new() };
    let procs = processes(cell);
    let servers: Vec<i32> =
        procs.iter().filter(|p| role(p, profile.as_str()) == Role::McpServer).map(|p| p.pid).collect();
    let browsers =
        procs.iter().filter(|p| role(p, profile.as_str()) == Role::Browser && servers.contains(&p.ppid)).map(|p| p.pid);
    let all: Vec<i32> = servers.iter().copied().chain(browsers).collect();
    for pid in &all {
        terminate_in(cell, *pid);
    }
    all
}

/// Who holds the profile's `SingletonLock` (`HOST-PID`), if that process still runs: a
/// browser in a running cell sharing the home (host name `cell-NAME`, the pid its own
/// namespace gives it) or one on this host. Catches browsers started without
/// `--user-data-dir` (Chromium's default profile is this one).
fn lock_holder(home: &Utf8Path, sharing: &[LiveCell]) -> Option<String> {
    let target = read_lock(home)?;
    let (name, pid) = target.to_str()?.rsplit_once('-')?;
    let pid: i32 = pid.parse().ok()?;
    for c in sharing {
        if name == format!("cell-{}", c.cell.replace('_', "-"))
            && processes(c).iter().any(|p| innermost_pid(p.pid) == Some(pid))
        {
            return Some(format!("running cell {} (browser pid {pid} inside it)", c.cell));
        }
    }
    let me = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?.trim().to_owned();
    (name == me && Utf8Path::new(&format!("/proc/{pid}")).exists())
        .then(|| format!("a browser of this host (pid {pid})"))
}

/// The target of the profile's `SingletonLock`, read through descriptors opened without
/// following links (the home is the agents' to rearrange).
fn read_lock(home: &Utf8Path) -> Option<std::ffi::OsString> {
    let mut dir = nix::fcntl::open(home.as_std_path(), OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty()).ok()?;
    for part in Utf8Path::new(CHROMIUM_PROFILE).components() {
        dir = nix::fcntl::openat(
            &dir,
            part.as_str(),
            OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
            Mode::empty(),
        )
        .ok()?;
    }
    nix::fcntl::readlinkat(&dir, "SingletonLock").ok()
}

/// The pid a process has in its own pid namespace (the last `NSpid` entry).
fn innermost_pid(pid: i32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("NSpid:"))?.split_whitespace().last()?.parse().ok()
}

/// Before the login: stops the browser MCP servers of the cells sharing the profile and
/// refuses while another browser (an interactive one) still has it open.
fn free_profile(sharing: &[LiveCell], profile: &Utf8Path, home: &Utf8Path) -> anyhow::Result<()> {
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
        let holder = open
            .first()
            .map(|(cell, pid)| format!("running cell {cell} (browser pid {pid})"))
            .or_else(|| lock_holder(home, sharing));
        let Some(holder) = holder else { return Ok(()) };
        if stopped.is_empty() || std::time::Instant::now() > deadline {
            bail!(
                "the browser profile is open in {holder}; close that browser (or end the cell), then run cell \
                 login again: two browsers on one profile corrupt it"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::display::ro;
    use crate::host::hostenv::HostEnv;

    fn host(vars: &[(&str, &str)]) -> HostEnv {
        let mut h = HostEnv::capture().unwrap();
        h.vars = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        h
    }

    #[test]
    fn auto_picks_wayland_and_refuses_to_fall_back_to_x11() {
        let h = host(&[("WAYLAND_DISPLAY", "wayland-1"), ("XDG_RUNTIME_DIR", "/run/user/1000"), ("DISPLAY", ":0")]);
        let d = crate::host::display::display_plan(crate::host::display::Display::Auto, &h).unwrap();
        assert_eq!(d.binds, vec![ro("/run/user/1000/wayland-1".into(), None)]);
        assert_eq!(d.env["WAYLAND_DISPLAY"], "/run/user/1000/wayland-1");
        assert!(!d.headless);
        let e = crate::host::display::display_plan(crate::host::display::Display::Auto, &host(&[("DISPLAY", ":0")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--display x11") && e.contains("every window"), "{e}");
    }

    #[test]
    fn x11_needs_a_local_display_and_binds_only_its_socket() {
        let d = crate::host::display::display_plan(
            crate::host::display::Display::X11,
            &host(&[("DISPLAY", ":3.0"), ("XAUTHORITY", "/nonexistent/xa")]),
        )
        .unwrap();
        assert!(d.temp.is_none());
        assert_eq!(d.binds, vec![ro("/tmp/.X11-unix/X3".into(), None)]);
        assert_eq!(d.env.get("DISPLAY").map(String::as_str), Some(":3"));
        assert!(crate::host::display::display_plan(
            crate::host::display::Display::X11,
            &host(&[("DISPLAY", "remote:0")])
        )
        .is_err());
        assert!(crate::host::display::display_plan(crate::host::display::Display::X11, &host(&[])).is_err());
        assert!(crate::host::display::display_plan(crate::host::display::Display::None, &host(&[])).unwrap().headless);
    }

    #[test]
    fn export_moves_only_a_regular_file_and_never_blocks_or_follows_links() {
        let dir = tempfile::tempdir().unwrap();
        let home = Utf8Path::from_path(dir.path()).unwrap();
        std::fs::create_dir(home.join(STATE_DIR)).unwrap();
        let state = home.join(STATE_DIR);
        std::fs::write(state.join("good.tmp"), r#"{"cookies":[{"name":"a"}],"origins":[]}"#).unwrap();
        assert_eq!(export(home, "good.tmp").unwrap(), (1, 0));
        assert!(home.join(STORAGE_STATE).is_file() && !state.join("good.tmp").exists());

        nix::unistd::mkfifo(state.join("fifo.tmp").as_std_path(), Mode::from_bits_truncate(0o600)).unwrap();
        let e = export(home, "fifo.tmp").unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        std::os::unix::fs::symlink(home.join(STORAGE_STATE), state.join("link.tmp")).unwrap();
        assert!(export(home, "link.tmp").is_err());
        std::fs::write(state.join("bad.tmp"), "not json").unwrap();
        assert!(export(home, "bad.tmp").is_err());
        discard(home, "bad.tmp");
        assert!(!state.join("bad.tmp").exists());
        assert_eq!(
            std::fs::read_to_string(home.join(STORAGE_STATE)).unwrap(),
            r#"{"cookies":[{"name":"a"}],"origins":[]}"#
        );

        let other = tempfile::tempdir().unwrap();
        let moved = Utf8Path::from_path(other.path()).unwrap();
        std::fs::rename(&state, moved.join("real")).unwrap();
        std::os::unix::fs::symlink(moved.join("real"), &state).unwrap();
        std::fs::write(moved.join("real/x.tmp"), r#"{"cookies":[],"origins":[]}"#).unwrap();
        assert!(export(home, "x.tmp").is_err(), "followed a linked state directory");
        assert!(refuse_links(home, STATE_DIR).is_err());
    }

    #[test]
    fn only_the_display_s_own_cookies_are_kept() {
        let entry = |family: u16, addr: &str, num: &str, data: &[u8]| {
            let mut v = family.to_be_bytes().to_vec();
            for f in [addr.as_bytes(), num.as_bytes(), b"MIT-MAGIC-COOKIE-1".as_slice(), data] {
                v.extend_from_slice(&u16::try_from(f.len()).unwrap().to_be_bytes());
                v.extend_from_slice(f);
            }
            v
        };
        let local3 = entry(256, "host", "3", &[1; 16]);
        let local0 = entry(256, "host", "0", &[2; 16]);
        let remote3 = entry(0, "\x0a\x00\x00\x01", "3", &[3; 16]);
        let wild3 = entry(65535, "", "3", &[4; 16]);
        let other3 = entry(256, "otherhost", "3", &[5; 16]);
        let file = [local0.clone(), local3.clone(), remote3, wild3.clone(), other3].concat();
        assert_eq!(crate::host::display::xauth_entries_for(&file, "3", "host"), [local3, wild3].concat());
        assert_eq!(crate::host::display::xauth_entries_for(&file, "0", "host"), local0);
        assert!(crate::host::display::xauth_entries_for(&file, "7", "host").is_empty());
        // A truncated file yields the whole entries before the cut, nothing after.
        assert_eq!(
            crate::host::display::xauth_entries_for(&file[..file.len() - 5], "0", "host"),
            entry(256, "host", "0", &[2; 16])
        );
        assert!(crate::host::display::xauth_entries_for(b"\x01", "0", "host").is_empty());
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
}
