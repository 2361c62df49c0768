//! The cell's seccomp filter: kernel surfaces a coding agent never needs answer `EPERM`.
//!
//! Two programs are handed to bubblewrap (`--add-seccomp-fd`); the kernel runs both:
//! 1. the deny list, built with `seccompiler` (which also kills any process that enters the
//!    kernel through a foreign architecture's syscall table);
//! 2. a hand-written guard: `clone3` and `openat2` answer `ENOSYS` (their flags and modes
//!    live in memory a filter cannot read, so C libraries fall back to `clone` and `openat`,
//!    whose arguments are checked), and on x86-64 every x32-ABI syscall (number with bit 30
//!    set) answers `EPERM`, so the deny list cannot be sidestepped through the x32 table.
//!
//! No route makes a setuid or setgid file (systemd's `RestrictSUIDSGID`): every call that
//! sets a mode (`chmod` family) or creates a file with one (`open` family with `O_CREAT` or
//! `O_TMPFILE`, `mknod` family) answers `EPERM` when that mode has `S_ISUID` or `S_ISGID`.

use std::collections::BTreeMap;

use crate::sys::{SYS_FCHMODAT2, SYS_LAST_REVIEWED, SYS_OPEN_TREE_ATTR};

/// One denied system call (or denied use of one) and why.
#[derive(Debug, Clone, Copy)]
pub struct Denial {
    /// System call name.
    pub name: &'static str,
    /// Its number on this architecture.
    pub nr: i64,
    /// Why a coding agent has no business with it.
    pub reason: &'static str,
}

macro_rules! deny {
    ($($sys:ident => $reason:expr),* $(,)?) => {
        &[$(Denial { name: stringify!($sys), nr: nix::libc::$sys as i64, reason: $reason }),*]
    };
}

/// Denied calls the libc crate does not name yet (numbers shared by every architecture).
pub const DENIED_UNNAMED: &[Denial] = &[Denial {
    name: "SYS_open_tree_attr",
    nr: SYS_OPEN_TREE_ATTR,
    reason: "new mount API: clones mounts and changes their flags, like open_tree and mount_setattr",
}];

/// System calls denied outright.
pub const DENIED_ALWAYS: &[Denial] = deny![
    // Cross-process access: reading or steering another process's memory and descriptors.
    SYS_ptrace => "debugging other processes (and the cell's init) is an escape primitive",
    SYS_process_vm_readv => "reads another process's memory",
    SYS_process_vm_writev => "writes another process's memory",
    SYS_pidfd_getfd => "steals a descriptor from another process",
    // Asynchronous kernel interfaces that bypass per-syscall filtering.
    SYS_io_uring_setup => "io_uring runs operations (sockets, opens) the filter never sees",
    SYS_io_uring_enter => "io_uring runs operations (sockets, opens) the filter never sees",
    SYS_io_uring_register => "io_uring runs operations (sockets, opens) the filter never sees",
    // Kernel attack surface with a long CVE history and no use for an agent.
    SYS_bpf => "loads programs into the kernel",
    SYS_perf_event_open => "kernel profiling; side channels and a history of privilege escalations",
    SYS_userfaultfd => "makes kernel races reliably exploitable",
    SYS_add_key => "the kernel keyring is shared beyond the cell",
    SYS_request_key => "the kernel keyring is shared beyond the cell",
    SYS_keyctl => "the kernel keyring is shared beyond the cell",
    SYS_kexec_load => "replaces the running kernel",
    SYS_kexec_file_load => "replaces the running kernel",
    SYS_init_module => "loads kernel modules",
    SYS_finit_module => "loads kernel modules",
    SYS_delete_module => "unloads kernel modules",
    // The file-system view is fixed by the launcher.
    SYS_mount => "changes the cell's file-system view",
    SYS_umount2 => "uncovers what the launcher mounted over (protected paths)",
    SYS_pivot_root => "changes the cell's root",
    SYS_chroot => "changes the cell's root",
    SYS_move_mount => "new mount API: changes the file-system view",
    SYS_open_tree => "new mount API: clones mounts, detaching protections",
    SYS_fsopen => "new mount API: creates file systems",
    SYS_fsconfig => "new mount API: configures file systems",
    SYS_fsmount => "new mount API: creates mounts",
    SYS_fspick => "new mount API: reconfigures mounts",
    SYS_mount_setattr => "new mount API: makes read-only mounts writable",
    SYS_setns => "joins other namespaces",
    SYS_open_by_handle_at => "opens files by handle, bypassing path checks (the 'shocker' escape)",
    SYS_name_to_handle_at => "companion of open_by_handle_at",
    // Host-wide state.
    SYS_acct => "process accounting is host-wide",
    SYS_swapon => "host swap",
    SYS_swapoff => "host swap",
    SYS_reboot => "host power state",
    SYS_settimeofday => "host clock",
    SYS_clock_settime => "host clock",
    SYS_clock_adjtime => "host clock",
    SYS_adjtimex => "host clock",
    SYS_syslog => "the kernel log leaks host information",
    SYS_quotactl => "host file-system quotas",
    SYS_quotactl_fd => "host file-system quotas",
    SYS_vhangup => "hangs up the terminal of other sessions",
    SYS_fanotify_init => "watches file-system activity beyond the cell",
    SYS_lookup_dcookie => "kernel profiling interface",
];

