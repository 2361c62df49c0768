//! A hostile agent against the launcher itself: a root launcher's cell must not be root on
//! the host, the launcher must never run a program the cell could have planted, and what
//! the cell sends the proxy must not reach the terminal as control sequences.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;

use crate::both;
use crate::support::{exists, ok, show, stderr, stdout, Host, Who};

/// A script that, if ever run, leaves `marker` on the host.
fn plant(path: &Path, marker: &Path) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, format!("#!/bin/sh\necho ran \"$@\" >> {}\nexit 0\n", marker.display())).expect("plant");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn a_cell_started_by_root_is_not_host_root() {
    let Some(h) = Host::new(Who::Root, "hostile::a_cell_started_by_root_is_not_host_root") else { return };
    let before = std::fs::read_to_string("/proc/sys/kernel/core_pattern").expect("core_pattern");
    let token = format!("cellroot{}", std::process::id());
    let mut child = h
        .cell()
        .args(["run", "--", "sh", "-c"])
        .arg(format!(
            "echo made > made.txt; cp /bin/sh sh.copy; chmod 4755 sh.copy 2>/dev/null; \
             if echo '|/tmp/cell-core-handler' 2>/dev/null > /proc/sys/kernel/core_pattern; then echo WROTE-CORE; fi; \
             touch ready; sleep 30; : {token}"
        ))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Read from the host, the id maps of the cell's processes give host ids.
    // Each map with the host id it must map to: the runAs account's uid, and its gid.
    let maps_of_cell = || -> Vec<(String, u32)> {
        crate::support::host_pids_with(&token)
            .iter()
            .flat_map(|p| {
                [("uid_map", h.uid), ("gid_map", h.gid)]
                    .map(|(m, id)| (std::fs::read_to_string(format!("/proc/{p}/{m}")).unwrap_or_default(), id))
            })
            .filter(|(m, _)| !m.is_empty() && m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut maps = maps_of_cell();
    while (maps.is_empty() || !exists(&h.work.join("ready"))) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
        maps = maps_of_cell();
    }
    let lines: Vec<(&str, u32)> = maps.iter().flat_map(|(m, id)| m.lines().map(|l| (l, *id))).collect();
    assert!(lines.len() >= 2, "no id maps of the cell were found");
    for (line, id) in &lines {
        let outside: u32 = line.split_whitespace().nth(1).and_then(|w| w.parse().ok()).expect("map line");
        assert_ne!(outside, 0, "the cell's ids map to host root: {lines:?}");
        assert_eq!(outside, *id, "the cell maps to another host id than the runAs account's: {lines:?}");
    }
    let _ = child.kill();
    let o = child.wait_with_output().expect("wait");
    assert!(!stdout(&o).contains("WROTE-CORE"), "the cell wrote kernel.core_pattern:\n{}", show(&o));
    assert_eq!(std::fs::read_to_string("/proc/sys/kernel/core_pattern").expect("core_pattern"), before);
    for f in ["made.txt", "sh.copy"] {
        let m = std::fs::metadata(h.work.join(f)).expect("written by the cell");
        assert_ne!(m.uid(), 0, "{f} made by a root-started cell belongs to host root");
        assert_eq!((m.uid(), m.gid()), (h.uid, h.gid), "{f} belongs to the runAs account");
    }
}

#[test]
fn run_as_chooses_the_account_and_is_checked() {
    let Some(h) = Host::new(Who::Root, "hostile::run_as_chooses_the_account_and_is_checked") else { return };
    let (uid, gid) = crate::support::test_user();
    let cfg = h.write_config(
        "runas.json",
        &format!(r#"{{"schemaVersion":1,"cells":{{"default":{{"runAs":"{}"}}}}}}"#, crate::support::TEST_USER),
    );
    let chown = std::process::Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{gid}"))
        .arg(h.dir.path())
        .status()
        .expect("chown");
    assert!(chown.success());
    let config = cfg.to_str().expect("utf8");
    let o = h.run(["--config", config, "run", "--", "sh", "-c", "id -u; echo x > by-runas"]);
    assert_eq!(ok(&o).trim(), uid.to_string(), "runAs picks the cell's uid");
    assert_eq!(std::fs::metadata(h.work.join("by-runas")).expect("written").uid(), uid);

    // Without a HOME of its own, the account's passwd home is used: celltest's does not exist.
    let o = h.cell().env_remove("HOME").args(["--config", config, "run", "--", "true"]).output().expect("run");
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains("cells.default.runAs") && stderr(&o).contains("/home/celltest"), "{}", show(&o));

    // A worktree the account cannot write is refused, naming runAs.
    let locked = h.path("locked");
    std::fs::create_dir_all(&locked).expect("mkdir");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let o = h.run(["--config", config, "run", "--workdir", locked.to_str().expect("utf8"), "--", "true"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains("cells.default.runAs") && stderr(&o).contains("cannot"), "{}", show(&o));

    // An account that does not exist, and root, are refused before anything runs.
    for (account, says) in [("cell-no-such-account", "does not exist"), ("root", "never runs as root")] {
        let cfg = h.write_config(
            "bad.json",
            &format!(r#"{{"schemaVersion":1,"cells":{{"default":{{"runAs":"{account}"}}}}}}"#),
        );
        let o = h.run(["--config", cfg.to_str().expect("utf8"), "run", "--", "sh", "-c", "echo ran > ran"]);
        assert_eq!(o.status.code(), Some(2), "{account}: {}", show(&o));
        assert!(stderr(&o).contains("cells.default.runAs") && stderr(&o).contains(says), "{}", show(&o));
        assert!(!exists(&h.work.join("ran")), "{account}: the command ran");
    }
}

both!(a_bwrap_planted_where_the_cell_writes_never_runs, |h| {
    let marker = h.path("planted-ran");
    let cell_home = h.home.join(".local/share/cell/default/home");
    let venv = h.work.join(".venv/bin");
    let bound = h.outside.join("bin");
    for dir in [&venv, &cell_home.join("bin"), &bound] {
        plant(&dir.join("bwrap"), &marker);
    }
    h.chown_all();
    let path = format!(
        "{}:{}:{}:/usr/sbin:/usr/bin:/sbin:/bin",
        venv.display(),
        cell_home.join("bin").display(),
        bound.display()
    );
    let rw = format!("{}:/mnt:rw", h.outside.display());
    let o = h
        .cell()
        .env("PATH", &path)
        .args(["run", "--bind", &rw, "--", "sh", "-c", "echo in-cell"])
        .output()
        .expect("run");
    assert_eq!(ok(&o).trim(), "in-cell", "the real bubblewrap built the cell");
    let o = h.cell().env("PATH", &path).args(["plan", "--json", "--bind", &rw]).output().expect("plan");
    let plan: serde_json::Value = serde_json::from_str(&ok(&o)).expect("plan json");
    let bwrap = plan["tools"]["bwrap"].as_str().expect("bwrap").to_owned();
    assert!(!bwrap.starts_with(h.dir.path().to_str().expect("utf8")), "planned the planted {bwrap}");
    // doctor knows no --bind: it skips the current directory and the cell homes.
    let doctor_path = format!("{}:{}:/usr/sbin:/usr/bin:/sbin:/bin", venv.display(), cell_home.join("bin").display());
    ok(&h.cell().env("PATH", &doctor_path).arg("doctor").output().expect("doctor"));
    assert!(!exists(&marker), "a planted bwrap ran on the host: {:?}", std::fs::read_to_string(&marker));

    // Named explicitly, a program in the worktree is refused, not run.
    let planted = venv.join("bwrap");
    let o = h.cell().env("CELL_BWRAP", &planted).args(["run", "--", "true"]).output().expect("run");
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains("bubblewrap") && stderr(&o).contains("CELL_BWRAP"), "{}", show(&o));
    let o =
        h.cell().env("CELL_EGRESS", &planted).args(["run", "--allow", "api.test", "--", "true"]).output().expect("run");
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains("cell-egress"), "{}", show(&o));
    assert!(!exists(&marker), "a planted program ran on the host: {:?}", std::fs::read_to_string(&marker));
});

both!(programs_a_cell_planted_above_the_worktree_never_run_on_the_host, |h| {
    // A cell fills its worktree's `.venv/bin`, which the user keeps on PATH as a project's
    // venv; later the user starts a cell, and asks for a cell's branches, from a
    // subdirectory. That launch's worktree is the subdirectory, so `.venv/bin` is no place
    // *its* cell can write, but a cell wrote it all the same.
    let marker = h.path("planted-ran");
    let sub = h.work.join("sub");
    std::fs::create_dir_all(&sub).expect("mkdir");
    let init = std::process::Command::new("git").args(["init", "-q"]).arg(&h.work).output().expect("git init");
    assert!(init.status.success(), "{}", show(&init));
    h.chown_all();
    // Each planted program notes that it ran, then does what the real one would.
    let script = format!(
        "mkdir -p .venv/bin && for p in bwrap git; do \
           printf '#!/bin/sh\\necho \"$p $*\" >> {m}\\nexec /usr/bin/%s \"$@\"\\n' $p > .venv/bin/$p && \
           chmod 755 .venv/bin/$p; done && echo PLANTED",
        m = marker.display()
    );
    let o = h.run(["run", "--network", "none", "--", "sh", "-c", &script]);
    assert_eq!(ok(&o).trim(), "PLANTED");
    let venv = h.work.join(".venv/bin");
    assert!(venv.join("git").exists() && std::fs::metadata(venv.join("git")).expect("planted").uid() != 0);
    let path = format!("{}:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", venv.display());

    let o = h.cell().current_dir(&sub).env("PATH", &path).args(["run", "--", "sh", "-c", "echo in-cell"]).output();
    assert_eq!(ok(&o.expect("run")).trim(), "in-cell", "the real bubblewrap built the cell");
    let o = h.cell().current_dir(&sub).env("PATH", &path).args(["plan", "--json"]).output().expect("plan");
    let plan: serde_json::Value = serde_json::from_str(&ok(&o)).expect("plan json");
    let bwrap = plan["tools"]["bwrap"].as_str().expect("bwrap").to_owned();
    assert!(!bwrap.starts_with(h.dir.path().to_str().expect("utf8")), "planned the planted {bwrap}");
    // `cell git` runs host git.
    for args in [&["git", "log"][..], &["git", "diff"], &["git", "sync"]] {
        let _ = h.cell().current_dir(&sub).env("PATH", &path).args(args).output();
    }
    assert!(!exists(&marker), "a planted program ran on the host: {:?}", std::fs::read_to_string(&marker));

    // With nothing else on PATH, the launcher says what it passed over, and how to choose it.
    let alone = format!("{}:/nonexistent", venv.display());
    let o = h.cell().current_dir(&sub).env("PATH", &alone).args(["run", "--", "true"]).output().expect("run");
    assert!(!o.status.success() && stderr(&o).contains("passed over"), "{}", show(&o));
    assert!(stderr(&o).contains("CELL_BWRAP="), "{}", show(&o));
    let o = h.cell().current_dir(&sub).env("PATH", &alone).args(["git", "log"]).output().expect("git log");
    assert!(!o.status.success() && stderr(&o).contains("CELL_GIT="), "{}", show(&o));
    assert!(!exists(&marker), "a planted program ran on the host: {:?}", std::fs::read_to_string(&marker));
});

both!(a_cell_binary_in_the_worktree_does_not_run_helpers_beside_it, |h| {
    // A copy of `cell` inside the worktree finds its helpers next to itself: the cell
    // could have replaced them there.
    let marker = h.path("helper-ran");
    let bin = h.work.join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    std::fs::hard_link(crate::support::cell_bin(), bin.join("cell")).expect("link cell");
    plant(&bin.join("cell-init"), &marker);
    plant(&bin.join("cell-egress"), &marker);
    h.chown_all();
    let o = h.cell_at(&bin.join("cell")).args(["run", "--allow", "api.test", "--", "true"]).output().expect("run");
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains("cell-init") || stderr(&o).contains("cell-egress"), "{}", show(&o));
    assert!(!exists(&marker), "a helper beside a worktree copy of cell ran: {:?}", std::fs::read_to_string(&marker));
});

