//! The `bpf(2)` commands a container runtime needs for device rules on cgroup v2: loading a
//! `BPF_PROG_TYPE_CGROUP_DEVICE` program, attaching it to a cgroup (`BPF_PROG_ATTACH`) and
//! asking which programs a cgroup has (`BPF_PROG_QUERY`). cgroup v2 has no `devices` controller;
//! LXC, runc and systemd confine devices there with such a program, and the kernel runs it in
//! addition to the v1 `devices` rules on hybrid hosts (`devcgroup_check_permission`).
//!
//! What the program says is the caller's business ([`Insn`] is plain data); this module only
//! passes it to the kernel, whose verifier checks it before it can run.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `BPF_PROG_LOAD`, `BPF_PROG_ATTACH`, `BPF_PROG_QUERY` (`enum bpf_cmd`).
const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_QUERY: libc::c_int = 16;

/// `BPF_PROG_TYPE_CGROUP_DEVICE` (`enum bpf_prog_type`).
pub const PROG_TYPE_CGROUP_DEVICE: u32 = 15;
/// `BPF_CGROUP_DEVICE` (`enum bpf_attach_type`).
pub const ATTACH_CGROUP_DEVICE: u32 = 6;
/// `BPF_F_ALLOW_MULTI`: programs attached to descendants run as well, never instead; for device
/// programs every one of them must allow an access.
pub const F_ALLOW_MULTI: u32 = 1 << 1;
/// `BPF_F_QUERY_EFFECTIVE`: the programs that run for the cgroup, its ancestors' included.
pub const F_QUERY_EFFECTIVE: u32 = 1 << 0;

/// One eBPF instruction, laid out as the kernel's `struct bpf_insn`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// The destination register in the low four bits, the source register in the high four.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn { code, regs: (dst & 0x0f) | (src << 4), off, imm }
    }

    pub const fn dst(&self) -> u8 {
        self.regs & 0x0f
    }

    pub const fn src(&self) -> u8 {
        self.regs >> 4
    }
}

/// `BPF_PROG_LOAD`'s part of `union bpf_attr`.
#[repr(C)]
#[derive(Clone, Copy)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
}

/// `BPF_PROG_ATTACH`'s part.
#[repr(C)]
#[derive(Clone, Copy)]
struct ProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

/// `BPF_PROG_QUERY`'s part, up to the fields the kernel writes back.
#[repr(C)]
#[derive(Clone, Copy)]
struct ProgQuery {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
    prog_attach_flags: u64,
    link_ids: u64,
    link_attach_flags: u64,
    revision: u64,
}

/// `union bpf_attr`, padded well beyond the kernel's size (about 150 bytes in 6.x): the
/// kernel copies what it knows, checks that the rest is zero, and may write output fields
/// (a query's `revision`) past the part a command documents.
#[repr(C)]
union Attr {
    load: ProgLoad,
    attach: ProgAttach,
    query: ProgQuery,
    size: [u64; 32],
}

impl Attr {
    fn zeroed() -> Attr {
        Attr { size: [0; 32] }
    }
}

/// # Safety
/// `attr` must hold, for `cmd`, only pointers (as integers) to memory that is valid for what
/// the kernel does with them during the call: read-only input of the stated lengths, or
/// writable output buffers of the stated lengths.
unsafe fn bpf(cmd: libc::c_int, attr: &mut Attr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, writable, zero-padded `union bpf_attr` of the size passed; the
    // pointers inside it are the caller's responsibility (see the function's contract).
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut Attr, size_of::<Attr>() as libc::c_uint) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc) }
}

/// Loads a cgroup device program. When the verifier refuses it, loads it once more with the
/// verifier's log and returns that log in the error.
pub fn load_cgroup_device_program(insns: &[Insn], license: &CStr) -> io::Result<OwnedFd> {
    match load(insns, license, None) {
        Ok(fd) => Ok(fd),
        Err(first) if matches!(first.raw_os_error(), Some(libc::EINVAL | libc::EACCES)) => {
            let mut log = vec![0u8; 64 * 1024];
            match load(insns, license, Some(&mut log)) {
                Ok(fd) => Ok(fd),
                Err(e) => {
                    let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
                    let text = String::from_utf8_lossy(&log[..end]);
                    Err(io::Error::new(e.kind(), format!("the verifier refused the program ({e}): {}", text.trim())))
                }
            }
        }
        Err(e) => Err(e),
    }
}

