//! The repository as a cell sees it: a private git directory of the launch's own.
//!
//! The cell never writes the host's git directory. At launch the launcher seeds a fresh
//! directory in the cell's host state (`HEAD`, the index, refs, `info/`, a generated
//! `config` with only the repository format, the extensions and the host user's identity)
//! whose `objects/info/alternates` names the host's object store, bound read-only inside.
//! That directory is bound over the worktree's `.git`, so git inside works normally and
//! every write (objects, refs, index, config, hooks) lands in the cell's own copy. The host
//! repository, its config and its hooks are out of the cell's reach, and no placeholder
//! or bind on a host path inside `.git` exists for a host-side rename to lift.
//!
//! When the cell ends (and on `cell git sync`) the branches the cell changed are brought
//! over as `cell/<cell>/<branch>`, by host git reading only the host's own configuration:
//! the cell's object store is an alternate for `rev-list` and `pack-objects`, the pack is
//! verified by `index-pack --strict` into the host's store, and a branch is created only if
//! everything it reaches is then in the host's store. Nothing in the cell's directory is
//! executed or read as configuration on the host.
//!
//! What mounts cannot hold (nested repositories, protected paths the cell creates or the
//! host replaces) is contained by [`crate::host::containment`], which a [`Session`] carries.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};

use crate::contract::{HOST_OBJECTS_INSIDE, PRIVATE_INSIDE};
use crate::host::manifest::Manifest;
use anyhow::{bail, Context as _};
use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};

/// The repository view of one launch, as planned.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GitView {
    /// The cell's name (its branches come back as `cell/<cell>/...`).
    pub cell: String,
    /// The worktree.
    pub worktree: Utf8PathBuf,
    /// The host's git directory of the worktree (`.git`, or where a `.git` file points).
    pub host_git_dir: Utf8PathBuf,
    /// Its common directory (objects and refs; the same unless a linked worktree).
    pub host_common_dir: Utf8PathBuf,
    /// Whether the worktree's `.git` is a file (a linked worktree or a submodule).
    pub gitfile: bool,
    /// The private git directory of this launch (host path), bound read-write inside.
    pub private: Utf8PathBuf,
    /// The launch's record beside it (host only: the seed refs the sync compares with).
    pub record: Utf8PathBuf,
    /// Submodule git directories under `modules/` (relative names), seeded likewise.
    pub modules: Vec<String>,
    /// Host git, for the sync (never from a place the cell can write).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git: Option<Utf8PathBuf>,
    /// The host user's home and XDG config directory (their git identity).
    #[serde(skip)]
    pub identity_dirs: (Utf8PathBuf, Utf8PathBuf),
}

/// Plans the view for `worktree`; `state` is the cell's host state directory.
///
/// # Errors
/// When `.git` is a link or a `.git` file that does not name a git directory.
pub fn plan(
    cell: &str,
    worktree: &Utf8Path,
    state: &Utf8Path,
    git: Option<Utf8PathBuf>,
    host: &crate::host::hostenv::HostEnv,
) -> Result<Option<GitView>, String> {
    let Some(HostGitDirs { git_dir: host_git_dir, common_dir: host_common_dir, gitfile }) = host_git_dirs(worktree)?
    else {
        return Ok(None);
    };
    let mut modules = Vec::new();
    find_modules(&host_common_dir.join("modules"), "", &mut modules);
    // The launcher's pid and the time: a directory that a launch with the same pid left
    // (kept, or not yet removed) never stands in the way.
    let id = plan_name();
    let dir = state.join("git");
    Ok(Some(GitView {
        cell: cell.to_owned(),
        worktree: worktree.to_owned(),
        host_git_dir,
        host_common_dir,
        gitfile,
        private: dir.join(&id),
        record: dir.join(format!("{id}.json")),
        modules,
        git,
        identity_dirs: (host.home.clone(), host.config_home()),
    }))
}

/// The git directories of the repository whose top is `worktree`.
pub(crate) struct HostGitDirs {
    /// `.git`, or the directory a `.git` file names.
    pub git_dir: Utf8PathBuf,
    /// Where `commondir` in it leads (the main repository's `.git` for a linked
    /// worktree), else the git directory itself.
    pub common_dir: Utf8PathBuf,
    /// Whether `.git` is a `gitdir:` file.
    gitfile: bool,
}

/// The git directories of `worktree`, as host git finds them (the `.git` file read as git
/// reads it, [`gitfile_target`]); `None` without a `.git`.
///
/// # Errors
/// When `.git` is a link, or a file that does not name a git directory.
pub(crate) fn host_git_dirs(worktree: &Utf8Path) -> Result<Option<HostGitDirs>, String> {
    let dot = worktree.join(".git");
    let Ok(meta) = std::fs::symlink_metadata(&dot) else { return Ok(None) };
    if meta.file_type().is_symlink() {
        return Err(format!(
            "{dot} is a symbolic link, which the cell could swap; replace it with the git directory it points to"
        ));
    }
    if meta.is_dir() {
        return Ok(Some(HostGitDirs { git_dir: dot.clone(), common_dir: dot, gitfile: false }));
    }
    let text = crate::sys::read_no_follow(&dot).map_err(|e| format!("{dot}: {e}"))?;
    let target = gitfile_target(text.as_bytes())
        .and_then(|t| std::str::from_utf8(t).ok())
        .ok_or_else(|| format!("{dot} is a file but not a `gitdir: PATH` link"))?;
    let path = Utf8Path::new(target);
    let path = if path.is_absolute() { path.to_owned() } else { worktree.join(path) };
    let git_dir =
        crate::sys::canonical_utf8(&path).map_err(|e| format!("{dot} points to {path}, which cannot be used: {e}"))?;
    if !git_dir.join("HEAD").is_file() {
        return Err(format!("{git_dir} has no HEAD, so it is not a git directory"));
    }
    let common_dir = match std::fs::read_to_string(git_dir.join("commondir")) {
        Ok(c) => {
            let p = Utf8Path::new(c.trim());
            let p = if p.is_absolute() { p.to_owned() } else { git_dir.join(p) };
            crate::sys::canonical_utf8(&p).map_err(|e| format!("{git_dir}/commondir names {p}: {e}"))?
        }
        Err(_) => git_dir.clone(),
    };
    Ok(Some(HostGitDirs { git_dir, common_dir, gitfile: true }))
}

/// The path a gitfile names, as git's `read_gitfile` takes it: `gitdir: ` and then the
/// path with only the file's trailing newlines and carriage returns dropped (leading spaces
/// belong to the path: a trimmed reading would follow another link than git does). `None`
/// for a file holding any other control character, a NUL above all: git drops the
/// newlines at the end of the whole file and then stops at the NUL, so `gitdir: X\n\0`
/// names `X` and a newline to git; no reading of such a file can be sure to be git's.
#[must_use]
pub(crate) fn gitfile_target(text: &[u8]) -> Option<&[u8]> {
    let mut rest = text.strip_prefix(b"gitdir: ")?;
    while let [head @ .., b'\n' | b'\r'] = rest {
        rest = head;
    }
    (!rest.is_empty() && !rest.iter().any(|b| *b < 0x20 || *b == 0x7f)).then_some(rest)
}

/// The repository's own config files host git reads in `worktree`: `.git/config` where
/// `.git` is the git directory; where `.git` is a `gitdir: PATH` file (a linked worktree, a
/// submodule), the config of the common git directory it leads to and the worktree's own
/// `config.worktree`. None where there is no repository (or `.git` is a link: refused
/// elsewhere).
fn repository_config_files(worktree: &Utf8Path) -> Vec<Utf8PathBuf> {
    match host_git_dirs(worktree) {
        Ok(Some(d)) if d.gitfile => vec![d.common_dir.join("config"), d.git_dir.join("config.worktree")],
        Ok(Some(d)) => vec![d.git_dir.join("config")],
        _ => Vec::new(),
    }
}

/// Config keys whose value host git runs (or reads as more config): when one names a file
/// in the worktree, host git would run what the cell wrote there.
const COMMAND_KEYS: [&str; 10] = [
    "core.fsmonitor",
    "core.sshcommand",
    "core.pager",
    "core.editor",
    "core.askpass",
    "sequence.editor",
    "diff.external",
    "credential.helper",
    "gpg.program",
    "include.path",
];

