//! hearth-ctmon's `exec` mode (`lxc-attach`): run a command, or copy a file in or out, inside a
//! running container.
//!
//! hearthd starts it with the caller's own stdin, stdout and stderr as its stdio and the
//! [`AttachSpec`] as JSON in its first argument. Process layout: this process stays on the
//! host, relays a terminal if there is one and exits with the command's status; a child joins
//! the container's cgroups and namespaces (one `setns` through a pidfd) and forks the process
//! that runs inside the container's pid namespace, as its root, with the container's
//! capability bounding set and seccomp filter.
//!
//! **A terminal of the caller never enters the container**: when one of the three descriptors
//! is a terminal, the command gets a fresh pty instead and this process copies between the two,
//! so TIOCSTI inside the container can only push keys into its own pty. All processes here are
//! non-dumpable, and every descriptor above 2 is closed before the command runs.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::ExitCode;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::CloneFlags;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::cgroup::{Cgroups, Layout};
use crate::spec::Features;

/// What to do inside.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachMode {
    /// Run a program; an empty command runs root's login shell.
    Exec { command: Vec<String>, env: Vec<String>, term: Option<String>, winsize: Option<(u16, u16)> },
    /// Write stdin to `path` with owner and mode.
    Push { path: String, uid: u32, gid: u32, mode: u32 },
    /// Copy `path` to stdout.
    Pull { path: String },
}

/// Everything `hearth-ctmon exec` needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachSpec {
    pub init_pid: i32,
    /// The container's cgroup name (`hearth/105`); the process joins `<name>/ns`.
    pub cgroup: String,
    pub privileged: bool,
    pub features: Features,
    pub mode: AttachMode,
}

/// The exit status the caller sees for a child's wait status.
fn exit_code(status: WaitStatus) -> i32 {
    match status {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, signal, _) => 128 + signal as i32,
        _ => 1,
    }
}

fn is_tty(fd: i32) -> bool {
    use std::io::IsTerminal;
    match fd {
        0 => std::io::stdin().is_terminal(),
        1 => std::io::stdout().is_terminal(),
        _ => std::io::stderr().is_terminal(),
    }
}

/// hearth-ctmon exec: the host side.
pub fn main(args: &[String]) -> Result<ExitCode, String> {
    let json = args.first().ok_or("exec takes the attach spec as its argument")?;
    let spec: AttachSpec = serde_json::from_str(json).map_err(|e| format!("bad attach spec: {e}"))?;
    nix::sys::prctl::set_dumpable(false).map_err(|e| format!("prctl: {e}"))?;
    let pidfd =
        hearth_sys::process::pidfd_open(spec.init_pid).map_err(|e| format!("the container is not running: {e}"))?;
    let use_pty = matches!(spec.mode, AttachMode::Exec { .. }) && (0..3).any(is_tty);
    let pty = if use_pty {
        let pty = crate::console::Pty::open(None).map_err(|e| format!("pty: {e}"))?;
        if let AttachMode::Exec { winsize: Some((rows, cols)), .. } = &spec.mode {
            let _ = hearth_sys::tty::set_window_size(pty.master.as_fd(), *rows, *cols);
        }
        Some(pty)
    } else {
        None
    };
    let child = match hearth_sys::process::fork().map_err(|e| format!("fork: {e}"))? {
        hearth_sys::process::Forked::Child => {
            let slave = pty.as_ref().map(|p| p.slave.as_fd());
            let code = match enter(&spec, pidfd.as_fd(), slave) {
                Ok(code) => code,
                Err(message) => {
                    eprintln!("{message}");
                    126
                }
            };
            std::process::exit(code);
        }
        hearth_sys::process::Forked::Parent { pid, .. } => Pid::from_raw(pid),
    };
    drop(pidfd);
    if let Some(pty) = pty {
        drop(pty.slave);
        relay(pty.master.as_fd());
    }
    let status = waitpid(child, None).map_err(|e| format!("waitpid: {e}"))?;
    Ok(ExitCode::from(exit_code(status).clamp(0, 255) as u8))
}

