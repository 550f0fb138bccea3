//! The container's seccomp filter: LXC's default denylist plus Proxmox's additions for
//! unprivileged containers, compiled with `seccompiler` (pure Rust, no libseccomp) and
//! installed last, after every setup system call (containers.md 2.3 step 24).
//!
//! **Rules** (x86-64 numbers from `libc::SYS_*`; everything else is allowed):
//!
//! | system call | condition | verdict |
//! |---|---|---|
//! | kexec_load, kexec_file_load, open_by_handle_at, init_module, finit_module, delete_module | always | `EPERM` |
//! | umount2 | `flags & MNT_FORCE` | `EPERM` |
//! | keyctl, add_key, request_key | unless `features.keyctl` | `ENOSYS` (so guests fall back as on old kernels) |
//! | ioctl | `(cmd & 0xff00) == 0x9400` (btrfs) | `EPERM` |
//! | socket | `domain == AF_ALG` | `EAFNOSUPPORT` |
//!
//! **Program layout.** seccompiler gives one match action per filter, so the rules are compiled
//! as one seccompiler filter per errno (match → `ERRNO(e)`, mismatch → allow) and the programs
//! are chained: each `RET ALLOW` of a program becomes a forward `JA` to the next program's first
//! instruction (same length, so no other jump moves); the last chain ends in `RET ALLOW`.
//! A hand-assembled prefix in front and an i386 block behind close the ABI bypasses:
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

use std::collections::BTreeMap;

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
}

/// One row of the denylist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deny {
    pub name: &'static str,
    /// The x86-64 number.
    pub nr: i64,
    /// The i386 number, where i386 has the call.
    pub nr_i386: Option<u32>,
    pub cond: Cond,
    pub errno: i32,
}

/// The rules for `features`, in the order they are checked.
pub fn denylist(features: &Features) -> Vec<Deny> {
    let always = |name, nr, nr_i386, errno| Deny { name, nr, nr_i386, cond: Cond::Always, errno };
    let mut rules = vec![
        always("kexec_load", libc::SYS_kexec_load, Some(283), libc::EPERM),
        always("kexec_file_load", libc::SYS_kexec_file_load, None, libc::EPERM),
        always("open_by_handle_at", libc::SYS_open_by_handle_at, Some(342), libc::EPERM),
        always("init_module", libc::SYS_init_module, Some(128), libc::EPERM),
        always("finit_module", libc::SYS_finit_module, Some(350), libc::EPERM),
        always("delete_module", libc::SYS_delete_module, Some(129), libc::EPERM),
        Deny {
            name: "umount2",
            nr: libc::SYS_umount2,
            nr_i386: Some(52),
            cond: Cond::MaskedEq { arg: 1, mask: libc::MNT_FORCE as u32, value: libc::MNT_FORCE as u32 },
            errno: libc::EPERM,
        },
        Deny {
            name: "ioctl",
            nr: libc::SYS_ioctl,
            nr_i386: Some(54),
            cond: Cond::MaskedEq { arg: 1, mask: 0xff00, value: 0x9400 },
            errno: libc::EPERM,
        },
        Deny {
            name: "socket",
            nr: libc::SYS_socket,
            nr_i386: Some(359),
            cond: Cond::MaskedEq { arg: 0, mask: u32::MAX, value: AF_ALG },
            errno: libc::EAFNOSUPPORT,
        },
    ];
    if !features.keyctl {
        rules.extend([
            always("keyctl", libc::SYS_keyctl, Some(288), libc::ENOSYS),
            always("add_key", libc::SYS_add_key, Some(286), libc::ENOSYS),
            always("request_key", libc::SYS_request_key, Some(287), libc::ENOSYS),
        ]);
    }
    rules
}

