//! Resource limits: a fork bomb and a memory hog in real cells hit the cell's limits, and
//! the host goes on.

use std::io::BufRead as _;
use std::process::Stdio;

use crate::both;
use crate::support::{ok, show, skip, stderr, stdout, Host, Who};

/// How this launch enforces its limits, from the launcher's stderr line.
#[derive(Debug, PartialEq, Eq)]
enum Enforced {
    /// By a cgroup of the cell's own (no line about the limit).
    Cgroup,
    /// By an rlimit; for tasks, the user's tasks counted at launch.
    Rlimit(u64),
    /// Not at all.
    Not,
}

fn enforcement(err: &str, limit: &str) -> Enforced {
    let Some(line) = err.lines().find(|l| l.contains("no cgroup for this cell's limits")) else {
        return Enforced::Cgroup;
    };
    if line.contains(&format!("{limit} NOT enforced")) {
        return Enforced::Not;
    }
    let Some(rest) = line.split(&format!("{limit} ")).nth(1) else { return Enforced::Cgroup };
    if !rest.starts_with("per ") {
        return Enforced::Cgroup;
    }
    let counted = rest.split("per uid (").nth(1).and_then(|r| r.split_whitespace().next()).and_then(|n| n.parse().ok());
    Enforced::Rlimit(counted.unwrap_or(0))
}

/// Forks until fork fails (at most 400 children, each sleeping 4 s), reports, then holds
/// its children for 2 s more so the host can be checked while the cell is full.
const FORK_BOMB: &str = r#"
import os, sys, time
n, err = 0, None
for _ in range(400):
    try:
        pid = os.fork()
    except OSError as e:
        err = e.errno
        break
    if pid == 0:
        time.sleep(4)
        os._exit(0)
    n += 1
print(f"forked {n} errno {err}", flush=True)
time.sleep(2)
"#;

