#!/usr/bin/env python3
"""Runs named commands interleaved (A B C, B C A, C A B, ...), so drift in machine load hits every
variant alike, and prints median, p10/p90 and the ratio of each median to the first's.

usage: interleave.py [--runs N] [--warmup N] [--cwd NAME=DIR]... [--fd NAME=N:FILE]... [--env NAME=VAR=VALUE]... [--json FILE]
                     NAME=CMD [NAME=CMD ...]
A CMD is split by shlex; it runs with stdout/stderr discarded and must exit 0. --fd opens FILE
afresh for every run of NAME and hands it over as descriptor N (read-only; /dev/null is opened
for writing), e.g. the data descriptors of a bubblewrap argv. The load
average is printed before and after. --json writes every time (seconds, hyperfine's export
shape: {"results": [{"command": NAME, "times": [...]}]}, plus the load averages)."""
import argparse, json, os, shlex, statistics, subprocess, sys, time


def open_fds(specs):
    """Opens each (N, FILE) as descriptor N; returns the numbers."""
    out = []
    for n, path in specs:
        f = os.open(path, os.O_WRONLY if path == "/dev/null" else os.O_RDONLY)
        if f != n:
            os.dup2(f, n)
            os.close(f)
        out.append(n)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--cwd", action="append", default=[], help="NAME=DIR: run variant NAME in DIR")
    ap.add_argument("--fd", action="append", default=[], help="NAME=N:FILE: FILE as descriptor N of NAME")
    ap.add_argument("--env", action="append", default=[], help="NAME=VAR=VALUE: VAR set to VALUE for variant NAME only")
    ap.add_argument("--json", help="write the times here")
    ap.add_argument("variants", nargs="+")
    a = ap.parse_intermixed_args()
    cwd = dict(c.split("=", 1) for c in a.cwd)
    fds = {}
    for spec in a.fd:
        name, rest = spec.split("=", 1)
        n, path = rest.split(":", 1)
        fds.setdefault(name, []).append((int(n), path))
    envs = {}
    for spec in a.env:
        name, rest = spec.split("=", 1)
        var, value = rest.split("=", 1)
        envs.setdefault(name, dict(os.environ))[var] = value
    vs = []
    for v in a.variants:
        name, cmd = v.split("=", 1)
        vs.append((name, shlex.split(cmd), cwd.get(name)))
    times = {n: [] for n, _, _ in vs}
    load0 = os.getloadavg()
    for i in range(a.warmup + a.runs):
        # A B C, then B C A, ...: no variant always runs first or right after another.
        for name, argv, d in vs[i % len(vs):] + vs[:i % len(vs)]:
            passed = open_fds(fds.get(name, []))
            t = time.perf_counter()
            r = subprocess.run(argv, cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=passed,
                               env=envs.get(name))
            dt = (time.perf_counter() - t) * 1000
            for n in passed:
                os.close(n)
            if r.returncode != 0:
                sys.exit(f"interleave: {name} exited {r.returncode}: {shlex.join(argv)}")
            if i >= a.warmup:
                times[name].append(dt)
    load = os.getloadavg()
    fmt = lambda l: f"{l[0]:.2f} {l[1]:.2f} {l[2]:.2f}"
    print(f"load average {fmt(load0)} before, {fmt(load)} after; {a.runs} interleaved runs each after {a.warmup} warmups")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"load_before": load0, "load_after": load, "warmup": a.warmup,
                       "results": [{"command": n, "times": [t / 1000 for t in times[n]]} for n, _, _ in vs]}, f)
    base = None
    print(f"{'variant':<16} {'median ms':>10} {'p10':>8} {'p90':>8} {'vs first':>9}")
    for name, _, _ in vs:
        t = sorted(times[name])
        med = statistics.median(t)
        p10, p90 = t[len(t) // 10], t[(len(t) * 9) // 10]
        base = base or med
        print(f"{name:<16} {med:>10.2f} {p10:>8.2f} {p90:>8.2f} {med / base:>8.2f}x")


if __name__ == "__main__":
    main()