/// The whole program for a container with `features` (see the module documentation).
pub fn filter(features: &Features) -> Result<BpfProgram, SeccompError> {
    let rules = denylist(features);

    // One seccompiler program per errno, chained.
    let mut by_errno: BTreeMap<i32, BTreeMap<i64, Vec<SeccompRule>>> = BTreeMap::new();
    for rule in &rules {
        let chain = match rule.cond {
            Cond::Always => vec![],
            Cond::MaskedEq { arg, mask, value } => vec![SeccompRule::new(vec![SeccompCondition::new(
                arg,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::MaskedEq(u64::from(mask)),
                u64::from(value),
            )?])?],
        };
        by_errno.entry(rule.errno).or_default().insert(rule.nr, chain);
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

    let i386 = i386_block(&rules);

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
    // From the instruction after the JA (index 3) to the i386 block.
    program[2].k = (program.len() - 3 + x86_64.len()) as u32;
    program.extend(x86_64);
    program.extend(i386);
    if program.len() > 4096 {
        return Err(SeccompError::TooLarge(program.len()));
    }
    Ok(program)
}

/// The same rules under i386 numbers; the accumulator holds nothing on entry.
fn i386_block(rules: &[Deny]) -> Vec<sock_filter> {
    let mut block = vec![stmt(BPF_LD_W_ABS, DATA_NR)];
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
        }
    }
    block.push(stmt(BPF_RET_K, RET_ALLOW));
    block
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

    #[test]
    fn program_logic_for_every_abi() {
        let program = filter(&Features::default()).unwrap();
        let x64 = |nr, args| verdict(&program, AUDIT_ARCH_X86_64, nr, args);
        let i386 = |nr: i64, args| verdict(&program, AUDIT_ARCH_I386, nr, args);
        let none = [0; 6];
        for rule in denylist(&Features::default()) {
            let mut args = none;
            if let Cond::MaskedEq { arg, value, .. } = rule.cond {
                args[usize::from(arg)] = u64::from(value);
            }
            assert_eq!(x64(rule.nr, args), errno(rule.errno), "{}", rule.name);
            // x32: every number with the x32 bit is refused, denied or not.
            assert_eq!(x64(rule.nr | i64::from(X32_SYSCALL_BIT), args), errno(libc::ENOSYS), "x32 {}", rule.name);
            if let Some(nr) = rule.nr_i386 {
                assert_eq!(i386(i64::from(nr), args), errno(rule.errno), "i386 {}", rule.name);
            }
        }
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
        // Everything else passes; a foreign arch is killed.
        for nr in [libc::SYS_read, libc::SYS_write, libc::SYS_mount, libc::SYS_getpid, libc::SYS_clone3] {
            assert_eq!(x64(nr, none), RET_ALLOW, "{nr}");
        }
        assert_eq!(i386(20 /* getpid */, none), RET_ALLOW);
        assert_eq!(i386(102 /* socketcall */, [1, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(verdict(&program, 0xc000_00b7 /* aarch64 */, 0, none), RET_KILL_PROCESS);

        // keyctl as a feature.
        let with_keyctl = filter(&Features { keyctl: true, ..Features::default() }).unwrap();
        for (nr, nr32) in [(libc::SYS_keyctl, 288), (libc::SYS_add_key, 286), (libc::SYS_request_key, 287)] {
            assert_eq!(x64(nr, none), errno(libc::ENOSYS));
            assert_eq!(verdict(&with_keyctl, AUDIT_ARCH_X86_64, nr, none), RET_ALLOW);
            assert_eq!(verdict(&with_keyctl, AUDIT_ARCH_I386, nr32, none), RET_ALLOW);
        }
    }

    #[test]
    fn i386_numbers_match_the_kernel_headers() {
        let Ok(header) = std::fs::read_to_string("/usr/include/x86_64-linux-gnu/asm/unistd_32.h") else {
            eprintln!("skipped: no asm/unistd_32.h (linux-libc-dev)");
            return;
        };
        for rule in denylist(&Features::default()) {
            let defined = header.lines().find_map(|line| {
                line.strip_prefix(&format!("#define __NR_{} ", rule.name)).map(|n| n.trim().parse::<u32>().unwrap())
            });
            assert_eq!(defined, rule.nr_i386, "{}", rule.name);
        }
    }

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    fn err(r: std::io::Result<i64>) -> Option<i32> {
        r.err().and_then(|e| e.raw_os_error())
    }

    /// The filter on a real kernel, in a thread of its own (a filter without TSYNC binds only
    /// the calling thread and the threads it creates).
    #[test]
    fn kernel_enforces_the_filter() {
        if !is_root() {
            eprintln!("skipped: needs root (CAP_SYS_ADMIN instead of no_new_privs)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = tempfile::tempfile_in(dir.path()).unwrap();
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let program = filter(&Features::default()).unwrap();
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
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        std::thread::spawn(|| {
            apply(&filter(&Features { keyctl: true, ..Features::default() }).unwrap()).unwrap();
            assert_ne!(err(probe::run(Probe::Keyctl)), Some(libc::ENOSYS));
            assert_eq!(err(probe::run(Probe::InitModule)), Some(libc::EPERM));
        })
        .join()
        .unwrap();
    }

    /// i386 system calls (`int 0x80`) under the filter. Runs in a child process: without i386
    /// emulation in the kernel `int 0x80` kills with SIGSEGV, and then the test is skipped.
    #[test]
    fn kernel_enforces_the_filter_for_i386() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
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
        if out.status.signal() == Some(libc::SIGSEGV) {
            eprintln!("skipped: no i386 emulation in this kernel");
            return;
        }
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
            apply(&filter(&Features::default()).unwrap()).unwrap();
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
        println!("i386 probes done");
    }
}
