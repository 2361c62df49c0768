//! Surgical edits of a JSON (or JSONC) document's top-level object.
//!
//! We never re-serialise a whole user file. The document is validated, its top-level members are
//! located by byte offset, and only the value of one key is replaced (or the key is appended).
//! Everything else, including formatting, key order, unrelated comments and trailing commas,
//! stays byte for byte.
//!
//! JSONC (gemini's `settings.json`, opencode's `opencode.json`): comments and trailing commas are
//! blanked out to spaces (same byte length, newlines kept) so that offsets in the blanked text are
//! offsets in the original. Comments *inside* the replaced value are dropped when that value
//! changes; the backup written before every change still holds them.

use std::borrow::Cow;

use serde_json::ser::PrettyFormatter;
use serde_json::Value;

/// One `"key": value` member of the top-level object, by byte offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub key: String,
    pub key_start: usize,
    pub value_start: usize,
    pub value_end: usize,
}

/// The top-level object: where its braces are and its members, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopLevel {
    pub open: usize,
    pub close: usize,
    pub members: Vec<Member>,
}

impl TopLevel {
    /// The member JSON itself would use for `key` (the last one when a key is repeated).
    #[must_use]
    pub fn find(&self, key: &str) -> Option<&Member> {
        self.members.iter().rev().find(|m| m.key == key)
    }
}

/// Blank `//` and `/* */` comments and trailing commas to spaces, keeping byte offsets and
/// newlines. Borrowed when there is nothing to blank. An unterminated block comment is left as is
/// (the JSON parser then rejects the document).
#[must_use]
pub fn blank_comments(text: &str) -> Cow<'_, str> {
    let b = text.as_bytes();
    if !b.contains(&b'/') && !b.contains(&b',') {
        return Cow::Borrowed(text);
    }
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    // Position of the last comma seen outside strings, with only blanks/comments after it.
    let mut pending_comma: Option<usize> = None;
    while i < b.len() {
        match b[i] {
            b'"' => {
                pending_comma = None;
                i = skip_string(b, i);
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                let end = b[i..].iter().position(|&c| c == b'\n').map_or(b.len(), |p| i + p);
                blank(out.get_or_insert_with(|| b.to_vec()), i, end);
                i = end;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let Some(p) = b[i + 2..].windows(2).position(|w| w == b"*/") else { return Cow::Borrowed(text) };
                let end = i + 2 + p + 2;
                blank(out.get_or_insert_with(|| b.to_vec()), i, end);
                i = end;
            }
            b',' => {
                pending_comma = Some(i);
                i += 1;
            }
            b'}' | b']' => {
                if let Some(c) = pending_comma.take() {
                    out.get_or_insert_with(|| b.to_vec())[c] = b' ';
                }
                i += 1;
            }
            c if c.is_ascii_whitespace() => i += 1,
            _ => {
                pending_comma = None;
                i += 1;
            }
        }
    }
    match out {
        // Only ASCII bytes were replaced by spaces, and only whole comments (which start and end on
        // ASCII boundaries), so the result is still UTF-8; fall back to the original otherwise.
        Some(v) => String::from_utf8(v).map_or(Cow::Borrowed(text), Cow::Owned),
        None => Cow::Borrowed(text),
    }
}

fn blank(buf: &mut [u8], start: usize, end: usize) {
    for c in &mut buf[start..end] {
        if *c != b'\n' && *c != b'\r' {
            *c = b' ';
        }
    }
}

/// Index just past the string starting at `i` (which holds `"`).
fn skip_string(b: &[u8], mut i: usize) -> usize {
    i += 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

fn skip_value(b: &[u8], i: usize) -> usize {
    match b.get(i) {
        Some(b'"') => skip_string(b, i),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = skip_string(b, j);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return j + 1;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            b.len()
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']') && !b[j].is_ascii_whitespace() {
                j += 1;
            }
            j
        }
    }
}

/// Locate the top-level members of `text`, which must already be valid JSON (comments blanked).
/// `None` when the top level is not an object.
#[must_use]
pub fn top_level(text: &str) -> Option<TopLevel> {
    let b = text.as_bytes();
    let open = skip_ws(b, 0);
    if b.get(open) != Some(&b'{') {
        return None;
    }
    let mut members = Vec::new();
    let mut i = skip_ws(b, open + 1);
    loop {
        match b.get(i)? {
            b'}' => return Some(TopLevel { open, close: i, members }),
            b',' => i = skip_ws(b, i + 1),
            b'"' => {
                let key_start = i;
                let key_end = skip_string(b, i);
                let key: String = serde_json::from_str(text.get(key_start..key_end)?).ok()?;
                i = skip_ws(b, key_end);
                if b.get(i) != Some(&b':') {
                    return None;
                }
                let value_start = skip_ws(b, i + 1);
                let value_end = skip_value(b, value_start);
                members.push(Member { key, key_start, value_start, value_end });
                i = skip_ws(b, value_end);
            }
            _ => return None,
        }
    }
}

/// The indentation before `pos` when `pos` starts a line (after blanks); `None` when something
/// else precedes it on its line (a minified document).
fn line_indent(text: &str, pos: usize) -> Option<&str> {
    let line_start = text[..pos].rfind('\n').map_or(0, |p| p + 1);
    let indent = &text[line_start..pos];
    (line_start > 0 && indent.bytes().all(|c| c == b' ' || c == b'\t')).then_some(indent)
}

