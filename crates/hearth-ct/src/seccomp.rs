//! The container's seccomp filter: LXC's default denylist plus Proxmox's additions for
//! unprivileged containers and, for privileged containers, what LXC's AppArmor profile
//! otherwise confines, compiled with `seccompiler` (pure Rust, no libseccomp) and installed
//! last, after every setup system call (containers.md 2.3 step 24).
//!
//! **Rules for every container** (x86-64 numbers from `libc::SYS_*`; everything else is
//! allowed):
//!
//! | system call | condition | verdict |
//! |---|---|---|
//! | kexec_load, kexec_file_load, open_by_handle_at, init_module, finit_module, delete_module | always | `EPERM` |
//! | umount2 | `flags & MNT_FORCE` (unprivileged; privileged: always, below) | `EPERM` |
//! | keyctl, add_key, request_key | unless `features.keyctl` (privileged: always) | `ENOSYS` (so guests fall back as on old kernels) |
//! | ioctl | `(cmd & 0xff00) == 0x9400` (btrfs) | `EPERM` |
//! | socket | `domain == AF_ALG` | `EAFNOSUPPORT` |
//!
//! **Privileged containers** (container root is host root) add rules that keep the view the
//! runtime built — `/proc/sys` and `/proc/sysrq-trigger` read-only, `/proc` files masked,
//! sysfs read-only — as it was. Nothing else protects it: in a user namespace the kernel
//! checks sysctl writes against the host's root and locks nothing the container could use,
//! but host root may remount, unmount and mount at will. A filter sees only numbers, never the
//! strings behind pointers (a file system type, a path; reading them from user memory in a
//! supervisor would race with the container rewriting them), so the rules decide on flags:
//!
//! | system call | condition | verdict |
//! |---|---|---|
//! | mount | anything but a propagation change (shared, private, slave) ([`mount_flags_allowed`]) | `EPERM` |
//! | umount2, umount (i386) | always: unmounting `/proc/sys` would uncover the writable one | `EPERM` |
//! | pivot_root | always: pivoting onto `/proc/sys` would uncover it as well | `EPERM` |
//! | open_tree, move_mount, fsopen, fsconfig, fsmount, fspick, mount_setattr, open_tree_attr | always: the new mount API has no flags to judge | `ENOSYS`, so tools fall back to mount(2) |
//! | unshare, clone | `flags & CLONE_NEWNS` | `EPERM` |
//! | clone3 | always: its flags are behind a pointer | `ENOSYS`, so glibc falls back to clone |
//! | keyctl, add_key, request_key | always: the keyrings are the host root's | `ENOSYS` |
//! | bpf, perf_event_open | always: tracing programs and kernel profiling read host kernel memory | `EPERM` |
//! | swapon, swapoff | always: swap is the host's | `EPERM` |
//! | quotactl | always: it reaches a host file system through a device node that mknod may create but the device rules would never let open | `EPERM` |
//!
//! Why no mount at all but propagation changes: a new superblock (procfs, sysfs, cgroup, tmpfs:
//! the type is a string) could show the kernel's knobs afresh; `MS_MOVE` could move
//! `/proc/sys` away; a plain bind of `/proc` copies the procfs mount without the read-only
//! `/proc/sys` on top of it; a bind remount without `MS_RDONLY` makes `/proc/sys`, sysfs or a
//! read-only mount point writable again; a plain remount reconfigures a superblock, possibly
//! one the host shares (the host's devtmpfs behind `/dev/null`). Recursive binds and read-only
//! bind remounts are harmless on their own, but systemd, once a bind succeeded, insists on
//! the read-write remount that follows (its credentials set-up fails units such as
//! systemd-tmpfiles-setup), while a refused bind makes it fall back to plain directories. The
//! flags are judged as the kernel's `path_mount` reads them: only the low 32 bits; the historic
//! `MS_MGC_VAL` magic the kernel strips from the high half lies on the propagation bits, so
//! flags carrying it are never a bare propagation change, for the kernel or for the filter.
//! Refusing `CLONE_NEWNS` costs no protection (a new mount namespace inherits the filter) but
//! makes systemd run a unit without its mount sandbox instead of failing it: systemd treats a
//! refused `unshare(CLONE_NEWNS)` as "containerized, no namespacing" and carries on, whereas
//! a refused mount halfway through its namespace set-up fails the unit.
//!
//! **Program layout.** seccompiler gives one match action per filter, so the rules with simple
//! conditions are compiled as one seccompiler filter per errno (match → `ERRNO(e)`, mismatch →
//! allow) and the programs are chained: each `RET ALLOW` of a program becomes a forward `JA` to
//! the next program's first instruction (same length, so no other jump moves); the last chain
//! ends in `RET ALLOW`. A hand-assembled prefix in front and an i386 block behind close the ABI
//! bypasses, and the mount flag check is a hand-assembled block at the end that both ABIs
//! jump to:
//!
//! - **x32** (x86-64 entry, number with bit `0x40000000`): the x86-64 rules match exact
//!   numbers, so `init_module | 0x40000000` would pass them. The prefix returns `ENOSYS` for
//!   every x86-64-arch call with that bit set, which is what a kernel without x32 support
//!   answers anyway; x32 userlands are not supported in containers.
//! - **i386** (`int 0x80`, sysenter; arch `AUDIT_ARCH_I386`): seccompiler only knows x86-64 and
//!   would kill the process, which would break 32-bit programs that LXC runs fine. The prefix
//!   jumps to a hand-assembled block with the same rules under i386 numbers (checked against
//!   `asm/unistd_32.h` in the tests; i386 has no kexec_file_load). Residual gap, as with
//!   libseccomp: i386 `socketcall(SYS_SOCKET, args*)` passes its arguments through memory,
//!   which a BPF filter cannot read, so `AF_ALG` through socketcall cannot be refused without
//!   refusing every socket of 32-bit glibc (which uses socketcall).
//! - **Any other arch** value (impossible on x86-64 hardware): the process is killed.
//!
//! [`apply`] installs the program *without* `no_new_privs` (see [`hearth_sys::seccomp`]):
//! `seccompiler::apply_filter` would set it, and a system container's init must not run with it.

