//! The everyday loop: `--env`, managing cells (`ps`, `stop`, `du`, `reset`), the mount
//! points a launch leaves in a shared home, and a shell that looks like the user's.

use std::path::PathBuf;

use crate::both;
use crate::support::{exists, ok, show, stderr, stdout, Host};
use crate::terminal::{expect, send, session};

both!(env_flag_sets_a_variable_for_one_run, |h| {
    let o = h.run([
        "run",
        "--env",
        "CELL_T1=one two",
        "--env",
        "CELL_T2=",
        "--",
        "sh",
        "-c",
        "echo \"$CELL_T1|${CELL_T2-unset}\"",
    ]);
    assert_eq!(ok(&o).trim(), "one two|", "{}", show(&o));
    let o = h.run(["run", "--", "sh", "-c", "echo \"${CELL_T1-unset}\""]);
    assert_eq!(ok(&o).trim(), "unset", "a --env outlived its run:\n{}", show(&o));
    for bad in ["1X=v", "A-B=v", "NOEQUALS", "=v"] {
        let o = h.run(["run", "--env", bad, "--", "true"]);
        assert_eq!(o.status.code(), Some(2), "--env {bad} was accepted:\n{}", show(&o));
        assert!(stderr(&o).contains("--env"), "{}", show(&o));
    }
});

/// The host directory of the default cell's home.
fn cell_home(h: &Host) -> PathBuf {
    h.home.join(".local/share/cell/default/home")
}

both!(a_shell_in_a_cell_looks_like_the_users_with_a_mark, |h| {
    // A new home is seeded from /etc/skel (Debian's .bashrc sets its own PS1).
    let transcript = session(
        h,
        &[send("cell shell\n"), expect(r"\(cell:default\) [^\r\n]*@cell-default:[^\r\n]*\$ "), send("exit\n")],
    );
    assert!(transcript.contains("(cell:default) "), "{transcript}");
    let skel = std::path::Path::new("/etc/skel/.bashrc");
    if skel.exists() {
        assert_eq!(
            std::fs::read(cell_home(h).join(".bashrc")).expect("the new home has /etc/skel's .bashrc"),
            std::fs::read(skel).expect("read skel")
        );
    }
    // A user's own prompt is kept, the mark put in front of it.
    std::fs::write(cell_home(h).join(".bashrc"), "PS1='MINE> '\n").expect("write .bashrc");
    h.chown_all();
    let transcript = session(h, &[send("cell shell\n"), expect(r"\(cell:default\) MINE> "), send("exit\n")]);
    assert!(transcript.contains("(cell:default) MINE> "), "{transcript}");
    // Without a prompt of the user's, bash -i shows the mark at once.
    std::fs::remove_file(cell_home(h).join(".bashrc")).expect("rm .bashrc");
    let o = h.run(["run", "--", "bash", "-ic", "echo \"PS1=$PS1\""]);
    assert!(ok(&o).contains("PS1=(cell:default) "), "{}", show(&o));
    // The passwd shell is SHELL; the host's shell-wide files are there, read-only.
    let script = "grep \"^$(id -un):\" /etc/passwd | cut -d: -f7; echo \"$SHELL\"; \
                  for f in /etc/bash.bashrc /etc/inputrc /etc/profile /etc/profile.d /usr/share/bash-completion /etc/bash_completion.d; do \
                    if [ -e \"$f\" ]; then echo \"has $f\"; fi; done; \
                  touch /etc/inputrc 2>/dev/null && echo WRITABLE; true";
    let out = ok(&h.sh(script));
    let mut lines = out.lines();
    let (passwd_shell, shell) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
    assert_eq!(passwd_shell, shell, "{out}");
    assert_eq!(shell, "/bin/bash", "{out}");
    for f in ["/etc/inputrc", "/etc/profile", "/etc/profile.d", "/usr/share/bash-completion", "/etc/bash_completion.d"]
    {
        if std::path::Path::new(f).exists() {
            assert!(out.contains(&format!("has {f}\n")), "{f} is missing in the cell:\n{out}");
        }
    }
    assert!(out.contains("has /etc/bash.bashrc\n"), "{out}");
    assert!(!out.contains("WRITABLE"), "{out}");
});

both!(an_existing_home_is_not_seeded, |h| {
    std::fs::create_dir_all(cell_home(h)).expect("mkdir");
    h.chown_all();
    ok(&h.run(["run", "--", "true"]));
    assert!(!cell_home(h).join(".bashrc").exists(), "an existing home was seeded from /etc/skel");
});

