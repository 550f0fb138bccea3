//! The confinement shared by `hearth-ctmon template` and `hearth-ctmon setup`: a fresh
//! hearth-ctmon process started in the container's root directory enters a user namespace
//! (unprivileged containers) and a mount namespace, becomes container root and chroots into
//! that directory, so whatever it writes is owned by the container's ids and no path it
//! follows — a symlink planted in a template or a guest — can lead outside the rootfs. This is
//! Proxmox's `lxc-usernsexec` + `protected_call` in one step.
//!
//! The parent is hearthd, a multi-threaded process, so it does not fork: it spawns
//! hearth-ctmon, which is single-threaded and may unshare freely. The hand-shake for the id
//! map: the child blocks `SIGUSR1`, unshares, prints `ready`; the parent writes
//! `/proc/<child>/uid_map` and `gid_map` and sends `SIGUSR1`. The parent is real root, so it
//! may write the maps without first denying `setgroups` (that is only required of writers
//! without `CAP_SETGID` over the parent namespace), and the child can drop the supplementary
//! groups it inherited.
//!
//! Exit codes of the child: 0 success (its last stdout line is the JSON result),
//! [`EXIT_REFUSED`] when the input was refused (stderr names why), anything else a failure.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitCode, Stdio};

use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, Signal};
use nix::unistd::{Gid, Pid, Uid};

use crate::spec::IdMap;

/// The child's exit code when it refused its input (not an error of the machine).
pub(crate) const EXIT_REFUSED: u8 = 3;

/// The first line the child prints once it is in its user namespace.
const READY: &str = "ready";

/// How a helper run failed, as seen by the parent.
#[derive(Debug)]
pub(crate) enum RunError {
    Spawn(std::io::Error),
    /// Writing the id map or signalling the child.
    IdMap(String),
    /// The child exited with [`EXIT_REFUSED`]: its message.
    Refused(String),
    /// The child failed otherwise: its message (or status).
    Failed(String),
}

/// What the parent gives the child besides its arguments.
pub(crate) enum Input<'a> {
    /// An open file as standard input (the template).
    File(std::fs::File),
    /// Bytes written to a pipe (JSON).
    Bytes(&'a [u8]),
}

/// Runs `ctmon <mode> [args…]` in `dir`, maps its ids when `idmap` is given, and returns the
/// last line it printed on success.
pub(crate) fn run(
    ctmon: &Path,
    mode: &str,
    args: &[String],
    dir: &Path,
    idmap: Option<&IdMap>,
    input: Input<'_>,
) -> Result<String, RunError> {
    let mut cmd = Command::new(ctmon);
    cmd.arg(mode).args(args).current_dir(dir).stdout(Stdio::piped()).stderr(Stdio::piped());
    // A clean environment: nothing of hearthd's leaks into a process that handles guest data.
    cmd.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    let bytes = match input {
        Input::File(file) => {
            cmd.stdin(file);
            None
        }
        Input::Bytes(bytes) => {
            cmd.stdin(Stdio::piped());
            Some(bytes)
        }
    };
    let mut child = KillOnDrop(Some(cmd.spawn().map_err(RunError::Spawn)?));
    let running = child.0.as_mut().expect("the child was just spawned");
    if let Some(bytes) = bytes {
        let mut stdin = running.stdin.take().expect("stdin was piped");
        // A child that died early closes its end; its stderr says why, below.
        let _ = stdin.write_all(bytes);
    }
    let mut stdout = BufReader::new(running.stdout.take().expect("stdout was piped"));
    if let Some(idmap) = idmap {
        let mut line = String::new();
        // EOF instead of `ready`: the child failed before; its status and stderr tell.
        if stdout.read_line(&mut line).is_ok() && line.trim_end() == READY {
            let pid = running.id();
            map_ids(pid, idmap).map_err(RunError::IdMap)?;
            nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGUSR1)
                .map_err(|e| RunError::IdMap(format!("signalling the helper: {e}")))?;
        }
    }
    let last = last_line(&mut stdout);
    let child = child.0.take().expect("the child is still ours");
    finish(child, last)
}

fn map_ids(pid: u32, idmap: &IdMap) -> Result<(), String> {
    for (file, ranges) in [("uid_map", &idmap.uid), ("gid_map", &idmap.gid)] {
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, IdMap::map_text(ranges)).map_err(|e| format!("writing {path}: {e}"))?;
    }
    Ok(())
}

