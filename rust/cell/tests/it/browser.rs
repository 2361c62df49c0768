//! The browser: the chromium module's extension flags read by a real Chromium in a cell, and
//! `cell login` end to end (a cookie from a local page survives the graceful close and the
//! flush, the exported storage state works in Playwright, MCP servers of cells sharing the
//! profile restart, and failures leave the profile and the previous state as they were).
//! Needs Debian's `chromium`; the flag tests also Nix and nixpkgs.lib, the storage-state
//! check `playwright-core` from npm. Without them the tests say SKIPPED.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::both;
use crate::support::{self, show, skip, stderr, stdout, Host, Who};

/// The Chromium binary (not Debian's wrapper script, which reads /etc/chromium.d).
fn chromium(test: &str) -> Option<PathBuf> {
    let p = std::env::var_os("CELL_TEST_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/lib/chromium/chromium"), PathBuf::from);
    if p.is_file() {
        Some(p)
    } else {
        skip(test, &format!("no Chromium at {} (apt install chromium, or set CELL_TEST_CHROMIUM)", p.display()));
        None
    }
}

/// A local site on 127.0.0.1: `/` sets the cookie `sid=s3cret` and a local-storage item,
/// every request is recorded with its `Cookie` header.
struct Site {
    port: u16,
    seen: Arc<Mutex<Vec<(String, String)>>>,
}

impl Site {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                let mut cookie = String::new();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = h.strip_prefix("Cookie:").or_else(|| h.strip_prefix("cookie:")) {
                        v.trim().clone_into(&mut cookie);
                    }
                }
                log.lock().expect("lock").push((path.clone(), cookie));
                // The page also tries to forge what is exported of it (another origin, other
                // items) by replacing the functions a page-side reader would call.
                let body = "<html><script>localStorage.setItem('theme', 'dark'); \
                    JSON.stringify = () => '[\"https://bank.test\",[[\"token\",\"forged\"]]]'; \
                    Object.entries = () => [['token', 'forged']];</script>signed in</html>";
                let set = if path == "/" { "Set-Cookie: sid=s3cret; Max-Age=3600; Path=/; HttpOnly\r\n" } else { "" };
                let mut out = stream;
                let _ = write!(
                    out,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n{set}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self { port, seen }
    }

    fn seen(&self, path: &str) -> Option<String> {
        self.seen.lock().expect("lock").iter().find(|(p, _)| p == path).map(|(_, c)| c.clone())
    }
}

/// A config with one cell `web` whose browser is the real Chromium and whose network lets
/// `login.test` through to the local site.
fn login_config(h: &Host, chromium: &Path, site: u16, command: Option<serde_json::Value>) -> PathBuf {
    let command = command.unwrap_or_else(|| serde_json::json!([chromium, "--no-sandbox"]));
    let cfg = serde_json::json!({
        "schemaVersion": 1,
        "cells": {
            "web": {
                "home": { "path": h.path("cellhome") },
                "network": { "mode": "proxy", "allow": [format!("login.test:{site}")], "hosts": { "login.test": "127.0.0.1" } },
                "browser": { "command": command },
            },
            "agent": { "home": { "path": h.path("cellhome") }, "network": { "mode": "none" } },
            "elsewhere": { "home": { "path": h.path("otherhome") }, "network": { "mode": "none" } },
        }
    });
    h.write_config("browser.json", &cfg.to_string())
}

fn spawn_login(h: &Host, cfg: &Path, url: Option<&str>) -> Child {
    let mut cmd = h.cell();
    cmd.arg("--config").arg(cfg).args(["login", "--cell", "web", "--display", "none"]);
    if let Some(u) = url {
        cmd.arg(u);
    }
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("cell login")
}

/// Presses Enter once `ready` holds (or after the timeout), then waits for the login.
fn press_enter_when(mut child: Child, ready: impl Fn() -> bool) -> Output {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    // Let the page's script run after its request was answered.
    std::thread::sleep(Duration::from_millis(700));
    let _ = child.stdin.take().expect("stdin").write_all(b"\n");
    wait_output(child, 120)
}

