//! The host's terminal: a real pseudo-terminal (Python's `pty`) drives an interactive host
//! `bash --norc -i`, which runs `cell`, as a person at a terminal would. The cell must never
//! read the host terminal while it is stopped or in the background, must not be able to
//! break it, and gets Ctrl-C, Ctrl-Z, window sizes and job control like a normal terminal.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Command;

use crate::both;
use crate::support::{ok, Host, Who};

/// Drives `bash --norc -i` (or, with `--exec`, a command) on a fresh pseudo-terminal through
/// a list of steps: `send` (text), `expect` (a regular expression, waited for in the output
/// after the previous match), `resize` ([rows, cols] of the outer terminal), `answer` (from
/// then on the driver answers terminal queries as a terminal would, this many seconds after
/// it reads them: cursor position, device attributes, window size, and OSC 52 clipboard
/// queries with a clipboard holding `secret-clip`). Prints the transcript; exits 1 at the
/// first expectation that does not show up.
const DRIVER: &str = r"
import json, os, pty, re, select, struct, sys, time, fcntl, termios
steps = json.load(open(sys.argv[1]))
exec_argv = sys.argv[3:] if len(sys.argv) > 2 and sys.argv[2] == '--exec' else None
pid, fd = pty.fork()
if pid == 0:
    if exec_argv:
        os.execvp(exec_argv[0], exec_argv)
    os.execvpe('bash', ['bash', '--norc', '-i'], dict(os.environ, PS1='HOST$ '))
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', 24, 80, 0, 0))
out = b''
pos = 0
ANSWERS = [(b'\x1b[6n', b'\x1b[6;1R'), (b'\x1b[c', b'\x1b[?1;2c'), (b'\x1b[>c', b'\x1b[>0;276;0c'),
           (b'\x1b[18t', b'\x1b[8;24;80t'), (b'\x1b]52;c;?\x07', b'\x1b]52;c;c2VjcmV0LWNsaXA=\x07')]
answer_delay = None
answered = 0
def answer():
    global answered
    while answer_delay is not None:
        found = [(out.find(q, answered), q, a) for q, a in ANSWERS]
        found = [f for f in found if f[0] >= 0]
        if not found:
            answered = max(answered, len(out) - 16)
            return
        at, q, a = min(found)
        time.sleep(answer_delay)
        os.write(fd, a)
        answered = at + len(q)
def read_some(t):
    global out
    r, _, _ = select.select([fd], [], [], t)
    if not r:
        return True
    try:
        b = os.read(fd, 65536)
    except OSError:
        return False
    if not b:
        return False
    out += b
    answer()
    return True
if exec_argv:
    while read_some(120):
        pass
    _, status = os.waitpid(pid, 0)
    sys.stdout.buffer.write(b'BYTES %d STATUS %d\n' % (len(out), os.waitstatus_to_exitcode(status)))
    sys.exit(0)
failed = None
for step in steps:
    if 'send' in step:
        os.write(fd, step['send'].encode())
        # Reading meanwhile, as a terminal does (it answers queries at once).
        end = time.time() + 0.2
        while time.time() < end and read_some(max(0, end - time.time())):
            pass
    elif 'answer' in step:
        answer_delay = step['answer']
    elif 'resize' in step:
        rows, cols = step['resize']
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', rows, cols, 0, 0))
        time.sleep(0.3)
    elif 'expect' in step:
        pattern = re.compile(step['expect'].encode())
        deadline = time.time() + step.get('within', 60)
        while True:
            m = pattern.search(out, pos)
            if m:
                pos = m.end()
                break
            if time.time() > deadline or not read_some(0.2):
                failed = step['expect']
                break
        if failed:
            break
if not failed:
    os.write(fd, b'\nexit\n')
    end = time.time() + 5
    while time.time() < end and read_some(0.2):
        pass
sys.stdout.buffer.write(out)
if failed:
    sys.stdout.buffer.write(b'\nEXPECTATION NOT MET: ' + failed.encode() + b'\n')
    sys.exit(1)
";

/// A step of a driven session.
pub(crate) enum Step<'a> {
    Send(&'a str),
    Expect(&'a str),
    Resize(u16, u16),
    /// Answer terminal queries from now on, this many milliseconds after reading them.
    Answer(u16),
}

pub(crate) fn send(s: &str) -> Step<'_> {
    Step::Send(s)
}

