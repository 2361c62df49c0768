//! What the cell writes to its terminal, on its way to the host terminal: a small streaming
//! scanner of escape sequences (sequences split across reads are handled). It passes every
//! byte through unchanged but for one kind of sequence, and remembers what the launcher needs
//! when the cell ends:
//!
//! - OSC 52 clipboard *queries* (`ESC ] 52 ; <selection> ; ? BEL|ST`) are dropped: where the
//!   host terminal answers them (tmux with `set-clipboard on`, some emulators) the answer,
//!   typed back into the cell, is the host clipboard. Setting the clipboard passes.
//! - whether the cell left the alternate screen on (`CSI ? 1049|1047|47 h`), so the reset at
//!   exit leaves it only when the cell entered it (leaving it when it is off would move the
//!   cursor to a stale saved position);
//! - whether the cell wrote any escape sequence at all (no reset after a plain `cat`);
//! - whether it asked the terminal something (device attributes, cursor position, window
//!   reports, mode and version queries, DCS requests, OSC colour queries), so the launcher
//!   waits briefly for the answers and discards them instead of leaving them to the host
//!   shell.
//!
//! Only 7-bit sequences are recognised: in UTF-8 the C1 bytes are continuation bytes, and
//! the terminals that matter read them so.

const ESC: u8 = 0x1b;
const BEL: u8 = 0x07;
/// CAN and SUB abort a sequence, as in every VT-style parser.
const CAN: u8 = 0x18;
const SUB: u8 = 0x1a;
/// The longest selection list kept while an OSC 52 is undecided (xterm's is at most 8
/// letters: `cpqs01234567`).
const MAX_SELECTION: usize = 16;
/// CSI parameter bytes kept (the rest of an absurdly long one is not looked at).
const MAX_PARAMS: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ground,
    /// After ESC.
    Esc,
    /// In a CSI: parameter and intermediate bytes are collected.
    Csi,
    /// In an OSC that may still turn out to be an OSC 52 query; its bytes so far are held.
    Osc52,
    /// In an OSC 52 query: dropped up to its terminator.
    Osc52Drop,
    /// After the ESC of a dropped OSC 52: the `\` of its ST is dropped too.
    Osc52DropEsc,
    /// In another OSC: passed through, looking for a `?` (a colour query).
    Osc,
}

/// The scanner; one per relay.
#[derive(Debug)]
pub struct TtyOut {
    state: State,
    /// The held bytes of an undecided OSC 52 (from its ESC on).
    held: Vec<u8>,
    params: Vec<u8>,
    /// Whether the cell's alternate screen is on, as far as its output says.
    pub alt_screen: bool,
    /// Whether the cell wrote any ESC.
    pub escapes: bool,
    /// Whether the cell asked the terminal something that the terminal answers on input.
    pub queried: bool,
}

impl Default for TtyOut {
    fn default() -> Self {
        Self::new()
    }
}

impl TtyOut {
    #[must_use]
    pub fn new() -> Self {
        Self {
            state: State::Ground,
            held: Vec::new(),
            params: Vec::new(),
            alt_screen: false,
            escapes: false,
            queried: false,
        }
    }

    /// Filters one read of the cell's output: returns what goes to the host terminal, the
    /// input itself when nothing in it needs looking at (no ESC, no sequence open), else
    /// `out` (cleared and filled).
    pub fn feed<'a>(&mut self, input: &'a [u8], out: &'a mut Vec<u8>) -> &'a [u8] {
        if self.state == State::Ground && memchr::memchr(ESC, input).is_none() {
            return input;
        }
        self.escapes = true;
        out.clear();
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Ground {
                match memchr::memchr(ESC, &input[i..]) {
                    None => {
                        out.extend_from_slice(&input[i..]);
                        break;
                    }
                    Some(k) => {
                        out.extend_from_slice(&input[i..i + k]);
                        i += k;
                    }
                }
            }
            let b = input[i];
            i += 1;
            self.step(b, out);
        }
        out
    }

    /// What is held when the cell ends (an OSC 52 that never finished): passed on, as it was
    /// no query.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.state == State::Osc52 {
            out.append(&mut self.held);
        }
        self.state = State::Ground;
    }

    fn step(&mut self, b: u8, out: &mut Vec<u8>) {
        match self.state {
            State::Ground => {
                if b == ESC {
                    self.state = State::Esc;
                } else {
                    out.push(b);
                }
            }
            State::Esc => match b {
                b'[' => {
                    out.extend_from_slice(&[ESC, b]);
                    self.params.clear();
                    self.state = State::Csi;
                }
                b']' => {
                    self.held.clear();
                    self.held.extend_from_slice(&[ESC, b]);
                    self.state = State::Osc52;
                }
                ESC => out.push(ESC),
                _ => {
                    if b == b'P' {
                        // DCS: DECRQSS, XTGETTCAP and the like are requests.
                        self.queried = true;
                    }
                    out.extend_from_slice(&[ESC, b]);
                    self.state = State::Ground;
                }
            },
            State::Csi => match b {
                ESC => self.state = State::Esc,
                CAN | SUB => {
                    out.push(b);
                    self.state = State::Ground;
                }
                0x20..=0x3f => {
                    out.push(b);
                    if self.params.len() < MAX_PARAMS {
                        self.params.push(b);
                    }
                }
                0x40..=0x7e => {
                    out.push(b);
                    self.csi(b);
                    self.state = State::Ground;
                }
                // C0 controls inside a CSI are executed by the terminal, the CSI goes on.
                _ => out.push(b),
            },
            State::Osc52 => self.osc52(b, out),
            State::Osc52Drop => match b {
                BEL | CAN | SUB => self.state = State::Ground,
                ESC => self.state = State::Osc52DropEsc,
                _ => {}
            },
            State::Osc52DropEsc => {
                if b == b'\\' {
                    self.state = State::Ground;
                } else {
                    // Not an ST: the ESC starts a new sequence.
                    self.state = State::Esc;
                    self.step(b, out);
                }
            }
            State::Osc => match b {
                ESC => self.state = State::Esc,
                BEL | CAN | SUB => {
                    out.push(b);
                    self.state = State::Ground;
                }
                _ => {
                    if b == b'?' {
                        self.queried = true;
                    }
                    out.push(b);
                }
            },
        }
    }

    /// One more byte of an OSC that may be an OSC 52 query: `ESC ] 5 2 ; SEL* ; ?`.
    fn osc52(&mut self, b: u8, out: &mut Vec<u8>) {
        let sofar = &self.held[2..];
        let fits = match sofar.len() {
            0 => b == b'5',
            1 => b == b'2',
            2 => b == b';',
            n => {
                let second_semicolon = sofar[3..].contains(&b';');
                if second_semicolon {
                    // The payload starts here: a query is a payload that starts with `?`.
                    if b == b'?' {
                        self.held.clear();
                        self.state = State::Osc52Drop;
                        return;
                    }
                    false
                } else {
                    (b == b';' || b.is_ascii_alphanumeric()) && n - 3 < MAX_SELECTION
                }
            }
        };
        if fits {
            self.held.push(b);
            return;
        }
        // No query: what was held goes out, and the OSC goes on as any other.
        out.append(&mut self.held);
        self.state = State::Osc;
        self.step(b, out);
    }

    /// A complete CSI with final byte `f` (its parameters in `self.params`).
    fn csi(&mut self, f: u8) {
        let p = &self.params[..];
        let private = p.first() == Some(&b'?');
        match f {
            b'h' | b'l' if private => {
                let alt = p[1..].split(|c| *c == b';').any(|n| matches!(n, b"1049" | b"1047" | b"47"));
                if alt {
                    self.alt_screen = f == b'h';
                }
            }
            // Device attributes, device status and cursor position reports, window reports.
            b'c' | b'n' | b't' => self.queried = true,
            // DECRQM (`CSI ? Ps $ p`), XTVERSION (`CSI > q`), the keyboard protocol's query.
            b'p' if p.contains(&b'$') => self.queried = true,
            b'q' if p.first() == Some(&b'>') => self.queried = true,
            b'u' if private => self.queried = true,
            _ => {}
        }
    }
}

