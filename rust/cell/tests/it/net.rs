//! The network of a real cell: the egress proxy is the only way out and lets through only
//! what the allowlist names. Upstream servers listen on the host's 127.0.0.1; nothing here
//! contacts any other address.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::both;
use crate::support::{echo_server, ok, show, stdout, wait_for, Host, Upstream};

/// Sends standard input to 127.0.0.1:PORT and prints the first line of the answer.
const RAW_PY: &str = r#"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(sys.stdin.buffer.read())
data = b""
while b"\n" not in data:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
print(data.split(b"\r\n")[0].decode(errors="replace") or "(closed)")
"#;

/// Opens a CONNECT tunnel, proves it works, waits for a go file, proves it still works.
const TUNNEL_PY: &str = r#"
import os, socket, sys, time
target, ready, go = sys.argv[1], sys.argv[2], sys.argv[3]
s = socket.create_connection(("127.0.0.1", 3128), timeout=20)
s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())
print(s.recv(4096).split(b"\r\n")[0].decode(), flush=True)
def echo(word):
    s.sendall(word)
    got = b""
    while len(got) < len(word):
        chunk = s.recv(100)
        if not chunk:
            break
        got += chunk
    print(got.decode(), flush=True)
echo(b"ping1")
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.02)
echo(b"ping2")
"#;

/// Sends one UDP datagram (a DNS-shaped query) to 127.0.0.1:PORT.
const UDP_PY: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.sendto(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x07example\x03com\x00\x00\x01\x00\x01", ("127.0.0.1", int(sys.argv[1])))
    print("sent")
except OSError as e:
    print("error", e)
"#;

/// Writes a proxied config with cell `name` and returns its path.
fn proxied(h: &Host, name: &str, allow: &[String], pins: &[&str]) -> PathBuf {
    let hosts: serde_json::Map<String, serde_json::Value> =
        pins.iter().map(|p| ((*p).to_owned(), serde_json::Value::from("127.0.0.1"))).collect();
    let cfg = serde_json::json!({
        "schemaVersion": 1,
        "cells": { name: { "network": { "mode": "proxy", "allow": allow, "hosts": hosts } } }
    });
    h.write_config(&format!("{name}.json"), &cfg.to_string())
}

fn script(h: &Host, cfg: &Path, script: &str) -> Output {
    h.run(["--config", cfg.to_str().expect("utf8"), "run", "--", "sh", "-c", script])
}

fn put(h: &Host, name: &str, text: &str) {
    std::fs::write(h.work.join(name), text).expect("write");
    h.chown_all();
}

/// `curl` through the in-cell proxy; prints one line: `[HTTP-code CONNECT-code] body`.
fn curl(args: &str) -> String {
    curl_with("", args)
}

/// [`curl`] with a command prefix such as `env -u VAR`.
fn curl_with(prefix: &str, args: &str) -> String {
    format!(
        "rm -f .body; {prefix} curl -s -m 10 -o .body -w '[%{{http_code}} %{{http_connect}}] ' {args}; \
         tr -d '\\n' < .body 2>/dev/null; echo"
    )
}

both!(allowed_hosts_pass_by_connect_plain_http_and_socks, |h| {
    let up = Upstream::start("hello-from-upstream");
    let target = format!("api.test:{}", up.port);
    let cfg = proxied(h, "net", std::slice::from_ref(&target), &["api.test"]);
    let o = script(
        h,
        &cfg,
        &[
            curl(&format!("http://{target}/")),
            curl(&format!("--proxytunnel http://{target}/")),
            curl(&format!("--socks5-hostname 127.0.0.1:1080 http://{target}/")),
        ]
        .join("; "),
    );
    let out = ok(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0], "[200 000] hello-from-upstream", "plain http:\n{out}");
    assert_eq!(lines[1], "[200 200] hello-from-upstream", "CONNECT:\n{out}");
    assert_eq!(lines[2], "[200 000] hello-from-upstream", "SOCKS5 domain:\n{out}");
    assert_eq!(up.hits(), 3);
    // Every decision is in the audit log, readable through `cell net log`.
    let log = h.run(["--config", cfg.to_str().expect("utf8"), "net", "log", "--cell", "net"]);
    let log = ok(&log);
    assert_eq!(log.lines().filter(|l| l.contains(" allow ") && l.contains(&target)).count(), 3, "{log}");
});