/// Whether host git runs `value` of `key` as a command (or a program): the listed keys,
/// drivers and helpers (`filter.*.clean`, `merge.*.driver`, `diff.*.command`,
/// `credential.*.helper`, `difftool.*.cmd`, any `*.program`...), a pager of a command
/// (`pager.log`), and a shell alias (`alias.st = !./tools/st`).
fn is_command_key(key: &str, value: &str) -> bool {
    const SUFFIXES: [&str; 9] =
        [".textconv", ".clean", ".smudge", ".process", ".driver", ".command", ".helper", ".cmd", ".program"];
    const MORE: [&str; 12] = [
        "gpg.ssh.defaultkeycommand",
        "interactive.difffilter",
        "core.gitproxy",
        "core.alternaterefscommand",
        "uploadpack.packobjectshook",
        "sendemail.validate",
        "sendemail.sendmailcmd",
        "sendemail.smtpserver",
        "sendemail.tocmd",
        "sendemail.cccmd",
        "sendemail.headercmd",
        "imap.tunnel",
    ];
    let last = key.rsplit('.').next().unwrap_or_default();
    // The program of a tool (`mergetool.meld.path`); `submodule.*.path` is a directory.
    let tool_path =
        ["mergetool.", "difftool.", "browser.", "man."].iter().any(|s| key.starts_with(s)) && last == "path";
    COMMAND_KEYS.contains(&key)
        || MORE.contains(&key)
        || SUFFIXES.iter().any(|s| key.ends_with(s))
        || tool_path
        || key.starts_with("pager.")
        || (key.starts_with("remote.") && (key.ends_with(".uploadpack") || key.ends_with(".receivepack")))
        // Every alias: a shell one runs its words, another may set a command key
        // (`s = -c core.fsmonitor=tools/fsmon status`).
        || key.starts_with("alias.")
        // `!cmd` as a submodule's update, and the `ext::` transport's command (an URL or
        // a rewrite of one).
        || (key.starts_with("submodule.") && last == "update" && value.trim_start().starts_with('!'))
        || (matches!(last, "url" | "insteadof" | "pushinsteadof")
            && value.trim_start().starts_with("ext::"))
}

/// A config entry host git reads that may name a path: key, value, and the directory its
/// relative paths are taken from (the directory of the file it came from).
pub type Rule = (String, String, Utf8PathBuf);

/// How many config files one reading follows through `include.path` (git itself stops at a
/// depth of 10).
const MAX_INCLUDED: usize = 32;

/// The rules of the system's and the user's git config files (and a root launcher's own
/// global files, read before it dropped root), included files followed: what host git
/// applies to every repository. Only the keys that can name a path are kept.
#[must_use]
pub fn host_rules(host: &crate::host::hostenv::HostEnv) -> Vec<Rule> {
    let mut files: Vec<Utf8PathBuf> = vec![Utf8PathBuf::from("/etc/gitconfig")];
    files.extend(host.git_global_config_files());
    let mut out = Vec::new();
    let mut budget = MAX_INCLUDED;
    for file in files {
        rules_of_file(&file, &host.home, &mut budget, &|_| true, &mut out);
    }
    for (file, text) in host.run_as.iter().flat_map(|r| r.invoker_git.iter()) {
        rules_of_text(text, file, &host.home, &mut budget, &|_| true, &mut out);
    }
    out
}

/// Which config files a reading follows: all of them, or (at exit) only those the cell
/// did not change: what one it changed says is not the host's, and it is set aside itself.
type Follow<'a> = &'a dyn Fn(&Utf8Path) -> bool;

/// The rules of config file `file` and of the files it includes, at most `budget` files.
fn rules_of_file(file: &Utf8Path, home: &Utf8Path, budget: &mut usize, follow: Follow<'_>, out: &mut Vec<Rule>) {
    if *budget == 0 || !follow(file) {
        return;
    }
    *budget -= 1;
    if let Some(text) = read_config_text(file) {
        rules_of_text(&text, file, home, budget, follow, out);
    }
}

/// The rules of config text read from `file`, and of the files it includes: an included
/// file's relative paths are its own directory's (as git takes them). Every `includeIf` is
/// followed, whatever its condition: what it would include under some other condition is
/// held too.
fn rules_of_text(
    text: &str,
    file: &Utf8Path,
    home: &Utf8Path,
    budget: &mut usize,
    follow: Follow<'_>,
    out: &mut Vec<Rule>,
) {
    let base = file.parent().map_or_else(|| Utf8PathBuf::from("/"), Utf8Path::to_owned);
    for (key, value) in parse_config(text) {
        if !names_a_path(&key, &value) {
            continue;
        }
        if is_include(&key) {
            let included = config_path(&value, &base, home);
            out.push((key, value, base.clone()));
            rules_of_file(&included, home, budget, follow, out);
        } else {
            out.push((key, value, base.clone()));
        }
    }
}

/// A config file's text, read without blocking (a FIFO there never stalls the launcher)
/// and at most 1 MiB.
fn read_config_text(path: &Utf8Path) -> Option<String> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        return None;
    }
    let mut text = String::new();
    f.take(1 << 20).read_to_string(&mut text).ok()?;
    Some(text)
}

fn is_include(key: &str) -> bool {
    key == "include.path" || (key.starts_with("includeif.") && key.rsplit('.').next() == Some("path"))
}

/// Whether host git takes `value` of `key` as a path it reads or a program it runs.
fn names_a_path(key: &str, value: &str) -> bool {
    key == "core.hookspath"
        || key == "init.templatedir"
        || is_include(key)
        || key == "core.attributesfile"
        || key == "core.excludesfile"
        || is_command_key(key, value)
}

/// A path-valued config entry as git resolves it: `~/` is the home, a relative path is
/// taken from `base`; `.` and `..` applied by their words.
fn config_path(value: &str, base: &Utf8Path, home: &Utf8Path) -> Utf8PathBuf {
    let v = value.trim();
    let v = match v.strip_prefix('~') {
        Some(r) if r.is_empty() || r.starts_with('/') => home.join(r.trim_start_matches('/')),
        // `~name/...`: that account's home, as git finds it.
        Some(r) => {
            let (name, rest) = r.split_once('/').unwrap_or((r, ""));
            match nix::unistd::User::from_name(name).ok().flatten().and_then(|u| Utf8PathBuf::from_path_buf(u.dir).ok())
            {
                Some(h) => h.join(rest),
                None => Utf8PathBuf::from(v),
            }
        }
        None => Utf8PathBuf::from(v),
    };
    crate::sys::normalise(&if v.is_absolute() { v } else { base.join(v) })
}

/// Paths in the worktree that host git reads as configuration or runs, as the host's
/// repository and user config name them, relative to the worktree (a trailing `/` marks a
/// directory):
/// - the `core.hooksPath` directory, and the top-level dot-directory it lies in (husky's
///   `.husky/_` sources `.husky/pre-commit`);
/// - files included as config (`include.path`, `includeIf.*.path`), and what the config
///   they hold names in turn;
/// - the program of a command-valued key (`core.fsmonitor = ./tools/watch`, filter, diff and
///   merge drivers, `*.textconv`) when it is a path into the worktree.
///
/// `rules` are the host's ([`host_rules`]); the repository's own config files are read here
/// (the repository's config is the host's: the cell never writes it).
#[must_use]
pub fn host_config_paths(worktree: &Utf8Path, rules: &[Rule], home: &Utf8Path) -> Vec<String> {
    // The repository host git uses here: the worktree's own, or the one it lies in (a
    // worktree below the repository's top, as in a monorepo).
    let Some((repo_top, repo_configs)) =
        worktree.ancestors().map(|d| (d.to_owned(), repository_config_files(d))).find(|(_, files)| !files.is_empty())
    else {
        return Vec::new();
    };
    named_paths(&with_files(rules, &repo_configs, home, &|_| true), worktree, &repo_top, home)
}

/// `rules` and those of the config files of the repository at `repo` (its top; `bare`: its
/// git directory), included files followed where `follow` says.
#[must_use]
pub fn repository_rules(repo: &Utf8Path, bare: bool, rules: &[Rule], home: &Utf8Path, follow: Follow<'_>) -> Vec<Rule> {
    let files = if bare { vec![repo.join("config")] } else { repository_config_files(repo) };
    with_files(rules, &files, home, follow)
}

fn with_files(rules: &[Rule], files: &[Utf8PathBuf], home: &Utf8Path, follow: Follow<'_>) -> Vec<Rule> {
    let mut all = rules.to_vec();
    let mut budget = MAX_INCLUDED;
    for file in files {
        rules_of_file(file, home, &mut budget, follow, &mut all);
    }
    all
}

/// What a named path is to host git.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named {
    /// A hooks directory (`core.hooksPath`), or the dot-directory it lies in.
    Hooks,
    /// A file git reads as config, attributes or excludes.
    File,
    /// A word of a command git runs that may be a path: the program, a script handed to an
    /// interpreter, or only an argument (`./src` of `!npx eslint ./src`).
    Word,
}

/// The paths in `worktree` (relative to it) that `rules` name for the repository whose top
/// (or, bare, whose git directory) is `repo_top`: see [`host_config_paths`].
#[must_use]
pub fn named_paths(rules: &[Rule], worktree: &Utf8Path, repo_top: &Utf8Path, home: &Utf8Path) -> Vec<String> {
    let mut out: Vec<String> = named(rules, worktree, repo_top, home).into_iter().map(|(p, _)| p).collect();
    out.sort();
    out.dedup();
    out
}