fn wait_output(mut child: Child, secs: u64) -> Output {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let o = child.wait_with_output().expect("output");
            panic!("cell login did not end within {secs} s:\n{}", show(&o));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

fn cell_home(h: &Host) -> PathBuf {
    h.path("cellhome")
}

fn state_file(h: &Host) -> PathBuf {
    cell_home(h).join(".playwright/storage-state.json")
}

/// Rows of a SQLite table, read by python3's sqlite3 read-only.
fn sqlite_rows(db: &Path, sql: &str) -> String {
    let o = Command::new("python3")
        .args(["-c", "import sqlite3,sys; c=sqlite3.connect('file:'+sys.argv[1]+'?mode=ro', uri=True); print(c.execute(sys.argv[2]).fetchall())"])
        .arg(db)
        .arg(sql)
        .output()
        .expect("python3");
    assert!(o.status.success(), "{}", show(&o));
    stdout(&o)
}

fn leftovers(h: &Host) -> Vec<String> {
    std::fs::read_dir(cell_home(h).join(".playwright"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(".storage-state."))
                .collect()
        })
        .unwrap_or_default()
}

both!(login_keeps_a_cookie_and_exports_a_state_playwright_accepts, |h| {
    let Some(chromium) = chromium("login_keeps_a_cookie_and_exports_a_state_playwright_accepts") else { return };
    let site = Site::start();
    let cfg = login_config(h, &chromium, site.port, None);
    let child = spawn_login(h, &cfg, Some(&format!("http://login.test:{}/", site.port)));
    let o = press_enter_when(child, || site.seen("/").is_some());
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let err = stderr(&o);
    assert!(err.contains("SQLite database(s) are consistent"), "{err}");
    assert!(!err.contains("warning"), "a real login must not warn:\n{err}");
    assert!(leftovers(h).is_empty(), "temporary files left: {:?}", leftovers(h));

    // The cookie reached the disk: Browser.close made Chromium write it.
    let cookies = cell_home(h).join(".config/chromium/Default/Cookies");
    let rows = sqlite_rows(&cookies, "select host_key, name from cookies");
    assert!(rows.contains("'login.test', 'sid'"), "cookie not on disk: {rows}\n{err}");

    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state_file(h)).expect("storage state")).expect("json");
    let sid = state["cookies"].as_array().expect("cookies").iter().find(|c| c["name"] == "sid").expect("sid");
    assert_eq!(
        (sid["value"].as_str(), sid["domain"].as_str(), sid["httpOnly"].as_bool()),
        (Some("s3cret"), Some("login.test"), Some(true))
    );
    assert_eq!(state["origins"][0]["origin"], format!("http://login.test:{}", site.port));
    assert_eq!(state["origins"][0]["localStorage"][0], serde_json::json!({"name": "theme", "value": "dark"}));
    assert_eq!(state["origins"].as_array().map(Vec::len), Some(1), "{state}");
    assert!(!state.to_string().contains("forged"), "the page chose what was exported: {state}");

    // Playwright takes the file for a new context, which then sends the cookie.
    playwright_sends_the_cookie(&chromium, &state_file(h), site.port, &site);
});

/// Runs Playwright (npm `playwright-core`) on the host with the exported state.
fn playwright_sends_the_cookie(chromium: &Path, state: &Path, port: u16, site: &Site) {
    let root =
        Command::new("npm").args(["root", "-g"]).output().map(|o| stdout(&o).trim().to_owned()).unwrap_or_default();
    let module = Path::new(&root).join("playwright-core");
    if !module.is_dir() {
        skip("playwright storage state", "playwright-core is not installed (npm install -g playwright-core)");
        return;
    }
    let script = r"
        const [module, exe, state, url] = process.argv.slice(1);
        const { chromium } = require(module);
        (async () => {
          const browser = await chromium.launch({ executablePath: exe,
            args: ['--no-sandbox', '--host-resolver-rules=MAP login.test 127.0.0.1'] });
          const context = await browser.newContext({ storageState: state });
          const page = await context.newPage();
          await page.goto(url);
          console.log('theme=' + await page.evaluate(() => localStorage.getItem('theme')));
          await browser.close();
        })().catch((e) => { console.error(e); process.exit(1); });
    ";
    let o = Command::new("node")
        .arg("-e")
        .arg(script)
        .arg(&module)
        .arg(chromium)
        .arg(state)
        .arg(format!("http://login.test:{port}/echo"))
        .output()
        .expect("node");
    assert!(o.status.success(), "Playwright refused the storage state:\n{}", show(&o));
    assert_eq!(site.seen("/echo").as_deref(), Some("sid=s3cret"), "{}", show(&o));
    assert!(stdout(&o).contains("theme=dark"), "local storage not restored:\n{}", show(&o));
}

