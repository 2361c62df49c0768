//! The host's terminal, host side: a cell never gets it. When one of the launcher's
//! standard streams is a terminal, the cell gets a pseudo-terminal of its own (opened here;
//! the slave becomes the cell's terminal, the master stays with the launcher), and the
//! launcher relays bytes both ways and the window size.
//!
//! The model is sudo's `use_pty`: the host terminal is put in raw mode while the launcher is
//! in the foreground, so Ctrl-C, Ctrl-Z and Ctrl-\ reach the pty's line discipline, which
//! signals the cell's foreground process group. When the command stops, `cell-init` says so
//! on the job descriptor; the launcher then gives the host terminal its settings back and
//! stops itself with the same signal, and on SIGCONT takes raw mode again (only when it is
//! the terminal's foreground process group) and resumes the command. A launcher in the
//! background never reads the host terminal nor changes its mode.
//!
//! The suspend key is the way out even from a cell that ignores it: after the host
//! terminal's suspend key (its VSUSP, usually Ctrl-Z) the launcher reads nothing more from
//! the host terminal until it knows what became of it. When `cell-init` reports the command
//! stopped (and the pty's foreground group is stopped indeed), or when a job shell in the
//! cell stopped a job of its own (the foreground group changed and the old one is all
//! stopped or gone), it goes on as above; when neither happened within
//! [`SUSPEND_GRACE`], the launcher stops itself as for a real stop, with the cell running
//! on, and `fg` gives the cell the terminal back.
//!
//! The cell's output goes through [`crate::host::ttyout`]: OSC 52 clipboard queries are
//! dropped. When the cell ends, answers to its terminal queries still on their way are
//! discarded and the terminal modes a cell may leave on are reset.

use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, OwnedFd, RawFd};

use anyhow::Context as _;
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::sys::termios::{self, SetArg, Termios};
use nix::unistd::Pid;

use crate::host::ttyout::{self, TtyOut};

/// How long after the suspend key the cell has to stop (or stop a job of its own) before the
/// launcher stops itself anyway.
pub const SUSPEND_GRACE: std::time::Duration = std::time::Duration::from_millis(300);
/// How often the launcher looks at the cell's processes meanwhile.
const SUSPEND_TICK_MS: u16 = 20;
/// After a cell that asked its terminal something ends: how long the host terminal must
/// stay quiet before its input is flushed (the answers are discarded meanwhile), and the
/// longest this takes.
const ANSWER_QUIET_MS: u16 = 50;
const ANSWER_WAIT_MAX: std::time::Duration = std::time::Duration::from_millis(500);

/// The standard descriptors, by index.
const STDIO: [RawFd; 3] = [0, 1, 2];

/// Descriptor 0, open for the whole launch.
#[must_use]
pub fn stdin() -> BorrowedFd<'static> {
    // SAFETY: the launcher never closes its standard input.
    unsafe { BorrowedFd::borrow_raw(STDIO[0]) }
}

/// Which of descriptors 0, 1 and 2 are terminals.
#[must_use]
pub fn stdio_terminals() -> [bool; 3] {
    // SAFETY: descriptors 0-2 are borrowed only for the isatty call.
    STDIO.map(|fd| nix::unistd::isatty(unsafe { BorrowedFd::borrow_raw(fd) }).unwrap_or(false))
}

/// Whether any of descriptors 0, 1 and 2 is a terminal.
#[must_use]
pub fn stdio_has_terminal() -> bool {
    stdio_terminals().iter().any(|t| *t)
}

/// A terminal's usual line mode: canonical input, echo, signals, newline translation.
fn cooked(t: &mut Termios) {
    use termios::{InputFlags as I, LocalFlags as L, OutputFlags as O, SpecialCharacterIndices as C};
    t.local_flags |= L::ICANON | L::ECHO | L::ECHOE | L::ECHOK | L::ECHOCTL | L::ECHOKE | L::ISIG | L::IEXTEN;
    t.input_flags |= I::ICRNL;
    t.input_flags &= !(I::INLCR | I::IGNCR);
    t.output_flags |= O::OPOST | O::ONLCR;
    t.control_chars[C::VMIN as usize] = 1;
    t.control_chars[C::VTIME as usize] = 0;
}

