//! Hardening: the escape catalog (`cell selftest`), the seccomp filter, nested user
//! namespaces, and protected paths, attacked from real cells.

use crate::both;
use crate::support::{exists, ok, show, stdout, Host};

fn selftest(h: &Host, config: Option<&std::path::Path>) -> (Option<i32>, serde_json::Value) {
    let mut cmd = h.cell();
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    let o = cmd.args(["selftest", "--json"]).output().expect("selftest");
    let v: serde_json::Value =
        serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("selftest JSON ({e}):\n{}", show(&o)));
    (o.status.code(), v)
}

fn failed_ids(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .filter(|c| c["ok"] != true)
        .map(|c| format!("{}: {}", c["id"].as_str().unwrap_or("?"), c["detail"].as_str().unwrap_or("")))
        .collect()
}

both!(the_escape_catalog_holds_against_the_default_cell, |h| {
    let (code, v) = selftest(h, None);
    let failed = failed_ids(&v);
    assert!(failed.is_empty(), "cases failed:\n{}", failed.join("\n"));
    assert_eq!(code, Some(0));
    let families: std::collections::BTreeSet<&str> =
        v.as_array().expect("array").iter().filter_map(|c| c["family"].as_str()).collect();
    assert_eq!(families.into_iter().collect::<Vec<_>>(), ["filesystem", "lifecycle", "network", "process"]);
});

both!(the_escape_catalog_holds_against_a_proxied_cell, |h| {
    let cfg = h.write_config(
        "proxied.json",
        r#"{"schemaVersion":1,"cells":{"default":{"network":{"mode":"proxy","allow":["example.test"]}}}}"#,
    );
    let (code, v) = selftest(h, Some(&cfg));
    let failed = failed_ids(&v);
    assert!(failed.is_empty(), "cases failed:\n{}", failed.join("\n"));
    assert_eq!(code, Some(0));
    let proxy = v.as_array().expect("array").iter().find(|c| c["id"] == "nw-proxy").expect("nw-proxy");
    assert!(proxy["detail"].as_str().unwrap_or("").contains("relayed: HTTP/1.1 403"), "{proxy}");
});

both!(the_catalog_tells_a_bound_home_file_from_the_cells_own_of_the_same_name, |h| {
    // The cell's home (at $HOME inside) gets names the host home has too (`.bashrc` from
    // /etc/skel, `.local`): no leak. A host file of the home bound into the cell is one.
    std::fs::write(h.home.join(".bashrc"), "# the user's own\n").expect("write");
    std::fs::write(h.home.join(".profile"), "# the user's own\n").expect("write");
    h.chown_all();
    let (code, v) = selftest(h, None);
    assert!(failed_ids(&v).is_empty() && code == Some(0), "{:?}", failed_ids(&v));
    let secret = h.home.join("secret.txt");
    let cfg = h.write_config(
        "leaky.json",
        &serde_json::json!({"schemaVersion":1,"cells":{"default":{"binds":[{"src": secret}]}}}).to_string(),
    );
    let (code, v) = selftest(h, Some(&cfg));
    assert_eq!(code, Some(1));
    let failed = failed_ids(&v);
    assert!(
        failed.iter().any(|f| f.starts_with("fs-read-outside") && f.contains(secret.to_str().expect("utf8"))),
        "the catalog missed a bound home file: {failed:?}"
    );
});

both!(without_the_filter_the_catalog_sees_the_holes, |h| {
    // The seccomp filter is a real defence: with it off, the catalog reports the attacks
    // that now get through, and `cell selftest` exits non-zero.
    let cfg = h.write_config(
        "nofilter.json",
        r#"{"schemaVersion":1,"cells":{"default":{"security":{"unsafeAllowAllSyscalls":true}}}}"#,
    );
    let (code, v) = selftest(h, Some(&cfg));
    assert_eq!(code, Some(1));
    let failed: Vec<String> = failed_ids(&v).iter().map(|l| l.split(':').next().unwrap_or("").to_owned()).collect();
    for id in ["pk-ptrace", "pk-tiocsti", "pk-io-uring", "pk-vsock", "pk-syscall-abi", "fs-setid"] {
        assert!(failed.iter().any(|f| f == id), "{id} passed without the filter: {failed:?}");
    }
    // --disable-userns is a defence of its own: nested user namespaces stay impossible
    // even without the filter (clone3 is the filter's and does fail).
    let userns = v.as_array().expect("array").iter().find(|c| c["id"] == "pk-userns").expect("pk-userns");
    let detail = userns["detail"].as_str().unwrap_or("");
    assert!(detail.contains("unshare(NEWUSER): ENOSPC") || detail.contains("unshare(NEWUSER): EPERM"), "{detail}");
    assert!(!detail.contains("unshare(NEWUSER): SUCCEEDED"), "{detail}");
});

