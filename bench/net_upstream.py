#!/usr/bin/env python3
"""Fast local HTTP/1.1 upstream for bench/net.sh (listens on 127.0.0.1 only).

    net_upstream.py --port-file FILE --blob FILE

GET /bytes/N  -> N bytes (application/octet-stream), sent with os.sendfile from BLOB,
                 re-sending the file as often as needed. Connection: close.
GET /small    -> "ok\n". Connection: close.

One thread per connection; the port it picked is written to --port-file once listening.
"""

import argparse
import os
import socket
import threading


def read_head(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return None
        data += chunk
        if len(data) > 65536:
            return None
    return data.split(b"\r\n", 1)[0].decode("latin-1")


def handle(conn, blob_fd, blob_size):
    try:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        line = read_head(conn)
        if line is None:
            return
        parts = line.split()
        path = parts[1] if len(parts) >= 2 else "/"
        # Absolute-form (plain-http proxies forward it as origin-form, but be lenient).
        if path.startswith("http://"):
            path = "/" + path.split("/", 3)[3] if path.count("/") >= 3 else "/"
        if path.startswith("/bytes/"):
            n = int(path[len("/bytes/"):])
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n" % n
            )
            out = conn.fileno()
            left = n
            off = 0
            while left > 0:
                k = os.sendfile(out, blob_fd, off, min(left, blob_size - off))
                if k == 0:
                    break
                left -= k
                off += k
                if off >= blob_size:
                    off = 0
        elif path == "/small":
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                b"Content-Length: 3\r\nConnection: close\r\n\r\nok\n"
            )
        else:
            conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    except (OSError, ValueError):
        pass
    finally:
        try:
            conn.shutdown(socket.SHUT_WR)
            # Drain so the close does not turn into a reset while the client still reads.
            conn.settimeout(2)
            while conn.recv(65536):
                pass
        except OSError:
            pass
        conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--blob", required=True)
    args = ap.parse_args()
    blob_fd = os.open(args.blob, os.O_RDONLY)
    blob_size = os.fstat(blob_fd).st_size
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1024)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.getsockname()[1])
    os.rename(tmp, args.port_file)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=handle, args=(conn, blob_fd, blob_size), daemon=True).start()


if __name__ == "__main__":
    main()