/// The window size of a terminal.
fn window_size(fd: RawFd) -> Option<nix::pty::Winsize> {
    let mut ws = nix::pty::Winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes one winsize into the struct we pass.
    let rc = unsafe { nix::libc::ioctl(fd, nix::libc::TIOCGWINSZ, &raw mut ws) };
    (rc == 0).then_some(ws)
}

/// The host side of a cell's pseudo-terminal. Dropping it gives the host terminal back the
/// settings it had, whatever happened inside.
pub struct Pty {
    /// The host terminal (the first of 0-2 that is one): its settings and window size.
    host: RawFd,
    /// Which of 0-2 are terminals (those get the slave; the others pass through).
    ttys: [bool; 3],
    /// Where the cell's terminal output goes: stdout, else stderr, else stdin.
    out: RawFd,
    master: OwnedFd,
    slave: Option<OwnedFd>,
    /// The host terminal's settings from before raw mode, while it is raw.
    saved: Option<Termios>,
    /// Keys read from the host but not yet taken by the pty.
    pending: Vec<u8>,
    /// Set once the host input ended or failed for good.
    input_closed: bool,
    /// The cell's output on its way to the host terminal.
    filter: TtyOut,
    scratch: Vec<u8>,
    /// After the suspend key: until when the cell has to stop, its foreground group then,
    /// and what was read after the key (relayed only if the cell keeps the terminal).
    watch: Option<Watch>,
}

/// The launcher waits to see what became of a suspend key.
struct Watch {
    deadline: std::time::Instant,
    group: Option<Pid>,
    after: Vec<u8>,
}

/// What became of a suspend key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuspendKey {
    /// Not decided yet (or no key pending).
    Open,
    /// A job shell in the cell stopped a job of its own: the cell keeps the terminal.
    TakenByCell,
    /// Nothing stopped in time: the launcher must stop itself.
    Ignored,
}

impl Pty {
    /// Opens a pseudo-terminal for the cell when one of 0-2 is a terminal; `None` otherwise
    /// (pipes and files stay as they are). The pty starts with the host terminal's settings
    /// and window size.
    ///
    /// # Errors
    /// When no pseudo-terminal can be opened.
    pub fn open() -> anyhow::Result<Option<Self>> {
        let ttys = stdio_terminals();
        let Some(host) = (0..3).find(|i| ttys[*i]).map(|i| STDIO[i]) else { return Ok(None) };
        // SAFETY: `host` is one of 0-2, open for the whole launch.
        let borrowed = unsafe { BorrowedFd::borrow_raw(host) };
        let mut settings = termios::tcgetattr(borrowed).ok();
        let foreground = match nix::unistd::tcgetpgrp(borrowed) {
            Ok(group) => group == nix::unistd::getpgrp(),
            Err(e) => e == Errno::ENOTTY,
        };
        if let (Some(t), false) = (settings.as_mut(), foreground) {
            // Started in the background: the host terminal is in whatever mode the
            // foreground program chose (the shell's line editor: no echo, not canonical).
            cooked(t);
        }
        let size = window_size(host);
        let pair = nix::pty::openpty(size.as_ref(), settings.as_ref())
            .context("cannot open a pseudo-terminal for the cell (is /dev/pts mounted?)")?;
        fcntl(&pair.master, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).context("cannot set close-on-exec on the pty")?;
        // Parked high, like every descriptor moved into the child, so no move onto a fixed
        // number overwrites it.
        let slave = crate::sys::park(&pair.slave)?;
        drop(pair.slave);
        let flags = OFlag::from_bits_truncate(fcntl(&pair.master, FcntlArg::F_GETFL).context("fcntl on the pty")?);
        fcntl(&pair.master, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).context("fcntl on the pty")?;
        let out = [1, 2, 0].into_iter().find(|i| ttys[*i]).map_or(host, |i| STDIO[i]);
        Ok(Some(Self {
            host,
            ttys,
            out,
            master: pair.master,
            slave: Some(slave),
            saved: None,
            pending: Vec::new(),
            input_closed: !ttys[0],
            filter: TtyOut::new(),
            scratch: Vec::new(),
            watch: None,
        }))
    }

    /// The `(source, target)` descriptor moves that give the cell the slave on each
    /// standard stream that is a terminal; for the child's pre-exec. The slave must stay
    /// open until the child has started: then call [`Pty::close_slave`].
    #[must_use]
    pub fn slave_moves(&self) -> Vec<(RawFd, RawFd)> {
        let Some(slave) = &self.slave else { return Vec::new() };
        (0..3).filter(|i| self.ttys[*i]).map(|i| (slave.as_raw_fd(), STDIO[i])).collect()
    }

