//! Managing cells: `cell ps`, `cell stop`, `cell du`, `cell reset`.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd};

use anyhow::Context as _;
use camino::{Utf8Path, Utf8PathBuf};

use crate::host::config;
use crate::host::home::{disk_use, human, remove_home};
use crate::host::hostenv::HostEnv;
use crate::host::launch::{self, LiveCell};
use crate::host::plan::{self, PlanError};
use crate::host::prepare;
use crate::sys::escape_controls;

/// How long `cell stop` waits for a cell's init to end after SIGTERM.
const STOP_WAIT_MS: u16 = 10_000;

/// `cell ps`: the running cells of this account.
///
/// # Errors
/// When the configuration cannot be read (a root launcher needs it for the account).
pub fn ps(config: Option<&Utf8Path>) -> anyhow::Result<u8> {
    let host = prepare::cell_host(config, None, None)?;
    let cells = launch::live_cells(&host.runtime_base());
    if cells.is_empty() {
        println!("no cell is running");
        return Ok(0);
    }
    let now = crate::sys::since_epoch().as_secs();
    let rows: Vec<[String; 6]> = cells
        .iter()
        .map(|c| {
            [
                escape_controls(&c.cell),
                escape_controls(c.worktree.as_str()),
                if c.started == 0 { "?".to_owned() } else { uptime(now.saturating_sub(c.started)) },
                if c.proxy { "on".to_owned() } else { "off".to_owned() },
                c.init.to_string(),
                if c.published.is_empty() { "-".to_owned() } else { escape_controls(&c.published.join(", ")) },
            ]
        })
        .collect();
    let header = ["CELL", "WORKTREE", "UPTIME", "PROXY", "PID", "PORTS"].map(str::to_owned);
    let mut widths = [0usize; 6];
    for r in std::iter::once(&header).chain(&rows) {
        for (w, f) in widths.iter_mut().zip(r) {
            *w = (*w).max(f.chars().count());
        }
    }
    for r in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = r.iter().zip(widths).map(|(f, w)| format!("{f:<w$}")).collect();
        println!("{}", line.join("  ").trim_end());
    }
    Ok(0)
}

/// `1h02m`, `3m05s`, `42s`, `2d04h`.
fn uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d{h:02}h")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// `cell stop NAME`: SIGTERM to the init of each running instance of the cell, through a
/// pidfd checked against the recorded pid namespace and start time, then waits for each to end
/// (its launcher then cleans up as usual).
///
/// # Errors
/// When the configuration cannot be read.
pub fn stop(config: Option<&Utf8Path>, name: &str) -> anyhow::Result<u8> {
    let host = prepare::cell_host(config, Some(name), None)?;
    let running: Vec<LiveCell> =
        launch::live_cells(&host.runtime_base()).into_iter().filter(|c| c.cell == name).collect();
    if running.is_empty() {
        eprintln!("cell: cell {name} is not running (`cell ps` lists the running cells)");
        return Ok(1);
    }
    let mut failed = false;
    for c in &running {
        // Left for the cell's launcher, which then says why its cell ended (it removes it).
        let marker = launch::stop_marker(
            &host.runtime_base().join(crate::host::plan::LIVE_DIR).join(format!("{}.json", c.launcher)),
        );
        let _ = std::fs::write(&marker, b"");
        let result = terminate(c);
        if result.is_err() {
            let _ = std::fs::remove_file(&marker);
        }
        match result {
            Ok(fd) => {
                let mut fds = [nix::poll::PollFd::new(fd.as_fd(), nix::poll::PollFlags::POLLIN)];
                let ended = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(STOP_WAIT_MS)).is_ok_and(|n| n > 0);
                if ended {
                    println!("stopped cell {name} (pid {})", c.init);
                } else {
                    // It may never end by this stop (an interactive shell ignores SIGTERM):
                    // its launcher must not say later that `cell stop` ended it.
                    let _ = std::fs::remove_file(&marker);
                    eprintln!(
                        "cell: cell {name} (pid {}) got SIGTERM but has not ended yet (an interactive shell ignores it: exit it, or kill -KILL {})",
                        c.init, c.init
                    );
                    failed = true;
                }
            }
            Err(e) => {
                eprintln!("cell: cannot stop cell {name} (pid {}): {e:#}", c.init);
                failed = true;
            }
        }
    }
    Ok(u8::from(failed))
}

/// Sends SIGTERM to a cell's init through a pidfd taken before the check that the pid is
/// still that init (its pid namespace and start time), so a reused pid is never hit.
fn terminate(cell: &LiveCell) -> anyhow::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags; it returns a new descriptor or -1.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, cell.init, 0u32) };
    let fd = i32::try_from(fd).ok().filter(|f| *f >= 0).context("the process is gone")?;
    // SAFETY: fd was just returned by pidfd_open and is owned here.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    if launch::pid_namespace(cell.init).as_ref() != Some(&cell.ns) || launch::start_time(cell.init) != Some(cell.start)
    {
        anyhow::bail!("the pid is no longer the cell's init");
    }
    // SAFETY: pidfd_send_signal with a pidfd we own, a signal number, no info, no flags.
    let r = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            nix::libc::SIGTERM,
            std::ptr::null::<nix::libc::siginfo_t>(),
            0u32,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error()).context("pidfd_send_signal failed");
    }
    Ok(fd)
}