/// x86-64 only system calls denied outright.
#[cfg(target_arch = "x86_64")]
pub const DENIED_ARCH: &[Denial] = deny![
    SYS_iopl => "raw I/O port access",
    SYS_ioperm => "raw I/O port access",
    SYS_modify_ldt => "segment descriptor tables; a source of kernel bugs",
    SYS_uselib => "obsolete loader interface",
    SYS_ustat => "obsolete",
    SYS_sysfs => "obsolete",
    SYS__sysctl => "obsolete",
];

/// Architecture-specific denials (none beyond the common list here).
#[cfg(not(target_arch = "x86_64"))]
pub const DENIED_ARCH: &[Denial] = &[];

/// `ioctl` requests that inject input into a terminal.
const TIOCSTI: u64 = 0x5412;
const TIOCLINUX: u64 = 0x541C;
/// Namespace flags of `clone` and `unshare`.
const NAMESPACE_FLAGS: [(u64, &str); 7] = [
    (0x0002_0000, "CLONE_NEWNS"),
    (0x0200_0000, "CLONE_NEWCGROUP"),
    (0x0400_0000, "CLONE_NEWUTS"),
    (0x0800_0000, "CLONE_NEWIPC"),
    (0x1000_0000, "CLONE_NEWUSER"),
    (0x2000_0000, "CLONE_NEWPID"),
    (0x4000_0000, "CLONE_NEWNET"),
];
const CLONE_NEWTIME: u64 = 0x80;
const AF_VSOCK: u64 = 40;
/// `personality` values programs legitimately use (the same set Docker allows).
const PERSONALITY_ALLOWED: [u64; 5] = [0x0, 0x8, 0x2_0000, 0x2_0008, 0xffff_ffff];

/// The mode bits no cell may set.
const SET_ID_BITS: [u64; 2] = [nix::libc::S_ISUID as u64, nix::libc::S_ISGID as u64];
/// The `open` flags under which the mode argument is used.
const CREATE_FLAGS: [u64; 2] = [nix::libc::O_CREAT as u64, nix::libc::O_TMPFILE as u64];

/// A system call that sets or creates a file mode: which argument is the mode, and which
/// (for the `open` family) holds the flags that make the kernel use it.
#[derive(Debug, Clone, Copy)]
pub struct ModeRoute {
    /// System call name.
    pub name: &'static str,
    /// Its number on this architecture.
    pub nr: i64,
    /// Index of the mode argument.
    pub mode_arg: u8,
    /// Index of the flags argument (`O_CREAT`, `O_TMPFILE`), when there is one.
    pub flags_arg: Option<u8>,
}

const fn route(name: &'static str, nr: i64, mode_arg: u8, flags_arg: Option<u8>) -> ModeRoute {
    ModeRoute { name, nr, mode_arg, flags_arg }
}

/// Every route to a setuid or setgid file in the native syscall table.
#[cfg(target_arch = "x86_64")]
pub const MODE_ROUTES: &[ModeRoute] = &[
    route("chmod", nix::libc::SYS_chmod, 1, None),
    route("fchmod", nix::libc::SYS_fchmod, 1, None),
    route("fchmodat", nix::libc::SYS_fchmodat, 2, None),
    route("fchmodat2", SYS_FCHMODAT2, 2, None),
    route("open", nix::libc::SYS_open, 2, Some(1)),
    route("openat", nix::libc::SYS_openat, 3, Some(2)),
    route("creat", nix::libc::SYS_creat, 1, None),
    route("mknod", nix::libc::SYS_mknod, 1, None),
    route("mknodat", nix::libc::SYS_mknodat, 2, None),
];

