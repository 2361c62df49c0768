//! A display for a cell (`--display`, `cell login`'s window): only the display's socket is
//! bound, never the runtime directory around it; for X11 the cell gets that display's own
//! cookie, not the whole Xauthority file.

use std::collections::BTreeMap;

use anyhow::Context as _;
use camino::Utf8PathBuf;
use clap::ValueEnum;

use crate::host::config::{BindConfig, BindMode, Invalid};
use crate::host::hostenv::HostEnv;
use crate::host::plan::PlanError;

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

/// `cell login`'s display when `--display` is not given: `$CELL_DISPLAY`, else `auto`. Only
/// the login reads the variable, so exporting it never gives an agent's cell a display.
///
/// # Errors
/// [`PlanError`] when the variable holds no display kind.
pub fn display_from_env() -> Result<Display, PlanError> {
    match std::env::var("CELL_DISPLAY") {
        Ok(v) if !v.is_empty() => Display::from_str(&v, true).map_err(|_| {
            PlanError::from(Invalid::new(
                "$CELL_DISPLAY",
                format!("{v:?} is not a display kind"),
                "set it to auto, wayland, x11 or none, or unset it",
            ))
        }),
        _ => Ok(Display::Auto),
    }
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
    /// A file made for this launch (the X11 cookie), removed when the last clone drops.
    pub temp: Option<std::sync::Arc<TempFile>>,
}

/// A file removed when dropped.
#[derive(Debug, PartialEq, Eq)]
pub struct TempFile(pub Utf8PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The entries of an Xauthority file (big-endian: family u16, then address, display
/// number, auth name and data, each a u16 length and bytes) for display `number` of this
/// host (`hostname`), as xauth picks them: local ones for this host name, and wildcards.
#[must_use]
pub fn xauth_entries_for(file: &[u8], number: &str, hostname: &str) -> Vec<u8> {
    const FAMILY_LOCAL: u16 = 256;
    const FAMILY_WILD: u16 = 65535;
    let mut out = Vec::new();
    let mut at = 0usize;
    let field = |at: &mut usize| -> Option<(usize, usize)> {
        let len = usize::from(u16::from_be_bytes([*file.get(*at)?, *file.get(*at + 1)?]));
        let start = *at + 2;
        let end = start.checked_add(len).filter(|e| *e <= file.len())?;
        *at = end;
        Some((start, end))
    };
    while at + 2 <= file.len() {
        let begin = at;
        let family = u16::from_be_bytes([file[at], file[at + 1]]);
        at += 2;
        let (Some((addr_start, addr_end)), Some((ns, ne)), Some(_), Some(_)) =
            (field(&mut at), field(&mut at), field(&mut at), field(&mut at))
        else {
            break;
        };
        let here =
            family == FAMILY_WILD || (family == FAMILY_LOCAL && &file[addr_start..addr_end] == hostname.as_bytes());
        if here && &file[ns..ne] == number.as_bytes() {
            out.extend_from_slice(&file[begin..at]);
        }
    }
    out
}

/// Writes `bytes` to a new 0600 file in the launcher's private runtime directory.
fn private_temp(host: &HostEnv, name: &str, bytes: &[u8]) -> anyhow::Result<Utf8PathBuf> {
    let base = host.runtime_base();
    if let Some(top) = base.parent() {
        std::fs::create_dir_all(top).with_context(|| format!("cannot create {top}"))?;
    }
    crate::sys::private_dir(&base, false)?;
    let path = base.join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    crate::sys::write_new_private(&path, bytes)?;
    Ok(path)
}

/// A read-only bind of `src` (at `dst`, else the same path).
pub(crate) fn ro(src: Utf8PathBuf, dst: Option<Utf8PathBuf>) -> BindConfig {
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
                    "use a Wayland session, or pass --display x11 (for `cell login` and the Nix browser \
                     wrapper also CELL_DISPLAY=x11) to share this X11 display with the cell (an X11 client can \
                     read and type into every window of the display), or --display none for a headless browser"
                } else {
                    "use a Wayland session, or pass --display none (CELL_DISPLAY=none) for a headless browser"
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
                temp: None,
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
            let mut temp = None;
            if let Ok(all) = std::fs::read(&auth) {
                // Only this display's cookies, never the whole file (which may hold those of
                // other and remote displays).
                let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
                let mine = xauth_entries_for(&all, number, hostname.trim());
                if !mine.is_empty() {
                    let path = private_temp(host, "xauthority", &mine).map_err(|e| {
                        bad(
                            "--display",
                            format!("cannot write the X11 cookie for the cell: {e:#}"),
                            "check $XDG_RUNTIME_DIR",
                        )
                    })?;
                    let inside = Utf8PathBuf::from("/run/cell/Xauthority");
                    binds.push(ro(path.clone(), Some(inside.clone())));
                    env.insert("XAUTHORITY".to_owned(), inside.to_string());
                    temp = Some(std::sync::Arc::new(TempFile(path)));
                }
            }
            Ok(DisplayPlan { binds, env, args: vec!["--ozone-platform=x11".to_owned()], headless: false, temp })
        }
    }
}
