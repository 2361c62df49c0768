//! Per-project settings: a repository may suggest additions to its cell in `.cell.json` at
//! the worktree's root, which apply only once the user approved that exact file.
//!
//! The worktree is the cell's to write, so the file is hostile input: an agent can rewrite
//! it between two launches. It therefore counts only when
//! - the user's own config lets projects add that kind of thing to that cell
//!   (`cells.<name>.project`: `network`, `env`, `bindsUnder`; all off by default), and
//! - the user approved these very bytes for this worktree (`cell project allow`, like
//!   direnv's `allow`): approvals are SHA-256 digests of the file kept in the user's config
//!   directory, which no cell can write. A changed file is unapproved until approved again.
//!
//! It can only add: hosts to the allowlist, variables the cell does not set, read-only binds
//! below directories the user named. It never removes a protection, never makes anything
//! writable and never replaces a value of the user's config or of the launch.

use std::collections::BTreeMap;
use std::io::Read as _;

use camino::{Utf8Path, Utf8PathBuf};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::host::config::{self, BindConfig, BindMode, Invalid, NetworkMode};
use crate::host::hostenv::HostEnv;
use crate::host::plan::Overrides;

/// The file a project suggests its settings in, at the worktree's root.
pub const PROJECT_FILE: &str = ".cell.json";
/// Where a project's binds may appear inside: data directories, never the cell's system
/// directories, `/run`, `/proc`, `/dev`, its home or its worktree.
const BIND_DESTINATIONS: [&str; 5] = ["/data", "/mnt", "/media", "/opt", "/srv"];
/// The largest project file read.
const MAX_BYTES: u64 = 64 * 1024;
/// Variables a project may never set: the launch's own, and those that route traffic.
const RESERVED_ENV: [&str; 9] = ["HOME", "PATH", "USER", "LOGNAME", "SHELL", "TERM", "HOSTNAME", "PWD", "NO_PROXY"];

/// What the user lets projects add to a cell (`cells.<name>.project`). Nothing by default.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProjectConfig {
    /// An approved `.cell.json` may add hosts to the allowlist (and so turn the proxy on).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub network: bool,
    /// An approved `.cell.json` may set variables the cell's config and the launch do not.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub env: bool,
    /// An approved `.cell.json` may add read-only binds of paths below these host
    /// directories (links resolved).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub binds_under: Vec<Utf8PathBuf>,
}

impl ProjectConfig {
    /// Whether projects may add nothing (the default).
    #[must_use]
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// Checks `cells.<name>.project`.
pub fn validate(at: &str, p: &ProjectConfig, errs: &mut Vec<Invalid>) {
    for (i, d) in p.binds_under.iter().enumerate() {
        errs.extend(config::absolute(&format!("{at}.project.bindsUnder[{i}]"), d).err());
    }
}

/// The contents of `.cell.json`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProjectFile {
    /// Network additions.
    #[serde(default)]
    pub network: ProjectNetwork,
    /// Variables to set (a name given twice is refused: the display would show one).
    #[serde(default, deserialize_with = "unique_keys")]
    pub env: BTreeMap<String, String>,
    /// Read-only binds: `{ "src": "/data/set", "dst": "/data" }` (`dst` defaults to `src`).
    #[serde(default)]
    pub binds: Vec<ProjectBind>,
}

/// A JSON object into a map, refusing a key given twice (serde keeps the last silently).
fn unique_keys<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    struct Unique;
    impl<'de> serde::de::Visitor<'de> for Unique {
        type Value = BTreeMap<String, String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object of strings")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((k, v)) = map.next_entry::<String, String>()? {
                if out.contains_key(&k) {
                    return Err(serde::de::Error::custom(format!("{k:?} is given twice")));
                }
                out.insert(k, v);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Unique)
}

/// `network` of `.cell.json`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProjectNetwork {
    /// Hosts to add to the allowlist (`HOST[:PORT]`, `*.DOMAIN`).
    #[serde(default)]
    pub allow: Vec<String>,
}

/// One bind of `.cell.json`; always read-only.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProjectBind {
    /// Host path.
    pub src: Utf8PathBuf,
    /// Inside path (default: `src`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<Utf8PathBuf>,
}

