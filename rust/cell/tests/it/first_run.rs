//! The four real agents' first run in a fresh cell home, against a local stand-in for their
//! APIs (`standin_api.py`, plain HTTP on the host's 127.0.0.1, reached through the cell's
//! egress proxy under a pinned name): non-interactively each prints the stand-in's canned
//! answer; interactively, under tmux, the first screen is the agent's prompt, not a dialog
//! (onboarding, "use this API key?", the bypass-permissions consent, folder trust, the auth
//! choice): the `agent-state` fragment answered them the way each agent records them.

use std::io::BufRead as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::both;
use crate::support::{show, skip, Host, Who};

const ANSWER: &str = "CANNED-ANSWER-from-the-stand-in-4f2e";
const AGENTS: [&str; 4] = ["claude", "codex", "gemini", "opencode"];
const ANTHROPIC_KEY: &str = "sk-ant-standin-key-0123456789-abcdefghij-KLMNOPQRST";
const OPENAI_KEY: &str = "sk-standin-openai-0123456789-abcdefghij";
const GEMINI_KEY: &str = "standin-gemini-key-0123456789-abcdefghij";
/// The stand-in's name inside: pinned to 127.0.0.1 for the proxy, never looked up.
const API_HOST: &str = "api.standin.test";

fn installed(program: &str) -> bool {
    ["/usr/local/bin", "/usr/bin", "/bin"].iter().any(|d| Path::new(d).join(program).exists())
}

/// The stand-in API: a python3 child, stopped when dropped.
struct StandIn {
    child: std::process::Child,
    port: u16,
    log: PathBuf,
}