/// Copies stdin to the pty and the pty to stdout until the command's side hangs up.
fn relay(master: BorrowedFd<'_>) {
    let mut master_file = std::fs::File::from(master.try_clone_to_owned().unwrap_or_else(|_| std::process::exit(1)));
    let mut stdin_open = true;
    let mut buf = [0u8; 8192];
    loop {
        let stdin = std::io::stdin();
        let mut fds = vec![PollFd::new(master, PollFlags::POLLIN)];
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        if let Err(e) = poll(&mut fds, PollTimeout::NONE) {
            if e == nix::errno::Errno::EINTR {
                continue;
            }
            return;
        }
        let master_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
        let stdin_ready = fds.get(1).and_then(PollFd::revents).is_some_and(|r| !r.is_empty());
        drop(fds);
        if master_ready {
            match master_file.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let mut out = std::io::stdout().lock();
                    if out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                        return;
                    }
                }
            }
        }
        if stdin_ready {
            match std::io::stdin().lock().read(&mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    if master_file.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// The middle process: joins the container and forks the process that runs inside its pid
/// namespace; returns that one's exit status.
fn enter(spec: &AttachSpec, pidfd: BorrowedFd<'_>, slave: Option<BorrowedFd<'_>>) -> Result<i32, String> {
    // Join the container's cgroups first, so everything below is accounted to it.
    let layout = Layout::detect().map_err(|e| format!("cgroups: {e}"))?;
    // v1: this process joins (a cheap move of itself); cgroup2: the process that runs inside
    // is cloned straight into the container's cgroup, without the move's global lock.
    let cgroups = Cgroups::new(layout, &spec.cgroup);
    cgroups.enter_self_v1().map_err(|e| format!("joining the container's cgroups: {e}"))?;
    let v2 = cgroups.open_v2_ns_dir().map_err(|e| format!("joining the container's cgroups: {e}"))?;
    let mut flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWCGROUP;
    if !spec.privileged {
        flags |= CloneFlags::CLONE_NEWUSER;
    }
    // Once inside the container's mounts, /proc is the container's and does not show us.
    let single = hearth_sys::process::SingleThreaded::check().map_err(|e| format!("fork: {e}"))?;
    nix::sched::setns(pidfd, flags).map_err(|e| format!("entering the container: {e}"))?;
    match hearth_sys::process::clone_rechecked(&single, 0, v2.as_ref().map(AsFd::as_fd))
        .map_err(|e| format!("fork: {e}"))?
    {
        hearth_sys::process::Forked::Child => {
            let message = match inside(spec, slave) {
                Ok(never) => match never {},
                Err(e) => e,
            };
            eprintln!("{message}");
            std::process::exit(126);
        }
        hearth_sys::process::Forked::Parent { pid, .. } => {
            let status = waitpid(Pid::from_raw(pid), None).map_err(|e| format!("waitpid: {e}"))?;
            Ok(exit_code(status))
        }
    }
}

enum Never {}

/// Inside the container: become its root, confine like its init, then run or copy.
fn inside(spec: &AttachSpec, slave: Option<BorrowedFd<'_>>) -> Result<Never, String> {
    let root = nix::unistd::Uid::from_raw(0);
    let group = nix::unistd::Gid::from_raw(0);
    nix::unistd::setresgid(group, group, group).map_err(|e| format!("setresgid: {e}"))?;
    nix::unistd::setgroups(&[]).map_err(|e| format!("setgroups: {e}"))?;
    nix::unistd::setresuid(root, root, root).map_err(|e| format!("setresuid: {e}"))?;
    nix::unistd::chdir("/").map_err(|e| format!("chdir: {e}"))?;
    crate::caps::drop_for_container(spec.privileged).map_err(|e| format!("capabilities: {e}"))?;
    let profile = crate::seccomp::Profile { privileged: spec.privileged, features: spec.features };
    let filter = crate::seccomp::filter(&profile).map_err(|e| format!("seccomp: {e}"))?;
    match &spec.mode {
        AttachMode::Push { path, uid, gid, mode } => {
            hearth_sys::process::close_from(3).map_err(|e| format!("closing descriptors: {e}"))?;
            crate::seccomp::apply(&filter).map_err(|e| format!("seccomp: {e}"))?;
            let copied = push(path, *uid, *gid, *mode);
            std::process::exit(match copied {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("{e}");
                    1
                }
            });
        }
        AttachMode::Pull { path } => {
            hearth_sys::process::close_from(3).map_err(|e| format!("closing descriptors: {e}"))?;
            crate::seccomp::apply(&filter).map_err(|e| format!("seccomp: {e}"))?;
            let copied = open_regular(path, false).and_then(|mut file| {
                std::io::copy(&mut file, &mut std::io::stdout().lock()).map(|_| ()).map_err(|e| format!("{path}: {e}"))
            });
            std::process::exit(match copied {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("{e}");
                    1
                }
            });
        }
        AttachMode::Exec { command, env, term, .. } => {
            nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
            if let Some(slave) = slave {
                hearth_sys::tty::set_controlling_terminal(slave).map_err(|e| format!("pty: {e}"))?;
                for fd in 0..3 {
                    hearth_sys::process::dup_onto(slave, fd, false).map_err(|e| format!("pty: {e}"))?;
                }
            }
            let shell = login_shell();
            let argv: Vec<String> = if command.is_empty() { vec![shell, "-l".into()] } else { command.clone() };
            let mut envp = vec![
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
                format!("TERM={}", term.as_deref().unwrap_or(if slave.is_some() { "xterm" } else { "dumb" })),
                "HOME=/root".to_owned(),
                "USER=root".to_owned(),
                "LOGNAME=root".to_owned(),
                "container=lxc".to_owned(),
            ];
            envp.extend(env.iter().cloned());
            let cstr = |s: &str| std::ffi::CString::new(s).map_err(|_| format!("'{s}' holds a NUL byte"));
            let argv: Vec<std::ffi::CString> = argv.iter().map(|a| cstr(a)).collect::<Result<_, _>>()?;
            let envp: Vec<std::ffi::CString> = envp.iter().map(|a| cstr(a)).collect::<Result<_, _>>()?;
            let program = argv.first().cloned().ok_or("no command")?;
            hearth_sys::process::reset_signals().map_err(|e| format!("signals: {e}"))?;
            hearth_sys::process::close_from(3).map_err(|e| format!("closing descriptors: {e}"))?;
            crate::seccomp::apply(&filter).map_err(|e| format!("seccomp: {e}"))?;
            let e = execvpe(&program, &argv, &envp);
            // Status 127 like a shell for a command that does not exist.
            eprintln!("{}: {e}", program.to_string_lossy());
            std::process::exit(if e == nix::errno::Errno::ENOENT { 127 } else { 126 });
        }
    }
}

