//! A small unified-style diff for `--dry-run`.
//!
//! Our edits touch one region of the file, so the common head and tail are trimmed first and only
//! the middle is diffed (LCS when small, plain replace otherwise): fast on a 5 MB `~/.claude.json`.

const CONTEXT: usize = 3;
const LCS_LIMIT: usize = 4_000_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Keep,
    Del,
    Add,
}

/// `--- old_name` / `+++ new_name` and `@@` hunks; empty when the texts are equal.
#[must_use]
pub fn unified(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    if old == new {
        return String::new();
    }
    let a: Vec<&str> = old.split_inclusive('\n').collect();
    let b: Vec<&str> = new.split_inclusive('\n').collect();
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let tail = a[head..].iter().rev().zip(b[head..].iter().rev()).take_while(|(x, y)| x == y).count();
    let (ma, mb) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    let mut ops: Vec<(Op, &str)> = a[..head].iter().map(|l| (Op::Keep, *l)).collect();
    ops.extend(middle(ma, mb));
    ops.extend(a[a.len() - tail..].iter().map(|l| (Op::Keep, *l)));

    let mut out = format!("--- {old_name}\n+++ {new_name}\n");
    let changed: Vec<usize> = ops.iter().enumerate().filter(|(_, (o, _))| *o != Op::Keep).map(|(i, _)| i).collect();
    let mut i = 0;
    while i < changed.len() {
        let start = changed[i].saturating_sub(CONTEXT);
        let mut end = changed[i];
        while i < changed.len() && changed[i] <= end + 2 * CONTEXT {
            end = changed[i];
            i += 1;
        }
        let end = (end + CONTEXT + 1).min(ops.len());
        let line_of = |upto: usize, skip: Op| ops[..upto].iter().filter(|(o, _)| *o != skip).count();
        let (a0, b0) = (line_of(start, Op::Add), line_of(start, Op::Del));
        let (alen, blen) = (line_of(end, Op::Add) - a0, line_of(end, Op::Del) - b0);
        out.push_str(&format!("@@ -{},{alen} +{},{blen} @@\n", a0 + usize::from(alen > 0), b0 + usize::from(blen > 0)));
        for (op, line) in &ops[start..end] {
            out.push(match op {
                Op::Keep => ' ',
                Op::Del => '-',
                Op::Add => '+',
            });
            out.push_str(line);
            if !line.ends_with('\n') {
                out.push_str("\n\\ No newline at end of file\n");
            }
        }
    }
    out
}

#[allow(clippy::many_single_char_names)]
fn middle<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<(Op, &'a str)> {
    if a.len().saturating_mul(b.len()) > LCS_LIMIT {
        return a.iter().map(|l| (Op::Del, *l)).chain(b.iter().map(|l| (Op::Add, *l))).collect();
    }
    // lcs[i][j]: length of the LCS of a[i..] and b[j..].
    let w = b.len() + 1;
    let mut lcs = vec![0u32; (a.len() + 1) * w];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i * w + j] =
                if a[i] == b[j] { lcs[(i + 1) * w + j + 1] + 1 } else { lcs[(i + 1) * w + j].max(lcs[i * w + j + 1]) };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::with_capacity(a.len() + b.len()));
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push((Op::Keep, a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[(i + 1) * w + j] >= lcs[i * w + j + 1]) {
            out.push((Op::Del, a[i]));
            i += 1;
        } else {
            out.push((Op::Add, b[j]));
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hunks_with_context() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\n";
        let new = "a\nb\nc\nd\nE\nf\ng\nh\n";
        assert_eq!(unified(old, new, "x", "y"), "--- x\n+++ y\n@@ -2,7 +2,7 @@\n b\n c\n d\n-e\n+E\n f\n g\n h\n");
        assert_eq!(unified(old, old, "x", "y"), "");
        assert_eq!(unified("", "a\n", "x", "y"), "--- x\n+++ y\n@@ -0,0 +1,1 @@\n+a\n");
    }
}
