#!/usr/bin/env python3
"""N cells started at once: time until every one is ready (its command has started and said so)
and memory per cell (PSS, from /proc/PID/smaps_rollup of every process of the cell: launcher,
bubblewrap, cell-init, the command, and the cell-egress sidecar in proxy mode).

usage: scale.py --cell CELL --dir DIR [--counts 10,30] [--modes none,proxy] [--rounds N]
Each cell runs `sh -c 'echo ready; exec sleep HOLD'` in a worktree of its own under DIR; the
ready line arrives on a pipe, so "ready" is the command running inside a finished cell."""
import argparse, os, select, signal, statistics, subprocess, sys, time


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def one(cell, d, n, mode, hold):
    procs = []
    argv_net = ["--network", "none"] if mode == "none" else ["--allow", "example.invalid"]
    for i in range(n):
        wt = os.path.join(d, f"{mode}-{n}-{i}")
        os.makedirs(wt, exist_ok=True)
        # No terminal reaches the cells: each launcher given one would save and restore its
        # modes, and many doing that at once leave it raw.
        procs.append(subprocess.Popen([cell, "run", *argv_net, "--", "sh", "-c", f"echo ready; exec sleep {hold}"],
                                      cwd=wt, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL))
    t0 = time.perf_counter()
    waiting = {p.stdout.fileno(): p for p in procs}
    ready = []
    deadline = t0 + 60
    while waiting and time.perf_counter() < deadline:
        r, _, _ = select.select(list(waiting), [], [], 1)
        for fd in r:
            line = os.read(fd, 64)
            if b"ready" in line or not line:
                if not line:
                    sys.exit(f"scale: a cell ended before it was ready ({mode}, {n} cells)")
                ready.append((time.perf_counter() - t0) * 1000)
                del waiting[fd]
    if waiting:
        sys.exit(f"scale: {len(waiting)} of {n} cells not ready after 60 s")
    # Every cell is running its sleep: count the memory of each cell's processes.
    per_cell = []
    for p in procs:
        pids = descendants(p.pid)
        per_cell.append(sum(pss_kb(q) for q in pids) / 1024)
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait()
    return max(ready), statistics.median(ready), statistics.mean(per_cell), len(descendants(procs[0].pid))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cell", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--counts", default="10,30")
    ap.add_argument("--modes", default="none,proxy")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--hold", type=float, default=3)
    a = ap.parse_args()
    load0 = os.getloadavg()
    rows = []
    for n in [int(c) for c in a.counts.split(",")]:
        for mode in a.modes.split(","):
            res = [one(a.cell, a.dir, n, mode, a.hold) for _ in range(a.rounds)]
            rows.append((n, mode, statistics.median(r[0] for r in res), statistics.median(r[1] for r in res),
                         statistics.median(r[2] for r in res), min(r[0] for r in res), max(r[0] for r in res)))
    load = os.getloadavg()
    print(f"load average {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f} before, {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} after; "
          f"{a.rounds} rounds each (medians over rounds)")
    print(f"{'cells':>5} {'network':<8} {'all ready ms':>12} {'(min-max)':>14} {'median ready':>13} {'PSS/cell MB':>12}")
    for n, mode, all_ready, med, pss, lo, hi in rows:
        print(f"{n:>5} {mode:<8} {all_ready:>12.1f} {f'{lo:.0f}-{hi:.0f}':>14} {med:>13.1f} {pss:>12.2f}")
    # The design's targets, for 30 proxied cells.
    for n, mode, all_ready, _, pss, _, _ in rows:
        if n == 30 and mode == "proxy":
            ok_t = "ok" if all_ready <= 400 else "MISSED"
            ok_m = "ok" if pss <= 2 else "MISSED"
            print(f"30 proxied cells all ready in {all_ready:.1f} ms ({ok_t}, target <= 400 ms); "
                  f"{pss:.2f} MB PSS per cell ({ok_m}, target <= 2 MB)")
            break
    else:
        print("targets (30 proxied cells: <= 400 ms, <= 2 MB) not judged: run with --counts including 30 and --modes including proxy")


if __name__ == "__main__":
    main()