/// [`named_paths`], each with what it is; a directory ends in `/`.
#[must_use]
pub fn named(rules: &[Rule], worktree: &Utf8Path, repo_top: &Utf8Path, home: &Utf8Path) -> Vec<(String, Named)> {
    let inside = |abs: &Utf8Path, dir: bool| -> Option<String> {
        let rel = abs.strip_prefix(worktree).ok()?;
        if rel.as_str().is_empty() || rel.starts_with(".git") || abs.starts_with(repo_top.join(".git")) {
            return None;
        }
        Some(if dir { format!("{rel}/") } else { rel.to_string() })
    };
    // The top-level dot-directory of a hooks path is counted from the repository's top
    // where it lies in the worktree, else from the worktree's.
    let hooks_from = if repo_top.starts_with(worktree) { repo_top } else { worktree };
    let mut out = Vec::new();
    for (key, value, base) in rules {
        if key == "init.templatedir" {
            // Its `hooks/` become every new repository's (`git init`, `git clone`).
            out.extend(inside(&config_path(value, base, home), true).map(|p| (p, Named::Hooks)));
        } else if key == "core.hookspath" {
            // Relative hook paths are relative to the repository's top.
            let abs = config_path(value, repo_top, home);
            if let Some(rel) = inside(&abs, true) {
                if let Ok(in_top) = abs.strip_prefix(hooks_from) {
                    let mut parts = in_top.components();
                    let first = parts.next().map(|c| c.as_str()).unwrap_or("");
                    if first.starts_with('.') && first.len() > 1 && parts.next().is_some() {
                        out.extend(inside(&hooks_from.join(first), true).map(|p| (p, Named::Hooks)));
                    }
                }
                out.push((rel, Named::Hooks));
            }
        } else if is_include(key) {
            // An included file is found from the directory of the file that includes it.
            out.extend(inside(&config_path(value, base, home), false).map(|p| (p, Named::File)));
        } else if key == "core.attributesfile" || key == "core.excludesfile" {
            // These git reads from where it works: the repository's top.
            out.extend(inside(&config_path(value, repo_top, home), false).map(|p| (p, Named::File)));
        } else if is_command_key(key, value) {
            // Commands run at the repository's top (a shell's, for `!` aliases and most
            // drivers): every word that may name a file there or in a directory the command
            // changes to.
            let command = value.trim().trim_start_matches('!');
            let (words, dirs) = shell_words(command.strip_prefix("ext::").unwrap_or(command));
            let bases: Vec<Utf8PathBuf> = std::iter::once(repo_top.to_owned())
                .chain(dirs.iter().map(|d| config_path(d, repo_top, home)))
                .collect();
            for word in &words {
                for base in &bases {
                    let abs = config_path(word, base, home);
                    // A bare name counts where it is a file (`sh st.sh`); one with a slash
                    // is a path whatever is there now.
                    if word.contains('/') || std::fs::symlink_metadata(&abs).is_ok_and(|m| m.is_file()) {
                        out.extend(inside(&abs, false).map(|p| (p, Named::Word)));
                    }
                }
            }
        }
    }
    out
}