/// Sends refused requests whose host names and targets carry ESC, BEL, DEL and C1 controls.
const CONTROLS_PY: &str = r#"
import socket
for req in [b"CONNECT e\x9b[31mvil.test:443 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET http://evil.test/\x1b]0;owned\x07\x7f HTTP/1.1\r\nHost: evil.test\r\n\r\n"]:
    s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    s.sendall(req)
    s.recv(1000)
    s.close()
s = socket.create_connection(("127.0.0.1", 1080), timeout=10)
s.sendall(b"\x05\x01\x00")
s.recv(2)
name = b"e\xc2\x9b\x1b[2Jvil.test"
s.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + b"\x01\xbb")
print(s.recv(100)[:2])
"#;

both!(net_log_never_prints_control_characters, |h| {
    let cfg = h.write_config(
        "ctl.json",
        r#"{"schemaVersion":1,"cells":{"ctl":{"network":{"mode":"proxy","allow":["api.test"]}}}}"#,
    );
    std::fs::write(h.work.join("controls.py"), CONTROLS_PY).expect("write");
    h.chown_all();
    let config = cfg.to_str().expect("utf8");
    ok(&h.run(["--config", config, "run", "--", "python3", "controls.py"]));
    // A record whose strings carry the controls themselves (as an egress that failed to
    // escape them would write): the log is read by a person's terminal.
    let log = h.home.join(".local/state/cell/ctl/egress.jsonl");
    let forged = serde_json::json!({
        "time": "t", "event": "decision", "cell": "ctl", "client": "http", "method": "GET\u{7f}",
        "host": "evil\u{9b}31m\u{1b}]0;x\u{7}.test\u{202e}lmth.exe", "port": 443, "verdict": "deny", "reason": "r\u{9b}2J\u{1b}[2J",
    });
    let mut text = std::fs::read_to_string(&log).expect("the refused requests were logged");
    assert!(text.lines().count() >= 3, "{text}");
    text.push_str(&format!("{forged}\nnot json \u{9b}2J \u{1b}[2J\n"));
    std::fs::write(&log, text).expect("append");
    for json in [false, true] {
        let mut args = vec!["--config", config, "net", "log", "--cell", "ctl", "-n", "0"];
        if json {
            args.push("--json");
        }
        let o = h.run(&args);
        let out = ok(&o);
        // Bidirectional overrides too: they make a line read otherwise than it says.
        let bad: Vec<char> =
            out.chars().filter(|c| (c.is_control() && *c != '\n') || cell::sys::is_bidi_control(*c)).collect();
        assert!(bad.is_empty(), "--json {json}: control characters reached the terminal: {bad:?}\n{out}");
        assert!(out.contains("evil"), "{out}");
        if json {
            for line in out.lines().filter(|l| l.starts_with('{')) {
                let v: serde_json::Value = serde_json::from_str(line).expect("still JSON");
                if v["time"] == "t" {
                    assert_eq!(v["host"], forged["host"], "the escapes keep the value");
                }
            }
        } else {
            assert!(out.contains("evil\\x9b31m\\x1b]0;x\\x07.test"), "{out}");
        }
    }
});

both!(doctor_warns_about_bubblewrap_before_0_12, |h| {
    let real = ["/usr/bin/bwrap", "/bin/bwrap", "/usr/local/bin/bwrap"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("bwrap");
    for (version, warned) in [("0.11.0", true), ("0.8.0", true), ("0.12.0", false), ("0.13.1", false)] {
        let fake = h.path(&format!("bwrap-{version}"));
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\n[ \"$1\" = --version ] && {{ echo 'bubblewrap {version}'; exit 0; }}\nexec {real} \"$@\"\n"
            ),
        )
        .expect("write");
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        h.chown_all();
        let o = h.cell().env("CELL_BWRAP", &fake).arg("doctor").output().expect("doctor");
        let out = ok(&o);
        let line = out.lines().find(|l| l.contains("bubblewrap version")).unwrap_or_default().to_owned();
        if warned {
            assert!(line.starts_with("[warn]") && line.contains("CVE-2026-87766"), "{version}:\n{out}");
            assert!(out.contains("0.12.0 or later") && out.contains("Nix package"), "{version}:\n{out}");
        } else {
            assert!(line.starts_with("[pass]"), "{version}:\n{out}");
        }
    }
});
