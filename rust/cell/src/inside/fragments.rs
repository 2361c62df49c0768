//! Entrypoint fragments: the steps `cell-init` runs, in order, before the command, and the
//! promises `cell verify` checks afterwards.
//!
//! Every fragment is idempotent, has a failure policy (abort or warn) and a timeout, and is
//! logged with its duration to `$HOME/.local/state/cell/fragments.log` (moved to
//! `fragments.log.1` at 256 KiB; warnings and failures also to standard error).

use std::io::Write as _;
use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};

use crate::contract::FailurePolicy;
use crate::contract::{Action, Fragment, CHROMIUM_PROFILE, PATCHES_DIR, STATE_DIR};

fn home() -> Utf8PathBuf {
    std::env::var("HOME").map_or_else(|_| Utf8PathBuf::from("/"), Utf8PathBuf::from)
}

/// The outcome of one fragment or check.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `NN-name`.
    pub label: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// What happened.
    pub detail: String,
    /// How long it took.
    pub took: Duration,
}

/// Runs the fragments in order. Returns an error naming the first fragment whose failure
/// aborts the launch.
///
/// # Errors
/// When an `abort` fragment fails.
pub fn run_all(list: &[Fragment], env: &[(String, String)]) -> anyhow::Result<Vec<Outcome>> {
    let mut out = Vec::new();
    let mut log = open_log();
    for f in list {
        let start = Instant::now();
        let result = run_one(f, env);
        let took = start.elapsed();
        let label = format!("{:02}-{}", f.order, f.name);
        let (ok, detail) = match &result {
            Ok(d) => (true, d.clone()),
            Err(e) => (false, format!("{e:#}")),
        };
        let line = format!("{label}: {} in {} ms: {detail}", if ok { "ok" } else { "FAILED" }, took.as_millis());
        if let Some(l) = log.as_mut() {
            let _ = writeln!(l, "{line}");
        }
        if !ok {
            eprintln!("cell-init: fragment {line}");
        }
        out.push(Outcome { label: label.clone(), ok, detail: detail.clone(), took });
        if !ok && f.on_failure == FailurePolicy::Abort {
            anyhow::bail!("fragment {label} failed and aborts the launch: {detail}");
        }
    }
    Ok(out)
}

/// `fragments.log` is moved to `fragments.log.1` (replacing it) once it is this big, so the
/// two together stay below twice this size.
pub const LOG_KEEP: u64 = 256 * 1024;

fn open_log() -> Option<std::fs::File> {
    let dir = home().join(".local/state/cell");
    let opened = std::fs::create_dir_all(&dir).and_then(|()| open_rotated(&dir.join("fragments.log"), LOG_KEEP));
    match opened {
        Ok(f) => Some(f),
        Err(e) => {
            eprintln!(
                "cell-init: cannot write the fragment log in {dir}: {e}; fragments are logged here only on failure"
            );
            None
        }
    }
}

/// Opens `log` for appending, first moving it to `<log>.1` when it has reached `keep` bytes.
fn open_rotated(log: &Utf8Path, keep: u64) -> std::io::Result<std::fs::File> {
    if std::fs::symlink_metadata(log).is_ok_and(|m| m.is_file() && m.len() >= keep) {
        std::fs::rename(log, format!("{log}.1"))?;
    }
    std::fs::OpenOptions::new().create(true).append(true).open(log)
}

fn run_one(f: &Fragment, env: &[(String, String)]) -> anyhow::Result<String> {
    match &f.action {
        Action::Patches => check_patches(),
        Action::StateLinks { links } => state_links(links),
        Action::ChromiumSingleton => chromium_singleton(),
        Action::Mcp { agent, servers, target } => {
            crate::inside::mcp_fragment::merge(agent, servers, &home().join(target))
        }
        a @ Action::AgentState { .. } => crate::inside::agent_state::seed(a, env, &home()),
        Action::Script { command } => script(command, env, Duration::from_secs(u64::from(f.timeout_seconds))),
    }
}

fn check_patches() -> anyhow::Result<String> {
    let probe = Utf8Path::new(PATCHES_DIR).join(".cell-write-test");
    std::fs::write(&probe, b"").map_err(|e| anyhow::anyhow!("{PATCHES_DIR} is not writable: {e}"))?;
    let _ = std::fs::remove_file(&probe);
    Ok(format!("{PATCHES_DIR} is writable"))
}

fn state_links(links: &[String]) -> anyhow::Result<String> {
    let home = home();
    let mut made = 0;
    for l in links {
        let link = home.join(l.trim_end_matches('/'));
        let target = Utf8Path::new(STATE_DIR).join(l.trim_end_matches('/'));
        if !target.exists() {
            // First use: the state starts empty (a directory when the link says so).
            if let Some(p) = target.parent() {
                std::fs::create_dir_all(p)?;
            }
            if l.ends_with('/') {
                std::fs::create_dir_all(&target)?;
            }
        }
        match std::fs::read_link(&link) {
            Ok(t) if t == target.as_std_path() => continue,
            Ok(_) => std::fs::remove_file(&link)?,
            Err(_) if link.exists() => {
                // A real file or directory is in the way: keep it aside, never delete it.
                let aside = Utf8PathBuf::from(format!("{link}.cell-replaced"));
                std::fs::rename(&link, &aside)?;
            }
            Err(_) => {}
        }
        if let Some(p) = link.parent() {
            std::fs::create_dir_all(p)?;
        }
        std::os::unix::fs::symlink(&target, &link)?;
        made += 1;
    }
    Ok(format!("{} links in place ({made} new)", links.len()))
}

