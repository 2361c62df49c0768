//! Test harness: temporary hosts (home, worktree, config) and the real `cell` binary, run as
//! root and as an unprivileged user created for the tests.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Name of the unprivileged account the tests create when they run as root.
pub const TEST_USER: &str = "celltest";

/// The account a root launcher runs cells as by default (`runAs`); the tests create it
/// the way the README says (`useradd --system --home-dir /var/lib/cell --create-home cell`).
pub const RUN_AS_USER: &str = "cell";

/// Who runs `cell`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// Host root: cell becomes the `cell` account before it builds the cell, so the cell
    /// runs as that account's uid and the root host's files are that account's.
    Root,
    /// An unprivileged host user.
    User,
}

pub fn cell_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cell"))
}

pub fn init_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cell-init"))
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Records a skipped test loudly: on stderr and, when set, in `$CELL_TEST_SKIP_LOG`.
pub fn skip(test: &str, why: &str) {
    let line = format!("SKIPPED {test}: {why}");
    eprintln!("{line}");
    if let Ok(log) = std::env::var("CELL_TEST_SKIP_LOG") {
        use std::io::Write as _;
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// uid and gid of the unprivileged test user, creating the account if needed.
pub fn test_user() -> (u32, u32) {
    static USER: OnceLock<(u32, u32)> = OnceLock::new();
    *USER.get_or_init(|| {
        if !is_root() {
            return (nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw());
        }
        account(TEST_USER, &["--no-create-home", "--shell", "/bin/sh", "--comment", "cell integration tests"])
    })
}

/// uid and gid of the `cell` account root-run cells become, creating it if needed.
pub fn run_as_user() -> (u32, u32) {
    static USER: OnceLock<(u32, u32)> = OnceLock::new();
    *USER.get_or_init(|| {
        account(
            RUN_AS_USER,
            &["--system", "--home-dir", "/var/lib/cell", "--create-home", "--shell", "/usr/sbin/nologin"],
        )
    })
}

fn account(name: &str, useradd: &[&str]) -> (u32, u32) {
    let lookup = || nix::unistd::User::from_name(name).ok().flatten();
    if lookup().is_none() {
        let out = Command::new("useradd")
            .args(useradd)
            .arg(name)
            .output()
            .expect("useradd (package passwd) is needed to test cell as an unprivileged user");
        // Exit 9: created meanwhile by a concurrent test process.
        assert!(
            out.status.success() || out.status.code() == Some(9),
            "useradd {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let u = lookup().expect("account exists after useradd");
    (u.uid.as_raw(), u.gid.as_raw())
}

/// Whether bubblewrap can build a cell for `who`; panics (fails the test) when it cannot,
/// unless `CELL_TESTS_ALLOW_NO_USERNS=1` says that is expected (the Nix build sandbox).
fn jail_available(who: Who, test: &str) -> bool {
    static ROOT: OnceLock<Result<(), String>> = OnceLock::new();
    static USER: OnceLock<Result<(), String>> = OnceLock::new();
    let cell = if who == Who::Root { &ROOT } else { &USER };
    let result = cell.get_or_init(|| {
        let mut cmd = Command::new(cell_bin());
        cmd.arg("doctor").env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        if who == Who::Root {
            run_as_user();
        }
        if who == Who::User && is_root() {
            let (u, g) = test_user();
            cmd.uid(u).gid(g).env("HOME", "/");
        }
        let out = cmd.output().map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.lines().any(|l| l.starts_with("[pass] jail probe")) {
            Ok(())
        } else {
            Err(text)
        }
    });
    match result {
        Ok(()) => true,
        Err(report) if std::env::var("CELL_TESTS_ALLOW_NO_USERNS").as_deref() == Ok("1") => {
            skip(
                test,
                &format!("bubblewrap cannot build a cell here (CELL_TESTS_ALLOW_NO_USERNS=1): {}", report.trim()),
            );
            false
        }
        Err(report) => panic!(
            "bubblewrap cannot build a cell on this host, so the jail cannot be tested:\n{report}\n\
             (set CELL_TESTS_ALLOW_NO_USERNS=1 only where that is expected, e.g. inside a Nix build)"
        ),
    }
}

/// A temporary host: a home with a planted secret, a worktree, an outside directory and a
/// config, owned by the user the cell runs as (`uid`, `gid`): the one that runs `cell`, or
/// the `cell` account when root does. A root launcher keeps `HOME` and `XDG_RUNTIME_DIR`
/// here because they name directories that account owns.
pub struct Host {
    pub who: Who,
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    pub work: PathBuf,
    pub outside: PathBuf,
    pub config: PathBuf,
    pub uid: u32,
    pub gid: u32,
}

/// The default configuration of the tests: the built-in one, written to a file so that a
/// host-wide `/etc/cell/config.json` cannot change what is tested.
pub const DEFAULT_CONFIG: &str = r#"{"schemaVersion":1,"cells":{"default":{}}}"#;

pub const SECRET: &str = "planted-secret-7f3a9c";

impl Host {
    /// A fresh host for `who`, or `None` (with a loud skip) when that cannot be tested here.
    pub fn new(who: Who, test: &str) -> Option<Self> {
        if who == Who::Root && !is_root() {
            skip(test, "not running as root, so the as-root variant cannot run (CI runs as root)");
            return None;
        }
        if !jail_available(who, test) {
            return None;
        }
        let (uid, gid) = if who == Who::Root { run_as_user() } else { test_user() };
        let dir = tempfile::Builder::new().prefix("cell-it-").tempdir().expect("tempdir");
        let home = dir.path().join("home");
        let work = dir.path().join("worktree");
        let outside = dir.path().join("outside");
        for d in [&home, &work, &outside, &home.join(".ssh")] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        std::fs::write(home.join(".ssh/id_ed25519"), SECRET).expect("plant secret");
        std::fs::write(home.join("secret.txt"), SECRET).expect("plant secret");
        std::fs::write(outside.join("secret.txt"), SECRET).expect("plant secret");
        std::fs::create_dir_all(dir.path().join("run")).expect("mkdir");
        std::fs::set_permissions(dir.path().join("run"), std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let config = dir.path().join("config.json");
        std::fs::write(&config, DEFAULT_CONFIG).expect("write config");
        let host = Self { who, dir, home, work, outside, config, uid, gid };
        host.chown_all();
        Some(host)
    }

    /// Gives every file of the temporary host to the user the cell runs as: the one that
    /// runs `cell`, or for a root launcher its `runAs` account.
    pub fn chown_all(&self) {
        if is_root() {
            let status = Command::new("chown")
                .arg("-R")
                .arg(format!("{}:{}", self.uid, self.gid))
                .arg(self.dir.path())
                .status()
                .expect("chown");
            assert!(status.success());
        }
        std::fs::set_permissions(self.dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a config file (owned by the cell user) and returns its path.
    pub fn write_config(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).expect("write config");
        self.chown_all();
        p
    }

    /// `cell` with a clean environment: this host's HOME, the test config, cwd = worktree.
    pub fn cell(&self) -> Command {
        self.cell_at(&cell_bin())
    }

    /// [`Host::cell`] with another copy of the `cell` binary.
    pub fn cell_at(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(&self.work)
            .env_clear()
            .env("HOME", &self.home)
            .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LANG", "C.UTF-8")
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("XDG_RUNTIME_DIR", self.path("run"))
            .env("CELL_CONFIG", &self.config);
        if self.who == Who::User && is_root() {
            cmd.uid(self.uid).gid(self.gid);
        }
        cmd
    }

    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cell().args(args).output().expect("run cell")
    }

    /// `cell run -- sh -c SCRIPT`.
    pub fn sh(&self, script: &str) -> Output {
        self.run(["run", "--", "sh", "-c", script])
    }

    /// The uid the cell user has inside: the host uid of the user the cell runs as (for a
    /// root launcher, the `cell` account's; never 0).
    pub fn inside_uid(&self) -> u32 {
        assert_ne!(self.uid, 0, "a cell never runs as host uid 0");
        self.uid
    }
}

/// An HTTP server on the host's 127.0.0.1 that answers every request with `token`.
pub struct Upstream {
    pub port: u16,
    pub hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Upstream {
    pub fn start(token: &str) -> Self {
        Self::start_on("127.0.0.1:0", token).expect("bind 127.0.0.1")
    }

    pub fn start_on(addr: &str, token: &str) -> Option<Self> {
        use std::io::{Read as _, Write as _};
        let listener = std::net::TcpListener::bind(addr).ok()?;
        let port = listener.local_addr().ok()?.port();
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = hits.clone();
        let body = token.to_owned();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut c) = conn else { continue };
                let counter = counter.clone();
                let body = body.clone();
                std::thread::spawn(move || {
                    let _ = c.set_read_timeout(Some(std::time::Duration::from_secs(10)));
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                        match c.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let _ = write!(
                        c,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        Some(Self { port, hits })
    }

    pub fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A TCP echo server on the host's 127.0.0.1.
pub fn echo_server() -> u16 {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if c.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    port
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn show(o: &Output) -> String {
    format!("status {:?}\n--- stdout\n{}\n--- stderr\n{}", o.status, stdout(o), stderr(o))
}

/// Asserts success and returns stdout.
pub fn ok(o: &Output) -> String {
    assert!(o.status.success(), "expected success:\n{}", show(o));
    stdout(o)
}

/// Host pids whose command line contains `token`.
pub fn host_pids_with(token: &str) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmdline).contains(token) {
                out.push(pid);
            }
        }
    }
    out
}

/// Waits up to `secs` for no host process to carry `token`.
pub fn gone_within(token: &str, secs: u64) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if host_pids_with(token).is_empty() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

pub fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// Defines one test per host user: `<name>_as_root` and `<name>_as_user`.
#[macro_export]
macro_rules! both {
    ($name:ident, |$host:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn case($host: &$crate::support::Host) $body
            #[test]
            fn as_root() {
                if let Some(h) = $crate::support::Host::new($crate::support::Who::Root, concat!(stringify!($name), "::as_root")) {
                    case(&h);
                }
            }
            #[test]
            fn as_user() {
                if let Some(h) = $crate::support::Host::new($crate::support::Who::User, concat!(stringify!($name), "::as_user")) {
                    case(&h);
                }
            }
        }
    };
}

/// Waits (at most 20 s) until `path` exists.
pub fn wait_for(path: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !path.exists() {
        assert!(std::time::Instant::now() < deadline, "{} never appeared", path.display());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
