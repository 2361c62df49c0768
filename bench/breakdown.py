#!/usr/bin/env python3
"""Where the start-up of a cell goes: the exact bubblewrap argv of `cell plan --json`, run without
the launcher, then with one ingredient taken out at a time; all interleaved (interleave.py) with
`cell run` itself and with bench/jail.sh's bare call. Then the phases of one launch from the
timestamps of a few system calls under strace.

usage: breakdown.py --plan PLAN.json --dir DIR --cell CELL --cell-wt DIR --bwrap-wt DIR
                    [--runs N] [--warmup N] [--json FILE] [--phases N]
Runs as the user who measures (bench/breakdown.sh sets that up). The data descriptors of the
argv (generated files, the seccomp programs) are written under DIR and opened afresh for every
run; the seccomp programs are the bytes bubblewrap read in one `cell run` under strace."""
import argparse, json, os, re, shlex, statistics, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in bench/
sys.path.insert(0, HERE)
from interleave import open_fds  # noqa: E402
DATA_OPTS = ("--file", "--ro-bind-data", "--bind-data")
STATUS_OPTS = ("--json-status-fd", "--info-fd", "--block-fd", "--sync-fd", "--userns-block-fd")


def split_argv(argv):
    """The argv as a list of options, each a list of its words (the command is the last one)."""
    arity = {o: 1 for o in STATUS_OPTS + ("--add-seccomp-fd", "--seccomp", "--perms", "--uid", "--gid",
                                          "--hostname", "--chdir", "--size", "--cap-drop", "--remount-ro",
                                          "--tmpfs", "--dev", "--proc", "--mqueue", "--dir")}
    arity.update({o: 2 for o in DATA_OPTS + ("--ro-bind", "--bind", "--dev-bind", "--symlink", "--ro-bind-try",
                                             "--bind-try", "--setenv", "--chmod")})
    out, i = [], 1
    while i < len(argv):
        a = argv[i]
        if a == "--":
            out.append(argv[i:])
            break
        n = arity.get(a, 0)
        out.append(argv[i:i + 1 + n])
        i += 1 + n
    return argv[0], out


def join(bwrap, opts):
    """Options back into an argv; a --perms or --size left without its mount is dropped."""
    flat, pending = [bwrap], []
    for o in opts:
        if o[0] in ("--perms", "--size"):
            # Only the last one counts (the one before it belonged to a removed option).
            pending = [p for p in pending if p[0] != o[0]] + [o]
            continue
        if o[0] in ("--ro-bind", "--bind", "--tmpfs", "--dir", "--chmod", "--remount-ro") + DATA_OPTS:
            for p in pending:
                if p[0] == "--size" and o[0] != "--tmpfs":
                    continue
                if p[0] == "--perms" and o[0] not in DATA_OPTS + ("--tmpfs", "--dir", "--chmod"):
                    continue
                flat += p
        pending = []
        flat += o
    return flat


# The traced launches start bubblewrap once the plan is made: started early, it reads its
# options from a pipe before the descriptors' turn, and its exec comes before the planning
# (the phase table would then charge the planning to bubblewrap). The timed `cell` variant
# keeps the default, early start.
PLANNED = dict(os.environ, CELL_EARLY_BWRAP="0")


def fd_bytes(cell, cwd, workdir):
    """What bubblewrap reads from each descriptor in one `cell run` (strace's dump of those reads):
    the seccomp programs, and the init spec, which `cell plan --json` shows without its contents."""
    log = os.path.join(workdir, "fd-strace.txt")
    subprocess.run(["strace", "-f", "-qq", "--seccomp-bpf", "-e", "trace=execve,read,clone,clone3,fork,vfork",
                    "-e", "read=all", "-s", "0", "-o", log, cell, "run", "--network", "none", "--", "true"],
                   cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=PLANNED)
    # bubblewrap and the children it forks (they read the data descriptors), until they exec.
    progs, bwrap, cur, pending, done = {}, set(), None, {}, set()
    for line in open(log, errors="replace"):
        m = re.match(r"(\d+)\s+execve\(\"([^\"]*)\"", line)
        if m:
            if not bwrap and m.group(2).endswith("bwrap"):
                bwrap.add(m.group(1))
            elif m.group(1) in bwrap:
                bwrap.discard(m.group(1))
            continue
        # A clone strace split in two (another thread ran meanwhile) ends in "resumed> ... = N".
        m = re.match(r"(\d+)\s+(?:(?:clone3?|v?fork)\(|<\.\.\. (?:clone3?|v?fork) resumed>).*= (\d+)$", line.strip())
        if m and m.group(1) in bwrap:
            bwrap.add(m.group(2))
            continue
        m = re.match(r"(\d+)\s+read\((\d+), <unfinished", line)
        if m:
            pending[m.group(1)] = int(m.group(2))
            continue
        m = re.match(r"(\d+)\s+(?:read\((\d+),|<\.\.\. read resumed>).*= (\d+)$", line.strip())
        if m:
            cur = None
            fd = int(m.group(2)) if m.group(2) else pending.pop(m.group(1), None)
            # A descriptor counts until its first end of file: after that, the number is reused
            # (bubblewrap's child opens /proc/self/mountinfo again and again).
            if m.group(1) in bwrap and fd is not None and fd not in done:
                if int(m.group(3)) > 0:
                    cur = progs.setdefault(fd, bytearray())
                else:
                    done.add(fd)
            continue
        m = re.match(r"\s*\| [0-9a-f]{5}  ((?:[0-9a-f]{2} {1,2})+)", line)
        if m and cur is not None:
            cur += bytes.fromhex(m.group(1).replace(" ", ""))
    return progs


