use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Proxy {
    pub child: Child,
    /// Keeps the runtime dir alive.
    pub _dir: tempfile::TempDir,
    pub sock: PathBuf,
    pub policy: PathBuf,
    pub audit: PathBuf,
    pub stderr: PathBuf,
}

fn pipe() -> (File, File) {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid 2-element array.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2");
    // SAFETY: freshly created, owned here.
    unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) }
}

impl Proxy {
    pub fn start(policy: &str) -> Self {
        Self::try_start(policy).unwrap_or_else(|e| panic!("proxy did not start: {e}"))
    }

    /// Start the binary; Err(stderr) when it exits before signalling readiness.
    pub fn try_start(policy: &str) -> Result<Self, String> {
        Self::try_start_with_audit(policy, None)
    }

    /// As [`Proxy::try_start`], with the audit log at `audit` instead of the runtime dir.
    pub fn try_start_with_audit(policy: &str, audit: Option<&std::path::Path>) -> Result<Self, String> {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("egress.sock");
        let policy_path = dir.path().join("policy.json");
        let audit = audit.map_or_else(|| dir.path().join("audit.jsonl"), std::path::Path::to_path_buf);
        let stderr = dir.path().join("stderr.log");
        std::fs::write(&policy_path, policy).unwrap();
        let (mut r, w) = pipe();
        let wfd = w.as_raw_fd();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cell-egress"));
        cmd.arg("--listen")
            .arg(&sock)
            .arg("--policy")
            .arg(&policy_path)
            .arg("--audit")
            .arg(&audit)
            .args(["--cell", "test-cell", "--ready-fd", "3"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&stderr).unwrap());
        // SAFETY: dup2 is async-signal-safe; fd 3 in the child is the pipe's write end
        // without CLOEXEC.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(wfd, 3) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().unwrap();
        drop(w);
        let mut ready = String::new();
        r.read_to_string(&mut ready).unwrap();
        if ready != "ready\n" {
            let _ = child.kill();
            let status = child.wait().unwrap();
            assert!(!sock.exists(), "socket left behind after a failed start");
            let err = std::fs::read_to_string(&stderr).unwrap_or_default();
            return Err(format!("{status}: {err}"));
        }
        Ok(Self { child, _dir: dir, sock, policy: policy_path, audit, stderr })
    }

    pub fn connect(&self) -> UnixStream {
        let s = UnixStream::connect(&self.sock).unwrap();
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        s
    }

    pub fn signal(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: plain kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    }

    pub fn audit_lines(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&self.audit).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad audit line {l:?}: {e}"))).collect()
    }

    /// Wait until an audit line satisfies `pred`.
    pub fn wait_audit(&self, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            if let Some(v) = self.audit_lines().into_iter().find(&pred) {
                return v;
            }
            assert!(Instant::now() < deadline, "audit line never appeared: {:#?}", self.audit_lines());
            thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An echo server on `addr` (port 0 = any); returns its address.
pub fn echo_server(addr: &str) -> SocketAddr {
    let l = TcpListener::bind(addr).unwrap();
    let a = l.local_addr().unwrap();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            thread::spawn(move || {
                let mut r = s.try_clone().unwrap();
                let _ = std::io::copy(&mut r, &mut s);
            });
        }
    });
    a
}

/// A one-response-per-connection HTTP server; sends each request (head + body) it got.
pub fn http_server() -> (SocketAddr, mpsc::Receiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            let tx = tx.clone();
            thread::spawn(move || {
                s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut req = String::new();
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                    req.push_str(&line);
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                req.push_str(&String::from_utf8_lossy(&body));
                let _ = tx.send(req);
                let mut w = s;
                let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
            });
        }
    });
    (a, rx)
}

/// A port on 127.0.0.1 with nothing listening.
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Read an HTTP response head (and what follows up to EOF or `limit` bytes).
pub fn read_response(s: &mut UnixStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let code = head.split(' ').nth(1).unwrap().parse().unwrap();
            let rest = String::from_utf8_lossy(&buf[end + 4..]).into_owned();
            return (code, format!("{head}\r\n\r\n{rest}"));
        }
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "EOF before a response head: {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Read a whole response to EOF.
pub fn read_all(s: &mut UnixStream) -> String {
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// CONNECT through the proxy; returns the status code and the stream.
pub fn connect(p: &Proxy, authority: &str) -> (u16, String, UnixStream) {
    let mut s = p.connect();
    write!(s, "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").unwrap();
    let (code, text) = read_response(&mut s);
    (code, text, s)
}

pub fn round_trip(s: &mut UnixStream, msg: &[u8]) {
    s.write_all(msg).unwrap();
    let mut back = vec![0; msg.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, msg);
}

/// Keep a TCP stream alive in tests that need one.
#[allow(dead_code)]
pub fn tcp(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).unwrap()
}

pub fn policy(allow: &[String]) -> String {
    serde_json::json!({ "allow": allow }).to_string()
}