both!(a_fork_bomb_hits_the_task_limit_and_the_host_goes_on, |h| {
    let test = format!("limits::a_fork_bomb_hits_the_task_limit_and_the_host_goes_on::as_{:?}", h.who).to_lowercase();
    let cfg = h.write_config("bomb.json", r#"{"schemaVersion":1,"cells":{"default":{"limits":{"tasks":64}}}}"#);
    std::fs::write(h.work.join("bomb.py"), FORK_BOMB).expect("write bomb");
    h.chown_all();
    let mut child = h
        .cell()
        .arg("--config")
        .arg(&cfg)
        .args(["run", "--", "python3", "bomb.py"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cell run");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let report = lines.next().and_then(Result::ok).unwrap_or_default();
    // While the bomb's children fill the cell: the host starts a process of its own.
    let host = std::process::Command::new("sh").args(["-c", "echo host-alive"]).output().expect("host process");
    let o = child.wait_with_output().expect("wait cell");
    let err = stderr(&o);
    let all = format!("first line {report:?}\n{}", show(&o));
    let enforced = enforcement(&err, "tasks");
    if enforced == Enforced::Not {
        skip(&test, &format!("this host cannot limit the tasks of a cell launched by {:?}: {err}", h.who));
        return;
    }
    assert_eq!(String::from_utf8_lossy(&host.stdout), "host-alive\n", "host process while the bomb ran");
    let mut words = report.split_whitespace();
    assert_eq!(words.next(), Some("forked"), "{all}");
    let forked: u64 = words.next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{all}"));
    assert_eq!(words.collect::<Vec<_>>(), ["errno", "11"], "fork must fail with EAGAIN inside:\n{all}");
    match enforced {
        Enforced::Cgroup => assert!(forked < 64, "{forked} children under a limit of 64 tasks:\n{all}"),
        // RLIMIT_NPROC counts every task of the user: the cell may have `tasks` more than
        // the user ran at launch.
        Enforced::Rlimit(running) => {
            assert!(forked < 64 + running, "{forked} children, limit 64 + {running}:\n{all}");
        }
        Enforced::Not => unreachable!(),
    }
    assert!(o.status.success(), "{all}");
});

/// Allocates (and touches) 8 MiB at a time, up to 320 MiB, printing the running total.
const MEMORY_HOG: &str = r#"
import sys
chunks = []
try:
    for i in range(40):
        chunks.append(b"\x01" * (8 << 20))
        print(f"mib {(i + 1) * 8}", flush=True)
    print("allocated all", flush=True)
except MemoryError:
    print("MemoryError", flush=True)
    sys.exit(3)
"#;

both!(a_memory_hog_is_stopped_at_the_memory_limit, |h| {
    let test = format!("limits::a_memory_hog_is_stopped_at_the_memory_limit::as_{:?}", h.who).to_lowercase();
    let cfg = h.write_config("hog.json", r#"{"schemaVersion":1,"cells":{"default":{"limits":{"memory":"64M"}}}}"#);
    std::fs::write(h.work.join("hog.py"), MEMORY_HOG).expect("write hog");
    h.chown_all();
    let o = h.cell().arg("--config").arg(&cfg).args(["run", "--", "python3", "hog.py"]).output().expect("cell run");
    let err = stderr(&o);
    let out = stdout(&o);
    if enforcement(&err, "memory") == Enforced::Not {
        skip(&test, &format!("this host cannot limit the memory of a cell launched by {:?}: {err}", h.who));
        return;
    }
    assert!(!out.contains("allocated all"), "the hog got 320 MiB under a 64 MiB limit:\n{}", show(&o));
    let reached: u64 = out.lines().filter_map(|l| l.strip_prefix("mib ")?.parse().ok()).max().unwrap_or(0);
    assert!(reached <= 64, "the hog held {reached} MiB under a 64 MiB limit:\n{}", show(&o));
    // Killed by the cgroup's OOM killer (SIGKILL: 137), or refused by RLIMIT_DATA.
    let killed = o.status.code() == Some(137);
    let refused = o.status.code() == Some(3) && out.contains("MemoryError");
    assert!(killed || refused, "the hog was neither killed nor refused:\n{}", show(&o));
    // The host is untouched: it starts a process, and the same cell runs again.
    let host = std::process::Command::new("sh").args(["-c", "echo host-alive"]).output().expect("host process");
    assert_eq!(String::from_utf8_lossy(&host.stdout), "host-alive\n");
    let again = h.cell().arg("--config").arg(&cfg).args(["run", "--", "true"]).output().expect("cell run");
    assert!(again.status.success(), "{}", show(&again));
});

/// The cgroup v1 `pids` directory the launcher (as root) creates groups in, if any.
fn pids_root() -> Option<std::path::PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = own.lines().find_map(|l| l.split_once(":pids:").map(|(_, p)| p.to_owned()))?;
    let dir = std::path::Path::new("/sys/fs/cgroup/pids").join(path.trim_start_matches('/'));
    dir.join("cgroup.procs").exists().then_some(dir)
}

/// A `sleep` of account `uid`/`gid` moved into `group`; the thread reaps it as soon as it
/// ends (its zombie would keep the group busy) and says whether it ended within 10 s.
fn task_in_group(group: &std::path::Path, uid: u32, gid: u32) -> (u32, std::thread::JoinHandle<bool>) {
    let mut left = std::process::Command::new("sleep");
    std::os::unix::process::CommandExt::uid(&mut left, uid);
    std::os::unix::process::CommandExt::gid(&mut left, gid);
    let mut left = left.arg("60").spawn().expect("sleep");
    // A launch of the same account elsewhere (tests run side by side) may sweep the group
    // as stale while it is still empty: made again then.
    let mut moved = std::fs::write(group.join("cgroup.procs"), left.id().to_string());
    for _ in 0..20 {
        if !moved.as_ref().is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
            break;
        }
        let _ = std::fs::create_dir(group);
        moved = std::fs::write(group.join("cgroup.procs"), left.id().to_string());
    }
    moved.expect("move the task into the group");
    let pid = left.id();
    let reaper = std::thread::spawn(move || {
        let started = std::time::Instant::now();
        loop {
            if let Ok(Some(_)) = left.try_wait() {
                return true;
            }
            if started.elapsed() > std::time::Duration::from_secs(10) {
                let _ = left.kill();
                let _ = left.wait();
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    });
    (pid, reaper)
}

#[test]
fn the_cells_group_holds_the_cell_and_goes_with_it() {
    let test = "limits::the_cells_group_holds_the_cell_and_goes_with_it";
    let Some(h) = Host::new(Who::Root, test) else { return };
    let Some(root) = pids_root() else {
        skip(test, "no cgroup v1 pids hierarchy here (the groups are checked through it)");
        return;
    };
    // A root launcher delegates a group of the pids hierarchy to the account it becomes,
    // which makes its cells' groups there (and can remove them again).
    let root = root.join(format!("cellacct.{}", h.uid));
    ok(&h.run(["run", "--", "true"]));
    assert!(root.is_dir(), "no delegated group {}", root.display());
    // A group left by a launcher that was killed (its pid no longer runs) is removed.
    let stale = root.join("cell-groupcheck-999999999");
    let _ = std::fs::remove_dir(&stale);
    std::fs::create_dir(&stale).expect("make a stale group");
    // What a killed launcher's cell left in it (bubblewrap's child can wait for ever for a
    // parent that died during its setup) goes with it.
    let (left_pid, reaper) = task_in_group(&stale, h.uid, h.gid);
    let cfg = h.write_config("group.json", r#"{"schemaVersion":1,"cells":{"groupcheck":{"limits":{"tasks":100}}}}"#);
    let o = h
        .cell()
        .arg("--config")
        .arg(&cfg)
        .args(["run", "--", "sh", "-c", "sleep 0.3 & cat /proc/self/cgroup; wait"])
        .output()
        .expect("cell run");
    assert!(o.status.success(), "{}", show(&o));
    assert!(reaper.join().expect("reaper"), "the task {left_pid} left in the stale group still ran");
    assert!(!stale.exists(), "the stale group {} is still there", stale.display());
    // Inside, the cgroup namespace is rooted at the cell's own group.
    assert!(stdout(&o).lines().any(|l| l.ends_with(":pids:/")), "{}", show(&o));
    // The cell's group is gone after the cell.
    let left: Vec<String> = std::fs::read_dir(&root)
        .expect("read pids")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("cell-groupcheck-"))
        .collect();
    assert!(left.is_empty(), "groups left behind: {left:?}");
    // And a process of the cell was in it while it ran: the host sees it under the group.
    let mut child = h
        .cell()
        .arg("--config")
        .arg(&cfg)
        .args([
            "run",
            "--",
            "sh",
            "-c",
            r#"sleep 5 & until [ "$(cat /proc/$!/comm)" = sleep ]; do :; done; echo up; wait"#,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("cell run");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    assert_eq!(lines.next().and_then(Result::ok).as_deref(), Some("up"));
    let group = std::fs::read_dir(&root)
        .expect("read pids")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("cell-groupcheck-")))
        .expect("the running cell's group");
    assert_eq!(std::fs::read_to_string(group.join("pids.max")).expect("pids.max").trim(), "100");
    let procs = std::fs::read_to_string(group.join("cgroup.procs")).expect("procs");
    let names: Vec<String> = procs
        .split_whitespace()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).ok())
        .map(|c| c.trim().to_owned())
        .collect();
    // bubblewrap and everything under it; the launcher stays outside (it never migrates).
    for want in ["bwrap", "cell-init", "sleep"] {
        assert!(names.iter().any(|n| n == want), "{want} is not in the cell's group: {names:?}");
    }
    assert!(!names.iter().any(|n| n == "cell"), "the launcher is in the cell's group: {names:?}");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid")),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
}

#[test]
fn tmpfs_cannot_hold_more_than_the_memory_limit() {
    // Without a cgroup, pages of a tmpfs count toward no limit of the cell; /tmp and
    // /dev/shm are capped at the memory limit each (with a cgroup, the kernel charges them
    // to it as well).
    for who in [Who::Root, Who::User] {
        let test = "limits::tmpfs_cannot_hold_more_than_the_memory_limit";
        let Some(h) = Host::new(who, test) else { continue };
        let cfg =
            h.write_config("tmpfs.json", r#"{"schemaVersion":1,"cells":{"default":{"limits":{"memory":"64M"}}}}"#);
        let o = h
            .cell()
            .arg("--config")
            .arg(&cfg)
            .args([
                "run",
                "--",
                "sh",
                "-c",
                "for d in /tmp /dev/shm; do dd if=/dev/zero of=$d/big bs=1M count=200 2>/dev/null; \
                 echo $d $(stat -c %s $d/big); rm -f $d/big; done",
            ])
            .output()
            .expect("cell run");
        let out = stdout(&o);
        if who == Who::User {
            assert_eq!(out.lines().count(), 2, "both tmpfs mounts were written: {}", show(&o));
        }
        for line in out.lines() {
            let size: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(u64::MAX);
            assert!(size <= 64 << 20, "{who:?}: {line} is past the 64 MiB limit: {}", show(&o));
        }
        // As root the memory cgroup may kill the writer instead (exit 137); as a user the
        // tmpfs is full at 64 MiB.
        assert!(o.status.success() || o.status.code() == Some(137), "{}", show(&o));
    }
}

/// `RLIMIT_NPROC` soft limit `soft` (the hard one kept) for a command about to start.
fn with_task_limit(cmd: &mut std::process::Command, soft: u64) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: getrlimit and setrlimit are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            let (_, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NPROC)?;
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NPROC, soft.min(hard), hard)?;
            Ok(())
        })
    }
}