use std::collections::{BTreeMap, HashMap};

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    TargetArch, sock_filter,
};

use crate::spec::Features;

/// `AUDIT_ARCH_X86_64` (`EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE`).
pub const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
/// `AUDIT_ARCH_I386` (`EM_386 | __AUDIT_ARCH_LE`).
pub const AUDIT_ARCH_I386: u32 = 3 | 0x4000_0000;
/// `__X32_SYSCALL_BIT`.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;
/// `AF_ALG`.
pub const AF_ALG: u32 = 38;
/// `open_tree_attr` (Linux 6.15; the same number on both ABIs, newer than the libc crate).
pub const SYS_OPEN_TREE_ATTR: i64 = 467;

// Classic BPF opcodes (linux/bpf_common.h) and seccomp return values (linux/seccomp.h).
/// `BPF_LD | BPF_W | BPF_ABS`.
const BPF_LD_W_ABS: u16 = 0x20;
/// `BPF_ALU | BPF_AND | BPF_K`.
const BPF_ALU_AND_K: u16 = 0x54;
/// `BPF_JMP | BPF_JA`.
const BPF_JMP_JA: u16 = 0x05;
/// `BPF_JMP | BPF_JEQ | BPF_K`.
const BPF_JMP_JEQ_K: u16 = 0x15;
/// `BPF_JMP | BPF_JSET | BPF_K`.
const BPF_JMP_JSET_K: u16 = 0x45;
/// `BPF_RET | BPF_K`.
const BPF_RET_K: u16 = 0x06;
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_ERRNO: u32 = 0x0005_0000;
// struct seccomp_data offsets.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
const DATA_ARGS: u32 = 16;

// mount(2) flags (linux/mount.h); the kernel reads only the low 32 bits of the argument.
const MS_REC: u32 = 16384;
const MS_SILENT: u32 = 32768;
const MS_PRIVATE: u32 = 1 << 18;
const MS_SLAVE: u32 = 1 << 19;
const MS_SHARED: u32 = 1 << 20;
/// `MS_MGC_VAL`, the historic magic in the high half, and `MS_MGC_MSK`.
const MS_MGC_VAL: u32 = 0xc0ed_0000;
const MS_MGC_MSK: u32 = 0xffff_0000;

/// Errors building or installing the filter.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("compiling the seccomp filter: {0}")]
    Compile(#[from] seccompiler::BackendError),
    #[error("the seccomp filter has {0} instructions, more than the kernel's 4096")]
    TooLarge(usize),
    #[error("installing the seccomp filter: {0}")]
    Apply(#[source] std::io::Error),
}

/// Which container a filter is for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Profile {
    /// Container root is host root (no user namespace).
    pub privileged: bool,
    pub features: Features,
}

/// When a denied system call matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cond {
    Always,
    /// `(arg[index] as u32) & mask == value`.
    MaskedEq {
        arg: u8,
        mask: u32,
        value: u32,
    },
    /// mount(2) flags (argument 3) that [`mount_flags_allowed`] refuses.
    MountFlags,
}

/// One row of the denylist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deny {
    pub name: &'static str,
    /// The x86-64 number, where x86-64 has the call.
    pub nr: Option<i64>,
    /// The i386 number, where i386 has the call.
    pub nr_i386: Option<u32>,
    pub cond: Cond,
    pub errno: i32,
}

/// Whether a privileged container may call mount(2) with `flags` (see the module
/// documentation): only to change propagation (shared, private, slave, recursively or not).
/// The flags are read as the kernel's `path_mount` reads them: the low 32 bits, the historic
/// magic stripped; a remount, a bind or anything else makes them more than one propagation flag.
pub fn mount_flags_allowed(flags: u64) -> bool {
    let mut flags = flags as u32;
    if flags & MS_MGC_MSK == MS_MGC_VAL {
        flags &= !MS_MGC_MSK;
    }
    let propagation = flags & !(MS_REC | MS_SILENT);
    [MS_SHARED, MS_PRIVATE, MS_SLAVE].contains(&propagation)
}

