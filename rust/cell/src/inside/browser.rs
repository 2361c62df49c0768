//! The in-cell half of `cell login`: `cell-init --spec TASK` (a [`crate::contract::InitSpec::BrowserLogin`]) starts the cell's
//! browser on the cell's profile with the DevTools protocol on a pipe (descriptors 3 and 4,
//! `--remote-debugging-pipe`), waits for the person (Enter on standard input), then reads
//! the cookies and the local storage of the open pages over the protocol and closes the
//! browser with `Browser.close`: the shutdown that writes fresh cookies to disk (a SIGTERM
//! loses them). What it read becomes a Playwright storage state in a file the launcher
//! moves into place once the profile is known to be consistent (the launcher's `cell login`).

use std::io::{Read as _, Write as _};
use std::os::fd::{AsFd as _, AsRawFd as _};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::contract::{LoginSpec, StorageState, BROWSER_LOG, EXIT_CANCELLED};
use anyhow::{bail, Context as _};
use camino::{Utf8Path, Utf8PathBuf};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use serde_json::{json, Value};

/// Runs the driver; returns its exit code (0 exported, [`EXIT_CANCELLED`], 1 failed).
///
/// # Errors
/// When the browser cannot be started or closed, or the state cannot be written.
pub fn run(spec: &LoginSpec) -> anyhow::Result<u8> {
    if spec.command.is_empty() {
        bail!("the browser command is empty");
    }
    let home = Utf8PathBuf::from(std::env::var("HOME").context("HOME is not set in the cell")?);
    let profile = home.join(&spec.profile);
    std::fs::create_dir_all(&profile).with_context(|| format!("cannot create the profile {profile}"))?;
    // The launcher checked that no browser of a running cell has the profile open, so
    // these are left by one that died; Chromium would refuse the profile while they exist.
    remove_stale_singletons(&profile);

    let mut mask = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGQUIT] {
        mask.add(s);
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None).context("cannot block signals")?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC).context("cannot create a signalfd")?;

    let started = SystemTime::now();
    let outcome = login(spec, &profile, &signals);
    // Whatever happened, the browser is gone now: make its databases consistent, and only
    // then look at what the login brought.
    let fresh = cookies_written_since(&profile, started);
    flush(&spec.walflush, &profile)?;
    if fresh != Some(true) {
        eprintln!(
            "cell login: warning: the cookie store was not written during this login (did you log in?); the \
             profile keeps what it had"
        );
    }
    let Some(state) = outcome? else {
        eprintln!("cell login: cancelled; the browser was closed gracefully, nothing was exported");
        return Ok(EXIT_CANCELLED);
    };
    if state.cookies.is_empty() && fresh == Some(true) {
        eprintln!("cell login: warning: the browser holds no cookies at all (did you log in?)");
    }
    write_new_private(&home.join(&spec.state_file), &serde_json::to_vec_pretty(&state)?)?;
    Ok(0)
}

/// The browser part: start, wait for the person, read the state, close. `None`: cancelled.
fn login(spec: &LoginSpec, profile: &Utf8Path, signals: &SignalFd) -> anyhow::Result<Option<StorageState>> {
    let timeout = Duration::from_secs(spec.close_timeout_secs);
    let mut browser = Devtools::launch(spec, profile, spec.headless, spec.url.as_deref())?;
    if spec.headless {
        eprintln!("cell login: the browser runs headless; press Enter (or end the input) to save the login");
    } else {
        eprintln!(
            "cell login: log in in the browser window, then press Enter here; cell closes the browser \
             itself so that it saves its cookies (closing the window works too, but exports fewer data)"
        );
    }
    match browser.wait_for_person(signals)? {
        Event::Enter => {
            let state = browser.storage_state();
            browser.close(timeout)?;
            Ok(Some(state.context("cannot read the browser's cookies over the DevTools protocol")?))
        }
        Event::Signal => {
            browser.close(timeout)?;
            Ok(None)
        }
        Event::BrowserExited => {
            let status = browser.reap()?;
            if !status.success() {
                bail!("the browser ended with {status} before Enter (crashed?); nothing is exported");
            }
            eprintln!(
                "cell login: the browser was closed before Enter; it saved its cookies itself. Reading them \
                 again headless for the storage state (local storage of the pages that were open is lost)"
            );
            let mut again = Devtools::launch(spec, profile, true, None)?;
            let state = again.storage_state();
            again.close(timeout)?;
            Ok(Some(state.context("cannot read the browser's cookies over the DevTools protocol")?))
        }
    }
}

