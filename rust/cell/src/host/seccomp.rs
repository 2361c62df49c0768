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

use crate::sys::SYS_FCHMODAT2;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition as Cond, SeccompFilter,
    SeccompRule,
};

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
    SYS_syslog => "the kernel log leaks host information",
    SYS_quotactl => "host file-system quotas",
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
pub const DENIED_USES: [(&str, &str); 9] = [
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
];

fn cond(arg: u8, op: Op, value: u64) -> Result<Cond, seccompiler::BackendError> {
    Cond::new(arg, Len::Dword, op, value)
}

/// Matches a call of `route` whose mode has `S_ISUID` or `S_ISGID` (and, for the `open`
/// family, whose flags make the kernel use the mode). Masked equality on single bits holds
/// however the kernel narrows the argument (`umode_t` is 16 bits).
fn set_id_rules(route: &ModeRoute) -> Result<Vec<SeccompRule>, seccompiler::BackendError> {
    let mut out = Vec::new();
    for bit in SET_ID_BITS {
        let mode = cond(route.mode_arg, Op::MaskedEq(bit), bit)?;
        match route.flags_arg {
            None => out.push(SeccompRule::new(vec![mode])?),
            Some(flags) => {
                for f in CREATE_FLAGS {
                    out.push(SeccompRule::new(vec![cond(flags, Op::MaskedEq(f), f)?, mode.clone()])?);
                }
            }
        }
    }
    Ok(out)
}

fn native_arch() -> Result<seccompiler::TargetArch, seccompiler::BackendError> {
    std::env::consts::ARCH.try_into()
}

/// The deny-list program.
///
/// # Errors
/// When seccompiler rejects the filter (a bug) or the architecture is unsupported.
pub fn deny_list() -> Result<BpfProgram, seccompiler::BackendError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for d in DENIED_ALWAYS.iter().chain(DENIED_ARCH) {
        rules.insert(d.nr, Vec::new());
    }
    rules.insert(
        nix::libc::SYS_ioctl,
        vec![SeccompRule::new(vec![cond(1, Op::Eq, TIOCSTI)?])?, SeccompRule::new(vec![cond(1, Op::Eq, TIOCLINUX)?])?],
    );
    let flag_rules = |arg: u8, extra: &[u64]| -> Result<Vec<SeccompRule>, seccompiler::BackendError> {
        NAMESPACE_FLAGS
            .iter()
            .map(|(f, _)| *f)
            .chain(extra.iter().copied())
            .map(|f| SeccompRule::new(vec![cond(arg, Op::MaskedEq(f), f)?]))
            .collect()
    };
    rules.insert(nix::libc::SYS_clone, flag_rules(0, &[])?);
    rules.insert(nix::libc::SYS_unshare, flag_rules(0, &[CLONE_NEWTIME])?);
    rules.insert(nix::libc::SYS_socket, vec![SeccompRule::new(vec![cond(0, Op::Eq, AF_VSOCK)?])?]);
    for r in MODE_ROUTES {
        rules.insert(r.nr, set_id_rules(r)?);
    }
    rules.insert(
        nix::libc::SYS_personality,
        vec![SeccompRule::new(PERSONALITY_ALLOWED.iter().map(|v| cond(0, Op::Ne, *v)).collect::<Result<_, _>>()?)?],
    );
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(u32::try_from(nix::libc::EPERM).unwrap_or(1)),
        native_arch()?,
    )?;
    filter.try_into()
}

/// `AUDIT_ARCH_*` of the native architecture (linux/audit.h).
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;
#[cfg(target_arch = "riscv64")]
const AUDIT_ARCH: u32 = 0xC000_00F3;