/// A `.cell.json` as read once: its bytes, their digest, and what they say.
#[derive(Debug, Clone)]
pub struct Found {
    /// Its path.
    pub path: Utf8PathBuf,
    /// The worktree it belongs to (links resolved).
    pub worktree: Utf8PathBuf,
    /// Lowercase hex SHA-256 of the bytes.
    pub digest: String,
    /// The bytes, as read (what is approved is exactly what is parsed).
    pub text: String,
    /// Parsed, or why not.
    pub parsed: Result<ProjectFile, Invalid>,
}

/// Reads `<worktree>/.cell.json` once, without following a link: `None` when there is none.
///
/// # Errors
/// When it is a link, not a regular file, too large or unreadable: a file the cell planted
/// to fool the launcher is refused, never read through.
pub fn find(worktree: &Utf8Path) -> Result<Option<Found>, Invalid> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = worktree.join(PROJECT_FILE);
    let refuse = |what: String| Invalid::new(PROJECT_FILE, what, format!("remove {path} or make it a regular file"));
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Err(refuse(format!("{path} is a symbolic link, which cell does not follow")))
        }
        Err(e) => return Err(refuse(format!("cannot read {path}: {e}"))),
    };
    let meta = file.metadata().map_err(|e| refuse(format!("cannot read {path}: {e}")))?;
    if !meta.is_file() {
        return Err(refuse(format!("{path} is not a regular file")));
    }
    let mut bytes = Vec::new();
    (&mut file).take(MAX_BYTES + 1).read_to_end(&mut bytes).map_err(|e| refuse(format!("cannot read {path}: {e}")))?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(refuse(format!("{path} is larger than {MAX_BYTES} bytes")));
    }
    let digest = hex(&sha2::Sha256::digest(&bytes));
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let parsed = {
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize::<_, ProjectFile>(de).map_err(|e| {
            let (at, message) = crate::host::config::serde_problem(&e);
            let field = at.map_or_else(|| PROJECT_FILE.to_owned(), |at| format!("{PROJECT_FILE}: {at}"));
            Invalid::new(field, message, "fix the file (see `cell project --help`)")
        })
    };
    Ok(Some(Found { path, worktree: worktree.to_owned(), digest, text, parsed }))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The user's approvals: worktree → digest of the approved `.cell.json`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Approvals {
    projects: BTreeMap<Utf8PathBuf, String>,
}

/// Where approvals are kept: the user's config directory, which no cell mounts.
#[must_use]
pub fn approvals_path(host: &HostEnv) -> Utf8PathBuf {
    host.config_home().join("cell").join("approved-projects.json")
}

fn load_approvals(path: &Utf8Path) -> anyhow::Result<Approvals> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| anyhow::anyhow!("{path} is not a valid approvals file: {e}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Approvals::default()),
        Err(e) => Err(anyhow::anyhow!("cannot read {path}: {e}")),
    }
}

fn save_approvals(path: &Utf8Path, a: &Approvals) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("cannot create {dir}: {e}"))?;
    }
    let tmp = path.with_extension(format!("json.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    crate::sys::write_new_private(&tmp, (serde_json::to_string_pretty(a)? + "\n").as_bytes())?;
    std::fs::rename(&tmp, path).map_err(|e| anyhow::anyhow!("cannot write {path}: {e}"))
}

/// Whether these bytes are approved for this worktree.
fn approved(host: &HostEnv, found: &Found) -> anyhow::Result<bool> {
    let a = load_approvals(&approvals_path(host))?;
    Ok(a.projects.get(&found.worktree).is_some_and(|d| *d == found.digest))
}

/// Records (or, with `approve` false, drops) the approval of `found`.
///
/// # Errors
/// When the approvals file cannot be read or written.
pub fn record(host: &HostEnv, found: &Found, approve: bool) -> anyhow::Result<()> {
    let path = approvals_path(host);
    let mut a = load_approvals(&path)?;
    if approve {
        a.projects.insert(found.worktree.clone(), found.digest.clone());
    } else {
        a.projects.remove(&found.worktree);
    }
    save_approvals(&path, &a)
}

/// Refuses a launch whose cell could write the approvals file: an approval must be the
/// user's act, never the cell's. A project's bind may not come from where the cell writes either: a link planted there
/// between the check and the mount would point the bind anywhere.
///
/// # Errors
/// When the approvals file or a project bind lies under one of the plan's writable mounts.
pub fn check_out_of_reach(
    plan: &crate::host::plan::Plan,
    host: &HostEnv,
    applied: Option<&Applied>,
) -> Result<(), crate::host::plan::PlanError> {
    let writable = crate::host::plan::writable_sources(&plan.mounts);
    for b in applied.map(|a| a.binds.as_slice()).unwrap_or_default() {
        if let Some(w) = writable.iter().find(|w| b.starts_with(w)) {
            return Err(Invalid::new(
                format!("{PROJECT_FILE}: binds"),
                format!(
                    "{b} lies in {w}, which this cell can write (a link planted there could point the bind anywhere)"
                ),
                format!(
                    "bind it from a directory the cell cannot write, or drop it from cells.{}.project.bindsUnder",
                    plan.cell
                ),
            )
            .into());
        }
    }
    let path = approvals_path(host);
    let real = path
        .parent()
        .and_then(|d| crate::sys::canonical_utf8(d).ok())
        .map_or_else(|| path.clone(), |d| d.join(path.file_name().unwrap_or_default()));
    match writable.into_iter().find(|w| path.starts_with(w) || real.starts_with(w)) {
        Some(w) => Err(Invalid::new(
            format!("cells.{}.project", plan.cell),
            format!("the approvals file {path} lies in {w}, which this cell can write"),
            "keep XDG_CONFIG_HOME out of the worktree, the cell home and rw binds",
        )
        .into()),
        None => Ok(()),
    }
}

/// What a launch took from the project file, shown by `cell plan`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    /// The file.
    pub file: Utf8PathBuf,
    /// Its digest.
    pub sha256: String,
    /// Hosts added to the allowlist.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// Variables added.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// Read-only binds added (host paths, links resolved).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub binds: Vec<Utf8PathBuf>,
}