both!(denied_hosts_ports_and_the_empty_allowlist, |h| {
    let up = Upstream::start("secret-upstream");
    let other = Upstream::start("other-port");
    let cfg = proxied(h, "deny", &[format!("api.test:{}", up.port)], &["api.test", "evil.test"]);
    let o = script(
        h,
        &cfg,
        &[
            curl(&format!("http://evil.test:{}/", up.port)),
            curl(&format!("--proxytunnel http://evil.test:{}/", up.port)),
            curl(&format!("http://api.test:{}/", other.port)),
            curl(&format!("--socks5-hostname 127.0.0.1:1080 http://evil.test:{}/", up.port)),
        ]
        .join("; "),
    );
    let out = ok(&o);
    assert!(!out.contains("secret-upstream") && !out.contains("other-port"), "a denied request got through:\n{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with(&format!(
            "[403 000] cell-egress: denied evil.test:{p} (host is not in the allowlist); \
             rerun with --allow evil.test:{p}, or add \"evil.test:{p}\" to network.allow",
            p = up.port
        )),
        "denied plain http names the proxy, what was denied and the fix:\n{out}"
    );
    assert_eq!(lines[1], "[000 403] ", "denied CONNECT:\n{out}");
    assert!(lines[2].starts_with("[403 000] cell-egress: denied api.test") && lines[2].contains("port"), "{out}");
    assert_eq!(lines[3], "[000 000] ", "denied SOCKS5:\n{out}");
    assert_eq!(up.hits() + other.hits(), 0, "nothing reached an upstream");

    let empty = proxied(h, "empty", &[], &["api.test"]);
    let out = ok(&script(h, &empty, &curl(&format!("http://api.test:{}/", up.port))));
    assert!(out.starts_with("[403 000] cell-egress: denied"), "the empty allowlist denies:\n{out}");
    assert_eq!(up.hits(), 0);
});

both!(wildcards_match_strict_subdomains_only, |h| {
    let up = Upstream::start("wild");
    let p = up.port;
    let cfg = proxied(
        h,
        "wild",
        &[format!("*.example.test:{p}")],
        &["a.example.test", "a.b.example.test", "example.test", "badexample.test", "example.test.evil.test"],
    );
    let hosts = ["a.example.test", "a.b.example.test", "example.test", "badexample.test", "example.test.evil.test"];
    let cmd: Vec<String> = hosts.iter().map(|host| curl(&format!("http://{host}:{p}/"))).collect();
    let out = ok(&script(h, &cfg, &cmd.join("; ")));
    let codes: Vec<&str> = out.lines().map(|l| l.get(..9).unwrap_or(l)).collect();
    assert_eq!(codes, ["[200 000]", "[200 000]", "[403 000]", "[403 000]", "[403 000]"], "{out}");
});

/// Raw CONNECT requests so the proxy, not curl, parses each spelling.
fn connect_first_lines(h: &Host, cfg: &Path, targets: &[String]) -> Vec<String> {
    put(h, "raw.py", RAW_PY);
    let cmd: Vec<String> = targets
        .iter()
        .map(|t| format!("printf 'CONNECT {t} HTTP/1.1\\r\\nHost: {t}\\r\\n\\r\\n' | python3 raw.py 3128"))
        .collect();
    let out = ok(&script(h, cfg, &cmd.join("; ")));
    out.lines().map(str::to_owned).collect()
}