both!(a_cell_at_its_task_limit_leaves_the_user_room_to_start_programs, |h| {
    // The kernel counts the cell's tasks against the user's own `ulimit -u` too: with a
    // user limit of 200 and the default 4096 tasks per cell, a fork bomb must stop where the
    // user can still start a program on the host.
    let test = format!("limits::a_cell_at_its_task_limit_leaves_the_user_room_to_start_programs::as_{:?}", h.who)
        .to_lowercase();
    std::fs::write(h.work.join("bomb.py"), FORK_BOMB).expect("write bomb");
    h.chown_all();
    let mut cmd = h.cell();
    cmd.args(["run", "--", "python3", "bomb.py"]).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = with_task_limit(&mut cmd, 200).spawn().expect("cell run");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let report = lines.next().and_then(Result::ok).unwrap_or_default();
    // While the bomb's children fill the cell: the same user, with the same limit, starts a
    // program on the host.
    let mut host = std::process::Command::new("sh");
    host.args(["-c", "echo host-alive"]);
    {
        use std::os::unix::process::CommandExt as _;
        host.uid(h.uid).gid(h.gid);
    }
    let host = with_task_limit(&mut host, 200).output().expect("host process");
    let o = child.wait_with_output().expect("wait cell");
    let err = stderr(&o);
    let all = format!("first line {report:?}\n{}", show(&o));
    // Whether a cgroup or the rlimit holds the cell's own limit, the user's is the lower one;
    // only a kernel that counts RLIMIT_NPROC per real uid (before 5.14) cannot keep it apart.
    if err.contains("per uid (") || err.contains("tasks NOT enforced") {
        skip(&test, &format!("this kernel counts RLIMIT_NPROC per real uid, not per user namespace: {err}"));
        return;
    }
    let forked: u64 = report.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{all}"));
    assert!(forked < 100, "{forked} children under half of a user limit of 200:\n{all}");
    assert_eq!(String::from_utf8_lossy(&host.stdout), "host-alive\n", "the user's host program: {}", show(&host));
    assert!(err.contains("100 instead of 4096") || err.contains("100 tasks, not 4096"), "the launch line: {all}");
});