/// Removes the `Singleton*` files of a profile (not following links).
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
/// levels deep, cache directories skipped, links not followed.
#[must_use]
pub fn profile_databases(profile: &Utf8Path) -> Vec<Utf8PathBuf> {
    fn walk(dir: &Utf8Path, depth: usize, out: &mut Vec<Utf8PathBuf>) {
        let Ok(entries) = dir.read_dir_utf8() else { return };
        for e in entries.flatten() {
            let Ok(t) = e.file_type() else { continue };
            let name = e.file_name();
            if t.is_dir() && depth < 3 && !name.to_ascii_lowercase().contains("cache") {
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

/// Whether `path` is a regular file starting with the SQLite header (never blocks on a
/// FIFO, never follows a link).
fn is_sqlite(path: &Utf8Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt as _;
    let Ok(mut f) =
        std::fs::OpenOptions::new().read(true).custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK).open(path)
    else {
        return false;
    };
    let mut head = [0u8; 16];
    f.metadata().is_ok_and(|m| m.is_file()) && f.read_exact(&mut head).is_ok() && &head == b"SQLite format 3\0"
}

/// Runs `cell-walflush` on the profile's databases and reports; fails naming each
/// database it could not make consistent.
fn flush(walflush: &Utf8Path, profile: &Utf8Path) -> anyhow::Result<()> {
    let dbs = profile_databases(profile);
    if dbs.is_empty() {
        return Ok(());
    }
    let out = Command::new(walflush)
        .arg("--json")
        .arg("--")
        .args(&dbs)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {walflush}"))?;
    let doc: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{walflush} printed no report: {}", String::from_utf8_lossy(&out.stderr).trim()))?;
    let mut worked = Vec::new();
    let mut failed = Vec::new();
    for db in doc.get("databases").and_then(Value::as_array).into_iter().flatten() {
        let path = db.get("path").and_then(Value::as_str).unwrap_or("?");
        let rel = Utf8Path::new(path).strip_prefix(profile).map_or(path.to_owned(), ToString::to_string);
        let msg = db.get("message").and_then(Value::as_str).unwrap_or("");
        // Names come from the profile: escaped, so none can drive the terminal.
        let line = format!("{}: {}", rel.escape_debug(), msg.escape_debug());
        match (db.get("ok").and_then(Value::as_bool), db.get("action").and_then(Value::as_str)) {
            (Some(true), Some("nothing_to_do")) => {}
            (Some(true), _) => worked.push(line),
            _ => failed.push(line),
        }
    }
    if failed.is_empty() && out.status.success() {
        eprintln!("cell login: the profile's {} SQLite database(s) are consistent", dbs.len());
        for line in worked {
            eprintln!("cell login:   {line}");
        }
        return Ok(());
    }
    bail!(
        "cell-walflush could not make these databases of the profile {profile} consistent (each was left as \
         it was; nothing is exported; remove or repair them): {}",
        failed.join("; ")
    )
}

/// The browser's own `$HOME`, in the login cell's private /tmp.
const BROWSER_HOME: &str = "/tmp/cell-browser-home";

fn browser_log() -> Option<std::fs::File> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    let path = Utf8PathBuf::from(std::env::var("HOME").ok()?).join(BROWSER_LOG);
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path.parent()?).ok()?;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&path)
        .ok()
}

/// Writes a new file (mode 0600) in a directory created 0700 if missing; refuses to
/// follow a link or replace a file.
fn write_new_private(path: &Utf8Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {dir}"))?;
    }
    crate::sys::write_new_private(path, bytes)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Enter,
    Signal,
    BrowserExited,
}

/// A browser and the DevTools protocol pipe to it (messages are JSON, each ended by NUL).
struct Devtools {
    child: Child,
    to: std::fs::File,
    from: std::fs::File,
    buf: Vec<u8>,
    next_id: u64,
}

/// How long one protocol call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