/// The words of shell command `cmd` that may be paths, and the directories it changes to
/// (`cd DIR`, `pushd DIR`): split at blanks and at the shell's operators (`;`, `&&`, `|`,
/// redirections, parentheses, braces), quotes dropped, and the words after `=` in an
/// assignment or an option (`--config=./x`). An expansion that leads a path (`$(git rev-parse
/// --show-toplevel)/x`, `$ROOT/x`, `` `pwd`/x ``) stands for the repository's top, where the
/// command runs.
fn shell_words(cmd: &str) -> (Vec<String>, Vec<String>) {
    let text = without_expansions(cmd);
    let mut tokens: Vec<String> = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        match c {
            '"' | '\'' | '\\' => {}
            c if c.is_whitespace() || ";&|()<>{}".contains(c) => {
                if !cur.is_empty() {
                    tokens.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        tokens.push(cur);
    }
    let mut words = Vec::new();
    let mut dirs = Vec::new();
    let mut after_cd = false;
    for t in tokens {
        if after_cd && !t.starts_with('-') {
            dirs.push(t.clone());
        }
        after_cd = t == "cd" || t == "pushd";
        match t.rsplit_once('=') {
            // An assignment or an option's value: the value is the word.
            Some((_, v)) if !v.is_empty() => words.push(v.to_owned()),
            Some(_) => {}
            None if t.starts_with('-') => {}
            None => words.push(t),
        }
    }
    (words, dirs)
}

/// `cmd` with each expansion (`$(...)`, `` `...` ``, `${...}`, `$NAME`) that is followed by
/// `/` replaced by `.`, and every other one by a blank.
fn without_expansions(cmd: &str) -> String {
    let chars: Vec<char> = cmd.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let end = match (chars[i], chars.get(i + 1)) {
            ('$', Some('(')) => Some(closing(&chars, i + 1, '(', ')')),
            ('$', Some('{')) => Some(closing(&chars, i + 1, '{', '}')),
            ('`', _) => chars[i + 1..].iter().position(|c| *c == '`').map(|p| i + 1 + p),
            ('$', Some(c)) if c.is_ascii_alphanumeric() || *c == '_' => {
                let n = chars[i + 1..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == '_').count();
                Some(i + n)
            }
            _ => None,
        };
        if let Some(e) = end {
            let leads = chars.get(e + 1) == Some(&'/');
            out.push(if leads { '.' } else { ' ' });
            i = e + 1;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// The index of the `close` that matches the `open` at `at` (nested pairs counted); the
/// last character when there is none.
fn closing(chars: &[char], at: usize, open: char, close: char) -> usize {
    let mut depth = 0usize;
    for (i, c) in chars.iter().enumerate().skip(at) {
        if *c == open {
            depth += 1;
        } else if *c == close {
            depth -= 1;
            if depth == 0 {
                return i;
            }
        }
    }
    chars.len() - 1
}

/// Submodule git directories below `dir` (each holds a `HEAD`; names may have slashes).
fn find_modules(dir: &Utf8Path, prefix: &str, out: &mut Vec<String>) {
    let Ok(entries) = dir.read_dir_utf8() else { return };
    let mut names: Vec<String> = entries.flatten().map(|e| e.file_name().to_owned()).collect();
    names.sort();
    for n in names {
        let p = dir.join(&n);
        if !std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        let rel = if prefix.is_empty() { n.clone() } else { format!("{prefix}/{n}") };
        if p.join("HEAD").is_file() && p.join("objects").is_dir() {
            out.push(rel.clone());
            find_modules(&p.join("modules"), &format!("{rel}/modules"), out);
        } else {
            find_modules(&p, &rel, out);
        }
    }
}

impl GitView {
    /// Inside path of the private directory.
    #[must_use]
    pub fn inside(&self) -> Utf8PathBuf {
        if self.gitfile {
            PRIVATE_INSIDE.into()
        } else {
            self.worktree.join(".git")
        }
    }

    /// Host object stores bound read-only inside: (host, inside).
    #[must_use]
    pub fn object_binds(&self) -> Vec<(Utf8PathBuf, Utf8PathBuf)> {
        let base = Utf8Path::new(HOST_OBJECTS_INSIDE);
        let mut out = vec![(self.host_common_dir.join("objects"), base.join("objects"))];
        for m in &self.modules {
            let rel = format!("modules/{m}/objects");
            out.push((self.host_common_dir.join(&rel), base.join(&rel)));
        }
        out
    }
}

/// The record a launch keeps beside its private directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// Cell name.
    pub cell: String,
    /// Pid of the launcher.
    pub launcher: u32,
    /// The worktree.
    pub worktree: Utf8PathBuf,
    /// The host common directory the branches are brought to.
    pub host_common_dir: Utf8PathBuf,
    /// Branches (`refs/heads/...`) and their commits when the private directory was seeded.
    pub seed: BTreeMap<String, String>,
    /// The alternates file as seeded (the sync refuses a directory whose alternates changed).
    pub alternates: String,
}

/// A key of a git config file and its value (section and key lowercased; subsection kept).
type ConfigEntry = (String, String);

/// Reads a git config file (the subset git writes: sections, subsections, `key = value`,
/// quotes, comments). Includes are not followed.
fn read_config(path: &Utf8Path) -> Vec<ConfigEntry> {
    read_config_text(path).map(|t| parse_config(&t)).unwrap_or_default()
}

/// The directory `core.worktree` of the git directory `git_dir` names (relative to it),
/// links resolved; `None` without one.
#[must_use]
pub(crate) fn core_worktree(git_dir: &std::path::Path) -> Option<std::path::PathBuf> {
    let config = Utf8PathBuf::from_path_buf(git_dir.join("config")).ok()?;
    let value = read_config(&config).into_iter().rev().find(|(k, _)| k == "core.worktree")?.1;
    crate::sys::canonical(&git_dir.join(value)).ok()
}

/// Parses git config text as git does ([`crate::host::gitconfig`]).
fn parse_config(text: &str) -> Vec<ConfigEntry> {
    crate::host::gitconfig::parse(text)
}

fn last<'a>(entries: &'a [ConfigEntry], key: &str) -> Option<&'a str> {
    entries.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Quotes a config value.
fn quote(v: &str) -> String {
    let mut s = String::from("\"");
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\t' => s.push_str("\\t"),
            c if c.is_control() => {}
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// The host user's `user.name` and `user.email`, from their global git configuration.
fn identity(home: &Utf8Path, xdg_config: &Utf8Path, git: Option<&Utf8Path>) -> Vec<(String, String)> {
    let mut entries = read_config(&xdg_config.join("git/config"));
    entries.extend(read_config(&home.join(".gitconfig")));
    let mut out = Vec::new();
    for key in ["user.name", "user.email"] {
        let includes = entries.iter().any(|(k, _)| k.starts_with("include.") || k.starts_with("includeif."));
        let value = last(&entries, key).map(str::to_owned).or_else(|| {
            // Includes and conditional includes: ask git (it reads only the host user's
            // files); without any, the files read above are all there is.
            if !includes {
                return None;
            }
            let out = Command::new(git?)
                .args(["config", "--global", "--get", key])
                .env_clear()
                .env("HOME", home)
                .env("XDG_CONFIG_HOME", xdg_config)
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .ok()?;
            let v = String::from_utf8(out.stdout).ok()?;
            let v = v.trim();
            (!v.is_empty()).then(|| v.to_owned())
        });
        if let Some(v) = value {
            out.push((key.to_owned(), v));
        }
    }
    out
}

/// The private config: the repository format, extensions, sparse checkout, worktree
/// location (submodules), which submodules are active, and the identity. Nothing that
/// names a program, a remote or a credential.
fn private_config(host_config: &[ConfigEntry], identity: &[(String, String)], worktree: Option<&str>) -> String {
    let mut core = vec![
        (
            "repositoryformatversion".to_owned(),
            last(host_config, "core.repositoryformatversion").unwrap_or("0").to_owned(),
        ),
        ("bare".to_owned(), "false".to_owned()),
        ("logallrefupdates".to_owned(), "true".to_owned()),
    ];
    for k in ["filemode", "symlinks", "ignorecase", "precomposeunicode", "sparsecheckout", "sparsecheckoutcone"] {
        if let Some(v) = last(host_config, &format!("core.{k}")) {
            core.push((k.to_owned(), v.to_owned()));
        }
    }
    if let Some(w) = worktree {
        core.push(("worktree".to_owned(), w.to_owned()));
    }
    let mut s = String::from(
        "# Written by cell for this cell only: the host repository's configuration never reaches the cell.\n[core]\n",
    );
    for (k, v) in core {
        s.push_str(&format!("\t{k} = {}\n", quote(&v)));
    }
    let ext: Vec<&ConfigEntry> = host_config.iter().filter(|(k, _)| k.starts_with("extensions.")).collect();
    if !ext.is_empty() {
        s.push_str("[extensions]\n");
        for (k, v) in ext {
            let key = &k["extensions.".len()..];
            if key.chars().all(|c| c.is_ascii_alphanumeric()) {
                s.push_str(&format!("\t{key} = {}\n", quote(v)));
            }
        }
    }
    let mut subs: Vec<&str> = host_config
        .iter()
        .filter_map(|(k, _)| k.strip_prefix("submodule.")?.strip_suffix(".url"))
        .filter(|n| !n.contains(['"', '\n', '\\', ']']))
        .collect();
    subs.sort_unstable();
    subs.dedup();
    for n in subs {
        s.push_str(&format!("[submodule \"{n}\"]\n\tactive = true\n"));
    }
    if !identity.is_empty() {
        s.push_str("[user]\n");
        for (k, v) in identity {
            s.push_str(&format!("\t{} = {}\n", &k["user.".len()..], quote(v)));
        }
    }
    s
}

/// Adds to `m` what seeds one private git directory (at `at` in it) from host git directory
/// `git_dir` (common dir `common`).
fn seed_dir(
    m: &mut Manifest,
    at: &Utf8Path,
    git_dir: &Utf8Path,
    common: &Utf8Path,
    alternates: &str,
    identity: &[(String, String)],
) {
    // What git needs to take it for a repository (objects, refs, HEAD) and the alternates;
    // the rest (refs/heads, objects/pack, hooks, info...) git makes when it writes there.
    // Each directory made here is one more to remove after the launch, and both cost.
    m.dir(&at.join("objects/info"));
    m.dir(&at.join("refs"));
    m.text(&at.join("objects/info/alternates"), alternates.to_owned());
    m.copy(&git_dir.join("HEAD"), &at.join("HEAD"));
    m.copy(&git_dir.join("index"), &at.join("index"));
    if let Ok(entries) = git_dir.read_dir_utf8() {
        for e in entries.flatten() {
            if e.file_name().starts_with("sharedindex.") {
                m.copy(e.path(), &at.join(e.file_name()));
            }
        }
    }
    m.copy(&common.join("packed-refs"), &at.join("packed-refs"));
    m.copy(&common.join("shallow"), &at.join("shallow"));
    m.tree(&common.join("refs"), &at.join("refs"));
    m.tree(&common.join("info"), &at.join("info"));
    let host_config = read_config(&common.join("config"));
    let worktree = last(&host_config, "core.worktree").map(str::to_owned);
    // The repository's own identity (`git config user.name` without --global) wins.
    let identity: Vec<(String, String)> = identity
        .iter()
        .map(|(k, v)| (k.clone(), last(&host_config, k).unwrap_or(v).to_owned()))
        .chain(
            ["user.name", "user.email"]
                .into_iter()
                .filter(|k| !identity.iter().any(|(i, _)| i == k))
                .filter_map(|k| Some((k.to_owned(), last(&host_config, k)?.to_owned()))),
        )
        .collect();
    m.text(&at.join("config"), private_config(&host_config, &identity, worktree.as_deref()));
}

/// The branches of a git directory: loose refs under `refs/heads` (links are skipped) over
/// `packed-refs`. Only well-formed names and object ids are returned.
#[must_use]
pub fn branches(dir: &Utf8Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Ok(text) = read_no_follow(&dir.join("packed-refs")) {
        for line in text.lines() {
            if let Some((id, name)) = line.split_once(' ') {
                if name.starts_with("refs/heads/") && is_object_id(id) && valid_branch(&name["refs/heads/".len()..]) {
                    out.insert(name.to_owned(), id.to_owned());
                }
            }
        }
    }
    loose(&dir.join("refs/heads"), "refs/heads", &mut out);
    out
}

fn loose(dir: &Utf8Path, prefix: &str, out: &mut BTreeMap<String, String>) {
    let Ok(entries) = dir.read_dir_utf8() else { return };
    for e in entries.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        let name = format!("{prefix}/{}", e.file_name());
        if ft.is_dir() {
            loose(e.path(), &name, out);
        } else if ft.is_file() {
            if let Ok(text) = read_no_follow(e.path()) {
                let id = text.trim();
                if is_object_id(id) && valid_branch(&name["refs/heads/".len()..]) {
                    out.insert(name, id.to_owned());
                }
            }
        }
    }
}

/// Reads a small file without following a link in its last component.
fn read_no_follow(path: &Utf8Path) -> std::io::Result<String> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut text = String::new();
    f.take(1 << 24).read_to_string(&mut text)?;
    Ok(text)
}

fn is_object_id(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A branch name that is safe to bring over (a strict subset of git's rules).
#[must_use]
pub fn valid_branch(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-/+".contains(&b))
        && name.split('/').all(|c| !c.is_empty() && !c.starts_with('.') && !c.to_ascii_lowercase().ends_with(".lock"))
        && !name.contains("..")
        && !name.ends_with('.')
}

/// A seeded view and the launch's containment; dropping it contains the worktree, brings
/// the cell's branches over, reports, and removes the private directory.
pub struct Session {
    view: Option<GitView>,
    contain: crate::host::containment::Guard,
    /// Removes what ended launches left ([`sweep`]) while the cell runs; joined at the end.
    sweeper: Option<std::thread::JoinHandle<()>>,
    /// When the sweep must give up (set once the cell ended): what is left waits for the
    /// next launch's sweep, instead of this launch's exit and branches waiting on it.
    sweep_until: std::sync::Arc<std::sync::OnceLock<std::time::Instant>>,
}

/// How long a launch's exit waits at most for its sweep to finish.
const SWEEP_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

impl Session {
    /// Records the launch's containment in `state` and creates the private directory of
    /// `view` (if any), empty: bubblewrap binds it, and [`Session::ready`] fills it while
    /// bubblewrap builds the cell.
    ///
    /// # Errors
    /// When the record cannot be written or the private directory cannot be created; the
    /// cell must not start.
    pub fn start(
        state: &Utf8Path,
        worktree: &Utf8Path,
        view: Option<&GitView>,
        absent: &[Utf8PathBuf],
        held: &[Utf8PathBuf],
        writable: &[Utf8PathBuf],
        nested: &crate::host::containment::Nested,
    ) -> anyhow::Result<Self> {
        let held: Vec<std::path::PathBuf> = held
            .iter()
            .chain(view.map(|v| v.worktree.join(".git")).as_ref())
            .map(|p| p.clone().into_std_path_buf())
            .collect();
        let absent: Vec<std::path::PathBuf> = absent.iter().map(|p| p.clone().into_std_path_buf()).collect();
        // The cell's git directories too, wherever they go after it ended (a refused one is
        // kept as `git/refused-<id>`, a name the cell can tell): a link to one is the cell's.
        let writable: Vec<std::path::PathBuf> = writable
            .iter()
            .map(|p| p.clone().into_std_path_buf())
            .chain(std::iter::once(state.join("git").into_std_path_buf()))
            .collect();
        let launch =
            crate::host::containment::Launch::now(worktree.as_std_path(), absent, &held, &writable, nested.clone());
        // Its record goes where the next launch's sweep removes it (or a launch reuses it).
        let aside = view.and_then(|v| v.private.parent()).map(|d| d.as_std_path().to_owned());
        let contain = crate::host::containment::Guard::start(state.as_std_path(), launch, aside)?;
        if let Some(v) = view {
            create(v).with_context(|| format!("cannot create the cell's view of the repository in {}", v.private))?;
        }
        Ok(Self { view: view.cloned(), contain, sweeper: None, sweep_until: std::sync::Arc::default() })
    }

    /// Seeds the private directory and watches the protected paths for the cell's lifetime
    /// ([`crate::host::containment::Guard::watch`]; `pid` is bubblewrap's). Runs while
    /// bubblewrap builds the cell, before the launcher's go lets its command start.
    ///
    /// # Errors
    /// When the directory cannot be seeded or the watch cannot be set up; the cell must not
    /// start.
    pub fn ready(&self, pid: nix::unistd::Pid) -> anyhow::Result<()> {
        if let Some(v) = &self.view {
            seed(v).with_context(|| format!("cannot prepare the cell's view of the repository in {}", v.private))?;
        }
        self.contain.watch(pid)
    }

    /// Removes what ended launches left in the cell's `git` directory, on a thread of its own
    /// (after the go: a directory of many files takes seconds, and is none of this cell's).
    pub fn sweep_behind(&mut self) {
        let Some(dir) = self.view.as_ref().and_then(|v| v.private.parent()).map(Utf8Path::to_owned) else { return };
        let until = std::sync::Arc::clone(&self.sweep_until);
        let work = move || {
            // Background work, at nice 10 (about a tenth of a processor where it has to share
            // one): the cell being built beside it goes first. Not idle priority: the launcher
            // waits for it at the end, and that must not wait for a busy machine to go idle.
            if let Ok(tid) = nix::libc::id_t::try_from(nix::unistd::gettid().as_raw()) {
                // SAFETY: setpriority of this thread (a thread id), raising its nice value only.
                unsafe { nix::libc::setpriority(nix::libc::PRIO_PROCESS, tid, 10) };
            }
            sweep(&dir, &|| until.get().is_some_and(|t| std::time::Instant::now() >= *t));
        };
        self.sweeper = std::thread::Builder::new().name("cell-sweep".into()).spawn(work).ok();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(s) = self.sweeper.take() {
            let _ = self.sweep_until.set(std::time::Instant::now() + SWEEP_GRACE);
            let _ = s.join();
        }
        let mut report = self.contain.finish();
        crate::timing::mark("contained");
        if let Some(v) = &self.view {
            if v.record.exists() {
                match sync_record(&v.record, v.git.as_deref(), true) {
                    Ok(lines) => report.extend(lines),
                    Err(e) => report
                        .push(format!("the cell's commits were not brought over: {e:#}; `cell git sync` tries again")),
                }
            }
        }
        crate::timing::mark("synced");
        let mut err = std::io::stderr().lock();
        // Names in these lines are the cell's (an object store entry, a branch, a path):
        // never raw control sequences on the user's terminal.
        for l in report {
            let _ = writeln!(err, "cell: {}", crate::sys::escape_controls(&l));
        }
    }
}

/// Creates the launch's private directory (new, 0700) in the cell's private `git` directory.
fn create(v: &GitView) -> anyhow::Result<()> {
    let dir = v.private.parent().context("no parent")?;
    std::fs::create_dir_all(dir.parent().context("no parent")?)?;
    crate::sys::private_dir(dir, false)?;
    if crate::host::manifest::take_spare(dir, &v.private) {
        return Ok(());
    }
    crate::sys::private_dir(&v.private, true)
}

/// Fills the private directory [`create`] made.
fn seed(v: &GitView) -> anyhow::Result<()> {
    let identity = identity(&v.identity_dirs.0, &v.identity_dirs.1, v.git.as_deref());
    let alternates = format!("{HOST_OBJECTS_INSIDE}/objects\n");
    let mut manifest = Manifest::default();
    seed_dir(&mut manifest, Utf8Path::new(""), &v.host_git_dir, &v.host_common_dir, &alternates, &identity);
    for m in &v.modules {
        let host_dir = v.host_common_dir.join("modules").join(m);
        let alt = format!("{HOST_OBJECTS_INSIDE}/modules/{m}/objects\n");
        seed_dir(&mut manifest, &Utf8Path::new("modules").join(m), &host_dir, &host_dir, &alt, &identity);
    }
    // A spare directory (an ended launch's) holds what its cell left: cleared here first.
    manifest.apply(&v.private, v.private.parent().context("no parent")?)?;
    let record = Record {
        cell: v.cell.clone(),
        launcher: std::process::id(),
        worktree: v.worktree.clone(),
        host_common_dir: v.host_common_dir.clone(),
        seed: branches(&v.host_common_dir),
        alternates,
    };
    let aside = v.record.parent().map(Utf8Path::as_std_path);
    crate::sys::write_reusing(v.record.as_std_path(), serde_json::to_string(&record)?.as_bytes(), aside, DISCARDED)
        .with_context(|| format!("cannot write {}", v.record))
}

/// The name prefix of what is set aside in a cell's `git` directory for the next launch's
/// sweep to remove: a finished launch's private directory, or an empty mount point of the
/// cell home ([`crate::host::home::MountPoints::remove`]).
pub(crate) const DISCARDED: &str = "discarded-";
/// The name prefix of a private directory kept because a branch of it was refused.
const REFUSED: &str = "refused-";

/// The name of a new launch's private directory: `<launcher pid>-<nanoseconds>`.
fn plan_name() -> String {
    let nanos = crate::sys::since_epoch().as_nanos();
    format!("{}-{nanos}", std::process::id())
}

/// The launcher pid of a private directory's (or record's, without `.json`) name:
/// `<pid>-<time>` (or `<pid>`, as launchers before named them).
fn launch_pid(name: &str) -> Option<u32> {
    let (pid, time) = name.split_once('-').unwrap_or((name, "0"));
    (time.bytes().all(|b| b.is_ascii_digit()) && !time.is_empty()).then(|| pid.parse().ok()).flatten()
}

/// Removes private directories of launchers that ended without a record (they died while
/// seeding; a finished sync removes both) and those finished syncs set aside ([`crate::host::manifest::discard`]).
/// A running launcher's directory is never touched: its record is written only once
/// seeding is done.
/// It gives up once `stop` says so (a planted tree of millions of files takes minutes).
fn sweep(dir: &Utf8Path, stop: &dyn Fn() -> bool) {
    let Ok(entries) = dir.read_dir_utf8() else { return };
    for e in entries.flatten() {
        if stop() {
            return;
        }
        let name = e.file_name();
        if name.starts_with(DISCARDED) {
            // Views and mount points (directories), records set aside (files).
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                let _ = crate::sys::remove_tree_until(e.path(), stop);
            } else {
                let _ = std::fs::remove_file(e.path());
            }
            continue;
        }
        let Some(pid) = launch_pid(name) else { continue };
        let running = Utf8Path::new(&format!("/proc/{pid}")).exists();
        if !running && !dir.join(format!("{name}.json")).exists() {
            let _ = crate::sys::remove_tree_until(e.path(), stop);
        }
    }
}

/// Brings the branches a launch's cell changed over to the host repository as
/// `cell/<cell>/<branch>`; with `finished`, removes the private directory and the record
/// once everything came over. Returns report lines.
///
/// # Errors
/// When the record cannot be read or host git cannot run.
pub fn sync_record(record_path: &Utf8Path, git: Option<&Utf8Path>, finished: bool) -> anyhow::Result<Vec<String>> {
    let record: Record = serde_json::from_str(&std::fs::read_to_string(record_path)?)
        .with_context(|| format!("{record_path} is not a launch record"))?;
    let private = record_path.with_extension("");
    let alive = Utf8Path::new(&format!("/proc/{}", record.launcher)).exists() && record.launcher != std::process::id();
    if alive && !finished {
        // A running cell could change what host git reads in its directory (its object
        // alternates) between the check and git's reading: nothing is read until it ended.
        return Ok(vec![format!(
            "a launch of cell {} still runs (launcher pid {}): its branches come over when it ends",
            record.cell, record.launcher
        )]);
    }
    let mut lines = Vec::new();
    let now = branches(&private);
    let changed: Vec<(String, String)> =
        now.iter().filter(|(r, id)| record.seed.get(*r) != Some(*id)).map(|(r, id)| (r.clone(), id.clone())).collect();
    let mut failed = false;
    if !changed.is_empty() {
        let Some(git) = git else {
            bail!("no git the launcher may run on the host: none on PATH that only root can replace, outside the places the cell can write (set CELL_GIT to choose one, then run cell git sync)")
        };
        let alternates = read_no_follow(&private.join("objects/info/alternates")).unwrap_or_default();
        // Refusals of the whole store are final: the directory is kept for review like a
        // refused branch's, and the record goes (a retry would say the same forever).
        let refused = if alternates == record.alternates {
            odd_object_entry(&private.join("objects")).map(|odd| {
                format!("the cell's object store holds something that is not a file ({odd}); nothing is brought over from it")
            })
        } else {
            Some(format!(
                "the cell changed its object alternates ({}); nothing is brought over from it",
                private.join("objects/info/alternates")
            ))
        };
        if let Some(why) = refused {
            lines.push(why);
            return Ok(keep_or_discard(&private, record_path, true, lines));
        }
        if changed.len() > MAX_BRANCHES {
            lines.push(format!(
                "the cell changed {} branches; only the first {MAX_BRANCHES} (by name) are brought over, the rest stay in {private}",
                changed.len()
            ));
            failed = true;
        }
        // One deadline for the whole sync: branches that each take the limit would otherwise
        // hold the launcher's exit for an hour.
        let deadline = std::time::Instant::now() + sync_timeout();
        for (r, id) in changed.iter().take(MAX_BRANCHES) {
            // One branch at a time: a branch whose objects do not read never holds up another.
            let branch = &r["refs/heads/".len()..];
            if std::time::Instant::now() >= deadline {
                failed = true;
                lines.push(format!("not tried {branch}: the sync's {} s are used up", sync_timeout().as_secs()));
                continue;
            }
            match sync_branch(git, &record, &private, branch, id, deadline) {
                Ok(said) => lines.extend(said),
                Err(why) => {
                    failed = true;
                    lines.push(why);
                }
            }
        }
    }
    Ok(keep_or_discard(&private, record_path, failed, lines))
}

/// Brings one changed branch of a finished launch over as `cell/<cell>/<branch>`, keeping an
/// earlier tip it would replace unmerged. Returns the lines to report, or the refusal.
fn sync_branch(
    git: &Utf8Path,
    record: &Record,
    private: &Utf8Path,
    branch: &str,
    id: &str,
    deadline: std::time::Instant,
) -> Result<Vec<String>, String> {
    let host = &record.host_common_dir;
    let target = format!("refs/heads/cell/{}/{branch}", record.cell);
    let r = format!("refs/heads/{branch}");
    if let Err(why) = import_objects(git, host, &private.join("objects"), &[(r, id.to_owned())], deadline) {
        return Err(format!("refused {branch}: {why}"));
    }
    if !reachable_in_host(git, host, id, deadline) {
        return Err(format!(
            "refused {branch}: its commit {id} or objects it reaches did not verify in the host repository"
        ));
    }
    // An earlier launch's tip that this one does not contain (it started again from your
    // branch, or ran beside it) would be lost to the reflog: kept under a name of its own
    // first, and said.
    let kept = match unmerged_tip(git, host, &target, id) {
        Some(old) => Some(keep_tip(git, host, &record.cell, branch, &old).ok_or_else(|| {
            format!(
                "refused {branch}: {target} holds {old}, which the cell's new {branch} does not contain, and it could not be kept"
            )
        })?),
        None => None,
    };
    let ok = host_git(git, host)
        .args(["update-ref", "-m", "cell git sync", &target, id])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return Err(format!("could not create {target} in {host}"));
    }
    let short = &id[..12];
    let name = &target["refs/heads/".len()..];
    let mut lines = vec![format!(
        "{branch} of the cell is now {name} ({short}) in {}; review: cell git log, merge: cell git merge --cell {} {branch} (the worktree already holds its files)",
        record.worktree, record.cell,
    )];
    if let Some(keep) = kept {
        lines.push(format!(
            "the previous {name} is not part of the new one (not merged, and this launch started from elsewhere): kept as {}; review it with git log, delete it with git branch -D when done",
            &keep["refs/heads/".len()..]
        ));
    }
    Ok(lines)
}

/// Keeps `old`, an earlier tip of `cell/<cell>/<branch>`, as
/// `cell-kept/<cell>/<branch>-<12 hex>` (already there counts). Returns the ref, or None
/// when it could not be made.
fn keep_tip(git: &Utf8Path, host: &Utf8Path, cell: &str, branch: &str, old: &str) -> Option<String> {
    let keep = format!("refs/heads/cell-kept/{cell}/{branch}-{}", &old[..12]);
    let made = host_git(git, host)
        .args(["update-ref", "-m", "cell git sync: kept", &keep, old, ""])
        .status()
        .is_ok_and(|s| s.success());
    let there = made
        || host_git(git, host)
            .args(["rev-parse", "-q", "--verify", &format!("{keep}^{{commit}}")])
            .status()
            .is_ok_and(|s| s.success());
    there.then_some(keep)
}

/// A finished launch's directory after its sync: set aside for removal, or (when something
/// was refused) kept under a name no sweep removes, reported once (the record goes, so a
/// refusal never holds up later syncs).
fn keep_or_discard(private: &Utf8Path, record_path: &Utf8Path, failed: bool, mut lines: Vec<String>) -> Vec<String> {
    if failed {
        let kept = private.with_file_name(format!("{REFUSED}{}", private.file_name().unwrap_or_default()));
        let shown = if std::fs::rename(private, &kept).is_ok() { kept } else { private.to_owned() };
        lines.push(format!(
            "the cell's git directory is kept at {shown} for review (its config and hooks are the cell's: read its files, do not run git in it)"
        ));
        if let Some(dir) = private.parent() {
            lines.extend(bound_refused(dir));
        }
    } else {
        crate::host::manifest::discard(private);
    }
    crate::sys::set_aside(record_path.as_std_path(), record_path.parent().map(Utf8Path::as_std_path), DISCARDED);
    lines
}

/// How many refused git directories a cell's state keeps for review.
pub const REFUSED_KEPT: usize = 8;

/// Beyond [`REFUSED_KEPT`] refused directories in `dir`, the oldest (by the time in their
/// names) are set aside for the sweep: a cell that gets itself refused at every launch
/// cannot fill the disk with copies. Returns report lines.
fn bound_refused(dir: &Utf8Path) -> Vec<String> {
    let Ok(entries) = dir.read_dir_utf8() else { return Vec::new() };
    let mut kept: Vec<(u128, String)> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let name = e.file_name();
            let nanos = name.strip_prefix(REFUSED)?.rsplit_once('-')?.1.parse().ok()?;
            Some((nanos, name.to_owned()))
        })
        .collect();
    kept.sort();
    let excess = kept.len().saturating_sub(REFUSED_KEPT);
    let mut lines = Vec::new();
    for (_, name) in kept.into_iter().take(excess) {
        let to = dir.join(format!("{DISCARDED}{name}-{}", crate::sys::since_epoch().as_nanos()));
        if std::fs::rename(dir.join(&name), &to).is_ok() {
            lines.push(format!(
                "the oldest kept git directory, {}, is removed (at most {REFUSED_KEPT} are kept)",
                dir.join(&name)
            ));
        }
    }
    lines
}

