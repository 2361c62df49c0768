#!/usr/bin/env python3
"""Client-side probes for bench/net.sh. Standard library only; prints one JSON object.

latency  -n N --warmup W --target HOST:PORT [--connect-proxy H:P | --http-proxy H:P]
    N sequential fresh connections, each: connect, (CONNECT HOST:PORT and wait for the
    200 when --connect-proxy), GET /small, read the whole response, close. Times each
    connection from before connect() to the last response byte, in ms.

rss  --egress BIN --tunnels N [--work DIR]
    Starts cell-egress standalone (policy: one local echo upstream, maxTunnels 2N), reads
    VmRSS of its pid idle, then with N open CONNECT tunnels (every other one has carried
    a round trip, so half of them hold copy buffers), then after closing them, in KiB.
"""

import argparse
import json
import os
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time


def recv_head(s, buf=b""):
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before the end of the response head")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head.decode("latin-1"), rest


def status_of(head):
    parts = head.split("\r\n", 1)[0].split()
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0


def read_response(s):
    head, body = recv_head(s)
    code = status_of(head)
    length = None
    for line in head.split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "content-length":
            length = int(v.strip())
    if length is None:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
    else:
        while len(body) < length:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("short body")
            body += chunk
    return code, body


def hostport(v):
    h, _, p = v.rpartition(":")
    return h, int(p)


def one_request(args):
    th, tp = hostport(args.target)
    t0 = time.perf_counter_ns()
    if args.connect_proxy:
        s = socket.create_connection(hostport(args.connect_proxy))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (args.target, args.target)).encode())
        head, rest = recv_head(s)
        if status_of(head) != 200 or rest:
            raise ConnectionError("CONNECT refused: " + head.split("\r\n", 1)[0])
        req = "GET /small HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % args.target
    elif args.http_proxy:
        s = socket.create_connection(hostport(args.http_proxy))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        req = "GET http://%s/small HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (args.target, args.target)
    else:
        s = socket.create_connection((th, tp))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        req = "GET /small HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % args.target
    s.sendall(req.encode())
    code, body = read_response(s)
    t1 = time.perf_counter_ns()
    s.close()
    if code != 200 or body != b"ok\n":
        raise ConnectionError("unexpected response %d %r" % (code, body[:80]))
    return (t1 - t0) / 1e6


def latency(args):
    for _ in range(args.warmup):
        one_request(args)
    samples = [one_request(args) for _ in range(args.n)]
    samples.sort()
    q = statistics.quantiles(samples, n=100)
    print(json.dumps({
        "n": len(samples),
        "median_ms": statistics.median(samples),
        "mean_ms": statistics.fmean(samples),
        "p10_ms": q[9],
        "p90_ms": q[89],
        "p99_ms": q[98],
        "min_ms": samples[0],
        "max_ms": samples[-1],
    }))


# ------------------------------------------------------------------------------ rss --

def echo_server():
    """A local upstream that accepts everything, keeps it open and echoes."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4096)
    srv.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(srv, selectors.EVENT_READ)

    def loop():
        while True:
            for key, _ in sel.select():
                if key.fileobj is srv:
                    try:
                        c, _ = srv.accept()
                    except BlockingIOError:
                        continue
                    c.setblocking(False)
                    sel.register(c, selectors.EVENT_READ)
                else:
                    c = key.fileobj
                    try:
                        data = c.recv(65536)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        data = b""
                    if data:
                        c.setblocking(True)
                        c.sendall(data)
                        c.setblocking(False)
                    else:
                        sel.unregister(c)
                        c.close()

    threading.Thread(target=loop, daemon=True).start()
    return srv.getsockname()[1]


def vmrss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for pid %d" % pid)


def threads_of(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


def rss(args):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 4 * args.tunnels + 256
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    port = echo_server()
    work = args.work or tempfile.mkdtemp(prefix="cell-egress-rss.")
    sock = os.path.join(work, "egress.sock")
    pol = os.path.join(work, "policy.json")
    with open(pol, "w") as f:
        json.dump({"allow": ["127.0.0.1:%d" % port], "limits": {"maxTunnels": 2 * args.tunnels}}, f)
    r, w = os.pipe()
    proc = subprocess.Popen(
        [args.egress, "--listen", sock, "--policy", pol, "--audit", os.path.join(work, "audit.jsonl"),
         "--cell", "bench-rss", "--ready-fd", str(w)],
        pass_fds=(w,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(work, "egress.stderr"), "w"))
    os.close(w)
    ready = os.read(r, 64)
    os.close(r)
    if ready != b"ready\n":
        proc.kill()
        sys.exit("cell-egress did not start: " + open(os.path.join(work, "egress.stderr")).read())
    target = "127.0.0.1:%d" % port
    try:
        time.sleep(0.3)
        idle = vmrss_kib(proc.pid)
        tunnels = []
        for i in range(args.tunnels):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sock)
            s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())
            head, rest = recv_head(s)
            if status_of(head) != 200:
                raise RuntimeError("tunnel %d: %s" % (i, head.split("\r\n", 1)[0]))
            if i % 2 == 0:
                msg = b"some bytes so half the tunnels have buffers"
                s.sendall(msg)
                got = rest
                while len(got) < len(msg):
                    got += s.recv(65536)
                if got != msg:
                    raise RuntimeError("tunnel %d: echo mismatch" % i)
            tunnels.append(s)
        time.sleep(0.3)
        busy = vmrss_kib(proc.pid)
        busy_threads = threads_of(proc.pid)
        for s in tunnels:
            s.close()
        time.sleep(1.0)
        after = vmrss_kib(proc.pid)
        print(json.dumps({
            "tunnels": args.tunnels,
            "idle_kib": idle,
            "busy_kib": busy,
            "after_close_kib": after,
            "threads_busy": busy_threads,
        }))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    lat = sub.add_parser("latency")
    lat.add_argument("-n", type=int, default=500)
    lat.add_argument("--warmup", type=int, default=50)
    lat.add_argument("--target", required=True)
    g = lat.add_mutually_exclusive_group()
    g.add_argument("--connect-proxy")
    g.add_argument("--http-proxy")
    r = sub.add_parser("rss")
    r.add_argument("--egress", required=True)
    r.add_argument("--tunnels", type=int, default=1000)
    r.add_argument("--work")
    args = ap.parse_args()
    latency(args) if args.cmd == "latency" else rss(args)


if __name__ == "__main__":
    main()
