//! A cell without network: the proxy ports answer every client at once with a refusal
//! that says the network is off and how to allow a host, so a proxy-aware tool fails in
//! milliseconds with the fix in its error instead of retrying name lookups for a minute.
//!
//! Nothing is forwarded anywhere: there is no sidecar and no route, these threads only
//! read what a client sends and answer it. HTTP clients get a 403 whose status line and
//! body carry the message (a failed CONNECT often shows only the status line); SOCKS5
//! clients get "connection not allowed by ruleset" (SOCKS has no room for text).

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Duration;

use anyhow::Context as _;
use cell_egress::policy::{parse_authority, Denial};

/// Stack size of the answering threads: they hold one small buffer.
const THREAD_STACK: usize = 64 * 1024;
/// A request head longer than this is answered without reading the rest.
const MAX_HEAD: usize = 16 * 1024;
/// How long a client gets to send its request (and, after the answer, to stop sending).
const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// The refusal for a client whose target is `entry` (`None`: unknown).
#[must_use]
pub fn message(entry: Option<&str>) -> String {
    format!(
        "cell: the network is off in this cell; allow a host with --allow {} (or network.allow in the config)",
        entry.unwrap_or("HOST")
    )
}

/// How many distinct refused targets are kept for [`summary`] (it names three): a cell
/// that sends a million distinct names costs pid 1 neither memory nor time.
const KEPT_TARGETS: usize = 16;

/// What was refused so far: how many connections, and the first distinct allow entries of
/// their targets (SOCKS5 and unreadable requests have none).
struct Refused {
    count: usize,
    hosts: Vec<String>,
}

impl Refused {
    fn note(&mut self, entry: Option<String>) {
        self.count = self.count.saturating_add(1);
        if let Some(e) = entry {
            if self.hosts.len() < KEPT_TARGETS && !self.hosts.contains(&e) {
                self.hosts.push(e);
            }
        }
    }

    fn summary(&self) -> Option<String> {
        if self.count == 0 {
            return None;
        }
        let mut shown = self.hosts.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
        if self.hosts.len() > 3 {
            let more = if self.hosts.len() == KEPT_TARGETS {
                "more".to_owned()
            } else {
                format!("{} more", self.hosts.len() - 3)
            };
            shown.push_str(&format!(" and {more}"));
        }
        let what = if self.hosts.is_empty() { format!("{} connection(s)", self.count) } else { shown };
        Some(format!(
            "cell: refused {what}: the network is off in this cell; allow a host with --allow {} (or network.allow in the config)",
            self.hosts.first().map_or("HOST", String::as_str)
        ))
    }
}

static REFUSED: std::sync::Mutex<Refused> = std::sync::Mutex::new(Refused { count: 0, hosts: Vec::new() });

fn note(entry: Option<String>) {
    REFUSED.lock().unwrap_or_else(std::sync::PoisonError::into_inner).note(entry);
}

/// One line for a command that failed after refusals (many tools show only `403` for a
/// failed CONNECT): which hosts were refused and how to allow them. `None` when nothing
/// was refused.
#[must_use]
pub fn summary() -> Option<String> {
    REFUSED.lock().unwrap_or_else(std::sync::PoisonError::into_inner).summary()
}

/// The refusal ports, bound on 127.0.0.1 before the command starts. `cell-init`'s main
/// loop waits on them together with its signals (no thread to start on the way to the
/// command) and hands each ready one to [`Refusals::accept`].
pub struct Refusals {
    /// Non-blocking: a client gone between the poll and the accept never stalls pid 1.
    listeners: Vec<TcpListener>,
    /// Listeners that reported an error or hang-up: no longer polled (poll would report
    /// them again at once, for ever, and pid 1 would spin).
    broken: std::cell::RefCell<Vec<bool>>,
}

