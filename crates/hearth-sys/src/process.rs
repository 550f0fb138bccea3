//! Process primitives the container runtime needs and nix lacks or marks unsafe: forking a
//! single-threaded process, cloning straight into new namespaces with a pidfd, pidfd signals
//! (real-time ones included) and closing every descriptor above a bound.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Which side of a fork or clone the caller is on.
#[derive(Debug)]
pub enum Forked {
    /// The parent, with the child's pid and (for [`clone_into_namespaces`]) a pidfd.
    Parent {
        pid: i32,
        pidfd: Option<OwnedFd>,
    },
    Child,
}

/// Proof that the process had one thread when it was checked, for forking later at a point
/// where /proc no longer shows this process (after joining another pid namespace's mounts).
///
/// It keeps this process's `/proc/self/task` directory open, so [`clone_rechecked`] can count
/// the threads again through that descriptor just before cloning, whatever mounts the process
/// sees by then: the promise "no thread was started since" is checked, not only trusted.
#[derive(Debug)]
pub struct SingleThreaded {
    task_dir: OwnedFd,
}

impl SingleThreaded {
    pub fn check() -> io::Result<SingleThreaded> {
        use nix::fcntl::{OFlag, open};
        let task_dir = open(
            "/proc/self/task",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )?;
        let proof = SingleThreaded { task_dir };
        proof.recheck()?;
        Ok(proof)
    }

    /// Counts this process's threads again through the descriptor opened at the check.
    fn recheck(&self) -> io::Result<()> {
        use nix::fcntl::OFlag;
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let mut dir = nix::dir::Dir::openat(&self.task_dir, ".", flags, nix::sys::stat::Mode::empty())?;
        let mut threads = 0;
        for entry in dir.iter() {
            let name = entry?.file_name().to_bytes().to_owned();
            if name != b"." && name != b".." {
                threads += 1;
            }
        }
        match threads {
            1 => Ok(()),
            n => Err(io::Error::other(format!(
                "refusing to fork a process with {n} threads: the child could inherit locks held by the others"
            ))),
        }
    }
}

/// `fork()`, for single-threaded processes only (checked): the child is then an exact copy
/// with no lock held by a vanished thread, so it may allocate and run ordinary Rust code.
pub fn fork() -> io::Result<Forked> {
    let proof = SingleThreaded::check()?;
    // SAFETY: the check just counted one thread, and no code ran since that could start one.
    unsafe { fork_checked(&proof) }
}

/// [`fork`] with the check done earlier.
///
/// # Safety
///
/// The process must still have exactly one thread: the caller started none since `proof` was
/// made. The proof alone cannot show that; [`fork`] checks immediately before forking.
pub unsafe fn fork_checked(_proof: &SingleThreaded) -> io::Result<Forked> {
    // SAFETY: the process has exactly one thread (the caller's promise), so no other thread can
    // hold a lock (allocator, stdio) that the child would inherit in a locked state; fork has
    // no memory-safety preconditions beyond that.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent { pid, pidfd: None }),
    }
}

/// `clone3()` with `flags` (namespace flags such as `CLONE_NEWUSER | CLONE_NEWPID`) and
/// `CLONE_PIDFD`, fork-style (the child continues on a copy of the caller's stack). The child
/// gets `SIGCHLD` semantics, so the parent waits for it with waitpid. Single-threaded callers
/// only (checked), for the same reason as [`fork`].
///
/// With `cgroup` (a directory of a cgroup2 hierarchy) the child is born in that cgroup
/// (`CLONE_INTO_CGROUP`), without the global lock a later move would take.
pub fn clone_into_namespaces(flags: u64, cgroup: Option<BorrowedFd<'_>>) -> io::Result<Forked> {
    clone_rechecked(&SingleThreaded::check()?, flags, cgroup)
}

/// [`clone_into_namespaces`] for a process that may no longer see itself in /proc: counts the
/// threads again through the descriptor `proof` holds, then clones.
pub fn clone_rechecked(proof: &SingleThreaded, flags: u64, cgroup: Option<BorrowedFd<'_>>) -> io::Result<Forked> {
    proof.recheck()?;
    // SAFETY: the recheck just counted one thread, and no code ran since that could start one.
    unsafe { clone_checked(proof, flags, cgroup) }
}