pub(crate) fn expect(s: &str) -> Step<'_> {
    Step::Expect(s)
}

/// A driver command for host `h`: python3 as the user that runs `cell`, with `cell` on PATH
/// and the harness's environment (see `Host::cell`).
fn driver(h: &Host, steps: &[Step<'_>]) -> Command {
    let json: Vec<serde_json::Value> = steps
        .iter()
        .map(|s| match s {
            Step::Send(t) => serde_json::json!({ "send": t }),
            Step::Expect(t) => serde_json::json!({ "expect": t }),
            Step::Resize(r, c) => serde_json::json!({ "resize": [r, c] }),
            Step::Answer(ms) => serde_json::json!({ "answer": f64::from(*ms) / 1000.0 }),
        })
        .collect();
    let n = std::fs::read_dir(h.dir.path()).map(Iterator::count).unwrap_or(0);
    let script = h.path(&format!("driver-{n}.py"));
    let steps_file = h.path(&format!("steps-{n}.json"));
    std::fs::write(&script, DRIVER).expect("write driver");
    std::fs::write(&steps_file, serde_json::to_string(&json).expect("json")).expect("write steps");
    h.chown_all();
    let bin = crate::support::cell_bin();
    let bin_dir = bin.parent().expect("cell's directory");
    let mut cmd = Command::new("python3");
    cmd.arg(&script)
        .arg(&steps_file)
        .current_dir(&h.work)
        .env_clear()
        .env("HOME", &h.home)
        .env("PATH", format!("{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", bin_dir.display()))
        .env("LANG", "C.UTF-8")
        .env("TERM", "xterm")
        .env("XDG_CONFIG_HOME", h.home.join(".config"))
        .env("XDG_RUNTIME_DIR", h.path("run"))
        .env("CELL_CONFIG", &h.config);
    if h.who == Who::User && nix::unistd::geteuid().is_root() {
        cmd.uid(h.uid).gid(h.gid);
    }
    cmd
}

/// Runs a session and returns its transcript, failing the test with it when an expectation
/// was not met.
pub(crate) fn session(h: &Host, steps: &[Step<'_>]) -> String {
    ok(&driver(h, steps).output().expect("python3 (with its pty module) drives the terminal tests"))
}

/// A reader in the cell: logs everything it can read from its standard input, in the main
/// process and in a child that ignores Ctrl-Z (so it keeps reading while the command is
/// stopped).
const THIEF: &str = r#"
import os, signal, sys, time
log = sys.argv[1]
def steal(who):
    out = open(log, "ab", buffering=0)
    while True:
        try:
            b = os.read(0, 1024)
        except OSError:
            time.sleep(0.05)
            continue
        if not b:
            time.sleep(0.05)
            continue
        out.write(b"GOT(" + who + b"):" + b + b"\n")
if os.fork() == 0:
    signal.signal(signal.SIGTSTP, signal.SIG_IGN)
    steal(b"child")
print("THIEF-" + "READY", flush=True)
steal(b"main")
"#;

fn plant_thief(h: &Host) -> std::path::PathBuf {
    std::fs::write(h.work.join("thief.py"), THIEF).expect("write thief");
    let log = h.work.join("stolen.txt");
    std::fs::write(&log, "").expect("write log");
    h.chown_all();
    log
}

fn stolen(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

both!(nothing_typed_after_ctrl_z_reaches_the_cell, |h| {
    let log = plant_thief(h);
    let transcript = session(
        h,
        &[
            expect(r"HOST\$ "),
            send("cell run --network none -- python3 thief.py stolen.txt\n"),
            expect("THIEF-READY"),
            // The thief does read what is typed for the cell (the control)...
            send("typed-for-the-cell\r"),
            expect("typed-for-the-cell"),
            send("\x1a"),
            expect(r"Stopped"),
            // ...and nothing typed into the host shell once the cell is stopped.
            send("echo host-typed-secret-$((40+2))\n"),
            expect("host-typed-secret-42"),
            send("echo more-secret-$((40+2))\n"),
            expect("more-secret-42"),
            send("kill -9 %1; wait; echo KILLED-$((40+2))\n"),
            expect("KILLED-42"),
        ],
    );
    let got = stolen(&log);
    assert!(
        got.contains("typed-for-the-cell"),
        "the thief read nothing at all, so the test proves nothing: {got}\n{transcript}"
    );
    assert!(!got.contains("secret"), "the stopped cell read what was typed into the host shell:\n{got}\n{transcript}");
});

both!(nothing_typed_reaches_a_cell_in_the_background, |h| {
    let log = plant_thief(h);
    let transcript = session(
        h,
        &[
            expect(r"HOST\$ "),
            send("cell run --network none -- python3 thief.py stolen.txt &\n"),
            expect("THIEF-READY"),
            send("\necho host-typed-secret-$((40+2))\n"),
            expect("host-typed-secret-42"),
            send("echo more-secret-$((40+2))\n"),
            expect("more-secret-42"),
            send("kill -9 %1; wait; echo KILLED-$((40+2))\n"),
            expect("KILLED-42"),
        ],
    );
    let got = stolen(&log);
    assert!(
        !got.contains("secret"),
        "the cell in the background read what was typed into the host shell:\n{got}\n{transcript}"
    );
});

both!(ctrl_c_kills_the_foreground_group_at_once, |h| {
    // A grandchild (the sleep under sh) dies with the Ctrl-C, as in a normal terminal; the
    // 300 s sleep would outlast every expectation if it did not.
    let transcript = session(
        h,
        &[
            expect(r"HOST\$ "),
            send("cell run --network none -- sh -c 'echo UP-$((6*7)); sleep 300; echo LATE-$((6*7))'\n"),
            expect("UP-42"),
            send("\x03"),
            send("echo RC=$?\n"),
            expect("RC=130"),
        ],
    );
    assert!(!transcript.contains("LATE-42"), "{transcript}");
});

both!(ctrl_c_stops_a_shell_loop_of_launches, |h| {
    // The launcher ends by SIGINT when Ctrl-C ended its command, as the shell expects: a
    // loop of launches stops at the first Ctrl-C instead of starting the next one.
    let transcript = session(
        h,
        &[
            expect(r"HOST\$ "),
            send("for i in 1 2 3; do cell run --network none -- sh -c 'echo UP-$((6*7)); sleep 300'; echo NEXT-$((i*7)); done; echo AFTER-$((6*7))\n"),
            expect("UP-42"),
            send("\x03"),
            send("echo RC=$?\n"),
            expect("RC=130"),
        ],
    );
    assert!(
        !transcript.contains("NEXT-7") && !transcript.contains("AFTER-42"),
        "the loop went on after Ctrl-C:\n{transcript}"
    );
});

both!(a_cell_cannot_break_the_host_terminal, |h| {
    // N_NULL line discipline, exclusive mode, raw mode without echo: on the host terminal
    // each would leave the shell dead or blind after the cell.
    // (It prints before N_NULL, which swallows all output, and reports each step in a file.)
    let breaker = "import fcntl, struct, termios, tty\n\
                   log = open('broken.txt', 'w')\n\
                   tty.setraw(0); log.write('raw\\n')\n\
                   fcntl.ioctl(0, termios.TIOCEXCL); log.write('exclusive\\n')\n\
                   print('BROKE-' + 'IT', flush=True)\n\
                   fcntl.ioctl(0, 0x5423, struct.pack('i', 27)); log.write('n_null\\n')\n";
    std::fs::write(h.work.join("breaker.py"), breaker).expect("write");
    h.chown_all();
    let transcript = session(
        h,
        &[
            expect(r"HOST\$ "),
            send("S1=$(stty -g); cell run --network none -- python3 breaker.py; S2=$(stty -g)\n"),
            expect("BROKE-IT"),
            send("[ \"$S1\" = \"$S2\" ] && echo SAME-SETTINGS-$((40+2))\n"),
            expect("SAME-SETTINGS-42"),
            send("echo STILL-ALIVE-$((40+2))\n"),
            expect("STILL-ALIVE-42"),
        ],
    );
    let done = std::fs::read_to_string(h.work.join("broken.txt")).unwrap_or_default();
    assert_eq!(done, "raw\nexclusive\nn_null\n", "the breaker did not get through its steps:\n{transcript}");
});

both!(cell_shell_has_job_control_and_the_window_size, |h| {
    let transcript = session(
        h,
        &[
            expect(r"HOST\$ "),
            Step::Resize(33, 101),
            send("cell shell\n"),
            expect(r"\$ "),
            send("sleep 30 &\n"),
            send("jobs; echo JOBS-$((40+2))\n"),
            expect(r"Running +sleep 30"),
            expect("JOBS-42"),
            send("stty size\n"),
            expect("33 101"),
            Step::Resize(41, 122),
            send("stty size\n"),
            expect("41 122"),
            // Ctrl-Z inside stops the shell's own job, not the cell.
            send("sleep 100\n"),
            send("\x1a"),
            expect(r"Stopped +sleep 100"),
            send("kill -9 %1 %2; wait; exit\n"),
            // (bash may still count the killed jobs as stopped once.)
            send("exit\n"),
            expect(r"HOST\$ "),
        ],
    );
    for warning in ["no job control", "cannot set terminal process group", "Inappropriate ioctl"] {
        assert!(!transcript.contains(warning), "bash warned {warning:?}:\n{transcript}");
    }
});

both!(fg_resumes_a_cell_stopped_with_ctrl_z, |h| {
    session(
        h,
        &[
            expect(r"HOST\$ "),
            send("cell run --network none -- sh -c 'echo WAITING-$((6*7)); read x; echo GOT-$x'\n"),
            expect("WAITING-42"),
            send("\x1a"),
            expect("Stopped"),
            send("fg\n"),
            send("hello-after-fg\r"),
            expect("GOT-hello-after-fg"),
            send("echo RC=$?\n"),
            expect("RC=0"),
        ],
    );
});

both!(pipes_stay_pipes, |h| {
    // No terminal anywhere: the streams are the caller's, as before.
    let mut child = h
        .cell()
        .args(["run", "--network", "none", "--", "sh", "-c", "cat; test -t 0 || echo NO-TTY"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"x\n").expect("write");
    }
    let out = ok(&child.wait_with_output().expect("wait"));
    assert_eq!(out, "x\nNO-TTY\n");
    // In a terminal, a piped stdin still passes through while stdout gets the cell's pty.
    session(
        h,
        &[
            expect(r"HOST\$ "),
            send(
                "echo piped-in | cell run --network none -- sh -c 'cat; test -t 0 || echo STDIN-PIPE; test -t 1 && echo STDOUT-TTY'\n",
            ),
            expect("piped-in"),
            expect("STDIN-PIPE"),
            expect("STDOUT-TTY"),
        ],
    );
});

both!(big_output_through_the_relay_arrives_whole, |h| {
    let line = "0123456789abcdef".repeat(4) + "\n";
    let lines = 160_000;
    std::fs::write(h.work.join("big.txt"), line.repeat(lines)).expect("write");
    h.chown_all();
    // The relay is what is measured: a cell without the limits' launch-time line (a user
    // here has no cgroup, so the launcher would print one to the same terminal).
    let cfg = h
        .write_config("nolimits.json", r#"{"schemaVersion":1,"cells":{"default":{"limits":{"unsafeNoLimits":true}}}}"#);
    let mut cmd = driver(h, &[]);
    cmd.env("CELL_CONFIG", &cfg);
    cmd.args(["--exec", "cell", "run", "--network", "none", "--", "cat", "big.txt"]);
    let out = ok(&cmd.output().expect("driver"));
    // The pty turns each newline into CR LF, as any terminal does.
    let expected = line.len() * lines + lines;
    assert_eq!(out.trim(), format!("BYTES {expected} STATUS 0"));
});

/// A cell whose command ignores the suspend key and reads on: the trap the README's "Ctrl-Z
/// is the way out" must hold against.
const IGNORER: &str = r#"trap '' TSTP TTIN TTOU
echo IGNORER-READY
while :; do read -r x && echo "GOT[$x]" >> got.log; done
"#;

both!(ctrl_z_returns_the_terminal_even_when_the_cell_ignores_it, |h| {
    std::fs::write(h.work.join("ignorer.sh"), IGNORER).expect("write");
    std::fs::write(h.work.join("got.log"), "").expect("write");
    h.chown_all();
    let transcript = session(
        h,
        &[
            expect(r"HOST\$ "),
            send("cell run --network none -- bash ignorer.sh\n"),
            expect("IGNORER-READY"),
            send("before-the-key\r"),
            expect("before-the-key"),
            send("\x1a"),
            // The host shell has its job back, though nothing in the cell stopped...
            expect("Stopped"),
            send("echo host-secret-$((40+2))\n"),
            expect("host-secret-42"),
            // ...and `fg` gives the cell the terminal again, as with a real stop.
            send("fg\n"),
            send("after-fg\r"),
            expect("after-fg"),
            send("\x1a"),
            expect("Stopped"),
            send("kill -9 %1; wait; echo KILLED-$((40+2))\n"),
            expect("KILLED-42"),
        ],
    );
    let got = std::fs::read_to_string(h.work.join("got.log")).unwrap_or_default();
    assert!(
        got.contains("GOT[before-the-key]"),
        "the cell read nothing, so the test proves nothing: {got}\n{transcript}"
    );
    assert!(got.contains("GOT[after-fg]"), "fg did not give the cell the terminal back: {got}\n{transcript}");
    assert!(!got.contains("secret"), "the cell read what was typed into the host shell:\n{got}\n{transcript}");
});

both!(ctrl_z_inside_cell_shell_stops_the_inner_job_only, |h| {
    // Each ^Z stops a job of the shell inside; the launcher must not take it for one the cell
    // ignored: what is typed next still reaches the shell in the cell (pid 1 is cell-init).
    let transcript = session(
        h,
        &[
            expect(r"HOST\$ "),
            send("cell shell\n"),
            expect(r"\$ "),
            send("sleep 100\n"),
            send("\x1a"),
            expect(r"Stopped +sleep 100"),
            send("echo INSIDE-$(tr '\\0' ' ' </proc/1/cmdline | cut -c1-40 | grep -c cell-init)\n"),
            expect("INSIDE-1"),
            send("vim -u NONE -N -n -i NONE x.txt\n"),
            expect("x.txt"),
            send("\x1a"),
            expect(r"Stopped +vim"),
            send("echo AGAIN-$(tr '\\0' ' ' </proc/1/cmdline | cut -c1-40 | grep -c cell-init)\n"),
            expect("AGAIN-1"),
            send("kill -9 %1 %2; wait; exit\n"),
            // (bash may still count the killed jobs as stopped once.)
            send("exit\n"),
            expect(r"HOST\$ "),
        ],
    );
    assert!(!transcript.contains("Stopped                 cell shell"), "{transcript}");
});

both!(a_forged_stop_report_does_not_take_the_terminal, |h| {
    // The command looks for cell-init's job descriptor (in cell-init's spec, which it can
    // read) and writes a stop report into it:
    // the launcher would let go of the terminal while the cell runs on.
    let forge = "import json, os, sys\n\
                 fd = str(json.load(open('/run/cell/init.json'))['run']['jobFd'])\n\
                 try:\n    w = os.open('/proc/1/fd/' + fd, os.O_WRONLY)\n    os.write(w, bytes([20]))\n    res = 'FORGED'\n\
                 except OSError as e:\n    res = 'REFUSED %d' % e.errno\n\
                 open('forge.txt', 'w').write(res)\n\
                 print('FORGE-' + 'DONE', flush=True)\n\
                 print('CELL-READ ' + sys.stdin.readline().strip(), flush=True)\n";
    std::fs::write(h.work.join("forge.py"), forge).expect("write");
    h.chown_all();
    let transcript = session(
        h,
        &[
            expect(r"HOST\$ "),
            send("cell run --network none -- python3 forge.py\n"),
            expect("FORGE-DONE"),
            send("still-the-cell\r"),
            expect("CELL-READ still-the-cell"),
            send("echo RC=$?\n"),
            expect("RC=0"),
        ],
    );
    let res = std::fs::read_to_string(h.work.join("forge.txt")).unwrap_or_default();
    assert!(res.starts_with("REFUSED"), "the command could open cell-init's job descriptor: {res}\n{transcript}");
});

both!(the_host_shell_gets_no_answers_to_the_cells_queries, |h| {
    // The cell asks the terminal its cursor position, attributes and size, and ends at once;
    // the terminal answers a little later (20 ms, as over a network), into the host shell's
    // input unless the launcher discards it.
    let transcript = session(
        h,
        &[
            expect(r"HOST\$ "),
            Step::Answer(20),
            send(
                "cell run --network none -- printf '\\033[6n\\033[c\\033[>c\\033[18t'; read -r -t 1 -n 200 junk; echo \"JUNK<$junk>\" | od -c | tr -s ' ' | head -3; echo DONE-$((40+2))\n",
            ),
            expect("DONE-42"),
        ],
    );
    let tail = &transcript[transcript.find("DONE-$((40+2))").map_or(0, |i| i + 14)..];
    assert!(
        tail.contains("J   U   N   K   <   >") || tail.contains("J U N K < >"),
        "answers to the cell's queries reached the host shell:\n{transcript}"
    );
});

both!(terminal_modes_a_cell_leaves_on_are_reset, |h| {
    let transcript = session(
        h,
        &[
            expect(r"HOST\$ "),
            send("cell run --network none -- printf '\\033[?1049h\\033[?1000h\\033[?1002h\\033[?1003h\\033[?1006h\\033[?25l\\033[?7l\\033[8m\\033[?2004h\\033[?1h\\033=MODES-%s' SET\n"),
            expect(r"MODES-SET"),
            expect(r"HOST\$ "),
            send("cell run --network none -- printf '\\033[?25lNO-%s' ALT\n"),
            expect(r"NO-ALT"),
            expect(r"HOST\$ "),
            // Not to a stdout that is no terminal.
            send("cell run --network none -- printf '\\033[?25l' >modes.bin; echo FILE-$((40+2))\n"),
            expect("FILE-42"),
        ],
    );
    let after = |mark: &str| {
        let start = transcript.find(mark).map_or(0, |i| i + mark.len());
        let end = transcript[start..].find("HOST$ ").map_or(transcript.len(), |i| start + i);
        transcript[start..end].to_owned()
    };
    let set = after("MODES-SET");
    for reset in [
        "\x1b[?1049l",
        "\x1b[?1000l",
        "\x1b[?1002l",
        "\x1b[?1003l",
        "\x1b[?1006l",
        "\x1b[?25h",
        "\x1b[?7h",
        "\x1b[0m",
        "\x1b[?2004l",
        "\x1b[?1l",
        "\x1b>",
    ] {
        assert!(set.contains(reset), "{reset:?} was not reset after the cell: {set:?}\n{transcript}");
    }
    let plain = after("NO-ALT");
    assert!(plain.contains("\x1b[?25h"), "{plain:?}");
    assert!(
        !plain.contains("\x1b[?1049l"),
        "the alternate screen was left though the cell never entered it: {plain:?}"
    );
    assert_eq!(std::fs::read(h.work.join("modes.bin")).unwrap_or_default(), b"\x1b[?25l");
});

both!(osc52_clipboard_queries_never_reach_the_host_terminal, |h| {
    // Where the terminal answers OSC 52 queries (tmux with set-clipboard on), the answer typed
    // back into the cell is the host clipboard.
    let asker = "printf '\\033]52;c;?\\007\\033]52;c;aGk=\\007OSC-%s\\n' SENT\n\
                 read -r -t 2 -n 200 ans\n\
                 printf '%s' \"$ans\" >ans.txt\n";
    std::fs::write(h.work.join("asker.sh"), asker).expect("write");
    h.chown_all();
    let transcript = session(
        h,
        &[
            expect(r"HOST\$ "),
            Step::Answer(0),
            send("cell run --network none -- bash asker.sh; echo ASKED-$((40+2))\n"),
            expect("OSC-SENT"),
            expect("ASKED-42"),
        ],
    );
    let ans = std::fs::read_to_string(h.work.join("ans.txt"));
    assert!(ans.is_ok(), "the asker did not get to write what it read:\n{transcript}");
    let ans = ans.unwrap_or_default();
    assert!(!ans.contains("c2VjcmV0"), "the cell read the host clipboard: {ans:?}\n{transcript}");
    assert!(!transcript.contains("\x1b]52;c;?"), "the clipboard query reached the host terminal:\n{transcript}");
    assert!(transcript.contains("\x1b]52;c;aGk=\x07"), "setting the clipboard must pass:\n{transcript}");
});