/// Render `value` to sit after `"key": ` at nesting depth one with `unit` as the indentation
/// step, or compactly when `unit` is `None`.
#[must_use]
pub fn render_value(value: &Value, unit: Option<&str>) -> String {
    let Some(unit) = unit else { return value.to_string() };
    let mut buf = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, PrettyFormatter::with_indent(unit.as_bytes()));
    if serde::Serialize::serialize(value, &mut ser).is_err() {
        return value.to_string();
    }
    let pretty = String::from_utf8_lossy(&buf);
    let mut out = String::with_capacity(pretty.len() + 64);
    for (n, line) in pretty.split('\n').enumerate() {
        if n > 0 {
            out.push('\n');
            out.push_str(unit);
        }
        out.push_str(line);
    }
    out
}

/// A fresh document holding only `key`, pretty-printed with two spaces, ending in a newline.
#[must_use]
pub fn fresh_document(key: &str, value: &Value) -> String {
    format!("{{\n  {}: {}\n}}\n", Value::from(key), render_value(value, Some("  ")))
}

/// Replace the value of `key` in `original` (whose blanked form gave `top`), or append the member,
/// following the document's own indentation style.
#[must_use]
pub fn set_member(original: &str, top: &TopLevel, key: &str, value: &Value) -> String {
    let key_json = Value::from(key).to_string();
    if let Some(m) = top.find(key) {
        let unit = line_indent(original, m.key_start);
        let rendered = render_value(value, unit.filter(|u| !u.is_empty()).or(unit.map(|_| "  ")));
        return [&original[..m.value_start], &rendered, &original[m.value_end..]].concat();
    }
    if let Some(last) = top.members.last() {
        let (sep, unit) = match line_indent(original, last.key_start) {
            Some(indent) => (format!(",\n{indent}"), Some(if indent.is_empty() { "  " } else { indent })),
            None => (",".to_owned(), None),
        };
        let colon = if unit.is_some() { ": " } else { ":" };
        let member = format!("{sep}{key_json}{colon}{}", render_value(value, unit));
        [&original[..last.value_end], &member, &original[last.value_end..]].concat()
    } else {
        let inner = &original[top.open + 1..top.close];
        let tail = if inner.contains('\n') { "" } else { "\n" };
        let member = format!("\n  {key_json}: {}{tail}", render_value(value, Some("  ")));
        [&original[..=top.open], &member, &original[top.open + 1..]].concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn blanks_comments_and_trailing_commas_keeping_offsets() {
        let src = "{\n  // note \u{e9}\n  \"a\": \"//not\", /* b */ \"b\": [1,2,],\n}\n";
        let out = blank_comments(src);
        assert_eq!(out.len(), src.len());
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v, json!({"a": "//not", "b": [1, 2]}));
        assert_eq!(out.matches('\n').count(), src.matches('\n').count());
        assert!(matches!(blank_comments("{\"a\": 1}"), Cow::Borrowed(_)));
        assert!(matches!(blank_comments("{\"a\": \"x,}\"}"), Cow::Borrowed(_)));
    }

    #[test]
    fn finds_members() {
        let src = r#" { "a" : 1, "b\"q": {"x": "}"}, "c": [ ], "a": null } "#;
        let top = top_level(src).unwrap();
        let keys: Vec<_> = top.members.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, ["a", "b\"q", "c", "a"]);
        let a = top.find("a").unwrap();
        assert_eq!(&src[a.value_start..a.value_end], "null");
        let b = top.find("b\"q").unwrap();
        assert_eq!(&src[b.value_start..b.value_end], r#"{"x": "}"}"#);
        assert!(top_level("[1]").is_none());
        assert_eq!(top_level("{}").unwrap().members, []);
    }

    #[test]
    fn replaces_and_appends_in_the_documents_style() {
        let v = json!({"s": {"command": "x"}});
        let src = "{\n    \"a\": 1,\n    \"mcp\": {}\n}\n";
        let out = set_member(src, &top_level(src).unwrap(), "mcp", &v);
        assert_eq!(
            out,
            "{\n    \"a\": 1,\n    \"mcp\": {\n        \"s\": {\n            \"command\": \"x\"\n        }\n    }\n}\n"
        );
        let src = "{\n\t\"a\": 1 // c\n}";
        let out = set_member(src, &top_level(&blank_comments(src)).unwrap(), "mcp", &json!({}));
        assert_eq!(out, "{\n\t\"a\": 1,\n\t\"mcp\": {} // c\n}");
        let src = r#"{"a":1}"#;
        assert_eq!(set_member(src, &top_level(src).unwrap(), "m", &v), r#"{"a":1,"m":{"s":{"command":"x"}}}"#);
        for src in ["{}", "{\n}"] {
            let out = set_member(src, &top_level(src).unwrap(), "m", &json!({}));
            assert_eq!(out, "{\n  \"m\": {}\n}");
        }
        assert_eq!(fresh_document("m", &json!({})), "{\n  \"m\": {}\n}\n");
    }
}