/// Adds what an approved `.cell.json` suggests and `cells.<name>.project` permits to this
/// launch's overrides; prints one line for anything left out and why.
///
/// # Errors
/// When an approved file is invalid or unreadable as a file (exit 2, naming the field).
pub fn extend(
    name: &str,
    cell: &config::CellConfig,
    worktree: &Utf8Path,
    host: &HostEnv,
    overrides: &mut Overrides,
) -> anyhow::Result<Option<Applied>> {
    // A file the cell made unreadable or odd (a link, a FIFO, a directory) is ignored
    // like an unapproved one: hostile input never stops a launch.
    let found = match find(worktree) {
        Ok(Some(f)) => f,
        Ok(None) => return Ok(None),
        Err(e) => {
            eprintln!("cell: {e}; ignored");
            return Ok(None);
        }
    };
    let at = format!("cells.{name}.project");
    if cell.project.is_default() {
        eprintln!("cell: {} suggests settings; ignored: {at} lets projects add nothing", found.path);
        return Ok(None);
    }
    if !approved(host, &found)? {
        eprintln!(
            "cell: {} suggests settings that you have not approved (or that changed since); ignored. \
             Review with `cell project`, approve with `cell project allow`",
            found.path
        );
        return Ok(None);
    }
    let file = found.parsed.clone()?;
    let (additions, left_out) = permitted(&at, &cell.project, &file, cell, overrides, worktree)?;
    for line in left_out {
        eprintln!("cell: {PROJECT_FILE}: {line}");
    }
    overrides.allow.extend(additions.allow.iter().cloned());
    overrides.project_env.extend(additions.env.clone());
    overrides.binds.extend(additions.binds.iter().cloned());
    Ok(Some(Applied {
        file: found.path,
        sha256: found.digest,
        allow: additions.allow,
        env: additions.env.keys().cloned().collect(),
        binds: additions.binds.into_iter().map(|b| b.src).collect(),
    }))
}

/// What of `applied` the plan kept: a variable the cell, its agent or the launch also set
/// stays theirs (the plan sets a project's variables last, where nothing else did), and is
/// reported as left out.
#[must_use]
pub fn settle(mut applied: Applied, plan: &crate::host::plan::Plan, suggested: &BTreeMap<String, String>) -> Applied {
    applied.env.retain(|k| {
        let kept = plan.env.get(k) == suggested.get(k);
        if !kept {
            eprintln!("cell: {PROJECT_FILE}: env.{k} ignored: the cell, its agent or the launch sets it, and a project can only add");
        }
        kept
    });
    applied
}

/// The part of a project file that may be added.
#[derive(Debug, Default, PartialEq)]
pub struct Additions {
    /// Allowlist entries.
    pub allow: Vec<String>,
    /// Variables.
    pub env: BTreeMap<String, String>,
    /// Read-only binds.
    pub binds: Vec<BindConfig>,
}