both!(ip_literal_spellings_are_judged_as_the_address, |h| {
    let up = Upstream::start("ip");
    let p = up.port;
    let spellings: Vec<String> = [
        "127.0.0.1",
        "127.1",
        "0x7f.0.0.1",
        "0x7f.1",
        "2130706433",
        "017700000001",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
    ]
    .iter()
    .map(|s| format!("{s}:{p}"))
    .collect();
    // Not listed: every spelling of loopback is denied.
    let deny = proxied(h, "ipdeny", &[format!("api.test:{p}")], &["api.test"]);
    for (t, line) in spellings.iter().zip(connect_first_lines(h, &deny, &spellings)) {
        assert!(line.contains("403"), "{t} was not denied: {line}");
    }
    assert_eq!(up.hits(), 0);
    // Listed once as 127.0.0.1: every spelling is the same address and passes.
    let allow = proxied(h, "ipallow", &[format!("127.0.0.1:{p}")], &[]);
    for (t, line) in spellings.iter().zip(connect_first_lines(h, &allow, &spellings)) {
        assert!(line.contains(" 200"), "{t} was not recognised as 127.0.0.1: {line}");
    }
    // Hostname parser differentials never pass.
    let tricks: Vec<String> = [
        format!("evil.test%00.api.test:{p}"),
        format!("api.test@evil.test:{p}"),
        format!("evil.test:443.api.test:{p}"),
        format!("api.test.evil.test:{p}"),
    ]
    .to_vec();
    for (t, line) in tricks.iter().zip(connect_first_lines(h, &deny, &tricks)) {
        assert!(line.contains("403") || line.contains("400"), "{t} was not refused: {line}");
    }
});

both!(names_resolving_to_private_addresses_are_denied, |h| {
    let up = Upstream::start("private");
    // `localhost` is allowed by name but resolves (through the host's /etc/hosts) to loopback.
    let cfg = proxied(h, "private", &[format!("localhost:{}", up.port)], &[]);
    let out = ok(&script(h, &cfg, &curl(&format!("--noproxy '' http://localhost:{}/", up.port))));
    assert!(out.starts_with("[403 000] cell-egress: denied localhost") && out.contains("loopback"), "{out}");
    // The fix it names is the address, not the name (a name entry never re-allows it).
    let fix = format!("127.0.0.1:{}", up.port);
    assert!(out.contains(&format!("resolves to loopback address 127.0.0.1); rerun with --allow {fix}")), "{out}");
    assert_eq!(up.hits(), 0);
    let o = h.run([
        "--config",
        cfg.to_str().expect("utf8"),
        "run",
        "--allow",
        &fix,
        "--",
        "sh",
        "-c",
        &curl(&format!("--noproxy '' http://localhost:{}/", up.port)),
    ]);
    assert_eq!(ok(&o).trim(), "[200 000] private", "the named fix did not allow it");
    assert_eq!(up.hits(), 1);
});

/// Fetches `sys.argv[1]` with urllib (which reads the proxy variables) and prints the error.
const URLLIB_PY: &str = r#"
import sys, time, urllib.request
start = time.monotonic()
try:
    urllib.request.urlopen(sys.argv[1], timeout=30)
    print("fetched")
except Exception as e:
    print("error:", e)
print("urllib took %.3f s" % (time.monotonic() - start), file=sys.stderr)
"#;

