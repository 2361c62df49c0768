//! Git config files read as git reads them (its `config.c` parser, rule for rule), so that
//! what the launcher finds in a host config is what host git will act on: a reading that
//! differs from git's (a key on the line of its section header, a value continued on the
//! next line, a comment after a value) would let a config name a hooks path the launcher
//! never sees.
//!
//! The rules: a section header `[name]` or `[name "subsection"]` (the name and keys are
//! case-insensitive, a quoted subsection keeps its case and takes `\` escapes; an old-style
//! `[name.sub]` is lowercased whole) may be followed on the same line by a key; a key is a
//! letter then letters, digits and `-`, followed by `=` and a value or by the end of the
//! line (a boolean true); in a value, `"` quotes, `\` escapes `\n`, `\t`, `\b`, `\\`, `\"`
//! and joins the next line, `#` and `;` outside quotes start a comment, every whitespace
//! character outside quotes is one space and the trailing ones go. A line git cannot
//! parse makes git refuse the whole file; the entries read before it are returned (the
//! launcher holds what they name, more than git would ever use).

/// A key (`section.subsection.name`, section and name lowercased) and its value.
pub type Entry = (String, String);

/// The entries of config text `text`, in order.
#[must_use]
pub fn parse(text: &str) -> Vec<Entry> {
    let mut p = Parser { chars: text.strip_prefix('\u{feff}').unwrap_or(text).chars().peekable(), out: Vec::new() };
    p.run();
    p.out
}

struct Parser<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    out: Vec<Entry>,
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-'
}

/// Git's `isspace`: space, tab, newline, vertical tab, form feed, carriage return.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

impl Parser<'_> {
    /// The next character, a `\r\n` as `\n`; `None` at the end.
    fn next(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\r' && self.chars.peek() == Some(&'\n') {
            return self.chars.next();
        }
        Some(c)
    }

    fn run(&mut self) {
        let mut section = String::new();
        let mut comment = false;
        while let Some(c) = self.next() {
            if c == '\n' {
                comment = false;
                continue;
            }
            if comment || is_space(c) {
                continue;
            }
            if c == '#' || c == ';' {
                comment = true;
                continue;
            }
            if c == '[' {
                match self.section() {
                    Some(s) if !s.is_empty() => section = s,
                    _ => return,
                }
                continue;
            }
            if !c.is_ascii_alphabetic() || section.is_empty() {
                return;
            }
            let Some((name, value)) = self.entry(c) else { return };
            self.out.push((format!("{section}.{name}"), value));
        }
    }

    /// A section header after its `[`; `None` where git stops.
    fn section(&mut self) -> Option<String> {
        let mut name = String::new();
        loop {
            let c = self.next()?;
            if c == ']' {
                return Some(name);
            }
            if is_space(c) {
                return self.subsection(name, c);
            }
            if !is_key_char(c) && c != '.' {
                return None;
            }
            name.push(c.to_ascii_lowercase());
        }
    }

    /// `[name "subsection"]` after the space that follows the name.
    fn subsection(&mut self, mut name: String, mut c: char) -> Option<String> {
        while is_space(c) {
            if c == '\n' {
                return None;
            }
            c = self.next()?;
        }
        if c != '"' {
            return None;
        }
        name.push('.');
        loop {
            let mut c = self.next()?;
            if c == '\n' {
                return None;
            }
            if c == '"' {
                break;
            }
            if c == '\\' {
                c = self.next()?;
                if c == '\n' {
                    return None;
                }
            }
            name.push(c);
        }
        (self.next()? == ']').then_some(name)
    }

    /// A key starting with `first`, and its value (`true` for a bare key).
    fn entry(&mut self, first: char) -> Option<(String, String)> {
        let mut name = String::from(first.to_ascii_lowercase());
        let mut c = self.next();
        while let Some(k) = c.filter(|k| is_key_char(*k)) {
            name.push(k.to_ascii_lowercase());
            c = self.next();
        }
        while matches!(c, Some(' ' | '\t')) {
            c = self.next();
        }
        match c {
            None | Some('\n') => Some((name, "true".to_owned())),
            Some('=') => self.value().map(|v| (name, v)),
            Some(_) => None,
        }
    }

    /// A value after its `=`, up to and with the end of its (last) line.
    fn value(&mut self) -> Option<String> {
        let (mut quote, mut comment) = (false, false);
        let mut spaces = 0usize;
        let mut value = String::new();
        loop {
            let Some(c) = self.next() else { return (!quote).then_some(value) };
            if c == '\n' {
                return (!quote).then_some(value);
            }
            if comment {
                continue;
            }
            if is_space(c) && !quote {
                if !value.is_empty() {
                    spaces += 1;
                }
                continue;
            }
            if !quote && (c == ';' || c == '#') {
                comment = true;
                continue;
            }
            value.extend(std::iter::repeat_n(' ', spaces));
            spaces = 0;
            match c {
                '\\' => match self.next() {
                    Some('\n') => {}
                    Some('t') => value.push('\t'),
                    Some('b') => value.push('\x08'),
                    Some('n') => value.push('\n'),
                    Some(e @ ('\\' | '"')) => value.push(e),
                    _ => return None,
                },
                '"' => quote = !quote,
                c => value.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    fn kv(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    #[test]
    fn keys_follow_their_header_on_the_same_line() {
        assert_eq!(parse("[core] hooksPath = hk\n"), vec![kv("core.hookspath", "hk")]);
        assert_eq!(parse("[a][core]x=1"), vec![kv("core.x", "1")]);
        assert_eq!(parse("[Remote \"Origin\"] URL = u"), vec![kv("remote.Origin.url", "u")]);
        assert_eq!(parse("[Remote.Origin]\nurl=u"), vec![kv("remote.origin.url", "u")]);
        assert_eq!(parse("[x \"a\\\"b\"]k=v"), vec![kv("x.a\"b.k", "v")]);
    }

    #[test]
    fn values_as_git_reads_them() {
        assert_eq!(parse("[c]\nk = \"h\\\nk\"\n"), vec![kv("c.k", "hk")]);
        assert_eq!(parse("[c]\nk = a\\\nb\n"), vec![kv("c.k", "ab")]);
        assert_eq!(parse("[c]\nk = a  b \t ; note\n"), vec![kv("c.k", "a  b")]);
        assert_eq!(parse("[c]\nk = \"a ; b\" # c\n"), vec![kv("c.k", "a ; b")]);
        assert_eq!(parse("[c]\nk = a\\tb\\n\\\\\n"), vec![kv("c.k", "a\tb\n\\")]);
        assert_eq!(parse("[c]\r\nk = v\r\n"), vec![kv("c.k", "v")]);
        assert_eq!(parse("\u{feff}[c]\nbare\nk2=\n"), vec![kv("c.bare", "true"), kv("c.k2", "")]);
        assert_eq!(parse("# x\n; y\n[c] # z\n\tk=v"), vec![kv("c.k", "v")]);
    }

    #[test]
    fn what_git_cannot_parse_ends_the_reading() {
        // Entries before a bad line are kept; nothing after it is read (git refuses the file).
        assert_eq!(parse("[c]\nk=v\nk2 # x\nk3=v3\n"), vec![kv("c.k", "v")]);
        assert_eq!(parse("[c]\nk=\"open\nk3=v3\n"), Vec::<(String, String)>::new());
        assert_eq!(parse("k=v\n"), Vec::<(String, String)>::new());
        assert_eq!(parse("[c]\nk=\\q\n"), Vec::<(String, String)>::new());
        assert_eq!(parse("[c d]\nk=v\n"), Vec::<(String, String)>::new());
    }
}