/// Splits `file` into what `policy` permits and lines saying what it does not.
///
/// # Errors
/// When an entry the user permits is malformed (named by its field in `.cell.json`).
pub fn permitted(
    at: &str,
    policy: &ProjectConfig,
    file: &ProjectFile,
    cell: &config::CellConfig,
    overrides: &Overrides,
    worktree: &Utf8Path,
) -> Result<(Additions, Vec<String>), Invalid> {
    let mut out = Additions::default();
    let mut left_out = Vec::new();
    let field = |f: String| format!("{PROJECT_FILE}: {f}");
    if !file.network.allow.is_empty() {
        if !policy.network {
            left_out.push(format!("network.allow ignored: {at}.network is not set"));
        } else if overrides.network == Some(NetworkMode::None) {
            left_out.push("network.allow ignored: this launch has --network none".to_owned());
        } else {
            for (i, a) in file.network.allow.iter().enumerate() {
                let f = field(format!("network.allow[{i}]"));
                let entry = cell_egress::policy::AllowEntry::parse(a).map_err(|e| {
                    Invalid::new(f.clone(), e.to_string(), "give HOST or *.DOMAIN, optionally with :PORT")
                })?;
                // An address is checked by no name: loopback, private networks, metadata
                // services. Only the user's own config may allow one.
                if matches!(entry.pattern, cell_egress::policy::Pattern::Ip(_)) {
                    return Err(Invalid::new(
                        f,
                        format!("{a:?} is an IP address ({entry}); a project may add host names only"),
                        "write a host name, or allow the address in your own config",
                    ));
                }
                out.allow.push(entry.to_string());
            }
        }
    }
    for (k, v) in &file.env {
        config::env_name(&field(format!("env.{k}")), k)?;
        if v.contains('\0') {
            return Err(Invalid::new(field(format!("env.{k}")), "the value contains a NUL byte", "drop the NUL byte"));
        }
        let taken = cell.env.contains_key(k)
            || cell.env_from_file.contains_key(k)
            || cell.pass_env.contains(k)
            || overrides.env.contains_key(k)
            || RESERVED_ENV.contains(&k.as_str())
            || k.starts_with("CELL_")
            || k.starts_with("LC_")
            || crate::host::plan::PASSED_ENV.contains(&k.as_str())
            || k.to_ascii_uppercase().ends_with("_PROXY");
        if !policy.env {
            left_out.push(format!("env.{k} ignored: {at}.env is not set"));
        } else if taken {
            left_out.push(format!("env.{k} ignored: the cell or the launch sets it, and a project can only add"));
        } else {
            out.env.insert(k.clone(), v.clone());
        }
    }
    for (i, b) in file.binds.iter().enumerate() {
        let f = field(format!("binds[{i}]"));
        config::absolute(&f, &b.src)?;
        if let Some(d) = &b.dst {
            config::absolute(&f, d)?;
        }
        let dst = b.dst.clone().unwrap_or_else(|| b.src.clone());
        if !BIND_DESTINATIONS.iter().any(|d| dst.starts_with(d)) || dst.starts_with(worktree) {
            left_out.push(format!(
                "binds[{i}] ignored: its destination {dst} is not in {} (a project binds data, never over the cell's system, home or worktree)",
                BIND_DESTINATIONS.join(", ")
            ));
            continue;
        }
        match bind_within(&b.src, &policy.binds_under) {
            Some(real) => out.binds.push(BindConfig { src: real, dst: Some(dst), mode: BindMode::Ro, optional: false }),
            None if policy.binds_under.is_empty() => {
                left_out.push(format!("binds[{i}] ignored: {at}.bindsUnder is empty"));
            }
            None => {
                left_out.push(format!("binds[{i}] ignored: {} is not below {at}.bindsUnder (links resolved)", b.src));
            }
        }
    }
    Ok((out, left_out))
}

/// `src` with links resolved, when it lies below one of `under` (links resolved too).
fn bind_within(src: &Utf8Path, under: &[Utf8PathBuf]) -> Option<Utf8PathBuf> {
    let real = crate::sys::canonical_utf8(src).ok()?;
    under.iter().filter_map(|d| crate::sys::canonical_utf8(d).ok()).any(|d| real.starts_with(&d)).then_some(real)
}

/// What `cell project` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Show the file, its digest, whether it is approved and what it would add.
    Show,
    /// Approve the file as it is now (asks on a terminal unless `yes`).
    Allow {
        /// Without asking.
        yes: bool,
    },
    /// Drop the approval of this worktree.
    Forget,
}