both!(without_network_proxy_clients_are_refused_at_once_with_the_fix, |h| {
    // The default cell has no network: no sidecar, no route. The proxy variables still
    // point at 127.0.0.1:3128/1080, where cell-init answers every client itself.
    let up = Upstream::start("must-not-be-reached");
    put(h, "fetch.py", URLLIB_PY);
    let p = up.port;
    let o = h.sh(&format!(
        "echo \"proxy=$HTTPS_PROXY all=$ALL_PROXY\"; \
         curl -sS -v -m 30 https://pypi.test/ 2>&1 | grep -a '^< HTTP'; \
         curl -s -m 30 -w ' [%{{http_code}}]' http://up.test:{p}/; echo; \
         curl -s -m 30 --socks5-hostname 127.0.0.1:1080 http://up.test:{p}/; echo \"socks exit $?\"; \
         curl -s -m 30 -o /dev/null https://files.test/; echo \"curl exit $?\"; \
         python3 fetch.py https://pypi.test/simple; \
         exit 3"
    ));
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    let off = |entry: &str| {
        format!(
            "cell: the network is off in this cell; allow a host with --allow {entry} (or network.allow in the config)"
        )
    };
    assert_eq!(lines[0], "proxy=http://127.0.0.1:3128 all=socks5h://127.0.0.1:1080", "{out}");
    // CONNECT: the refusal is in the status line (curl shows no body for a failed CONNECT).
    assert_eq!(lines[1].trim_end(), format!("< HTTP/1.1 403 Forbidden ({})", off("pypi.test")), "{out}");
    // Plain http: the body says it.
    assert_eq!(lines[2], off(&format!("up.test:{p}")), "{out}");
    assert_eq!(lines[3], " [403]", "{out}");
    assert_eq!(lines[4], "socks exit 97", "SOCKS5 is refused by ruleset:\n{out}");
    // An answer, not a timeout (28): the refusal came at once.
    assert_eq!(lines[5], "curl exit 56", "{out}");
    assert_eq!(
        lines[6],
        format!("error: <urlopen error Tunnel connection failed: 403 Forbidden ({})>", off("pypi.test")),
        "{out}"
    );
    assert_eq!(up.hits(), 0, "a request left the cell");
    // The command failed after refusals: cell-init says so once, with the first host's fix.
    let err = crate::support::stderr(&o);
    eprintln!("{}", err.lines().filter(|l| l.contains("took")).collect::<Vec<_>>().join("\n"));
    assert!(
        err.lines().any(|l| l
            == "cell: refused pypi.test, up.test:{p}, files.test: the network is off in this cell; allow a host with --allow pypi.test (or network.allow in the config)"
                .replace("{p}", &p.to_string())),
        "{err}"
    );
    // A command that succeeds gets no such line.
    let o = h.sh("curl -s -m 30 -o /dev/null https://pypi.test/; true");
    assert!(!crate::support::stderr(&o).contains("cell: refused"), "{}", show(&o));
});

both!(a_failed_command_names_the_denials_of_its_launch_and_the_fix, |h| {
    let up = Upstream::start("allowed");
    let p = up.port;
    put(h, "fetch.py", URLLIB_PY);
    let cfg = proxied(h, "fails", &[format!("api.test:{p}")], &["api.test", "evil.test", "other.test"]);
    // A denial of an earlier launch is not this launch's.
    let o = script(h, &cfg, &curl(&format!("http://old.test:{p}/")));
    assert!(!crate::support::stderr(&o).contains("cell: denied"), "exit 0 gets no line: {}", show(&o));
    let o = script(
        h,
        &cfg,
        &format!(
            "{}; {}; python3 fetch.py https://other.test:{p}/; exit 4",
            curl(&format!("http://api.test:{p}/")),
            curl(&format!("http://evil.test:{p}/"))
        ),
    );
    assert_eq!(o.status.code(), Some(4), "{}", show(&o));
    let out = show(&o);
    assert!(
        out.contains(&format!("rerun with --allow other.test:{p}, or add \"other.test:{p}\" to network.allow")),
        "{out}"
    );
    let err = crate::support::stderr(&o);
    let want = format!(
        "cell: denied evil.test:{p} (host is not in the allowlist), other.test:{p} (host is not in the allowlist); \
         rerun with --allow evil.test:{p} --allow other.test:{p}"
    );
    assert_eq!(err.lines().filter(|l| l.starts_with("cell: denied")).collect::<Vec<_>>(), [want.as_str()], "{err}");
    // Many: a few named, the rest counted, pointing at the log.
    let many: Vec<String> = (0..5).map(|i| curl(&format!("http://h{i}.test:{p}/"))).collect();
    let o = script(h, &cfg, &format!("{}; false", many.join("; ")));
    let err = crate::support::stderr(&o);
    let line = err.lines().find(|l| l.starts_with("cell: denied")).unwrap_or_else(|| panic!("{}", show(&o)));
    assert!(line.contains(&format!("h2.test:{p} (host is not in the allowlist) and 2 more (cell net log --cell fails); rerun with --allow h0.test:{p} --allow h1.test:{p} --allow h2.test:{p}")), "{line}");
});

