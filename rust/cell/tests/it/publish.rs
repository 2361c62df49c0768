//! Published ports (`--publish HOSTPORT[:CELLPORT]`, `ports.publish`): a real server in a real
//! cell answers curl on the host's 127.0.0.1, and nothing else: not on other host addresses,
//! not after the cell ends, not through a socket path the cell swapped.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::both;
use crate::support::{show, skip, stderr, stdout, wait_for, Host};

/// A server for the cell: answers every GET with its second argument; touches `ready` in
/// the current directory once it listens on 127.0.0.1:(first argument).
const SERVER: &str = r#"import http.server, pathlib, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = sys.argv[2].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
srv = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
pathlib.Path(sys.argv[3] if len(sys.argv) > 3 else "ready").touch()
srv.serve_forever()
"#;

/// A port free on the host's loopback right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn write_server(h: &Host) {
    std::fs::write(h.work.join("server.py"), SERVER).expect("write server");
    h.chown_all();
}

/// `cell run ARGS -- sh -c SCRIPT` in the background, once `ready` appeared in the worktree.
fn start(h: &Host, args: &[&str], script: &str) -> Child {
    let _ = std::fs::remove_file(h.work.join("ready"));
    let child = h
        .cell()
        .arg("run")
        .args(args)
        .args(["--", "sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cell");
    wait_for(&h.work.join("ready"));
    child
}

/// Ends a background cell the way a person would (SIGTERM to the launcher) and returns
/// what it printed.
fn stop(child: Child) -> std::process::Output {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid")),
        nix::sys::signal::Signal::SIGTERM,
    );
    child.wait_with_output().expect("wait for cell")
}

/// `curl` on the host: the body, or `None` when the connection failed or closed empty.
fn curl(url: &str) -> Option<String> {
    let o = Command::new("curl").args(["-sS", "--max-time", "10", url]).output().expect("curl");
    (o.status.success() && !o.stdout.is_empty()).then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// The local addresses (`IP:PORT` as the kernel writes them in hex) of the host's listening
/// TCP sockets on `port`, from /proc/net/tcp and tcp6.
fn listening_on(port: u16) -> Vec<String> {
    let mut out = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 3 && f[3] == "0A" && f[1].ends_with(&format!(":{port:04X}")) {
                out.push(f[1].to_owned());
            }
        }
    }
    out
}

/// A non-loopback IPv4 address of this host, if it has one.
fn non_loopback_address() -> Option<String> {
    let o = Command::new("ip").args(["-4", "-o", "addr", "show"]).output().ok()?;
    String::from_utf8_lossy(&o.stdout).lines().find_map(|l| {
        let addr = l.split_whitespace().skip_while(|w| *w != "inet").nth(1)?.split('/').next()?.to_owned();
        (!addr.starts_with("127.")).then_some(addr)
    })
}

both!(a_server_in_the_cell_answers_on_the_hosts_loopback_only, |h| {
    write_server(h);
    let (host_port, cell_port) = (free_port(), free_port());
    let token = format!("served-from-the-cell-{host_port}");
    let spec = format!("{host_port}:{cell_port}");
    let cell = start(h, &["--publish", &spec], &format!("exec python3 server.py {cell_port} {token}"));
    // HOSTPORT:CELLPORT: the host's port reaches the other port inside, and twice in a row
    // (cell-init dials a new spare after each client).
    for _ in 0..3 {
        assert_eq!(curl(&format!("http://127.0.0.1:{host_port}/")).as_deref(), Some(token.as_str()));
    }
    // Bound on 127.0.0.1 only: the kernel's table has exactly that listener ...
    assert_eq!(listening_on(host_port), [format!("0100007F:{host_port:04X}")], "not only on 127.0.0.1");
    // ... and another address of this host does not answer.
    match non_loopback_address() {
        Some(addr) => {
            let reached = std::net::TcpStream::connect((addr.as_str(), host_port)).is_ok();
            assert!(!reached, "the published port answers on {addr}, beyond loopback");
        }
        None => skip(
            "a_server_in_the_cell_answers_on_the_hosts_loopback_only (other address)",
            "this host has no non-loopback IPv4 address to try; the /proc/net/tcp check still ran",
        ),
    }
    let ps = h.run(["ps"]);
    assert!(stdout(&ps).contains(&format!("127.0.0.1:{host_port} -> {cell_port}")), "cell ps:\n{}", show(&ps));
    let o = stop(cell);
    assert!(!stderr(&o).contains("warning"), "{}", show(&o));
    // The launch said where the port is, once.
    let said = format!("cell: 127.0.0.1:{host_port} -> cell port {cell_port}\n");
    assert_eq!(stderr(&o).matches(&said).count(), 1, "{}", show(&o));
});