both!(a_worktree_without_git_cannot_grow_one_for_the_host, |h| {
    // Without a repository there is no private view: a `.git` the cell makes (here with
    // an fsmonitor for the host's next `git status`) is set aside when the cell ends.
    let o = h.sh("git init -q . && git config core.fsmonitor 'touch .marker' && mkdir -p .git/hooks && echo x > .git/hooks/pre-commit && echo MADE");
    assert!(ok(&o).contains("MADE"), "{}", show(&o));
    assert!(!exists(&h.work.join(".git")), "the cell's .git stayed where host git finds it");
    assert!(crate::support::stderr(&o).contains("set aside"), "{}", show(&o));
});

both!(symlinked_protected_paths_are_refused, |h| {
    std::fs::create_dir_all(h.path("decoy")).expect("mkdir");
    std::os::unix::fs::symlink(h.path("decoy"), h.work.join(".vscode")).expect("symlink");
    h.chown_all();
    let o = h.run(["run", "--", "true"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(crate::support::stderr(&o).contains("symbolic link"), "{}", show(&o));
});

both!(declared_protected_paths_and_the_config_itself_are_read_only, |h| {
    std::fs::create_dir_all(h.work.join("deploy")).expect("mkdir");
    std::fs::write(h.work.join("deploy/prod.sh"), "echo deploy\n").expect("write");
    let cfg = h.work.join("cell.json");
    std::fs::write(
        &cfg,
        r#"{"schemaVersion":1,"cells":{"default":{"security":{"protectedPaths":["deploy/","Makefile"]}}}}"#,
    )
    .expect("write");
    h.chown_all();
    let o = h
        .cell()
        .arg("--config")
        .arg(&cfg)
        .args([
            "run",
            "--",
            "sh",
            "-c",
            "echo evil >> deploy/prod.sh 2>/dev/null && echo WROTE-DEPLOY; \
             echo all: > Makefile 2>/dev/null && echo WROTE-MAKEFILE; \
             echo '{}' > cell.json 2>/dev/null && echo WROTE-CONFIG; \
             mv cell.json x.json 2>/dev/null && echo MOVED-CONFIG; true",
        ])
        .output()
        .expect("run");
    let out = ok(&o);
    assert!(!out.contains("WROTE-DEPLOY") && !out.contains("WROTE-CONFIG") && !out.contains("MOVED"), "{out}");
    assert_eq!(std::fs::read_to_string(h.work.join("deploy/prod.sh")).expect("read"), "echo deploy\n");
    assert!(std::fs::read_to_string(&cfg).expect("read").contains("protectedPaths"));
    // An absent protected path the cell created is set aside when the cell ends.
    assert!(!exists(&h.work.join("Makefile")), "the cell's Makefile stayed in place");
});

both!(the_cells_environment_never_reaches_bubblewrap_on_the_host, |h| {
    let cfg = h.write_config(
        "env.json",
        r#"{"schemaVersion":1,"cells":{"default":{"env":{"LD_LIBRARY_PATH":"/planted/lib","CELL_MARKER":"inside-only"}}}}"#,
    );
    let mut child = h
        .cell()
        .arg("--config")
        .arg(&cfg)
        .args(["run", "--", "sh", "-c", "echo $CELL_MARKER $LD_LIBRARY_PATH > seen; touch started; sleep 30"])
        .spawn()
        .expect("spawn");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !h.work.join("started").exists() {
        assert!(std::time::Instant::now() < deadline, "cell never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let launcher = child.id();
    let children = std::fs::read_to_string(format!("/proc/{launcher}/task/{launcher}/children")).expect("children");
    let bwrap: Vec<u32> = children
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.starts_with(b"/") && c.windows(5).any(|w| w == b"bwrap"))
        })
        .collect();
    assert_eq!(bwrap.len(), 1, "one bubblewrap child of the launcher: {children}");
    let environ = std::fs::read(format!("/proc/{}/environ", bwrap[0])).expect("environ");
    let cwd = std::fs::read_link(format!("/proc/{}/cwd", bwrap[0])).expect("cwd");
    let _ = child.kill();
    let _ = child.wait();
    assert!(environ.is_empty(), "bubblewrap on the host has an environment: {}", String::from_utf8_lossy(&environ));
    assert_eq!(cwd, std::path::Path::new("/"), "bubblewrap runs from /, not the worktree");
    assert_eq!(std::fs::read_to_string(h.work.join("seen")).expect("seen"), "inside-only /planted/lib\n");
});

both!(links_planted_under_writable_mounts_are_refused, |h| {
    // A writable bind whose inside path holds the worktree: bubblewrap creates the
    // worktree's mount point inside it, following any link the cell left there.
    let shadow = h.path("shadow");
    let outer = h.path("outer");
    let target = h.path("escaped");
    std::fs::create_dir_all(&shadow).expect("mkdir");
    std::fs::create_dir_all(outer.join("proj")).expect("mkdir");
    std::fs::create_dir_all(&target).expect("mkdir");
    std::os::unix::fs::symlink(format!("/oldroot{}", target.display()), shadow.join("proj")).expect("symlink");
    h.chown_all();
    let bind = format!("{}:{}:rw", shadow.display(), outer.display());
    let proj = outer.join("proj");
    let o = h.run(["run", "--bind", &bind, "--workdir", proj.to_str().expect("utf8"), "--", "true"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(crate::support::stderr(&o).contains("symbolic link inside the writable mount"), "{}", show(&o));
    assert_eq!(std::fs::read_dir(&target).expect("read").count(), 0, "nothing was created through the link");
});

both!(net_reload_ignores_runtime_dirs_it_does_not_own, |h| {
    use std::os::unix::fs::PermissionsExt as _;
    // A look-alike runtime directory, open to everyone, pointing at one of our processes
    // and at a file the reload would overwrite.
    let base = h.path("run/cell");
    let fake = base.join("default-1");
    std::fs::create_dir_all(&fake).expect("mkdir");
    let mut victim = std::process::Command::new("sleep").arg("30").spawn().expect("sleep");
    std::fs::write(fake.join("egress.pid"), format!("{}\n", victim.id())).expect("write");
    std::fs::write(fake.join("extra-allow.json"), "[\"$(touch pwned)\"]").expect("write");
    let bait = h.path("bait");
    std::fs::write(&bait, "untouched").expect("write");
    std::os::unix::fs::symlink(&bait, fake.join("egress-policy.json.new")).expect("symlink");
    h.chown_all();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let o = h.run(["net", "reload"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert_eq!(std::fs::read_to_string(&bait).expect("bait"), "untouched");
    assert!(victim.try_wait().expect("wait").is_none(), "the reload signalled a process that is not cell-egress");
    // Even a private directory must have a launcher of ours on its control socket: the
    // reload goes to the launcher, which alone knows its cell-egress; nothing is signalled
    // from a pid file.
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    std::fs::remove_file(fake.join("egress-policy.json.new")).expect("rm");
    std::fs::write(fake.join("extra-allow.json"), "[]").expect("write");
    h.chown_all();
    std::fs::set_permissions(h.path("run"), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let o = h.run(["net", "reload"]);
    assert_ne!(o.status.code(), Some(0), "{}", show(&o));
    assert!(crate::support::stderr(&o).contains("cannot reach the launcher"), "{}", show(&o));
    assert!(victim.try_wait().expect("wait").is_none(), "a non-egress process was signalled");
    let _ = victim.kill();
    let _ = victim.wait();
});

both!(git_redirections_stay_in_the_cells_own_git_directory, |h| {
    for d in [".git/hooks", ".git/info", ".git/objects", ".git/refs"] {
        std::fs::create_dir_all(h.work.join(d)).expect("mkdir");
    }
    std::fs::write(h.work.join(".git/config"), "[core]\n").expect("write");
    std::fs::write(h.work.join(".git/HEAD"), "ref: refs/heads/main\n").expect("write");
    h.chown_all();
    let o = h.sh("mkdir -p .x/hooks && echo ../.x > .git/commondir && \
         mkdir -p .git/modules/sub && echo '[core] fsmonitor = evil' > .git/modules/sub/config && \
         mkdir -p .git/worktrees/w && echo '[core]' > .git/config.worktree && \
         echo '* filter=evil' > .git/info/attributes && echo PLANTED");
    assert!(ok(&o).contains("PLANTED"), "{}", show(&o));
    for p in [".git/commondir", ".git/modules", ".git/worktrees", ".git/config.worktree", ".git/info/attributes"] {
        assert!(!exists(&h.work.join(p)), "{p} reached the host's git directory");
    }
    assert_eq!(std::fs::read_to_string(h.work.join(".git/config")).expect("config"), "[core]\n");
});

both!(a_read_only_git_directory_is_no_way_in, |h| {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(h.work.join(".git")).expect("mkdir");
    std::fs::write(h.work.join(".git/config"), "[core]\n").expect("write");
    h.chown_all();
    std::fs::set_permissions(h.work.join(".git"), std::fs::Permissions::from_mode(0o555)).expect("chmod");
    let o = h.sh("chmod u+w .git; mkdir -p .git/hooks 2>/dev/null; echo x > .git/hooks/pre-commit 2>/dev/null; true");
    let mode = std::fs::metadata(h.work.join(".git")).expect("stat").permissions().mode() & 0o777;
    std::fs::set_permissions(h.work.join(".git"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    ok(&o);
    assert_eq!(mode, 0o555, "the cell changed the host's .git");
    assert!(!h.work.join(".git/hooks/pre-commit").exists());
});

both!(secrets_cannot_come_from_where_the_cell_writes, |h| {
    std::fs::write(h.work.join(".token"), "t").expect("write");
    std::fs::write(h.path("real-secret"), "s").expect("write");
    std::os::unix::fs::symlink(h.path("real-secret"), h.path("link-secret")).expect("symlink");
    h.chown_all();
    for (name, file) in [("in-worktree", h.work.join(".token")), ("through-link", h.path("link-secret"))] {
        let cfg = serde_json::json!({"schemaVersion":1,"cells":{"default":{"envFromFile":{"TOKEN": file}}}});
        let cfg = h.write_config(&format!("secret-{name}.json"), &cfg.to_string());
        let o = h.cell().arg("--config").arg(&cfg).args(["run", "--", "true"]).output().expect("run");
        assert_eq!(o.status.code(), Some(2), "{name}: {}", show(&o));
        assert!(crate::support::stderr(&o).contains("envFromFile.TOKEN"), "{name}: {}", show(&o));
    }
});

/// Tries every route to a setuid or setgid file from inside a cell, in /tmp and the
/// worktree, with raw system calls (numbers from the test's own libc) and with Python's own
/// wrappers; prints one `route outcome` line each, then `SETID path` for any file made.
const SETID_SCRIPT: &str = r#"
import ctypes, errno, json, os, stat, sys
nr = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
AT_FDCWD = -100
class OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]
def arg(a):
    return ctypes.c_long(a) if isinstance(a, int) else a
def raw(n, *args):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(n), *[arg(a) for a in args])
    if r >= 0:
        if r > 2 and n in (nr.get("open"), nr.get("openat"), nr.get("creat"), nr.get("openat2")):
            os.close(r)
        return "OK"
    return errno.errorcode.get(ctypes.get_errno(), "?")
def py(f, *args):
    try:
        r = f(*args)
        if isinstance(r, int) and r > 2:
            os.close(r)
        return "OK"
    except OSError as e:
        return errno.errorcode.get(e.errno, "?")
creat = os.O_CREAT | os.O_WRONLY
tmpfile = os.O_TMPFILE | os.O_WRONLY
for d in ["/tmp", os.getcwd()]:
    for mode in (0o4755, 0o2755):
        t = "%s/.setid-%o" % (d, mode)
        base = t + "-base"
        open(base, "w").close()
        fd = os.open(base, os.O_RDONLY)
        b = lambda s: s.encode()
        how = OpenHow(creat, mode, 0)
        calls = {
            "chmod": lambda n: raw(n, b(base), mode),
            "fchmod": lambda n: raw(n, fd, mode),
            "fchmodat": lambda n: raw(n, AT_FDCWD, b(base), mode, 0),
            "fchmodat2": lambda n: raw(n, AT_FDCWD, b(base), mode, 0),
            "open": lambda n: raw(n, b(t + "-open"), creat, mode),
            "openat": lambda n: raw(n, AT_FDCWD, b(t + "-openat"), creat, mode),
            "creat": lambda n: raw(n, b(t + "-creat"), mode),
            "mknod": lambda n: raw(n, b(t + "-mknod"), stat.S_IFREG | mode, 0),
            "mknodat": lambda n: raw(n, AT_FDCWD, b(t + "-mknodat"), stat.S_IFREG | mode, 0),
            "openat2": lambda n: raw(n, AT_FDCWD, b(t + "-openat2"), ctypes.byref(how), ctypes.sizeof(how)),
        }
        where = "%o:%s" % (mode, "tmp" if d == "/tmp" else "worktree")
        for name, n in nr.items():
            print("%s/%s %s" % (name, where, calls[name](n)))
        print("openat-tmpfile/%s %s" % (where, raw(nr["openat"], AT_FDCWD, b(d), tmpfile, mode)))
        print("os.chmod/%s %s" % (where, py(os.chmod, base, mode)))
        print("os.fchmod/%s %s" % (where, py(os.fchmod, fd, mode)))
        print("os.open/%s %s" % (where, py(os.open, t + "-pyopen", creat, mode)))
        print("os.open-tmpfile/%s %s" % (where, py(os.open, d, tmpfile, mode)))
        print("os.mknod/%s %s" % (where, py(os.mknod, t + "-pymknod", stat.S_IFREG | mode)))
        os.close(fd)
    for e in os.scandir(d):
        if e.name.startswith(".setid-") and os.lstat(e.path).st_mode & (stat.S_ISUID | stat.S_ISGID):
            print("SETID %s" % e.path)
# The filter refuses only the set-id bits: ordinary modes still work.
open("plain", "w").close()
print("control-chmod %s" % py(os.chmod, "plain", 0o755))
print("control-open %s" % py(os.open, "plain-new", creat, 0o644))
"#;

/// The raw routes of this architecture's table, as the script takes them.
fn setid_syscalls() -> String {
    let mut m = serde_json::Map::new();
    let mut add = |k: &str, v: i64| {
        m.insert(k.to_owned(), v.into());
    };
    add("fchmod", nix::libc::SYS_fchmod);
    add("fchmodat", nix::libc::SYS_fchmodat);
    add("fchmodat2", cell::sys::SYS_FCHMODAT2);
    add("openat", nix::libc::SYS_openat);
    add("mknodat", nix::libc::SYS_mknodat);
    add("openat2", nix::libc::SYS_openat2);
    #[cfg(target_arch = "x86_64")]
    {
        add("chmod", nix::libc::SYS_chmod);
        add("open", nix::libc::SYS_open);
        add("creat", nix::libc::SYS_creat);
        add("mknod", nix::libc::SYS_mknod);
    }
    serde_json::Value::Object(m).to_string()
}

/// Files below `dir` on the host whose mode has `S_ISUID` or `S_ISGID`.
fn setid_files_on_host(dir: &std::path::Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let m = e.path().symlink_metadata().expect("lstat");
        if m.is_dir() {
            out.extend(setid_files_on_host(&e.path()));
        } else if m.permissions().mode() & 0o6000 != 0 {
            out.push(format!("{} {:o}", e.path().display(), m.permissions().mode() & 0o7777));
        }
    }
    out
}

/// Runs the set-id attempts (script and shell) in a cell of `config`.
fn setid_attempts(h: &Host, config: Option<&std::path::Path>) -> String {
    std::fs::write(h.work.join("setid.py"), SETID_SCRIPT).expect("write script");
    h.chown_all();
    let mut cmd = h.cell();
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    let shell = "cp /bin/sh tool && for m in 4755 2755 u+s g+s; do chmod $m tool 2>/dev/null && echo \"shell-chmod-$m OK\"; done; \
                 install -m 4755 /bin/sh tool2 2>/dev/null && echo 'shell-install OK'; \
                 mkdir dir && chmod g+s dir 2>/dev/null && echo 'shell-chmod-dir OK'; true";
    let o = cmd
        .args(["run", "--", "sh", "-c", &format!("python3 setid.py '{}' && {shell}", setid_syscalls())])
        .output()
        .expect("run");
    ok(&o)
}

both!(no_route_makes_a_setuid_or_setgid_file, |h| {
    let out = setid_attempts(h, None);
    let mut routes = 0;
    for line in out.lines() {
        let (what, outcome) = line.split_once(' ').unwrap_or((line, ""));
        if what.starts_with("control-") {
            assert_eq!(outcome, "OK", "an ordinary mode was refused: {line}");
        } else if what.starts_with("openat2/") {
            assert_eq!(outcome, "ENOSYS", "{line}\n{out}");
            routes += 1;
        } else {
            assert!(outcome == "EPERM", "a set-id route was not refused: {line}\n{out}");
            routes += 1;
        }
    }
    // Raw calls and Python's wrappers, two modes, two directories.
    let expected_raw = if cfg!(target_arch = "x86_64") { 10 } else { 6 };
    assert_eq!(routes, (expected_raw + 6) * 4, "{out}");
    assert!(out.contains("control-chmod OK") && out.contains("control-open OK"), "{out}");
    let left = setid_files_on_host(&h.work);
    assert!(left.is_empty(), "set-id files on the host: {left:?}");
});

both!(without_the_filter_setuid_files_reach_the_host, |h| {
    // The same attempts with the filter off make setuid and setgid files that the host
    // sees: the test above would notice the filter missing.
    let cfg = h.write_config(
        "nofilter.json",
        r#"{"schemaVersion":1,"cells":{"default":{"security":{"unsafeAllowAllSyscalls":true}}}}"#,
    );
    let out = setid_attempts(h, Some(&cfg));
    for route in
        ["fchmodat2/4755:worktree OK", "os.chmod/2755:worktree OK", "mknodat/4755:tmp OK", "shell-chmod-4755 OK"]
    {
        assert!(out.contains(route), "{route} missing:\n{out}");
    }
    assert!(out.contains("openat2/4755:worktree OK"), "{out}");
    let left = setid_files_on_host(&h.work);
    assert!(left.iter().any(|f| f.ends_with(" 4755")) && left.iter().any(|f| f.ends_with(" 2755")), "{left:?}");
});

both!(proc_sys_is_read_only_and_the_cells_own, |h| {
    let before = std::fs::read_to_string("/proc/sys/kernel/core_pattern").expect("core_pattern");
    // Each sysctl is written back with the value it holds, so a hole changes nothing.
    let o = h.sh(
        "for f in kernel/core_pattern kernel/hostname kernel/ns_last_pid fs/protected_symlinks vm/overcommit_memory \
                  net/ipv4/ip_forward net/core/somaxconn user/max_user_namespaces; do \
           p=/proc/sys/$f; cat $p > /tmp/v 2>/dev/null || { echo \"UNREADABLE $f\"; continue; }; \
           cat /tmp/v > $p 2>/dev/null && echo \"WROTE $f\"; \
         done; \
         echo \"writable: $(find /proc/sys /proc/irq /proc/bus -type f -writable 2>/dev/null | head -5 | tr '\\n' ' ')\"; \
         test -e /proc/sysrq-trigger && test -w /proc/sysrq-trigger && echo 'WRITABLE sysrq-trigger'; \
         echo \"hostname: $(cat /proc/sys/kernel/hostname)\"; \
         echo \"conf: $(ls /proc/sys/net/ipv4/conf | tr '\\n' ' ')\"; true",
    );
    let out = ok(&o);
    assert!(!out.contains("WROTE") && !out.contains("WRITABLE"), "a sysctl was written:\n{out}");
    assert!(!out.contains("UNREADABLE"), "{out}");
    assert!(out.contains("writable: \n"), "files under /proc/sys open for writing:\n{out}");
    assert!(out.contains("hostname: cell-default\n"), "the cell's own UTS namespace:\n{out}");
    assert!(out.contains("conf: all default lo \n"), "the cell's own network namespace:\n{out}");
    assert_eq!(std::fs::read_to_string("/proc/sys/kernel/core_pattern").expect("core_pattern"), before);
});