/// Every route to a setuid or setgid file in the native syscall table (the generic table
/// has no `chmod`, `open`, `creat` or `mknod`).
#[cfg(not(target_arch = "x86_64"))]
pub const MODE_ROUTES: &[ModeRoute] = &[
    route("fchmod", nix::libc::SYS_fchmod, 1, None),
    route("fchmodat", nix::libc::SYS_fchmodat, 2, None),
    route("fchmodat2", SYS_FCHMODAT2, 2, None),
    route("openat", nix::libc::SYS_openat, 3, Some(2)),
    route("mknodat", nix::libc::SYS_mknodat, 2, None),
];

/// Denials that look at arguments, for the report.
pub const DENIED_USES: [(&str, &str); 10] = [
    ("ioctl(TIOCSTI, TIOCLINUX)", "injects keystrokes into the terminal the cell was started from"),
    ("clone/unshare with namespace flags", "new user or mount namespaces undo the jail's mounts"),
    ("clone3", "answers ENOSYS: its flags cannot be inspected, so C libraries fall back to clone"),
    ("socket(AF_VSOCK)", "reaches the hypervisor or WSL host outside any network namespace"),
    ("personality (unusual values)", "exotic execution domains; only the values programs use are allowed"),
    ("x32 system calls (x86-64)", "a second syscall table that would sidestep the deny list"),
    (
        "chmod, fchmod, fchmodat, fchmodat2 setting S_ISUID or S_ISGID",
        "a setuid or setgid file in the worktree runs as the cell's user for any host account that starts it",
    ),
    (
        "open, openat, creat (O_CREAT, O_TMPFILE), mknod, mknodat with S_ISUID or S_ISGID",
        "creates a setuid or setgid file directly, without a chmod",
    ),
    (
        "openat2",
        "answers ENOSYS: its mode lives in a struct the filter cannot read, so C libraries fall back to openat",
    ),
    (
        "system calls newer than file_setattr (469)",
        "answer ENOSYS, as on a kernel without them, until the filter has been reviewed for them",
    ),
];

/// One test of a system call's argument: the argument's low 32 bits (every value the
/// filter looks at fits there: flags, requests, modes, families, personalities).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// `arg & bits != 0`: one of the bits is set.
    Any { arg: u8, bits: u32 },
    /// `arg & mask == value`.
    Masked { arg: u8, mask: u32, value: u32 },
    /// `arg == value`.
    Eq { arg: u8, value: u32 },
    /// `arg != value`.
    Ne { arg: u8, value: u32 },
}

/// A use of a system call the filter denies: every check holds.
type Rule = Vec<Check>;

fn low(v: u64) -> u32 {
    u32::try_from(v & 0xffff_ffff).unwrap_or(u32::MAX)
}

/// Matches a call of `route` whose mode has `S_ISUID` or `S_ISGID` (and, for the `open`
/// family, whose flags make the kernel use the mode). Masked equality on single bits holds
/// however the kernel narrows the argument (`umode_t` is 16 bits).
fn set_id_rules(route: &ModeRoute) -> Vec<Rule> {
    let mode = Check::Any { arg: route.mode_arg, bits: low(SET_ID_BITS[0] | SET_ID_BITS[1]) };
    match route.flags_arg {
        None => vec![vec![mode]],
        // O_TMPFILE is two bits (with O_DIRECTORY): both must be set.
        Some(flags) => CREATE_FLAGS
            .iter()
            .map(|f| vec![Check::Masked { arg: flags, mask: low(*f), value: low(*f) }, mode])
            .collect(),
    }
}

/// What the deny list denies: per system call number, the uses denied (no rule: every use).
fn deny_rules() -> BTreeMap<u32, Vec<Rule>> {
    let nr = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
    let mut rules: BTreeMap<u32, Vec<Rule>> = BTreeMap::new();
    for d in DENIED_ALWAYS.iter().chain(DENIED_ARCH).chain(DENIED_UNNAMED) {
        rules.insert(nr(d.nr), Vec::new());
    }
    rules.insert(
        nr(nix::libc::SYS_ioctl),
        vec![vec![Check::Eq { arg: 1, value: low(TIOCSTI) }], vec![Check::Eq { arg: 1, value: low(TIOCLINUX) }]],
    );
    let flag_rules = |arg: u8, extra: &[u64]| -> Vec<Rule> {
        let bits = NAMESPACE_FLAGS.iter().map(|(f, _)| *f).chain(extra.iter().copied()).fold(0, |a, f| a | f);
        vec![vec![Check::Any { arg, bits: low(bits) }]]
    };
    rules.insert(nr(nix::libc::SYS_clone), flag_rules(0, &[]));
    rules.insert(nr(nix::libc::SYS_unshare), flag_rules(0, &[CLONE_NEWTIME]));
    rules.insert(nr(nix::libc::SYS_socket), vec![vec![Check::Eq { arg: 0, value: low(AF_VSOCK) }]]);
    for r in MODE_ROUTES {
        rules.insert(nr(r.nr), set_id_rules(r));
    }
    rules.insert(
        nr(nix::libc::SYS_personality),
        vec![PERSONALITY_ALLOWED.iter().map(|v| Check::Ne { arg: 0, value: low(*v) }).collect()],
    );
    rules
}