both!(a_published_port_works_with_the_proxy_on_and_from_the_config, |h| {
    write_server(h);
    let port = free_port();
    let token = format!("proxied-cell-{port}");
    let cfg = serde_json::json!({
        "schemaVersion": 1,
        "cells": { "default": { "network": { "mode": "proxy" }, "ports": { "publish": [port.to_string()] } } }
    });
    let config = h.write_config("ports.json", &cfg.to_string());
    let cell =
        start(h, &["--config", config.to_str().expect("utf-8")], &format!("exec python3 server.py {port} {token}"));
    assert_eq!(curl(&format!("http://127.0.0.1:{port}/")).as_deref(), Some(token.as_str()));
    let o = stop(cell);
    assert!(stderr(&o).contains(&format!("cell: 127.0.0.1:{port} -> cell port {port}\n")), "{}", show(&o));
    // The cell's own network is still only the proxy: no route appeared.
    let o2 = h.run(["run", "--config", config.to_str().expect("utf-8"), "--", "cat", "/proc/net/route"]);
    let routes = stdout(&o2);
    assert_eq!(routes.lines().count(), 1, "the cell has a route:\n{routes}\n{}", show(&o));
});

both!(the_listener_is_gone_after_the_cell_exits, |h| {
    write_server(h);
    let port = free_port();
    let cell = start(h, &["--publish", &port.to_string()], &format!("exec python3 server.py {port} up"));
    assert_eq!(curl(&format!("http://127.0.0.1:{port}/")).as_deref(), Some("up"));
    assert!(!listening_on(port).is_empty());
    stop(cell);
    assert!(listening_on(port).is_empty(), "the host still listens on {port} after the cell ended");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "port {port} still accepts");
    // A cell that ends by itself (its command exits) closes it as well.
    let o = h.run(["run", "--publish", &port.to_string(), "--", "true"]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(listening_on(port).is_empty(), "the host still listens on {port} after `true` ended");
});

both!(nothing_listens_unless_a_port_is_published, |h| {
    write_server(h);
    let port = free_port();
    let cell = start(h, &[], &format!("exec python3 server.py {port} hidden"));
    assert!(listening_on(port).is_empty(), "an unpublished cell port listens on the host");
    assert!(curl(&format!("http://127.0.0.1:{port}/")).is_none());
    stop(cell);
});

both!(a_port_in_use_on_the_host_is_refused_with_the_fix, |h| {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let o = h.run(["run", "--publish", &format!("{port}:8000"), "--", "touch", "ran"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("--publish {port}:8000")) && err.contains(&format!("127.0.0.1:{port} is already in use")),
        "the error does not name the flag and the port:\n{err}"
    );
    assert!(err.contains("publish another host port"), "no fix given:\n{err}");
    assert!(!h.work.join("ran").exists(), "the cell ran although its port could not be published");
    drop(taken);
});

