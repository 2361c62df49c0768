//! Sidecars of real cells: a user-declared host command holding a secret only it knows,
//! host services (`ports.host`, `--host-port`), and the launcher's control socket. Every
//! server listens on the host's 127.0.0.1; nothing here contacts any other address.

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};

use crate::both;
use crate::support::{ok, show, stderr, stdout, wait_for, Host, Upstream};

/// A small HTTP server run as a sidecar on the host: `srv.py PORT [--ready-fd]`. `GET /`
/// answers `$GREETING $TOKEN`; `GET /via/HOST:PORT` fetches `http://HOST:PORT/` through
/// the socket in `$CELL_VIA_SOCKET` (a CONNECT tunnel through the egress proxy) and answers
/// the body, or the proxy's status line when it refused; `GET /pid` answers its pid, and
/// `GET /exit` answers, then it exits.
const SERVER_PY: &str = r#"
import http.server, os, socket, sys
port = int(sys.argv[1])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/via/"):
            target = self.path[5:]
            s = socket.socket(socket.AF_UNIX)
            s.connect(os.environ["CELL_VIA_SOCKET"])
            s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = s.recv(4096)
                if not chunk:
                    break
                head += chunk
            body = head.split(b"\r\n")[0].decode()
            if " 200" in body:
                s.sendall(("GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % target).encode())
                data = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                body = data.split(b"\r\n\r\n", 1)[-1].decode()
        elif self.path == "/pid":
            body = str(os.getpid())
        elif self.path == "/exit":
            body = "bye"
        else:
            body = os.environ.get("GREETING", "") + " " + os.environ.get("TOKEN", "")
        b = body.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
        if self.path == "/exit":
            self.wfile.flush()
            os._exit(0)
    def log_message(self, *a):
        sys.stderr.write("served %s\n" % self.path)
srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
if len(sys.argv) > 2 and sys.argv[2] == "--ready-fd":
    os.write(3, b"ready\n")
    os.close(3)
sys.stderr.write("listening on %d\n" % port)
sys.stderr.flush()
srv.serve_forever()
"#;

/// Sends `{"op":"status"}` to every socket under /run/cell/sockets inside the cell and to
/// the paths (globs) given, and prints what answered (`no answer` or the first line).
const PROBE_PY: &str = r#"
import glob, socket, sys
for path in sorted(glob.glob("/run/cell/sockets/*")) + [m for a in sys.argv[1:] for m in (glob.glob(a) or [a])]:
    try:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(2)
        s.connect(path)
        s.sendall(b'{"op":"status"}\n')
        print(path, repr(s.recv(4096).split(b"\n")[0].decode(errors="replace")))
    except OSError as e:
        print(path, "no answer:", type(e).__name__)
"#;

/// A host TCP port free right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn write(h: &Host, rel: &str, text: &str) -> PathBuf {
    let p = h.path(rel);
    std::fs::write(&p, text).expect("write");
    h.chown_all();
    p
}

fn config(h: &Host, name: &str, cell: &serde_json::Value) -> PathBuf {
    let cfg = serde_json::json!({ "schemaVersion": 1, "cells": { name: cell } });
    h.write_config(&format!("{name}.json"), &cfg.to_string())
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8")
}

/// `curl` of a URL inside the cell, bypassing the proxy variables; one line: `[code] body`.
fn curl(url: &str) -> String {
    format!(
        "rm -f .body; curl --noproxy '*' -s -m 10 -o .body -w '[%{{http_code}}] ' {url}; cat .body 2>/dev/null; echo"
    )
}

both!(a_user_sidecar_holds_its_secret_and_only_its_port_is_reached, |h| {
    const TOKEN: &str = "sidecar-only-token-51c2";
    let server = write(h, "srv.py", SERVER_PY);
    let secret = write(h, "sidecar-token", &format!("{TOKEN}\n"));
    let port = free_port();
    let other = Upstream::start("other-host-service");
    let cfg = config(
        h,
        "sc",
        &serde_json::json!({ "sidecars": { "api": {
            "command": ["python3", s(&server), port.to_string()],
            "env": { "GREETING": "hello" },
            "envFromFile": { "TOKEN": s(&secret) },
            "port": port,
            "cellPort": 7000,
        } } }),
    );
    // The plan names the secret's file, never its value.
    let plan = ok(&h.run(["--config", s(&cfg), "plan", "--json", "--", "true"]));
    assert!(!plan.contains(TOKEN), "the plan shows the secret:\n{plan}");
    let v: serde_json::Value = serde_json::from_str(&plan).expect("json");
    let api = &v["sidecars"][0];
    assert_eq!(
        (api["name"].as_str(), api["forwardTo"].as_u64(), api["ports"][0].as_u64()),
        (Some("api"), Some(u64::from(port)), Some(7000)),
        "{plan}"
    );
    assert_eq!(api["secretEnv"]["TOKEN"], s(&secret), "{plan}");
    assert_eq!(api["command"][0], "/usr/bin/python3", "resolved on the host's PATH: {plan}");

    let script = [
        curl("http://127.0.0.1:7000/"),
        // The host port of the sidecar, and another host service: the cell's loopback is its own.
        curl(&format!("http://127.0.0.1:{port}/")),
        curl(&format!("http://127.0.0.1:{}/", other.port)),
        format!("cat {} 2>&1 | tr -d '\\n'; echo", s(&secret)),
        "env | grep -c sidecar-only || true".to_owned(),
        // The pattern is put together in the shell: the command line itself (in cell-init's
        // spec under /run/cell) must not hold the token it looks for.
        format!(
            "t={}; grep -rl \"$t{}\" /run /etc /tmp 2>/dev/null | head -3; echo searched",
            &TOKEN[..8],
            &TOKEN[8..]
        ),
    ]
    .join("; ");
    let o = h.run(["--config", s(&cfg), "run", "--", "sh", "-c", &script]);
    let out = ok(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        format!("[200] hello {TOKEN}"),
        "the sidecar answered from the host with its secret:\n{}",
        show(&o)
    );
    assert_eq!(lines[1], "[000] ", "the sidecar's host port is not open inside:\n{out}");
    assert_eq!(lines[2], "[000] ", "another host service is not reachable:\n{out}");
    assert_eq!(other.hits(), 0);
    assert!(lines[3].contains("No such file"), "the secret's file is visible inside:\n{out}");
    assert_eq!(lines[4], "0", "the secret is in the cell's environment:\n{out}");
    assert_eq!(lines[5], "searched", "the secret is in a file inside:\n{out}");
    // Stopped when the cell ended; its log in the cell's state directory.
    assert!(crate::support::gone_within(s(&server), 10), "the sidecar outlived the cell");
    let log = std::fs::read_to_string(h.home.join(".local/state/cell/sc/sidecar-api.log")).expect("sidecar log");
    assert!(log.contains(&format!("listening on {port}")) && log.contains("served /"), "{log}");
});

both!(a_sidecar_that_does_not_come_up_stops_the_cell, |h| {
    let port = free_port();
    let cfg = config(
        h,
        "down",
        &serde_json::json!({ "sidecars": { "broken": {
            "command": ["sh", "-c", "echo 'broken: cannot start' >&2; exit 1"],
            "port": port,
        } } }),
    );
    let o = h.run(["--config", s(&cfg), "run", "--", "sh", "-c", "touch ran"]);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    let err = stderr(&o);
    assert!(err.contains("the broken sidecar did not become ready") && err.contains("broken: cannot start"), "{err}");
    assert!(!h.work.join("ran").exists(), "the command ran without its sidecar");
    let leftovers: Vec<_> = std::fs::read_dir(h.path("run/cell")).map(|d| d.flatten().collect()).unwrap_or_default();
    assert!(
        leftovers.iter().all(|e: &std::fs::DirEntry| !e.file_name().to_string_lossy().starts_with("down-")),
        "{leftovers:?}"
    );
});

both!(a_sidecar_program_the_cell_could_write_or_an_impostor_port_is_refused, |h| {
    let planted = h.work.join("planted-sidecar");
    std::fs::write(&planted, "#!/bin/sh\ntouch \"$0.ran\"\n").expect("write");
    std::fs::set_permissions(&planted, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    h.chown_all();
    let port = free_port();
    let cfg =
        config(h, "planted", &serde_json::json!({ "sidecars": { "p": { "command": [s(&planted)], "port": port } } }));
    let o = h.run(["--config", s(&cfg), "run", "--", "true"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains("sidecar p") && stderr(&o).contains("which the cell can write"), "{}", show(&o));
    assert!(!h.work.join("planted-sidecar.ran").exists(), "the launcher ran a program the cell could have planted");
    // A port something else already listens on: the cell would reach that, not the sidecar.
    let impostor = Upstream::start("impostor");
    let cfg = config(
        h,
        "impostor",
        &serde_json::json!({ "sidecars": { "db": { "command": ["sleep", "30"], "port": impostor.port } } }),
    );
    let o = h.run(["--config", s(&cfg), "run", "--", "touch", "ran"]);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert!(stderr(&o).contains("something already listens"), "{}", show(&o));
    assert!(!h.work.join("ran").exists());
    // A host script outside the cell's reach whose `#!` interpreter the cell planted.
    let interpreter = h.work.join("interp");
    std::fs::write(&interpreter, "#!/bin/sh\ntouch \"$0.ran\"\n").expect("write");
    std::fs::set_permissions(&interpreter, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let script = h.path("outside/by-shebang");
    std::fs::write(&script, format!("#!{}\n", s(&interpreter))).expect("write");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    h.chown_all();
    let cfg = config(
        h,
        "shebang",
        &serde_json::json!({ "sidecars": { "sb": { "command": [s(&script)], "port": free_port() } } }),
    );
    let o = h.run(["--config", s(&cfg), "run", "--", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert!(
        stderr(&o).contains("is a script run by") && stderr(&o).contains("where the cell can write"),
        "{}",
        show(&o)
    );
    assert!(!h.work.join("interp.ran").exists(), "the launcher ran an interpreter the cell could have planted");
});

both!(host_ports_reach_the_one_host_service_named, |h| {
    let named = Upstream::start("named-host-service");
    let flagged = Upstream::start("flagged-host-service");
    let unnamed = Upstream::start("unnamed-host-service");
    let script =
        |ports: &[u16]| ports.iter().map(|p| curl(&format!("http://127.0.0.1:{p}/"))).collect::<Vec<_>>().join("; ");
    let all = [named.port, flagged.port, unnamed.port];
    // Network mode none: `ports.host` alone.
    let none = config(h, "hp", &serde_json::json!({ "ports": { "host": [named.port] } }));
    let out = ok(&h.run(["--config", s(&none), "run", "--", "sh", "-c", &script(&all)]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["[200] named-host-service", "[000] ", "[000] "], "{out}");
    // Proxy mode, with `--host-port` beside the config's.
    let proxied =
        config(h, "hpx", &serde_json::json!({ "network": { "mode": "proxy" }, "ports": { "host": [named.port] } }));
    let flag = flagged.port.to_string();
    let o = h.run(["--config", s(&proxied), "run", "--host-port", &flag, "--", "sh", "-c", &script(&all)]);
    let out = ok(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["[200] named-host-service", "[200] flagged-host-service", "[000] "], "{}", show(&o));
    assert_eq!(unnamed.hits(), 0, "a host service no one named was reached");
    // Through the proxy the host's loopback stays closed (empty allowlist).
    let o = h.run([
        "--config",
        s(&proxied),
        "run",
        "--",
        "sh",
        "-c",
        &format!("curl --noproxy '' -s -m 10 -o /dev/null -w '%{{http_code}}' http://127.0.0.1:{}/", unnamed.port),
    ]);
    assert_eq!(stdout(&o), "403", "{}", show(&o));
    assert_eq!(unnamed.hits(), 0);
    // The proxy's ports cannot be taken.
    let bad = config(h, "hpbad", &serde_json::json!({ "ports": { "host": [3128] } }));
    let o = h.run(["--config", s(&bad), "run", "--", "true"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains("cells.hpbad.ports.host[0]") && stderr(&o).contains("egress proxy's"), "{}", show(&o));
});

/// The runtime directory of the one running instance of `name`.
fn runtime_of(h: &Host, name: &str) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(h.path("run/cell"))
        .expect("runtime base")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&format!("{name}-"))))
        .collect();
    assert_eq!(dirs.len(), 1, "one running instance of {name}: {dirs:?}");
    dirs.into_iter().next().expect("one")
}

/// A cell with a sidecar that reports ready on its fd and dials out through egress, and a
/// host service; it runs `inside` then waits for the file `go` in the worktree.
fn control_cell(h: &Host, up: &Upstream) -> (PathBuf, u16, std::process::Child) {
    let server = write(h, "srv.py", SERVER_PY);
    let port = free_port();
    let cfg = config(
        h,
        "ctl",
        &serde_json::json!({
            "network": { "mode": "proxy", "allow": [format!("api.test:{}", up.port)], "hosts": { "api.test": "127.0.0.1", "evil.test": "127.0.0.1" } },
            "ports": { "host": [up.port] },
            "sidecars": { "fetch": {
                "command": ["python3", s(&server), port.to_string(), "--ready-fd"],
                "port": port,
                "cellPort": 7001,
                "readyFd": true,
                "via": "egress",
            } },
        }),
    );
    write(h, "probe.py", PROBE_PY);
    let probe = h.path("probe.py");
    std::fs::copy(&probe, h.work.join("probe.py")).expect("copy");
    h.chown_all();
    // The host path of the control socket is tried too: it must not exist there.
    let control = h.path("run/cell").join("ctl-*").join("control.sock");
    let inside = format!(
        "{}; {}; python3 probe.py {} > probe.out; touch ready; while [ ! -e go ]; do sleep 0.05; done",
        curl(&format!("http://127.0.0.1:7001/via/api.test:{}", up.port)),
        curl(&format!("http://127.0.0.1:7001/via/evil.test:{}", up.port)),
        s(&control),
    );
    let child = h
        .cell()
        .args(["--config", s(&cfg), "run", "--", "sh", "-c", &inside])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_for(&h.work.join("ready"));
    (cfg, port, child)
}

both!(the_control_socket_answers_its_user_and_never_the_cell, |h| {
    let up = Upstream::start("through-egress");
    let (cfg, port, child) = control_cell(h, &up);
    let runtime = runtime_of(h, "ctl");
    // Status: every sidecar with its pid and ports.
    let o = h.run(["--config", s(&cfg), "status", "--cell", "ctl", "--json"]);
    let status: serde_json::Value = serde_json::from_str(ok(&o).trim()).unwrap_or_else(|e| panic!("{e}: {}", show(&o)));
    let names: Vec<&str> =
        status["sidecars"].as_array().expect("list").iter().filter_map(|s| s["name"].as_str()).collect();
    let host_service = format!("host-{}", up.port);
    assert_eq!(names, ["egress", "fetch", host_service.as_str()], "{status}");
    let egress_pid: u64 =
        std::fs::read_to_string(runtime.join("egress.pid")).expect("pid").trim().parse().expect("pid");
    assert_eq!(status["sidecars"][0]["pid"].as_u64(), Some(egress_pid), "{status}");
    assert_eq!(status["sidecars"][1]["ports"][0], 7001, "{status}");
    assert_eq!(status["sidecars"][1]["hostPort"].as_u64(), Some(u64::from(port)), "{status}");
    assert!(status["sidecars"].as_array().expect("list").iter().all(|s| s["running"] == true), "{status}");
    let text = ok(&h.run(["--config", s(&cfg), "status", "--cell", "ctl"]));
    let fetch_pid = status["sidecars"][1]["pid"].to_string();
    assert!(
        text.lines().any(|l| l.split_whitespace().take(4).eq(["fetch", "pid", fetch_pid.as_str(), "running,"])),
        "{text}"
    );
    // Reload through the socket (what `cell net reload` does).
    let o = h.run(["--config", s(&cfg), "net", "reload", "--cell", "ctl"]);
    assert!(ok(&o).contains("reloaded"), "{}", show(&o));
    // Another uid is refused by the launcher (SO_PEERCRED), even root.
    if nix::unistd::geteuid().is_root() && h.uid != 0 {
        let mut stream = std::os::unix::net::UnixStream::connect(runtime.join(cell::host::sidecars::CONTROL_SOCKET))
            .expect("connect as root");
        stream.write_all(b"{\"op\":\"status\"}\n").expect("write");
        let mut line = String::new();
        std::io::BufReader::new(&stream).read_line(&mut line).expect("read");
        assert!(line.contains("\"ok\":false") && line.contains("only uid"), "root got an answer: {line}");
        assert!(!line.contains("launcher\""), "{line}");
    } else {
        crate::support::skip(
            "the_control_socket_answers_its_user_and_never_the_cell (peer uid part)",
            "needs root to connect as another uid",
        );
    }
    // The launcher's own uid in another pid namespace (where every cell is, should a bind
    // ever show it the socket) is refused too.
    if nix::unistd::geteuid().is_root() {
        let sock = runtime.join(cell::host::sidecars::CONTROL_SOCKET);
        let client = "import socket,sys; c=socket.socket(socket.AF_UNIX); c.connect(sys.argv[1]); \
                      c.sendall(b'{\"op\":\"status\"}\\n'); print(c.makefile().readline())";
        let o = std::process::Command::new("unshare")
            .args(["--pid", "--fork", "setpriv"])
            .arg(format!("--reuid={}", h.uid))
            .arg(format!("--regid={}", h.gid))
            .args(["--clear-groups", "/usr/bin/python3", "-c", client])
            .arg(&sock)
            .output()
            .expect("unshare");
        let line = stdout(&o);
        assert!(
            line.contains("\"ok\":false") && line.contains("outside every cell"),
            "a peer in another pid namespace got an answer:\n{}",
            show(&o)
        );
    } else {
        crate::support::skip(
            "the_control_socket_answers_its_user_and_never_the_cell (pid namespace part)",
            "needs root to make a pid namespace with the launcher's uid",
        );
    }
    std::fs::write(h.work.join("go"), "").expect("go");
    let o = child.wait_with_output().expect("wait");
    let out = ok(&o);
    let lines: Vec<&str> = out.lines().collect();
    // The sidecar dialled out through egress: the allowlist applied to it too.
    assert_eq!(lines[0], "[200] through-egress", "{}", show(&o));
    assert!(lines[1].starts_with("[200] HTTP/1.1 403"), "evil.test passed the sidecar's egress:\n{out}");
    assert_eq!(up.hits(), 1);
    // From inside, no socket answered a control request.
    let probe = std::fs::read_to_string(h.work.join("probe.out")).expect("probe output");
    assert!(probe.contains("/run/cell/sockets/egress.sock") && probe.contains("sidecar-fetch.sock"), "{probe}");
    assert!(!probe.contains("control.sock '"), "the control socket answered inside:\n{probe}");
    assert!(
        !probe.contains("launcher") && !probe.contains("\"ok\""),
        "a control request was answered inside:\n{probe}"
    );
    assert!(probe.contains("ctl-*/control.sock no answer: FileNotFoundError"), "{probe}");
    assert!(!runtime.exists(), "the runtime directory was removed when the cell ended");
});

both!(a_sidecar_starts_outside_the_worktree_and_no_cell_sees_the_runtime_directory, |h| {
    // The cell plants a package in the worktree that `python3 -m http.server` would import
    // first if the sidecar started there: code on the host, with the sidecar's secrets.
    let port = free_port();
    let marker = h.path("sidecar-ran-planted-code");
    std::fs::create_dir_all(h.work.join("http")).expect("mkdir");
    std::fs::write(
        h.work.join("http/__init__.py"),
        format!("open({:?}, 'w').write('pwned')\nraise SystemExit(3)\n", s(&marker)),
    )
    .expect("plant");
    h.chown_all();
    let cfg = config(
        h,
        "cwd",
        &serde_json::json!({ "sidecars": { "web": {
            "command": ["python3", "-m", "http.server", port.to_string(), "--bind", "127.0.0.1"],
            "port": port,
            "cellPort": 7005,
        } } }),
    );
    let o = h.run(["--config", s(&cfg), "run", "--", "sh", "-c", &curl("http://127.0.0.1:7005/")]);
    assert!(ok(&o).starts_with("[200]"), "{}", show(&o));
    assert!(!marker.exists(), "the sidecar ran code the cell planted in the worktree");
    // A bind that would show the cell the runtime base (every launch's sockets) is refused.
    for shown in [h.path("run"), h.path("run/cell"), h.dir.path().to_path_buf()] {
        let o = h.run(["--config", s(&cfg), "run", "--bind", s(&shown), "--", "true"]);
        assert_eq!(o.status.code(), Some(2), "{}", show(&o));
        assert!(crate::support::stderr(&o).contains("XDG_RUNTIME_DIR"), "{}", show(&o));
    }
});

/// A host service that holds every connection open and records how many it held at once.
const HOLDER_PY: &str = r#"
import os, socket, sys, threading, time
port, out = int(sys.argv[1]), sys.argv[2]
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port)); s.listen(1024)
held = []
def report():
    while True:
        # Renamed into place: a reader never sees the file truncated and empty.
        with open(out + ".new", "w") as f:
            f.write(str(len(held)))
        os.replace(out + ".new", out); time.sleep(0.1)
threading.Thread(target=report, daemon=True).start()
while True:
    c, _ = s.accept(); held.append(c)
"#;

both!(a_cell_cannot_make_the_launcher_carry_unbounded_connections, |h| {
    let port = free_port();
    let holder = write(h, "holder.py", HOLDER_PY);
    let count = h.path("held");
    let mut service = std::process::Command::new("/usr/bin/python3")
        .arg(&holder)
        .arg(port.to_string())
        .arg(&count)
        .spawn()
        .expect("holder");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let cfg = config(h, "flood", &serde_json::json!({ "ports": { "host": [port] } }));
    // Inside: far more connections than the forwarder carries, all held open a while.
    let flood = format!(
        "import socket, time\nheld = []\nfor _ in range(600):\n    c = socket.socket(); c.settimeout(5)\n    try:\n        c.connect(('127.0.0.1', {port})); held.append(c)\n    except OSError:\n        pass\ntime.sleep(3)\n"
    );
    std::fs::write(h.work.join("flood.py"), flood).expect("write");
    h.chown_all();
    let o = h.run(["--config", s(&cfg), "run", "--", "python3", "flood.py"]);
    let held: usize = std::fs::read_to_string(&count).unwrap_or_default().trim().parse().unwrap_or(0);
    let _ = service.kill();
    let _ = service.wait();
    assert!(o.status.success(), "{}", show(&o));
    // The documented cap (README: 256 at once per forwarder), not the constant: raising it
    // is a change of the promise.
    assert_eq!(cell::host::sidecars::forward::MAX_CONNECTIONS, 256);
    // One of those held is the test's own, made to see the service up.
    assert!(held > 1 && held <= 256 + 1, "the host service held {held} connections (cap 256, plus the test's own)");
});

both!(a_sidecar_file_is_read_only_inside_and_never_from_where_the_cell_writes, |h| {
    let port = free_port();
    let server = write(h, "srv.py", SERVER_PY);
    // The sidecar writes its certificate before it is ready: it is not there at plan time.
    let ca = h.path("sidecar-ca.pem");
    let start = format!("echo \"CA of pid $$\" > {}; exec python3 {} {port}", s(&ca), s(&server));
    let sidecar = |files: serde_json::Value, start: &str| {
        serde_json::json!({ "sidecars": { "ca": {
            "command": ["sh", "-c", start],
            "port": port,
            "cellPort": 7010,
            "cellFiles": files,
        } } })
    };
    let cfg = config(h, "cf", &sidecar(serde_json::json!({ "/etc/ssl/sidecar-ca.pem": s(&ca) }), &start));
    let plan = ok(&h.run(["--config", s(&cfg), "plan", "--json", "--", "true"]));
    let v: serde_json::Value = serde_json::from_str(&plan).expect("json");
    assert_eq!(
        v["sidecars"][0]["cellFiles"],
        serde_json::json!([{ "src": s(&ca), "dst": "/etc/ssl/sidecar-ca.pem" }]),
        "{plan}"
    );
    let script = [
        "cat /etc/ssl/sidecar-ca.pem",
        "echo forged > /etc/ssl/sidecar-ca.pem 2>/dev/null && echo wrote",
        "rm -f /etc/ssl/sidecar-ca.pem 2>/dev/null && echo removed",
        "echo forged > /tmp/f; mv -f /tmp/f /etc/ssl/sidecar-ca.pem 2>/dev/null && echo replaced",
        "mv /etc/ssl /etc/ssl.old 2>/dev/null && echo moved",
        "ln -sf /tmp/f /etc/ssl/sidecar-ca.pem 2>/dev/null && echo linked",
        "grep -c ' /etc/ssl/sidecar-ca.pem ro,' /proc/self/mountinfo",
        "cat /etc/ssl/sidecar-ca.pem",
    ]
    .join("; ");
    let o = h.run(["--config", s(&cfg), "run", "--", "sh", "-c", &script]);
    let out = ok(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() == 3 && lines[0].starts_with("CA of pid "), "{}", show(&o));
    assert_eq!(lines[1], "1", "the file is not a read-only mount:\n{out}");
    assert_eq!(lines[2], lines[0], "the file changed inside:\n{out}");
    let host = std::fs::read_to_string(&ca).expect("host file");
    assert_eq!(host.trim_end(), lines[0], "the host file changed");
    assert!(
        v["mounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .any(|m| m["dst"] == "/etc/ssl/sidecar-ca.pem" && m["src"] == s(&ca) && m.to_string().contains("ro")),
        "a read-only bind in the plan: {plan}"
    );

    // Where the cell writes, the file would be the cell's to choose: refused at plan time.
    let planted = h.work.join("planted-ca.pem");
    std::fs::write(&planted, "cell's own CA\n").expect("plant");
    let link = h.path("link-to-worktree.pem");
    std::os::unix::fs::symlink(&planted, &link).expect("symlink");
    h.chown_all();
    let refused = |files: serde_json::Value, start: &str, code: i32, says: &str| {
        let cfg = config(h, "cfbad", &sidecar(files, start));
        let o = h.run(["--config", s(&cfg), "run", "--", "sh", "-c", "cat /etc/ssl/sidecar-ca.pem"]);
        assert_eq!(o.status.code(), Some(code), "{}", show(&o));
        assert!(stderr(&o).contains(says), "{says:?}:\n{}", show(&o));
        assert!(!stdout(&o).contains("cell's own CA"), "{}", show(&o));
    };
    refused(serde_json::json!({ "/etc/ssl/sidecar-ca.pem": s(&planted) }), &start, 2, "where the cell can write");
    refused(serde_json::json!({ "/etc/ssl/sidecar-ca.pem": s(&link) }), &start, 2, "where the cell can write");
    // A link the sidecar's side leaves there only at launch is refused before the cell starts.
    let late = h.path("late.pem");
    let late_start = format!("ln -sf {} {}; exec python3 {} {port}", s(&planted), s(&late), s(&server));
    refused(serde_json::json!({ "/etc/ssl/sidecar-ca.pem": s(&late) }), &late_start, 125, "where the cell can write");
    // Inside, nothing cell makes itself can be replaced, and no mount point lands on the host.
    for (dst, says) in [
        ("/etc/passwd", "already cell's own"),
        ("/run/cell/sockets/x.pem", "managed by cell itself"),
        ("/usr/local/share/ca.pem", "system's programs"),
        (s(&h.work.join("ca.pem")), "read-write mount"),
    ] {
        refused(serde_json::json!({ dst: s(&ca) }), &start, 2, says);
    }
    assert!(!h.work.join("ca.pem").exists(), "a mount point was made in the worktree");
});

/// Sends one control request to `sock` as the host user `uid`, in a new pid namespace when
/// `unshare` is set, and returns the answer line (root only).
fn control_as(sock: &Path, uid: u32, gid: u32, unshare: bool, request: &str) -> String {
    let client = "import socket,sys; c=socket.socket(socket.AF_UNIX); c.connect(sys.argv[1]); \
                  c.sendall(sys.argv[2].encode() + b'\\n'); print(c.makefile().readline())";
    let mut cmd = if unshare {
        let mut c = std::process::Command::new("unshare");
        c.args(["--pid", "--fork", "setpriv"]);
        c
    } else {
        std::process::Command::new("setpriv")
    };
    let o = cmd
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .args(["--clear-groups", "/usr/bin/python3", "-c", client])
        .arg(sock)
        .arg(request)
        .output()
        .expect("control client");
    stdout(&o)
}

both!(a_sidecar_restarts_on_request_of_its_user_only_and_the_cell_reaches_it_again, |h| {
    let server = write(h, "srv.py", SERVER_PY);
    let port = free_port();
    let cfg = config(
        h,
        "rs",
        &serde_json::json!({ "sidecars": { "api": {
            "command": ["python3", s(&server), port.to_string()],
            "port": port,
            "cellPort": 7020,
        } } }),
    );
    // Each step: the pid the cell reaches at 127.0.0.1:7020, then `ready-N`; the next waits
    // for `go-N`. Step 1 also asks the sidecar to exit by itself.
    let step = |n: u32, extra: &str| {
        format!(
            "curl --noproxy '*' -s -m 10 http://127.0.0.1:7020/pid > pid-{n}; {extra} touch ready-{n}; while [ ! -e go-{n} ]; do sleep 0.05; done"
        )
    };
    let inside =
        [step(0, ""), step(1, "curl --noproxy '*' -s -m 10 http://127.0.0.1:7020/exit > bye;"), step(2, "")].join("; ");
    let child = h
        .cell()
        .args(["--config", s(&cfg), "run", "--", "sh", "-c", &inside])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let status = || {
        let o = h.run(["--config", s(&cfg), "status", "--cell", "rs", "--json"]);
        let v: serde_json::Value = serde_json::from_str(ok(&o).trim()).unwrap_or_else(|e| panic!("{e}: {}", show(&o)));
        (v["sidecars"][0]["pid"].as_u64().expect("pid"), v["sidecars"][0]["running"] == true)
    };
    let seen = |n: u32| {
        wait_for(&h.work.join(format!("ready-{n}")));
        std::fs::read_to_string(h.work.join(format!("pid-{n}"))).expect("pid").trim().parse::<u64>().unwrap_or(0)
    };
    let first = seen(0);
    assert_eq!(status(), (first, true), "the cell reached the sidecar the launcher started");
    let runtime = runtime_of(h, "rs");
    let sock = runtime.join(cell::host::sidecars::CONTROL_SOCKET);
    let restart = r#"{"op":"restart","sidecar":"api"}"#;
    // A peer that is not the launcher's user, or is in another pid namespace (as every cell
    // is), is refused, and nothing is restarted.
    if nix::unistd::geteuid().is_root() {
        if h.uid != 0 {
            let line = control_as(&sock, 0, 0, false, restart);
            assert!(line.contains("\"ok\":false") && line.contains("only uid"), "root restarted it: {line}");
        }
        let line = control_as(&sock, h.uid, h.gid, true, restart);
        assert!(line.contains("\"ok\":false") && line.contains("outside every cell"), "another pid namespace: {line}");
        assert_eq!(status(), (first, true), "a refused peer restarted the sidecar");
    } else {
        crate::support::skip(
            "a_sidecar_restarts_on_request_of_its_user_only_and_the_cell_reaches_it_again (refused peers)",
            "needs root to connect as another uid or from another pid namespace",
        );
    }
    // Restarted: a new process, ready when the answer comes, reached by the cell.
    let o = h.run(["--config", s(&cfg), "status", "--cell", "rs", "--restart", "api", "--json"]);
    let v: serde_json::Value = serde_json::from_str(ok(&o).trim()).unwrap_or_else(|e| panic!("{e}: {}", show(&o)));
    let second = v["sidecars"][0]["pid"].as_u64().expect("pid");
    assert!(second != first && v["sidecars"][0]["running"] == true, "{v}");
    assert!(!Path::new(&format!("/proc/{first}")).exists(), "the old sidecar still runs (or was not reaped)");
    std::fs::write(h.work.join("go-0"), "").expect("go");
    assert_eq!(seen(1), second, "the cell did not reach the restarted sidecar");
    // It exited by itself (asked by the cell): shown as not running.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while status().1 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(status(), (second, false), "a sidecar that exited is shown running");
    let text = ok(&h.run(["--config", s(&cfg), "status", "--cell", "rs"]));
    assert!(text.lines().any(|l| l.split_whitespace().next() == Some("api") && l.contains("exited")), "{text}");
    // Restarted again, from the command line's text form.
    let o = h.run(["--config", s(&cfg), "status", "--cell", "rs", "--restart", "api"]);
    assert!(ok(&o).contains("running"), "{}", show(&o));
    let (third, running) = status();
    assert!(running && third != second, "not restarted: {}", show(&o));
    std::fs::write(h.work.join("go-1"), "").expect("go");
    assert_eq!(seen(2), third, "the cell did not reach the sidecar restarted after it exited");
    // What cannot be restarted says so.
    let o = h.run(["--config", s(&cfg), "status", "--cell", "rs", "--restart", "nosuch"]);
    assert!(!o.status.success() && stderr(&o).contains("no sidecar \"nosuch\""), "{}", show(&o));
    std::fs::write(h.work.join("go-2"), "").expect("go");
    let o = child.wait_with_output().expect("wait");
    ok(&o);
    let log = std::fs::read_to_string(h.home.join(".local/state/cell/rs/sidecar-api.log")).expect("sidecar log");
    assert_eq!(log.matches(&format!("listening on {port}")).count(), 3, "{log}");
    assert!(crate::support::gone_within(s(&server), 10), "a restarted sidecar outlived the cell");
});

both!(a_restart_kills_a_sidecar_that_ignores_its_stop_signal_with_all_it_started, |h| {
    let server = write(h, "srv.py", SERVER_PY);
    let port = free_port();
    // It ignores SIGTERM (and so does what it starts), and leaves a process of its own.
    let token = format!("301.{port}");
    let token = token.as_str();
    let cfg = config(
        h,
        "stubborn",
        &serde_json::json!({ "sidecars": { "api": {
            "command": ["sh", "-c", format!("trap '' TERM; sleep {token} & exec python3 {} {port}", s(&server))],
            "port": port,
            "cellPort": 7030,
        } } }),
    );
    let child = h
        .cell()
        .args(["--config", s(&cfg), "run", "--", "sh", "-c", "touch ready; while [ ! -e go ]; do sleep 0.05; done"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_for(&h.work.join("ready"));
    let before = crate::support::host_pids_with(token);
    assert_eq!(before.len(), 1, "{before:?}");
    let o = h.run(["--config", s(&cfg), "status", "--cell", "stubborn", "--restart", "api", "--json"]);
    let v: serde_json::Value = serde_json::from_str(ok(&o).trim()).unwrap_or_else(|e| panic!("{e}: {}", show(&o)));
    assert_eq!(v["sidecars"][0]["running"], true, "{v}");
    let after = crate::support::host_pids_with(token);
    assert!(
        after.len() == 1 && after != before,
        "the old sidecar's process group survived its restart: {before:?} then {after:?}"
    );
    std::fs::write(h.work.join("go"), "").expect("go");
    ok(&child.wait_with_output().expect("wait"));
    assert!(crate::support::gone_within(token, 10), "the sidecar's process outlived the cell");
});