fn last_line(stdout: &mut BufReader<ChildStdout>) -> String {
    let mut all = String::new();
    // A read error means the child is gone; its exit status carries the verdict.
    let _ = stdout.read_to_string(&mut all);
    all.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default().to_owned()
}

fn finish(mut child: Child, last: String) -> Result<String, RunError> {
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    let status = child.wait().map_err(|e| RunError::Failed(format!("waiting for hearth-ctmon: {e}")))?;
    // hearth-ctmon prefixes its messages with its mode; the caller's error says that already.
    let message = stderr
        .lines()
        .map(|l| l.split_once(": ").filter(|(p, _)| p.starts_with("hearth-ctmon")).map_or(l, |(_, m)| m))
        .collect::<Vec<_>>()
        .join("; ");
    match status.code() {
        Some(0) => Ok(last),
        Some(code) if code == i32::from(EXIT_REFUSED) => Err(RunError::Refused(message)),
        _ if message.is_empty() => Err(RunError::Failed(format!("hearth-ctmon {status}"))),
        _ => Err(RunError::Failed(message)),
    }
}

/// Kills and reaps the child unless it was taken: an error between spawn and wait must not
/// leave a helper waiting for a signal forever.
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The child's side: become container root (in a user namespace when `idmap` is given) and
/// chroot into the current directory. Must be called single-threaded, before any work.
pub(crate) fn enter(idmap: Option<&IdMap>) -> Result<(), String> {
    if idmap.is_some() {
        // Blocked before unsharing, so a SIGUSR1 sent as soon as `ready` is read is not lost.
        let mut usr1 = SigSet::empty();
        usr1.add(Signal::SIGUSR1);
        usr1.thread_block().map_err(|e| format!("blocking SIGUSR1: {e}"))?;
        // Should hearthd die while we wait, so do we.
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(|e| format!("prctl(PDEATHSIG): {e}"))?;
        if nix::unistd::getppid() == Pid::from_raw(1) {
            return Err("the parent is gone".into());
        }
        nix::sched::unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)
            .map_err(|e| format!("unshare(CLONE_NEWUSER|CLONE_NEWNS): {e}"))?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{READY}").and_then(|()| out.flush()).map_err(|e| format!("writing to the parent: {e}"))?;
        drop(out);
        usr1.wait().map_err(|e| format!("waiting for the id map: {e}"))?;
        let root = Gid::from_raw(0);
        // The host's groups are unmapped in here; keep none.
        nix::unistd::setgroups(&[]).map_err(|e| format!("setgroups: {e}"))?;
        nix::unistd::setresgid(root, root, root).map_err(|e| format!("setresgid(0): {e} (is gid 0 mapped?)"))?;
        let root = Uid::from_raw(0);
        nix::unistd::setresuid(root, root, root).map_err(|e| format!("setresuid(0): {e} (is uid 0 mapped?)"))?;
    } else {
        nix::sched::unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare(CLONE_NEWNS): {e}"))?;
    }
    std::os::unix::fs::chroot(".").map_err(|e| format!("chroot into the container's root: {e}"))?;
    std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))?;
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    Ok(())
}

/// Prints a refusal the way [`finish`] recognises it.
pub(crate) fn refuse(mode: &str, message: &str) -> ExitCode {
    eprintln!("hearth-ctmon {mode}: {message}");
    ExitCode::from(EXIT_REFUSED)
}

/// Parses `--idmap <json>` (the only option both helpers take); anything else is an error.
pub(crate) fn parse_idmap_arg(args: &[String]) -> Result<Option<IdMap>, String> {
    match args {
        [] => Ok(None),
        [flag, json] if flag == "--idmap" => serde_json::from_str(json).map(Some).map_err(|e| format!("--idmap: {e}")),
        _ => Err(format!("unexpected arguments {args:?}; expected [--idmap <json>]")),
    }
}

/// The arguments for [`parse_idmap_arg`].
pub(crate) fn idmap_args(idmap: Option<&IdMap>) -> Vec<String> {
    match idmap {
        Some(map) => vec!["--idmap".into(), serde_json::to_string(map).expect("an id map serializes")],
        None => Vec::new(),
    }
}