/// Settings host git runs with whenever cell runs it on a repository: no hooks, no
/// fsmonitor, no pager or editor, no transport, no signature checked (which runs the
/// `gpg.program` of a configuration; diffs also get `--no-ext-diff --no-textconv`; nothing
/// cell runs reads alternate refs).
pub const SAFE_GIT: [&str; 20] = [
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.pager=cat",
    "-c",
    "core.editor=false",
    "-c",
    "protocol.allow=never",
    "-c",
    "log.showSignature=false",
    "-c",
    "gpg.program=false",
    "-c",
    "gpg.openpgp.program=false",
    "-c",
    "gpg.ssh.program=false",
    "-c",
    "gpg.x509.program=false",
];

/// The commit `target` names in the host repository when the new tip `id` does not contain
/// it (a tip that would otherwise be replaced and lost); `None` when there is none, it is
/// `id`, or `id` descends from it.
fn unmerged_tip(git: &Utf8Path, host: &Utf8Path, target: &str, id: &str) -> Option<String> {
    let out = host_git(git, host)
        .args(["rev-parse", "-q", "--verify", &format!("{target}^{{commit}}")])
        .stdout(Stdio::piped())
        .output()
        .ok()?;
    let old = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    if !out.status.success() || old.len() < 12 || old == id {
        return None;
    }
    let contained = host_git(git, host).args(["merge-base", "--is-ancestor", &old, id]).status();
    // Anything but "not an ancestor" (1), such as a git that fails, keeps the old tip too.
    (!contained.is_ok_and(|s| s.success())).then_some(old)
}