def phases(cell, cwd, n):
    """Medians (ms) between a launch's execve and exit events under strace."""
    rows = []
    for i in range(n):
        log = f"/tmp/cell-breakdown-phases.{os.getpid()}.{i}"
        subprocess.run(["strace", "-f", "-qq", "-ttt", "--seccomp-bpf", "-e", "trace=execve,exit_group", "-o", log,
                        cell, "run", "--network", "none", "--", "true"],
                       cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=PLANNED)
        ev = {}
        for line in open(log):
            m = re.match(r"(\d+)\s+([\d.]+) (execve\(\"([^\"]+)\"|exit_group)", line)
            if not m:
                continue
            pid, t = m.group(1), float(m.group(2))
            if m.group(4):
                ev.setdefault("exec " + os.path.basename(m.group(4)), t)
                ev.setdefault("pid " + os.path.basename(m.group(4)), pid)
            else:
                for k in ("cell", "bwrap", "cell-init", "true"):
                    if ev.get("pid " + k) == pid:
                        ev["exit " + k] = t
        os.unlink(log)
        seq = ["exec cell", "exec bwrap", "exec cell-init", "exec true", "exit true", "exit cell-init", "exit bwrap", "exit cell"]
        if all(k in ev for k in seq):
            rows.append([(ev[b] - ev[a]) * 1000 for a, b in zip(seq, seq[1:])])
    names = ["launcher before bwrap (plan, fds, spawn; planned start)", "bwrap: namespaces and mounts", "cell-init until the command",
             "the command (true)", "cell-init after the command", "bwrap after cell-init", "launcher after bwrap"]
    return [(name, statistics.median(col)) for name, col in zip(names, zip(*rows))] if rows else []


