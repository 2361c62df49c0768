//! Attacks on a real cell: each must fail to get through.

use std::os::unix::fs::MetadataExt as _;

use crate::both;
use crate::support::{exists, gone_within, ok, show, stderr, stdout, wait_for, SECRET};

both!(host_home_secrets_are_unreadable, |h| {
    let home = h.home.display();
    let o = h.sh(&format!(
        "cat {home}/secret.txt {home}/.ssh/id_ed25519 \"$HOME/secret.txt\" \"$HOME/.ssh/id_ed25519\" \
         /etc/shadow {out}/secret.txt 2>&1; \
         echo LISTING; ls -a {home} \"$HOME\" /root /run/user /home 2>/dev/null; true",
        out = h.outside.display()
    ));
    let text = show(&o);
    assert!(o.status.success(), "{text}");
    assert!(!stdout(&o).contains(SECRET), "a planted secret was readable:\n{text}");
    let listing = stdout(&o).split("LISTING").nth(1).unwrap_or_default().to_owned();
    assert!(!listing.contains(".ssh") && !listing.contains("secret.txt"), "the host home is visible:\n{text}");
});

both!(writes_outside_the_worktree_fail_and_leave_nothing, |h| {
    let marker = format!("cell-escape-{}", std::process::id());
    let targets =
        [format!("/{marker}"), format!("/etc/{marker}"), format!("/usr/{marker}"), format!("/usr/lib/{marker}")];
    let script: String =
        targets.iter().map(|t| format!("if echo x > {t} 2>/dev/null; then echo WROTE {t}; fi; ")).collect();
    let o = h.sh(&format!("{script} echo x > {}/{marker} 2>/dev/null; true", h.outside.display()));
    ok(&o);
    assert!(!stdout(&o).contains("WROTE"), "a write outside succeeded:\n{}", show(&o));
    for t in &targets {
        assert!(!exists(std::path::Path::new(t)), "{t} appeared on the host");
    }
    assert!(!exists(&h.outside.join(&marker)), "the outside directory was written on the host");
});

both!(the_generated_files_cannot_be_changed_from_inside, |h| {
    // /etc is a read-only bind of the launcher's directory for this /etc (in the runtime
    // base, named by its digest, shared by every launch with the same /etc); /run/cell/*
    // are read-only mounts.
    let mut script = String::from(
        "touch /etc/new 2>/dev/null && echo CHANGED /etc; mkdir /etc/d 2>/dev/null && echo CHANGED /etc; \
         chmod 777 /etc 2>/dev/null && echo CHANGED /etc; ",
    );
    for f in ["/etc/passwd", "/etc/hosts", "/etc/resolv.conf", "/run/cell/init.json"] {
        script.push_str(&format!(
            "echo x >> {f} 2>/dev/null && echo CHANGED {f}; chmod 666 {f} 2>/dev/null && echo CHANGED {f}; \
             rm -f {f} 2>/dev/null && echo CHANGED {f}; mv {f} {f}.x 2>/dev/null && echo CHANGED {f}; \
             ln -sf /tmp {f} 2>/dev/null && echo CHANGED {f}; "
        ));
    }
    script.push_str("grep -c . /etc/passwd; stat -c %a /etc/passwd");
    let out = ok(&h.sh(&script));
    assert!(!out.contains("CHANGED"), "a generated file was changed:\n{out}");
    assert!(out.trim_end().ends_with("444"), "{out}");
    // The directory on the host holds what the cell read, untouched, and nothing more.
    let inside = ok(&h.sh("cat /etc/passwd /etc/hostname"));
    // (Beside the trees: the kept system mounts, host::syscache.)
    let trees: Vec<std::path::PathBuf> = std::fs::read_dir(h.path("run/cell/etc"))
        .expect("the runtime base's etc")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(trees.len(), 1, "{trees:?}");
    let host = format!(
        "{}{}",
        std::fs::read_to_string(trees[0].join("passwd")).expect("passwd"),
        std::fs::read_to_string(trees[0].join("hostname")).expect("hostname")
    );
    assert_eq!(inside, host);
    assert!(!exists(&trees[0].join("new")) && !exists(&trees[0].join("d")));
});