impl StandIn {
    fn start(h: &Host) -> Option<Self> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/standin_api.py");
        let log = h.path("standin.log");
        let mut child = match Command::new("python3")
            .arg(&script)
            .arg(ANSWER)
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                skip("first_run (stand-in API)", &format!("python3 cannot run the stand-in API: {e}"));
                return None;
            }
        };
        let mut line = String::new();
        let out = child.stdout.take().expect("stdout");
        std::io::BufReader::new(out).read_line(&mut line).expect("read the stand-in's port");
        let port = line.trim().parse().unwrap_or_else(|_| panic!("the stand-in printed no port: {line:?}"));
        Some(Self { child, port, log })
    }

    fn requests(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A cell per agent, each reaching only the stand-in, with the keys handed the usual way
/// (`envFromFile`), and a git worktree (codex asks about trust only in a repository).
fn setup(h: &Host, api: &StandIn) -> PathBuf {
    let base = format!("http://{API_HOST}:{}", api.port);
    for (file, key) in [("anthropic", ANTHROPIC_KEY), ("openai", OPENAI_KEY), ("gemini", GEMINI_KEY)] {
        std::fs::write(h.path(file), format!("{key}\n")).expect("write key");
        std::fs::set_permissions(h.path(file), std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let network =
        serde_json::json!({ "allow": [format!("{API_HOST}:{}", api.port)], "hosts": { API_HOST: "127.0.0.1" } });
    let cell = |kind: &str, env: serde_json::Value, keys: serde_json::Value| serde_json::json!({ "agent": { "kind": kind }, "network": network, "env": env, "envFromFile": keys });
    let cfg = serde_json::json!({
        "schemaVersion": 1,
        "cells": {
            "claude": cell("claude", serde_json::json!({ "ANTHROPIC_BASE_URL": base }),
                serde_json::json!({ "ANTHROPIC_API_KEY": h.path("anthropic") })),
            "codex": cell("codex", serde_json::json!({}), serde_json::json!({ "OPENAI_API_KEY": h.path("openai") })),
            "gemini": cell("gemini", serde_json::json!({ "GOOGLE_GEMINI_BASE_URL": base }),
                serde_json::json!({ "GEMINI_API_KEY": h.path("gemini") })),
            "opencode": cell("opencode", serde_json::json!({ "ANTHROPIC_BASE_URL": base }),
                serde_json::json!({ "ANTHROPIC_API_KEY": h.path("anthropic") })),
        }
    });
    // Codex reaches a provider of the user's choosing through its own config (its built-in
    // OpenAI provider takes a key only from a login): a file the user wrote, which the
    // seeding must keep.
    let codex_home = cell_home(h, "codex").join(".codex");
    std::fs::create_dir_all(&codex_home).expect("mkdir");
    std::fs::write(
        codex_home.join("config.toml"),
        format!(
            "# the user's own provider\nmodel_provider = \"standin\"\n\n[model_providers.standin]\nname = \"stand-in\"\n\
             base_url = \"{base}/v1\"\nenv_key = \"OPENAI_API_KEY\"\nwire_api = \"responses\"\nsupports_websockets = false\n"
        ),
    )
    .expect("write codex config");
    let git = Command::new("git").args(["init", "-q"]).arg(&h.work).output().expect("git init");
    assert!(git.status.success(), "{}", show(&git));
    h.write_config("first-run.json", &cfg.to_string())
}

fn cell_home(h: &Host, kind: &str) -> PathBuf {
    h.home.join(format!(".local/share/cell/{kind}/home"))
}

/// No file of the cell's home holds a whole key (Claude's approval records the last 20
/// characters, as Claude Code itself does).
fn no_key_in_home(h: &Host, kind: &str) {
    for key in [ANTHROPIC_KEY, OPENAI_KEY, GEMINI_KEY] {
        let grep = Command::new("grep").args(["-rlF", key]).arg(cell_home(h, kind)).output().expect("grep");
        assert!(
            grep.stdout.is_empty(),
            "{kind}: a key was written into the cell home: {}",
            crate::support::stdout(&grep)
        );
    }
}

both!(real_agents_answer_from_the_stand_in_api_on_a_fresh_home, |h| {
    let Some(api) = StandIn::start(h) else { return };
    let cfg = setup(h, &api);
    for kind in AGENTS {
        if !installed(kind) {
            skip(
                &format!("real_agents_answer_from_the_stand_in_api_on_a_fresh_home ({kind})"),
                &format!("{kind} is not installed (npm install -g; .ci/run does)"),
            );
            continue;
        }
        let args: &[&str] = match kind {
            "claude" | "gemini" => &["-p", "Say hello."],
            "codex" => &["exec", "Say hello."],
            _ => &["run", "-m", "anthropic/claude-sonnet-4-5", "Say hello."],
        };
        let before = api.requests().lines().count();
        let o = h.cell().arg("--config").arg(&cfg).arg(kind).args(args).stdin(Stdio::null()).output().expect("run");
        let out = crate::support::stdout(&o);
        assert!(
            o.status.success() && out.contains(ANSWER),
            "{kind} did not print the stand-in's answer:\n{}\n--- stand-in requests\n{}",
            show(&o),
            api.requests()
        );
        assert!(api.requests().lines().count() > before, "{kind} answered without asking the stand-in");
        no_key_in_home(h, kind);
    }
    let toml = std::fs::read_to_string(cell_home(h, "codex").join(".codex/config.toml")).expect("codex config");
    assert!(toml.contains("# the user's own provider") && toml.contains("[model_providers.standin]"), "{toml}");
});

/// What each agent shows at its prompt, and what its first-run dialogs say.
fn screens(kind: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match kind {
        "claude" => (
            &["bypass permissions on"],
            &[
                "Detected a custom API key",
                "trust this folder",
                "Bypass Permissions mode",
                "Choose the text style",
                "Select login method",
                "Unable to connect",
            ],
        ),
        "codex" => (&["for shortcuts"], &["Trust this folder", "Sign in with ChatGPT", "Folder access"]),
        "gemini" => (&["Type your message"], &["How would you like to authenticate", "Do you trust", "Get started"]),
        _ => (&["ctrl+p commands"], &["Connect a provider"]),
    }
}

/// tmux on a socket of this test's own.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-S").arg(&self.socket);
        c
    }

    fn screen(&self, session: &str) -> String {
        let o = self.cmd().args(["capture-pane", "-p", "-t", session]).output().expect("tmux capture-pane");
        crate::support::stdout(&o)
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").output();
    }
}

/// The shell script tmux runs: `cell --config CFG KIND` as the host user of `h`.
fn launch_script(h: &Host, cfg: &Path, kind: &str) -> PathBuf {
    let cell = crate::support::cell_bin();
    let user = if h.who == Who::User && nix::unistd::geteuid().is_root() {
        format!("setpriv --reuid={} --regid={} --clear-groups ", h.uid, h.gid)
    } else {
        String::new()
    };
    let script = format!(
        "#!/bin/sh\ncd '{work}' || exit 1\n{user}env -i HOME='{home}' PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 \
         TERM=xterm-256color XDG_CONFIG_HOME='{home}/.config' XDG_RUNTIME_DIR='{run}' CELL_CONFIG='{cfg}' \
         '{cell}' --config '{cfg}' {kind}\necho \"CELL EXITED $?\"\nsleep 600\n",
        work = h.work.display(),
        home = h.home.display(),
        run = h.path("run").display(),
        cfg = cfg.display(),
        cell = cell.display(),
    );
    let p = h.path(&format!("tmux-{kind}.sh"));
    std::fs::write(&p, script).expect("write script");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    p
}

both!(real_agents_open_at_their_prompt_on_a_fresh_home, |h| {
    if Command::new("tmux").arg("-V").output().is_err() {
        skip(
            "real_agents_open_at_their_prompt_on_a_fresh_home",
            "tmux is not installed (apt-get install tmux; .ci/run does)",
        );
        return;
    }
    let Some(api) = StandIn::start(h) else { return };
    let cfg = setup(h, &api);
    let tmux = Tmux { socket: h.path("tmux.sock") };
    // A session that outlives each agent's: the server would exit with the last session, and
    // the next agent's `new-session` could reach it as it goes ("server exited unexpectedly").
    let o = tmux.cmd().args(["new-session", "-d", "-s", "keep", "sleep 3600"]).output().expect("tmux");
    assert!(o.status.success(), "{}", show(&o));
    for kind in AGENTS {
        if !installed(kind) {
            skip(
                &format!("real_agents_open_at_their_prompt_on_a_fresh_home ({kind})"),
                &format!("{kind} is not installed (npm install -g; .ci/run does)"),
            );
            continue;
        }
        let script = launch_script(h, &cfg, kind);
        let o = tmux
            .cmd()
            .args(["new-session", "-d", "-s", kind, "-x", "120", "-y", "40"])
            .arg(&script)
            .output()
            .expect("tmux");
        assert!(o.status.success(), "{}", show(&o));
        let (prompt, dialogs) = screens(kind);
        // A generous deadline for a slow machine; the answer is whichever screen comes first.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        let screen = loop {
            let s = tmux.screen(kind);
            if let Some(d) = dialogs.iter().find(|d| s.contains(*d)) {
                panic!("{kind} stopped at a first-run dialog ({d:?}) instead of its prompt:\n{s}");
            }
            if prompt.iter().any(|p| s.contains(p)) || s.contains("CELL EXITED") {
                break s;
            }
            assert!(std::time::Instant::now() < deadline, "{kind} showed neither its prompt nor a known dialog:\n{s}");
            std::thread::sleep(std::time::Duration::from_millis(300));
        };
        assert!(!screen.contains("CELL EXITED"), "{kind} exited instead of showing its prompt:\n{screen}");
        // The prompt takes a message, and the answer comes from the stand-in.
        let o = tmux.cmd().args(["send-keys", "-t", kind, "-l", "Say hello."]).output().expect("tmux send-keys");
        assert!(o.status.success(), "{}", show(&o));
        std::thread::sleep(std::time::Duration::from_millis(500));
        let o = tmux.cmd().args(["send-keys", "-t", kind, "Enter"]).output().expect("tmux send-keys");
        assert!(o.status.success(), "{}", show(&o));
        // A dialog may still come up over the prompt (codex draws its prompt, then asks about
        // the folder): until the answer shows, every screen is checked for one. Enter is sent
        // again now and then: a TUI may take quickly typed text for a paste, where Enter is a
        // newline.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        let mut next_enter = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let s = tmux.screen(kind);
            if s.contains(ANSWER) {
                break;
            }
            if let Some(d) = dialogs.iter().find(|d| s.contains(*d)) {
                panic!("{kind} stopped at a first-run dialog ({d:?}) instead of its prompt:\n{s}");
            }
            if std::time::Instant::now() > next_enter {
                let _ = tmux.cmd().args(["send-keys", "-t", kind, "Enter"]).output();
                next_enter = std::time::Instant::now() + std::time::Duration::from_secs(10);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{kind} never showed the stand-in's answer:\n{s}\n--- stand-in requests\n{}",
                api.requests()
            );
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        let _ = tmux.cmd().args(["kill-session", "-t", kind]).output();
        assert!(crate::support::gone_within(&script.display().to_string(), 30), "{kind}'s cell outlived its session");
    }
});