impl Devtools {
    fn launch(spec: &LoginSpec, profile: &Utf8Path, headless: bool, url: Option<&str>) -> anyhow::Result<Self> {
        let (to_read, to_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("cannot create a pipe")?;
        let (from_read, from_write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("cannot create a pipe")?;
        // Above 4, so the moves to 3 and 4 below cannot overwrite each other's source.
        let commands = crate::sys::park(&to_read)?;
        let replies = crate::sys::park(&from_write)?;
        drop((to_read, from_write));
        let (program, args) = spec.command.split_first().context("the browser command is empty")?;
        let mut cmd = Command::new(program);
        cmd.args(args).arg(format!("--user-data-dir={profile}")).args([
            "--remote-debugging-pipe",
            "--no-first-run",
            "--no-default-browser-check",
        ]);
        if headless {
            cmd.arg("--headless=new");
        }
        if let Some(proxy) = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        {
            // Chromium reads the proxy variables only on some desktops; the flag always works.
            cmd.arg(format!("--proxy-server={proxy}"));
        }
        cmd.args(&spec.extra_args).arg(url.unwrap_or("about:blank")).stdin(Stdio::null());
        // Out of the terminal's foreground group: Ctrl-C on the cell's pty signals that
        // group, and the browser must be closed over DevTools, never killed by a SIGINT.
        cmd.process_group(0);
        // The browser may hold the user's display: it gets an empty home of its own in this
        // cell's private /tmp, since the shared home is writable by agents and code could
        // come from it (GTK modules named in ~/.config/gtk-3.0, PKCS#11 modules in
        // ~/.pki/nssdb). Only the profile is shared.
        let fresh = Utf8Path::new(BROWSER_HOME);
        for (var, dir) in
            [("XDG_CONFIG_HOME", ".config"), ("XDG_DATA_HOME", ".local/share"), ("XDG_CACHE_HOME", ".cache")]
        {
            std::fs::create_dir_all(fresh.join(dir)).with_context(|| format!("cannot create {fresh}/{dir}"))?;
            cmd.env(var, fresh.join(dir));
        }
        cmd.env("HOME", fresh);
        // Chromium's chatter (D-Bus, GPU, ...) goes to a log, not over the prompt.
        if let Some(log) = browser_log() {
            if let Ok(copy) = log.try_clone() {
                cmd.stdout(copy);
            }
            cmd.stderr(log);
        }
        let (c, r) = (commands.as_raw_fd(), replies.as_raw_fd());
        // SAFETY: only pthread_sigmask and dup2 run between fork and exec, both
        // async-signal-safe; the sources were parked above the targets.
        unsafe {
            cmd.pre_exec(move || {
                crate::sys::unblock_all_signals()?;
                for (src, target) in [(c, 3), (r, 4)] {
                    if nix::libc::dup2(src, target) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd.spawn().with_context(|| format!("cannot start the browser {program}"))?;
        drop((commands, replies));
        Ok(Self {
            child,
            to: std::fs::File::from(to_write),
            from: std::fs::File::from(from_read),
            buf: Vec::new(),
            next_id: 0,
        })
    }

    /// Waits for Enter (or the end of standard input), a signal, or the browser's exit.
    fn wait_for_person(&mut self, signals: &SignalFd) -> anyhow::Result<Event> {
        let stdin = std::io::stdin();
        loop {
            let mut fds = vec![
                PollFd::new(self.from.as_fd(), PollFlags::POLLIN),
                PollFd::new(signals.as_fd(), PollFlags::POLLIN),
            ];
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            match nix::poll::poll(&mut fds, PollTimeout::NONE) {
                Err(nix::errno::Errno::EINTR) => continue,
                r => r.context("poll failed")?,
            };
            let ready = |i: usize| fds.get(i).and_then(PollFd::revents).is_some_and(|r| !r.is_empty());
            let (browser, signal, input) = (ready(0), ready(1), ready(2));
            drop(fds);
            if signal {
                return Ok(Event::Signal);
            }
            if browser {
                let mut chunk = vec![0u8; 65536];
                match self.from.read(&mut chunk) {
                    Ok(0) | Err(_) => return Ok(Event::BrowserExited),
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
            if input {
                let mut byte = [0u8; 1];
                // SAFETY: read(2) into a one-byte buffer we own; fd 0 stays open.
                let n = unsafe { nix::libc::read(0, byte.as_mut_ptr().cast(), 1) };
                if n <= 0 || byte[0] == b'\n' {
                    return Ok(Event::Enter);
                }
            }
        }
    }

    /// Sends one command and waits for its reply (events in between are dropped).
    fn call(&mut self, method: &str, params: &Value, session: Option<&str>) -> anyhow::Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = Value::String(s.to_owned());
        }
        let mut bytes = serde_json::to_vec(&msg)?;
        bytes.push(0);
        self.to.write_all(&bytes).with_context(|| format!("the browser stopped listening ({method})"))?;
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            while let Some(end) = self.buf.iter().position(|b| *b == 0) {
                let raw: Vec<u8> = self.buf.drain(..=end).collect();
                let Ok(reply) = serde_json::from_slice::<Value>(&raw[..end]) else { continue };
                if reply.get("id").and_then(Value::as_u64) != Some(id) {
                    continue;
                }
                if let Some(err) = reply.get("error") {
                    bail!("{method} failed: {err}");
                }
                return Ok(reply.get("result").cloned().unwrap_or(Value::Null));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("the browser did not answer {method} within {} s", CALL_TIMEOUT.as_secs());
            }
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(self.from.as_fd(), PollFlags::POLLIN)];
            match nix::poll::poll(&mut fds, PollTimeout::from(ms)) {
                Err(nix::errno::Errno::EINTR) | Ok(0) => continue,
                r => r.context("poll failed")?,
            };
            let mut chunk = vec![0u8; 65536];
            let n = self.from.read(&mut chunk).context("cannot read from the browser")?;
            if n == 0 {
                bail!("the browser exited before answering {method}");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The cookies of the default context and the local storage of the open web pages.
    fn storage_state(&mut self) -> anyhow::Result<StorageState> {
        let reply = self.call("Storage.getCookies", &json!({}), None)?;
        let cookies = reply
            .get("cookies")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(playwright_cookie)
            .collect();
        let mut origins: Vec<Value> = Vec::new();
        let targets = self.call("Target.getTargets", &json!({}), None)?;
        let pages: Vec<(String, String)> = targets
            .get("targetInfos")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|t| t.get("type").and_then(Value::as_str) == Some("page"))
            .filter_map(|t| {
                let origin = web_origin(t.get("url")?.as_str()?)?;
                Some((t.get("targetId")?.as_str()?.to_owned(), origin))
            })
            .collect();
        for (target, origin) in pages {
            if origins.iter().any(|o| o["origin"] == origin) {
                continue;
            }
            match self.local_storage(&target, &origin) {
                Ok(items) if !items.is_empty() => origins.push(json!({ "origin": origin, "localStorage": items })),
                Ok(_) => {}
                Err(e) => eprintln!("cell login: skipping the local storage of {}: {e:#}", origin.escape_debug()),
            }
        }
        Ok(StorageState { cookies, origins })
    }

    /// The local storage of one page, read by the browser (`DOMStorage`), not by the page's
    /// own scripts: a page cannot choose what is exported, nor for which origin.
    fn local_storage(&mut self, target: &str, origin: &str) -> anyhow::Result<Vec<Value>> {
        let attached = self.call("Target.attachToTarget", &json!({ "targetId": target, "flatten": true }), None)?;
        let session = attached.get("sessionId").and_then(Value::as_str).context("no session id")?.to_owned();
        let items = self.call("DOMStorage.enable", &json!({}), Some(&session)).and_then(|_| {
            self.call(
                "DOMStorage.getDOMStorageItems",
                &json!({ "storageId": { "securityOrigin": origin, "isLocalStorage": true } }),
                Some(&session),
            )
        });
        let _ = self.call("Target.detachFromTarget", &json!({ "sessionId": session }), None);
        let entries = items?.get("entries").and_then(Value::as_array).cloned().unwrap_or_default();
        Ok(entries
            .iter()
            .filter_map(|e| Some(json!({ "name": e.get(0)?.as_str()?, "value": e.get(1)?.as_str()? })))
            .collect())
    }

    /// `Browser.close`, then waits for the process; kills it only after `timeout` (and says
    /// so: fresh cookies may be lost then).
    fn close(&mut self, timeout: Duration) -> anyhow::Result<()> {
        // The reply may not arrive: the browser can close the pipe first.
        let _ = self.call("Browser.close", &json!({}), None);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().context("cannot wait for the browser")? {
                if status.success() {
                    return Ok(());
                }
                bail!("the browser ended with {status} after Browser.close; cookies of this login may be lost");
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!(
                    "the browser did not close within {} s of Browser.close and was killed; cookies of this \
                     login may be lost",
                    timeout.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn reap(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        self.child.wait().context("cannot wait for the browser")
    }
}

/// The origin (`scheme://host[:port]`) of an http(s) URL, as the browser reports it
/// (lowercase scheme and host, default port already dropped); `None` for other URLs.
#[must_use]
pub fn web_origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host_port.is_empty() {
        return None;
    }
    Some(format!("{scheme}://{host_port}"))
}

/// A DevTools cookie in Playwright's storage-state shape.
#[must_use]
pub fn playwright_cookie(c: &Value) -> Value {
    let session = c.get("session").and_then(Value::as_bool).unwrap_or(false);
    let expires = if session { -1.0 } else { c.get("expires").and_then(Value::as_f64).unwrap_or(-1.0) };
    let same_site = c.get("sameSite").and_then(Value::as_str).filter(|s| ["Strict", "Lax", "None"].contains(s));
    let same_site = same_site.unwrap_or("Lax");
    json!({
        "name": c.get("name").cloned().unwrap_or(Value::Null),
        "value": c.get("value").cloned().unwrap_or(Value::Null),
        "domain": c.get("domain").cloned().unwrap_or(Value::Null),
        "path": c.get("path").cloned().unwrap_or_else(|| Value::String("/".into())),
        "expires": expires,
        "httpOnly": c.get("httpOnly").and_then(Value::as_bool).unwrap_or(false),
        "secure": c.get("secure").and_then(Value::as_bool).unwrap_or(false),
        "sameSite": same_site,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_cookies_expire_at_minus_one_and_same_site_defaults_to_lax() {
        let c = json!({"name": "a", "value": "b", "domain": ".x.test", "path": "/", "expires": 12.5,
                       "session": true, "httpOnly": true, "secure": false});
        let p = playwright_cookie(&c);
        assert_eq!(p["expires"], json!(-1.0));
        assert_eq!(p["sameSite"], json!("Lax"));
        assert_eq!(p["httpOnly"], json!(true));
        let c = json!({"name": "a", "value": "b", "domain": "x.test", "path": "/p", "expires": 99.0,
                       "session": false, "sameSite": "Strict"});
        let p = playwright_cookie(&c);
        assert_eq!(
            (p["expires"].clone(), p["sameSite"].clone(), p["path"].clone()),
            (json!(99.0), json!("Strict"), json!("/p"))
        );
    }

    #[test]
    fn origins_come_from_the_url_alone() {
        assert_eq!(web_origin("http://login.test:8080/a?b#c").as_deref(), Some("http://login.test:8080"));
        assert_eq!(web_origin("https://u:p@x.test/").as_deref(), Some("https://x.test"));
        assert_eq!(web_origin("https://x.test").as_deref(), Some("https://x.test"));
        assert_eq!(web_origin("about:blank"), None);
        assert_eq!(web_origin("chrome-extension://abc/x.html"), None);
        assert_eq!(web_origin("http:///nohost"), None);
    }

    #[test]
    fn the_spec_round_trips_and_refuses_unknown_fields() {
        let spec = LoginSpec {
            command: vec!["chromium".into(), "--no-sandbox".into()],
            profile: ".config/chromium".into(),
            state_file: ".playwright/x.tmp".into(),
            headless: true,
            extra_args: vec![],
            url: Some("http://a.test/".into()),
            close_timeout_secs: 30,
            walflush: "/run/cell/cell-walflush".into(),
        };
        let text = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<LoginSpec>(&text).unwrap(), spec);
        assert!(serde_json::from_str::<LoginSpec>(&text.replace("\"headless\"", "\"other\":1,\"headless\"")).is_err());
    }

    #[test]
    fn a_new_private_file_never_replaces_one_or_follows_a_link() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let d = Utf8Path::from_path(dir.path()).unwrap();
        let f = d.join("sub/state.json");
        write_new_private(&f, b"{}").unwrap();
        assert!(write_new_private(&f, b"{}").is_err());
        std::os::unix::fs::symlink(d.join("elsewhere"), d.join("sub/link")).unwrap();
        assert!(write_new_private(&d.join("sub/link"), b"{}").is_err());
        assert!(!d.join("elsewhere").exists());
        assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600);
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