/// The rules for `profile`, in the order they are checked.
pub fn denylist(profile: &Profile) -> Vec<Deny> {
    let always = |name, nr, nr_i386, errno| Deny { name, nr: Some(nr), nr_i386, cond: Cond::Always, errno };
    let mut rules = vec![
        always("kexec_load", libc::SYS_kexec_load, Some(283), libc::EPERM),
        always("kexec_file_load", libc::SYS_kexec_file_load, None, libc::EPERM),
        always("open_by_handle_at", libc::SYS_open_by_handle_at, Some(342), libc::EPERM),
        always("init_module", libc::SYS_init_module, Some(128), libc::EPERM),
        always("finit_module", libc::SYS_finit_module, Some(350), libc::EPERM),
        always("delete_module", libc::SYS_delete_module, Some(129), libc::EPERM),
    ];
    if !profile.privileged {
        rules.push(Deny {
            name: "umount2",
            nr: Some(libc::SYS_umount2),
            nr_i386: Some(52),
            cond: Cond::MaskedEq { arg: 1, mask: libc::MNT_FORCE as u32, value: libc::MNT_FORCE as u32 },
            errno: libc::EPERM,
        });
    }
    rules.extend([
        Deny {
            name: "ioctl",
            nr: Some(libc::SYS_ioctl),
            nr_i386: Some(54),
            cond: Cond::MaskedEq { arg: 1, mask: 0xff00, value: 0x9400 },
            errno: libc::EPERM,
        },
        Deny {
            name: "socket",
            nr: Some(libc::SYS_socket),
            nr_i386: Some(359),
            cond: Cond::MaskedEq { arg: 0, mask: u32::MAX, value: AF_ALG },
            errno: libc::EAFNOSUPPORT,
        },
    ]);
    if profile.privileged || !profile.features.keyctl {
        rules.extend([
            always("keyctl", libc::SYS_keyctl, Some(288), libc::ENOSYS),
            always("add_key", libc::SYS_add_key, Some(286), libc::ENOSYS),
            always("request_key", libc::SYS_request_key, Some(287), libc::ENOSYS),
        ]);
    }
    if profile.privileged {
        let newns = libc::CLONE_NEWNS as u32;
        rules.extend([
            Deny {
                name: "mount",
                nr: Some(libc::SYS_mount),
                nr_i386: Some(21),
                cond: Cond::MountFlags,
                errno: libc::EPERM,
            },
            always("umount2", libc::SYS_umount2, Some(52), libc::EPERM),
            Deny { name: "umount", nr: None, nr_i386: Some(22), cond: Cond::Always, errno: libc::EPERM },
            always("pivot_root", libc::SYS_pivot_root, Some(217), libc::EPERM),
            always("open_tree", libc::SYS_open_tree, Some(428), libc::ENOSYS),
            always("move_mount", libc::SYS_move_mount, Some(429), libc::ENOSYS),
            always("fsopen", libc::SYS_fsopen, Some(430), libc::ENOSYS),
            always("fsconfig", libc::SYS_fsconfig, Some(431), libc::ENOSYS),
            always("fsmount", libc::SYS_fsmount, Some(432), libc::ENOSYS),
            always("fspick", libc::SYS_fspick, Some(433), libc::ENOSYS),
            always("mount_setattr", libc::SYS_mount_setattr, Some(442), libc::ENOSYS),
            always("open_tree_attr", SYS_OPEN_TREE_ATTR, Some(SYS_OPEN_TREE_ATTR as u32), libc::ENOSYS),
            Deny {
                name: "unshare",
                nr: Some(libc::SYS_unshare),
                nr_i386: Some(310),
                cond: Cond::MaskedEq { arg: 0, mask: newns, value: newns },
                errno: libc::EPERM,
            },
            Deny {
                name: "clone",
                nr: Some(libc::SYS_clone),
                nr_i386: Some(120),
                cond: Cond::MaskedEq { arg: 0, mask: newns, value: newns },
                errno: libc::EPERM,
            },
            always("clone3", libc::SYS_clone3, Some(435), libc::ENOSYS),
            always("bpf", libc::SYS_bpf, Some(357), libc::EPERM),
            always("perf_event_open", libc::SYS_perf_event_open, Some(336), libc::EPERM),
            always("swapon", libc::SYS_swapon, Some(87), libc::EPERM),
            always("swapoff", libc::SYS_swapoff, Some(115), libc::EPERM),
            always("quotactl", libc::SYS_quotactl, Some(131), libc::EPERM),
        ]);
    }
    rules
}

/// The whole program for a container with `profile` (see the module documentation).
pub fn filter(profile: &Profile) -> Result<BpfProgram, SeccompError> {
    let rules = denylist(profile);
    let mount = rules.iter().find(|r| r.cond == Cond::MountFlags);

    // One seccompiler program per errno, chained.
    let mut by_errno: BTreeMap<i32, BTreeMap<i64, Vec<SeccompRule>>> = BTreeMap::new();
    for rule in &rules {
        let Some(nr) = rule.nr else { continue };
        let chain = match rule.cond {
            Cond::Always => vec![],
            Cond::MaskedEq { arg, mask, value } => vec![SeccompRule::new(vec![SeccompCondition::new(
                arg,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::MaskedEq(u64::from(mask)),
                u64::from(value),
            )?])?],
            Cond::MountFlags => continue,
        };
        by_errno.entry(rule.errno).or_default().insert(nr, chain);
    }
    let mut x86_64 = Vec::new();
    for (errno, rules) in by_errno {
        let compiled: BpfProgram =
            SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(errno as u32), TargetArch::x86_64)?
                .try_into()?;
        let len = compiled.len();
        x86_64.extend(compiled.into_iter().enumerate().map(|(i, insn)| {
            if insn.code == BPF_RET_K && insn.k == RET_ALLOW { stmt(BPF_JMP_JA, (len - i - 1) as u32) } else { insn }
        }));
    }
    x86_64.push(stmt(BPF_RET_K, RET_ALLOW));

    let mut i386 = i386_block(&rules);

    // Prefix: dispatch on arch, refuse x32 numbers.
    let mut program = vec![
        stmt(BPF_LD_W_ABS, DATA_ARCH),
        jump(BPF_JMP_JEQ_K, AUDIT_ARCH_I386, 0, 1),
        // Placeholder: JA to the i386 block, patched below.
        stmt(BPF_JMP_JA, 0),
        jump(BPF_JMP_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        stmt(BPF_RET_K, RET_KILL_PROCESS),
        stmt(BPF_LD_W_ABS, DATA_NR),
        jump(BPF_JMP_JSET_K, X32_SYSCALL_BIT, 0, 1),
        stmt(BPF_RET_K, RET_ERRNO | libc::ENOSYS as u32),
    ];
    // A holds the number here. mount goes to the mount block (JA patched below).
    let x86_64_mount_ja = match mount.and_then(|m| m.nr) {
        Some(nr) => {
            program.push(jump(BPF_JMP_JEQ_K, nr as u32, 0, 1));
            program.push(stmt(BPF_JMP_JA, 0));
            Some(program.len() - 1)
        }
        None => None,
    };
    // From the instruction after the JA (index 3) to the i386 block.
    program[2].k = (program.len() + x86_64.len() - 3) as u32;
    program.extend(x86_64);
    let i386_start = program.len();
    // The i386 block's mount dispatch is its instructions 1 and 2 (see i386_block).
    let i386_mount_ja = mount.and_then(|m| m.nr_i386).map(|_| i386_start + 2);
    program.append(&mut i386);
    if let Some(rule) = mount {
        let block_start = program.len();
        for ja in [x86_64_mount_ja, i386_mount_ja].into_iter().flatten() {
            program[ja].k = (block_start - ja - 1) as u32;
        }
        program.extend(mount_block(rule.errno));
    }
    if program.len() > 4096 {
        return Err(SeccompError::TooLarge(program.len()));
    }
    Ok(program)
}