/// `cell project [allow|forget]`.
///
/// # Errors
/// [`crate::host::plan::PlanError`] for a bad config, worktree or file, or a missing
/// confirmation; anything else when the approvals cannot be written.
pub fn command(
    config_path: Option<&Utf8Path>,
    requested: Option<&str>,
    workdir: Option<&Utf8Path>,
    action: Action,
) -> anyhow::Result<u8> {
    use crate::host::plan::PlanError;
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    // Written as a whole, a closed pipe (`cell project | head`) ends the output quietly.
    let mut out = String::new();
    macro_rules! say {
        ($($t:tt)*) => {{
            out.push_str(&format!($($t)*));
            out.push('\n');
        }};
    }
    let host = crate::host::prepare::cell_host(config_path, requested, None)?;
    let (source, cfg) = crate::host::prepare::load_config(config_path, &host)?;
    let (name, cell) = crate::host::plan::select_cell(&cfg, &source, requested)?;
    let overrides = Overrides { workdir: workdir.map(Utf8Path::to_owned), ..Overrides::default() };
    let worktree = crate::host::plan::worktree(cell, &overrides, &host)?;
    let Some(found) = find(&worktree).map_err(PlanError::from)? else {
        say!("{worktree} has no {PROJECT_FILE}: the project suggests nothing");
        emit(&out);
        return Ok(u8::from(action != Action::Show));
    };
    let approvals = load_approvals(&approvals_path(&host))?;
    let state = match approvals.projects.get(&found.worktree) {
        Some(d) if *d == found.digest => "approved",
        Some(_) => "changed since you approved it: NOT approved",
        None => "not approved",
    };
    if action == Action::Forget {
        record(&host, &found, false)?;
        say!("forgot the approval of {}; the next launch ignores it", found.path);
        emit(&out);
        return Ok(0);
    }
    let at = format!("cells.{name}.project");
    say!("{} (sha256 {}): {state}", found.path, found.digest);
    say!("the cell can write this file: approve only what you have read, as shown here");
    say!("--- contents ---");
    for line in found.text.lines() {
        say!("  {}", shown(line));
    }
    say!("--- end ---");
    let file = found.parsed.clone().map_err(PlanError::from)?;
    let (add, left_out) = permitted(&at, &cell.project, &file, cell, &overrides, &worktree).map_err(PlanError::from)?;
    say!("with {at} as it is, an approved file adds:");
    say!("  allowlist: {}", list(&add.allow));
    say!(
        "  variables (only where the cell, its agent and the launch set none): {}",
        list(&add.env.iter().map(|(k, v)| shown(&format!("{k}={v}"))).collect::<Vec<_>>())
    );
    say!(
        "  read-only binds: {}",
        list(
            &add.binds
                .iter()
                .map(|b| shown(&format!("{} at {}", b.src, b.dst.as_ref().unwrap_or(&b.src))))
                .collect::<Vec<_>>()
        )
    );
    for l in &left_out {
        say!("  left out: {l}");
    }
    emit(&std::mem::take(&mut out));
    let Action::Allow { yes } = action else { return Ok(0) };
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(PlanError::from(Invalid::new(
                "cell project allow",
                format!("approving {} needs a confirmation, and there is no terminal to ask on", found.path),
                "read the file, then run `cell project allow --yes`",
            ))
            .into());
        }
        eprint!("approve these exact bytes for {}? [y/N] ", found.worktree);
        std::io::stderr().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            emit("not approved\n");
            return Ok(1);
        }
    }
    record(&host, &found, true)?;
    say!("approved {} (sha256 {}); any change to it needs a new approval", found.path, found.digest);
    emit(&out);
    Ok(0)
}