    /// Closes the launcher's copy of the slave: once the cell's copies close too, the
    /// master reports the end.
    pub fn close_slave(&mut self) {
        self.slave = None;
    }

    /// The launcher's slave descriptor, handed over (to whoever starts the child that gets
    /// it, which holds it until then): the pty keeps none.
    pub fn take_slave(&mut self) -> Option<OwnedFd> {
        self.slave.take()
    }

    /// The master, to poll.
    #[must_use]
    pub fn master(&self) -> BorrowedFd<'_> {
        self.master.as_fd()
    }

    /// Whether the launcher's process group is the host terminal's foreground group. A
    /// terminal that is not the launcher's controlling terminal (`setsid cell ...`) has no
    /// job control to respect: the launcher counts as in the foreground.
    #[must_use]
    pub fn foreground(&self) -> bool {
        match nix::unistd::tcgetpgrp(self.host_fd()) {
            Ok(group) => group == nix::unistd::getpgrp(),
            Err(e) => e == Errno::ENOTTY,
        }
    }

    fn host_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: `host` is one of 0-2, open for the whole launch.
        unsafe { BorrowedFd::borrow_raw(self.host) }
    }

    /// Whether host input is relayed now: stdin is a terminal, the launcher holds the
    /// foreground and has put it in raw mode.
    #[must_use]
    pub fn reads_input(&self) -> bool {
        self.saved.is_some() && !self.input_closed && self.watch.is_none()
    }

    /// Whether the launcher waits to get the foreground back (stdin is a terminal it does
    /// not hold): the shell's `fg` sends no SIGCONT to a job that runs in the background, so
    /// the launcher looks now and then.
    #[must_use]
    pub fn awaits_foreground(&self) -> bool {
        self.saved.is_none() && !self.input_closed
    }

    /// Whether keys wait to be written to the pty.
    #[must_use]
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Takes the host terminal: raw mode, when stdin is a terminal and the launcher is in
    /// the foreground (a background launcher changes nothing), and the current window size.
    pub fn take(&mut self) {
        self.sync_size();
        if self.saved.is_some() || self.input_closed || !self.foreground() {
            return;
        }
        let Ok(before) = termios::tcgetattr(stdin()) else { return };
        let mut raw = before.clone();
        termios::cfmakeraw(&mut raw);
        if termios::tcsetattr(stdin(), SetArg::TCSADRAIN, &raw).is_ok() {
            self.saved = Some(before);
        }
    }

    /// Gives the host terminal back the settings it had before raw mode.
    pub fn restore(&mut self) {
        if let Some(before) = self.saved.take() {
            // Even from the background (someone else took the foreground): what we changed
            // is put back, without stopping on SIGTTOU.
            let mut ttou = nix::sys::signal::SigSet::empty();
            ttou.add(nix::sys::signal::Signal::SIGTTOU);
            let previous = ttou.thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK);
            let _ = termios::tcsetattr(stdin(), SetArg::TCSADRAIN, &before);
            if let Ok(previous) = previous {
                let _ = previous.thread_set_mask();
            }
        }
    }

    /// Copies the host terminal's window size to the pty (whose line discipline then signals
    /// SIGWINCH to the cell's foreground group).
    pub fn sync_size(&self) {
        if let Some(mut ws) = window_size(self.host) {
            // SAFETY: TIOCSWINSZ reads one winsize from the struct we pass.
            unsafe { nix::libc::ioctl(self.master.as_raw_fd(), nix::libc::TIOCSWINSZ, &raw mut ws) };
        }
    }

    /// The host terminal's suspend key, when its own settings (from before raw mode) make
    /// it one.
    fn suspend_key(&self) -> Option<u8> {
        use termios::{LocalFlags as L, SpecialCharacterIndices as C};
        let t = self.saved.as_ref()?;
        let key = t.control_chars[C::VSUSP as usize];
        // 0 is _POSIX_VDISABLE on Linux.
        (t.local_flags.contains(L::ISIG) && key != 0).then_some(key)
    }

    /// The pty's foreground process group (a host pid).
    fn foreground_group(&self) -> Option<Pid> {
        nix::unistd::tcgetpgrp(&self.master).ok()
    }

    /// Starts waiting to see what becomes of a suspend key (or of a SIGTSTP the launcher got
    /// while the host terminal is not raw); host input waits meanwhile.
    pub fn watch_suspend(&mut self) {
        if self.watch.is_none() {
            let group = self.foreground_group();
            self.watch = Some(Watch { deadline: std::time::Instant::now() + SUSPEND_GRACE, group, after: Vec::new() });
        }
    }

    /// How long the launcher may wait before it looks at a pending suspend key again.
    #[must_use]
    pub fn watch_tick(&self) -> Option<u16> {
        self.watch.as_ref().map(|_| SUSPEND_TICK_MS)
    }

    /// Whether the command really is stopped, as `cell-init` reported: the leader of the
    /// pty's foreground group (the command, which leads it) is stopped. A report that does
    /// not match is not believed.
    #[must_use]
    pub fn command_stopped(&self) -> bool {
        self.foreground_group().is_some_and(|g| matches!(proc_stat(g), Some((b'T' | b't', _))))
    }

    /// Looks at a pending suspend key: did a job shell in the cell take it (the foreground
    /// group changed and the old one is stopped or gone), or is time up?
    pub fn check_suspend(&mut self) -> SuspendKey {
        let Some(w) = &self.watch else { return SuspendKey::Open };
        let now = self.foreground_group();
        let taken = now.is_some() && now != w.group && w.group.is_none_or(group_settled);
        if taken {
            if let Some(w) = self.watch.take() {
                self.pending.extend_from_slice(&w.after);
            }
            return SuspendKey::TakenByCell;
        }
        if std::time::Instant::now() >= w.deadline {
            return SuspendKey::Ignored;
        }
        SuspendKey::Open
    }

    /// The launcher is about to stop: a pending suspend key is settled, and what was typed
    /// after it in the same read is dropped (it was meant for the host shell, which cannot
    /// be given it).
    pub fn end_watch(&mut self) {
        self.watch = None;
    }

    /// Reads what the host typed (stdin is readable). A read that fails because the launcher
    /// lost the foreground (EIO) gives the terminal back; the end of input stops the relay.
    /// Up to the suspend key only: what follows it in the same read is kept back until the
    /// launcher knows whether the cell keeps the terminal.
    pub fn read_input(&mut self) {
        let mut buf = [0u8; 4096];
        match nix::unistd::read(stdin(), &mut buf) {
            Ok(0) => self.input_closed = true,
            Ok(n) => {
                let data = &buf[..n];
                match self.suspend_key().and_then(|k| memchr::memchr(k, data)) {
                    Some(i) => {
                        self.pending.extend_from_slice(&data[..=i]);
                        self.watch_suspend();
                        if let Some(w) = &mut self.watch {
                            w.after.extend_from_slice(&data[i + 1..]);
                        }
                    }
                    None => self.pending.extend_from_slice(data),
                }
            }
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            Err(Errno::EIO) => self.restore(),
            Err(_) => self.input_closed = true,
        }
    }

    /// Writes pending keys to the pty, as many as it takes now.
    pub fn write_input(&mut self) {
        while !self.pending.is_empty() {
            match nix::unistd::write(&self.master, &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return,
                Err(_) => {
                    self.pending.clear();
                    return;
                }
            }
        }
    }

    /// Relays what the cell wrote to its terminal to the host; `false` once the pty has
    /// ended (every slave closed).
    pub fn relay_output(&mut self) -> bool {
        let mut buf = [0u8; 16384];
        match nix::unistd::read(&self.master, &mut buf) {
            Ok(0) | Err(Errno::EIO) => false,
            Ok(n) => {
                let data = self.filter.feed(&buf[..n], &mut self.scratch);
                write_all(self.out, data);
                true
            }
            Err(Errno::EINTR | Errno::EAGAIN) => true,
            Err(_) => false,
        }
    }

    /// Relays what the pty holds now, without waiting (before the launcher stops, so the
    /// echo of the Ctrl-Z shows before the host shell's prompt).
    pub fn flush_output(&mut self) {
        for _ in 0..64 {
            let mut fds = [nix::poll::PollFd::new(self.master.as_fd(), nix::poll::PollFlags::POLLIN)];
            if !matches!(nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO), Ok(n) if n > 0)
                || !self.relay_output()
            {
                return;
            }
        }
    }

    /// After the cell has ended: relays everything it left in the pty, until the pty
    /// reports the end (all slaves closed) or stays silent for a second.
    pub fn drain(&mut self) {
        loop {
            let mut fds = [nix::poll::PollFd::new(self.master.as_fd(), nix::poll::PollFlags::POLLIN)];
            match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(1000u16)) {
                Ok(0) => return,
                Ok(_) => {
                    if !self.relay_output() {
                        return;
                    }
                }
                Err(Errno::EINTR) => {}
                Err(_) => return,
            }
        }
    }

    /// The cell has ended and its output is drained: what the scanner held goes out. Only
    /// when the cell wrote escape sequences (a terminal sends input of its own only when
    /// asked to: answers to queries, mouse and focus reports), and first the modes it may
    /// have left on are reset, when the host stdout is a terminal; then, when the launcher
    /// holds the host terminal, answers to the cell's queries still coming are discarded and
    /// pending input is flushed, so nothing the cell made the terminal say reaches the host
    /// shell. Then the settings come back. (A cell that wrote no escape sequence leaves
    /// type-ahead alone.)
    pub fn end(&mut self) {
        let mut rest = Vec::new();
        self.filter.finish(&mut rest);
        write_all(self.out, &rest);
        if self.filter.escapes {
            if self.ttys[1] {
                write_all(STDIO[1], &ttyout::reset_modes(self.filter.alt_screen));
            }
            if self.saved.is_some() && self.foreground() {
                if self.filter.queried {
                    Self::discard_answers();
                }
                let _ = termios::tcflush(stdin(), termios::FlushArg::TCIFLUSH);
            }
        }
        self.restore();
    }

    /// Reads and drops host input until it has been quiet for a moment.
    fn discard_answers() {
        let start = std::time::Instant::now();
        while start.elapsed() < ANSWER_WAIT_MAX {
            let mut fds = [nix::poll::PollFd::new(stdin(), nix::poll::PollFlags::POLLIN)];
            match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ANSWER_QUIET_MS)) {
                Ok(0) => return,
                Ok(_) => {
                    let mut buf = [0u8; 4096];
                    if !matches!(nix::unistd::read(stdin(), &mut buf), Ok(n) if n > 0) {
                        return;
                    }
                }
                Err(Errno::EINTR) => {}
                Err(_) => return,
            }
        }
    }
}