/// A classic BPF program (an array of `struct sock_filter`, linux/filter.h).
pub type BpfProgram = Vec<SockFilter>;

/// One classic BPF instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockFilter {
    /// Opcode.
    pub code: u16,
    /// Jump offset when the test holds.
    pub jt: u8,
    /// Jump offset when it does not.
    pub jf: u8,
    /// Operand.
    pub k: u32,
}

// Classic BPF opcodes (linux/bpf_common.h).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_ALU_AND_K: u16 = 0x54;
const BPF_JA: u16 = 0x05;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JGE_K: u16 = 0x35;
const BPF_JSET_K: u16 = 0x45;
const BPF_RET_K: u16 = 0x06;
// Filter results (linux/seccomp.h).
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_ERRNO: u32 = 0x0005_0000;
// Offsets in `struct seccomp_data`.
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;
const ARGS_OFFSET: u32 = 16;

fn stmt(code: u16, k: u32) -> SockFilter {
    SockFilter { code, jt: 0, jf: 0, k }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

/// The low word of argument `arg` in `struct seccomp_data` (`args` are u64 in the
/// machine's byte order).
fn arg_low_offset(arg: u8) -> u32 {
    let base = ARGS_OFFSET + 8 * u32::from(arg);
    if cfg!(target_endian = "big") {
        base + 4
    } else {
        base
    }
}

/// The code of one rule, ending in `ret errno`; a check that fails jumps just past it.
fn rule_code(rule: &[Check], errno: u32) -> Vec<SockFilter> {
    // Each check: a load, a mask for `Masked`, one conditional jump.
    let len = |c: &Check| if matches!(c, Check::Masked { .. }) { 3 } else { 2 };
    let total: usize = rule.iter().map(len).sum::<usize>() + 1;
    let mut out = Vec::with_capacity(total);
    for c in rule {
        let (Check::Any { arg, .. } | Check::Masked { arg, .. } | Check::Eq { arg, .. } | Check::Ne { arg, .. }) = *c;
        out.push(stmt(BPF_LD_W_ABS, arg_low_offset(arg)));
        if let Check::Masked { mask, .. } = *c {
            out.push(stmt(BPF_ALU_AND_K, mask));
        }
        // From the instruction after the jump to the one after the rule's `ret`.
        let past = u8::try_from(total - out.len() - 1).unwrap_or(u8::MAX);
        out.push(match *c {
            Check::Any { bits, .. } => jump(BPF_JSET_K, bits, 0, past),
            Check::Masked { value, .. } | Check::Eq { value, .. } => jump(BPF_JEQ_K, value, 0, past),
            Check::Ne { value, .. } => jump(BPF_JEQ_K, value, past, 0),
        });
    }
    out.push(stmt(BPF_RET_K, RET_ERRNO | errno));
    out
}

/// Emits a program with forward `ja` jumps to labels, resolved at the end.
struct Emitter {
    code: Vec<SockFilter>,
    /// `(index of a ja, label)`.
    fixups: Vec<(usize, usize)>,
    labels: Vec<Option<usize>>,
}

impl Emitter {
    fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }

    fn place(&mut self, label: usize) {
        self.labels[label] = Some(self.code.len());
    }

    fn jump_to(&mut self, label: usize) {
        self.fixups.push((self.code.len(), label));
        self.code.push(stmt(BPF_JA, 0));
    }

    /// A binary search over `nrs` (sorted) with the system call number loaded: a number in
    /// the list jumps to its block, any other is allowed.
    fn search(&mut self, nrs: &[u32], blocks: &BTreeMap<u32, usize>) {
        match nrs {
            [] => self.code.push(stmt(BPF_RET_K, RET_ALLOW)),
            [nr] => {
                self.code.push(jump(BPF_JEQ_K, *nr, 0, 1));
                self.jump_to(blocks[nr]);
                self.code.push(stmt(BPF_RET_K, RET_ALLOW));
            }
            _ => {
                let (left, right) = nrs.split_at(nrs.len() / 2);
                let upper = self.label();
                // nr >= right[0]: the upper half (a far jump); else the lower half follows.
                self.code.push(jump(BPF_JGE_K, right[0], 0, 1));
                self.jump_to(upper);
                self.search(left, blocks);
                self.place(upper);
                self.search(right, blocks);
            }
        }
    }

    fn finish(mut self) -> BpfProgram {
        for (at, label) in self.fixups {
            let target = self.labels[label].unwrap_or(at + 1);
            self.code[at].k = u32::try_from(target - at - 1).unwrap_or(0);
        }
        self.code
    }
}