/// Binds every port on 127.0.0.1.
///
/// # Errors
/// When a port cannot be bound.
pub fn bind(ports: &[u16]) -> anyhow::Result<Refusals> {
    let listeners = ports
        .iter()
        .map(|port| {
            let l = TcpListener::bind(("127.0.0.1", *port))
                .with_context(|| format!("cannot listen on 127.0.0.1:{port} inside the cell"))?;
            l.set_nonblocking(true).with_context(|| format!("cannot make 127.0.0.1:{port} non-blocking"))?;
            Ok(l)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let broken = std::cell::RefCell::new(vec![false; listeners.len()]);
    Ok(Refusals { listeners, broken })
}

impl Refusals {
    /// The listeners still working, with their numbers, to poll for clients.
    pub fn fds(&self) -> Vec<(usize, std::os::fd::BorrowedFd<'_>)> {
        use std::os::fd::AsFd as _;
        let broken = self.broken.borrow();
        self.listeners.iter().enumerate().filter(|(i, _)| !broken[*i]).map(|(i, l)| (i, l.as_fd())).collect()
    }

    /// Answers what poll reported on listener `i`: takes the clients waiting (each answered
    /// on a thread of its own; an accepted connection blocks, with timeouts), or sets aside
    /// a listener in error.
    pub fn ready(&self, i: usize, events: nix::poll::PollFlags) {
        use nix::poll::PollFlags;
        if events.intersects(PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL) {
            if let Some(b) = self.broken.borrow_mut().get_mut(i) {
                *b = true;
            }
            return;
        }
        if events.intersects(PollFlags::POLLIN) {
            self.accept(i);
        }
    }

    /// Takes the clients waiting on listener `i`.
    fn accept(&self, i: usize) {
        let Some(listener) = self.listeners.get(i) else { return };
        // A bounded number per wake-up: the signals are not kept waiting by a flood.
        for _ in 0..64 {
            match listener.accept() {
                Ok((client, _)) => {
                    if client.set_nonblocking(false).is_err() {
                        continue;
                    }
                    let _ = std::thread::Builder::new().stack_size(THREAD_STACK).spawn(move || answer(client));
                }
                Err(_) => return,
            }
        }
    }
}

fn answer(mut c: TcpStream) {
    let _ = c.set_read_timeout(Some(READ_TIMEOUT));
    let _ = c.set_write_timeout(Some(READ_TIMEOUT));
    let _ = c.set_nodelay(true);
    let mut first = [0u8; 1];
    if c.read_exact(&mut first).is_err() {
        return;
    }
    if first[0] == 5 {
        socks(&mut c);
    } else {
        http(&mut c, first[0]);
    }
    let _ = c.shutdown(Shutdown::Write);
    // Read what the client still sends (a request body) so that closing does not reset
    // the connection before it has read the answer.
    let mut sink = [0u8; 4096];
    let mut left = 1usize << 20;
    while let Ok(n @ 1..) = c.read(&mut sink) {
        left = left.saturating_sub(n);
        if left == 0 {
            break;
        }
    }
}

/// SOCKS5: accept "no authentication", read the request, refuse it (0x02).
fn socks(c: &mut TcpStream) {
    let mut n = [0u8; 1];
    if c.read_exact(&mut n).is_err() {
        return;
    }
    let mut methods = vec![0u8; usize::from(n[0])];
    if c.read_exact(&mut methods).is_err() || c.write_all(&[5, 0]).is_err() {
        return;
    }
    let mut req = [0u8; 4];
    if c.read_exact(&mut req).is_err() {
        return;
    }
    let addr_len = match req[3] {
        1 => 4,
        4 => 16,
        3 => {
            let mut l = [0u8; 1];
            if c.read_exact(&mut l).is_err() {
                return;
            }
            usize::from(l[0])
        }
        _ => 0,
    };
    let mut rest = vec![0u8; addr_len + 2];
    let _ = c.read_exact(&mut rest);
    note(None);
    let _ = c.write_all(&[5, 2, 0, 1, 0, 0, 0, 0, 0, 0]);
}

/// HTTP: read the request head, answer 403 with the message.
fn http(c: &mut TcpStream, first: u8) {
    let mut head = vec![first];
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") && head.len() < MAX_HEAD
    {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let entry = target_entry(&head);
    let msg = message(entry.as_deref());
    note(entry);
    let resp = format!(
        "HTTP/1.1 403 Forbidden ({msg})\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}\n",
        msg.len() + 1
    );
    let _ = c.write_all(resp.as_bytes());
}

/// The allow entry for the target of a request head (CONNECT authority or absolute-form
/// `http://` URI), canonical and so safe to echo; `None` when there is none.
fn target_entry(head: &[u8]) -> Option<String> {
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    let mut words = line.split(' ');
    let (method, target) = (words.next()?, words.next()?);
    let (authority, default_port) = if method == "CONNECT" {
        (target, None)
    } else {
        let rest = target.get(..7).filter(|s| s.eq_ignore_ascii_case("http://")).map(|_| &target[7..])?;
        (&rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())], Some(80))
    };
    if authority.contains('@') {
        return None;
    }
    let (host, port) = parse_authority(authority, default_port).ok()?;
    Denial::HostNotAllowed.allow_entry(&host, port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_become_allow_entries() {
        for (head, entry) in [
            (&b"CONNECT PyPI.org:443 HTTP/1.1\r\nHost: pypi.org:443\r\n\r\n"[..], Some("pypi.org")),
            (b"CONNECT pypi.org:8443 HTTP/1.1\r\n\r\n", Some("pypi.org:8443")),
            (b"GET http://example.test/x HTTP/1.1\r\n\r\n", Some("example.test")),
            (b"GET http://[::1]:9000/ HTTP/1.1\r\n\r\n", Some("[::1]:9000")),
            (b"GET /relative HTTP/1.1\r\n\r\n", None),
            (b"GET http://u@example.test/ HTTP/1.1\r\n\r\n", None),
            (b"CONNECT evil\x1b[2J.test:443 HTTP/1.1\r\n\r\n", None),
            (b"\xff\xfe", None),
        ] {
            assert_eq!(target_entry(head).as_deref(), entry, "{}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn many_distinct_targets_are_counted_not_kept() {
        // Found by a tester: every target was kept and the summary compared each with all
        // the others, so 100,000 distinct names held pid 1 for minutes after the command
        // failed (deaf to the launcher's SIGTERM). Now a few are kept and all are counted.
        let mut r = Refused { count: 0, hosts: Vec::new() };
        for i in 0..200_000 {
            r.note(Some(format!("h{i}.test")));
            r.note(None);
        }
        assert_eq!(r.count, 400_000);
        assert_eq!(r.hosts.len(), KEPT_TARGETS);
        let line = r.summary().unwrap();
        assert!(line.starts_with("cell: refused h0.test, h1.test, h2.test and more: "), "{line}");
        let mut few = Refused { count: 0, hosts: Vec::new() };
        for h in ["a.test", "b.test", "a.test", "c.test", "d.test"] {
            few.note(Some(h.to_owned()));
        }
        assert!(few.summary().unwrap().starts_with("cell: refused a.test, b.test, c.test and 1 more: "));
    }

    #[test]
    fn a_listener_in_error_is_no_longer_polled() {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsRawFd as _;
        let refusals = bind(&[0, 0]).unwrap();
        // A listener shut down reports a hang-up at once, on every poll.
        nix::sys::socket::shutdown(refusals.listeners[0].as_raw_fd(), nix::sys::socket::Shutdown::Both).unwrap();
        let fds = refusals.fds();
        let mut polled: Vec<PollFd> = fds.iter().map(|(_, fd)| PollFd::new(*fd, PollFlags::POLLIN)).collect();
        poll(&mut polled, PollTimeout::ZERO).unwrap();
        let events: Vec<PollFlags> = polled.iter().map(|p| p.revents().unwrap()).collect();
        drop(polled);
        assert!(events[0].contains(PollFlags::POLLHUP), "{events:?}");
        for ((i, _), ev) in fds.iter().zip(&events) {
            refusals.ready(*i, *ev);
        }
        drop(fds);
        let left: Vec<usize> = refusals.fds().iter().map(|(i, _)| *i).collect();
        assert_eq!(left, [1], "the broken listener is set aside, the other still polled");
    }

    #[test]
    fn every_client_is_refused_at_once() {
        let refusals = bind(&[0]).unwrap();
        let addr = refusals.listeners[0].local_addr().unwrap();
        // What cell-init's loop does when the listener is ready (here: whenever it looks).
        std::thread::spawn(move || loop {
            refusals.ready(0, nix::poll::PollFlags::POLLIN);
            std::thread::sleep(Duration::from_millis(2));
        });
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"CONNECT pypi.org:443 HTTP/1.1\r\n\r\n").unwrap();
        let mut got = String::new();
        c.read_to_string(&mut got).unwrap();
        let msg = message(Some("pypi.org"));
        assert!(got.starts_with(&format!("HTTP/1.1 403 Forbidden ({msg})\r\n")), "{got}");
        assert!(got.ends_with(&format!("\r\n\r\n{msg}\n")), "{got}");

        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&[5, 1, 0]).unwrap();
        let mut greet = [0u8; 2];
        s.read_exact(&mut greet).unwrap();
        assert_eq!(greet, [5, 0]);
        s.write_all(&[5, 1, 0, 3, 8]).unwrap();
        s.write_all(b"pypi.org\x01\xbb").unwrap();
        let mut reply = Vec::new();
        s.read_to_end(&mut reply).unwrap();
        assert_eq!(&reply[..2], &[5, 2]);
        let line = summary().unwrap();
        assert!(line.starts_with("cell: refused pypi.org: the network is off"), "{line}");
        assert!(line.contains("--allow pypi.org"), "{line}");
    }
}
