#!/usr/bin/env python3
"""Runs named commands interleaved (A B C A B C ...), so drift in machine load hits every
variant alike, and prints median, p10/p90 and the ratio of each median to the first's.

usage: interleave.py [--runs N] [--warmup N] [--cwd NAME=DIR]... NAME=CMD [NAME=CMD ...]
A CMD is split by shlex; it runs with stdout/stderr discarded and must exit 0."""
import argparse, os, shlex, statistics, subprocess, sys, time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--cwd", action="append", default=[], help="NAME=DIR: run variant NAME in DIR")
    ap.add_argument("variants", nargs="+")
    a = ap.parse_args()
    cwd = dict(c.split("=", 1) for c in a.cwd)
    vs = []
    for v in a.variants:
        name, cmd = v.split("=", 1)
        vs.append((name, shlex.split(cmd), cwd.get(name)))
    times = {n: [] for n, _, _ in vs}
    for i in range(a.warmup + a.runs):
        for name, argv, d in vs:
            t = time.perf_counter()
            r = subprocess.run(argv, cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            dt = (time.perf_counter() - t) * 1000
            if r.returncode != 0:
                sys.exit(f"interleave: {name} exited {r.returncode}: {shlex.join(argv)}")
            if i >= a.warmup:
                times[name].append(dt)
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {a.runs} interleaved runs each after {a.warmup} warmups")
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