/// Host git on the host repository: the host's own configuration, nothing from the cell's.
fn host_git(git: &Utf8Path, host: &Utf8Path) -> Command {
    let mut c = Command::new(git);
    // The repository is the host's, but a cell may have planted it (a nested repository the
    // user then started a cell in): nothing it configures runs.
    c.args(SAFE_GIT)
        .arg(format!("--git-dir={host}"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .current_dir(host)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for k in ["HOME", "XDG_CONFIG_HOME"] {
        if let Some(v) = std::env::var_os(k) {
            c.env(k, v);
        }
    }
    c
}

/// Copies the objects the changed branches reach and the host lacks: host `rev-list` and
/// `pack-objects` read the cell's store as an alternate, `index-pack --strict` checks every
/// object into the host's store (under the hash of its content).
fn import_objects(
    git: &Utf8Path,
    host: &Utf8Path,
    objects: &Utf8Path,
    changed: &[(String, String)],
    deadline: std::time::Instant,
) -> Result<(), String> {
    let mut list = host_git(git, host);
    list.env("GIT_ALTERNATE_OBJECT_DIRECTORIES", objects).args(["rev-list", "--objects"]);
    list.args(changed.iter().map(|(_, id)| id.as_str())).args(["--not", "--all"]);
    let (ok, stdout) = run_until(list, deadline, None).map_err(|e| format!("{e:#}"))?;
    if !ok || stdout.is_empty() {
        // Unknown objects: nothing to copy; the branches are refused by the check after.
        return Ok(());
    }
    let mut pack = host_git(git, host);
    pack.env("GIT_ALTERNATE_OBJECT_DIRECTORIES", objects).args(["pack-objects", "--stdout", "-q"]);
    let mut pack = pack
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run git pack-objects: {e}"))?;
    let pack_out = pack.stdout.take().ok_or("no pipe")?;
    let mut index = host_git(git, host);
    index.args(["index-pack", "--stdin", "--strict"]).stdin(pack_out);
    let index = index.spawn().map_err(|e| format!("cannot run git index-pack: {e}"))?;
    let feeder = pack.stdin.take().map(|mut stdin| std::thread::spawn(move || stdin.write_all(&stdout)));
    let pack_ok = wait_until(pack, deadline);
    let index_ok = wait_until(index, deadline);
    if let Some(f) = feeder {
        let _ = f.join();
    }
    if std::time::Instant::now() >= deadline {
        return Err(format!("git could not copy its objects within the sync's {} s", sync_timeout().as_secs()));
    }
    if !pack_ok || !index_ok {
        return Err("its objects did not pass git's checks (index-pack --strict: malformed objects, or tree entries such as .git or ..)".to_owned());
    }
    Ok(())
}

/// Most branches one sync brings over (each costs host git a few runs).
const MAX_BRANCHES: usize = 64;

/// How long one sync's host git commands may take together.
const SYNC_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// [`SYNC_TIMEOUT`], or `CELL_SYNC_TIMEOUT_SECS` of the launcher's own environment (for
/// tests; the cell has no say in it).
fn sync_timeout() -> std::time::Duration {
    std::env::var("CELL_SYNC_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(SYNC_TIMEOUT, std::time::Duration::from_secs)
}

/// Waits for `child` until `deadline`, killing it then (through a pidfd, so never another
/// process); whether it exited successfully in time.
fn wait_until(mut child: std::process::Child, deadline: std::time::Instant) -> bool {
    use std::os::fd::{AsFd as _, FromRawFd as _, OwnedFd};
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let raw = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, child.id(), 0u32) };
    if let Ok(fd) = i32::try_from(raw) {
        if fd >= 0 {
            // SAFETY: fd was just returned by pidfd_open and is owned here.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            // A poll waits at most u16::MAX ms: poll again until the deadline.
            let ready = loop {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
                let mut fds = [nix::poll::PollFd::new(fd.as_fd(), nix::poll::PollFlags::POLLIN)];
                let ready = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)).unwrap_or(0);
                if ready != 0 || left.as_millis() <= u128::from(u16::MAX) {
                    break ready;
                }
            };
            if ready == 0 {
                // SAFETY: pidfd_send_signal on our own pidfd; a process that already ended is
                // not signalled.
                unsafe {
                    nix::libc::syscall(
                        nix::libc::SYS_pidfd_send_signal,
                        std::os::fd::AsRawFd::as_raw_fd(&fd),
                        nix::libc::SIGKILL,
                        0usize,
                        0u32,
                    );
                }
                let _ = child.wait();
                return false;
            }
        }
    }
    child.wait().is_ok_and(|s| s.success())
}