/// What the launcher writes to the host terminal when a cell that wrote escape sequences
/// ends: each mode a cell may leave on put back to the terminal's default (not a full
/// reset, which would clear the screen): mouse tracking (1000, 1002, 1003, 1006) off, the
/// cursor shown, autowrap on, SGR attributes reset, bracketed paste off, normal cursor keys
/// and keypad. The alternate screen is left first when the cell entered it.
#[must_use]
pub fn reset_modes(alt_screen: bool) -> Vec<u8> {
    let mut s = Vec::new();
    if alt_screen {
        s.extend_from_slice(b"\x1b[?1049l");
    }
    s.extend_from_slice(
        b"\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?25h\x1b[?7h\x1b[0m\x1b[?2004l\x1b[?1l\x1b>",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `n` bytes; returns what passed.
    fn run(input: &[u8], n: usize) -> (Vec<u8>, TtyOut) {
        let mut t = TtyOut::new();
        let mut passed = Vec::new();
        for piece in input.chunks(n) {
            let mut out = Vec::new();
            let o = t.feed(piece, &mut out).to_vec();
            passed.extend_from_slice(&o);
        }
        let mut rest = Vec::new();
        t.finish(&mut rest);
        passed.extend_from_slice(&rest);
        (passed, t)
    }

    #[test]
    fn osc52_queries_are_dropped_in_any_split() {
        let input = b"a\x1b]52;c;?\x07b\x1b]52;;?\x1b\\c\x1b]52;cp;?x\x07d";
        for n in 1..input.len() {
            assert_eq!(run(input, n).0, b"abcd", "pieces of {n}");
        }
    }

    #[test]
    fn everything_else_passes_byte_exact() {
        let input: &[u8] = b"plain\r\n\x1b[1;31mred\x1b[0m\x1b]0;title\x07\x1b]52;c;aGVsbG8=\x07\x1b]5;x\x07\
            \x1b]52;c\x07\x1b]52\x1b[2J\x1bP$qm\x1b\\\x1b\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\\xc3\xa9";
        for n in 1..input.len() {
            assert_eq!(run(input, n).0, input, "pieces of {n}");
        }
        // An OSC 52 whose selection list runs on is no query either.
        let long = b"\x1b]52;cccccccccccccccccccccccccccc;?\x07";
        assert_eq!(run(long, 3).0, long);
    }

    #[test]
    fn modes_and_queries_are_noted() {
        let (_, t) = run(b"x\x1b[?1049h\x1b[?25l", 2);
        assert!(t.alt_screen && t.escapes && !t.queried);
        let (_, t) = run(b"\x1b[?1049h\x1b[?1;1049l", 1);
        assert!(!t.alt_screen);
        for q in [
            &b"\x1b[6n"[..],
            b"\x1b[c",
            b"\x1b[>c",
            b"\x1b[18t",
            b"\x1b[?2004$p",
            b"\x1b[>q",
            b"\x1bP+q544e\x1b\\",
            b"\x1b]11;?\x07",
        ] {
            assert!(run(q, 1).1.queried, "{q:?}");
        }
        let (_, t) = run(b"no escapes at all\n", 4);
        assert!(!t.escapes && !t.queried);
    }
}