/// The deny-list program: a foreign architecture's system call kills the process; a
/// denied use answers `EPERM`; everything else is allowed.
///
/// The numbers are found by a binary search, not a chain of comparisons: the kernel runs
/// a new filter once per system call number when it is attached (to learn which numbers it
/// always allows, and skip the filter for those), so a chain of ~80 comparisons cost about
/// 0.24 ms per cell start, and the search ~0.02 ms (bench/README.md).
#[must_use]
pub fn deny_list() -> BpfProgram {
    let eperm = u32::try_from(nix::libc::EPERM).unwrap_or(1);
    let rules = deny_rules();
    let mut e = Emitter { code: Vec::new(), fixups: Vec::new(), labels: Vec::new() };
    e.code.push(stmt(BPF_LD_W_ABS, ARCH_OFFSET));
    e.code.push(jump(BPF_JEQ_K, AUDIT_ARCH, 1, 0));
    e.code.push(stmt(BPF_RET_K, RET_KILL_PROCESS));
    e.code.push(stmt(BPF_LD_W_ABS, NR_OFFSET));
    let blocks: BTreeMap<u32, usize> = rules.keys().map(|nr| (*nr, e.label())).collect();
    let nrs: Vec<u32> = rules.keys().copied().collect();
    e.search(&nrs, &blocks);
    for (nr, uses) in &rules {
        e.place(blocks[nr]);
        if uses.is_empty() {
            e.code.push(stmt(BPF_RET_K, RET_ERRNO | eperm));
        } else {
            for rule in uses {
                e.code.extend(rule_code(rule, eperm));
            }
            e.code.push(stmt(BPF_RET_K, RET_ALLOW));
        }
    }
    e.finish()
}

/// `AUDIT_ARCH_*` of the native architecture (linux/audit.h).
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;
#[cfg(target_arch = "riscv64")]
const AUDIT_ARCH: u32 = 0xC000_00F3;

/// The guard program: `clone3`, `openat2` → `ENOSYS`; x32 system calls → `EPERM` (x86-64);
/// any number above [`SYS_LAST_REVIEWED`] → `ENOSYS`, as on a kernel without it: a newer
/// kernel's calls are denied until someone decided about them (`open_tree_attr`, new in
/// 6.15, cloned mounts while the filter allowed every call it did not name).
#[must_use]
pub fn guard() -> BpfProgram {
    let enosys = RET_ERRNO | u32::try_from(nix::libc::ENOSYS).unwrap_or(38);
    let eperm = RET_ERRNO | u32::try_from(nix::libc::EPERM).unwrap_or(1);
    let arch = AUDIT_ARCH;
    let clone3 = u32::try_from(nix::libc::SYS_clone3).unwrap_or(435);
    let openat2 = u32::try_from(nix::libc::SYS_openat2).unwrap_or(437);
    let x32 = cfg!(target_arch = "x86_64");
    let mut p = vec![
        stmt(BPF_LD_W_ABS, ARCH_OFFSET),
        // A foreign architecture falls through to ALLOW here; the deny list kills it.
        jump(BPF_JEQ_K, arch, 1, 0),
        stmt(BPF_RET_K, RET_ALLOW),
        stmt(BPF_LD_W_ABS, NR_OFFSET),
    ];
    if x32 {
        p.push(jump(BPF_JGE_K, 0x4000_0000, 0, 1));
        p.push(stmt(BPF_RET_K, eperm));
    }
    let unreviewed = u32::try_from(SYS_LAST_REVIEWED + 1).unwrap_or(u32::MAX);
    p.push(jump(BPF_JGE_K, unreviewed, 0, 1));
    p.push(stmt(BPF_RET_K, enosys));
    for nr in [clone3, openat2] {
        p.push(jump(BPF_JEQ_K, nr, 0, 1));
        p.push(stmt(BPF_RET_K, enosys));
    }
    p.push(stmt(BPF_RET_K, RET_ALLOW));
    p
}