/// Runs `cmd` until `deadline` with its standard output captured (and `input` on its
/// standard input); whether it succeeded, and the output.
fn run_until(
    mut cmd: Command,
    deadline: std::time::Instant,
    input: Option<Vec<u8>>,
) -> anyhow::Result<(bool, Vec<u8>)> {
    use std::io::Read as _;
    cmd.stdout(Stdio::piped());
    if input.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().context("cannot run git")?;
    let mut out = child.stdout.take().context("no pipe")?;
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        buf
    });
    if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
        std::thread::spawn(move || stdin.write_all(&bytes));
    }
    let ok = wait_until(child, deadline);
    let stdout = reader.join().unwrap_or_default();
    Ok((ok, stdout))
}

/// Whether the commit and everything it reaches are in the host's own store.
fn reachable_in_host(git: &Utf8Path, host: &Utf8Path, id: &str, deadline: std::time::Instant) -> bool {
    let mut kind = host_git(git, host);
    kind.args(["cat-file", "-t", id]);
    let is_commit = run_until(kind, deadline, None).is_ok_and(|(ok, out)| ok && out.starts_with(b"commit"));
    let mut all = host_git(git, host);
    all.args(["rev-list", "--objects", "--quiet", id, "--not", "--all"]);
    is_commit && run_until(all, deadline, None).is_ok_and(|(ok, _)| ok)
}

/// The first entry of the cell's object store that is neither a regular file nor a
/// directory (a FIFO would hang host git, a link would make it read elsewhere).
fn odd_object_entry(dir: &Utf8Path) -> Option<String> {
    // A directory that cannot be listed could hide anything (git opens known names in it).
    let Ok(entries) = std::fs::read_dir(dir) else { return Some(format!("{dir} (cannot be listed)")) };
    for e in entries.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            if let Some(odd) = Utf8PathBuf::from_path_buf(e.path()).ok().and_then(|p| odd_object_entry(&p)) {
                return Some(odd);
            }
        } else if !ft.is_file() {
            return Some(e.path().display().to_string());
        }
    }
    None
}