/// State and process group of a process, from `/proc/PID/stat`.
fn proc_stat(pid: Pid) -> Option<(u8, i32)> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    let close = stat.iter().rposition(|b| *b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    let mut fields = rest.split_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    let pgrp = fields.nth(1)?.parse().ok()?;
    Some((state, pgrp))
}

/// Whether every process of group `group` is stopped or gone (zombies and no process at all
/// count): nothing in it can read the terminal.
fn group_settled(group: Pid) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else { return false };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        if let Some((state, pgrp)) = proc_stat(Pid::from_raw(pid)) {
            if pgrp == group.as_raw() && !matches!(state, b'T' | b't' | b'Z' | b'X') {
                return false;
            }
        }
    }
    true
}

impl Drop for Pty {
    fn drop(&mut self) {
        self.restore();
    }
}

/// Writes all of `data` to `fd`, waiting when it is non-blocking and full; gives up on an
/// error (the host side went away).
fn write_all(fd: RawFd, mut data: &[u8]) {
    // SAFETY: `fd` is one of 0-2, open for the whole launch.
    let out = unsafe { BorrowedFd::borrow_raw(fd) };
    while !data.is_empty() {
        match nix::unistd::write(out, data) {
            Ok(n) => data = &data[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                let mut fds = [nix::poll::PollFd::new(out, nix::poll::PollFlags::POLLOUT)];
                let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE);
            }
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt as _;

    #[test]
    fn a_group_is_settled_only_when_all_of_it_is_stopped() {
        let mut child = std::process::Command::new("sleep").arg("30").process_group(0).spawn().expect("sleep");
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid"));
        assert!(!group_settled(pid), "a running group counts as settled");
        assert!(!matches!(proc_stat(pid), Some((b'T' | b't', _))));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).expect("stop");
        let status = nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WUNTRACED)).expect("wait");
        assert!(matches!(status, nix::sys::wait::WaitStatus::Stopped(..)));
        assert_eq!(proc_stat(pid), Some((b'T', pid.as_raw())));
        assert!(group_settled(pid));
        child.kill().expect("kill");
        child.wait().expect("reap");
        assert!(group_settled(pid), "a group that is gone counts as settled");
    }
}