fn load(insns: &[Insn], license: &CStr, log: Option<&mut [u8]>) -> io::Result<OwnedFd> {
    let insn_cnt = u32::try_from(insns.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
    let (log_level, log_size, log_buf) = match log {
        Some(buf) => (1, u32::try_from(buf.len()).unwrap_or(u32::MAX), buf.as_mut_ptr() as u64),
        None => (0, 0, 0),
    };
    let mut attr = Attr::zeroed();
    attr.load = ProgLoad {
        prog_type: PROG_TYPE_CGROUP_DEVICE,
        insn_cnt,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level,
        log_size,
        log_buf,
        kern_version: 0,
        prog_flags: 0,
    };
    // SAFETY: `insns` is `insn_cnt` readable `struct bpf_insn`s (same layout, repr(C)),
    // `license` a NUL-terminated string, and the log, when given, a writable buffer of
    // `log_size` bytes; all three are borrowed for the duration of the call and the kernel only
    // copies from the first two and writes at most `log_size` bytes into the third.
    let fd = unsafe { bpf(BPF_PROG_LOAD, &mut attr) }?;
    let fd = i32::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: a successful BPF_PROG_LOAD returns a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Attaches `program` to the cgroup2 directory `cgroup` as a device program with `flags`
/// ([`F_ALLOW_MULTI`]). The cgroup keeps the program alive; the descriptor may be closed.
pub fn attach_cgroup_device(cgroup: BorrowedFd<'_>, program: BorrowedFd<'_>, flags: u32) -> io::Result<()> {
    let mut attr = Attr::zeroed();
    attr.attach = ProgAttach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: program.as_raw_fd() as u32,
        attach_type: ATTACH_CGROUP_DEVICE,
        attach_flags: flags,
    };
    // SAFETY: BPF_PROG_ATTACH takes two descriptors (borrowed, so open during the call) and
    // integers; no pointer is passed.
    unsafe { bpf(BPF_PROG_ATTACH, &mut attr) }.map(drop)
}

/// The ids of the device programs of the cgroup2 directory `cgroup`: those attached to it, or
/// with [`F_QUERY_EFFECTIVE`] those that run for it (its ancestors' included).
pub fn query_cgroup_device(cgroup: BorrowedFd<'_>, query_flags: u32) -> io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut attr = Attr::zeroed();
    attr.query = ProgQuery {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: ATTACH_CGROUP_DEVICE,
        query_flags,
        attach_flags: 0,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        _pad: 0,
        prog_attach_flags: 0,
        link_ids: 0,
        link_attach_flags: 0,
        revision: 0,
    };
    // SAFETY: `prog_ids` points at `prog_cnt` writable u32s borrowed for the call, the only
    // memory outside `attr` the kernel writes (the per-program flag and link arrays are null,
    // which the kernel skips); `cgroup` is open for the call.
    unsafe { bpf(BPF_PROG_QUERY, &mut attr) }?;
    // SAFETY: every bit pattern is a valid `ProgQuery` (integers only), and `query` is the
    // member the kernel filled in.
    let count = unsafe { attr.query.prog_cnt } as usize;
    ids.truncate(count.min(ids.len()));
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_the_kernel() {
        assert_eq!(size_of::<Insn>(), 8);
        assert_eq!(Insn::new(0x61, 2, 1, 4, 0).regs, 0x12);
        assert_eq!(size_of::<ProgLoad>(), 48);
        assert_eq!(std::mem::offset_of!(ProgQuery, prog_ids), 16);
        assert_eq!(std::mem::offset_of!(ProgQuery, prog_cnt), 24);
        assert_eq!(std::mem::offset_of!(ProgQuery, revision), 56);
    }

    #[test]
    fn an_invalid_program_is_refused_with_the_verifier_log() {
        // `exit` without setting r0: the verifier refuses to read an uninitialized register.
        let err = load_cgroup_device_program(&[Insn::new(0x95, 0, 0, 0, 0)], c"GPL").expect_err("refused");
        assert!(err.to_string().contains("R0"), "{err}");
    }
}