/// The same rules under i386 numbers; the accumulator holds nothing on entry. With a mount
/// rule the block starts `ld nr; jeq mount, 0, 1; ja <mount block>` (the JA patched by the
/// caller).
fn i386_block(rules: &[Deny]) -> Vec<sock_filter> {
    let mut block = vec![stmt(BPF_LD_W_ABS, DATA_NR)];
    if let Some(nr) = rules.iter().find(|r| r.cond == Cond::MountFlags).and_then(|r| r.nr_i386) {
        block.push(jump(BPF_JMP_JEQ_K, nr, 0, 1));
        block.push(stmt(BPF_JMP_JA, 0));
    }
    for rule in rules {
        let Some(nr) = rule.nr_i386 else { continue };
        let ret = stmt(BPF_RET_K, RET_ERRNO | rule.errno as u32);
        match rule.cond {
            Cond::Always => {
                block.push(jump(BPF_JMP_JEQ_K, nr, 0, 1));
                block.push(ret);
            }
            Cond::MaskedEq { arg, mask, value } => {
                // nr?  no: skip the 5 instructions of this rule (A still holds nr).
                block.push(jump(BPF_JMP_JEQ_K, nr, 0, 5));
                // The low 32 bits of the argument (little endian).
                block.push(stmt(BPF_LD_W_ABS, DATA_ARGS + 8 * u32::from(arg)));
                block.push(stmt(BPF_ALU_AND_K, mask));
                block.push(jump(BPF_JMP_JEQ_K, value, 0, 1));
                block.push(ret);
                // Mismatch: reload nr for the following rules.
                block.push(stmt(BPF_LD_W_ABS, DATA_NR));
            }
            Cond::MountFlags => {}
        }
    }
    block.push(stmt(BPF_RET_K, RET_ALLOW));
    block
}

/// A classic-BPF instruction with symbolic forward jump targets, for [`assemble`].
enum Asm {
    Op(sock_filter),
    /// A conditional jump; `None` is the next instruction.
    Jump {
        code: u16,
        k: u32,
        jt: Option<&'static str>,
        jf: Option<&'static str>,
    },
    Label(&'static str),
}

/// Resolves the labels of `items` into relative jump offsets (forward only, as in seccomp).
fn assemble(items: &[Asm]) -> Vec<sock_filter> {
    let mut at = HashMap::new();
    let mut n = 0;
    for item in items {
        match item {
            Asm::Label(name) => {
                at.insert(*name, n);
            }
            _ => n += 1,
        }
    }
    let mut out: Vec<sock_filter> = Vec::new();
    for item in items {
        match item {
            Asm::Op(insn) => out.push(insn.clone()),
            Asm::Jump { code, k, jt, jf } => {
                let here = out.len();
                let offset = |target: &Option<&'static str>| match target {
                    None => 0,
                    Some(name) => {
                        let to: usize = at[name];
                        u8::try_from(to - here - 1).expect("a short forward jump")
                    }
                };
                out.push(jump(*code, *k, offset(jt), offset(jf)));
            }
            Asm::Label(_) => {}
        }
    }
    out
}