/// A program as the bytes bubblewrap reads (an array of `struct sock_filter`).
#[must_use]
pub fn to_bytes(program: &BpfProgram) -> Vec<u8> {
    let mut out = Vec::with_capacity(program.len() * 8);
    for f in program {
        out.extend_from_slice(&f.code.to_ne_bytes());
        out.push(f.jt);
        out.push(f.jf);
        out.extend_from_slice(&f.k.to_ne_bytes());
    }
    out
}

/// The programs a cell gets, in the order they are installed: the deny list, then the
/// clone3/openat2/x32 guard. Their number is the number of descriptors a launch hands
/// bubblewrap for them (see [`crate::host::descriptors`]).
pub const PROGRAMS: [fn() -> BpfProgram; 2] = [deny_list, guard];

/// Every program of [`PROGRAMS`], as bytes, in the order they are installed.
#[must_use]
pub fn programs() -> Vec<Vec<u8>> {
    PROGRAMS.iter().map(|build| to_bytes(&build())).collect()
}

/// Names of everything the filter denies, for plans and reports.
#[must_use]
pub fn summary() -> Vec<String> {
    let mut out: Vec<String> =
        DENIED_ALWAYS.iter().chain(DENIED_ARCH).chain(DENIED_UNNAMED).map(|d| d.name.to_owned()).collect();
    out.extend(DENIED_USES.iter().map(|(what, _)| (*what).to_owned()));
    out
}