both!(login_without_a_login_warns_that_the_cookie_store_was_not_written, |h| {
    let Some(chromium) = chromium("login_without_a_login_warns") else { return };
    let site = Site::start();
    let cfg = login_config(h, &chromium, site.port, None);
    // A first login sets the cookie; the second one only opens a blank page.
    let o = press_enter_when(spawn_login(h, &cfg, Some(&format!("http://login.test:{}/", site.port))), || {
        site.seen("/").is_some()
    });
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let o = press_enter_when(spawn_login(h, &cfg, None), || true);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(stderr(&o).contains("the cookie store was not written during this login"), "{}", show(&o));
    // The export still carries the earlier cookie.
    let state = std::fs::read_to_string(state_file(h)).expect("state");
    assert!(state.contains("s3cret"), "{state}");
});

/// A `cell run` that is killed (with its cell) when dropped, also when a test panics.
struct Running(Child);

impl Running {
    fn try_wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        self.0.try_wait()
    }
    fn kill(&mut self) -> std::io::Result<()> {
        self.0.kill()
    }
    fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.0.wait()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a login that must be refused because `open` (a cell named `agent`) has the profile,
/// and checks that the other cell's browser was left running.
fn login_is_refused_and_spares(h: &Host, cfg: &Path, mut open: Running) {
    let o = press_enter_when(spawn_login(h, cfg, None), || true);
    let still_running = open.try_wait().expect("wait").is_none();
    drop(open);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert!(stderr(&o).contains("the browser profile is open in running cell agent"), "{}", show(&o));
    assert!(still_running, "cell login must not kill a browser it did not start");
}