/// [`clone_into_namespaces`] with the single-thread check done earlier.
///
/// # Safety
///
/// The process must still have exactly one thread: the caller started none since `proof` was
/// made. The proof alone cannot show that; [`clone_rechecked`] checks it again first.
pub unsafe fn clone_checked(_proof: &SingleThreaded, flags: u64, cgroup: Option<BorrowedFd<'_>>) -> io::Result<Forked> {
    let mut pidfd: RawFd = -1;
    let mut args: libc::clone_args = clone_args_zeroed();
    args.flags = flags | libc::CLONE_PIDFD as u64;
    if let Some(dir) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = dir.as_raw_fd() as u64;
    }
    args.pidfd = std::ptr::addr_of_mut!(pidfd) as u64;
    args.exit_signal = libc::SIGCHLD as u64;
    // SAFETY: `args` is a valid clone_args of the size passed; stack is 0, so the kernel runs
    // the child on a copy-on-write copy of this thread's stack like fork(). The process is
    // single-threaded (the caller's promise), so the child inherits no foreign-held lock.
    // `pidfd` lives until the call returns, which is when the kernel writes it; the cgroup
    // descriptor is borrowed for the call.
    let ret = unsafe { libc::syscall(libc::SYS_clone3, std::ptr::addr_of_mut!(args), size_of::<libc::clone_args>()) };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => {
            // SAFETY: with CLONE_PIDFD the kernel stored a new descriptor that nothing else owns.
            let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
            Ok(Forked::Parent { pid: pid as i32, pidfd: Some(pidfd) })
        }
    }
}

/// `CLONE_INTO_CGROUP` (Linux 5.7), not in every libc release.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

fn clone_args_zeroed() -> libc::clone_args {
    libc::clone_args {
        flags: 0,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: 0,
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: 0,
    }
}

/// A pidfd for `pid` (pidfd_open), to signal it without pid reuse races and to poll for its
/// exit.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Sends signal number `signal` (real-time signals included) through a pidfd.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: i32) -> io::Result<()> {
    // SAFETY: plain integer arguments; info is NULL (the kernel fills it as for kill()).
    let ret = unsafe {
        libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), signal, std::ptr::null::<libc::siginfo_t>(), 0)
    };
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// `SIGRTMIN + n`, as the C library numbers it.
pub fn sigrtmin_plus(n: i32) -> i32 {
    libc::SIGRTMIN() + n
}

/// Closes every descriptor from `first` up. Run right before exec, so no descriptor of the
/// host reaches a container process whatever flags it was opened with.
pub fn close_from(first: RawFd) -> io::Result<()> {
    // SAFETY: close_range only closes descriptors; the callers are about to exec and hold no
    // Rust object owning a descriptor at or above `first` that they will use again.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first as libc::c_uint, libc::c_uint::MAX, 0) };
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Puts every signal back to its default action and unblocks all: a program exec'd by the
/// runtime (a container's init, an exec'd command) must not inherit the runtime's ignored
/// SIGPIPE or its mask.
pub fn reset_signals() -> io::Result<()> {
    for signal in 1..=libc::SIGRTMAX() {
        if signal == libc::SIGKILL || signal == libc::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL runs no handler code; signals the kernel refuses (the
        // ones glibc reserves) fail with EINVAL, which is ignored on purpose.
        unsafe { libc::signal(signal, libc::SIG_DFL) };
    }
    let empty = nix::sys::signal::SigSet::empty();
    nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_SETMASK, Some(&empty), None)?;
    Ok(())
}

/// Makes descriptor number `new` a copy of `old` (dup3), optionally close-on-exec; `new` is
/// replaced if open. For placing descriptors at fixed numbers right before exec.
pub fn dup_onto(old: BorrowedFd<'_>, new: RawFd, cloexec: bool) -> io::Result<()> {
    if old.as_raw_fd() == new {
        let flags = if cloexec { libc::FD_CLOEXEC } else { 0 };
        // SAFETY: F_SETFD on a descriptor we borrow changes only its flags.
        let ret = unsafe { libc::fcntl(new, libc::F_SETFD, flags) };
        return if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(()) };
    }
    let flags = if cloexec { libc::O_CLOEXEC } else { 0 };
    // SAFETY: dup3 only manipulates the descriptor table; the caller gives up whatever `new`
    // was (it is about to exec with a fixed layout).
    let ret = unsafe { libc::dup3(old.as_raw_fd(), new, flags) };
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fork_is_refused_with_threads() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || rx.recv());
        let err = fork().unwrap_err();
        drop(tx);
        let _ = other.join();
        assert!(err.to_string().contains("threads"), "{err}");
    }

    #[test]
    fn pidfd_signals_a_child() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pidfd = pidfd_open(child.id() as i32).unwrap();
        pidfd_send_signal(std::os::fd::AsFd::as_fd(&pidfd), sigrtmin_plus(3)).unwrap();
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(sigrtmin_plus(3)));
    }
}