both!(bad_and_duplicate_publications_name_their_field, |h| {
    for (args, field) in [
        (vec!["--publish", "0"], "--publish 0"),
        (vec!["--publish", "http"], "--publish http"),
        (vec!["--publish", "8000:99999"], "--publish 8000:99999"),
        (vec!["--publish", "8000", "--publish", "8000:9000"], "--publish 8000:9000"),
    ] {
        let mut all = vec!["plan"];
        all.extend(args);
        all.extend(["--", "true"]);
        let o = h.run(&all);
        assert_eq!(o.status.code(), Some(2), "{}", show(&o));
        assert!(stderr(&o).contains(field), "{field} not named:\n{}", show(&o));
    }
    let cfg = r#"{"schemaVersion":1,"cells":{"default":{"ports":{"publish":["8000","8000:9000","x"]}}}}"#;
    let config = h.write_config("bad-ports.json", cfg);
    let o = h.run(["check", "--config", config.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let err = stderr(&o);
    assert!(err.contains("cells.default.ports.publish[2]"), "the bad entry is not named:\n{err}");
    let cfg = r#"{"schemaVersion":1,"cells":{"default":{"ports":{"publish":["8000","8000:9000"]}}}}"#;
    let config = h.write_config("dup-ports.json", cfg);
    let o = h.run(["check", "--config", config.to_str().expect("utf-8")]);
    assert!(stderr(&o).contains("cells.default.ports.publish[1]"), "the duplicate is not named:\n{}", show(&o));
    let cfg = r#"{"schemaVersion":1,"cells":{"default":{"ports":{"publsh":["8000"]}}}}"#;
    let config = h.write_config("typo-ports.json", cfg);
    let o = h.run(["check", "--config", config.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(2), "an unknown field passed:\n{}", show(&o));
});

both!(an_address_beyond_loopback_only_when_asked_and_with_a_warning, |h| {
    let port = free_port();
    let o = h.run(["plan", "--publish", &format!("0.0.0.0:{port}:8000"), "--", "true"]);
    assert!(stdout(&o).contains(&format!("host 0.0.0.0:{port} -> the cell's 127.0.0.1:8000")), "{}", show(&o));
    let o = h.run(["run", "--publish", &format!("0.0.0.0:{port}:8000"), "--", "true"]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(
        stderr(&o).contains(&format!("warning: --publish 0.0.0.0:{port}:8000 listens on 0.0.0.0:{port}")),
        "no warning for a port published on every interface:\n{}",
        show(&o)
    );
});

/// A unix socket of the host user (a desktop bus, an agent's control socket) that must never
/// see a connection the cell chose: counts the connections it gets and answers `DECOY`.
struct Decoy {
    listener: std::os::unix::net::UnixListener,
}

impl Decoy {
    fn new(path: &Path) -> Self {
        let listener = std::os::unix::net::UnixListener::bind(path).expect("bind decoy");
        // Connectable by the account the cell runs as: only cell's design keeps it out.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).expect("chmod decoy");
        listener.set_nonblocking(true).expect("nonblocking");
        Self { listener }
    }

    /// Connections it got (each answered `DECOY` and closed).
    fn hits(&self) -> usize {
        let mut n = 0;
        while let Ok((mut s, _)) = self.listener.accept() {
            let _ = s.set_nonblocking(false);
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nDECOY");
            n += 1;
        }
        n
    }
}

both!(a_hostile_cell_cannot_point_the_host_at_another_socket, |h| {
    write_server(h);
    let port = free_port();
    let decoy_path = h.path("decoy.sock");
    let decoy = Decoy::new(&decoy_path);
    let sock = format!("/run/cell/sockets/publish-{port}.sock");
    let decoy_s = decoy_path.to_str().expect("utf-8");
    // The agent runs as cell-init's uid: it swaps the socket path for a link to the host's
    // decoy, by every way it has (remove and link, rename over it), then serves the port.
    let script = format!(
        "cd /run/cell/sockets 2>/dev/null; \
         rm -f {sock} 2>/dev/null; ln -sf {decoy_s} {sock} 2>/dev/null && echo SWAPPED; \
         ln -s {decoy_s} /tmp/l && mv -f /tmp/l {sock} 2>/dev/null && echo RENAMED; \
         cd {work}; exec python3 server.py {port} genuine",
        work = h.work.display()
    );
    let cell = start(h, &["--publish", &port.to_string()], &script);
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(curl(&format!("http://127.0.0.1:{port}/")));
    }
    let hits = decoy.hits();
    let o = stop(cell);
    assert_eq!(hits, 0, "the host connected to the socket the cell pointed at:\n{answers:?}\n{}", show(&o));
    assert!(
        answers.iter().all(|a| a.as_deref() != Some("DECOY")),
        "a host client reached the decoy:\n{answers:?}\n{}",
        show(&o)
    );
    assert!(!stdout(&o).contains("SWAPPED") && !stdout(&o).contains("RENAMED"), "{}", show(&o));
    assert_eq!(answers[0].as_deref(), Some("genuine"), "the published port stopped working:\n{}", show(&o));
});

/// `cell codex login` publishes 1455, a fixed port: the root and user variants take turns.
static CODEX_PORT: std::sync::Mutex<()> = std::sync::Mutex::new(());

both!(codex_login_publishes_its_callback_port, |h| {
    let _turn = CODEX_PORT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if std::net::TcpListener::bind("127.0.0.1:1455").is_err() {
        skip(
            "codex_login_publishes_its_callback_port",
            "127.0.0.1:1455 is in use on this host, so `cell codex login` cannot publish it",
        );
        return;
    }
    write_server(h);
    // A stand-in codex: its login waits for the browser's callback on 127.0.0.1:1455.
    let fake = h.work.join("fakecodex");
    std::fs::write(&fake, "#!/bin/sh\ncd \"$(dirname \"$0\")\"\nexec python3 server.py 1455 \"callback-reached:$*\"\n")
        .expect("write");
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let cfg = serde_json::json!({
        "schemaVersion": 1,
        "cells": { "codex": { "agent": { "kind": "codex", "command": [fake] } } }
    });
    let config = h.write_config("codex.json", &cfg.to_string());
    let _ = std::fs::remove_file(h.work.join("ready"));
    let child = h
        .cell()
        .args(["codex", "--config", config.to_str().expect("utf-8"), "login"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_for(&h.work.join("ready"));
    let got = curl("http://127.0.0.1:1455/auth/callback?code=x");
    let o = stop(child);
    assert!(
        got.as_deref().is_some_and(|g| g.ends_with(" login")),
        "the callback did not reach codex: {got:?}\n{}",
        show(&o)
    );
    // Without `login` (or with the device code) nothing is published.
    let plan =
        h.run(["plan", "--config", config.to_str().expect("utf-8"), "--agent", "codex", "login", "--device-auth"]);
    assert!(!stdout(&plan).contains("publish "), "{}", show(&plan));
    let plan = h.run(["plan", "--config", config.to_str().expect("utf-8"), "--agent", "codex", "login"]);
    assert!(stdout(&plan).contains("host 127.0.0.1:1455 -> the cell's 127.0.0.1:1455"), "{}", show(&plan));
});

both!(codex_not_logged_in_yet_gets_its_callback_port_best_effort, |h| {
    let _turn = CODEX_PORT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if std::net::TcpListener::bind("127.0.0.1:1455").is_err() {
        skip("codex_not_logged_in_yet_gets_its_callback_port_best_effort", "127.0.0.1:1455 is in use on this host");
        return;
    }
    write_server(h);
    let fake = h.work.join("fakecodex");
    std::fs::write(&fake, "#!/bin/sh\ncd \"$(dirname \"$0\")\"\nexec python3 server.py 1455 first-run\n")
        .expect("write");
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let home = h.path("codexhome");
    let cfg = serde_json::json!({
        "schemaVersion": 1,
        "cells": { "codex": { "agent": { "kind": "codex", "command": [fake] }, "home": { "path": home } } }
    });
    let config = h.write_config("codex.json", &cfg.to_string());
    let config = config.to_str().expect("utf-8");
    // Interactive codex without a login in the cell home: its "Sign in with ChatGPT" works.
    let _ = std::fs::remove_file(h.work.join("ready"));
    let spawn = || {
        h.cell()
            .args(["codex", "--config", config])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let child = spawn();
    wait_for(&h.work.join("ready"));
    let got = curl("http://127.0.0.1:1455/auth/callback");
    let o = stop(child);
    assert_eq!(got.as_deref(), Some("first-run"), "{}", show(&o));
    // With the port taken on the host, the cell still starts, with a warning.
    let taken = std::net::TcpListener::bind("127.0.0.1:1455").expect("bind 1455");
    let _ = std::fs::remove_file(h.work.join("ready"));
    let child = spawn();
    wait_for(&h.work.join("ready"));
    let o = stop(child);
    drop(taken);
    assert!(
        stderr(&o).contains("warning: `codex` (not logged in yet)")
            && stderr(&o).contains("the cell starts without it"),
        "{}",
        show(&o)
    );
    // Logged in (its auth file in the cell home): nothing is published.
    std::fs::create_dir_all(home.join(".codex")).expect("mkdir");
    std::fs::write(home.join(".codex/auth.json"), "{}").expect("write");
    h.chown_all();
    let plan = h.run(["plan", "--config", config, "--agent", "codex"]);
    assert!(!stdout(&plan).contains("publish "), "{}", show(&plan));
});

both!(the_real_codex_login_callback_answers_on_the_host, |h| {
    let _turn = CODEX_PORT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if !["/usr/local/bin", "/usr/bin", "/bin"].iter().any(|d| Path::new(d).join("codex").exists()) {
        skip(
            "the_real_codex_login_callback_answers_on_the_host",
            "codex is not installed (npm install -g @openai/codex)",
        );
        return;
    }
    if std::net::TcpListener::bind("127.0.0.1:1455").is_err() {
        skip("the_real_codex_login_callback_answers_on_the_host", "127.0.0.1:1455 is in use on this host");
        return;
    }
    let child = h
        .cell()
        .args(["codex", "login"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // codex's own login server answers a callback with a wrong state with 400; until it
    // listens, the launcher closes the client (no spare or nothing on 1455 inside).
    let url = "http://127.0.0.1:1455/auth/callback?code=x&state=not-the-state";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut status = String::new();
    while std::time::Instant::now() < deadline {
        let o = Command::new("curl")
            .args(["-sS", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}", url])
            .output();
        status = o.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
        if status != "000" && !status.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let o = stop(child);
    assert_eq!(status, "400", "codex's callback server in the cell did not answer on the host:\n{}", show(&o));
    assert!(stdout(&o).contains("1455") || stderr(&o).contains("1455"), "{}", show(&o));
});

// Bulk bytes through a published port, both ways (the relay's half-close and splice paths).
both!(bulk_bytes_cross_a_published_port_intact, |h| {
    let port = free_port();
    let echo = "import socket, pathlib\n\
                s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
                s.bind(('127.0.0.1', PORT)); s.listen(4); pathlib.Path('ready').touch()\n\
                while True:\n    c, _ = s.accept()\n    data = b''\n    while True:\n        b = c.recv(65536)\n        if not b: break\n        data += b\n    c.sendall(data[::-1]); c.close()\n"
        .replace("PORT", &port.to_string());
    std::fs::write(h.work.join("echo.py"), echo).expect("write");
    h.chown_all();
    let cell = start(h, &["--publish", &port.to_string()], "exec python3 echo.py");
    let payload: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let writer = {
        let mut c = c.try_clone().expect("clone");
        let p = payload.clone();
        std::thread::spawn(move || {
            c.write_all(&p).expect("write");
            c.shutdown(std::net::Shutdown::Write).expect("shutdown");
        })
    };
    let mut got = Vec::new();
    c.read_to_end(&mut got).expect("read");
    writer.join().expect("writer");
    let o = stop(cell);
    let mut want = payload;
    want.reverse();
    assert!(got == want, "{} bytes came back, {} expected\n{}", got.len(), want.len(), show(&o));
});