both!(a_launch_leaves_no_empty_mount_points_in_the_home, |h| {
    // A worktree below the home's path: bubblewrap makes its path inside the bound home.
    let work = h.home.join("src/proj/tree");
    std::fs::create_dir_all(&work).expect("mkdir");
    // Present before the launch: kept, even when empty.
    std::fs::create_dir_all(cell_home(h).join("src")).expect("mkdir");
    h.chown_all();
    let o = h.run(["run", "--workdir", work.to_str().expect("utf8"), "--", "sh", "-c", "mkdir -p \"$HOME/made\"; pwd"]);
    assert_eq!(ok(&o).trim(), work.to_str().expect("utf8"), "{}", show(&o));
    assert!(cell_home(h).join("src").is_dir(), "a directory that existed before the launch was removed");
    assert!(!exists(&cell_home(h).join("src/proj")), "the launch left its mount points in the cell home");
    assert!(cell_home(h).join("made").is_dir(), "a directory the cell made was removed");
    // A mount point the cell put something into stays.
    let o = h.run([
        "run",
        "--workdir",
        work.to_str().expect("utf8"),
        "--bind",
        &format!("{}:{}/data/x", h.outside.display(), h.home.display()),
        "--",
        "sh",
        "-c",
        "touch \"$HOME/data/kept\"",
    ]);
    ok(&o);
    assert!(cell_home(h).join("data/kept").exists(), "a file the cell wrote was removed");
    assert!(!exists(&cell_home(h).join("data/x")), "the bind's mount point was left:\n{}", show(&o));
    assert!(!exists(&cell_home(h).join("src/proj")));
});

both!(ps_stop_du_and_reset_manage_cells, |h| {
    let marker = h.work.join("up");
    let child = h
        .cell()
        .args(["run", "--", "sh", "-c", "echo up > up; exec sleep 300"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    crate::support::wait_for(&marker);
    let ps = ok(&h.run(["ps"]));
    let row = ps.lines().find(|l| l.starts_with("default ")).unwrap_or_else(|| panic!("no row for the cell:\n{ps}"));
    let fields: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(fields.get(1).copied(), h.work.to_str(), "{ps}");
    assert_eq!(fields.get(3).copied(), Some("off"), "{ps}");
    let pid: i32 = fields.get(4).and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("no pid:\n{ps}"));
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists(), "{ps}");

    // The home of a running cell is not deleted.
    let o = h.run(["reset", "default", "--yes"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(stderr(&o).contains("cell stop default"), "{}", show(&o));
    assert!(cell_home(h).is_dir());

    let o = h.run(["stop", "default"]);
    assert!(stdout(&o).contains("stopped cell default"), "{}", show(&o));
    let ended = child.wait_with_output().expect("wait");
    assert!(!ended.status.success(), "the stopped cell's command succeeded: {:?}", ended.status);
    // The stopped launch says why it ended (in another terminal, rc 143 alone says nothing).
    assert!(stderr(&ended).contains("cell: cell default was stopped by `cell stop`"), "{}", show(&ended));
    assert!(ok(&h.run(["ps"])).contains("no cell is running"));
    let o = h.run(["stop", "default"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));

    // du lists the home; reset needs a confirmation, deletes the home, follows no link.
    std::fs::write(cell_home(h).join("big"), vec![7u8; 300_000]).expect("write");
    std::os::unix::fs::symlink(h.outside.join("secret.txt"), cell_home(h).join("link")).expect("symlink");
    std::os::unix::fs::symlink(&h.outside, cell_home(h).join("dirlink")).expect("symlink");
    h.chown_all();
    let du = ok(&h.run(["du"]));
    let first = du.lines().next().unwrap_or("");
    assert!(first.contains("default") && first.contains("home") && first.contains("kB"), "{du}");
    let o = h.cell().args(["reset", "default"]).stdin(std::process::Stdio::null()).output().expect("run");
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains("--yes") && cell_home(h).is_dir(), "{}", show(&o));
    ok(&h.run(["reset", "default", "--yes"]));
    assert!(!exists(&cell_home(h)), "the home is still there");
    assert!(h.outside.join("secret.txt").exists(), "reset followed a link out of the home");
    // The next launch gets a fresh home, and no word of a stop.
    let o = h.run(["run", "--", "true"]);
    assert!(o.status.success() && !stderr(&o).contains("cell stop"), "{}", show(&o));
    assert!(cell_home(h).is_dir());
});

both!(a_stop_the_cell_ignores_is_not_reported_as_its_end, |h| {
    // An interactive shell ignores SIGTERM: `cell stop` says it has not ended, and when the
    // cell ends later on its own its launcher does not blame `cell stop`.
    let up = h.work.join("up");
    let child = h
        .cell()
        .args(["run", "--", "sh", "-c", "trap '' TERM; echo up > up; while [ ! -e done ]; do sleep 0.1; done"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    crate::support::wait_for(&up);
    let o = h.run(["stop", "default"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(stderr(&o).contains("has not ended yet"), "{}", show(&o));
    std::fs::write(h.work.join("done"), "").expect("write");
    h.chown_all();
    let ended = child.wait_with_output().expect("wait");
    assert!(ended.status.success(), "{}", show(&ended));
    assert!(!stderr(&ended).contains("was stopped by `cell stop`"), "{}", show(&ended));
});