/// The home and state directories of every cell the configuration names, and of cells
/// that left directories behind; each path once.
fn cell_dirs(host: &HostEnv, cfg: &config::ConfigFile) -> Vec<(String, &'static str, Utf8PathBuf)> {
    let mut names: Vec<String> = cfg.cells.keys().cloned().collect();
    for base in [host.data_home().join("cell"), host.state_home().join("cell")] {
        if let Ok(entries) = base.read_dir_utf8() {
            names.extend(entries.flatten().filter(|e| e.path().is_dir()).map(|e| e.file_name().to_owned()));
        }
    }
    names.sort();
    names.dedup();
    let mut out: Vec<(String, &'static str, Utf8PathBuf)> = Vec::new();
    for n in names {
        let home = home_of(host, cfg, &n);
        for (what, p) in [("home", home), ("state", host.state_home().join("cell").join(&n))] {
            if std::fs::symlink_metadata(&p).is_ok() && !out.iter().any(|(_, _, q)| *q == p) {
                out.push((n.clone(), what, p));
            }
        }
    }
    out
}

fn home_of(host: &HostEnv, cfg: &config::ConfigFile, name: &str) -> Utf8PathBuf {
    cfg.cells
        .get(name)
        .and_then(|c| c.home.path.clone())
        .unwrap_or_else(|| host.data_home().join("cell").join(name).join("home"))
}

/// `cell du`: disk use of each cell's home and state directories, largest first.
///
/// # Errors
/// When the configuration cannot be read.
pub fn du(config: Option<&Utf8Path>) -> anyhow::Result<u8> {
    let host = prepare::cell_host(config, None, None)?;
    let (_, cfg) = prepare::load_config(config, &host)?;
    let mut rows: Vec<(u64, String, &str, Utf8PathBuf)> =
        cell_dirs(&host, &cfg).into_iter().map(|(n, w, p)| (disk_use(&p), n, w, p)).collect();
    if rows.is_empty() {
        println!("no cell has a home or state directory yet");
        return Ok(0);
    }
    rows.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.3.cmp(&b.3)));
    let width = rows.iter().map(|r| r.1.len()).max().unwrap_or(4);
    for (size, name, what, path) in &rows {
        println!("{:>8}  {name:<width$}  {what:<5}  {}", human(*size), escape_controls(path.as_str()));
    }
    Ok(0)
}

/// `cell reset NAME`: deletes the cell's home after confirmation, refused while a cell that
/// uses that home runs.
///
/// # Errors
/// [`PlanError`] without confirmation; anything else when the home cannot be removed.
pub fn reset(config: Option<&Utf8Path>, name: &str, yes: bool) -> anyhow::Result<u8> {
    let host = prepare::cell_host(config, Some(name), None)?;
    let (source, cfg) = prepare::load_config(config, &host)?;
    plan::select_cell(&cfg, &source, Some(name))?;
    let home = home_of(&host, &cfg, name);
    if std::fs::symlink_metadata(&home).is_err() {
        println!("cell {name} has no home yet ({home} does not exist)");
        return Ok(0);
    }
    let same =
        |p: &Utf8Path| p == home || (crate::sys::canonical_utf8(p).ok() == crate::sys::canonical_utf8(&home).ok());
    let users: Vec<LiveCell> =
        launch::live_cells(&host.runtime_base()).into_iter().filter(|c| c.cell == name || same(&c.home)).collect();
    if let Some(c) = users.first() {
        eprintln!(
            "cell: cell {} (pid {}) is running with the home {home}; stop it first (`cell stop {}`)",
            c.cell, c.init, c.cell
        );
        return Ok(1);
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(PlanError::from(config::Invalid::new(
                "cell reset",
                format!("deleting {home} needs a confirmation, and there is no terminal to ask on"),
                format!("run `cell reset {name} --yes`"),
            ))
            .into());
        }
        eprint!("delete the home of cell {name}, {home} ({})? [y/N] ", human(disk_use(&home)));
        std::io::stderr().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("kept {home}");
            return Ok(1);
        }
    }
    remove_home(&home)?;
    println!("deleted the home of cell {name} ({home}); the next launch starts with a fresh one");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptimes() {
        assert_eq!(uptime(42), "42s");
        assert_eq!(uptime(185), "3m05s");
        assert_eq!(uptime(3720), "1h02m");
        assert_eq!(uptime(2 * 86_400 + 4 * 3600), "2d04h");
    }
}
