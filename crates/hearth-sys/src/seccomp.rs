//! Installing a classic-BPF seccomp filter on the calling thread **without** setting
//! `no_new_privs`.
//!
//! `seccompiler::apply_filter` always sets `PR_SET_NO_NEW_PRIVS` first. A system container's
//! init must not run with it (sudo, su, ping and passwd rely on set-uid bits and file
//! capabilities), so Hearth installs its filter itself: the kernel accepts a filter without
//! `no_new_privs` when the caller has `CAP_SYS_ADMIN` in its user namespace, which the
//! container's init has (it is root of its own user namespace).
//!
//! Also: probes for tests of such filters ([`probe`]).

use std::io;

/// `SECCOMP_SET_MODE_FILTER`.
const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;

/// Installs `program` as a seccomp filter of the calling thread (only this thread: no
/// `SECCOMP_FILTER_FLAG_TSYNC`; threads created afterwards inherit it). Filters stack: the
/// kernel runs all of them and takes the most restrictive verdict.
///
/// Fails with `EACCES` unless the thread has `CAP_SYS_ADMIN` in its user namespace or
/// `no_new_privs` is already set, and with `EINVAL` for a program the kernel rejects
/// (empty, longer than 4096 instructions, invalid instructions or jumps).
pub fn set_filter(program: &[libc::sock_filter]) -> io::Result<()> {
    let len = u16::try_from(program.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    if len == 0 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let prog = libc::sock_fprog { len, filter: program.as_ptr().cast_mut() };
    // SAFETY: `prog` points at `len` valid `sock_filter`s borrowed for the duration of the
    // call; the kernel only copies them (copy_from_user) and never writes through the
    // pointer despite the `*mut` in libc's declaration. The verdicts a filter can return do
    // not make the kernel write to this process's memory.
    let rc = unsafe {
        libc::syscall(libc::SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0 as libc::c_uint, &prog as *const libc::sock_fprog)
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// System calls with harmless arguments, for checking what a seccomp filter does to them.
///
/// Every probe passes only integers and null pointers (the kernel fails those with `EFAULT`
/// or rejects the arguments before acting), so none can touch this process's memory and none
/// changes system state when no filter stops it: modules are not loaded or removed (a null
/// image of length 0 is not an ELF file), kexec gets invalid flags, keyctl only looks up the
/// thread keyring without creating it, the mount calls fail on their null path or type, bpf
/// gets an unknown command, clone3 and mount_setattr an argument size of 0.
pub mod probe {
    use std::io;
    use std::os::fd::{AsRawFd, BorrowedFd};

    /// One probe; see [`run`].
    #[derive(Clone, Copy, Debug)]
    pub enum Probe<'fd> {
        /// `init_module(NULL, 0, NULL)`.
        InitModule,
        /// `finit_module(-1, NULL, 0)`.
        FinitModule,
        /// `delete_module(NULL, 0)`.
        DeleteModule,
        /// `kexec_load(0, 0, NULL, ~0)` (invalid flags).
        KexecLoad,
        /// `kexec_file_load(-1, -1, 0, NULL, ~0)` (invalid flags).
        KexecFileLoad,
        /// `open_by_handle_at(-1, NULL, 0)`.
        OpenByHandleAt,
        /// `keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_THREAD_KEYRING, 0)`: looks up, never creates.
        Keyctl,
        /// `add_key(NULL, NULL, NULL, 0, 0)`.
        AddKey,
        /// `request_key(NULL, NULL, NULL, 0)`.
        RequestKey,
        /// `ioctl(fd, BTRFS_IOC_SYNC, 0)` (`_IO(0x94, 8)`, takes no argument; `ENOTTY` on a file
        /// that is not on btrfs).
        BtrfsSync(BorrowedFd<'fd>),
        /// `fsopen(NULL, 0)`: `EFAULT` on the type name.
        Fsopen,
        /// `open_tree(-1, NULL, 0)`: `EFAULT` on the path.
        OpenTree,
        /// `mount_setattr(-1, NULL, 0, NULL, 0)`: `EINVAL` for the size.
        MountSetattr,
        /// `clone3(NULL, 0)`: `EINVAL` for the size.
        Clone3,
        /// `bpf(INT_MAX, NULL, 0)`: `EINVAL`, no such command.
        Bpf,
        /// `perf_event_open(NULL, 0, -1, -1, 0)`: `EFAULT` on the attributes.
        PerfEventOpen,
        /// `swapoff(NULL)`: `EFAULT` on the path.
        Swapoff,
        /// `quotactl(0, NULL, 0, NULL)`: `ENODEV`, no device named.
        Quotactl,
        /// x32 `getpid`: `syscall(0x40000000 | 39)` on the x86-64 entry (`ENOSYS` on kernels
        /// without x32 support).
        X32Getpid,
        /// An i386 system call through `int 0x80` with all arguments 0. Only numbers whose
        /// i386 meaning takes no pointer or fails a null one are accepted: getpid (20), mount
        /// (21), umount (22), umount2 (52), pivot_root (217), open_tree (428) and fsopen (430)
        /// (a null path or type is `EFAULT`), init_module (128: empty image), delete_module
        /// (129: null name), add_key (286), request_key (287: null strings), keyctl (288:
        /// GET_KEYRING_ID of key 0, a lookup), unshare (310: no flags, nothing to do), bpf (357:
        /// BPF_MAP_CREATE of an all-zero attribute, an invalid map type) and clone3 (435: size 0).
        /// Others return `EINVAL` uncalled.
        ///
        /// **Kills the process with `SIGSEGV` on kernels without i386 emulation**
        /// (`CONFIG_IA32_EMULATION` off or `ia32_emulation=false`): run it in a child.
        I386(u32),
    }

    /// i386 numbers accepted by [`Probe::I386`] (see there).
    pub const I386_PROBE_NUMBERS: [u32; 15] = [20, 21, 22, 52, 128, 129, 217, 286, 287, 288, 310, 357, 428, 430, 435];

    /// Runs `probe` and returns the system call's result (`Err` with its errno).
    pub fn run(probe: Probe<'_>) -> io::Result<i64> {
        // Null pointers are 0; every argument is an integer.
        let (nr, args): (libc::c_long, [libc::c_long; 5]) = match probe {
            Probe::InitModule => (libc::SYS_init_module, [0; 5]),
            Probe::FinitModule => (libc::SYS_finit_module, [-1, 0, 0, 0, 0]),
            Probe::DeleteModule => (libc::SYS_delete_module, [0; 5]),
            Probe::KexecLoad => (libc::SYS_kexec_load, [0, 0, 0, -1, 0]),
            Probe::KexecFileLoad => (libc::SYS_kexec_file_load, [-1, -1, 0, 0, -1]),
            Probe::OpenByHandleAt => (libc::SYS_open_by_handle_at, [-1, 0, 0, 0, 0]),
            // KEYCTL_GET_KEYRING_ID (0) of KEY_SPEC_THREAD_KEYRING (-1), create = 0.
            Probe::Keyctl => (libc::SYS_keyctl, [0, -1, 0, 0, 0]),
            Probe::AddKey => (libc::SYS_add_key, [0; 5]),
            Probe::RequestKey => (libc::SYS_request_key, [0; 5]),
            // BTRFS_IOC_SYNC = _IO(0x94, 8).
            Probe::BtrfsSync(fd) => (libc::SYS_ioctl, [libc::c_long::from(fd.as_raw_fd()), 0x9408, 0, 0, 0]),
            Probe::Fsopen => (libc::SYS_fsopen, [0; 5]),
            Probe::OpenTree => (libc::SYS_open_tree, [-1, 0, 0, 0, 0]),
            Probe::MountSetattr => (libc::SYS_mount_setattr, [-1, 0, 0, 0, 0]),
            Probe::Clone3 => (libc::SYS_clone3, [0; 5]),
            Probe::Bpf => (libc::SYS_bpf, [libc::c_long::from(i32::MAX), 0, 0, 0, 0]),
            Probe::PerfEventOpen => (libc::SYS_perf_event_open, [0, 0, -1, -1, 0]),
            Probe::Swapoff => (libc::SYS_swapoff, [0; 5]),
            Probe::Quotactl => (libc::SYS_quotactl, [0; 5]),
            Probe::X32Getpid => (0x4000_0000 | libc::SYS_getpid, [0; 5]),
            Probe::I386(nr) => {
                if !I386_PROBE_NUMBERS.contains(&nr) {
                    return Err(io::Error::from_raw_os_error(libc::EINVAL));
                }
                // The raw entry returns -errno itself.
                let rc = i386_syscall0(nr);
                return if rc < 0 { Err(io::Error::from_raw_os_error(-rc as i32)) } else { Ok(rc) };
            }
        };
        // SAFETY: `nr` is one of the calls above with its integer arguments; pointer arguments
        // are 0 (null), which the kernel fails with EFAULT after validating the user address,
        // so it never reads or writes this process's memory. The remaining integers make each
        // call harmless when no filter intervenes (see the module documentation): an empty
        // module image, invalid kexec flags, a bad fd, a keyring lookup without creation, a
        // btrfs ioctl that takes no argument, null paths and types for the mount calls,
        // argument sizes of 0, an unknown bpf command.
        let rc = unsafe { libc::syscall(nr, args[0], args[1], args[2], args[3], args[4]) };
        // libc::syscall returns -1 and sets errno.
        if rc == -1 { Err(io::Error::last_os_error()) } else { Ok(rc) }
    }

    #[cfg(target_arch = "x86_64")]
    fn i386_syscall0(nr: u32) -> libc::c_long {
        let ret: u32;
        // SAFETY: `int 0x80` enters the i386 system call table; the five argument registers that
        // matter are 0 and the number is one of I386_PROBE_NUMBERS, none of which writes to user memory
        // given zero/null arguments. The kernel preserves every register but eax (r8-r11 are
        // declared clobbered for older kernels that zeroed them); no stack is used.
        unsafe {
            std::arch::asm!(
                // rbx is reserved by LLVM: save it by hand around the call.
                "mov {save}, rbx",
                "xor ebx, ebx",
                "int 0x80",
                "mov rbx, {save}",
                save = out(reg) _,
                inlateout("eax") nr => ret,
                in("ecx") 0u32, in("edx") 0u32, in("esi") 0u32, in("edi") 0u32,
                lateout("r8") _, lateout("r9") _, lateout("r10") _, lateout("r11") _,
                options(nostack),
            );
        }
        // The i386 return value is a 32-bit signed int: -4095..-1 are errors.
        libc::c_long::from(ret as i32)
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn i386_syscall0(_nr: u32) -> libc::c_long {
        -libc::c_long::from(libc::ENOSYS)
    }
}