const SINGLETONS: [&str; 3] = ["SingletonLock", "SingletonCookie", "SingletonSocket"];

fn chromium_singleton() -> anyhow::Result<String> {
    let profile = home().join(CHROMIUM_PROFILE);
    let mut removed = 0;
    for name in SINGLETONS {
        let p = profile.join(name);
        // A browser of this cell cannot be running yet: cell-init starts before anything.
        if std::fs::symlink_metadata(&p).is_ok() {
            std::fs::remove_file(&p)?;
            removed += 1;
        }
    }
    Ok(format!("{removed} stale singleton files removed from {profile}"))
}

fn script(command: &[String], env: &[(String, String)], timeout: Duration) -> anyhow::Result<String> {
    let (program, args) = command.split_first().ok_or_else(|| anyhow::anyhow!("empty command"))?;
    let mut child = std::process::Command::new(program)
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(std::process::Stdio::null())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run {program}: {e}"))?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return if status.success() {
                Ok(format!("{program} exited 0"))
            } else {
                Err(anyhow::anyhow!("{program} failed: {status}"))
            };
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("{program} timed out after {} s", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Checks each fragment's promise in the current cell; returns one outcome per fragment.
#[must_use]
pub fn verify(list: &[Fragment]) -> Vec<Outcome> {
    let home = home();
    list.iter()
        .map(|f| {
            let start = Instant::now();
            let label = format!("{:02}-{}", f.order, f.name);
            let (ok, detail) = match &f.action {
                Action::Patches => match check_patches() {
                    Ok(d) => (true, d),
                    Err(e) => (false, e.to_string()),
                },
                Action::StateLinks { links } => {
                    let broken: Vec<&String> = links
                        .iter()
                        .filter(|l| {
                            let link = home.join(l.trim_end_matches('/'));
                            let target = Utf8Path::new(STATE_DIR).join(l.trim_end_matches('/'));
                            std::fs::read_link(&link).map_or(true, |t| t != target.as_std_path())
                        })
                        .collect();
                    (
                        broken.is_empty(),
                        if broken.is_empty() {
                            "every link in place".to_owned()
                        } else {
                            format!("not linked: {broken:?}")
                        },
                    )
                }
                Action::ChromiumSingleton => {
                    let profile = home.join(CHROMIUM_PROFILE);
                    let stale: Vec<&str> = SINGLETONS
                        .iter()
                        .copied()
                        .filter(|n| std::fs::symlink_metadata(profile.join(n)).is_ok())
                        .collect();
                    (
                        stale.is_empty(),
                        if stale.is_empty() {
                            "no stale singleton files".to_owned()
                        } else {
                            format!("stale: {stale:?}")
                        },
                    )
                }
                Action::Mcp { agent, servers, target } => {
                    match crate::inside::mcp_fragment::check(agent, servers, &home.join(target)) {
                        Ok(d) => (true, d),
                        Err(e) => (false, format!("{e:#}")),
                    }
                }
                a @ Action::AgentState { .. } => match crate::inside::agent_state::check(a, &home) {
                    Ok(d) => (true, d),
                    Err(e) => (false, format!("{e:#}")),
                },
                Action::Script { command } => {
                    let present = command.first().is_some_and(|p| Utf8Path::new(p).exists());
                    (
                        present,
                        if present {
                            "script present (scripts promise only that they ran)".to_owned()
                        } else {
                            "script missing".to_owned()
                        },
                    )
                }
            };
            Outcome { label, ok, detail, took: start.elapsed() }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_moves_to_dot_1_once_it_is_full() {
        let dir = tempfile::tempdir().unwrap();
        let log = Utf8PathBuf::from_path_buf(dir.path().join("fragments.log")).unwrap();
        let old = Utf8PathBuf::from(format!("{log}.1"));
        let write = |s: &str| writeln!(open_rotated(&log, 64).unwrap(), "{s}").unwrap();
        write(&"a".repeat(40));
        write(&"b".repeat(40)); // 41 bytes < 64: appended
        assert!(!old.exists());
        assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 2);
        write("c"); // 82 bytes >= 64: rotated first
        assert_eq!(std::fs::read_to_string(&old).unwrap().lines().count(), 2);
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "c\n");
        write(&"d".repeat(70));
        write("e"); // replaces the older .1
        assert_eq!(std::fs::read_to_string(&old).unwrap(), format!("c\n{}\n", "d".repeat(70)));
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "e\n");
    }
}