def main():
    ap = argparse.ArgumentParser()
    for k in ("--plan", "--dir", "--cell", "--cell-wt", "--bwrap-wt"):
        ap.add_argument(k, required=True)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--phases", type=int, default=20)
    ap.add_argument("--json")
    a = ap.parse_args()
    plan = json.load(open(a.plan))
    bwrap, opts = split_argv(plan["argv"])
    # A directory made at launch (a git worktree's private git directory, named after the
    # launcher): the variants bind an empty one there, as jail.sh's bare call does.
    for i, o in enumerate(opts):
        if o[0] == "--bind" and not os.path.exists(o[1]):
            empty = os.path.join(a.dir, f"dir{i}")
            os.makedirs(empty, exist_ok=True)
            opts[i] = ["--bind", empty, o[2]]
    files = {f["dst"]: f["contents"] for f in plan["files"]}
    init = plan["tools"].get("init")
    # In the worktree of the plan: the init spec names its directory (no launch leaves anything there).
    progs = fd_bytes(a.cell, a.bwrap_wt, a.dir)

    fdfiles = {}
    for o in opts:
        if o[0] in DATA_OPTS:
            p = os.path.join(a.dir, f"fd{o[1]}")
            if o[2] in files:
                with open(p, "w") as f:
                    f.write(files[o[2]])
            elif int(o[1]) in progs:
                with open(p, "wb") as f:
                    f.write(progs[int(o[1])])
            else:
                sys.exit(f"breakdown: no contents for {o[2]} in the plan, nor read from descriptor {o[1]} under strace")
            fdfiles[int(o[1])] = p
        elif o[0] in ("--add-seccomp-fd", "--seccomp"):
            fd = int(o[1])
            if fd not in progs:
                sys.exit(f"breakdown: no seccomp program was read from descriptor {fd} under strace")
            p = os.path.join(a.dir, f"fd{fd}")
            with open(p, "wb") as f:
                f.write(progs[fd])
            fdfiles[fd] = p
        elif o[0] in STATUS_OPTS:
            fdfiles[int(o[1])] = "/dev/null"

    # cell-init waits for the launcher's go on the spec's goFd: a file holding one byte.
    go = None
    for o in opts:
        if o[0] in DATA_OPTS and o[2] == "/run/cell/init.json":
            go = json.loads(open(fdfiles[int(o[1])], "rb").read()).get("run", {}).get("goFd")
    if go is not None:
        fdfiles[go] = os.path.join(a.dir, "go")
        with open(fdfiles[go], "w") as f:
            f.write("g")

    is_init = lambda o: o[0] == "--ro-bind" and o[1] == init
    init_data = {"/run/cell/init.json"}
    etc = lambda o: o[0] == "--ro-bind" and o[2].startswith("/etc/")

    def direct(o):  # the command run directly instead of through cell-init
        return ["--", plan["program"]] + plan["command"][1:] if o[0] == "--" else o

    def as_bind(o):  # --ro-bind-data FD DST -> --ro-bind FILE DST
        if o[0] == "--ro-bind-data":
            return ["--ro-bind", fdfiles[int(o[1])], o[2]]
        if o[0] == "--bind-data":
            return ["--bind", fdfiles[int(o[1])], o[2]]
        return o

    variants = {
        "exact": opts,
        "no-seccomp": [o for o in opts if o[0] not in ("--add-seccomp-fd", "--seccomp")],
        "no-init": [direct(o) for o in opts if not is_init(o) and not (o[0] in DATA_OPTS and o[2] in init_data)],
        "no-status-fd": [o for o in opts if o[0] not in STATUS_OPTS],
        "data-as-bind": [as_bind(o) for o in opts],
        "no-file": [o for o in opts if o[0] != "--file"],
        "no-etc-binds": [o for o in opts if not etc(o)],
        "no-userns-off": [o for o in opts if o[0] != "--disable-userns"],
    }
    counts = {"no-etc-binds": sum(1 for o in opts if etc(o)), "no-file": sum(1 for o in opts if o[0] == "--file"),
              "no-seccomp": sum(1 for o in opts if o[0] in ("--add-seccomp-fd", "--seccomp"))}
    args = ["--cwd", f"cell={a.cell_wt}", "cell=" + shlex.join([a.cell, "run", "--network", "none", "--", "true"])]
    for name, vo in variants.items():
        argv = join(bwrap, vo)
        used = {int(w) for o in vo for w in o[1:2] if o[0] in DATA_OPTS + STATUS_OPTS + ("--add-seccomp-fd", "--seccomp")}
        if go is not None and name != "no-init":
            used.add(go)
        passed = open_fds([(n, fdfiles[n]) for n in sorted(used)])
        r = subprocess.run(argv, cwd=a.bwrap_wt, pass_fds=passed, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for n in passed:
            os.close(n)
        if r.returncode != 0:
            sys.exit(f"breakdown: variant {name} fails: {r.stderr.decode(errors='replace').strip()}\n{shlex.join(argv)}")
        with open(os.path.join(a.dir, f"argv-{name}.txt"), "w") as f:
            f.write(shlex.join(argv) + "\n")
        args += ["--cwd", f"{name}={a.bwrap_wt}", f"{name}={shlex.join(argv)}"]
        args += [x for n in sorted(used) for x in ("--fd", f"{name}={n}:{fdfiles[n]}")]
    bare = open(os.path.join(a.dir, "bare-argv.txt")).read().strip()
    args += ["--cwd", f"bare={a.bwrap_wt}", f"bare={bare}"]
    out = os.path.join(a.dir, "times.json")
    print(f"mounts and writes in the plan: {sum(1 for o in opts if o[0] in ('--ro-bind', '--bind', '--dev-bind'))} binds, "
          f"{sum(1 for o in opts if o[0] in ('--ro-bind-data', '--bind-data'))} data binds, {counts['no-file']} --file writes, "
          f"{sum(1 for o in opts if o[0] in ('--tmpfs', '--dev', '--proc'))} tmpfs/dev/proc, "
          f"{sum(1 for o in opts if o[0] == '--remount-ro')} remounts, {sum(1 for o in opts if o[0] == '--symlink')} symlinks")
    subprocess.run([sys.executable, os.path.join(HERE, "interleave.py"), "--runs", str(a.runs), "--warmup", str(a.warmup),
                    "--json", out] + args, check=True)
    res = {r["command"]: statistics.median(r["times"]) * 1000 for r in json.load(open(out))["results"]}
    ex = res["exact"]
    print()
    print("where the time goes (medians, ms):")
    print(f"  launcher (cell run - exact argv run directly)      {res['cell'] - ex:+7.2f}")
    what = {"no-seccomp": f"the {counts['no-seccomp']} seccomp programs", "no-init": "cell-init as pid 1 (its binary and spec mounts)",
            "no-status-fd": "the status fd", "data-as-bind": "--ro-bind-data instead of a plain --ro-bind",
            "no-file": f"the {counts['no-file']} --file writes", "no-etc-binds": f"the {counts['no-etc-binds']} host /etc binds",
            "no-userns-off": "--disable-userns"}
    for k, label in what.items():
        print(f"  {label:<50} {ex - res[k]:+7.2f}")
    print(f"  exact argv - jail.sh's bare call                   {ex - res['bare']:+7.2f}")
    print(f"  cell run - jail.sh's bare call (the jail.sh gap)   {res['cell'] - res['bare']:+7.2f}")
    if a.phases > 0:
        print()
        print(f"phases of one launch under strace (execve/exit only, medians of {a.phases}; strace adds a little to each):")
        for name, ms in phases(a.cell, a.cell_wt, a.phases):
            print(f"  {name:<45} {ms:7.2f} ms")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"medians_ms": res}, f)


if __name__ == "__main__":
    main()