/// Whether the kernel can apply the cell's seccomp filter.
#[must_use]
pub fn seccomp_available() -> bool {
    use nix::libc;
    // One system call (Linux 4.14 and later): is the errno action of filters available?
    let errno: u32 = libc::SECCOMP_RET_ERRNO;
    // SAFETY: seccomp(GET_ACTION_AVAIL) reads the u32 it is given and changes nothing.
    let asked = unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_GET_ACTION_AVAIL, 0u32, &raw const errno) };
    if asked == 0 {
        return true;
    }
    // Older kernels: what /proc says.
    let status = crate::sys::read_text("/proc/self/status").unwrap_or_default();
    let actions = crate::sys::read_sysctl("/proc/sys/kernel/seccomp/actions_avail");
    // Kernels without actions_avail (before 4.14) still filter; a missing Seccomp line
    // means no seccomp at all.
    status.lines().any(|l| l.starts_with("Seccomp:")) && actions.is_none_or(|a| a.contains("errno"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_build_and_serialise() {
        let p = programs();
        assert_eq!(p.len(), PROGRAMS.len());
        assert!(p.iter().all(|b| !b.is_empty() && b.len() % 8 == 0));
        assert!(deny_list().len() < 4096);
    }

    /// Runs a classic BPF program over a `struct seccomp_data` the way the kernel does.
    fn run(program: &BpfProgram, nr: i64, args: [u64; 6]) -> u32 {
        run_counting(program, AUDIT_ARCH, nr, args).0
    }

    /// The answer of `program` and how many instructions it ran.
    fn run_counting(program: &BpfProgram, arch: u32, nr: i64, args: [u64; 6]) -> (u32, usize) {
        let mut data = Vec::with_capacity(64);
        data.extend_from_slice(&i32::try_from(nr).unwrap().to_ne_bytes());
        data.extend_from_slice(&arch.to_ne_bytes());
        data.extend_from_slice(&0u64.to_ne_bytes());
        for a in args {
            data.extend_from_slice(&a.to_ne_bytes());
        }
        let word = |k: u32| {
            let k = k as usize;
            u32::from_ne_bytes(data[k..k + 4].try_into().unwrap())
        };
        let (mut acc, mut pc, mut steps) = (0u32, 0usize, 0usize);
        loop {
            let f = &program[pc];
            pc += 1;
            steps += 1;
            match f.code {
                0x20 => acc = word(f.k),
                0x00 => acc = f.k,
                0x54 => acc &= f.k,
                0x06 => return (f.k, steps),
                0x05 => pc += f.k as usize,
                0x15 | 0x25 | 0x35 | 0x45 => {
                    let taken = match f.code {
                        0x15 => acc == f.k,
                        0x25 => acc > f.k,
                        0x35 => acc >= f.k,
                        _ => acc & f.k != 0,
                    };
                    pc += usize::from(if taken { f.jt } else { f.jf });
                }
                other => panic!("opcode {other:#x} not modelled"),
            }
        }
    }

    /// What both programs answer together (the kernel takes the most restrictive).
    fn verdict(nr: i64, args: [u64; 6]) -> &'static str {
        let answers = [run(&deny_list(), nr, args), run(&guard(), nr, args)];
        let errno = |e: i32| 0x0005_0000 | u32::try_from(e).unwrap();
        if answers.contains(&errno(nix::libc::ENOSYS)) {
            "ENOSYS"
        } else if answers.contains(&errno(nix::libc::EPERM)) {
            "EPERM"
        } else if answers.iter().all(|a| *a == 0x7fff_0000) {
            "allow"
        } else {
            "other"
        }
    }

    /// The deny list as `seccompiler` (a chain of comparisons) builds it from the same
    /// rules: the reference the binary search must answer exactly like.
    fn reference_deny_list() -> BpfProgram {
        use seccompiler::{
            SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
        };
        let rules = deny_rules()
            .into_iter()
            .map(|(nr, uses)| {
                // "Any of these bits" is one rule per bit for seccompiler.
                let expanded = uses.into_iter().flat_map(|rule| {
                    let mut rules: Vec<Vec<Check>> = vec![Vec::new()];
                    for c in rule {
                        let alternatives: Vec<Check> = match c {
                            Check::Any { arg, bits } => (0..32)
                                .map(|b| 1u32 << b)
                                .filter(|b| bits & b != 0)
                                .map(|b| Check::Masked { arg, mask: b, value: b })
                                .collect(),
                            other => vec![other],
                        };
                        rules = rules
                            .iter()
                            .flat_map(|r| alternatives.iter().map(move |a| [r.clone(), vec![*a]].concat()))
                            .collect();
                    }
                    rules
                });
                let uses = expanded
                    .map(|rule| {
                        let conds = rule
                            .into_iter()
                            .map(|c| {
                                let (arg, op, value) = match c {
                                    Check::Any { .. } => unreachable!("expanded above"),
                                    Check::Masked { arg, mask, value } => {
                                        (arg, SeccompCmpOp::MaskedEq(u64::from(mask)), value)
                                    }
                                    Check::Eq { arg, value } => (arg, SeccompCmpOp::Eq, value),
                                    Check::Ne { arg, value } => (arg, SeccompCmpOp::Ne, value),
                                };
                                SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, u64::from(value)).unwrap()
                            })
                            .collect();
                        SeccompRule::new(conds).unwrap()
                    })
                    .collect();
                (i64::from(nr), uses)
            })
            .collect();
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(u32::try_from(nix::libc::EPERM).unwrap()),
            std::env::consts::ARCH.try_into().unwrap(),
        )
        .unwrap();
        let program: seccompiler::BpfProgram = filter.try_into().unwrap();
        program.into_iter().map(|f| SockFilter { code: f.code, jt: f.jt, jf: f.jf, k: f.k }).collect()
    }

    #[test]
    fn the_search_answers_as_the_chain_of_comparisons() {
        let (tree, chain) = (deny_list(), reference_deny_list());
        // Argument values: none, all, each bit the rules test, the requests and values they
        // name, and pseudo-random ones.
        let mut values: Vec<u64> = vec![0, u64::MAX, 0xffff_ffff, 0x1_0000_0000];
        values.extend((0..32).map(|b| 1u64 << b));
        values.extend([TIOCSTI, TIOCLINUX, AF_VSOCK, 0o4755, 0o2755, 0o6755, 0o755]);
        values.extend(PERSONALITY_ALLOWED);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push(x);
        }
        let numbers = (0..=480).chain([0x4000_0000, 0x4000_0001, 0x4000_0000 + 101, i64::from(i32::MAX)]);
        let mut compared = 0;
        for nr in numbers {
            for (i, v) in values.iter().enumerate() {
                // Each argument slot gets a value; the others vary with it.
                let args = [0, 1, 2, 3, 4, 5]
                    .map(|slot| values[(i + slot * 7) % values.len()] ^ if slot == 0 { *v } else { 0 });
                for args in [args, [*v; 6]] {
                    for arch in [AUDIT_ARCH, 0x4000_0003] {
                        let want = run_counting(&chain, arch, nr, args).0;
                        assert_eq!(
                            run_counting(&tree, arch, nr, args).0,
                            want,
                            "nr {nr} arch {arch:#x} args {args:x?}"
                        );
                        compared += 1;
                    }
                }
            }
        }
        assert!(compared > 100_000, "{compared}");
    }

    #[test]
    fn an_allowed_system_call_is_found_in_a_few_steps() {
        // What the kernel runs per system call number when the filter is attached (and on
        // every call the filter is not skipped for): a search, not a walk of the list.
        let (tree, chain) = (deny_list(), reference_deny_list());
        let ruled = deny_rules();
        let free = || (0..=480).filter(|nr| !ruled.contains_key(&u32::try_from(*nr).unwrap()));
        let worst = free().map(|nr| run_counting(&tree, AUDIT_ARCH, nr, [0; 6]).1).max().unwrap();
        let chain_worst = free().map(|nr| run_counting(&chain, AUDIT_ARCH, nr, [0; 6]).1).max().unwrap();
        assert!(worst <= 24, "{worst} steps");
        assert!(chain_worst > 4 * worst, "the reference walks {chain_worst} steps");
    }

    #[test]
    fn no_route_sets_a_set_id_bit() {
        let creat = u64::try_from(nix::libc::O_CREAT | nix::libc::O_WRONLY).unwrap();
        let tmpfile = u64::try_from(nix::libc::O_TMPFILE | nix::libc::O_WRONLY).unwrap();
        for r in MODE_ROUTES {
            for (mode, want) in [(0o4755, "EPERM"), (0o2755, "EPERM"), (0o6755, "EPERM"), (0o755, "allow")] {
                // Bits above the 16 that umode_t keeps must not hide the set-id bit.
                let mode = mode | 0x1_0000_0000 | 0x10_0000;
                let flag_sets: &[u64] = if r.flags_arg.is_some() { &[creat, tmpfile] } else { &[0] };
                for flags in flag_sets {
                    let mut args = [0u64; 6];
                    args[usize::from(r.mode_arg)] = mode;
                    if let Some(f) = r.flags_arg {
                        args[usize::from(f)] = *flags;
                    }
                    assert_eq!(verdict(r.nr, args), want, "{} mode {mode:o} flags {flags:o}", r.name);
                }
            }
            if let Some(f) = r.flags_arg {
                // Without O_CREAT or O_TMPFILE the kernel ignores the mode: opening stays allowed.
                let mut args = [0u64; 6];
                args[usize::from(r.mode_arg)] = 0o4755;
                args[usize::from(f)] = u64::try_from(nix::libc::O_RDWR | nix::libc::O_DIRECTORY).unwrap();
                assert_eq!(verdict(r.nr, args), "allow", "{} without O_CREAT", r.name);
            }
        }
        assert_eq!(verdict(nix::libc::SYS_openat2, [0; 6]), "ENOSYS");
        assert_eq!(verdict(nix::libc::SYS_clone3, [0; 6]), "ENOSYS");
        assert_eq!(verdict(nix::libc::SYS_ptrace, [0; 6]), "EPERM");
        assert_eq!(verdict(nix::libc::SYS_getpid, [0; 6]), "allow");
    }

    #[test]
    fn calls_beyond_the_reviewed_table_are_not_allowed() {
        // Found by a tester: new in Linux 6.15, it cloned a mount while the filter allowed
        // every number it did not name.
        assert_eq!(verdict(SYS_OPEN_TREE_ATTR, [0; 6]), "EPERM");
        assert_eq!(verdict(nix::libc::SYS_quotactl_fd, [0; 6]), "EPERM");
        assert_eq!(verdict(nix::libc::SYS_adjtimex, [0; 6]), "EPERM");
        // The last reviewed number is decided (file_setattr: allowed); every later one
        // answers as on a kernel without it, up to the x32 table (EPERM) and beyond.
        assert_eq!(verdict(SYS_LAST_REVIEWED, [0; 6]), "allow");
        for nr in [SYS_LAST_REVIEWED + 1, SYS_LAST_REVIEWED + 2, 1000, 0x3fff_ffff] {
            assert_eq!(verdict(nr, [0; 6]), "ENOSYS", "{nr}");
        }
        let top = if cfg!(target_arch = "x86_64") { "EPERM" } else { "ENOSYS" };
        for nr in [0x4000_0000, i64::from(i32::MAX), -1] {
            assert_eq!(verdict(nr, [0; 6]), top, "{nr}");
        }
    }

    #[test]
    fn summary_names_the_headline_denials() {
        let s = summary();
        for must in ["SYS_ptrace", "SYS_io_uring_setup", "SYS_bpf", "SYS_mount", "SYS_setns", "SYS_keyctl"] {
            assert!(s.iter().any(|x| x == must), "{must}");
        }
        assert!(NAMESPACE_FLAGS.iter().any(|(_, n)| *n == "CLONE_NEWUSER"));
    }
}