/// mount(2)'s flags judged as [`mount_flags_allowed`] does: `RET ALLOW` or `RET ERRNO(errno)`.
/// Independent of the accumulator on entry, shared by both ABIs (their arguments sit in the
/// same 64-bit slots of `struct seccomp_data`).
fn mount_block(errno: i32) -> Vec<sock_filter> {
    use Asm::{Jump, Label, Op};
    let jeq = |k, jt, jf| Jump { code: BPF_JMP_JEQ_K, k, jt, jf };
    assemble(&[
        // The flags' low half, the only part the kernel reads. The historic MS_MGC_VAL magic
        // the kernel strips sits on the propagation bits, so flags carrying it never match a
        // single propagation flag here, just as they never are one once the kernel stripped it.
        Op(stmt(BPF_LD_W_ABS, DATA_ARGS + 8 * 3)),
        Op(stmt(BPF_ALU_AND_K, !(MS_REC | MS_SILENT))),
        jeq(MS_SHARED, Some("allow"), None),
        jeq(MS_PRIVATE, Some("allow"), None),
        jeq(MS_SLAVE, Some("allow"), Some("deny")),
        Label("deny"),
        Op(stmt(BPF_RET_K, RET_ERRNO | errno as u32)),
        Label("allow"),
        Op(stmt(BPF_RET_K, RET_ALLOW)),
    ])
}

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter { code, jt: 0, jf: 0, k }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// Installs `program` on the calling thread (threads it creates later inherit it), without
/// setting `no_new_privs`: the caller needs `CAP_SYS_ADMIN` in its user namespace (a
/// container's init has it) or `no_new_privs` already set (an exec that asked for it).
pub fn apply(program: &BpfProgram) -> Result<(), SeccompError> {
    let raw: Vec<libc::sock_filter> =
        program.iter().map(|i| libc::sock_filter { code: i.code, jt: i.jt, jf: i.jf, k: i.k }).collect();
    hearth_sys::seccomp::set_filter(&raw).map_err(SeccompError::Apply)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::fd::AsFd;

    use hearth_sys::seccomp::probe::{self, Probe};
    use nix::errno::Errno;

    use super::*;

    /// `struct seccomp_data` for the interpreter.
    struct Data {
        nr: u32,
        arch: u32,
        args: [u64; 6],
    }

    /// A classic-BPF interpreter for the instructions seccomp filters use, enough to check the
    /// program's logic independently of the running kernel (x32 is off in most kernels).
    fn run(program: &[sock_filter], data: &Data) -> u32 {
        let word = |offset: u32| -> u32 {
            match offset {
                0 => data.nr,
                4 => data.arch,
                o if (16..64).contains(&o) => {
                    let arg = data.args[((o - 16) / 8) as usize];
                    if o % 8 == 0 { arg as u32 } else { (arg >> 32) as u32 }
                }
                o => panic!("load at offset {o}"),
            }
        };
        let (mut pc, mut a) = (0usize, 0u32);
        loop {
            let insn = &program[pc];
            pc += 1;
            let (code, k) = (insn.code, insn.k);
            match code {
                0x20 => a = word(k),
                0x54 => a &= k,
                0x05 => pc += k as usize,
                0x15 | 0x25 | 0x35 | 0x45 => {
                    let taken = match code {
                        0x15 => a == k,
                        0x25 => a > k,
                        0x35 => a >= k,
                        _ => a & k != 0,
                    };
                    pc += usize::from(if taken { insn.jt } else { insn.jf });
                }
                0x06 => return k,
                other => panic!("opcode {other:#x} at {}", pc - 1),
            }
        }
    }

    fn verdict(program: &[sock_filter], arch: u32, nr: i64, args: [u64; 6]) -> u32 {
        run(program, &Data { nr: nr as u32, arch, args })
    }

    const fn errno(e: i32) -> u32 {
        RET_ERRNO | e as u32
    }

    const MS_RDONLY: u32 = 1;
    const MS_REMOUNT: u32 = 32;
    const MS_BIND: u32 = 4096;
    const MS_UNBINDABLE: u32 = 1 << 17;
    const NO_FEATURES: Features = Features { nesting: false, keyctl: false, fuse: false, mknod: false };
    const UNPRIVILEGED: Profile = Profile { privileged: false, features: NO_FEATURES };
    const PRIVILEGED: Profile = Profile { privileged: true, features: NO_FEATURES };

    /// Every rule of `profile` refuses what it names on every ABI it names.
    fn check_rules(profile: &Profile) {
        let program = filter(profile).unwrap();
        let none = [0u64; 6];
        for rule in denylist(profile) {
            let mut args = none;
            match rule.cond {
                Cond::MaskedEq { arg, value, .. } => args[usize::from(arg)] = u64::from(value),
                // A new mount (no flags) is refused.
                Cond::MountFlags | Cond::Always => {}
            }
            if let Some(nr) = rule.nr {
                assert_eq!(verdict(&program, AUDIT_ARCH_X86_64, nr, args), errno(rule.errno), "{}", rule.name);
                // x32: every number with the x32 bit is refused, denied or not.
                let x32 = nr | i64::from(X32_SYSCALL_BIT);
                assert_eq!(verdict(&program, AUDIT_ARCH_X86_64, x32, args), errno(libc::ENOSYS), "x32 {}", rule.name);
            }
            if let Some(nr) = rule.nr_i386 {
                assert_eq!(
                    verdict(&program, AUDIT_ARCH_I386, i64::from(nr), args),
                    errno(rule.errno),
                    "i386 {}",
                    rule.name
                );
            }
        }
    }

    #[test]
    fn program_logic_for_every_abi() {
        check_rules(&UNPRIVILEGED);
        check_rules(&PRIVILEGED);
        let program = filter(&UNPRIVILEGED).unwrap();
        let x64 = |nr, args| verdict(&program, AUDIT_ARCH_X86_64, nr, args);
        let i386 = |nr: i64, args| verdict(&program, AUDIT_ARCH_I386, nr, args);
        let none = [0; 6];
        // Conditions: only the flagged forms are refused, on both ABIs.
        assert_eq!(x64(libc::SYS_umount2, [0, 2 /* MNT_DETACH */, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(x64(libc::SYS_umount2, [0, 3, 0, 0, 0, 0]), errno(libc::EPERM));
        assert_eq!(i386(52, [0, 2, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(x64(libc::SYS_ioctl, [0, 0x5401 /* TCGETS */, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(x64(libc::SYS_ioctl, [0, 0xc400_9408, 0, 0, 0, 0]), errno(libc::EPERM));
        assert_eq!(i386(54, [0, 0xc400_9408, 0, 0, 0, 0]), errno(libc::EPERM));
        assert_eq!(i386(54, [0, 0x5401, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(x64(libc::SYS_socket, [libc::AF_INET as u64, 1, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(i386(359, [libc::AF_INET as u64, 1, 0, 0, 0, 0]), RET_ALLOW);
        // The upper half of the 64-bit domain argument is ignored, as the kernel does (int).
        assert_eq!(x64(libc::SYS_socket, [(1 << 32) | u64::from(AF_ALG), 5, 0, 0, 0, 0]), errno(libc::EAFNOSUPPORT));
        // Everything else passes, mounts and namespaces of unprivileged containers included; a
        // foreign arch is killed.
        for nr in [
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_mount,
            libc::SYS_getpid,
            libc::SYS_clone3,
            libc::SYS_pivot_root,
            libc::SYS_fsopen,
            libc::SYS_bpf,
        ] {
            assert_eq!(x64(nr, none), RET_ALLOW, "{nr}");
        }
        let newns = libc::CLONE_NEWNS as u64;
        assert_eq!(x64(libc::SYS_unshare, [newns, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(i386(21 /* mount */, none), RET_ALLOW);
        assert_eq!(i386(22 /* umount */, none), RET_ALLOW);
        assert_eq!(i386(20 /* getpid */, none), RET_ALLOW);
        assert_eq!(i386(102 /* socketcall */, [1, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(verdict(&program, 0xc000_00b7 /* aarch64 */, 0, none), RET_KILL_PROCESS);

        // keyctl as a feature, for unprivileged containers only.
        let with_keyctl = Features { keyctl: true, ..Features::default() };
        let unprivileged = filter(&Profile { privileged: false, features: with_keyctl }).unwrap();
        let privileged = filter(&Profile { privileged: true, features: with_keyctl }).unwrap();
        for (nr, nr32) in [(libc::SYS_keyctl, 288), (libc::SYS_add_key, 286), (libc::SYS_request_key, 287)] {
            assert_eq!(x64(nr, none), errno(libc::ENOSYS));
            assert_eq!(verdict(&unprivileged, AUDIT_ARCH_X86_64, nr, none), RET_ALLOW);
            assert_eq!(verdict(&unprivileged, AUDIT_ARCH_I386, nr32, none), RET_ALLOW);
            assert_eq!(verdict(&privileged, AUDIT_ARCH_X86_64, nr, none), errno(libc::ENOSYS));
            assert_eq!(verdict(&privileged, AUDIT_ARCH_I386, nr32, none), errno(libc::ENOSYS));
        }
    }

    /// The privileged filter's conditions on both ABIs: namespaces other than mount ones, the
    /// forms of mount(2) the policy allows, and everything not named.
    #[test]
    fn privileged_program_logic() {
        let program = filter(&PRIVILEGED).unwrap();
        let x64 = |nr, args| verdict(&program, AUDIT_ARCH_X86_64, nr, args);
        let i386 = |nr: i64, args| verdict(&program, AUDIT_ARCH_I386, nr, args);
        let newns = libc::CLONE_NEWNS as u64;
        let others = (libc::CLONE_NEWUTS | libc::CLONE_NEWNET | libc::CLONE_NEWPID) as u64;
        for (nr, nr32) in [(libc::SYS_unshare, 310), (libc::SYS_clone, 120)] {
            assert_eq!(x64(nr, [others, 0, 0, 0, 0, 0]), RET_ALLOW);
            assert_eq!(x64(nr, [others | newns, 0, 0, 0, 0, 0]), errno(libc::EPERM));
            assert_eq!(i386(nr32, [others, 0, 0, 0, 0, 0]), RET_ALLOW);
            assert_eq!(i386(nr32, [others | newns, 0, 0, 0, 0, 0]), errno(libc::EPERM));
        }
        // The usual fork: glibc's clone(SIGCHLD | CLONE_CHILD_*TID).
        assert_eq!(x64(libc::SYS_clone, [0x0120_0011, 0, 0, 0, 0, 0]), RET_ALLOW);
        // umount2 without MNT_FORCE too.
        assert_eq!(x64(libc::SYS_umount2, [0, 2, 0, 0, 0, 0]), errno(libc::EPERM));
        for nr in [libc::SYS_read, libc::SYS_getpid, libc::SYS_setns, libc::SYS_mknod, libc::SYS_chroot] {
            assert_eq!(x64(nr, [0; 6]), RET_ALLOW, "{nr}");
        }
        assert_eq!(i386(20, [0; 6]), RET_ALLOW);

        // mount(2): the compiled block agrees with mount_flags_allowed on both ABIs, over every
        // combination of the flags it looks at plus a few it does not.
        let bits = [MS_RDONLY, 2 /* nosuid */, MS_REMOUNT, MS_BIND, 8192 /* move */, MS_REC, MS_SILENT];
        let propagation = [0, MS_UNBINDABLE, MS_PRIVATE, MS_SLAVE, MS_SHARED, MS_PRIVATE | MS_SHARED];
        let mut tried = 0;
        for combo in 0u32..(1 << bits.len()) {
            let low: u32 = bits.iter().enumerate().filter(|(i, _)| combo & (1 << i) != 0).map(|(_, b)| b).sum();
            for p in propagation {
                for high in [0u64, 1 << 40] {
                    for magic in [false, true] {
                        let mut flags = u64::from(low | p) | high;
                        if magic {
                            // The magic only stands in for propagation-free flags.
                            if p != 0 {
                                continue;
                            }
                            flags |= u64::from(MS_MGC_VAL);
                        }
                        let expected = if mount_flags_allowed(flags) { RET_ALLOW } else { errno(libc::EPERM) };
                        let args = [0, 0, 0, flags, 0, 0];
                        assert_eq!(x64(libc::SYS_mount, args), expected, "x86-64 flags {flags:#x}");
                        let args32 = [0, 0, 0, flags & 0xffff_ffff, 0, 0];
                        assert_eq!(i386(21, args32), expected, "i386 flags {flags:#x}");
                        tried += 1;
                    }
                }
            }
        }
        assert!(tried > 1000);
    }

    /// The policy itself, on the calls util-linux, busybox and systemd make.
    #[test]
    fn mount_policy() {
        let allowed = |flags: u32| mount_flags_allowed(u64::from(flags));
        // mount -t proc/sysfs/tmpfs/cgroup: a new superblock, no flags to tell them apart.
        assert!(!allowed(0));
        assert!(!allowed(2 | 4 | 8));
        // mount --bind (no MS_REC) would show /proc without its read-only /proc/sys; --rbind is
        // refused too, so that systemd falls back instead of failing on the remount after it.
        assert!(!allowed(MS_BIND));
        assert!(!allowed(MS_BIND | MS_REC));
        // Remounts of any kind: remount,bind,rw would undo a read-only bind, a plain remount
        // reconfigures a superblock.
        assert!(!allowed(MS_REMOUNT | MS_BIND | MS_RDONLY));
        assert!(!allowed(MS_REMOUNT | MS_BIND));
        assert!(!allowed(MS_REMOUNT));
        assert!(!allowed(MS_REMOUNT | MS_RDONLY));
        // --move; --make-r{private,slave,shared}; not unbindable.
        assert!(!allowed(8192));
        assert!(allowed(MS_REC | MS_PRIVATE));
        assert!(allowed(MS_REC | MS_SLAVE));
        assert!(allowed(MS_SHARED | MS_SILENT));
        assert!(!allowed(MS_UNBINDABLE));
        assert!(!allowed(MS_REC | MS_UNBINDABLE));
        assert!(!allowed(MS_PRIVATE | 8192));
        assert!(!allowed(MS_PRIVATE | MS_SHARED));
        // The kernel checks bind and remount before propagation: MS_BIND | MS_PRIVATE is a bind.
        assert!(!allowed(MS_BIND | MS_REC | MS_PRIVATE));
        // The magic in the high half is stripped, as the kernel does; bits above 31 are ignored.
        // With the magic only the low 16 bits count, and no propagation flag is among them.
        assert!(!allowed(MS_MGC_VAL | MS_REC));
        assert!(!allowed(MS_MGC_VAL | MS_BIND | MS_REC));
        assert!(!mount_flags_allowed((1 << 32) | u64::from(MS_BIND | MS_REC)));
        assert!(mount_flags_allowed((1 << 32) | u64::from(MS_REC | MS_PRIVATE)));
    }

    #[test]
    fn i386_numbers_match_the_kernel_headers() {
        let header = std::fs::read_to_string("/usr/include/x86_64-linux-gnu/asm/unistd_32.h")
            .expect("asm/unistd_32.h (install linux-libc-dev)");
        let defined = |name: &str| {
            header.lines().find_map(|line| {
                line.strip_prefix(&format!("#define __NR_{name} ")).map(|n| n.trim().parse::<u32>().unwrap())
            })
        };
        let newest = header
            .lines()
            .filter_map(|l| l.strip_prefix("#define __NR_")?.split_whitespace().nth(1)?.parse::<u32>().ok())
            .max()
            .unwrap();
        for profile in [UNPRIVILEGED, PRIVILEGED] {
            for rule in denylist(&profile) {
                match (defined(rule.name), rule.nr_i386) {
                    // Newer than the headers (open_tree_attr): the number must be a new one.
                    (None, Some(nr)) => assert!(nr > newest, "{}: {nr} is not in the headers", rule.name),
                    (defined, nr) => assert_eq!(defined, nr, "{}", rule.name),
                }
            }
        }
    }

    /// Fails unless the test may install a filter without `no_new_privs`.
    fn needs_root() {
        crate::host_needs::root("the filter is installed with CAP_SYS_ADMIN instead of no_new_privs");
    }

    fn err(r: std::io::Result<i64>) -> Option<i32> {
        r.err().and_then(|e| e.raw_os_error())
    }

    /// The filter on a real kernel, in a thread of its own (a filter without TSYNC binds only
    /// the calling thread and the threads it creates).
    #[test]
    fn kernel_enforces_the_filter() {
        needs_root();
        let dir = tempfile::tempdir().unwrap();
        let file = tempfile::tempfile_in(dir.path()).unwrap();
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let program = filter(&UNPRIVILEGED).unwrap();
                    apply(&program).unwrap();
                    // no_new_privs stays off.
                    assert!(!nix::sys::prctl::get_no_new_privs().unwrap());

                    for (probe, expected) in [
                        (Probe::InitModule, libc::EPERM),
                        (Probe::FinitModule, libc::EPERM),
                        (Probe::DeleteModule, libc::EPERM),
                        (Probe::KexecLoad, libc::EPERM),
                        (Probe::KexecFileLoad, libc::EPERM),
                        (Probe::OpenByHandleAt, libc::EPERM),
                        (Probe::Keyctl, libc::ENOSYS),
                        (Probe::AddKey, libc::ENOSYS),
                        (Probe::RequestKey, libc::ENOSYS),
                        (Probe::BtrfsSync(file.as_fd()), libc::EPERM),
                        (Probe::X32Getpid, libc::ENOSYS),
                    ] {
                        assert_eq!(err(probe::run(probe)), Some(expected), "{probe:?}");
                    }
                    let umount = |flags| nix::mount::umount2(dir.path(), flags);
                    assert_eq!(umount(nix::mount::MntFlags::MNT_FORCE), Err(Errno::EPERM));
                    // Not a mount point: the kernel itself answers.
                    assert_eq!(umount(nix::mount::MntFlags::MNT_DETACH), Err(Errno::EINVAL));
                    let socket = |family| {
                        nix::sys::socket::socket(
                            family,
                            nix::sys::socket::SockType::SeqPacket,
                            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
                            None,
                        )
                    };
                    assert_eq!(socket(nix::sys::socket::AddressFamily::Alg).err(), Some(Errno::EAFNOSUPPORT));
                    assert!(socket(nix::sys::socket::AddressFamily::Unix).is_ok());
                    // Other ioctls pass: the kernel answers ENOTTY for a plain file.
                    assert_eq!(nix::sys::termios::tcgetattr(&file).err(), Some(Errno::ENOTTY));
                })
                .join()
                .unwrap();
        });
        // This thread is not filtered: the same probes reach the kernel.
        assert_ne!(err(probe::run(Probe::Keyctl)), Some(libc::ENOSYS));
        assert_ne!(err(probe::run(Probe::OpenByHandleAt)), Some(libc::EPERM));
        assert_eq!(err(probe::run(Probe::BtrfsSync(file.as_fd()))), Some(libc::ENOTTY));
    }

    #[test]
    fn kernel_enforces_keyctl_feature() {
        needs_root();
        std::thread::spawn(|| {
            apply(
                &filter(&Profile { privileged: false, features: Features { keyctl: true, ..Features::default() } })
                    .unwrap(),
            )
            .unwrap();
            assert_ne!(err(probe::run(Probe::Keyctl)), Some(libc::ENOSYS));
            assert_eq!(err(probe::run(Probe::InitModule)), Some(libc::EPERM));
        })
        .join()
        .unwrap();
    }

    /// The privileged filter on a real kernel, in a thread with a mount namespace of its own
    /// (it vanishes with the thread): a tmpfs stands in for `/proc`, a read-only bind of its
    /// `sys` directory for `/proc/sys`, and nothing the filter refuses may uncover it.
    #[test]
    fn kernel_enforces_the_privileged_filter() {
        use nix::mount::{MntFlags, MsFlags, mount, umount2};
        use nix::sched::{CloneFlags, unshare};
        crate::host_needs::root("the filter is installed without no_new_privs, and the test mounts");
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        std::thread::spawn(move || {
            let none: Option<&str> = None;
            unshare(CloneFlags::CLONE_NEWNS).unwrap();
            mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none).unwrap();
            mount(Some("tmpfs"), &root, Some("tmpfs"), MsFlags::empty(), none).unwrap();
            let (proc, sys, other, target) = (root.join("proc"), root.join("proc/sys"), root.join("b"), root.join("c"));
            for d in [&proc, &sys, &other, &target] {
                std::fs::create_dir_all(d).unwrap();
            }
            mount(Some(&sys), &sys, none, MsFlags::MS_BIND, none).unwrap();
            mount(none, &sys, none, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY, none).unwrap();
            apply(&filter(&PRIVILEGED).unwrap()).unwrap();

            // New superblocks, whatever the type.
            for fstype in ["tmpfs", "proc", "sysfs"] {
                assert_eq!(mount(Some(fstype), &other, Some(fstype), MsFlags::empty(), none), Err(Errno::EPERM));
            }
            // Binds, recursive or not, and remounts of any kind.
            assert_eq!(mount(Some(&proc), &other, none, MsFlags::MS_BIND, none), Err(Errno::EPERM));
            assert_eq!(mount(Some(&proc), &other, none, MsFlags::MS_BIND | MsFlags::MS_REC, none), Err(Errno::EPERM));
            let bind_remount = MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
            assert_eq!(mount(none, &sys, none, bind_remount, none), Err(Errno::EPERM));
            assert_eq!(mount(none, &sys, none, bind_remount | MsFlags::MS_RDONLY, none), Err(Errno::EPERM));
            assert_eq!(mount(none, &root, none, MsFlags::MS_REMOUNT, none), Err(Errno::EPERM));
            // Propagation, but not unbindable.
            mount(none, &root, none, MsFlags::MS_REC | MsFlags::MS_SLAVE, none).unwrap();
            mount(none, &sys, none, MsFlags::MS_SHARED, none).unwrap();
            assert_eq!(mount(none, &sys, none, MsFlags::MS_UNBINDABLE, none), Err(Errno::EPERM));
            // Moving, unmounting, pivoting.
            assert_eq!(mount(Some(&sys), &target, none, MsFlags::MS_MOVE, none), Err(Errno::EPERM));
            for flags in [MntFlags::empty(), MntFlags::MNT_DETACH, MntFlags::MNT_FORCE] {
                assert_eq!(umount2(&sys, flags), Err(Errno::EPERM), "{flags:?}");
            }
            assert_eq!(nix::unistd::pivot_root(&sys, &sys), Err(Errno::EPERM));
            std::fs::write(sys.join("still-read-only"), "x").unwrap_err();
            // The new mount API, mount namespaces and the host-wide rest.
            for (probe, expected) in [
                (Probe::Fsopen, libc::ENOSYS),
                (Probe::OpenTree, libc::ENOSYS),
                (Probe::MountSetattr, libc::ENOSYS),
                (Probe::Clone3, libc::ENOSYS),
                (Probe::Bpf, libc::EPERM),
                (Probe::PerfEventOpen, libc::EPERM),
                (Probe::Swapoff, libc::EPERM),
                (Probe::Quotactl, libc::EPERM),
                (Probe::Keyctl, libc::ENOSYS),
                (Probe::InitModule, libc::EPERM),
                (Probe::OpenByHandleAt, libc::EPERM),
            ] {
                assert_eq!(err(probe::run(probe)), Some(expected), "{probe:?}");
            }
            assert_eq!(unshare(CloneFlags::CLONE_NEWNS), Err(Errno::EPERM));
            unshare(CloneFlags::CLONE_NEWUTS).unwrap();
            // Processes still start: glibc falls back from clone3 to clone.
            assert!(std::process::Command::new("true").status().unwrap().success());
        })
        .join()
        .unwrap();
        // This thread is not filtered: the same probes reach the kernel.
        for (probe, expected) in [
            (Probe::Fsopen, libc::EFAULT),
            (Probe::OpenTree, libc::EFAULT),
            (Probe::MountSetattr, libc::EINVAL),
            (Probe::Clone3, libc::EINVAL),
            (Probe::Bpf, libc::EINVAL),
            (Probe::PerfEventOpen, libc::EFAULT),
            (Probe::Swapoff, libc::EFAULT),
            (Probe::Quotactl, libc::ENODEV),
        ] {
            assert_eq!(err(probe::run(probe)), Some(expected), "unfiltered {probe:?}");
        }
    }

    /// i386 system calls (`int 0x80`) under the filter. Runs in a child process: without i386
    /// emulation in the kernel `int 0x80` kills with SIGSEGV, and the test fails saying so.
    #[test]
    fn kernel_enforces_the_filter_for_i386() {
        needs_root();
        if std::env::var_os("HEARTH_SECCOMP_I386_CHILD").is_some() {
            return i386_child();
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "seccomp::tests::kernel_enforces_the_filter_for_i386", "--nocapture", "--test-threads=1"])
            .env("HEARTH_SECCOMP_I386_CHILD", "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        use std::os::unix::process::ExitStatusExt;
        assert_ne!(
            out.status.signal(),
            Some(libc::SIGSEGV),
            "the kernel has no i386 emulation: run the tests on a kernel with CONFIG_IA32_EMULATION, \
             booted without ia32_emulation=0\n{text}"
        );
        assert!(out.status.success(), "{}\n{text}", out.status);
        assert!(text.contains("i386 probes done"), "{text}");
    }

    fn i386_child() {
        // Emulation present? getpid through int 0x80 (SIGSEGV here otherwise).
        let pid = probe::run(Probe::I386(20)).unwrap();
        assert_eq!(pid, i64::from(std::process::id()));
        let before = err(probe::run(Probe::I386(128)));
        assert_ne!(before, Some(libc::EPERM), "init_module reaches the kernel without the filter");
        std::thread::spawn(|| {
            apply(&filter(&UNPRIVILEGED).unwrap()).unwrap();
            for (nr, expected) in
                [(128, libc::EPERM), (129, libc::EPERM), (286, libc::ENOSYS), (287, libc::ENOSYS), (288, libc::ENOSYS)]
            {
                assert_eq!(err(probe::run(Probe::I386(nr))), Some(expected), "i386 {nr}");
            }
            // umount2(NULL, 0): allowed through, the kernel faults the null path.
            assert_eq!(err(probe::run(Probe::I386(52))), Some(libc::EFAULT));
            assert!(probe::run(Probe::I386(20)).is_ok());
        })
        .join()
        .unwrap();
        // The privileged filter: mount(NULL, NULL, NULL, 0, NULL) is a new mount, refused before
        // the kernel faults the null path.
        let unfiltered = [(21, libc::EFAULT), (217, libc::EFAULT), (428, libc::EFAULT), (435, libc::EINVAL)];
        for (nr, expected) in unfiltered {
            assert_eq!(err(probe::run(Probe::I386(nr))), Some(expected), "unfiltered i386 {nr}");
        }
        std::thread::spawn(|| {
            apply(&filter(&PRIVILEGED).unwrap()).unwrap();
            for (nr, expected) in [
                (21, libc::EPERM),
                (22, libc::EPERM),
                (52, libc::EPERM),
                (217, libc::EPERM),
                (428, libc::ENOSYS),
                (430, libc::ENOSYS),
                (435, libc::ENOSYS),
                (357, libc::EPERM),
                (288, libc::ENOSYS),
                (128, libc::EPERM),
            ] {
                assert_eq!(err(probe::run(Probe::I386(nr))), Some(expected), "privileged i386 {nr}");
            }
            // unshare(0) and getpid pass.
            assert!(probe::run(Probe::I386(310)).is_ok());
            assert!(probe::run(Probe::I386(20)).is_ok());
        })
        .join()
        .unwrap();
        println!("i386 probes done");
    }
}