/// `s` with control characters and Unicode format characters (bidirectional overrides,
/// zero-width and invisible ones) escaped, so that what is shown is what is there.
fn shown(s: &str) -> String {
    let escaped = crate::sys::escape_controls(s);
    escaped
        .chars()
        .map(|c| {
            let invisible = matches!(c as u32,
                0xAD | 0x34F | 0x61C | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F
                | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F
                | 0xFEFF | 0xFFA0 | 0xFFF9..=0xFFFB | 0x1D173..=0x1D17A | 0xE0000..=0xE0FFF);
            if invisible {
                format!("\\u{{{:04x}}}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Writes `text` to standard output; a reader that went away is no error.
fn emit(text: &str) {
    use std::io::Write as _;
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes()).and_then(|()| o.flush());
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "nothing".to_owned()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(json: &str) -> ProjectFile {
        serde_json::from_str(json).expect("a project file")
    }

    #[test]
    fn nothing_is_added_unless_the_user_permits_that_kind() {
        let f = file(r#"{"network":{"allow":["pypi.org"]},"env":{"FOO":"1"},"binds":[{"src":"/usr/share"}]}"#);
        let cell = config::CellConfig::default();
        let (add, out) = permitted(
            "cells.x.project",
            &ProjectConfig::default(),
            &f,
            &cell,
            &Overrides::default(),
            Utf8Path::new("/w"),
        )
        .expect("valid");
        assert_eq!(add, Additions::default());
        assert_eq!(out.len(), 3, "{out:?}");
    }

    #[test]
    fn a_project_only_adds_and_never_replaces() {
        let f = file(r#"{"env":{"FOO":"1","HOME":"/x","https_proxy":"http://evil","MINE":"theirs"}}"#);
        let mut cell = config::CellConfig::default();
        cell.env.insert("MINE".into(), "mine".into());
        let policy = ProjectConfig { env: true, ..Default::default() };
        let (add, out) = permitted("p", &policy, &f, &cell, &Overrides::default(), Utf8Path::new("/w")).expect("valid");
        assert_eq!(add.env.into_iter().collect::<Vec<_>>(), vec![("FOO".to_owned(), "1".to_owned())]);
        assert_eq!(out.len(), 3, "{out:?}");
    }

    #[test]
    fn binds_are_read_only_and_below_the_named_directories_with_links_resolved() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = Utf8Path::from_path(dir.path()).expect("utf8").canonicalize_utf8().expect("real");
        std::fs::create_dir_all(root.join("data/set")).expect("mkdir");
        std::fs::create_dir_all(root.join("other")).expect("mkdir");
        std::os::unix::fs::symlink(root.join("other"), root.join("data/escape")).expect("link");
        let policy = ProjectConfig { binds_under: vec![root.join("data")], ..Default::default() };
        let f = ProjectFile {
            binds: vec![
                ProjectBind { src: root.join("data/set"), dst: Some("/data/set".into()) },
                ProjectBind { src: root.join("data/escape"), dst: Some("/data/escape".into()) },
                ProjectBind { src: root.join("other"), dst: Some("/data/other".into()) },
                // Over the cell's own directories, never.
                ProjectBind { src: root.join("data/set"), dst: Some("/etc/passwd".into()) },
                ProjectBind { src: root.join("data/set"), dst: Some("/srv/w/sub".into()) },
            ],
            ..Default::default()
        };
        let (add, out) =
            permitted("p", &policy, &f, &config::CellConfig::default(), &Overrides::default(), Utf8Path::new("/srv/w"))
                .expect("valid");
        assert_eq!(add.binds.len(), 1);
        assert_eq!(add.binds[0].mode, BindMode::Ro);
        assert_eq!(add.binds[0].src, root.join("data/set"));
        assert_eq!(out.len(), 4, "{out:?}");
    }

    #[test]
    fn a_malformed_permitted_entry_is_named() {
        let f = file(r#"{"network":{"allow":["https://pypi.org/simple"]}}"#);
        let policy = ProjectConfig { network: true, ..Default::default() };
        let e = permitted("p", &policy, &f, &config::CellConfig::default(), &Overrides::default(), Utf8Path::new("/w"))
            .expect_err("invalid");
        assert_eq!(e.field, ".cell.json: network.allow[0]");
    }

    #[test]
    fn a_linked_project_file_is_refused_and_the_digest_is_of_the_bytes() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = Utf8Path::from_path(dir.path()).expect("utf8");
        assert!(find(root).expect("none").is_none());
        std::fs::write(root.join("elsewhere.json"), "{}").expect("write");
        std::os::unix::fs::symlink(root.join("elsewhere.json"), root.join(PROJECT_FILE)).expect("link");
        assert!(find(root).expect_err("a link").message.contains("symbolic link"));
        std::fs::remove_file(root.join(PROJECT_FILE)).expect("rm");
        std::fs::write(root.join(PROJECT_FILE), "{}").expect("write");
        let found = find(root).expect("read").expect("found");
        // SHA-256 of "{}".
        assert_eq!(found.digest, "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
        assert_eq!(found.parsed.expect("parsed"), ProjectFile::default());
    }
}