/// The launch records of cell `name` (in its state directory).
#[must_use]
pub fn records(state: &Utf8Path) -> Vec<Utf8PathBuf> {
    let dir = state.join("git");
    let Ok(entries) = dir.read_dir_utf8() else { return Vec::new() };
    let mut out: Vec<Utf8PathBuf> = entries
        .flatten()
        .filter(|e| e.file_name().strip_suffix(".json").is_some_and(|p| launch_pid(p).is_some()))
        .map(|e| e.path().to_owned())
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_program_key_names_its_file() {
        let d = tempfile::tempdir().unwrap();
        let top = Utf8PathBuf::from_path_buf(crate::sys::canonical(d.path()).unwrap()).unwrap();
        let git = top.join(".git");
        let rule = |k: &str, v: String| (k.to_owned(), v, git.clone());
        let rules = vec![
            rule("difftool.x.path", "tools/difft".into()),
            rule("sendemail.sendmailcmd", "tools/sendmail -i".into()),
            rule("imap.tunnel", "sh tools/tunnel".into()),
            rule("remote.o.url", "ext::tools/remote %S".into()),
            rule("submodule.lib.update", "!tools/update".into()),
            rule("init.templatedir", format!("{top}/tpl")),
        ];
        let got = named_paths(&rules, &top, &top, Utf8Path::new("/nonexistent-home"));
        for want in ["tools/difft", "tools/sendmail", "tools/tunnel", "tools/remote", "tools/update", "tpl/"] {
            assert!(got.iter().any(|g| g == want), "{want} not named: {got:?}");
        }
        // `~name/`: that account's home, as git takes it.
        let root = nix::unistd::User::from_name("root").unwrap().unwrap().dir;
        assert_eq!(config_path("~root/x", &top, Utf8Path::new("/h")).as_std_path(), root.join("x"));
        assert_eq!(config_path("~/x", &top, Utf8Path::new("/h")), Utf8PathBuf::from("/h/x"));
        assert!(!named_paths(&[rule("submodule.lib.path", "lib".into())], &top, &top, Utf8Path::new("/h"))
            .contains(&"lib".to_owned()));
    }

    #[test]
    fn shell_commands_name_the_files_they_run() {
        let d = tempfile::tempdir().unwrap();
        let top = Utf8PathBuf::from_path_buf(crate::sys::canonical(d.path()).unwrap()).unwrap();
        std::fs::create_dir_all(top.join("tools")).unwrap();
        std::fs::write(top.join("st.sh"), "").unwrap();
        let home = Utf8Path::new("/nonexistent-home");
        let of = |value: &str| -> Vec<String> {
            let rules = vec![("alias.st".to_owned(), value.to_owned(), top.join(".git"))];
            named_paths(&rules, &top, &top, home)
        };
        let want = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(of("!sh st.sh"), want(&["st.sh"]));
        assert_eq!(of("!cd tools && ./st.sh"), want(&["st.sh", "tools/st.sh"]));
        assert_eq!(of("!f(){ ./st.sh; }; f"), want(&["st.sh"]));
        assert_eq!(of("!./st.sh&&true"), want(&["st.sh"]));
        assert_eq!(of("!$(git rev-parse --show-toplevel)/st.sh"), want(&["st.sh"]));
        assert_eq!(of("!\"${ROOT}/tools/x\" --config=./cfg"), want(&["cfg", "tools/x"]));
        assert_eq!(of("!`pwd`/st.sh | less"), want(&["st.sh"]));
        // A bare name that is no file at the top is a command on PATH.
        assert_eq!(of("!sh nothere.sh"), Vec::<String>::new());
        // A directory named by a word is reported as such (the exit passes over it).
        let words =
            named(&[("alias.l".to_owned(), "!npx eslint ./tools".to_owned(), top.join(".git"))], &top, &top, home);
        assert_eq!(words, vec![("tools".to_owned(), Named::Word)]);
    }

    #[test]
    fn keys_whose_values_git_runs_are_known() {
        for (k, v) in [
            ("core.fsmonitor", "x"),
            ("alias.st", "!./tools/st.sh"),
            ("pager.log", "./tools/pager"),
            ("credential.https://h.example.helper", "./h"),
            ("difftool.x.cmd", "./d"),
            ("mergetool.x.cmd", "./m"),
            ("gpg.ssh.program", "./g"),
            ("gpg.ssh.defaultkeycommand", "./k"),
            ("interactive.difffilter", "./f"),
            ("core.gitproxy", "./p"),
            ("remote.origin.uploadpack", "./u"),
            ("filter.lfs.process", "./l"),
            ("diff.x.textconv", "./t"),
        ] {
            assert!(is_command_key(k, v), "{k}");
        }
        assert!(is_command_key("alias.s", "-c core.fsmonitor=tools/fsmon status"));
        assert!(is_command_key("mergetool.meld.path", "tools/meld"));
        assert!(!is_command_key("submodule.lib.path", "lib"));
        assert!(is_command_key("remote.o.url", "ext::tools/x %S"));
        assert!(!is_command_key("remote.o.url", "https://example.test/x"));
        assert!(!is_command_key("user.name", "./x"));
    }

    /// A launch's directory is named by its launcher's pid and the time, so one a launch of
    /// the same pid left never blocks a new one; the sweep takes only what ended launches
    /// left, and keeps what a refused branch kept.
    #[test]
    fn the_sweep_takes_what_ended_launches_left_and_nothing_else() {
        assert_eq!(launch_pid("123-456"), Some(123));
        assert_eq!(launch_pid("123"), Some(123));
        for odd in ["refused-123-456", "discarded-1-2", "123-", "x-1", "123-4a"] {
            assert_eq!(launch_pid(odd), None, "{odd}");
        }
        let d = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(d.path()).unwrap();
        let me = std::process::id();
        let dead = 0x3fff_fff0u32; // above any pid_max
        for name in [
            format!("{me}-1"),
            format!("{dead}-1"),
            format!("{dead}-2"),
            format!("{REFUSED}{dead}-3"),
            format!("{DISCARDED}{me}-4"),
        ] {
            std::fs::create_dir_all(dir.join(&name).join("objects")).unwrap();
        }
        std::fs::write(dir.join(format!("{dead}-2.json")), "{}").unwrap();
        sweep(dir, &|| false);
        let mut left: Vec<String> = dir.read_dir_utf8().unwrap().map(|e| e.unwrap().file_name().to_owned()).collect();
        left.sort();
        let mut want =
            vec![format!("{me}-1"), format!("{dead}-2"), format!("{dead}-2.json"), format!("{REFUSED}{dead}-3")];
        want.sort();
        assert_eq!(left, want);
        let a = plan_name();
        assert_ne!(a, plan_name(), "two launches of one pid get two names");
    }

    #[test]
    fn refused_directories_are_kept_up_to_a_bound_the_oldest_going_first() {
        let d = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(d.path()).unwrap();
        for i in 0..REFUSED_KEPT + 3 {
            std::fs::create_dir_all(dir.join(format!("{REFUSED}{}-{}", 100 + i, 1000 + i)).join("objects")).unwrap();
        }
        std::fs::write(dir.join(format!("{REFUSED}1-1")), "a file, not a kept directory").unwrap();
        let lines = bound_refused(dir);
        assert_eq!(lines.len(), 3, "{lines:?}");
        let mut left: Vec<String> = dir
            .read_dir_utf8()
            .unwrap()
            .map(|e| e.unwrap().file_name().to_owned())
            .filter(|n| n.starts_with(REFUSED))
            .collect();
        left.sort();
        let mut want: Vec<String> =
            (3..REFUSED_KEPT + 3).map(|i| format!("{REFUSED}{}-{}", 100 + i, 1000 + i)).collect();
        want.push(format!("{REFUSED}1-1"));
        want.sort();
        assert_eq!(left, want);
        // What was set aside goes with the next sweep.
        sweep(dir, &|| false);
        assert!(!dir.read_dir_utf8().unwrap().any(|e| e.unwrap().file_name().starts_with(DISCARDED)));
    }

    #[test]
    fn config_reader_takes_what_git_writes() {
        let dir = tempfile::tempdir().unwrap();
        let p = Utf8PathBuf::from_path_buf(dir.path().join("config")).unwrap();
        std::fs::write(&p, "[core]\n\trepositoryformatversion = 1\n\tfsmonitor = \"evil # x\" ; c\n[extensions]\n\tobjectFormat = sha256\n[submodule \"lib/a\"]\n\turl = https://x\n[user]\n\tname = A \\\"B\\\"\n").unwrap();
        let c = read_config(&p);
        assert_eq!(last(&c, "core.fsmonitor"), Some("evil # x"));
        assert_eq!(last(&c, "extensions.objectformat"), Some("sha256"));
        assert_eq!(last(&c, "user.name"), Some("A \"B\""));
        let out = private_config(&c, &[("user.name".into(), "Ann".into())], None);
        assert!(!out.contains("fsmonitor") && !out.contains("https://x"), "{out}");
        assert!(
            out.contains("objectformat = \"sha256\"")
                && out.contains("[submodule \"lib/a\"]")
                && out.contains("repositoryformatversion = \"1\""),
            "{out}"
        );
    }

    #[test]
    fn branch_names_are_checked() {
        for good in ["main", "feature/x", "v1.2", "a-b_c+d"] {
            assert!(valid_branch(good), "{good}");
        }
        for bad in ["", "../x", "a..b", ".hidden", "x.lock", "a//b", "a/", "x\ny", "a b", "x.", "@{u}"] {
            assert!(!valid_branch(bad), "{bad:?}");
        }
    }
}