both!(urls_given_as_allow_entries_name_the_host_they_meant, |h| {
    let o = h.run(["plan", "--allow", "https://pypi.test/simple", "--", "true"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let err = crate::support::stderr(&o);
    assert!(err.contains("give a host, not a URL") && err.contains("use --allow pypi.test"), "{err}");
    assert_eq!(err.matches("pypi.test").count(), 2, "the entry, then the fix once: {err}");
    let cfg = proxied(h, "url", &["git@pypi.test".to_owned()], &[]);
    let o = h.run(["--config", cfg.to_str().expect("utf8"), "plan", "--", "true"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let err = crate::support::stderr(&o);
    assert!(err.contains("network.allow[0]") && err.contains("write \"pypi.test\""), "{err}");
    assert_eq!(err.matches("\"pypi.test\"").count(), 1, "the fix is said once: {err}");
});

both!(host_header_must_match_the_uri, |h| {
    let up = Upstream::start("mismatch");
    let p = up.port;
    let cfg = proxied(h, "hosthdr", &[format!("api.test:{p}")], &["api.test"]);
    put(h, "raw.py", RAW_PY);
    let out = ok(&script(
        h,
        &cfg,
        &format!(
            "printf 'GET http://api.test:{p}/ HTTP/1.1\\r\\nHost: evil.test\\r\\n\\r\\n' | python3 raw.py 3128; \
             printf 'GET http://api.test:{p}/ HTTP/1.1\\r\\nHost: api.test:{p}\\r\\n\\r\\n' | python3 raw.py 3128"
        ),
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains(" 400") || lines[0].contains(" 403"), "mismatched Host passed: {out}");
    assert!(lines[1].contains(" 200"), "matching Host failed: {out}");
    assert_eq!(up.hits(), 1);
});

both!(socks5_carries_each_address_type, |h| {
    let up = Upstream::start("socks-v4");
    let Some(up6) = Upstream::start_on("[::1]:0", "socks-v6") else {
        crate::support::skip("socks5_carries_each_address_type (IPv6 part)", "no IPv6 loopback on this host");
        return;
    };
    let cfg = proxied(
        h,
        "socks",
        &[format!("api.test:{}", up.port), format!("127.0.0.1:{}", up.port), format!("[::1]:{}", up6.port)],
        &["api.test"],
    );
    let out = ok(&script(
        h,
        &cfg,
        &[
            curl(&format!("--socks5-hostname 127.0.0.1:1080 http://api.test:{}/", up.port)),
            curl(&format!("--noproxy '' --socks5 127.0.0.1:1080 http://127.0.0.1:{}/", up.port)),
            curl(&format!("--noproxy '' --socks5 127.0.0.1:1080 'http://[::1]:{}/'", up6.port)),
        ]
        .join("; "),
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["[200 000] socks-v4", "[200 000] socks-v4", "[200 000] socks-v6"], "domain, IPv4, IPv6:\n{out}");
});

both!(bypass_attempts_from_inside_fail, |h| {
    let up = Upstream::start("bypassed");
    let p = up.port;
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    udp.set_read_timeout(Some(std::time::Duration::from_millis(300))).expect("timeout");
    let udp_port = udp.local_addr().expect("addr").port();
    let cfg = proxied(h, "bypass", &[format!("api.test:{p}")], &["api.test", "evil.test"]);
    put(h, "udp.py", UDP_PY);
    let unset = "env -u HTTP_PROXY -u HTTPS_PROXY -u ALL_PROXY -u http_proxy -u https_proxy -u all_proxy";
    let out = ok(&script(
        h,
        &cfg,
        &[
            // No proxy variables: no resolver and no route.
            curl_with(unset, &format!("http://api.test:{p}/")),
            // Straight to the host's loopback port: the cell's loopback is its own.
            curl(&format!("--noproxy '*' http://127.0.0.1:{p}/")),
            // A resolver lookup inside: nsswitch has files only, resolv.conf no server.
            "getent hosts api.test >/dev/null 2>&1; echo getent=$?".to_owned(),
            // UDP (a DNS query) to a host port.
            format!("python3 udp.py {udp_port}"),
            // A relay inside the cell forwarding to the proxy: still judged per CONNECT.
            "socat TCP-LISTEN:9999,bind=127.0.0.1,fork,reuseaddr TCP:127.0.0.1:3128 & sleep 0.3".to_owned(),
            curl(&format!("-x http://127.0.0.1:9999 --proxytunnel http://evil.test:{p}/")),
            curl(&format!("-x http://127.0.0.1:9999 http://evil.test:{p}/")),
        ]
        .join("; "),
    ));
    assert!(!out.contains("bypassed"), "a bypass reached the upstream:\n{out}");
    assert_eq!(up.hits(), 0, "{out}");
    assert!(out.contains("getent=2"), "getent resolved something:\n{out}");
    let mut buf = [0u8; 512];
    assert!(udp.recv_from(&mut buf).is_err(), "a UDP datagram from the cell reached the host:\n{out}");
    let relayed: Vec<&str> = out.lines().rev().take(2).collect();
    assert_eq!(relayed[1], "[000 403] ", "relayed CONNECT refused by the proxy:\n{out}");
    assert!(relayed[0].starts_with("[403 000] cell-egress: denied evil.test"), "relayed request refused:\n{out}");
});

/// The runtime directory of the one running instance of `name`.
fn runtime_of(h: &Host, name: &str) -> PathBuf {
    let base = h.path("run/cell");
    let dirs: Vec<PathBuf> = std::fs::read_dir(&base)
        .expect("runtime base")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&format!("{name}-"))))
        .collect();
    assert_eq!(dirs.len(), 1, "one running instance of {name}: {dirs:?}");
    dirs.into_iter().next().expect("one")
}

both!(a_dead_proxy_means_no_way_out, |h| {
    let up = Upstream::start("alive");
    let p = up.port;
    let cfg = proxied(h, "killed", &[format!("api.test:{p}")], &["api.test"]);
    let cmd = format!(
        "{}; touch ready; while [ ! -e go ]; do sleep 0.02; done; {}; {}",
        curl(&format!("http://api.test:{p}/")),
        curl(&format!("http://api.test:{p}/")),
        curl(&format!("--noproxy '*' http://api.test:{p}/")),
    );
    let child = h
        .cell()
        .args(["--config", cfg.to_str().expect("utf8"), "run", "--", "sh", "-c", &cmd])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_for(&h.work.join("ready"));
    let runtime = runtime_of(h, "killed");
    let pid: i32 = std::fs::read_to_string(runtime.join("egress.pid")).expect("pid file").trim().parse().expect("pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).expect("kill egress");
    std::thread::sleep(std::time::Duration::from_millis(100));
    std::fs::write(h.work.join("go"), "").expect("go");
    let o = child.wait_with_output().expect("wait");
    let out = ok(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "[200 000] alive", "before the kill: {out}");
    assert!(!lines[1].contains("alive") && !lines[2].contains("alive"), "a request got out without the proxy:\n{out}");
    assert_eq!(up.hits(), 1);
    assert!(!runtime.exists(), "the runtime directory was removed when the cell ended");
});

both!(a_restarted_proxy_keeps_the_reloaded_allowlist, |h| {
    // `cell status --restart egress` starts a new proxy; it must enforce the allowlist in
    // force (a reload since the launch narrowed it), never the launch's wider one, and the
    // cell reaches the new proxy at the same address.
    let up = Upstream::start("after-restart");
    let p = up.port;
    let both = [format!("api.test:{p}"), format!("other.test:{p}")];
    let cfg = proxied(h, "rst", &both, &["api.test", "other.test"]);
    let cmd = format!(
        "{}; touch ready; while [ ! -e go ]; do sleep 0.02; done; {}; {}",
        curl(&format!("http://api.test:{p}/")),
        curl(&format!("http://api.test:{p}/")),
        curl(&format!("--proxytunnel http://other.test:{p}/")),
    );
    let c = cfg.to_str().expect("utf8");
    let child = h
        .cell()
        .args(["--config", c, "run", "--", "sh", "-c", &cmd])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_for(&h.work.join("ready"));
    let pid = |o: &Output| -> u64 {
        let v: serde_json::Value = serde_json::from_str(ok(o).trim()).unwrap_or_else(|e| panic!("{e}: {}", show(o)));
        assert_eq!(v["sidecars"][0]["name"], "egress", "{v}");
        assert_eq!(v["sidecars"][0]["running"], true, "{v}");
        v["sidecars"][0]["pid"].as_u64().expect("pid")
    };
    let first = pid(&h.run(["--config", c, "status", "--cell", "rst", "--json"]));
    // Narrowed to other.test, then restarted.
    proxied(h, "rst", &both[1..], &["api.test", "other.test"]);
    let o = h.run(["--config", c, "net", "reload", "--cell", "rst"]);
    assert!(ok(&o).contains("reloaded"), "{}", show(&o));
    let second = pid(&h.run(["--config", c, "status", "--cell", "rst", "--restart", "egress", "--json"]));
    assert_ne!(first, second, "not restarted");
    assert!(!Path::new(&format!("/proc/{first}")).exists(), "the old proxy still runs (or was not reaped)");
    std::fs::write(h.work.join("go"), "").expect("go");
    let o = child.wait_with_output().expect("wait");
    let out = ok(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0], "[200 000] after-restart", "before: {out}");
    assert!(
        lines[1].starts_with("[403 000] cell-egress: denied api.test"),
        "the restarted proxy let through what the reload removed:\n{out}"
    );
    assert_eq!(lines[2], "[200 200] after-restart", "the cell did not reach the restarted proxy:\n{out}");
    assert_eq!(up.hits(), 2);
});

both!(reload_applies_a_new_allowlist_and_keeps_open_tunnels, |h| {
    let echo = echo_server();
    let up = Upstream::start("second");
    put(h, "tunnel.py", TUNNEL_PY);
    let before = proxied(h, "reload", &[format!("api.test:{echo}")], &["api.test", "other.test"]);
    let cmd = format!(
        "python3 tunnel.py api.test:{echo} ready go; {}; {}",
        curl(&format!("--proxytunnel http://api.test:{echo}/")),
        curl(&format!("http://other.test:{}/", up.port)),
    );
    let child = h
        .cell()
        .args(["--config", before.to_str().expect("utf8"), "run", "--", "sh", "-c", &cmd])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_for(&h.work.join("ready"));
    // The same file now allows only other.test; `cell net reload` applies it.
    proxied(h, "reload", &[format!("other.test:{}", up.port)], &["api.test", "other.test"]);
    let o = h.run(["--config", before.to_str().expect("utf8"), "net", "reload", "--cell", "reload"]);
    assert!(ok(&o).contains("reloaded"), "{}", show(&o));
    std::thread::sleep(std::time::Duration::from_millis(200));
    std::fs::write(h.work.join("go"), "").expect("go");
    let o = child.wait_with_output().expect("wait");
    let out = ok(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains(" 200"), "tunnel opened: {out}");
    assert_eq!(lines[1], "ping1");
    assert_eq!(lines[2], "ping2", "the open tunnel survived the reload:\n{out}");
    assert_eq!(lines[3], "[000 403] ", "api.test is no longer allowed:\n{out}");
    assert_eq!(lines[4], "[200 000] second", "other.test is now allowed:\n{out}");
});

both!(garbage_to_the_proxy_is_refused_and_it_stays_up, |h| {
    let up = Upstream::start("still-up");
    let p = up.port;
    let cfg = proxied(h, "garbage", &[format!("api.test:{p}")], &["api.test"]);
    put(h, "raw.py", RAW_PY);
    let out = ok(&script(
        h,
        &cfg,
        &format!(
            "printf 'this is not http\\r\\n\\r\\n' | python3 raw.py 3128; \
             head -c 100000 /dev/zero | tr '\\\\0' a | python3 raw.py 3128; {}",
            curl(&format!("http://api.test:{p}/"))
        ),
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains(" 400"), "garbage: {out}");
    assert!(lines[1].contains(" 431") || lines[1].contains(" 400"), "oversized head: {out}");
    assert_eq!(lines[2], "[200 000] still-up", "the proxy served the next client: {out}");
});

both!(a_proxy_that_cannot_start_stops_the_cell, |h| {
    let fake = h.path("broken-egress");
    std::fs::write(&fake, "#!/bin/sh\necho 'cell-egress: cannot bind' >&2\nexit 1\n").expect("write");
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    h.chown_all();
    let cfg = proxied(h, "noproxy", &["api.test".to_owned()], &[]);
    let o = h
        .cell()
        .env("CELL_EGRESS", &fake)
        .args(["--config", cfg.to_str().expect("utf8"), "run", "--", "sh", "-c", "touch ran"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert!(crate::support::stderr(&o).contains("did not become ready"), "{}", show(&o));
    assert!(!h.work.join("ran").exists(), "the command ran without its proxy");
    let leftovers: Vec<_> = std::fs::read_dir(h.path("run/cell")).map(|d| d.flatten().collect()).unwrap_or_default();
    assert!(leftovers.is_empty(), "runtime directory left behind: {leftovers:?}");
});

both!(plan_shows_the_policy_and_allow_flags_add_to_it, |h| {
    let cfg = proxied(h, "shown", &["api.test:8443".to_owned()], &["api.test"]);
    let o = h.run(["--config", cfg.to_str().expect("utf8"), "plan", "--allow", "*.extra.test", "--", "true"]);
    let text = ok(&o);
    assert!(text.contains("allowed: api.test:8443, *.extra.test"), "{text}");
    assert!(text.contains("pin api.test -> 127.0.0.1"), "{text}");
    let o = h.run(["--config", cfg.to_str().expect("utf8"), "plan", "--allow", "*", "--", "true"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let o = h.run(["plan", "--network", "none", "--allow", "a.test", "--", "true"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    // --allow alone turns the proxy on for the default cell.
    let o = h.run(["plan", "--json", "--allow", "a.test", "--", "true"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v["network"]["mode"], "proxy");
    assert_eq!(v["env"]["HTTPS_PROXY"], "http://127.0.0.1:3128");
});

both!(reload_of_an_agent_cell_keeps_its_preset_hosts, |h| {
    // An agent's preset hosts are added at launch; a reload must compute the same policy.
    let cfg = h.write_config(
        "agent.json",
        r#"{"schemaVersion":1,"cells":{"ag":{"agent":{"kind":"claude","command":["sh","-c","touch ready; sleep 6"]}}}}"#,
    );
    let child = h
        .cell()
        .args(["--config", cfg.to_str().expect("utf8"), "claude", "--cell", "ag"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_for(&h.work.join("ready"));
    let o = h.run(["--config", cfg.to_str().expect("utf8"), "net", "reload", "--cell", "ag"]);
    let out = ok(&o);
    assert!(out.contains("reloaded") && out.contains("api.anthropic.com"), "the reload dropped the preset: {out}");
    let runtime = h.path("run/cell");
    let policy: String = std::fs::read_dir(&runtime)
        .expect("runtime")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("ag-"))
        .filter_map(|e| std::fs::read_to_string(e.path().join("egress-policy.json")).ok())
        .collect();
    assert!(policy.contains("api.anthropic.com"), "the proxy's policy after the reload: {policy}");
    let o = child.wait_with_output().expect("wait");
    assert!(o.status.success(), "{}", show(&o));
});
