#!/usr/bin/env python3
"""bench/pty_bench.py: runs commands side by side, interleaved (A B A B ...), each either on
a fresh pseudo-terminal (all of 0-2; the output is read and thrown away, as a terminal
would show it) or with no terminal at all (0-2 on /dev/null), and prints medians and ratios.

usage: pty_bench.py ROUNDS WARMUP MEGABYTES NAME:MODE:ARGV0,ARG,... ...
MODE is `pty` or `null`. MEGABYTES (10^6 bytes) turns the figures into MB/s (0: none)."""
import os, pty, statistics, subprocess, sys, time

rounds, warmup, mb = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
variants = []
for spec in sys.argv[4:]:
    name, mode, argv = spec.split(':', 2)
    variants.append((name, mode, argv.split(',')))

def run_pty(argv):
    start = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(argv[0], argv)
    got = 0
    while True:
        try:
            b = os.read(fd, 1 << 16)
        except OSError:
            break
        if not b:
            break
        got += len(b)
    _, status = os.waitpid(pid, 0)
    took = time.perf_counter() - start
    os.close(fd)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"pty_bench: {' '.join(argv)} failed on a pty (status {status})")
    return took, got

def run_null(argv):
    start = time.perf_counter()
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    took = time.perf_counter() - start
    if r.returncode != 0:
        sys.exit(f"pty_bench: {' '.join(argv)} failed (status {r.returncode})")
    return took, 0

times = {name: [] for name, _, _ in variants}
sizes = {}
for i in range(warmup + rounds):
    for name, mode, argv in variants:
        took, got = (run_pty if mode == 'pty' else run_null)(argv)
        if i >= warmup:
            times[name].append(took)
            sizes[name] = got

print(f"{'':<14} {'runs':>5} {'median ms':>10} {'min ms':>9}" + (f" {'MB/s':>8} {'bytes seen':>12}" if mb else ""))
med = {}
for name, _, _ in variants:
    t = times[name]
    med[name] = statistics.median(t)
    line = f"{name:<14} {len(t):>5} {med[name]*1000:>10.2f} {min(t)*1000:>9.2f}"
    if mb:
        line += f" {mb/med[name]:>8.0f} {sizes[name]:>12}"
    print(line)
names = [n for n, _, _ in variants]
for a, b in zip(names[::2], names[1::2]):
    print(f"{a} / {b} (median): {med[a]/med[b]:.2f}x, {(med[a]-med[b])*1000:+.2f} ms")