fn stmt(code: u16, k: u32) -> seccompiler::sock_filter {
    seccompiler::sock_filter { code, jt: 0, jf: 0, k }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> seccompiler::sock_filter {
    seccompiler::sock_filter { code, jt, jf, k }
}

/// The guard program: `clone3`, `openat2` → `ENOSYS`; x32 system calls → `EPERM` (x86-64).
#[must_use]
pub fn guard() -> BpfProgram {
    // Classic BPF opcodes (linux/bpf_common.h).
    const BPF_LD: u16 = 0x00;
    const BPF_W: u16 = 0x00;
    const BPF_ABS: u16 = 0x20;
    const BPF_JMP: u16 = 0x05;
    const BPF_JEQ: u16 = 0x10;
    const BPF_JGE: u16 = 0x30;
    const BPF_K: u16 = 0x00;
    const BPF_RET: u16 = 0x06;
    const RET_ALLOW: u32 = 0x7fff_0000;
    const RET_ERRNO: u32 = 0x0005_0000;
    const NR_OFFSET: u32 = 0;
    const ARCH_OFFSET: u32 = 4;
    let enosys = RET_ERRNO | u32::try_from(nix::libc::ENOSYS).unwrap_or(38);
    let eperm = RET_ERRNO | u32::try_from(nix::libc::EPERM).unwrap_or(1);
    let arch = AUDIT_ARCH;
    let clone3 = u32::try_from(nix::libc::SYS_clone3).unwrap_or(435);
    let openat2 = u32::try_from(nix::libc::SYS_openat2).unwrap_or(437);
    let x32 = cfg!(target_arch = "x86_64");
    let mut p = vec![
        stmt(BPF_LD | BPF_W | BPF_ABS, ARCH_OFFSET),
        // A foreign architecture falls through to ALLOW here; the deny list kills it.
        jump(BPF_JMP | BPF_JEQ | BPF_K, arch, 1, 0),
        stmt(BPF_RET | BPF_K, RET_ALLOW),
        stmt(BPF_LD | BPF_W | BPF_ABS, NR_OFFSET),
    ];
    if x32 {
        p.push(jump(BPF_JMP | BPF_JGE | BPF_K, 0x4000_0000, 0, 1));
        p.push(stmt(BPF_RET | BPF_K, eperm));
    }
    for nr in [clone3, openat2] {
        p.push(jump(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1));
        p.push(stmt(BPF_RET | BPF_K, enosys));
    }
    p.push(stmt(BPF_RET | BPF_K, RET_ALLOW));
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
pub const PROGRAMS: [fn() -> Result<BpfProgram, seccompiler::BackendError>; 2] = [deny_list, || Ok(guard())];

/// Every program of [`PROGRAMS`], as bytes, in the order they are installed.
///
/// # Errors
/// See [`deny_list`].
pub fn programs() -> Result<Vec<Vec<u8>>, seccompiler::BackendError> {
    PROGRAMS.iter().map(|build| build().map(|p| to_bytes(&p))).collect()
}

/// Names of everything the filter denies, for plans and reports.
#[must_use]
pub fn summary() -> Vec<String> {
    let mut out: Vec<String> = DENIED_ALWAYS.iter().chain(DENIED_ARCH).map(|d| d.name.to_owned()).collect();
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
        let p = programs().unwrap();
        assert_eq!(p.len(), PROGRAMS.len());
        assert!(p.iter().all(|b| !b.is_empty() && b.len() % 8 == 0));
        assert!(deny_list().unwrap().len() < 4096);
    }

    /// Runs a classic BPF program over a `struct seccomp_data` the way the kernel does.
    fn run(program: &BpfProgram, nr: i64, args: [u64; 6]) -> u32 {
        let mut data = Vec::with_capacity(64);
        data.extend_from_slice(&i32::try_from(nr).unwrap().to_ne_bytes());
        data.extend_from_slice(&AUDIT_ARCH.to_ne_bytes());
        data.extend_from_slice(&0u64.to_ne_bytes());
        for a in args {
            data.extend_from_slice(&a.to_ne_bytes());
        }
        let word = |k: u32| {
            let k = k as usize;
            u32::from_ne_bytes(data[k..k + 4].try_into().unwrap())
        };
        let (mut acc, mut pc) = (0u32, 0usize);
        loop {
            let f = &program[pc];
            pc += 1;
            match f.code {
                0x20 => acc = word(f.k),
                0x00 => acc = f.k,
                0x54 => acc &= f.k,
                0x06 => return f.k,
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
        let answers = [run(&deny_list().unwrap(), nr, args), run(&guard(), nr, args)];
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
    fn summary_names_the_headline_denials() {
        let s = summary();
        for must in ["SYS_ptrace", "SYS_io_uring_setup", "SYS_bpf", "SYS_mount", "SYS_setns", "SYS_keyctl"] {
            assert!(s.iter().any(|x| x == must), "{must}");
        }
        assert!(NAMESPACE_FLAGS.iter().any(|(_, n)| *n == "CLONE_NEWUSER"));
    }
}