/// Searches PATH of the container for `program` (no shell involved).
fn execvpe(program: &std::ffi::CStr, argv: &[std::ffi::CString], envp: &[std::ffi::CString]) -> nix::errno::Errno {
    let name = program.to_string_lossy();
    if name.contains('/') {
        return nix::unistd::execve(program, argv, envp).err().unwrap_or(nix::errno::Errno::UnknownErrno);
    }
    let mut last = nix::errno::Errno::ENOENT;
    for dir in ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let Ok(path) = std::ffi::CString::new(format!("{dir}/{name}")) else { continue };
        match nix::unistd::execve(&path, argv, envp) {
            Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => last = e,
            Ok(_) => {}
        }
    }
    last
}

/// Root's shell from the container's /etc/passwd, else /bin/sh.
fn login_shell() -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("root:"))
                .and_then(|l| l.rsplit(':').next())
                .filter(|s| s.starts_with('/'))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "/bin/sh".to_owned())
}

/// Writes stdin to `path` inside the container, created with the given owner and mode.
fn push(path: &str, uid: u32, gid: u32, mode: u32) -> Result<(), String> {
    let mut file = open_regular(path, true)?;
    file.set_len(0).map_err(|e| format!("{path}: {e}"))?;
    let fd: OwnedFd = file.try_clone().map_err(|e| e.to_string())?.into();
    nix::unistd::fchown(&fd, Some(nix::unistd::Uid::from_raw(uid)), Some(nix::unistd::Gid::from_raw(gid)))
        .map_err(|e| format!("{path}: chown: {e}"))?;
    nix::sys::stat::fchmod(&fd, nix::sys::stat::Mode::from_bits_truncate(mode))
        .map_err(|e| format!("{path}: chmod: {e}"))?;
    std::io::copy(&mut std::io::stdin().lock(), &mut file).map_err(|e| format!("{path}: {e}"))?;
    Ok(())
}

/// Opens a regular file inside the container without blocking on a FIFO the container planted
/// (O_NONBLOCK) and refuses anything else; for writing it is created (mode set afterwards).
fn open_regular(path: &str, write: bool) -> Result<std::fs::File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(!write)
        .write(write)
        .create(write)
        .mode(0o600)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("{path}: {e}"))?;
    if !file.metadata().map_err(|e| format!("{path}: {e}"))?.is_file() {
        return Err(format!("{path}: not a regular file"));
    }
    // Back to blocking reads and writes for the copy itself.
    let flags = nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_GETFL).map_err(|e| format!("{path}: {e}"))?;
    let flags = nix::fcntl::OFlag::from_bits_truncate(flags) & !nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETFL(flags)).map_err(|e| format!("{path}: {e}"))?;
    Ok(file)
}