both!(a_malformed_init_spec_is_refused_and_runs_nothing, |h| {
    // cell-init, run as a cell's command with a spec from the worktree: each spec it cannot
    // use is refused with exit 125, naming the file and the field, and its command never
    // runs (the marker stays absent).
    let cases = [
        (r#"{"run":{"argv":["sh","-c",": > ran"],"env":{},"bridge":"3128=/x"}}"#, "unknown field `bridge`"),
        (r#"{"run":{"argv":["sh","-c",": > ran"],"env":{},"jobFd":"9"}}"#, "run.jobFd"),
        (
            r#"{"run":{"argv":["sh","-c",": > ran"],"env":{},"bridges":[{"port":3128,"socket":"/s","tls":1}]}}"#,
            "run.bridges[0].tls: unknown field `tls`",
        ),
        (r#"{"run":{"argv":["sh","-c",": > ran"],"env":{},"bridges":[{"port":0,"socket":"/s"}]}}"#, "run.bridges[0]"),
        (r#"{"exec":["sh","-c",": > ran"]}"#, "unknown variant `exec`"),
        ("argv=sh", "expected value"),
    ];
    for (i, (spec, needle)) in cases.iter().enumerate() {
        let file = h.work.join(format!("bad-{i}.json"));
        std::fs::write(&file, spec).expect("write");
        h.chown_all();
        let o = h.run(["run", "--", "/run/cell/cell-init", "--spec", file.to_str().expect("utf8")]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(125), "{spec}: {}", show(&o));
        let named = format!("cell-init: malformed spec {}", file.display());
        assert!(err.contains(&named) && err.contains(needle), "{spec}: wanted {needle:?}:\n{}", show(&o));
        assert!(!exists(&h.work.join("ran")), "{spec}: the command ran");
    }
});

both!(the_copied_host_etc_files_cannot_be_changed_from_inside, |h| {
    // Small host /etc files and directories are copies on bubblewrap's root (owned by the
    // cell user, read-only only because the root is remounted read-only), not binds.
    let mut script = String::new();
    let mut probed = 0;
    for f in ["/etc/profile", "/etc/inputrc", "/etc/ld.so.conf", "/etc/bash.bashrc.host", "/etc/ssl/openssl.cnf"] {
        let host = if f == "/etc/bash.bashrc.host" { "/etc/bash.bashrc" } else { f };
        if !std::path::Path::new(host).is_file() {
            continue;
        }
        probed += 1;
        script.push_str(&format!(
            "test -f {f} || echo MISSING {f}; echo x >> {f} 2>/dev/null && echo CHANGED {f}; \
             chmod 666 {f} 2>/dev/null && echo CHANGED {f}; touch {f} 2>/dev/null && echo CHANGED {f}; \
             rm -f {f} 2>/dev/null && echo CHANGED {f}; "
        ));
    }
    for d in ["/etc/ld.so.conf.d", "/etc/profile.d", "/etc/terminfo", "/etc/bash_completion.d"] {
        if !std::path::Path::new(d).is_dir() {
            continue;
        }
        probed += 1;
        script.push_str(&format!(
            "test -d {d} || echo MISSING {d}; touch {d}/planted 2>/dev/null && echo CHANGED {d}; \
             mkdir {d}/sub 2>/dev/null && echo CHANGED {d}; chmod 777 {d} 2>/dev/null && echo CHANGED {d}; "
        ));
    }
    if probed == 0 {
        crate::support::skip(
            "the_copied_host_etc_files_cannot_be_changed_from_inside",
            "this host has none of the small /etc files cell copies",
        );
        return;
    }
    script.push_str("echo PROBED");
    let out = ok(&h.sh(&script));
    assert!(out.contains("PROBED"), "{out}");
    assert!(
        !out.contains("CHANGED") && !out.contains("MISSING"),
        "a copied host /etc file was changed or missing:\n{out}"
    );
});

both!(worktree_writes_belong_to_the_host_user, |h| {
    let o = h.sh("echo hello > made.txt && mkdir -p sub && echo x > sub/f && id -u && id -g");
    let out = ok(&o);
    let ids: Vec<u32> = out.lines().map(|l| l.trim().parse().expect("id")).collect();
    assert_eq!(ids, [h.inside_uid(), h.gid], "uid/gid inside");
    assert_ne!(ids[0], 0, "the cell user must never be root");
    for p in ["made.txt", "sub", "sub/f"] {
        let m = std::fs::metadata(h.work.join(p)).expect("file written in the worktree exists on the host");
        assert_eq!((m.uid(), m.gid()), (h.uid, h.gid), "{p} owner on the host");
    }
    assert_eq!(std::fs::read_to_string(h.work.join("made.txt")).expect("read"), "hello\n");
});

both!(only_the_cells_processes_are_visible, |h| {
    let o = h.sh("for p in /proc/[0-9]*; do echo ${p#/proc/} $(tr '\\0' ' ' < $p/cmdline); done");
    let out = ok(&o);
    let pids: Vec<i32> = out.lines().filter_map(|l| l.split_whitespace().next()?.parse().ok()).collect();
    assert!(pids.len() <= 6, "more processes than the cell's own:\n{out}");
    assert!(out.lines().any(|l| l.starts_with("1 /run/cell/cell-init")), "pid 1 is cell-init:\n{out}");
    let me = std::process::id().to_string();
    assert!(
        !out.contains("cargo") && !out.lines().any(|l| l.contains(&format!(" {me} "))),
        "host processes visible:\n{out}"
    );
});

both!(user_and_group_inside_are_not_root, |h| {
    let out = ok(&h.sh("id -u; id -g; id -un; grep CapEff /proc/self/status"));
    let lines: Vec<&str> = out.lines().collect();
    assert_ne!(lines[0], "0");
    assert_ne!(lines[1], "0");
    assert!(lines[3].ends_with("0000000000000000"), "capabilities remain: {out}");
});

both!(host_environment_never_leaks_in, |h| {
    let o = h
        .cell()
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("GITHUB_TOKEN", SECRET)
        .env("SSH_AUTH_SOCK", "/run/user/0/ssh-agent")
        .args([
            "run",
            "--",
            "sh",
            "-c",
            "env; tr '\\0' '\\n' < /proc/1/environ 2>/dev/null || echo INIT-ENVIRON-UNREADABLE",
        ])
        .output()
        .expect("run");
    let out = ok(&o);
    assert!(!out.contains(SECRET), "a host secret leaked into the cell:\n{out}");
    assert!(!out.contains("SSH_AUTH_SOCK"), "{out}");
    assert!(out.contains("LANG=C.UTF-8"), "LANG is passed through:\n{out}");
});

both!(only_loopback_exists, |h| {
    let out = ok(&h.sh("tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; cat /proc/net/route | wc -l"));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["lo", "1"], "interfaces, then route table lines (header only)");
});

both!(background_processes_die_with_the_cell, |h| {
    let token = format!("cellbg{}x{}", std::process::id(), h.uid);
    let o = h.sh(&format!(
        "setsid nohup sh -c 'sleep 300; echo {token}' >/dev/null 2>&1 & \
         nohup sh -c 'sleep 301; echo {token}' >/dev/null 2>&1 & \
         sleep 0.2; echo started"
    ));
    assert_eq!(ok(&o).trim(), "started");
    assert!(gone_within(&token, 5), "a background process outlived its cell");
});

both!(exit_codes_and_signals_propagate, |h| {
    assert_eq!(h.sh("exit 7").status.code(), Some(7));
    assert_eq!(h.sh("exit 0").status.code(), Some(0));
    assert_eq!(h.sh("kill -TERM $$").status.code(), Some(128 + 15));
    assert_eq!(h.sh("kill -KILL $$").status.code(), Some(128 + 9));
});

both!(the_command_starts_with_no_signal_blocked_or_ignored, |h| {
    // cell-init blocks the signals it forwards (and ignores none but what std does); the
    // command it starts, as the cell's first program, must see neither. `cat` is exec'd by
    // cell-init directly (no shell in between that could reset them).
    let o = h.run(["run", "--", "cat", "/proc/self/status"]);
    let text = ok(&o);
    let field = |k: &str| text.lines().find_map(|l| l.strip_prefix(k)).map(str::trim).unwrap_or_default().to_owned();
    assert_eq!(field("SigBlk:"), "0000000000000000", "the command inherited blocked signals:\n{text}");
    // The standard signals (1-31); glibc's posix_spawn (std's `Command`, which started this
    // launcher) leaves its internal real-time signals 32 and 33 ignored, and glibc offers no
    // way to undo that.
    let ignored = u64::from_str_radix(&field("SigIgn:"), 16).expect("SigIgn");
    assert_eq!(ignored & 0x7fff_ffff, 0, "the command inherited ignored signals:\n{text}");
});

/// `cell run -- sh -c SCRIPT` in the background, once the script printed its first line,
/// `ready`; with the launcher's pid.
fn started(h: &crate::support::Host, script: &str) -> (std::process::Child, nix::unistd::Pid) {
    use std::io::BufRead as _;
    let mut child =
        h.cell().args(["run", "--", "sh", "-c", script]).stdout(std::process::Stdio::piped()).spawn().expect("spawn");
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.as_mut().expect("stdout")).read_line(&mut first).expect("read");
    assert_eq!(first.trim(), "ready");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    (child, pid)
}

both!(signals_to_the_launcher_reach_the_command, |h| {
    let (mut child, pid) = started(h, "trap 'exit 42' TERM; echo ready; while :; do sleep 0.05; done");
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("kill");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(42), "the command's TERM trap ran and its status came back");
});

both!(a_signal_while_the_cell_starts_still_ends_it, |h| {
    // Found by a tester: a SIGTERM (or Ctrl-C) that reached the launcher in the first
    // milliseconds was forwarded to a pid 1 that did not handle it yet (bubblewrap's child
    // building the cell, or cell-init starting), which drops it: the cell ran on. Sent at
    // delays across the start-up; every launch must end (a bound for a hang, not a timing).
    let token = format!("cellearly{}x{}", std::process::id(), h.uid);
    let mut ran_on = Vec::new();
    for i in 0..24u64 {
        let mut child = h
            .cell()
            .args(["run", "--network", "none", "--", "sh", "-c", &format!("sleep 301; echo {token}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
        std::thread::sleep(std::time::Duration::from_micros(1500 * i));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("kill");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if child.try_wait().expect("wait").is_some() {
                break;
            }
            if std::time::Instant::now() > deadline {
                ran_on.push(i);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                let _ = child.wait();
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    assert!(crate::support::gone_within(&token, 10), "a cell outlived its launcher");
    assert!(ran_on.is_empty(), "cells ran on after a SIGTERM at {ran_on:?} (x1.5 ms after the launch)");
});

both!(a_stopped_command_still_ends_on_sigterm, |h| {
    // Found by a tester: a command that stopped itself (or was stopped by anything in the
    // cell) kept the forwarded SIGTERM pending, and the cell ran on until a SIGKILL.
    let (mut child, pid) = started(h, "echo ready; kill -STOP $$; echo continued");
    // Until the shell has stopped itself (its state in /proc), so the TERM finds it stopped.
    let stopped = || {
        std::fs::read_dir("/proc").into_iter().flatten().flatten().any(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('T'))
                && String::from_utf8_lossy(&cmd).contains("kill -STOP")
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !stopped() {
        assert!(std::time::Instant::now() < deadline, "the command never stopped");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("kill");
    // A bound for a hang, not a timing: the cell ends at once, or never without the fix.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            panic!("the cell of a stopped command did not end on SIGTERM");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(143), "ended by the TERM (128+15)");
});

both!(killing_the_launcher_kills_the_cell, |h| {
    let token = format!("cellkill{}x{}", std::process::id(), h.uid);
    let (mut child, pid) = started(h, &format!("sh -c 'sleep 302; echo {token}' & echo ready; wait"));
    assert!(!crate::support::host_pids_with(&token).is_empty(), "the cell's process is running");
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("kill");
    let _ = child.wait();
    assert!(gone_within(&token, 5), "the cell outlived its launcher");
});

both!(inherited_descriptors_do_not_reach_the_cell, |h| {
    use std::os::fd::AsRawFd as _;
    use std::os::unix::process::CommandExt as _;
    let secret = std::fs::File::open(h.outside.join("secret.txt")).expect("open");
    let raw = secret.as_raw_fd();
    let mut cmd = h.cell();
    cmd.args(["run", "--", "sh", "-c", "ls /proc/self/fd; cat /proc/self/fd/7 /proc/self/fd/20 2>&1; true"]);
    // SAFETY: dup2 in the child before exec; leaves descriptors 7 and 20 open without CLOEXEC.
    unsafe {
        cmd.pre_exec(move || {
            nix::libc::dup2(raw, 7);
            nix::libc::dup2(raw, 20);
            Ok(())
        });
    }
    let o = cmd.output().expect("run");
    let out = ok(&o);
    assert!(!out.contains(SECRET), "an inherited descriptor leaked into the cell:\n{out}");
    let fds: Vec<&str> = out.lines().take_while(|l| l.parse::<u32>().is_ok()).collect();
    assert_eq!(fds, ["0", "1", "2", "3"], "only stdio (and ls's own directory handle):\n{out}");
});

both!(host_tmp_is_not_shared, |h| {
    let name = format!("/tmp/cell-host-tmp-{}", std::process::id());
    std::fs::write(&name, SECRET).expect("write");
    let o = h.sh(&format!("cat {name} 2>&1; echo inside > /tmp/from-cell-{}; true", std::process::id()));
    let _ = std::fs::remove_file(&name);
    assert!(!ok(&o).contains(SECRET));
    assert!(!exists(std::path::Path::new(&format!("/tmp/from-cell-{}", std::process::id()))));
});

both!(home_persists_between_runs_and_is_private, |h| {
    ok(&h.sh("echo remembered > \"$HOME/state\""));
    assert_eq!(ok(&h.sh("cat \"$HOME/state\"")).trim(), "remembered");
    let cell_home = h.home.join(".local/share/cell/default/home");
    let m = std::fs::metadata(&cell_home).expect("cell home on the host");
    assert_eq!(m.mode() & 0o777, 0o700);
    assert_eq!(m.uid(), h.uid);
    assert!(cell_home.join("state").exists());
});

both!(stdin_and_stdout_are_the_callers, |h| {
    use std::io::Write as _;
    let mut child = h
        .cell()
        .args(["run", "--", "tr", "a-z", "A-Z"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().expect("stdin").write_all(b"piped through\n").expect("write");
    let o = child.wait_with_output().expect("wait");
    assert_eq!(ok(&o), "PIPED THROUGH\n", "{}", stderr(&o));
});

both!(a_launch_that_ends_leaves_the_worktree_of_another_in_place, |h| {
    // Two launches in one worktree below the home, so that its mount point is a directory
    // the first launch makes in the cell home. When the first ends it must not remove that
    // directory: the kernel would detach the second cell's worktree mount, and the second
    // could no longer reach its worktree by path.
    let proj = h.home.join("proj");
    std::fs::create_dir_all(&proj).expect("mkdir");
    std::fs::write(proj.join("f"), "in-the-worktree").expect("write");
    h.chown_all();
    let wait = |name: &str| format!("touch {name}-up; while [ ! -e {name}-go ]; do sleep 0.05; done");
    let mut first = h
        .cell()
        .current_dir(&proj)
        .args(["run", "--", "sh", "-c", &wait("first")])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("first launch");
    wait_for(&proj.join("first-up"));
    let second = h
        .cell()
        .current_dir(&proj)
        .args(["run", "--", "sh", "-c", &format!("{}; cat {}/f", wait("second"), proj.display())])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("second launch");
    wait_for(&proj.join("second-up"));
    std::fs::write(proj.join("first-go"), "").expect("go");
    assert!(first.wait().expect("first").success());
    std::fs::write(proj.join("second-go"), "").expect("go");
    let out = second.wait_with_output().expect("second");
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(stdout(&out), "in-the-worktree", "{}", show(&out));
});

/// What `stat` says of `p`, as the kept system mounts record it (`host::syscache`).
fn kept_sig(p: &std::path::Path) -> serde_json::Value {
    let m = std::fs::metadata(p).expect("stat");
    serde_json::json!([
        m.dev(),
        m.ino(),
        m.mode(),
        m.nlink(),
        m.uid(),
        m.gid(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec()
    ])
}

both!(kept_system_mounts_hold_only_while_what_they_were_made_from_is_unchanged, |h| {
    // The launcher keeps the host's system mounts in its runtime base with a record of every
    // path they were made from. Kept mounts the records still match are used as they are;
    // one changed path, or one that appears where none was, and they are made again.
    ok(&h.sh("true"));
    ok(&h.sh("true"));
    let kept = h.path("run/cell/etc/system.json");
    let real: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&kept).expect("the second launch kept its system mounts"))
            .expect("json");
    // Kept mounts with a marker copy, made from a file of the test and from a path absent now.
    let input = h.path("input");
    std::fs::write(&input, "one").expect("write");
    h.chown_all();
    let absent = h.path("absent");
    // Only the kept file changes owner: a chown of the input would move its change time.
    let own = |p: &std::path::Path| std::os::unix::fs::chown(p, Some(h.uid), Some(h.gid)).expect("chown");
    let forge = |marker: &str| {
        let mut k = real.clone();
        k["copies"].as_array_mut().expect("copies").push(serde_json::json!(["/etc/cell-kept", marker]));
        let records = k["seen"]["records"].as_array_mut().expect("records");
        records.push(serde_json::json!([input.to_str(), "stat", kept_sig(&input)]));
        records.push(serde_json::json!([absent.to_str(), "lstat", null]));
        std::fs::write(&kept, serde_json::to_string(&k).expect("json")).expect("write the kept file");
        own(&kept);
    };
    let marker = || ok(&h.sh("cat /etc/cell-kept 2>/dev/null || echo NONE")).trim().to_owned();
    forge("KEPT");
    assert_eq!(marker(), "KEPT", "the kept system mounts were not used");
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&input, "two").expect("write");
    assert_eq!(marker(), "NONE", "a changed input left the kept mounts in use");
    forge("KEPT");
    std::fs::create_dir(&absent).expect("mkdir");
    assert_eq!(marker(), "NONE", "a path that appeared left the kept mounts in use");
    // The cell cannot reach the kept file (or anything of the runtime base) to forge it.
    let o = h.sh(&format!(
        "cat {k} 2>/dev/null && echo READ; echo x > {k} 2>/dev/null && echo WROTE; true",
        k = kept.display()
    ));
    assert!(!stdout(&o).contains("READ") && !stdout(&o).contains("WROTE"), "{}", show(&o));
    // A kept file naming other mounts is ignored: a host directory bound into /etc.
    let mut k = real.clone();
    k["mounts"].as_array_mut().expect("mounts").push(serde_json::json!([
        "ro-bind",
        h.outside.to_str(),
        "/etc/cell-leak"
    ]));
    std::fs::write(&kept, serde_json::to_string(&k).expect("json")).expect("write");
    own(&kept);
    let o = h.sh("cat /etc/cell-leak/secret.txt 2>&1; true");
    assert!(!stdout(&o).contains(crate::support::SECRET), "a forged kept mount was used:\n{}", show(&o));
    // Nor one that leaves /usr by `..` (bubblewrap would resolve it), though it is recorded.
    let sneaky = format!("/usr/..{}", h.outside.display());
    let mut k = real.clone();
    k["mounts"].as_array_mut().expect("mounts").push(serde_json::json!(["ro-bind", sneaky, sneaky]));
    k["seen"]["records"].as_array_mut().expect("records").push(serde_json::json!([
        sneaky,
        "lstat",
        kept_sig(&h.outside)
    ]));
    std::fs::write(&kept, serde_json::to_string(&k).expect("json")).expect("write");
    own(&kept);
    let o = h.sh(&format!("cat {}/secret.txt 2>&1; true", h.outside.display()));
    assert!(!stdout(&o).contains(crate::support::SECRET), "a forged kept mount was used:\n{}", show(&o));
});

both!(a_worktree_that_holds_another_sessions_runtime_base_is_refused, |h| {
    // With XDG_RUNTIME_DIR set this launch keeps its runtime files there; launches of the
    // same account without it use /tmp/cell-UID and trust what they find there. A cell that
    // sees /tmp (as its worktree, or through a bind) could plant them (a link, a forged
    // /etc), or read their sockets: refused, nothing runs.
    let marker = h.path("ran");
    // This session's runtime directory outside /tmp (the test's own lies below it).
    // Private to the account (0700, its own), or the launcher would pass it over for
    // /tmp/cell-UID, and the refusal below would be of its own base, not another session's.
    let rt = tempfile::Builder::new()
        .prefix("cell-it-rt-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir_in("/dev/shm")
        .expect("runtime dir");
    std::os::unix::fs::chown(rt.path(), Some(h.uid), Some(h.gid)).expect("chown");
    let touch = format!("touch {}", marker.display());
    let refused = |o: &std::process::Output, how: &str| {
        assert_eq!(o.status.code(), Some(2), "{how}: {}", show(o));
        assert!(stderr(o).contains(&format!("/tmp/cell-{}", h.uid)), "{how}: {}", show(o));
        assert!(stderr(o).contains("other sessions"), "{how}: not refused as another session's base: {}", show(o));
        assert!(!exists(&marker), "the command ran ({how})");
    };
    // A bind of /tmp, even read-only, into a cell whose worktree is elsewhere.
    let cfg = h.write_config(
        "tmpbind.json",
        &serde_json::json!({"schemaVersion":1,"cells":{"default":{
            "binds": [{ "src": "/tmp", "dst": "/x", "mode": "ro" }] }}})
        .to_string(),
    );
    let o = h
        .cell()
        .env("XDG_RUNTIME_DIR", rt.path())
        .args(["--config", cfg.to_str().expect("utf8"), "run", "--", "sh", "-c", &touch])
        .output()
        .expect("run");
    refused(&o, "a read-only bind of /tmp");
    // /tmp as the worktree (the test home lies in /tmp: the broad worktree is allowed, so
    // that this is what refuses). A build of cell under /tmp would be refused before that,
    // for its programs would lie where the cell could write: then a copy of them outside
    // /tmp is what runs.
    let mut cell = crate::support::cell_bin();
    let _copy = if cell.starts_with("/tmp") {
        let outside = ["/var/tmp", "/dev/shm"]
            .into_iter()
            .find(|d| std::path::Path::new(d).is_dir())
            .expect("/var/tmp or /dev/shm");
        let dir = tempfile::Builder::new().prefix("cell-it-bin-").tempdir_in(outside).expect("copy dir");
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        for b in [crate::support::cell_bin(), crate::support::init_bin()] {
            std::fs::copy(&b, dir.path().join(b.file_name().expect("name"))).expect("copy");
        }
        cell = dir.path().join("cell");
        Some(dir)
    } else {
        None
    };
    // And a home outside /tmp: a worktree holding the launcher's own config and state is
    // refused for that first.
    let home = tempfile::Builder::new().prefix("cell-it-home-").tempdir_in("/dev/shm").expect("home");
    std::os::unix::fs::chown(home.path(), Some(h.uid), Some(h.gid)).expect("chown");
    let o = h
        .cell_at(&cell)
        .env("XDG_RUNTIME_DIR", rt.path())
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join(".config"))
        .current_dir("/tmp")
        .args(["run", "--allow-broad-worktree", "--network", "none", "--", "sh", "-c", &touch])
        .output()
        .expect("run");
    refused(&o, "a worktree of /tmp");
});

both!(a_worktree_that_holds_the_launchers_own_state_is_refused, |h| {
    // The launcher acts on what it keeps in its config, state, data and cache directories
    // (containment records, git views, the cell homes, the bubblewrap feature cache): a cell
    // that could write them could make a later launch rename host files or drop a defence.
    ok(&h.sh("true"));
    let marker = h.path("ran");
    let touch = format!("touch {}", marker.display());
    let local = h.home.join(".local");
    let cache = h.home.join(".cache");
    for d in [&local, &cache, &h.work.join(".xstate")] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    h.chown_all();
    let tries: [(&std::path::Path, Option<(&str, std::path::PathBuf)>); 3] =
        [(&local, None), (&cache, None), (&h.work, Some(("XDG_STATE_HOME", h.work.join(".xstate"))))];
    for (dir, var) in tries {
        let mut cmd = h.cell();
        cmd.current_dir(dir).args(["run", "--", "sh", "-c", &touch]);
        if let Some((k, v)) = &var {
            cmd.env(k, v);
        }
        let o = cmd.output().expect("run");
        assert_eq!(o.status.code(), Some(2), "{} {var:?}: {}", dir.display(), show(&o));
        assert!(stderr(&o).contains("which later launches trust"), "{}", show(&o));
        assert!(!exists(&marker), "the command ran in {}", dir.display());
    }
    // The cell's own home stays the cell's to write.
    ok(&h.sh("touch \"$HOME/mine\""));
});

both!(a_launch_nested_with_a_running_cells_worktree_is_refused, |h| {
    // A running cell can rename anything below its worktree: with a second launch's
    // worktree inside it (or holding it), it could swap that launch's mount sources for
    // links to host directories between the launcher's checks and bubblewrap's mounts.
    let inner = h.work.join("proj");
    std::fs::create_dir_all(&inner).expect("mkdir");
    h.chown_all();
    let marker = h.path("ran");
    let touch = format!("touch {}", marker.display());
    let outer_cell = |dir: &std::path::Path| {
        h.cell()
            .current_dir(dir)
            .args(["run", "--network", "none", "--", "sh", "-c", "touch up; while [ ! -e go ]; do sleep 0.05; done"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn")
    };
    for (running, second) in [(&h.work, &inner), (&inner, &h.work)] {
        let mut first = outer_cell(running);
        crate::support::wait_for(&running.join("up"));
        // The live record follows the command's start by a moment.
        std::thread::sleep(std::time::Duration::from_millis(300));
        let o = h
            .cell()
            .current_dir(second)
            .args(["run", "--network", "none", "--", "sh", "-c", &touch])
            .output()
            .expect("run");
        std::fs::write(running.join("go"), "").expect("go");
        let _ = first.wait();
        assert_eq!(o.status.code(), Some(2), "{}", show(&o));
        assert!(stderr(&o).contains(&format!("runs in {}", running.display())), "{}", show(&o));
        assert!(!exists(&marker), "the nested launch ran beside {}", running.display());
        for f in ["up", "go"] {
            let _ = std::fs::remove_file(running.join(f));
        }
        // Once the other has ended, it starts.
        ok(&h.cell().current_dir(second).args(["run", "--network", "none", "--", "true"]).output().expect("run"));
    }
});

both!(the_early_and_the_planned_bubblewrap_build_the_same_cell, |h| {
    // bubblewrap started before the plan is made gets its limits from outside (cgroup,
    // prlimit, setpriority) and its options on a pipe: the cell it builds must be the one
    // the planned start builds, down to the limits, the processors it may use, the filter
    // and the open descriptors.
    let cfg = h.write_config(
        "limited.json",
        r#"{"schemaVersion":1,"cells":{"default":{"limits":{"tasks":77,"memory":"300M","cpuWeight":10}}}}"#,
    );
    h.chown_all();
    let probe = "ulimit -u; ulimit -d; cut -d' ' -f19 /proc/self/stat; \
                 grep -E '^(Uid|Gid|Groups|NoNewPrivs|Seccomp|Seccomp_filters|CapInh|CapPrm|CapEff|CapBnd|CapAmb|Cpus_allowed_list)' /proc/self/status; \
                 ls /proc/self/fd; tr '\\0' ' ' </proc/1/cmdline; echo; cat /run/cell/init.json | wc -c; \
                 ls -l /etc/passwd /etc/hostname | cut -c1-10; hostname; pwd; env | sort | grep -v '^_='";
    let run = |early: &str| {
        h.cell()
            .env("CELL_EARLY_BWRAP", early)
            .env("CELL_TIMINGS", "1")
            .arg("--config")
            .arg(&cfg)
            .args(["run", "--network", "none", "--", "sh", "-c", probe])
            .output()
            .expect("run")
    };
    let early = run("1");
    let planned = run("0");
    let (a, b) = (ok(&early), ok(&planned));
    assert!(stderr(&early).contains("bubblewrap starting early"), "not started early:\n{}", show(&early));
    assert!(!stderr(&planned).contains("bubblewrap starting early"), "started early:\n{}", show(&planned));
    assert_eq!(a, b, "the early cell differs from the planned one");
    // The limits reached the cell at all (a difference would be one of both). As a user
    // without a delegated cgroup they are rlimits and a nice value; a root launcher puts
    // them in cgroups (limits::the_cells_group_holds_the_cell_and_goes_with_it).
    let lines: Vec<&str> = a.lines().collect();
    assert!(lines.len() > 10, "{a}");
    if h.who == crate::support::Who::User && stderr(&early).contains("RLIMIT_NPROC") {
        assert_ne!(lines[0], "unlimited", "no task limit in the cell:\n{a}");
        assert_ne!(lines[2].trim(), "0", "the CPU weight's nice value did not reach the cell:\n{a}");
    }
    assert!(a.contains("NoNewPrivs:\t1"), "{a}");
    assert!(!a.contains("Seccomp:\t0"), "{a}");
});