/// Starts `cell run` of cell `cell` with a shell script; it runs until killed or dropped.
fn run_in(h: &Host, cfg: &Path, cell: &str, script: &str) -> Running {
    Running(
        h.cell()
            .arg("--config")
            .arg(cfg)
            .args(["run", "--cell", cell, "--", "sh", "-c", script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cell run"),
    )
}

fn wait_for_file(p: &Path, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if p.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

both!(login_restarts_the_browser_mcp_servers_of_cells_sharing_the_home, |h| {
    let Some(chromium) = chromium("login_restarts_the_browser_mcp_servers") else { return };
    let site = Site::start();
    let cfg = login_config(h, &chromium, site.port, None);
    // A stand-in for an agent whose MCP client respawns its Playwright MCP server: each
    // server is a process carrying Playwright MCP's profile variable; each start is counted.
    let respawning = "while true; do echo start >> \"$HOME/starts\"; \
        env PLAYWRIGHT_MCP_USER_DATA_DIR=\"$HOME/.config/chromium\" sleep 300; done";
    std::fs::create_dir_all(h.path("otherhome")).expect("mkdir");
    h.chown_all();
    let mut sharing = run_in(h, &cfg, "agent", respawning);
    let mut other = run_in(h, &cfg, "elsewhere", respawning);
    assert!(wait_for_file(&cell_home(h).join("starts"), 20), "the sharing cell did not start");
    assert!(wait_for_file(&h.path("otherhome/starts"), 20), "the other cell did not start");

    let o = press_enter_when(spawn_login(h, &cfg, Some(&format!("http://login.test:{}/", site.port))), || {
        site.seen("/").is_some()
    });
    let starts = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default().lines().count();
    let deadline = Instant::now() + Duration::from_secs(10);
    while starts(cell_home(h).join("starts")) < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = (sharing.kill(), other.kill());
    let _ = (sharing.wait(), other.wait());
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let err = stderr(&o);
    assert!(err.contains("stopped the browser MCP server of running cell agent"), "{err}");
    assert!(err.contains("restarted 1 browser MCP server(s) in running cell agent"), "{err}");
    assert!(!err.contains("elsewhere"), "a cell with another home was touched:\n{err}");
    assert_eq!(starts(cell_home(h).join("starts")), 3, "stopped before the login, restarted after it");
    assert_eq!(starts(h.path("otherhome/starts")), 1, "the cell with another home keeps its server");
});

both!(login_refuses_while_a_running_cell_has_the_profile_open, |h| {
    let Some(chromium) = chromium("login_refuses_while_a_running_cell_has_the_profile_open") else { return };
    let cfg = login_config(h, &chromium, 9, None);
    // An interactive browser on the profile in another cell (python3 stands in: only the
    // command line matters).
    let open = run_in(
        h,
        &cfg,
        "agent",
        "touch \"$HOME/up\"; exec python3 -c 'import time; time.sleep(300)' \"--user-data-dir=$HOME/.config/chromium\"",
    );
    assert!(wait_for_file(&cell_home(h).join("up"), 20), "the other cell did not start");
    std::thread::sleep(Duration::from_millis(300));
    login_is_refused_and_spares(h, &cfg, open);
    assert!(!cell_home(h).join(".config/chromium/Default").exists(), "the login browser ran anyway");
});

both!(a_failed_login_keeps_the_previous_state_and_leaves_nothing_behind, |h| {
    let Some(chromium) = chromium("a_failed_login_keeps_the_previous_state") else { return };
    let previous = r#"{"cookies":[{"name":"old"}],"origins":[]}"#;
    std::fs::create_dir_all(cell_home(h).join(".playwright")).expect("mkdir");
    std::fs::write(state_file(h), previous).expect("write");
    h.chown_all();

    // A browser that cannot start.
    let cfg = login_config(h, &chromium, 9, Some(serde_json::json!(["/bin/false"])));
    let o = wait_output(spawn_login(h, &cfg, None), 60);
    assert_ne!(o.status.code(), Some(0), "{}", show(&o));
    assert!(stderr(&o).contains("the browser login failed"), "{}", show(&o));
    assert_eq!(std::fs::read_to_string(state_file(h)).expect("state"), previous);
    assert!(leftovers(h).is_empty(), "{:?}", leftovers(h));

    // A corrupt database in the profile: named, left as it was, nothing exported.
    let cfg = login_config(h, &chromium, 9, None);
    let db = cell_home(h).join(".config/chromium/Default/Broken");
    std::fs::create_dir_all(db.parent().expect("parent")).expect("mkdir");
    let mut corrupt = b"SQLite format 3\0".to_vec();
    corrupt.extend(std::iter::repeat_n(0xA5u8, 4000));
    std::fs::write(&db, &corrupt).expect("write");
    h.chown_all();
    let o = press_enter_when(spawn_login(h, &cfg, None), || true);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    let err = stderr(&o);
    assert!(err.contains("Default/Broken") && err.contains("nothing is exported"), "{err}");
    assert_eq!(std::fs::read(&db).expect("db"), corrupt, "the corrupt database was modified");
    assert_eq!(std::fs::read_to_string(state_file(h)).expect("state"), previous);
    assert!(leftovers(h).is_empty(), "{:?}", leftovers(h));
});

both!(login_does_not_follow_links_in_the_cell_home, |h| {
    let Some(chromium) = chromium("login_does_not_follow_links_in_the_cell_home") else { return };
    let cfg = login_config(h, &chromium, 9, None);
    std::fs::create_dir_all(cell_home(h)).expect("mkdir");
    std::os::unix::fs::symlink(&h.outside, cell_home(h).join(".playwright")).expect("symlink");
    h.chown_all();
    let before: Vec<_> = std::fs::read_dir(&h.outside).expect("ls").flatten().map(|e| e.file_name()).collect();
    let o = press_enter_when(spawn_login(h, &cfg, None), || true);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert!(stderr(&o).contains(".playwright is a symbolic link"), "{}", show(&o));
    let after: Vec<_> = std::fs::read_dir(&h.outside).expect("ls").flatten().map(|e| e.file_name()).collect();
    assert_eq!(before, after, "something was written through the link");
});

both!(login_explains_a_missing_browser_and_display, |h| {
    let cfg = h.write_config("nobrowser.json", r#"{"schemaVersion":1,"cells":{"plain":{}}}"#);
    let o = h.cell().arg("--config").arg(&cfg).args(["login", "--display", "none"]).output().expect("login");
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains("cells.plain.browser") && stderr(&o).contains("chromium.enable"), "{}", show(&o));

    let cfg = h.write_config("b.json", r#"{"schemaVersion":1,"cells":{"b":{"browser":{"command":["chromium"]}}}}"#);
    let o = h.cell().arg("--config").arg(&cfg).env("DISPLAY", ":0").arg("login").output().expect("login");
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains("--display x11") && stderr(&o).contains("WAYLAND_DISPLAY"), "{}", show(&o));
    // CELL_DISPLAY is --display's default (the Nix browser wrapper sets auto).
    let o = h.cell().arg("--config").arg(&cfg).env("CELL_DISPLAY", "x11").arg("login").output().expect("login");
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains("not a local X11 display"), "{}", show(&o));
});

/// Writes an MV3 extension with a service worker, zips it and unpacks the zip with
/// pkgs/unpack-extension.py, the build step of the Nix extension package.
fn build_extension(h: &Host, name: &str) -> PathBuf {
    let src = h.path(&format!("{name}-src"));
    std::fs::create_dir_all(&src).expect("mkdir");
    let manifest = serde_json::json!({
        "manifest_version": 3, "name": format!("cell test {name}"), "version": "1.0",
        "background": { "service_worker": "worker.js" }
    });
    std::fs::write(src.join("manifest.json"), manifest.to_string()).expect("write");
    std::fs::write(src.join("worker.js"), "self.addEventListener('install', () => {});\n").expect("write");
    let zip = h.path(&format!("{name}.zip"));
    let o = Command::new("python3")
        .args(["-c", "import shutil,sys; shutil.make_archive(sys.argv[1][:-4], 'zip', sys.argv[2])"])
        .arg(&zip)
        .arg(&src)
        .output()
        .expect("python3");
    assert!(o.status.success(), "{}", show(&o));
    // Inside the worktree: the cell sees it there (its /tmp is its own).
    let out = h.work.join("extensions").join(name);
    std::fs::create_dir_all(out.parent().expect("parent")).expect("mkdir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pkgs/unpack-extension.py");
    let o = Command::new("python3").arg(script).arg(name).arg(&zip).arg(&out).output().expect("unpack");
    assert!(o.status.success(), "{}", show(&o));
    out
}

/// The config the chromium module renders (checks/browser-config.nix), or `None` with a
/// loud skip when Nix or nixpkgs.lib is missing.
fn nix_rendered(
    h: &Host,
    test: &str,
    chromium: &Path,
    extensions: &[(&str, &Path)],
    enabled: &[&str],
) -> Option<serde_json::Value> {
    let lib = std::env::var_os("CELL_NIXPKGS_LIB").map(PathBuf::from).unwrap_or_else(|| {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache"), PathBuf::from);
        cache.join("cell/nixpkgs.lib")
    });
    if !lib.join("lib/default.nix").is_file() {
        skip(test, &format!("no nixpkgs.lib checkout at {} (set CELL_NIXPKGS_LIB)", lib.display()));
        return None;
    }
    if Command::new("nix-instantiate").arg("--version").output().is_err() {
        skip(test, "nix-instantiate is not installed (apt install nix-bin)");
        return None;
    }
    // Chromium as a package: a directory with bin/chromium, in the worktree.
    let pkg = h.work.join("chromium-package");
    std::fs::create_dir_all(pkg.join("bin")).expect("mkdir");
    let _ = std::fs::remove_file(pkg.join("bin/chromium"));
    std::os::unix::fs::symlink(chromium, pkg.join("bin/chromium")).expect("symlink");
    let exts: String = extensions.iter().map(|(n, p)| format!("{n} = \"{}\"; ", p.display())).collect();
    let enabled: String = enabled.iter().map(|n| format!("\"{n}\" ")).collect();
    let o = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../checks/browser-config.nix"))
        .arg("--arg")
        .arg("libPath")
        .arg(lib.join("lib"))
        .args(["--argstr", "chromium"])
        .arg(&pkg)
        .args(["--arg", "extensions", &format!("{{ {exts}}}"), "--arg", "enabled", &format!("[ {enabled}]")])
        .args(["--argstr", "home"])
        .arg(h.path("cellhome"))
        .output()
        .expect("nix-instantiate");
    assert!(o.status.success(), "{}", show(&o));
    h.chown_all();
    Some(serde_json::from_slice(&o.stdout).expect("json"))
}

/// Starts the rendered browser command in a cell with a DevTools port on the cell's
/// loopback, and returns what `/json/list` lists once the page is up (plus a moment for
/// extensions).
fn devtools_targets(h: &Host, cfg: &Path) -> serde_json::Value {
    let probe = r#"
import json, os, subprocess, sys, time, urllib.request
cfg = json.load(open(sys.argv[1]))
cmd = cfg["cells"]["web"]["browser"]["command"]
p = subprocess.Popen(cmd + ["--headless=new", "--user-data-dir=" + os.environ["HOME"] + "/probe-profile",
                            "--remote-debugging-port=9333", "--no-first-run", "about:blank"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
targets, deadline, page_at = [], time.time() + 30, None
while time.time() < deadline:
    try:
        targets = json.load(urllib.request.urlopen("http://127.0.0.1:9333/json/list", timeout=2))
    except Exception:
        time.sleep(0.2); continue
    if any(t.get("url", "").startswith("chrome-extension://") for t in targets):
        break
    if any(t.get("type") == "page" for t in targets):
        page_at = page_at or time.time()
        if time.time() - page_at > 3:
            break
    time.sleep(0.2)
p.terminate(); p.wait()
print(json.dumps(targets))
"#;
    std::fs::write(h.work.join("probe.py"), probe).expect("write");
    std::fs::copy(cfg, h.work.join("rendered.json")).expect("copy");
    h.chown_all();
    let o = h
        .cell()
        .arg("--config")
        .arg(cfg)
        .args(["run", "--cell", "web", "--network", "none", "--", "python3", "probe.py", "rendered.json"])
        .output()
        .expect("cell run");
    assert!(o.status.success(), "{}", show(&o));
    serde_json::from_str(stdout(&o).trim()).unwrap_or_else(|e| panic!("{e}: {}", show(&o)))
}

#[test]
fn the_module_s_extension_flags_load_the_extension_in_chromium_and_are_absent_without_one() {
    let test = "the_module_s_extension_flags_load_the_extension";
    let Some(chromium) = chromium(test) else { return };
    let Some(h) = Host::new(Who::User, test) else { return };
    let mine = build_extension(&h, "mine");
    let unused = build_extension(&h, "unused");

    let Some(doc) = nix_rendered(&h, test, &chromium, &[("mine", &mine), ("unused", &unused)], &["mine"]) else {
        return;
    };
    let command: Vec<String> =
        serde_json::from_value(doc["cells"]["web"]["browser"]["command"].clone()).expect("command");
    let mine_s = mine.display().to_string();
    assert!(command.contains(&format!("--load-extension={mine_s}")), "{command:?}");
    assert!(command.contains(&format!("--disable-extensions-except={mine_s}")), "{command:?}");
    let cfg = h.write_config("rendered-on.json", &doc.to_string());
    let targets = devtools_targets(&h, &cfg);
    let workers: Vec<&serde_json::Value> = targets
        .as_array()
        .expect("list")
        .iter()
        .filter(|t| {
            t["url"].as_str().is_some_and(|u| u.starts_with("chrome-extension://") && u.ends_with("/worker.js"))
        })
        .collect();
    assert_eq!(workers.len(), 1, "the enabled extension's worker is not a DevTools target: {targets}");
    assert_eq!(workers[0]["type"], "service_worker", "{targets}");

    let Some(doc) = nix_rendered(&h, test, &chromium, &[("mine", &mine), ("unused", &unused)], &[]) else { return };
    let command: Vec<String> =
        serde_json::from_value(doc["cells"]["web"]["browser"]["command"].clone()).expect("command");
    assert!(!command.iter().any(|a| a.contains("extension")), "flags without an enabled extension: {command:?}");
    let cfg = h.write_config("rendered-off.json", &doc.to_string());
    let targets = devtools_targets(&h, &cfg);
    assert!(!targets.to_string().contains("worker.js"), "an extension loaded though none is enabled: {targets}");
}

both!(a_display_is_shared_only_when_asked_and_only_its_socket, |h| {
    // A stand-in compositor: a unix socket in $XDG_RUNTIME_DIR that greets each client.
    let socket = h.path("run/wayland-9");
    let listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    std::fs::write(h.path("run/other-secret"), support::SECRET).expect("write");
    h.chown_all();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let _ = s.write_all(b"hello from the display\n");
        }
    });
    let probe = "python3 -c 'import os, socket; s = socket.socket(socket.AF_UNIX); \
        s.connect(os.environ[\"WAYLAND_DISPLAY\"]); print(s.recv(64).decode().strip())'; \
        ls \"$(dirname \"$WAYLAND_DISPLAY\")\"";
    let o = h
        .cell()
        .env("WAYLAND_DISPLAY", "wayland-9")
        .args(["run", "--display", "wayland", "--", "sh", "-c", probe])
        .output()
        .expect("run");
    let out = support::ok(&o);
    assert!(out.contains("hello from the display"), "{out}");
    assert!(!out.contains("other-secret"), "more than the socket is visible: {out}");

    let check =
        format!("echo \"${{WAYLAND_DISPLAY:-unset}}\"; test -e {} && echo visible || echo absent", socket.display());
    // CELL_DISPLAY is for `cell login` and the browser wrapper only: never an agent's display.
    let o = h
        .cell()
        .env("WAYLAND_DISPLAY", "wayland-9")
        .env("CELL_DISPLAY", "wayland")
        .args(["run", "--", "sh", "-c", &check])
        .output()
        .expect("run");
    assert_eq!(support::ok(&o).split_whitespace().collect::<Vec<_>>(), ["unset", "absent"]);
});

both!(login_honours_a_live_profile_lock_and_clears_a_stale_one, |h| {
    let Some(chromium) = chromium("login_honours_a_live_profile_lock") else { return };
    let site = Site::start();
    let cfg = login_config(h, &chromium, site.port, None);
    // What a browser started without --user-data-dir leaves (Chromium's default profile is
    // ~/.config/chromium): the lock `HOSTNAME-PID`, its pid as seen inside its cell. A shell
    // stands in for it, since a headless Chromium takes no lock.
    let script =
        "mkdir -p \"$HOME/.config/chromium\" && ln -sfn \"$(hostname)-$$\" \"$HOME/.config/chromium/SingletonLock\" \
        && exec sleep 300";
    let open = run_in(h, &cfg, "agent", script);
    let lock = cell_home(h).join(".config/chromium/SingletonLock");
    assert!(wait_for_file_or_link(&lock, 20), "the other cell did not start");
    login_is_refused_and_spares(h, &cfg, open);

    // Its cell is gone: the lock is stale, and the login clears it and works.
    let o = press_enter_when(spawn_login(h, &cfg, Some(&format!("http://login.test:{}/", site.port))), || {
        site.seen("/").is_some()
    });
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(std::fs::read_to_string(state_file(h)).expect("state").contains("s3cret"));
});

fn wait_for_file_or_link(p: &Path, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if std::fs::symlink_metadata(p).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

both!(the_login_browser_gets_a_home_of_its_own, |h| {
    let Some(chromium) = chromium("the_login_browser_gets_a_home_of_its_own") else { return };
    // Something an agent could plant in the shared home for a browser that holds a display.
    std::fs::create_dir_all(cell_home(h).join(".config/gtk-3.0")).expect("mkdir");
    std::fs::write(cell_home(h).join(".config/gtk-3.0/settings.ini"), "[Settings]\ngtk-modules=/home/x/evil.so\n")
        .expect("write");
    let seen = h.work.join("browser-env");
    let wrapper = format!(
        "printf '%s\\n' \"$HOME\" \"$XDG_CONFIG_HOME\" \"$(ls -A \"$XDG_CONFIG_HOME\")\" > {}; exec {} \"$@\"",
        seen.display(),
        chromium.display()
    );
    let cfg =
        login_config(h, &chromium, 9, Some(serde_json::json!(["/bin/sh", "-c", wrapper, "browser", "--no-sandbox"])));
    let o = press_enter_when(spawn_login(h, &cfg, None), || true);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let env = std::fs::read_to_string(&seen).expect("the browser ran");
    let lines: Vec<&str> = env.lines().collect();
    assert_eq!(lines[..2], ["/tmp/cell-browser-home", "/tmp/cell-browser-home/.config"], "{env}");
    assert!(!env.contains("gtk-3.0"), "the browser sees the shared home's settings: {env}");
});
